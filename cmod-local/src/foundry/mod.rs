//! The local Foundry: the Foundry APIs a compute module calls, served over real HTTPS on loopback
//! with the run's generated CA.
//!
//! [`LocalFoundry::start`] binds `https://localhost:PORT` and serves:
//!
//! | Path | What |
//! |---|---|
//! | `POST /multipass/api/oauth2/token` | OAuth2 client credentials: opaque tokens with scopes and an expiry (`oauth.rs`) |
//! | `GET /api/v2/admin/users/getCurrent` | the principal of the bearer token (any valid token) |
//! | `GET|POST /local-sources/{apiName}/{*path}` | an echo server standing in for a REST source; checks the source's auth headers |
//! | `POST /contour-backend-multiplexer/api/module-group-multiplexer/compute-modules/jobs/execute` | the execute API: runs a function of a registered local module (`execute.rs`) |
//! | `POST /contour-backend-multiplexer/scratch/api/v1/…` | Scratch cache and lock, `Authorization: <SCRATCH_TOKEN>` (`scratch.rs`) |
//! | `POST /ontology-metadata/api/ontology/ontology/bulkLoadEntities` | object and link types from `<data dir>/ontology/entities.json` (`ontology.rs`) |
//!
//! Every endpoint except the token endpoint checks `Authorization: Bearer <token>` through
//! `FoundryState::authorize`; errors use Foundry's JSON error shape
//! `{"errorCode","errorName","errorInstanceId","parameters"}` (`ApiError`).
//!
//! [`LocalFoundry::env`] lists the variables that point a module at this Foundry (`CLIENT_ID`,
//! `CLIENT_SECRET`, `FOUNDRY_URL`, `FOUNDRY_SERVICE_DISCOVERY_V2`, `DEFAULT_CA_PATH`, and the
//! sources files), all generated into a directory that lives as long as the [`LocalFoundry`].
//!
//! Extension points for the other local Foundry APIs (datasets, streams, media sets): they add
//! their state as a field of `FoundryState`, their options to [`LocalFoundryOptions`], their
//! routes in `router` and their variables in [`LocalFoundry::env`]; handlers call
//! `FoundryState::authorize` with the scope they need and check the returned [`Principal`].

mod datasets;
mod execute;
mod media;
mod oauth;
mod ontology;
mod pipeline_env;
mod scratch;
mod store;
mod streams;
mod tables;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::json;
use tokio::net::TcpListener;

use crate::https::{ServerHandle, serve_https_on};
use crate::tls::{LocalCa, TlsError};

pub use execute::{EXECUTE_PATH, EXECUTE_TIMEOUT};
pub use oauth::{Principal, PrincipalKind, Scopes, TokenGrant};
pub use pipeline_env::{PipelineResource, ResourceKind, default_rid, local_resources};
pub use scratch::{LOCK_EXPIRY as SCRATCH_LOCK_EXPIRY, SCRATCH_PREFIX, ScratchStats};
pub use store::{
    DataOptions, DataStore, DataframeReader, DatasetSchema, FieldSchema, FieldType, FileEntry,
    MediaTransaction, Page, SEED_TRANSACTION_RID, StoreError, StoredSchema, Subscriber,
    SubscriberStart, Transaction, TransactionRange, TransactionStatus, TransactionType,
};

/// Why the local Foundry could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalFoundryError {
    /// Generating the CA or the TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Binding the port or writing a generated file failed.
    #[error("local Foundry: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The options are inconsistent.
    #[error("local Foundry: invalid options: {0}")]
    Options(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalFoundryError {
    let context = context.into();
    move |source| LocalFoundryError::Io { context, source }
}

/// An OAuth2 client registered with the local Foundry (an "application" with a client id and
/// secret). `Debug` never shows the secret.
#[derive(Clone)]
pub struct LocalClient {
    /// The client id (`CLIENT_ID`).
    pub id: String,
    /// The client secret (`CLIENT_SECRET`).
    pub secret: String,
    /// The scopes this client may request; `None` means any scope.
    pub allowed_scopes: Option<Vec<String>>,
}

impl LocalClient {
    /// A client with the given id and secret, allowed any scope.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
            allowed_scopes: None,
        }
    }

    /// A client with a fixed id and a freshly generated random secret.
    pub fn generated() -> Self {
        Self::new("cmod-local-app", oauth::random_token("secret-"))
    }

    /// Restricts the scopes this client may request.
    pub fn with_allowed_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }
}

