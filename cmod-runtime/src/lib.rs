//! cmod runtime (crate docs are written in the README pass).
#![allow(missing_docs)]

pub mod auth;
mod client;
pub mod config;
pub mod context;
pub mod discovery;
pub mod env;
pub mod error;
pub mod foundry;
mod function_call;
pub mod invoke;
pub mod job_loop;
#[cfg(feature = "local")]
mod local;
pub mod logging;
pub mod pipeline;
pub mod registry;
mod run;
pub mod schema;
pub mod secret;
pub mod sources;
pub mod types;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use cmod_macros::{compute_function, pipeline};
pub use config::RuntimeConfig;
pub use context::Context;
pub use error::{Error, Result};
pub use foundry::{FoundryClient, FoundryError};
pub use invoke::{ErrorKind, JobError};
pub use job_loop::FunctionsRuntime;
pub use pipeline::{
    DatasetInput, DatasetOutput, MediaSetInput, MediaSetOutput, StreamInput, StreamOutput,
};
pub use registry::{FunctionDef, Registry};
pub use run::{print_schemas, run, shutdown_signal};
pub use secret::Secret;
pub use sources::{Source, Sources};
