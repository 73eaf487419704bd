//! Fault injection: make the runtime misbehave on purpose, to test a module's retries, backoff
//! and error handling against real failures.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::mpsc;

use super::state::State;
use super::supervisor::Command;

/// The fault settings the servers consult on every request.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    fail_results: AtomicUsize,
    fail_results_status: AtomicU16,
    fail_polls: AtomicUsize,
    fail_polls_status: AtomicU16,
    /// 0 = off, otherwise the status every poll gets.
    fail_all_polls: AtomicU16,
    delay_nanos: AtomicU64,
    early_results: AtomicUsize,
    early_results_status: AtomicU16,
    cut_results: AtomicUsize,
    cut_results_after: AtomicUsize,
    hold_results: AtomicUsize,
    hold_result_secs: AtomicU64,
    stall_results: AtomicUsize,
    redirect_results: AtomicUsize,
    redirect_polls: AtomicUsize,
    redirect_to: Mutex<Option<String>>,
}

/// What to do with a result post instead of (or before) accepting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResultFault {
    /// Answer with this status at once, without reading any of the body.
    Early(StatusCode),
    /// Read this many bytes of the body (or all of it, if shorter), then close the connection
    /// without a response.
    Cut(usize),
    /// Read the whole body, then answer nothing for this long (the connection stays open).
    Hold(Duration),
    /// Read none of the body and answer nothing for this long.
    Stall(Duration),
    /// Answer `307 Temporary Redirect` to this URL (the job id appended), body unread.
    Redirect(String),
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Decrements `counter` if it is positive; whether it was.
fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok()
}

impl FaultState {
    /// The status to answer this result post with instead of handling it, if a fault is armed.
    pub(crate) fn result_fault(&self) -> Option<StatusCode> {
        take_one(&self.fail_results)
            .then(|| status(self.fail_results_status.load(Ordering::Acquire)))
    }

    /// A fault that acts before the result body is read, if one is armed.
    pub(crate) fn early_result_fault(&self) -> Option<ResultFault> {
        if take_one(&self.redirect_results)
            && let Some(to) = self.redirect_target()
        {
            return Some(ResultFault::Redirect(to));
        }
        if take_one(&self.early_results) {
            return Some(ResultFault::Early(status(
                self.early_results_status.load(Ordering::Acquire),
            )));
        }
        if take_one(&self.cut_results) {
            return Some(ResultFault::Cut(
                self.cut_results_after.load(Ordering::Acquire),
            ));
        }
        let hold = Duration::from_secs(self.hold_result_secs.load(Ordering::Acquire));
        if take_one(&self.stall_results) {
            return Some(ResultFault::Stall(hold));
        }
        if take_one(&self.hold_results) {
            return Some(ResultFault::Hold(hold));
        }
        None
    }

    /// Where to redirect this poll, if a redirect is armed.
    pub(crate) fn poll_redirect(&self) -> Option<String> {
        if take_one(&self.redirect_polls) {
            return self.redirect_target();
        }
        None
    }

    fn redirect_target(&self) -> Option<String> {
        self.redirect_to
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The status to answer this poll with instead of handling it, if a fault is armed.
    pub(crate) fn poll_fault(&self) -> Option<StatusCode> {
        match self.fail_all_polls.load(Ordering::Acquire) {
            0 => take_one(&self.fail_polls)
                .then(|| status(self.fail_polls_status.load(Ordering::Acquire))),
            code => Some(status(code)),
        }
    }

    /// The latency to add before responding.
    pub(crate) fn delay(&self) -> Option<Duration> {
        match self.delay_nanos.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }
}

/// A handle to inject faults into a running [`LocalRuntime`](super::LocalRuntime), from
/// [`LocalRuntime::faults`](super::LocalRuntime::faults). Cheap to clone; every clone controls
/// the same runtime. Faults apply to the runtime (module-facing) server only, not to the invoke
/// API.
///
/// An injected error status is answered with a JSON body `{"error": "injected fault: …"}`, the
/// request body (if any) is read and discarded, and the request counts in
/// [`Stats::rejected_by_fault`](super::Stats::rejected_by_fault). Authentication is checked
/// first: a request with a wrong token still gets 401.
#[derive(Clone)]
pub struct Faults {
    state: Arc<State>,
    gate: Arc<AtomicBool>,
    commands: mpsc::WeakUnboundedSender<Command>,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faults")
            .field("state", &self.state.faults)
            .field("refusing", &self.gate.load(Ordering::Relaxed))
            .finish()
    }
}

impl Faults {
    pub(crate) fn new(
        state: Arc<State>,
        gate: Arc<AtomicBool>,
        commands: mpsc::WeakUnboundedSender<Command>,
    ) -> Self {
        Self {
            state,
            gate,
            commands,
        }
    }

    /// Takes the runtime server down for `d`: from the moment this returns, new connections and
    /// requests on open connections fail at the transport level (the server closes them, no
    /// HTTP response), open long-polls end with 204, and the listening socket is closed, so
    /// connecting gets "connection refused". When `d` has elapsed the server listens again on
    /// the **same** port. Calling it while already refusing extends the outage to the later of
    /// the two ends. Does nothing once the runtime has shut down.
    pub fn refuse_connections_for(&self, d: Duration) {
        let Some(commands) = self.commands.upgrade() else {
            tracing::warn!("refuse_connections_for: the local runtime has shut down");
            return;
        };
        self.gate.store(true, Ordering::Release);
        self.state.interrupt_polls();
        if commands.send(Command::Refuse(d)).is_err() {
            tracing::warn!("refuse_connections_for: the local runtime has shut down");
        }
    }

