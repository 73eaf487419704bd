//! The execute API (docs/protocol.md §10): `POST /contour-backend-multiplexer/api/module-group-multiplexer/compute-modules/jobs/execute`
//! runs a function of another local module and answers its raw result bytes.
//!
//! Modules are local runtimes registered by RID ([`LocalFoundry::register_module`]), or other
//! local modules' invoke APIs on loopback ([`LocalFoundry::register_module_url`], how two
//! `CMOD_LOCAL=1` processes call each other: `CMOD_LOCAL_MODULES`). A call is
//! authorized like every other API call (any valid bearer token), queued on the callee's
//! runtime as a job whose `authHeader` is the caller's `Authorization` and whose `userId` is the
//! token's subject, and answered with the callee's result body as it was posted
//! (`application/octet-stream`): a JSON value, the values of a streamed result one after the
//! other, or the callee's `{"error": …}` result, all with 200 as the result of a job that ran.
//! An unknown RID is a 404 `ComputeModuleNotFound`; a callee that posts no result within
//! [`EXECUTE_TIMEOUT`] is a 504.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use http_body_util::{BodyExt as _, Full};

use super::{ApiError, FoundryState, LocalFoundry, LocalFoundryError};
use crate::runtime::{JobSpec, LocalError, LocalRuntime};

/// The execute API's path.
pub const EXECUTE_PATH: &str =
    "/contour-backend-multiplexer/api/module-group-multiplexer/compute-modules/jobs/execute";

/// How long the execute API waits for the callee's result: Foundry's limit for callers of a
/// compute module's function.
pub const EXECUTE_TIMEOUT: Duration = Duration::from_secs(300);

/// Where calls for one RID go.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    /// A runtime in this process.
    Runtime(LocalRuntime),
    /// Another local module's invoke API (`http://127.0.0.1:PORT`).
    Invoke(String),
}

pub(super) fn routes() -> Router<Arc<FoundryState>> {
    Router::new().route(EXECUTE_PATH, post(execute))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecuteRequest {
    deployed_app_rid: String,
    #[serde(default)]
    deployed_app_branch: Option<String>,
    query_type: String,
    #[serde(default)]
    query: Option<serde_json::Value>,
}

async fn execute(
    State(state): State<Arc<FoundryState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let principal = state.authorize(&headers, None)?;
    let request: ExecuteRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid_argument("InvalidExecuteRequest").param(
            "message",
            format!(
                "expected {{\"deployedAppRid\", \"deployedAppBranch\", \"queryType\", \"query\"}}: {e}"
            ),
        )
    })?;
    let route = state
        .modules
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&request.deployed_app_rid)
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found("ComputeModuleNotFound")
                .param("deployedAppRid", request.deployed_app_rid.as_str())
        })?;
    let auth_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let runtime = match route {
        Route::Runtime(runtime) => runtime,
        Route::Invoke(url) => {
            return forward(&url, request, auth_header, &principal.subject).await;
        }
    };
    let job_id = runtime.enqueue_job(JobSpec {
        function: request.query_type.clone(),
        query: request
            .query
            .clone()
            .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new())),
        auth_header,
        user_id: Some(principal.subject.clone()),
        ..JobSpec::default()
    });
    tracing::info!(
        module = %request.deployed_app_rid,
        branch = request.deployed_app_branch.as_deref().unwrap_or(""),
        function = %request.query_type,
        %job_id,
        "execute API: job queued on the callee's runtime"
    );
    match runtime.wait_result(&job_id, EXECUTE_TIMEOUT).await {
        Ok(result) => Ok(octet_stream(bytes::Bytes::from(result.body))),
        Err(e @ LocalError::Timeout { .. }) => Err(timed_out(&request, e.to_string())),
        Err(e) => Err(job_failed(&request, e.to_string())),
    }
}

fn octet_stream(body: bytes::Bytes) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

fn timed_out(request: &ExecuteRequest, message: String) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "TIMEOUT",
        "ComputeModuleJobTimedOut",
    )
    .param("deployedAppRid", request.deployed_app_rid.as_str())
    .param("queryType", request.query_type.as_str())
    .param("message", message)
}

