//! The developer invoke API (plain HTTP on loopback), end to end with a reqwest "module" that
//! polls the runtime over HTTPS.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

mod common;

use common::{RequestJson, ResponseJson};

use std::time::Duration;

use cmod_local::{LocalRuntime, LocalRuntimeOptions};
use common::{BOUND, Module, error_kind_and_message, error_message, eventually, quick};
use serde_json::json;
use tokio::time::timeout;

async fn start() -> (LocalRuntime, String) {
    let rt = LocalRuntime::start(LocalRuntimeOptions {
        invoke_port: Some(0),
        ..quick()
    })
    .await
    .unwrap();
    let url = rt.invoke_url().unwrap();
    (rt, url)
}

fn http() -> reqwest::Client {
    common::http_client()
}

/// A minimal module: posts a schema, then answers `add` jobs with `x + y` and anything else
/// with an error object, until the task is aborted.
fn spawn_module(rt: &LocalRuntime) -> tokio::task::JoinHandle<()> {
    let m = Module::new(rt);
    tokio::spawn(async move {
        let schemas = json!([{"functionName": "add", "inputs": [], "output": {"type": "single", "single": {"dataType": {"type": "long", "long": {}}}}}]);
        let resp = m
            .client
            .post(m.url("schemas"))
            .header("Module-Auth-Token", &m.token)
            .json_body(&schemas)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        loop {
            let resp = m.poll().await;
            if resp.status() != 200 {
                continue;
            }
            let v: serde_json::Value = resp.json_value().await;
            let job = &v["computeModuleJobV1"];
            let id = job["jobId"].as_str().unwrap();
            let body = match job["queryType"].as_str().unwrap() {
                "add" => {
                    let sum = job["query"]["x"].as_i64().unwrap() + job["query"]["y"].as_i64().unwrap();
                    json!(sum).to_string()
                }
                other => json!({"error": format!("unknown function {other}"), "authHeader": job["authHeader"]}).to_string(),
            };
            assert_eq!(m.post_result(id, body).await.status(), 204);
        }
    })
}