impl fmt::Debug for LocalClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalClient")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("allowed_scopes", &self.allowed_scopes)
            .finish()
    }
}

/// A source attached to the module in local runs: written to the `SOURCE_CREDENTIALS` and
/// `SOURCE_CONFIGURATIONS_PATH` files (docs/protocol.md §7.1, §7.2). `Debug` never shows secret values.
#[derive(Clone, Default)]
pub struct LocalSource {
    /// The source's API name (the top-level key of both files).
    pub api_name: String,
    /// Secrets, by name (REST sources name them `additionalSecret…`).
    pub secrets: BTreeMap<String, String>,
    /// Base URL of the REST connection; `None` means this local Foundry's echo endpoint
    /// `https://localhost:PORT/local-sources/{api_name}`, which checks [`LocalSource::auth_headers`].
    pub url: Option<String>,
    /// Headers the REST connection sends on every request (`httpConnectionConfig.authHeaders`).
    pub auth_headers: BTreeMap<String, String>,
    /// Query parameters of the REST connection (`httpConnectionConfig.queryParameters`).
    pub query_parameters: BTreeMap<String, String>,
    /// `sourceConfiguration`: the source's full configuration, any JSON.
    pub source_configuration: Option<serde_json::Value>,
    /// `proxyToken`, for sources reached through an agent proxy.
    pub proxy_token: Option<String>,
    /// `resolvedCredentials`, any JSON in the shape of docs/protocol.md §7.2.
    pub resolved_credentials: Option<serde_json::Value>,
    /// Adds the local CA to the source's `serverCertificates` (so a client trusting only the
    /// source's certificates can reach the local echo endpoint). On by default for
    /// [`LocalSource::echo`].
    pub trust_local_ca: bool,
}

impl LocalSource {
    /// A REST source served by the local Foundry's echo endpoint, with the local CA in its
    /// `serverCertificates`.
    pub fn echo(api_name: impl Into<String>) -> Self {
        Self {
            api_name: api_name.into(),
            trust_local_ca: true,
            ..Self::default()
        }
    }

    /// Adds a secret.
    pub fn secret(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.secrets.insert(name.into(), value.into());
        self
    }

    /// Adds an auth header of the REST connection.
    pub fn auth_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.auth_headers.insert(name.into(), value.into());
        self
    }

    /// Adds a query parameter of the REST connection.
    pub fn query_parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query_parameters.insert(name.into(), value.into());
        self
    }

    /// Sets the `sourceConfiguration`.
    pub fn source_configuration(mut self, config: serde_json::Value) -> Self {
        self.source_configuration = Some(config);
        self
    }
}

impl fmt::Debug for LocalSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSource")
            .field("api_name", &self.api_name)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("url", &self.url)
            .field(
                "auth_headers",
                &self.auth_headers.keys().collect::<Vec<_>>(),
            )
            .field(
                "query_parameters",
                &self.query_parameters.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// How to start a [`LocalFoundry`]. `Default` gives: any free port, one generated client
/// ([`LocalClient::generated`]), 1-hour tokens, no sources, a fresh CA, a temporary directory.
#[derive(Debug, Clone)]
pub struct LocalFoundryOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Registered OAuth2 clients. The first one is exported as `CLIENT_ID`/`CLIENT_SECRET`.
    pub clients: Vec<LocalClient>,
    /// Lifetime of issued tokens (`expires_in`).
    pub token_ttl: Duration,
    /// Sources attached to the module; when non-empty the sources files are generated.
    pub sources: Vec<LocalSource>,
    /// The CA to serve with; share one with the local runtime so `DEFAULT_CA_PATH` covers both.
    /// `None` generates one.
    pub ca: Option<Arc<LocalCa>>,
    /// Where to write the generated files; `None` uses a temporary directory removed with the
    /// [`LocalFoundry`].
    pub dir: Option<PathBuf>,
    /// The data endpoints (datasets, streams, media sets): data directory, page size.
    pub data: store::DataOptions,
}

