use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};

#[pipeline(input = "raw", output = "out", crate = "not a path")]
async fn not_a_path(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "raw", output = "out", crate = cmod_runtime)]
async fn not_a_string(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "raw", output = "out", crate)]
async fn no_value(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "raw", output = "out", crate = "::cmod_runtime", crate = "::cmod_runtime")]
async fn twice(_raw: DatasetInput, _out: DatasetOutput) {}

fn main() {}
