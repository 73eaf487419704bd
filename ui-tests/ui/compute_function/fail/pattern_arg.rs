use cmod_runtime::compute_function;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Point {
    x: f64,
    y: f64,
}

#[compute_function]
fn norm(Point { x, y }: Point) -> f64 {
    (x * x + y * y).sqrt()
}

#[compute_function]
fn ignored(_: i32) -> i32 {
    0
}

fn main() {}