impl Default for LocalFoundryOptions {
    fn default() -> Self {
        Self {
            port: 0,
            clients: vec![LocalClient::generated()],
            token_ttl: Duration::from_secs(3600),
            sources: Vec::new(),
            ca: None,
            dir: None,
            data: store::DataOptions::default(),
        }
    }
}

/// Request counters, for tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) token_requests: AtomicU64,
    pub(crate) tokens_issued: AtomicU64,
    pub(crate) unauthorized: AtomicU64,
    pub(crate) forbidden: AtomicU64,
    pub(crate) api_requests: AtomicU64,
    /// Fault injection: this many upcoming requests (other than token requests) fail with
    /// `fail_status`.
    pub(crate) fail_next: AtomicU32,
    pub(crate) fail_status: AtomicU32,
    /// Fault injection aimed at requests whose path contains a fragment
    /// ([`LocalFoundry::fail_next_requests_to`]).
    pub(crate) path_faults: Mutex<Vec<PathFault>>,
    /// Requests answered with an injected fault so far.
    pub(crate) injected_faults: AtomicU64,
    /// What the token endpoint answers as `expires_in` instead of the token lifetime
    /// ([`LocalFoundry::set_token_expires_in`]).
    pub(crate) expires_in_override: Mutex<Option<serde_json::Value>>,
}

/// Upcoming requests whose path contains `path_contains` fail with `status`, `remaining` more
/// times.
#[derive(Debug)]
pub(crate) struct PathFault {
    path_contains: String,
    remaining: u32,
    status: StatusCode,
}

impl Counters {
    /// The status to answer `path` with, if a fault is armed for it (and counts it).
    fn take_fault(&self, path: &str) -> Option<StatusCode> {
        let untargeted = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let status = if untargeted {
            Some(
                u16::try_from(self.fail_status.load(Ordering::SeqCst))
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            )
        } else {
            let mut faults = self
                .path_faults
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            faults
                .iter_mut()
                .find(|f| f.remaining > 0 && path.contains(&f.path_contains))
                .map(|f| {
                    f.remaining -= 1;
                    f.status
                })
        };
        if status.is_some() {
            self.injected_faults.fetch_add(1, Ordering::SeqCst);
        }
        status
    }
}

/// A snapshot of the local Foundry's counters ([`LocalFoundry::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FoundryStats {
    /// Requests to the token endpoint (successful or not).
    pub token_requests: u64,
    /// Tokens issued by the token endpoint.
    pub tokens_issued: u64,
    /// Requests answered 401 (missing, unknown, expired or revoked token).
    pub unauthorized: u64,
    /// Requests answered 403 (valid token, missing scope or resource).
    pub forbidden: u64,
    /// Requests to API endpoints other than the token endpoint.
    pub api_requests: u64,
    /// Requests answered with an injected fault ([`LocalFoundry::fail_next_requests`],
    /// [`LocalFoundry::fail_next_requests_to`]).
    pub injected_faults: u64,
}

/// The state shared by every local Foundry handler.
#[derive(Debug)]
pub(crate) struct FoundryState {
    /// Registered clients and issued tokens.
    pub(crate) tokens: oauth::TokenStore,
    /// Counters and fault knobs.
    pub(crate) counters: Counters,
    /// The attached sources, by API name (for the echo endpoint).
    pub(crate) sources: BTreeMap<String, LocalSource>,
    /// Datasets, streams and media sets ([`store`]).
    pub(crate) data: store::DataStore,
    /// Whether dataset transactions in API answers carry `branchName` (a local addition that
    /// Foundry's `Transaction` does not have; [`LocalFoundry::set_transaction_branch_names`]).
    pub(crate) transaction_branch_names: std::sync::atomic::AtomicBool,
    /// Local runtimes the execute API routes to, by deployed app RID (`execute.rs`).
    pub(crate) modules: Mutex<BTreeMap<String, execute::Route>>,
    /// The Scratch cache and locks (`scratch.rs`).
    pub(crate) scratch: scratch::ScratchStore,
}

