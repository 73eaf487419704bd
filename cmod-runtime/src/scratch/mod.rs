//! [`Scratch`]: Foundry's distributed cache and lock for compute modules.
//!
//! The user-facing documentation is on the struct (this module is private).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::auth::Credentials;
use crate::discovery::ServiceDiscovery;
use crate::foundry::{FoundryClient, FoundryError};
use crate::secret::Secret;

/// The variable that enables Scratch: the service token, sent as the raw `Authorization` value.
pub(crate) const SCRATCH_TOKEN_VAR: &str = crate::env::vars::SCRATCH_TOKEN;

/// The service discovery keys of the service hosting Scratch, in order of preference.
pub(crate) const SERVICE_KEYS: [&str; 2] =
    ["contour_backend_multiplexer", "contour-backend-multiplexer"];

/// The most keys one [`Scratch::get_many`] may ask for.
pub(crate) const MAX_BATCH_KEYS: usize = 100;

/// How long the service keeps a lock after its last refresh.
pub(crate) const LOCK_EXPIRY: Duration = Duration::from_secs(20);

/// How often a [`LockGuard`] refreshes its lock by default.
pub(crate) const DEFAULT_LOCK_REFRESH: Duration = Duration::from_secs(5);

/// How long a cached value lives (the service's TTL values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum Ttl {
    /// 1 minute (`ONE_MINUTE`).
    OneMinute,
    /// 5 minutes (`FIVE_MINUTES`).
    FiveMinutes,
    /// 15 minutes (`FIFTEEN_MINUTES`).
    FifteenMinutes,
    /// 1 hour (`ONE_HOUR`).
    OneHour,
    /// 6 hours (`SIX_HOURS`).
    SixHours,
    /// 12 hours (`TWELVE_HOURS`).
    TwelveHours,
    /// 1 day (`ONE_DAY`).
    OneDay,
}

impl Ttl {
    /// Every TTL, shortest first.
    pub const ALL: [Ttl; 7] = [
        Ttl::OneMinute,
        Ttl::FiveMinutes,
        Ttl::FifteenMinutes,
        Ttl::OneHour,
        Ttl::SixHours,
        Ttl::TwelveHours,
        Ttl::OneDay,
    ];

    /// The wire name (`ONE_HOUR`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Ttl::OneMinute => "ONE_MINUTE",
            Ttl::FiveMinutes => "FIVE_MINUTES",
            Ttl::FifteenMinutes => "FIFTEEN_MINUTES",
            Ttl::OneHour => "ONE_HOUR",
            Ttl::SixHours => "SIX_HOURS",
            Ttl::TwelveHours => "TWELVE_HOURS",
            Ttl::OneDay => "ONE_DAY",
        }
    }

    /// The duration.
    pub fn duration(self) -> Duration {
        let minutes = match self {
            Ttl::OneMinute => 1,
            Ttl::FiveMinutes => 5,
            Ttl::FifteenMinutes => 15,
            Ttl::OneHour => 60,
            Ttl::SixHours => 360,
            Ttl::TwelveHours => 720,
            Ttl::OneDay => 1440,
        };
        Duration::from_secs(minutes * 60)
    }
}

