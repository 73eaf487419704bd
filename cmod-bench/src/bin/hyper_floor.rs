//! The thinnest floor the benchmark knows (issue 15): a hand-written poll/post loop on hyper's
//! HTTP/1 client connection, over tokio-rustls with the same rustls setup as `baseline.rs`
//! (ring, safe default protocol versions, trusting only `DEFAULT_CA_PATH`), on a
//! **current-thread** Tokio runtime.
//!
//! `MAX_CONCURRENT_TASKS` independent pollers, each with a connection of its own, each looping
//! `GET job → parse jobId/queryType/query → compute inline → POST result`. No pool, no URL
//! parsing per request, no framework, no schemas, no restart notification, no retries beyond
//! "reconnect and poll again", no logging, no panic isolation.
//!
//! It serves the same functions as `bench_module.rs`: `add` (also as `add_async`), `echo`,
//! `count` (also as `count_stream`; one chunk per item) and `sleep_ms` (an async sleep, for slot
//! utilization).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Either, Full, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Why the floor cannot start.
#[derive(Debug, thiserror::Error)]
enum FloorError {
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
    #[error("cannot build the TLS client: {0}")]
    Tls(String),
}

fn env(var: &'static str) -> Result<String, FloorError> {
    std::env::var(var).map_err(|_| FloorError::MissingVar(var))
}

fn read(var: &'static str) -> Result<Vec<u8>, FloorError> {
    let path = env(var)?;
    std::fs::read(&path).map_err(|source| FloorError::File { var, path, source })
}

fn invalid(var: &'static str, value: &str, message: impl ToString) -> FloorError {
    FloorError::Invalid {
        var,
        value: value.to_owned(),
        message: message.to_string(),
    }
}

/// The stream of a `count` result: one chunk per item.
type CountStream = futures_util::stream::Iter<
    std::iter::Map<std::ops::Range<i64>, fn(i64) -> Result<Frame<Bytes>, Infallible>>,
>;
/// Every request body: a whole buffer, or a streamed `count`.
type Body = Either<Full<Bytes>, StreamBody<CountStream>>;

/// What every poller shares: where to connect, the request targets, the token.
struct Target {
    tls: tokio_rustls::TlsConnector,
    addr: SocketAddr,
    server_name: ServerName<'static>,
    host: HeaderValue,
    get_job: Uri,
    /// The path of POST_RESULT_URI, without a trailing `/`.
    result_path: String,
    token: HeaderValue,
}

