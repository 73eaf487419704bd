use cmod_runtime::compute_function;

#[compute_function(name = "a", streaming, name = "b", streaming)]
fn add(x: i32, y: i32) -> Vec<i32> {
    vec![x, y]
}

fn main() {}
