//! The floor the benchmark compares cmod with: the smallest hand-written compute-module client.
//!
//! No framework: read the environment, build one `reqwest` client over the same TLS setup as
//! cmod-runtime (rustls on ring, trusting only `DEFAULT_CA_PATH`, HTTP/1, `localhost` pinned to
//! 127.0.0.1), then run `MAX_CONCURRENT_TASKS` pollers, each looping
//! `GET job → parse jobId/queryType/query → compute → POST result`. No schemas, no restart
//! notification, no retries beyond "poll again", no logging, no panic isolation: everything a
//! framework adds is left out, so no framework can beat it.
//!
//! It serves the same functions as `bench_module.rs`: `add`, `echo` and `count` (streamed as one
//! chunk per item through a chunked request body).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Why the baseline cannot start.
#[derive(Debug, thiserror::Error)]
enum BaselineError {
    #[error("environment variable {0} is not set")]
    MissingVar(&'static str),
    #[error("{var} = `{value}` is invalid: {message}")]
    Invalid {
        var: &'static str,
        value: String,
        message: String,
    },
    #[error("{var}: cannot read {path}: {source}")]
    File {
        var: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

fn env(var: &'static str) -> Result<String, BaselineError> {
    std::env::var(var).map_err(|_| BaselineError::MissingVar(var))
}

fn read(var: &'static str) -> Result<Vec<u8>, BaselineError> {
    let path = env(var)?;
    std::fs::read(&path).map_err(|source| BaselineError::File { var, path, source })
}

fn invalid(var: &'static str, value: &str, message: impl ToString) -> BaselineError {
    BaselineError::Invalid {
        var,
        value: value.to_owned(),
        message: message.to_string(),
    }
}

/// The client every poller shares.
struct Client {
    http: reqwest::Client,
    get_job: Url,
    post_result: String,
    token: HeaderValue,
}

impl Client {
    fn from_env() -> Result<Self, BaselineError> {
        let get_job_text = env("GET_JOB_URI")?;
        let get_job =
            Url::parse(&get_job_text).map_err(|e| invalid("GET_JOB_URI", &get_job_text, e))?;
        let post_result = env("POST_RESULT_URI")?;
        let token_text = String::from_utf8_lossy(&read("MODULE_AUTH_TOKEN")?)
            .trim()
            .to_owned();
        let token = HeaderValue::from_str(&token_text)
            .map_err(|e| invalid("MODULE_AUTH_TOKEN", "<file contents>", e))?;

        let pem = read("DEFAULT_CA_PATH")?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| invalid("DEFAULT_CA_PATH", "<file contents>", e))?;
            roots
                .add(cert)
                .map_err(|e| invalid("DEFAULT_CA_PATH", "<file contents>", e))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| BaselineError::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();

        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .http1_only()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .no_proxy();
        if get_job.host_str() == Some("localhost") {
            let port = get_job.port_or_known_default().unwrap_or(443);
            builder = builder.resolve("localhost", SocketAddr::from(([127, 0, 0, 1], port)));
        }
        let http = builder
            .build()
            .map_err(|e| BaselineError::Client(e.to_string()))?;
        Ok(Self {
            http,
            get_job,
            post_result,
            token,
        })
    }

    /// One GET job; when it brings a job, computes it and posts the result.
    async fn poll_once(&self) -> Result<(), String> {
        let resp = self
            .http
            .get(self.get_job.clone())
            .header("Module-Auth-Token", self.token.clone())
            .send()
            .await
            .map_err(|e| format!("GET job: {e}"))?;
        if resp.status() != reqwest::StatusCode::OK {
            // 204: no job yet; anything else: poll again.
            return Ok(());
        }
        let body = resp.bytes().await.map_err(|e| format!("GET job: {e}"))?;
        let envelope: Envelope<'_> =
            serde_json::from_slice(&body).map_err(|e| format!("job envelope: {e}"))?;
        let job = envelope.job;
        let result = compute(job.query_type, job.query);
        let resp = self
            .http
            .post(format!("{}/{}", self.post_result, job.job_id))
            .header("Module-Auth-Token", self.token.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(result)
            .send()
            .await
            .map_err(|e| format!("POST result: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("POST result: HTTP {}", resp.status()))
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "computeModuleJobV1", borrow)]
    job: Job<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job<'a> {
    job_id: &'a str,
    query_type: &'a str,
    #[serde(borrow)]
    query: &'a RawValue,
}

#[derive(Deserialize)]
struct AddInput {
    x: i64,
    y: i64,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    text: String,
    numbers: Vec<i64>,
    note: Option<String>,
}

#[derive(Deserialize)]
struct EchoInput {
    payload: Payload,
}

#[derive(Deserialize)]
struct CountInput {
    n: i64,
}

/// Runs the function a job names; the result (or a small JSON error) as a request body.
fn compute(function: &str, query: &RawValue) -> reqwest::Body {
    let result = match function {
        "add" => serde_json::from_str::<AddInput>(query.get())
            .and_then(|i| serde_json::to_vec(&(i.x + i.y))),
        "echo" => serde_json::from_str::<EchoInput>(query.get())
            .and_then(|i| serde_json::to_vec(&i.payload)),
        "count" => {
            return match serde_json::from_str::<CountInput>(query.get()) {
                // One chunk per item, no separators (PROTOCOL §3.8).
                Ok(i) => reqwest::Body::wrap_stream(futures_util::stream::iter(
                    (0..i.n).map(|k| Ok::<_, std::io::Error>(Bytes::from(k.to_string()))),
                )),
                Err(e) => error_body(&e.to_string()),
            };
        }
        other => return error_body(&format!("unknown function `{other}`")),
    };
    match result {
        Ok(bytes) => reqwest::Body::from(bytes),
        Err(e) => error_body(&e.to_string()),
    }
}

fn error_body(message: &str) -> reqwest::Body {
    reqwest::Body::from(serde_json::json!({ "error": message }).to_string())
}

#[tokio::main]
async fn main() -> Result<(), BaselineError> {
    let client = Arc::new(Client::from_env()?);
    let text = env("MAX_CONCURRENT_TASKS").unwrap_or_else(|_| "1".to_owned());
    let pollers = text
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid("MAX_CONCURRENT_TASKS", &text, "expected a positive integer"))?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..pollers {
        let client = Arc::clone(&client);
        tasks.spawn(async move {
            loop {
                if let Err(e) = client.poll_once().await {
                    eprintln!("baseline: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}
