//! The module auth token file (`MODULE_AUTH_TOKEN`) changing while a functions-mode module runs:
//! the `e2e_module` binary runs as a child process against `cmod-local`'s runtime over real TLS,
//! the runtime rotates the token it accepts (`LocalRuntime::rotate_token`: the new token is
//! accepted, the file replaced or rewritten, the old token revoked), and every job must still get
//! its own result. Every wait is bounded.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cmod_local::{LocalRuntime, LocalRuntimeOptions, TokenRotation};
use cmod_tests::child::LoggedChild;
use serde_json::{Value, json};

/// Bound of every single wait.
const WAIT: Duration = Duration::from_secs(30);

async fn runtime() -> LocalRuntime {
    LocalRuntime::start(LocalRuntimeOptions {
        max_concurrent_tasks: 3,
        long_poll_timeout: Duration::from_millis(300),
        ..LocalRuntimeOptions::default()
    })
    .await
    .unwrap()
}

fn module(rt: &LocalRuntime) -> LoggedChild {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_e2e_module"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(rt.env())
        .env("CMOD_LOG", "info");
    LoggedChild::spawn(&mut cmd)
}

/// One job of each delivery kind, cycling: a buffered result, a streamed one, and one that is
/// still running while the token rotates (its result post comes after).
fn job(i: i64) -> (&'static str, Value, Value) {
    match i % 3 {
        0 => ("add", json!({"x": i, "y": 1}), json!(i + 1)),
        // A streamed result: one JSON value per chunk, reassembled without separators.
        1 => ("count", json!({"n": 3}), json!({"streamed": "012"})),
        _ => ("sleep_ms", json!({"ms": 400}), json!(400)),
    }
}

