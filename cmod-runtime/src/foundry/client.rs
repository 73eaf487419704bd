//! [`FoundryClient`]: the shared client, its constructors and the calls it offers.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{AuthError, Credentials, PipelineToken};
use crate::context::Context;
use crate::discovery::Service;
use crate::secret::Secret;
use crate::transport::RetryPolicy;
use crate::transport::watchdog::Limits;

use super::builder::FoundryClientBuilder;
use super::errors::FoundryError;
use super::request::FoundryRequest;
use super::urls::FoundryUrls;

/// The shared, immutable part of a client.
pub(super) struct Shared {
    pub(super) http: reqwest::Client,
    pub(super) urls: FoundryUrls,
    pub(super) retry: RetryPolicy,
    pub(super) limits: Limits,
}

/// An authenticated client for Foundry's HTTP APIs. Cheap to clone; clones share connections
/// and the token cache. `Debug` never shows a token.
///
/// Build one with [`FoundryClient::from_env`] (the module's own identity),
/// [`Context::foundry_as_user`] (the invoking user), [`FoundryClient::pipeline_from_env`]
/// (pipeline mode) or [`FoundryClient::builder`].
#[derive(Clone)]
pub struct FoundryClient {
    pub(super) shared: Arc<Shared>,
    pub(super) credentials: Credentials,
    pub(super) scopes: Arc<[String]>,
}

impl fmt::Debug for FoundryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FoundryClient")
            .field("urls", &self.shared.urls)
            .field("credentials", &self.credentials)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// The environment's client, once built. A failed build is not kept: the next use tries again
/// (a CA file or discovery file mounted late, a transient read error).
static ENV_CLIENT: Mutex<Option<FoundryClient>> = Mutex::new(None);

impl FoundryClient {
    /// Starts configuring a client.
    pub fn builder() -> FoundryClientBuilder {
        FoundryClientBuilder::default()
    }

