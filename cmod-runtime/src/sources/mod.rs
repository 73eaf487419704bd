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
pub const SOURCE_CREDENTIALS_VAR: &str = crate::env::vars::SOURCE_CREDENTIALS;
/// The variable naming the source configurations file.
pub const SOURCE_CONFIGURATIONS_VAR: &str = crate::env::vars::SOURCE_CONFIGURATIONS_PATH;

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
