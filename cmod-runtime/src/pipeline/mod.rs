//! Pipeline mode: `#[pipeline]`, the alias map, and dataset / stream / media-set handles.
//!
//! In pipeline mode Foundry sends no jobs: the module reads its configured inputs and writes
//! its outputs with the build token, so the build system tracks provenance (docs/protocol.md §5).
//!
//! ```no_run
//! use cmod_runtime::pipeline::{DatasetInput, DatasetOutput};
//! use cmod_runtime::pipeline;
//!
//! /// Copies every CSV file of `raw_orders` to `clean_orders`.
//! #[pipeline(input = "raw_orders", output = "clean_orders")]
//! async fn clean(raw: DatasetInput, out: DatasetOutput) -> Result<(), cmod_runtime::pipeline::PipelineError> {
//!     for file in raw.list_files(None).await? {
//!         let bytes = raw.read(&file.path).await?;
//!         out.write(&file.path, bytes).await?;
//!     }
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), cmod_runtime::Error> {
//!     cmod_runtime::run().await
//! }
//! ```
//!
//! # Binding aliases to parameters
//!
//! `#[pipeline(input = "a", output = "b", …)]` takes any number of `input` and `output` keys
//! (at least one of each). The aliases bind to the function's parameters **in order**: the
//! first key to the first parameter, the second key to the second, and so on. A parameter bound
//! to an `input` alias must be an input handle ([`DatasetInput`], [`StreamInput<T>`],
//! [`MediaSetInput`]), one bound to an `output` alias an output handle ([`DatasetOutput`],
//! [`StreamOutput<T>`], [`MediaSetOutput`]); anything else is a compile error. The function
//! must be an `async fn` returning `()` or `Result<(), E>` with `E: Display`; it stays an
//! ordinary function you can call from tests.
//!
//! One more key, optional and at most once: `after_success = "exit"` or
//! `after_success = "stay_alive"` chooses what the process does once the pipeline succeeded
//! (see [Lifecycle](#lifecycle), step 6; the `CMOD_PIPELINE_AFTER_SUCCESS` variable overrides
//! it).
//!
//! `transaction(alias = "append", …)` (optional) chooses the transaction type of dataset
//! outputs: each name is an `output` alias, each value `"snapshot"` (the default), `"append"` or
//! `"update"` (any case); see [Dataset output transactions](#dataset-output-transactions).
//!
//! And, when `cmod_runtime` is renamed or re-exported, `crate = "…"` (optional, at most once):
//! the path to it, as an absolute path like `"::my_cmod"` or `"crate::rt"`; the generated code
//! then uses that path instead of `::cmod_runtime`, as with `#[compute_function]`.
//!
//! # Lifecycle
//!
//! 1. `RESOURCE_ALIAS_MAP` (alias → `{rid, branch}`; branch defaults to `master`),
//!    `BUILD2_TOKEN`, and `FOUNDRY_SERVICE_DISCOVERY_V2` (or `FOUNDRY_URL`) are read; every
//!    problem is reported at once, naming the variable and file.
//! 2. Every declared alias must be in the map; otherwise one error lists the missing aliases and
//!    the available ones.
//! 3. Each handle is opened: inputs check that the resource is reachable (a resource the build
//!    token does not cover fails here, naming the alias and RID); dataset outputs get their
//!    transaction; media-set outputs theirs when the media set is transactional.
//! 4. The function runs.
//! 5. On success every output is committed, once, one after the other (see
//!    [several outputs](#several-outputs-commits-are-not-atomic)). On an error, a panic of the
//!    function ([`PipelineError::Panicked`]; caught, never left to unwind through the runtime), or
//!    when SIGTERM/SIGINT arrives first (the function's future is dropped,
//!    [`PipelineError::Cancelled`]), every output is aborted, each abort is logged at `ERROR` with
//!    the pipeline, alias and RID, and [`run`](crate::run) returns the error (the process exits
//!    non-zero).
//! 6. After success, in Foundry, the process stays alive (idle, having logged once that the
//!    pipeline completed) until SIGTERM, then exits 0: Foundry restarts replicas whose process
//!    exits, which would run the pipeline again. Local runs (`CMOD_LOCAL=1`) exit at once.
//!    `#[pipeline(…, after_success = "exit" | "stay_alive")]` chooses either, and the
//!    `CMOD_PIPELINE_AFTER_SUCCESS` variable (same values) overrides the attribute. When the
//!    functions-mode runtime variables are set too, the replica keeps polling them and answers
//!    every job with an error (`UnknownFunction`), so the platform sees a responsive replica.
//!
//! # Build token rotation
//!
//! The build token is read from the `BUILD2_TOKEN` file whenever the file changes (size,
//! modification time or inode), not only at startup, and every request — commit and abort
//! included — uses the current token. A request answered 401 re-reads the file and is retried
//! once (a streamed upload cannot be replayed: it fails, and the next request uses the new
//! token). A token still refused fails with [`PipelineError::TokenRefused`], naming the alias and
//! RID.
//!
//! A pipeline that follows a stream ([`StreamInput::follow`]) is not cut short by SIGTERM/SIGINT:
//! its followed streams end at their next request (committing what was processed), and it gets
//! 20 seconds to return; returning `Ok` then commits its outputs as in step 5 and the process
//! exits 0. See [`Follow`] for the resume and delivery guarantees.
//!
//! # Dataset output transactions
//!
//! A [`DatasetOutput`] writes into one transaction. If the build system already opened one on
//! the output's branch, uploads go into it and it is **not** committed by the module: the build
//! system owns it and commits it when the pipeline completes. The module pages through every
//! transaction of `GET /v2/datasets/{rid}/transactions?preview=true` (following
//! `nextPageToken`) and takes the newest `OPEN` one **of the output's branch**: a transaction
//! that names its branch must name the output's; one that does not (Foundry's `Transaction` has
//! no branch field) must be the branch's current transaction
//! (`GET /v2/datasets/{rid}/branches/{branch}`). An `OPEN` transaction of another branch is never
//! written into; when the branch cannot be checked, none is reused. Otherwise the handle opens a
//! transaction of the type `#[pipeline(transaction(…))]` asks for ([`TransactionType`]) and
//! commits it when the function returns `Ok`:
//!
//! * `SNAPSHOT` (default): the output's files become exactly the files written by this run;
//! * `APPEND`: this run's files are added to the view (Foundry fails the commit if one has the
//!   path of a file already there; typed writers name their files uniquely per transaction);
//! * `UPDATE`: added too, and a file may replace one of the same path.
//!
//! A reused build-system transaction keeps the type the build gave it; when it differs from the
//! one asked for, a WARN line says so and [`DatasetOutput::transaction_type`] reports the
//! actual one.
//! Either way, on failure or cancellation the transaction is aborted, so a half-written output
//! is never committed. An output with a [`FileWriter`] dropped before
//! [`finish`](FileWriter::finish), or a failed upload that was not redone, is aborted too and
//! the run fails with [`PipelineError::Incomplete`].
//!
//! # Typed tables
//!
//! With the `tables` feature, datasets are tables of your own types
//! (`DatasetInput::rows::<T>()`, `DatasetOutput::rows::<T>()`): see the `table` API —
//! `TableRead` (reads: Parquet directly, other files through `readTable?format=ARROW`, column
//! projection, transaction ranges, bounded memory), `TableWriter` (Parquet row groups and files
//! at size bounds, the schema written with `putSchema` in the output's transaction) and
//! `table_schema` (the Foundry schema of a row type).
//!
//! Stream records are visible as soon as they are published: streams have no transactions, so
//! a failed run cannot take back what it published (and a re-run may publish duplicates).
//!
//! # Several outputs: commits are not atomic
//!
//! Foundry has no transaction spanning several datasets or media sets, so the outputs of one run
//! are committed one after the other, in the order of the `output = "…"` keys, and committing
//! stops at the first failure. When output 1 commits and output 2's commit then fails:
//!
//! * **output 1 stays committed.** Its new contents are visible to readers and downstream
//!   builds although the run fails; the module does not roll it back (a later run's
//!   transaction supersedes it).
//! * output 2 is aborted, on a best-effort basis. Its commit request was retried on transient
//!   failures (HTTP 429/502/503/504, connect errors) before giving up. If the commit timed out
//!   or the connection broke *after* Foundry applied it, output 2 may in fact be committed
//!   although the run reports the failure; the abort then finds the transaction closed (or
//!   fails, which is logged) and changes nothing.
//! * every later output is aborted, never committed; so is a build system's transaction that an
//!   earlier output wrote into (it is never committed by the module, but once the run fails it is
//!   not left for the build system to commit either).
//! * the run fails with [`PipelineError::PartiallyCommitted`], which lists the outputs already
//!   committed and carries the commit error (a plain commit error when nothing was committed
//!   yet); every abort is logged at `ERROR` with its alias and RID; the process exits non-zero,
//!   so the build is marked failed.
//!
//! Writes with no transaction at all — stream records, and uploads to a media set without
//! transactions — are visible as soon as they are made, whatever happens to the other outputs.
//! Re-running the pipeline after a partial commit recomputes every output: snapshot outputs
//! are replaced as a whole, so the re-run converges, but downstream consumers may have read the
//! mixed state in between.

mod aliases;
mod api;
mod dataset;
mod error;
mod follow;
mod media;
mod reader;
mod replica;
mod stream;
#[cfg(feature = "tables")]
mod table;

#[cfg(feature = "local")]
pub(crate) mod local;

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

pub use aliases::{DEFAULT_BRANCH, RESOURCE_ALIAS_MAP_VAR, Resource, ResourceAliasMap};
pub use dataset::{DatasetInput, DatasetOutput, FileInfo, FileWriter, TransactionType};
pub use error::{PipelineError, ResourceKind, ResourceRef};
pub use follow::{Follow, FollowOptions, StartPosition};
pub use media::{MediaSetInput, MediaSetOutput};
pub use reader::FileReader;
pub(crate) use replica::run_replica;
pub use replica::{AFTER_SUCCESS_VAR, AfterSuccess};
pub use stream::{Record, RecordCursor, StreamInput, StreamOutput};
#[cfg(feature = "tables")]
pub use table::{
    DECIMAL_PRECISION, DECIMAL_SCALE, DEFAULT_BATCH_ROWS, DatasetSchema, FieldSchema, FieldType,
    TableRead, TableWriteOptions, TableWriter, TableWritten, table_schema,
};

use crate::auth::{AuthError, Credentials, PipelineToken};
use crate::config::{ConfigError, Problem};
use crate::foundry::FoundryClient;
use api::Api;

/// One alias declared by `#[pipeline]`, with the kind of handle bound to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AliasDef {
    /// The alias.
    pub alias: &'static str,
    /// The kind of resource the bound handle reads or writes.
    pub kind: ResourceKind,
}

