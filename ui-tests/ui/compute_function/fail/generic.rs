use cmod_runtime::compute_function;

#[compute_function]
fn echo<T: serde::Serialize>(value: T) -> T {
    value
}

#[compute_function]
fn bounded(value: i32) -> i32
where
    i32: Copy,
{
    value
}

fn main() {}
