//! The compute-module runtime client: get job, post result, post schemas, restart notification
//! (docs/protocol.md §3.1). Over the runtime transport (`transport::h1`: hyper with a small
//! keep-alive pool and flattened writes), TLS trusting exactly the configured CA files.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use reqwest::Url;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use crate::config::RuntimeConfig;
use crate::functions::module_token::ModuleToken;
use crate::functions::outcome::{ErrorKind, JobError, Output};
use crate::transport::h1::{self, H1Client, H1Error, Origin};
use crate::transport::watchdog::{self, BufferedBody, IncomingError, Limits, Progress, Stall};
use crate::transport::{self, Trust};

/// Header carrying the module auth token.
const AUTH_HEADER: &str = "Module-Auth-Token";
/// Connection establishment (TCP + TLS) limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a long-poll may wait for its response headers: the runtime holds a poll for a few
/// seconds at most.
const POLL_TIMEOUT: Duration = Duration::from_secs(120);
/// Default of [`IDLE_TIMEOUT_VAR`].
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default of [`RESPONSE_TIMEOUT_VAR`].
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a body may make no progress: the runtime taking none of a result body, or sending
/// none of a response body, for this many seconds (an idle limit, never a cap on a transfer).
pub(crate) const IDLE_TIMEOUT_VAR: &str = crate::env::vars::CMOD_RUNTIME_IDLE_TIMEOUT_SECS;
/// How long the runtime may take to answer a result, schema or restart post once its body was
/// sent, in seconds.
pub(crate) const RESPONSE_TIMEOUT_VAR: &str = crate::env::vars::CMOD_RUNTIME_RESPONSE_TIMEOUT_SECS;
/// How many times a result post is tried before the fallback error result.
const RESULT_ATTEMPTS: u32 = 5;
/// How many times the fallback error result is tried.
const FALLBACK_ATTEMPTS: u32 = 3;
/// A streamed result is kept in memory for a retry only up to this size.
const STREAM_REPLAY_LIMIT: usize = 16 * 1024 * 1024;

/// A streamed result: one JSON value per item.
type ResultStream = BoxStream<'static, Result<Bytes, JobError>>;

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

    fn transport(during: &'static str, e: &H1Error) -> Self {
        ClientError::Transport {
            during,
            message: e.to_string(),
            connect: e.is_connect(),
        }
    }

    fn stalled(during: &'static str, stall: watchdog::Stall) -> Self {
        ClientError::Transport {
            during,
            message: stall.to_string(),
            connect: false,
        }
    }

    fn body(during: &'static str, e: IncomingError) -> Self {
        match e {
            IncomingError::Stalled(idle) => Self::stalled(during, Stall::Download(idle)),
            IncomingError::Transport(e) => ClientError::Transport {
                during,
                message: H1Error::Http(e).to_string(),
                connect: false,
            },
        }
    }
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

/// The envelope variant this module runs.
const V1: &str = "computeModuleJobV1";

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(rename = "computeModuleJobV1")]
    v1: Option<JobV1>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobV1 {
    #[serde(deserialize_with = "job_id_text")]
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

/// A job id as text: a JSON string, or a JSON integer in its decimal form.
fn job_id_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(serde_json::Number),
    }
    match Id::deserialize(d)? {
        Id::Text(s) => Ok(s),
        Id::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Id::Number(n) => Err(serde::de::Error::custom(format!(
            "jobId must be a string or an integer, not {n}"
        ))),
    }
}

fn id_of(v: &serde_json::Value) -> Option<String> {
    match v.get("jobId")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn parse_job(body: &[u8]) -> Result<Polled, String> {
    let v1 = match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { v1: Some(v1), .. }) => Ok(v1),
        Ok(Envelope {
            kind: Some(kind),
            v1: None,
        }) if kind != V1 => Err(format!(
            "unsupported job envelope variant `{kind}`: this module runs `{V1}` jobs"
        )),
        // Tolerate a bare job object (no union wrapper).
        Ok(Envelope { v1: None, .. }) => {
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
            // Find the job id anywhere we can (the V1 member, the member the `type` names, any
            // member, the top level), so the job still gets exactly one result.
            let value: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| e.to_string())?;
            let named = value
                .get("type")
                .and_then(|t| t.as_str())
                .and_then(|t| value.get(t));
            let job_id = value
                .get(V1)
                .and_then(id_of)
                .or_else(|| named.and_then(id_of))
                .or_else(|| value.as_object()?.values().find_map(id_of))
                .or_else(|| id_of(&value));
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
    http: H1Client,
    get_job: Target,
    post_result_base: Url,
    /// The result target of an id that needs no percent-encoding, precomputed.
    result_prefix: Option<Arc<ResultPrefix>>,
    post_schema: Option<Url>,
    restart: Option<Url>,
    token: ModuleToken,
    limits: Limits,
}

