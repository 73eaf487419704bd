//! [`PipelineError`]: everything that can stop a pipeline, naming the alias and RID involved.

use std::fmt;
use std::path::PathBuf;

use crate::auth::PIPELINE_TOKEN_VAR;
use crate::foundry::FoundryError;

/// What kind of resource an alias names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResourceKind {
    /// A dataset ([`DatasetInput`](super::DatasetInput), [`DatasetOutput`](super::DatasetOutput)).
    Dataset,
    /// A stream ([`StreamInput`](super::StreamInput), [`StreamOutput`](super::StreamOutput)).
    Stream,
    /// A media set ([`MediaSetInput`](super::MediaSetInput),
    /// [`MediaSetOutput`](super::MediaSetOutput)).
    MediaSet,
}

impl ResourceKind {
    /// `dataset`, `stream` or `media set`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Dataset => "dataset",
            ResourceKind::Stream => "stream",
            ResourceKind::MediaSet => "media set",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which resource an error is about: the alias, the RID and the kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    /// The alias declared in `#[pipeline]`.
    pub alias: String,
    /// The RID the alias map resolves it to.
    pub rid: String,
    /// The branch.
    pub branch: String,
    /// What it is.
    pub kind: ResourceKind,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} `{}` ({}, branch `{}`)",
            self.kind, self.alias, self.rid, self.branch
        )
    }
}

/// A pipeline failed. Every message names the pipeline, alias, RID, file or variable involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// Aliases declared by `#[pipeline]` are not in the alias map.
    #[error(
        "pipeline `{pipeline}` declares {} that {} not in RESOURCE_ALIAS_MAP ({}): {}; the map has: \
         {}. Configure the missing {} in the compute module's configuration, or fix the alias \
         in `#[pipeline(...)]`",
        plural(missing.len(), "alias", "aliases"),
        if missing.len() == 1 { "is" } else { "are" },
        file.display(),
        quoted(missing),
        if available.is_empty() { "no aliases".to_owned() } else { quoted(available) },
        plural(missing.len(), "alias", "aliases"),
    )]
    MissingAliases {
        /// The pipeline function.
        pipeline: String,
        /// The declared aliases missing from the map.
        missing: Vec<String>,
        /// The aliases the map has.
        available: Vec<String>,
        /// The alias map file.
        file: PathBuf,
    },
    /// A Foundry call about a resource failed.
    #[error("{resource}: {operation} failed: {source}{}", hint(source))]
    Foundry {
        /// The resource.
        resource: Box<ResourceRef>,
        /// What was being done (`listing files`, `reading file `a.csv``, …).
        operation: String,
        /// The Foundry error.
        #[source]
        source: FoundryError,
    },
    /// Foundry refused the build token (HTTP 401) for a resource, even after the `BUILD2_TOKEN`
    /// file was re-read (a rotated token is picked up and the request retried once).
    #[error(
        "{resource}: {operation} failed: Foundry refused the build token (HTTP 401) even after \
         {PIPELINE_TOKEN_VAR} was re-read; the token has expired or was revoked and the file \
         holds no newer one ({source})"
    )]
    TokenRefused {
        /// The resource.
        resource: Box<ResourceRef>,
        /// What was being done.
        operation: String,
        /// The 401 answer.
        #[source]
        source: FoundryError,
    },
    /// A stream record could not be decoded into the handle's record type.
    #[error(
        "{resource}: record at partition {partition} offset {offset} does not match the record \
         type: {message}"
    )]
    Decode {
        /// The resource.
        resource: Box<ResourceRef>,
        /// The partition.
        partition: u32,
        /// The record's offset.
        offset: u64,
        /// What did not match (with the field path).
        message: String,
    },
    /// A response from Foundry did not have the expected shape.
    #[error("{resource}: {operation}: unexpected response: {message}")]
    Protocol {
        /// The resource.
        resource: Box<ResourceRef>,
        /// What was being done.
        operation: String,
        /// What was wrong.
        message: String,
    },
    /// A record to publish could not be serialized.
    #[error("{resource}: a record could not be serialized: {message}")]
    Encode {
        /// The resource.
        resource: Box<ResourceRef>,
        /// The serializer's message.
        message: String,
    },
    /// A table row did not match the row type: a row read that cannot be decoded into `T`, or a
    /// row written that cannot be encoded in the table's columns. Names the file, the row (its
    /// index in that file, from 0) and the column when they are known.
    #[error(
        "{resource}: file `{file}`{}{}: {message}",
        row.map(|r| format!(", row {r}")).unwrap_or_default(),
        column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default(),
    )]
    Table {
        /// The resource.
        resource: Box<ResourceRef>,
        /// The dataset file read or written.
        file: String,
        /// The row's index in the file (from 0), when the problem is one row's.
        row: Option<u64>,
        /// The column (a path like `items.price` for nested fields), when known.
        column: Option<String>,
        /// What did not match.
        message: String,
    },
    /// A table's schema could not be derived from the row type, or a file's schema could not be
    /// read.
    #[error("{resource}: table schema of `{rust_type}`: {message}")]
    TableSchema {
        /// The resource.
        resource: Box<ResourceRef>,
        /// The row type.
        rust_type: String,
        /// What is wrong.
        message: String,
    },
    /// An output was left inconsistent (a file writer dropped before `finish`, a failed upload),
    /// so it was aborted instead of committed.
    #[error("{resource}: not committed: {detail}")]
    Incomplete {
        /// The resource.
        resource: Box<ResourceRef>,
        /// What was left unfinished.
        detail: String,
    },
    /// The pipeline function returned an error.
    #[error("pipeline `{pipeline}` failed: {message}")]
    Failed {
        /// The pipeline function.
        pipeline: String,
        /// The error it returned (its `Display`).
        message: String,
    },
    /// The pipeline function panicked. Its outputs were aborted.
    #[error("pipeline `{pipeline}` panicked: {message}; its outputs were aborted")]
    Panicked {
        /// The pipeline function.
        pipeline: String,
        /// The panic message (`(non-string panic payload)` when it was not a string).
        message: String,
    },
    /// The pipeline was cancelled by SIGTERM/SIGINT before it finished.
    #[error("pipeline `{pipeline}` was cancelled by a shutdown signal; its outputs were aborted")]
    Cancelled {
        /// The pipeline function.
        pipeline: String,
    },
    /// More than one `#[pipeline]` is linked into the binary.
    #[error(
        "more than one `#[pipeline]` is linked into this binary: {first} and {second}; a compute \
         module runs exactly one pipeline"
    )]
    MultiplePipelines {
        /// The first one found.
        first: String,
        /// The second one found.
        second: String,
    },
    /// Committing an output failed after earlier outputs had been committed. Those stay
    /// committed (Foundry has no transaction spanning several resources); the failed output and
    /// the later ones were aborted.
    #[error(
        "{source}; outputs pipeline `{pipeline}` committed before this failure stay committed: \
         {} (the failed output and any later ones were aborted)",
        committed.join(", ")
    )]
    PartiallyCommitted {
        /// The pipeline function.
        pipeline: String,
        /// The outputs committed before the failure (`dataset `alias` (rid, branch `b`)`).
        committed: Vec<String>,
        /// Why the next output could not be committed.
        #[source]
        source: Box<PipelineError>,
    },
    /// Several outputs could not be committed or aborted.
    #[error("{}", join_errors(.0))]
    Several(Vec<PipelineError>),
}

