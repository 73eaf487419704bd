//! The functions-mode job loop (PROTOCOL §3): post schemas, send the restart notification, then
//! long-poll for jobs — one poll at a time, and only while a concurrency slot is free — and run
//! each job on its own task, posting exactly one result for it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::client::{ClientError, Delivery, Job, Polled, RuntimeClient};
use crate::config::RuntimeConfig;
use crate::context::Context;
use crate::function_call::panic_message;
use crate::invoke::{ErrorKind, JobError, Output};
use crate::registry::Registry;

/// Default time in-flight jobs get to finish after SIGTERM/SIGINT. Kubernetes waits 30 s by
/// default before killing the container; this leaves room to post the results.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(25);
/// Environment variable overriding the grace period, in seconds.
pub const GRACE_PERIOD_VAR: &str = "CMOD_SHUTDOWN_GRACE_SECS";
/// How long an interrupted poll may still complete during shutdown (a job it brings is run).
const POLL_DRAIN: Duration = Duration::from_secs(2);
/// How long jobs that missed the grace period get to post their error results.
const ERROR_POST_DRAIN: Duration = Duration::from_secs(10);

/// Capped exponential backoff: `initial`, doubling, never above `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// Serves registered functions against a compute-module runtime.
///
/// [`crate::run`] builds one from the environment; build one yourself to choose the registry,
/// the configuration or the shutdown signal (tests do).
#[derive(Debug)]
pub struct FunctionsRuntime {
    config: RuntimeConfig,
    registry: Registry,
    grace_period: Duration,
    poll_backoff: (Duration, Duration),
}

impl FunctionsRuntime {
    /// A runtime for `registry` speaking to the runtime described by `config`.
    pub fn new(config: RuntimeConfig, registry: Registry) -> Self {
        let grace_period = grace_period_from_env();
        Self {
            config,
            registry,
            grace_period,
            poll_backoff: (Duration::from_millis(100), Duration::from_secs(5)),
        }
    }