/// The future a generated pipeline runner returns.
pub type PipelineFuture = Pin<Box<dyn Future<Output = Result<(), PipelineError>> + Send>>;

/// Everything the runtime knows about the `#[pipeline]` function. Generated by the macro; not
/// meant to be written by hand.
pub struct PipelineDef {
    /// The Rust name of the function.
    pub name: &'static str,
    /// `module_path!()` of the function.
    pub module_path: &'static str,
    /// Source file of the function.
    pub file: &'static str,
    /// Source line of the function.
    pub line: u32,
    /// The input aliases, in declaration order.
    pub inputs: &'static [AliasDef],
    /// The output aliases, in declaration order.
    pub outputs: &'static [AliasDef],
    /// Opens every handle and calls the function.
    pub run: fn(PipelineContext) -> PipelineFuture,
    /// `after_success = "…"` of the attribute: what the process does once the pipeline
    /// succeeded (`None`: the default of the environment; see [`AfterSuccess`]).
    pub after_success: Option<AfterSuccess>,
    /// `transaction(alias = "…")` of the attribute: the transaction type of each dataset output
    /// named there (the others open `SNAPSHOT` transactions).
    pub transactions: &'static [(&'static str, TransactionType)],
}

impl PipelineDef {
    /// `path::to::fn (src/main.rs:12)`: where the pipeline is defined.
    pub fn location(&self) -> String {
        format!(
            "{}::{} ({}:{})",
            self.module_path, self.name, self.file, self.line
        )
    }

