//! The poll loop: one long-poll at a time, only with a free concurrency slot; each job on its
//! own task; failed polls back off (100 ms → 5 s by default).
//!
//! With `CMOD_CONCURRENT_POLLS=1` (opt-in, unverified against Foundry's runtime) it keeps up to
//! one outstanding long-poll per free slot instead: every poll holds its slot's permit while it
//! is outstanding and hands it to the job it brings, so the jobs held plus the polls outstanding
//! never exceed `MAX_CONCURRENT_TASKS`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
    /// Up to one outstanding poll per free slot instead of one at a time.
    pub(super) concurrent_polls: bool,
}

impl PollLoop<'_> {
    /// Polls and spawns jobs until `shutdown` completes; returns the jobs still running.
    pub(super) async fn run(
        self,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> JoinSet<()> {
        if self.concurrent_polls {
            self.run_concurrent(shutdown).await
        } else {
            self.run_one_at_a_time(shutdown).await
        }
    }

    /// The default: one poll at a time, only while a slot is free.
    async fn run_one_at_a_time(
        mut self,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> JoinSet<()> {
        let shared = self.shared;
        let slots = Arc::new(Semaphore::new(self.max_concurrent_tasks));
        let mut jobs = JoinSet::new();
        let mut backoff = Backoff::new(self.backoff.0, self.backoff.1);
        let mut connected = false;
        let mut shutting_down = false;
        // The job that took the last free slot runs on this task while there is nothing to
        // poll for (at MAX_CONCURRENT_TASKS=1: every job). It moves to a task of its own as
        // soon as a slot frees and the loop polls again, or at shutdown. No spawn, no hand-off
        // between tasks (and so between worker threads) for the job that fills the slots.
        let mut inline: Option<JobFuture> = None;
        while !shutting_down {
            let permit = tokio::select! {
                biased;
                _ = &mut *shutdown => break,
                () = run_inline(&mut inline) => {
                    inline = None;
                    while jobs.try_join_next().is_some() {}
                    continue;
                }
                // Only another job can free a slot while one runs inline. (When none runs, not
                // waiting here also spares the loop a wake-up by its own inline job's permit.)
                permit = Arc::clone(&slots).acquire_owned(), if inline.is_none() || !jobs.is_empty() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            if let Some(job) = inline.take() {
                jobs.spawn(job);
            }
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
                    let job: JobFuture = Box::pin(async move {
                        run_job(&shared, job).await;
                        drop(permit);
                    });
                    if slots.available_permits() == 0 && !shutting_down {
                        inline = Some(job);
                    } else {
                        jobs.spawn(job);
                    }
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
        if let Some(job) = inline.take() {
            jobs.spawn(job);
        }
        jobs
    }
}

/// A job with its slot's permit, to run on the loop's task or a task of its own.
type JobFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs the inline job to completion; never completes when there is none.
async fn run_inline(inline: &mut Option<JobFuture>) {
    match inline {
        Some(job) => job.await,
        None => std::future::pending().await,
    }
}

impl PollLoop<'_> {
    /// Opt-in: up to one outstanding poll per free slot. Each poll takes a slot's permit before
    /// it starts and keeps it while outstanding; a job it brings runs with that permit, an empty
    /// or failed poll gives it back. Each poll runs on a task of its own: a connection's I/O is
    /// driven by the task waiting on it (`transport/h1.rs`), and eight polls driven from this one
    /// task would share one worker thread (about 10 % fewer trivial jobs per second at 8 slots).
    async fn run_concurrent(
        mut self,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> JoinSet<()> {
        let shared = self.shared;
        let slots = Arc::new(Semaphore::new(self.max_concurrent_tasks));
        let mut jobs = JoinSet::new();
        // Dropped at the end: a poll still outstanding then is aborted.
        let mut polls = JoinSet::new();
        let start_poll = |permit: OwnedSemaphorePermit| {
            let shared = Arc::clone(shared);
            async move {
                let polled = shared.client.poll().await;
                (permit, polled)
            }
        };
        let mut backoff = Backoff::new(self.backoff.0, self.backoff.1);
        let mut connected = false;
        // After a failed poll no new poll starts before this instant (outstanding ones go on).
        let mut resume_at: Option<tokio::time::Instant> = None;
        loop {
            let may_start = resume_at.is_none_or(|at| at <= tokio::time::Instant::now());
            if may_start {
                resume_at = None;
            }
            let next_start = async {
                if let Some(at) = resume_at {
                    tokio::time::sleep_until(at).await;
                    return None;
                }
                Arc::clone(&slots).acquire_owned().await.ok()
            };
            tokio::select! {
                biased;
                _ = &mut *shutdown => break,
                Some(joined) = polls.join_next(), if !polls.is_empty() => {
                    // A poll task that panicked gave its permit back when it was dropped.
                    let failed = match joined {
                        Ok((permit, polled)) => {
                            self.handle(polled, permit, &mut jobs, &mut backoff, &mut connected)
                        }
                        Err(e) => {
                            tracing::error!("a poll task failed: {e}");
                            true
                        }
                    };
                    // Polls failing together (the runtime went away) back off once, not once
                    // each: the delay grows by one step per round of polls.
                    if failed && resume_at.is_none() {
                        resume_at = Some(tokio::time::Instant::now() + backoff.next_delay());
                    }
                }
                permit = next_start => {
                    if let Some(permit) = permit {
                        polls.spawn(start_poll(permit));
                    }
                }
            }
            while jobs.try_join_next().is_some() {}
        }
        // Shutdown: polls already under way may still finish briefly; a job one brings is run.
        if !polls.is_empty() {
            let drained = tokio::time::timeout(POLL_DRAIN, async {
                while let Some(joined) = polls.join_next().await {
                    if let Ok((permit, polled)) = joined {
                        let _ =
                            self.handle(polled, permit, &mut jobs, &mut backoff, &mut connected);
                    }
                }
            })
            .await;
            if drained.is_err() {
                tracing::debug!(
                    outstanding = polls.len(),
                    "the polls under way did not finish within {POLL_DRAIN:?} of the shutdown; stopping without them"
                );
            }
        }
        jobs
    }

    /// Acts on one poll's outcome: a job is spawned holding `permit`; on an empty or failed poll
    /// the permit is given back. Returns whether the poll failed.
    fn handle(
        &mut self,
        polled: Result<Polled, ClientError>,
        permit: OwnedSemaphorePermit,
        jobs: &mut JoinSet<()>,
        backoff: &mut Backoff,
        connected: &mut bool,
    ) -> bool {
        let shared = self.shared;
        if polled.is_ok()
            && let Some(schemas) = self.schemas_pending.take()
        {
            let shared = Arc::clone(shared);
            tokio::spawn(async move { post_schemas(&shared.client, schemas).await });
        }
        match polled {
            Ok(Polled::Job(job)) => {
                *connected = true;
                backoff.reset();
                if let Err(e) = shared.client.result_url(&job.job_id) {
                    // Not run: nothing it returned could be posted.
                    drop(permit);
                    tracing::error!(
                        job_id = %job.job_id,
                        function = %job.query_type,
                        "job `{}` cannot be answered and is not run: {e}",
                        job.job_id
                    );
                    return false;
                }
                let shared = Arc::clone(shared);
                jobs.spawn(async move {
                    run_job(&shared, job).await;
                    drop(permit);
                });
                false
            }
            Ok(Polled::Malformed { job_id, error }) => {
                *connected = true;
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
                false
            }
            Ok(Polled::Empty) => {
                *connected = true;
                backoff.reset();
                false
            }
            Err(e) => {
                drop(permit);
                log_poll_error(&e, *connected);
                true
            }
        }
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
