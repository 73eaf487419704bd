//! The local Foundry's OAuth2 (multipass) token endpoint and token store.
//!
//! `POST /multipass/api/oauth2/token` with an `application/x-www-form-urlencoded` body
//! (`grant_type=client_credentials`, `client_id`, `client_secret`, optional space-separated
//! `scope`; the client may also authenticate with HTTP Basic) issues an opaque bearer token:
//!
//! ```json
//! {"access_token": "…", "token_type": "bearer", "expires_in": 3600, "scope": "api:datasets-read"}
//! ```
//!
//! Tokens carry the granted scopes and expire after the configured lifetime. Every other local
//! Foundry endpoint checks them through `TokenStore::authorize`. Failures use Foundry's JSON
//! error shape and never echo a secret.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use serde_json::json;

use super::{ApiError, FoundryState, LocalClient};

/// The scopes a token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scopes {
    /// Every scope (a client without scope restrictions that requested none).
    All,
    /// Exactly these scopes.
    Set(BTreeSet<String>),
}

impl Scopes {
    /// Whether `scope` is granted.
    pub fn contains(&self, scope: &str) -> bool {
        match self {
            Scopes::All => true,
            Scopes::Set(s) => s.contains(scope),
        }
    }

    /// The scopes as a list (`["*"]` for [`Scopes::All`]).
    pub fn to_list(&self) -> Vec<String> {
        match self {
            Scopes::All => vec!["*".to_owned()],
            Scopes::Set(s) => s.iter().cloned().collect(),
        }
    }
}

/// What kind of principal a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrincipalKind {
    /// An application (OAuth2 client credentials).
    Application,
    /// A user (a per-job `authHeader` token).
    User,
    /// A pipeline build (`BUILD2_TOKEN`).
    Pipeline,
}

impl PrincipalKind {
    /// `application`, `user` or `pipeline`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Application => "application",
            PrincipalKind::User => "user",
            PrincipalKind::Pipeline => "pipeline",
        }
    }
}

/// Who a valid token belongs to and what it may do.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The client id or user name.
    pub subject: String,
    /// The kind of principal.
    pub kind: PrincipalKind,
    /// Granted scopes.
    pub scopes: Scopes,
    /// Resource RIDs the token is restricted to (pipeline tokens); `None` means unrestricted.
    pub resources: Option<BTreeSet<String>>,
}

impl Principal {
    /// Whether the token may touch the resource with this RID.
    pub fn can_access(&self, rid: &str) -> bool {
        self.resources.as_ref().is_none_or(|r| r.contains(rid))
    }
}

/// A token to issue directly with [`LocalFoundry::issue_token`](super::LocalFoundry::issue_token).
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// Who the token stands for.
    pub subject: String,
    /// The kind of principal.
    pub kind: PrincipalKind,
    /// Granted scopes.
    pub scopes: Scopes,
    /// Resource RIDs the token is restricted to; `None` means unrestricted.
    pub resources: Option<BTreeSet<String>>,
    /// Lifetime; `None` uses the Foundry's token lifetime.
    pub ttl: Option<Duration>,
}

impl TokenGrant {
    /// A user token with every scope.
    pub fn user(name: impl Into<String>) -> Self {
        Self {
            subject: name.into(),
            kind: PrincipalKind::User,
            scopes: Scopes::All,
            resources: None,
            ttl: None,
        }
    }

    /// A pipeline token restricted to the given resource RIDs.
    pub fn pipeline<I, S>(resources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            subject: "pipeline-build".to_owned(),
            kind: PrincipalKind::Pipeline,
            scopes: Scopes::All,
            resources: Some(resources.into_iter().map(Into::into).collect()),
            ttl: None,
        }
    }
}

#[derive(Debug)]
struct Issued {
    principal: Principal,
    expires_at: Instant,
}

