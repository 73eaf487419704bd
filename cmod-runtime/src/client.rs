//! The compute-module runtime client: get job, post result, post schemas, restart notification
//! (PROTOCOL §3.1). One `reqwest` client with a connection pool, TLS trusting exactly the
//! configured CA files.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::RuntimeConfig;
use crate::invoke::{ErrorKind, JobError, Output};

/// Header carrying the module auth token.
const AUTH_HEADER: &str = "Module-Auth-Token";
/// Connection establishment (TCP + TLS) limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Limit on one GET job: long-polls are held by the runtime for a few seconds at most.
const POLL_TIMEOUT: Duration = Duration::from_secs(120);
/// Limit on one non-streamed result post, schema post or restart notification.
const POST_TIMEOUT: Duration = Duration::from_secs(120);
/// How many times a result post is tried before the fallback error result.
const RESULT_ATTEMPTS: u32 = 5;
/// How many times the fallback error result is tried.
const FALLBACK_ATTEMPTS: u32 = 3;
/// A streamed result is kept in memory for a retry only up to this size.
const STREAM_REPLAY_LIMIT: usize = 16 * 1024 * 1024;

/// A failed call to the runtime.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// No HTTP response (connection refused, TLS failure, timeout, …).
    #[error("{during}: {message}")]
    Transport {
        during: &'static str,
        message: String,
        connect: bool,
    },
    /// An HTTP response with an unexpected status.
    #[error("{during}: HTTP {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        during: &'static str,
        status: u16,
        body: String,
    },
    /// A response that could not be understood.
    #[error("{during}: {message}")]
    Protocol {
        during: &'static str,
        message: String,
    },
}

impl ClientError {
    /// Whether retrying may help (transport problems, 408, 429 and 5xx).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Status { status, .. } => {
                *status == 408 || *status == 429 || (500..600).contains(status)
            }
            ClientError::Protocol { .. } => false,
        }
    }

    /// Whether the runtime could not be connected to at all.
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, ClientError::Transport { connect: true, .. })
    }

    /// Whether the failure is a TLS verification problem (wrong CA, bad certificate).
    pub(crate) fn is_tls(&self) -> bool {
        match self {
            ClientError::Transport { message, .. } => {
                let m = message.to_ascii_lowercase();
                m.contains("certificate") || m.contains("tls") || m.contains("handshake")
            }
            _ => false,
        }
    }

    fn transport(during: &'static str, e: &reqwest::Error) -> Self {
        ClientError::Transport {
            during,
            message: describe(e),
            connect: e.is_connect(),
        }
    }
}

/// Renders a reqwest error as its kind plus its causes (the TLS reason is in the source chain).
fn describe(e: &reqwest::Error) -> String {
    let mut out = if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() {
        "request or response body failed"
    } else if e.is_decode() {
        "response could not be decoded"
    } else {
        "request failed"
    }
    .to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// One job handed out by the runtime.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) job_id: String,
    pub(crate) query_type: String,
    pub(crate) query: Box<RawValue>,
    pub(crate) temporary_credentials_auth_token: String,
    pub(crate) auth_header: String,
    pub(crate) user_id: String,
}

/// What a poll produced.
#[derive(Debug)]
pub(crate) enum Polled {
    /// A job to run.
    Job(Job),
    /// A job whose envelope could not be decoded: it must still get an (error) result.
    Malformed { job_id: String, error: String },
    /// No job right now (204).
    Empty,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "computeModuleJobV1")]
    v1: Option<JobV1>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobV1 {
    job_id: String,
    query_type: String,
    #[serde(default)]
    query: Option<Box<RawValue>>,
    #[serde(default)]
    temporary_credentials_auth_token: Option<String>,
    #[serde(default)]
    auth_header: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
}

