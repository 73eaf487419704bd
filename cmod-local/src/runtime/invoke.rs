//! The developer-facing invoke API (plain HTTP on loopback): call a function by name and get
//! its result, list the posted schemas, the jobs in flight and the counters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::error::LocalError;
use super::routes::{error_response, read_body};
use super::state::State;
use super::{JobSpec, wait_for_result};

/// How long `POST /functions/{name}` waits for the result unless `?timeout_secs=` says otherwise.
pub const DEFAULT_INVOKE_TIMEOUT: Duration = Duration::from_secs(300);

/// The invoke router.
pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/functions/{name}", post(call_function))
        .route("/schemas", get(schemas))
        .route("/jobs", get(jobs))
        .route("/stats", get(stats))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Gives up on a job when the HTTP caller goes away before its result arrives.
struct AbandonOnDrop<'a> {
    state: &'a State,
    job_id: Option<String>,
}

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.job_id.take() {
            self.state.abandon(&id);
        }
    }
}

async fn call_function(
    AxState(state): AxState<Arc<State>>,
    name: Result<Path<String>, PathRejection>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const ROUTE: &str = "invoke POST /functions/{name}";
    let Path(function) = match name {
        Ok(p) => p,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ROUTE,
                format!("invalid function name: {e}"),
            );
        }
    };
    let timeout = match params.map(|Query(q)| q.get("timeout_secs").cloned()) {
        Ok(None) => DEFAULT_INVOKE_TIMEOUT,
        Ok(Some(s)) => match s.parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs > 0.0 => {
                Duration::from_secs_f64(secs.min(86_400.0))
            }
            _ => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    ROUTE,
                    format!(
                        "query parameter `timeout_secs` must be a positive number of seconds, got `{s}`"
                    ),
                );
            }
        },
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ROUTE,
                format!("invalid query string: {e}"),
            );
        }
    };
    let bytes = match read_body(body, ROUTE).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let query: serde_json::Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    ROUTE,
                    format!(
                        "the body for function `{function}` is not valid JSON: {e}; send the function's inputs as a JSON object, e.g. {{\"x\": 1}}"
                    ),
                );
            }
        }
    };
    let auth_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let user_id = headers
        .get("x-cmod-user-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let job_id = state.enqueue(JobSpec {
        function: function.clone(),
        query,
        auth_header,
        user_id,
        temporary_credentials_token: None,
        ..JobSpec::default()
    });
    tracing::info!(%job_id, %function, "invoke: job queued");
    let mut guard = AbandonOnDrop {
        state: &state,
        job_id: Some(job_id.clone()),
    };
    let outcome = wait_for_result(&state, &job_id, timeout).await;
    guard.job_id = None;
    let result = match outcome {
        Ok(result) => result,
        Err(e) => {
            state.abandon(&job_id);
            let status = match e {
                LocalError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                LocalError::JobDropped { .. } => StatusCode::BAD_GATEWAY,
                LocalError::ShutDown => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            return error_response(status, ROUTE, e.to_string());
        }
    };
    tracing::info!(%job_id, %function, bytes = result.body.len(), "invoke: result returned");
    let mut response = Response::new(Body::from(result.body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&job_id) {
        headers.insert("x-cmod-job-id", v);
    }
    response
}

async fn schemas(AxState(state): AxState<Arc<State>>) -> Response {
    match state.schemas() {
        Some(schemas) => axum::Json(schemas).into_response(),
        None => error_response(
            StatusCode::NOT_FOUND,
            "invoke GET /schemas",
            "no schemas posted yet: the module has not called POST_SCHEMA_URI".to_owned(),
        ),
    }
}

async fn jobs(AxState(state): AxState<Arc<State>>) -> Response {
    axum::Json(serde_json::json!({
        "inFlight": state.in_flight(),
        "queued": state.queued(),
    }))
    .into_response()
}

async fn stats(AxState(state): AxState<Arc<State>>) -> Response {
    axum::Json(state.stats()).into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "invoke",
        format!(
            "no route for {method} {}: the invoke API serves POST /functions/{{name}} (JSON body = the function's inputs), GET /schemas, GET /jobs and GET /stats",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "invoke",
        format!("method {method} is not allowed on {}", uri.path()),
    )
}
