//! Sources: the credentials and connection settings of the sources attached to the module
//! (docs/protocol.md §7.1, §7.2), and ready HTTP clients for REST sources.
//!
//! Foundry mounts two JSON files, both keyed by the source's API name:
//!
//! - `SOURCE_CREDENTIALS`: `{"<ApiName>": {"<secretName>": "<value>"}}`;
//! - `SOURCE_CONFIGURATIONS_PATH`: `{"<ApiName>": {"secrets", "httpConnectionConfig",
//!   "proxyToken", "sourceConfiguration", "resolvedCredentials", "clientCertificate",
//!   "serverCertificates"}}`.
//!
//! [`Sources`] merges both into typed [`Source`]s. Every secret is a [`Secret`]: it never shows in
//! `Debug` output, logs or errors.
//!
//! ```no_run
//! # async fn f(ctx: cmod_runtime::Context) -> Result<(), Box<dyn std::error::Error>> {
//! // Fail at startup, naming what is missing, if the source or its secret is not attached:
//! cmod_runtime::require_source!("WeatherApi", ["additionalSecretApiKey"]);
//!
//! let weather = ctx.source("WeatherApi")?;
//! let key = weather.require_secret("additionalSecretApiKey")?;
//! // A reqwest client with the connection's URL, auth headers, query parameters and CAs:
//! let client = weather.http_client()?;
//! let body = client.get("/forecast").send().await?.text().await?;
//! # let _ = (key, body); Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::context::Context;
use crate::secret::Secret;
use crate::transport::watchdog::{self, Limits, SendError};
use crate::transport::{describe_reqwest_error, scrub_error, scrub_response, shown};

/// The variable naming the secrets file.
pub const SOURCE_CREDENTIALS_VAR: &str = "SOURCE_CREDENTIALS";
/// The variable naming the source configurations file.
pub const SOURCE_CONFIGURATIONS_VAR: &str = "SOURCE_CONFIGURATIONS_PATH";

/// A problem with the sources files or with a source. Messages name the variable, the file, the
/// source and the secret involved, never a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A sources file could not be read.
    #[error("{var}: cannot read sources file {}: {message}", path.display())]
    Read {
        /// The variable naming the file.
        var: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// A sources file is not valid.
    #[error("{var}: sources file {} is not valid: {message}", path.display())]
    Parse {
        /// The variable naming the file.
        var: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong and where (values are never quoted).
        message: String,
    },
    /// The source is not attached to the module.
    #[error(
        "source `{api_name}` is not attached to this module ({}); attach it in the compute \
         module's Sources configuration",
        attached_text(attached, *files_present)
    )]
    NotAttached {
        /// The API name asked for.
        api_name: String,
        /// The attached sources.
        attached: Vec<String>,
        /// Whether any sources file was configured.
        files_present: bool,
    },
    /// The source has no secret of that name.
    #[error(
        "source `{api_name}` has no secret `{secret}` (it has: {}); REST source secrets are \
         named `additionalSecret<NAME>`",
        if available.is_empty() { "none".to_owned() } else { available.join(", ") }
    )]
    MissingSecret {
        /// The source.
        api_name: String,
        /// The secret asked for.
        secret: String,
        /// The secret names the source has.
        available: Vec<String>,
    },
    /// The source has no HTTP connection configuration.
    #[error(
        "source `{api_name}` has no HTTP connection (`httpConnectionConfig` in \
         {SOURCE_CONFIGURATIONS_VAR}): it is not a REST source, or {SOURCE_CONFIGURATIONS_VAR} is \
         not set"
    )]
    NoHttpConnection {
        /// The source.
        api_name: String,
    },
    /// The HTTP client of a source could not be built (certificates, headers, URL).
    #[error("source `{api_name}`: {message}")]
    Client {
        /// The source.
        api_name: String,
        /// What is wrong.
        message: String,
    },
    /// Sources or secrets the module declared as required are missing.
    #[error(
        "the module requires sources that are not attached:\n  - {}",
        problems.join("\n  - ")
    )]
    RequiredMissing {
        /// One line per missing source or secret, naming where it was declared.
        problems: Vec<String>,
    },
}

fn attached_text(attached: &[String], files_present: bool) -> String {
    if !files_present {
        format!("neither {SOURCE_CREDENTIALS_VAR} nor {SOURCE_CONFIGURATIONS_VAR} is set")
    } else if attached.is_empty() {
        "no source is attached".to_owned()
    } else {
        format!("attached: {}", attached.join(", "))
    }
}

/// The `httpConnectionConfig` of a REST source.
#[derive(Clone)]
#[non_exhaustive]
pub struct HttpConnectionConfig {
    /// The base URL.
    pub url: String,
    /// Headers to send on every request (often credentials).
    pub auth_headers: BTreeMap<String, Secret>,
    /// Query parameters to send on every request (sometimes credentials).
    pub query_parameters: BTreeMap<String, Secret>,
}

impl fmt::Debug for HttpConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Without query string or user info: either may hold a credential.
        let url = crate::transport::shown_url(&self.url);
        f.debug_struct("HttpConnectionConfig")
            .field("url", &url)
            .field(
                "auth_headers",
                &self.auth_headers.keys().collect::<Vec<_>>(),
            )
            .field(
                "query_parameters",
                &self.query_parameters.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// AWS credentials resolved by Foundry for a source.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AwsCredentials {
    /// Temporary session credentials.
    Session {
        /// `accessKeyId`.
        access_key_id: String,
        /// `secretAccessKey`.
        secret_access_key: Secret,
        /// `sessionToken`.
        session_token: Secret,
        /// `expiration` (`YYYY-MM-DDTHH:MM:SSZ`).
        expiration: Option<String>,
    },
    /// Long-lived access keys.
    Basic {
        /// `accessKeyId`.
        access_key_id: String,
        /// `secretAccessKey`.
        secret_access_key: Secret,
    },
}