/// The result of `job_id`, parsed; a streamed result as `{"streamed": body}`.
async fn result_of(rt: &LocalRuntime, job_id: &str, module: &LoggedChild) -> Value {
    let result = match rt.wait_result(job_id, WAIT).await {
        Ok(r) => r,
        Err(e) => panic!(
            "job {job_id} got no result ({e}); runtime stats {:?}; module log:\n{}",
            rt.stats(),
            module.log()
        ),
    };
    let text = result.text().unwrap().to_owned();
    if result.chunked {
        json!({ "streamed": text })
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("job {job_id}: not JSON ({e}): {text}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_keep_succeeding_while_the_module_auth_token_rotates() {
    let rt = runtime().await;
    let module = module(&rt);
    rt.wait_for_schemas(WAIT).await.unwrap();
    let mut tokens = vec![rt.token()];

    // Jobs arrive every 40 ms for about 3.6 s; the token rotates five times meanwhile, replaced
    // (write + rename, as Kubernetes updates a secret) and rewritten in place in turn, some
    // rotations less than a second apart.
    let producer = async {
        let mut jobs = Vec::new();
        for i in 0..90 {
            let (function, query, expected) = job(i);
            jobs.push((rt.enqueue(function, query), expected));
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        jobs
    };
    let rotator = async {
        let mut new_tokens = Vec::new();
        for (k, pause) in [500u64, 900, 300, 700, 400].into_iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let how = if k % 2 == 0 {
                TokenRotation::Replace
            } else {
                TokenRotation::InPlace
            };
            rt.rotate_token(how).unwrap();
            new_tokens.push(rt.token());
        }
        new_tokens
    };
    let (jobs, new_tokens) = tokio::join!(producer, rotator);
    tokens.extend(new_tokens);

    for (job_id, expected) in &jobs {
        let got = result_of(&rt, job_id, &module).await;
        assert_eq!(
            &got,
            expected,
            "job {job_id} ({:?}); module log:\n{}",
            rt.function_of(job_id),
            module.log()
        );
    }
    // And the module still polls with the last token.
    let after = rt.enqueue("add", json!({"x": 20, "y": 22}));
    assert_eq!(result_of(&rt, &after, &module).await, json!(42));

    let stats = rt.stats();
    eprintln!("after 5 rotations: {stats:?}");
    assert_eq!(stats.results_accepted, 91, "{stats:?}");
    // Each request refused with a revoked token is sent once more, never again and again: at
    // most one refusal per request in flight (3 jobs and a poll) per rotation.
    assert!(stats.auth_failures <= 5 * 4, "{stats:?}");
    assert_eq!(stats.duplicate_results, 0, "{stats:?}");
    assert_eq!(stats.unknown_job_results, 0, "{stats:?}");
    let (status, log) = module.terminate().await;
    assert!(status.success(), "{status}:\n{log}");
    assert!(!log.contains("\"ERROR\""), "no error logged:\n{log}");
    eprintln!(
        "retries after a refusal: {}, token changes logged: {}",
        log.matches("retrying with the new one").count(),
        log.matches("file changed").count()
    );
    assert!(
        log.contains("MODULE_AUTH_TOKEN") && log.contains("changed"),
        "the module says the token file changed:\n{log}"
    );
    for token in &tokens {
        assert!(
            !log.contains(token.as_str()),
            "a token leaked into the log:\n{log}"
        );
    }
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_or_broken_token_file_keeps_the_last_good_token() {
    let rt = runtime().await;
    let module = module(&rt);
    rt.wait_for_schemas(WAIT).await.unwrap();
    let token_path = rt.token_path().to_owned();
    let check = |round: i64| {
        let rt = &rt;
        let module = &module;
        async move {
            for i in 0..6 {
                let (function, query, expected) = job(round * 10 + i);
                let job_id = rt.enqueue(function, query);
                assert_eq!(
                    result_of(rt, &job_id, module).await,
                    expected,
                    "round {round}"
                );
            }
        }
    };
    check(0).await;

    // Deleted (a secret volume being remounted): the cached token goes on, past the next
    // check of the file (at most a second apart).
    std::fs::remove_file(&token_path).unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    check(1).await;

    // Empty, then characters a header cannot carry: still the last good token.
    std::fs::write(&token_path, "").unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    check(2).await;
    std::fs::write(&token_path, "bad\u{1}token").unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    check(3).await;

    let stats = rt.stats();
    assert_eq!(stats.auth_failures, 0, "{stats:?}");
    assert_eq!(stats.results_accepted, 24, "{stats:?}");
    let (status, log) = module.terminate().await;
    assert!(status.success(), "{status}:\n{log}");
    let path = token_path.display().to_string();
    assert!(
        log.lines()
            .any(|l| l.contains("MODULE_AUTH_TOKEN") && l.contains(&path) && l.contains("header")),
        "the invalid token is reported naming the variable and the file:\n{log}"
    );
    assert!(
        !log.contains("bad\u{1}token") && !log.contains("bad\\u0001token"),
        "{log}"
    );
    assert!(
        !log.contains(&rt.token()),
        "the token leaked into the log:\n{log}"
    );
    rt.shutdown().await;
}

/// Jobs in flight when the token rotates, with every slot busy so that no poll is open: the
/// first requests after the rotation are result posts. Whether they go out with the old token
/// (refused, the file re-read, posted again) or the once-a-second check saw the new file first
/// depends on when the last check was; both must deliver every result, with at most one refusal
/// per post.
/// (`functions::client` unit tests drive the refused-result path deterministically.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_of_jobs_in_flight_during_a_rotation_are_delivered() {
    let rt = runtime().await;
    let module = module(&rt);
    rt.wait_for_schemas(WAIT).await.unwrap();
    let jobs: Vec<String> = (0..3)
        .map(|_| rt.enqueue("sleep_ms", json!({"ms": 300})))
        .collect();
    let deadline = std::time::Instant::now() + WAIT;
    while rt.in_flight().len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the jobs were not taken"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    rt.rotate_token(TokenRotation::Replace).unwrap();
    for job_id in &jobs {
        assert_eq!(result_of(&rt, job_id, &module).await, json!(300));
    }
    let stats = rt.stats();
    assert_eq!(stats.results_accepted, 3, "{stats:?}");
    // At most one refusal per result post (they may go out together, all with the old token),
    // each followed by exactly one retry from the job's own task.
    assert!(stats.auth_failures <= 3, "{stats:?}");
    let (status, log) = module.terminate().await;
    assert!(status.success(), "{status}:\n{log}");
    let retried = log
        .lines()
        .filter(|l| l.contains("retrying with the new one") && l.contains("sleep_ms"))
        .count();
    assert_eq!(
        u64::try_from(retried).unwrap(),
        stats.auth_failures,
        "{log}"
    );
    eprintln!("refused result posts, each retried once: {retried}");
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_streamed_result_too_large_to_replay_becomes_one_error_result_never_a_prefix() {
    // One slot (no poll while the job runs) and long-polls of 1.5 s: the module compares the
    // token file at most once a second, so each poll it sends compares it, and a result posted
    // less than a second after the poll that brought the job goes out with the token of then.
    let rt = LocalRuntime::start(LocalRuntimeOptions {
        max_concurrent_tasks: 1,
        long_poll_timeout: Duration::from_millis(1500),
        ..LocalRuntimeOptions::default()
    })
    .await
    .unwrap();
    let module = module(&rt);
    rt.wait_for_schemas(WAIT).await.unwrap();
    // Right after a poll arrives: rotate, then hand that poll a job streaming 20 MiB (more
    // than the 16 MiB kept for a replay) after 100 ms. Its result post carries the old token,
    // is refused (401, once the runtime read the whole body), and cannot be sent again whole.
    let deadline = std::time::Instant::now() + WAIT;
    for _ in 0..2 {
        let polls = rt.stats().polls;
        while rt.stats().polls == polls {
            assert!(std::time::Instant::now() < deadline, "no poll arrived");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let old_token = rt.token();
    rt.rotate_token(TokenRotation::Replace).unwrap();
    let job_id = rt.enqueue(
        "big_stream_after",
        json!({"ms": 100, "items": 20, "len": 1 << 20}),
    );
    let result = match rt.wait_result(&job_id, WAIT).await {
        Ok(r) => r,
        Err(e) => panic!(
            "no result ({e}); {:?}; module log:\n{}",
            rt.stats(),
            module.log()
        ),
    };
    assert!(
        result.body.len() < 4096,
        "an error, never a prefix: {} bytes; {:?}",
        result.body.len(),
        rt.stats()
    );
    let v: Value = serde_json::from_slice(&result.body).unwrap();
    let error = &v["error"];
    assert_eq!(error["kind"], "ResultDeliveryFailed", "{v}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("401"), "says why: {message}");
    let stats = rt.stats();
    assert_eq!(stats.results_accepted, 1, "{stats:?}");
    assert_eq!(stats.duplicate_results, 0, "{stats:?}");
    assert_eq!(stats.auth_failures, 1, "{stats:?}");
    let (status, log) = module.terminate().await;
    assert!(status.success(), "{status}:\n{log}");
    for token in [old_token, rt.token()] {
        assert!(!log.contains(&token), "no token reaches the log");
    }
    rt.shutdown().await;
}
