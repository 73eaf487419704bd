use cmod_runtime::compute_function;

#[compute_function]
unsafe fn risky(x: i32) -> i32 {
    x
}

fn main() {}
