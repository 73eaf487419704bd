//! Sources: the credentials and connection settings of the sources attached to the module
//! (docs/protocol.md §7.1, §7.2), and ready HTTP clients for REST sources.
//!
//! Foundry mounts two JSON files, both keyed by the source's API name:
//!
//! - `SOURCE_CREDENTIALS`: `{"<ApiName>": {"<secretName>": "<value>"}}`;
//! - `SOURCE_CONFIGURATIONS_PATH`: `{"<ApiName>": {"secrets", "httpConnectionConfig",
//!   "proxyToken", "sourceConfiguration", "resolvedCredentials", "clientCertificate",
//!   "serverCertificates"}}`.
//!
//! [`Sources`] merges both into typed [`Source`]s. Every secret is a [`Secret`](crate::Secret): it never shows in
//! `Debug` output, logs or errors.
//!
//! ```no_run
//! # async fn f(ctx: cmod_runtime::Context) -> Result<(), Box<dyn std::error::Error>> {
//! // Fail at startup, naming what is missing, if the source or its secret is not attached:
//! cmod_runtime::require_source!("WeatherApi", ["additionalSecretApiKey"]);
//!
//! let weather = ctx.source("WeatherApi")?;
//! let key = weather.require_secret("additionalSecretApiKey")?;
//! // A reqwest client with the connection's URL, auth headers, query parameters and CAs:
//! let client = weather.http_client()?;
//! let body = client.get("/forecast").send().await?.text().await?;
//! # let _ = (key, body); Ok(()) }
//! ```

mod client;
mod config;
mod error;

use crate::context::Context;

pub use client::{
    SOURCE_IDLE_TIMEOUT_VAR, SOURCE_RESPONSE_TIMEOUT_VAR, SourceClient, SourceRequest,
};
pub use config::{
    AwsCredentials, ClientCertificate, HttpConnectionConfig, ResolvedCredentials, Source, Sources,
};
pub use error::{SourceError, SourceRequestError};

/// The variable naming the secrets file.
pub const SOURCE_CREDENTIALS_VAR: &str = "SOURCE_CREDENTIALS";
/// The variable naming the source configurations file.
pub const SOURCE_CONFIGURATIONS_VAR: &str = "SOURCE_CONFIGURATIONS_PATH";

/// A source (and secrets) the module cannot run without, declared with
/// [`require_source!`](crate::require_source). Checked at startup by
/// [`run`](crate::run).
#[derive(Debug)]
pub struct RequiredSource {
    /// The source's API name.
    pub api_name: &'static str,
    /// Secrets that must be present.
    pub secrets: &'static [&'static str],
    /// The declaring file.
    pub file: &'static str,
    /// The declaring line.
    pub line: u32,
}

impl RequiredSource {
    /// A declaration (used by [`require_source!`](crate::require_source)).
    pub const fn new(
        api_name: &'static str,
        secrets: &'static [&'static str],
        file: &'static str,
        line: u32,
    ) -> Self {
        Self {
            api_name,
            secrets,
            file,
            line,
        }
    }
}

inventory::collect!(RequiredSource);

/// Every [`require_source!`](crate::require_source) declaration linked into the binary.
pub fn required_sources() -> Vec<&'static RequiredSource> {
    inventory::iter::<RequiredSource>.into_iter().collect()
}

/// Declares a source (and optionally secrets of it) the module requires. The module then fails
/// at startup, naming every missing source and secret and where it was declared, instead of at
/// the first call. Use it at module level, once per source:
///
/// ```no_run
/// cmod_runtime::require_source!("WeatherApi");
/// cmod_runtime::require_source!("Crm", ["additionalSecretClientId", "additionalSecretClientSecret"]);
/// ```
#[macro_export]
macro_rules! require_source {
    ($api_name:literal $(,)?) => {
        $crate::require_source!($api_name, []);
    };
    ($api_name:literal, [$($secret:literal),* $(,)?] $(,)?) => {
        $crate::__private::inventory::submit! {
            $crate::sources::RequiredSource::new(
                $api_name,
                &[$($secret),*],
                ::core::file!(),
                ::core::line!(),
            )
        }
    };
}

/// Checks every [`require_source!`](crate::require_source) declaration against the
/// environment's sources. Called at startup by [`run`](crate::run).
pub fn check_required_sources() -> Result<(), crate::Error> {
    let required = required_sources();
    if required.is_empty() {
        return Ok(());
    }
    Sources::global()?.check(required)?;
    Ok(())
}

