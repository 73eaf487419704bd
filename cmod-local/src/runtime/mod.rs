//! The local compute-module runtime (functions mode): the runtime side of docs/protocol.md §3 over real
//! HTTPS on loopback, an optional developer invoke API over plain HTTP, and a library API with
//! fault injection for tests.
//!
//! Start one with [`LocalRuntime::start`], hand [`LocalRuntime::env`] to a module process (or to
//! an in-process module), then [`LocalRuntime::call`] its functions.

mod error;
mod faults;
mod files;
mod ids;
mod invoke;
mod routes;
mod state;
mod supervisor;
mod watch;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

pub use error::LocalError;
pub use faults::Faults;
pub use invoke::DEFAULT_INVOKE_TIMEOUT;
pub use routes::{BODY_LIMIT, PREFIX as API_PREFIX};
pub use watch::{CallEvent, ItemSplitter, StreamedCall};

use files::RuntimeFiles;
use ids::IdGen;
use state::{State, TakeResult};
use supervisor::{Command, Supervisor};

use crate::https::serve_http;
use crate::tls::LocalCa;

/// How [`LocalRuntime::rotate_token`] puts the new token into the `MODULE_AUTH_TOKEN` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenRotation {
    /// A new file renamed over the old one: a reader sees the old or the new token, never a
    /// partial one, and the path gets a new inode (how a mounted Kubernetes secret changes).
    Replace,
    /// The file truncated and rewritten in place (same inode; a reader may briefly see it
    /// empty).
    InPlace,
}

/// How a [`LocalRuntime`] starts.
#[derive(Debug, Clone)]
pub struct LocalRuntimeOptions {
    /// Where to write the token and CA files. `None`: a private temporary directory owned by
    /// the runtime, removed on [`LocalRuntime::shutdown`] or when the last handle is dropped.
    pub dir: Option<PathBuf>,
    /// The runtime's HTTPS port on 127.0.0.1; 0 picks any free port.
    pub port: u16,
    /// The developer invoke API's port (plain HTTP on 127.0.0.1). `None`: not started;
    /// `Some(0)`: any free port.
    pub invoke_port: Option<u16>,
    /// The value handed out in `MAX_CONCURRENT_TASKS` (at least 1).
    pub max_concurrent_tasks: usize,
    /// How long `GET job` holds an idle poll before answering 204.
    pub long_poll_timeout: Duration,
    /// Start "down": the port is reserved but connections are refused until this has elapsed
    /// (as when a module starts before its runtime sidecar).
    pub refuse_connections_for: Option<Duration>,
    /// The CA that signs the server certificate. `None`: a fresh one. Share one CA between the
    /// runtime and a `LocalFoundry` so a module trusts both through one `DEFAULT_CA_PATH`.
    pub ca: Option<std::sync::Arc<LocalCa>>,
}

impl Default for LocalRuntimeOptions {
    fn default() -> Self {
        Self {
            dir: None,
            port: 0,
            invoke_port: None,
            max_concurrent_tasks: 1,
            long_poll_timeout: Duration::from_secs(5),
            refuse_connections_for: None,
            ca: None,
        }
    }
}

/// A job to enqueue: the function to call, its input, and the per-job context a module sees
/// (docs/protocol.md §3.3). Absent optional fields are sent as `""`.
#[derive(Clone, Default)]
pub struct JobSpec {
    /// The function name (`queryType`).
    pub function: String,
    /// The function's input (`query`): a JSON object whose keys are the input names.
    pub query: serde_json::Value,
    /// `authHeader`: the caller's Foundry auth header.
    pub auth_header: Option<String>,
    /// `userId`: the calling user.
    pub user_id: Option<String>,
    /// `temporaryCredentialsAuthToken`.
    pub temporary_credentials_token: Option<String>,
    /// The job id to hand out instead of a generated one (to test how a module handles ids
    /// with unusual characters). It must be unique within the runtime: enqueuing an id that is
    /// already known gets a generated id instead.
    pub job_id: Option<String>,
    /// The exact JSON to hand out instead of the `computeModuleJobV1` envelope (to test how a
    /// module handles other envelope variants or shapes). The runtime still tracks the job
    /// under its id, so results posted for it are recorded as usual.
    pub raw_envelope: Option<serde_json::Value>,
}