impl FoundryState {
    /// Checks the request's `Authorization: Bearer <token>`: a known, unexpired, unrevoked token
    /// (401 `UNAUTHORIZED` otherwise) that carries `scope` when one is given (403
    /// `PERMISSION_DENIED` otherwise). Returns who is calling.
    pub(crate) fn authorize(
        &self,
        headers: &HeaderMap,
        scope: Option<&str>,
    ) -> Result<Principal, ApiError> {
        let result = self.tokens.authorize(headers, scope);
        match &result {
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                self.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.status == StatusCode::FORBIDDEN => {
                self.counters.forbidden.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        result
    }
}

/// A Foundry API error: `{"errorCode","errorName","errorInstanceId","parameters"}` with an HTTP
/// status.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) error_code: &'static str,
    pub(crate) error_name: String,
    pub(crate) parameters: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    /// An error with the given status, Foundry error code (`NOT_FOUND`, `INVALID_ARGUMENT`, …)
    /// and error name (`DatasetNotFound`, …).
    pub(crate) fn new(status: StatusCode, error_code: &'static str, name: &str) -> Self {
        Self {
            status,
            error_code,
            error_name: name.to_owned(),
            parameters: serde_json::Map::new(),
        }
    }

    /// 401 `UNAUTHORIZED`.
    pub(crate) fn unauthorized(name: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", name)
    }

    /// 403 `PERMISSION_DENIED`.
    pub(crate) fn permission_denied(name: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", name)
    }

    /// 404 `NOT_FOUND`.
    pub(crate) fn not_found(name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", name)
    }

    /// 400 `INVALID_ARGUMENT`.
    pub(crate) fn invalid_argument(name: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", name)
    }

    /// Adds a parameter.
    pub(crate) fn param(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.parameters.insert(key.to_owned(), value.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "errorCode": self.error_code,
            "errorName": self.error_name,
            "errorInstanceId": oauth::random_uuid(),
            "parameters": self.parameters,
        });
        (self.status, axum::Json(body)).into_response()
    }
}

/// A running local Foundry. Stop it with [`LocalFoundry::shutdown`]; the generated files are
/// removed when it is dropped (unless [`LocalFoundryOptions::dir`] was given).
#[derive(Debug)]
pub struct LocalFoundry {
    server: ServerHandle,
    state: Arc<FoundryState>,
    ca: Arc<LocalCa>,
    files: GeneratedFiles,
    first_client: Option<LocalClient>,
    _tempdir: Option<tempfile::TempDir>,
}

#[derive(Debug)]
struct GeneratedFiles {
    ca: PathBuf,
    discovery: PathBuf,
    source_credentials: Option<PathBuf>,
    source_configurations: Option<PathBuf>,
}