/// A Scratch call failed. Every variant says which operation (and key or lock) it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScratchError {
    /// `SCRATCH_TOKEN` is not set: Scratch is not enabled for this module.
    #[error(
        "Scratch is not enabled: {var} is not set (enable Scratch in the compute module's \
         configuration; locally, CMOD_LOCAL=1 sets it)"
    )]
    NotEnabled {
        /// The variable (`SCRATCH_TOKEN`).
        var: &'static str,
    },
    /// The service discovery file or a CA file could not be used.
    #[error("Scratch: {var}: {message}")]
    Config {
        /// The variable involved.
        var: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The service answered 429.
    #[error("Scratch {operation}: rate limited (HTTP 429); retry later")]
    RateLimited {
        /// The operation (`get of key \`k\``, …).
        operation: String,
    },
    /// The service answered 403 or 404: Scratch is disabled for this module or stack.
    #[error("Scratch {operation}: Scratch is disabled for this module (HTTP {status})")]
    Disabled {
        /// The operation.
        operation: String,
        /// 403 or 404.
        status: u16,
    },
    /// The service answered 5xx (after retries).
    #[error("Scratch {operation}: the service is unavailable (HTTP {status})")]
    Unavailable {
        /// The operation.
        operation: String,
        /// The status.
        status: u16,
    },
    /// Any other failure: another status, unreachable service, timeout.
    #[error("Scratch {operation} failed: {source}")]
    Request {
        /// The operation.
        operation: String,
        /// The Foundry client's error (never the token).
        #[source]
        source: FoundryError,
    },
    /// The value could not be serialized.
    #[error("Scratch set of key `{key}`: the value cannot be serialized: {message}")]
    Encode {
        /// The key.
        key: String,
        /// The serde error.
        message: String,
    },
    /// A stored value, or the service's answer, is not what was expected.
    #[error("Scratch {operation}: unexpected value: {message}")]
    Decode {
        /// The operation.
        operation: String,
        /// What did not match.
        message: String,
    },
    /// [`Scratch::get_many`] was given more than 100 keys.
    #[error("Scratch get_many: {count} keys asked for, at most {max} per call")]
    TooManyKeys {
        /// Keys asked for.
        count: usize,
        /// The limit.
        max: usize,
    },
}

impl ScratchError {
    fn from_foundry(operation: String, source: FoundryError) -> Self {
        match source.status() {
            Some(429) => ScratchError::RateLimited { operation },
            Some(status @ (403 | 404)) => ScratchError::Disabled { operation, status },
            Some(status) if status >= 500 => ScratchError::Unavailable { operation, status },
            _ => ScratchError::Request { operation, source },
        }
    }
}

/// A client for Scratch: the distributed cache and lock. Cheap to clone. `Debug` never shows
/// the token.
///
/// Foundry's distributed cache and lock for compute modules (docs/protocol.md §11), the Rust
/// side of the Python SDK's `scratch` package.
///
/// ```no_run
/// # async fn f() -> Result<(), cmod_runtime::ScratchError> {
/// use cmod_runtime::{Scratch, Ttl};
///
/// let scratch = Scratch::from_env()?;
/// scratch.set("rates:EUR", &1.08_f64, Ttl::FifteenMinutes).await?;
/// let rate: Option<f64> = scratch.get("rates:EUR").await?;
///
/// // One replica at a time: the guard keeps the lock alive while held, releases it on drop.
/// if let Some(lock) = scratch.try_lock("nightly-refresh").await? {
///     // … work only one replica may do …
///     lock.unlock().await?;
/// }
/// # Ok(()) }
/// ```
///
/// Scratch is enabled in the module's configuration; Foundry then sets `SCRATCH_TOKEN`.
/// Without it every constructor fails with [`ScratchError::NotEnabled`], naming the variable.
/// The service is the first URL of `contour_backend_multiplexer` in
/// `FOUNDRY_SERVICE_DISCOVERY_V2`, plus `/scratch/api`; its certificate is trusted through
/// `CONNECTIONS_TO_OTHER_PODS_CA_PATH` (next to `DEFAULT_CA_PATH` and the public roots). Every
/// call is a `POST` sent through a [`FoundryClient`] (idle timeouts, retries of connect errors
/// and 429/502/503/504) with `Authorization: <SCRATCH_TOKEN>` as is.
///
/// # Values
///
/// [`Scratch::set`] stores a value as its JSON text, [`Scratch::get`] decodes it again. Values
/// shared with Python modules, which store plain strings, are read and written as they are with
/// [`Scratch::get_raw`] / [`Scratch::set_raw`]; [`Scratch::get`] also accepts a plain string
/// that is not JSON when `T` is a string type.
///
/// # Locks
///
/// [`Scratch::try_lock`] does not wait: it returns `None` when another holder has the lock.
/// The service drops a lock 20 s after its last refresh, so the [`LockGuard`] refreshes it every
/// 5 s ([`Scratch::lock_refresh_interval`]) while it lives. Dropping the guard releases the lock
/// on a task spawned on the current Tokio runtime (a destructor cannot wait); call
/// [`LockGuard::unlock`] to release it and see the outcome. Outside a runtime the lock expires
/// by itself 20 s later. [`LockGuard::is_held`] turns `false` when a refresh is refused (the
/// lock expired, e.g. after a long pause): the work it protects is no longer exclusive.
#[derive(Clone)]
pub struct Scratch {
    client: FoundryClient,
    base: Arc<str>,
    refresh_every: Duration,
}

