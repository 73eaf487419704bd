//! [`FoundryClient`]: an authenticated HTTP client for Foundry APIs.
//!
//! ```no_run
//! # async fn f(ctx: cmod_runtime::Context) -> Result<(), Box<dyn std::error::Error>> {
//! use cmod_runtime::foundry::FoundryClient;
//!
//! // As the module's application (CLIENT_ID/CLIENT_SECRET), with the scopes it needs:
//! let foundry = FoundryClient::from_env()?.with_scopes(["api:datasets-read"]);
//! let dataset: serde_json::Value = foundry.get_json("/v2/datasets/ri.foundry.main.dataset.1").await?;
//!
//! // As the user who invoked the function:
//! let me: serde_json::Value = ctx.foundry_as_user()?.get_json("/v2/admin/users/getCurrent").await?;
//! # Ok(()) }
//! ```
//!
//! # Where Foundry is
//!
//! Each service URL (API gateway, stream proxy, media, multipass) is resolved in this order:
//!
//! 1. an explicit [`FoundryClientBuilder::foundry_url`] / [`FoundryClientBuilder::service_url`];
//! 2. `FOUNDRY_SERVICE_DISCOVERY_V2` (the key variants of [`Service::keys`]), as the official
//!    platform SDK does;
//! 3. `FOUNDRY_URL` (the stack hostname, by convention without scheme; `https://` is assumed),
//!    with the service's [`Service::default_path`];
//! 4. the origin of the discovered API gateway (`https://<stack>/api` → `https://<stack>`) with
//!    the service's default path (discovery files need not list `multipass`).
//!
//! # Transport
//!
//! TLS trusts the public web roots plus `DEFAULT_CA_PATH` (Foundry's CA inside the container,
//! the local CA in local runs); verification is never disabled. Limits are on **idle time**,
//! never on how long a healthy transfer takes ([`Timeouts`]): 10 s to connect, 60 s for the
//! response headers once the request body was sent, 60 s without progress of either body
//! (`CMOD_FOUNDRY_RESPONSE_TIMEOUT_SECS`, `CMOD_FOUNDRY_IDLE_TIMEOUT_SECS`), so a large dataset
//! or media upload, or an open `FileWriter`, runs as long as it moves. Redirects are followed
//! only on the same origin over HTTPS (the credential never goes to another host, port or
//! scheme); no `Referer` is sent. Connect errors and HTTP 429/502/503/504 are retried with
//! capped exponential backoff (honouring `Retry-After`); timeouts are retried for idempotent
//! methods only. A 401
//! with application credentials drops the cached token and retries once with a new one. The
//! credential only goes to the configured Foundry services: an absolute URL on another origin is
//! refused ([`FoundryError::ForeignOrigin`]) unless the request opts in with
//! [`FoundryRequest::allow_any_origin`].
//! Failures are [`FoundryError`]s that carry Foundry's JSON error (`errorCode`, `errorName`,
//! `errorInstanceId`, `parameters`) and never the token.

mod builder;
mod client;
mod errors;
mod request;
mod urls;

pub use reqwest::Method;

pub use crate::discovery::Service;
pub use crate::transport::{RetryPolicy, Timeouts};

pub use builder::FoundryClientBuilder;
pub use client::FoundryClient;
pub(crate) use errors::authorization_secrets;
pub use errors::{ApiError, FoundryError};
pub use request::FoundryRequest;

/// The variable holding the Foundry stack hostname (set with "Add Foundry URL").
pub const FOUNDRY_URL_VAR: &str = "FOUNDRY_URL";

