//! The Foundry calls of the pipeline handles, on top of [`FoundryClient`]: every failure becomes
//! a [`PipelineError`] naming the alias and RID, and bodies can be streamed both ways.

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;

use super::error::{PipelineError, ResourceRef};
use crate::foundry::{FoundryClient, FoundryError, FoundryRequest, Method, Service};

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
        let mut request = self
            .client
            .request(Method::POST, path.to_owned())
            .service(service);
        for (name, value) in query {
            request = request.query(*name, value);
        }
        // Idle limits, never a cap: an open writer may upload for as long as it produces.
        request
            .send_streamed(body)
            .await
            .map_err(|e| foundry(resource, &operation, e))
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