#[tokio::test]
async fn call_a_function_end_to_end() {
    let (rt, url) = start().await;
    let module = spawn_module(&rt);
    let resp = http()
        .post(format!("{url}/functions/add"))
        .json_body(&json!({"x": 40, "y": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let job_id = resp.headers()["x-cmod-job-id"].to_str().unwrap().to_owned();
    assert_eq!(resp.text().await.unwrap(), "42");
    assert_eq!(job_id.len(), 36, "a UUID-shaped job id: {job_id}");
    assert!(rt.in_flight().is_empty());

    // The caller's Authorization header becomes the job's authHeader.
    let resp = http()
        .post(format!("{url}/functions/other"))
        .header("Authorization", "Bearer t0k")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json_value().await;
    assert_eq!(v["authHeader"], "Bearer t0k");

    let schemas: serde_json::Value = http()
        .get(format!("{url}/schemas"))
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(schemas[0]["functionName"], "add");
    let stats: serde_json::Value = http()
        .get(format!("{url}/stats"))
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(stats["results_accepted"], 2);
    module.abort();
    rt.shutdown().await;
}

#[tokio::test]
async fn malformed_json_gets_400_and_queues_nothing() {
    let (rt, url) = start().await;
    let resp = http()
        .post(format!("{url}/functions/add"))
        .body("{\"x\": 1,")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // The same shape as every other error (a function's error result included).
    let (kind, message) = error_kind_and_message(resp).await;
    assert_eq!(kind, "InvalidInput");
    assert!(
        message.contains("not valid JSON") && message.contains("`add`"),
        "{message}"
    );
    assert_eq!(rt.queued(), 0);
    // The server survives and still answers.
    let resp = http().get(format!("{url}/jobs")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    rt.shutdown().await;
}

#[tokio::test]
async fn schemas_404_before_the_module_posts_any() {
    let (rt, url) = start().await;
    let resp = http().get(format!("{url}/schemas")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(error_message(resp).await.contains("POST_SCHEMA_URI"));
    rt.shutdown().await;
}

#[tokio::test]
async fn jobs_lists_the_jobs_in_flight() {
    let (rt, url) = start().await;
    let m = Module::new(&rt);
    let call = tokio::spawn({
        let url = url.clone();
        async move {
            http()
                .post(format!("{url}/functions/slow"))
                .body("{}")
                .send()
                .await
                .unwrap()
        }
    });
    let (job_id, function, _) = m.next_job().await;
    assert_eq!(function, "slow");
    let jobs: serde_json::Value = http()
        .get(format!("{url}/jobs"))
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(
        jobs,
        json!({"inFlight": [{"jobId": job_id, "function": "slow"}], "queued": 0})
    );
    assert_eq!(m.post_result(&job_id, "\"done\"").await.status(), 204);
    let resp = timeout(BOUND, call).await.unwrap().unwrap();
    assert_eq!(resp.text().await.unwrap(), "\"done\"");
    rt.shutdown().await;
}

#[tokio::test]
async fn timeout_gets_504_and_cancels_the_queued_job() {
    let (rt, url) = start().await;
    let resp = http()
        .post(format!("{url}/functions/nobody?timeout_secs=0.2"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    assert!(error_message(resp).await.contains("nobody"));
    assert_eq!(
        rt.queued(),
        0,
        "a module starting later does not get the abandoned job"
    );
    let resp = http()
        .post(format!("{url}/functions/f?timeout_secs=soon"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(error_message(resp).await.contains("timeout_secs"));
    rt.shutdown().await;
}

#[tokio::test]
async fn a_caller_that_disconnects_abandons_its_job() {
    let (rt, url) = start().await;
    let gone = http()
        .post(format!("{url}/functions/f"))
        .body("{}")
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(gone.is_timeout());
    eventually("the abandoned job to be cancelled", || rt.queued() == 0).await;
    rt.shutdown().await;
}

#[tokio::test]
async fn unknown_invoke_routes_get_json_errors() {
    let (rt, url) = start().await;
    let resp = http().get(format!("{url}/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(error_message(resp).await.contains("/functions/"));
    let resp = http()
        .get(format!("{url}/functions/add"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    rt.shutdown().await;
}

/// A streamed body whose chunks the test sends one by one (`None` ends it, `Some(Err)` breaks
/// it off mid-body).
fn chunk_channel() -> (
    tokio::sync::mpsc::UnboundedSender<Result<&'static str, std::io::Error>>,
    reqwest::Body,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<&'static str, std::io::Error>>();
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    (tx, reqwest::Body::wrap_stream(stream))
}

#[tokio::test]
async fn a_streamed_result_is_served_as_json_lines_as_the_items_arrive() {
    let (rt, url) = start().await;
    let m = Module::new(&rt);
    let caller = tokio::spawn(async move {
        http()
            .post(format!("{url}/functions/count"))
            .body("{}")
            .send()
            .await
            .unwrap()
    });
    let (job_id, _, _) = m.next_job().await;
    let (chunks, body) = chunk_channel();
    let post = tokio::spawn(async move { m.post_result(&job_id, body).await.status() });
    chunks.send(Ok("0")).unwrap();
    let mut resp = timeout(BOUND, caller).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    // The first item is readable while the module has not produced the second.
    let first = timeout(BOUND, resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"0\n");
    chunks.send(Ok("{\"a\":")).unwrap();
    chunks.send(Ok("[1,2]}")).unwrap();
    chunks.send(Ok("\"three\"")).unwrap();
    drop(chunks);
    let rest = timeout(BOUND, resp.bytes()).await.unwrap().unwrap();
    assert_eq!(&rest[..], b"{\"a\":[1,2]}\n\"three\"\n");
    assert_eq!(timeout(BOUND, post).await.unwrap().unwrap(), 204);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_streamed_call_reports_items_then_the_whole_result() {
    use cmod_local::runtime::CallEvent;
    let rt = LocalRuntime::start(quick()).await.unwrap();
    let m = Module::new(&rt);
    let mut call = rt.call_streamed("count", json!({}));
    let (job_id, function, _) = m.next_job().await;
    assert_eq!(
        (job_id.as_str(), function.as_str()),
        (call.job_id(), "count")
    );
    let (chunks, body) = chunk_channel();
    let post = tokio::spawn({
        let job_id = job_id.clone();
        async move { m.post_result(&job_id, body).await.status() }
    });
    chunks.send(Ok("1")).unwrap();
    assert!(matches!(
        call.next(BOUND).await.unwrap(),
        CallEvent::Streaming
    ));
    match call.next(BOUND).await.unwrap() {
        CallEvent::Item(item) => assert_eq!(&item[..], b"1"),
        other => panic!("expected the first item, got {other:?}"),
    }
    chunks.send(Ok("2")).unwrap();
    drop(chunks);
    match call.next(BOUND).await.unwrap() {
        CallEvent::Item(item) => assert_eq!(&item[..], b"2"),
        other => panic!("expected the second item, got {other:?}"),
    }
    match call.next(BOUND).await.unwrap() {
        CallEvent::Done(result) => {
            assert_eq!(result.body, b"12");
            assert!(result.chunked);
            assert_eq!(call.rest_after_items(&result), None);
        }
        other => panic!("expected the result, got {other:?}"),
    }
    assert_eq!(timeout(BOUND, post).await.unwrap().unwrap(), 204);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_stream_re_sent_after_an_interruption_is_reported_once() {
    use cmod_local::runtime::CallEvent;
    let rt = LocalRuntime::start(quick()).await.unwrap();
    let m = Module::new(&rt);
    let mut call = rt.call_streamed("count", json!({}));
    let (job_id, _, _) = m.next_job().await;
    // First attempt: one item, then the connection breaks off.
    let (chunks, body) = chunk_channel();
    let first = tokio::spawn({
        let client = m.client.clone();
        let url = m.url(&format!("results/{job_id}"));
        let token = m.token.clone();
        async move {
            client
                .post(url)
                .header("Module-Auth-Token", token)
                .body(body)
                .send()
                .await
        }
    });
    chunks.send(Ok("{\"n\":0}")).unwrap();
    assert!(matches!(
        call.next(BOUND).await.unwrap(),
        CallEvent::Streaming
    ));
    match call.next(BOUND).await.unwrap() {
        CallEvent::Item(item) => assert_eq!(&item[..], b"{\"n\":0}"),
        other => panic!("expected the first item, got {other:?}"),
    }
    chunks.send(Err(std::io::Error::other("cut"))).unwrap();
    let _ = timeout(BOUND, first).await.unwrap();
    // The module re-sends the whole body (not chunked, as a replay is).
    assert_eq!(
        m.post_result(&job_id, "{\"n\":0}{\"n\":1}").await.status(),
        204
    );
    match call.next(BOUND).await.unwrap() {
        CallEvent::Done(result) => {
            assert_eq!(
                call.rest_after_items(&result).as_deref(),
                Some(&b"{\"n\":1}\n"[..])
            );
        }
        other => panic!("expected the result, got {other:?}"),
    }
    rt.shutdown().await;
}

#[tokio::test]
async fn a_single_result_through_a_streamed_call_is_one_done_event() {
    use cmod_local::runtime::CallEvent;
    let rt = LocalRuntime::start(quick()).await.unwrap();
    let m = Module::new(&rt);
    let mut call = rt.call_streamed("add", json!({"x": 1, "y": 2}));
    let (job_id, _, _) = m.next_job().await;
    assert_eq!(m.post_result(&job_id, "3").await.status(), 204);
    match call.next(BOUND).await.unwrap() {
        CallEvent::Done(result) => assert_eq!(result.body, b"3"),
        other => panic!("expected the result, got {other:?}"),
    }
    rt.shutdown().await;
}
