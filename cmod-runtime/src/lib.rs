//! Typed Palantir Foundry compute modules in Rust.
//!
//! Annotate plain functions with [`#[compute_function]`](macro@compute_function) (functions mode)
//! or [`#[pipeline]`](macro@pipeline) (pipeline mode), and call [`run`] from `main`:
//!
//! ```no_run
//! use cmod_runtime::{compute_function, Context};
//!
//! /// Adds two integers.
//! #[compute_function]
//! fn add(x: i64, y: i64) -> i64 {
//!     x + y
//! }
//!
//! /// Greets someone by name.
//! #[compute_function(name = "greet")]
//! async fn hello(ctx: Context, name: String) -> Result<String, std::fmt::Error> {
//!     tracing::info!("greeting {name} in job {}", ctx.job_id());
//!     Ok(format!("Hello, {name}!"))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), cmod_runtime::Error> {
//!     cmod_runtime::run().await
//! }
//! ```
//!
//! * **Functions mode** ([`FunctionsRuntime`]): the module posts its schemas, then long-polls the
//!   runtime for jobs, runs at most `MAX_CONCURRENT_TASKS` at once, and posts exactly one result
//!   per job — the value, or `{"error": {"kind", "message"}}` ([`JobError`]) for a user error, a
//!   bad payload, an unknown function, a panic or a result that fails to serialize. Transient
//!   failures are retried with capped backoff; SIGTERM drains in-flight jobs.
//! * **Pipeline mode** ([`mod@pipeline`]): typed dataset / stream / media-set handles bound to the
//!   aliases of `RESOURCE_ALIAS_MAP`, authorized by `BUILD2_TOKEN`; outputs are committed on
//!   success and aborted on failure.
//! * **Platform access**: application permissions and the per-job user token ([`auth`],
//!   [`FoundryClient`]), sources ([`sources`]), service discovery ([`discovery`]).
//! * **Types**: the mapping from Rust types to Foundry's type system is in [`types`]; schemas can
//!   be printed with `--print-schemas` ([`print_schemas`]) and checked in a test with
//!   [`Registry::schemas`].
//! * **Logs** ([`logging`]): SLS JSON lines on stdout carrying `job_id`, `session_id` and
//!   `process_id`; readable lines locally.
//! * **Local runs**: `CMOD_LOCAL=1` (or `--local`) runs the module on `cmod-local`'s embedded
//!   runtime and local Foundry, over real TLS. It is never started implicitly.
//!
//! # Public API map
//!
//! One line per item a user touches; everything else is private.
//!
//! | Item | For |
//! |---|---|
//! | [`compute_function`], [`pipeline`](macro@pipeline) | the two entry-point attributes |
//! | [`run`], [`shutdown_signal`], [`print_schemas`] | `main`: pick the mode and serve |
//! | [`Context`], [`ContextBuilder`] | a job's id, user token, cancellation (`Context::for_test` in tests) |
//! | [`Error`], [`Result`] | what stops a module |
//! | [`JobError`], [`ErrorKind`] | a job's error result on the wire |
//! | [`Registry`], [`RegistryBuilder`], [`FunctionDef`], [`function!`] | the linked functions; schemas in tests |
//! | [`FunctionsRuntime`], [`RuntimeConfig`], [`config`] | running the job loop by hand |
//! | [`Output`], [`JobInput`], [`JobFuture`], [`RegistryError`], [`DEFAULT_GRACE_PERIOD`], [`GRACE_PERIOD_VAR`] | the job loop's types and settings |
//! | [`mod@pipeline`]: [`DatasetInput`], [`DatasetOutput`], [`StreamInput`], [`StreamOutput`], [`MediaSetInput`], [`MediaSetOutput`], `Follow`, `FollowOptions`, `PipelineError` | pipeline-mode handles |
//! | [`mod@pipeline`] (feature `tables`): `DatasetInput::rows`/`table`/`record_batches`, `DatasetOutput::rows` → `TableWriter`, `TableRead`, `TableWriteOptions`, `TableWritten`, `DatasetSchema`, `FieldSchema`, `FieldType`, `table_schema`; `TransactionType` (always) | typed tables and output transaction types |
//! | [`FoundryClient`], [`FoundryError`], [`mod@foundry`] | calling Foundry APIs |
//! | [`auth`] | the auth modes (`Credentials`, `PipelineToken`, `AppTokenProvider`) |
//! | [`Modules`], [`ModuleCallError`], [`ResultStream`] | calling another compute module's functions (`ctx.modules()`) |
//! | [`Scratch`], [`Ttl`], [`LockGuard`], [`ScratchError`] | Scratch: the distributed cache and lock (`SCRATCH_TOKEN`) |
//! | [`Sources`], [`Source`], [`sources`] | sources and their credentials |
//! | [`discovery`] | service discovery |
//! | [`schema`], [`types`] | Foundry's type system: `DataType`, `Date`, `Timestamp`, `Decimal`, `Binary` |
//! | [`logging`] | `SlsLayer` to compose your own subscriber |
//! | [`Secret`] | a redacted secret value |
//! | [`serde`], [`schemars`], [`serde_json`], [`tracing`], [`Stream`], [`StreamExt`], [`TryStreamExt`], [`stream`]; `arrow_array`, `arrow_schema` (feature `tables`) | what user code needs, re-exported (one dependency) |
//!
//! # Features
//!
//! * `local` (default): the embedded local runtime. Build production images with
//!   `default-features = false` to leave the local servers out of the binary.
//! * `tables`: typed tables — dataset rows in and out as your own types through Arrow record
//!   batches and Parquet files (see [`mod@pipeline`], "Typed tables"). Off by default: it
//!   compiles the Arrow and Parquet crates.
//! * `testing`: hooks for tests that run a module in-process against the local servers
//!   (`cmod_runtime::testing`); enable it in `[dev-dependencies]` only.