    /// Whether the runtime server is currently refusing connections.
    pub fn is_refusing(&self) -> bool {
        self.gate.load(Ordering::Acquire)
    }

    /// Answers the next `n` result posts with `status` (an invalid status code becomes 500). Those
    /// results are not recorded: the job stays in flight, so the module can post again.
    /// Replaces any earlier setting; `n = 0` clears it.
    pub fn fail_next_results(&self, n: usize, status: u16) {
        let f = &self.state.faults;
        f.fail_results_status.store(status, Ordering::Release);
        f.fail_results.store(n, Ordering::Release);
    }

    /// Answers the next `n` `GET job` requests with `status` at once (no job is handed out).
    /// Replaces any earlier setting; `n = 0` clears it.
    pub fn fail_next_polls(&self, n: usize, status: u16) {
        let f = &self.state.faults;
        f.fail_polls_status.store(status, Ordering::Release);
        f.fail_polls.store(n, Ordering::Release);
    }

    /// Answers every `GET job` with `status` until called with `None` (for backoff tests).
    /// Takes precedence over [`Faults::fail_next_polls`].
    pub fn fail_all_polls(&self, status: Option<u16>) {
        let code = status.map_or(0, |s| if s == 0 { 500 } else { s });
        self.state
            .faults
            .fail_all_polls
            .store(code, Ordering::Release);
    }

    /// Adds `d` of latency before every runtime response (a long-poll waits `d` plus its own
    /// timeout). `Duration::ZERO` clears it.
    pub fn delay_responses(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.state
            .faults
            .delay_nanos
            .store(nanos, Ordering::Relaxed);
    }

    /// Answers the next `n` result posts with `status` **before reading any of the body**, as
    /// a runtime or proxy that rejects (or accepts) a request early does. The result is not
    /// recorded; the server then closes the connection or discards the rest of the body, so a
    /// client still sending a streamed body sees its upload end early. `status` may be a 2xx:
    /// the runtime then says "accepted" for a body it never read (the job stays in flight).
    /// Replaces any earlier setting; `n = 0` clears it.
    pub fn answer_results_early(&self, n: usize, status: u16) {
        let f = &self.state.faults;
        f.early_results_status.store(status, Ordering::Release);
        f.early_results.store(n, Ordering::Release);
    }

    /// Cuts the next `n` result posts mid-body: the server reads `after_bytes` bytes of the body
    /// (all of it, if shorter), then closes the connection without a response, like a proxy
    /// that drops a connection. Nothing is recorded. Replaces any earlier setting.
    pub fn cut_results_mid_body(&self, n: usize, after_bytes: usize) {
        let f = &self.state.faults;
        f.cut_results_after.store(after_bytes, Ordering::Release);
        f.cut_results.store(n, Ordering::Release);
    }

    /// Reads the whole body of the next `n` result posts, then sends no response for `d` (the
    /// connection stays open), then closes the connection. Nothing is recorded: tests a
    /// module's wait for response headers. Replaces any earlier setting.
    pub fn hold_results(&self, n: usize, d: Duration) {
        let f = &self.state.faults;
        f.hold_result_secs
            .store(d.as_secs().max(1), Ordering::Release);
        f.hold_results.store(n, Ordering::Release);
    }

    /// Reads **none** of the body of the next `n` result posts and sends no response for `d`,
    /// then closes the connection: a runtime that stops consuming an upload. Nothing is
    /// recorded. Replaces any earlier setting (shares `d` with [`Faults::hold_results`]).
    pub fn stall_results(&self, n: usize, d: Duration) {
        let f = &self.state.faults;
        f.hold_result_secs
            .store(d.as_secs().max(1), Ordering::Release);
        f.stall_results.store(n, Ordering::Release);
    }

    /// Answers the next `results` result posts and the next `polls` `GET job` requests with
    /// `307 Temporary Redirect` to `to` (for result posts, with `/{jobId}` appended), without
    /// reading the body. A module must not follow it: credentials would leave for another
    /// server. Replaces any earlier setting.
    pub fn redirect_to(&self, to: &str, results: usize, polls: usize) {
        let f = &self.state.faults;
        *f.redirect_to.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(to.trim_end_matches('/').to_owned());
        f.redirect_results.store(results, Ordering::Release);
        f.redirect_polls.store(polls, Ordering::Release);
    }

    /// Clears every fault except an outage already in progress.
    pub fn clear(&self) {
        self.fail_next_results(0, 0);
        self.fail_next_polls(0, 0);
        self.fail_all_polls(None);
        self.delay_responses(Duration::ZERO);
        self.answer_results_early(0, 0);
        self.cut_results_mid_body(0, 0);
        self.hold_results(0, Duration::ZERO);
        self.stall_results(0, Duration::ZERO);
        self.redirect_to("", 0, 0);
    }
}
