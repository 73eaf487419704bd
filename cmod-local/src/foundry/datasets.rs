//! The local Foundry's dataset endpoints, backed by the [`DataStore`](super::store::DataStore).
//!
//! Public v2 API (under `/api`, docs/protocol.md §5.3):
//!
//! | Request | What |
//! |---|---|
//! | `GET /v2/datasets/{rid}` | the dataset |
//! | `GET /v2/datasets/{rid}/files?branchName&pathPrefix&pageSize&pageToken&startTransactionRid&endTransactionRid` | committed files, paginated |
//! | `GET /v2/datasets/{rid}/files/{path}?branchName` | one file's metadata |
//! | `GET /v2/datasets/{rid}/files/{path}/content?branchName` | file bytes, streamed |
//! | `POST /v2/datasets/{rid}/files/{path}/upload?transactionRid` (or `branchName&transactionType`) | streamed upload |
//! | `GET /v2/datasets/{rid}/transactions?preview=true&pageSize&pageToken` | transactions, newest first (`branchName` is a local addition, off with `set_transaction_branch_names(false)`) |
//! | `GET /v2/datasets/{rid}/branches/{branch}` | `{"name","transactionRid"?}`: the newest OPEN or COMMITTED transaction of the branch |
//! | `POST /v2/datasets/{rid}/transactions?branchName` `{"transactionType"}` | open a transaction |
//! | `GET /v2/datasets/{rid}/transactions/{txn}`, `POST …/{txn}/commit`, `POST …/{txn}/abort` | `APPEND` commits writing a path already in the view fail (409 `FileAlreadyExists`) |
//! | `DELETE /v2/datasets/{rid}/files/{path}?transactionRid` (or `branchName`) | remove a file in a `DELETE` transaction |
//! | `GET /v2/datasets/{rid}/getSchema?branchName&endTransactionRid&versionId`, `PUT …/putSchema` | schemas (`store/schema.rs`) |
//! | `GET /v2/datasets/{rid}/readTable?format&columns&rowLimit&startTransactionRid&endTransactionRid` | the view as a table (`tables.rs`, `tables` feature) |
//!
//! File listings take `startTransactionRid` / `endTransactionRid`: the files the committed
//! transactions of that range added (incremental reads).
//!
//! Legacy endpoints (the fallback when the public API is unavailable):
//! `GET /foundry-catalog/api/catalog/datasets/{rid}/views2/{branch}/files?pageSize&pageToken`
//! (`{"values": [{"logicalPath", "fileMetadata": {"length"}, …}], "nextPageToken"}`) and
//! `GET /foundry-data-proxy/api/dataproxy/datasets/{rid}/views/{branch}/{path}`.
//!
//! Every request needs a bearer token with the `api:datasets-read` / `api:datasets-write`
//! scope that may access the dataset: a pipeline token only reaches the RIDs it was issued for
//! (403 `PermissionDenied` otherwise).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::store::{
    DataframeReader, DatasetSchema, FileEntry, StoreError, Transaction, TransactionRange,
    TransactionType,
};
use super::{ApiError, FoundryState, Principal};

/// Default branch when a request names none.
pub(crate) const MASTER: &str = "master";
/// Chunk size for streamed file responses.
const CHUNK: usize = 64 * 1024;

/// The dataset routes (public v2 API, and the legacy catalog / data-proxy endpoints).
pub(crate) fn routes() -> Router<Arc<FoundryState>> {
    Router::new()
        .route("/api/v2/datasets/{rid}", get(get_dataset))
        .route("/api/v2/datasets/{rid}/files", get(list_files))
        .route(
            "/api/v2/datasets/{rid}/files/{*rest}",
            get(get_file).post(post_file).delete(delete_file),
        )
        .route("/api/v2/datasets/{rid}/getSchema", get(get_schema))
        .route(
            "/api/v2/datasets/{rid}/putSchema",
            axum::routing::put(put_schema),
        )
        .route(
            "/api/v2/datasets/{rid}/readTable",
            get(super::tables::read_table),
        )
        .route("/api/v2/datasets/{rid}/branches/{branch}", get(get_branch))
        .route(
            "/api/v2/datasets/{rid}/transactions",
            get(list_transactions).post(create_transaction),
        )
        .route(
            "/api/v2/datasets/{rid}/transactions/{txn}",
            get(get_transaction),
        )
        .route(
            "/api/v2/datasets/{rid}/transactions/{txn}/{action}",
            axum::routing::post(close_transaction),
        )
        .route(
            "/foundry-catalog/api/catalog/datasets/{rid}/views2/{branch}/files",
            get(legacy_list_files),
        )
        .route(
            "/foundry-data-proxy/api/dataproxy/datasets/{rid}/views/{branch}/{*path}",
            get(legacy_read_file),
        )
}

