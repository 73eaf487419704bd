//! The local Foundry's stream endpoints, backed by JSON-lines files of the
//! [`DataStore`](super::store::DataStore) (one record per line; offset = line number; one
//! partition, `0`).
//!
//! High-scale API (docs/protocol.md §5.4), served under both `/api` and `/stream-proxy/api`:
//!
//! | Request | What |
//! |---|---|
//! | `POST …/v2/highScale/streams/datasets/{rid}/streams/{branch}/publishRecord` `{"record"}` | append one record |
//! | `POST …/publishRecords` `{"records": […]}` | append a batch (all or nothing) |
//! | `GET …/getRecords?partitionId&startOffset&limit` | `[{"offset", "value"}]` |
//! | `GET …/getEndOffsets` | `{"0": <next offset>}` |
//! | `GET /api/v2/streams/datasets/{rid}/streams/{branch}` | stream metadata |
//!
//! Subscribers (preview; a named, committed read position per client), served when
//! [`DataOptions::stream_subscribers`](super::store::DataOptions) is on:
//!
//! | Request | What |
//! |---|---|
//! | `POST /api/v2/streams/datasets/{rid}/streams/{branch}/subscribers` `{"subscriberId", "startPosition"?: "EARLIEST"\|"LATEST"}` | create (or get the existing one) |
//! | `GET` / `DELETE /api/v2/streams/datasets/{rid}/streams/{branch}/subscribers/{id}` | read / delete |
//! | `GET …/v2/highScale/streams/datasets/{rid}/streams/{branch}/subscribers/{id}/getReadPosition` | `{"0": <next offset>}` |
//! | `POST …/subscribers/{id}/commitOffsets` `{"offsets": {"0": <next offset>}}` | commit |
//! | `POST …/subscribers/{id}/readRecords` `{"limit"?}` | records from the committed position (not advancing it) |
//!
//! With [`DataOptions::high_scale_streams`](super::store::DataOptions) off, every
//! `…/v2/highScale/…` route answers 404 `EndpointNotFound`, as on a stack without that API; with
//! `stream_subscribers` off, so does every subscriber route.
//!
//! Legacy stream-proxy endpoints: `GET /stream-proxy/api/streams/{rid}/branches/{branch}/records`
//! (every record, `[{"offset", "value"}]`) and `POST …/jsonRecord` (body = one record).
//!
//! Tokens need `api:streams-read` / `api:streams-write` and access to the stream's RID.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::datasets::{api_error, authorize_rid};
use super::store::SubscriberStart;
use super::{ApiError, FoundryState};

const READ: &str = "api:streams-read";
const WRITE: &str = "api:streams-write";

/// The stream routes.
pub(crate) fn routes() -> Router<Arc<FoundryState>> {
    let mut r = Router::new();
    for base in ["/api", "/stream-proxy/api"] {
        let p = format!("{base}/v2/highScale/streams/datasets/{{rid}}/streams/{{branch}}");
        r = r
            .route(&format!("{p}/publishRecord"), post(publish_record))
            .route(&format!("{p}/publishRecords"), post(publish_records))
            .route(&format!("{p}/getRecords"), get(get_records))
            .route(&format!("{p}/getEndOffsets"), get(get_end_offsets))
            .route(
                &format!("{p}/subscribers/{{id}}/getReadPosition"),
                get(get_read_position),
            )
            .route(
                &format!("{p}/subscribers/{{id}}/commitOffsets"),
                post(commit_offsets),
            )
            .route(
                &format!("{p}/subscribers/{{id}}/readRecords"),
                post(subscriber_read_records),
            );
    }
    r.route(
        "/api/v2/streams/datasets/{rid}/streams/{branch}/subscribers",
        post(create_subscriber),
    )
    .route(
        "/api/v2/streams/datasets/{rid}/streams/{branch}/subscribers/{id}",
        get(get_subscriber).delete(delete_subscriber),
    )
    .route(
        "/api/v2/streams/datasets/{rid}/streams/{branch}",
        get(get_stream),
    )
    .route(
        "/stream-proxy/api/streams/{rid}/branches/{branch}/records",
        get(legacy_records),
    )
    .route(
        "/stream-proxy/api/streams/{rid}/branches/{branch}/jsonRecord",
        post(legacy_json_record),
    )
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8], expected: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_argument("InvalidRequestBody")
            .param("detail", format!("expected {expected}: {e}"))
    })
}