/// Short-lived cloud credentials Foundry resolved for a source (`resolvedCredentials`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ResolvedCredentials {
    /// AWS credentials (`cloudCredentials.awsCredentials`).
    Aws(AwsCredentials),
    /// A GCP OAuth access token (`gcpOauthCredentials`).
    GcpOauth {
        /// `accessToken`.
        access_token: Secret,
        /// `expiration`.
        expiration: Option<String>,
    },
    /// An OAuth2 access token (`oauth2Credentials`).
    OAuth2 {
        /// `accessToken`.
        access_token: Secret,
        /// `expiration`.
        expiration: Option<String>,
    },
    /// A kind this version does not know; only its key is kept.
    Unknown {
        /// The top-level key.
        kind: String,
    },
}

impl ResolvedCredentials {
    /// The `expiration` Foundry gave, when it gave one.
    pub fn expiration(&self) -> Option<&str> {
        match self {
            ResolvedCredentials::Aws(AwsCredentials::Session { expiration, .. })
            | ResolvedCredentials::GcpOauth { expiration, .. }
            | ResolvedCredentials::OAuth2 { expiration, .. } => expiration.as_deref(),
            _ => None,
        }
    }

    /// [`ResolvedCredentials::expiration`], parsed (RFC 3339, `YYYY-MM-DDTHH:MM:SSZ`).
    pub fn expires_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.expiration()
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(e.trim()).ok())
            .map(|e| e.with_timezone(&chrono::Utc))
    }
}

/// A client certificate for mutual TLS (`clientCertificate`).
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientCertificate {
    /// `pemCertificate`: the certificate chain, PEM.
    pub pem_certificate: String,
    /// `pemPrivateKey`: the private key, PEM.
    pub pem_private_key: Secret,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field(
                "pem_certificate",
                &format_args!("{} bytes", self.pem_certificate.len()),
            )
            .field("pem_private_key", &self.pem_private_key)
            .finish()
    }
}

/// One attached source.
#[derive(Clone)]
#[non_exhaustive]
pub struct Source {
    /// The API name.
    pub api_name: String,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Secret>,
    /// The REST connection, for REST sources.
    pub http: Option<HttpConnectionConfig>,
    /// `proxyToken`, for sources reached through an agent proxy.
    pub proxy_token: Option<Secret>,
    /// `sourceConfiguration`: the source's full configuration.
    pub source_configuration: Option<serde_json::Value>,
    /// `resolvedCredentials`.
    pub resolved_credentials: Option<ResolvedCredentials>,
    /// `clientCertificate`.
    pub client_certificate: Option<ClientCertificate>,
    /// `serverCertificates`: extra CA certificates (PEM) by name.
    pub server_certificates: BTreeMap<String, String>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("api_name", &self.api_name)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("http", &self.http)
            .field("proxy_token", &self.proxy_token)
            .field("source_configuration", &self.source_configuration.is_some())
            .field("resolved_credentials", &self.resolved_credentials)
            .field("client_certificate", &self.client_certificate)
            .field(
                "server_certificates",
                &self.server_certificates.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Source {
    fn empty(api_name: &str) -> Self {
        Self {
            api_name: api_name.to_owned(),
            secrets: BTreeMap::new(),
            http: None,
            proxy_token: None,
            source_configuration: None,
            resolved_credentials: None,
            client_certificate: None,
            server_certificates: BTreeMap::new(),
        }
    }

    /// The secret named `name`, if any.
    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name)
    }

    /// The secret named `name`, or an error naming the source and the secrets it has.
    pub fn require_secret(&self, name: &str) -> Result<&Secret, SourceError> {
        self.secrets
            .get(name)
            .ok_or_else(|| SourceError::MissingSecret {
                api_name: self.api_name.clone(),
                secret: name.to_owned(),
                available: self.secrets.keys().cloned().collect(),
            })
    }

    /// The REST connection, or an error saying the source has none.
    pub fn http_connection(&self) -> Result<&HttpConnectionConfig, SourceError> {
        self.http
            .as_ref()
            .ok_or_else(|| SourceError::NoHttpConnection {
                api_name: self.api_name.clone(),
            })
    }

    /// A ready HTTP client for this REST source: requests go to the connection's URL, carry its
    /// auth headers and query parameters, and trust `DEFAULT_CA_PATH`, the source's
    /// `serverCertificates` and the public web roots; the client certificate is presented when
    /// configured. Timeouts: 10 s to connect, then limits on idle time only (never a cap on a
    /// transfer that moves): 60 s for the response headers once the request body was sent
    /// (`CMOD_SOURCE_RESPONSE_TIMEOUT_SECS`), 30 s without progress of either body
    /// (`CMOD_SOURCE_IDLE_TIMEOUT_SECS`); [`SourceRequest::timeout`] sets a request's own.
    /// Requests made with [`SourceClient::get`] & co. follow redirects themselves: on the
    /// connection's origin with its credentials, elsewhere without its auth headers and secret
    /// query parameters; no `Referer` is ever sent.
    pub fn http_client(&self) -> Result<SourceClient, SourceError> {
        self.http_client_from_lookup(crate::env::lookup())
    }

