use cmod_runtime::compute_function;

#[compute_function(nmae = "add")]
fn add(x: i32, y: i32) -> i32 {
    x + y
}

#[compute_function("add")]
fn positional(x: i32) -> i32 {
    x
}

fn main() {}
