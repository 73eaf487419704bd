use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};

#[pipeline(input = "orders", output = "orders")]
async fn same_alias_twice(_raw: DatasetInput, _out: DatasetOutput) {}

fn main() {}