    /// [`Source::http_client`], reading `DEFAULT_CA_PATH` through a variable lookup function.
    pub fn http_client_from_lookup(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SourceClient, SourceError> {
        let conn = self.http_connection()?;
        let err = |message: String| SourceError::Client {
            api_name: self.api_name.clone(),
            message,
        };
        let base = reqwest::Url::parse(conn.url.trim()).map_err(|e| {
            // Without its query or user info: they could carry a credential.
            let shown = crate::transport::shown_url(&conn.url);
            err(format!("invalid connection URL `{shown}`: {e}"))
        })?;

        let mut roots = crate::transport::default_ca_certs(lookup).map_err(err)?;
        for (name, pem) in &self.server_certificates {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .map_err(|e| {
                        err(format!("server certificate `{name}` is not valid PEM: {e}"))
                    })?;
            if certs.is_empty() {
                return Err(err(format!(
                    "server certificate `{name}` contains no certificate"
                )));
            }
            roots.extend(certs);
        }
        let client_auth = match &self.client_certificate {
            None => None,
            Some(c) => {
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(c.pem_certificate.as_bytes())
                        .collect::<Result<_, _>>()
                        .map_err(|e| err(format!("client certificate is not valid PEM: {e}")))?;
                let key = PrivateKeyDer::from_pem_slice(c.pem_private_key.expose().as_bytes())
                    .map_err(|_| {
                        err("client certificate private key is not valid PEM".to_owned())
                    })?;
                Some((chain, key))
            }
        };
        let mut headers = HeaderMap::new();
        let mut auth_names = Vec::new();
        for (name, value) in &conn.auth_headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| err(format!("auth header name `{name}` is not a valid header")))?;
            let mut v = HeaderValue::from_str(value.expose())
                .map_err(|_| err(format!("auth header `{name}` has an invalid value")))?;
            v.set_sensitive(true);
            auth_names.push(n.clone());
            headers.insert(n, v);
        }
        let timeouts = crate::transport::Timeouts::from_lookup(
            lookup,
            SOURCE_TIMEOUTS,
            SOURCE_IDLE_TIMEOUT_VAR,
            SOURCE_RESPONSE_TIMEOUT_VAR,
        )
        .map_err(err)?;
        let proxy = match &self.proxy_token {
            None => None,
            Some(token) => {
                let discovery = crate::discovery::ServiceDiscovery::from_lookup(lookup)
                    .map_err(|e| err(e.to_string()))?;
                match discovery.as_ref().and_then(|d| d.on_prem_proxy()) {
                    None => None,
                    Some(proxy_url) => Some(
                        reqwest::Proxy::all(proxy_url)
                            .map_err(|e| {
                                err(format!("invalid on-prem proxy URL `{proxy_url}`: {e}"))
                            })?
                            .basic_auth("user", token.expose()),
                    ),
                }
            }
        };
        let client = |default_headers: Option<HeaderMap>| {
            let auth = client_auth
                .as_ref()
                .map(|(chain, key)| (chain.clone(), key.clone_key()));
            // Redirects are followed by `SourceRequest::send`, which knows what to strip.
            let mut builder = crate::transport::platform_client_builder(&roots, auth, timeouts)
                .map_err(err)?
                .redirect(reqwest::redirect::Policy::none());
            if let Some(proxy) = &proxy {
                builder = builder.proxy(proxy.clone());
            }
            if let Some(h) = default_headers {
                builder = builder.default_headers(h);
            }
            builder.build().map_err(|e| err(describe_reqwest_error(&e)))
        };
        let plain = client(None)?;
        let http = client(Some(headers.clone()))?;
        Ok(SourceClient {
            api_name: self.api_name.clone(),
            http,
            plain,
            base,
            query: conn
                .query_parameters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            credentials: std::sync::Arc::new(ConnectionCredentials {
                headers,
                names: auth_names,
                query_names: conn.query_parameters.keys().cloned().collect(),
                query_values: conn
                    .query_parameters
                    .values()
                    .map(|v| v.expose().to_owned())
                    .filter(|v| !v.is_empty())
                    .map(Secret::new)
                    .collect(),
            }),
            limits: timeouts.limits(),
        })
    }
}

/// A ready HTTP client for a REST source; see [`Source::http_client`]. Paths are joined to the
/// connection's URL and get its query parameters. `Debug` never shows credentials.
///
/// The connection's query parameters and auth headers are often credentials, so requests made
/// with [`SourceClient::get`] / [`post`](SourceClient::post) /
/// [`request`](SourceClient::request) keep them out of what can end up in logs: the errors of
/// [`SourceRequest::send`] and the URL of its response (so also `error_for_status()` errors)
/// show the URL without its query string and user info, and the auth headers are sent as
/// sensitive header values (never in `Debug` output). [`SourceClient::url`] and
/// [`SourceClient::http`] are lower level and give no such guarantee.
#[derive(Clone)]
pub struct SourceClient {
    api_name: String,
    /// With the auth headers as default headers, for [`SourceClient::http`].
    http: reqwest::Client,
    /// Without default headers: [`SourceRequest`] adds them per hop.
    plain: reqwest::Client,
    base: reqwest::Url,
    query: Vec<(String, Secret)>,
    credentials: std::sync::Arc<ConnectionCredentials>,
    limits: Limits,
}

/// Default timeouts of source clients.
const SOURCE_TIMEOUTS: crate::transport::Timeouts = crate::transport::Timeouts {
    connect: Duration::from_secs(10),
    response: Duration::from_secs(60),
    idle: Duration::from_secs(30),
};
/// The variable overriding the idle limit of source clients, in seconds.
pub const SOURCE_IDLE_TIMEOUT_VAR: &str = "CMOD_SOURCE_IDLE_TIMEOUT_SECS";
/// The variable overriding the response-header limit of source clients, in seconds.
pub const SOURCE_RESPONSE_TIMEOUT_VAR: &str = "CMOD_SOURCE_RESPONSE_TIMEOUT_SECS";
/// Redirects a [`SourceRequest`] follows at most.
const MAX_REDIRECTS: usize = 10;

/// What a redirect to another origin must not carry: the connection's auth headers and its
/// query parameters (by name, and by value wherever they were echoed).
struct ConnectionCredentials {
    headers: HeaderMap,
    names: Vec<HeaderName>,
    query_names: Vec<String>,
    query_values: Vec<Secret>,
}

impl ConnectionCredentials {
    /// Where the request sets an auth header itself (after the connection's, which come
    /// first), drops the connection's value: the request's own wins, as a default header would.
    fn let_request_override(&self, headers: &mut HeaderMap) {
        for name in &self.names {
            let values: Vec<HeaderValue> = headers.get_all(name).iter().cloned().collect();
            if values.len() > 1 {
                headers.remove(name);
                for v in values.into_iter().skip(1) {
                    headers.append(name.clone(), v);
                }
            }
        }
    }

