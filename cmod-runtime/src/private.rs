//! Items used by code that `#[compute_function]` and `#[pipeline]` generate. Not public API:
//! anything here may change in any release.

pub use ::futures_util;
pub use ::inventory;
pub use ::schemars;
pub use ::serde;
pub use ::serde_json;
pub use ::tokio;
pub use ::tracing;

pub use crate::context::Context;
pub use crate::invoke::{ErrorKind, JobError, JobFuture, JobInput, Output};
pub use crate::registry::FunctionDef;
