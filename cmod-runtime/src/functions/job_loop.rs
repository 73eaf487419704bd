//! The functions-mode job loop (docs/protocol.md §3): post schemas, send the restart notification
//! ([`startup`](super::startup)), then long-poll for jobs — one poll at a time, and only while a
//! concurrency slot is free, or with `CMOD_CONCURRENT_POLLS=1` one per free slot
//! ([`poll_loop`](super::poll_loop)) — run each job on its own task
//! ([`job`](super::job)), and on shutdown let them finish or end them
//! ([`drain`](super::drain)).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::client::RuntimeClient;
use super::job::Shared;
use super::registry::Registry;
use crate::config::RuntimeConfig;

/// Default time in-flight jobs get to finish after SIGTERM/SIGINT. Kubernetes waits 30 s by
/// default before killing the container; this leaves room to post the results.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(25);
/// Environment variable overriding the grace period, in seconds.
pub const GRACE_PERIOD_VAR: &str = crate::env::vars::CMOD_SHUTDOWN_GRACE_SECS;

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
            .map_err(super::registry::RegistryError::from)?;
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
            concurrent_polls = self.config.concurrent_polls,
            "starting compute module"
        );
        let schemas = Bytes::from(schemas);
        let startup = async {
            let posted = super::startup::post_schemas(&shared.client, schemas.clone()).await;
            super::startup::restart_notification(&shared.client).await;
            posted
        };
        // Schemas that could not be posted at startup (runtime not reachable for ~30 s) are
        // posted again once a poll succeeds, so the functions still appear in Foundry.
        let schemas_pending = tokio::select! {
            biased;
            _ = &mut shutdown => {
                tracing::debug!("stopped during startup");
                return Ok(());
            }
            posted = startup => (!posted).then_some(schemas),
        };
        let jobs = super::poll_loop::PollLoop {
            shared: &shared,
            max_concurrent_tasks: self.config.max_concurrent_tasks,
            backoff: self.poll_backoff,
            schemas_pending,
            concurrent_polls: self.config.concurrent_polls,
        }
        .run(&mut shutdown)
        .await;
        super::drain::drain(jobs, &stop_tx, &hard_tx, self.grace_period).await;
        Ok(())
    }
}

/// `CMOD_SHUTDOWN_GRACE_SECS`, or the default. An unusable value is reported (not silently
/// ignored, never a panic) and the default is used.
pub(crate) fn grace_period_from_env() -> Duration {
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
}