impl JobSpec {
    /// A job calling `function` with `query` and no per-job context.
    pub fn new(function: impl Into<String>, query: serde_json::Value) -> Self {
        Self {
            function: function.into(),
            query,
            ..Self::default()
        }
    }
}

impl fmt::Debug for JobSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("JobSpec")
            .field("function", &self.function)
            .field("query", &self.query)
            .field("auth_header", &redact(&self.auth_header))
            .field("user_id", &self.user_id)
            .field(
                "temporary_credentials_token",
                &redact(&self.temporary_credentials_token),
            )
            .field("job_id", &self.job_id)
            .field("raw_envelope", &self.raw_envelope)
            .finish()
    }
}

/// A result a module posted for a job.
#[derive(Clone, PartialEq, Eq)]
pub struct JobResult {
    /// The job it answers.
    pub job_id: String,
    /// The body exactly as received (chunked bodies reassembled).
    pub body: Vec<u8>,
    /// The request's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Whether the body came with `Transfer-Encoding: chunked` (a streamed result).
    pub chunked: bool,
}

impl JobResult {
    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, LocalError> {
        serde_json::from_slice(&self.body).map_err(|source| LocalError::ResultNotJson {
            job_id: self.job_id.clone(),
            source,
        })
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, LocalError> {
        std::str::from_utf8(&self.body).map_err(|source| LocalError::ResultNotUtf8 {
            job_id: self.job_id.clone(),
            source,
        })
    }
}

impl fmt::Debug for JobResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const PREVIEW: usize = 256;
        let shown = &self.body[..self.body.len().min(PREVIEW)];
        let mut preview = String::from_utf8_lossy(shown).into_owned();
        if self.body.len() > PREVIEW {
            preview.push('…');
        }
        f.debug_struct("JobResult")
            .field("job_id", &self.job_id)
            .field("body", &preview)
            .field("len", &self.body.len())
            .field("content_type", &self.content_type)
            .field("chunked", &self.chunked)
            .finish()
    }
}

/// Counters of what the runtime saw, from [`LocalRuntime::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// `GET job` requests that passed authentication (including those answered by a fault).
    pub polls: u64,
    /// Jobs handed out by `GET job`.
    pub jobs_handed_out: u64,
    /// Results accepted (204).
    pub results_accepted: u64,
    /// Results rejected with 409 because the job already had one.
    pub duplicate_results: u64,
    /// Results rejected with 404: unknown job id, a job never handed out, or a job dropped by a
    /// restart notification.
    pub unknown_job_results: u64,
    /// Requests rejected with 401 (missing or wrong `Module-Auth-Token`).
    pub auth_failures: u64,
    /// Restart notifications received.
    pub restart_notifications: u64,
    /// Schema arrays accepted.
    pub schema_posts: u64,
    /// The most jobs handed out and not yet answered at any one moment.
    pub max_in_flight: u64,
    /// The most `GET job` long-polls open (waiting for a job) at any one moment.
    pub max_concurrent_polls: u64,
    /// Every request the runtime server answered, any route, any outcome.
    pub requests_total: u64,
    /// Requests answered with an injected error status (see [`Faults`]).
    pub rejected_by_fault: u64,
}

struct Inner {
    state: Arc<State>,
    files: RuntimeFiles,
    ca_pem: String,
    addr: SocketAddr,
    invoke_addr: Option<SocketAddr>,
    max_concurrent_tasks: usize,
    gate: Arc<AtomicBool>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The supervisor stops the servers when `commands` (dropped right after) closes.
        self.state.close();
    }
}

