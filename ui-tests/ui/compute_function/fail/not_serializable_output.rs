use cmod_runtime::compute_function;

#[derive(schemars::JsonSchema)]
struct Report {
    total: i32,
}

#[compute_function]
fn report(total: i32) -> Report {
    Report { total }
}

fn main() {}
