use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};

#[pipeline(input = "raw", output = "out", after_success = "forever")]
async fn unknown_value(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "raw", output = "out", after_success = exit)]
async fn not_a_string(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "raw", output = "out", after_success)]
async fn no_value(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "raw", output = "out", after_success = "exit", after_success = "exit")]
async fn twice(_raw: DatasetInput, _out: DatasetOutput) {}

fn main() {}
