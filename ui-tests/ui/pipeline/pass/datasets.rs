use cmod_runtime::pipeline::PipelineError;
use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};

/// One input, one output, the error type of the handles.
#[pipeline(input = "raw_orders", output = "clean_orders")]
async fn clean(raw: DatasetInput, out: DatasetOutput) -> Result<(), PipelineError> {
    for f in raw.list_files(None).await? {
        out.write(&f.path, raw.read(&f.path).await?).await?;
    }
    Ok(())
}

fn main() {
    // The generated definition is nameable, and describes the aliases in order.
    let def = cmod_runtime::pipeline_def!(clean);
    assert_eq!(def.name, "clean");
    assert_eq!(def.inputs[0].alias, "raw_orders");
    assert_eq!(def.outputs[0].alias, "clean_orders");
    // The function itself is untouched.
    let _f: fn(DatasetInput, DatasetOutput) -> _ = clean;
}
