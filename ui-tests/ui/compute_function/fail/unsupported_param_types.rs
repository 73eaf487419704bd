use cmod_runtime::compute_function;

#[compute_function]
fn params(
    pair: (i32, String),
    big: u64,
    sizes: Vec<usize>,
    maybe: Option<&str>,
    out: &mut String,
    forever: &'static str,
    nothing: (),
    callback: fn(i32) -> i32,
) -> i32 {
    let _ = (pair, big, sizes, maybe, out, forever, nothing, callback);
    0
}

#[compute_function]
fn dynamic(values: Box<dyn std::any::Any>) -> i32 {
    let _ = values;
    0
}

fn main() {}