impl Context {
    /// The attached source with this API name (from `SOURCE_CREDENTIALS` /
    /// `SOURCE_CONFIGURATIONS_PATH`), or an error naming the attached ones.
    pub fn source(&self, api_name: &str) -> Result<&'static Source, SourceError> {
        Sources::global()?.source(api_name)
    }

    /// Every attached source.
    pub fn sources(&self) -> Result<&'static Sources, SourceError> {
        Sources::global()
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderMap;

    use super::client::{ConnectionCredentials, SOURCE_TIMEOUTS};
    use super::config::{parse_resolved, strip_quoted};
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn no_secret_shows_in_debug_output_or_parse_errors() {
        let dir = tempfile::tempdir().unwrap();
        // An integer-valued credential: serde quotes it with backticks in its message.
        let creds = dir.path().join("creds.json");
        std::fs::write(&creds, r#"{"Api": {"additionalSecretPIN": 987654321}}"#).unwrap();
        let creds = creds.display().to_string();
        let err = Sources::from_lookup(&|k| (k == SOURCE_CREDENTIALS_VAR).then(|| creds.clone()))
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("987654321"), "{text}");
        assert!(text.contains("additionalSecretPIN"), "{text}");

        let conf = dir.path().join("conf.json");
        std::fs::write(
            &conf,
            r#"{"Api": {"httpConnectionConfig": {"url": "https://user:planted-pw@api.example.com/v1?token=planted-url-secret", "queryParameters": {"k": "planted-query"}}}}"#,
        )
        .unwrap();
        let conf = conf.display().to_string();
        let sources =
            Sources::from_lookup(&|k| (k == SOURCE_CONFIGURATIONS_VAR).then(|| conf.clone()))
                .unwrap();
        let text = format!("{sources:?}");
        assert!(text.contains("api.example.com/v1"), "{text}");
        assert!(!text.contains("planted"), "{text}");
    }

    #[test]
    fn strip_quoted_removes_values() {
        assert_eq!(
            strip_quoted("invalid type: string \"hunter2\", expected a map at line 1 column 9"),
            "invalid type: string \"…\", expected a map"
        );
        assert_eq!(strip_quoted("missing field `url`"), "missing field `url`");
        assert_eq!(
            strip_quoted("invalid value: integer `1234`, expected a string"),
            "invalid value: integer `…`, expected a string"
        );
        assert_eq!(
            strip_quoted("unknown variant `hunter2`, expected one of `a`, `b`"),
            "unknown variant `…`, expected one of `a`, `b`"
        );
    }

    #[test]
    fn resolved_credentials_variants() {
        let aws = serde_json::json!({"cloudCredentials": {"awsCredentials": {"sessionCredentials": {
            "accessKeyId": "AK", "secretAccessKey": "SK", "sessionToken": "ST", "expiration": "2030-01-01T00:00:00Z"}}}});
        match parse_resolved(&aws).unwrap() {
            ResolvedCredentials::Aws(AwsCredentials::Session {
                access_key_id,
                session_token,
                ..
            }) => {
                assert_eq!(access_key_id, "AK");
                assert_eq!(session_token.expose(), "ST");
            }
            other => panic!("{other:?}"),
        }
        let gcp = serde_json::json!({"gcpOauthCredentials": {"accessToken": "T"}});
        assert!(matches!(
            parse_resolved(&gcp).unwrap(),
            ResolvedCredentials::GcpOauth { .. }
        ));
        let bad = serde_json::json!({"cloudCredentials": {"awsCredentials": {"basicCredentials": {"accessKeyId": "A"}}}});
        let err = parse_resolved(&bad).unwrap_err();
        assert!(err.contains("secretAccessKey"), "{err}");
        let dbg = format!("{:?}", parse_resolved(&aws).unwrap());
        assert!(!dbg.contains("SK") && !dbg.contains("ST\""), "{dbg}");
    }

    #[test]
    fn url_joins_paths_and_appends_query_parameters() {
        let http =
            crate::transport::platform_client(&[], None, crate::transport::Timeouts::default())
                .unwrap();
        let client = SourceClient {
            api_name: "A".to_owned(),
            http: http.clone(),
            plain: http,
            base: reqwest::Url::parse("https://api.example.com/v1/").unwrap(),
            query: vec![("key".to_owned(), Secret::new("k v"))],
            credentials: std::sync::Arc::new(ConnectionCredentials {
                headers: HeaderMap::new(),
                names: Vec::new(),
                query_names: vec!["key".to_owned()],
                query_values: vec![Secret::new("k v")],
            }),
            limits: SOURCE_TIMEOUTS.limits(),
        };
        assert_eq!(
            client.url("/items?page=2").as_str(),
            "https://api.example.com/v1/items?page=2&key=k+v"
        );
        assert!(!format!("{client:?}").contains("k v"));
    }
}
