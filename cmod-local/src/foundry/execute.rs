//! The execute API (docs/protocol.md §10): `POST /contour-backend-multiplexer/api/module-group-multiplexer/compute-modules/jobs/execute`
//! runs a function of another local module and answers its raw result bytes.
//!
//! Modules are local runtimes registered by RID ([`LocalFoundry::register_module`]). A call is
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

use super::{ApiError, FoundryState, LocalFoundry};
use crate::runtime::{JobSpec, LocalError, LocalRuntime};

/// The execute API's path.
pub const EXECUTE_PATH: &str =
    "/contour-backend-multiplexer/api/module-group-multiplexer/compute-modules/jobs/execute";

/// How long the execute API waits for the callee's result: Foundry's limit for callers of a
/// compute module's function.
pub const EXECUTE_TIMEOUT: Duration = Duration::from_secs(300);

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
    let runtime = state
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
    let job_id = runtime.enqueue_job(JobSpec {
        function: request.query_type.clone(),
        query: request
            .query
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
        Ok(result) => {
            let mut response = result.body.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            Ok(response)
        }
        Err(e @ LocalError::Timeout { .. }) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "TIMEOUT",
            "ComputeModuleJobTimedOut",
        )
        .param("deployedAppRid", request.deployed_app_rid.as_str())
        .param("queryType", request.query_type.as_str())
        .param("message", e.to_string())),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "INTERNAL",
            "ComputeModuleJobFailed",
        )
        .param("deployedAppRid", request.deployed_app_rid.as_str())
        .param("queryType", request.query_type.as_str())
        .param("message", e.to_string())),
    }
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
            .insert(rid.into(), runtime);
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
