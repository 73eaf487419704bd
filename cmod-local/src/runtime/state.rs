//! The runtime's shared state: the job queue, jobs in flight, results, schemas and counters.
//!
//! Everything here is synchronous and O(1) per job: one short `std::sync::Mutex` critical section
//! per queue/result operation, wake-ups through [`Notify`] and one-shot channels (no polling).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::error::LocalError;
use super::faults::FaultState;
use super::ids::IdGen;
use super::watch::Progress;
use super::{JobResult, JobSpec, Stats};

/// A job's place in its life cycle.
enum JobState {
    /// Waiting to be handed out by `GET job`.
    Queued(Box<JobSpec>),
    /// Handed out, not yet answered.
    InFlight,
    /// A result was accepted and waits to be taken. Once taken, the record is retired (see
    /// [`Jobs::retire`]).
    Answered(JobResult),
    /// Removed by a restart notification while in flight.
    Dropped,
    /// Abandoned by its caller before it was handed out (invoke API timeout or disconnect).
    Cancelled,
}

impl JobState {
    fn describe(&self) -> &'static str {
        match self {
            Self::Queued(_) => "queued",
            Self::InFlight => "in flight",
            Self::Answered(_) => "answered",
            Self::Dropped => "dropped",
            Self::Cancelled => "cancelled",
        }
    }
}

struct JobRecord {
    function: String,
    state: JobState,
    /// Callers of `wait_result` for this job; signalled (or dropped) when it leaves flight.
    waiters: Vec<oneshot::Sender<()>>,
    /// The caller gave up: a late result is acknowledged but its body is not kept.
    abandoned: bool,
    /// Sees the result body as it arrives (a streamed call); closed once the result is in.
    watcher: Option<mpsc::UnboundedSender<Progress>>,
}

/// A set of job counters (see [`IdGen::counter_of`]): one bit per job.
#[derive(Default)]
struct CounterSet(Vec<u64>);

impl CounterSet {
    fn insert(&mut self, n: u64) {
        let (word, bit) = ((n / 64) as usize, n % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    fn contains(&self, n: u64) -> bool {
        self.0
            .get((n / 64) as usize)
            .is_some_and(|w| w & (1 << (n % 64)) != 0)
    }
}

impl JobRecord {
    fn wake(&mut self) {
        for w in self.waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

#[derive(Default)]
struct Jobs {
    queue: VecDeque<String>,
    records: HashMap<String, JobRecord>,
    /// Job id → hand-out sequence number, for jobs handed out and not yet answered.
    in_flight: HashMap<String, u64>,
    /// Jobs whose result was taken (or discarded): their records are gone, one bit remains so a
    /// late duplicate result is still recognized. Memory stays ~1 bit per finished job.
    retired: CounterSet,
    next_seq: u64,
    closed: bool,
}

impl Jobs {
    /// Removes the record of a finished job, remembering only that it finished.
    fn retire(&mut self, ids: &IdGen, job_id: &str) -> Option<JobRecord> {
        if let Some(n) = ids.counter_of(job_id) {
            self.retired.insert(n);
        }
        self.records.remove(job_id)
    }

    fn is_retired(&self, ids: &IdGen, job_id: &str) -> bool {
        ids.counter_of(job_id)
            .is_some_and(|n| self.retired.contains(n))
    }
}

/// Counters behind [`Stats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) polls: AtomicU64,
    pub(crate) jobs_handed_out: AtomicU64,
    pub(crate) results_accepted: AtomicU64,
    pub(crate) duplicate_results: AtomicU64,
    pub(crate) unknown_job_results: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) restart_notifications: AtomicU64,
    pub(crate) schema_posts: AtomicU64,
    pub(crate) max_in_flight: AtomicU64,
    /// Long-polls waiting in [`State::next_job`] right now.
    pub(crate) open_polls: AtomicU64,
    pub(crate) max_concurrent_polls: AtomicU64,
    pub(crate) requests_total: AtomicU64,
    pub(crate) rejected_by_fault: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            polls: get(&self.polls),
            jobs_handed_out: get(&self.jobs_handed_out),
            results_accepted: get(&self.results_accepted),
            duplicate_results: get(&self.duplicate_results),
            unknown_job_results: get(&self.unknown_job_results),
            auth_failures: get(&self.auth_failures),
            restart_notifications: get(&self.restart_notifications),
            schema_posts: get(&self.schema_posts),
            max_in_flight: get(&self.max_in_flight),
            max_concurrent_polls: get(&self.max_concurrent_polls),
            requests_total: get(&self.requests_total),
            rejected_by_fault: get(&self.rejected_by_fault),
        }
    }
}