/// The answer of the public read endpoints when [`DataOptions::public_dataset_reads`] is off:
/// what a stack without the endpoint answers.
///
/// [`DataOptions::public_dataset_reads`]: super::store::DataOptions::public_dataset_reads
fn public_reads_disabled() -> ApiError {
    ApiError::not_found("EndpointNotFound")
}

/// Maps a store error to Foundry's error shape.
pub(crate) fn api_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { name, detail } => ApiError::not_found(name).param("detail", detail),
        StoreError::Invalid { name, detail } => {
            ApiError::invalid_argument(name).param("detail", detail)
        }
        StoreError::Conflict { name, detail } => {
            ApiError::new(StatusCode::CONFLICT, "CONFLICT", name).param("detail", detail)
        }
        StoreError::Io { context, source } => {
            tracing::warn!("local Foundry data error: {context}: {source}");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "Internal")
                .param("detail", format!("{context}: {source}"))
        }
    }
}

/// Checks the token, its scope, and that it may touch `rid` (pipeline tokens only reach the
/// resources of their alias map).
pub(crate) fn authorize_rid(
    state: &FoundryState,
    headers: &HeaderMap,
    scope: &str,
    rid: &str,
) -> Result<Principal, ApiError> {
    let principal = state.authorize(headers, Some(scope))?;
    if !principal.can_access(rid) {
        state.counters.forbidden.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::permission_denied("PermissionDenied")
            .param("rid", rid)
            .param(
                "reason",
                "this token does not grant access to the resource (a pipeline token reaches only \
                 the resources configured for the compute module)",
            ));
    }
    Ok(principal)
}

pub(crate) const READ: &str = "api:datasets-read";
const WRITE: &str = "api:datasets-write";

/// The `{action}` of a `…/transactions/{id}/{action}` request: `true` to commit, `false` to
/// abort.
pub(crate) fn close_action(action: String) -> Result<bool, ApiError> {
    match action.as_str() {
        "commit" => Ok(true),
        "abort" => Ok(false),
        _ => Err(ApiError::not_found("EndpointNotFound").param("action", action)),
    }
}

/// Streams a file as an `application/octet-stream` response, 64 KiB at a time.
pub(crate) async fn file_response(path: &Path) -> Result<Response, ApiError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| api_error(super::store::io(format!("opening {}", path.display()))(e)))?;
    // Only regular files have a known length (a named pipe is streamed until it closes).
    let len = file
        .metadata()
        .await
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = bytes::BytesMut::with_capacity(CHUNK);
        match file.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok::<_, std::io::Error>(buf.freeze()), file)),
            Err(e) => Some((Err(e), file)),
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(len) = len {
        headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    }
    Ok(response)
}

/// Writes a request body to `target` chunk by chunk (never whole in memory).
pub(crate) async fn receive_body(body: Body, target: &Path) -> Result<u64, ApiError> {
    let mut file = tokio::fs::File::create(target).await.map_err(|e| {
        api_error(super::store::io(format!("creating {}", target.display()))(
            e,
        ))
    })?;
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                drop(file);
                let _ = tokio::fs::remove_file(target).await;
                return Err(ApiError::invalid_argument("UploadInterrupted")
                    .param("detail", format!("the request body failed: {e}")));
            }
        };
        total += chunk.len() as u64;
        if let Err(e) = file.write_all(&chunk).await {
            drop(file);
            let _ = tokio::fs::remove_file(target).await;
            return Err(api_error(super::store::io("writing an upload")(e)));
        }
    }
    if let Err(e) = file.flush().await {
        let _ = tokio::fs::remove_file(target).await;
        return Err(api_error(super::store::io("writing an upload")(e)));
    }
    Ok(total)
}

