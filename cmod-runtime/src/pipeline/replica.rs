//! The lifecycle of a pipeline replica: what the process does once the pipeline succeeded.
//!
//! Foundry runs a pipeline-mode compute module as replicas and restarts a replica whose process
//! exits, so a process that exits after a successful run is run again and again (outputs
//! re-snapshotted, stream records re-published). In Foundry the replica therefore stays alive
//! after success — idle, having logged once that the pipeline completed — until SIGTERM, then
//! exits 0. Local runs (`CMOD_LOCAL=1`) exit as soon as the pipeline completed. Either default is
//! overridden by `#[pipeline(…, after_success = "exit" | "stay_alive")]`, and the attribute by
//! the `CMOD_PIPELINE_AFTER_SUCCESS` variable (`exit` | `stay_alive`; any other value is a
//! startup error). A failed run always aborts its outputs and exits non-zero.
//!
//! When the functions-mode runtime variables (`GET_JOB_URI`, `POST_RESULT_URI`, …) are set as
//! well, the replica polls them for as long as it runs (during the pipeline and while it stays
//! alive) and answers every job with one error result (`UnknownFunction`) saying that the module
//! runs a pipeline and serves no functions, so the platform sees a responsive replica. Variables
//! that are set but unusable (incomplete, invalid URI) are logged as a warning and the replica
//! does not poll: they never stop the pipeline.

use std::future::Future;
use std::time::Duration;

use crate::config::{ConfigError, Problem, RuntimeConfig};
use crate::functions::client::{Polled, RuntimeClient};
use crate::functions::{ErrorKind, JobError};
use crate::transport::Backoff;

use super::PipelineDef;

/// The variable that chooses what a replica does after a successful run (`exit` |
/// `stay_alive`); it overrides `#[pipeline(after_success = …)]`.
pub const AFTER_SUCCESS_VAR: &str = crate::env::vars::CMOD_PIPELINE_AFTER_SUCCESS;

/// What the process does once the pipeline completed successfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AfterSuccess {
    /// Return from [`run`](crate::run): the process exits 0 (the default on the local
    /// Foundry).
    Exit,
    /// Stay alive, idle, until SIGTERM/SIGINT, then exit 0 (the default in Foundry, which
    /// restarts replicas whose process exits).
    StayAlive,
}

impl AfterSuccess {
    /// Parses `exit` or `stay_alive` (case-insensitive, surrounding whitespace ignored).
    pub fn parse(value: &str) -> Option<AfterSuccess> {
        match value.trim().to_ascii_lowercase().as_str() {
            "exit" => Some(AfterSuccess::Exit),
            "stay_alive" => Some(AfterSuccess::StayAlive),
            _ => None,
        }
    }

    /// `exit` or `stay_alive`.
    pub fn as_str(self) -> &'static str {
        match self {
            AfterSuccess::Exit => "exit",
            AfterSuccess::StayAlive => "stay_alive",
        }
    }
}