impl Target {
    async fn from_env() -> Result<Self, FloorError> {
        let get_job_text = env("GET_JOB_URI")?;
        let get_job_uri = get_job_text
            .parse::<Uri>()
            .map_err(|e| invalid("GET_JOB_URI", &get_job_text, e))?;
        let post_text = env("POST_RESULT_URI")?;
        let post_uri = post_text
            .parse::<Uri>()
            .map_err(|e| invalid("POST_RESULT_URI", &post_text, e))?;
        let authority = get_job_uri
            .authority()
            .ok_or_else(|| invalid("GET_JOB_URI", &get_job_text, "no host"))?
            .clone();
        let port = authority.port_u16().unwrap_or(443);
        let host_name = authority.host().to_owned();
        let addr = if host_name == "localhost" {
            SocketAddr::from(([127, 0, 0, 1], port))
        } else {
            tokio::net::lookup_host((host_name.as_str(), port))
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| invalid("GET_JOB_URI", &get_job_text, "cannot resolve the host"))?
        };
        let server_name = ServerName::try_from(host_name.clone())
            .map_err(|e| invalid("GET_JOB_URI", &get_job_text, e))?;
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|e| invalid("GET_JOB_URI", &get_job_text, e))?;
        let get_job = get_job_uri
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
        let result_path = post_uri.path().trim_end_matches('/').to_owned();

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
        .map_err(|e| FloorError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            addr,
            server_name,
            host,
            get_job,
            result_path,
            token,
        })
    }

    /// A new HTTP/1 connection; its driver runs as a task on this thread's runtime.
    async fn connect(&self) -> Result<SendRequest<Body>, String> {
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        // Flattened writes: small chunks (a streamed `count`) are copied into one buffer and
        // written together, not queued as separate slices (a flush every few chunks).
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP/1 handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn request(&self, method: Method, uri: Uri, body: Body) -> Result<Request<Body>, String> {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(HOST, self.host.clone())
            .header("Module-Auth-Token", self.token.clone())
            .body(body)
            .map_err(|e| format!("request: {e}"))
    }

    /// One GET job: the envelope, or `None` when there is no job (204) or an unexpected status.
    async fn get_job(&self, conn: &mut SendRequest<Body>) -> Result<Option<Bytes>, String> {
        let req = self.request(
            Method::GET,
            self.get_job.clone(),
            Either::Left(Full::new(Bytes::new())),
        )?;
        conn.ready().await.map_err(|e| format!("GET job: {e}"))?;
        let resp = conn
            .send_request(req)
            .await
            .map_err(|e| format!("GET job: {e}"))?;
        let ok = resp.status() == StatusCode::OK;
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("GET job: {e}"))?
            .to_bytes();
        Ok(ok.then_some(body))
    }

    /// Computes the job in `envelope` and posts its result.
    async fn answer(&self, conn: &mut SendRequest<Body>, envelope: &[u8]) -> Result<(), String> {
        let envelope: Envelope<'_> =
            serde_json::from_slice(envelope).map_err(|e| format!("job envelope: {e}"))?;
        let job = envelope.job;
        let body = if job.query_type == "sleep_ms" {
            match serde_json::from_str::<SleepInput>(job.query.get()) {
                Ok(i) => {
                    tokio::time::sleep(Duration::from_millis(i.ms)).await;
                    Either::Left(Full::new(Bytes::from(i.ms.to_string())))
                }
                Err(e) => error_body(&e.to_string()),
            }
        } else {
            compute(job.query_type, job.query)
        };
        let uri = format!("{}/{}", self.result_path, job.job_id)
            .parse::<Uri>()
            .map_err(|e| format!("result URI: {e}"))?;
        let mut req = self.request(Method::POST, uri, body)?;
        req.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        conn.ready()
            .await
            .map_err(|e| format!("POST result: {e}"))?;
        let resp = conn
            .send_request(req)
            .await
            .map_err(|e| format!("POST result: {e}"))?;
        let status = resp.status();
        resp.into_body()
            .collect()
            .await
            .map_err(|e| format!("POST result: {e}"))?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST result: HTTP {status}"))
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

#[derive(Deserialize)]
struct SleepInput {
    ms: u64,
}

fn item(k: i64) -> Result<Frame<Bytes>, Infallible> {
    Ok(Frame::data(Bytes::from(k.to_string())))
}

/// Runs the function a job names; the result (or a small JSON error) as a request body.
fn compute(function: &str, query: &RawValue) -> Body {
    let result = match function {
        "add" | "add_async" => serde_json::from_str::<AddInput>(query.get())
            .and_then(|i| serde_json::to_vec(&(i.x + i.y))),
        "echo" => serde_json::from_str::<EchoInput>(query.get())
            .and_then(|i| serde_json::to_vec(&i.payload)),
        "count" | "count_stream" => {
            return match serde_json::from_str::<CountInput>(query.get()) {
                // One chunk per item, no separators (docs/protocol.md §3.8).
                Ok(i) => {
                    let items: fn(i64) -> Result<Frame<Bytes>, Infallible> = item;
                    Either::Right(StreamBody::new(futures_util::stream::iter(
                        (0..i.n).map(items),
                    )))
                }
                Err(e) => error_body(&e.to_string()),
            };
        }
        other => return error_body(&format!("unknown function `{other}`")),
    };
    match result {
        Ok(bytes) => Either::Left(Full::new(Bytes::from(bytes))),
        Err(e) => error_body(&e.to_string()),
    }
}

fn error_body(message: &str) -> Body {
    Either::Left(Full::new(Bytes::from(
        serde_json::json!({ "error": message }).to_string(),
    )))
}

/// After a failed call, wait this long before reconnecting and polling again.
const RETRY_DELAY: Duration = Duration::from_millis(100);

/// One poller: its own connection, looping GET → compute → POST; reconnects after an error.
async fn poller(target: Arc<Target>) {
    loop {
        let mut conn = match target.connect().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("hyper-floor: {e}");
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
        };
        loop {
            let outcome = match target.get_job(&mut conn).await {
                Ok(Some(envelope)) => target.answer(&mut conn, &envelope).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                eprintln!("hyper-floor: {e}");
                tokio::time::sleep(RETRY_DELAY).await;
                break;
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), FloorError> {
    let target = Arc::new(Target::from_env().await?);
    let text = env("MAX_CONCURRENT_TASKS").unwrap_or_else(|_| "1".to_owned());
    let n = text
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid("MAX_CONCURRENT_TASKS", &text, "expected a positive integer"))?;
    let mut pollers = tokio::task::JoinSet::new();
    for _ in 0..n {
        pollers.spawn(poller(Arc::clone(&target)));
    }
    while pollers.join_next().await.is_some() {}
    Ok(())
}