    /// Every declared alias: inputs, then outputs.
    pub fn aliases(&self) -> impl Iterator<Item = &'static AliasDef> {
        self.inputs.iter().chain(self.outputs.iter())
    }
}

impl fmt::Debug for PipelineDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineDef")
            .field("location", &self.location())
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

inventory::collect!(PipelineDef);

/// Names the [`PipelineDef`] generated by `#[pipeline]` for a function, to run that pipeline
/// explicitly (for example in a test binary that links several):
/// `run_pipeline(cmod_runtime::pipeline_def!(my_mod::clean), shutdown)`.
#[macro_export]
macro_rules! pipeline_def {
    ($($path:ident)::+) => {
        &$($path)::+::__CMOD_PIPELINE_DEF
    };
}

/// The `#[pipeline]` linked into this binary: `Ok(None)` when there is none, an error naming
/// both when there are several.
pub(crate) fn registered() -> Result<Option<&'static PipelineDef>, PipelineError> {
    let mut found: Option<&'static PipelineDef> = None;
    for def in inventory::iter::<PipelineDef> {
        match found {
            Some(first) if !std::ptr::eq(first, def) => {
                let (a, b) = if first.location() <= def.location() {
                    (first, def)
                } else {
                    (def, first)
                };
                return Err(PipelineError::MultiplePipelines {
                    first: a.location(),
                    second: b.location(),
                });
            }
            _ => found = Some(def),
        }
    }
    Ok(found)
}

