//! The crate's error type: [`Error`], returned by [`run`](crate::run) and the runtime's APIs.

use crate::config::ConfigError;
use crate::registry::RegistryError;

/// Everything that can stop a module. Each variant's message names the environment variable,
/// file, alias or function involved and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The environment does not describe a usable Foundry runtime.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The registered functions are inconsistent (duplicate names, unsupported types).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The compute-module runtime could not be reached or answered something unusable.
    #[error("compute-module runtime: {0}")]
    Runtime(String),
    /// The local runtime could not be started.
    #[error("local runtime: {0}")]
    Local(String),
    /// An I/O error outside any request (for example writing to stdout).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result<T, cmod_runtime::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
