//! [`FoundryRequest`]: one request being built and sent (origin check, credentials, retries).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::AuthError;
use crate::discovery::Service;
use crate::secret::Secret;
use crate::transport::watchdog::{self, Limits};
use crate::transport::{send_with_retry, shown};

use super::client::FoundryClient;
use super::errors::{ApiError, FoundryError, authorization_secrets};

/// One Foundry request being built; send it with [`FoundryRequest::send`],
/// [`FoundryRequest::send_json`] or [`FoundryRequest::send_bytes`].
pub struct FoundryRequest {
    pub(super) client: FoundryClient,
    pub(super) method: Method,
    pub(super) service: Service,
    pub(super) path: String,
    pub(super) query: Vec<(String, String)>,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    pub(super) body: Option<(Bytes, HeaderValue)>,
    pub(super) timeout: Option<Duration>,
    pub(super) error: Option<String>,
    pub(super) any_origin: bool,
    /// Replaces the client's response-header limit for this request (idle limits unchanged).
    pub(super) response_limit: Option<Duration>,
}

impl fmt::Debug for FoundryRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FoundryRequest")
            .field("method", &self.method)
            .field("service", &self.service)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FoundryRequest {
    /// Sends the request to another service's base URL (default: the API gateway).
    pub fn service(mut self, service: Service) -> Self {
        self.service = service;
        self
    }

    /// Adds a query parameter.
    pub fn query(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.query.push((name.into(), value.to_string()));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => self.headers.push((n, v)),
            _ => self.error = Some(format!("invalid header `{name}`")),
        }
        self
    }

    /// Sets a JSON body.
    pub fn json<B: Serialize + ?Sized>(mut self, body: &B) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Some((
                    Bytes::from(bytes),
                    HeaderValue::from_static("application/json"),
                ))
            }
            Err(e) => self.error = Some(format!("the JSON body cannot be serialized: {e}")),
        }
        self
    }

    /// Sets a raw body with its content type (e.g. `application/octet-stream`).
    pub fn body(mut self, body: impl Into<Bytes>, content_type: &str) -> Self {
        match HeaderValue::from_str(content_type) {
            Ok(ct) => self.body = Some((body.into(), ct)),
            Err(_) => self.error = Some(format!("invalid content type `{content_type}`")),
        }
        self
    }

    /// Limits the whole request (including reading the body) to `timeout`; it also replaces the
    /// client's response and idle limits for this request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Lets this request send the client's credential to an absolute URL on any origin, not
    /// only to the configured Foundry services. Only for URLs you trust with the token (for
    /// example a Foundry host that service discovery does not list); never for URLs taken from
    /// user input or response bodies.
    pub fn allow_any_origin(mut self) -> Self {
        self.any_origin = true;
        self
    }

    /// Waits up to `limit` for the response headers once the request body is sent, instead of
    /// the client's response limit; the idle limits stay the client's. For calls whose answer
    /// takes long to start (another module's function).
    pub(crate) fn response_timeout(mut self, limit: Duration) -> Self {
        self.response_limit = Some(limit);
        self
    }

    pub(super) fn url(&self) -> Result<reqwest::Url, FoundryError> {
        let full = if self.path.starts_with("https://") || self.path.starts_with("http://") {
            self.path.clone()
        } else {
            let base = self.client.service_url(self.service)?;
            format!("{base}/{}", self.path.trim_start_matches('/'))
        };
        let mut url = reqwest::Url::parse(&full).map_err(|e| {
            let shown = crate::transport::shown_url(&full);
            FoundryError::InvalidRequest(format!("invalid URL `{shown}`: {e}"))
        })?;
        if !self.any_origin {
            // Checked on the final URL, whichever way it was written.
            let allowed = self.client.shared.urls.origins();
            let origin = url.origin().ascii_serialization();
            if !allowed.contains(&origin) {
                return Err(FoundryError::ForeignOrigin {
                    host: url.host_str().unwrap_or_default().to_owned(),
                    origin,
                    allowed,
                });
            }
        }
        if !self.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&self.query);
        }
        Ok(url)
    }

    /// Sends the request. Any non-2xx answer is an error ([`FoundryError::Api`]).
    pub async fn send(self) -> Result<reqwest::Response, FoundryError> {
        if let Some(e) = self.error {
            return Err(FoundryError::InvalidRequest(e));
        }
        let url = self.url()?;
        let shown = shown(&url);
        let method_name = self.method.as_str().to_owned();
        let idempotent = matches!(
            self.method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        let client = &self.client;
        let mut refreshed = false;
        loop {
            let (auth, auth_value) = self.authorization().await?;
            let limits = self.limits();
            let response = send_with_retry(
                &client.shared.retry,
                limits,
                idempotent,
                "Foundry request",
                self.body.as_ref().map(|(bytes, _)| bytes),
                || {
                    let mut req = client
                        .shared
                        .http
                        .request(self.method.clone(), url.clone())
                        .header(AUTHORIZATION, auth_value.clone());
                    for (n, v) in &self.headers {
                        req = req.header(n, v);
                    }
                    if let Some((_, ct)) = &self.body {
                        req = req.header(CONTENT_TYPE, ct.clone());
                    }
                    if let Some(t) = self.timeout {
                        req = req.timeout(t);
                    }
                    req
                },
            )
            .await
            .map_err(|e| FoundryError::send_failed(&method_name, &shown, &e))?;
            let status = response.status();
            if status == reqwest::StatusCode::UNAUTHORIZED
                && !refreshed
                && client
                    .credentials
                    .refresh_after_unauthorized(&client.scopes, &auth)
            {
                refreshed = true;
                tracing::debug!(
                    method = %method_name,
                    url = %shown,
                    mode = client.credentials.mode(),
                    "Foundry answered 401; refreshing the credential and retrying once"
                );
                continue;
            }
            return answer(response, &method_name, &shown, &auth).await;
        }
    }

    /// Sends the request once with a streamed `body` (`application/octet-stream`), under the
    /// client's idle limits (the time the caller takes to produce the body is never limited).
    /// Not retried, as a stream cannot be replayed; a 401 still refreshes the credential for
    /// the next request. Any non-2xx answer is an error ([`FoundryError::Api`]).
    pub(crate) async fn send_streamed(
        self,
        body: reqwest::Body,
    ) -> Result<reqwest::Response, FoundryError> {
        if let Some(e) = self.error {
            return Err(FoundryError::InvalidRequest(e));
        }
        let url = self.url()?;
        let shown = shown(&url);
        let method_name = self.method.as_str().to_owned();
        let client = &self.client;
        let (auth, auth_value) = self.authorization().await?;
        let mut req = client
            .shared
            .http
            .request(self.method.clone(), url)
            .header(AUTHORIZATION, auth_value)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
        for (n, v) in &self.headers {
            req = req.header(n, v);
        }
        if let Some(t) = self.timeout {
            req = req.timeout(t);
        }
        let response = watchdog::send_tracked(req.body(body), self.limits())
            .await
            .map_err(|e| FoundryError::send_failed(&method_name, &shown, &e))?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            // No retry (the body is gone), but the next request must not send the refused
            // credential again.
            client
                .credentials
                .refresh_after_unauthorized(&client.scopes, &auth);
        }
        answer(response, &method_name, &shown, &auth).await
    }

    /// The credential to send, and its `Authorization` header value (marked sensitive).
    async fn authorization(&self) -> Result<(Secret, HeaderValue), FoundryError> {
        let client = &self.client;
        let auth = client.credentials.authorization(&client.scopes).await?;
        let value = HeaderValue::from_str(auth.expose())
            .map_err(|_| {
                FoundryError::Auth(AuthError::Config {
                    message: format!(
                        "the {} credential is not a valid header value",
                        client.credentials.mode()
                    ),
                })
            })?
            .tap_sensitive();
        Ok((auth, value))
    }

    /// The request's own time limit ([`FoundryRequest::timeout`]), else the client's.
    fn limits(&self) -> Limits {
        match self.timeout {
            Some(t) => Limits {
                idle: t,
                response: t,
            },
            None => {
                let mut limits = self.client.shared.limits;
                if let Some(response) = self.response_limit {
                    limits.response = response;
                }
                limits
            }
        }
    }

    /// Sends the request and decodes the JSON response into `T`.
    pub async fn send_json<T: DeserializeOwned>(self) -> Result<T, FoundryError> {
        let method = self.method.as_str().to_owned();
        let response = self.send().await?;
        let url = shown(response.url());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| FoundryError::transport(&method, &url, &e))?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(&mut de).map_err(|e| FoundryError::Decode {
            method,
            url,
            message: e.to_string(),
        })
    }

    /// Sends the request and returns the whole response body.
    pub async fn send_bytes(self) -> Result<Bytes, FoundryError> {
        let method = self.method.as_str().to_owned();
        let response = self.send().await?;
        let url = shown(response.url());
        response
            .bytes()
            .await
            .map_err(|e| FoundryError::transport(&method, &url, &e))
    }
}

