//! The cmod compute module the benchmark measures, written exactly as a user would write one.
//!
//! Its functions match `src/bin/baseline.rs` and `python/bench_module.py` (the same names,
//! inputs and outputs), so all three serve the very same jobs:
//!
//! * `add(x, y)` and `add_async(x, y)`: the trivial function, as a plain `fn` (which cmod runs on
//!   Tokio's blocking pool) and as an `async fn` (run on the job's task);
//! * `echo(payload)`: payload-heavy, about 1 MB of JSON in and the same out;
//! * `count(n)` and `count_stream(n)`: stream `n` small items (the integers `0..n`), one JSON
//!   value per chunk, from an `Iterator` (which cmod drives on the blocking pool) and from a
//!   `Stream` (polled on the job's task);
//! * `sleep_ms(ms)`: an async sleep that holds a slot without using the CPU (slot utilization).

use std::time::Duration;

use cmod_runtime::compute_function;
use serde::{Deserialize, Serialize};

/// Adds two integers.
#[compute_function]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Adds two integers, as an `async fn`.
#[compute_function]
async fn add_async(x: i64, y: i64) -> i64 {
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

/// Streams the integers `0..n` from an async `Stream`.
#[compute_function]
fn count_stream(n: i64) -> impl futures_util::Stream<Item = i64> {
    futures_util::stream::iter(0..n)
}

/// Sleeps `ms` milliseconds, then returns `ms`.
#[compute_function]
async fn sleep_ms(ms: i64) -> i64 {
    tokio::time::sleep(Duration::from_millis(ms.max(0).unsigned_abs())).await;
    ms
}

#[tokio::main]
async fn main() -> Result<(), cmod_runtime::Error> {
    cmod_runtime::run().await
}
