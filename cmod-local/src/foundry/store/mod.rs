//! The local Foundry's data: datasets, streams and media sets, kept as plain files in one
//! directory so users can seed inputs with `cp` and inspect outputs with `cat`.
//!
//! ```text
//! <data dir>/
//!   datasets/<rid>/branches/<branch>/<path…>        committed files of a branch (seed here)
//!   datasets/<rid>/transactions/<txn rid>.json      transaction metadata (type, status, times)
//!   datasets/<rid>/transactions/<txn rid>/<path…>   files uploaded into an OPEN transaction
//!   datasets/<rid>/transactions/<txn rid>.deletes   paths an OPEN DELETE transaction removes
//!   datasets/<rid>/views/<branch>.json              the transaction that added each file of the view
//!   datasets/<rid>/schemas/<branch>/<txn rid>.json  the schema put for a transaction (putSchema)
//!   streams/<rid>/<branch>.jsonl                    one JSON record per line; offset = line number
//!   streams/<rid>/subscribers/<branch>/<id>.json    a stream subscriber (streams.rs)
//!   mediasets/<rid>/mediaset.json                   optional: {"transactionPolicy": "NO_TRANSACTIONS"}
//!   mediasets/<rid>/branches/<branch>/<path…>       committed media items
//!   mediasets/<rid>/transactions/<id>.json, <id>/   media-set transactions, as for datasets
//! ```
//!
//! A resource exists when its directory exists. Branch names are used as directory names with
//! `%` and `/` percent-encoded (`feature/x` → `feature%2Fx`).
//!
//! Committing a `SNAPSHOT` transaction replaces the branch's files with the transaction's;
//! `UPDATE` adds or replaces the uploaded files, `APPEND` only adds (committing fails with
//! `FileAlreadyExists` if a file is already in the view), `DELETE` removes files. An aborted transaction's files are
//! deleted; its metadata stays, so tests can see what happened. One transaction per dataset
//! branch may be open at a time (`OpenTransactionAlreadyExists`).
//!
//! Metadata changes (transactions, stream appends) are serialized by one lock; file contents are
//! streamed to and from disk without being held in memory.
//!
//! One file per kind of resource, matching the handlers in `foundry/`: [`datasets`] (branches,
//! files, transactions), [`schema`] (dataset schemas), [`streams`] (records, offsets index, subscribers), [`media`] (items,
//! media-set transactions). This file holds what they share: [`DataStore`], [`DataOptions`],
//! [`StoreError`], name and path checks, and the file helpers.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::oauth::random_uuid;

mod datasets;
mod media;
mod schema;
mod streams;

pub use datasets::{
    FileEntry, SEED_TRANSACTION_RID, Transaction, TransactionRange, TransactionType,
};
pub use media::MediaTransaction;
pub use schema::{DataframeReader, DatasetSchema, FieldSchema, FieldType, StoredSchema};
pub use streams::{Subscriber, SubscriberStart};

/// Options of the local Foundry's data endpoints.
#[derive(Debug, Clone)]
pub struct DataOptions {
    /// The data directory; `None` uses a `data` directory inside the local Foundry's directory
    /// (temporary unless `LocalFoundryOptions::dir` is set).
    pub dir: Option<PathBuf>,
    /// The largest page the list endpoints return, whatever `pageSize` asks for. Lower it in
    /// tests to force several pages.
    pub max_page_size: usize,
    /// Serve the public v2 dataset read endpoints (list files, file content). Turn off to make a
    /// client use the legacy catalog / data-proxy endpoints, as on a stack without the public API.
    pub public_dataset_reads: bool,
    /// Serve the high-scale stream API (`…/v2/highScale/streams/…`: publish, getRecords,
    /// getEndOffsets and the subscriber reads). Turn off to make a client use the legacy
    /// stream-proxy endpoints (`…/streams/{rid}/branches/{branch}/records`, `…/jsonRecord`).
    pub high_scale_streams: bool,
    /// Serve the stream subscriber API (create / get / delete a subscriber, read position,
    /// commit offsets). Turn off to test a client's fallback start position.
    pub stream_subscribers: bool,
}

impl Default for DataOptions {
    fn default() -> Self {
        Self {
            dir: None,
            max_page_size: 10_000,
            public_dataset_reads: true,
            high_scale_streams: true,
            stream_subscribers: true,
        }
    }
}

