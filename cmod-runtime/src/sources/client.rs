//! [`SourceClient`]: the HTTP client of a REST source ([`Source::http_client`]) and
//! [`SourceRequest`], which follows redirects itself so the connection's credentials never
//! leave its origin or show in errors.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::secret::Secret;
use crate::transport::watchdog::{self, Limits, SendError};
use crate::transport::{describe_reqwest_error, scrub_error, scrub_response, shown};

use super::config::Source;
use super::error::{SourceError, SourceRequestError};

impl Source {
    /// A ready HTTP client for this REST source: requests go to the connection's URL, carry its
    /// auth headers and query parameters, and trust `DEFAULT_CA_PATH`, the source's
    /// `serverCertificates` and the public web roots; the client certificate is presented when
    /// configured. Timeouts: 10 s to connect, then limits on idle time only (never a cap on a
    /// transfer that moves): 60 s for the response headers once the request body was sent
    /// (`CMOD_SOURCE_RESPONSE_TIMEOUT_SECS`), 30 s without progress of either body
    /// (`CMOD_SOURCE_IDLE_TIMEOUT_SECS`); [`SourceRequest::timeout`] sets a request's own.
    /// Requests made with [`SourceClient::get`] & co. follow redirects themselves: on the
    /// connection's origin with its credentials, elsewhere without its auth headers and secret
    /// query parameters; no `Referer` is ever sent.
    pub fn http_client(&self) -> Result<SourceClient, SourceError> {
        self.http_client_from_lookup(crate::env::lookup())
    }

    /// [`Source::http_client`], reading `DEFAULT_CA_PATH` through a variable lookup function.
    pub fn http_client_from_lookup(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SourceClient, SourceError> {
        let conn = self.http_connection()?;
        let err = |message: String| SourceError::Client {
            api_name: self.api_name.clone(),
            message,
        };
        let base = reqwest::Url::parse(conn.url.trim()).map_err(|e| {
            // Without its query or user info: they could carry a credential.
            let shown = crate::transport::shown_url(&conn.url);
            err(format!("invalid connection URL `{shown}`: {e}"))
        })?;

        let mut cas = crate::transport::PlatformCas::from_lookup(lookup).map_err(err)?;
        for (name, pem) in &self.server_certificates {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .map_err(|e| {
                        err(format!("server certificate `{name}` is not valid PEM: {e}"))
                    })?;
            if certs.is_empty() {
                return Err(err(format!(
                    "server certificate `{name}` contains no certificate"
                )));
            }
            cas.add(certs);
        }
        let client_auth = match &self.client_certificate {
            None => None,
            Some(c) => {
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(c.pem_certificate.as_bytes())
                        .collect::<Result<_, _>>()
                        .map_err(|e| err(format!("client certificate is not valid PEM: {e}")))?;
                let key = PrivateKeyDer::from_pem_slice(c.pem_private_key.expose().as_bytes())
                    .map_err(|_| {
                        err("client certificate private key is not valid PEM".to_owned())
                    })?;
                Some((chain, key))
            }
        };
        let mut headers = HeaderMap::new();
        let mut auth_names = Vec::new();
        for (name, value) in &conn.auth_headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| err(format!("auth header name `{name}` is not a valid header")))?;
            let mut v = HeaderValue::from_str(value.expose())
                .map_err(|_| err(format!("auth header `{name}` has an invalid value")))?;
            v.set_sensitive(true);
            auth_names.push(n.clone());
            headers.insert(n, v);
        }
        let timeouts = crate::transport::Timeouts::from_lookup(
            lookup,
            SOURCE_TIMEOUTS,
            SOURCE_IDLE_TIMEOUT_VAR,
            SOURCE_RESPONSE_TIMEOUT_VAR,
        )
        .map_err(err)?;
        let proxy = match &self.proxy_token {
            None => None,
            Some(token) => {
                let discovery = crate::discovery::ServiceDiscovery::from_lookup(lookup)
                    .map_err(|e| err(e.to_string()))?;
                match discovery.as_ref().and_then(|d| d.on_prem_proxy()) {
                    None => None,
                    Some(proxy_url) => Some(
                        reqwest::Proxy::all(proxy_url)
                            .map_err(|e| {
                                err(format!("invalid on-prem proxy URL `{proxy_url}`: {e}"))
                            })?
                            .basic_auth("user", token.expose()),
                    ),
                }
            }
        };
        let client = |default_headers: Option<HeaderMap>| {
            let auth = client_auth
                .as_ref()
                .map(|(chain, key)| (chain.clone(), key.clone_key()));
            // Redirects are followed by `SourceRequest::send`, which knows what to strip.
            let mut builder = crate::transport::platform_client_builder(&cas, auth, timeouts)
                .map_err(err)?
                .redirect(reqwest::redirect::Policy::none());
            if let Some(proxy) = &proxy {
                builder = builder.proxy(proxy.clone());
            }
            if let Some(h) = default_headers {
                builder = builder.default_headers(h);
            }
            builder.build().map_err(|e| err(describe_reqwest_error(&e)))
        };
        let plain = client(None)?;
        let http = client(Some(headers.clone()))?;
        Ok(SourceClient {
            api_name: self.api_name.clone(),
            http,
            plain,
            base,
            query: conn
                .query_parameters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            credentials: std::sync::Arc::new(ConnectionCredentials {
                headers,
                names: auth_names,
                query_names: conn.query_parameters.keys().cloned().collect(),
                query_values: conn
                    .query_parameters
                    .values()
                    .map(|v| v.expose().to_owned())
                    .filter(|v| !v.is_empty())
                    .map(Secret::new)
                    .collect(),
            }),
            limits: timeouts.limits(),
        })
    }
}