/// Whether the environment looks like pipeline mode (`BUILD2_TOKEN` or `RESOURCE_ALIAS_MAP`
/// set).
pub(crate) fn has_pipeline_environment(lookup: &dyn Fn(&str) -> Option<String>) -> bool {
    [crate::auth::PIPELINE_TOKEN_VAR, RESOURCE_ALIAS_MAP_VAR]
        .iter()
        .any(|v| crate::config::var(lookup, v).is_some())
}

/// What committing or aborting one output did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// The output's transaction was committed (or aborted) as asked.
    Done,
    /// The transaction belongs to the build system, which commits it; left open.
    LeftToBuildSystem,
    /// The output has no transaction (a media set without transactions): its writes were
    /// visible at once.
    NoTransaction,
    /// The transaction was already committed or aborted earlier.
    AlreadyDone,
}

/// An output whose transaction is finished when the pipeline ends.
pub(crate) trait Finalize: Send + Sync {
    /// The output.
    fn resource(&self) -> &ResourceRef;
    /// Makes the output's writes visible (or leaves them to the build system).
    fn commit(&self) -> BoxFuture<'_, Result<Closed, PipelineError>>;
    /// Discards the output's writes (when it has a transaction).
    fn abort(&self) -> BoxFuture<'_, Result<Closed, PipelineError>>;
}

/// What the generated code opens handles with. Not public API.
#[derive(Clone)]
pub struct PipelineContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    pipeline: &'static str,
    transactions: &'static [(&'static str, TransactionType)],
    api: Api,
    aliases: ResourceAliasMap,
    outputs: Mutex<Vec<Arc<dyn Finalize>>>,
    /// Stops the followed streams at shutdown ([`follow`]).
    follow: Arc<follow::FollowControl>,
}

impl fmt::Debug for PipelineContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineContext")
            .field("pipeline", &self.inner.pipeline)
            .field("aliases", &self.inner.aliases)
            .finish_non_exhaustive()
    }
}