/// Why a data operation failed; mapped to Foundry's error names by the handlers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such resource, branch, file, transaction or item.
    #[error("{name}: {detail}")]
    NotFound {
        /// Foundry error name (`DatasetNotFound`, `FileNotFound`, …).
        name: &'static str,
        /// What was looked up.
        detail: String,
    },
    /// The request is invalid (bad path, bad transaction type, …).
    #[error("{name}: {detail}")]
    Invalid {
        /// Foundry error name.
        name: &'static str,
        /// Why.
        detail: String,
    },
    /// The request conflicts with the current state (transaction not open, one already open).
    #[error("{name}: {detail}")]
    Conflict {
        /// Foundry error name.
        name: &'static str,
        /// Why.
        detail: String,
    },
    /// A file-system error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

fn not_found(name: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::NotFound {
        name,
        detail: detail.into(),
    }
}

fn invalid(name: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        name,
        detail: detail.into(),
    }
}

fn conflict(name: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::Conflict {
        name,
        detail: detail.into(),
    }
}

/// The status of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionStatus {
    /// Accepting uploads.
    Open,
    /// Its files are part of the branch.
    Committed,
    /// Its files were discarded.
    Aborted,
}

/// The local data directory. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct DataStore {
    root: PathBuf,
    max_page_size: usize,
    public_dataset_reads: bool,
    lock: tokio::sync::Mutex<()>,
    /// Stream offsets index and the stream API switches ([`streams`]).
    streams: streams::StreamState,
}

impl From<StoreError> for super::LocalFoundryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Io { context, source } => super::LocalFoundryError::Io {
                context: format!("data directory: {context}"),
                source,
            },
            other => super::LocalFoundryError::Options(other.to_string()),
        }
    }
}

/// RFC 3339 UTC time with milliseconds.
/// The current time, RFC 3339 with microseconds, strictly increasing within the process: two
/// transactions created back to back never share a creation time, so listings ordered by it
/// (newest first, as Foundry orders them) are deterministic.
pub(crate) fn now() -> String {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(i64::MIN);
    let wall = chrono::Utc::now().timestamp_micros();
    let mut prev = LAST.load(Ordering::SeqCst);
    let micros = loop {
        // The wall clock, or the microsecond after the previous call's if that is later.
        let next = wall.max(prev.saturating_add(1));
        match LAST.compare_exchange(prev, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => break next,
            Err(actual) => prev = actual,
        }
    };
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_else(chrono::Utc::now)
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn mtime(meta: &std::fs::Metadata) -> String {
    meta.modified()
        .map(|t| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
        .unwrap_or_else(|_| now())
}

/// Encodes a branch name as one directory name.
pub(crate) fn branch_dir_name(branch: &str) -> String {
    branch.replace('%', "%25").replace('/', "%2F")
}

/// Checks a resource RID (one path component, no dot prefix).
fn check_rid(rid: &str) -> Result<(), StoreError> {
    if rid.is_empty()
        || rid.starts_with('.')
        || rid.contains(['/', '\\', '\0'])
        || rid.chars().any(char::is_control)
    {
        return Err(invalid(
            "InvalidResourceRid",
            format!("invalid RID `{rid}`"),
        ));
    }
    Ok(())
}

fn check_branch(branch: &str) -> Result<(), StoreError> {
    if branch.is_empty() || branch.starts_with('.') || branch.contains(['\0', '\\']) {
        return Err(invalid(
            "InvalidBranchName",
            format!("invalid branch `{branch}`"),
        ));
    }
    Ok(())
}

/// Checks a logical file path: relative, `/`-separated, no empty, `.` or `..` segments.
pub(crate) fn check_path(path: &str) -> Result<(), StoreError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains(['\0', '\\'])
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(invalid(
            "InvalidFilePath",
            format!("invalid file path `{path}`: use a relative path such as `dir/file.csv`"),
        ));
    }
    Ok(())
}

/// Writes `contents` to `path` atomically (temporary file + rename).
fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension(format!("tmp-{}", random_uuid()));
    std::fs::write(&tmp, contents).map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("renaming to {}", path.display())))
}

/// Creates a directory and its parents.
fn create_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))
}

/// Creates the parent directories of `path`.
fn create_parent(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(parent) => create_dir(parent),
        None => Ok(()),
    }
}

/// Writes a file, creating its directories.
fn write_file(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    create_parent(path)?;
    std::fs::write(path, contents).map_err(io(format!("writing {}", path.display())))
}

/// Moves `src` to `dst` (replacing it), creating `dst`'s directories.
fn move_file(src: &Path, dst: &Path) -> Result<(), StoreError> {
    create_parent(dst)?;
    std::fs::rename(src, dst).map_err(io(format!("moving {}", src.display())))
}

