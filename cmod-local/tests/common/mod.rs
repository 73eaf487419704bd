//! Helpers shared by the integration tests: TLS clients and a bounded wait.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use cmod_local::{LocalRuntime, LocalRuntimeOptions};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Upper bound for any single wait in these tests: a hang fails fast instead of blocking CI.
pub const BOUND: Duration = Duration::from_secs(20);

/// A reqwest client that trusts exactly the CA(s) in `ca_pem` (rustls on ring).
pub fn client_trusting(ca_pem: &str) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(BOUND)
        .build()
        .unwrap()
}

/// A client for plain-HTTP servers (the invoke API). reqwest needs a rustls config even then,
/// as the workspace builds it without a default crypto provider.
pub fn http_client() -> reqwest::Client {
    client_trusting("")
}

/// A client for the runtime, plus URL helpers.
pub struct Module {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Module {
    pub fn new(rt: &LocalRuntime) -> Self {
        Self {
            client: client_trusting(rt.ca_pem()),
            base: format!(
                "https://localhost:{}{}",
                rt.runtime_addr().port(),
                cmod_local::runtime::API_PREFIX
            ),
            token: rt.token(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// `GET job` with the right token.
    pub async fn poll(&self) -> reqwest::Response {
        self.client
            .get(self.url("job"))
            .header("Module-Auth-Token", &self.token)
            .send()
            .await
            .unwrap()
    }

    /// Polls until a job arrives; returns `(job_id, queryType, query)`.
    pub async fn next_job(&self) -> (String, String, serde_json::Value) {
        tokio::time::timeout(BOUND, async {
            loop {
                let resp = self.poll().await;
                if resp.status() == 200 {
                    let v: serde_json::Value = resp.json_value().await;
                    let job = &v["computeModuleJobV1"];
                    return (
                        job["jobId"].as_str().unwrap().to_owned(),
                        job["queryType"].as_str().unwrap().to_owned(),
                        job["query"].clone(),
                    );
                }
                assert_eq!(resp.status(), 204);
            }
        })
        .await
        .expect("no job within the bound")
    }

    /// `POST results/{job_id}` with the right token.
    pub async fn post_result(
        &self,
        job_id: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(&format!("results/{job_id}")))
            .header("Module-Auth-Token", &self.token)
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

/// Options with a short long-poll, so idle polls come back quickly.
pub fn quick() -> LocalRuntimeOptions {
    LocalRuntimeOptions {
        long_poll_timeout: Duration::from_millis(300),
        ..LocalRuntimeOptions::default()
    }
}

/// The message of a JSON error response: `{"error": {"kind", "message"}}` (invoke API) or
/// `{"error": "…"}` (the runtime's own routes).
pub async fn error_message(resp: reqwest::Response) -> String {
    let v: serde_json::Value = resp.json_value().await;
    let error = &v["error"];
    if error.is_object() {
        assert!(error["kind"].is_string(), "an error `kind`: {v}");
    }
    error["message"]
        .as_str()
        .or(error.as_str())
        .expect("a JSON {\"error\": ...} body")
        .to_owned()
}

/// The `kind` of an invoke-API error response `{"error": {"kind", "message"}}`.
pub async fn error_kind_and_message(resp: reqwest::Response) -> (String, String) {
    let v: serde_json::Value = resp.json_value().await;
    let kind = v["error"]["kind"].as_str();
    let message = v["error"]["message"].as_str();
    match (kind, message) {
        (Some(k), Some(m)) => (k.to_owned(), m.to_owned()),
        _ => panic!("expected {{\"error\": {{\"kind\", \"message\"}}}}, got {v}"),
    }
}

/// Waits (bounded) until `cond` holds, checking every 10 ms.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(BOUND, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// `Response::json` without reqwest's `json` feature (not enabled in the workspace).
pub trait ResponseJson {
    /// The body parsed as JSON; panics on a non-JSON body.
    fn json_value<T: serde::de::DeserializeOwned>(self) -> impl Future<Output = T>;
}

impl ResponseJson for reqwest::Response {
    async fn json_value<T: serde::de::DeserializeOwned>(self) -> T {
        let bytes = self.bytes().await.unwrap();
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    }
}

/// `RequestBuilder::json` without reqwest's `json` feature.
pub trait RequestJson {
    /// Sends `value` as an `application/json` body.
    fn json_body(self, value: &serde_json::Value) -> Self;
}

impl RequestJson for reqwest::RequestBuilder {
    fn json_body(self, value: &serde_json::Value) -> Self {
        self.header("Content-Type", "application/json")
            .body(value.to_string())
    }
}