impl PipelineError {
    /// The resource this error is about, when it is about one.
    pub fn resource(&self) -> Option<&ResourceRef> {
        match self {
            PipelineError::Foundry { resource, .. }
            | PipelineError::TokenRefused { resource, .. }
            | PipelineError::Decode { resource, .. }
            | PipelineError::Protocol { resource, .. }
            | PipelineError::Encode { resource, .. }
            | PipelineError::Table { resource, .. }
            | PipelineError::TableSchema { resource, .. }
            | PipelineError::Incomplete { resource, .. } => Some(resource),
            PipelineError::PartiallyCommitted { source, .. } => source.resource(),
            _ => None,
        }
    }

    /// The HTTP status Foundry answered, when this is a Foundry error.
    pub fn status(&self) -> Option<u16> {
        match self {
            PipelineError::Foundry { source, .. } | PipelineError::TokenRefused { source, .. } => {
                source.status()
            }
            _ => None,
        }
    }

    /// Foundry's `errorName`, when this is a Foundry error that had one.
    pub fn error_name(&self) -> Option<&str> {
        match self {
            PipelineError::Foundry { source, .. } | PipelineError::TokenRefused { source, .. } => {
                source.api().and_then(|a| a.error_name.as_deref())
            }
            _ => None,
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn join_errors(errors: &[PipelineError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn hint(e: &FoundryError) -> &'static str {
    match e.status() {
        Some(403) => {
            " — the build token (BUILD2_TOKEN) only reaches the resources configured as inputs \
             and outputs of this compute module; check that this resource is configured for the \
             alias"
        }
        Some(404) => " — check the RID and branch in RESOURCE_ALIAS_MAP",
        _ => "",
    }
}

impl From<PipelineError> for crate::Error {
    fn from(e: PipelineError) -> Self {
        crate::Error::Pipeline(Box::new(e))
    }
}
