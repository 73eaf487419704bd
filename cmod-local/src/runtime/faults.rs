//! Fault injection: make the runtime misbehave on purpose, to test a module's retries, backoff
//! and error handling against real failures.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
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

    /// Clears every fault except an outage already in progress.
    pub fn clear(&self) {
        self.fail_next_results(0, 0);
        self.fail_next_polls(0, 0);
        self.fail_all_polls(None);
        self.delay_responses(Duration::ZERO);
    }
}
