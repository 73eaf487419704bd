//! [`FoundryClient`]: an authenticated HTTP client for Foundry APIs.
//!
//! ```no_run
//! # async fn f(ctx: cmod_runtime::Context) -> Result<(), Box<dyn std::error::Error>> {
//! use cmod_runtime::foundry::FoundryClient;
//!
//! // As the module's application (CLIENT_ID/CLIENT_SECRET), with the scopes it needs:
//! let foundry = FoundryClient::from_env()?.with_scopes(["api:datasets-read"]);
//! let dataset: serde_json::Value = foundry.get_json("/v2/datasets/ri.foundry.main.dataset.1").await?;
//!
//! // As the user who invoked the function:
//! let me: serde_json::Value = ctx.foundry_as_user()?.get_json("/v2/admin/users/getCurrent").await?;
//! # Ok(()) }
//! ```
//!
//! # Where Foundry is
//!
//! Each service URL (API gateway, stream proxy, media, multipass) is resolved in this order:
//!
//! 1. an explicit [`FoundryClientBuilder::foundry_url`] / [`FoundryClientBuilder::service_url`];
//! 2. `FOUNDRY_SERVICE_DISCOVERY_V2` (the key variants of [`Service::keys`]), as the official
//!    platform SDK does;
//! 3. `FOUNDRY_URL` (the stack hostname, by convention without scheme; `https://` is assumed),
//!    with the service's [`Service::default_path`];
//! 4. the origin of the discovered API gateway (`https://<stack>/api` → `https://<stack>`) with
//!    the service's default path (discovery files need not list `multipass`).
//!
//! # Transport
//!
//! TLS trusts the public web roots plus `DEFAULT_CA_PATH` (Foundry's CA inside the container,
//! the local CA in local runs); verification is never disabled. Limits are on **idle time**,
//! never on how long a healthy transfer takes ([`Timeouts`]): 10 s to connect, 60 s for the
//! response headers once the request body was sent, 60 s without progress of either body
//! (`CMOD_FOUNDRY_RESPONSE_TIMEOUT_SECS`, `CMOD_FOUNDRY_IDLE_TIMEOUT_SECS`), so a large dataset
//! or media upload, or an open `FileWriter`, runs as long as it moves. Redirects are followed
//! only on the same origin over HTTPS (the credential never goes to another host, port or
//! scheme); no `Referer` is sent. Connect errors and HTTP 429/502/503/504 are retried with
//! capped exponential backoff (honouring `Retry-After`); timeouts are retried for idempotent
//! methods only. A 401
//! with application credentials drops the cached token and retries once with a new one. The
//! credential only goes to the configured Foundry services: an absolute URL on another origin is
//! refused ([`FoundryError::ForeignOrigin`]) unless the request opts in with
//! [`FoundryRequest::allow_any_origin`].
//! Failures are [`FoundryError`]s that carry Foundry's JSON error (`errorCode`, `errorName`,
//! `errorInstanceId`, `parameters`) and never the token.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use reqwest::Method;

use crate::auth::{AppTokenProvider, AuthError, Credentials, PipelineToken};
use crate::context::Context;
pub use crate::discovery::Service;
use crate::discovery::ServiceDiscovery;
use crate::secret::Secret;
use crate::transport::watchdog::{self, Limits, SendError};

/// The variable holding the Foundry stack hostname (set with "Add Foundry URL").
pub const FOUNDRY_URL_VAR: &str = "FOUNDRY_URL";

/// The variable overriding [`Timeouts::idle`] of Foundry clients, in seconds.
pub const IDLE_TIMEOUT_VAR: &str = "CMOD_FOUNDRY_IDLE_TIMEOUT_SECS";
/// The variable overriding [`Timeouts::response`] of Foundry clients, in seconds.
pub const RESPONSE_TIMEOUT_VAR: &str = "CMOD_FOUNDRY_RESPONSE_TIMEOUT_SECS";

/// Network timeouts of a client. None of them caps a transfer that keeps making progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Time to establish a connection (TCP + TLS).
    pub connect: Duration,
    /// Longest wait for the response headers once the request body was sent.
    pub response: Duration,
    /// Longest time without progress: the server taking none of the request body, or sending
    /// none of the response body.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            response: Duration::from_secs(60),
            idle: Duration::from_secs(60),
        }
    }
}

impl Timeouts {
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            idle: self.idle,
            response: self.response,
        }
    }

    /// The defaults, with `response` and `idle` overridden by `response_var` / `idle_var`.
    pub(crate) fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        defaults: Timeouts,
        idle_var: &str,
        response_var: &str,
    ) -> Result<Timeouts, String> {
        Ok(Timeouts {
            connect: defaults.connect,
            idle: watchdog::limit_var(lookup, idle_var, defaults.idle)?,
            response: watchdog::limit_var(lookup, response_var, defaults.response)?,
        })
    }
}

/// Retries of transient failures: connect errors, HTTP 429/502/503/504, and timeouts of
/// idempotent requests. The wait doubles from `initial_backoff` up to `max_backoff`; a
/// `Retry-After` header (in seconds) is honoured up to `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retries).
    pub max_retries: u32,
    /// The first wait.
    pub initial_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Whether a status is worth retrying.