/// A running local compute-module runtime: an HTTPS server on 127.0.0.1 speaking the runtime
/// side of the functions-mode protocol, with a generated CA and module auth token written to
/// files, and optionally the developer invoke API.
///
/// Cheap to clone; all clones control the same runtime. It stops on [`LocalRuntime::shutdown`]
/// or when the last clone is dropped.
///
/// # Results are taken once
///
/// A posted result is kept until a [`LocalRuntime::wait_result`] (or [`LocalRuntime::call`], or
/// the invoke API) returns it; a second wait for the same job gets
/// [`LocalError::ResultTaken`]. Once taken, the runtime forgets the job except for one bit, so
/// memory stays flat over millions of jobs while a late second result post is still rejected
/// with 409. A result nobody waits for stays in memory until the runtime stops.
#[derive(Clone)]
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

impl fmt::Debug for LocalRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRuntime")
            .field("addr", &self.inner.addr)
            .field("invoke_addr", &self.inner.invoke_addr)
            .field("token_path", &self.inner.files.token_path())
            .field("ca_path", &self.inner.files.ca_path())
            .field("max_concurrent_tasks", &self.inner.max_concurrent_tasks)
            .finish_non_exhaustive()
    }
}

impl LocalRuntime {
    /// Generates a CA, a server certificate and a module auth token, writes the token and CA
    /// files, and starts the servers. Must be called within a Tokio runtime.
    pub async fn start(options: LocalRuntimeOptions) -> Result<LocalRuntime, LocalError> {
        if options.max_concurrent_tasks == 0 {
            return Err(LocalError::InvalidOption {
                option: "max_concurrent_tasks",
                message: "must be at least 1 (it is the module's MAX_CONCURRENT_TASKS)".into(),
            });
        }
        let token = ids::new_token()?;
        let ca = match &options.ca {
            Some(ca) => std::sync::Arc::clone(ca),
            None => std::sync::Arc::new(LocalCa::generate("cmod local runtime CA")?),
        };
        let tls = ca.server_config()?;
        let files = RuntimeFiles::create(options.dir.as_deref(), &token, ca.ca_pem())?;

        let bind_err = |server, port| {
            move |source| LocalError::Bind {
                server,
                port,
                source,
            }
        };
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], options.port)))
            .await
            .map_err(bind_err("runtime", options.port))?;
        let addr = listener
            .local_addr()
            .map_err(bind_err("runtime", options.port))?;

        let state = Arc::new(State::new(token, options.long_poll_timeout, IdGen::new()));
        let invoke = match options.invoke_port {
            Some(port) => Some(
                serve_http(port, invoke::router(state.clone()))
                    .await
                    .map_err(bind_err("invoke API", port))?,
            ),
            None => None,
        };
        let invoke_addr = invoke.as_ref().map(|h| h.addr());

        let gate = Arc::new(AtomicBool::new(false));
        let mut supervisor = Supervisor {
            addr,
            tls,
            router: routes::router(state.clone()),
            gate: gate.clone(),
            state: state.clone(),
            server: None,
            invoke,
            reopen_at: None,
        };
        match options.refuse_connections_for {
            Some(d) => {
                // Keep the port number, close the socket: connecting is refused until `d` passes.
                gate.store(true, std::sync::atomic::Ordering::Release);
                drop(listener);
                supervisor.reopen_at = Some(tokio::time::Instant::now() + d);
                tracing::info!(%addr, for_ = ?d, "local runtime starts down (refusing connections)");
            }
            None => supervisor
                .start_server(listener)
                .map_err(bind_err("runtime", options.port))?,
        }
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(supervisor.run(rx));

        tracing::info!(
            runtime = %format!("https://localhost:{}{}", addr.port(), routes::PREFIX),
            invoke = %invoke_addr.map_or_else(|| "off".to_owned(), |a| format!("http://{a}")),
            "local compute-module runtime started"
        );
        Ok(LocalRuntime {
            inner: Arc::new(Inner {
                state,
                files,
                ca_pem: ca.ca_pem().to_owned(),
                addr,
                invoke_addr,
                max_concurrent_tasks: options.max_concurrent_tasks,
                gate,
                commands,
            }),
        })
    }

    /// The environment a module process needs to talk to this runtime (docs/protocol.md §2):
    /// `GET_JOB_URI`, `POST_RESULT_URI`, `POST_SCHEMA_URI`, `RESTART_NOTIFICATION_URI` (full
    /// `https://localhost:PORT/…` URIs), `RUNTIME_HOST`, `RUNTIME_PORT`, `MODULE_AUTH_TOKEN`
    /// (path of the token file), `DEFAULT_CA_PATH` and `CONNECTIONS_TO_OTHER_PODS_CA_PATH`
    /// (path of the CA file), `MAX_CONCURRENT_TASKS`.
    pub fn env(&self) -> Vec<(String, String)> {
        let port = self.inner.addr.port();
        let base = format!("https://localhost:{port}{}", routes::PREFIX);
        let ca = self.ca_path().display().to_string();
        [
            ("GET_JOB_URI", format!("{base}/job")),
            ("POST_RESULT_URI", format!("{base}/results")),
            ("POST_SCHEMA_URI", format!("{base}/schemas")),
            ("RESTART_NOTIFICATION_URI", format!("{base}/restart-notify")),
            ("RUNTIME_HOST", "localhost".to_owned()),
            ("RUNTIME_PORT", port.to_string()),
            (
                "MODULE_AUTH_TOKEN",
                self.inner.files.token_path().display().to_string(),
            ),
            ("DEFAULT_CA_PATH", ca.clone()),
            ("CONNECTIONS_TO_OTHER_PODS_CA_PATH", ca),
            (
                "MAX_CONCURRENT_TASKS",
                self.inner.max_concurrent_tasks.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The runtime server's address (127.0.0.1 and the bound port).
    pub fn runtime_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Base URL of the invoke API (e.g. `http://127.0.0.1:8947`), if it was started.
    pub fn invoke_url(&self) -> Option<String> {
        self.inner.invoke_addr.map(|a| format!("http://{a}"))
    }

    /// The generated CA certificate (PEM) that signed the runtime's server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.inner.ca_pem
    }

    /// The file holding [`LocalRuntime::ca_pem`] (`DEFAULT_CA_PATH`).
    pub fn ca_path(&self) -> &Path {
        self.inner.files.ca_path()
    }

    /// The file holding the module auth token (`MODULE_AUTH_TOKEN`).
    pub fn token_path(&self) -> &Path {
        self.inner.files.token_path()
    }

    /// The module auth token every request must send as `Module-Auth-Token` (the current one:
    /// [`LocalRuntime::rotate_token`] replaces it).
    pub fn token(&self) -> String {
        self.inner.state.token()
    }

    /// Rotates the module auth token while the module runs, as the platform may: generates a
    /// new token, accepts it alongside the old one, writes it to the `MODULE_AUTH_TOKEN` file
    /// the way `how` says, then revokes the old token — from then on a request with the old
    /// token gets 401, so a module must re-read the file to keep working. Returns nothing
    /// secret; the new token is in the file (and [`LocalRuntime::token`]).
    pub fn rotate_token(&self, how: TokenRotation) -> Result<(), LocalError> {
        let new = ids::new_token()?;
        self.inner.state.begin_rotation(new.clone());
        let written = self
            .inner
            .files
            .rewrite_token(&new, how == TokenRotation::Replace);
        // Revoked even when the file could not be written: the caller asked for a rotation
        // and gets the error.
        self.inner.state.end_rotation();
        written
    }

    /// Queues a call of `function` with `query`; returns the job id.
    pub fn enqueue(&self, function: &str, query: serde_json::Value) -> String {
        self.enqueue_job(JobSpec::new(function, query))
    }

    /// Queues a job with its per-job context; returns the job id.
    pub fn enqueue_job(&self, job: JobSpec) -> String {
        self.inner.state.enqueue(job)
    }

    /// Waits up to `timeout` for the result of `job_id` and takes it (see
    /// [results are taken once](LocalRuntime#results-are-taken-once)).
    pub async fn wait_result(
        &self,
        job_id: &str,
        timeout: Duration,
    ) -> Result<JobResult, LocalError> {
        wait_for_result(&self.inner.state, job_id, timeout).await
    }

    /// [`LocalRuntime::enqueue`] then [`LocalRuntime::wait_result`].
    pub async fn call(
        &self,
        function: &str,
        query: serde_json::Value,
        timeout: Duration,
    ) -> Result<JobResult, LocalError> {
        let job_id = self.enqueue(function, query);
        self.wait_result(&job_id, timeout).await
    }

    /// Ends every open long-poll now: each answers 204 (no job) at once instead of at the end of
    /// its long-poll timeout. A module stopping its job loop then stops without waiting for its
    /// last poll (the embedded runtime calls this when `--invoke` is done).
    pub fn end_open_polls(&self) {
        self.inner.state.interrupt_polls();
    }

    /// The function a job was enqueued for.
    pub fn function_of(&self, job_id: &str) -> Option<String> {
        self.inner.state.function_of(job_id)
    }

    /// The schema array the module posted last, if any.
    pub fn schemas(&self) -> Option<serde_json::Value> {
        self.inner.state.schemas()
    }

    /// Waits up to `timeout` for the module to post its schemas; returns the posted array.
    pub async fn wait_for_schemas(
        &self,
        timeout: Duration,
    ) -> Result<serde_json::Value, LocalError> {
        match tokio::time::timeout(timeout, self.inner.state.wait_for_schemas()).await {
            Ok(Some(schemas)) => Ok(schemas),
            Ok(None) => Err(LocalError::ShutDown),
            Err(_) => Err(LocalError::SchemasTimeout { timeout }),
        }
    }

    /// When the first authenticated `GET job` reached this runtime (taken as the request is
    /// handled, before any long-poll wait), or `None` before any. Benchmarks compare it with the
    /// module's spawn time to measure time to first poll.
    pub fn first_poll_at(&self) -> Option<std::time::Instant> {
        self.inner.state.first_poll_at()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.state.stats()
    }

    /// Ids of the jobs handed out and not yet answered, oldest first.
    pub fn in_flight(&self) -> Vec<String> {
        self.inner
            .state
            .in_flight()
            .into_iter()
            .map(|j| j.job_id)
            .collect()
    }

    /// Number of jobs queued and not yet handed out.
    pub fn queued(&self) -> usize {
        self.inner.state.queued()
    }

    /// The fault-injection handle.
    pub fn faults(&self) -> Faults {
        Faults::new(
            self.inner.state.clone(),
            self.inner.gate.clone(),
            self.inner.commands.downgrade(),
        )
    }

    /// Stops both servers (open long-polls end, waiting `wait_result` calls get
    /// [`LocalError::ShutDown`]) and removes the runtime's temporary directory, if it made one.
    /// Other clones of this handle see a stopped runtime.
    pub async fn shutdown(self) {
        let (done, stopped) = oneshot::channel();
        if self.inner.commands.send(Command::Shutdown(done)).is_ok() {
            let _ = stopped.await;
        }
        self.inner.state.close();
        self.inner.files.cleanup();
        tracing::info!(addr = %self.inner.addr, "local compute-module runtime stopped");
    }
}

/// Waits for and takes the result of `job_id` (shared by the library API and the invoke API).
pub(crate) async fn wait_for_result(
    state: &State,
    job_id: &str,
    timeout: Duration,
) -> Result<JobResult, LocalError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match state.try_take_result(job_id)? {
            TakeResult::Ready(result) => return Ok(result),
            TakeResult::Wait(signal) => {
                // Woken (or the sender dropped on shutdown): look again.
                if tokio::time::timeout_at(deadline, signal).await.is_err() {
                    return Err(state.timeout_error(job_id, timeout));
                }
            }
        }
    }
}