impl PipelineContext {
    fn new(
        pipeline: &'static str,
        client: FoundryClient,
        aliases: ResourceAliasMap,
        transactions: &'static [(&'static str, TransactionType)],
    ) -> Self {
        Self {
            inner: Arc::new(ContextInner {
                pipeline,
                transactions,
                api: Api::new(client),
                aliases,
                outputs: Mutex::new(Vec::new()),
                follow: follow::FollowControl::new(pipeline),
            }),
        }
    }

    /// The transaction type `#[pipeline(transaction(…))]` asks for an output alias.
    pub(crate) fn transaction_type(&self, alias: &str) -> TransactionType {
        self.inner
            .transactions
            .iter()
            .find(|(a, _)| *a == alias)
            .map(|(_, t)| *t)
            .unwrap_or_default()
    }

    pub(crate) fn api(&self) -> &Api {
        &self.inner.api
    }

    pub(crate) fn follow_control(&self) -> &Arc<follow::FollowControl> {
        &self.inner.follow
    }

    /// The resource of a declared alias.
    pub(crate) fn resource(
        &self,
        alias: &str,
        kind: ResourceKind,
    ) -> Result<ResourceRef, PipelineError> {
        let map = &self.inner.aliases;
        let r = map
            .get(alias)
            .ok_or_else(|| PipelineError::MissingAliases {
                pipeline: self.inner.pipeline.to_owned(),
                missing: vec![alias.to_owned()],
                available: map.aliases().map(str::to_owned).collect(),
                file: map.file().to_owned(),
            })?;
        Ok(ResourceRef {
            alias: alias.to_owned(),
            rid: r.rid.trim().to_owned(),
            branch: r.branch().to_owned(),
            kind,
        })
    }

    pub(crate) fn register_output(&self, output: Arc<dyn Finalize>) {
        self.outputs().push(output);
    }

    fn outputs(&self) -> std::sync::MutexGuard<'_, Vec<Arc<dyn Finalize>>> {
        // Pushes and clones only: a poisoned lock still holds a consistent list.
        self.inner
            .outputs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Commits every output in registration order (the order of the `output = "…"` keys) and
    /// stops at the first failure: the output whose commit failed, every later one and the
    /// build-system transactions written into are then aborted. Outputs committed before the
    /// failure stay committed (see the module docs, "Several outputs").
    async fn commit_all(&self) -> Result<(), PipelineError> {
        let pipeline = self.inner.pipeline;
        let outputs: Vec<_> = self.outputs().clone();
        let mut committed = Vec::new();
        let mut left_open = Vec::new();
        let mut remaining = outputs.iter();
        let failure = loop {
            let Some(output) = remaining.next() else {
                return Ok(());
            };
            let r = output.resource();
            match output.commit().await {
                Ok(Closed::Done) => {
                    tracing::info!(pipeline, alias = %r.alias, rid = %r.rid, "output committed");
                    committed.push(r.to_string());
                }
                Ok(Closed::LeftToBuildSystem) => left_open.push(output),
                Ok(Closed::AlreadyDone) => {}
                Ok(Closed::NoTransaction) => tracing::info!(
                    pipeline,
                    alias = %r.alias,
                    rid = %r.rid,
                    "output has no transaction: its writes are already visible"
                ),
                Err(e) => {
                    // The commit may not have happened: abort, so the transaction does not stay
                    // open. (If Foundry applied the commit but its answer was lost, the abort
                    // finds the transaction closed and changes nothing.)
                    self.abort_one(output.as_ref(), &e).await;
                    break e;
                }
            }
        };
        // Nothing this run wrote may be committed by anyone now: the build system's
        // transactions are aborted too.
        for output in left_open.into_iter().chain(remaining) {
            self.abort_one(output.as_ref(), &failure).await;
        }
        if committed.is_empty() {
            Err(failure)
        } else {
            Err(PipelineError::PartiallyCommitted {
                pipeline: pipeline.to_owned(),
                committed,
                source: Box::new(failure),
            })
        }
    }

    /// Aborts every output because of `cause`; each abort is logged at `ERROR` with the output's
    /// alias and RID (the run failed), and so is each abort that fails.
    async fn abort_all(&self, cause: &PipelineError) {
        let outputs: Vec<_> = self.outputs().clone();
        for output in &outputs {
            self.abort_one(output.as_ref(), cause).await;
        }
    }

    async fn abort_one(&self, output: &dyn Finalize, cause: &PipelineError) {
        let pipeline = self.inner.pipeline;
        let r = output.resource();
        match output.abort().await {
            Ok(Closed::NoTransaction) => tracing::error!(
                pipeline,
                alias = %r.alias,
                rid = %r.rid,
                error = %cause,
                "the pipeline failed; this output has no transaction, so its writes stay visible"
            ),
            Ok(_) => tracing::error!(
                pipeline,
                alias = %r.alias,
                rid = %r.rid,
                error = %cause,
                "output aborted: the pipeline failed"
            ),
            Err(e) => log_error(pipeline, &e),
        }
    }
}

