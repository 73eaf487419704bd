//! The module-facing runtime API (docs/protocol.md §3.1), served over HTTPS.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use std::sync::atomic::Ordering;

use futures_util::StreamExt as _;

use super::JobResult;
use super::faults::ResultFault;
use super::state::{Counters, ResultRejection, State};
use super::watch::Progress;
use crate::https::AbortConnection;
use bytes::BytesMut;
use tokio::sync::mpsc;

/// Path prefix of the runtime API routes (`{PREFIX}/job`, `{PREFIX}/results/{jobId}`, …).
pub const PREFIX: &str = "/interactive-module/api/internal-query";
/// Largest request body the runtime and the invoke API accept: 1 GiB (results of streaming
/// functions can be large).
pub const BODY_LIMIT: usize = 1 << 30;
/// The auth header every call must carry.
const AUTH_HEADER: &str = "module-auth-token";

/// A 4xx/5xx answer with a JSON `{"error": …}` body, logged at `warn`.
pub(crate) fn error_response(status: StatusCode, route: &str, message: String) -> Response {
    tracing::warn!(status = status.as_u16(), route, "{message}");
    let body = serde_json::json!({ "error": message });
    (status, axum::Json(body)).into_response()
}

/// The runtime router.
pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route(&format!("{PREFIX}/job"), get(get_job))
        .route(&format!("{PREFIX}/results/{{job_id}}"), post(post_result))
        .route(&format!("{PREFIX}/schemas"), post(post_schemas))
        .route(&format!("{PREFIX}/restart-notify"), post(restart_notify))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// What every runtime request goes through first: the request counter and the injected delay.
async fn preamble(state: &State) {
    Counters::bump(&state.counters.requests_total);
    if let Some(delay) = state.faults.delay() {
        tokio::time::sleep(delay).await;
    }
}

/// Checks `Module-Auth-Token`: `None` if it is right, else the 401 response to send.
fn auth_rejection(state: &State, headers: &HeaderMap, route: &str) -> Option<Response> {
    let message = match headers.get(AUTH_HEADER) {
        Some(v) if state.token_matches(v.as_bytes()) => return None,
        Some(_) => {
            "wrong Module-Auth-Token header: send the contents of the file named by MODULE_AUTH_TOKEN"
        }
        None => {
            "missing Module-Auth-Token header: send the contents of the file named by MODULE_AUTH_TOKEN"
        }
    };
    Counters::bump(&state.counters.auth_failures);
    Some(error_response(
        StatusCode::UNAUTHORIZED,
        route,
        message.to_owned(),
    ))
}

/// Reads a whole request body (chunked or not), up to [`BODY_LIMIT`].
pub(crate) async fn read_body(body: Body, route: &str) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                route,
                format!(
                    "request body is larger than the local runtime's limit of {BODY_LIMIT} bytes"
                ),
            )
        } else {
            error_response(
                StatusCode::BAD_REQUEST,
                route,
                format!("could not read the request body: {e}"),
            )
        }
    })
}

/// [`read_body`], reporting the attempt and each piece of the body to `watcher` as it is read.
async fn read_body_watched(
    body: Body,
    route: &str,
    watcher: &mpsc::UnboundedSender<Progress>,
    chunked: bool,
) -> Result<Bytes, Response> {
    use http_body_util::BodyExt as _;
    let _ = watcher.send(Progress::Started { chunked });
    let mut body = body;
    let mut collected = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Ok(collected.freeze()),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if collected.len() + data.len() > BODY_LIMIT {
                    let _ = watcher.send(Progress::Interrupted);
                    return Err(error_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        route,
                        format!(
                            "request body is larger than the local runtime's limit of {BODY_LIMIT} bytes"
                        ),
                    ));
                }
                collected.extend_from_slice(&data);
                let _ = watcher.send(Progress::Chunk(data));
            }
            Some(Err(e)) => {
                let _ = watcher.send(Progress::Interrupted);
                return Err(error_response(
                    StatusCode::BAD_REQUEST,
                    route,
                    format!("could not read the request body: {e}"),
                ));
            }
        }
    }
}

