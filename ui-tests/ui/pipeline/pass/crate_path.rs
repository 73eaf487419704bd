//! `crate = "…"`: the generated code reaches the runtime through the given path (here a
//! re-export), not `::cmod_runtime`.

mod rt {
    pub use cmod_runtime::*;
}

#[rt::pipeline(crate = "crate::rt", input = "raw", output = "clean")]
async fn through_reexport(raw: rt::DatasetInput, out: rt::DatasetOutput) {
    let _ = (raw, out);
}

#[cmod_runtime::pipeline(input = "raw", output = "clean", crate = "::cmod_runtime")]
async fn absolute(_raw: cmod_runtime::DatasetInput, _out: cmod_runtime::DatasetOutput) {}

fn main() {
    let def = rt::pipeline_def!(through_reexport);
    assert_eq!(def.name, "through_reexport");
    assert_eq!(def.inputs[0].alias, "raw");
    let def = cmod_runtime::pipeline_def!(absolute);
    assert_eq!(def.outputs[0].alias, "clean");
}
