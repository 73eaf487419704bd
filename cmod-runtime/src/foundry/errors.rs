//! [`FoundryError`] and [`ApiError`]: what a failed call says, with every credential redacted.

use std::fmt;

use crate::auth::AuthError;
use crate::secret::Secret;
use crate::transport::watchdog::SendError;
use crate::transport::{describe_reqwest_error, describe_send_error};

/// A Foundry API call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FoundryError {
    /// No usable credential (wrong mode, token endpoint refused, …).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Foundry answered with an error status.
    #[error(transparent)]
    Api(Box<ApiError>),
    /// Foundry could not be reached (after retries).
    #[error("Foundry request {method} {url} failed: {message}")]
    Transport {
        /// The HTTP method.
        method: String,
        /// The URL, without query.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The response body is not what the caller expected.
    #[error("Foundry request {method} {url}: unexpected response body: {message}")]
    Decode {
        /// The HTTP method.
        method: String,
        /// The URL, without query.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The request itself could not be built (bad path, body not serializable).
    #[error("invalid Foundry request: {0}")]
    InvalidRequest(String),
    /// An absolute URL on a host that is not one of the configured Foundry services: the
    /// credential is not sent there (see [`FoundryRequest::allow_any_origin`](super::FoundryRequest::allow_any_origin)).
    #[error(
        "refusing to send the Foundry credential to {origin} (host `{host}`): it is not one of \
         the configured Foundry services ({}); pass a path on the API gateway, or call \
         `allow_any_origin()` on the request if this host is meant to receive the token",
        if allowed.is_empty() { "none configured".to_owned() } else { allowed.join(", ") }
    )]
    ForeignOrigin {
        /// The host of the refused URL.
        host: String,
        /// The refused URL's origin (`https://host:port`), without path or query.
        origin: String,
        /// The origins the credential may be sent to.
        allowed: Vec<String>,
    },
}

impl FoundryError {
    /// The Foundry error, when Foundry answered with an error status.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            FoundryError::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status, when Foundry answered with an error status.
    pub fn status(&self) -> Option<u16> {
        self.api().map(|e| e.status)
    }

    /// A [`FoundryError::Transport`] for a request that failed or stalled.
    pub(crate) fn send_failed(method: &str, url: &str, e: &SendError) -> Self {
        FoundryError::Transport {
            method: method.to_owned(),
            url: url.to_owned(),
            message: describe_send_error(e),
        }
    }

    /// A [`FoundryError::Transport`] for a failed request or body read.
    pub(crate) fn transport(method: &str, url: &str, e: &reqwest::Error) -> Self {
        FoundryError::Transport {
            method: method.to_owned(),
            url: url.to_owned(),
            message: describe_reqwest_error(e),
        }
    }
}

/// An error answer from Foundry: the HTTP status and Foundry's JSON error body
/// `{"errorCode","errorName","errorInstanceId","parameters"}` when it had one.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ApiError {
    /// The HTTP method.
    pub method: String,
    /// The URL, without query.
    pub url: String,
    /// The HTTP status.
    pub status: u16,
    /// `errorCode` (`NOT_FOUND`, `PERMISSION_DENIED`, …).
    pub error_code: Option<String>,
    /// `errorName` (`DatasetNotFound`, …).
    pub error_name: Option<String>,
    /// `errorInstanceId`, to quote to Palantir support.
    pub error_instance_id: Option<String>,
    /// `parameters`.
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// The start of a body that was not Foundry's error JSON (tokens redacted).
    pub body: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = reqwest::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        write!(
            f,
            "Foundry answered {} {reason} to {} {}",
            self.status, self.method, self.url
        )?;
        if let Some(name) = &self.error_name {
            write!(f, ": {name}")?;
            if let Some(code) = &self.error_code {
                write!(f, " ({code})")?;
            }
        }
        if !self.parameters.is_empty() {
            write!(
                f,
                ", parameters {}",
                serde_json::Value::Object(self.parameters.clone())
            )?;
        }
        if let Some(id) = &self.error_instance_id {
            write!(f, ", errorInstanceId {id}")?;
        }
        if let Some(body) = &self.body {
            write!(f, ": {body}")?;
        }
        if (300..400).contains(&self.status) {
            write!(
                f,
                " (redirects are followed only on the same origin over HTTPS; the credential \
                 is not sent elsewhere)"
            )?;
        } else if self.status == 401 {
            write!(
                f,
                " (the token was refused: expired, revoked or for another stack)"
            )?;
        } else if self.status == 403 {
            write!(
                f,
                " (the credential lacks a permission or scope; check the module's scopes and \
                 resource access)"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// Builds an [`ApiError`] from an error response: Foundry's JSON error shape when present,
    /// otherwise a trimmed snippet of the body. Each of `secrets` is redacted from the result.
    pub(crate) fn from_body(
        method: &str,
        url: &str,
        status: u16,
        body: &[u8],
        secrets: &[&str],
    ) -> Self {
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
                        *s = redact(s, secrets);
                    }
                }
            }
            _ => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                if !text.is_empty() {
                    let snippet: String = text.chars().take(300).collect();
                    e.body = Some(redact(&snippet, secrets));
                }
            }
        }
        e
    }
}

/// The strings to redact from an error built while `authorization` was sent: the whole
/// `Authorization` header value and the bare token after its scheme.
pub(crate) fn authorization_secrets(authorization: &Secret) -> [&str; 2] {
    let token = authorization.expose();
    let bare = token.split_once(' ').map(|(_, t)| t).unwrap_or(token);
    [token, bare]
}

/// `text` with every occurrence of each (non-trivial) secret replaced by `<redacted>`.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if s.len() >= 4 {
            out = out.replace(s, "<redacted>");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_parse_foundry_bodies_and_redact_tokens() {
        let e = ApiError::from_body(
            "GET",
            "https://h/api/v2/datasets/x",
            404,
            br#"{"errorCode":"NOT_FOUND","errorName":"DatasetNotFound","errorInstanceId":"abc","parameters":{"datasetRid":"x","echo":"tok-123456"}}"#,
            &["tok-123456"],
        );
        let msg = e.to_string();
        assert!(
            msg.contains(
                "404 Not Found to GET https://h/api/v2/datasets/x: DatasetNotFound (NOT_FOUND)"
            ),
            "{msg}"
        );
        assert!(msg.contains("errorInstanceId abc"), "{msg}");
        assert!(!msg.contains("tok-123456"), "{msg}");
        let e = ApiError::from_body("GET", "u", 502, b"bad gateway tok-123456", &["tok-123456"]);
        assert_eq!(e.body.as_deref(), Some("bad gateway <redacted>"));
    }

    #[test]
    fn error_bodies_are_parsed_and_redacted() {
        let e = ApiError::from_body(
            "POST",
            "https://x/api",
            403,
            br#"{"errorCode":"PERMISSION_DENIED","errorName":"PermissionDenied","parameters":{"t":"tok-secret-1"}}"#,
            &["tok-secret-1"],
        );
        assert_eq!(e.error_name.as_deref(), Some("PermissionDenied"));
        assert_eq!(e.parameters["t"], "<redacted>");
        let e = ApiError::from_body(
            "POST",
            "https://x/api",
            500,
            b"oops tok-secret-1",
            &["tok-secret-1"],
        );
        assert_eq!(e.body.as_deref(), Some("oops <redacted>"));
    }
}