    /// The environment's client (built once per process, sharing its token cache), with the
    /// credentials found there: application permissions (`CLIENT_ID`/`CLIENT_SECRET`), else the
    /// pipeline token (`BUILD2_TOKEN`), else none.
    fn env_client() -> Result<FoundryClient, AuthError> {
        let mut slot = ENV_CLIENT.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let client = FoundryClient::builder().build()?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// The module's own identity, from the environment: application permissions when
    /// `CLIENT_ID`/`CLIENT_SECRET` are set, else the pipeline token when `BUILD2_TOKEN` is set.
    /// Fails with [`AuthError::NoPlatformPermissions`] when neither is. The client (and its
    /// token cache) is built once per process (a failed build is retried on the next call); clones
    /// are cheap.
    pub fn from_env() -> Result<FoundryClient, AuthError> {
        let client = Self::env_client()?;
        match client.credentials {
            Credentials::None => Err(AuthError::NoPlatformPermissions),
            _ => Ok(client),
        }
    }

    /// Application permissions from `CLIENT_ID`/`CLIENT_SECRET`; fails with
    /// [`AuthError::AppNotConfigured`] naming the missing variables.
    pub fn app_from_env() -> Result<FoundryClient, AuthError> {
        let client = Self::env_client()?;
        match client.credentials {
            Credentials::Application(_) => Ok(client),
            _ => Err(crate::auth::app_credentials(crate::env::lookup())
                .err()
                .unwrap_or(AuthError::AppNotConfigured {
                    missing: vec![crate::auth::CLIENT_ID_VAR],
                })),
        }
    }

    /// The pipeline token (`BUILD2_TOKEN`); fails naming the variable when it is unset or empty.
    /// The file is re-read when it changes and after a 401 (token rotation).
    pub fn pipeline_from_env() -> Result<FoundryClient, AuthError> {
        let token = PipelineToken::watch(crate::env::lookup())?;
        Ok(Self::env_client()?.with_credentials(Credentials::PipelineFile(token)))
    }

    /// This client with other credentials (same connections and URLs).
    pub fn with_credentials(&self, credentials: Credentials) -> FoundryClient {
        FoundryClient {
            shared: self.shared.clone(),
            credentials,
            scopes: self.scopes.clone(),
        }
    }

    /// This client requesting `scopes` for application tokens (e.g. `api:datasets-read`).
    /// Without scopes, tokens carry the application's default scopes.
    pub fn with_scopes<I, S>(&self, scopes: I) -> FoundryClient
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        FoundryClient {
            shared: self.shared.clone(),
            credentials: self.credentials.clone(),
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }

    /// This client acting as the user who invoked `ctx`'s job (its `authHeader`).
    pub fn as_user(&self, ctx: &Context) -> Result<FoundryClient, AuthError> {
        let header = ctx.auth_header().ok_or_else(|| AuthError::NoUserToken {
            job_id: ctx.job_id().to_owned(),
        })?;
        Ok(self.with_credentials(Credentials::user(header)))
    }

    /// The credentials this client sends.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The base URL of a Foundry service (`https://<stack>/api` for the API gateway).
    pub fn service_url(&self, service: Service) -> Result<&str, AuthError> {
        self.shared
            .urls
            .get(service)
            .ok_or_else(|| AuthError::NoFoundryUrl {
                service: service.to_string(),
            })
    }

    /// The API gateway URL (`https://<stack>/api`).
    pub fn api_url(&self) -> Result<&str, AuthError> {
        self.service_url(Service::ApiGateway)
    }

    /// The underlying HTTP client (trusting Foundry's CA), for requests this API does not cover.
    /// It adds no credentials; use [`FoundryClient::authorization`] for the header. It follows
    /// only same-origin HTTPS redirects and has only a connect timeout (the idle limits apply to
    /// requests sent with [`FoundryRequest`]).
    pub fn http(&self) -> &reqwest::Client {
        &self.shared.http
    }

    /// The `Authorization` header value the next request would carry (fetching an application
    /// token if needed).
    pub async fn authorization(&self) -> Result<Secret, AuthError> {
        self.credentials.authorization(&self.scopes).await
    }

    /// The bearer token the next request would carry, without the `Bearer ` prefix.
    pub async fn access_token(&self) -> Result<Secret, AuthError> {
        let header = self.authorization().await?;
        let value = header.expose();
        Ok(Secret::new(
            value
                .split_once(' ')
                .map(|(_, t)| t)
                .unwrap_or(value)
                .trim(),
        ))
    }

    /// A request to `path` on the API gateway (`/v2/datasets/…`), or to an absolute URL.
    ///
    /// The request carries this client's credential, so an absolute URL must be on the origin
    /// (scheme, host and port) of one of the configured Foundry services — API gateway, stream
    /// proxy, media, multipass, from [`FoundryClientBuilder`], `FOUNDRY_SERVICE_DISCOVERY_V2`
    /// or `FOUNDRY_URL`. Any other origin fails with [`FoundryError::ForeignOrigin`] before
    /// anything is sent, unless the request opts in with [`FoundryRequest::allow_any_origin`].
    pub fn request(&self, method: Method, path: impl Into<String>) -> FoundryRequest {
        FoundryRequest {
            client: self.clone(),
            method,
            service: Service::ApiGateway,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            timeout: None,
            error: None,
            any_origin: false,
            response_limit: None,
        }
    }

    /// `GET path` on the API gateway.
    pub fn get(&self, path: impl Into<String>) -> FoundryRequest {
        self.request(Method::GET, path)
    }

    /// `POST path` on the API gateway.
    pub fn post(&self, path: impl Into<String>) -> FoundryRequest {
        self.request(Method::POST, path)
    }

    /// `GET path` on the API gateway, decoding the JSON response.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: impl Into<String>,
    ) -> Result<T, FoundryError> {
        self.get(path).send_json().await
    }

    /// `POST path` on the API gateway with a JSON body, decoding the JSON response.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: impl Into<String>,
        body: &B,
    ) -> Result<T, FoundryError> {
        self.post(path).json(body).send_json().await
    }
}

impl Context {
    /// A [`FoundryClient`] acting as the user who invoked this job, with the job's `authHeader`.
    /// Fails with [`AuthError::NoUserToken`] when the platform sent none. The token is never
    /// logged.
    ///
    /// ```no_run
    /// # async fn f(ctx: cmod_runtime::Context) -> Result<serde_json::Value, cmod_runtime::foundry::FoundryError> {
    /// ctx.foundry_as_user()?.get_json("/v2/admin/users/getCurrent").await
    /// # }
    /// ```
    pub fn foundry_as_user(&self) -> Result<FoundryClient, AuthError> {
        FoundryClient::env_client()?.as_user(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
