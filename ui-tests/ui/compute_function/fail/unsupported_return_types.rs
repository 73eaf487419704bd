use cmod_runtime::compute_function;

#[compute_function]
fn tuple() -> (i32, i32) {
    (1, 2)
}

#[compute_function]
fn huge() -> Result<Vec<u128>, String> {
    Ok(vec![])
}

#[compute_function]
fn displayed() -> impl std::fmt::Display {
    1
}

#[compute_function]
fn no_item() -> impl Iterator {
    0..3
}

#[compute_function]
fn never() -> ! {
    loop {}
}

fn main() {}