impl fmt::Debug for Scratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scratch")
            .field("base", &crate::transport::shown_url(&self.base))
            .field("refresh_every", &self.refresh_every)
            .finish_non_exhaustive()
    }
}

/// The environment's client, once built (a failed build is retried on the next call).
static ENV_SCRATCH: Mutex<Option<Scratch>> = Mutex::new(None);

impl Scratch {
    /// The environment's Scratch client (built once per process): `SCRATCH_TOKEN`, the
    /// `contour_backend_multiplexer` URL of `FOUNDRY_SERVICE_DISCOVERY_V2`, and the CAs of
    /// `CONNECTIONS_TO_OTHER_PODS_CA_PATH` and `DEFAULT_CA_PATH`.
    pub fn from_env() -> Result<Scratch, ScratchError> {
        let mut slot = ENV_SCRATCH.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let s = Self::from_lookup(crate::env::lookup())?;
        *slot = Some(s.clone());
        Ok(s)
    }

    /// [`Scratch::from_env`] through a variable lookup function (not cached).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Scratch, ScratchError> {
        let token =
            crate::config::var(lookup, SCRATCH_TOKEN_VAR).ok_or(ScratchError::NotEnabled {
                var: SCRATCH_TOKEN_VAR,
            })?;
        let discovery_var = crate::discovery::DISCOVERY_VAR;
        let discovery = ServiceDiscovery::from_lookup(lookup)
            .map_err(|e| ScratchError::Config {
                var: discovery_var,
                message: e.to_string(),
            })?
            .ok_or_else(|| ScratchError::Config {
                var: discovery_var,
                message: "not set: Scratch's URL is the `contour_backend_multiplexer` entry of \
                          the service discovery file"
                    .to_owned(),
            })?;
        let base = SERVICE_KEYS
            .iter()
            .find_map(|k| discovery.get(k))
            .ok_or_else(|| ScratchError::Config {
                var: discovery_var,
                message: format!(
                    "{} lists no `contour_backend_multiplexer` URL, where Scratch is served",
                    discovery.path().display()
                ),
            })?;
        let base = format!("{}/scratch/api", base.trim_end_matches('/'));
        let mut builder =
            FoundryClient::builder().credentials(Credentials::User(Secret::new(token.trim())));
        let pods_var = crate::env::vars::CONNECTIONS_TO_OTHER_PODS_CA_PATH;
        if let Some(path) = crate::config::var(lookup, pods_var) {
            let ca =
                crate::config::read_ca_file(pods_var, Path::new(path.trim())).map_err(|p| {
                    ScratchError::Config {
                        var: pods_var,
                        message: p.message,
                    }
                })?;
            for cert in ca.certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build_from_lookup(lookup)
            .map_err(|e| ScratchError::Config {
                var: crate::env::vars::DEFAULT_CA_PATH,
                message: e.to_string(),
            })?;
        Ok(Scratch {
            client,
            base: base.into(),
            refresh_every: DEFAULT_LOCK_REFRESH,
        })
    }

