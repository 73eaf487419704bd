use cmod_runtime::pipeline::AfterSuccess;
use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};

/// Stays alive after success even on the local Foundry (unless
/// `CMOD_PIPELINE_AFTER_SUCCESS=exit`).
#[pipeline(input = "raw", output = "out", after_success = "stay_alive")]
async fn stays(_raw: DatasetInput, _out: DatasetOutput) {}

/// Exits after success even in Foundry (unless `CMOD_PIPELINE_AFTER_SUCCESS=stay_alive`).
#[pipeline(after_success = "exit", input = "raw", output = "out")]
async fn exits(_raw: DatasetInput, _out: DatasetOutput) {}

/// No choice: the default of the environment.
#[pipeline(input = "raw", output = "out")]
async fn default(_raw: DatasetInput, _out: DatasetOutput) {}

fn main() {
    assert_eq!(
        cmod_runtime::pipeline_def!(stays).after_success,
        Some(AfterSuccess::StayAlive)
    );
    assert_eq!(
        cmod_runtime::pipeline_def!(exits).after_success,
        Some(AfterSuccess::Exit)
    );
    assert_eq!(cmod_runtime::pipeline_def!(default).after_success, None);
}