/// The behaviour of this run: the variable, else the attribute, else the default of the
/// environment (`exit` locally, `stay_alive` in Foundry).
pub(crate) fn resolve(
    attribute: Option<AfterSuccess>,
    local: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<AfterSuccess, ConfigError> {
    if let Some(value) = crate::config::var(lookup, AFTER_SUCCESS_VAR) {
        return AfterSuccess::parse(&value).ok_or_else(|| ConfigError {
            problems: vec![Problem {
                var: AFTER_SUCCESS_VAR.to_owned(),
                message: format!(
                    "invalid value `{}`: expected `exit` (the process exits once the pipeline \
                     completed) or `stay_alive` (it stays alive until SIGTERM)",
                    value.trim()
                ),
            }],
            no_foundry_environment: false,
        });
    }
    Ok(attribute.unwrap_or(if local {
        AfterSuccess::Exit
    } else {
        AfterSuccess::StayAlive
    }))
}

/// Runs `def` as a replica: the pipeline (on the local Foundry when `local`), then, on success,
/// exit or stay alive until `shutdown` as [`resolve`] says. Answers functions-mode jobs with an
/// error meanwhile when the runtime variables are set (Foundry only).
pub(crate) async fn run_replica(
    def: &'static PipelineDef,
    local: bool,
    shutdown: impl Future<Output = ()> + Send,
) -> crate::Result<()> {
    let lookup = crate::env::lookup();
    let after = resolve(def.after_success, local, lookup)?;
    let jobs = if !local && crate::config::has_functions_environment(lookup) {
        // Polling is a courtesy to the platform: incomplete or invalid functions-mode variables
        // must not stop the pipeline, so they are logged and the replica does not poll.
        match RuntimeConfig::from_lookup(lookup)
            .map_err(crate::Error::from)
            .and_then(|config| RuntimeClient::new(&config))
        {
            Ok(client) => Some(client),
            Err(e) => {
                tracing::warn!(
                    pipeline = def.name,
                    error = %e,
                    "functions-mode variables are set but unusable: this pipeline replica will \
                     not poll for jobs"
                );
                None
            }
        }
    } else {
        None
    };
    tokio::pin!(shutdown);
    let (completed_tx, completed_rx) = tokio::sync::watch::channel(false);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let poller =
        jobs.map(|client| tokio::spawn(answer_jobs(client, def.name, completed_rx, stop_rx)));
    // A pipeline that follows streams returns `Ok` after SIGTERM (its followed streams end):
    // the signal is then already consumed and must neither be awaited again (an `async fn`
    // future panics when polled after completion) nor waited for a second time.
    let signalled = std::sync::atomic::AtomicBool::new(false);
    let result = run_once(def, local, async {
        shutdown.as_mut().await;
        signalled.store(true, std::sync::atomic::Ordering::SeqCst);
    })
    .await;
    let _ = completed_tx.send(true);
    let signalled = signalled.load(std::sync::atomic::Ordering::SeqCst);
    if result.is_ok() && after == AfterSuccess::StayAlive && !signalled {
        tracing::info!(
            pipeline = def.name,
            "pipeline completed; this replica stays alive (idle) until SIGTERM so the platform \
             does not run the pipeline again ({AFTER_SUCCESS_VAR}=exit to exit instead)"
        );
        shutdown.as_mut().await;
        tracing::debug!(pipeline = def.name, "replica stopping");
    }
    let _ = stop_tx.send(true);
    if let Some(task) = poller
        && tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .is_err()
    {
        tracing::warn!("the job poller did not stop within 5 s");
    }
    result
}

async fn run_once(
    def: &'static PipelineDef,
    local: bool,
    shutdown: impl Future<Output = ()> + Send,
) -> crate::Result<()> {
    if local {
        #[cfg(feature = "local")]
        return super::local::run_local_pipeline(def, shutdown).await;
        #[cfg(not(feature = "local"))]
        return Err(crate::Error::Usage(
            "this binary was built without cmod-runtime's `local` feature".into(),
        ));
    }
    super::run_pipeline(def, shutdown).await
}

/// The error every job gets.
fn job_error(pipeline: &str, query_type: &str, completed: bool) -> JobError {
    let state = if completed {
        "has completed"
    } else {
        "is running"
    };
    JobError::new(
        ErrorKind::UnknownFunction,
        format!(
            "this compute module runs in pipeline mode (pipeline `{pipeline}`, which {state}) and \
             serves no functions, so `{query_type}` cannot be called; call a compute module in \
             functions mode instead"
        ),
    )
}

/// Polls the runtime and answers each job with one error result until `stop`.
async fn answer_jobs(
    client: RuntimeClient,
    pipeline: &'static str,
    completed: tokio::sync::watch::Receiver<bool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut logged = false;
    loop {
        let polled = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            p = client.poll() => p,
        };
        let (job_id, query_type) = match polled {
            Ok(Polled::Job(job)) => (job.job_id, job.query_type),
            Ok(Polled::Malformed { job_id, .. }) => (job_id, "(undecodable job)".to_owned()),
            Ok(Polled::Empty) => {
                backoff.reset();
                continue;
            }
            Err(e) => {
                if !logged {
                    tracing::warn!(error = %e, "pipeline replica: polling the runtime failed");
                    logged = true;
                }
                let delay = backoff.next_delay();
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => return,
                    () = tokio::time::sleep(delay) => continue,
                }
            }
        };
        backoff.reset();
        logged = false;
        tracing::warn!(
            job_id = %job_id,
            function = %query_type,
            "a job reached a pipeline-mode module: answering it with an error"
        );
        let e = job_error(pipeline, &query_type, *completed.borrow());
        client.deliver_error(&job_id, &e).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(value: Option<&str>) -> impl Fn(&str) -> Option<String> {
        let value = value.map(str::to_owned);
        move |k| (k == AFTER_SUCCESS_VAR).then(|| value.clone()).flatten()
    }

    #[test]
    fn the_variable_overrides_the_attribute_which_overrides_the_default() {
        use AfterSuccess::*;
        assert_eq!(resolve(None, false, &lookup(None)).unwrap(), StayAlive);
        assert_eq!(resolve(None, true, &lookup(None)).unwrap(), Exit);
        assert_eq!(
            resolve(Some(StayAlive), true, &lookup(None)).unwrap(),
            StayAlive
        );
        assert_eq!(resolve(Some(Exit), false, &lookup(None)).unwrap(), Exit);
        assert_eq!(
            resolve(Some(Exit), false, &lookup(Some(" STAY_ALIVE\n"))).unwrap(),
            StayAlive
        );
        assert_eq!(
            resolve(Some(StayAlive), false, &lookup(Some("exit"))).unwrap(),
            Exit
        );
        // Empty counts as unset.
        assert_eq!(resolve(None, false, &lookup(Some(" "))).unwrap(), StayAlive);
    }

    #[test]
    fn an_invalid_value_names_the_variable_and_the_choices() {
        let err = resolve(None, false, &lookup(Some("forever")))
            .unwrap_err()
            .to_string();
        assert!(err.contains(AFTER_SUCCESS_VAR), "{err}");
        assert!(err.contains("`forever`"), "{err}");
        assert!(
            err.contains("`exit`") && err.contains("`stay_alive`"),
            "{err}"
        );
    }

    #[test]
    fn the_job_error_names_the_pipeline_and_the_function() {
        let e = job_error("clean", "add", true);
        assert_eq!(e.kind(), ErrorKind::UnknownFunction);
        assert!(e.message().contains("pipeline `clean`"), "{}", e.message());
        assert!(e.message().contains("`add`"), "{}", e.message());
        assert!(e.message().contains("has completed"), "{}", e.message());
    }
}
