//! The Foundry calls of the pipeline handles, on top of [`FoundryClient`]: every failure becomes
//! a [`PipelineError`] naming the alias and RID, and bodies can be streamed both ways.

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::de::DeserializeOwned;

use super::error::{PipelineError, ResourceRef};
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
        let method = "GET".to_owned();
        let mut url = response.url().clone();
        url.set_query(None);
        let url = url.to_string();
        let resource = resource.clone();
        Ok(response
            .bytes_stream()
            .map_err(move |e| {
                foundry(
                    &resource,
                    &op,
                    FoundryError::Transport {
                        method: method.clone(),
                        url: url.clone(),
                        message: crate::foundry::describe_reqwest_error(&e),
                    },
                )
            })
            .boxed())
    }

    /// POSTs a streamed body (`application/octet-stream`). Not retried: a stream cannot be
    /// replayed.
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
        let mut shown = url.clone();
        shown.set_query(None);
        let shown = shown.to_string();
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
        let response = self
            .client
            .http()
            .post(url)
            .header(AUTHORIZATION, auth_value)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| {
                fail(FoundryError::Transport {
                    method: "POST".to_owned(),
                    url: shown.clone(),
                    message: crate::foundry::describe_reqwest_error(&e),
                })
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        let token = auth.expose();
        let bare = token.split_once(' ').map(|(_, t)| t).unwrap_or(token);
        Err(fail(FoundryError::Api(Box::new(api_error(
            "POST",
            &shown,
            status.as_u16(),
            &body,
            &[token, bare],
        )))))
    }
}

/// Wraps a Foundry error with the resource and operation.
pub(crate) fn foundry(
    resource: &ResourceRef,
    operation: &str,
    source: FoundryError,
) -> PipelineError {
    PipelineError::Foundry {
        resource: Box::new(resource.clone()),
        operation: operation.to_owned(),
        source,
    }
}

/// Builds an [`ApiError`] from an error response (Foundry's JSON error shape when present).
fn api_error(method: &str, url: &str, status: u16, body: &[u8], secrets: &[&str]) -> ApiError {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        error_code: Option<String>,
        error_name: Option<String>,
        error_instance_id: Option<String>,
        #[serde(default)]
        parameters: serde_json::Map<String, serde_json::Value>,
    }
    let mut e = ApiError {
        method: method.to_owned(),
        url: url.to_owned(),
        status,
        error_code: None,
        error_name: None,
        error_instance_id: None,
        parameters: serde_json::Map::new(),
        body: None,
    };
    match serde_json::from_slice::<Body>(body) {
        Ok(b) if b.error_code.is_some() || b.error_name.is_some() => {
            e.error_code = b.error_code;
            e.error_name = b.error_name;
            e.error_instance_id = b.error_instance_id;
            e.parameters = b.parameters;
            for v in e.parameters.values_mut() {
                if let serde_json::Value::String(s) = v {
                    *s = crate::foundry::redact(s, secrets);
                }
            }
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if !text.is_empty() {
                let snippet: String = text.chars().take(300).collect();
                e.body = Some(crate::foundry::redact(&snippet, secrets));
            }
        }
    }
    e
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

    #[test]
    fn error_bodies_are_parsed_and_redacted() {
        let e = api_error(
            "POST",
            "https://x/api",
            403,
            br#"{"errorCode":"PERMISSION_DENIED","errorName":"PermissionDenied","parameters":{"t":"tok-secret-1"}}"#,
            &["tok-secret-1"],
        );
        assert_eq!(e.error_name.as_deref(), Some("PermissionDenied"));
        assert_eq!(e.parameters["t"], "<redacted>");
        let e = api_error(
            "POST",
            "https://x/api",
            500,
            b"oops tok-secret-1",
            &["tok-secret-1"],
        );
        assert_eq!(e.body.as_deref(), Some("oops <redacted>"));
    }
}