    /// How often a [`LockGuard`] from this client refreshes its lock (default 5 s; keep it
    /// well under the service's 20 s expiry).
    pub fn lock_refresh_interval(mut self, every: Duration) -> Scratch {
        self.refresh_every = every;
        self
    }

    /// The service's base URL (`…/scratch/api`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// One `POST` to `path`; the answer's JSON, or `None` for an empty body (204).
    async fn post(
        &self,
        path: &str,
        body: &Value,
        operation: impl Fn() -> String,
    ) -> Result<Option<Value>, ScratchError> {
        let bytes = self
            .client
            .post(format!("{}{path}", self.base))
            // The URL comes from the discovery file, not from input: the token may go there.
            .allow_any_origin()
            .header("accept", "application/json")
            .json(body)
            .send_bytes()
            .await
            .map_err(|e| ScratchError::from_foundry(operation(), e))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ScratchError::Decode {
                operation: operation(),
                message: format!("the answer is not JSON: {e}"),
            })
    }

    /// The value stored under `key`, decoded as `T`; `None` when there is none (or it expired).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ScratchError> {
        let op = || format!("get of key `{key}`");
        match self.get_value(key).await? {
            None => Ok(None),
            Some(v) => decode::<T>(v)
                .map(Some)
                .map_err(|message| ScratchError::Decode {
                    operation: op(),
                    message,
                }),
        }
    }

    /// The string stored under `key`, as it is (for values shared with Python modules).
    pub async fn get_raw(&self, key: &str) -> Result<Option<String>, ScratchError> {
        match self.get_value(key).await? {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Ok(Some(other.to_string())),
        }
    }

    async fn get_value(&self, key: &str) -> Result<Option<Value>, ScratchError> {
        let op = || format!("get of key `{key}`");
        let answer = self
            .post("/v1/cache/get", &json!({ "key": key }), op)
            .await?;
        Ok(answer.and_then(unwrap_value))
    }

    /// Stores `value` (as JSON text) under `key` for `ttl`.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Ttl,
    ) -> Result<(), ScratchError> {
        let text = serde_json::to_string(value).map_err(|e| ScratchError::Encode {
            key: key.to_owned(),
            message: e.to_string(),
        })?;
        self.set_raw(key, &text, ttl).await
    }

    /// Stores the string `value` as it is under `key` for `ttl`.
    pub async fn set_raw(&self, key: &str, value: &str, ttl: Ttl) -> Result<(), ScratchError> {
        let body = json!({ "key": key, "value": { "value": value }, "ttl": ttl });
        self.post("/v1/cache", &body, || format!("set of key `{key}`"))
            .await
            .map(drop)
    }

    /// Removes `key` (nothing happens when it is absent).
    pub async fn delete(&self, key: &str) -> Result<(), ScratchError> {
        self.post("/v1/cache/delete", &json!({ "key": key }), || {
            format!("delete of key `{key}`")
        })
        .await
        .map(drop)
    }

    /// Whether a value is stored under `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, ScratchError> {
        let op = || format!("exists of key `{key}`");
        let answer = self
            .post("/v1/cache/exists", &json!({ "key": key }), op)
            .await?;
        match answer.as_ref().and_then(|a| a.get("exists")) {
            Some(Value::Bool(b)) => Ok(*b),
            _ => Err(ScratchError::Decode {
                operation: op(),
                message: "the answer has no boolean `exists`".to_owned(),
            }),
        }
    }

    /// The values of up to 100 keys in one call, decoded as `T`; keys without a
    /// value are absent from the map.
    pub async fn get_many<T: DeserializeOwned>(
        &self,
        keys: &[&str],
    ) -> Result<HashMap<String, T>, ScratchError> {
        if keys.len() > MAX_BATCH_KEYS {
            return Err(ScratchError::TooManyKeys {
                count: keys.len(),
                max: MAX_BATCH_KEYS,
            });
        }
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let op = || format!("get_many of {} keys", keys.len());
        let answer = self
            .post("/v1/cache/batch-get", &json!({ "keys": keys }), op)
            .await?;
        let entries = match answer.as_ref().map(|a| a.get("entries")) {
            None | Some(None) | Some(Some(Value::Null)) => return Ok(HashMap::new()),
            Some(Some(Value::Object(entries))) => entries.clone(),
            Some(Some(_)) => {
                return Err(ScratchError::Decode {
                    operation: op(),
                    message: "`entries` is not an object".to_owned(),
                });
            }
        };
        let mut out = HashMap::with_capacity(entries.len());
        for (key, entry) in entries {
            let Some(v) = unwrap_value(entry) else {
                continue;
            };
            let value = decode::<T>(v).map_err(|message| ScratchError::Decode {
                operation: format!("get_many (key `{key}`)"),
                message,
            })?;
            out.insert(key, value);
        }
        Ok(out)
    }

    /// Takes the lock `name` if nobody holds it: `Some(guard)` when acquired, `None` when
    /// another holder has it. The guard refreshes the lock while it lives and releases it when
    /// dropped (see the [`Scratch`] docs).
    pub async fn try_lock(&self, name: &str) -> Result<Option<LockGuard>, ScratchError> {
        let op = || format!("try_lock of lock `{name}`");
        let answer = self
            .post("/v1/lock/try-lock", &json!({ "lockName": name }), op)
            .await?;
        let handle = match answer.as_ref().and_then(|a| a.get("acquired")) {
            Some(handle @ Value::Object(_)) => handle.clone(),
            _ => return Ok(None),
        };
        let held = Arc::new(AtomicBool::new(true));
        let refresher = tokio::spawn(refresh_loop(
            self.clone(),
            name.to_owned(),
            handle.clone(),
            Arc::clone(&held),
        ));
        tracing::debug!(lock = name, "Scratch lock acquired");
        Ok(Some(LockGuard {
            inner: Some(Held {
                scratch: self.clone(),
                name: name.to_owned(),
                handle,
                refresher,
            }),
            held,
        }))
    }

    async fn unlock_handle(&self, name: &str, handle: &Value) -> Result<(), ScratchError> {
        self.post("/v1/lock/unlock", &json!({ "handle": handle }), || {
            format!("unlock of lock `{name}`")
        })
        .await
        .map(drop)
    }
}

