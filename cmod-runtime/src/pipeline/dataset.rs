//! [`DatasetInput`] and [`DatasetOutput`]: dataset files through the public v2 API
//! (docs/protocol.md §5.3), with the legacy catalog / data-proxy endpoints as a read fallback.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt, TryStreamExt};
use serde::Deserialize;

use super::api::{Api, encode_path, encode_segment, foundry};
use super::error::{PipelineError, ResourceKind, ResourceRef};
use super::reader::FileReader;
use super::{Closed, Finalize, InputHandle, OutputHandle, PipelineContext};
use crate::foundry::{FoundryError, Method, Service};

/// Files requested per page when listing (Foundry may return fewer).
const PAGE_SIZE: usize = 1000;
/// Size of the chunks a [`FileWriter`] sends.
const WRITE_CHUNK: usize = 256 * 1024;
/// Chunks a [`FileWriter`] may have in flight (bounds its memory to about 1.25 MiB).
const WRITE_QUEUE: usize = 4;

/// Foundry error names that mean "the resource is missing", as opposed to "this endpoint does
/// not exist here" (which makes the input fall back to the legacy endpoints).
const RESOURCE_ERRORS: &[&str] = &[
    "DatasetNotFound",
    "BranchNotFound",
    "FileNotFound",
    "DatasetViewNotFound",
    "TransactionNotFound",
    "InvalidFilePath",
];

/// Whether an error says the public dataset API is unavailable (rather than a resource missing).
fn public_api_unavailable(e: &PipelineError) -> bool {
    matches!(e.status(), Some(404 | 405 | 501))
        && !e.error_name().is_some_and(|n| RESOURCE_ERRORS.contains(&n))
}

/// A file of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileInfo {
    /// The logical path inside the dataset (`dir/file.csv`).
    pub path: String,
    /// The size in bytes, when Foundry reports it.
    pub size_bytes: Option<u64>,
    /// The transaction that wrote it, when reported.
    pub transaction_rid: Option<String>,
    /// When it was last updated (RFC 3339), when reported.
    pub updated_time: Option<String>,
}

