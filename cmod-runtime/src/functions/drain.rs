//! Graceful shutdown: no more polls; tell running functions (`Context::cancelled`); wait for
//! them for the grace period; then end the rest with one `Shutdown` error each.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long jobs that missed the grace period get to post their error results.
const ERROR_POST_DRAIN: Duration = Duration::from_secs(10);

pub(crate) async fn drain(
    mut jobs: JoinSet<()>,
    stop: &watch::Sender<bool>,
    hard_stop: &watch::Sender<bool>,
    grace_period: Duration,
) {
    let _ = stop.send(true);
    // Jobs whose result was just posted are finishing their task: let them, so the count
    // below is of jobs really still running.
    tokio::task::yield_now().await;
    while jobs.try_join_next().is_some() {}
    let in_flight = jobs.len();
    // The signal itself was logged once ("shutting down", `run::shutdown_signal`).
    if in_flight > 0 {
        tracing::info!(
            in_flight,
            grace_period_secs = grace_period.as_secs_f64(),
            "waiting for in-flight jobs"
        );
    }
    let drained = tokio::time::timeout(grace_period, join_all(&mut jobs)).await;
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