fn injected(state: &State, status: StatusCode, route: &str) -> Response {
    Counters::bump(&state.counters.rejected_by_fault);
    tracing::debug!(
        status = status.as_u16(),
        route,
        "answering with an injected fault"
    );
    let body = serde_json::json!({
        "error": format!("injected fault: the local runtime answers {route} with {status}")
    });
    (status, axum::Json(body)).into_response()
}

async fn get_job(AxState(state): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    const ROUTE: &str = "GET job";
    preamble(&state).await;
    if let Some(r) = auth_rejection(&state, &headers, ROUTE) {
        return r;
    }
    Counters::bump(&state.counters.polls);
    state.mark_poll();
    if let Some(status) = state.faults.poll_fault() {
        return injected(&state, status, ROUTE);
    }
    if let Some(to) = state.faults.poll_redirect() {
        Counters::bump(&state.counters.rejected_by_fault);
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("{to}/job")) {
            response.headers_mut().insert(header::LOCATION, v);
        }
        return response;
    }
    let Some(job) = state.next_job().await else {
        return StatusCode::NO_CONTENT.into_response();
    };
    match job.envelope() {
        Ok(bytes) => {
            tracing::debug!(job_id = %job.job_id, function = %job.spec.function, "job handed out");
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                bytes,
            )
                .into_response()
        }
        Err(e) => {
            // Unreachable in practice (a `serde_json::Value` always serializes); never lose the
            // job silently.
            tracing::error!(job_id = %job.job_id, "could not serialize the job envelope: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn post_result(
    AxState(state): AxState<Arc<State>>,
    job_id: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const ROUTE: &str = "POST results/{jobId}";
    preamble(&state).await;
    let body = match state.faults.early_result_fault() {
        None => body,
        Some(fault) => match early_result_fault(&state, fault, &uri, &headers, body).await {
            Ok(body) => body,
            Err(response) => return response,
        },
    };
    let chunked = headers.get_all(header::TRANSFER_ENCODING).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains("chunked"))
    });
    // Checked before the body is read (and counted once); answered after it was consumed.
    let rejected = auth_rejection(&state, &headers, ROUTE);
    // A watched job (a streamed `--invoke` / invoke-API call) sees its body as it is read.
    let watcher = match (&job_id, &rejected) {
        (Ok(Path(id)), None) => state.watcher(id),
        _ => None,
    };
    let read = match watcher {
        None => read_body(body, ROUTE).await,
        Some(watcher) => read_body_watched(body, ROUTE, &watcher, chunked).await,
    };
    let bytes = match read {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(r) = rejected {
        return r;
    }
    let Path(job_id) = match job_id {
        Ok(p) => p,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ROUTE,
                format!("invalid job id in path: {e}"),
            );
        }
    };
    if let Some(status) = state.faults.result_fault() {
        return injected(&state, status, ROUTE);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let len = bytes.len();
    let result = JobResult {
        job_id: job_id.clone(),
        body: Vec::from(bytes),
        content_type,
        chunked,
    };
    match state.accept_result(&job_id, result) {
        Ok(function) => {
            tracing::debug!(%job_id, %function, bytes = len, chunked, "result accepted");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(rejection) => {
            let (status, message) = match rejection {
                ResultRejection::Unknown => {
                    Counters::bump(&state.counters.unknown_job_results);
                    (
                        StatusCode::NOT_FOUND,
                        format!(
                            "unknown job id `{job_id}`: this runtime never handed out such a job"
                        ),
                    )
                }
                ResultRejection::NotHandedOut { function, state: s } => {
                    Counters::bump(&state.counters.unknown_job_results);
                    (
                        StatusCode::NOT_FOUND,
                        format!(
                            "job `{job_id}` (function `{function}`) is {s}, not in flight: it was never handed out by GET job"
                        ),
                    )
                }
                ResultRejection::Dropped { function } => {
                    Counters::bump(&state.counters.unknown_job_results);
                    (
                        StatusCode::NOT_FOUND,
                        format!(
                            "job `{job_id}` (function `{function}`) was dropped by a restart notification; its result is no longer expected"
                        ),
                    )
                }
                ResultRejection::Duplicate { function } => {
                    Counters::bump(&state.counters.duplicate_results);
                    let function =
                        function.map_or_else(String::new, |f| format!(" (function `{f}`)"));
                    (
                        StatusCode::CONFLICT,
                        format!(
                            "job `{job_id}`{function} already has a result: each job takes exactly one"
                        ),
                    )
                }
            };
            error_response(status, ROUTE, message)
        }
    }
}

/// Applies a fault that acts before the result body is read: `Err` is the response to give
/// (possibly one that aborts the connection), `Ok` the body to go on with.
async fn early_result_fault(
    state: &State,
    fault: ResultFault,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Body, Response> {
    const ROUTE: &str = "POST results/{jobId}";
    if let Some(r) = auth_rejection(state, headers, ROUTE) {
        return Err(r);
    }
    Counters::bump(&state.counters.rejected_by_fault);
    tracing::debug!(?fault, "applying an injected result fault");
    let abort = || {
        let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
        response.extensions_mut().insert(AbortConnection);
        response
    };
    match fault {
        ResultFault::Early(status) => {
            // `injected` counts the request again; keep one count per faulted request.
            state
                .counters
                .rejected_by_fault
                .fetch_sub(1, Ordering::Relaxed);
            Err(injected(state, status, ROUTE))
        }
        ResultFault::Redirect(to) => {
            let segment = uri.path().rsplit('/').next().unwrap_or_default();
            let location = format!("{to}/{segment}");
            let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            Err(response)
        }
        ResultFault::Cut(after) => {
            let mut stream = body.into_data_stream();
            let mut read = 0usize;
            while read < after {
                match stream.next().await {
                    Some(Ok(chunk)) => read += chunk.len(),
                    _ => break,
                }
            }
            Err(abort())
        }
        ResultFault::Hold(d) => {
            let _ = axum::body::to_bytes(body, BODY_LIMIT).await;
            tokio::time::sleep(d).await;
            Err(abort())
        }
        ResultFault::Stall(d) => {
            tokio::time::sleep(d).await;
            drop(body);
            Err(abort())
        }
    }
}

async fn post_schemas(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const ROUTE: &str = "POST schemas";
    preamble(&state).await;
    let bytes = match read_body(body, ROUTE).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(r) = auth_rejection(&state, &headers, ROUTE) {
        return r;
    }
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ROUTE,
                format!("schemas body is not valid JSON: {e}"),
            );
        }
    };
    let Some(functions) = value.as_array() else {
        return error_response(
            StatusCode::BAD_REQUEST,
            ROUTE,
            format!(
                "schemas body must be a JSON array of function specs (docs/protocol.md §4), got {}",
                json_kind(&value)
            ),
        );
    };
    Counters::bump(&state.counters.schema_posts);
    tracing::info!(
        functions = functions.len(),
        names = %function_names(functions),
        "module posted its function schemas"
    );
    state.set_schemas(value);
    StatusCode::NO_CONTENT.into_response()
}

