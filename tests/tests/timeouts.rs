//! Idle timeouts, not total caps, for the Foundry client and REST sources: a transfer that
//! keeps making progress may take longer than the limit; one that makes none for the limit
//! fails with a timeout error naming the URL (without its query).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::{get, post};
use cmod_runtime::Secret;
use cmod_runtime::auth::Credentials;
use cmod_runtime::foundry::{FoundryClient, Timeouts};
use cmod_runtime::sources::Sources;
use futures_util::StreamExt as _;
use support::{Tls, bounded, origin};

/// The idle limit the tests shorten the default to.
const IDLE: Duration = Duration::from_secs(1);

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(10),
        idle: IDLE,
        response: Duration::from_secs(10),
    }
}

/// A server whose `/api/slow` reads a request body at about 500 KiB/s, then
/// answers; `/api/stall` reads nothing and never answers; `/api/trickle` sends a response body
/// in pieces 300 ms apart for 3 s; `/api/stuck` sends one piece and then nothing.
fn router() -> Router {
    Router::new()
        .route(
            "/api/slow",
            post(|req: Request<Body>| async move {
                let mut body = req.into_body().into_data_stream();
                let mut n = 0usize;
                while let Some(Ok(chunk)) = body.next().await {
                    n += chunk.len();
                    // About 500 KiB/s.
                    let pieces = chunk.len().div_ceil(16 * 1024) as u32;
                    tokio::time::sleep(Duration::from_millis(30) * pieces).await;
                }
                format!("{{\"received\":{n}}}")
            }),
        )
        .route(
            "/api/stall",
            post(|_req: Request<Body>| async move {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        )
        .route(
            "/api/trickle",
            get(|| async {
                let s = futures_util::stream::iter(0..10).then(|i| async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok::<_, std::io::Error>(bytes_of(i))
                });
                Body::from_stream(s)
            }),
        )
        .route(
            "/api/stuck",
            get(|| async {
                let first =
                    futures_util::stream::once(async { Ok::<_, std::io::Error>(bytes_of(0)) });
                let never = futures_util::stream::pending();
                Body::from_stream(first.chain(never))
            }),
        )
}

fn bytes_of(i: u8) -> Vec<u8> {
    vec![b'a' + i; 1000]
}

async fn foundry_client(tls: &Tls, base: &str) -> FoundryClient {
    let vars = HashMap::from([("DEFAULT_CA_PATH", tls.ca_path.clone())]);
    FoundryClient::builder()
        .foundry_url(base)
        .credentials(Credentials::Pipeline(Secret::new("planted-token-7c1d")))
        .timeouts(timeouts())
        .build_from_lookup(&|k| vars.get(k).cloned())
        .unwrap()
}

#[tokio::test]
async fn an_upload_that_keeps_progressing_outlives_the_idle_limit() {
    let dir = tempfile::tempdir().unwrap();
    let tls = Tls::new(dir.path());
    let server = tls.serve(router(), true).await;
    let client = foundry_client(&tls, &origin(&server)).await;
    // 2 MiB read at about 500 KiB/s: well over the 1 s idle limit in total.
    let body = vec![7u8; 2 * 1024 * 1024];
    let started = Instant::now();
    let answer: serde_json::Value = bounded(
        client
            .post("/slow?secret=planted-query")
            .body(body, "application/octet-stream")
            .send_json(),
    )
    .await
    .unwrap();
    assert_eq!(answer["received"], 2 * 1024 * 1024);
    assert!(started.elapsed() > 3 * IDLE, "{:?}", started.elapsed());
    server.shutdown().await;
}

#[tokio::test]
async fn an_upload_the_server_stops_taking_fails_with_an_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let tls = Tls::new(dir.path());
    let server = tls.serve(router(), true).await;
    let client = foundry_client(&tls, &origin(&server)).await;
    let body = vec![7u8; 64 * 1024 * 1024];
    let started = Instant::now();
    let err = bounded(
        client
            .post("/stall?secret=planted-query")
            .body(body, "application/octet-stream")
            .send(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("timed out"), "{text}");
    assert!(
        text.contains(&format!("{}/api/stall", origin(&server))),
        "{text}"
    );
    assert!(!text.contains("planted-query"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_download_that_keeps_progressing_outlives_the_idle_limit_and_one_that_stalls_fails() {
    let dir = tempfile::tempdir().unwrap();
    let tls = Tls::new(dir.path());
    let server = tls.serve(router(), false).await;
    let client = foundry_client(&tls, &origin(&server)).await;
    let body = bounded(client.get("/trickle").send_bytes()).await.unwrap();
    assert_eq!(body.len(), 10_000);

    let started = Instant::now();
    let err = bounded(client.get("/stuck?secret=planted-query").send_bytes())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("timed out") || text.contains("stalled"),
        "{text}"
    );
    assert!(text.contains("/api/stuck"), "{text}");
    assert!(!text.contains("planted-query"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

fn source_vars(dir: &std::path::Path, tls: &Tls, url: &str) -> HashMap<&'static str, String> {
    let conf = dir.join("sources.json");
    std::fs::write(
        &conf,
        serde_json::json!({
            "Slow": {"httpConnectionConfig": {
                "url": url,
                "authHeaders": {},
                "queryParameters": {"key": "planted-query"}
            }}
        })
        .to_string(),
    )
    .unwrap();
    HashMap::from([
        ("SOURCE_CONFIGURATIONS_PATH", conf.display().to_string()),
        ("DEFAULT_CA_PATH", tls.ca_path.clone()),
        ("CMOD_SOURCE_IDLE_TIMEOUT_SECS", "1".to_owned()),
        ("CMOD_SOURCE_RESPONSE_TIMEOUT_SECS", "5".to_owned()),
    ])
}

#[tokio::test]
async fn sources_use_idle_limits_and_honour_a_per_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let tls = Tls::new(dir.path());
    let router = router().route(
        "/api/late",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(6)).await;
            "late"
        }),
    );
    let server = tls.serve(router, true).await;
    let vars = source_vars(dir.path(), &tls, &format!("{}/api", origin(&server)));
    let lookup = |k: &str| vars.get(k).cloned();
    let source = Sources::from_lookup(&lookup).unwrap();
    let client = source
        .source("Slow")
        .unwrap()
        .http_client_from_lookup(&lookup)
        .unwrap();

    // A download taking 3 s in all, never idle for 1 s.
    let resp = bounded(client.get("/trickle").send()).await.unwrap();
    let body = bounded(resp.bytes()).await.unwrap();
    assert_eq!(body.len(), 10_000);

    // An upload taking longer than the limits, never idle.
    let resp = bounded(client.post("/slow").body(vec![1u8; 2 * 1024 * 1024]).send())
        .await
        .unwrap();
    assert!(resp.status().is_success());

    // Headers after 6 s: beyond the 5 s response limit, within a per-request 10 s.
    let err = bounded(client.get("/late").send()).await.unwrap_err();
    let text = format!("{err}");
    assert!(err.is_timeout(), "{text}");
    assert!(text.contains("/api/late"), "{text}");
    assert!(!text.contains("planted-query"), "{text}");
    let resp = bounded(client.get("/late").timeout(Duration::from_secs(10)).send())
        .await
        .unwrap();
    assert_eq!(bounded(resp.text()).await.unwrap(), "late");

    // A stalled download fails within a few seconds, naming no secret.
    let resp = bounded(client.get("/stuck").send()).await.unwrap();
    let started = Instant::now();
    let err = bounded(resp.bytes()).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("planted-query"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

/// An open `FileWriter` that writes a piece every 1.5 s (more than the 1 s idle limit between
/// two chunks on the wire) for about 4.5 s: waiting for the writer is the producer's time,
/// never a network stall.
#[cmod_runtime::pipeline(input = "raw", output = "out")]
async fn slow_writer(
    _raw: cmod_runtime::DatasetInput,
    out: cmod_runtime::DatasetOutput,
) -> Result<(), cmod_runtime::pipeline::PipelineError> {
    let mut writer = out.create("slow.bin");
    for i in 0..3u8 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        writer.write(vec![i; 300 * 1024]).await?;
    }
    writer.finish().await?;
    Ok(())
}

#[tokio::test]
async fn a_pipeline_file_writer_open_longer_than_the_idle_limit_succeeds() {
    use cmod_local::foundry::{LocalFoundry, LocalFoundryOptions};
    use cmod_local::foundry::{PipelineResource, ResourceKind};
    const IN: &str = "ri.foundry.main.dataset.unused";
    const OUT: &str = "ri.foundry.main.dataset.slow";
    let dir = tempfile::tempdir().unwrap();
    let foundry = LocalFoundry::start(LocalFoundryOptions {
        dir: Some(dir.path().join("foundry")),
        data: cmod_local::foundry::DataOptions {
            dir: Some(dir.path().join("data")),
            ..Default::default()
        },
        ..LocalFoundryOptions::default()
    })
    .await
    .unwrap();
    foundry.data().create_dataset(IN).unwrap();
    foundry.data().create_dataset(OUT).unwrap();
    let mut vars: HashMap<String, String> = foundry
        .pipeline_env(&[
            PipelineResource::new("raw", IN, ResourceKind::Dataset),
            PipelineResource::new("out", OUT, ResourceKind::Dataset),
        ])
        .unwrap()
        .into_iter()
        .collect();
    vars.insert("CMOD_FOUNDRY_IDLE_TIMEOUT_SECS".into(), "1".into());
    let lookup = move |k: &str| vars.get(k).cloned();
    let started = Instant::now();
    bounded(cmod_runtime::pipeline::run_pipeline_with(
        cmod_runtime::pipeline_def!(slow_writer),
        &lookup,
        std::future::pending(),
    ))
    .await
    .unwrap();
    assert!(started.elapsed() > 4 * IDLE, "{:?}", started.elapsed());
    let written = foundry.data().read_file(OUT, "master", "slow.bin").unwrap();
    assert_eq!(written.len(), 3 * 300 * 1024);
}