fn retryable_status(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// Sends the request built by `build` (with `body`, shared between attempts, when given) under
/// the idle `limits` ([`watchdog::send_tracked`]), retrying transient failures per `policy`. Returns the last response when retries run out on
/// a retryable status.
pub(crate) async fn send_with_retry(
    policy: &RetryPolicy,
    limits: Limits,
    idempotent: bool,
    what: &str,
    body: Option<&Bytes>,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, SendError> {
    let mut attempt = 0u32;
    loop {
        let result = watchdog::send_tracked_with(build(), body.cloned(), limits).await;
        let wait = match &result {
            Ok(r) if retryable_status(r.status()) && attempt < policy.max_retries => {
                let retry_after = r
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                tracing::debug!(
                    status = r.status().as_u16(),
                    attempt = attempt + 1,
                    "{what}: transient HTTP status, retrying"
                );
                retry_after
                    .map(|d| d.min(policy.max_backoff))
                    .unwrap_or_else(|| policy.backoff(attempt))
            }
            Err(SendError::Transport(e))
                if attempt < policy.max_retries
                    && (e.is_connect() || (idempotent && e.is_timeout())) =>
            {
                tracing::debug!(
                    attempt = attempt + 1,
                    error = %describe_reqwest_error(e),
                    "{what}: transient error, retrying"
                );
                policy.backoff(attempt)
            }
            Err(SendError::Stalled(stall)) if attempt < policy.max_retries && idempotent => {
                tracing::debug!(
                    attempt = attempt + 1,
                    error = %stall,
                    "{what}: timed out, retrying"
                );
                policy.backoff(attempt)
            }
            _ => return result,
        };
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// A failed [`send_with_retry`], described without the URL.
pub(crate) fn describe_send_error(e: &SendError) -> String {
    match e {
        SendError::Transport(e) => describe_reqwest_error(e),
        SendError::Stalled(stall) => stall.to_string(),
    }
}

/// The redirect policy of every client carrying a Foundry credential: follow a redirect only
/// to the same origin (scheme, host, port) over HTTPS, at most 5 times; any other is not
/// followed (the 3xx is the answer), so neither the token nor a client secret in a form body
/// leaves the configured services.
pub(crate) fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin())
            && attempt.url().scheme() == "https";
        if !same_origin {
            attempt.stop()
        } else if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else {
            attempt.follow()
        }
    })
}

/// A reqwest error with its causes, without the URL (whose query could hold a source's secret
/// parameters).
pub(crate) fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_decode() || e.is_body() {
        "reading the response failed"
    } else {
        "request failed"
    };
    let mut msg = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// A rustls client configuration (ring) trusting the public web roots plus `extra_roots`, with