/// The cached value inside an answer: `{"value": X}` or `{"value": {"value": X}}` → `X`.
fn unwrap_value(answer: Value) -> Option<Value> {
    let Value::Object(mut outer) = answer else {
        return None;
    };
    match outer.remove("value")? {
        Value::Null => None,
        Value::Object(mut inner) if inner.len() == 1 && inner.contains_key("value") => {
            inner.remove("value").filter(|v| !v.is_null())
        }
        other => Some(other),
    }
}

/// A stored value as `T`: the JSON text in a string (what [`Scratch::set`] stores), or the
/// string itself when it is not JSON, or a non-string value as it is.
fn decode<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    let mismatch = |e: &dyn fmt::Display| {
        format!(
            "the stored value is not a `{}`: {e}",
            std::any::type_name::<T>()
        )
    };
    let value = match value {
        // What `set` stores: JSON text. A string that is not JSON (a plain Python string) is
        // taken as the string itself.
        Value::String(s) => serde_json::from_str::<Value>(&s).unwrap_or(Value::String(s)),
        other => other,
    };
    serde_path_to_error::deserialize(value).map_err(|e| mismatch(&e))
}

/// Refreshes the lock every `refresh_every` until refused (or aborted by the guard).
async fn refresh_loop(scratch: Scratch, name: String, handle: Value, held: Arc<AtomicBool>) {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(scratch.refresh_every).await;
        let op = || format!("refresh of lock `{name}`");
        match scratch
            .post("/v1/lock/refresh", &json!({ "handle": handle }), op)
            .await
        {
            Ok(answer) => {
                let success = answer
                    .as_ref()
                    .and_then(|a| a.get("success"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if success {
                    last_ok = tokio::time::Instant::now();
                } else {
                    held.store(false, Ordering::SeqCst);
                    tracing::warn!(lock = %name, "Scratch refused to refresh the lock: it expired and is no longer held");
                    return;
                }
            }
            Err(e) => {
                if last_ok.elapsed() >= LOCK_EXPIRY {
                    held.store(false, Ordering::SeqCst);
                    tracing::warn!(lock = %name, error = %e, "Scratch lock not refreshed for 20 s: it expired");
                    return;
                }
                tracing::warn!(lock = %name, error = %e, "refreshing a Scratch lock failed; retrying");
            }
        }
    }
}

/// A held Scratch lock: refreshed while it lives, released when dropped or
/// [unlocked](LockGuard::unlock).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    inner: Option<Held>,
    held: Arc<AtomicBool>,
}

