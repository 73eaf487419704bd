//! The cmod compute module the benchmark measures, written exactly as a user would write one.
//!
//! Its functions match `src/bin/baseline.rs` and `python/bench_module.py` (the same names,
//! inputs and outputs), so all three serve the very same jobs:
//!
//! * `add(x, y)`: the trivial function (throughput, latency, startup);
//! * `echo(payload)`: payload-heavy, about 1 MB of JSON in and the same out;
//! * `count(n)`: streams `n` small items (the integers `0..n`), one JSON value per chunk.

use cmod_runtime::compute_function;
use serde::{Deserialize, Serialize};

/// Adds two integers.
#[compute_function]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// A large JSON document: a long string and many numbers.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Payload {
    text: String,
    numbers: Vec<i64>,
    note: Option<String>,
}

/// Returns its payload unchanged.
#[compute_function]
fn echo(payload: Payload) -> Payload {
    payload
}

/// Streams the integers `0..n`.
#[compute_function]
fn count(n: i64) -> impl Iterator<Item = i64> {
    0..n
}

/// Adds two integers (async).
#[compute_function]
async fn add_async(x: i64, y: i64) -> i64 {
    x + y
}

#[allow(clippy::unwrap_used)]
fn main() -> Result<(), cmod_runtime::Error> {
    let mut b = if std::env::var("XB_FLAVOR").as_deref() == Ok("ct") {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if let Ok(n) = std::env::var("XB_WORKERS") { b.worker_threads(n.parse().unwrap()); }
        b
    };
    b.enable_all().build().unwrap().block_on(cmod_runtime::run())
}