/// A `long` that Foundry may send as a number or a string.
fn long(v: Option<&serde_json::Value>) -> Option<u64> {
    match v? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2File {
    path: String,
    #[serde(default)]
    transaction_rid: Option<String>,
    #[serde(default)]
    size_bytes: Option<serde_json::Value>,
    #[serde(default)]
    updated_time: Option<String>,
}

impl From<V2File> for FileInfo {
    fn from(f: V2File) -> Self {
        FileInfo {
            size_bytes: long(f.size_bytes.as_ref()),
            path: f.path,
            transaction_rid: f.transaction_rid,
            updated_time: f.updated_time,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2FilePage {
    #[serde(default)]
    data: Vec<V2File>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyFile {
    logical_path: String,
    #[serde(default)]
    transaction_rid: Option<String>,
    #[serde(default)]
    file_metadata: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    time_modified: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyFilePage {
    #[serde(default)]
    values: Vec<LegacyFile>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// A dataset input: list files, read them whole or streamed.
///
/// Reads go to the public v2 API on the alias's branch. When that API is not available on the
/// stack (HTTP 404/405/501 that is not a missing-resource error), the handle switches to the
/// legacy catalog (listing) and data-proxy (content) endpoints for the rest of the run.
pub struct DatasetInput {
    pub(super) resource: ResourceRef,
    pub(super) api: Api,
    legacy: Arc<AtomicBool>,
}

/// A range of transactions to read (`startTransactionRid` / `endTransactionRid`): `None` ends
/// mean the start of the branch's view and its latest transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct TxnRange {
    pub(super) start: Option<String>,
    pub(super) end: Option<String>,
}

impl TxnRange {
    pub(super) fn is_all(&self) -> bool {
        self.start.is_none() && self.end.is_none()
    }
}

impl fmt::Debug for DatasetInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatasetInput")
            .field("resource", &self.resource)
            .field("legacy", &self.legacy.load(Ordering::Relaxed))
            .finish()
    }
}

impl InputHandle for DatasetInput {
    const KIND: ResourceKind = ResourceKind::Dataset;

    async fn open(ctx: &PipelineContext, alias: &'static str) -> Result<Self, PipelineError> {
        let resource = ctx.resource(alias, Self::KIND)?;
        let input = DatasetInput {
            api: ctx.api().clone(),
            legacy: Arc::new(AtomicBool::new(false)),
            resource,
        };
        // Fail at startup, naming the alias, when the dataset is unreachable.
        let path = format!("v2/datasets/{}", encode_segment(&input.resource.rid));
        let req = input.api.request(Method::GET, Service::ApiGateway, path);
        match input
            .api
            .send(&input.resource, || "opening the dataset".to_owned(), req)
            .await
        {
            Ok(_) => {}
            Err(e) if public_api_unavailable(&e) => input.use_legacy(),
            Err(e) => return Err(e),
        }
        Ok(input)
    }
}

impl DatasetInput {
    /// The alias this handle is bound to.
    pub fn alias(&self) -> &str {
        &self.resource.alias
    }

    /// The dataset RID.
    pub fn rid(&self) -> &str {
        &self.resource.rid
    }

    /// The branch read.
    pub fn branch(&self) -> &str {
        &self.resource.branch
    }

    /// Another handle on the same input (sharing the legacy switch).
    #[cfg_attr(not(feature = "tables"), allow(dead_code))]
    pub(super) fn clone_handle(&self) -> DatasetInput {
        DatasetInput {
            resource: self.resource.clone(),
            api: self.api.clone(),
            legacy: self.legacy.clone(),
        }
    }

    fn use_legacy(&self) {
        if !self.legacy.swap(true, Ordering::Relaxed) {
            tracing::info!(
                alias = %self.resource.alias,
                rid = %self.resource.rid,
                "the public datasets API is unavailable; reading through the legacy catalog and \
                 data-proxy endpoints"
            );
        }
    }

    fn is_legacy(&self) -> bool {
        self.legacy.load(Ordering::Relaxed)
    }

    /// One page of files whose path starts with `prefix`.
    async fn page(
        &self,
        prefix: Option<&str>,
        range: &TxnRange,
        token: Option<&str>,
    ) -> Result<(Vec<FileInfo>, Option<String>), PipelineError> {
        if !self.is_legacy() {
            let path = format!("v2/datasets/{}/files", encode_segment(&self.resource.rid));
            let mut req = self
                .api
                .request(Method::GET, Service::ApiGateway, path)
                .query("branchName", &self.resource.branch)
                .query("pageSize", PAGE_SIZE);
            if let Some(p) = prefix.filter(|p| !p.is_empty()) {
                req = req.query("pathPrefix", p);
            }
            if let Some(t) = token {
                req = req.query("pageToken", t);
            }
            if let Some(t) = &range.start {
                req = req.query("startTransactionRid", t);
            }
            if let Some(t) = &range.end {
                req = req.query("endTransactionRid", t);
            }
            match self
                .api
                .json::<V2FilePage>(&self.resource, || "listing files".to_owned(), req)
                .await
            {
                Ok(page) => {
                    let files = page.data.into_iter().map(FileInfo::from).collect();
                    return Ok((files, page.next_page_token.filter(|t| !t.is_empty())));
                }
                Err(e) if token.is_none() && public_api_unavailable(&e) => self.use_legacy(),
                Err(e) => return Err(e),
            }
        }
        if !range.is_all() {
            return Err(PipelineError::Protocol {
                resource: Box::new(self.resource.clone()),
                operation: "listing files of a transaction range".to_owned(),
                message: "the public datasets API is unavailable on this stack, and the legacy \
                          catalog cannot list a range of transactions"
                    .to_owned(),
            });
        }
        let url = format!(
            "{}/catalog/datasets/{}/views2/{}/files",
            self.api.stack_url(&self.resource, "/foundry-catalog/api")?,
            encode_segment(&self.resource.rid),
            encode_segment(&self.resource.branch),
        );
        let mut req = self
            .api
            .request(Method::GET, Service::ApiGateway, url)
            .query("pageSize", PAGE_SIZE)
            .query("includeOpenExclusiveTransaction", "false")
            .query("excludeHiddenFiles", "false");
        if let Some(t) = token {
            req = req.query("pageToken", t);
        }
        let page: LegacyFilePage = self
            .api
            .json(
                &self.resource,
                || "listing files (legacy catalog)".to_owned(),
                req,
            )
            .await?;
        let files = page
            .values
            .into_iter()
            .filter(|f| prefix.is_none_or(|p| f.logical_path.starts_with(p)))
            .map(|f| FileInfo {
                size_bytes: long(f.file_metadata.as_ref().and_then(|m| m.get("length"))),
                path: f.logical_path,
                transaction_rid: f.transaction_rid,
                updated_time: f.time_modified,
            })
            .collect();
        Ok((files, page.next_page_token.filter(|t| !t.is_empty())))
    }

    /// The dataset's files whose path starts with `prefix` (all files for `None`), fetched one
    /// page at a time as the stream is consumed.
    pub fn files<'a>(
        &'a self,
        prefix: Option<&'a str>,
    ) -> impl Stream<Item = Result<FileInfo, PipelineError>> + Send + 'a {
        self.files_in(prefix, TxnRange::default())
    }

    /// [`DatasetInput::files`] of a range of transactions.
    pub(super) fn files_in<'a>(
        &'a self,
        prefix: Option<&'a str>,
        range: TxnRange,
    ) -> impl Stream<Item = Result<FileInfo, PipelineError>> + Send + 'a {
        enum State {
            Start,
            Next(String),
            Done,
        }
        let range = Arc::new(range);
        futures_util::stream::try_unfold(State::Start, move |state| {
            let range = range.clone();
            async move {
                let token = match state {
                    State::Done => return Ok(None),
                    State::Start => None,
                    State::Next(t) => Some(t),
                };
                let (files, next) = self.page(prefix, &range, token.as_deref()).await?;
                let next = match next {
                    Some(t) if Some(&t) != token.as_ref() => State::Next(t),
                    _ => State::Done,
                };
                Ok(Some((
                    futures_util::stream::iter(files.into_iter().map(Ok)),
                    next,
                )))
            }
        })
        .try_flatten()
    }

    /// Every file whose path starts with `prefix` (all files for `None`), across all pages.
    pub async fn list_files(&self, prefix: Option<&str>) -> Result<Vec<FileInfo>, PipelineError> {
        self.files(prefix).try_collect().await
    }

    /// Opens a file for streamed reading: the bytes arrive as they are read.
    pub async fn open(&self, path: &str) -> Result<FileReader, PipelineError> {
        let op = || format!("reading file `{path}`");
        if !self.is_legacy() {
            let url = format!(
                "v2/datasets/{}/files/{}/content",
                encode_segment(&self.resource.rid),
                encode_path(path)
            );
            let req = self
                .api
                .request(Method::GET, Service::ApiGateway, url)
                .query("branchName", &self.resource.branch)
                .header("Accept", "application/octet-stream");
            match self.api.download(&self.resource, op, req).await {
                Ok(s) => return Ok(FileReader::new(path, s)),
                Err(e) if public_api_unavailable(&e) => self.use_legacy(),
                Err(e) => return Err(e),
            }
        }
        let url = format!(
            "{}/dataproxy/datasets/{}/views/{}/{}",
            self.api
                .stack_url(&self.resource, "/foundry-data-proxy/api")?,
            encode_segment(&self.resource.rid),
            encode_segment(&self.resource.branch),
            encode_path(path)
        );
        let req = self.api.request(Method::GET, Service::ApiGateway, url);
        let stream = self
            .api
            .download(
                &self.resource,
                || format!("reading file `{path}` (legacy data proxy)"),
                req,
            )
            .await?;
        Ok(FileReader::new(path, stream))
    }

    /// Reads a whole file into memory. Use [`DatasetInput::open`] for large files.
    pub async fn read(&self, path: &str) -> Result<Bytes, PipelineError> {
        self.open(path).await?.read_to_end().await
    }
}