/// `result`, after deleting the received upload `tmp` when it is an error.
fn discard_upload_on_error<T>(tmp: &Path, result: Result<T, StoreError>) -> Result<T, StoreError> {
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// A JSON (de)serialization failure, as an I/O error of kind `InvalidData`.
fn invalid_data(context: String, e: serde_json::Error) -> StoreError {
    StoreError::Io {
        context,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, StoreError> {
    let text = std::fs::read(path).map_err(io(format!("reading {}", path.display())))?;
    serde_json::from_slice(&text)
        .map_err(|e| invalid_data(format!("parsing {}", path.display()), e))
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec_pretty(value).map_err(|e| invalid_data("serializing metadata".to_owned(), e))
}

/// The `*.json` files of a directory listing, parsed.
fn read_json_entries<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    entries: std::fs::ReadDir,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(format!("listing {}", dir.display())))?;
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "json") {
            out.push(read_json(&p)?);
        }
    }
    Ok(out)
}

/// `<id>.json` of a `transactions` directory; `TransactionNotFound` when there is none (`owner`
/// says whose transactions these are: `dataset <rid>`, `media set <rid>`).
fn read_transaction<T: for<'de> Deserialize<'de>>(
    transactions: &Path,
    id: &str,
    owner: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    let p = transactions.join(format!("{id}.json"));
    if !p.is_file() {
        return Err(not_found(
            "TransactionNotFound",
            format!("{} has no transaction {id}", owner()),
        ));
    }
    read_json(&p)
}

/// A new temporary file for an upload, in the `.uploads` directory of `transactions`.
fn upload_target_in(transactions: &Path) -> Result<PathBuf, StoreError> {
    let tmp_dir = transactions.join(".uploads");
    create_dir(&tmp_dir)?;
    Ok(tmp_dir.join(random_uuid()))
}

/// Every file under `dir`, as sorted `/`-separated relative paths with their metadata. Names
/// starting with `.` are skipped (temporary files).
fn walk(dir: &Path) -> Result<Vec<(String, std::fs::Metadata)>, StoreError> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_owned(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(format!("listing {}", d.display()))(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(format!("listing {}", d.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let meta = entry
                .metadata()
                .map_err(io(format!("reading {}", entry.path().display())))?;
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if meta.is_dir() {
                stack.push((entry.path(), rel));
            } else {
                out.push((rel, meta));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Moves every file under `from` into `to`, replacing existing files.
fn merge_into(from: &Path, to: &Path) -> Result<(), StoreError> {
    for (rel, _) in walk(from)? {
        move_file(&from.join(&rel), &to.join(&rel))?;
    }
    let _ = std::fs::remove_dir_all(from);
    Ok(())
}

/// One page of a listing: items and the token of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `pageToken` to get the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

impl DataStore {
    /// Opens (creating it if needed) the data directory.
    pub fn open(root: impl Into<PathBuf>, max_page_size: usize) -> Result<Self, StoreError> {
        let root = root.into();
        for sub in ["datasets", "streams", "mediasets"] {
            create_dir(&root.join(sub))?;
        }
        Ok(Self {
            root,
            max_page_size: max_page_size.max(1),
            public_dataset_reads: true,
            lock: tokio::sync::Mutex::new(()),
            streams: streams::StreamState::default(),
        })
    }

    /// Opens the data directory of `options` (or `default_dir` when it names none).
    pub fn with_options(default_dir: &Path, options: &DataOptions) -> Result<Self, StoreError> {
        let root = options
            .dir
            .clone()
            .unwrap_or_else(|| default_dir.to_owned());
        let mut store = Self::open(root, options.max_page_size)?;
        store.public_dataset_reads = options.public_dataset_reads;
        store.streams.high_scale = options.high_scale_streams;
        store.streams.subscribers = options.stream_subscribers;
        Ok(store)
    }

    /// Whether the public v2 dataset read endpoints are served ([`DataOptions`]).
    pub fn public_dataset_reads(&self) -> bool {
        self.public_dataset_reads
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The page size to use for a request asking for `requested` items.
    pub fn page_size(&self, requested: Option<usize>) -> usize {
        requested
            .unwrap_or(self.max_page_size)
            .clamp(1, self.max_page_size)
    }

    /// `<root>/<kind_dir>/<rid>` (with `rid` already checked), which must exist: otherwise the
    /// error `missing`, saying that the `what` does not exist.
    fn resource_dir(
        &self,
        kind_dir: &str,
        rid: &str,
        missing: &'static str,
        what: &str,
    ) -> Result<PathBuf, StoreError> {
        let d = self.root.join(kind_dir).join(rid);
        if !d.is_dir() {
            return Err(not_found(missing, format!("{what} {rid} does not exist")));
        }
        Ok(d)
    }
}

/// A store in a fresh temporary directory, for the tests of each part.
#[cfg(test)]
fn test_store(max_page_size: usize) -> (tempfile::TempDir, DataStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = DataStore::open(dir.path(), max_page_size).unwrap();
    (dir, s)
}
