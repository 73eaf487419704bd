//! The floor the benchmark compares cmod with: the smallest hand-written compute-module client.
//!
//! No framework: read the environment, build one `reqwest` client over the same TLS setup as
//! cmod-runtime (rustls on ring, trusting only `DEFAULT_CA_PATH`, HTTP/1, `localhost` pinned to
//! 127.0.0.1), then run `MAX_CONCURRENT_TASKS` pollers, each looping
//! `GET job → parse jobId/queryType/query → compute → POST result`. No schemas, no restart
//! notification, no retries beyond "poll again", no logging, no panic isolation: everything a
//! framework adds is left out, so no framework can beat it.
//!
//! It serves the same functions as `bench_module.rs`: `add` (also as `add_async`), `echo`,
//! `count` (also as `count_stream`; streamed as one chunk per item through a chunked request
//! body) and `sleep_ms` (an async sleep, for slot utilization).
//!
//! With `--one-poll-at-a-time` it takes cmod's required shape instead (issue 4: one long-poll at
//! a time, only while one of `MAX_CONCURRENT_TASKS` slots is free, each job on its own task, the
//! sync `add` on Tokio's blocking pool), so the benchmark can tell the cost of that shape from
//! the cost of the framework.

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
    /// cmod's shape: a sync function (`add`) runs on Tokio's blocking pool.
    sync_on_blocking_pool: bool,
}

impl Client {
    fn from_env(sync_on_blocking_pool: bool) -> Result<Self, BaselineError> {
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
            sync_on_blocking_pool,
        })
    }

    /// One GET job: the envelope, or `None` when there is no job (204) or an unexpected status.
    async fn get_job(&self) -> Result<Option<Bytes>, String> {
        let resp = self
            .http
            .get(self.get_job.clone())
            .header("Module-Auth-Token", self.token.clone())
            .send()
            .await
            .map_err(|e| format!("GET job: {e}"))?;
        if resp.status() != reqwest::StatusCode::OK {
            // 204: no job yet; anything else: poll again.
            return Ok(None);
        }
        resp.bytes()
            .await
            .map(Some)
            .map_err(|e| format!("GET job: {e}"))
    }

    /// Computes the job in `envelope` and posts its result.
    async fn answer(&self, envelope: &[u8]) -> Result<(), String> {
        let envelope: Envelope<'_> =
            serde_json::from_slice(envelope).map_err(|e| format!("job envelope: {e}"))?;
        let job = envelope.job;
        let result = if job.query_type == "sleep_ms" {
            match serde_json::from_str::<SleepInput>(job.query.get()) {
                Ok(i) => {
                    tokio::time::sleep(Duration::from_millis(i.ms)).await;
                    reqwest::Body::from(i.ms.to_string())
                }
                Err(e) => error_body(&e.to_string()),
            }
        } else if self.sync_on_blocking_pool && job.query_type == "add" {
            let query = job.query.get().to_owned();
            let on_pool = tokio::task::spawn_blocking(move || {
                RawValue::from_string(query).map(|q| compute("add", &q))
            });
            match on_pool.await {
                Ok(Ok(body)) => body,
                Ok(Err(e)) => error_body(&e.to_string()),
                Err(e) => error_body(&e.to_string()),
            }
        } else {
            compute(job.query_type, job.query)
        };
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
struct SleepInput {
    ms: u64,
}

#[derive(Deserialize)]
struct CountInput {
    n: i64,
}

/// Runs the function a job names; the result (or a small JSON error) as a request body.
fn compute(function: &str, query: &RawValue) -> reqwest::Body {
    let result = match function {
        "add" | "add_async" => serde_json::from_str::<AddInput>(query.get())
            .and_then(|i| serde_json::to_vec(&(i.x + i.y))),
        "echo" => serde_json::from_str::<EchoInput>(query.get())
            .and_then(|i| serde_json::to_vec(&i.payload)),
        "count" | "count_stream" => {
            return match serde_json::from_str::<CountInput>(query.get()) {
                // One chunk per item, no separators (docs/protocol.md §3.8).
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

/// After a failed call, wait this long before polling again.
const RETRY_DELAY: Duration = Duration::from_millis(100);

/// `MAX_CONCURRENT_TASKS` pollers, each looping GET → compute → POST.
async fn pollers(client: Arc<Client>, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let client = Arc::clone(&client);
        tasks.spawn(async move {
            loop {
                let outcome = match client.get_job().await {
                    Ok(Some(envelope)) => client.answer(&envelope).await,
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(e) = outcome {
                    eprintln!("baseline: {e}");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// cmod's structure, hand-written: one poll in flight, only while one of `n` slots is free;
/// each job computed and answered on a task of its own.
async fn one_poll_at_a_time(client: Arc<Client>, n: usize) {
    let slots = Arc::new(tokio::sync::Semaphore::new(n));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        match client.get_job().await {
            Ok(Some(envelope)) => {
                let client = Arc::clone(&client);
                tokio::spawn(async move {
                    if let Err(e) = client.answer(&envelope).await {
                        eprintln!("baseline: {e}");
                    }
                    drop(permit);
                });
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("baseline: {e}");
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BaselineError> {
    let shaped = std::env::args().any(|a| a == "--one-poll-at-a-time");
    let client = Arc::new(Client::from_env(shaped)?);
    let text = env("MAX_CONCURRENT_TASKS").unwrap_or_else(|_| "1".to_owned());
    let n = text
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid("MAX_CONCURRENT_TASKS", &text, "expected a positive integer"))?;
    // Like every module, the loop runs on a worker task, not on the main thread.
    let serving = if shaped {
        tokio::spawn(one_poll_at_a_time(client, n))
    } else {
        tokio::spawn(pollers(client, n))
    };
    let _ = serving.await;
    Ok(())
}
