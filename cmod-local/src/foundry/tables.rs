//! `GET /v2/datasets/{rid}/readTable`: a dataset's view as one table, Arrow IPC stream or CSV.
//!
//! Needs the `tables` cargo feature (Arrow and Parquet); without it the endpoint answers 501
//! `ReadTableNotEnabled`, naming the feature.

use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::datasets::{READ, authorize_rid};
use super::{ApiError, FoundryState};

/// `readTable` without the `tables` feature: a clear 501.
pub(crate) async fn read_table(
    State(state): State<Arc<FoundryState>>,
    UrlPath(rid): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    Err(not_enabled())
}

fn not_enabled() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "NOT_IMPLEMENTED",
        "ReadTableNotEnabled",
    )
    .param(
        "detail",
        "this cmod-local was built without the `tables` feature: readTable needs it \
         (cargo install cmod-local --features tables, or features = [\"tables\"] on the \
         cmod-local dependency)",
    )
}