/// The variable overriding [`Timeouts::idle`] of Foundry clients, in seconds.
pub const IDLE_TIMEOUT_VAR: &str = "CMOD_FOUNDRY_IDLE_TIMEOUT_SECS";
/// The variable overriding [`Timeouts::response`] of Foundry clients, in seconds.
pub const RESPONSE_TIMEOUT_VAR: &str = "CMOD_FOUNDRY_RESPONSE_TIMEOUT_SECS";

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::auth::Credentials;
    use crate::secret::Secret;

    fn lookup<'a>(map: &'a HashMap<&'static str, String>) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| map.get(k).cloned()
    }

    #[test]
    fn urls_come_from_explicit_then_discovery_then_foundry_url() {
        let dir = tempfile::tempdir().unwrap();
        let sd = dir.path().join("sd.yml");
        std::fs::write(
            &sd,
            "api_gateway: [\"https://disc/api\"]\nstream-proxy: [\"https://sp/x\"]\n",
        )
        .unwrap();
        let map = HashMap::from([
            ("FOUNDRY_SERVICE_DISCOVERY_V2", sd.display().to_string()),
            ("FOUNDRY_URL", "stack.example.com".to_owned()),
        ]);
        let c = FoundryClient::builder()
            .credentials(Credentials::None)
            .build_from_lookup(&lookup(&map))
            .unwrap();
        assert_eq!(c.api_url().unwrap(), "https://disc/api");
        assert_eq!(c.service_url(Service::StreamProxy).unwrap(), "https://sp/x");
        // Not in discovery: FOUNDRY_URL wins over the gateway's origin.
        assert_eq!(
            c.service_url(Service::Multipass).unwrap(),
            "https://stack.example.com/multipass/api"
        );

        let only_discovery =
            HashMap::from([("FOUNDRY_SERVICE_DISCOVERY_V2", sd.display().to_string())]);
        let c = FoundryClient::builder()
            .credentials(Credentials::None)
            .build_from_lookup(&lookup(&only_discovery))
            .unwrap();
        assert_eq!(
            c.service_url(Service::Multipass).unwrap(),
            "https://disc/multipass/api"
        );

        let c = FoundryClient::builder()
            .foundry_url("https://explicit:8443/")
            .credentials(Credentials::None)
            .build_from_lookup(&lookup(&map))
            .unwrap();
        assert_eq!(c.api_url().unwrap(), "https://explicit:8443/api");

        let c = FoundryClient::builder()
            .credentials(Credentials::None)
            .build_from_lookup(&|_| None)
            .unwrap();
        let err = c.api_url().unwrap_err().to_string();
        assert!(
            err.contains("FOUNDRY_URL") && err.contains("api_gateway"),
            "{err}"
        );
    }

    #[test]
    fn default_credentials_follow_the_environment() {
        let c = FoundryClient::builder()
            .build_from_lookup(&|_| None)
            .unwrap();
        assert_eq!(c.credentials().mode(), "none");
        let map = HashMap::from([
            ("CLIENT_ID", "app".to_owned()),
            ("CLIENT_SECRET", "planted-secret-1".to_owned()),
            ("FOUNDRY_URL", "localhost:1".to_owned()),
        ]);
        let c = FoundryClient::builder()
            .build_from_lookup(&lookup(&map))
            .unwrap();
        assert_eq!(c.credentials().mode(), "application");
        assert!(!format!("{c:?}").contains("planted-secret-1"));

        // Application permissions without any Foundry URL: the token endpoint is unknown.
        let no_url = HashMap::from([
            ("CLIENT_ID", "app".to_owned()),
            ("CLIENT_SECRET", "s".to_owned()),
        ]);
        let err = FoundryClient::builder()
            .build_from_lookup(&lookup(&no_url))
            .unwrap_err()
            .to_string();
        assert!(err.contains("multipass"), "{err}");
    }

    #[tokio::test]
    async fn no_platform_permissions_fails_naming_the_modes() {
        let c = FoundryClient::builder()
            .foundry_url("localhost:1")
            .build_from_lookup(&|_| None)
            .unwrap();
        let err = c
            .get_json::<serde_json::Value>("/v2/x")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no platform permissions"), "{err}");
        assert!(err.contains("CLIENT_ID"), "{err}");
    }

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
