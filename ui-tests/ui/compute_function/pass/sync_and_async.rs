//! Plain and async functions, with and without inputs and outputs.

use cmod_runtime::{Registry, compute_function, function};

#[compute_function]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[compute_function]
async fn add_later(x: i64, y: i64) -> i64 {
    x + y
}

#[compute_function]
fn constant() -> String {
    "c".to_owned()
}

#[compute_function]
async fn fire_and_forget(note: String) {
    let _ = note;
}

#[compute_function]
const fn also_const(x: i32) -> i32 {
    x
}

fn main() {
    // The functions stay callable as written.
    assert_eq!(add(1, 2), 3);
    let _ = add_later(1, 2);
    let _ = (constant(), fire_and_forget("n".into()), also_const(1));
    let _ = Registry::builder()
        .function(function!(add))
        .function(function!(add_later))
        .function(function!(constant))
        .function(function!(fire_and_forget))
        .function(function!(also_const))
        .build();
}