/// Streams a committed file of a dataset branch; a missing file is a 404 with Foundry's error
/// shape.
async fn committed_file(
    state: &FoundryState,
    rid: &str,
    branch: &str,
    path: &str,
) -> Result<Response, ApiError> {
    state.data.file(rid, branch, path).map_err(api_error)?;
    let location = state
        .data
        .file_location(rid, branch, path)
        .map_err(api_error)?;
    file_response(&location).await
}

fn file_json(f: &FileEntry) -> serde_json::Value {
    json!({
        "path": f.path,
        "transactionRid": f.transaction_rid,
        "sizeBytes": f.size,
        "updatedTime": f.updated_time,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    branch_name: Option<String>,
    start_transaction_rid: Option<String>,
    end_transaction_rid: Option<String>,
    path_prefix: Option<String>,
    page_size: Option<usize>,
    page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileQuery {
    branch_name: Option<String>,
    transaction_rid: Option<String>,
    transaction_type: Option<TransactionType>,
}

async fn get_dataset(
    State(state): State<Arc<FoundryState>>,
    UrlPath(rid): UrlPath<String>,
    headers: HeaderMap,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    if !state.data.dataset_exists(&rid) {
        return Err(ApiError::not_found("DatasetNotFound").param("datasetRid", rid));
    }
    Ok(axum::Json(json!({
        "rid": rid,
        "name": rid,
        "parentFolderRid": "ri.compass.main.folder.cmod-local",
    })))
}

async fn list_files(
    State(state): State<Arc<FoundryState>>,
    UrlPath(rid): UrlPath<String>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    if !state.data.public_dataset_reads() {
        return Err(public_reads_disabled());
    }
    authorize_rid(&state, &headers, READ, &rid)?;
    let branch = q.branch_name.as_deref().unwrap_or(MASTER);
    let range = TransactionRange {
        start: q.start_transaction_rid,
        end: q.end_transaction_rid,
    };
    let page = state
        .data
        .list_files_in(
            &rid,
            branch,
            &range,
            q.path_prefix.as_deref(),
            q.page_size,
            q.page_token.as_deref(),
        )
        .map_err(api_error)?;
    let data: Vec<_> = page.items.iter().map(file_json).collect();
    let mut body = json!({ "data": data });
    if let Some(t) = page.next_page_token {
        body["nextPageToken"] = json!(t);
    }
    Ok(axum::Json(body))
}

async fn get_file(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, rest)): UrlPath<(String, String)>,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    let branch = q.branch_name.as_deref().unwrap_or(MASTER);
    if let Some(path) = rest.strip_suffix("/content") {
        if !state.data.public_dataset_reads() {
            return Err(public_reads_disabled());
        }
        return committed_file(&state, &rid, branch, path).await;
    }
    let f = state.data.file(&rid, branch, &rest).map_err(api_error)?;
    Ok(axum::Json(file_json(&f)).into_response())
}

async fn post_file(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, rest)): UrlPath<(String, String)>,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    authorize_rid(&state, &headers, WRITE, &rid)?;
    let Some(path) = rest.strip_suffix("/upload") else {
        return Err(ApiError::not_found("EndpointNotFound").param("path", rest));
    };
    let data = &state.data;
    // Either into an existing open transaction, or into a new one committed right away.
    let (txn, auto_commit) = match &q.transaction_rid {
        Some(t) => (t.clone(), false),
        None => {
            let branch = q.branch_name.as_deref().unwrap_or(MASTER);
            let t = data
                .create_transaction(
                    &rid,
                    branch,
                    q.transaction_type.unwrap_or(TransactionType::Update),
                )
                .await
                .map_err(api_error)?;
            (t.rid, true)
        }
    };
    let result = async {
        let tmp = data.upload_target(&rid, &txn, path).map_err(api_error)?;
        receive_body(body, &tmp).await?;
        data.finish_upload(&rid, &txn, path, &tmp)
            .await
            .map_err(api_error)
    }
    .await;
    if auto_commit {
        match &result {
            Ok(_) => {
                data.commit_transaction(&rid, &txn)
                    .await
                    .map_err(api_error)?;
            }
            Err(_) => {
                let _ = data.abort_transaction(&rid, &txn).await;
            }
        }
    }
    Ok(axum::Json(file_json(&result?)))
}

