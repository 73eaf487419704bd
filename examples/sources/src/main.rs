//! Calling a REST source from a compute module with the credentials and connection settings
//! Foundry mounts (`SOURCE_CREDENTIALS`, `SOURCE_CONFIGURATIONS_PATH`).
//!
//! The module declares the source it needs with `require_source!`: if it is not attached (or lacks
//! the secret), the module fails at startup with a message naming it, not at the first call.
//!
//! Run it locally: the embedded local mode attaches a local stand-in for every declared source
//! (an echo endpoint on the local Foundry, with placeholder secrets):
//!
//! ```text
//! CMOD_LOCAL=1 cargo run -p sources -- --invoke forecast '{"city": "Paris"}'
//! ```

use cmod_runtime::sources::SourceError;
use cmod_runtime::{Context, compute_function};

cmod_runtime::require_source!("WeatherApi", ["additionalSecretApiKey"]);

/// Why calling the source failed. Secrets never appear in these messages.
#[derive(Debug, thiserror::Error)]
enum CallError {
    /// The source or its secret is missing.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The HTTP call failed (the URL is left out: its query may carry credentials).
    #[error("calling WeatherApi failed: {0}")]
    Http(reqwest::Error),
}

impl From<reqwest::Error> for CallError {
    fn from(e: reqwest::Error) -> Self {
        CallError::Http(e.without_url())
    }
}

/// What the source answered.
#[derive(Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Forecast {
    /// The city asked about.
    city: String,
    /// The HTTP status of the source's answer.
    status: u16,
    /// The body of the source's answer.
    body: String,
}

/// Asks the `WeatherApi` REST source for a forecast. The client already carries the connection's
/// base URL, auth headers, query parameters and certificates; the API key secret is sent as a
/// header too, to show direct secret access.
#[compute_function]
async fn forecast(ctx: Context, city: String) -> Result<Forecast, CallError> {
    let source = ctx.source("WeatherApi")?;
    let api_key = source.require_secret("additionalSecretApiKey")?;
    let client = source.http_client()?;
    let mut url = client.url("/forecast");
    url.query_pairs_mut().append_pair("city", &city);
    let response = client
        .http()
        .get(url)
        .header("X-Api-Key", api_key.expose())
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.text().await?;
    Ok(Forecast { city, status, body })
}

/// The names (never the values) of the secrets attached to `WeatherApi`.
#[compute_function]
fn secret_names(ctx: Context) -> Result<Vec<String>, SourceError> {
    Ok(ctx.source("WeatherApi")?.secrets.keys().cloned().collect())
}

#[tokio::main]
async fn main() -> Result<(), cmod_runtime::Error> {
    cmod_runtime::run().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_local::foundry::{LocalFoundry, LocalFoundryOptions, LocalSource};

    /// The functions against a local stand-in for the source, over TLS, with the files local
    /// mode generates.
    #[tokio::test]
    async fn calls_the_rest_source_with_its_configuration() {
        let foundry = LocalFoundry::start(LocalFoundryOptions {
            sources: vec![
                LocalSource::echo("WeatherApi")
                    .secret("additionalSecretApiKey", "local-key")
                    .auth_header("Authorization", "Bearer local-token"),
            ],
            ..LocalFoundryOptions::default()
        })
        .await
        .unwrap();
        assert!(cmod_runtime::testing::install_env_overlay(foundry.env()));
        cmod_runtime::sources::check_required_sources().unwrap();

        let ctx = Context::for_test("job-1");
        let f = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            forecast(ctx.clone(), "Paris".to_owned()),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(f.status, 200, "{}", f.body);
        assert!(f.body.contains(r#""path":"/forecast""#), "{}", f.body);
        assert!(f.body.contains(r#""authenticated":true"#), "{}", f.body);
        assert_eq!(secret_names(ctx).unwrap(), ["additionalSecretApiKey"]);
    }
}
