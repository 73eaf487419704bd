//! Application permissions: OAuth2 client credentials (docs/protocol.md §6.1).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::AuthError;
use crate::foundry::RetryPolicy;
use crate::secret::Secret;
use crate::transport::send_with_retry;

/// Token lifetime assumed when the token endpoint omits `expires_in`.
const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(1800);
/// The longest token lifetime believed, whatever `expires_in` says.
const MAX_EXPIRES_IN: Duration = Duration::from_secs(24 * 3600);
/// Timeout of one token request.
const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches, caches and refreshes application tokens with the OAuth2 client-credentials grant:
/// `POST {multipass}/oauth2/token` with `grant_type=client_credentials`, `client_id`,
/// `client_secret` and the space-joined `scope`.
///
/// - Tokens are cached per scope set (order and duplicates do not matter).
/// - A token is refreshed once 75% of its `expires_in` has passed, on the next call (never used
///   up to its expiry, so clock skew and in-flight requests have a margin).
/// - Concurrent callers share one in-flight request: 20 tasks asking at once cause one token
///   request.
/// - [`AppTokenProvider::invalidate`] drops a token Foundry answered 401 to, so the next call
///   fetches a new one ([`FoundryClient`](crate::foundry::FoundryClient) does this and retries
///   once).
///
/// Cloning is cheap and shares the cache. `Debug` shows the client id only.
#[derive(Clone)]
pub struct AppTokenProvider {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    retry: RetryPolicy,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    current: RwLock<Option<CachedToken>>,
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl fmt::Debug for AppTokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppTokenProvider")
            .field("token_url", &self.inner.token_url)
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

impl AppTokenProvider {
    /// A provider for `client_id`/`client_secret` against the multipass base URL
    /// (`https://<stack>/multipass/api`), sending requests with `http` (which must trust
    /// Foundry's CA; [`FoundryClient`](crate::foundry::FoundryClient) builds one).
    pub fn new(
        http: reqwest::Client,
        multipass_url: &str,
        client_id: impl Into<String>,
        client_secret: Secret,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                http,
                token_url: format!("{}/oauth2/token", multipass_url.trim_end_matches('/')),
                client_id: client_id.into(),
                client_secret,
                retry,
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The OAuth2 client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &str {
        &self.inner.token_url
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// A valid access token for `scopes` (empty: the client's default scopes), from the cache
    /// or freshly fetched.
    pub async fn token<S: AsRef<str>>(&self, scopes: &[S]) -> Result<Secret, AuthError> {
        let key = scope_key(scopes);
        let slot = self.slot(&key);
        if let Some(t) = fresh(&slot) {
            return Ok(t);
        }
        let _refreshing = slot.refresh.lock().await;
        // Another caller may have refreshed while we waited.
        if let Some(t) = fresh(&slot) {
            return Ok(t);
        }
        let fetched = self.fetch(&key).await?;
        let token = fetched.token.clone();
        *slot
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fetched);
        Ok(token)
    }

    /// Drops the cached token for `scopes` if it is `rejected` (a token Foundry answered 401
    /// to), so the next [`AppTokenProvider::token`] fetches a new one. A token already replaced
    /// by a concurrent caller is left alone, so many callers failing at once cause one refresh.
    pub fn invalidate<S: AsRef<str>>(&self, scopes: &[S], rejected: &Secret) {
        let slot = self.slot(&scope_key(scopes));
        let mut current = slot
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| &c.token == rejected) {
            *current = None;
        }
    }