/// The type of a dataset output's transaction (docs/protocol.md §5.3), chosen per output with
/// `#[pipeline(…, transaction(alias = "append"))]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TransactionType {
    /// The committed view is exactly the files this run wrote; earlier files are gone (the
    /// default).
    #[default]
    Snapshot,
    /// The files this run wrote are added to the view. Foundry fails the commit if one has the
    /// path of a file already in the view (typed writers name their files uniquely per
    /// transaction).
    Append,
    /// Like `Append`, but a file may replace one of the same path in the view.
    Update,
}

impl TransactionType {
    /// `SNAPSHOT`, `APPEND` or `UPDATE`, as Foundry names it.
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionType::Snapshot => "SNAPSHOT",
            TransactionType::Append => "APPEND",
            TransactionType::Update => "UPDATE",
        }
    }

    /// Parses Foundry's name (any case); `None` for other types (`DELETE`).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "SNAPSHOT" => Some(TransactionType::Snapshot),
            "APPEND" => Some(TransactionType::Append),
            "UPDATE" => Some(TransactionType::Update),
            _ => None,
        }
    }
}

impl fmt::Display for TransactionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transaction of a dataset output, committed or aborted when the pipeline ends.
pub(super) struct OutputState {
    pub(super) resource: ResourceRef,
    pub(super) api: Api,
    pub(super) transaction_rid: String,
    /// The transaction's type (the build system's when its transaction is reused).
    transaction_type: TransactionType,
    /// Whether this module opened the transaction (and so commits it).
    owned: bool,
    /// File writers created and not yet finished.
    open_writers: AtomicUsize,
    /// Paths whose last upload failed (cleared by a later successful upload of the same path).
    failed: Mutex<BTreeMap<String, String>>,
    /// Set once committed or aborted.
    closed: tokio::sync::Mutex<bool>,
}

