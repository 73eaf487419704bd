use cmod_runtime::compute_function;

#[compute_function(name = "my function")]
fn spaced(x: i32) -> i32 {
    x
}

#[compute_function(name = "")]
fn empty(x: i32) -> i32 {
    x
}

#[compute_function(name = "1st")]
fn digit_first(x: i32) -> i32 {
    x
}

fn main() {}
