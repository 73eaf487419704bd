use cmod_runtime::compute_function;

#[compute_function(name = add, rename_all = "camel", streaming = true, crate = "not a path")]
fn add(x: i32, y: i32) -> i32 {
    x + y
}

#[compute_function(name)]
fn no_value(x: i32) -> i32 {
    x
}

fn main() {}
