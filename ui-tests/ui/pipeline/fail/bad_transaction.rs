use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};

#[pipeline(input = "raw", output = "out", transaction(raw = "append"))]
async fn names_an_input(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "raw", output = "out", transaction(other = "append"))]
async fn names_no_output(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "raw", output = "out", transaction(out = "delete"))]
async fn unknown_type(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "raw", output = "out", transaction(out = append))]
async fn not_a_string(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "raw", output = "out", transaction = "append")]
async fn not_a_list(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "raw", output = "out", transaction(out = "append", out = "update"))]
async fn twice(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "raw", output = "out", transaction())]
async fn empty(_raw: DatasetInput, _out: DatasetOutput) {}

fn main() {}
