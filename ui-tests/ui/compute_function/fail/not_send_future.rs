use std::rc::Rc;

use cmod_runtime::compute_function;

async fn pause() {}

#[compute_function]
async fn count(n: i64) -> i64 {
    let shared = Rc::new(n);
    pause().await;
    *shared
}

fn main() {}
