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
pub use errors::{ApiError, FoundryError};
pub use request::FoundryRequest;

/// The variable holding the Foundry stack hostname (set with "Add Foundry URL").
pub const FOUNDRY_URL_VAR: &str = crate::env::vars::FOUNDRY_URL;

/// The variable overriding [`Timeouts::idle`] of Foundry clients, in seconds.
pub const IDLE_TIMEOUT_VAR: &str = crate::env::vars::CMOD_FOUNDRY_IDLE_TIMEOUT_SECS;
/// The variable overriding [`Timeouts::response`] of Foundry clients, in seconds.
pub const RESPONSE_TIMEOUT_VAR: &str = crate::env::vars::CMOD_FOUNDRY_RESPONSE_TIMEOUT_SECS;
