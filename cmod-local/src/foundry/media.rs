//! The local Foundry's media-set endpoints (docs/protocol.md §5.5), backed by the
//! [`DataStore`](super::store::DataStore): items are files under
//! `mediasets/<rid>/branches/<branch>/`.
//!
//! | Request | What |
//! |---|---|
//! | `GET /api/v2/mediasets/{rid}` | `{"rid", "defaultBranchName", "transactionPolicy", "pathsRequired"}` |
//! | `POST /api/v2/mediasets/{rid}/transactions?branchName` | a transaction id (JSON string) |
//! | `POST /api/v2/mediasets/{rid}/transactions/{id}/commit` / `…/abort` | |
//! | `POST /api/v2/mediasets/{rid}/items?mediaItemPath&branchName&transactionId` (raw body) | `{"mediaItemRid"}` |
//! | `GET /api/v2/mediasets/{rid}/items/getRidByPath?mediaItemPath&branchName` | `{"mediaItemRid"}` |
//! | `GET /api/v2/mediasets/{rid}/items/{itemRid}/content` | the item's bytes |
//!
//! A `TRANSACTIONAL` media set (the default) takes uploads only inside a transaction.
//! Tokens need `api:mediasets-read` / `api:mediasets-write` and access to the media set's RID.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::datasets::{
    MASTER, api_error, authorize_rid, close_action, file_response, receive_body,
};
use super::{ApiError, FoundryState};

const READ: &str = "api:mediasets-read";
const WRITE: &str = "api:mediasets-write";

/// The media-set routes.
pub(crate) fn routes() -> Router<Arc<FoundryState>> {
    Router::new()
        .route("/api/v2/mediasets/{rid}", get(get_media_set))
        .route(
            "/api/v2/mediasets/{rid}/transactions",
            post(create_transaction),
        )
        .route(
            "/api/v2/mediasets/{rid}/transactions/{id}/{action}",
            post(close_transaction),
        )
        .route("/api/v2/mediasets/{rid}/items", post(upload_item))
        .route(
            "/api/v2/mediasets/{rid}/items/getRidByPath",
            get(rid_by_path),
        )
        .route(
            "/api/v2/mediasets/{rid}/items/{item}/content",
            get(read_item),
        )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaQuery {
    branch_name: Option<String>,
    media_item_path: Option<String>,
    transaction_id: Option<String>,
}

impl MediaQuery {
    /// `mediaItemPath`, which the item endpoints require.
    fn item_path(&self) -> Result<&str, ApiError> {
        self.media_item_path.as_deref().ok_or_else(|| {
            ApiError::invalid_argument("MissingMediaItemPath").param("detail", "pass mediaItemPath")
        })
    }
}

async fn get_media_set(
    State(state): State<Arc<FoundryState>>,
    UrlPath(rid): UrlPath<String>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    let transactional = state
        .data
        .media_set_transactional(&rid)
        .map_err(api_error)?;
    Ok(axum::Json(json!({
        "rid": rid,
        "mediaSchema": "UNKNOWN",
        "defaultBranchName": MASTER,
        "transactionPolicy": if transactional { "TRANSACTIONAL" } else { "NO_TRANSACTIONS" },
        "pathsRequired": true,
    })))
}

async fn create_transaction(
    State(state): State<Arc<FoundryState>>,
    UrlPath(rid): UrlPath<String>,
    Query(q): Query<MediaQuery>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    authorize_rid(&state, &headers, WRITE, &rid)?;
    let branch = q.branch_name.as_deref().unwrap_or(MASTER);
    let t = state
        .data
        .create_media_transaction(&rid, branch)
        .await
        .map_err(api_error)?;
    Ok(axum::Json(json!(t.id)))
}

async fn close_transaction(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, id, action)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    authorize_rid(&state, &headers, WRITE, &rid)?;
    let commit = close_action(action)?;
    state
        .data
        .close_media_transaction(&rid, &id, commit)
        .await
        .map_err(api_error)?;
    Ok(axum::Json(json!({})))
}

async fn upload_item(
    State(state): State<Arc<FoundryState>>,
    UrlPath(rid): UrlPath<String>,
    Query(q): Query<MediaQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<Value>, ApiError> {
    authorize_rid(&state, &headers, WRITE, &rid)?;
    let path = q.item_path()?;
    let branch = q.branch_name.as_deref().unwrap_or(MASTER);
    let data = &state.data;
    if q.transaction_id.is_none() && data.media_set_transactional(&rid).map_err(api_error)? {
        return Err(ApiError::invalid_argument("TransactionRequired")
            .param("mediaSetRid", rid)
            .param(
                "detail",
                "this media set is transactional: pass transactionId",
            ));
    }
    let tmp = data.media_upload_target(&rid).map_err(api_error)?;
    receive_body(body, &tmp).await?;
    let item = data
        .finish_media_upload(&rid, branch, q.transaction_id.as_deref(), path, &tmp)
        .await
        .map_err(api_error)?;
    Ok(axum::Json(json!({ "mediaItemRid": item })))
}

async fn rid_by_path(
    State(state): State<Arc<FoundryState>>,
    UrlPath(rid): UrlPath<String>,
    Query(q): Query<MediaQuery>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    let path = q.item_path()?;
    let branch = q.branch_name.as_deref().unwrap_or(MASTER);
    let item = state
        .data
        .media_item_by_path(&rid, branch, path)
        .map_err(api_error)?;
    Ok(axum::Json(json!({ "mediaItemRid": item })))
}

async fn read_item(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, item)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    let location = state
        .data
        .media_item_location(&rid, &item)
        .map_err(api_error)?;
    file_response(&location).await
}
