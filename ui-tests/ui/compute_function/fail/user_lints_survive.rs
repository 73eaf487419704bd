//! The macro re-emits the function unchanged: the user's own lints still fire on it.
#![deny(unused_variables, dead_code)]

use cmod_runtime::compute_function;

#[compute_function]
fn add(x: i32, y: i32) -> i32 {
    let unused = 1;
    x + y
}

fn helper_nobody_calls() {}

fn main() {}