/// an optional client certificate.
pub(crate) fn tls_config(
    extra_roots: &[CertificateDer<'static>],
    client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra_roots {
        roots
            .add(cert.clone())
            .map_err(|e| format!("invalid CA certificate: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots);
    let mut config = match client_auth {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("invalid client certificate or key: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A reqwest client builder with [`tls_config`], the connect timeout of `timeouts` (the idle
/// and response limits are enforced per exchange: [`watchdog::send_tracked`]; reqwest's
/// `read_timeout` would cap every upload), [`same_origin_redirects`] and no `Referer`.
pub(crate) fn http_client_builder(
    extra_roots: &[CertificateDer<'static>],
    client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    timeouts: Timeouts,
) -> Result<reqwest::ClientBuilder, String> {
    let tls = tls_config(extra_roots, client_auth)?;
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(timeouts.connect)
        .redirect(same_origin_redirects())
        .referer(false)
        .pool_idle_timeout(Duration::from_secs(50))
        .user_agent(concat!("cmod/", env!("CARGO_PKG_VERSION"))))
}

/// [`http_client_builder`], built.
pub(crate) fn http_client(
    extra_roots: &[CertificateDer<'static>],
    client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    timeouts: Timeouts,
) -> Result<reqwest::Client, String> {
    http_client_builder(extra_roots, client_auth, timeouts)?
        .build()
        .map_err(|e| {
            format!(
                "building the HTTP client failed: {}",
                describe_reqwest_error(&e)
            )
        })
}

/// The certificates of `DEFAULT_CA_PATH`, when set.
pub(crate) fn default_ca_certs(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<CertificateDer<'static>>, AuthError> {
    match crate::config::var(lookup, "DEFAULT_CA_PATH") {
        None => Ok(Vec::new()),
        Some(path) => crate::config::read_ca_file("DEFAULT_CA_PATH", Path::new(path.trim()))
            .map(|ca| ca.certs)
            .map_err(|p| AuthError::Config {
                message: format!("{}: {}", p.var, p.message),
            }),
    }
}

/// A Foundry API call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FoundryError {
    /// No usable credential (wrong mode, token endpoint refused, …).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Foundry answered with an error status.
    #[error(transparent)]
    Api(Box<ApiError>),
    /// Foundry could not be reached (after retries).
    #[error("Foundry request {method} {url} failed: {message}")]
    Transport {
        /// The HTTP method.
        method: String,
        /// The URL, without query.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The response body is not what the caller expected.
    #[error("Foundry request {method} {url}: unexpected response body: {message}")]
    Decode {
        /// The HTTP method.
        method: String,
        /// The URL, without query.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The request itself could not be built (bad path, body not serializable).
    #[error("invalid Foundry request: {0}")]
    InvalidRequest(String),
    /// An absolute URL on a host that is not one of the configured Foundry services: the
    /// credential is not sent there (see [`FoundryRequest::allow_any_origin`]).
    #[error(
        "refusing to send the Foundry credential to {origin} (host `{host}`): it is not one of \
         the configured Foundry services ({}); pass a path on the API gateway, or call \
         `allow_any_origin()` on the request if this host is meant to receive the token",
        if allowed.is_empty() { "none configured".to_owned() } else { allowed.join(", ") }
    )]
    ForeignOrigin {
        /// The host of the refused URL.
        host: String,
        /// The refused URL's origin (`https://host:port`), without path or query.
        origin: String,
        /// The origins the credential may be sent to.
        allowed: Vec<String>,
    },
}

impl FoundryError {
    /// The Foundry error, when Foundry answered with an error status.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            FoundryError::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status, when Foundry answered with an error status.
    pub fn status(&self) -> Option<u16> {
        self.api().map(|e| e.status)
    }

    /// A [`FoundryError::Transport`] for a request that failed or stalled.
    pub(crate) fn send_failed(method: &str, url: &str, e: &SendError) -> Self {
        FoundryError::Transport {
            method: method.to_owned(),
            url: url.to_owned(),
            message: describe_send_error(e),
        }
    }

    /// A [`FoundryError::Transport`] for a failed request or body read.
    pub(crate) fn transport(method: &str, url: &str, e: &reqwest::Error) -> Self {
        FoundryError::Transport {
            method: method.to_owned(),
            url: url.to_owned(),
            message: describe_reqwest_error(e),
        }
    }
}

/// A URL without its query, as errors and logs show it (the query may carry parameters that
/// do not belong there).
pub(crate) fn without_query(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

/// An error answer from Foundry: the HTTP status and Foundry's JSON error body
/// `{"errorCode","errorName","errorInstanceId","parameters"}` when it had one.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ApiError {
    /// The HTTP method.
    pub method: String,
    /// The URL, without query.
    pub url: String,
    /// The HTTP status.
    pub status: u16,
    /// `errorCode` (`NOT_FOUND`, `PERMISSION_DENIED`, …).
    pub error_code: Option<String>,
    /// `errorName` (`DatasetNotFound`, …).
    pub error_name: Option<String>,
    /// `errorInstanceId`, to quote to Palantir support.
    pub error_instance_id: Option<String>,
    /// `parameters`.
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// The start of a body that was not Foundry's error JSON (tokens redacted).
    pub body: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = reqwest::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        write!(
            f,
            "Foundry answered {} {reason} to {} {}",
            self.status, self.method, self.url
        )?;
        if let Some(name) = &self.error_name {
            write!(f, ": {name}")?;
            if let Some(code) = &self.error_code {
                write!(f, " ({code})")?;
            }
        }
        if !self.parameters.is_empty() {
            write!(
                f,
                ", parameters {}",
                serde_json::Value::Object(self.parameters.clone())
            )?;
        }
        if let Some(id) = &self.error_instance_id {
            write!(f, ", errorInstanceId {id}")?;
        }
        if let Some(body) = &self.body {
            write!(f, ": {body}")?;
        }
        if (300..400).contains(&self.status) {
            write!(
                f,
                " (redirects are followed only on the same origin over HTTPS; the credential \
                 is not sent elsewhere)"
            )?;
        } else if self.status == 401 {
            write!(
                f,
                " (the token was refused: expired, revoked or for another stack)"
            )?;
        } else if self.status == 403 {
            write!(
                f,
                " (the credential lacks a permission or scope; check the module's scopes and \
                 resource access)"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// Builds an [`ApiError`] from an error response: Foundry's JSON error shape when present,
    /// otherwise a trimmed snippet of the body. Each of `secrets` is redacted from the result.
    pub(crate) fn from_body(
        method: &str,
        url: &str,
        status: u16,
        body: &[u8],
        secrets: &[&str],
    ) -> Self {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            error_code: Option<String>,
            error_name: Option<String>,
            error_instance_id: Option<String>,
            #[serde(default)]
            parameters: serde_json::Map<String, serde_json::Value>,
        }
        let mut e = ApiError {
            method: method.to_owned(),
            url: url.to_owned(),
            status,
            error_code: None,
            error_name: None,
            error_instance_id: None,
            parameters: serde_json::Map::new(),
            body: None,
        };
        match serde_json::from_slice::<Body>(body) {
            Ok(b) if b.error_code.is_some() || b.error_name.is_some() => {
                e.error_code = b.error_code;
                e.error_name = b.error_name;
                e.error_instance_id = b.error_instance_id;
                e.parameters = b.parameters;
                for v in e.parameters.values_mut() {
                    if let serde_json::Value::String(s) = v {
                        *s = redact(s, secrets);
                    }
                }
            }
            _ => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                if !text.is_empty() {
                    let snippet: String = text.chars().take(300).collect();
                    e.body = Some(redact(&snippet, secrets));
                }
            }
        }
        e
    }
}

/// The strings to redact from an error built while `authorization` was sent: the whole
/// `Authorization` header value and the bare token after its scheme.
pub(crate) fn authorization_secrets(authorization: &Secret) -> [&str; 2] {
    let token = authorization.expose();
    let bare = token.split_once(' ').map(|(_, t)| t).unwrap_or(token);
    [token, bare]
}

/// `text` with every occurrence of each (non-trivial) secret replaced by `<redacted>`.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if s.len() >= 4 {
            out = out.replace(s, "<redacted>");
        }
    }
    out
}

/// The resolved base URLs of the Foundry services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FoundryUrls {
    api_gateway: Option<String>,
    stream_proxy: Option<String>,
    media: Option<String>,
    multipass: Option<String>,
}

impl FoundryUrls {
    fn get(&self, service: Service) -> Option<&str> {
        match service {
            Service::ApiGateway => self.api_gateway.as_deref(),
            Service::StreamProxy => self.stream_proxy.as_deref(),
            Service::Media => self.media.as_deref(),
            Service::Multipass => self.multipass.as_deref(),
            _ => None,
        }
    }

    /// The origins (`https://host:port`) of the configured services, de-duplicated.
    fn origins(&self) -> Vec<String> {
        let mut origins: Vec<String> = URL_SERVICES
            .iter()
            .filter_map(|s| self.get(*s))
            .filter_map(|u| reqwest::Url::parse(u).ok())
            .map(|u| u.origin())
            .filter(|o| o.is_tuple())
            .map(|o| o.ascii_serialization())
            .collect();
        origins.sort();
        origins.dedup();
        origins
    }

    fn slot(&mut self, service: Service) -> Option<&mut Option<String>> {
        match service {
            Service::ApiGateway => Some(&mut self.api_gateway),
            Service::StreamProxy => Some(&mut self.stream_proxy),
            Service::Media => Some(&mut self.media),
            Service::Multipass => Some(&mut self.multipass),
            _ => None,
        }
    }
}

const URL_SERVICES: [Service; 4] = [
    Service::ApiGateway,
    Service::StreamProxy,
    Service::Media,
    Service::Multipass,
];

/// `https://host` from `host`, `host:port`, `https://host/` …
fn normalize_base(value: &str) -> String {
    let v = value.trim().trim_end_matches('/');
    if v.starts_with("https://") || v.starts_with("http://") {
        v.to_owned()
    } else {
        format!("https://{v}")
    }
}

/// The shared, immutable part of a client.
struct Shared {
    http: reqwest::Client,
    urls: FoundryUrls,
    retry: RetryPolicy,
    limits: Limits,
}

/// An authenticated client for Foundry's HTTP APIs. Cheap to clone; clones share connections
/// and the token cache. `Debug` never shows a token.
///
/// Build one with [`FoundryClient::from_env`] (the module's own identity),
/// [`Context::foundry_as_user`] (the invoking user), [`FoundryClient::pipeline_from_env`]
/// (pipeline mode) or [`FoundryClient::builder`].
#[derive(Clone)]
pub struct FoundryClient {
    shared: Arc<Shared>,
    credentials: Credentials,
    scopes: Arc<[String]>,
}

impl fmt::Debug for FoundryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FoundryClient")
            .field("urls", &self.shared.urls)
            .field("credentials", &self.credentials)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// The environment's client, once built. A failed build is not kept: the next use tries again
/// (a CA file or discovery file mounted late, a transient read error).
static ENV_CLIENT: Mutex<Option<FoundryClient>> = Mutex::new(None);

impl FoundryClient {
    /// Starts configuring a client.
    pub fn builder() -> FoundryClientBuilder {
        FoundryClientBuilder::default()
    }

    /// The environment's client (built once per process, sharing its token cache), with the
    /// credentials found there: application permissions (`CLIENT_ID`/`CLIENT_SECRET`), else the
    /// pipeline token (`BUILD2_TOKEN`), else none.
    fn env_client() -> Result<FoundryClient, AuthError> {
        let mut slot = ENV_CLIENT.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let client = FoundryClient::builder().build()?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// The module's own identity, from the environment: application permissions when
    /// `CLIENT_ID`/`CLIENT_SECRET` are set, else the pipeline token when `BUILD2_TOKEN` is set.
    /// Fails with [`AuthError::NoPlatformPermissions`] when neither is. The client (and its
    /// token cache) is built once per process (a failed build is retried on the next call); clones
    /// are cheap.
    pub fn from_env() -> Result<FoundryClient, AuthError> {
        let client = Self::env_client()?;
        match client.credentials {
            Credentials::None => Err(AuthError::NoPlatformPermissions),
            _ => Ok(client),
        }
    }

    /// Application permissions from `CLIENT_ID`/`CLIENT_SECRET`; fails with
    /// [`AuthError::AppNotConfigured`] naming the missing variables.
    pub fn app_from_env() -> Result<FoundryClient, AuthError> {
        let client = Self::env_client()?;
        match client.credentials {
            Credentials::Application(_) => Ok(client),
            _ => Err(crate::auth::app_credentials(crate::env::lookup())
                .err()
                .unwrap_or(AuthError::AppNotConfigured {
                    missing: vec![crate::auth::CLIENT_ID_VAR],
                })),
        }
    }

    /// The pipeline token (`BUILD2_TOKEN`); fails naming the variable when it is unset or empty.
    /// The file is re-read when it changes and after a 401 (token rotation).
    pub fn pipeline_from_env() -> Result<FoundryClient, AuthError> {
        let token = PipelineToken::watch(crate::env::lookup())?;
        Ok(Self::env_client()?.with_credentials(Credentials::PipelineFile(token)))
    }

    /// This client with other credentials (same connections and URLs).
    pub fn with_credentials(&self, credentials: Credentials) -> FoundryClient {
        FoundryClient {
            shared: self.shared.clone(),
            credentials,
            scopes: self.scopes.clone(),
        }
    }

    /// This client requesting `scopes` for application tokens (e.g. `api:datasets-read`).
    /// Without scopes, tokens carry the application's default scopes.
    pub fn with_scopes<I, S>(&self, scopes: I) -> FoundryClient
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        FoundryClient {
            shared: self.shared.clone(),
            credentials: self.credentials.clone(),
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }

    /// This client acting as the user who invoked `ctx`'s job (its `authHeader`).
    pub fn as_user(&self, ctx: &Context) -> Result<FoundryClient, AuthError> {
        let header = ctx.auth_header().ok_or_else(|| AuthError::NoUserToken {
            job_id: ctx.job_id().to_owned(),
        })?;
        Ok(self.with_credentials(Credentials::user(header)))
    }

    /// The idle and response limits of this client's exchanges.
    pub(crate) fn limits(&self) -> Limits {
        self.shared.limits
    }

    /// The credentials this client sends.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The base URL of a Foundry service (`https://<stack>/api` for the API gateway).
    pub fn service_url(&self, service: Service) -> Result<&str, AuthError> {
        self.shared
            .urls
            .get(service)
            .ok_or_else(|| AuthError::NoFoundryUrl {
                service: service.to_string(),
            })
    }

    /// The API gateway URL (`https://<stack>/api`).
    pub fn api_url(&self) -> Result<&str, AuthError> {
        self.service_url(Service::ApiGateway)
    }

    /// The underlying HTTP client (trusting Foundry's CA), for requests this API does not cover.
    /// It adds no credentials; use [`FoundryClient::authorization`] for the header. It follows
    /// only same-origin HTTPS redirects and has only a connect timeout (the idle limits apply to
    /// requests sent with [`FoundryRequest`]).
    pub fn http(&self) -> &reqwest::Client {
        &self.shared.http
    }

    /// The `Authorization` header value the next request would carry (fetching an application
    /// token if needed).
    pub async fn authorization(&self) -> Result<Secret, AuthError> {
        self.credentials.authorization(&self.scopes).await
    }

    /// The bearer token the next request would carry, without the `Bearer ` prefix.
    pub async fn access_token(&self) -> Result<Secret, AuthError> {
        let header = self.authorization().await?;
        let value = header.expose();
        Ok(Secret::new(
            value
                .split_once(' ')
                .map(|(_, t)| t)
                .unwrap_or(value)
                .trim(),
        ))
    }

    /// A request to `path` on the API gateway (`/v2/datasets/…`), or to an absolute URL.
    ///
    /// The request carries this client's credential, so an absolute URL must be on the origin
    /// (scheme, host and port) of one of the configured Foundry services — API gateway, stream
    /// proxy, media, multipass, from [`FoundryClientBuilder`], `FOUNDRY_SERVICE_DISCOVERY_V2`
    /// or `FOUNDRY_URL`. Any other origin fails with [`FoundryError::ForeignOrigin`] before
    /// anything is sent, unless the request opts in with [`FoundryRequest::allow_any_origin`].
    pub fn request(&self, method: Method, path: impl Into<String>) -> FoundryRequest {
        FoundryRequest {
            client: self.clone(),
            method,
            service: Service::ApiGateway,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            timeout: None,
            error: None,
            any_origin: false,
        }
    }

    /// `GET path` on the API gateway.
    pub fn get(&self, path: impl Into<String>) -> FoundryRequest {
        self.request(Method::GET, path)
    }

    /// `POST path` on the API gateway.
    pub fn post(&self, path: impl Into<String>) -> FoundryRequest {
        self.request(Method::POST, path)
    }

    /// `GET path` on the API gateway, decoding the JSON response.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: impl Into<String>,
    ) -> Result<T, FoundryError> {
        self.get(path).send_json().await
    }

    /// `POST path` on the API gateway with a JSON body, decoding the JSON response.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: impl Into<String>,
        body: &B,
    ) -> Result<T, FoundryError> {
        self.post(path).json(body).send_json().await
    }
}

impl Context {
    /// A [`FoundryClient`] acting as the user who invoked this job, with the job's `authHeader`.
    /// Fails with [`AuthError::NoUserToken`] when the platform sent none. The token is never
    /// logged.
    ///
    /// ```no_run
    /// # async fn f(ctx: cmod_runtime::Context) -> Result<serde_json::Value, cmod_runtime::foundry::FoundryError> {
    /// ctx.foundry_as_user()?.get_json("/v2/admin/users/getCurrent").await
    /// # }
    /// ```
    pub fn foundry_as_user(&self) -> Result<FoundryClient, AuthError> {
        FoundryClient::env_client()?.as_user(self)
    }
}

/// One Foundry request being built; send it with [`FoundryRequest::send`],
/// [`FoundryRequest::send_json`] or [`FoundryRequest::send_bytes`].
pub struct FoundryRequest {
    client: FoundryClient,
    method: Method,
    service: Service,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<(Bytes, HeaderValue)>,
    timeout: Option<Duration>,
    error: Option<String>,
    any_origin: bool,
}

impl fmt::Debug for FoundryRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FoundryRequest")
            .field("method", &self.method)
            .field("service", &self.service)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FoundryRequest {
    /// Sends the request to another service's base URL (default: the API gateway).
    pub fn service(mut self, service: Service) -> Self {
        self.service = service;
        self
    }

    /// Adds a query parameter.
    pub fn query(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.query.push((name.into(), value.to_string()));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => self.headers.push((n, v)),
            _ => self.error = Some(format!("invalid header `{name}`")),
        }
        self
    }

    /// Sets a JSON body.
    pub fn json<B: Serialize + ?Sized>(mut self, body: &B) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Some((
                    Bytes::from(bytes),
                    HeaderValue::from_static("application/json"),
                ))
            }
            Err(e) => self.error = Some(format!("the JSON body cannot be serialized: {e}")),
        }
        self
    }

    /// Sets a raw body with its content type (e.g. `application/octet-stream`).
    pub fn body(mut self, body: impl Into<Bytes>, content_type: &str) -> Self {
        match HeaderValue::from_str(content_type) {
            Ok(ct) => self.body = Some((body.into(), ct)),
            Err(_) => self.error = Some(format!("invalid content type `{content_type}`")),
        }
        self
    }

    /// Limits the whole request (including reading the body) to `timeout`; it also replaces the
    /// client's response and idle limits for this request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Lets this request send the client's credential to an absolute URL on any origin, not
    /// only to the configured Foundry services. Only for URLs you trust with the token (for
    /// example a Foundry host that service discovery does not list); never for URLs taken from
    /// user input or response bodies.
    pub fn allow_any_origin(mut self) -> Self {
        self.any_origin = true;
        self
    }

    fn url(&self) -> Result<reqwest::Url, FoundryError> {
        let full = if self.path.starts_with("https://") || self.path.starts_with("http://") {
            self.path.clone()
        } else {
            let base = self.client.service_url(self.service)?;
            format!("{base}/{}", self.path.trim_start_matches('/'))
        };
        let mut url = reqwest::Url::parse(&full).map_err(|e| {
            let shown = full.split('?').next().unwrap_or_default();
            FoundryError::InvalidRequest(format!("invalid URL `{shown}`: {e}"))
        })?;
        if !self.any_origin {
            // Checked on the final URL, whichever way it was written.
            let allowed = self.client.shared.urls.origins();
            let origin = url.origin().ascii_serialization();
            if !allowed.contains(&origin) {
                return Err(FoundryError::ForeignOrigin {
                    host: url.host_str().unwrap_or_default().to_owned(),
                    origin,
                    allowed,
                });
            }
        }
        if !self.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&self.query);
        }
        Ok(url)
    }

    /// Sends the request. Any non-2xx answer is an error ([`FoundryError::Api`]).
    pub async fn send(self) -> Result<reqwest::Response, FoundryError> {
        if let Some(e) = self.error {
            return Err(FoundryError::InvalidRequest(e));
        }
        let url = self.url()?;
        let shown = without_query(&url);
        let method_name = self.method.as_str().to_owned();
        let idempotent = matches!(
            self.method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        let client = &self.client;
        let mut refreshed = false;
        loop {
            let auth = client.credentials.authorization(&client.scopes).await?;
            let auth_value = HeaderValue::from_str(auth.expose())
                .map_err(|_| {
                    FoundryError::Auth(AuthError::Config {
                        message: format!(
                            "the {} credential is not a valid header value",
                            client.credentials.mode()
                        ),
                    })
                })?
                .tap_sensitive();
            let limits = match self.timeout {
                Some(t) => Limits {
                    idle: t,
                    response: t,
                },
                None => client.shared.limits,
            };
            let response = send_with_retry(
                &client.shared.retry,
                limits,
                idempotent,
                "Foundry request",
                self.body.as_ref().map(|(bytes, _)| bytes),
                || {
                    let mut req = client
                        .shared
                        .http
                        .request(self.method.clone(), url.clone())
                        .header(AUTHORIZATION, auth_value.clone());
                    for (n, v) in &self.headers {
                        req = req.header(n, v);
                    }
                    if let Some((_, ct)) = &self.body {
                        req = req.header(CONTENT_TYPE, ct.clone());
                    }
                    if let Some(t) = self.timeout {
                        req = req.timeout(t);
                    }
                    req
                },
            )
            .await
            .map_err(|e| FoundryError::send_failed(&method_name, &shown, &e))?;
            let status = response.status();
            if status == reqwest::StatusCode::UNAUTHORIZED
                && !refreshed
                && client
                    .credentials
                    .refresh_after_unauthorized(&client.scopes, &auth)
            {
                refreshed = true;
                tracing::debug!(
                    method = %method_name,
                    url = %shown,
                    mode = client.credentials.mode(),
                    "Foundry answered 401; refreshing the credential and retrying once"
                );
                continue;
            }
            if status.is_success() {
                return Ok(response);
            }
            let body = response.bytes().await.unwrap_or_default();
            let err = ApiError::from_body(
                &method_name,
                &shown,
                status.as_u16(),
                &body,
                &authorization_secrets(&auth),
            );
            tracing::debug!(error = %err, "Foundry request failed");
            return Err(FoundryError::Api(Box::new(err)));
        }
    }

    /// Sends the request and decodes the JSON response into `T`.
    pub async fn send_json<T: DeserializeOwned>(self) -> Result<T, FoundryError> {
        let method = self.method.as_str().to_owned();
        let response = self.send().await?;
        let url = without_query(response.url());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| FoundryError::transport(&method, &url, &e))?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(&mut de).map_err(|e| FoundryError::Decode {
            method,
            url,
            message: e.to_string(),
        })
    }

    /// Sends the request and returns the whole response body.
    pub async fn send_bytes(self) -> Result<Bytes, FoundryError> {
        let method = self.method.as_str().to_owned();
        let response = self.send().await?;
        let url = without_query(response.url());
        response
            .bytes()
            .await
            .map_err(|e| FoundryError::transport(&method, &url, &e))
    }
}

