//! [`FoundryClientBuilder`]: URLs, credentials, CAs and timeouts of a new client.

use std::fmt;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;

use crate::auth::{AppTokenProvider, AuthError, Credentials, PipelineToken};
use crate::discovery::Service;
use crate::discovery::ServiceDiscovery;
use crate::secret::Secret;
use crate::transport::{PlatformCas, platform_client};
use crate::transport::{RetryPolicy, Timeouts};

use super::client::{FoundryClient, Shared};
use super::urls::{FoundryUrls, URL_SERVICES, normalize_base};
use super::{FOUNDRY_URL_VAR, IDLE_TIMEOUT_VAR, RESPONSE_TIMEOUT_VAR};

/// How the builder picks credentials.
#[derive(Default)]
enum CredentialSource {
    /// Application permissions if configured, else the pipeline token, else none.
    #[default]
    Environment,
    /// OAuth2 client credentials given explicitly.
    App { client_id: String, secret: Secret },
    /// Given credentials.
    Given(Credentials),
}

/// Configures a [`FoundryClient`]; see [`FoundryClient::builder`].
#[derive(Default)]
pub struct FoundryClientBuilder {
    pub(super) foundry_url: Option<String>,
    service_urls: Vec<(Service, String)>,
    credentials: CredentialSource,
    pub(super) scopes: Vec<String>,
    extra_roots: Vec<CertificateDer<'static>>,
    pub(super) timeouts: Option<Timeouts>,
    pub(super) retry: RetryPolicy,
}