    /// Removes every credential from a request leaving the connection's origin.
    fn strip(&self, request: &mut reqwest::Request) {
        let headers = request.headers_mut();
        for name in &self.names {
            headers.remove(name);
        }
        for name in [
            reqwest::header::AUTHORIZATION,
            reqwest::header::COOKIE,
            reqwest::header::PROXY_AUTHORIZATION,
        ] {
            headers.remove(name);
        }
        let url = request.url_mut();
        if url.query().is_some() {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, v)| {
                    !self.query_names.iter().any(|n| n == k)
                        && !self.query_values.iter().any(|s| s.expose() == v)
                })
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.set_query(None);
            if !kept.is_empty() {
                url.query_pairs_mut().extend_pairs(kept);
            }
        }
        let _ = url.set_password(None);
        let _ = url.set_username("");
    }
}

impl fmt::Debug for SourceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceClient")
            .field("api_name", &self.api_name)
            .field("base_url", &shown(&self.base))
            .finish_non_exhaustive()
    }
}

impl SourceClient {
    /// The connection's base URL (without query string or user info).
    pub fn base_url(&self) -> String {
        shown(&self.base)
    }

    /// The underlying client (auth headers and TLS configured, no base URL). It follows no
    /// redirect and has only a connect timeout. Errors and responses of requests sent with it
    /// carry the full URL: use [`SourceClient::get`] & co. when the URL holds credentials.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The full URL of `path` (joined to the base URL, with the connection's query parameters).
    /// It contains the query parameters' values, which may be credentials: do not log or
    /// display it.
    pub fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.base.clone();
        let joined = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        let (p, q) = joined
            .split_once('?')
            .map_or((joined.as_str(), None), |(p, q)| (p, Some(q)));
        url.set_path(p);
        url.set_query(q);
        if !self.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(self.query.iter().map(|(k, v)| (k, v.expose())));
        }
        url
    }

    /// A request to `path` under the base URL (`path` may carry its own `?query`).
    pub fn request(&self, method: reqwest::Method, path: &str) -> SourceRequest {
        let url = self.url(path);
        SourceRequest {
            api_name: self.api_name.clone(),
            method: method.clone(),
            shown: shown(&url),
            origin: self.base.origin().ascii_serialization(),
            inner: self
                .plain
                .request(method, url)
                .headers(self.credentials.headers.clone()),
            credentials: self.credentials.clone(),
            limits: self.limits,
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> SourceRequest {
        self.request(reqwest::Method::GET, path)
    }

    /// `POST path`.
    pub fn post(&self, path: &str) -> SourceRequest {
        self.request(reqwest::Method::POST, path)
    }
}

/// A request to a REST source being built ([`SourceClient::get`], …): reqwest's
/// `RequestBuilder` that keeps the connection's credentials out of errors and logs (see
/// [`SourceClient`]). `Debug` shows the method and the URL without its query.
pub struct SourceRequest {
    api_name: String,
    method: reqwest::Method,
    shown: String,
    /// The connection's origin: its credentials go nowhere else.
    origin: String,
    inner: reqwest::RequestBuilder,
    credentials: std::sync::Arc<ConnectionCredentials>,
    limits: Limits,
}

/// A [`SourceRequest`] that got no response: connection or TLS failure, a timeout (no progress
/// for the client's limits, or the request's own [`SourceRequest::timeout`]), too many
/// redirects. Shows the URL without its query string or user info.
#[derive(Debug, thiserror::Error)]
#[error("source `{api_name}`: {method} {url} failed: {message}")]
pub struct SourceRequestError {
    api_name: String,
    method: String,
    url: String,
    message: String,
    timeout: bool,
    #[source]
    source: Option<reqwest::Error>,
}

impl SourceRequestError {
    /// Whether connecting failed.
    pub fn is_connect(&self) -> bool {
        self.source.as_ref().is_some_and(reqwest::Error::is_connect)
    }

    /// Whether a time limit ran out.
    pub fn is_timeout(&self) -> bool {
        self.timeout || self.source.as_ref().is_some_and(reqwest::Error::is_timeout)
    }

    /// The URL, without query string or user info.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying reqwest error (its URL scrubbed), when there is one.
    pub fn reqwest(&self) -> Option<&reqwest::Error> {
        self.source.as_ref()
    }
}

impl fmt::Debug for SourceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceRequest")
            .field("source", &self.api_name)
            .field("method", &self.method)
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl SourceRequest {
    /// Adds a header. An invalid name or value fails the request at [`SourceRequest::send`].
    /// (The connection's auth headers are already set, marked sensitive; mark a secret value of
    /// your own with `HeaderValue::set_sensitive`.)
    pub fn header<K, V>(mut self, key: K, value: V) -> Self
    where
        reqwest::header::HeaderName: TryFrom<K>,
        <reqwest::header::HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        reqwest::header::HeaderValue: TryFrom<V>,
        <reqwest::header::HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.inner = self.inner.header(key, value);
        self
    }

    /// Adds headers.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.inner = self.inner.headers(headers);
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<reqwest::Body>) -> Self {
        self.inner = self.inner.body(body);
        self
    }

    /// Sets a JSON body (`Content-Type: application/json`).
    pub fn json<T: serde::Serialize + ?Sized>(self, body: &T) -> Result<Self, serde_json::Error> {
        let bytes = serde_json::to_vec(body)?;
        Ok(self
            .header(
                reqwest::header::CONTENT_TYPE,
                reqwest::header::HeaderValue::from_static("application/json"),
            )
            .body(bytes))
    }

    /// Sets a form body (`application/x-www-form-urlencoded`).
    pub fn form<T: serde::Serialize + ?Sized>(mut self, form: &T) -> Self {
        self.inner = self.inner.form(form);
        self
    }

    /// Limits the whole request, from connecting to reading the end of the body, to `timeout`;
    /// it replaces the client's idle and response limits for this request (so it may be
    /// longer than they are).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.inner = self.inner.timeout(timeout);
        self.limits = Limits {
            idle: timeout,
            response: timeout,
        };
        self
    }

    /// Sends the request, following redirects: to the connection's origin with its
    /// credentials, to any other without the connection's auth headers, its query parameters,
    /// `Authorization` and `Cookie` (at most 10). The error, and the response's URL, show the
    /// URL without its query string or user info (so without the connection's query
    /// parameters).
    pub async fn send(self) -> Result<reqwest::Response, SourceRequestError> {
        let fail = |url: &str, message: String, timeout: bool, source: Option<reqwest::Error>| {
            let e = SourceRequestError {
                api_name: self.api_name.clone(),
                method: self.method.to_string(),
                url: url.to_owned(),
                message,
                timeout,
                source,
            };
            tracing::debug!(
                source = %self.api_name,
                method = %self.method,
                url = %url,
                error = %e,
                "source request failed"
            );
            e
        };
        let (client, request) = self.inner.build_split();
        let mut request = request.map_err(|e| {
            let e = scrub_error(e);
            fail(&self.shown, describe_reqwest_error(&e), false, Some(e))
        })?;
        self.credentials.let_request_override(request.headers_mut());
        let mut hops = 0usize;
        loop {
            let here = shown(request.url());
            let replay = request.try_clone();
            let (method, url) = (request.method().clone(), request.url().clone());
            let (headers, timeout) = (request.headers().clone(), request.timeout().copied());
            let builder = reqwest::RequestBuilder::from_parts(client.clone(), request);
            let response = match watchdog::send_tracked(builder, self.limits).await {
                Ok(r) => r,
                Err(SendError::Stalled(stall)) => {
                    return Err(fail(&here, stall.to_string(), true, None));
                }
                Err(SendError::Transport(e)) => {
                    let e = scrub_error(e);
                    let message = describe_reqwest_error(&e);
                    return Err(fail(&here, message, false, Some(e)));
                }
            };
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok());
            let (Some(location), true) = (location, matches!(status, 301 | 302 | 303 | 307 | 308))
            else {
                return Ok(scrub_response(response));
            };
            if hops >= MAX_REDIRECTS {
                return Err(fail(
                    &here,
                    format!("more than {MAX_REDIRECTS} redirects"),
                    false,
                    None,
                ));
            }
            // 307/308 repeat the request (body included); 303, and 301/302 after a POST, turn
            // it into a GET without body, as browsers and reqwest do.
            let keep = matches!(status, 307 | 308)
                || (matches!(status, 301 | 302) && method != reqwest::Method::POST);
            let mut next = match (keep, replay) {
                (true, Some(r)) => r,
                // A streamed body cannot be sent again: the redirect is the answer.
                (true, None) => return Ok(scrub_response(response)),
                (false, _) => {
                    let m = if method == reqwest::Method::HEAD {
                        method.clone()
                    } else {
                        reqwest::Method::GET
                    };
                    let mut r = reqwest::Request::new(m, location.clone());
                    // The request's headers, without those describing the dropped body.
                    *r.headers_mut() = headers;
                    for h in [
                        reqwest::header::CONTENT_TYPE,
                        reqwest::header::CONTENT_LENGTH,
                        reqwest::header::CONTENT_ENCODING,
                        reqwest::header::TRANSFER_ENCODING,
                    ] {
                        r.headers_mut().remove(h);
                    }
                    *r.timeout_mut() = timeout;
                    r
                }
            };
            *next.url_mut() = location.clone();
            if location.origin().ascii_serialization() != self.origin {
                self.credentials.strip(&mut next);
            }
            next.headers_mut().remove(reqwest::header::REFERER);
            tracing::debug!(
                source = %self.api_name,
                status,
                to = %shown(&location),
                "source request redirected"
            );
            drop(response);
            request = next;
            hops += 1;
        }
    }

    /// The underlying reqwest builder, for options this type does not offer. It carries the
    /// connection's auth headers (a header of the same name added on it is sent as well) but
    /// follows no redirect and has no idle limits; its errors and responses carry the full URL,
    /// credentials included.
    pub fn into_reqwest(self) -> reqwest::RequestBuilder {
        self.inner
    }
}

