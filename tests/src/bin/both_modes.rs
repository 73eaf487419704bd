//! A binary that links both a `#[compute_function]` and a `#[pipeline]`: it must be told which
//! mode to run (`tests/local_cli.rs`).

use cmod_runtime::pipeline::PipelineError;
use cmod_runtime::{DatasetInput, DatasetOutput, compute_function, pipeline};

/// Adds two integers.
#[compute_function]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Copies nothing: the pipeline only has to exist.
#[pipeline(input = "source", output = "target")]
async fn copy(source: DatasetInput, target: DatasetOutput) -> Result<(), PipelineError> {
    let _ = (source, target);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), cmod_runtime::Error> {
    cmod_runtime::run().await
}
