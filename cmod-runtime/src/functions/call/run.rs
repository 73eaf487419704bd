//! Running the user's function: boxing its future, sync functions on the blocking pool,
//! panics turned into results.

use std::any::Any;
use std::future::Future;

use crate::functions::outcome::{ErrorKind, JobError, JobFuture, Output};

/// Boxes the generated call future (and states, at the user's function, that it must be `Send`).
pub fn box_future<F>(future: F) -> JobFuture
where
    F: Future<Output = Result<Output, JobError>> + Send + 'static,
{
    Box::pin(future)
}

/// Runs a sync function on tokio's blocking pool so it never stalls the job loop. The job's
/// tracing span is entered on the blocking thread, so log lines from sync functions carry the
/// job id too. A panic is resumed on the calling task, where the job loop turns it into a
/// `Panic` result.
pub async fn run_blocking<F, R>(f: F) -> Result<R, JobError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(f)).await {
        Ok(r) => Ok(r),
        Err(e) => match e.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(_) => Err(cancelled()),
        },
    }
}

pub(super) fn cancelled() -> JobError {
    JobError::new(
        ErrorKind::Shutdown,
        "the runtime shut down before the function finished",
    )
}

/// The message of a panic payload (`&str` or `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

pub(super) fn panic_error(payload: &(dyn Any + Send)) -> JobError {
    JobError::new(
        ErrorKind::Panic,
        format!("the function panicked: {}", panic_message(payload)),
    )
}