/// Every attached source, from `SOURCE_CREDENTIALS` and `SOURCE_CONFIGURATIONS_PATH`.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    sources: BTreeMap<String, Source>,
    files_present: bool,
}

/// The environment's sources, once read. A failed read is not kept: the next use tries again.
/// Replaced when time-limited cloud credentials expired and the files hold newer ones; a
/// replaced value stays allocated (`global` hands out `&'static`), a few KiB per credential
/// rotation.
static GLOBAL: RwLock<Option<&'static Sources>> = RwLock::new(None);
/// When the files were last read for [`Sources::global`] (re-reads for expired credentials are
/// at most once per [`REREAD_INTERVAL`]).
static LAST_READ: Mutex<Option<std::time::Instant>> = Mutex::new(None);
/// Credentials expiring within this margin count as expired.
const EXPIRY_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// The least time between two re-reads of the files for expired credentials.
const REREAD_INTERVAL: Duration = Duration::from_secs(1);

impl Sources {
    /// Reads both files (either may be unset; a set variable whose file is missing or malformed
    /// is an error naming the variable and the file).
    pub fn from_env() -> Result<Sources, SourceError> {
        Self::from_lookup(crate::env::lookup())
    }

    /// The environment's sources, read once per process (a failed read is retried on the next
    /// call). When time-limited cloud credentials (`resolvedCredentials` with an `expiration`)
    /// have expired, or expire within a minute, the files are read again (at most once a
    /// second) and newer credentials replace them.
    pub fn global() -> Result<&'static Sources, SourceError> {
        let current = *GLOBAL.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(sources) = current
            && !sources.credentials_expire_by(chrono::Utc::now() + EXPIRY_MARGIN)
        {
            return Ok(sources);
        }
        let mut last = LAST_READ.lock().unwrap_or_else(PoisonError::into_inner);
        // Another caller may have replaced them meanwhile.
        let current = *GLOBAL.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(sources) = current
            && (!sources.credentials_expire_by(chrono::Utc::now() + EXPIRY_MARGIN)
                || last.is_some_and(|t| t.elapsed() < REREAD_INTERVAL))
        {
            return Ok(sources);
        }
        *last = Some(std::time::Instant::now());
        let fresh = match (Self::from_env(), current) {
            (Ok(fresh), _) => fresh,
            (Err(e), None) => return Err(e),
            (Err(e), Some(old)) => {
                tracing::warn!(
                    error = %e,
                    "re-reading the sources files for expired credentials failed; keeping the \
                     previous ones"
                );
                return Ok(old);
            }
        };
        if let Some(old) = current
            && old.expirations() == fresh.expirations()
        {
            // Nothing newer mounted yet.
            return Ok(old);
        }
        let fresh: &'static Sources = Box::leak(Box::new(fresh));
        *GLOBAL.write().unwrap_or_else(PoisonError::into_inner) = Some(fresh);
        Ok(fresh)
    }

    /// Whether any source's time-limited credentials expire at or before `at`.
    fn credentials_expire_by(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        self.sources
            .values()
            .filter_map(|s| s.resolved_credentials.as_ref())
            .filter_map(ResolvedCredentials::expires_at)
            .any(|e| e <= at)
    }

    /// The expiration of each source's credentials.
    fn expirations(&self) -> Vec<Option<&str>> {
        self.sources
            .values()
            .map(|s| {
                s.resolved_credentials
                    .as_ref()
                    .and_then(ResolvedCredentials::expiration)
            })
            .collect()
    }

    /// [`Sources::from_env`] through a variable lookup function.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Sources, SourceError> {
        let mut sources: BTreeMap<String, Source> = BTreeMap::new();
        let mut files_present = false;
        if let Some(path) = crate::config::var(lookup, SOURCE_CREDENTIALS_VAR) {
            files_present = true;
            let path = PathBuf::from(path.trim());
            let creds: BTreeMap<String, BTreeMap<String, String>> =
                read_json(SOURCE_CREDENTIALS_VAR, &path)?;
            for (api_name, secrets) in creds {
                let s = sources
                    .entry(api_name.clone())
                    .or_insert_with(|| Source::empty(&api_name));
                s.secrets
                    .extend(secrets.into_iter().map(|(k, v)| (k, Secret::new(v))));
            }
        }
        if let Some(path) = crate::config::var(lookup, SOURCE_CONFIGURATIONS_VAR) {
            files_present = true;
            let path = PathBuf::from(path.trim());
            let configs: BTreeMap<String, RawConfig> = read_json(SOURCE_CONFIGURATIONS_VAR, &path)?;
            for (api_name, raw) in configs {
                let s = sources
                    .entry(api_name.clone())
                    .or_insert_with(|| Source::empty(&api_name));
                raw.apply(s).map_err(|message| SourceError::Parse {
                    var: SOURCE_CONFIGURATIONS_VAR,
                    path: path.clone(),
                    message: format!("source `{api_name}`: {message}"),
                })?;
            }
        }
        Ok(Sources {
            sources,
            files_present,
        })
    }

    /// The source with this API name.
    pub fn get(&self, api_name: &str) -> Option<&Source> {
        self.sources.get(api_name)
    }

    /// The source with this API name, or an error listing the attached ones.
    pub fn source(&self, api_name: &str) -> Result<&Source, SourceError> {
        self.sources
            .get(api_name)
            .ok_or_else(|| SourceError::NotAttached {
                api_name: api_name.to_owned(),
                attached: self.sources.keys().cloned().collect(),
                files_present: self.files_present,
            })
    }

    /// The API names of the attached sources.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    /// Whether no source is attached.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Checks `required` against the attached sources; the error lists every missing source
    /// and secret with where it was declared.
    pub fn check<'a>(
        &self,
        required: impl IntoIterator<Item = &'a RequiredSource>,
    ) -> Result<(), SourceError> {
        let mut problems = Vec::new();
        for r in required {
            match self.sources.get(r.api_name) {
                None => problems.push(format!(
                    "source `{}` (required at {}:{}): not attached ({})",
                    r.api_name,
                    r.file,
                    r.line,
                    attached_text(
                        &self.sources.keys().cloned().collect::<Vec<_>>(),
                        self.files_present
                    )
                )),
                Some(s) => {
                    for secret in r.secrets {
                        if !s.secrets.contains_key(*secret) {
                            problems.push(format!(
                                "source `{}` (required at {}:{}): secret `{secret}` is missing \
                                 (it has: {})",
                                r.api_name,
                                r.file,
                                r.line,
                                if s.secrets.is_empty() {
                                    "none".to_owned()
                                } else {
                                    s.secrets.keys().cloned().collect::<Vec<_>>().join(", ")
                                }
                            ));
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SourceError::RequiredMissing { problems })
        }
    }
}

/// A source (and secrets) the module cannot run without, declared with
/// [`require_source!`](crate::require_source). Checked at startup by
/// [`run`](crate::run).
#[derive(Debug)]
pub struct RequiredSource {
    /// The source's API name.
    pub api_name: &'static str,
    /// Secrets that must be present.
    pub secrets: &'static [&'static str],
    /// The declaring file.
    pub file: &'static str,
    /// The declaring line.
    pub line: u32,
}

impl RequiredSource {
    /// A declaration (used by [`require_source!`](crate::require_source)).
    pub const fn new(
        api_name: &'static str,
        secrets: &'static [&'static str],
        file: &'static str,
        line: u32,
    ) -> Self {
        Self {
            api_name,
            secrets,
            file,
            line,
        }
    }
}

