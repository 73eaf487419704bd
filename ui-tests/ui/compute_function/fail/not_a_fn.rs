use cmod_runtime::compute_function;

#[compute_function]
struct Add {
    x: i32,
}

#[compute_function]
impl Add {}

fn main() {}