/// Logs a pipeline error at `ERROR`, with the pipeline and, when the error is about one
/// resource, its alias and RID.
fn log_error(pipeline: &str, e: &PipelineError) {
    match e.resource() {
        Some(r) => {
            tracing::error!(pipeline, alias = %r.alias, rid = %r.rid, error = %e, "pipeline error");
        }
        None => tracing::error!(pipeline, error = %e, "pipeline error"),
    }
}

/// A handle that can be bound to an `input = "…"` alias of `#[pipeline]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be bound to an `input` alias of `#[pipeline]`",
    label = "this parameter is bound to an `input = \"…\"` alias",
    note = "aliases bind to the parameters in order; input parameters take `DatasetInput`, \
            `StreamInput<T>` or `MediaSetInput` (from `cmod_runtime::pipeline`)"
)]
pub trait InputHandle: Sized + Send + 'static {
    /// The kind of resource this handle reads.
    const KIND: ResourceKind;

    /// Opens the handle for `alias`. Called by the generated code.
    #[doc(hidden)]
    fn open(
        ctx: &PipelineContext,
        alias: &'static str,
    ) -> impl Future<Output = Result<Self, PipelineError>> + Send;
}

/// A handle that can be bound to an `output = "…"` alias of `#[pipeline]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be bound to an `output` alias of `#[pipeline]`",
    label = "this parameter is bound to an `output = \"…\"` alias",
    note = "aliases bind to the parameters in order; output parameters take `DatasetOutput`, \
            `StreamOutput<T>` or `MediaSetOutput` (from `cmod_runtime::pipeline`)"
)]
pub trait OutputHandle: Sized + Send + 'static {
    /// The kind of resource this handle writes.
    const KIND: ResourceKind;

    /// Opens the handle for `alias`. Called by the generated code.
    #[doc(hidden)]
    fn open(
        ctx: &PipelineContext,
        alias: &'static str,
    ) -> impl Future<Output = Result<Self, PipelineError>> + Send;
}

/// What a `#[pipeline]` function may return: `()` or `Result<(), E>` with `E: Display`.
#[diagnostic::on_unimplemented(
    message = "`#[pipeline]` functions must return `()` or `Result<(), E>` where `E: Display`, \
               not `{Self}`",
    label = "unsupported return type"
)]
pub trait PipelineReturn {
    /// The error message, if the function failed.
    fn into_failure(self) -> Option<String>;
}

impl PipelineReturn for () {
    fn into_failure(self) -> Option<String> {
        None
    }
}

impl<E: fmt::Display> PipelineReturn for Result<(), E> {
    fn into_failure(self) -> Option<String> {
        self.err().map(|e| format!("{e:#}"))
    }
}

/// Turns the function's return value into the runner's result. Called by the generated code.
#[doc(hidden)]
pub fn pipeline_result<R: PipelineReturn>(
    pipeline: &'static str,
    returned: R,
) -> Result<(), PipelineError> {
    match returned.into_failure() {
        None => Ok(()),
        Some(message) => Err(PipelineError::Failed {
            pipeline: pipeline.to_owned(),
            message,
        }),
    }
}

