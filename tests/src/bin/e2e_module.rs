//! A compute module used by the end-to-end tests: one function per job outcome the runtime must
//! handle. Run as a child process by `tests/functions_e2e.rs` with the local runtime's env.

use std::time::Duration;

use cmod_runtime::{Context, compute_function};
use serde::{Deserialize, Serialize};

/// Adds two integers.
#[compute_function]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Sleeps asynchronously, then returns the duration.
#[compute_function]
async fn sleep_ms(ms: i64) -> i64 {
    tokio::time::sleep(Duration::from_millis(ms.max(0).unsigned_abs())).await;
    ms
}

/// Sleeps on a blocking thread, then returns the duration.
#[compute_function]
fn sleep_blocking_ms(ms: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(ms.max(0).unsigned_abs()));
    ms
}

/// A user error.
#[derive(Debug, thiserror::Error)]
#[error("intentional failure: {0}")]
struct Intentional(String);

/// Always fails.
#[compute_function]
fn fail(reason: String) -> Result<String, Intentional> {
    Err(Intentional(reason))
}

/// Always panics.
#[compute_function]
fn boom() -> String {
    panic!("kaboom from boom()")
}

/// Logs a line with the job's context.
#[compute_function]
async fn log_line(ctx: Context, text: String) -> String {
    tracing::info!(note = "from user code", "user says {text}");
    ctx.job_id().to_owned()
}

/// Waits for `ms`, or until the module shuts down; says which came first.
#[compute_function]
async fn wait_for_cancel(ctx: Context, ms: i64) -> String {
    tokio::select! {
        _ = ctx.cancelled() => "cancelled".to_owned(),
        _ = tokio::time::sleep(Duration::from_millis(ms.max(0).unsigned_abs())) => "finished".to_owned(),
    }
}

/// Logs the whole context (tokens must come out redacted) and returns the user id.
#[compute_function]
fn whoami(ctx: Context) -> Option<String> {
    tracing::info!(context = ?ctx, auth = ?ctx.auth_header(), "context of this job");
    ctx.user_id().map(str::to_owned)
}

/// A struct input and output.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Payload {
    text: String,
    numbers: Vec<i32>,
    note: Option<String>,
}

/// Echoes its payload.
#[compute_function]
fn echo(payload: Payload) -> Payload {
    payload
}

/// Streams `n` integers.
#[compute_function]
fn count(n: i64) -> impl Iterator<Item = i64> {
    0..n
}

/// A value whose `Serialize` impl always fails.
#[derive(schemars::JsonSchema)]
struct Unserializable {
    #[allow(dead_code)]
    value: i32,
}

impl Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value refuses to serialize"))
    }
}

/// Returns a value that cannot be serialized.
#[compute_function]
fn unserializable() -> Unserializable {
    Unserializable { value: 1 }
}

/// Streams `n` integers, sleeping `ms` before each (a result that takes long to produce).
#[compute_function]
fn slow_count(n: i64, ms: i64) -> impl Iterator<Item = i64> {
    let pause = Duration::from_millis(ms.max(0).unsigned_abs());
    (0..n).inspect(move |_| std::thread::sleep(pause))
}

/// Streams `items` strings of `len` bytes each (a result larger than any replay buffer).
#[compute_function]
fn big_stream(items: i64, len: i64) -> impl Iterator<Item = String> {
    let item = "x".repeat(usize::try_from(len).unwrap_or(0));
    (0..items).map(move |_| item.clone())
}

/// Waits `ms` (on its blocking thread), then streams like `big_stream`: the result post starts
/// only once it returns.
#[compute_function]
fn big_stream_after(ms: i64, items: i64, len: i64) -> impl Iterator<Item = String> {
    std::thread::sleep(Duration::from_millis(ms.max(0).unsigned_abs()));
    big_stream(items, len)
}

#[tokio::main]
async fn main() -> Result<(), cmod_runtime::Error> {
    cmod_runtime::run().await
}
