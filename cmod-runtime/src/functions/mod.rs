//! Functions mode: the job loop and everything a job goes through.
//!
//! | File | Owns |
//! |---|---|
//! | `job_loop.rs` | [`FunctionsRuntime`]: configuration, the loop's task, the grace period |
//! | `startup.rs` | posting the schemas, the restart notification |
//! | `poll_loop.rs` | one long-poll at a time with a free slot, spawning jobs, poll backoff |
//! | `job.rs` | one job: run the function (panics caught, hard stop), deliver one result |
//! | `drain.rs` | graceful shutdown: wait for jobs, then `Shutdown` errors |
//! | `client.rs` | the runtime client: poll, deliver (retries, stream replay), schemas, restart |
//! | `module_token.rs` | the `Module-Auth-Token` of the client: the `MODULE_AUTH_TOKEN` file watched, re-read after a 401/403 |
//! | `registry.rs` | [`Registry`] and [`FunctionDef`]: the functions a module serves |
//! | `call/` | what a generated `call` runs: decode, call, encode, stream; compile-time checks |
//! | `outcome.rs` | [`Output`] and [`JobError`]: what a job produces, on the wire |
//! | `local.rs` | local mode (`CMOD_LOCAL=1`): the embedded runtime and `--invoke` |

pub(crate) mod call;
pub(crate) mod client;
pub(crate) mod drain;
pub(crate) mod job;
pub(crate) mod job_loop;
#[cfg(feature = "local")]
pub(crate) mod local;
mod module_token;
pub(crate) mod outcome;
mod poll_loop;
pub(crate) mod registry;
mod startup;

pub use job_loop::{DEFAULT_GRACE_PERIOD, FunctionsRuntime, GRACE_PERIOD_VAR};
pub use outcome::{ErrorKind, JobError, JobFuture, JobInput, Output};
pub use registry::{FunctionDef, Registry, RegistryBuilder, RegistryError};