fn parse_job(body: &[u8]) -> Result<Polled, String> {
    let v1 = match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { v1: Some(v1) }) => Ok(v1),
        // Tolerate a bare job object (no union wrapper).
        Ok(Envelope { v1: None }) => {
            serde_json::from_slice::<JobV1>(body).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    match v1 {
        Ok(job) => {
            let query = match job.query {
                Some(q) => q,
                None => RawValue::from_string("{}".to_owned()).map_err(|e| e.to_string())?,
            };
            Ok(Polled::Job(Job {
                job_id: job.job_id,
                query_type: job.query_type,
                query,
                temporary_credentials_auth_token: job
                    .temporary_credentials_auth_token
                    .unwrap_or_default(),
                auth_header: job.auth_header.unwrap_or_default(),
                user_id: job.user_id.unwrap_or_default(),
            }))
        }
        Err(error) => {
            // Find the job id anywhere we can, so the job still gets exactly one result.
            let value: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| e.to_string())?;
            let job_id = value
                .get("computeModuleJobV1")
                .and_then(|j| j.get("jobId"))
                .or_else(|| value.get("jobId"))
                .and_then(|j| j.as_str())
                .map(str::to_owned);
            match job_id {
                Some(job_id) => Ok(Polled::Malformed { job_id, error }),
                None => Err(format!("job envelope without a jobId: {error}")),
            }
        }
    }
}

/// The runtime client. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RuntimeClient {
    http: reqwest::Client,
    get_job: Url,
    post_result_base: String,
    post_schema: Option<Url>,
    restart: Option<Url>,
    token: Option<HeaderValue>,
}

impl std::fmt::Debug for RuntimeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeClient")
            .field("get_job", &self.get_job.as_str())
            .finish()
    }
}