/// One long-poll open in [`State::next_job`]: counted while it lives, the most at once kept.
struct OpenPoll<'a>(&'a Counters);

impl<'a> OpenPoll<'a> {
    fn enter(counters: &'a Counters) -> Self {
        let open = counters.open_polls.fetch_add(1, Ordering::Relaxed) + 1;
        counters
            .max_concurrent_polls
            .fetch_max(open, Ordering::Relaxed);
        Self(counters)
    }
}

impl Drop for OpenPoll<'_> {
    fn drop(&mut self) {
        self.0.open_polls.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A job handed out by `GET job`, ready to be serialized as the docs/protocol.md §3.3 envelope.
pub(crate) struct HandedOut {
    pub(crate) job_id: String,
    pub(crate) spec: Box<JobSpec>,
}

impl HandedOut {
    /// The `computeModuleJobV1` envelope. Absent optional fields are sent as `""`, as the
    /// platform and the Python SDK's defaults do.
    pub(crate) fn envelope(&self) -> Result<Vec<u8>, serde_json::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Job<'a> {
            job_id: &'a str,
            query_type: &'a str,
            query: &'a serde_json::Value,
            temporary_credentials_auth_token: &'a str,
            auth_header: &'a str,
            user_id: &'a str,
        }
        #[derive(Serialize)]
        struct Envelope<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            #[serde(rename = "computeModuleJobV1")]
            job: Job<'a>,
        }
        let spec = &self.spec;
        if let Some(raw) = &spec.raw_envelope {
            return serde_json::to_vec(raw);
        }
        serde_json::to_vec(&Envelope {
            kind: "computeModuleJobV1",
            job: Job {
                job_id: &self.job_id,
                query_type: &spec.function,
                query: &spec.query,
                temporary_credentials_auth_token: spec
                    .temporary_credentials_token
                    .as_deref()
                    .unwrap_or(""),
                auth_header: spec.auth_header.as_deref().unwrap_or(""),
                user_id: spec.user_id.as_deref().unwrap_or(""),
            },
        })
    }
}

/// Why a posted result was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ResultRejection {
    /// No job with that id was ever enqueued.
    Unknown,
    /// The job exists but was never handed out (still queued, or cancelled before that).
    NotHandedOut {
        function: String,
        state: &'static str,
    },
    /// The job already has a result (`function` is unknown once the result was taken).
    Duplicate { function: Option<String> },
    /// The job was dropped by a restart notification.
    Dropped { function: String },
}

/// What [`State::try_take_result`] found.
pub(crate) enum TakeResult {
    Ready(JobResult),
    Wait(oneshot::Receiver<()>),
}

/// An in-flight job, for listings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InFlightJob {
    pub(crate) job_id: String,
    pub(crate) function: String,
}

/// The module auth tokens the runtime accepts.
struct Accepted {
    current: String,
    /// The token being rotated out, accepted until the new file is in place.
    previous: Option<String>,
}