/// A ready HTTP client for a REST source; see [`Source::http_client`]. Paths are joined to the
/// connection's URL and get its query parameters. `Debug` never shows credentials.
///
/// The connection's query parameters and auth headers are often credentials, so requests made
/// with [`SourceClient::get`] / [`post`](SourceClient::post) /
/// [`request`](SourceClient::request) keep them out of what can end up in logs: the errors of
/// [`SourceRequest::send`] and the URL of its response (so also `error_for_status()` errors)
/// show the URL without its query string and user info, and the auth headers are sent as
/// sensitive header values (never in `Debug` output). [`SourceClient::url`] and
/// [`SourceClient::http`] are lower level and give no such guarantee.
#[derive(Clone)]
pub struct SourceClient {
    pub(super) api_name: String,
    /// With the auth headers as default headers, for [`SourceClient::http`].
    pub(super) http: reqwest::Client,
    /// Without default headers: [`SourceRequest`] adds them per hop.
    plain: reqwest::Client,
    pub(super) base: reqwest::Url,
    pub(super) query: Vec<(String, Secret)>,
    credentials: std::sync::Arc<ConnectionCredentials>,
    pub(super) limits: Limits,
}

/// Default timeouts of source clients.
const SOURCE_TIMEOUTS: crate::transport::Timeouts = crate::transport::Timeouts {
    connect: Duration::from_secs(10),
    response: Duration::from_secs(60),
    idle: Duration::from_secs(30),
};
/// The variable overriding the idle limit of source clients, in seconds.
pub const SOURCE_IDLE_TIMEOUT_VAR: &str = crate::env::vars::CMOD_SOURCE_IDLE_TIMEOUT_SECS;
/// The variable overriding the response-header limit of source clients, in seconds.
pub const SOURCE_RESPONSE_TIMEOUT_VAR: &str = crate::env::vars::CMOD_SOURCE_RESPONSE_TIMEOUT_SECS;
/// Redirects a [`SourceRequest`] follows at most.
const MAX_REDIRECTS: usize = 10;

/// What a redirect to another origin must not carry: the connection's auth headers and its
/// query parameters (by name, and by value wherever they were echoed).
struct ConnectionCredentials {
    pub(super) headers: HeaderMap,
    pub(super) names: Vec<HeaderName>,
    query_names: Vec<String>,
    query_values: Vec<Secret>,
}

impl ConnectionCredentials {
    /// Where the request sets an auth header itself (after the connection's, which come
    /// first), drops the connection's value: the request's own wins, as a default header would.
    fn let_request_override(&self, headers: &mut HeaderMap) {
        for name in &self.names {
            let values: Vec<HeaderValue> = headers.get_all(name).iter().cloned().collect();
            if values.len() > 1 {
                headers.remove(name);
                for v in values.into_iter().skip(1) {
                    headers.append(name.clone(), v);
                }
            }
        }
    }

