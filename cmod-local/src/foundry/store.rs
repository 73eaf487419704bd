//! The local Foundry's data: datasets, streams and media sets, kept as plain files in one
//! directory so users can seed inputs with `cp` and inspect outputs with `cat`.
//!
//! ```text
//! <data dir>/
//!   datasets/<rid>/branches/<branch>/<path…>        committed files of a branch (seed here)
//!   datasets/<rid>/transactions/<txn rid>.json      transaction metadata (type, status, times)
//!   datasets/<rid>/transactions/<txn rid>/<path…>   files uploaded into an OPEN transaction
//!   streams/<rid>/<branch>.jsonl                    one JSON record per line; offset = line number
//!   streams/<rid>/subscribers/<branch>/<id>.json    a stream subscriber (store_streams.rs)
//!   mediasets/<rid>/mediaset.json                   optional: {"transactionPolicy": "NO_TRANSACTIONS"}
//!   mediasets/<rid>/branches/<branch>/<path…>       committed media items
//!   mediasets/<rid>/transactions/<id>.json, <id>/   media-set transactions, as for datasets
//! ```
//!
//! A resource exists when its directory exists. Branch names are used as directory names with
//! `%` and `/` percent-encoded (`feature/x` → `feature%2Fx`).
//!
//! Committing a `SNAPSHOT` transaction replaces the branch's files with the transaction's;
//! `UPDATE` and `APPEND` add or replace the uploaded files. An aborted transaction's files are
//! deleted; its metadata stays, so tests can see what happened. One transaction per dataset
//! branch may be open at a time (`OpenTransactionAlreadyExists`).
//!
//! Metadata changes (transactions, stream appends) are serialized by one lock; file contents are
//! streamed to and from disk without being held in memory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::oauth::random_uuid;

#[path = "store_streams.rs"]
mod streams;
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

/// The kind of a dataset transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionType {
    /// Replaces the branch's files.
    Snapshot,
    /// Adds or replaces files.
    Update,
    /// Adds files.
    Append,
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

/// A dataset transaction, as stored in `transactions/<rid>.json` and returned by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// `ri.foundry.main.transaction.<uuid>`.
    pub rid: String,
    /// The kind.
    pub transaction_type: TransactionType,
    /// The status.
    pub status: TransactionStatus,
    /// RFC 3339 creation time.
    pub created_time: String,
    /// RFC 3339 commit/abort time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_time: Option<String>,
    /// The branch it writes to (a local addition to Foundry's shape).
    pub branch_name: String,
}

/// A committed file of a dataset branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Logical path inside the dataset (`/`-separated, no leading slash).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// RFC 3339 modification time.
    pub updated_time: String,
    /// The last committed transaction of the branch (or a fixed seed RID for hand-seeded files).
    pub transaction_rid: String,
}

/// The transaction RID reported for files seeded by hand (no transaction committed yet).
pub const SEED_TRANSACTION_RID: &str =
    "ri.foundry.main.transaction.00000000-0000-0000-0000-000000000000";