impl OutputState {
    fn failed(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, path: &str, result: &Result<FileInfo, PipelineError>) {
        match result {
            Ok(_) => {
                self.failed().remove(path);
            }
            Err(e) => {
                self.failed().insert(path.to_owned(), e.to_string());
            }
        }
    }

    /// `v2/datasets/{rid}/files/{path}/upload`.
    fn upload_path(&self, path: &str) -> String {
        format!(
            "v2/datasets/{}/files/{}/upload",
            encode_segment(&self.resource.rid),
            encode_path(path)
        )
    }

    fn txn_path(&self, action: &str) -> String {
        format!(
            "v2/datasets/{}/transactions/{}/{action}",
            encode_segment(&self.resource.rid),
            encode_segment(&self.transaction_rid)
        )
    }

    /// Commits (`commit`) or aborts the transaction, once; later calls do nothing and report
    /// [`Closed::AlreadyDone`]. A build system's transaction is never committed here (it is
    /// left open and can still be aborted).
    async fn close(&self, commit: bool) -> Result<Closed, PipelineError> {
        let mut closed = self.closed.lock().await;
        if *closed {
            return Ok(Closed::AlreadyDone);
        }
        if commit {
            let writers = self.open_writers.load(Ordering::SeqCst);
            let failed: Vec<String> = self.failed().keys().cloned().collect();
            if writers > 0 || !failed.is_empty() {
                let mut detail = Vec::new();
                if writers > 0 {
                    detail.push(format!(
                        "{writers} file writer(s) were dropped without `finish()`"
                    ));
                }
                if !failed.is_empty() {
                    detail.push(format!("uploads failed for {}", failed.join(", ")));
                }
                self.send_close(false).await?;
                *closed = true;
                return Err(PipelineError::Incomplete {
                    resource: Box::new(self.resource.clone()),
                    detail: format!("{}; the transaction was aborted", detail.join(" and ")),
                });
            }
            if !self.owned {
                tracing::info!(
                    alias = %self.resource.alias,
                    rid = %self.resource.rid,
                    transaction = %self.transaction_rid,
                    "leaving the build system's transaction open for it to commit"
                );
                // Not marked closed: if a later output of the run fails, this transaction is
                // still aborted.
                return Ok(Closed::LeftToBuildSystem);
            }
        }
        self.send_close(commit).await?;
        *closed = true;
        Ok(Closed::Done)
    }

