//! [`LocalError`]: everything that can go wrong when starting or using the local runtime.

use std::path::PathBuf;
use std::time::Duration;

use crate::tls::TlsError;

/// An error from the local compute-module runtime's library API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// An option in [`LocalRuntimeOptions`](super::LocalRuntimeOptions) is invalid.
    #[error("invalid local runtime option `{option}`: {message}")]
    InvalidOption {
        /// The option's field name.
        option: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The runtime directory could not be created.
    #[error("could not create the local runtime directory {}: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The token or CA file could not be written.
    #[error("could not write the {what} file {}: {source}", path.display())]
    WriteFile {
        /// Which file (`module auth token` or `CA certificate`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A server could not bind its port.
    #[error(
        "could not bind the local {server} to 127.0.0.1:{port}: {source}{hint}",
        hint = if *port != 0 { " (is the port in use? use port 0 for any free port)" } else { "" }
    )]
    Bind {
        /// Which server (`runtime` or `invoke API`).
        server: &'static str,
        /// The requested port.
        port: u16,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The CA or server certificate could not be generated.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The operating system's random source failed.
    #[error(
        "the operating system's secure random source failed; cannot generate a module auth token"
    )]
    Random,
    /// No job with this id was ever enqueued on this runtime.
    #[error("unknown job id `{job_id}`: it was never enqueued on this local runtime")]
    UnknownJob {
        /// The job id.
        job_id: String,
    },
    /// No result arrived in time.
    #[error(
        "no result for job {job_id} (function `{function}`) within {timeout:?}: the job is still {state}{hint}",
        hint = match *state {
            "queued" => "; no module polled GET_JOB_URI for it (is the module running with this runtime's environment?)",
            "in flight" => "; the module took it but has not posted a result to POST_RESULT_URI",
            _ => "",
        }
    )]
    Timeout {
        /// The job id.
        job_id: String,
        /// The function the job calls.
        function: String,
        /// Where the job is: `queued` or `in flight`.
        state: &'static str,
        /// How long the caller waited.
        timeout: Duration,
    },
    /// The job's result was already returned by an earlier `wait_result`.
    #[error("the result of job {job_id} was already taken by an earlier wait_result call")]
    ResultTaken {
        /// The job id.
        job_id: String,
    },
    /// The job was dropped by a restart notification before a result arrived.
    #[error(
        "job {job_id} (function `{function}`) was dropped by a restart notification before its result was posted (did the module restart?)"
    )]
    JobDropped {
        /// The job id.
        job_id: String,
        /// The function the job calls.
        function: String,
    },
    /// The job was cancelled before it was handed out.
    #[error(
        "job {job_id} (function `{function}`) was cancelled by its caller before a module took it"
    )]
    JobCancelled {
        /// The job id.
        job_id: String,
        /// The function the job calls.
        function: String,
    },
    /// The module posted no schemas in time.
    #[error("the module posted no schemas to POST_SCHEMA_URI within {timeout:?}")]
    SchemasTimeout {
        /// How long the caller waited.
        timeout: Duration,
    },
    /// The runtime was shut down.
    #[error("the local runtime has shut down")]
    ShutDown,
    /// A result body is not JSON.
    #[error("the result of job {job_id} is not valid JSON: {source}")]
    ResultNotJson {
        /// The job id.
        job_id: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A result body is not UTF-8 text.
    #[error("the result of job {job_id} is not valid UTF-8: {source}")]
    ResultNotUtf8 {
        /// The job id.
        job_id: String,
        /// The decoding error.
        source: std::str::Utf8Error,
    },
}
