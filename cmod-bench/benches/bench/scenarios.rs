//! The measured workloads, driven through the local runtime's library API. Every result is
//! checked after the clock stops, so a module answering with errors cannot look fast.

use std::time::{Duration, Instant};

use cmod_local::LocalRuntime;
use serde_json::{Value, json};

use crate::BenchError;

/// Upper bound on any single wait for a result.
const RESULT_TIMEOUT: Duration = Duration::from_secs(120);

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), BenchError> {
    if ok {
        Ok(())
    } else {
        Err(BenchError::Check(what()))
    }
}

/// Enqueues `n` jobs of `function` (an `add`) at once and waits for all results; returns jobs
/// per second.
pub(crate) async fn throughput(
    rt: &LocalRuntime,
    function: &str,
    n: usize,
) -> Result<f64, BenchError> {
    let queries: Vec<Value> = (0..n).map(|i| json!({"x": i, "y": 1})).collect();
    let start = Instant::now();
    let ids: Vec<String> = queries
        .into_iter()
        .map(|q| rt.enqueue(function, q))
        .collect();
    let mut bodies = Vec::with_capacity(n);
    for id in &ids {
        bodies.push(rt.wait_result(id, RESULT_TIMEOUT).await?.body);
    }
    let elapsed = start.elapsed();
    for (i, body) in bodies.iter().enumerate() {
        let expected = (i + 1).to_string();
        check(body == expected.as_bytes(), || {
            format!(
                "add job {i}: expected {expected}, got {}",
                String::from_utf8_lossy(body)
            )
        })?;
    }
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// Runs `n` jobs of `function` (an `add`) one after the other, each enqueued once the previous
/// result is in; returns each job's time from enqueue to result taken.
pub(crate) async fn latency(
    rt: &LocalRuntime,
    function: &str,
    n: usize,
) -> Result<Vec<Duration>, BenchError> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let result = rt
            .call(function, json!({"x": i, "y": 2}), RESULT_TIMEOUT)
            .await?;
        samples.push(start.elapsed());
        let expected = (i + 2).to_string();
        check(result.body == expected.as_bytes(), || {
            format!("add job {i}: expected {expected}, got {result:?}")
        })?;
    }
    Ok(samples)
}

/// The `p` quantile (0..=1) of sorted samples, nearest rank.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The `echo` input: about `size` bytes of JSON (a long string and many integers).
pub(crate) fn payload_query(size: usize) -> Value {
    let text_len = size / 4;
    let text: String = (0..text_len)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    // Integers of 6 digits plus a comma: 7 bytes each.
    let numbers: Vec<i64> = (0..(size - text_len) / 7)
        .map(|i| 100_000 + i as i64)
        .collect();
    json!({"payload": {"text": text, "numbers": numbers, "note": null}})
}

/// Enqueues `n` `echo` jobs of `query` at once; returns MB (10^6 bytes) of payload echoed per
/// second (each job carries the payload in and out).
pub(crate) async fn payload(rt: &LocalRuntime, query: &Value, n: usize) -> Result<f64, BenchError> {
    let payload_bytes = serde_json::to_vec(&query["payload"])
        .map_err(|e| BenchError::Check(format!("payload: {e}")))?
        .len();
    let queries: Vec<Value> = (0..n).map(|_| query.clone()).collect();
    let start = Instant::now();
    let ids: Vec<String> = queries.into_iter().map(|q| rt.enqueue("echo", q)).collect();
    let mut bodies = Vec::with_capacity(n);
    for id in &ids {
        bodies.push(rt.wait_result(id, RESULT_TIMEOUT).await?.body);
    }
    let elapsed = start.elapsed();
    for (i, body) in bodies.iter().enumerate() {
        let echoed: Value = serde_json::from_slice(body)
            .map_err(|e| BenchError::Check(format!("echo job {i}: result is not JSON: {e}")))?;
        // The Python SDK leaves out `None` fields: an absent `note` is its `null`.
        let same = echoed["text"] == query["payload"]["text"]
            && echoed["numbers"] == query["payload"]["numbers"]
            && echoed["note"].is_null();
        check(same, || {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            format!("echo job {i}: the result differs from the payload; it starts with {text}")
        })?;
    }
    Ok((n * payload_bytes) as f64 / 1e6 / elapsed.as_secs_f64())
}

/// Calls `function(n)` (a `count`) once; returns the time from enqueue to the complete result.
pub(crate) async fn streaming(
    rt: &LocalRuntime,
    function: &str,
    n: u64,
) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let result = rt.call(function, json!({ "n": n }), RESULT_TIMEOUT).await?;
    let elapsed = start.elapsed();
    // The items are 0..n, one JSON value per chunk, with no separators.
    let expected: usize = (0..n).map(|i| i.to_string().len()).sum();
    check(result.chunked, || {
        "count: the result was not streamed (chunked)".into()
    })?;
    check(result.body.len() == expected, || {
        format!(
            "count: expected {expected} bytes of concatenated items, got {}",
            result.body.len()
        )
    })?;
    check(result.body.starts_with(b"012345678910"), || {
        format!("count: unexpected body {result:?}")
    })?;
    Ok(elapsed)
}

/// Slot utilization: enqueues `n` `sleep_ms` jobs of `ms` at once and waits for all results;
/// returns jobs per second (at best `MAX_CONCURRENT_TASKS × 1000 / ms`).
pub(crate) async fn utilization(rt: &LocalRuntime, ms: u64, n: usize) -> Result<f64, BenchError> {
    let start = Instant::now();
    let ids: Vec<String> = (0..n)
        .map(|_| rt.enqueue(crate::SLEEP_MS, json!({ "ms": ms })))
        .collect();
    let mut bodies = Vec::with_capacity(n);
    for id in &ids {
        bodies.push(rt.wait_result(id, RESULT_TIMEOUT).await?.body);
    }
    let elapsed = start.elapsed();
    let expected = ms.to_string();
    for (i, body) in bodies.iter().enumerate() {
        check(body == expected.as_bytes(), || {
            format!(
                "sleep_ms job {i}: expected {expected}, got {}",
                String::from_utf8_lossy(body)
            )
        })?;
    }
    Ok(n as f64 / elapsed.as_secs_f64())
}