impl LocalFoundry {
    /// Starts the local Foundry on `127.0.0.1` and writes its generated files.
    pub async fn start(options: LocalFoundryOptions) -> Result<Self, LocalFoundryError> {
        let mut ids = std::collections::HashSet::new();
        for c in &options.clients {
            if !ids.insert(c.id.as_str()) {
                return Err(LocalFoundryError::Options(format!(
                    "client id `{}` is registered twice",
                    c.id
                )));
            }
        }
        let ca = match options.ca {
            Some(ca) => ca,
            None => Arc::new(LocalCa::generate("cmod local Foundry CA")?),
        };
        let (tempdir, dir) = match options.dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .map_err(io_err(format!("creating {}", dir.display())))?;
                (None, dir)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("cmod-local-foundry-")
                    .tempdir()
                    .map_err(io_err("creating a temporary directory"))?;
                let dir = t.path().to_owned();
                (Some(t), dir)
            }
        };
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], options.port)))
            .await
            .map_err(io_err(format!("binding 127.0.0.1:{}", options.port)))?;
        let port = listener
            .local_addr()
            .map_err(io_err("reading the bound address"))?
            .port();
        let base_url = format!("https://localhost:{port}");

        let sources: BTreeMap<String, LocalSource> = options
            .sources
            .iter()
            .map(|s| (s.api_name.clone(), s.clone()))
            .collect();
        let files = write_files(&dir, &base_url, ca.ca_pem(), &options.sources)?;
        let state = Arc::new(FoundryState {
            tokens: oauth::TokenStore::new(&options.clients, options.token_ttl),
            counters: Counters::default(),
            sources,
            data: store::DataStore::with_options(&dir.join("data"), &options.data)?,
            transaction_branch_names: std::sync::atomic::AtomicBool::new(true),
            modules: Mutex::new(BTreeMap::new()),
            scratch: scratch::ScratchStore::new(oauth::random_token("scratch-")),
        });
        let server = serve_https_on(listener, ca.server_config()?, router(state.clone()))
            .map_err(io_err("starting the HTTPS server"))?;
        tracing::debug!(%base_url, "local Foundry listening");
        Ok(Self {
            server,
            state,
            ca,
            files,
            first_client: options.clients.into_iter().next(),
            _tempdir: tempdir,
        })
    }

    /// `https://localhost:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://localhost:{}", self.server.addr().port())
    }

    /// The API gateway URL, `https://localhost:PORT/api`.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.base_url())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        self.ca.ca_pem()
    }

    /// The CA the server certificate was issued by.
    pub fn ca(&self) -> &Arc<LocalCa> {
        &self.ca
    }

    /// The PEM file holding [`LocalFoundry::ca_pem`] (exported as `DEFAULT_CA_PATH`).
    pub fn ca_path(&self) -> &Path {
        &self.files.ca
    }

    /// The generated `FOUNDRY_SERVICE_DISCOVERY_V2` file.
    pub fn discovery_path(&self) -> &Path {
        &self.files.discovery
    }

    /// The generated `SOURCE_CREDENTIALS` file, when sources are configured.
    pub fn source_credentials_path(&self) -> Option<&Path> {
        self.files.source_credentials.as_deref()
    }

    /// The generated `SOURCE_CONFIGURATIONS_PATH` file, when sources are configured.
    pub fn source_configurations_path(&self) -> Option<&Path> {
        self.files.source_configurations.as_deref()
    }

    /// The variables that point a module at this Foundry: `CLIENT_ID` and `CLIENT_SECRET` (the
    /// first registered client, if any), `FOUNDRY_URL` (`localhost:PORT`, no scheme, as in
    /// Foundry), `FOUNDRY_SERVICE_DISCOVERY_V2`, `DEFAULT_CA_PATH`, `SCRATCH_TOKEN` (Scratch is
    /// always on locally), and `SOURCE_CREDENTIALS` /
    /// `SOURCE_CONFIGURATIONS_PATH` when sources are configured.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some(c) = &self.first_client {
            env.push(("CLIENT_ID".to_owned(), c.id.clone()));
            env.push(("CLIENT_SECRET".to_owned(), c.secret.clone()));
        }
        env.push((
            "FOUNDRY_URL".to_owned(),
            format!("localhost:{}", self.server.addr().port()),
        ));
        env.push((
            "FOUNDRY_SERVICE_DISCOVERY_V2".to_owned(),
            self.files.discovery.display().to_string(),
        ));
        env.push((
            "DEFAULT_CA_PATH".to_owned(),
            self.files.ca.display().to_string(),
        ));
        env.push((
            "SCRATCH_TOKEN".to_owned(),
            self.state.scratch.token().to_owned(),
        ));
        if let Some(p) = &self.files.source_credentials {
            env.push(("SOURCE_CREDENTIALS".to_owned(), p.display().to_string()));
        }
        if let Some(p) = &self.files.source_configurations {
            env.push((
                "SOURCE_CONFIGURATIONS_PATH".to_owned(),
                p.display().to_string(),
            ));
        }
        env
    }

    /// Issues a token directly (no client credentials), for example a per-job user token to put
    /// in a job's `authHeader`, or a pipeline token for `BUILD2_TOKEN`.
    pub fn issue_token(&self, grant: TokenGrant) -> String {
        self.state.tokens.issue(grant)
    }

    /// Whether dataset transactions in API answers carry `branchName` (default `true`, a local
    /// addition). Foundry's own `Transaction` has no branch: `false` answers in that shape, to
    /// test that clients find a branch's transaction through
    /// `GET /v2/datasets/{rid}/branches/{branch}` instead.
    pub fn set_transaction_branch_names(&self, on: bool) {
        self.state
            .transaction_branch_names
            .store(on, Ordering::SeqCst);
    }

    /// Revokes every issued token: the next request with any of them gets 401. Clients must
    /// fetch new ones (tests of refresh-and-retry).
    pub fn revoke_all_tokens(&self) {
        self.state.tokens.revoke_all();
    }

    /// Makes the next `count` API requests (not token requests) fail with `status` (for example
    /// 503) before reaching their handler, to test client retries.
    pub fn fail_next_requests(&self, count: u32, status: u16) {
        self.state
            .counters
            .fail_status
            .store(u32::from(status), Ordering::SeqCst);
        self.state.counters.fail_next.store(count, Ordering::SeqCst);
    }

    /// Makes the next `count` API requests whose path contains `path_contains` (for example
    /// `"/publishRecords"` or `"/upload"`) fail with `status` before reaching their handler, so
    /// nothing they carry is applied. Several calls arm several independent faults; each request
    /// consumes at most one. To test client retries of one kind of call.
    pub fn fail_next_requests_to(&self, path_contains: &str, count: u32, status: u16) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        self.state
            .counters
            .path_faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(PathFault {
                path_contains: path_contains.to_owned(),
                remaining: count,
                status,
            });
    }

    /// Makes the token endpoint answer `expires_in: value` (any JSON, e.g. `1e30`, `-5`,
    /// `"NaN"`) instead of the token lifetime, to test clients against a misbehaving endpoint;
    /// `None` restores the real lifetime. The tokens themselves keep their configured lifetime.
    pub fn set_token_expires_in(&self, value: Option<serde_json::Value>) {
        *self
            .state
            .counters
            .expires_in_override
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = value;
    }

    /// The request counters so far.
    pub fn stats(&self) -> FoundryStats {
        let c = &self.state.counters;
        FoundryStats {
            token_requests: c.token_requests.load(Ordering::SeqCst),
            tokens_issued: c.tokens_issued.load(Ordering::SeqCst),
            unauthorized: c.unauthorized.load(Ordering::SeqCst),
            forbidden: c.forbidden.load(Ordering::SeqCst),
            api_requests: c.api_requests.load(Ordering::SeqCst),
            injected_faults: c.injected_faults.load(Ordering::SeqCst),
        }
    }

    /// Stops the server.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Every route of the local Foundry, with the shared state.