inventory::collect!(RequiredSource);

/// Every [`require_source!`](crate::require_source) declaration linked into the binary.
pub fn required_sources() -> Vec<&'static RequiredSource> {
    inventory::iter::<RequiredSource>.into_iter().collect()
}

/// Declares a source (and optionally secrets of it) the module requires. The module then fails
/// at startup, naming every missing source and secret and where it was declared, instead of at
/// the first call. Use it at module level, once per source:
///
/// ```no_run
/// cmod_runtime::require_source!("WeatherApi");
/// cmod_runtime::require_source!("Crm", ["additionalSecretClientId", "additionalSecretClientSecret"]);
/// ```
#[macro_export]
macro_rules! require_source {
    ($api_name:literal $(,)?) => {
        $crate::require_source!($api_name, []);
    };
    ($api_name:literal, [$($secret:literal),* $(,)?] $(,)?) => {
        $crate::__private::inventory::submit! {
            $crate::sources::RequiredSource::new(
                $api_name,
                &[$($secret),*],
                ::core::file!(),
                ::core::line!(),
            )
        }
    };
}

/// Checks every [`require_source!`](crate::require_source) declaration against the
/// environment's sources. Called at startup by [`run`](crate::run).
pub fn check_required_sources() -> Result<(), crate::Error> {
    let required = required_sources();
    if required.is_empty() {
        return Ok(());
    }
    Sources::global()?.check(required)?;
    Ok(())
}