fn job_failed(request: &ExecuteRequest, message: String) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "INTERNAL",
        "ComputeModuleJobFailed",
    )
    .param("deployedAppRid", request.deployed_app_rid.as_str())
    .param("queryType", request.query_type.as_str())
    .param("message", message)
}

/// Runs the call through another local module's invoke API (`POST {url}/functions/{name}`),
/// passing the caller's `Authorization` (its `authHeader` there) and subject (`userId`).
async fn forward(
    url: &str,
    request: ExecuteRequest,
    auth_header: Option<String>,
    subject: &str,
) -> Result<Response, ApiError> {
    let query = request
        .query
        .clone()
        .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
    let target = format!(
        "{url}/functions/{}?timeout_secs={}",
        percent_encode_segment(&request.query_type),
        EXECUTE_TIMEOUT.as_secs()
    );
    let mut builder = axum::http::Request::post(target.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-cmod-user-id", subject);
    if let Some(auth) = &auth_header {
        builder = builder.header(header::AUTHORIZATION, auth.as_str());
    }
    let forwarded = builder
        .body(Full::new(bytes::Bytes::from(query.to_string())))
        .map_err(|e| job_failed(&request, format!("cannot build the request to {url}: {e}")))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let exchange = async {
        let response = client.request(forwarded).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    match tokio::time::timeout(EXECUTE_TIMEOUT + Duration::from_secs(5), exchange).await {
        Err(_) => Err(timed_out(&request, format!("{url} did not answer in time"))),
        Ok(Err(e)) => Err(job_failed(
            &request,
            format!("the local module at {url} cannot be reached: {e}"),
        )),
        Ok(Ok((status, body))) if status.is_success() => Ok(octet_stream(body)),
        Ok(Ok((status, body))) if status == StatusCode::GATEWAY_TIMEOUT => Err(timed_out(
            &request,
            String::from_utf8_lossy(&body).into_owned(),
        )),
        Ok(Ok((status, body))) => Err(job_failed(
            &request,
            format!(
                "the local module at {url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            ),
        )),
    }
}

/// `s` as one URL path segment.
fn percent_encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl LocalFoundry {
    /// Routes execute-API calls for `rid` (a deployed app RID such as
    /// `ri.foundry.main.deployed-app.orders`) to `runtime`, whichever branch they name. A
    /// second registration of the same RID replaces the first.
    pub fn register_module(&self, rid: impl Into<String>, runtime: LocalRuntime) {
        self.state
            .modules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(rid.into(), Route::Runtime(runtime));
    }

    /// Routes execute-API calls for `rid` to another local module's invoke API at `url`
    /// (`http://127.0.0.1:PORT`, as `CMOD_LOCAL_PORT` sets it for a `CMOD_LOCAL=1` module): the
    /// call becomes `POST {url}/functions/{queryType}` with the caller's `Authorization` and
    /// subject. Only loopback `http://` URLs are accepted (the caller's token goes there).
    pub fn register_module_url(
        &self,
        rid: impl Into<String>,
        url: &str,
    ) -> Result<(), LocalFoundryError> {
        let url = url.trim().trim_end_matches('/');
        let host = url
            .strip_prefix("http://")
            .map(|rest| rest.split(['/', '?']).next().unwrap_or_default())
            .map(|authority| authority.rsplit_once(':').map_or(authority, |(h, _)| h));
        if !matches!(host, Some("127.0.0.1" | "localhost" | "[::1]")) {
            return Err(LocalFoundryError::Options(format!(
                "module URL `{url}` is not a loopback invoke API (expected http://127.0.0.1:PORT)"
            )));
        }
        self.state
            .modules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(rid.into(), Route::Invoke(url.to_owned()));
        Ok(())
    }

    /// Stops routing calls for `rid` (they get 404 again).
    pub fn unregister_module(&self, rid: &str) {
        self.state
            .modules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(rid);
    }
}