pub(crate) fn router(state: Arc<FoundryState>) -> Router {
    let api = Router::new()
        .route("/api/v2/admin/users/getCurrent", get(get_current_user))
        .route("/local-sources/{api_name}", any(source_echo_root))
        .route("/local-sources/{api_name}/{*path}", any(source_echo))
        .merge(datasets::routes())
        .merge(streams::routes())
        .merge(media::routes())
        .merge(execute::routes())
        .merge(scratch::routes())
        .merge(ontology::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            api_middleware,
        ));
    // Other local Foundry APIs merge their routes here (under `api` when they want the counters
    // and fault injection of `api_middleware`).
    Router::new()
        .merge(oauth::routes())
        .merge(api)
        .fallback(not_found)
        .with_state(state)
}

/// Counts API requests and applies injected faults.
async fn api_middleware(
    State(state): State<Arc<FoundryState>>,
    request: Request,
    next: Next,
) -> Response {
    let c = &state.counters;
    c.api_requests.fetch_add(1, Ordering::Relaxed);
    if let Some(status) = c.take_fault(request.uri().path()) {
        return ApiError::new(status, "INTERNAL", "InjectedFault").into_response();
    }
    next.run(request).await
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found("EndpointNotFound")
        .param("method", method.as_str())
        .param("path", uri.path())
}

/// `GET /api/v2/admin/users/getCurrent`: who the bearer token belongs to.
async fn get_current_user(
    State(state): State<Arc<FoundryState>>,
    headers: HeaderMap,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let p = state.authorize(&headers, None)?;
    Ok(axum::Json(json!({
        "id": p.subject,
        "username": p.subject,
        "realm": "cmod-local",
        "attributes": {},
        "status": "ACTIVE",
        "principalKind": p.kind.as_str(),
        "scopes": p.scopes.to_list(),
    })))
}

async fn source_echo_root(
    state: State<Arc<FoundryState>>,
    UrlPath(api_name): UrlPath<String>,
    method: Method,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    echo(&state, &api_name, "", method, &query, &headers, &body)
}

async fn source_echo(
    state: State<Arc<FoundryState>>,
    UrlPath((api_name, path)): UrlPath<(String, String)>,
    method: Method,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    echo(&state, &api_name, &path, method, &query, &headers, &body)
}

