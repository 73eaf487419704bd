//! The poll loop: one long-poll at a time, only with a free concurrency slot; each job on its
//! own task (the one that takes the last free slot on the loop's task); failed polls back off
//! (100 ms → 5 s by default).
//!
//! With `CMOD_CONCURRENT_POLLS=1` (opt-in, unverified against Foundry's runtime) it keeps up to
//! one outstanding long-poll per free slot instead: one poller task per slot polls, runs the
//! job its poll brings and polls again, so the jobs held plus the polls outstanding never
//! exceed `MAX_CONCURRENT_TASKS`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use super::client::{ClientError, Job, Polled, Target};
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
                Ok(Polled::Job(job)) => {
                    connected = true;
                    backoff.reset();
                    match result_target(shared, &job) {
                        None => drop(permit),
                        Some(url) => {
                            let shared = Arc::clone(shared);
                            let job: JobFuture = Box::pin(async move {
                                run_job(&shared, job, url).await;
                                drop(permit);
                            });
                            if slots.available_permits() == 0 && !shutting_down {
                                inline = Some(job);
                            } else {
                                jobs.spawn(job);
                            }
                        }
                    }
                }
                Ok(Polled::Malformed { job_id, error }) => {
                    connected = true;
                    backoff.reset();
                    let shared = Arc::clone(shared);
                    jobs.spawn(async move {
                        answer_malformed(&shared, &job_id, &error).await;
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
    /// Opt-in: up to one outstanding poll per free slot, as one long-lived **poller task per
    /// slot**. Each poller polls, runs the job its poll brings on its own task, posts the
    /// result, and polls again; an empty or failed poll is followed by another poll. So a slot
    /// is either polling or running a job, never both: the jobs held plus the polls outstanding
    /// never exceed `MAX_CONCURRENT_TASKS`. No task is spawned per job or per poll, and the
    /// connection a poll or a post uses is driven by the poller itself (`transport/h1.rs`).
    ///
    /// The returned set holds the pollers still running a job at shutdown (they stop once it
    /// is answered). A poller that fails (a panic outside the user's function; theirs are
    /// caught) is replaced, so the slot is not lost.
    async fn run_concurrent(
        self,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> JoinSet<()> {
        let (stop_tx, stop) = watch::channel(false);
        let pollers = Arc::new(Pollers {
            shared: Arc::clone(self.shared),
            backoff: Mutex::new(SharedBackoff {
                backoff: Backoff::new(self.backoff.0, self.backoff.1),
                resume_at: None,
            }),
            schemas_pending: Mutex::new(self.schemas_pending),
            connected: AtomicBool::new(false),
            polling: AtomicUsize::new(0),
            poll_settled: Notify::new(),
            stop,
        });
        let mut tasks = JoinSet::new();
        for _ in 0..self.max_concurrent_tasks {
            tasks.spawn(Arc::clone(&pollers).run());
        }
        loop {
            tokio::select! {
                biased;
                _ = &mut *shutdown => break,
                Some(joined) = tasks.join_next() => {
                    // Before shutdown a poller only ends by failing.
                    if let Err(e) = joined {
                        tracing::error!("a poller task failed: {e}; starting another for its slot");
                    }
                    tasks.spawn(Arc::clone(&pollers).run());
                }
            }
        }
        let _ = stop_tx.send(true);
        // Polls already under way may still finish briefly (each within POLL_DRAIN); a job one
        // brings is run. Wait for them, so that what is returned is pollers running jobs.
        let settled = tokio::time::timeout(POLL_DRAIN + Duration::from_millis(100), async {
            loop {
                let notified = pollers.poll_settled.notified();
                if pollers.polling.load(Ordering::Acquire) == 0 {
                    break;
                }
                notified.await;
            }
        })
        .await;
        if settled.is_err() {
            tracing::debug!(
                outstanding = pollers.polling.load(Ordering::Acquire),
                "the polls under way did not finish within {POLL_DRAIN:?} of the shutdown; stopping without them"
            );
        }
        while tasks.try_join_next().is_some() {}
        tasks
    }
}

/// What the pollers of concurrent mode share.
struct Pollers {
    shared: Arc<Shared>,
    backoff: Mutex<SharedBackoff>,
    /// Schemas still to post once a poll succeeds.
    schemas_pending: Mutex<Option<Bytes>>,
    /// A poll has succeeded since startup (connection refusals are expected before).
    connected: AtomicBool,
    /// Polls outstanding right now; `poll_settled` is notified when one ends.
    polling: AtomicUsize,
    poll_settled: Notify,
    /// Becomes `true` at shutdown: no new poll starts.
    stop: watch::Receiver<bool>,
}

/// Polls failing together (the runtime went away) back off once, not once each: the delay
/// grows by one step per round of failed polls, and no poll starts before `resume_at`.
struct SharedBackoff {
    backoff: Backoff,
    resume_at: Option<tokio::time::Instant>,
}

/// Counts one outstanding poll, also when its poller is dropped mid-poll.
struct Polling<'a>(&'a Pollers);

impl<'a> Polling<'a> {
    fn start(pollers: &'a Pollers) -> Self {
        pollers.polling.fetch_add(1, Ordering::AcqRel);
        Self(pollers)
    }
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        self.0.polling.fetch_sub(1, Ordering::AcqRel);
        self.0.poll_settled.notify_waiters();
    }
}

impl Pollers {
    /// One slot: poll, run what the poll brings, again, until shutdown.
    async fn run(self: Arc<Self>) {
        let mut stop = self.stop.clone();
        loop {
            if *stop.borrow() {
                return;
            }
            let resume_at = lock(&self.backoff).resume_at;
            if let Some(at) = resume_at
                && at > tokio::time::Instant::now()
            {
                tokio::select! {
                    biased;
                    () = stopped(&mut stop) => return,
                    () = tokio::time::sleep_until(at) => {}
                }
                continue;
            }
            let polling = Polling::start(&self);
            let poll = self.shared.client.poll();
            tokio::pin!(poll);
            let polled = tokio::select! {
                biased;
                () = stopped(&mut stop) => {
                    // Let the poll under way finish briefly: a job it brings is run.
                    match tokio::time::timeout(POLL_DRAIN, &mut poll).await {
                        Ok(r) => r,
                        Err(_) => return,
                    }
                }
                r = &mut poll => r,
            };
            drop(polling);
            self.handle(polled).await;
        }
    }

    /// Acts on one poll's outcome: runs the job it brought and posts its result, or backs off
    /// after a failed poll.
    async fn handle(&self, polled: Result<Polled, ClientError>) {
        let shared = &*self.shared;
        if polled.is_ok()
            && let Some(schemas) = lock(&self.schemas_pending).take()
        {
            let shared = Arc::clone(&self.shared);
            tokio::spawn(async move { post_schemas(&shared.client, schemas).await });
        }
        match polled {
            Ok(polled) => {
                self.connected.store(true, Ordering::Relaxed);
                lock(&self.backoff).backoff.reset();
                match polled {
                    Polled::Job(job) => {
                        if let Some(url) = result_target(shared, &job) {
                            run_job(shared, job, url).await;
                        }
                    }
                    Polled::Malformed { job_id, error } => {
                        answer_malformed(shared, &job_id, &error).await;
                    }
                    Polled::Empty => {}
                }
            }
            Err(e) => {
                log_poll_error(&e, self.connected.load(Ordering::Relaxed));
                let mut b = lock(&self.backoff);
                let now = tokio::time::Instant::now();
                if b.resume_at.is_none_or(|at| at <= now) {
                    let delay = b.backoff.next_delay();
                    b.resume_at = Some(now + delay);
                }
            }
        }
    }
}

/// Completes once shutdown began (or the loop that would signal it is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// The pollers' shared state is plain data: a poller that panicked holding the lock left
/// nothing half-done in it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where the result of `job` is posted, if it can be; when not (`.`/`..` are no URL path
/// segment, and posting elsewhere would be worse) the job is not run, and this is logged.
fn result_target(shared: &Shared, job: &Job) -> Option<Target> {
    match shared.client.result_url(&job.job_id) {
        Ok(url) => Some(url),
        Err(e) => {
            tracing::error!(
                job_id = %job.job_id,
                function = %job.query_type,
                "job `{}` cannot be answered and is not run: {e}",
                job.job_id
            );
            None
        }
    }
}

/// A job whose envelope could not be decoded gets one `InvalidInput` error result.
async fn answer_malformed(shared: &Shared, job_id: &str, error: &str) {
    tracing::error!(job_id = %job_id, "undecodable job envelope: {error}");
    let e = JobError::new(
        ErrorKind::InvalidInput,
        format!("invalid job envelope: {error}"),
    );
    shared.client.deliver(job_id, Err(e)).await;
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