    /// `POST …/transactions/{rid}/commit` or `…/abort`.
    async fn send_close(&self, commit: bool) -> Result<(), PipelineError> {
        let (action, doing) = if commit {
            ("commit", "committing")
        } else {
            ("abort", "aborting")
        };
        let req = self
            .api
            .request(Method::POST, Service::ApiGateway, self.txn_path(action));
        let result = self
            .api
            .send(
                &self.resource,
                || format!("{doing} transaction {}", self.transaction_rid),
                req,
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            // Aborting something no longer open is not a failure worth reporting.
            Err(e) if !commit && e.error_name() == Some("TransactionNotOpen") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Finalize for OutputState {
    fn resource(&self) -> &ResourceRef {
        &self.resource
    }

    fn commit(&self) -> BoxFuture<'_, Result<Closed, PipelineError>> {
        Box::pin(self.close(true))
    }

    fn abort(&self) -> BoxFuture<'_, Result<Closed, PipelineError>> {
        Box::pin(self.close(false))
    }
}

/// A dataset output: files written into one transaction, committed when the pipeline succeeds
/// and aborted otherwise (see the [module docs](super#dataset-output-transactions)).
///
/// Write small files with [`DatasetOutput::write`], stream large ones with
/// [`DatasetOutput::create`] (a [`FileWriter`]) or [`DatasetOutput::write_stream`]; uploads are
/// streamed, never buffered whole.
pub struct DatasetOutput {
    pub(super) state: Arc<OutputState>,
}

impl fmt::Debug for DatasetOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatasetOutput")
            .field("resource", &self.state.resource)
            .field("transaction_rid", &self.state.transaction_rid)
            .field("owned_transaction", &self.state.owned)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Transaction {
    rid: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    transaction_type: Option<String>,
    #[serde(default)]
    branch_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransactionPage {
    #[serde(default)]
    data: Vec<Transaction>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// `GET /v2/datasets/{rid}/branches/{branch}`: the branch's most recent `OPEN` or `COMMITTED`
/// transaction.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Branch {
    #[serde(default)]
    transaction_rid: Option<String>,
}

/// Upper bound on listing pages, so a server that keeps answering the same `nextPageToken`
/// cannot keep the module listing forever.
const MAX_TRANSACTION_PAGES: usize = 10_000;

/// The branch's current transaction (`transactionRid` of the branch), `None` when the branch
/// has none or cannot be read.
async fn branch_head(api: &Api, resource: &ResourceRef) -> Result<Option<String>, PipelineError> {
    let path = format!(
        "v2/datasets/{}/branches/{}",
        encode_segment(&resource.rid),
        encode_segment(&resource.branch)
    );
    let req = api.request(Method::GET, Service::ApiGateway, path);
    match api
        .json::<Branch>(resource, || "reading the branch".to_owned(), req)
        .await
    {
        Ok(b) => Ok(b.transaction_rid),
        Err(e) if matches!(e.status(), Some(401 | 403)) => Err(e),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the branch");
            Ok(None)
        }
    }
}

/// The build system's `OPEN` transaction on the output's branch, if there is one.
///
/// Pages through the dataset's transactions, newest first, following `nextPageToken` (up to the
/// last page when none matches). Branch-safe: Foundry allows one open transaction per dataset
/// *branch*, so other branches may have theirs. A listed transaction that names its branch
/// (`branchName`) must name the output's; one that does not (Foundry's `Transaction` has no
/// branch field) must be the branch's current transaction. When neither can be established,
/// nothing is reused (the module opens its own transaction, or fails with Foundry's
/// `OpenTransactionAlreadyExists`). A listing that is unavailable (other than 401/403, which
/// fail) means no reuse.
async fn open_transaction(
    api: &Api,
    resource: &ResourceRef,
) -> Result<Option<Transaction>, PipelineError> {
    let path = format!("v2/datasets/{}/transactions", encode_segment(&resource.rid));
    let mut token: Option<String> = None;
    // Read once, when a transaction without a branch name is first seen.
    let mut head: Option<Option<String>> = None;
    for page_number in 0..MAX_TRANSACTION_PAGES {
        let mut req = api
            .request(Method::GET, Service::ApiGateway, path.clone())
            .query("preview", "true")
            .query("pageSize", 100);
        if let Some(t) = &token {
            req = req.query("pageToken", t);
        }
        let page = match api
            .json::<TransactionPage>(
                resource,
                || format!("listing transactions (page {})", page_number + 1),
                req,
            )
            .await
        {
            Ok(page) => page,
            Err(e) if matches!(e.status(), Some(401 | 403)) => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "cannot list transactions; opening a new one");
                return Ok(None);
            }
        };
        for t in page.data {
            if t.status.as_deref() != Some("OPEN") {
                continue;
            }
            match t.branch_name.as_deref() {
                Some(b) if b == resource.branch => return Ok(Some(t)),
                Some(_) => {}
                None => {
                    if head.is_none() {
                        head = Some(branch_head(api, resource).await?);
                    }
                    if head.as_ref().and_then(Option::as_deref) == Some(t.rid.as_str()) {
                        return Ok(Some(t));
                    }
                }
            }
        }
        match page.next_page_token {
            Some(next) if !next.is_empty() && token.as_deref() != Some(next.as_str()) => {
                token = Some(next);
            }
            _ => return Ok(None),
        }
    }
    tracing::warn!(
        alias = %resource.alias,
        rid = %resource.rid,
        "transaction listing still had pages after {MAX_TRANSACTION_PAGES}; not reusing any"
    );
    Ok(None)
}