    /// How long in-flight jobs may run after shutdown starts (default 25 s, or
    /// `CMOD_SHUTDOWN_GRACE_SECS`). Jobs still running after it get a `Shutdown` error result.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = grace;
        self
    }

    /// The backoff between failed polls: starts at `initial`, doubles, capped at `max`
    /// (default 100 ms → 5 s).
    pub fn poll_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.poll_backoff = (initial, max.max(initial));
        self
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn run(self) -> crate::Result<()> {
        self.run_until(crate::shutdown_signal()).await
    }

    /// Runs until `shutdown` completes, then stops polling, lets in-flight jobs finish within
    /// the grace period, posts their results and returns.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> crate::Result<()> {
        // The loop runs as a task of its own, next to its jobs and the HTTP connection tasks,
        // not on the caller's task: under `#[tokio::main]` the caller is the main thread
        // (`block_on`), outside the worker pool, and every wake-up of the loop (each poll
        // response, each freed slot) would cost a cross-thread unpark — several futex calls
        // per job, most of the loop's CPU time in the benchmarks (BENCHMARKS.md).
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut serving = tokio::spawn(self.serve(async move {
            // A dropped sender (the caller went away) stops the loop too.
            let _ = stop_rx.await;
        }));
        tokio::pin!(shutdown);
        let joined = tokio::select! {
            biased;
            joined = &mut serving => joined,
            _ = &mut shutdown => {
                let _ = stop_tx.send(());
                serving.await
            }
        };
        match joined {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(crate::Error::Runtime(
                "the job loop was cancelled: the Tokio runtime is shutting down".into(),
            )),
        }
    }

    async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> crate::Result<()> {
        let client = RuntimeClient::new(&self.config)?;
        let schemas = self
            .registry
            .schemas()
            .map_err(crate::registry::RegistryError::from)?;
        let schemas = serde_json::to_vec(&schemas)
            .map_err(|e| crate::Error::Runtime(format!("cannot encode the schemas: {e}")))?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (hard_tx, hard_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            client,
            registry: self.registry,
            stop: stop_rx,
            hard_stop: hard_rx,
        });
        tokio::pin!(shutdown);

        tracing::info!(
            functions = shared.registry.len(),
            max_concurrent_tasks = self.config.max_concurrent_tasks,
            "starting compute module"
        );
        let schemas = Bytes::from(schemas);
        let startup = async {
            let posted = post_schemas(&shared.client, schemas.clone()).await;
            restart_notification(&shared.client).await;
            posted
        };
        // Schemas that could not be posted at startup (runtime not reachable for ~30 s) are
        // posted again once a poll succeeds, so the functions still appear in Foundry.
        let mut schemas_pending = tokio::select! {
            biased;
            _ = &mut shutdown => {
                tracing::info!("shutdown requested during startup");
                return Ok(());
            }
            posted = startup => !posted,
        };

        let slots = Arc::new(Semaphore::new(self.config.max_concurrent_tasks));
        let mut jobs = JoinSet::new();
        let mut backoff = Backoff::new(self.poll_backoff.0, self.poll_backoff.1);
        let mut connected = false;
        let mut shutting_down = false;
        while !shutting_down {
            let permit = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let poll = shared.client.poll();
            tokio::pin!(poll);
            let polled = tokio::select! {
                biased;
                _ = &mut shutdown => {
                    // Let a poll already under way finish briefly: a job it brings is run.
                    shutting_down = true;
                    match tokio::time::timeout(POLL_DRAIN, &mut poll).await {
                        Ok(r) => r,
                        Err(_) => break,
                    }
                }
                r = &mut poll => r,
            };
            if schemas_pending && polled.is_ok() {
                schemas_pending = false;
                let (shared, schemas) = (Arc::clone(&shared), schemas.clone());
                tokio::spawn(async move { post_schemas(&shared.client, schemas).await });
            }
            match polled {
                Ok(Polled::Job(job)) if shared.client.result_url(&job.job_id).is_err() => {
                    // Not run: nothing it returned could be posted (`.`/`..` are no URL path
                    // segment), and posting elsewhere would be worse.
                    connected = true;
                    backoff.reset();
                    drop(permit);
                    if let Err(e) = shared.client.result_url(&job.job_id) {
                        tracing::error!(
                            job_id = %job.job_id,
                            function = %job.query_type,
                            "job `{}` cannot be answered and is not run: {e}",
                            job.job_id
                        );
                    }
                }
                Ok(Polled::Job(job)) => {
                    connected = true;
                    backoff.reset();
                    let shared = Arc::clone(&shared);
                    jobs.spawn(async move {
                        run_job(&shared, job).await;
                        drop(permit);
                    });
                }
                Ok(Polled::Malformed { job_id, error }) => {
                    connected = true;
                    backoff.reset();
                    tracing::error!(job_id = %job_id, "undecodable job envelope: {error}");
                    let shared = Arc::clone(&shared);
                    jobs.spawn(async move {
                        let e = JobError::new(
                            ErrorKind::InvalidInput,
                            format!("invalid job envelope: {error}"),
                        );
                        shared.client.deliver(&job_id, Err(e)).await;
                        drop(permit);
                    });
                }
                Ok(Polled::Empty) => {
                    connected = true;
                    backoff.reset();
                }
                Err(e) => {
                    drop(permit);
                    log_poll_error(&e, connected);
                    if shutting_down {
                        break;
                    }
                    let delay = backoff.next_delay();
                    tokio::select! {
                        biased;
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
            while jobs.try_join_next().is_some() {}
        }

        // Graceful shutdown: no more polls; tell running functions; wait for them.
        let _ = stop_tx.send(true);
        // Jobs whose result was just posted are finishing their task: let them, so the count
        // below is of jobs really still running.
        tokio::task::yield_now().await;
        while jobs.try_join_next().is_some() {}
        let in_flight = jobs.len();
        if in_flight > 0 {
            tracing::info!(
                in_flight,
                grace_period_secs = self.grace_period.as_secs_f64(),
                "shutting down: waiting for in-flight jobs"
            );
        } else {
            tracing::info!("shutting down");
        }
        let drained = tokio::time::timeout(self.grace_period, drain(&mut jobs)).await;
        if drained.is_err() {
            tracing::warn!(
                remaining = jobs.len(),
                "grace period over: posting Shutdown errors for unfinished jobs"
            );
            let _ = hard_tx.send(true);
            if tokio::time::timeout(ERROR_POST_DRAIN, drain(&mut jobs))
                .await
                .is_err()
            {
                tracing::error!(
                    remaining = jobs.len(),
                    "jobs still unfinished after posting errors; abandoning them"
                );
                jobs.abort_all();
            }
        }
        Ok(())
    }
}

/// `CMOD_SHUTDOWN_GRACE_SECS`, or the default. An unusable value is reported (not silently
/// ignored, never a panic) and the default is used.
fn grace_period_from_env() -> Duration {
    let Some(raw) = crate::env::var(GRACE_PERIOD_VAR) else {
        return DEFAULT_GRACE_PERIOD;
    };
    match parse_grace_period(&raw) {
        Some(d) => d,
        None => {
            tracing::warn!(
                "{GRACE_PERIOD_VAR}=`{raw}` is not a number of seconds between 0 and 86400; \
                 using the default of {} s",
                DEFAULT_GRACE_PERIOD.as_secs()
            );
            DEFAULT_GRACE_PERIOD
        }
    }
}

fn parse_grace_period(raw: &str) -> Option<Duration> {
    let secs = raw.trim().parse::<f64>().ok()?;
    if !(0.0..=86_400.0).contains(&secs) {
        return None;
    }
    Duration::try_from_secs_f64(secs).ok()
}

async fn drain(jobs: &mut JoinSet<()>) {
    while jobs.join_next().await.is_some() {}
}

/// The message logged for TLS failures: they are never silent, since they mean the runtime's
/// certificate is not signed by the CA this module trusts.
fn log_tls_error(e: &ClientError) {
    tracing::error!(
        "refusing to talk to the runtime: TLS verification failed ({e}); check that \
         DEFAULT_CA_PATH / CONNECTIONS_TO_OTHER_PODS_CA_PATH hold the runtime's CA"
    );
}

fn log_poll_error(e: &ClientError, connected: bool) {
    match e {
        _ if e.is_tls() => log_tls_error(e),
        ClientError::Status {
            status: 401 | 403, ..
        } => tracing::error!(
            "the runtime rejected this module's credentials ({e}); check the MODULE_AUTH_TOKEN file"
        ),
        // Connection refused right after container start is expected (PROTOCOL §3.1).
        _ if e.is_connect() && !connected => tracing::debug!("runtime not reachable yet: {e}"),
        _ => tracing::warn!("{e}"),
    }
}

struct Shared {
    client: RuntimeClient,
    registry: Registry,
    stop: watch::Receiver<bool>,
    hard_stop: watch::Receiver<bool>,
}

async fn run_job(shared: &Shared, job: Job) {
    let span = tracing::info_span!("job", job_id = %job.job_id, function = %job.query_type);
    async {
        let started = std::time::Instant::now();
        let job_id = job.job_id.clone();
        let outcome = execute(shared, job, span.clone()).await;
        let mut kind = outcome.as_ref().err().map(JobError::kind);
        let delivery = if matches!(outcome, Ok(Output::Stream(_))) {
            // A streamed result is produced while it is delivered: the hard stop applies to
            // its delivery too. Dropping the post aborts it mid-body (the runtime records
            // nothing), and the job gets its one Shutdown error instead.
            let mut hard_stop = shared.hard_stop.clone();
            let stopped = tokio::select! {
                delivery = shared.client.deliver(&job_id, outcome) => Some(delivery),
                _ = hard_stop.wait_for(|s| *s) => None,
            };
            match stopped {
                Some(delivery) => delivery,
                None => {
                    kind = Some(ErrorKind::Shutdown);
                    shared
                        .client
                        .deliver_error(&job_id, &shutdown_error())
                        .await
                }
            }
        } else {
            shared.client.deliver(&job_id, outcome).await
        };
        match (kind, delivery) {
            (None, Delivery::Result) => tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "job succeeded"
            ),
            (Some(kind), Delivery::Error) => tracing::info!(error_kind = %kind, "job failed"),
            (_, Delivery::Replaced) => tracing::warn!("job result replaced by a delivery error"),
            (_, Delivery::Lost) => tracing::error!("job result could not be delivered"),
            _ => {}
        }
    }
    .instrument(span.clone())
    .await
}