/// `response` when it is a success, else the [`FoundryError::Api`] its body describes (with
/// the credential `auth` redacted).
async fn answer(
    response: reqwest::Response,
    method: &str,
    shown: &str,
    auth: &Secret,
) -> Result<reqwest::Response, FoundryError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    let err = ApiError::from_body(
        method,
        shown,
        status.as_u16(),
        &body,
        &authorization_secrets(auth),
    );
    tracing::debug!(error = %err, "Foundry request failed");
    Err(FoundryError::Api(Box::new(err)))
}

/// Marks a header value sensitive (hyper then never logs it) and returns it.
trait TapSensitive {
    fn tap_sensitive(self) -> Self;
}

impl TapSensitive for HeaderValue {
    fn tap_sensitive(mut self) -> Self {
        self.set_sensitive(true);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Credentials;
    use crate::secret::Secret;

    #[tokio::test]
    async fn absolute_urls_must_be_on_a_configured_origin() {
        let c = FoundryClient::builder()
            .foundry_url("https://stack.example.com")
            .service_url(
                Service::StreamProxy,
                "https://streams.example.com:8443/sp/api",
            )
            .credentials(Credentials::Pipeline(Secret::new("planted-token-5b7a")))
            .build_from_lookup(&|_| None)
            .unwrap();
        for ok in [
            "https://stack.example.com/api/v2/x",
            "https://STACK.example.com:443/foundry-catalog/api/x",
            "https://streams.example.com:8443/other",
        ] {
            assert!(c.get(ok).url().is_ok(), "{ok}");
        }
        // Relative paths always resolve to a configured service.
        assert!(c.get("/v2/datasets/x").url().is_ok());
        for refused in [
            "https://evil.example.com/api/v2/x?key=planted-query",
            "https://stack.example.com:8443/api/v2/x?key=planted-query",
            "http://stack.example.com/api/v2/x?key=planted-query",
            "https://stack.example.com.evil.example/api?key=planted-query",
            "https://user:planted-query@evil.example.com/",
        ] {
            let err = c.get(refused).send().await.unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(matches!(err, FoundryError::ForeignOrigin { .. }), "{text}");
            assert!(!text.contains("planted-query"), "{text}");
            assert!(!text.contains("planted-token"), "{text}");
            assert!(text.contains("https://stack.example.com"), "{text}");
            assert!(c.get(refused).allow_any_origin().url().is_ok(), "{refused}");
        }
        let err = c
            .get("https://evil.example.com/x")
            .send()
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("host `evil.example.com`"), "{err}");
    }
}
