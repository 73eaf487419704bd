//! Opt-in concurrent polling (`CMOD_CONCURRENT_POLLS=1`): up to one outstanding long-poll per
//! free slot, never more jobs held than slots; the default stays one poll at a time. The
//! `e2e_module` binary runs as a child process against `cmod-local`'s runtime over real TLS.
//! Every wait is bounded.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use cmod_local::{JobSpec, LocalRuntime, LocalRuntimeOptions};
use cmod_tests::child::LoggedChild;
use cmod_tests::envelopes::unknown_variant_job;
use serde_json::json;
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(30);

/// Starts `e2e_module` with the runtime's environment plus `extra` (output collected, waits
/// bounded: `cmod_tests::child`).
fn start_module(rt: &LocalRuntime, extra: &[(&str, &str)]) -> LoggedChild {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_e2e_module"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(rt.env())
        .env("CMOD_LOG", "warn")
        .envs(extra.iter().copied());
    LoggedChild::spawn(&mut cmd)
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

async fn wait_until(what: &str, bound: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs 12 jobs of 300 ms (async and blocking) and checks each result.
async fn run_twelve_jobs(rt: &LocalRuntime) {
    let ids: Vec<String> = (0..12)
        .map(|i| {
            let f = if i % 2 == 0 {
                "sleep_ms"
            } else {
                "sleep_blocking_ms"
            };
            rt.enqueue(f, json!({"ms": 300}))
        })
        .collect();
    for id in &ids {
        let r = rt.wait_result(id, WAIT).await.unwrap();
        assert_eq!(r.json().unwrap(), json!(300));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_option_an_idle_module_keeps_one_poll_per_slot_and_never_holds_more_jobs() {
    let rt = runtime(4).await;
    let mut module = start_module(&rt, &[("CMOD_CONCURRENT_POLLS", "1")]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    // Idle with 4 free slots: 4 long-polls open at once.
    wait_until("4 concurrent polls", Duration::from_secs(10), || {
        rt.stats().max_concurrent_polls == 4
    })
    .await;
    run_twelve_jobs(&rt).await;
    let stats = rt.stats();
    assert_eq!(stats.max_concurrent_polls, 4, "never 5 polls: {stats:?}");
    assert_eq!(stats.max_in_flight, 4, "4 jobs at once, never 5: {stats:?}");
    assert_eq!(stats.results_accepted, 12);
    assert_eq!(stats.duplicate_results, 0);
    module.signal("TERM");
    let status = module.wait().await;
    assert!(
        status.success(),
        "exit status {status:?}:\n{}",
        module.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_at_most_one_poll_is_outstanding() {
    let rt = runtime(4).await;
    let mut module = start_module(&rt, &[]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    wait_until("a poll", WAIT, || rt.stats().polls > 0).await;
    // Idle through more than two long-poll timeouts, then a busy stretch.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    run_twelve_jobs(&rt).await;
    let stats = rt.stats();
    assert_eq!(
        stats.max_concurrent_polls, 1,
        "one poll at a time: {stats:?}"
    );
    assert_eq!(stats.max_in_flight, 4, "{stats:?}");
    assert_eq!(stats.results_accepted, 12);
    module.signal("TERM");
    let status = module.wait().await;
    assert!(
        status.success(),
        "exit status {status:?}:\n{}",
        module.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_outstanding_polls_answers_every_handed_out_job_exactly_once() {
    let rt = runtime(4).await;
    let mut module = start_module(&rt, &[("CMOD_CONCURRENT_POLLS", "1")]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    wait_until("4 concurrent polls", Duration::from_secs(10), || {
        rt.stats().max_concurrent_polls == 4
    })
    .await;
    // Three slots busy, the fourth polling.
    let long: Vec<String> = (0..3)
        .map(|_| rt.enqueue("sleep_ms", json!({"ms": 1000})))
        .collect();
    wait_until("3 jobs in flight", WAIT, || rt.in_flight().len() == 3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    module.signal("TERM");
    // Jobs arriving while the module drains: an outstanding poll may still bring some.
    let late: Vec<String> = (0..5)
        .map(|_| rt.enqueue("sleep_ms", json!({"ms": 50})))
        .collect();
    let status = module.wait().await;
    assert!(
        status.success(),
        "exit status {status:?}:\n{}",
        module.log()
    );
    for id in &long {
        let r = rt.wait_result(id, Duration::from_secs(1)).await.unwrap();
        assert_eq!(r.json().unwrap(), json!(1000));
    }
    let stats = rt.stats();
    assert!(rt.in_flight().is_empty(), "jobs lost: {:?}", rt.in_flight());
    assert_eq!(
        stats.jobs_handed_out, stats.results_accepted,
        "every handed-out job answered: {stats:?}"
    );
    assert_eq!(stats.duplicate_results, 0, "{stats:?}");
    assert!(stats.max_in_flight <= 4, "{stats:?}");
    assert!(stats.jobs_handed_out <= 3 + late.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_switch_value_is_refused_with_the_variable_named() {
    let rt = runtime(1).await;
    let mut module = Command::new(env!("CARGO_BIN_EXE_e2e_module"));
    module
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(rt.env())
        .env("CMOD_CONCURRENT_POLLS", "sometimes")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(WAIT, module.output())
        .await
        .expect("module did not exit")
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("CMOD_CONCURRENT_POLLS"), "{text}");
    assert!(text.contains("sometimes"), "{text}");
    assert_eq!(rt.stats().polls, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_option_failing_polls_back_off_together_and_recover() {
    let rt = runtime(4).await;
    rt.faults().fail_all_polls(Some(503));
    let mut module = start_module(&rt, &[("CMOD_CONCURRENT_POLLS", "1")]);
    rt.wait_for_schemas(WAIT).await.unwrap();
    let start_polls = rt.stats().polls;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let polls = rt.stats().polls - start_polls;
    // Rounds of up to 4 polls, 100 ms, 200, 400, 800, 1600 … apart: about 20 in 3 s; a busy
    // loop would make thousands.
    assert!((2..=28).contains(&polls), "{polls} polls in 3 s");
    rt.faults().fail_all_polls(None);
    let r = rt.call("add", json!({"x": 1, "y": 2}), WAIT).await.unwrap();
    assert_eq!(
        r.json().unwrap(),
        json!(3),
        "recovers when the runtime does"
    );
    module.signal("TERM");
    let status = module.wait().await;
    assert!(
        status.success(),
        "exit status {status:?}:\n{}",
        module.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_option_odd_envelopes_get_one_result_or_none_and_no_slot_is_lost() {
    let rt = runtime(2).await;
    let module = start_module(&rt, &[("CMOD_CONCURRENT_POLLS", "1")]);
    rt.wait_for_schemas(WAIT).await.unwrap();

    // Another envelope variant: one InvalidInput error result, from the poller that got it.
    let id = rt.enqueue_job(unknown_variant_job());
    let v = rt.wait_result(&id, WAIT).await.unwrap().json().unwrap();
    assert_eq!(v["error"]["kind"], "InvalidInput", "{v}");

    // `..` cannot be a URL path segment: not run, nothing posted anywhere.
    let unanswerable = rt.enqueue_job(JobSpec {
        job_id: Some("..".to_owned()),
        ..JobSpec::new("add", json!({"x": 1, "y": 1}))
    });
    wait_until("the unanswerable job to be logged", WAIT, || {
        module.log().contains("cannot be answered")
    })
    .await;
    assert!(rt.in_flight().iter().any(|j| j == &unanswerable));

    // Both slots still poll and run jobs side by side: two 1 s jobs are held at once.
    let ids: Vec<String> = (0..2)
        .map(|_| rt.enqueue("sleep_ms", json!({"ms": 1000})))
        .collect();
    wait_until("both jobs to be held at once", WAIT, || {
        let held = rt.in_flight();
        ids.iter().all(|id| held.contains(id))
    })
    .await;
    for id in &ids {
        let r = rt.wait_result(id, WAIT).await.unwrap();
        assert_eq!(r.json().unwrap(), json!(1000));
    }
    let stats = rt.stats();
    assert_eq!(stats.unknown_job_results, 0, "{stats:?}");
    assert_eq!(stats.schema_posts, 1, "{stats:?}");
    assert_eq!(stats.duplicate_results, 0, "{stats:?}");
    assert_eq!(stats.results_accepted, 3, "{stats:?}");
}