    async fn fetch(&self, scope: &str) -> Result<CachedToken, AuthError> {
        let inner = &*self.inner;
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_id", &inner.client_id),
            ("client_secret", inner.client_secret.expose()),
        ];
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        let request_error = |message: String| AuthError::TokenRequest {
            url: inner.token_url.clone(),
            message,
        };
        let started = Instant::now();
        // A small exchange: no progress for the request's whole time limit is a failure.
        let limits = crate::transport::watchdog::Limits {
            idle: TOKEN_REQUEST_TIMEOUT,
            response: TOKEN_REQUEST_TIMEOUT,
        };
        let response = send_with_retry(&inner.retry, limits, true, "token request", None, || {
            inner
                .http
                .post(&inner.token_url)
                .header(reqwest::header::ACCEPT, "application/json")
                .timeout(TOKEN_REQUEST_TIMEOUT)
                .form(&form)
        })
        .await
        .map_err(|e| request_error(crate::transport::describe_send_error(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| request_error(crate::transport::describe_reqwest_error(&e)))?;
        if !status.is_success() {
            let error_name = error_name(&body);
            tracing::warn!(
                client_id = %inner.client_id,
                status = status.as_u16(),
                error_name = error_name.as_deref().unwrap_or(""),
                "the Foundry token endpoint refused the application's client credentials"
            );
            if matches!(status.as_u16(), 400 | 401 | 403) {
                return Err(AuthError::TokenRejected {
                    url: inner.token_url.clone(),
                    client_id: inner.client_id.clone(),
                    status: status.as_u16(),
                    error_name,
                });
            }
            return Err(request_error(format!(
                "HTTP {status}{}",
                error_name.map(|n| format!(" ({n})")).unwrap_or_default()
            )));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            request_error(format!(
                "the response is not an OAuth2 token response ({e}); is the Foundry URL \
                 right?"
            ))
        })?;
        if parsed.access_token.trim().is_empty() {
            return Err(request_error(
                "the response has an empty access_token".to_owned(),
            ));
        }
        let expires_in = match token_lifetime(parsed.expires_in.as_ref()) {
            Ok(d) => d,
            Err(problem) => {
                tracing::warn!(
                    client_id = %inner.client_id,
                    token_url = %inner.token_url,
                    "the token endpoint's `expires_in` {problem}; treating the token as expiring \
                     now: it serves this request and a new one is fetched for the next"
                );
                Duration::ZERO
            }
        };
        tracing::debug!(
            client_id = %inner.client_id,
            scope,
            expires_in_secs = expires_in.as_secs(),
            "fetched an application token"
        );
        Ok(CachedToken {
            token: Secret::new(parsed.access_token.trim()),
            refresh_at: refresh_at(started, expires_in),
        })
    }
}

/// The lifetime of a token from the token response's `expires_in` (seconds, as a JSON number
/// or a numeric string; external input, so never trusted to be sane):
/// - absent or `null`: [`DEFAULT_EXPIRES_IN`];
/// - longer than [`MAX_EXPIRES_IN`] (one day): capped to it;
/// - zero, negative, NaN, infinite or not a number: an error saying what is wrong (the caller
///   treats the token as expiring now).
fn token_lifetime(expires_in: Option<&serde_json::Value>) -> Result<Duration, String> {
    let Some(value) = expires_in else {
        return Ok(DEFAULT_EXPIRES_IN);
    };
    let secs = match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let shown: String = value.to_string().chars().take(40).collect();
    let secs = secs.ok_or_else(|| format!("{shown} is not a number of seconds"))?;
    if !secs.is_finite() {
        return Err(format!("{shown} is not a finite number of seconds"));
    }
    if secs <= 0.0 {
        return Err(format!("{shown} is not a positive number of seconds"));
    }
    if secs >= MAX_EXPIRES_IN.as_secs_f64() {
        return Ok(MAX_EXPIRES_IN);
    }
    Duration::try_from_secs_f64(secs)
        .map_err(|e| format!("{shown} is not a usable number of seconds ({e})"))
}

/// When a token fetched at `started` that lives `lifetime` is refreshed: after 75% of its
/// lifetime (at `started` itself if that instant cannot be represented).
fn refresh_at(started: Instant, lifetime: Duration) -> Instant {
    started
        .checked_add(lifetime.saturating_sub(lifetime / 4))
        .unwrap_or(started)
}

/// The cached token of `slot` if it is not due for refresh.
fn fresh(slot: &Slot) -> Option<Secret> {
    let current = slot
        .current
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    current
        .as_ref()
        .filter(|t| Instant::now() < t.refresh_at)
        .map(|t| t.token.clone())
}

/// Sorted, de-duplicated, space-joined scopes: the cache key and the `scope` form field.
fn scope_key<S: AsRef<str>>(scopes: &[S]) -> String {
    let mut v: Vec<&str> = scopes
        .iter()
        .flat_map(|s| s.as_ref().split_whitespace())
        .collect();
    v.sort_unstable();
    v.dedup();
    v.join(" ")
}

/// Foundry's `errorName`, or OAuth2's `error`, from an error body.
fn error_name(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("errorName")
        .or_else(|| v.get("error"))
        .and_then(|n| n.as_str())
        .map(|n| n.chars().take(100).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_key_is_order_and_duplicate_insensitive() {
        assert_eq!(scope_key(&["b", "a", "a b"]), scope_key(&["a", "b"]),);
        assert_eq!(scope_key(&["b a"]), "a b");
        assert_eq!(scope_key::<&str>(&[]), "");
    }

    #[test]
    fn error_names_come_from_foundry_or_oauth_bodies() {
        assert_eq!(
            error_name(br#"{"errorCode":"UNAUTHORIZED","errorName":"InvalidClientCredentials"}"#),
            Some("InvalidClientCredentials".to_owned())
        );
        assert_eq!(
            error_name(br#"{"error":"invalid_client"}"#),
            Some("invalid_client".to_owned())
        );
        assert_eq!(error_name(b"<html>"), None);
    }

    #[test]
    fn absurd_expires_in_values_are_capped_or_expire_now_without_panicking() {
        use serde_json::json;
        let day = Duration::from_secs(24 * 3600);
        // Huge: capped to a day (from_secs_f64 would panic on it, `Instant + d` overflow).
        assert_eq!(token_lifetime(Some(&json!(1e30))), Ok(day));
        assert_eq!(token_lifetime(Some(&json!(u64::MAX))), Ok(day));
        assert_eq!(token_lifetime(Some(&json!("1e300"))), Ok(day));
        // Negative, zero, NaN, infinite, not a number: an error naming the value.
        for (value, words) in [
            (json!(-5), "-5 is not a positive"),
            (json!(0), "0 is not a positive"),
            (json!("NaN"), "\"NaN\" is not a finite"),
            (json!("inf"), "\"inf\" is not a finite"),
            (json!("soon"), "\"soon\" is not a number"),
            (json!(true), "true is not a number"),
            (json!({"s": 1}), "is not a number"),
        ] {
            let err = token_lifetime(Some(&value)).unwrap_err();
            assert!(err.contains(words), "{value}: {err}");
        }
        // Sane values, as numbers or strings; absent: the default.
        assert_eq!(
            token_lifetime(Some(&json!(3600))),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            token_lifetime(Some(&json!(" 90.5 "))),
            Ok(Duration::from_millis(90_500))
        );
        assert_eq!(token_lifetime(None), Ok(DEFAULT_EXPIRES_IN));

        // The refresh instant: 75% of the lifetime, never a panic.
        let now = Instant::now();
        assert_eq!(
            refresh_at(now, Duration::from_secs(400)),
            now + Duration::from_secs(300)
        );
        assert_eq!(refresh_at(now, Duration::ZERO), now);
        assert_eq!(refresh_at(now, Duration::MAX), now);
    }

    #[test]
    fn debug_shows_the_client_id_only() {
        let p = AppTokenProvider::new(
            crate::transport::platform_client(
                &crate::transport::PlatformCas::public_roots_only(),
                None,
                crate::foundry::Timeouts::default(),
            )
            .unwrap(),
            "https://h/multipass/api/",
            "my-app",
            Secret::new("planted-secret"),
            RetryPolicy::default(),
        );
        assert_eq!(p.token_url(), "https://h/multipass/api/oauth2/token");
        let dbg = format!("{p:?}");
        assert!(dbg.contains("my-app"));
        assert!(!dbg.contains("planted-secret"));
    }
}
