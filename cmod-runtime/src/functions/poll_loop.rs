//! The poll loop: one long-poll at a time, only with a free concurrency slot; each job on its
//! own task; failed polls back off (100 ms → 5 s by default).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::client::{ClientError, Polled};
use super::job::{Shared, run_job};
use super::outcome::{ErrorKind, JobError};
use super::startup::{log_tls_error, post_schemas};
use crate::transport::Backoff;

/// How long an interrupted poll may still complete during shutdown (a job it brings is run).
const POLL_DRAIN: Duration = Duration::from_secs(2);

pub(super) struct PollLoop<'a> {
    pub(super) shared: &'a Arc<Shared>,
    pub(super) max_concurrent_tasks: usize,
    /// Initial and maximum delay between failed polls.
    pub(super) backoff: (Duration, Duration),
    /// Schemas still to post once a poll succeeds.
    pub(super) schemas_pending: Option<Bytes>,
}

impl PollLoop<'_> {
    /// Polls and spawns jobs until `shutdown` completes; returns the jobs still running.
    pub(super) async fn run(
        mut self,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> JoinSet<()> {
        let shared = self.shared;
        let slots = Arc::new(Semaphore::new(self.max_concurrent_tasks));
        let mut jobs = JoinSet::new();
        let mut backoff = Backoff::new(self.backoff.0, self.backoff.1);
        let mut connected = false;
        let mut shutting_down = false;
        while !shutting_down {
            let permit = tokio::select! {
                biased;
                _ = &mut *shutdown => break,
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let poll = shared.client.poll();
            tokio::pin!(poll);
            let polled = tokio::select! {
                biased;
                _ = &mut *shutdown => {
                    // Let a poll already under way finish briefly: a job it brings is run.
                    shutting_down = true;
                    match tokio::time::timeout(POLL_DRAIN, &mut poll).await {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::debug!(
                                "the poll under way did not finish within {POLL_DRAIN:?} of the shutdown; stopping without it"
                            );
                            break;
                        }
                    }
                }
                r = &mut poll => r,
            };
            if polled.is_ok()
                && let Some(schemas) = self.schemas_pending.take()
            {
                let shared = Arc::clone(shared);
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
                    let shared = Arc::clone(shared);
                    jobs.spawn(async move {
                        run_job(&shared, job).await;
                        drop(permit);
                    });
                }
                Ok(Polled::Malformed { job_id, error }) => {
                    connected = true;
                    backoff.reset();
                    tracing::error!(job_id = %job_id, "undecodable job envelope: {error}");
                    let shared = Arc::clone(shared);
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
                        _ = &mut *shutdown => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
            while jobs.try_join_next().is_some() {}
        }
        jobs
    }
}

fn log_poll_error(e: &ClientError, connected: bool) {
    match e {
        _ if e.is_tls() => log_tls_error(e),
        ClientError::Status {
            status: 401 | 403, ..
        } => tracing::error!(
            "the runtime rejected this module's credentials ({e}); check the MODULE_AUTH_TOKEN file"
        ),
        // Connection refused right after container start is expected (docs/protocol.md §3.1).
        _ if e.is_connect() && !connected => tracing::debug!("runtime not reachable yet: {e}"),
        _ => tracing::warn!("{e}"),
    }
}