/// `DELETE /v2/datasets/{rid}/files/{path}?transactionRid` (an open `DELETE` transaction) or
/// `?branchName` (a `DELETE` transaction opened and committed for this file): 204.
async fn delete_file(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, path)): UrlPath<(String, String)>,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    authorize_rid(&state, &headers, WRITE, &rid)?;
    let data = &state.data;
    match &q.transaction_rid {
        Some(txn) => data
            .delete_file(&rid, txn, &path)
            .await
            .map_err(api_error)?,
        None => {
            let branch = q.branch_name.as_deref().unwrap_or(MASTER);
            let t = data
                .create_transaction(&rid, branch, TransactionType::Delete)
                .await
                .map_err(api_error)?;
            if let Err(e) = data.delete_file(&rid, &t.rid, &path).await {
                let _ = data.abort_transaction(&rid, &t.rid).await;
                return Err(api_error(e));
            }
            data.commit_transaction(&rid, &t.rid)
                .await
                .map_err(api_error)?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaQuery {
    branch_name: Option<String>,
    end_transaction_rid: Option<String>,
    version_id: Option<String>,
    /// Accepted and ignored: the endpoint is a preview one on some stacks.
    #[allow(dead_code)]
    preview: Option<bool>,
}

/// `GET /v2/datasets/{rid}/getSchema?branchName&endTransactionRid&versionId`:
/// `GetDatasetSchemaResponse`, 404 `SchemaNotFound` when the branch has none.
async fn get_schema(
    State(state): State<Arc<FoundryState>>,
    UrlPath(rid): UrlPath<String>,
    Query(q): Query<SchemaQuery>,
    headers: HeaderMap,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    let branch = q.branch_name.as_deref().unwrap_or(MASTER);
    let stored = state
        .data
        .get_schema(&rid, branch, q.end_transaction_rid.as_deref())
        .map_err(api_error)?;
    if q.version_id
        .as_ref()
        .is_some_and(|v| *v != stored.version_id)
    {
        return Err(ApiError::not_found("SchemaNotFound")
            .param("datasetRid", rid)
            .param("branchName", branch)
            .param("detail", "no schema with this versionId"));
    }
    Ok(axum::Json(schema_json(&stored)))
}

/// `GetDatasetSchemaResponse` (without the local `dataframeReader`).
fn schema_json(s: &super::store::StoredSchema) -> serde_json::Value {
    json!({
        "branchName": s.branch_name,
        "endTransactionRid": s.end_transaction_rid,
        "schema": s.schema,
        "versionId": s.version_id,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutSchemaRequest {
    branch_name: Option<String>,
    end_transaction_rid: Option<String>,
    dataframe_reader: Option<DataframeReader>,
    schema: DatasetSchema,
}

/// `PUT /v2/datasets/{rid}/putSchema` `PutDatasetSchemaRequest`: stores the schema for the
/// named (open or committed) transaction, or the branch's newest committed one.
async fn put_schema(
    State(state): State<Arc<FoundryState>>,
    UrlPath(rid): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    authorize_rid(&state, &headers, WRITE, &rid)?;
    let req: PutSchemaRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid_argument("InvalidSchema").param(
            "detail",
            format!(
                "expected {{\"schema\": {{\"fieldSchemaList\": [{{\"name\", \"type\", \"nullable\"}}]}}, \
                 \"branchName\"?, \"endTransactionRid\"?, \"dataframeReader\"?}}: {e}"
            ),
        )
    })?;
    if !state.data.dataset_exists(&rid) {
        return Err(ApiError::not_found("DatasetNotFound").param("datasetRid", rid));
    }
    let branch = req.branch_name.as_deref().unwrap_or(MASTER);
    let stored = state
        .data
        .put_schema(
            &rid,
            branch,
            req.end_transaction_rid.as_deref(),
            req.dataframe_reader.unwrap_or_default(),
            req.schema,
        )
        .await
        .map_err(api_error)?;
    Ok(axum::Json(schema_json(&stored)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransactionsQuery {
    preview: Option<bool>,
    page_size: Option<usize>,
    page_token: Option<String>,
    branch_name: Option<String>,
}

async fn list_transactions(
    State(state): State<Arc<FoundryState>>,
    UrlPath(rid): UrlPath<String>,
    Query(q): Query<TransactionsQuery>,
    headers: HeaderMap,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    if q.preview != Some(true) {
        return Err(
            ApiError::invalid_argument("ApiFeaturePreviewUsageOnly").param(
                "detail",
                "listing transactions is a preview endpoint: pass preview=true",
            ),
        );
    }
    let mut all = state.data.transactions(&rid).map_err(api_error)?;
    if let Some(branch) = &q.branch_name {
        all.retain(|t| &t.branch_name == branch);
    }
    let size = state.data.page_size(q.page_size);
    let start = match &q.page_token {
        Some(t) => all
            .iter()
            .position(|x| &x.rid == t)
            .map_or(all.len(), |i| i + 1),
        None => 0,
    };
    let page: Vec<_> = all
        .iter()
        .skip(start)
        .take(size)
        .map(|t| transaction_json(&state, t))
        .collect();
    let mut body = json!({ "data": page });
    if start + page.len() < all.len()
        && let Some(last) = page.last()
    {
        body["nextPageToken"] = last["rid"].clone();
    }
    Ok(axum::Json(body))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateTransaction {
    transaction_type: Option<TransactionType>,
}

async fn create_transaction(
    State(state): State<Arc<FoundryState>>,
    UrlPath(rid): UrlPath<String>,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    authorize_rid(&state, &headers, WRITE, &rid)?;
    let req: CreateTransaction = if body.is_empty() {
        CreateTransaction {
            transaction_type: None,
        }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::invalid_argument("InvalidTransactionRequest").param(
                "detail",
                format!(
                    "expected {{\"transactionType\": \"SNAPSHOT\"|\"UPDATE\"|\"APPEND\"|\"DELETE\"}}: {e}"
                ),
            )
        })?
    };
    let branch = q.branch_name.as_deref().unwrap_or(MASTER);
    let t = state
        .data
        .create_transaction(
            &rid,
            branch,
            req.transaction_type.unwrap_or(TransactionType::Append),
        )
        .await
        .map_err(api_error)?;
    Ok(axum::Json(transaction_json(&state, &t)))
}

/// A transaction as the API answers it: without `branchName` when
/// [`LocalFoundry::set_transaction_branch_names`](super::LocalFoundry::set_transaction_branch_names)
/// turned the local addition off.
fn transaction_json(state: &FoundryState, t: &Transaction) -> serde_json::Value {
    let mut v = json!(t);
    if !state.transaction_branch_names.load(Ordering::SeqCst)
        && let Some(o) = v.as_object_mut()
    {
        o.remove("branchName");
    }
    v
}

/// `GET /v2/datasets/{rid}/branches/{branch}`: `{"name", "transactionRid"?}`, the branch's most
/// recent `OPEN` or `COMMITTED` transaction.
async fn get_branch(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    let head = state.data.branch_head(&rid, &branch).map_err(api_error)?;
    let mut body = json!({ "name": branch });
    if let Some(t) = head {
        body["transactionRid"] = json!(t);
    }
    Ok(axum::Json(body))
}

async fn get_transaction(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, txn)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    let t = state.data.transaction(&rid, &txn).map_err(api_error)?;
    Ok(axum::Json(transaction_json(&state, &t)))
}

async fn close_transaction(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, txn, action)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    authorize_rid(&state, &headers, WRITE, &rid)?;
    let t = if close_action(action)? {
        state.data.commit_transaction(&rid, &txn).await
    } else {
        state.data.abort_transaction(&rid, &txn).await
    }
    // Foundry's transaction errors name the dataset and the transaction.
    .map_err(|e| {
        api_error(e)
            .param("datasetRid", rid.as_str())
            .param("transactionRid", txn.as_str())
    })?;
    Ok(axum::Json(transaction_json(&state, &t)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyListQuery {
    page_size: Option<usize>,
    page_token: Option<String>,
}

async fn legacy_list_files(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch)): UrlPath<(String, String)>,
    Query(q): Query<LegacyListQuery>,
    headers: HeaderMap,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    let page = state
        .data
        .list_files(&rid, &branch, None, q.page_size, q.page_token.as_deref())
        .map_err(api_error)?;
    let values: Vec<_> = page
        .items
        .iter()
        .map(|f| {
            json!({
                "logicalPath": f.path,
                "transactionRid": f.transaction_rid,
                "fileMetadata": { "length": f.size },
                "timeModified": f.updated_time,
                "isOpen": false,
            })
        })
        .collect();
    Ok(axum::Json(
        json!({ "values": values, "nextPageToken": page.next_page_token }),
    ))
}

async fn legacy_read_file(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch, path)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    committed_file(&state, &rid, &branch, &path).await
}