/// Runs the job's function. Takes the job by value: its `query` (possibly megabytes) moves into
/// the call instead of being copied (BENCHMARKS.md).
async fn execute(shared: &Shared, job: Job, span: tracing::Span) -> Result<Output, JobError> {
    let Job {
        job_id,
        query_type,
        query,
        temporary_credentials_auth_token,
        auth_header,
        user_id,
    } = job;
    let Some(def) = shared.registry.get(&query_type) else {
        let known: Vec<&str> = shared.registry.functions().iter().map(|d| d.name).collect();
        return Err(JobError::new(
            ErrorKind::UnknownFunction,
            format!(
                "this module has no function named `{}`; it has: {}",
                query_type,
                known.join(", ")
            ),
        ));
    };
    let ctx = Context::builder(job_id)
        .function_name(query_type)
        .user_id(user_id)
        .auth_header(auth_header)
        .temporary_credentials_token(temporary_credentials_auth_token)
        .shutdown_signal(shared.stop.clone())
        .build();
    // Run the call on this job's task, catching its panics (whether building or polling the
    // future), so a panic never reaches the loop. No task of its own: one task hand-off less
    // per job (BENCHMARKS.md).
    let panicked = |payload: Box<dyn std::any::Any + Send>| {
        JobError::new(
            ErrorKind::Panic,
            format!("the function panicked: {}", panic_message(payload.as_ref())),
        )
    };
    let call = match std::panic::catch_unwind(AssertUnwindSafe(move || (def.call)(ctx, query))) {
        Ok(call) => AssertUnwindSafe(call.instrument(span)).catch_unwind(),
        Err(payload) => return Err(panicked(payload)),
    };
    let mut hard_stop = shared.hard_stop.clone();
    tokio::select! {
        caught = call => caught.unwrap_or_else(|payload| Err(panicked(payload))),
        // Dropping the call cancels the function.
        _ = hard_stop.wait_for(|s| *s) => Err(shutdown_error()),
    }
}

