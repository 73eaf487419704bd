use cmod_runtime::compute_function;

#[derive(Debug)]
struct Opaque;

#[compute_function]
fn fails() -> Result<i32, Opaque> {
    Err(Opaque)
}

fn main() {}
