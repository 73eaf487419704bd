use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};

#[pipeline(input = "raw", output = "clean")]
fn not_async(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "raw", output = "clean")]
async fn generic<T>(_raw: DatasetInput, _out: DatasetOutput) {}

#[pipeline(input = "raw", output = "clean")]
async fn returns_a_number(_raw: DatasetInput, _out: DatasetOutput) -> u32 {
    0
}

fn main() {}