fn shutdown_error() -> JobError {
    JobError::new(
        ErrorKind::Shutdown,
        "the module shut down before the function finished",
    )
}

/// Posts the schemas, retrying connection errors with capped backoff (about 30 s in all).
/// Returns `false` when the runtime could not be reached, so the caller can try again later.
async fn post_schemas(client: &RuntimeClient, body: Bytes) -> bool {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    for attempt in 1..=10 {
        match client.post_schemas(body.clone()).await {
            Ok(true) => {
                tracing::info!("function schemas posted");
                return true;
            }
            Ok(false) => return true,
            Err(e) if e.is_transient() && attempt < 10 => {
                if e.is_tls() {
                    log_tls_error(&e);
                } else if e.is_connect() {
                    tracing::debug!("runtime not reachable yet, retrying schema post: {e}");
                } else {
                    tracing::warn!("retrying schema post: {e}");
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                tracing::error!(
                    "could not post the function schemas (functions may not appear in Foundry): {e}"
                );
                // Worth another try later only if the runtime was unreachable.
                return !e.is_transient();
            }
        }
    }
    false
}

/// Sends the restart notification (when configured) and logs the jobs the runtime dropped.
async fn restart_notification(client: &RuntimeClient) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    for attempt in 1..=5 {
        match client.restart_notification().await {
            Ok(None) => return,
            Ok(Some(ids)) if ids.is_empty() => {
                tracing::info!("restart notification sent; no stale jobs");
                return;
            }
            Ok(Some(ids)) => {
                tracing::warn!(removed_jobs = %ids.join(","), "restart notification: the runtime dropped {} stale job(s)", ids.len());
                return;
            }
            Err(e) if e.is_transient() && attempt < 5 => {
                tracing::debug!("retrying restart notification: {e}");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                tracing::warn!("restart notification failed: {e}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_periods_outside_the_sane_range_are_rejected_not_panicked_on() {
        assert_eq!(
            parse_grace_period(" 2.5 "),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parse_grace_period("0"), Some(Duration::ZERO));
        for bad in ["1e30", "-1", "NaN", "inf", "soon", ""] {
            assert_eq!(parse_grace_period(bad), None, "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, vec![100, 200, 350, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }
}