/// Appends records to a stream branch; the answer of the publish endpoints (`{}`).
async fn append(
    state: &FoundryState,
    rid: &str,
    branch: &str,
    records: &[Value],
) -> Result<axum::Json<Value>, ApiError> {
    state
        .data
        .append_records(rid, branch, records)
        .await
        .map_err(api_error)?;
    Ok(axum::Json(json!({})))
}

/// Records with their offsets, as the read endpoints answer them: `[{"offset", "value"}]`.
fn records_json(records: Vec<(u64, Value)>) -> axum::Json<Value> {
    let out: Vec<Value> = records
        .into_iter()
        .map(|(offset, value)| json!({ "offset": offset, "value": value }))
        .collect();
    axum::Json(Value::Array(out))
}

#[derive(Deserialize)]
struct PublishRecord {
    record: Value,
}

#[derive(Deserialize)]
struct PublishRecords {
    records: Vec<Value>,
}

async fn publish_record(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch)): UrlPath<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    high_scale(&state, uri.path())?;
    authorize_rid(&state, &headers, WRITE, &rid)?;
    let req: PublishRecord = parse_body(&body, "{\"record\": {…}}")?;
    append(&state, &rid, &branch, &[req.record]).await
}

async fn publish_records(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch)): UrlPath<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    high_scale(&state, uri.path())?;
    authorize_rid(&state, &headers, WRITE, &rid)?;
    let req: PublishRecords = parse_body(&body, "{\"records\": [{…}, …]}")?;
    append(&state, &rid, &branch, &req.records).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordsQuery {
    partition_id: Option<String>,
    start_offset: Option<u64>,
    limit: Option<usize>,
}

async fn get_records(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch)): UrlPath<(String, String)>,
    Query(q): Query<RecordsQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    high_scale(&state, uri.path())?;
    authorize_rid(&state, &headers, READ, &rid)?;
    if q.partition_id.as_deref().is_some_and(|p| p != "0") {
        return Err(ApiError::invalid_argument("InvalidPartitionId")
            .param("partitionId", q.partition_id.unwrap_or_default())
            .param("detail", "local streams have one partition, `0`"));
    }
    let limit = state.data.page_size(q.limit);
    let records = state
        .data
        .read_records(&rid, &branch, q.start_offset.unwrap_or(0), limit)
        .map_err(api_error)?;
    Ok(records_json(records))
}

async fn get_end_offsets(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch)): UrlPath<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    high_scale(&state, uri.path())?;
    authorize_rid(&state, &headers, READ, &rid)?;
    let end = state.data.end_offset(&rid, &branch).map_err(api_error)?;
    Ok(axum::Json(json!({ "0": end })))
}

async fn get_stream(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    state.data.end_offset(&rid, &branch).map_err(api_error)?;
    Ok(axum::Json(json!({
        "branchName": branch,
        "schema": {},
        "viewRid": format!("ri.foundry-streaming.main.view.{rid}"),
        "partitionsCount": 1,
        "streamType": "LOW_LATENCY",
        "compressed": false,
    })))
}

async fn legacy_records(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    let records = state
        .data
        .read_records(&rid, &branch, 0, usize::MAX)
        .map_err(api_error)?;
    Ok(records_json(records))
}

async fn legacy_json_record(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    authorize_rid(&state, &headers, WRITE, &rid)?;
    let record: Value = parse_body(&body, "one JSON object")?;
    append(&state, &rid, &branch, &[record]).await
}