/// Marks a header value sensitive (hyper then never logs it) and returns it.
trait TapSensitive {
    fn tap_sensitive(self) -> Self;
}

impl TapSensitive for HeaderValue {
    fn tap_sensitive(mut self) -> Self {
        self.set_sensitive(true);
        self
    }
}

/// How the builder picks credentials.
#[derive(Default)]
enum CredentialSource {
    /// Application permissions if configured, else the pipeline token, else none.
    #[default]
    Environment,
    /// OAuth2 client credentials given explicitly.
    App { client_id: String, secret: Secret },
    /// Given credentials.
    Given(Credentials),
}

/// Configures a [`FoundryClient`]; see [`FoundryClient::builder`].
#[derive(Default)]
pub struct FoundryClientBuilder {
    foundry_url: Option<String>,
    service_urls: Vec<(Service, String)>,
    credentials: CredentialSource,
    scopes: Vec<String>,
    extra_roots: Vec<CertificateDer<'static>>,
    timeouts: Option<Timeouts>,
    retry: RetryPolicy,
}

impl fmt::Debug for FoundryClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FoundryClientBuilder")
            .field(
                "foundry_url",
                &self.foundry_url.as_deref().map(crate::secret::shown_url),
            )
            .field(
                "service_urls",
                &self
                    .service_urls
                    .iter()
                    .map(|(s, u)| (s, crate::secret::shown_url(u)))
                    .collect::<Vec<_>>(),
            )
            .field("scopes", &self.scopes)
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl FoundryClientBuilder {
    /// The stack's base URL (`https://stack.example.com`, or just the hostname); every service
    /// URL is derived from it. Takes precedence over the environment.
    pub fn foundry_url(mut self, url: impl Into<String>) -> Self {
        self.foundry_url = Some(url.into());
        self
    }

    /// One service's base URL (e.g. the API gateway `https://stack.example.com/api`).
    pub fn service_url(mut self, service: Service, url: impl Into<String>) -> Self {
        self.service_urls.push((service, url.into()));
        self
    }

    /// Application permissions with an explicit client id and secret.
    pub fn app_credentials(mut self, client_id: impl Into<String>, secret: Secret) -> Self {
        self.credentials = CredentialSource::App {
            client_id: client_id.into(),
            secret,
        };
        self
    }

    /// Fixed credentials ([`Credentials::User`], [`Credentials::Pipeline`], …).
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = CredentialSource::Given(credentials);
        self
    }

    /// Scopes requested for application tokens.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Trusts an extra CA certificate (besides `DEFAULT_CA_PATH` and the public roots).
    pub fn add_root_certificate(mut self, cert: CertificateDer<'static>) -> Self {
        self.extra_roots.push(cert);
        self
    }

    /// Network timeouts (default: [`Timeouts::default`], with `CMOD_FOUNDRY_IDLE_TIMEOUT_SECS`
    /// and `CMOD_FOUNDRY_RESPONSE_TIMEOUT_SECS` overriding the idle and response limits).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = Some(timeouts);
        self
    }

    /// Retries of transient failures.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Builds the client from the environment (`DEFAULT_CA_PATH`, `FOUNDRY_SERVICE_DISCOVERY_V2`,
    /// `FOUNDRY_URL`, and for default credentials `CLIENT_ID`/`CLIENT_SECRET`/`BUILD2_TOKEN`).
    pub fn build(self) -> Result<FoundryClient, AuthError> {
        self.build_from_lookup(crate::env::lookup())
    }

    /// [`FoundryClientBuilder::build`] through a variable lookup function.
    pub fn build_from_lookup(
        self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<FoundryClient, AuthError> {
        let mut roots = default_ca_certs(lookup)?;
        roots.extend(self.extra_roots.iter().cloned());
        let timeouts = match self.timeouts {
            Some(t) => t,
            None => Timeouts::from_lookup(
                lookup,
                Timeouts::default(),
                IDLE_TIMEOUT_VAR,
                RESPONSE_TIMEOUT_VAR,
            )
            .map_err(|message| AuthError::Config { message })?,
        };
        let http =
            http_client(&roots, None, timeouts).map_err(|message| AuthError::Config { message })?;
        let urls = self.resolve_urls(lookup)?;

        let credentials = match self.credentials {
            CredentialSource::Given(c) => c,
            CredentialSource::App { client_id, secret } => {
                app_provider(&http, &urls, client_id, secret, self.retry)?
            }
            CredentialSource::Environment => match crate::auth::app_credentials(lookup) {
                Ok((id, secret)) => app_provider(&http, &urls, id, secret, self.retry)?,
                Err(_) => match crate::config::var(lookup, crate::auth::PIPELINE_TOKEN_VAR) {
                    Some(_) => Credentials::PipelineFile(PipelineToken::watch(lookup)?),
                    None => Credentials::None,
                },
            },
        };
        Ok(FoundryClient {
            shared: Arc::new(Shared {
                http,
                urls,
                retry: self.retry,
                limits: timeouts.limits(),
            }),
            credentials,
            scopes: self.scopes.into(),
        })
    }

    fn resolve_urls(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<FoundryUrls, AuthError> {
        let mut urls = FoundryUrls::default();
        if let Some(base) = &self.foundry_url {
            let base = normalize_base(base);
            for s in URL_SERVICES {
                if let (Some(slot), Some(path)) = (urls.slot(s), s.default_path()) {
                    *slot = Some(format!("{base}{path}"));
                }
            }
        } else {
            let discovery =
                ServiceDiscovery::from_lookup(lookup).map_err(|e| AuthError::Config {
                    message: e.to_string(),
                })?;
            let foundry_url =
                crate::config::var(lookup, FOUNDRY_URL_VAR).map(|u| normalize_base(&u));
            let gateway_origin = discovery
                .as_ref()
                .and_then(|d| d.api_gateway())
                .and_then(|g| g.strip_suffix("/api"))
                .map(str::to_owned);
            for s in URL_SERVICES {
                let from_discovery = discovery.as_ref().and_then(|d| d.service(s));
                let from_base = |base: &Option<String>| {
                    base.as_ref()
                        .zip(s.default_path())
                        .map(|(b, p)| format!("{b}{p}"))
                };
                let url = from_discovery
                    .map(str::to_owned)
                    .or_else(|| from_base(&foundry_url))
                    .or_else(|| from_base(&gateway_origin));
                if let Some(slot) = urls.slot(s) {
                    *slot = url;
                }
            }
        }
        for (s, url) in &self.service_urls {
            if let Some(slot) = urls.slot(*s) {
                *slot = Some(normalize_base(url));
            }
        }
        Ok(urls)
    }
}

fn app_provider(
    http: &reqwest::Client,
    urls: &FoundryUrls,
    client_id: String,
    secret: Secret,
    retry: RetryPolicy,
) -> Result<Credentials, AuthError> {
    let multipass = urls
        .multipass
        .as_deref()
        .ok_or_else(|| AuthError::NoFoundryUrl {
            service: Service::Multipass.to_string(),
        })?;
    Ok(Credentials::Application(AppTokenProvider::new(
        http.clone(),
        multipass,
        client_id,
        secret,
        retry,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup<'a>(map: &'a HashMap<&'static str, String>) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| map.get(k).cloned()
    }

    #[test]
    fn urls_come_from_explicit_then_discovery_then_foundry_url() {
        let dir = tempfile::tempdir().unwrap();
        let sd = dir.path().join("sd.yml");
        std::fs::write(
            &sd,
            "api_gateway: [\"https://disc/api\"]\nstream-proxy: [\"https://sp/x\"]\n",
        )
        .unwrap();
        let map = HashMap::from([
            ("FOUNDRY_SERVICE_DISCOVERY_V2", sd.display().to_string()),
            ("FOUNDRY_URL", "stack.example.com".to_owned()),
        ]);
        let c = FoundryClient::builder()
            .credentials(Credentials::None)
            .build_from_lookup(&lookup(&map))
            .unwrap();
        assert_eq!(c.api_url().unwrap(), "https://disc/api");
        assert_eq!(c.service_url(Service::StreamProxy).unwrap(), "https://sp/x");
        // Not in discovery: FOUNDRY_URL wins over the gateway's origin.
        assert_eq!(
            c.service_url(Service::Multipass).unwrap(),
            "https://stack.example.com/multipass/api"
        );

        let only_discovery =
            HashMap::from([("FOUNDRY_SERVICE_DISCOVERY_V2", sd.display().to_string())]);
        let c = FoundryClient::builder()
            .credentials(Credentials::None)
            .build_from_lookup(&lookup(&only_discovery))
            .unwrap();
        assert_eq!(
            c.service_url(Service::Multipass).unwrap(),
            "https://disc/multipass/api"
        );

        let c = FoundryClient::builder()
            .foundry_url("https://explicit:8443/")
            .credentials(Credentials::None)
            .build_from_lookup(&lookup(&map))
            .unwrap();
        assert_eq!(c.api_url().unwrap(), "https://explicit:8443/api");

        let c = FoundryClient::builder()
            .credentials(Credentials::None)
            .build_from_lookup(&|_| None)
            .unwrap();
        let err = c.api_url().unwrap_err().to_string();
        assert!(
            err.contains("FOUNDRY_URL") && err.contains("api_gateway"),
            "{err}"
        );
    }

    #[test]
    fn default_credentials_follow_the_environment() {
        let c = FoundryClient::builder()
            .build_from_lookup(&|_| None)
            .unwrap();
        assert_eq!(c.credentials().mode(), "none");
        let map = HashMap::from([
            ("CLIENT_ID", "app".to_owned()),
            ("CLIENT_SECRET", "planted-secret-1".to_owned()),
            ("FOUNDRY_URL", "localhost:1".to_owned()),
        ]);
        let c = FoundryClient::builder()
            .build_from_lookup(&lookup(&map))
            .unwrap();
        assert_eq!(c.credentials().mode(), "application");
        assert!(!format!("{c:?}").contains("planted-secret-1"));

        // Application permissions without any Foundry URL: the token endpoint is unknown.
        let no_url = HashMap::from([
            ("CLIENT_ID", "app".to_owned()),
            ("CLIENT_SECRET", "s".to_owned()),
        ]);
        let err = FoundryClient::builder()
            .build_from_lookup(&lookup(&no_url))
            .unwrap_err()
            .to_string();
        assert!(err.contains("multipass"), "{err}");
    }

    #[tokio::test]
    async fn no_platform_permissions_fails_naming_the_modes() {
        let c = FoundryClient::builder()
            .foundry_url("localhost:1")
            .build_from_lookup(&|_| None)
            .unwrap();
        let err = c
            .get_json::<serde_json::Value>("/v2/x")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no platform permissions"), "{err}");
        assert!(err.contains("CLIENT_ID"), "{err}");
    }

    #[test]
    fn api_errors_parse_foundry_bodies_and_redact_tokens() {
        let e = ApiError::from_body(
            "GET",
            "https://h/api/v2/datasets/x",
            404,
            br#"{"errorCode":"NOT_FOUND","errorName":"DatasetNotFound","errorInstanceId":"abc","parameters":{"datasetRid":"x","echo":"tok-123456"}}"#,
            &["tok-123456"],
        );
        let msg = e.to_string();
        assert!(
            msg.contains(
                "404 Not Found to GET https://h/api/v2/datasets/x: DatasetNotFound (NOT_FOUND)"
            ),
            "{msg}"
        );
        assert!(msg.contains("errorInstanceId abc"), "{msg}");
        assert!(!msg.contains("tok-123456"), "{msg}");
        let e = ApiError::from_body("GET", "u", 502, b"bad gateway tok-123456", &["tok-123456"]);
        assert_eq!(e.body.as_deref(), Some("bad gateway <redacted>"));
    }

    #[test]
    fn error_bodies_are_parsed_and_redacted() {
        let e = ApiError::from_body(
            "POST",
            "https://x/api",
            403,
            br#"{"errorCode":"PERMISSION_DENIED","errorName":"PermissionDenied","parameters":{"t":"tok-secret-1"}}"#,
            &["tok-secret-1"],
        );
        assert_eq!(e.error_name.as_deref(), Some("PermissionDenied"));
        assert_eq!(e.parameters["t"], "<redacted>");
        let e = ApiError::from_body(
            "POST",
            "https://x/api",
            500,
            b"oops tok-secret-1",
            &["tok-secret-1"],
        );
        assert_eq!(e.body.as_deref(), Some("oops <redacted>"));
    }

    #[tokio::test]
    async fn absolute_urls_must_be_on_a_configured_origin() {
        let c = FoundryClient::builder()
            .foundry_url("https://stack.example.com")
            .service_url(
                Service::StreamProxy,
                "https://streams.example.com:8443/sp/api",
            )
            .credentials(Credentials::Pipeline(Secret::new("planted-token-5b7a")))
            .build_from_lookup(&|_| None)
            .unwrap();
        for ok in [
            "https://stack.example.com/api/v2/x",
            "https://STACK.example.com:443/foundry-catalog/api/x",
            "https://streams.example.com:8443/other",
        ] {
            assert!(c.get(ok).url().is_ok(), "{ok}");
        }
        // Relative paths always resolve to a configured service.
        assert!(c.get("/v2/datasets/x").url().is_ok());
        for refused in [
            "https://evil.example.com/api/v2/x?key=planted-query",
            "https://stack.example.com:8443/api/v2/x?key=planted-query",
            "http://stack.example.com/api/v2/x?key=planted-query",
            "https://stack.example.com.evil.example/api?key=planted-query",
            "https://user:planted-query@evil.example.com/",
        ] {
            let err = c.get(refused).send().await.unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(matches!(err, FoundryError::ForeignOrigin { .. }), "{text}");
            assert!(!text.contains("planted-query"), "{text}");
            assert!(!text.contains("planted-token"), "{text}");
            assert!(text.contains("https://stack.example.com"), "{text}");
            assert!(c.get(refused).allow_any_origin().url().is_ok(), "{refused}");
        }
        let err = c
            .get("https://evil.example.com/x")
            .send()
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("host `evil.example.com`"), "{err}");
    }

    #[test]
    fn backoff_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(0), Duration::from_millis(100));
        assert_eq!(p.backoff(1), Duration::from_millis(200));
        assert_eq!(p.backoff(30), p.max_backoff);
    }
}
