//! One job: run its function (catching panics, honouring the hard stop) and deliver exactly
//! one result for it.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use tokio::sync::watch;
use tracing::Instrument;

use super::call::panic_message;
use super::client::{Delivery, Job, RuntimeClient, Target};
use super::outcome::{ErrorKind, JobError, JobInput, Output};
use super::registry::{FunctionDef, Registry};
use crate::context::Context;

/// What every job task shares with the loop.
pub(super) struct Shared {
    pub(super) client: RuntimeClient,
    pub(super) registry: Registry,
    /// Becomes `true` when shutdown starts (functions see it through their context).
    pub(super) stop: watch::Receiver<bool>,
    /// Becomes `true` when the grace period is over: running jobs end with `Shutdown`.
    pub(super) hard_stop: watch::Receiver<bool>,
}

/// Runs `job` and posts its one result to `url`, its result URL (built once, by the poll loop
/// when it checked the job can be answered).
pub(super) async fn run_job(shared: &Shared, job: Job, url: Target) {
    let span = tracing::info_span!("job", job_id = %job.job_id, function = %job.query_type);
    async {
        let started = std::time::Instant::now();
        let job_id = job.job_id.clone();
        let outcome = execute(shared, job, span.clone()).await;
        let mut kind = outcome.as_ref().err().map(JobError::kind);
        let mut message = outcome.as_ref().err().map(|e| e.message().to_owned());
        let delivery = if matches!(outcome, Ok(Output::Stream(_))) {
            // A streamed result is produced while it is delivered: the hard stop applies to
            // its delivery too. Dropping the post aborts it mid-body (the runtime records
            // nothing), and the job gets its one Shutdown error instead.
            let mut hard_stop = shared.hard_stop.clone();
            let stopped = tokio::select! {
                delivery = shared.client.deliver_to(&url, &job_id, outcome) => Some(delivery),
                _ = hard_stop.wait_for(|s| *s) => None,
            };
            match stopped {
                Some(delivery) => delivery,
                None => {
                    kind = Some(ErrorKind::Shutdown);
                    let error = shutdown_error();
                    message = Some(error.message().to_owned());
                    shared.client.deliver_error_to(&url, &job_id, &error).await
                }
            }
        } else {
            shared.client.deliver_to(&url, &job_id, outcome).await
        };
        match (kind, delivery) {
            (None, Delivery::Result) => tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "job succeeded"
            ),
            (Some(kind), Delivery::Error) => tracing::info!(
                error_kind = %kind,
                error_message = message.as_deref().unwrap_or_default(),
                "job failed"
            ),
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
        return Err(unknown_function(&shared.registry, &query_type));
    };
    let ctx = Context::builder(job_id)
        .function_name(query_type)
        .user_id(user_id)
        .auth_header(auth_header)
        .temporary_credentials_token(temporary_credentials_auth_token)
        .shutdown_signal(shared.stop.clone())
        .build();
    call_function(def, ctx, query, span, shared.hard_stop.clone()).await
}

/// The error of a job (or, in server mode, a request) naming a function the module lacks.
pub(crate) fn unknown_function(registry: &Registry, name: &str) -> JobError {
    let known: Vec<&str> = registry.functions().iter().map(|d| d.name).collect();
    JobError::new(
        ErrorKind::UnknownFunction,
        format!(
            "this module has no function named `{}`; it has: {}",
            name,
            known.join(", ")
        ),
    )
}

/// Runs one call of `def` on the caller's task: panics (building or polling the call) become
/// `Panic` errors, and `hard_stop` ends the call with a `Shutdown` error. Shared by the job loop
/// and server mode.
pub(crate) async fn call_function(
    def: &'static FunctionDef,
    ctx: Context,
    query: JobInput,
    span: tracing::Span,
    mut hard_stop: watch::Receiver<bool>,
) -> Result<Output, JobError> {
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
    tokio::select! {
        caught = call => caught.unwrap_or_else(|payload| Err(panicked(payload))),
        // Dropping the call cancels the function.
        _ = hard_stop.wait_for(|s| *s) => Err(shutdown_error()),
    }
}

pub(crate) fn shutdown_error() -> JobError {
    JobError::new(
        ErrorKind::Shutdown,
        "the module shut down before the function finished",
    )
}
