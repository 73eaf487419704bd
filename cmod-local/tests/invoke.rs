//! The developer invoke API (plain HTTP on loopback), end to end with a reqwest "module" that
//! polls the runtime over HTTPS.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

mod common;

use common::{RequestJson, ResponseJson};

use std::time::Duration;

use cmod_local::{LocalRuntime, LocalRuntimeOptions};
use common::{BOUND, Module, error_message, eventually, quick};
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
    let message = error_message(resp).await;
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
