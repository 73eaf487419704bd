//! Fault injection, observed from a real HTTPS client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

mod common;

use std::time::{Duration, Instant};

use cmod_local::{LocalRuntime, LocalRuntimeOptions};
use common::{BOUND, Module, error_message, eventually, quick};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Waits (bounded) until connecting to `addr` is refused by the OS.
async fn until_refused(addr: std::net::SocketAddr) {
    timeout(BOUND, async {
        loop {
            match TcpStream::connect(addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("the listener was never closed");
}

/// Polls (bounded) until a request goes through again; returns its status.
async fn until_up(m: &Module) -> u16 {
    timeout(BOUND, async {
        loop {
            match m
                .client
                .get(m.url("job"))
                .header("Module-Auth-Token", &m.token)
                .send()
                .await
            {
                Ok(resp) => return resp.status().as_u16(),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .expect("the runtime never came back")
}

#[tokio::test]
async fn refuse_connections_closes_the_port_then_reopens_the_same_one() {
    let rt = LocalRuntime::start(quick()).await.unwrap();
    let m = Module::new(&rt);
    let addr = rt.runtime_addr();
    // A pooled keep-alive connection exists before the outage.
    assert_eq!(m.poll().await.status(), 204);
    let faults = rt.faults();
    faults.refuse_connections_for(Duration::from_secs(2));
    assert!(faults.is_refusing());
    // From the moment the call returns, requests fail at the transport level (no HTTP status),
    // even over the already-open connection.
    let err = m
        .client
        .get(m.url("job"))
        .header("Module-Auth-Token", &m.token)
        .send()
        .await
        .unwrap_err();
    assert!(err.status().is_none(), "{err:?}");
    // And the OS refuses new connections: the listener is closed.
    until_refused(addr).await;
    // Later the same port serves again.
    assert_eq!(until_up(&m).await, 204);
    assert_eq!(rt.runtime_addr(), addr);
    assert!(!faults.is_refusing());
    let job = rt.enqueue("f", json!({}));
    assert_eq!(m.next_job().await.0, job);
    rt.shutdown().await;
}

#[tokio::test]
async fn refusing_ends_an_open_long_poll() {
    let rt = LocalRuntime::start(LocalRuntimeOptions {
        long_poll_timeout: Duration::from_secs(60),
        ..quick()
    })
    .await
    .unwrap();
    let m = Module::new(&rt);
    let poll = tokio::spawn(async move { m.poll().await.status() });
    eventually("the poll to be waiting", || rt.stats().polls == 1).await;
    rt.faults()
        .refuse_connections_for(Duration::from_millis(200));
    assert_eq!(timeout(BOUND, poll).await.unwrap().unwrap(), 204);
    rt.shutdown().await;
}

#[tokio::test]
async fn runtime_can_start_down() {
    let rt = LocalRuntime::start(LocalRuntimeOptions {
        refuse_connections_for: Some(Duration::from_millis(500)),
        ..quick()
    })
    .await
    .unwrap();
    let addr = rt.runtime_addr();
    assert_ne!(
        addr.port(),
        0,
        "the port is known (and in env()) before the server is up"
    );
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let m = Module::new(&rt);
    assert_eq!(until_up(&m).await, 204);
    rt.shutdown().await;
}

#[tokio::test]
async fn fail_next_results_answers_n_posts_with_the_status_then_accepts() {
    let rt = LocalRuntime::start(quick()).await.unwrap();
    let m = Module::new(&rt);
    let job_id = rt.enqueue("f", json!({}));
    m.next_job().await;
    rt.faults().fail_next_results(3, 503);
    for attempt in 0..3 {
        let resp = m
            .post_result(&job_id, format!("\"attempt {attempt}\""))
            .await;
        assert_eq!(resp.status(), 503, "attempt {attempt}");
        assert!(error_message(resp).await.contains("injected fault"));
        assert_eq!(
            rt.in_flight(),
            vec![job_id.clone()],
            "rejected results are not recorded"
        );
    }
    assert_eq!(m.post_result(&job_id, "\"attempt 3\"").await.status(), 204);
    let result = rt.wait_result(&job_id, BOUND).await.unwrap();
    assert_eq!(result.text().unwrap(), "\"attempt 3\"");
    let stats = rt.stats();
    assert_eq!(stats.rejected_by_fault, 3);
    assert_eq!(stats.results_accepted, 1);
    assert_eq!(stats.duplicate_results, 0);
    rt.shutdown().await;
}

#[tokio::test]
async fn fail_next_polls_then_normal_polls() {
    let rt = LocalRuntime::start(quick()).await.unwrap();
    let m = Module::new(&rt);
    let job_id = rt.enqueue("f", json!({}));
    rt.faults().fail_next_polls(2, 500);
    assert_eq!(m.poll().await.status(), 500);
    assert_eq!(m.poll().await.status(), 500);
    assert_eq!(
        rt.stats().jobs_handed_out,
        0,
        "a failed poll hands out nothing"
    );
    assert_eq!(m.next_job().await.0, job_id);
    let stats = rt.stats();
    assert_eq!(stats.rejected_by_fault, 2);
    assert_eq!(stats.polls, 3);
    rt.shutdown().await;
}

#[tokio::test]
async fn fail_all_polls_until_cleared() {
    let rt = LocalRuntime::start(quick()).await.unwrap();
    let m = Module::new(&rt);
    rt.enqueue("f", json!({}));
    let faults = rt.faults();
    faults.fail_all_polls(Some(502));
    for _ in 0..5 {
        assert_eq!(m.poll().await.status(), 502);
    }
    assert_eq!(rt.stats().rejected_by_fault, 5);
    // Auth is still checked first.
    let resp = m.client.get(m.url("job")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    faults.fail_all_polls(None);
    assert_eq!(m.poll().await.status(), 200);
    rt.shutdown().await;
}

#[tokio::test]
async fn delay_responses_adds_latency_until_cleared() {
    let rt = LocalRuntime::start(quick()).await.unwrap();
    let m = Module::new(&rt);
    let job_id = rt.enqueue("f", json!({}));
    m.next_job().await;
    let faults = rt.faults();
    faults.delay_responses(Duration::from_millis(400));
    let started = Instant::now();
    assert_eq!(m.post_result(&job_id, "1").await.status(), 204);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the response was delayed"
    );
    // A client with a shorter timeout than the delay gives up.
    let impatient = m
        .client
        .post(m.url("schemas"))
        .header("Module-Auth-Token", &m.token)
        .body("[]")
        .timeout(Duration::from_millis(100))
        .send()
        .await
        .unwrap_err();
    assert!(impatient.is_timeout(), "{impatient:?}");
    faults.delay_responses(Duration::ZERO);
    assert_eq!(
        m.client
            .post(m.url("schemas"))
            .header("Module-Auth-Token", &m.token)
            .body("[]")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    rt.shutdown().await;
}