/// The REST-source stand-in: checks the source's auth headers and query parameters, then echoes
/// the request (never the header values).
fn echo(
    state: &FoundryState,
    api_name: &str,
    path: &str,
    method: Method,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let source = state
        .sources
        .get(api_name)
        .ok_or_else(|| ApiError::not_found("SourceNotFound").param("apiName", api_name))?;
    for (name, expected) in &source.auth_headers {
        let ok = headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == expected);
        if !ok {
            state.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
            return Err(
                ApiError::unauthorized("MissingSourceAuthHeader").param("header", name.as_str())
            );
        }
    }
    for (name, expected) in &source.query_parameters {
        if query.get(name) != Some(expected) {
            state.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::unauthorized("MissingSourceQueryParameter")
                .param("parameter", name.as_str()));
        }
    }
    let body_json: serde_json::Value = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(body).unwrap_or_else(|_| json!({"bytes": body.len()}))
    };
    let query_names: Vec<&String> = query.keys().collect();
    Ok(axum::Json(json!({
        "source": api_name,
        "method": method.as_str(),
        "path": format!("/{path}"),
        "queryParameters": query_names,
        "authenticated": !source.auth_headers.is_empty(),
        "body": body_json,
    })))
}

/// Writes the CA, the discovery file and (when sources are configured) the sources files.
fn write_files(
    dir: &Path,
    base_url: &str,
    ca_pem: &str,
    sources: &[LocalSource],
) -> Result<GeneratedFiles, LocalFoundryError> {
    let write = |name: &str, contents: &str| -> Result<PathBuf, LocalFoundryError> {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(io_err(format!("writing {}", path.display())))?;
        Ok(path)
    };
    let ca = write("foundry-ca.pem", ca_pem)?;
    let discovery = write(
        "service-discovery.yml",
        &format!(
            "# Generated by cmod-local for this run.\n\
             api_gateway:\n  - \"{base_url}/api\"\n\
             stream_proxy:\n  - \"{base_url}/stream-proxy/api\"\n\
             multipass:\n  - \"{base_url}/multipass/api\"\n\
             foundry_mio:\n  - \"{base_url}/mio/api\"\n\
             contour_backend_multiplexer:\n  - \"{base_url}/contour-backend-multiplexer\"\n"
        ),
    )?;
    if sources.is_empty() {
        return Ok(GeneratedFiles {
            ca,
            discovery,
            source_credentials: None,
            source_configurations: None,
        });
    }
    let mut credentials = serde_json::Map::new();
    let mut configurations = serde_json::Map::new();
    for s in sources {
        if s.api_name.is_empty() {
            return Err(LocalFoundryError::Options(
                "a source has an empty api_name".to_owned(),
            ));
        }
        credentials.insert(s.api_name.clone(), json!(s.secrets));
        let url = s
            .url
            .clone()
            .unwrap_or_else(|| format!("{base_url}/local-sources/{}", s.api_name));
        let mut config = serde_json::Map::new();
        config.insert("secrets".to_owned(), json!(s.secrets));
        config.insert(
            "httpConnectionConfig".to_owned(),
            json!({
                "url": url,
                "authHeaders": s.auth_headers,
                "queryParameters": s.query_parameters,
            }),
        );
        if let Some(c) = &s.source_configuration {
            config.insert("sourceConfiguration".to_owned(), c.clone());
        }
        if let Some(t) = &s.proxy_token {
            config.insert("proxyToken".to_owned(), json!(t));
        }
        if let Some(r) = &s.resolved_credentials {
            config.insert("resolvedCredentials".to_owned(), r.clone());
        }
        if s.trust_local_ca {
            config.insert(
                "serverCertificates".to_owned(),
                json!({ "cmod-local-ca": ca_pem }),
            );
        }
        configurations.insert(s.api_name.clone(), serde_json::Value::Object(config));
    }
    let to_text = |v: serde_json::Map<String, serde_json::Value>| {
        serde_json::to_string_pretty(&serde_json::Value::Object(v))
            .map_err(|e| LocalFoundryError::Options(format!("serializing sources: {e}")))
    };
    let source_credentials = write("SOURCE_CREDENTIALS", &to_text(credentials)?)?;
    let source_configurations = write("SOURCE_CONFIGURATIONS_PATH", &to_text(configurations)?)?;
    Ok(GeneratedFiles {
        ca,
        discovery,
        source_credentials: Some(source_credentials),
        source_configurations: Some(source_configurations),
    })
}