/// Reads the pipeline environment: the alias map, the build token and the Foundry client
/// (discovery, CA). Every problem is reported at once.
fn load_environment(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(ResourceAliasMap, FoundryClient), ConfigError> {
    let mut problems = Vec::new();
    let aliases = ResourceAliasMap::from_lookup(lookup)
        .map_err(|p| problems.push(p))
        .ok();
    let token = match PipelineToken::watch(lookup) {
        Ok(t) => Some(t),
        Err(AuthError::PipelineToken { message }) => {
            problems.push(Problem {
                var: crate::auth::PIPELINE_TOKEN_VAR.to_owned(),
                message: format!(
                    "{message}: pipeline mode needs the build token file Foundry mounts"
                ),
            });
            None
        }
        Err(e) => {
            problems.push(Problem {
                var: crate::auth::PIPELINE_TOKEN_VAR.to_owned(),
                message: e.to_string(),
            });
            None
        }
    };
    let client = FoundryClient::builder()
        .credentials(
            token
                .clone()
                .map_or(Credentials::None, Credentials::PipelineFile),
        )
        .build_from_lookup(lookup);
    let client = match client {
        Ok(c) => match c.api_url() {
            Ok(_) => Some(c),
            Err(_) => {
                problems.push(Problem {
                    var: crate::discovery::DISCOVERY_VAR.to_owned(),
                    message: "not set (nor FOUNDRY_URL): pipeline mode needs the Foundry API \
                              gateway URL (`api_gateway` in the service discovery file)"
                        .to_owned(),
                });
                None
            }
        },
        Err(e) => {
            problems.push(Problem {
                var: crate::discovery::DISCOVERY_VAR.to_owned(),
                message: e.to_string(),
            });
            None
        }
    };
    match (aliases, token, client) {
        (Some(a), Some(_), Some(c)) if problems.is_empty() => Ok((a, c)),
        _ => Err(ConfigError {
            problems,
            no_foundry_environment: false,
        }),
    }
}

/// Checks that every alias the pipeline declares is in the map.
fn check_aliases(def: &PipelineDef, map: &ResourceAliasMap) -> Result<(), PipelineError> {
    let missing: Vec<String> = def
        .aliases()
        .filter(|a| map.get(a.alias).is_none())
        .map(|a| a.alias.to_owned())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(PipelineError::MissingAliases {
        pipeline: def.name.to_owned(),
        missing,
        available: map.aliases().map(str::to_owned).collect(),
        file: map.file().to_owned(),
    })
}

/// Runs the pipeline against the environment's Foundry until it finishes or `shutdown`
/// completes: reads the alias map and the build token, resolves every alias, opens the handles,
/// runs the function, and commits the outputs on success or aborts them on an error or shutdown.
/// Returns once the run is over: staying alive after success (lifecycle step 6) is what
/// [`run`](crate::run) adds around it.
pub async fn run_pipeline(
    def: &'static PipelineDef,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), crate::Error> {
    run_pipeline_with(def, crate::env::lookup(), shutdown).await
}

/// [`run_pipeline`] with an explicit variable lookup.
pub async fn run_pipeline_with(
    def: &'static PipelineDef,
    lookup: &dyn Fn(&str) -> Option<String>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), crate::Error> {
    let (aliases, client) = load_environment(lookup)?;
    let result = run_with(def, aliases, client, shutdown).await;
    if let Err(e) = &result {
        log_error(def.name, e);
    }
    result.map_err(crate::Error::from)
}

async fn run_with(
    def: &'static PipelineDef,
    aliases: ResourceAliasMap,
    client: FoundryClient,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), PipelineError> {
    check_aliases(def, &aliases)?;
    for a in def.aliases() {
        if let Some(r) = aliases.get(a.alias) {
            tracing::info!(
                pipeline = def.name,
                alias = a.alias,
                rid = %r.rid,
                branch = r.branch(),
                kind = %a.kind,
                "resolved alias"
            );
        }
    }
    let ctx = PipelineContext::new(def.name, client, aliases, def.transactions);
    // A panic in the function (or while opening its handles) must not leave outputs open:
    // it is caught here and handled like an error.
    let run = AssertUnwindSafe(async { (def.run)(ctx.clone()).await }).catch_unwind();
    tokio::pin!(shutdown);
    tokio::pin!(run);
    let outcome = tokio::select! {
        biased;
        // A pipeline following streams ends them and gets a grace period to return.
        () = &mut shutdown => follow::after_shutdown(ctx.follow_control(), &mut run).await,
        r = &mut run => Some(r),
    };
    let failure = match outcome {
        Some(Ok(Ok(()))) => {
            ctx.commit_all().await?;
            tracing::info!(pipeline = def.name, "pipeline finished");
            return Ok(());
        }
        Some(Ok(Err(e))) => e,
        Some(Err(payload)) => PipelineError::Panicked {
            pipeline: def.name.to_owned(),
            message: crate::functions::call::panic_message(payload.as_ref()),
        },
        None => {
            tracing::warn!(
                pipeline = def.name,
                "shutdown signal received: cancelling the pipeline"
            );
            PipelineError::Cancelled {
                pipeline: def.name.to_owned(),
            }
        }
    };
    ctx.abort_all(&failure).await;
    Err(failure)
}