pub mod auth;
mod cli;
pub mod config;
mod context;
pub mod discovery;
mod env;
mod error;
pub mod foundry;
mod functions;
pub mod logging;
mod modules;
mod ontology;
pub mod pipeline;
mod run;
pub mod schema;
mod scratch;
mod secret;
mod server;
pub mod sources;
#[cfg(feature = "testing")]
pub mod testing;
mod transport;
pub mod types;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

#[doc = include_str!("compute_function.md")]
pub use cmod_macros::compute_function;
pub use cmod_macros::pipeline;
pub use config::RuntimeConfig;
pub use context::{Context, ContextBuilder};
pub use error::{Error, Result};
pub use foundry::{FoundryClient, FoundryError};
pub use functions::{
    DEFAULT_GRACE_PERIOD, ErrorKind, FunctionDef, FunctionsRuntime, GRACE_PERIOD_VAR, JobError,
    JobFuture, JobInput, Output, Registry, RegistryBuilder, RegistryError,
};
pub use modules::{ModuleCallError, Modules, ResultStream};
pub use ontology::{
    ObjectEdit, ObjectTypeMetadata, OntologyEdits, OntologyEditsError, OntologyMetadata,
    OntologyMetadataError,
};
pub use pipeline::{
    DatasetInput, DatasetOutput, MediaSetInput, MediaSetOutput, StreamInput, StreamOutput,
};
pub use run::{print_schemas, run, shutdown_signal};
pub use scratch::{LockGuard, Scratch, ScratchError, Ttl};
pub use secret::Secret;
pub use sources::{Source, Sources};

// Re-exports for a module's own code, so that `cmod-runtime` can be its one dependency besides
// tokio (README, "A new crate"). These are the same crates, and versions, the generated code
// uses: serde and schemars 1.x with their derives (through these paths with
// `#[serde(crate = "cmod_runtime::serde")]` and `#[schemars(crate = "cmod_runtime::schemars")]`),
// serde_json, tracing, and the `Stream` trait (with the `stream` constructors and combinators)
// that `impl Stream` streaming functions return.
/// Arrow arrays and record batches (feature `tables`): what
/// [`DatasetInput::record_batches`] yields.
#[cfg(feature = "tables")]
pub use ::arrow_array;
/// Arrow schemas and data types (feature `tables`).
#[cfg(feature = "tables")]
pub use ::arrow_schema;
pub use ::futures_util::stream::{self, Stream, StreamExt, TryStreamExt};
pub use ::schemars::{self, JsonSchema};
pub use ::serde::{self, Deserialize, Serialize};
pub use ::serde_json;
pub use ::tracing;