impl Context {
    /// The attached source with this API name (from `SOURCE_CREDENTIALS` /
    /// `SOURCE_CONFIGURATIONS_PATH`), or an error naming the attached ones.
    pub fn source(&self, api_name: &str) -> Result<&'static Source, SourceError> {
        Sources::global()?.source(api_name)
    }

    /// Every attached source.
    pub fn sources(&self) -> Result<&'static Sources, SourceError> {
        Sources::global()
    }
}

/// Reads and parses a JSON sources file. Errors give the JSON path, line and column, and never
/// quote a value from the file (it could be a secret).
fn read_json<T: serde::de::DeserializeOwned>(
    var: &'static str,
    path: &Path,
) -> Result<T, SourceError> {
    let bytes = std::fs::read(path).map_err(|e| SourceError::Read {
        var,
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.inner();
        let what = match inner.classify() {
            serde_json::error::Category::Io => "I/O error".to_owned(),
            serde_json::error::Category::Syntax => "invalid JSON".to_owned(),
            serde_json::error::Category::Eof => "unexpected end of file".to_owned(),
            serde_json::error::Category::Data => strip_quoted(&inner.to_string()),
        };
        let location = if at.is_empty() || at == "." || at == "?" {
            String::new()
        } else {
            format!(" at `{at}`")
        };
        SourceError::Parse {
            var,
            path: path.to_owned(),
            message: format!(
                "{what}{location} (line {}, column {}); expected a JSON object keyed by source \
                 API name",
                inner.line(),
                inner.column()
            ),
        }
    })
}

/// A serde message with its quoted values and position suffix removed: serde quotes strings
/// with `"` and other values (integers, floats, booleans: a numeric PIN or key) with backticks.
/// Field names are kept (`missing field `url``, `unknown field …, expected one of `a`, `b``):
/// they come from the file's schema, not from its values.
fn strip_quoted(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<(char, bool)> = None;
    for c in message.chars() {
        match quote {
            None if c == '"' || c == '`' => {
                let names =
                    c == '`' && (out.ends_with("field ") || out.contains("expected one of "));
                out.push(c);
                if !names {
                    out.push('…');
                    out.push(c);
                }
                quote = Some((c, names));
            }
            None => out.push(c),
            Some((q, names)) if c == q => {
                if names {
                    out.push(c);
                }
                quote = None;
            }
            Some((_, true)) => out.push(c),
            Some((_, false)) => {}
        }
    }
    out
}

/// One source's entry in `SOURCE_CONFIGURATIONS_PATH`, as read (no `Debug`: it holds secrets).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    #[serde(default)]
    http_connection_config: Option<RawHttp>,
    #[serde(default)]
    proxy_token: Option<String>,
    #[serde(default)]
    source_configuration: Option<serde_json::Value>,
    #[serde(default)]
    resolved_credentials: Option<serde_json::Value>,
    #[serde(default)]
    client_certificate: Option<RawCert>,
    #[serde(default)]
    server_certificates: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHttp {
    url: String,
    #[serde(default)]
    auth_headers: BTreeMap<String, String>,
    #[serde(default)]
    query_parameters: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    pem_certificate: String,
    pem_private_key: String,
}

impl RawConfig {
    fn apply(self, s: &mut Source) -> Result<(), String> {
        s.secrets
            .extend(self.secrets.into_iter().map(|(k, v)| (k, Secret::new(v))));
        if let Some(h) = self.http_connection_config {
            s.http = Some(HttpConnectionConfig {
                url: h.url,
                auth_headers: secrets_map(h.auth_headers),
                query_parameters: secrets_map(h.query_parameters),
            });
        }
        s.proxy_token = self.proxy_token.map(Secret::new);
        s.source_configuration = self.source_configuration;
        s.resolved_credentials = self
            .resolved_credentials
            .map(|v| parse_resolved(&v))
            .transpose()?;
        s.client_certificate = self.client_certificate.map(|c| ClientCertificate {
            pem_certificate: c.pem_certificate,
            pem_private_key: Secret::new(c.pem_private_key),
        });
        s.server_certificates = self.server_certificates;
        Ok(())
    }
}

fn secrets_map(m: BTreeMap<String, String>) -> BTreeMap<String, Secret> {
    m.into_iter().map(|(k, v)| (k, Secret::new(v))).collect()
}