/// A media-set transaction (`mediasets/<rid>/transactions/<id>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaTransaction {
    /// The transaction id (a UUID).
    pub id: String,
    /// The branch it writes to.
    pub branch_name: String,
    /// The status.
    pub status: TransactionStatus,
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
pub fn branch_dir_name(branch: &str) -> String {
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
pub fn check_path(path: &str) -> Result<(), StoreError> {
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

    // ---- datasets ------------------------------------------------------------------------

    fn dataset_dir(&self, rid: &str) -> Result<PathBuf, StoreError> {
        check_rid(rid)?;
        self.resource_dir("datasets", rid, "DatasetNotFound", "dataset")
    }

    fn branch_dir(&self, rid: &str, branch: &str) -> Result<PathBuf, StoreError> {
        check_branch(branch)?;
        Ok(self
            .dataset_dir(rid)?
            .join("branches")
            .join(branch_dir_name(branch)))
    }

    /// Creates a dataset with an empty `master` branch (no-op if it exists).
    pub fn create_dataset(&self, rid: &str) -> Result<(), StoreError> {
        check_rid(rid)?;
        let d = self.root.join("datasets").join(rid);
        for sub in ["branches/master", "transactions"] {
            create_dir(&d.join(sub))?;
        }
        Ok(())
    }

    /// Whether the dataset exists.
    pub fn dataset_exists(&self, rid: &str) -> bool {
        self.dataset_dir(rid).is_ok()
    }

    /// Writes a committed file directly (seeding), creating the dataset and branch if needed.
    pub fn put_file(
        &self,
        rid: &str,
        branch: &str,
        path: &str,
        contents: &[u8],
    ) -> Result<(), StoreError> {
        check_path(path)?;
        self.create_dataset(rid)?;
        write_file(&self.branch_dir(rid, branch)?.join(path), contents)
    }

    /// The on-disk location of a committed file (which may not exist).
    pub fn file_location(
        &self,
        rid: &str,
        branch: &str,
        path: &str,
    ) -> Result<PathBuf, StoreError> {
        check_path(path)?;
        Ok(self.branch_dir(rid, branch)?.join(path))
    }

    /// Reads a committed file whole (for tests and inspection).
    pub fn read_file(&self, rid: &str, branch: &str, path: &str) -> Result<Vec<u8>, StoreError> {
        let file = self.file_location(rid, branch, path)?;
        std::fs::read(&file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                not_found(
                    "FileNotFound",
                    format!("{rid}: no file `{path}` on branch `{branch}`"),
                )
            } else {
                io(format!("reading {}", file.display()))(e)
            }
        })
    }

    /// The committed file at `path` (size and times), for the metadata endpoint.
    pub fn file(&self, rid: &str, branch: &str, path: &str) -> Result<FileEntry, StoreError> {
        let location = self.file_location(rid, branch, path)?;
        let meta = std::fs::metadata(&location)
            .ok()
            // Anything but a directory: regular files, and named pipes (tests use a FIFO to
            // hold a read open).
            .filter(|m| !m.is_dir())
            .ok_or_else(|| {
                not_found(
                    "FileNotFound",
                    format!("{rid}: no file `{path}` on branch `{branch}`"),
                )
            })?;
        Ok(FileEntry {
            path: path.to_owned(),
            size: meta.len(),
            updated_time: mtime(&meta),
            transaction_rid: self.head_transaction(rid, branch)?,
        })
    }

    /// Lists the committed files of a branch whose path starts with `prefix`, one page at a
    /// time: `page_token` is the last path of the previous page.
    pub fn list_files(
        &self,
        rid: &str,
        branch: &str,
        prefix: Option<&str>,
        page_size: Option<usize>,
        page_token: Option<&str>,
    ) -> Result<Page<FileEntry>, StoreError> {
        let dir = self.branch_dir(rid, branch)?;
        if !dir.is_dir() {
            return Err(not_found(
                "BranchNotFound",
                format!("dataset {rid} has no branch `{branch}`"),
            ));
        }
        let head = self.head_transaction(rid, branch)?;
        let size = self.page_size(page_size);
        let mut items = Vec::new();
        let mut more = false;
        for (path, meta) in walk(&dir)? {
            if prefix.is_some_and(|p| !path.starts_with(p)) {
                continue;
            }
            if page_token.is_some_and(|t| path.as_str() <= t) {
                continue;
            }
            if items.len() == size {
                more = true;
                break;
            }
            items.push(FileEntry {
                size: meta.len(),
                updated_time: mtime(&meta),
                transaction_rid: head.clone(),
                path,
            });
        }
        let next_page_token = if more {
            items.last().map(|f: &FileEntry| f.path.clone())
        } else {
            None
        };
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// The newest committed transaction of the branch, or [`SEED_TRANSACTION_RID`].
    fn head_transaction(&self, rid: &str, branch: &str) -> Result<String, StoreError> {
        Ok(self
            .transactions(rid)?
            .into_iter()
            .find(|t| t.branch_name == branch && t.status == TransactionStatus::Committed)
            .map(|t| t.rid)
            .unwrap_or_else(|| SEED_TRANSACTION_RID.to_owned()))
    }

    /// The branch as Foundry's `GET /v2/datasets/{rid}/branches/{branch}` describes it: its most
    /// recent `OPEN` or `COMMITTED` transaction (never an aborted one), `None` when it has none.
    /// `BranchNotFound` when the branch has neither files nor transactions.
    pub fn branch_head(&self, rid: &str, branch: &str) -> Result<Option<String>, StoreError> {
        let dir = self.branch_dir(rid, branch)?;
        let transactions = self.transactions(rid)?;
        let head = transactions
            .iter()
            .find(|t| t.branch_name == branch && t.status != TransactionStatus::Aborted)
            .map(|t| t.rid.clone());
        if head.is_none() && !dir.is_dir() && !transactions.iter().any(|t| t.branch_name == branch)
        {
            return Err(not_found(
                "BranchNotFound",
                format!("{rid} has no branch `{branch}`"),
            ));
        }
        Ok(head)
    }

    /// Every transaction of the dataset, newest first.
    pub fn transactions(&self, rid: &str) -> Result<Vec<Transaction>, StoreError> {
        let dir = self.dataset_dir(rid)?.join("transactions");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("listing {}", dir.display()))(e)),
        };
        let mut out: Vec<Transaction> = read_json_entries(&dir, entries)?;
        out.sort_by(|a, b| b.created_time.cmp(&a.created_time).then(b.rid.cmp(&a.rid)));
        Ok(out)
    }

    /// One transaction.
    pub fn transaction(&self, rid: &str, txn: &str) -> Result<Transaction, StoreError> {
        check_rid(txn)?;
        read_transaction(&self.dataset_dir(rid)?.join("transactions"), txn, || {
            format!("dataset {rid}")
        })
    }

    fn save_transaction(&self, rid: &str, t: &Transaction) -> Result<(), StoreError> {
        let dir = self.dataset_dir(rid)?.join("transactions");
        create_dir(&dir)?;
        write_atomic(&dir.join(format!("{}.json", t.rid)), &to_json(t)?)
    }

    /// Opens a transaction on a branch (one open transaction per branch).
    pub async fn create_transaction(
        &self,
        rid: &str,
        branch: &str,
        transaction_type: TransactionType,
    ) -> Result<Transaction, StoreError> {
        let _guard = self.lock.lock().await;
        let branch_dir = self.branch_dir(rid, branch)?;
        if let Some(open) = self
            .transactions(rid)?
            .into_iter()
            .find(|t| t.branch_name == branch && t.status == TransactionStatus::Open)
        {
            return Err(conflict(
                "OpenTransactionAlreadyExists",
                format!(
                    "branch `{branch}` of {rid} already has open transaction {}",
                    open.rid
                ),
            ));
        }
        create_dir(&branch_dir)?;
        let t = Transaction {
            rid: format!("ri.foundry.main.transaction.{}", random_uuid()),
            transaction_type,
            status: TransactionStatus::Open,
            created_time: now(),
            closed_time: None,
            branch_name: branch.to_owned(),
        };
        let staged = self.dataset_dir(rid)?.join("transactions").join(&t.rid);
        create_dir(&staged)?;
        self.save_transaction(rid, &t)?;
        Ok(t)
    }

    fn open_transaction(&self, rid: &str, txn: &str) -> Result<Transaction, StoreError> {
        let t = self.transaction(rid, txn)?;
        if t.status != TransactionStatus::Open {
            return Err(conflict(
                "TransactionNotOpen",
                format!("transaction {txn} of {rid} is {:?}, not open", t.status),
            ));
        }
        Ok(t)
    }

    /// A temporary file for an upload into an open transaction; pass it to
    /// [`DataStore::finish_upload`] once fully written.
    pub fn upload_target(&self, rid: &str, txn: &str, path: &str) -> Result<PathBuf, StoreError> {
        check_path(path)?;
        self.open_transaction(rid, txn)?;
        upload_target_in(&self.dataset_dir(rid)?.join("transactions"))
    }

    /// Moves a fully received upload into the transaction (if it is still open).
    pub async fn finish_upload(
        &self,
        rid: &str,
        txn: &str,
        path: &str,
        tmp: &Path,
    ) -> Result<FileEntry, StoreError> {
        let _guard = self.lock.lock().await;
        let result = (|| {
            self.open_transaction(rid, txn)?;
            let dst = self
                .dataset_dir(rid)?
                .join("transactions")
                .join(txn)
                .join(path);
            move_file(tmp, &dst)?;
            let meta = std::fs::metadata(&dst).map_err(io(format!("reading {}", dst.display())))?;
            Ok(FileEntry {
                path: path.to_owned(),
                size: meta.len(),
                updated_time: mtime(&meta),
                transaction_rid: txn.to_owned(),
            })
        })();
        discard_upload_on_error(tmp, result)
    }

    /// Commits an open transaction: its files become the branch's (SNAPSHOT) or are added to it.
    pub async fn commit_transaction(
        &self,
        rid: &str,
        txn: &str,
    ) -> Result<Transaction, StoreError> {
        let _guard = self.lock.lock().await;
        let mut t = self.open_transaction(rid, txn)?;
        let ds = self.dataset_dir(rid)?;
        let staged = ds.join("transactions").join(txn);
        create_dir(&staged)?;
        let branch = self.branch_dir(rid, &t.branch_name)?;
        match t.transaction_type {
            TransactionType::Snapshot => {
                let trash = ds
                    .join("transactions")
                    .join(format!(".old-{}", random_uuid()));
                if branch.exists() {
                    std::fs::rename(&branch, &trash)
                        .map_err(io(format!("replacing {}", branch.display())))?;
                }
                create_parent(&branch)?;
                std::fs::rename(&staged, &branch)
                    .map_err(io(format!("committing into {}", branch.display())))?;
                let _ = std::fs::remove_dir_all(&trash);
            }
            TransactionType::Update | TransactionType::Append => merge_into(&staged, &branch)?,
        }
        t.status = TransactionStatus::Committed;
        t.closed_time = Some(now());
        self.save_transaction(rid, &t)?;
        Ok(t)
    }

    /// Aborts an open transaction: its files are deleted.
    pub async fn abort_transaction(&self, rid: &str, txn: &str) -> Result<Transaction, StoreError> {
        let _guard = self.lock.lock().await;
        let mut t = self.open_transaction(rid, txn)?;
        let staged = self.dataset_dir(rid)?.join("transactions").join(txn);
        let _ = std::fs::remove_dir_all(&staged);
        t.status = TransactionStatus::Aborted;
        t.closed_time = Some(now());
        self.save_transaction(rid, &t)?;
        Ok(t)
    }

    // ---- media sets ----------------------------------------------------------------------

    fn media_dir(&self, rid: &str) -> Result<PathBuf, StoreError> {
        check_rid(rid)?;
        self.resource_dir("mediasets", rid, "MediaSetNotFound", "media set")
    }

    /// Creates a media set (no-op if it exists); `transactional` chooses its transaction policy.
    pub fn create_media_set(&self, rid: &str, transactional: bool) -> Result<(), StoreError> {
        check_rid(rid)?;
        let d = self.root.join("mediasets").join(rid);
        create_dir(&d.join("branches").join("master"))?;
        let policy = if transactional {
            "TRANSACTIONAL"
        } else {
            "NO_TRANSACTIONS"
        };
        write_atomic(
            &d.join("mediaset.json"),
            &to_json(&serde_json::json!({ "transactionPolicy": policy }))?,
        )
    }

    /// Whether the media set exists.
    pub fn media_set_exists(&self, rid: &str) -> bool {
        self.media_dir(rid).is_ok()
    }

    /// Whether uploads to the media set need a transaction (`mediaset.json`; default yes).
    pub fn media_set_transactional(&self, rid: &str) -> Result<bool, StoreError> {
        let meta = self.media_dir(rid)?.join("mediaset.json");
        if !meta.is_file() {
            return Ok(true);
        }
        let v: serde_json::Value = read_json(&meta)?;
        Ok(v.get("transactionPolicy").and_then(|p| p.as_str()) != Some("NO_TRANSACTIONS"))
    }

    /// The item RID of a path: deterministic (hex of branch and path), so it survives restarts
    /// without an index.
    pub fn media_item_rid(branch: &str, path: &str) -> String {
        let mut s = String::from("ri.mio.main.media-item.");
        for b in branch.bytes().chain([0u8]).chain(path.bytes()) {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    fn decode_item_rid(item: &str) -> Option<(String, String)> {
        let hex = item.strip_prefix("ri.mio.main.media-item.")?;
        if hex.len() % 2 != 0 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
        let text = String::from_utf8(bytes?).ok()?;
        let (branch, path) = text.split_once('\0')?;
        Some((branch.to_owned(), path.to_owned()))
    }

    /// Where the committed item at `path` on `branch` is (or would be) stored.
    fn media_item_file(&self, rid: &str, branch: &str, path: &str) -> Result<PathBuf, StoreError> {
        check_branch(branch)?;
        check_path(path)?;
        Ok(self
            .media_dir(rid)?
            .join("branches")
            .join(branch_dir_name(branch))
            .join(path))
    }

    /// The committed file of a media item.
    pub fn media_item_location(&self, rid: &str, item: &str) -> Result<PathBuf, StoreError> {
        let missing = || not_found("MediaItemNotFound", format!("{rid} has no item {item}"));
        let (branch, path) = Self::decode_item_rid(item).ok_or_else(missing)?;
        let file = self.media_item_file(rid, &branch, &path)?;
        if !file.is_file() {
            return Err(missing());
        }
        Ok(file)
    }

    /// The item RID of a committed item path, if it exists.
    pub fn media_item_by_path(
        &self,
        rid: &str,
        branch: &str,
        path: &str,
    ) -> Result<String, StoreError> {
        let file = self.media_item_file(rid, branch, path)?;
        if !file.is_file() {
            return Err(not_found(
                "MediaItemNotFound",
                format!("{rid} has no item at `{path}` on branch `{branch}`"),
            ));
        }
        Ok(Self::media_item_rid(branch, path))
    }

    /// Writes a committed media item directly (seeding).
    pub fn put_media_item(
        &self,
        rid: &str,
        branch: &str,
        path: &str,
        contents: &[u8],
    ) -> Result<String, StoreError> {
        write_file(&self.media_item_file(rid, branch, path)?, contents)?;
        Ok(Self::media_item_rid(branch, path))
    }

    /// Opens a media-set transaction.
    pub async fn create_media_transaction(
        &self,
        rid: &str,
        branch: &str,
    ) -> Result<MediaTransaction, StoreError> {
        check_branch(branch)?;
        let _guard = self.lock.lock().await;
        let dir = self.media_dir(rid)?.join("transactions");
        let t = MediaTransaction {
            id: random_uuid(),
            branch_name: branch.to_owned(),
            status: TransactionStatus::Open,
        };
        std::fs::create_dir_all(dir.join(&t.id))
            .map_err(io(format!("creating {}", dir.display())))?;
        write_atomic(&dir.join(format!("{}.json", t.id)), &to_json(&t)?)?;
        Ok(t)
    }

    /// One media-set transaction.
    pub fn media_transaction(&self, rid: &str, id: &str) -> Result<MediaTransaction, StoreError> {
        check_rid(id)?;
        read_transaction(&self.media_dir(rid)?.join("transactions"), id, || {
            format!("media set {rid}")
        })
    }

    /// A media-set transaction that must still be open.
    fn open_media_transaction(&self, rid: &str, id: &str) -> Result<MediaTransaction, StoreError> {
        let t = self.media_transaction(rid, id)?;
        if t.status != TransactionStatus::Open {
            return Err(conflict(
                "TransactionNotOpen",
                format!("media-set transaction {id} is not open"),
            ));
        }
        Ok(t)
    }

    /// A temporary file for a media upload; pass it to [`DataStore::finish_media_upload`].
    pub fn media_upload_target(&self, rid: &str) -> Result<PathBuf, StoreError> {
        upload_target_in(&self.media_dir(rid)?.join("transactions"))
    }

    /// Moves a fully received media upload into its transaction (or straight onto the branch
    /// when `transaction` is `None`). Returns the item RID.
    pub async fn finish_media_upload(
        &self,
        rid: &str,
        branch: &str,
        transaction: Option<&str>,
        path: &str,
        tmp: &Path,
    ) -> Result<String, StoreError> {
        let _guard = self.lock.lock().await;
        let result = (|| {
            check_branch(branch)?;
            check_path(path)?;
            let d = self.media_dir(rid)?;
            let dst = match transaction {
                Some(id) => {
                    let t = self.open_media_transaction(rid, id)?;
                    if t.branch_name != branch {
                        return Err(invalid(
                            "TransactionBranchMismatch",
                            format!("transaction {id} writes to branch `{}`", t.branch_name),
                        ));
                    }
                    d.join("transactions").join(id).join(path)
                }
                None => d.join("branches").join(branch_dir_name(branch)).join(path),
            };
            move_file(tmp, &dst)?;
            Ok(Self::media_item_rid(branch, path))
        })();
        discard_upload_on_error(tmp, result)
    }

    /// Commits (`commit = true`) or aborts a media-set transaction.
    pub async fn close_media_transaction(
        &self,
        rid: &str,
        id: &str,
        commit: bool,
    ) -> Result<MediaTransaction, StoreError> {
        let _guard = self.lock.lock().await;
        let mut t = self.open_media_transaction(rid, id)?;
        let d = self.media_dir(rid)?;
        let staged = d.join("transactions").join(id);
        if commit {
            let branch = d.join("branches").join(branch_dir_name(&t.branch_name));
            create_dir(&branch)?;
            merge_into(&staged, &branch)?;
            t.status = TransactionStatus::Committed;
        } else {
            let _ = std::fs::remove_dir_all(&staged);
            t.status = TransactionStatus::Aborted;
        }
        write_atomic(
            &d.join("transactions").join(format!("{id}.json")),
            &to_json(&t)?,
        )?;
        Ok(t)
    }

    /// Every media-set transaction (for tests and inspection).
    pub fn media_transactions(&self, rid: &str) -> Result<Vec<MediaTransaction>, StoreError> {
        let dir = self.media_dir(rid)?.join("transactions");
        match std::fs::read_dir(&dir) {
            Ok(entries) => read_json_entries(&dir, entries),
            Err(_) => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(page: usize) -> (tempfile::TempDir, DataStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = DataStore::open(dir.path(), page).unwrap();
        (dir, s)
    }

    #[test]
    fn listing_is_sorted_paginated_and_prefix_filtered() {
        let (_d, s) = store(2);
        for p in ["b.csv", "a/1.csv", "a/2.csv", "c.txt", "d.txt"] {
            s.put_file("ri.ds.1", "master", p, b"x").unwrap();
        }
        let mut all = Vec::new();
        let mut token = None;
        let mut pages = 0;
        loop {
            let page = s
                .list_files("ri.ds.1", "master", None, Some(100), token.as_deref())
                .unwrap();
            pages += 1;
            all.extend(page.items.into_iter().map(|f| f.path));
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(all, ["a/1.csv", "a/2.csv", "b.csv", "c.txt", "d.txt"]);
        assert_eq!(pages, 3);
        let a = s
            .list_files("ri.ds.1", "master", Some("a/"), None, None)
            .unwrap();
        assert_eq!(a.items.len(), 2);
    }

    #[test]
    fn paths_cannot_escape() {
        let (_d, s) = store(10);
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            assert!(
                matches!(
                    s.put_file("ri.ds.1", "master", bad, b"x"),
                    Err(StoreError::Invalid { .. })
                ),
                "{bad}"
            );
        }
        assert!(s.create_dataset("../x").is_err());
    }

    #[tokio::test]
    async fn a_branch_head_is_its_newest_open_or_committed_transaction() {
        let (_d, s) = store(10);
        s.create_dataset("ri.ds.1").unwrap();
        assert_eq!(s.branch_head("ri.ds.1", "master").unwrap(), None);
        assert!(matches!(
            s.branch_head("ri.ds.1", "nope"),
            Err(StoreError::NotFound { .. })
        ));
        let c = s
            .create_transaction("ri.ds.1", "master", TransactionType::Snapshot)
            .await
            .unwrap();
        s.commit_transaction("ri.ds.1", &c.rid).await.unwrap();
        let a = s
            .create_transaction("ri.ds.1", "master", TransactionType::Snapshot)
            .await
            .unwrap();
        s.abort_transaction("ri.ds.1", &a.rid).await.unwrap();
        // Aborted transactions never count.
        assert_eq!(s.branch_head("ri.ds.1", "master").unwrap(), Some(c.rid));
        let o = s
            .create_transaction("ri.ds.1", "master", TransactionType::Snapshot)
            .await
            .unwrap();
        let other = s
            .create_transaction("ri.ds.1", "dev", TransactionType::Snapshot)
            .await
            .unwrap();
        assert_eq!(s.branch_head("ri.ds.1", "master").unwrap(), Some(o.rid));
        assert_eq!(s.branch_head("ri.ds.1", "dev").unwrap(), Some(other.rid));
    }

    #[tokio::test]
    async fn snapshot_commit_replaces_and_abort_discards() {
        let (_d, s) = store(10);
        s.put_file("ri.ds.1", "master", "old.csv", b"old").unwrap();
        let t = s
            .create_transaction("ri.ds.1", "master", TransactionType::Snapshot)
            .await
            .unwrap();
        let second = s
            .create_transaction("ri.ds.1", "master", TransactionType::Snapshot)
            .await;
        assert!(
            matches!(second, Err(StoreError::Conflict { name, .. }) if name == "OpenTransactionAlreadyExists")
        );
        let tmp = s.upload_target("ri.ds.1", &t.rid, "new.csv").unwrap();
        std::fs::write(&tmp, b"new").unwrap();
        s.finish_upload("ri.ds.1", &t.rid, "new.csv", &tmp)
            .await
            .unwrap();
        let c = s.commit_transaction("ri.ds.1", &t.rid).await.unwrap();
        assert_eq!(c.status, TransactionStatus::Committed);
        let files = s.list_files("ri.ds.1", "master", None, None, None).unwrap();
        assert_eq!(files.items.len(), 1);
        assert_eq!(files.items[0].path, "new.csv");
        assert_eq!(files.items[0].transaction_rid, t.rid);
        assert!(s.commit_transaction("ri.ds.1", &t.rid).await.is_err());

        let t2 = s
            .create_transaction("ri.ds.1", "master", TransactionType::Update)
            .await
            .unwrap();
        let tmp = s.upload_target("ri.ds.1", &t2.rid, "junk.csv").unwrap();
        std::fs::write(&tmp, b"junk").unwrap();
        s.finish_upload("ri.ds.1", &t2.rid, "junk.csv", &tmp)
            .await
            .unwrap();
        s.abort_transaction("ri.ds.1", &t2.rid).await.unwrap();
        assert_eq!(s.read_file("ri.ds.1", "master", "new.csv").unwrap(), b"new");
        assert!(s.read_file("ri.ds.1", "master", "junk.csv").is_err());
        let statuses: Vec<_> = s
            .transactions("ri.ds.1")
            .unwrap()
            .into_iter()
            .map(|t| t.status)
            .collect();
        assert_eq!(
            statuses,
            [TransactionStatus::Aborted, TransactionStatus::Committed]
        );
    }

    #[tokio::test]
    async fn streams_append_and_read_by_offset() {
        let (_d, s) = store(10);
        s.create_stream("ri.st.1").unwrap();
        let first = s
            .append_records(
                "ri.st.1",
                "master",
                &[serde_json::json!({"a": 1}), serde_json::json!({"a": 2})],
            )
            .await
            .unwrap();
        assert_eq!(first, 0);
        let next = s
            .append_records("ri.st.1", "master", &[serde_json::json!({"a": 3})])
            .await
            .unwrap();
        assert_eq!(next, 2);
        assert_eq!(s.end_offset("ri.st.1", "master").unwrap(), 3);
        let got = s.read_records("ri.st.1", "master", 1, 1).unwrap();
        assert_eq!(got, [(1, serde_json::json!({"a": 2}))]);
        assert!(
            s.append_records("ri.st.1", "master", &[serde_json::json!(1)])
                .await
                .is_err()
        );
        assert!(s.read_records("ri.nope", "master", 0, 1).is_err());
    }

    #[tokio::test]
    async fn media_items_round_trip_through_transactions() {
        let (_d, s) = store(10);
        s.create_media_set("ri.ms.1", true).unwrap();
        let t = s
            .create_media_transaction("ri.ms.1", "master")
            .await
            .unwrap();
        let tmp = s.media_upload_target("ri.ms.1").unwrap();
        std::fs::write(&tmp, b"png").unwrap();
        let item = s
            .finish_media_upload("ri.ms.1", "master", Some(&t.id), "img/a.png", &tmp)
            .await
            .unwrap();
        assert!(s.media_item_location("ri.ms.1", &item).is_err());
        s.close_media_transaction("ri.ms.1", &t.id, true)
            .await
            .unwrap();
        let file = s.media_item_location("ri.ms.1", &item).unwrap();
        assert_eq!(std::fs::read(file).unwrap(), b"png");
        assert_eq!(
            s.media_item_by_path("ri.ms.1", "master", "img/a.png")
                .unwrap(),
            item
        );
    }
}
