//! End-to-end tests of functions mode: the `e2e_module` binary (src/bin/e2e_module.rs) runs as a
//! child process against `cmod-local`'s runtime over real TLS, exactly as it would in Foundry.
//! Every wait is bounded.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cmod_local::{JobSpec, LocalRuntime, LocalRuntimeOptions};
use cmod_tests::envelopes::unknown_variant_job;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(30);

struct Module {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Module {
    /// Starts the module with the runtime's environment (plus `extra`), capturing stdout lines.
    fn start(env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Module {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_e2e_module"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .env("CMOD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn e2e_module");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Module { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until a stdout line satisfies `pred`.
    async fn wait_for_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no log line {what}; got:\n{}",
                self.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("child pid");
        let status = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    async fn wait_exit(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("module did not exit")
            .unwrap()
    }
}

async fn runtime(max_concurrent_tasks: usize) -> LocalRuntime {
    LocalRuntime::start(LocalRuntimeOptions {
        max_concurrent_tasks,
        long_poll_timeout: Duration::from_millis(500),
        ..LocalRuntimeOptions::default()
    })
    .await
    .unwrap()
}

fn error_of(v: &Value) -> (&str, &str) {
    let e = &v["error"];
    (
        e["kind"].as_str().unwrap_or_default(),
        e["message"].as_str().unwrap_or_default(),
    )
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_kind_gets_exactly_one_result() {
    let rt = runtime(2).await;
    let _module = Module::start(rt.env(), &[]);
    let schemas = rt.wait_for_schemas(WAIT).await.unwrap();
    assert!(
        schemas
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["functionName"] == "add")
    );

    let r = rt.call("add", json!({"x": 2, "y": 3}), WAIT).await.unwrap();
    assert_eq!(r.json().unwrap(), json!(5));

    let r = rt
        .call(
            "echo",
            json!({"payload": {"text": "t", "numbers": [1, 2], "note": null}}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(
        r.json().unwrap()["payload"],
        Value::Null,
        "echo returns the payload itself, not wrapped"
    );
    assert_eq!(r.json().unwrap()["text"], "t");

    let r = rt
        .call("fail", json!({"reason": "nope"}), WAIT)
        .await
        .unwrap()
        .json()
        .unwrap();
    let (kind, message) = error_of(&r);
    assert_eq!(kind, "FunctionError");
    assert!(message.contains("intentional failure: nope"), "{message}");

    let r = rt
        .call("add", json!({"x": "two", "y": 3}), WAIT)
        .await
        .unwrap()
        .json()
        .unwrap();
    let (kind, message) = error_of(&r);
    assert_eq!(kind, "InvalidInput");
    assert!(
        message.contains('x'),
        "the message names the input: {message}"
    );

    let r = rt
        .call("add", json!({"x": 1}), WAIT)
        .await
        .unwrap()
        .json()
        .unwrap();
    let (kind, message) = error_of(&r);
    assert_eq!(kind, "InvalidInput");
    assert!(
        message.contains('y'),
        "the message names the missing input: {message}"
    );

    let r = rt
        .call("no_such_function", json!({}), WAIT)
        .await
        .unwrap()
        .json()
        .unwrap();
    let (kind, message) = error_of(&r);
    assert_eq!(kind, "UnknownFunction");
    assert!(
        message.contains("no_such_function") && message.contains("add"),
        "{message}"
    );

    let r = rt
        .call("boom", json!({}), WAIT)
        .await
        .unwrap()
        .json()
        .unwrap();
    let (kind, message) = error_of(&r);
    assert_eq!(kind, "Panic");
    assert!(message.contains("kaboom from boom()"), "{message}");

    let r = rt
        .call("unserializable", json!({}), WAIT)
        .await
        .unwrap()
        .json()
        .unwrap();
    let (kind, message) = error_of(&r);
    assert_eq!(kind, "SerializationError");
    assert!(message.contains("refuses to serialize"), "{message}");

    let r = rt.call("count", json!({"n": 5}), WAIT).await.unwrap();
    assert_eq!(r.body, b"01234", "one JSON value per chunk, no separators");
    assert!(r.chunked, "streamed results use chunked transfer encoding");

    // The module is still healthy after all of that.
    let r = rt
        .call("add", json!({"x": 40, "y": 2}), WAIT)
        .await
        .unwrap();
    assert_eq!(r.json().unwrap(), json!(42));

    let stats = rt.stats();
    assert_eq!(stats.duplicate_results, 0);
    assert_eq!(stats.unknown_job_results, 0);
    assert_eq!(stats.results_accepted, 10, "{stats:?}");
    assert!(rt.in_flight().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_concurrent_tasks_jobs_run_at_once() {
    let rt = runtime(4).await;
    let _module = Module::start(rt.env(), &[]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..12 {
        let f = if i % 2 == 0 {
            "sleep_ms"
        } else {
            "sleep_blocking_ms"
        };
        ids.push(rt.enqueue(f, json!({"ms": 300})));
    }
    for id in &ids {
        let r = rt.wait_result(id, WAIT).await.unwrap();
        assert_eq!(r.json().unwrap(), json!(300));
    }
    let stats = rt.stats();
    assert_eq!(stats.max_in_flight, 4, "4 jobs at once, never 5: {stats:?}");
    assert_eq!(stats.results_accepted, 12);
    assert_eq!(stats.duplicate_results, 0);
}

/// The job that takes the last free slot runs on the loop's own task (issue 15); a slot freed
/// by another job must still be polled for at once, while that job goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_freed_while_the_last_slot_s_job_runs_is_used_at_once() {
    let rt = runtime(2).await;
    let _module = Module::start(rt.env(), &[]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    let short = rt.enqueue("sleep_ms", json!({"ms": 200}));
    let long = rt.enqueue("sleep_ms", json!({"ms": 6000}));
    wait_until("both jobs in flight", || rt.in_flight().len() == 2).await;
    // The short job's slot frees after 200 ms; these two then run one after the other in it
    // (each taking the last free slot in turn) while the long job still runs.
    let started = Instant::now();
    let next = [
        rt.enqueue("sleep_ms", json!({"ms": 100})),
        rt.enqueue("sleep_blocking_ms", json!({"ms": 100})),
    ];
    for id in [&short, &next[0], &next[1]] {
        rt.wait_result(id, Duration::from_secs(3)).await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the freed slot waited for the long job"
    );
    assert_eq!(
        rt.in_flight(),
        vec![long.clone()],
        "the long job still runs"
    );
    let r = rt.wait_result(&long, WAIT).await.unwrap();
    assert_eq!(r.json().unwrap(), json!(6000));
    let stats = rt.stats();
    assert_eq!(stats.results_accepted, 4);
    assert_eq!(stats.duplicate_results, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_once_the_runtime_comes_up() {
    let rt = LocalRuntime::start(LocalRuntimeOptions {
        long_poll_timeout: Duration::from_millis(500),
        refuse_connections_for: Some(Duration::from_secs(2)),
        ..LocalRuntimeOptions::default()
    })
    .await
    .unwrap();
    let _module = Module::start(rt.env(), &[]);
    let r = rt.call("add", json!({"x": 1, "y": 1}), WAIT).await.unwrap();
    assert_eq!(r.json().unwrap(), json!(2));
    assert!(
        rt.schemas().is_some(),
        "schemas were posted once the runtime came up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_result_failures_are_retried_and_delivered_exactly_once() {
    let rt = runtime(1).await;
    let _module = Module::start(rt.env(), &[]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    rt.faults().fail_next_results(3, 503);
    let ids: Vec<String> = (0..3)
        .map(|i| rt.enqueue("add", json!({"x": i, "y": 10})))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let r = rt.wait_result(id, WAIT).await.unwrap();
        assert_eq!(r.json().unwrap(), json!(i + 10));
    }
    // A streamed result is replayed too.
    rt.faults().fail_next_results(1, 503);
    let r = rt.call("count", json!({"n": 3}), WAIT).await.unwrap();
    assert_eq!(r.body, b"012");
    let stats = rt.stats();
    assert_eq!(stats.rejected_by_fault, 4);
    assert_eq!(stats.results_accepted, 4);
    assert_eq!(stats.duplicate_results, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backs_off_when_the_runtime_keeps_failing() {
    let rt = runtime(1).await;
    rt.faults().fail_all_polls(Some(503));
    let _module = Module::start(rt.env(), &[]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    let start_polls = rt.stats().polls;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let polls = rt.stats().polls - start_polls;
    // Backoff 100 ms, 200, 400, 800, 1600 …: about 5 polls in 3 s; a busy loop would make
    // thousands.
    assert!((2..=8).contains(&polls), "{polls} polls in 3 s");
    rt.faults().fail_all_polls(None);
    let r = rt.call("add", json!({"x": 1, "y": 2}), WAIT).await.unwrap();
    assert_eq!(
        r.json().unwrap(),
        json!(3),
        "recovers when the runtime does"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_jobs_finish_and_exits_zero() {
    let rt = runtime(3).await;
    let mut module = Module::start(rt.env(), &[]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    let ids: Vec<String> = (0..3)
        .map(|_| rt.enqueue("sleep_ms", json!({"ms": 1500})))
        .collect();
    wait_until("3 jobs in flight", || rt.in_flight().len() == 3).await;
    module.signal("-TERM");
    let status = module.wait_exit().await;
    assert!(status.success(), "exit status {status:?}");
    for id in &ids {
        let r = rt.wait_result(id, Duration::from_secs(1)).await.unwrap();
        assert_eq!(r.json().unwrap(), json!(1500));
    }
    assert_eq!(rt.stats().duplicate_results, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_exceeding_the_grace_period_get_a_shutdown_error() {
    let rt = runtime(1).await;
    let mut module = Module::start(rt.env(), &[("CMOD_SHUTDOWN_GRACE_SECS", "0.5")]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    let id = rt.enqueue("sleep_ms", json!({"ms": 20000}));
    wait_until("the job in flight", || rt.in_flight().len() == 1).await;
    module.signal("-TERM");
    assert!(module.wait_exit().await.success());
    let r = rt
        .wait_result(&id, Duration::from_secs(1))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(error_of(&r).0, "Shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_runtime_not_signed_by_the_configured_ca() {
    let rt = runtime(1).await;
    let other = runtime(1).await;
    let env: Vec<(String, String)> = rt
        .env()
        .into_iter()
        .map(|(k, v)| {
            if k.ends_with("CA_PATH") {
                (k, other.ca_path().display().to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    let _module = Module::start(env, &[]);
    let line = _module
        .wait_for_line("about the certificate", |l| l.contains("certificate"))
        .await;
    let record: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["level"], "ERROR", "{line}");
    assert!(
        line.contains("DEFAULT_CA_PATH"),
        "says what to check: {line}"
    );
    assert_eq!(
        rt.stats().requests_total,
        0,
        "no HTTP request reached the untrusted runtime"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_are_sls_json_with_the_job_id() {
    let rt = runtime(1).await;
    let module = Module::start(rt.env(), &[("COMPUTE_SESSION_ID", "ses-test")]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    let r = rt
        .call("log_line", json!({"text": "hi"}), WAIT)
        .await
        .unwrap();
    let job_id = r.json().unwrap().as_str().unwrap().to_owned();
    assert_eq!(job_id, r.job_id);
    let line = module
        .wait_for_line("from user code", |l| l.contains("user says hi"))
        .await;
    let record: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["type"], "service.1");
    assert_eq!(record["level"], "INFO");
    assert_eq!(record["message"], "user says hi");
    assert_eq!(record["safe"], true);
    assert!(
        record["time"].is_string() && record["origin"].is_string() && record["thread"].is_string()
    );
    assert_eq!(record["params"]["job_id"], job_id.as_str());
    assert_eq!(record["params"]["session_id"], "ses-test");
    // User fields are not known to be safe: `unsafeParams`; `origin` is the logger.
    assert_eq!(record["unsafeParams"]["note"], "from user code");
    assert!(record["params"].get("note").is_none());
    assert_eq!(record["origin"], "e2e_module");
    assert!(record["params"]["process_id"].is_string());
    // Every stdout line is SLS JSON, and none carries the module auth token.
    for l in module.lines() {
        let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert_eq!(v["type"], "service.1");
        assert!(!l.contains(&rt.token()), "token leaked: {l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_notification_clears_jobs_of_a_crashed_container() {
    let rt = runtime(1).await;
    let mut first = Module::start(rt.env(), &[]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    let stale = rt.enqueue("sleep_ms", json!({"ms": 60000}));
    wait_until("the job in flight", || {
        rt.in_flight() == vec![stale.clone()]
    })
    .await;
    first.signal("-KILL");
    first.wait_exit().await;
    let second = Module::start(rt.env(), &[]);
    second
        .wait_for_line("listing the dropped job", |l| l.contains(&stale))
        .await;
    assert_eq!(rt.stats().restart_notifications, 2, "each start sends one");
    assert!(rt.in_flight().is_empty());
    let r = rt.call("add", json!({"x": 1, "y": 1}), WAIT).await.unwrap();
    assert_eq!(r.json().unwrap(), json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeliverable_result_is_replaced_by_a_small_error_result() {
    let rt = runtime(1).await;
    let _module = Module::start(rt.env(), &[]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    // Every attempt at the real result fails (5 attempts); the fallback then gets through.
    rt.faults().fail_next_results(5, 503);
    let r = rt
        .call("add", json!({"x": 1, "y": 2}), WAIT)
        .await
        .unwrap()
        .json()
        .unwrap();
    let (kind, message) = error_of(&r);
    assert_eq!(kind, "ResultDeliveryFailed");
    assert!(message.contains("503"), "says why: {message}");
    let stats = rt.stats();
    assert_eq!(stats.rejected_by_fault, 5);
    assert_eq!(stats.results_accepted, 1, "exactly one result for the job");
    assert_eq!(stats.duplicate_results, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_see_the_shutdown_through_their_context() {
    let rt = runtime(1).await;
    let mut module = Module::start(rt.env(), &[]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    let id = rt.enqueue("wait_for_cancel", json!({"ms": 60000}));
    wait_until("the job in flight", || rt.in_flight().len() == 1).await;
    module.signal("-TERM");
    assert!(module.wait_exit().await.success());
    let r = rt.wait_result(&id, Duration::from_secs(1)).await.unwrap();
    assert_eq!(r.json().unwrap(), json!("cancelled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_tokens_reach_the_context_but_never_the_logs() {
    let rt = runtime(1).await;
    let module = Module::start(rt.env(), &[]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    let id = rt.enqueue_job(JobSpec {
        function: "whoami".into(),
        query: json!({}),
        auth_header: Some("Bearer user-secret-123".into()),
        user_id: Some("u-1".into()),
        temporary_credentials_token: Some("tmp-secret-456".into()),
        ..JobSpec::default()
    });
    let r = rt.wait_result(&id, WAIT).await.unwrap();
    assert_eq!(r.json().unwrap(), json!("u-1"));
    let line = module
        .wait_for_line("with the context", |l| l.contains("context of this job"))
        .await;
    assert!(
        line.contains("redacted"),
        "tokens are shown redacted: {line}"
    );
    for l in module.lines() {
        assert!(
            !l.contains("user-secret-123") && !l.contains("tmp-secret-456"),
            "token leaked: {l}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Long lifetimes (issue 11): results never cut short, no total-time caps, no redirects followed,
// shutdown never drops a streaming job, job ids encoded.
// ---------------------------------------------------------------------------------------------

/// The body a streamed `slow_count`/`count` of `n` produces: one JSON value per chunk.
fn counted(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| i.to_string())
        .collect::<String>()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_result_answered_early_is_replayed_whole_never_as_a_prefix() {
    let rt = runtime(1).await;
    let _module = Module::start(rt.env(), &[]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    // 503 before the body is read; then a 2xx before the body is read (the runtime never saw
    // the body, so the job is still in flight): both must end with the whole stream delivered.
    for status in [503, 204] {
        rt.faults().answer_results_early(1, status);
        let r = rt
            .call("slow_count", json!({"n": 12, "ms": 40}), WAIT)
            .await
            .unwrap();
        assert_eq!(
            r.text().unwrap(),
            std::str::from_utf8(&counted(12)).unwrap(),
            "after an early {status}"
        );
    }
    let stats = rt.stats();
    assert_eq!(stats.rejected_by_fault, 2);
    assert_eq!(stats.results_accepted, 2);
    assert_eq!(stats.duplicate_results, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_result_cut_mid_body_is_replayed_whole() {
    let rt = runtime(1).await;
    let _module = Module::start(rt.env(), &[]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    rt.faults().cut_results_mid_body(1, 3);
    let r = rt
        .call("slow_count", json!({"n": 12, "ms": 40}), WAIT)
        .await
        .unwrap();
    assert_eq!(r.body, counted(12));
    let stats = rt.stats();
    assert_eq!(stats.results_accepted, 1);
    assert_eq!(stats.duplicate_results, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_result_too_large_to_replay_becomes_an_error_never_a_prefix() {
    let rt = runtime(1).await;
    let _module = Module::start(rt.env(), &[]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    // 20 MiB: more than the 16 MiB kept for a replay.
    rt.faults().answer_results_early(1, 503);
    let r = rt
        .call("big_stream", json!({"items": 20, "len": 1 << 20}), WAIT)
        .await
        .unwrap();
    assert!(
        r.body.len() < 4096,
        "an error, not a prefix: {} bytes",
        r.body.len()
    );
    let v = r.json().unwrap();
    let (kind, message) = error_of(&v);
    assert_eq!(kind, "ResultDeliveryFailed", "{v}");
    assert!(message.contains("503"), "says why: {message}");
    assert_eq!(rt.stats().duplicate_results, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_producing_longer_than_every_timeout_is_delivered() {
    let rt = runtime(1).await;
    let _module = Module::start(
        rt.env(),
        &[
            ("CMOD_RUNTIME_IDLE_TIMEOUT_SECS", "1"),
            ("CMOD_RUNTIME_RESPONSE_TIMEOUT_SECS", "1"),
        ],
    );
    rt.wait_for_schemas(WAIT).await.unwrap();
    // About 3.2 s of producing, three times both timeouts: a healthy transfer is never capped.
    let r = rt
        .call("slow_count", json!({"n": 8, "ms": 400}), WAIT)
        .await
        .unwrap();
    assert_eq!(r.body, counted(8));
    let stats = rt.stats();
    assert_eq!(stats.results_accepted, 1);
    assert_eq!(stats.rejected_by_fault, 0);
    assert_eq!(stats.duplicate_results, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_that_never_answers_after_the_body_is_given_up_on_and_retried() {
    let rt = runtime(1).await;
    let _module = Module::start(
        rt.env(),
        &[
            ("CMOD_RUNTIME_IDLE_TIMEOUT_SECS", "1"),
            ("CMOD_RUNTIME_RESPONSE_TIMEOUT_SECS", "1"),
        ],
    );
    rt.wait_for_schemas(WAIT).await.unwrap();
    rt.faults().hold_results(2, Duration::from_secs(120));
    let r = rt.call("add", json!({"x": 2, "y": 3}), WAIT).await.unwrap();
    assert_eq!(r.json().unwrap(), json!(5));
    let r = rt.call("count", json!({"n": 4}), WAIT).await.unwrap();
    assert_eq!(r.body, counted(4));
    assert_eq!(rt.stats().duplicate_results, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_that_stops_reading_a_streamed_body_is_given_up_on_and_retried() {
    let rt = runtime(1).await;
    let _module = Module::start(
        rt.env(),
        &[
            ("CMOD_RUNTIME_IDLE_TIMEOUT_SECS", "1"),
            ("CMOD_RUNTIME_RESPONSE_TIMEOUT_SECS", "1"),
        ],
    );
    rt.wait_for_schemas(WAIT).await.unwrap();
    // 14 MiB: more than loopback socket buffers hold (so the upload really stalls), less than
    // the replay limit (so the retry sends it whole).
    rt.faults().stall_results(1, Duration::from_secs(120));
    let r = rt
        .call("big_stream", json!({"items": 14, "len": 1 << 20}), WAIT)
        .await
        .unwrap();
    assert_eq!(
        r.body.len(),
        14 * ((1 << 20) + 2),
        "{}",
        String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
    );
    assert!(r.body.starts_with(b"\"xxx") && r.body.ends_with(b"xx\""));
    assert_eq!(rt.stats().duplicate_results, 0);
}

/// A plain TCP listener that counts the connections it gets (and closes them).
async fn connection_counter() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    (
        format!("https://localhost:{}/elsewhere", addr.port()),
        count,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_from_the_runtime_are_never_followed() {
    let rt = runtime(1).await;
    let (elsewhere, connections) = connection_counter().await;
    let _module = Module::start(rt.env(), &[]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    // A poll and a result post answered with 307 to another server.
    rt.faults().redirect_to(&elsewhere, 1, 1);
    let v = rt
        .call("add", json!({"x": 1, "y": 2}), WAIT)
        .await
        .unwrap()
        .json()
        .unwrap();
    let (kind, message) = error_of(&v);
    assert_eq!(kind, "ResultDeliveryFailed", "{v}");
    assert!(message.contains("307"), "says why: {message}");
    // Streamed results too.
    rt.faults().redirect_to(&elsewhere, 1, 0);
    let v = rt
        .call("count", json!({"n": 3}), WAIT)
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(error_of(&v).0, "ResultDeliveryFailed", "{v}");
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing, least of all the module auth token, went to the other server"
    );
    assert_eq!(rt.stats().duplicate_results, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_streamed_result_posts_exactly_one_shutdown_error() {
    let rt = runtime(1).await;
    let mut module = Module::start(rt.env(), &[("CMOD_SHUTDOWN_GRACE_SECS", "1")]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    // 30 s of streaming: far longer than the grace period plus the error-post drain.
    let id = rt.enqueue("slow_count", json!({"n": 300, "ms": 100}));
    wait_until("the job in flight", || !rt.in_flight().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    module.signal("-TERM");
    let r = rt.wait_result(&id, Duration::from_secs(15)).await.unwrap();
    let v = r.json().unwrap();
    assert_eq!(error_of(&v).0, "Shutdown", "{v}");
    let status = module.wait_exit().await;
    assert!(status.success(), "{status:?}");
    let stats = rt.stats();
    assert_eq!(stats.results_accepted, 1);
    assert_eq!(stats.duplicate_results, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_ids_are_encoded_in_result_urls_and_odd_envelopes_still_get_one_result() {
    let rt = runtime(1).await;
    let module = Module::start(rt.env(), &[]);
    rt.wait_for_schemas(WAIT).await.unwrap();

    // Characters that mean something in a URL path or query.
    for odd in ["a/b", "../schemas", "x?y=1#z", "50%2F50", "sp ace", "ünï"] {
        let id = rt.enqueue_job(JobSpec {
            job_id: Some(odd.to_owned()),
            ..JobSpec::new("add", json!({"x": 1, "y": 1}))
        });
        assert_eq!(id, odd);
        let r = rt.wait_result(&id, WAIT).await.unwrap();
        assert_eq!(r.json().unwrap(), json!(2), "job id {odd:?}");
    }

    // A numeric job id is its string form.
    let id = rt.enqueue_job(JobSpec {
        job_id: Some("12345".to_owned()),
        raw_envelope: Some(json!({
            "type": "computeModuleJobV1",
            "computeModuleJobV1": {"jobId": 12345, "queryType": "add", "query": {"x": 2, "y": 2}}
        })),
        ..JobSpec::new("add", json!({}))
    });
    let r = rt.wait_result(&id, WAIT).await.unwrap();
    assert_eq!(r.json().unwrap(), json!(4));

    // Another envelope variant: one error result, naming the variant.
    let id = rt.enqueue_job(unknown_variant_job());
    let v = rt.wait_result(&id, WAIT).await.unwrap().json().unwrap();
    let (kind, message) = error_of(&v);
    assert_eq!(kind, "InvalidInput", "{v}");
    assert!(message.contains("computeModuleJobV9"), "{message}");

    // `.` and `..` cannot be a URL path segment at all: nothing is posted anywhere else.
    let id = rt.enqueue_job(JobSpec {
        job_id: Some("..".to_owned()),
        ..JobSpec::new("add", json!({"x": 1, "y": 1}))
    });
    module
        .wait_for_line("naming the unanswerable job", |l| {
            l.contains("cannot be answered") && l.contains("..")
        })
        .await;
    assert!(rt.in_flight().iter().any(|j| j == &id));
    let stats = rt.stats();
    assert_eq!(
        stats.unknown_job_results, 0,
        "no post reached another endpoint"
    );
    assert_eq!(stats.schema_posts, 1, "no post reached the schema endpoint");
    assert_eq!(stats.duplicate_results, 0);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_utf8_argument_is_a_clear_error_not_a_panic() {
    use std::os::unix::ffi::OsStrExt as _;
    let out = Command::new(env!("CARGO_BIN_EXE_e2e_module"))
        .env_clear()
        .arg(std::ffi::OsStr::from_bytes(b"--x\xff"))
        .output();
    let out = tokio::time::timeout(WAIT, out).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not valid UTF-8"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