struct Held {
    scratch: Scratch,
    name: String,
    handle: Value,
    refresher: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("name", &self.inner.as_ref().map(|h| h.name.as_str()))
            .field("held", &self.is_held())
            .finish()
    }
}

impl LockGuard {
    /// The lock's name.
    pub fn name(&self) -> &str {
        self.inner.as_ref().map_or("", |h| h.name.as_str())
    }

    /// Whether the lock is still held: `false` once the service refused a refresh or none
    /// succeeded for 20 s (the lock expired and another holder may have it).
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// Releases the lock now and reports the outcome.
    pub async fn unlock(mut self) -> Result<(), ScratchError> {
        let Some(held) = self.inner.take() else {
            return Ok(());
        };
        held.refresher.abort();
        self.held.store(false, Ordering::SeqCst);
        held.scratch.unlock_handle(&held.name, &held.handle).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let Some(held) = self.inner.take() else {
            return;
        };
        held.refresher.abort();
        self.held.store(false, Ordering::SeqCst);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = held.scratch.unlock_handle(&held.name, &held.handle).await {
                        tracing::warn!(lock = %held.name, error = %e, "releasing a dropped Scratch lock failed; it expires within 20 s");
                    }
                });
            }
            Err(_) => tracing::warn!(
                lock = %held.name,
                "a Scratch lock guard was dropped outside a Tokio runtime: the lock expires within 20 s"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_have_their_wire_names() {
        for ttl in Ttl::ALL {
            assert_eq!(serde_json::to_value(ttl).unwrap(), ttl.as_str());
        }
        assert_eq!(Ttl::OneDay.duration(), Duration::from_secs(86_400));
    }

    #[test]
    fn values_unwrap_and_decode() {
        assert_eq!(
            unwrap_value(json!({"value": {"value": "[1,2]"}})),
            Some(json!("[1,2]"))
        );
        assert_eq!(unwrap_value(json!({"value": "x"})), Some(json!("x")));
        assert_eq!(unwrap_value(json!({"value": null})), None);
        assert_eq!(decode::<Vec<i32>>(json!("[1,2]")).unwrap(), vec![1, 2]);
        // A plain (Python) string that is not JSON still reads as a String.
        assert_eq!(decode::<String>(json!("plain")).unwrap(), "plain");
        assert_eq!(decode::<String>(json!("\"quoted\"")).unwrap(), "quoted");
        let e = decode::<u32>(json!("plain")).unwrap_err();
        assert!(e.contains("u32"), "{e}");
    }

    #[test]
    fn without_the_token_the_error_names_the_variable() {
        let e = Scratch::from_lookup(&|_| None).unwrap_err().to_string();
        assert!(e.contains("SCRATCH_TOKEN"), "{e}");
        let e = Scratch::from_lookup(&|k| (k == "SCRATCH_TOKEN").then(|| "t".to_owned()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("FOUNDRY_SERVICE_DISCOVERY_V2"), "{e}");
    }
}