impl OutputHandle for DatasetOutput {
    const KIND: ResourceKind = ResourceKind::Dataset;

    async fn open(ctx: &PipelineContext, alias: &'static str) -> Result<Self, PipelineError> {
        let resource = ctx.resource(alias, Self::KIND)?;
        let api = ctx.api().clone();
        let requested = ctx.transaction_type(alias);
        let (transaction, owned) = match open_transaction(&api, &resource).await? {
            Some(t) => (t, false),
            None => {
                let path = format!("v2/datasets/{}/transactions", encode_segment(&resource.rid));
                let req = api
                    .request(Method::POST, Service::ApiGateway, path)
                    .query("branchName", &resource.branch)
                    .json(&serde_json::json!({ "transactionType": requested.as_str() }));
                match api
                    .json::<Transaction>(&resource, || "opening a transaction".to_owned(), req)
                    .await
                {
                    Ok(t) => (t, true),
                    // Opened concurrently by the build system: use it.
                    Err(e) if e.error_name() == Some("OpenTransactionAlreadyExists") => {
                        match open_transaction(&api, &resource).await? {
                            Some(t) => (t, false),
                            None => return Err(e),
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        // The build system's transaction keeps the type its build gave it (it owns the
        // transaction); a different one than asked is reported, not changed.
        let actual = transaction
            .transaction_type
            .as_deref()
            .and_then(TransactionType::parse);
        let transaction_type = match actual {
            Some(t) if t != requested => {
                tracing::warn!(
                    alias = %resource.alias,
                    rid = %resource.rid,
                    requested = %requested,
                    actual = %t,
                    "the build system's open transaction has another type than the one \
                     `#[pipeline(transaction(...))]` asks for; writing into it as {t}"
                );
                t
            }
            Some(t) => t,
            None => requested,
        };
        let transaction_rid = transaction.rid;
        tracing::info!(
            alias = %resource.alias,
            rid = %resource.rid,
            transaction = %transaction_rid,
            transaction_type = %transaction_type,
            reused = !owned,
            "dataset output transaction"
        );
        let state = Arc::new(OutputState {
            resource,
            api,
            transaction_rid,
            transaction_type,
            owned,
            open_writers: AtomicUsize::new(0),
            failed: Mutex::new(BTreeMap::new()),
            closed: tokio::sync::Mutex::new(false),
        });
        ctx.register_output(state.clone());
        Ok(DatasetOutput { state })
    }
}

/// The file an upload answered with. Any 2xx means the upload is stored; the body is
/// informational, so an unexpected one yields just the path.
fn parse_file(path: &str, body: &[u8]) -> FileInfo {
    serde_json::from_slice::<V2File>(body)
        .map(FileInfo::from)
        .unwrap_or_else(|_| FileInfo {
            path: path.to_owned(),
            size_bytes: None,
            transaction_rid: None,
            updated_time: None,
        })
}

impl DatasetOutput {
    /// The alias this handle is bound to.
    pub fn alias(&self) -> &str {
        &self.state.resource.alias
    }

    /// The dataset RID.
    pub fn rid(&self) -> &str {
        &self.state.resource.rid
    }

    /// The branch written.
    pub fn branch(&self) -> &str {
        &self.state.resource.branch
    }

    /// The transaction the files go into.
    pub fn transaction_rid(&self) -> &str {
        &self.state.transaction_rid
    }

    /// The type of the transaction written into: the one `#[pipeline(transaction(…))]` asks
    /// for (`SNAPSHOT` by default), or the build system's when its open transaction is reused.
    pub fn transaction_type(&self) -> TransactionType {
        self.state.transaction_type
    }

    /// Whether the transaction was opened by the build system (and is left for it to commit).
    pub fn reuses_build_transaction(&self) -> bool {
        !self.state.owned
    }

    /// Writes a file from bytes in memory (retried on transient failures).
    pub async fn write(
        &self,
        path: &str,
        data: impl Into<Bytes>,
    ) -> Result<FileInfo, PipelineError> {
        let s = &self.state;
        let req = s
            .api
            .request(Method::POST, Service::ApiGateway, s.upload_path(path))
            .query("transactionRid", &s.transaction_rid)
            .body(data.into(), "application/octet-stream");
        let result = async {
            let response = s
                .api
                .send(&s.resource, || format!("uploading `{path}`"), req)
                .await?;
            let body = response.bytes().await.unwrap_or_default();
            Ok(parse_file(path, &body))
        }
        .await;
        s.record(path, &result);
        result
    }

    /// Writes a file from a stream of chunks, uploaded as they come (not retried: a stream
    /// cannot be replayed).
    pub async fn write_stream<S, E>(&self, path: &str, chunks: S) -> Result<FileInfo, PipelineError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let result = upload(&self.state, path, reqwest::Body::wrap_stream(chunks)).await;
        self.state.record(path, &result);
        result
    }

    /// Creates a file to write piece by piece; call [`FileWriter::finish`] at the end. Memory
    /// stays bounded (about 1.25 MiB per writer) whatever the file size.
    pub fn create(&self, path: &str) -> FileWriter {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE);
        let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
            .map(Ok::<Bytes, std::io::Error>);
        let state = self.state.clone();
        let owned_path = path.to_owned();
        let task = tokio::spawn(async move {
            upload(&state, &owned_path, reqwest::Body::wrap_stream(body)).await
        });
        self.state.open_writers.fetch_add(1, Ordering::SeqCst);
        FileWriter {
            state: self.state.clone(),
            path: path.to_owned(),
            buf: BytesMut::with_capacity(WRITE_CHUNK),
            tx: Some(tx),
            task: Some(task),
        }
    }
}

async fn upload(
    state: &OutputState,
    path: &str,
    body: reqwest::Body,
) -> Result<FileInfo, PipelineError> {
    let url = state.upload_path(path);
    let response = state
        .api
        .upload(
            &state.resource,
            format!("uploading `{path}`"),
            Service::ApiGateway,
            &url,
            &[("transactionRid", &state.transaction_rid)],
            body,
        )
        .await?;
    let body = response.bytes().await.map_err(|e| {
        foundry(
            &state.resource,
            &format!("uploading `{path}`"),
            FoundryError::transport("POST", &url, &e),
        )
    })?;
    Ok(parse_file(path, &body))
}

/// A dataset file being uploaded piece by piece ([`DatasetOutput::create`]).
///
/// Bytes are sent in 256 KiB chunks while you write. Call [`FileWriter::finish`] to complete
/// the upload: a writer dropped without it cancels its upload, and the output is then aborted
/// instead of committed ([`PipelineError::Incomplete`]).
pub struct FileWriter {
    state: Arc<OutputState>,
    path: String,
    buf: BytesMut,
    tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    task: Option<tokio::task::JoinHandle<Result<FileInfo, PipelineError>>>,
}

impl fmt::Debug for FileWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileWriter")
            .field("output", &self.state.resource.alias)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileWriter {
    /// The path being written.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Appends bytes to the file.
    pub async fn write(&mut self, data: impl AsRef<[u8]>) -> Result<(), PipelineError> {
        self.buf.extend_from_slice(data.as_ref());
        while self.buf.len() >= WRITE_CHUNK {
            let chunk = self.buf.split_to(WRITE_CHUNK).freeze();
            self.send(chunk).await?;
        }
        Ok(())
    }

    async fn send(&mut self, chunk: Bytes) -> Result<(), PipelineError> {
        let sent = match &self.tx {
            Some(tx) => tx.send(chunk).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The upload ended early: its result says why.
        self.tx = None;
        let result = self.join().await;
        Err(result.err().unwrap_or_else(|| PipelineError::Incomplete {
            resource: Box::new(self.state.resource.clone()),
            detail: format!(
                "the upload of `{}` ended before all bytes were sent",
                self.path
            ),
        }))
    }

    async fn join(&mut self) -> Result<FileInfo, PipelineError> {
        let result = match self.task.take() {
            Some(task) => match task.await {
                Ok(r) => r,
                Err(e) => Err(PipelineError::Incomplete {
                    resource: Box::new(self.state.resource.clone()),
                    detail: format!("the upload task of `{}` failed: {e}", self.path),
                }),
            },
            None => Err(PipelineError::Incomplete {
                resource: Box::new(self.state.resource.clone()),
                detail: format!("the upload of `{}` already ended", self.path),
            }),
        };
        self.state.open_writers.fetch_sub(1, Ordering::SeqCst);
        self.state.record(&self.path, &result);
        result
    }

    /// Sends the rest of the file and completes the upload.
    pub async fn finish(mut self) -> Result<FileInfo, PipelineError> {
        if !self.buf.is_empty() {
            let chunk = self.buf.split().freeze();
            self.send(chunk).await?;
        }
        self.tx = None;
        self.join().await
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Not finished: cancel the upload; the output stays counted as having an open
            // writer, so it is aborted rather than committed.
            task.abort();
        }
    }
}
