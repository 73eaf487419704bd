//! Caching in Scratch, Foundry's distributed cache, and doing work on one replica at a time with
//! its distributed lock ([`cmod_runtime::Scratch`]). Every replica of the module shares the
//! cache, so an expensive result computed by one is reused by all until its TTL runs out.
//!
//! Enable Scratch in the module's configuration in Foundry (it sets `SCRATCH_TOKEN`). Locally,
//! the local Foundry serves Scratch:
//!
//! ```text
//! cargo run -p scratch-cache -- --local \
//!     --invoke exchange_rate '{"currency": "EUR"}' \
//!     --invoke exchange_rate '{"currency": "EUR"}' \
//!     --invoke refresh_rates '{}'
//! ```
//!
//! The first call computes the rate, the second finds it in the cache (`"cached": true`).

use std::time::Duration;

use cmod_runtime::{Scratch, ScratchError, Ttl, compute_function};

/// An exchange rate, and whether it came from the cache.
#[derive(Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Rate {
    /// The currency.
    pub currency: String,
    /// Units of the currency per dollar.
    pub per_usd: f64,
    /// Whether this answer came from Scratch.
    #[serde(default)]
    pub cached: bool,
}

/// Why a rate is not available.
#[derive(Debug, thiserror::Error)]
pub enum RateError {
    /// An unknown currency.
    #[error("unknown currency `{0}`")]
    Unknown(String),
    /// Scratch failed (or is not enabled: the message names `SCRATCH_TOKEN`).
    #[error(transparent)]
    Scratch(#[from] ScratchError),
}

/// The "expensive" computation the cache saves.
async fn compute_rate(currency: &str) -> Result<f64, RateError> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    match currency {
        "EUR" => Ok(0.92),
        "GBP" => Ok(0.79),
        "JPY" => Ok(151.3),
        other => Err(RateError::Unknown(other.to_owned())),
    }
}

/// The rate of `currency`, from Scratch when a replica computed it in the last 15 minutes.
#[compute_function]
async fn exchange_rate(currency: String) -> Result<Rate, RateError> {
    let scratch = Scratch::from_env()?;
    let key = format!("rates:{currency}");
    if let Some(rate) = scratch.get::<Rate>(&key).await? {
        return Ok(Rate {
            cached: true,
            ..rate
        });
    }
    let rate = Rate {
        per_usd: compute_rate(&currency).await?,
        currency,
        cached: false,
    };
    scratch.set(&key, &rate, Ttl::FifteenMinutes).await?;
    Ok(rate)
}

/// Recomputes every cached rate, on one replica at a time: a replica that finds the lock taken
/// leaves the work to the holder.
#[compute_function]
async fn refresh_rates() -> Result<String, RateError> {
    let scratch = Scratch::from_env()?;
    let Some(lock) = scratch.try_lock("refresh-rates").await? else {
        return Ok("another replica is refreshing the rates".to_owned());
    };
    // The guard refreshes the lock while this runs; dropping it would release it too.
    for currency in ["EUR", "GBP", "JPY"] {
        let rate = Rate {
            per_usd: compute_rate(currency).await?,
            currency: currency.to_owned(),
            cached: false,
        };
        scratch
            .set(&format!("rates:{currency}"), &rate, Ttl::FifteenMinutes)
            .await?;
    }
    lock.unlock().await?;
    Ok("refreshed 3 rates".to_owned())
}

#[tokio::main]
async fn main() -> Result<(), cmod_runtime::Error> {
    cmod_runtime::run().await
}
