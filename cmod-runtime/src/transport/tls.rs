//! TLS and client construction: the one place that builds rustls configurations and reqwest
//! clients. Which certificates a client trusts is its [`Trust`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::describe::describe_reqwest_error;
use super::retry::Timeouts;

/// A client certificate chain and its private key (mutual TLS).
type ClientAuth = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Which server certificates a client trusts. Verification is never disabled.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Trust<'a> {
    /// Exactly these CAs and nothing else: the runtime sidecar, whose CA files are the whole
    /// trust.
    Only(&'a [CertificateDer<'static>]),
    /// The public web roots plus [`PlatformCas`] (`DEFAULT_CA_PATH`'s certificates and any the
    /// caller adds): Foundry, OAuth and sources.
    Platform(&'a PlatformCas),
}

/// The CAs a platform client (Foundry, OAuth, sources) trusts besides the public web roots:
/// those of `DEFAULT_CA_PATH` (Foundry's CA inside the container, the local CA in local runs),
/// plus any the caller adds. Only [`PlatformCas::from_lookup`] makes one, so no platform
/// client can leave `DEFAULT_CA_PATH` out.
#[derive(Debug, Clone)]
pub(crate) struct PlatformCas(Vec<CertificateDer<'static>>);

impl PlatformCas {
    /// The certificates of `DEFAULT_CA_PATH`, when set; an error names the variable and the
    /// file.
    pub(crate) fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        match crate::config::var(lookup, crate::env::vars::DEFAULT_CA_PATH) {
            None => Ok(Self(Vec::new())),
            Some(path) => crate::config::read_ca_file(
                crate::env::vars::DEFAULT_CA_PATH,
                Path::new(path.trim()),
            )
            .map(|ca| Self(ca.certs))
            .map_err(|p| format!("{}: {}", p.var, p.message)),
        }
    }

    /// Trusts `certs` as well.
    pub(crate) fn add(&mut self, certs: impl IntoIterator<Item = CertificateDer<'static>>) {
        self.0.extend(certs);
    }

    /// No `DEFAULT_CA_PATH`: the public roots alone (tests that never connect).
    #[cfg(test)]
    pub(crate) fn public_roots_only() -> Self {
        Self(Vec::new())
    }
}

/// A rustls client configuration (ring provider, HTTP/1.1 ALPN) trusting `trust`, with an
/// optional client certificate.
pub(crate) fn tls_config(
    trust: Trust<'_>,
    client_auth: Option<ClientAuth>,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let extra = match trust {
        Trust::Only(certs) => certs,
        Trust::Platform(cas) => {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            &cas.0
        }
    };
    for cert in extra {
        roots
            .add(cert.clone())
            .map_err(|e| format!("invalid CA certificate: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots);
    let mut config = match client_auth {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("invalid client certificate or key: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A reqwest client builder with [`tls_config`], `connect_timeout`, no `Referer` and no
/// redirects followed. There is deliberately no `read_timeout` (its timer would run through a
/// whole upload): idle and response limits are enforced per exchange
/// ([`super::watchdog::send_tracked`]).
pub(crate) fn client_builder(
    trust: Trust<'_>,
    client_auth: Option<ClientAuth>,
    connect_timeout: Duration,
) -> Result<reqwest::ClientBuilder, String> {
    let tls = tls_config(trust, client_auth)?;
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false))
}

/// The builder of every client carrying a Foundry credential (Foundry, OAuth, sources):
/// [`client_builder`] with [`Trust::Platform`], the connect timeout of `timeouts`,
/// [`same_origin_redirects`] and the cmod user agent.
pub(crate) fn platform_client_builder(
    cas: &PlatformCas,
    client_auth: Option<ClientAuth>,
    timeouts: Timeouts,
) -> Result<reqwest::ClientBuilder, String> {
    Ok(
        client_builder(Trust::Platform(cas), client_auth, timeouts.connect)?
            .redirect(same_origin_redirects())
            .pool_idle_timeout(Duration::from_secs(50))
            .user_agent(concat!("cmod/", env!("CARGO_PKG_VERSION"))),
    )
}

/// [`platform_client_builder`], built.
pub(crate) fn platform_client(
    cas: &PlatformCas,
    client_auth: Option<ClientAuth>,
    timeouts: Timeouts,
) -> Result<reqwest::Client, String> {
    build(platform_client_builder(cas, client_auth, timeouts)?)
}

/// Builds `builder`, describing a failure.
fn build(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
    builder.build().map_err(|e| {
        format!(
            "building the HTTP client failed: {}",
            describe_reqwest_error(&e)
        )
    })
}

/// The redirect policy of every client carrying a Foundry credential: follow a redirect only
/// to the same origin (scheme, host, port) over HTTPS, at most 5 times; any other is not
/// followed (the 3xx is the answer), so neither the token nor a client secret in a form body
/// leaves the configured services.
pub(crate) fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin())
            && attempt.url().scheme() == "https";
        if !same_origin {
            attempt.stop()
        } else if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else {
            attempt.follow()
        }
    })
}
