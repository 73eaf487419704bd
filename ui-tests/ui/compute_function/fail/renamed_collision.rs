use cmod_runtime::compute_function;

#[compute_function(rename_all = "PascalCase")]
fn collide(a_b: i32, _a_b: i32) -> i32 {
    a_b + _a_b
}

fn main() {}