/// Parses `resolvedCredentials` (docs/protocol.md §7.2).
fn parse_resolved(v: &serde_json::Value) -> Result<ResolvedCredentials, String> {
    let obj = v
        .as_object()
        .ok_or("`resolvedCredentials` is not an object")?;
    let obj = obj
        .get("cloudCredentials")
        .and_then(|c| c.as_object())
        .unwrap_or(obj);
    let field = |o: &serde_json::Map<String, serde_json::Value>, ctx: &str, name: &str| {
        o.get(name)
            .and_then(|x| x.as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("`{ctx}.{name}` is missing or not a string"))
    };
    let opt = |o: &serde_json::Map<String, serde_json::Value>, name: &str| {
        o.get(name).and_then(|x| x.as_str()).map(str::to_owned)
    };
    if let Some(aws) = obj.get("awsCredentials").and_then(|a| a.as_object()) {
        if let Some(s) = aws.get("sessionCredentials").and_then(|s| s.as_object()) {
            let ctx = "resolvedCredentials.awsCredentials.sessionCredentials";
            return Ok(ResolvedCredentials::Aws(AwsCredentials::Session {
                access_key_id: field(s, ctx, "accessKeyId")?,
                secret_access_key: Secret::new(field(s, ctx, "secretAccessKey")?),
                session_token: Secret::new(field(s, ctx, "sessionToken")?),
                expiration: opt(s, "expiration"),
            }));
        }
        if let Some(b) = aws.get("basicCredentials").and_then(|s| s.as_object()) {
            let ctx = "resolvedCredentials.awsCredentials.basicCredentials";
            return Ok(ResolvedCredentials::Aws(AwsCredentials::Basic {
                access_key_id: field(b, ctx, "accessKeyId")?,
                secret_access_key: Secret::new(field(b, ctx, "secretAccessKey")?),
            }));
        }
        return Err(
            "`resolvedCredentials.awsCredentials` has neither `sessionCredentials` nor \
             `basicCredentials`"
                .to_owned(),
        );
    }
    for (key, gcp) in [("gcpOauthCredentials", true), ("oauth2Credentials", false)] {
        if let Some(o) = obj.get(key).and_then(|x| x.as_object()) {
            let ctx = format!("resolvedCredentials.{key}");
            let access_token = Secret::new(field(o, &ctx, "accessToken")?);
            let expiration = opt(o, "expiration");
            return Ok(if gcp {
                ResolvedCredentials::GcpOauth {
                    access_token,
                    expiration,
                }
            } else {
                ResolvedCredentials::OAuth2 {
                    access_token,
                    expiration,
                }
            });
        }
    }
    Ok(ResolvedCredentials::Unknown {
        kind: obj.keys().next().cloned().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_secret_shows_in_debug_output_or_parse_errors() {
        let dir = tempfile::tempdir().unwrap();
        // An integer-valued credential: serde quotes it with backticks in its message.
        let creds = dir.path().join("creds.json");
        std::fs::write(&creds, r#"{"Api": {"additionalSecretPIN": 987654321}}"#).unwrap();
        let creds = creds.display().to_string();
        let err = Sources::from_lookup(&|k| (k == SOURCE_CREDENTIALS_VAR).then(|| creds.clone()))
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("987654321"), "{text}");
        assert!(text.contains("additionalSecretPIN"), "{text}");

        let conf = dir.path().join("conf.json");
        std::fs::write(
            &conf,
            r#"{"Api": {"httpConnectionConfig": {"url": "https://user:planted-pw@api.example.com/v1?token=planted-url-secret", "queryParameters": {"k": "planted-query"}}}}"#,
        )
        .unwrap();
        let conf = conf.display().to_string();
        let sources =
            Sources::from_lookup(&|k| (k == SOURCE_CONFIGURATIONS_VAR).then(|| conf.clone()))
                .unwrap();
        let text = format!("{sources:?}");
        assert!(text.contains("api.example.com/v1"), "{text}");
        assert!(!text.contains("planted"), "{text}");
    }

    #[test]
    fn strip_quoted_removes_values() {
        assert_eq!(
            strip_quoted("invalid type: string \"hunter2\", expected a map at line 1 column 9"),
            "invalid type: string \"…\", expected a map"
        );
        assert_eq!(strip_quoted("missing field `url`"), "missing field `url`");
        assert_eq!(
            strip_quoted("invalid value: integer `1234`, expected a string"),
            "invalid value: integer `…`, expected a string"
        );
        assert_eq!(
            strip_quoted("unknown variant `hunter2`, expected one of `a`, `b`"),
            "unknown variant `…`, expected one of `a`, `b`"
        );
    }

    #[test]
    fn resolved_credentials_variants() {
        let aws = serde_json::json!({"cloudCredentials": {"awsCredentials": {"sessionCredentials": {
            "accessKeyId": "AK", "secretAccessKey": "SK", "sessionToken": "ST", "expiration": "2030-01-01T00:00:00Z"}}}});
        match parse_resolved(&aws).unwrap() {
            ResolvedCredentials::Aws(AwsCredentials::Session {
                access_key_id,
                session_token,
                ..
            }) => {
                assert_eq!(access_key_id, "AK");
                assert_eq!(session_token.expose(), "ST");
            }
            other => panic!("{other:?}"),
        }
        let gcp = serde_json::json!({"gcpOauthCredentials": {"accessToken": "T"}});
        assert!(matches!(
            parse_resolved(&gcp).unwrap(),
            ResolvedCredentials::GcpOauth { .. }
        ));
        let bad = serde_json::json!({"cloudCredentials": {"awsCredentials": {"basicCredentials": {"accessKeyId": "A"}}}});
        let err = parse_resolved(&bad).unwrap_err();
        assert!(err.contains("secretAccessKey"), "{err}");
        let dbg = format!("{:?}", parse_resolved(&aws).unwrap());
        assert!(!dbg.contains("SK") && !dbg.contains("ST\""), "{dbg}");
    }

    #[test]
    fn url_joins_paths_and_appends_query_parameters() {
        let http =
            crate::transport::platform_client(&[], None, crate::transport::Timeouts::default())
                .unwrap();
        let client = SourceClient {
            api_name: "A".to_owned(),
            http: http.clone(),
            plain: http,
            base: reqwest::Url::parse("https://api.example.com/v1/").unwrap(),
            query: vec![("key".to_owned(), Secret::new("k v"))],
            credentials: std::sync::Arc::new(ConnectionCredentials {
                headers: HeaderMap::new(),
                names: Vec::new(),
                query_names: vec!["key".to_owned()],
                query_values: vec![Secret::new("k v")],
            }),
            limits: SOURCE_TIMEOUTS.limits(),
        };
        assert_eq!(
            client.url("/items?page=2").as_str(),
            "https://api.example.com/v1/items?page=2&key=k+v"
        );
        assert!(!format!("{client:?}").contains("k v"));
    }
}
