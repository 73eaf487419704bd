//! The Foundry calls of the pipeline handles, on top of [`FoundryClient`]: every failure becomes
//! a [`PipelineError`] naming the alias and RID, and bodies can be streamed both ways.

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::de::DeserializeOwned;

use super::error::{PipelineError, ResourceRef};
use crate::auth::Credentials;
use crate::foundry::{ApiError, FoundryClient, FoundryError, FoundryRequest, Method, Service};

/// A resource-scoped view of the Foundry client.
#[derive(Clone)]
pub(crate) struct Api {
    client: FoundryClient,
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
pub(crate) fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a `/`-separated file path, keeping the separators.
pub(crate) fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

impl Api {
    pub(crate) fn new(client: FoundryClient) -> Self {
        Self { client }
    }

    /// A request on a service; `path` must already be encoded.
    pub(crate) fn request(&self, method: Method, service: Service, path: String) -> FoundryRequest {
        self.client.request(method, path).service(service)
    }

    /// `https://<stack>` + `suffix`, from the API gateway URL (for the legacy catalog and
    /// data-proxy services, which discovery does not list).
    pub(crate) fn stack_url(
        &self,
        resource: &ResourceRef,
        suffix: &str,
    ) -> Result<String, PipelineError> {
        let api = self
            .client
            .api_url()
            .map_err(|e| foundry(resource, "locating the API gateway", FoundryError::Auth(e)))?;
        let origin = api.trim_end_matches('/');
        let origin = origin.strip_suffix("/api").unwrap_or(origin);
        Ok(format!("{origin}{suffix}"))
    }

    /// Sends a request; non-2xx answers and transport failures become [`PipelineError`]s.
    pub(crate) async fn send(
        &self,
        resource: &ResourceRef,
        operation: impl FnOnce() -> String,
        request: FoundryRequest,
    ) -> Result<reqwest::Response, PipelineError> {
        request
            .send()
            .await
            .map_err(|e| foundry(resource, &operation(), e))
    }

    /// Sends a request and decodes its JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        resource: &ResourceRef,
        operation: impl FnOnce() -> String,
        request: FoundryRequest,
    ) -> Result<T, PipelineError> {
        let op = operation();
        request
            .send_json()
            .await
            .map_err(|e| foundry(resource, &op, e))
    }

    /// Sends a request and streams its body.
    pub(crate) async fn download(
        &self,
        resource: &ResourceRef,
        operation: impl FnOnce() -> String,
        request: FoundryRequest,
    ) -> Result<BoxStream<'static, Result<Bytes, PipelineError>>, PipelineError> {
        let op = operation();
        let response = request
            .send()
            .await
            .map_err(|e| foundry(resource, &op, e))?;
        let url = crate::transport::shown(response.url());
        let resource = resource.clone();
        Ok(response
            .bytes_stream()
            .map_err(move |e| foundry(&resource, &op, FoundryError::transport("GET", &url, &e)))
            .boxed())
    }

    /// POSTs a streamed body (`application/octet-stream`) under the client's idle limits (the
    /// time the caller takes to produce the body is never limited). Not retried: a stream
    /// cannot be replayed.
    pub(crate) async fn upload(
        &self,
        resource: &ResourceRef,
        operation: String,
        service: Service,
        path: &str,
        query: &[(&str, &str)],
        body: reqwest::Body,
    ) -> Result<reqwest::Response, PipelineError> {
        let fail = |e: FoundryError| foundry(resource, &operation, e);
        let base = self
            .client
            .service_url(service)
            .map_err(|e| fail(FoundryError::Auth(e)))?;
        let full = format!("{}/{}", base.trim_end_matches('/'), path);
        let mut url = reqwest::Url::parse(&full).map_err(|e| {
            fail(FoundryError::InvalidRequest(format!(
                "invalid URL `{full}`: {e}"
            )))
        })?;
        url.query_pairs_mut().extend_pairs(query);
        let shown = crate::transport::shown(&url);
        let auth = self
            .client
            .authorization()
            .await
            .map_err(|e| fail(FoundryError::Auth(e)))?;
        let mut auth_value = HeaderValue::from_str(auth.expose()).map_err(|_| {
            fail(FoundryError::InvalidRequest(
                "the pipeline token is not a valid header value".to_owned(),
            ))
        })?;
        auth_value.set_sensitive(true);
        let request = self
            .client
            .http()
            .post(url)
            .header(AUTHORIZATION, auth_value)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )
            .body(body);
        // Idle limits, never a cap: an open writer may upload for as long as it produces.
        let response = crate::transport::watchdog::send_tracked(request, self.client.limits())
            .await
            .map_err(|e| fail(FoundryError::send_failed("POST", &shown, &e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED
            && let Credentials::PipelineFile(token) = self.client.credentials()
        {
            // A streamed body cannot be replayed, so no retry here; but the next request must
            // not use the refused token again.
            if let Err(e) = token.reload() {
                tracing::warn!(error = %e, "re-reading the build token after a 401 failed");
            }
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(fail(FoundryError::Api(Box::new(ApiError::from_body(
            "POST",
            &shown,
            status.as_u16(),
            &body,
            &crate::foundry::authorization_secrets(&auth),
        )))))
    }
}

/// Wraps a Foundry error with the resource and operation. A 401 (the client already re-read
/// the build token and retried once) is [`PipelineError::TokenRefused`].
pub(crate) fn foundry(
    resource: &ResourceRef,
    operation: &str,
    source: FoundryError,
) -> PipelineError {
    if source.status() == Some(401) {
        return PipelineError::TokenRefused {
            resource: Box::new(resource.clone()),
            operation: operation.to_owned(),
            source,
        };
    }
    PipelineError::Foundry {
        resource: Box::new(resource.clone()),
        operation: operation.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_per_segment() {
        assert_eq!(encode_path("a b/c%d/ü.csv"), "a%20b/c%25d/%C3%BC.csv");
        assert_eq!(encode_segment("feature/x"), "feature%2Fx");
        assert_eq!(
            encode_segment("ri.foundry.main.dataset.1-2_3~"),
            "ri.foundry.main.dataset.1-2_3~"
        );
    }
}