impl fmt::Debug for FoundryClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FoundryClientBuilder")
            .field(
                "foundry_url",
                &self.foundry_url.as_deref().map(crate::transport::shown_url),
            )
            .field(
                "service_urls",
                &self
                    .service_urls
                    .iter()
                    .map(|(s, u)| (s, crate::transport::shown_url(u)))
                    .collect::<Vec<_>>(),
            )
            .field("scopes", &self.scopes)
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl FoundryClientBuilder {
    /// The stack's base URL (`https://stack.example.com`, or just the hostname); every service
    /// URL is derived from it. Takes precedence over the environment.
    pub fn foundry_url(mut self, url: impl Into<String>) -> Self {
        self.foundry_url = Some(url.into());
        self
    }

    /// One service's base URL (e.g. the API gateway `https://stack.example.com/api`).
    pub fn service_url(mut self, service: Service, url: impl Into<String>) -> Self {
        self.service_urls.push((service, url.into()));
        self
    }

    /// Application permissions with an explicit client id and secret.
    pub fn app_credentials(mut self, client_id: impl Into<String>, secret: Secret) -> Self {
        self.credentials = CredentialSource::App {
            client_id: client_id.into(),
            secret,
        };
        self
    }

    /// Fixed credentials ([`Credentials::User`], [`Credentials::Pipeline`], …).
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = CredentialSource::Given(credentials);
        self
    }

    /// Scopes requested for application tokens.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Trusts an extra CA certificate (besides `DEFAULT_CA_PATH` and the public roots).
    pub fn add_root_certificate(mut self, cert: CertificateDer<'static>) -> Self {
        self.extra_roots.push(cert);
        self
    }

    /// Network timeouts (default: [`Timeouts::default`], with `CMOD_FOUNDRY_IDLE_TIMEOUT_SECS`
    /// and `CMOD_FOUNDRY_RESPONSE_TIMEOUT_SECS` overriding the idle and response limits).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = Some(timeouts);
        self
    }

    /// Retries of transient failures.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Builds the client from the environment (`DEFAULT_CA_PATH`, `FOUNDRY_SERVICE_DISCOVERY_V2`,
    /// `FOUNDRY_URL`, and for default credentials `CLIENT_ID`/`CLIENT_SECRET`/`BUILD2_TOKEN`).
    pub fn build(self) -> Result<FoundryClient, AuthError> {
        self.build_from_lookup(crate::env::lookup())
    }

    /// [`FoundryClientBuilder::build`] through a variable lookup function.
    pub fn build_from_lookup(
        self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<FoundryClient, AuthError> {
        let mut cas =
            PlatformCas::from_lookup(lookup).map_err(|message| AuthError::Config { message })?;
        cas.add(self.extra_roots.iter().cloned());
        let timeouts = match self.timeouts {
            Some(t) => t,
            None => Timeouts::from_lookup(
                lookup,
                Timeouts::default(),
                IDLE_TIMEOUT_VAR,
                RESPONSE_TIMEOUT_VAR,
            )
            .map_err(|message| AuthError::Config { message })?,
        };
        let http = platform_client(&cas, None, timeouts)
            .map_err(|message| AuthError::Config { message })?;
        let urls = self.resolve_urls(lookup)?;

        let credentials = match self.credentials {
            CredentialSource::Given(c) => c,
            CredentialSource::App { client_id, secret } => {
                app_provider(&http, &urls, client_id, secret, self.retry)?
            }
            CredentialSource::Environment => match crate::auth::app_credentials(lookup) {
                Ok((id, secret)) => app_provider(&http, &urls, id, secret, self.retry)?,
                Err(_) => match crate::config::var(lookup, crate::auth::PIPELINE_TOKEN_VAR) {
                    Some(_) => Credentials::PipelineFile(PipelineToken::watch(lookup)?),
                    None => Credentials::None,
                },
            },
        };
        Ok(FoundryClient {
            shared: Arc::new(Shared {
                http,
                urls,
                retry: self.retry,
                limits: timeouts.limits(),
            }),
            credentials,
            scopes: self.scopes.into(),
        })
    }

    fn resolve_urls(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<FoundryUrls, AuthError> {
        let mut urls = FoundryUrls::default();
        if let Some(base) = &self.foundry_url {
            let base = normalize_base(base);
            for s in URL_SERVICES {
                if let (Some(slot), Some(path)) = (urls.slot(s), s.default_path()) {
                    *slot = Some(format!("{base}{path}"));
                }
            }
        } else {
            let discovery =
                ServiceDiscovery::from_lookup(lookup).map_err(|e| AuthError::Config {
                    message: e.to_string(),
                })?;
            let foundry_url =
                crate::config::var(lookup, FOUNDRY_URL_VAR).map(|u| normalize_base(&u));
            let gateway_origin = discovery
                .as_ref()
                .and_then(|d| d.api_gateway())
                .and_then(|g| g.strip_suffix("/api"))
                .map(str::to_owned);
            for s in URL_SERVICES {
                let from_discovery = discovery.as_ref().and_then(|d| d.service(s));
                let from_base = |base: &Option<String>| {
                    base.as_ref()
                        .zip(s.default_path())
                        .map(|(b, p)| format!("{b}{p}"))
                };
                let url = from_discovery
                    .map(str::to_owned)
                    .or_else(|| from_base(&foundry_url))
                    .or_else(|| from_base(&gateway_origin));
                if let Some(slot) = urls.slot(s) {
                    *slot = url;
                }
            }
        }
        for (s, url) in &self.service_urls {
            if let Some(slot) = urls.slot(*s) {
                *slot = Some(normalize_base(url));
            }
        }
        Ok(urls)
    }
}

fn app_provider(
    http: &reqwest::Client,
    urls: &FoundryUrls,
    client_id: String,
    secret: Secret,
    retry: RetryPolicy,
) -> Result<Credentials, AuthError> {
    let multipass = urls
        .multipass
        .as_deref()
        .ok_or_else(|| AuthError::NoFoundryUrl {
            service: Service::Multipass.to_string(),
        })?;
    Ok(Credentials::Application(AppTokenProvider::new(
        http.clone(),
        multipass,
        client_id,
        secret,
        retry,
    )))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

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
}
