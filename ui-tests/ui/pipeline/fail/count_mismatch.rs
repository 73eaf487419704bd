use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};

#[pipeline(input = "raw", input = "extra", output = "out")]
async fn more_aliases(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "raw", output = "out")]
async fn more_params(_raw: DatasetInput, _out: DatasetOutput, _unbound: DatasetOutput) {}

fn main() {}
