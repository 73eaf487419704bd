use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};

// The keys bind in order: `out` gets "raw" (an input alias) and `raw` gets "clean".
#[pipeline(input = "raw", output = "clean")]
async fn swapped(_out: DatasetOutput, _raw: DatasetInput) {}

fn main() {}