/// Registered clients and the tokens issued so far.
pub(crate) struct TokenStore {
    clients: HashMap<String, LocalClient>,
    ttl: Duration,
    tokens: Mutex<HashMap<String, Issued>>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore")
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenStore {
    pub(crate) fn new(clients: &[LocalClient], ttl: Duration) -> Self {
        Self {
            clients: clients.iter().map(|c| (c.id.clone(), c.clone())).collect(),
            ttl,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    fn tokens(&self) -> MutexGuard<'_, HashMap<String, Issued>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts and
        // removals), so a poisoned lock is still usable.
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Issues a token for `grant`.
    pub(crate) fn issue(&self, grant: TokenGrant) -> String {
        let token = random_token("cmod-local-");
        let now = Instant::now();
        let expires_at = now + grant.ttl.unwrap_or(self.ttl);
        let mut tokens = self.tokens();
        tokens.retain(|_, t| t.expires_at > now);
        tokens.insert(
            token.clone(),
            Issued {
                principal: Principal {
                    subject: grant.subject,
                    kind: grant.kind,
                    scopes: grant.scopes,
                    resources: grant.resources,
                },
                expires_at,
            },
        );
        token
    }

    /// Issues a new token for the same principal as `old` (a fresh lifetime); `None` when `old`
    /// is unknown. `old` stays valid until [`TokenStore::revoke`].
    pub(crate) fn reissue(&self, old: &str) -> Option<String> {
        let now = Instant::now();
        let mut tokens = self.tokens();
        let principal = tokens.get(old)?.principal.clone();
        let token = random_token("cmod-local-");
        tokens.insert(
            token.clone(),
            Issued {
                principal,
                expires_at: now + self.ttl,
            },
        );
        Some(token)
    }

    /// Revokes one token: requests with it get 401.
    pub(crate) fn revoke(&self, token: &str) {
        self.tokens().remove(token);
    }

    pub(crate) fn revoke_all(&self) {
        self.tokens().clear();
    }

    /// Checks `Authorization: Bearer <token>` and, when given, that the token carries `scope`.
    pub(crate) fn authorize(
        &self,
        headers: &HeaderMap,
        scope: Option<&str>,
    ) -> Result<Principal, ApiError> {
        let token =
            bearer_token(headers).ok_or_else(|| ApiError::unauthorized("MissingCredentials"))?;
        let principal = {
            let tokens = self.tokens();
            let issued = tokens
                .get(token)
                .ok_or_else(|| ApiError::unauthorized("InvalidToken"))?;
            if issued.expires_at <= Instant::now() {
                return Err(ApiError::unauthorized("ExpiredToken"));
            }
            issued.principal.clone()
        };
        if let Some(scope) = scope
            && !principal.scopes.contains(scope)
        {
            return Err(ApiError::permission_denied("ApiUsageDenied").param("missingScope", scope));
        }
        Ok(principal)
    }

    /// Checks client credentials and the requested scopes; returns the granted scopes.
    fn authenticate(
        &self,
        client_id: &str,
        client_secret: &str,
        requested: &BTreeSet<String>,
    ) -> Result<Scopes, ApiError> {
        let client = self
            .clients
            .get(client_id)
            .filter(|c| constant_time_eq(c.secret.as_bytes(), client_secret.as_bytes()))
            .ok_or_else(|| {
                ApiError::unauthorized("InvalidClientCredentials").param("clientId", client_id)
            })?;
        match &client.allowed_scopes {
            None if requested.is_empty() => Ok(Scopes::All),
            None => Ok(Scopes::Set(requested.clone())),
            Some(allowed) => {
                if let Some(bad) = requested.iter().find(|s| !allowed.contains(s)) {
                    return Err(ApiError::invalid_argument("InvalidScope")
                        .param("scope", bad.as_str())
                        .param("clientId", client_id));
                }
                if requested.is_empty() {
                    Ok(Scopes::Set(allowed.iter().cloned().collect()))
                } else {
                    Ok(Scopes::Set(requested.clone()))
                }
            }
        }
    }
}

/// The token endpoint's route.
pub(crate) fn routes() -> Router<Arc<FoundryState>> {
    Router::new().route("/multipass/api/oauth2/token", post(token))
}

/// `POST /multipass/api/oauth2/token`.
async fn token(
    State(state): State<Arc<FoundryState>>,
    headers: HeaderMap,
    form: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let counters = &state.counters;
    counters.token_requests.fetch_add(1, Ordering::SeqCst);
    let Form(form) = form.map_err(|e| {
        ApiError::new(e.status(), "INVALID_ARGUMENT", "InvalidTokenRequest").param(
            "reason",
            "the body must be application/x-www-form-urlencoded",
        )
    })?;
    let grant_type = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant_type != "client_credentials" {
        return Err(ApiError::invalid_argument("UnsupportedGrantType")
            .param("grantType", grant_type)
            .param("supported", "client_credentials"));
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(decode_basic);
    let (client_id, client_secret) = match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => (id.clone(), secret.clone()),
        _ => basic.ok_or_else(|| {
            ApiError::unauthorized("MissingClientCredentials")
                .param("reason", "send client_id and client_secret")
        })?,
    };
    let requested: BTreeSet<String> = form
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let scopes = match state
        .tokens
        .authenticate(&client_id, &client_secret, &requested)
    {
        Ok(s) => s,
        Err(e) => {
            if e.status == StatusCode::UNAUTHORIZED {
                counters.unauthorized.fetch_add(1, Ordering::SeqCst);
            }
            return Err(e);
        }
    };
    let scope_text = match &scopes {
        Scopes::All => String::new(),
        Scopes::Set(s) => s.iter().cloned().collect::<Vec<_>>().join(" "),
    };
    let access_token = state.tokens.issue(TokenGrant {
        subject: client_id,
        kind: PrincipalKind::Application,
        scopes,
        resources: None,
        ttl: None,
    });
    counters.tokens_issued.fetch_add(1, Ordering::SeqCst);
    let expires_in = counters
        .expires_in_override
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
        .unwrap_or_else(|| json!(state.tokens.ttl.as_secs().max(1)));
    Ok(axum::Json(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "scope": scope_text,
    })))
}

/// The token of `Authorization: Bearer <token>`, if any.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 random bytes, hex-encoded, after `prefix`.
pub(crate) fn random_token(prefix: &str) -> String {
    let bytes = random_bytes::<32>();
    let mut s = String::with_capacity(prefix.len() + 64);
    s.push_str(prefix);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A random UUID (v4 layout), for `errorInstanceId`.
pub(crate) fn random_uuid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    let provider = rustls::crypto::ring::default_provider();
    if provider.secure_random.fill(&mut buf).is_err() {
        // The system RNG failed: fall back to std's randomly keyed hasher. Good enough for a
        // loopback test server; never used for anything leaving the machine.
        use std::hash::{BuildHasher, Hasher};
        for (i, chunk) in buf.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            let v = h.finish().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    buf
}

/// Decodes `Basic <base64(id:secret)>` into `(id, secret)`.
fn decode_basic(value: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn store() -> TokenStore {
        TokenStore::new(
            &[
                LocalClient::new("app", "s3cret"),
                LocalClient::new("narrow", "x").with_allowed_scopes(["api:datasets-read"]),
            ],
            Duration::from_secs(60),
        )
    }

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
        h
    }

    #[test]
    fn wrong_secret_is_rejected_without_echoing_it() {
        let err = store()
            .authenticate("app", "not-the-secret", &BTreeSet::new())
            .unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        assert!(!format!("{err:?}").contains("not-the-secret"));
    }

    #[test]
    fn scopes_are_checked() {
        let s = store();
        let requested: BTreeSet<String> = ["api:datasets-write".to_owned()].into();
        let err = s.authenticate("narrow", "x", &requested).unwrap_err();
        assert_eq!(err.error_name, "InvalidScope");
        let granted = s.authenticate("narrow", "x", &BTreeSet::new()).unwrap();
        let token = s.issue(TokenGrant {
            scopes: granted,
            ..TokenGrant::user("narrow")
        });
        assert!(
            s.authorize(&bearer(&token), Some("api:datasets-read"))
                .is_ok()
        );
        let denied = s
            .authorize(&bearer(&token), Some("api:datasets-write"))
            .unwrap_err();
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn expired_revoked_and_unknown_tokens_are_unauthorized() {
        let s = store();
        let expired = s.issue(TokenGrant {
            ttl: Some(Duration::ZERO),
            ..TokenGrant::user("u")
        });
        assert_eq!(
            s.authorize(&bearer(&expired), None).unwrap_err().error_name,
            "ExpiredToken"
        );
        let live = s.issue(TokenGrant::user("u"));
        assert_eq!(s.authorize(&bearer(&live), None).unwrap().subject, "u");
        s.revoke_all();
        assert_eq!(
            s.authorize(&bearer(&live), None).unwrap_err().error_name,
            "InvalidToken"
        );
        assert_eq!(
            s.authorize(&HeaderMap::new(), None).unwrap_err().error_name,
            "MissingCredentials"
        );
    }

    #[test]
    fn pipeline_tokens_are_restricted_to_their_resources() {
        let s = store();
        let t = s.issue(TokenGrant::pipeline(["ri.a"]));
        let p = s.authorize(&bearer(&t), None).unwrap();
        assert!(p.can_access("ri.a"));
        assert!(!p.can_access("ri.b"));
    }

    #[test]
    fn basic_auth_decodes() {
        // "id:se:cret"
        assert_eq!(
            decode_basic("Basic aWQ6c2U6Y3JldA=="),
            Some(("id".to_owned(), "se:cret".to_owned()))
        );
        assert_eq!(decode_basic("Bearer x"), None);
    }

    #[test]
    fn random_tokens_differ() {
        assert_ne!(random_token("a"), random_token("a"));
        assert_eq!(random_uuid().len(), 36);
    }
}
