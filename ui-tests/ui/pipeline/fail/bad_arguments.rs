use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};

#[pipeline(input = "raw", output = "out", name = "x")]
async fn unknown_key(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = raw_orders, output = 5)]
async fn not_strings(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "", output = "has space")]
async fn empty_and_spaces(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input, output("out"))]
async fn no_values(_raw: DatasetInput, _out: DatasetOutput) {}

fn main() {}
