//! The runtime server, driven over real HTTPS by a reqwest "module" that trusts the generated CA.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

mod common;

use common::{RequestJson, ResponseJson};

use std::time::{Duration, Instant};

use cmod_local::{JobSpec, LocalError, LocalRuntime, LocalRuntimeOptions, Stats};
use common::{BOUND, Module, error_message, eventually, quick};
use futures_util::stream;
use serde_json::json;
use tokio::time::timeout;

async fn start(options: LocalRuntimeOptions) -> (LocalRuntime, Module) {
    let rt = LocalRuntime::start(options).await.unwrap();
    let module = Module::new(&rt);
    (rt, module)
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<LocalRuntime>();
    check::<cmod_local::Faults>();
}

#[tokio::test]
async fn env_names_the_files_and_uris() {
    let (rt, _m) = start(LocalRuntimeOptions {
        max_concurrent_tasks: 3,
        ..quick()
    })
    .await;
    let env: std::collections::HashMap<_, _> = rt.env().into_iter().collect();
    let port = rt.runtime_addr().port();
    let base = format!("https://localhost:{port}/interactive-module/api/internal-query");
    assert_eq!(env["GET_JOB_URI"], format!("{base}/job"));
    assert_eq!(env["POST_RESULT_URI"], format!("{base}/results"));
    assert_eq!(env["POST_SCHEMA_URI"], format!("{base}/schemas"));
    assert_eq!(
        env["RESTART_NOTIFICATION_URI"],
        format!("{base}/restart-notify")
    );
    assert_eq!(env["RUNTIME_HOST"], "localhost");
    assert_eq!(env["RUNTIME_PORT"], port.to_string());
    assert_eq!(env["MAX_CONCURRENT_TASKS"], "3");
    assert_eq!(
        std::fs::read_to_string(&env["MODULE_AUTH_TOKEN"]).unwrap(),
        rt.token()
    );
    assert_eq!(
        std::fs::read_to_string(&env["DEFAULT_CA_PATH"]).unwrap(),
        rt.ca_pem()
    );
    assert_eq!(
        env["CONNECTIONS_TO_OTHER_PODS_CA_PATH"],
        env["DEFAULT_CA_PATH"]
    );
    assert_eq!(env.len(), 10);
    assert!(rt.runtime_addr().ip().is_loopback());
    assert!(
        !format!("{rt:?}").contains(&rt.token()),
        "Debug must not show the token"
    );

    let dir = rt.ca_path().parent().unwrap().to_owned();
    rt.shutdown().await;
    assert!(
        !dir.exists(),
        "the runtime's temporary directory is removed on shutdown"
    );
}

#[tokio::test]
async fn files_go_to_the_given_dir_and_stay() {
    let dir = tempfile::tempdir().unwrap();
    let rt = LocalRuntime::start(LocalRuntimeOptions {
        dir: Some(dir.path().join("rt")),
        ..quick()
    })
    .await
    .unwrap();
    let token_path = rt.token_path().to_owned();
    assert!(token_path.starts_with(dir.path()));
    rt.shutdown().await;
    assert!(token_path.exists());
}

