use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};

#[pipeline(input = "raw")]
async fn no_output(_raw: DatasetInput) {}

#[pipeline(output = "out")]
async fn no_input(_out: DatasetOutput) {}

#[pipeline]
async fn nothing() {}

fn main() {}
