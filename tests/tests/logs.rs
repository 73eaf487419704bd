//! SLS log lines of a real module process: a panic in a function is an ERROR line carrying the
//! job id, the panic location and a `stacktrace`; `origin` is the logger, never a source path
//! of the build machine.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cmod_local::{LocalRuntime, LocalRuntimeOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_an_error_line_with_a_stacktrace_and_the_job_id() {
    let rt = LocalRuntime::start(LocalRuntimeOptions {
        long_poll_timeout: Duration::from_millis(500),
        ..LocalRuntimeOptions::default()
    })
    .await
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_e2e_module"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(rt.env())
        .env("CMOD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    let stdout = child.stdout.take().unwrap();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    rt.wait_for_schemas(WAIT).await.unwrap();
    let r = rt.call("boom", json!({}), WAIT).await.unwrap();
    let job_id = r.job_id.clone();

    let deadline = Instant::now() + WAIT;
    let line = loop {
        let found = lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("kaboom from boom()") && l.contains("\"ERROR\""))
            .cloned();
        if let Some(l) = found {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "no panic line; got:\n{}",
            lines.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let record: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["params"]["job_id"], job_id.as_str(), "{line}");
    let stacktrace = record["stacktrace"].as_str().unwrap_or_default();
    assert!(!stacktrace.is_empty(), "{line}");
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .contains("e2e_module.rs"),
        "{line}"
    );
    for l in lines.lock().unwrap().iter() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        let origin = v["origin"].as_str().unwrap_or_default();
        assert!(!origin.contains('/') && !origin.contains(".rs"), "{l}");
    }
    child.kill().await.unwrap();
}