/// 404 `EndpointNotFound` when the high-scale API is switched off.
fn high_scale(state: &FoundryState, path: &str) -> Result<(), ApiError> {
    if state.data.high_scale_streams() {
        Ok(())
    } else {
        Err(ApiError::not_found("EndpointNotFound").param("path", path))
    }
}

/// 404 `EndpointNotFound` when the subscriber API (or, for its high-scale routes, the
/// high-scale API) is switched off.
fn subscribers(state: &FoundryState, path: &str) -> Result<(), ApiError> {
    if state.data.stream_subscribers()
        && (state.data.high_scale_streams() || path.starts_with("/api/v2/streams/"))
    {
        Ok(())
    } else {
        Err(ApiError::not_found("EndpointNotFound").param("path", path))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateSubscriber {
    subscriber_id: String,
    #[serde(default)]
    start_position: SubscriberStart,
}

async fn create_subscriber(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch)): UrlPath<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    subscribers(&state, uri.path())?;
    authorize_rid(&state, &headers, READ, &rid)?;
    let req: CreateSubscriber = parse_body(
        &body,
        "{\"subscriberId\": \"…\", \"startPosition\": \"EARLIEST\"|\"LATEST\"}",
    )?;
    let (s, _) = state
        .data
        .create_subscriber(&rid, &branch, &req.subscriber_id, req.start_position)
        .await
        .map_err(api_error)?;
    Ok(axum::Json(json!(s)))
}

async fn get_subscriber(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch, id)): UrlPath<(String, String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    subscribers(&state, uri.path())?;
    authorize_rid(&state, &headers, READ, &rid)?;
    let s = state
        .data
        .subscriber(&rid, &branch, &id)
        .map_err(api_error)?;
    Ok(axum::Json(json!(s)))
}

async fn delete_subscriber(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch, id)): UrlPath<(String, String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    subscribers(&state, uri.path())?;
    authorize_rid(&state, &headers, READ, &rid)?;
    state
        .data
        .delete_subscriber(&rid, &branch, &id)
        .await
        .map_err(api_error)?;
    Ok(axum::Json(json!({})))
}

async fn get_read_position(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch, id)): UrlPath<(String, String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    subscribers(&state, uri.path())?;
    authorize_rid(&state, &headers, READ, &rid)?;
    let s = state
        .data
        .subscriber(&rid, &branch, &id)
        .map_err(api_error)?;
    Ok(axum::Json(json!(s.offsets)))
}

#[derive(Deserialize)]
struct CommitOffsets {
    offsets: BTreeMap<String, u64>,
}

async fn commit_offsets(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch, id)): UrlPath<(String, String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    subscribers(&state, uri.path())?;
    authorize_rid(&state, &headers, READ, &rid)?;
    let req: CommitOffsets = parse_body(&body, "{\"offsets\": {\"0\": <offset>}}")?;
    state
        .data
        .commit_subscriber_offsets(&rid, &branch, &id, &req.offsets)
        .await
        .map_err(api_error)?;
    Ok(axum::Json(json!({})))
}

#[derive(Deserialize, Default)]
struct ReadRecords {
    limit: Option<usize>,
}

async fn subscriber_read_records(
    State(state): State<Arc<FoundryState>>,
    UrlPath((rid, branch, id)): UrlPath<(String, String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    subscribers(&state, uri.path())?;
    authorize_rid(&state, &headers, READ, &rid)?;
    let req: ReadRecords = if body.is_empty() {
        ReadRecords::default()
    } else {
        parse_body(&body, "{\"limit\": <n>}")?
    };
    let s = state
        .data
        .subscriber(&rid, &branch, &id)
        .map_err(api_error)?;
    let from = s.offsets.get("0").copied().unwrap_or(0);
    let limit = state.data.page_size(req.limit);
    let records = state
        .data
        .read_records(&rid, &branch, from, limit)
        .map_err(api_error)?;
    Ok(records_json(records))
}
