//! Graceful shutdown: no more polls; tell running functions (`Context::cancelled`); wait for
//! them for the grace period; then end the rest with one `Shutdown` error each.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long jobs that missed the grace period get to post their error results.
const ERROR_POST_DRAIN: Duration = Duration::from_secs(10);

/// A job whose result is posted but whose answer has not been read yet is still a task: it
/// gets this long (out of the grace period) to finish before the drain says what is still
/// running, so a job already answered is not announced as in flight.
const SETTLE: Duration = Duration::from_millis(100);

pub(crate) async fn drain(
    mut jobs: JoinSet<()>,
    stop: &watch::Sender<bool>,
    hard_stop: &watch::Sender<bool>,
    grace_period: Duration,
) {
    let _ = stop.send(true);
    let settle = SETTLE.min(grace_period);
    if tokio::time::timeout(settle, join_all(&mut jobs))
        .await
        .is_ok()
    {
        return;
    }
    // The signal itself was logged once ("shutting down", `run::shutdown_signal`).
    tracing::info!(
        in_flight = jobs.len(),
        grace_period_secs = grace_period.as_secs_f64(),
        "waiting for in-flight jobs"
    );
    let drained = tokio::time::timeout(grace_period - settle, join_all(&mut jobs)).await;
    if drained.is_err() {
        tracing::warn!(
            remaining = jobs.len(),
            "grace period over: posting Shutdown errors for unfinished jobs"
        );
        let _ = hard_stop.send(true);
        if tokio::time::timeout(ERROR_POST_DRAIN, join_all(&mut jobs))
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
}

async fn join_all(jobs: &mut JoinSet<()>) {
    while jobs.join_next().await.is_some() {}
}