/// `functionName`s of a schema array, comma-separated.
pub(crate) fn function_names(functions: &[serde_json::Value]) -> String {
    functions
        .iter()
        .filter_map(|f| f.get("functionName").and_then(|n| n.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

async fn restart_notify(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const ROUTE: &str = "POST restart-notify";
    preamble(&state).await;
    if let Err(r) = read_body(body, ROUTE).await {
        return r;
    }
    if let Some(r) = auth_rejection(&state, &headers, ROUTE) {
        return r;
    }
    Counters::bump(&state.counters.restart_notifications);
    let dropped = state.drop_in_flight();
    if dropped.is_empty() {
        tracing::info!("module reported a restart; no jobs were in flight");
    } else {
        tracing::warn!(
            dropped = dropped.len(),
            "module reported a restart; dropped the jobs it had in flight"
        );
    }
    axum::Json(dropped).into_response()
}

async fn not_found(AxState(state): AxState<Arc<State>>, method: Method, uri: Uri) -> Response {
    Counters::bump(&state.counters.requests_total);
    error_response(
        StatusCode::NOT_FOUND,
        "runtime",
        format!(
            "no route for {method} {}: the local runtime serves GET {PREFIX}/job, POST {PREFIX}/results/{{jobId}}, POST {PREFIX}/schemas and POST {PREFIX}/restart-notify",
            uri.path()
        ),
    )
}

async fn method_not_allowed(
    AxState(state): AxState<Arc<State>>,
    method: Method,
    uri: Uri,
) -> Response {
    Counters::bump(&state.counters.requests_total);
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "runtime",
        format!("method {method} is not allowed on {}", uri.path()),
    )
}
