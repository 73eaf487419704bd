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
pub mod invoke;
mod job_loop;
#[cfg(feature = "local")]
mod local;
pub mod logging;
pub mod pipeline;
pub mod registry;
pub mod schema;
pub mod secret;
pub mod sources;
pub mod types;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use cmod_macros::{compute_function, pipeline};
pub use context::Context;
pub use error::{Error, Result};
pub use invoke::{ErrorKind, JobError};
pub use registry::{FunctionDef, Registry};
pub use secret::Secret;