    /// Removes every credential from a request leaving the connection's origin.
    fn strip(&self, request: &mut reqwest::Request) {
        let headers = request.headers_mut();
        for name in &self.names {
            headers.remove(name);
        }
        for name in [
            reqwest::header::AUTHORIZATION,
            reqwest::header::COOKIE,
            reqwest::header::PROXY_AUTHORIZATION,
        ] {
            headers.remove(name);
        }
        let url = request.url_mut();
        if url.query().is_some() {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, v)| {
                    !self.query_names.iter().any(|n| n == k)
                        && !self.query_values.iter().any(|s| s.expose() == v)
                })
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.set_query(None);
            if !kept.is_empty() {
                url.query_pairs_mut().extend_pairs(kept);
            }
        }
        let _ = url.set_password(None);
        let _ = url.set_username("");
    }
}

impl fmt::Debug for SourceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceClient")
            .field("api_name", &self.api_name)
            .field("base_url", &shown(&self.base))
            .finish_non_exhaustive()
    }
}

impl SourceClient {
    /// The connection's base URL (without query string or user info).
    pub fn base_url(&self) -> String {
        shown(&self.base)
    }

    /// The underlying client (auth headers and TLS configured, no base URL). It follows no
    /// redirect and has only a connect timeout. Errors and responses of requests sent with it
    /// carry the full URL: use [`SourceClient::get`] & co. when the URL holds credentials.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The full URL of `path` (joined to the base URL, with the connection's query parameters).
    /// It contains the query parameters' values, which may be credentials: do not log or
    /// display it.
    pub fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.base.clone();
        let joined = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        let (p, q) = joined
            .split_once('?')
            .map_or((joined.as_str(), None), |(p, q)| (p, Some(q)));
        url.set_path(p);
        url.set_query(q);
        if !self.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(self.query.iter().map(|(k, v)| (k, v.expose())));
        }
        url
    }

    /// A request to `path` under the base URL (`path` may carry its own `?query`).
    pub fn request(&self, method: reqwest::Method, path: &str) -> SourceRequest {
        let url = self.url(path);
        SourceRequest {
            api_name: self.api_name.clone(),
            method: method.clone(),
            shown: shown(&url),
            origin: self.base.origin().ascii_serialization(),
            inner: self
                .plain
                .request(method, url)
                .headers(self.credentials.headers.clone()),
            credentials: self.credentials.clone(),
            limits: self.limits,
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> SourceRequest {
        self.request(reqwest::Method::GET, path)
    }

    /// `POST path`.
    pub fn post(&self, path: &str) -> SourceRequest {
        self.request(reqwest::Method::POST, path)
    }
}

/// A request to a REST source being built ([`SourceClient::get`], …): reqwest's
/// `RequestBuilder` that keeps the connection's credentials out of errors and logs (see
/// [`SourceClient`]). `Debug` shows the method and the URL without its query.
pub struct SourceRequest {
    pub(super) api_name: String,
    pub(super) method: reqwest::Method,
    shown: String,
    /// The connection's origin: its credentials go nowhere else.
    origin: String,
    pub(super) inner: reqwest::RequestBuilder,
    credentials: std::sync::Arc<ConnectionCredentials>,
    pub(super) limits: Limits,
}

impl fmt::Debug for SourceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceRequest")
            .field("source", &self.api_name)
            .field("method", &self.method)
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl SourceRequest {
    /// Adds a header. An invalid name or value fails the request at [`SourceRequest::send`].
    /// (The connection's auth headers are already set, marked sensitive; mark a secret value of
    /// your own with `HeaderValue::set_sensitive`.)
    pub fn header<K, V>(mut self, key: K, value: V) -> Self
    where
        reqwest::header::HeaderName: TryFrom<K>,
        <reqwest::header::HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        reqwest::header::HeaderValue: TryFrom<V>,
        <reqwest::header::HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.inner = self.inner.header(key, value);
        self
    }

    /// Adds headers.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.inner = self.inner.headers(headers);
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<reqwest::Body>) -> Self {
        self.inner = self.inner.body(body);
        self
    }

    /// Sets a JSON body (`Content-Type: application/json`).
    pub fn json<T: serde::Serialize + ?Sized>(self, body: &T) -> Result<Self, serde_json::Error> {
        let bytes = serde_json::to_vec(body)?;
        Ok(self
            .header(
                reqwest::header::CONTENT_TYPE,
                reqwest::header::HeaderValue::from_static("application/json"),
            )
            .body(bytes))
    }

    /// Sets a form body (`application/x-www-form-urlencoded`).
    pub fn form<T: serde::Serialize + ?Sized>(mut self, form: &T) -> Self {
        self.inner = self.inner.form(form);
        self
    }

    /// Limits the whole request, from connecting to reading the end of the body, to `timeout`;
    /// it replaces the client's idle and response limits for this request (so it may be
    /// longer than they are).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.inner = self.inner.timeout(timeout);
        self.limits = Limits {
            idle: timeout,
            response: timeout,
        };
        self
    }

    /// Sends the request, following redirects: to the connection's origin with its
    /// credentials, to any other without the connection's auth headers, its query parameters,
    /// `Authorization` and `Cookie` (at most 10). The error, and the response's URL, show the
    /// URL without its query string or user info (so without the connection's query
    /// parameters).
    pub async fn send(self) -> Result<reqwest::Response, SourceRequestError> {
        let fail = |url: &str, message: String, timeout: bool, source: Option<reqwest::Error>| {
            let e = SourceRequestError {
                api_name: self.api_name.clone(),
                method: self.method.to_string(),
                url: url.to_owned(),
                message,
                timeout,
                source,
            };
            tracing::debug!(
                source = %self.api_name,
                method = %self.method,
                url = %url,
                error = %e,
                "source request failed"
            );
            e
        };
        let (client, request) = self.inner.build_split();
        let mut request = request.map_err(|e| {
            let e = scrub_error(e);
            fail(&self.shown, describe_reqwest_error(&e), false, Some(e))
        })?;
        self.credentials.let_request_override(request.headers_mut());
        let mut hops = 0usize;
        loop {
            let here = shown(request.url());
            let replay = request.try_clone();
            let (method, url) = (request.method().clone(), request.url().clone());
            let (headers, timeout) = (request.headers().clone(), request.timeout().copied());
            let builder = reqwest::RequestBuilder::from_parts(client.clone(), request);
            let response = match watchdog::send_tracked(builder, self.limits).await {
                Ok(r) => r,
                Err(SendError::Stalled(stall)) => {
                    return Err(fail(&here, stall.to_string(), true, None));
                }
                Err(SendError::Transport(e)) => {
                    let e = scrub_error(e);
                    let message = describe_reqwest_error(&e);
                    return Err(fail(&here, message, false, Some(e)));
                }
            };
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok());
            let (Some(location), true) = (location, matches!(status, 301 | 302 | 303 | 307 | 308))
            else {
                return Ok(scrub_response(response));
            };
            if hops >= MAX_REDIRECTS {
                return Err(fail(
                    &here,
                    format!("more than {MAX_REDIRECTS} redirects"),
                    false,
                    None,
                ));
            }
            // 307/308 repeat the request (body included); 303, and 301/302 after a POST, turn
            // it into a GET without body, as browsers and reqwest do.
            let keep = matches!(status, 307 | 308)
                || (matches!(status, 301 | 302) && method != reqwest::Method::POST);
            let mut next = match (keep, replay) {
                (true, Some(r)) => r,
                // A streamed body cannot be sent again: the redirect is the answer.
                (true, None) => return Ok(scrub_response(response)),
                (false, _) => {
                    let m = if method == reqwest::Method::HEAD {
                        method.clone()
                    } else {
                        reqwest::Method::GET
                    };
                    let mut r = reqwest::Request::new(m, location.clone());
                    // The request's headers, without those describing the dropped body.
                    *r.headers_mut() = headers;
                    for h in [
                        reqwest::header::CONTENT_TYPE,
                        reqwest::header::CONTENT_LENGTH,
                        reqwest::header::CONTENT_ENCODING,
                        reqwest::header::TRANSFER_ENCODING,
                    ] {
                        r.headers_mut().remove(h);
                    }
                    *r.timeout_mut() = timeout;
                    r
                }
            };
            *next.url_mut() = location.clone();
            if location.origin().ascii_serialization() != self.origin {
                self.credentials.strip(&mut next);
            }
            next.headers_mut().remove(reqwest::header::REFERER);
            tracing::debug!(
                source = %self.api_name,
                status,
                to = %shown(&location),
                "source request redirected"
            );
            drop(response);
            request = next;
            hops += 1;
        }
    }

    /// The underlying reqwest builder, for options this type does not offer. It carries the
    /// connection's auth headers (a header of the same name added on it is sent as well) but
    /// follows no redirect and has no idle limits; its errors and responses carry the full URL,
    /// credentials included.
    pub fn into_reqwest(self) -> reqwest::RequestBuilder {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_joins_paths_and_appends_query_parameters() {
        let http = crate::transport::platform_client(
            &crate::transport::PlatformCas::public_roots_only(),
            None,
            crate::transport::Timeouts::default(),
        )
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