/// Builds a rustls client configuration trusting exactly `certs` (ring provider).
pub(crate) fn tls_config(
    certs: impl IntoIterator<Item = rustls_pki_types::CertificateDer<'static>>,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("invalid CA certificate: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

impl RuntimeClient {
    pub(crate) fn new(config: &RuntimeConfig) -> Result<Self, crate::Error> {
        let parse = |what: &str, s: &str| {
            Url::parse(s)
                .map_err(|e| crate::Error::Runtime(format!("invalid {what} URI `{s}`: {e}")))
        };
        let get_job = parse("get-job", &config.get_job_uri)?;
        let post_schema = config
            .post_schema_uri
            .as_deref()
            .map(|u| parse("post-schema", u))
            .transpose()?;
        let restart = config
            .restart_notification_uri
            .as_deref()
            .map(|u| parse("restart-notification", u))
            .transpose()?;
        parse("post-result", &config.post_result_uri)?;

        let tls = tls_config(
            config
                .trusted_cas
                .iter()
                .flat_map(|ca| ca.certs.iter().cloned()),
        )
        .map_err(crate::Error::Runtime)?;
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .http1_only()
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            // A runtime that stops sending mid-response (or never answers a streamed post) is
            // given up on after this long without a byte; long-polls answer well within it.
            .read_timeout(POLL_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(config.max_concurrent_tasks + 2)
            .no_proxy();
        // The sidecar binds IPv4 only: resolve `localhost` to 127.0.0.1 (keeping the host name
        // for SNI and certificate checks), as PROTOCOL §3.2 recommends.
        for url in std::iter::once(&get_job)
            .chain(post_schema.iter())
            .chain(restart.iter())
        {
            if url.host_str() == Some("localhost") {
                let port = url.port_or_known_default().unwrap_or(443);
                builder = builder.resolve("localhost", SocketAddr::from(([127, 0, 0, 1], port)));
            }
        }
        let http = builder.build().map_err(|e| {
            crate::Error::Runtime(format!("cannot build HTTP client: {}", describe(&e)))
        })?;
        let token = match &config.module_auth_token {
            Some(t) => {
                let mut v = HeaderValue::from_str(t.expose()).map_err(|_| {
                    crate::Error::Runtime(
                        "the MODULE_AUTH_TOKEN file contains characters not allowed in an HTTP header"
                            .to_owned(),
                    )
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Self {
            http,
            get_job,
            post_result_base: config.post_result_uri.clone(),
            post_schema,
            restart,
            token,
        })
    }

    fn with_token(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.header(AUTH_HEADER, t.clone()),
            None => req,
        }
    }

    /// One GET job.
    pub(crate) async fn poll(&self) -> Result<Polled, ClientError> {
        const DURING: &str = "polling for a job";
        let resp = self
            .with_token(self.http.get(self.get_job.clone()))
            .timeout(POLL_TIMEOUT)
            .send()
            .await
            .map_err(|e| ClientError::transport(DURING, &e))?;
        match resp.status() {
            StatusCode::NO_CONTENT => Ok(Polled::Empty),
            StatusCode::OK => {
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| ClientError::transport(DURING, &e))?;
                if body.is_empty() {
                    return Ok(Polled::Empty);
                }
                parse_job(&body).map_err(|message| ClientError::Protocol {
                    during: DURING,
                    message,
                })
            }
            status => Err(status_error(DURING, resp, status).await),
        }
    }

    /// POSTs the schemas once.
    pub(crate) async fn post_schemas(&self, body: Bytes) -> Result<bool, ClientError> {
        const DURING: &str = "posting function schemas";
        let Some(url) = &self.post_schema else {
            return Ok(false);
        };
        let resp = self
            .with_token(self.http.post(url.clone()))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(POST_TIMEOUT)
            .send()
            .await
            .map_err(|e| ClientError::transport(DURING, &e))?;
        if resp.status().is_success() {
            Ok(true)
        } else {
            let status = resp.status();
            Err(status_error(DURING, resp, status).await)
        }
    }

    /// POSTs the restart notification once; returns the job ids the runtime dropped.
    pub(crate) async fn restart_notification(&self) -> Result<Option<Vec<String>>, ClientError> {
        const DURING: &str = "sending the restart notification";
        let Some(url) = &self.restart else {
            return Ok(None);
        };
        let resp = self
            .with_token(self.http.post(url.clone()))
            .header(CONTENT_TYPE, "application/octet-stream")
            .timeout(POST_TIMEOUT)
            .send()
            .await
            .map_err(|e| ClientError::transport(DURING, &e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(status_error(DURING, resp, status).await);
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| ClientError::transport(DURING, &e))?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Some(Vec::new()));
        }
        serde_json::from_slice::<Vec<String>>(&body)
            .map(Some)
            .map_err(|e| ClientError::Protocol {
                during: DURING,
                message: format!("expected a JSON array of job ids: {e}"),
            })
    }

    fn result_url(&self, job_id: &str) -> String {
        format!("{}/{}", self.post_result_base, job_id)
    }

    /// One result POST. `timeout` bounds the whole exchange; streamed bodies (which may
    /// legitimately take long to produce) pass `None` and rely on the client's read timeout
    /// for a runtime that stops answering.
    async fn post_result_once(
        &self,
        job_id: &str,
        body: reqwest::Body,
        timeout: Option<Duration>,
    ) -> Result<(), ClientError> {
        const DURING: &str = "posting a result";
        let mut request = self
            .with_token(self.http.post(self.result_url(job_id)))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let resp = request
            .send()
            .await
            .map_err(|e| ClientError::transport(DURING, &e))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(status_error(DURING, resp, status).await)
        }
    }

    /// Delivers one job's outcome: the result (retried on transient failures with the body
    /// buffered), or an error result. When the result cannot be delivered, a small
    /// `ResultDeliveryFailed` error result is posted instead.
    pub(crate) async fn deliver(
        &self,
        job_id: &str,
        outcome: Result<Output, JobError>,
    ) -> Delivery {
        let failure = match outcome {
            Ok(Output::Json(bytes)) => {
                match self
                    .post_bytes_with_retries(job_id, Bytes::from(bytes), RESULT_ATTEMPTS)
                    .await
                {
                    Ok(()) => return Delivery::Result,
                    Err(e) => e,
                }
            }
            Ok(Output::Stream(stream)) => match self.post_stream(job_id, stream).await {
                StreamDelivery::Delivered => return Delivery::Result,
                StreamDelivery::ItemFailed(job_error) => {
                    return self.deliver_error(job_id, &job_error).await;
                }
                StreamDelivery::Failed(e) => e,
            },
            Err(job_error) => return self.deliver_error(job_id, &job_error).await,
        };
        tracing::error!(
            "could not deliver the result of job {job_id}: {failure}; posting an error result instead"
        );
        let replacement = JobError::new(
            ErrorKind::ResultDeliveryFailed,
            format!("the function's result could not be delivered: {failure}"),
        );
        match self
            .post_bytes_with_retries(
                job_id,
                Bytes::from(replacement.to_result_body()),
                FALLBACK_ATTEMPTS,
            )
            .await
        {
            Ok(()) => Delivery::Replaced,
            Err(e) => {
                tracing::error!("could not deliver an error result for job {job_id} either: {e}");
                Delivery::Lost
            }
        }
    }

    async fn deliver_error(&self, job_id: &str, error: &JobError) -> Delivery {
        let body = Bytes::from(error.to_result_body());
        match self
            .post_bytes_with_retries(job_id, body, RESULT_ATTEMPTS)
            .await
        {
            Ok(()) => Delivery::Error,
            Err(e) => {
                tracing::error!("could not deliver the error result of job {job_id}: {e}");
                Delivery::Lost
            }
        }
    }

    async fn post_bytes_with_retries(
        &self,
        job_id: &str,
        body: Bytes,
        attempts: u32,
    ) -> Result<(), ClientError> {
        let mut backoff =
            crate::job_loop::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut attempt = 1;
        loop {
            match self
                .post_result_once(
                    job_id,
                    reqwest::Body::from(body.clone()),
                    Some(POST_TIMEOUT),
                )
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() && attempt < attempts => {
                    tracing::warn!("attempt {attempt}/{attempts} failed, retrying: {e}");
                    attempt += 1;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn post_stream(
        &self,
        job_id: &str,
        stream: futures_util::stream::BoxStream<'static, Result<Vec<u8>, JobError>>,
    ) -> StreamDelivery {
        // Tee the chunks we send so a transient failure can be retried with the same chunks,
        // up to STREAM_REPLAY_LIMIT bytes.
        let tee = Arc::new(Mutex::new(Tee {
            replay: Some(Replay::default()),
            item_error: None,
        }));
        let tee_in = Arc::clone(&tee);
        let body_stream = stream.map(move |item| {
            let mut tee = tee_in.lock().unwrap_or_else(|p| p.into_inner());
            match item {
                Ok(bytes) => {
                    if tee.replay.as_mut().is_some_and(|r| !r.keep(&bytes)) {
                        tee.replay = None;
                    }
                    Ok(Bytes::from(bytes))
                }
                Err(job_error) => {
                    tee.item_error = Some(job_error);
                    // Aborts the request: the runtime never sees a complete body.
                    Err(std::io::Error::other("the result stream failed"))
                }
            }
        });
        let first = self
            .post_result_once(job_id, reqwest::Body::wrap_stream(body_stream), None)
            .await;
        let (replay, item_error) = {
            let mut tee = tee.lock().unwrap_or_else(|p| p.into_inner());
            (tee.replay.take(), tee.item_error.take())
        };
        if let Some(job_error) = item_error {
            return StreamDelivery::ItemFailed(job_error);
        }
        let mut error = match first {
            Ok(()) => return StreamDelivery::Delivered,
            Err(e) => e,
        };
        let Some(replay) = replay else {
            return StreamDelivery::Failed(error);
        };
        let (data, ends) = (Bytes::from(replay.data), replay.ends);
        let mut backoff =
            crate::job_loop::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for attempt in 2..=RESULT_ATTEMPTS {
            if !error.is_transient() {
                break;
            }
            tracing::warn!(
                "streamed result attempt {}/{RESULT_ATTEMPTS} failed, replaying: {error}",
                attempt - 1
            );
            tokio::time::sleep(backoff.next_delay()).await;
            let chunks = Replay::chunks(data.clone(), ends.clone());
            let body = futures_util::stream::iter(chunks.map(Ok::<_, std::io::Error>));
            match self
                .post_result_once(job_id, reqwest::Body::wrap_stream(body), None)
                .await
            {
                Ok(()) => return StreamDelivery::Delivered,
                Err(e) => error = e,
            }
        }
        StreamDelivery::Failed(error)
    }
}

struct Tee {
    /// `None` once the stream outgrew STREAM_REPLAY_LIMIT.
    replay: Option<Replay>,
    item_error: Option<JobError>,
}

/// The chunks of a streamed result kept for a retry: one buffer and where each chunk ends.
/// Four bytes of bookkeeping per chunk: a `Vec<Bytes>` costs about a hundred per chunk (the
/// chunk's own allocation, a shared `Bytes` header, the slot), twenty times the data for a
/// stream of small items, and it counted none of that against the limit.
#[derive(Default)]
struct Replay {
    data: Vec<u8>,
    ends: Vec<u32>,
}

impl Replay {
    /// Keeps a copy of `chunk`; `false` when that would exceed STREAM_REPLAY_LIMIT.
    fn keep(&mut self, chunk: &[u8]) -> bool {
        let end = self.data.len() + chunk.len();
        let Some(end_u32) = u32::try_from(end)
            .ok()
            .filter(|_| end <= STREAM_REPLAY_LIMIT)
        else {
            return false;
        };
        self.data.extend_from_slice(chunk);
        self.ends.push(end_u32);
        true
    }

    /// The kept chunks, in order, as slices of `data`.
    fn chunks(data: Bytes, ends: Vec<u32>) -> impl Iterator<Item = Bytes> {
        ends.into_iter().scan(0usize, move |start, end| {
            let end = end as usize;
            let chunk = data.slice(*start..end);
            *start = end;
            Some(chunk)
        })
    }
}

enum StreamDelivery {
    Delivered,
    ItemFailed(JobError),
    Failed(ClientError),
}

/// How a job's outcome reached the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The function's result.
    Result,
    /// The job's error result.
    Error,
    /// A `ResultDeliveryFailed` error result replaced the real one.
    Replaced,
    /// Nothing could be delivered.
    Lost,
}

async fn status_error(
    during: &'static str,
    resp: reqwest::Response,
    status: StatusCode,
) -> ClientError {
    let body = resp.bytes().await.unwrap_or_default();
    let mut text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
    if body.len() > 512 {
        text.push('…');
    }
    ClientError::Status {
        during,
        status: status.as_u16(),
        body: text.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_envelope() {
        let body = br#"{"type":"computeModuleJobV1","computeModuleJobV1":{"jobId":"j1","queryType":"add","query":{"x":1},"authHeader":"Bearer t","extra":true}}"#;
        let Polled::Job(job) = parse_job(body).unwrap() else {
            panic!("expected a job")
        };
        assert_eq!(job.job_id, "j1");
        assert_eq!(job.query_type, "add");
        assert_eq!(job.query.get(), r#"{"x":1}"#);
        assert_eq!(job.auth_header, "Bearer t");
        assert_eq!(job.user_id, "");
    }

    #[test]
    fn missing_query_is_an_empty_object() {
        let Polled::Job(job) =
            parse_job(br#"{"computeModuleJobV1":{"jobId":"j","queryType":"f"}}"#).unwrap()
        else {
            panic!("expected a job")
        };
        assert_eq!(job.query.get(), "{}");
    }

    #[test]
    fn replay_keeps_the_chunks_until_the_limit() {
        let mut r = Replay::default();
        assert!(r.keep(b"1"));
        assert!(r.keep(b"23"));
        assert!(r.keep(b""));
        assert!(r.keep(b"{\"a\":4}"));
        let chunks: Vec<Bytes> =
            Replay::chunks(Bytes::from(r.data.clone()), r.ends.clone()).collect();
        assert_eq!(chunks, [&b"1"[..], b"23", b"", b"{\"a\":4}"]);
        assert!(!r.keep(&vec![0u8; STREAM_REPLAY_LIMIT]));
    }

    #[test]
    fn malformed_envelope_with_a_job_id_still_identifies_the_job() {
        let r = parse_job(br#"{"computeModuleJobV1":{"jobId":"j9","queryType":42}}"#).unwrap();
        assert!(matches!(r, Polled::Malformed { job_id, .. } if job_id == "j9"));
        assert!(parse_job(br#"{"nothing":1}"#).is_err());
    }
}