impl std::fmt::Debug for RuntimeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeClient")
            .field("get_job", &self.get_job)
            .field("limits", &self.limits)
            .finish()
    }
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
        let mut post_result_base = parse("post-result", &config.post_result_uri)?;
        if post_result_base.cannot_be_a_base() {
            return Err(crate::Error::Runtime(format!(
                "invalid post-result URI `{}`: job ids cannot be appended to it",
                config.post_result_uri
            )));
        }
        if let Ok(mut segments) = post_result_base.path_segments_mut() {
            // `…/results/` and `…/results` name the same base: one slash before the job id.
            segments.pop_if_empty();
        }
        let limits = Limits {
            idle: watchdog::limit_var(crate::env::lookup(), IDLE_TIMEOUT_VAR, DEFAULT_IDLE_TIMEOUT)
                .map_err(crate::Error::Runtime)?,
            response: watchdog::limit_var(
                crate::env::lookup(),
                RESPONSE_TIMEOUT_VAR,
                DEFAULT_RESPONSE_TIMEOUT,
            )
            .map_err(crate::Error::Runtime)?,
        };

        let cas: Vec<_> = config
            .trusted_cas
            .iter()
            .flat_map(|ca| ca.certs.iter().cloned())
            .collect();
        let tls = transport::tls_config(Trust::Only(&cas), None).map_err(crate::Error::Runtime)?;
        let origin = |what: &str, url: &Url| {
            Origin::of(url)
                .map_err(|e| crate::Error::Runtime(format!("invalid {what} URI `{url}`: {e}")))
        };
        let origins = [
            Some(origin("get-job", &get_job)?),
            Some(origin("post-result", &post_result_base)?),
            post_schema
                .as_ref()
                .map(|u| origin("post-schema", u))
                .transpose()?,
            restart
                .as_ref()
                .map(|u| origin("restart-notification", u))
                .transpose()?,
        ];
        // The runtime never redirects: this transport follows none, as following one would send
        // the module auth token (and the result) to wherever it points.
        let http = H1Client::new(
            tls,
            origins.into_iter().flatten(),
            CONNECT_TIMEOUT,
            (Duration::from_secs(60), config.max_concurrent_tasks + 2),
            limits.idle,
        )
        .map_err(|e| crate::Error::Runtime(format!("cannot build the runtime client: {e}")))?;
        let get_job = Target::of(&get_job).map_err(|e| {
            crate::Error::Runtime(format!("invalid get-job URI `{}`: {e}", config.get_job_uri))
        })?;
        let token = ModuleToken::from_config(config)?;
        let result_prefix = ResultPrefix::of(&post_result_base).map(Arc::new);
        Ok(Self {
            http,
            get_job,
            post_result_base,
            result_prefix,
            post_schema,
            restart,
            token,
            limits,
        })
    }

    /// A request to `target` with the module auth token and `body`.
    fn request(
        &self,
        method: Method,
        target: &Target,
        content_type: Option<&'static str>,
        body: h1::Body,
    ) -> Request<h1::Body> {
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = target.path.clone();
        let headers = request.headers_mut();
        if let Some(token) = self.token.header() {
            headers.insert(AUTH_HEADER, token);
        }
        if let Some(content_type) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        request
    }

    /// Sends a request without a body (or with a small one sent at once), waiting at most
    /// `response` for the headers.
    async fn exchange(
        &self,
        during: &'static str,
        target: &Target,
        request: Request<h1::Body>,
        response: Duration,
    ) -> Result<http::Response<h1::ResponseBody>, ClientError> {
        let progress = Progress::new(false);
        let limits = Limits {
            response,
            ..self.limits
        };
        watchdog::guard(&progress, limits, self.http.send(&target.origin, request))
            .await
            .map_err(|stall| ClientError::stalled(during, stall))?
            .map_err(|e| ClientError::transport(during, &e))
    }

    /// One GET job; sent once more if the runtime refused a token the file has since replaced.
    pub(crate) async fn poll(&self) -> Result<Polled, ClientError> {
        let sent = self.token.version();
        match self.poll_once().await {
            Err(e) if self.token_renewed(sent, &e) => self.poll_once().await,
            polled => polled,
        }
    }

    /// Whether `error` is the runtime refusing the token of version `sent` and the
    /// `MODULE_AUTH_TOKEN` file now holds another one (re-read at once): then the request is
    /// sent once more.
    fn token_renewed(&self, sent: u64, error: &ClientError) -> bool {
        match error {
            ClientError::Status { status, .. } => self.token.renewed_since(sent, *status),
            _ => false,
        }
    }

    async fn poll_once(&self) -> Result<Polled, ClientError> {
        const DURING: &str = "polling for a job";
        let request = self.request(Method::GET, &self.get_job, None, h1::full(Bytes::new()));
        let resp = self
            .exchange(
                DURING,
                &self.get_job,
                request,
                POLL_TIMEOUT.max(self.limits.response),
            )
            .await?;
        match resp.status() {
            StatusCode::NO_CONTENT => Ok(Polled::Empty),
            StatusCode::OK => {
                let body = watchdog::read_incoming(resp.into_body(), self.limits.idle)
                    .await
                    .map_err(|e| ClientError::body(DURING, e))?;
                if body.is_empty() {
                    return Ok(Polled::Empty);
                }
                parse_job(&body).map_err(|message| ClientError::Protocol {
                    during: DURING,
                    message,
                })
            }
            status => Err(self.status_error(DURING, resp, status).await),
        }
    }

    /// POSTs the schemas once.
    pub(crate) async fn post_schemas(&self, body: Bytes) -> Result<bool, ClientError> {
        const DURING: &str = "posting function schemas";
        let Some(url) = &self.post_schema else {
            return Ok(false);
        };
        let target = Target::of(url).map_err(|message| ClientError::Protocol {
            during: DURING,
            message,
        })?;
        match self
            .post_buffered(DURING, &target, Some("application/json"), body)
            .await
        {
            Ok(()) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// POSTs the restart notification once (twice if the runtime refused a token the file has
    /// since replaced); returns the job ids the runtime dropped.
    pub(crate) async fn restart_notification(&self) -> Result<Option<Vec<String>>, ClientError> {
        let sent = self.token.version();
        match self.restart_notification_once().await {
            Err(e) if self.token_renewed(sent, &e) => self.restart_notification_once().await,
            answer => answer,
        }
    }

    async fn restart_notification_once(&self) -> Result<Option<Vec<String>>, ClientError> {
        const DURING: &str = "sending the restart notification";
        let Some(url) = &self.restart else {
            return Ok(None);
        };
        let target = Target::of(url).map_err(|message| ClientError::Protocol {
            during: DURING,
            message,
        })?;
        let request = self.request(
            Method::POST,
            &target,
            Some("application/octet-stream"),
            h1::full(Bytes::new()),
        );
        let resp = self
            .exchange(DURING, &target, request, self.limits.response)
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.status_error(DURING, resp, status).await);
        }
        let body = watchdog::read_incoming(resp.into_body(), self.limits.idle)
            .await
            .map_err(|e| ClientError::body(DURING, e))?;
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

    /// The URL a job's result is posted to: the base with the job id appended as one
    /// percent-encoded path segment, so no id can reach another endpoint. `.` and `..` (and
    /// the empty id) cannot be a path segment at all: such a job cannot be answered.
    pub(crate) fn result_url(&self, job_id: &str) -> Result<Target, ClientError> {
        if matches!(job_id, "" | "." | "..") {
            return Err(ClientError::Protocol {
                during: "posting a result",
                message: format!(
                    "the job id `{job_id}` cannot be a URL path segment, so its result cannot be posted"
                ),
            });
        }
        if let Some(prefix) = &self.result_prefix
            && let Some(target) = prefix.target(job_id)
        {
            return Ok(target);
        }
        let mut url = self.post_result_base.clone();
        url.path_segments_mut()
            .map_err(|()| ClientError::Protocol {
                during: "posting a result",
                message: "the post-result URI cannot take a path segment".into(),
            })?
            .push(job_id);
        Target::of(&url).map_err(|message| ClientError::Protocol {
            during: "posting a result",
            message,
        })
    }

    /// POSTs a buffered body (sent with its length, progress watched) and checks for a 2xx; the
    /// whole body is sent once more if the runtime refused a token the file has since replaced.
    async fn post_buffered(
        &self,
        during: &'static str,
        target: &Target,
        content_type: Option<&'static str>,
        body: Bytes,
    ) -> Result<(), ClientError> {
        let sent = self.token.version();
        match self
            .post_buffered_once(during, target, content_type, body.clone())
            .await
        {
            Err(e) if self.token_renewed(sent, &e) => {
                self.post_buffered_once(during, target, content_type, body)
                    .await
            }
            posted => posted,
        }
    }

    async fn post_buffered_once(
        &self,
        during: &'static str,
        target: &Target,
        content_type: Option<&'static str>,
        body: Bytes,
    ) -> Result<(), ClientError> {
        let progress = Progress::new(true);
        let len = body.len();
        let mut request = self.request(
            Method::POST,
            target,
            content_type,
            h1::streamed(BufferedBody::new(body, Arc::clone(&progress))),
        );
        request
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
        let resp = watchdog::guard(
            &progress,
            self.limits,
            self.http.send(&target.origin, request),
        )
        .await
        .map_err(|stall| ClientError::stalled(during, stall))?
        .map_err(|e| ClientError::transport(during, &e))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(self.status_error(during, resp, status).await)
        }
    }

    fn result_request(&self, target: &Target, body: h1::Body) -> Request<h1::Body> {
        self.request(Method::POST, target, Some("application/octet-stream"), body)
    }

    /// Delivers one job's outcome to its result URL, built here ([`Self::deliver_to`]).
    pub(crate) async fn deliver(
        &self,
        job_id: &str,
        outcome: Result<Output, JobError>,
    ) -> Delivery {
        match self.result_url(job_id) {
            Ok(url) => self.deliver_to(&url, job_id, outcome).await,
            Err(e) => {
                tracing::error!("job `{job_id}` cannot be answered: {e}");
                Delivery::Lost
            }
        }
    }

    /// Delivers one job's outcome to `url` (its [`Self::result_url`]): the result (retried on
    /// transient failures with the body buffered), or an error result. When the result cannot
    /// be delivered, a small `ResultDeliveryFailed` error result is posted instead.
    pub(crate) async fn deliver_to(
        &self,
        url: &Target,
        job_id: &str,
        outcome: Result<Output, JobError>,
    ) -> Delivery {
        let failure = match outcome {
            Ok(Output::Json(bytes)) => {
                match self
                    .post_bytes_with_retries(url, Bytes::from(bytes), RESULT_ATTEMPTS)
                    .await
                {
                    Ok(()) => return Delivery::Result,
                    Err(e) => e,
                }
            }
            Ok(Output::Stream(stream)) => match self.post_stream(url, stream).await {
                StreamDelivery::Delivered => return Delivery::Result,
                StreamDelivery::ItemFailed(job_error) => {
                    return self.deliver_error_to(url, job_id, &job_error).await;
                }
                StreamDelivery::Failed(e) => e,
            },
            Err(job_error) => return self.deliver_error_to(url, job_id, &job_error).await,
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
                url,
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

    /// Delivers an error result for `job_id`.
    pub(crate) async fn deliver_error(&self, job_id: &str, error: &JobError) -> Delivery {
        match self.result_url(job_id) {
            Ok(url) => self.deliver_error_to(&url, job_id, error).await,
            Err(e) => {
                tracing::error!("job `{job_id}` cannot be answered: {e}");
                Delivery::Lost
            }
        }
    }

    pub(crate) async fn deliver_error_to(
        &self,
        url: &Target,
        job_id: &str,
        error: &JobError,
    ) -> Delivery {
        let body = Bytes::from(error.to_result_body());
        match self
            .post_bytes_with_retries(url, body, RESULT_ATTEMPTS)
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
        url: &Target,
        body: Bytes,
        attempts: u32,
    ) -> Result<(), ClientError> {
        const DURING: &str = "posting a result";
        let mut backoff =
            crate::transport::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut attempt = 1;
        loop {
            match self
                .post_buffered(DURING, url, Some("application/octet-stream"), body.clone())
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

    /// Posts a streamed result: chunks go out as the function produces them, and a copy is
    /// kept (up to STREAM_REPLAY_LIMIT) so a failed attempt can be retried with the **whole**
    /// body. The result counts as delivered only when the runtime answered 2xx **and** the
    /// stream reached its end on that connection: an early answer, a reset or a stall never
    /// makes a prefix the result. After such a failure the rest of the stream is consumed into
    /// the copy, then the whole body is posted again; a body larger than the limit becomes a
    /// `ResultDeliveryFailed` error instead.
    async fn post_stream(&self, url: &Target, stream: ResultStream) -> StreamDelivery {
        const DURING: &str = "posting a streamed result";
        let mut sent = self.token.version();
        let progress = Progress::new(true);
        let feed = Arc::new(Mutex::new(Some(Feed {
            source: Some(stream),
            replay: Some(Replay::default()),
            item_error: None,
        })));
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let body = TeeBody {
            feed: Arc::clone(&feed),
            progress: Arc::clone(&progress),
            _done: done_tx,
        };
        let request = self.result_request(url, h1::streamed(body));
        let answered =
            watchdog::guard(&progress, self.limits, self.http.send(&url.origin, request)).await;
        let first = match answered {
            Err(stall) => Err(ClientError::stalled(DURING, stall)),
            Ok(Err(e)) => Err(ClientError::transport(DURING, &e)),
            Ok(Ok(resp)) => {
                let status = resp.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(self.status_error(DURING, resp, status).await)
                }
            }
        };
        if first.is_ok() && !progress.ended() {
            // A 2xx before the body ended: the connection may go on sending it. Wait until it
            // is done with the body, unless it stops taking it.
            tokio::select! {
                biased;
                _ = done_rx => {}
                _ = progress.stalled(self.limits, true) => {}
            }
        }
        // Take the feed from the body: whatever the connection still does with it, from now on
        // it gets an error, never more of the stream.
        let taken = feed.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(Feed {
            source,
            mut replay,
            mut item_error,
        }) = taken
        else {
            return StreamDelivery::Failed(ClientError::Protocol {
                during: DURING,
                message: "the result body was lost".into(),
            });
        };
        if item_error.is_none() && first.is_ok() && source.is_none() && progress.ended() {
            return StreamDelivery::Delivered;
        }
        let mut error = match first {
            Err(e) => e,
            // A 2xx before the body ended, then the connection dropped the rest.
            Ok(()) => ClientError::Transport {
                during: DURING,
                message: "the runtime answered before the result stream ended, and the rest of \
                          the body was not taken"
                    .into(),
                connect: false,
            },
        };
        // Consume what the function has not produced yet, so a retry sends the whole body.
        if let Some(mut source) = source {
            while let Some(item) = source.next().await {
                match item {
                    Ok(bytes) => {
                        if replay.as_mut().is_some_and(|r| !r.keep(&bytes)) {
                            replay = None;
                            break;
                        }
                    }
                    Err(job_error) => {
                        item_error = Some(job_error);
                        break;
                    }
                }
            }
        }
        if let Some(job_error) = item_error {
            return StreamDelivery::ItemFailed(job_error);
        }
        let Some(replay) = replay else {
            // Refused with a token the file has since replaced: read the file now, so the error
            // result that replaces this one goes out with the new token, not refused in turn.
            let _ = self.token_renewed(sent, &error);
            return StreamDelivery::Failed(ClientError::Protocol {
                during: DURING,
                message: format!(
                    "{error}; the streamed result is larger than the {} MiB kept for a retry, so \
                     it cannot be sent again whole",
                    STREAM_REPLAY_LIMIT >> 20
                ),
            });
        };
        let (data, ends) = (Bytes::from(replay.data), replay.ends);
        let mut backoff =
            crate::transport::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for attempt in 2..=RESULT_ATTEMPTS {
            // A token the file has since replaced: replay the whole body with the new one.
            if !error.is_transient() {
                if !self.token_renewed(sent, &error) {
                    break;
                }
                sent = self.token.version();
            } else {
                tracing::warn!(
                    "streamed result attempt {}/{RESULT_ATTEMPTS} failed, replaying the whole body: {error}",
                    attempt - 1
                );
                tokio::time::sleep(backoff.next_delay()).await;
            }
            match self.post_replay(url, data.clone(), ends.clone()).await {
                Ok(()) => return StreamDelivery::Delivered,
                Err(e) => error = e,
            }
        }
        StreamDelivery::Failed(error)
    }

    /// Posts a kept streamed result again, chunk for chunk (still chunked on the wire).
    async fn post_replay(
        &self,
        url: &Target,
        data: Bytes,
        ends: Vec<u32>,
    ) -> Result<(), ClientError> {
        const DURING: &str = "posting a streamed result";
        let progress = Progress::new(true);
        let marker = Arc::clone(&progress);
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let mut chunks = Replay::chunks(data, ends);
        let body = futures_util::stream::poll_fn(move |_| {
            // Owned by the body: dropped (telling the waiter below) when the connection lets go.
            let _done = &done_tx;
            match chunks.next() {
                Some(chunk) => {
                    marker.handed_off();
                    Poll::Ready(Some(Ok::<_, std::io::Error>(chunk)))
                }
                None => {
                    marker.finished();
                    Poll::Ready(None)
                }
            }
        });
        let request = self.result_request(url, h1::streamed(body));
        let resp = watchdog::guard(&progress, self.limits, self.http.send(&url.origin, request))
            .await
            .map_err(|stall| ClientError::stalled(DURING, stall))?
            .map_err(|e| ClientError::transport(DURING, &e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.status_error(DURING, resp, status).await);
        }
        // Let go of the response: its connection finishes the body without this task.
        drop(resp);
        // A 2xx counts only for a body that was sent whole.
        if !progress.ended() {
            tokio::select! {
                biased;
                _ = done_rx => {}
                stall = progress.stalled(self.limits, true) => {
                    return Err(ClientError::stalled(DURING, stall));
                }
            }
        }
        if progress.ended() {
            Ok(())
        } else {
            Err(ClientError::Transport {
                during: DURING,
                message: "the runtime answered before the result body ended, and the rest of \
                          it was not taken"
                    .into(),
                connect: false,
            })
        }
    }

    async fn status_error(
        &self,
        during: &'static str,
        resp: http::Response<h1::ResponseBody>,
        status: StatusCode,
    ) -> ClientError {
        // The body only explains the status: a stalled or broken one is left out.
        let body = watchdog::read_incoming(resp.into_body(), self.limits.idle)
            .await
            .unwrap_or_default();
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
}

/// Where a request goes: an origin of the transport and the request target (path and query).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    origin: Origin,
    path: Uri,
}

impl Target {
    fn of(url: &Url) -> Result<Self, String> {
        let origin = Origin::of(url)?;
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let path = path
            .parse::<Uri>()
            .map_err(|e| format!("invalid request target `{path}`: {e}"))?;
        Ok(Self { origin, path })
    }
}

/// The result URL of a job as text around its id, for ids of unreserved characters only (the
/// runtime's UUIDs): they are the same in every percent-encode set, so appending one as text
/// gives what `Url::path_segments_mut().push` gives, without building a URL per job.
#[derive(Debug)]
struct ResultPrefix {
    origin: Origin,
    /// The path up to and including the `/` before the id.
    before: String,
    /// `?` and the query, or nothing.
    after: String,
}

impl ResultPrefix {
    fn of(base: &Url) -> Option<Self> {
        const PROBE: &str = "x";
        let mut probe = base.clone();
        probe.path_segments_mut().ok()?.push(PROBE);
        let before = probe.path().strip_suffix(PROBE)?.to_owned();
        let after = probe.query().map(|q| format!("?{q}")).unwrap_or_default();
        Some(Self {
            origin: Origin::of(base).ok()?,
            before,
            after,
        })
    }

    /// `None` when the id needs the general path (it has a character outside `A-Z a-z 0-9 - .
    /// _ ~`, or is `.`/`..`/empty).
    fn target(&self, job_id: &str) -> Option<Target> {
        let unreserved =
            |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        if matches!(job_id, "" | "." | "..") || !job_id.bytes().all(unreserved) {
            return None;
        }
        let mut path = String::with_capacity(self.before.len() + job_id.len() + self.after.len());
        path.push_str(&self.before);
        path.push_str(job_id);
        path.push_str(&self.after);
        Some(Target {
            origin: self.origin.clone(),
            path: Uri::try_from(path).ok()?,
        })
    }
}

/// The function's stream and what it produced so far, shared by the body (which pulls from it)
/// and [`RuntimeClient::post_stream`] (which takes it back when an attempt fails).
struct Feed {
    /// The function's stream, until it has ended.
    source: Option<ResultStream>,
    /// `None` once the stream outgrew STREAM_REPLAY_LIMIT.
    replay: Option<Replay>,
    item_error: Option<JobError>,
}

/// The body of a streamed result post: pulls the function's items, keeps a copy of each, and
/// records progress. Once `post_stream` took the feed back, it only fails.
struct TeeBody {
    feed: Arc<Mutex<Option<Feed>>>,
    progress: Arc<Progress>,
    /// Dropped with the body: tells `post_stream` the connection is done with it.
    _done: oneshot::Sender<()>,
}

impl Stream for TeeBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        let mut guard = self.feed.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(feed) = guard.as_mut() else {
            // Taken back after a failed attempt: never let a prefix pass for the body.
            return Poll::Ready(Some(Err(std::io::Error::other(
                "the result post was abandoned",
            ))));
        };
        let Some(source) = feed.source.as_mut() else {
            return Poll::Ready(None);
        };
        match source.poll_next_unpin(cx) {
            Poll::Pending => {
                self.progress.producing();
                Poll::Pending
            }
            Poll::Ready(Some(Ok(bytes))) => {
                if feed.replay.as_mut().is_some_and(|r| !r.keep(&bytes)) {
                    feed.replay = None;
                }
                self.progress.handed_off();
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(job_error))) => {
                feed.item_error = Some(job_error);
                feed.source = None;
                // Aborts the request: the runtime never sees a complete body.
                Poll::Ready(Some(Err(std::io::Error::other("the result stream failed"))))
            }
            Poll::Ready(None) => {
                feed.source = None;
                self.progress.finished();
                Poll::Ready(None)
            }
        }
    }
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
    fn chunks(data: Bytes, ends: Vec<u32>) -> impl Iterator<Item = Bytes> + Send + 'static {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_precomputed_result_target_equals_the_url_built_one() {
        let bases = [
            "https://runtime:8945/interactive/results",
            "https://runtime:8945/interactive/results/",
            "https://runtime/",
            "http://[::1]:80/r/?x=1&y=%20",
            "https://h/a%20b/c",
        ];
        let fast_ids = [
            "6e1d4c9a-03b2-4f0e-9b8e-2f1c6e0b7a55",
            "a.b",
            "-_~",
            "A9",
            "...",
        ];
        let slow_ids = [
            "", ".", "..", "a b", "a/b", "é", "%41", "a?b", "a#b", "a\\b",
        ];
        for base in bases {
            let mut url = Url::parse(base).unwrap();
            url.path_segments_mut().unwrap().pop_if_empty();
            let prefix = ResultPrefix::of(&url).unwrap();
            for id in fast_ids {
                let mut full = url.clone();
                full.path_segments_mut().unwrap().push(id);
                let slow = Target::of(&full).unwrap();
                let fast = prefix
                    .target(id)
                    .expect("an unreserved id takes the fast path");
                assert_eq!(fast.origin, slow.origin, "{base} + {id}");
                assert_eq!(fast.path, slow.path, "{base} + {id}");
            }
            for id in slow_ids {
                assert!(prefix.target(id).is_none(), "{base} + {id:?}");
            }
        }
    }

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
    fn numeric_job_ids_are_their_decimal_text() {
        let Polled::Job(job) =
            parse_job(br#"{"computeModuleJobV1":{"jobId":12345,"queryType":"f"}}"#).unwrap()
        else {
            panic!("expected a job")
        };
        assert_eq!(job.job_id, "12345");
        // Malformed otherwise, the id is still found.
        let r = parse_job(br#"{"computeModuleJobV1":{"jobId":7,"queryType":[]}}"#).unwrap();
        assert!(matches!(r, Polled::Malformed { job_id, .. } if job_id == "7"));
        assert!(parse_job(br#"{"computeModuleJobV1":{"jobId":1.5,"queryType":"f"}}"#).is_err());
    }

    #[test]
    fn other_envelope_variants_get_an_error_result_naming_the_variant() {
        for body in [
            &br#"{"type":"computeModuleJobV2","computeModuleJobV2":{"jobId":"j2","queryType":"f"}}"#[..],
            br#"{"type":"computeModuleJobV2","payload":{"jobId":"j2"}}"#,
        ] {
            let Polled::Malformed { job_id, error } = parse_job(body).unwrap() else {
                panic!("expected an error result")
            };
            assert_eq!(job_id, "j2");
            assert!(error.contains("`computeModuleJobV2`"), "{error}");
        }
    }

    /// The client against `cmod-local`'s runtime over TLS, its token file never compared on its
    /// own (an hour apart): only a rejection makes it look at the file again.
    #[cfg(feature = "local")]
    async fn client_of(rt: &cmod_local::LocalRuntime) -> RuntimeClient {
        let env: std::collections::HashMap<String, String> = rt.env().into_iter().collect();
        let config = RuntimeConfig::from_lookup(&|k| env.get(k).cloned()).unwrap();
        let mut client = RuntimeClient::new(&config).unwrap();
        client.token = ModuleToken::open(rt.token_path(), Duration::from_secs(3600)).unwrap();
        client
    }

    #[cfg(feature = "local")]
    async fn poll_job(client: &RuntimeClient) -> String {
        match tokio::time::timeout(Duration::from_secs(10), client.poll()).await {
            Ok(Ok(Polled::Job(job))) => job.job_id,
            other => panic!("expected a job, got {other:?}"),
        }
    }

    #[cfg(feature = "local")]
    #[tokio::test]
    async fn a_refused_token_is_reread_and_each_request_sent_once_more() {
        use cmod_local::{LocalRuntime, LocalRuntimeOptions, TokenRotation};
        let limit = Duration::from_secs(10);
        let rt = LocalRuntime::start(LocalRuntimeOptions {
            long_poll_timeout: Duration::from_millis(200),
            ..LocalRuntimeOptions::default()
        })
        .await
        .unwrap();
        let client = client_of(&rt).await;

        // The poll: refused with the old token, then sent with the file's new one.
        let first = rt.enqueue("f", serde_json::json!({}));
        rt.rotate_token(TokenRotation::Replace).unwrap();
        assert_eq!(poll_job(&client).await, first);
        assert_eq!(rt.stats().auth_failures, 1);

        // A buffered result.
        rt.rotate_token(TokenRotation::InPlace).unwrap();
        let delivered = tokio::time::timeout(
            limit,
            client.deliver(&first, Ok(Output::Json(b"42".to_vec()))),
        )
        .await
        .unwrap();
        assert_eq!(delivered, Delivery::Result);
        assert_eq!(rt.wait_result(&first, limit).await.unwrap().body, b"42");
        assert_eq!(rt.stats().auth_failures, 2);

        // A streamed result: refused, then replayed whole with the new token.
        let second = rt.enqueue("f", serde_json::json!({}));
        assert_eq!(poll_job(&client).await, second);
        rt.rotate_token(TokenRotation::Replace).unwrap();
        let items = ["1", "[2]", "{\"x\":3}"].map(|i| Ok(Bytes::from_static(i.as_bytes())));
        let stream = futures_util::stream::iter(items).boxed();
        let delivered =
            tokio::time::timeout(limit, client.deliver(&second, Ok(Output::Stream(stream))))
                .await
                .unwrap();
        assert_eq!(delivered, Delivery::Result);
        let result = rt.wait_result(&second, limit).await.unwrap();
        assert!(result.chunked);
        assert_eq!(result.body, b"1[2]{\"x\":3}");
        assert_eq!(rt.stats().auth_failures, 3);
        assert_eq!(rt.stats().results_accepted, 2);

        // Schemas and the restart notification.
        rt.rotate_token(TokenRotation::InPlace).unwrap();
        let posted = tokio::time::timeout(limit, client.post_schemas(Bytes::from_static(b"[]")))
            .await
            .unwrap();
        assert!(posted.unwrap());
        rt.rotate_token(TokenRotation::Replace).unwrap();
        let dropped = tokio::time::timeout(limit, client.restart_notification())
            .await
            .unwrap();
        assert_eq!(dropped.unwrap(), Some(Vec::new()));
        assert_eq!(rt.stats().auth_failures, 5);
        assert_eq!(rt.stats().schema_posts, 1);

        // The file still holds the refused token: the error is reported as before, after one
        // request (no retry with the same token).
        let accepted = rt.token();
        let before = std::fs::read_to_string(rt.token_path()).unwrap();
        rt.rotate_token(TokenRotation::InPlace).unwrap();
        std::fs::write(rt.token_path(), &before).unwrap();
        let refused = tokio::time::timeout(limit, client.poll()).await.unwrap();
        assert!(
            matches!(refused, Err(ClientError::Status { status: 401, .. })),
            "{refused:?}"
        );
        assert_eq!(rt.stats().auth_failures, 6);
        assert_ne!(rt.token(), accepted);
        rt.shutdown().await;
    }

    #[test]
    fn malformed_envelope_with_a_job_id_still_identifies_the_job() {
        let r = parse_job(br#"{"computeModuleJobV1":{"jobId":"j9","queryType":42}}"#).unwrap();
        assert!(matches!(r, Polled::Malformed { job_id, .. } if job_id == "j9"));
        assert!(parse_job(br#"{"nothing":1}"#).is_err());
    }
}
