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

use super::JobSpec;
use super::error::LocalError;
use super::routes::BODY_LIMIT;
use super::state::State;
use super::watch::{CallEvent, StreamedCall};
use bytes::Bytes;

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
struct AbandonOnDrop {
    state: Arc<State>,
    job_id: Option<String>,
}

impl Drop for AbandonOnDrop {
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
            return invoke_error(
                StatusCode::BAD_REQUEST,
                ROUTE,
                "InvalidInput",
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
                return invoke_error(
                    StatusCode::BAD_REQUEST,
                    ROUTE,
                    "InvalidInput",
                    format!(
                        "query parameter `timeout_secs` must be a positive number of seconds, got `{s}`"
                    ),
                );
            }
        },
        Err(e) => {
            return invoke_error(
                StatusCode::BAD_REQUEST,
                ROUTE,
                "InvalidInput",
                format!("invalid query string: {e}"),
            );
        }
    };
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            return invoke_error(
                StatusCode::BAD_REQUEST,
                ROUTE,
                "InvalidInput",
                format!("could not read the request body (limit {BODY_LIMIT} bytes): {e}"),
            );
        }
    };
    let query: serde_json::Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                return invoke_error(
                    StatusCode::BAD_REQUEST,
                    ROUTE,
                    "InvalidInput",
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
    let (job_id, progress) = state.enqueue_watched(JobSpec {
        function: function.clone(),
        query,
        auth_header,
        user_id,
        temporary_credentials_token: None,
        ..JobSpec::default()
    });
    tracing::info!(%job_id, %function, "invoke: job queued");
    let mut guard = AbandonOnDrop {
        state: Arc::clone(&state),
        job_id: Some(job_id.clone()),
    };
    let mut call = StreamedCall::from_parts(Arc::clone(&state), job_id.clone(), progress);
    // `timeout` bounds each wait for progress (an idle timeout): a stream that keeps producing
    // is never cut off.
    let first = call.next(timeout).await;
    match first {
        Ok(CallEvent::Done(result)) => {
            guard.job_id = None;
            tracing::info!(%job_id, %function, bytes = result.body.len(), "invoke: result returned");
            json_response(Body::from(result.body), &job_id, "application/json")
        }
        Ok(CallEvent::Streaming | CallEvent::Item(_)) => {
            tracing::info!(%job_id, %function, "invoke: streaming the result");
            let first: Option<Bytes> = match first {
                Ok(CallEvent::Item(item)) => Some(item),
                _ => None,
            };
            // One JSON value per line, each written as the module produces it.
            let lines =
                futures_util::stream::unfold(Some((call, guard, first)), move |st| async move {
                    let (mut call, mut guard, first) = st?;
                    if let Some(item) = first {
                        return Some((
                            Ok::<Bytes, std::convert::Infallible>(line(&item)),
                            Some((call, guard, None)),
                        ));
                    }
                    loop {
                        match call.next(timeout).await {
                            Ok(CallEvent::Item(item)) => {
                                return Some((Ok(line(&item)), Some((call, guard, None))));
                            }
                            Ok(CallEvent::Streaming) => continue,
                            Ok(CallEvent::Done(result)) => {
                                guard.job_id = None;
                                let last = call.rest_after_items(&result);
                                return last.map(|l| (Ok(l), None));
                            }
                            Err(e) => {
                                guard.job_id = None;
                                let error = error_json(error_kind(&e), &e.to_string());
                                return Some((Ok(line(&error)), None));
                            }
                        }
                    }
                });
            json_response(Body::from_stream(lines), &job_id, "application/x-ndjson")
        }
        Err(e) => {
            guard.job_id = None;
            state.abandon(&job_id);
            let status = match e {
                LocalError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                LocalError::JobDropped { .. } => StatusCode::BAD_GATEWAY,
                LocalError::ShutDown => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            invoke_error(status, ROUTE, error_kind(&e), e.to_string())
        }
    }
}

fn json_response(body: Body, job_id: &str, content_type: &'static str) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(job_id) {
        headers.insert("x-cmod-job-id", v);
    }
    response
}

/// `item` followed by a newline.
fn line(item: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(item.len() + 1);
    line.extend_from_slice(item);
    line.push(b'\n');
    Bytes::from(line)
}

async fn schemas(AxState(state): AxState<Arc<State>>) -> Response {
    match state.schemas() {
        Some(schemas) => axum::Json(schemas).into_response(),
        None => invoke_error(
            StatusCode::NOT_FOUND,
            "invoke GET /schemas",
            "NotFound",
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
    invoke_error(
        StatusCode::NOT_FOUND,
        "invoke",
        "NotFound",
        format!(
            "no route for {method} {}: the invoke API serves POST /functions/{{name}} (JSON body = the function's inputs), GET /schemas, GET /jobs and GET /stats",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    invoke_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invoke",
        "MethodNotAllowed",
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

/// The JSON error body of the invoke API: `{"error": {"kind": …, "message": …}}`, the same
/// shape as a function's error result.
fn error_json(kind: &str, message: &str) -> Bytes {
    let body = serde_json::json!({ "error": { "kind": kind, "message": message } });
    Bytes::from(body.to_string())
}

/// The `kind` for a failed wait on a job.
fn error_kind(e: &LocalError) -> &'static str {
    match e {
        LocalError::Timeout { .. } => "Timeout",
        LocalError::JobDropped { .. } => "JobDropped",
        LocalError::JobCancelled { .. } => "JobCancelled",
        LocalError::ShutDown => "ShutDown",
        _ => "Internal",
    }
}

/// A 4xx/5xx answer of the invoke API, logged at `warn`.
fn invoke_error(status: StatusCode, route: &str, kind: &str, message: String) -> Response {
    tracing::warn!(status = status.as_u16(), route, kind, "{message}");
    let mut response = Response::new(Body::from(error_json(kind, &message)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
