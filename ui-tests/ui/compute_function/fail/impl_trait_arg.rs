use cmod_runtime::compute_function;

#[compute_function]
fn show(value: impl std::fmt::Display) -> String {
    value.to_string()
}

fn main() {}