#[tokio::test]
async fn zero_max_concurrent_tasks_is_rejected() {
    let err = LocalRuntime::start(LocalRuntimeOptions {
        max_concurrent_tasks: 0,
        ..quick()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            LocalError::InvalidOption {
                option: "max_concurrent_tasks",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn idle_long_poll_answers_204_after_its_timeout() {
    let (rt, m) = start(quick()).await;
    let started = Instant::now();
    let resp = timeout(BOUND, m.poll()).await.unwrap();
    assert_eq!(resp.status(), 204);
    // The poll was held (a lower bound on the configured hold, not a performance claim).
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(rt.stats().polls, 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn queued_job_is_handed_out_at_once_with_the_protocol_envelope() {
    let (rt, m) = start(LocalRuntimeOptions {
        long_poll_timeout: Duration::from_secs(60),
        ..quick()
    })
    .await;
    let job_id = rt.enqueue_job(JobSpec {
        function: "multiply".into(),
        query: json!({"n": 4.0}),
        auth_header: Some("Bearer abc".into()),
        user_id: Some("user-1".into()),
        temporary_credentials_token: Some("tmp".into()),
        ..JobSpec::default()
    });
    // With a 60 s hold, only a job already queued can make this return within the bound.
    let resp = timeout(BOUND, m.poll()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json_value().await;
    assert_eq!(
        v,
        json!({"type": "computeModuleJobV1", "computeModuleJobV1": {
            "jobId": job_id, "queryType": "multiply", "query": {"n": 4.0},
            "temporaryCredentialsAuthToken": "tmp", "authHeader": "Bearer abc", "userId": "user-1"}})
    );
    assert_eq!(rt.in_flight(), vec![job_id.clone()]);

    let resp = m.post_result(&job_id, "16.0").await;
    assert_eq!(resp.status(), 204);
    let result = rt.wait_result(&job_id, BOUND).await.unwrap();
    assert_eq!(result.json().unwrap(), json!(16.0));
    assert_eq!(
        result.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert!(rt.in_flight().is_empty());
    let err = rt.wait_result(&job_id, BOUND).await.unwrap_err();
    assert!(matches!(err, LocalError::ResultTaken { .. }), "{err}");
    rt.shutdown().await;
}

#[tokio::test]
async fn a_waiting_poll_gets_a_job_enqueued_later() {
    let (rt, m) = start(LocalRuntimeOptions {
        long_poll_timeout: Duration::from_secs(60),
        ..quick()
    })
    .await;
    let poll = tokio::spawn(async move { m.poll().await });
    eventually("the poll to be waiting", || rt.stats().polls == 1).await;
    let job_id = rt.enqueue("f", json!({}));
    let resp = timeout(BOUND, poll).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json_value().await;
    assert_eq!(v["computeModuleJobV1"]["jobId"], json!(job_id));
    rt.shutdown().await;
}

#[tokio::test]
async fn every_route_needs_the_module_auth_token() {
    let (rt, m) = start(quick()).await;
    let job_id = rt.enqueue("f", json!({}));
    let routes = [
        (reqwest::Method::GET, m.url("job")),
        (reqwest::Method::POST, m.url(&format!("results/{job_id}"))),
        (reqwest::Method::POST, m.url("schemas")),
        (reqwest::Method::POST, m.url("restart-notify")),
    ];
    let mut expected_failures = 0;
    for (method, url) in &routes {
        for token in [None, Some("wrong"), Some(&rt.token()[1..])] {
            let mut req = m.client.request(method.clone(), url).body("[]");
            if let Some(t) = token {
                req = req.header("Module-Auth-Token", t);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{method} {url} with {token:?}");
            let message = error_message(resp).await;
            assert!(message.contains("Module-Auth-Token"), "{message}");
            expected_failures += 1;
        }
    }
    let stats = rt.stats();
    assert_eq!(stats.auth_failures, expected_failures);
    assert_eq!(stats.polls, 0, "unauthenticated polls are not polls");
    assert_eq!(
        stats.jobs_handed_out, 0,
        "no job leaks to an unauthenticated client"
    );
    assert_eq!(rt.queued(), 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_generated_ca_cannot_connect() {
    let (rt, m) = start(quick()).await;
    let other_ca = cmod_local::tls::LocalCa::generate("some other CA").unwrap();
    let stranger = common::client_trusting(other_ca.ca_pem());
    let err = stranger
        .get(m.url("job"))
        .header("Module-Auth-Token", rt.token())
        .send()
        .await
        .unwrap_err();
    assert!(
        err.is_connect(),
        "expected a TLS/connect error, got {err:?}"
    );
    let chain = format!("{:?}", err);
    assert!(
        chain.contains("certificate") || chain.contains("Certificate"),
        "{chain}"
    );
    assert_eq!(rt.stats().requests_total, 0, "no HTTP request got through");
    // The trusting client still works.
    assert_eq!(m.poll().await.status(), 204);
    rt.shutdown().await;
}

#[tokio::test]
async fn chunked_result_is_reassembled_byte_exact() {
    let (rt, m) = start(quick()).await;
    let job_id = rt.enqueue("stream", json!({}));
    m.next_job().await;
    // 200 chunks of different sizes and arbitrary (non-UTF-8) bytes.
    let chunks: Vec<Vec<u8>> = (0..200u32)
        .map(|i| {
            (0..(i * 37 % 5000 + 1))
                .map(|j| (i * 31 + j * 7) as u8)
                .collect()
        })
        .collect();
    let expected: Vec<u8> = chunks.concat();
    let body = reqwest::Body::wrap_stream(stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::from(c))),
    ));
    let resp = m.post_result(&job_id, body).await;
    assert_eq!(resp.status(), 204);
    let result = rt.wait_result(&job_id, BOUND).await.unwrap();
    assert!(result.chunked, "sent with Transfer-Encoding: chunked");
    assert_eq!(result.body.len(), expected.len());
    assert!(result.body == expected, "body differs from what was sent");
    rt.shutdown().await;
}

#[tokio::test]
async fn unknown_job_id_gets_404_and_is_counted() {
    let (rt, m) = start(quick()).await;
    let resp = m.post_result("no-such-job", "1").await;
    assert_eq!(resp.status(), 404);
    assert!(error_message(resp).await.contains("no-such-job"));
    // A job that exists but was never handed out is not in flight either.
    let queued = rt.enqueue("f", json!({}));
    let resp = m.post_result(&queued, "1").await;
    assert_eq!(resp.status(), 404);
    assert!(error_message(resp).await.contains("queued"));
    assert_eq!(rt.stats().unknown_job_results, 2);
    assert_eq!(rt.stats().results_accepted, 0);
    // The server is still fine.
    assert_eq!(m.poll().await.status(), 200);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_second_result_for_a_job_gets_409_and_is_counted() {
    let (rt, m) = start(quick()).await;
    let job_id = rt.enqueue("f", json!({}));
    m.next_job().await;
    assert_eq!(m.post_result(&job_id, "\"first\"").await.status(), 204);
    let resp = m.post_result(&job_id, "\"second\"").await;
    assert_eq!(resp.status(), 409);
    assert!(error_message(resp).await.contains("exactly one"));
    let stats = rt.stats();
    assert_eq!(stats.duplicate_results, 1);
    assert_eq!(stats.results_accepted, 1);
    let result = rt.wait_result(&job_id, BOUND).await.unwrap();
    assert_eq!(result.text().unwrap(), "\"first\"");
    // Still 409 after the result was taken.
    assert_eq!(m.post_result(&job_id, "\"third\"").await.status(), 409);
    assert_eq!(rt.stats().duplicate_results, 2);
    rt.shutdown().await;
}

#[tokio::test]
async fn restart_notification_drops_and_returns_the_jobs_in_flight() {
    let (rt, m) = start(quick()).await;
    let a = rt.enqueue("f", json!(1));
    let b = rt.enqueue("f", json!(2));
    let c = rt.enqueue("f", json!(3));
    assert_eq!(m.next_job().await.0, a);
    assert_eq!(m.next_job().await.0, b);
    assert_eq!(rt.stats().max_in_flight, 2);
    let resp = m
        .client
        .post(m.url("restart-notify"))
        .header("Module-Auth-Token", &m.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let dropped: Vec<String> = resp.json_value().await;
    assert_eq!(dropped, vec![a.clone(), b.clone()]);
    assert!(rt.in_flight().is_empty());
    assert_eq!(rt.stats().restart_notifications, 1);
    let err = rt.wait_result(&a, BOUND).await.unwrap_err();
    assert!(matches!(err, LocalError::JobDropped { .. }), "{err}");
    // A late result for a dropped job is rejected.
    assert_eq!(m.post_result(&b, "1").await.status(), 404);
    // The queued job is untouched.
    assert_eq!(m.next_job().await.0, c);
    rt.shutdown().await;
}

#[tokio::test]
async fn schemas_are_recorded_and_bad_ones_rejected() {
    let (rt, m) = start(quick()).await;
    assert!(rt.schemas().is_none());
    let waiter = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.wait_for_schemas(BOUND).await })
    };
    let post = |body: &'static str| {
        m.client
            .post(m.url("schemas"))
            .header("Module-Auth-Token", &m.token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let resp = post("{\"functionName\": \"f\"}").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(error_message(resp).await.contains("JSON array"));
    let resp = post("[{\"functionName\": ").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(error_message(resp).await.contains("not valid JSON"));
    let schemas = json!([{"functionName": "f", "inputs": [], "output": {"type": "single", "single": {"dataType": {"type": "string", "string": {}}}}}]);
    let resp = m
        .client
        .post(m.url("schemas"))
        .header("Module-Auth-Token", &m.token)
        .json_body(&schemas)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        timeout(BOUND, waiter).await.unwrap().unwrap().unwrap(),
        schemas
    );
    assert_eq!(rt.schemas(), Some(schemas));
    assert_eq!(rt.stats().schema_posts, 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let (rt, m) = start(quick()).await;
    let resp = m.client.get(m.url("nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(error_message(resp).await.contains("/job"));
    let resp = m.client.delete(m.url("job")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert!(error_message(resp).await.contains("DELETE"));
    assert_eq!(rt.stats().requests_total, 2);
    rt.shutdown().await;
}

#[tokio::test]
async fn wait_result_reports_where_the_job_is_stuck() {
    let (rt, m) = start(quick()).await;
    let job_id = rt.enqueue("slow", json!({}));
    let err = rt
        .wait_result(&job_id, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LocalError::Timeout {
                state: "queued",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("GET_JOB_URI"), "{err}");
    m.next_job().await;
    let err = rt
        .wait_result(&job_id, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LocalError::Timeout {
                state: "in flight",
                ..
            }
        ),
        "{err}"
    );
    // A later result is still delivered to a later wait.
    assert_eq!(m.post_result(&job_id, "1").await.status(), 204);
    assert_eq!(rt.wait_result(&job_id, BOUND).await.unwrap().body, b"1");
    let err = rt.wait_result("never-enqueued", BOUND).await.unwrap_err();
    assert!(matches!(err, LocalError::UnknownJob { .. }), "{err}");
    rt.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_open_polls_and_waits() {
    let (rt, m) = start(LocalRuntimeOptions {
        long_poll_timeout: Duration::from_secs(60),
        ..quick()
    })
    .await;
    let poll = tokio::spawn(async move { m.poll().await.status() });
    eventually("the poll to be waiting", || rt.stats().polls == 1).await;
    let job_id = rt.enqueue_job(JobSpec::new("f", json!({})));
    // The waiting poll took the job; wait for its result from another task.
    assert_eq!(timeout(BOUND, poll).await.unwrap().unwrap(), 200);
    let waiter = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.wait_result(&job_id, Duration::from_secs(60)).await })
    };
    let m2 = Module::new(&rt);
    let idle_poll = tokio::spawn(async move { m2.poll().await.status() });
    eventually("the second poll to be waiting", || rt.stats().polls == 2).await;
    timeout(BOUND, rt.shutdown()).await.unwrap();
    let err = timeout(BOUND, waiter).await.unwrap().unwrap().unwrap_err();
    assert!(matches!(err, LocalError::ShutDown), "{err}");
    assert_eq!(timeout(BOUND, idle_poll).await.unwrap().unwrap(), 204);
}

#[tokio::test]
async fn many_jobs_through_concurrent_pollers_each_answered_once() {
    let (rt, _m) = start(LocalRuntimeOptions {
        max_concurrent_tasks: 4,
        ..quick()
    })
    .await;
    let ids: Vec<String> = (0..200)
        .map(|i| rt.enqueue("double", json!({"x": i})))
        .collect();
    let mut workers = Vec::new();
    for _ in 0..4 {
        let m = Module::new(&rt);
        workers.push(tokio::spawn(async move {
            let mut done = 0;
            loop {
                let resp = m.poll().await;
                if resp.status() == 204 {
                    return done;
                }
                let v: serde_json::Value = resp.json_value().await;
                let job = &v["computeModuleJobV1"];
                let x = job["query"]["x"].as_i64().unwrap();
                let id = job["jobId"].as_str().unwrap();
                assert_eq!(m.post_result(id, (2 * x).to_string()).await.status(), 204);
                done += 1;
            }
        }));
    }
    for (i, id) in ids.iter().enumerate() {
        let r = rt.wait_result(id, BOUND).await.unwrap();
        assert_eq!(r.json().unwrap(), json!(2 * i as i64));
    }
    let mut total = 0;
    for w in workers {
        total += timeout(BOUND, w).await.unwrap().unwrap();
    }
    assert_eq!(total, 200);
    let stats = rt.stats();
    assert_eq!(
        Stats {
            requests_total: 0,
            polls: 0,
            max_in_flight: 0,
            max_concurrent_polls: 0,
            ..stats.clone()
        },
        Stats {
            jobs_handed_out: 200,
            results_accepted: 200,
            ..Stats::default()
        }
    );
    assert!((1..=4).contains(&stats.max_in_flight));
    rt.shutdown().await;
}
