use cmod_runtime::{DatasetOutput, pipeline};

type Renamed = DatasetOutput;

#[pipeline(input = "raw", output = "clean")]
async fn wrong_types(_raw: String, _out: Renamed) {}

#[pipeline(input = "raw", output = "clean")]
async fn output_behind_an_alias(_raw: Renamed, _out: DatasetOutput) {}

fn main() {}