/// Whether two byte strings are equal, in time independent of where they differ.
fn same(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len()
        && presented
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// State shared by the servers, the library handle and the fault handle.
pub(crate) struct State {
    /// The module auth tokens accepted: the current one and, during a rotation, the previous.
    tokens: RwLock<Accepted>,
    pub(crate) long_poll_timeout: Duration,
    jobs: Mutex<Jobs>,
    job_ready: Notify,
    pub(crate) counters: Counters,
    schemas: watch::Sender<Option<serde_json::Value>>,
    /// Bumped whenever open long-polls must end now (the server goes down or shuts down).
    interrupt: watch::Sender<u64>,
    closed: AtomicBool,
    pub(crate) faults: FaultState,
    ids: IdGen,
    /// When the first authenticated `GET job` arrived (startup-time benchmarks).
    first_poll: OnceLock<Instant>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("token", &"<redacted>")
            .field("long_poll_timeout", &self.long_poll_timeout)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections never panic half-way, so a poisoned lock still holds consistent data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    pub(crate) fn new(token: String, long_poll_timeout: Duration, ids: IdGen) -> Self {
        Self {
            tokens: RwLock::new(Accepted {
                current: token,
                previous: None,
            }),
            long_poll_timeout,
            jobs: Mutex::new(Jobs::default()),
            job_ready: Notify::new(),
            counters: Counters::default(),
            schemas: watch::channel(None).0,
            interrupt: watch::channel(0).0,
            closed: AtomicBool::new(false),
            faults: FaultState::default(),
            ids,
            first_poll: OnceLock::new(),
        }
    }

    /// Records an authenticated `GET job`: only the first one's time is kept.
    pub(crate) fn mark_poll(&self) {
        let _ = self.first_poll.get_or_init(Instant::now);
    }

    /// When the first authenticated `GET job` arrived, if one has.
    pub(crate) fn first_poll_at(&self) -> Option<Instant> {
        self.first_poll.get().copied()
    }

    fn tokens(&self) -> std::sync::RwLockReadGuard<'_, Accepted> {
        // Replaced field by field with plain assignments: a poisoned lock is still consistent.
        self.tokens.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current module auth token.
    pub(crate) fn token(&self) -> String {
        self.tokens().current.clone()
    }

    /// Whether `presented` is an accepted module auth token (compared in constant time).
    pub(crate) fn token_matches(&self, presented: &[u8]) -> bool {
        let tokens = self.tokens();
        same(presented, tokens.current.as_bytes())
            || tokens
                .previous
                .as_ref()
                .is_some_and(|p| same(presented, p.as_bytes()))
    }

    /// Starts a rotation: `new` becomes the current token; the old one is still accepted until
    /// [`State::end_rotation`].
    pub(crate) fn begin_rotation(&self, new: String) {
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::replace(&mut tokens.current, new);
        tokens.previous = Some(old);
    }

    /// Ends a rotation: only the current token is accepted from now on.
    pub(crate) fn end_rotation(&self) {
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .previous = None;
    }

    pub(crate) fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Queues a job and wakes one waiting long-poll.
    pub(crate) fn enqueue(&self, spec: JobSpec) -> String {
        self.enqueue_with(spec, None)
    }

    /// Queues a job whose result body is reported to `watcher` as it arrives (registered before
    /// the job can be handed out, so no byte is missed).
    pub(crate) fn enqueue_watched(
        &self,
        spec: JobSpec,
    ) -> (String, mpsc::UnboundedReceiver<Progress>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (self.enqueue_with(spec, Some(tx)), rx)
    }

    /// The watcher of a job in flight, if its caller asked for one.
    pub(crate) fn watcher(&self, job_id: &str) -> Option<mpsc::UnboundedSender<Progress>> {
        let jobs = lock(&self.jobs);
        let record = jobs.records.get(job_id)?;
        match record.state {
            JobState::InFlight => record.watcher.clone(),
            _ => None,
        }
    }

    fn enqueue_with(
        &self,
        spec: JobSpec,
        watcher: Option<mpsc::UnboundedSender<Progress>>,
    ) -> String {
        let mut jobs = lock(&self.jobs);
        let mut job_id = match &spec.job_id {
            Some(id) if !jobs.records.contains_key(id) && !jobs.is_retired(&self.ids, id) => {
                id.clone()
            }
            _ => self.ids.next(),
        };
        while jobs.records.contains_key(&job_id) {
            job_id = self.ids.next();
        }
        jobs.records.insert(
            job_id.clone(),
            JobRecord {
                function: spec.function.clone(),
                state: JobState::Queued(Box::new(spec)),
                waiters: Vec::new(),
                abandoned: false,
                watcher,
            },
        );
        jobs.queue.push_back(job_id.clone());
        drop(jobs);
        self.job_ready.notify_one();
        job_id
    }

    /// Hands out the oldest queued job, if any, and marks it in flight.
    pub(crate) fn take_next_job(&self) -> Option<HandedOut> {
        let mut jobs = lock(&self.jobs);
        if jobs.closed {
            return None;
        }
        let seq = jobs.next_seq;
        while let Some(job_id) = jobs.queue.pop_front() {
            let Some(record) = jobs.records.get_mut(&job_id) else {
                continue;
            };
            let spec = match std::mem::replace(&mut record.state, JobState::InFlight) {
                JobState::Queued(spec) => spec,
                other => {
                    // Cancelled while queued: skip it, keep its state.
                    record.state = other;
                    continue;
                }
            };
            jobs.next_seq += 1;
            jobs.in_flight.insert(job_id.clone(), seq);
            let in_flight = jobs.in_flight.len() as u64;
            drop(jobs);
            Counters::bump(&self.counters.jobs_handed_out);
            self.counters
                .max_in_flight
                .fetch_max(in_flight, Ordering::Relaxed);
            return Some(HandedOut { job_id, spec });
        }
        None
    }

    /// Waits (long-poll) until a job can be handed out, the long-poll timeout passes, or the
    /// server is interrupted. Cancel-safe: a job is only taken in the same poll that returns it.
    pub(crate) async fn next_job(&self) -> Option<HandedOut> {
        // Counted open from here until this returns or the request is dropped.
        let _open = OpenPoll::enter(&self.counters);
        let deadline = tokio::time::Instant::now() + self.long_poll_timeout;
        let mut interrupt = self.interrupt.subscribe();
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        loop {
            let notified = self.job_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(job) = self.take_next_job() {
                return Some(job);
            }
            if self.is_closed() {
                return None;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = &mut sleep => return None,
                _ = interrupt.changed() => return None,
            }
        }
    }

    /// Ends every open long-poll now (they answer 204).
    pub(crate) fn interrupt_polls(&self) {
        self.interrupt.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Records a posted result.
    pub(crate) fn accept_result(
        &self,
        job_id: &str,
        result: JobResult,
    ) -> Result<String, ResultRejection> {
        let mut jobs = lock(&self.jobs);
        let jobs = &mut *jobs;
        let Some(record) = jobs.records.get_mut(job_id) else {
            if jobs.is_retired(&self.ids, job_id) {
                return Err(ResultRejection::Duplicate { function: None });
            }
            return Err(ResultRejection::Unknown);
        };
        let function = record.function.clone();
        match record.state {
            JobState::InFlight => {}
            JobState::Answered(_) => {
                return Err(ResultRejection::Duplicate {
                    function: Some(function),
                });
            }
            JobState::Dropped => return Err(ResultRejection::Dropped { function }),
            JobState::Queued(_) | JobState::Cancelled => {
                return Err(ResultRejection::NotHandedOut {
                    function,
                    state: record.state.describe(),
                });
            }
        }
        jobs.in_flight.remove(job_id);
        // Count before waking the waiter, so whoever received the result sees it counted.
        Counters::bump(&self.counters.results_accepted);
        if let Some(watcher) = record.watcher.take() {
            let _ = watcher.send(Progress::Accepted);
        }
        if record.abandoned {
            // Nobody will take it.
            jobs.retire(&self.ids, job_id);
        } else {
            record.state = JobState::Answered(result);
            record.wake();
        }
        Ok(function)
    }

    /// Drops every job in flight (restart notification); returns their ids in hand-out order.
    pub(crate) fn drop_in_flight(&self) -> Vec<String> {
        let mut jobs = lock(&self.jobs);
        let jobs = &mut *jobs;
        let mut dropped: Vec<(u64, String)> =
            jobs.in_flight.drain().map(|(id, seq)| (seq, id)).collect();
        dropped.sort_unstable();
        for (_, id) in &dropped {
            if let Some(record) = jobs.records.get_mut(id) {
                record.state = JobState::Dropped;
                record.watcher = None;
                record.wake();
            }
        }
        dropped.into_iter().map(|(_, id)| id).collect()
    }

    /// Takes the result of `job_id` if it is there, or registers a waiter for it.
    pub(crate) fn try_take_result(&self, job_id: &str) -> Result<TakeResult, LocalError> {
        let mut jobs = lock(&self.jobs);
        let closed = jobs.closed;
        let owned_id = job_id.to_owned();
        let Some(record) = jobs.records.get_mut(job_id) else {
            if jobs.is_retired(&self.ids, job_id) {
                return Err(LocalError::ResultTaken { job_id: owned_id });
            }
            return Err(LocalError::UnknownJob { job_id: owned_id });
        };
        let function = record.function.clone();
        let job_id = owned_id;
        match &mut record.state {
            JobState::Answered(_) => match jobs.retire(&self.ids, &job_id).map(|r| r.state) {
                Some(JobState::Answered(result)) => Ok(TakeResult::Ready(result)),
                _ => Err(LocalError::ResultTaken { job_id }),
            },
            JobState::Dropped => Err(LocalError::JobDropped { job_id, function }),
            JobState::Cancelled => Err(LocalError::JobCancelled { job_id, function }),
            JobState::Queued(_) | JobState::InFlight if closed => Err(LocalError::ShutDown),
            JobState::Queued(_) | JobState::InFlight => {
                let (tx, rx) = oneshot::channel();
                record.waiters.retain(|w| !w.is_closed());
                record.waiters.push(tx);
                Ok(TakeResult::Wait(rx))
            }
        }
    }

    /// The error for a `wait_result` that timed out, describing where the job is stuck.
    pub(crate) fn timeout_error(&self, job_id: &str, timeout: Duration) -> LocalError {
        let jobs = lock(&self.jobs);
        let (function, state) = jobs
            .records
            .get(job_id)
            .map(|r| (r.function.clone(), r.state.describe()))
            .unwrap_or_default();
        LocalError::Timeout {
            job_id: job_id.to_owned(),
            function,
            state,
            timeout,
        }
    }

    /// The caller of `job_id` gave up: a still-queued job is cancelled (never handed out), and a
    /// result that arrives later is acknowledged but not kept.
    pub(crate) fn abandon(&self, job_id: &str) {
        let mut jobs = lock(&self.jobs);
        let Some(record) = jobs.records.get_mut(job_id) else {
            return;
        };
        record.abandoned = true;
        match record.state {
            JobState::Queued(_) => {
                record.state = JobState::Cancelled;
                record.watcher = None;
                record.wake();
            }
            JobState::Answered(_) => {
                jobs.retire(&self.ids, job_id);
            }
            _ => {}
        }
    }

    /// The function a job was enqueued for, while the runtime holds its record (until its result
    /// is taken).
    pub(crate) fn function_of(&self, job_id: &str) -> Option<String> {
        lock(&self.jobs)
            .records
            .get(job_id)
            .map(|r| r.function.clone())
    }

    /// Jobs handed out and not yet answered, in hand-out order.
    pub(crate) fn in_flight(&self) -> Vec<InFlightJob> {
        let jobs = lock(&self.jobs);
        let mut list: Vec<(u64, InFlightJob)> = jobs
            .in_flight
            .iter()
            .map(|(id, seq)| {
                let function = jobs
                    .records
                    .get(id)
                    .map(|r| r.function.clone())
                    .unwrap_or_default();
                let job = InFlightJob {
                    job_id: id.clone(),
                    function,
                };
                (*seq, job)
            })
            .collect();
        list.sort_unstable_by_key(|(seq, _)| *seq);
        list.into_iter().map(|(_, job)| job).collect()
    }

    /// Number of jobs waiting to be handed out.
    pub(crate) fn queued(&self) -> usize {
        let jobs = lock(&self.jobs);
        jobs.queue
            .iter()
            .filter(|id| {
                jobs.records
                    .get(*id)
                    .is_some_and(|r| matches!(r.state, JobState::Queued(_)))
            })
            .count()
    }

    pub(crate) fn set_schemas(&self, schemas: serde_json::Value) {
        self.schemas.send_replace(Some(schemas));
    }

    pub(crate) fn schemas(&self) -> Option<serde_json::Value> {
        self.schemas.borrow().clone()
    }

    pub(crate) async fn wait_for_schemas(&self) -> Option<serde_json::Value> {
        let mut rx = self.schemas.subscribe();
        let found = rx.wait_for(Option::is_some).await.ok()?;
        found.clone()
    }

    /// Shuts the state down: open long-polls end, waiters get [`LocalError::ShutDown`].
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        {
            let mut jobs = lock(&self.jobs);
            jobs.closed = true;
            for record in jobs.records.values_mut() {
                record.wake();
            }
        }
        self.interrupt_polls();
        self.job_ready.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new("tok".into(), Duration::from_millis(50), IdGen::new())
    }

    fn result(id: &str, body: &[u8]) -> JobResult {
        JobResult {
            job_id: id.into(),
            body: body.to_vec(),
            content_type: None,
            chunked: false,
        }
    }

    #[test]
    fn job_life_cycle_and_rejections() {
        let s = state();
        let id = s.enqueue(JobSpec::new("f", serde_json::json!({"x": 1})));
        assert!(matches!(
            s.accept_result(&id, result(&id, b"1")),
            Err(ResultRejection::NotHandedOut { .. })
        ));
        let job = s.take_next_job().unwrap();
        assert_eq!(job.job_id, id);
        assert!(s.take_next_job().is_none());
        assert_eq!(s.in_flight().len(), 1);
        assert_eq!(s.accept_result(&id, result(&id, b"1")).unwrap(), "f");
        assert!(matches!(
            s.accept_result(&id, result(&id, b"2")),
            Err(ResultRejection::Duplicate { .. })
        ));
        assert_eq!(
            s.accept_result("nope", result("nope", b"")),
            Err(ResultRejection::Unknown)
        );
        match s.try_take_result(&id).unwrap() {
            TakeResult::Ready(r) => assert_eq!(r.body, b"1"),
            TakeResult::Wait(_) => panic!("result should be ready"),
        }
        assert!(matches!(
            s.try_take_result(&id),
            Err(LocalError::ResultTaken { .. })
        ));
        // The record is gone, but a late duplicate is still recognized.
        assert!(s.function_of(&id).is_none());
        assert_eq!(
            s.accept_result(&id, result(&id, b"3")),
            Err(ResultRejection::Duplicate { function: None })
        );
        let stats = s.stats();
        assert_eq!(stats.jobs_handed_out, 1);
        assert_eq!(stats.max_in_flight, 1);
    }

    #[test]
    fn cancelled_jobs_are_skipped() {
        let s = state();
        let a = s.enqueue(JobSpec::new("a", serde_json::Value::Null));
        let b = s.enqueue(JobSpec::new("b", serde_json::Value::Null));
        s.abandon(&a);
        assert_eq!(s.queued(), 1);
        assert_eq!(s.take_next_job().unwrap().job_id, b);
        assert!(matches!(
            s.try_take_result(&a),
            Err(LocalError::JobCancelled { .. })
        ));
    }

    #[test]
    fn envelope_has_the_protocol_shape() {
        let s = state();
        let mut spec = JobSpec::new("mul", serde_json::json!({"n": 4.0}));
        spec.user_id = Some("u1".into());
        let id = s.enqueue(spec);
        let job = s.take_next_job().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&job.envelope().unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "computeModuleJobV1", "computeModuleJobV1": {
                "jobId": id, "queryType": "mul", "query": {"n": 4.0},
                "temporaryCredentialsAuthToken": "", "authHeader": "", "userId": "u1"}})
        );
    }

    #[test]
    fn token_comparison() {
        let s = state();
        assert!(s.token_matches(b"tok"));
        assert!(!s.token_matches(b"tok "));
        assert!(!s.token_matches(b"toc"));
        assert!(!s.token_matches(b""));
    }

    #[test]
    fn a_rotation_accepts_both_tokens_until_it_ends() {
        let s = state();
        s.begin_rotation("new".to_owned());
        assert_eq!(s.token(), "new");
        assert!(s.token_matches(b"tok") && s.token_matches(b"new"));
        s.end_rotation();
        assert!(!s.token_matches(b"tok"));
        assert!(s.token_matches(b"new"));
    }
}
