//! The local Foundry's ontology-metadata endpoint (docs/protocol.md §4.6), read by the
//! `ontology-metadata` program that writes a module's ontology metadata file.
//!
//! | Request | What |
//! |---|---|
//! | `POST /ontology-metadata/api/ontology/ontology/bulkLoadEntities` | the requested object and link types |
//!
//! The ontology is the file `<data dir>/ontology/entities.json`, in the answer's own shape:
//! `{"objectTypes": [{"objectType": {"rid", "id", "apiName", "primaryKeys", "propertyTypes"}}],
//! "linkTypes": [{"linkType": {"rid", "id", "definition"}}]}` (our reading of the service's
//! answer, from the fields the Python SDK reads). The answer lists the requested entries, in
//! request order; an unknown RID is a 404 naming it. Any valid token may call it.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

use super::{ApiError, FoundryState};

/// The path of the endpoint.
const BULK_LOAD: &str = "/ontology-metadata/api/ontology/ontology/bulkLoadEntities";

/// The ontology-metadata routes.
pub(crate) fn routes() -> Router<Arc<FoundryState>> {
    Router::new().route(BULK_LOAD, post(bulk_load_entities))
}

async fn bulk_load_entities(
    State(state): State<Arc<FoundryState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    state.authorize(&headers, None)?;
    let request: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid_argument("InvalidBulkLoadEntitiesRequest").param("detail", e.to_string())
    })?;
    let path = state.data.root().join("ontology").join("entities.json");
    let ontology: Value = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "InvalidLocalOntology",
            )
            .param("file", path.display().to_string())
            .param("detail", e.to_string())
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => {
            return Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "UnreadableLocalOntology",
            )
            .param("file", path.display().to_string())
            .param("detail", e.to_string()));
        }
    };
    let object_types = select(
        &request,
        &ontology,
        ("objectTypes", "objectType", "objectTypeRid"),
        "ObjectTypesNotFound",
    )?;
    let link_types = select(
        &request,
        &ontology,
        ("linkTypes", "linkType", "linkTypeRid"),
        "LinkTypesNotFound",
    )?;
    Ok(axum::Json(
        json!({"objectTypes": object_types, "linkTypes": link_types}),
    ))
}

/// The entries of `ontology[list]` whose `[entry].rid` is requested as
/// `request[list][i].identifier[rid_key]`, in request order.
fn select(
    request: &Value,
    ontology: &Value,
    (list, entry, rid_key): (&str, &str, &str),
    not_found: &str,
) -> Result<Vec<Value>, ApiError> {
    let available = ontology
        .get(list)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut missing = Vec::new();
    let requested = request
        .get(list)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for item in requested {
        let Some(rid) = item
            .get("identifier")
            .and_then(|i| i.get(rid_key))
            .and_then(Value::as_str)
        else {
            return Err(
                ApiError::invalid_argument("InvalidBulkLoadEntitiesRequest").param(
                    "detail",
                    format!("each of `{list}` needs `identifier.{rid_key}`"),
                ),
            );
        };
        match available.iter().find(|e| {
            e.get(entry)
                .and_then(|t| t.get("rid"))
                .and_then(Value::as_str)
                == Some(rid)
        }) {
            Some(found) => out.push(found.clone()),
            None => missing.push(rid.to_owned()),
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::not_found(not_found).param("rids", missing))
    }
}
