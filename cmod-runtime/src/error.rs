//! The crate's error type: [`Error`], returned by [`run`](crate::run) and the runtime's APIs.

use crate::config::ConfigError;
use crate::functions::registry::RegistryError;

/// Everything that can stop a module. Each variant's message names the environment variable,
/// file, alias or function involved and says what to do.
///
/// `Debug` prints the same text as `Display` plus the chain of causes, so a `main` returning
/// `Result<(), cmod_runtime::Error>` exits with a readable message.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The environment does not describe a usable Foundry runtime.
    #[error(transparent)]
    Config(Box<ConfigError>),
    /// The registered functions are inconsistent (duplicate names, unsupported types).
    #[error(transparent)]
    Registry(Box<RegistryError>),
    /// The compute-module runtime could not be reached or answered something unusable.
    #[error("compute-module runtime: {0}")]
    Runtime(String),
    /// The local runtime could not be started.
    #[error("local runtime: {0}")]
    Local(String),
    /// A Foundry credential is unavailable or was refused (auth modes, token endpoint).
    #[error(transparent)]
    Auth(Box<crate::auth::AuthError>),
    /// The sources files are invalid, or a required source or secret is missing.
    #[error(transparent)]
    Source(Box<crate::sources::SourceError>),
    /// A Foundry API call failed.
    #[error(transparent)]
    Foundry(Box<crate::foundry::FoundryError>),
    /// A function called with `--invoke` returned an error result (the process exits non-zero).
    #[error("`{function}` returned an error ({kind}): {message}")]
    Invoke {
        /// The function called.
        function: String,
        /// The error result's `kind`.
        kind: String,
        /// The error result's `message`.
        message: String,
    },
    /// The command line was used wrongly.
    #[error("{0}")]
    Usage(String),
    /// A pipeline could not start, failed, or was cancelled; the message names the pipeline,
    /// alias and RID involved.
    #[error(transparent)]
    Pipeline(Box<crate::pipeline::PipelineError>),
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

// Large errors are boxed so `Result<T, Error>` stays small on the happy path; `?` still
// converts the unboxed errors.
macro_rules! boxed_from {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::$variant(Box::new(e))
            }
        }
    )*};
}

boxed_from!(
    Config(ConfigError),
    Registry(RegistryError),
    Auth(crate::auth::AuthError),
    Source(crate::sources::SourceError),
    Foundry(crate::foundry::FoundryError),
);

/// `Result<T, cmod_runtime::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            let text = s.to_string();
            if !self.to_string().contains(&text) {
                write!(f, "\n  caused by: {text}")?;
            }
            source = s.source();
        }
        Ok(())
    }
}
