//! Scratch, the distributed cache and lock (docs/protocol.md §11), under
//! `/contour-backend-multiplexer/scratch/api` (the discovery file's
//! `contour_backend_multiplexer` URL + `/scratch/api`).
//!
//! Every call must carry `Authorization: <SCRATCH_TOKEN>` exactly (401 otherwise). Values
//! expire after their TTL (`ONE_HOUR` when none is given); locks expire [`LOCK_EXPIRY`] after
//! their last refresh. The clock can be moved forward ([`LocalFoundry::advance_scratch_clock`])
//! so tests see expiry without waiting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{ApiError, FoundryState, LocalFoundry};

/// Where Scratch is served (under the discovery file's `contour_backend_multiplexer` URL).
pub const SCRATCH_PREFIX: &str = "/contour-backend-multiplexer/scratch/api";

/// How long a lock lives after it was taken or last refreshed.
pub const LOCK_EXPIRY: Duration = Duration::from_secs(20);

/// The most keys of one batch get.
const MAX_BATCH_KEYS: usize = 100;

/// The cache, the locks and the token of the local Scratch service.
#[derive(Debug)]
pub(crate) struct ScratchStore {
    token: String,
    entries: Mutex<HashMap<String, (Value, Instant)>>,
    locks: Mutex<HashMap<String, (String, Instant)>>,
    /// How far the clock was moved forward, in milliseconds.
    offset_ms: AtomicU64,
    next_lock: AtomicU64,
    refreshes: AtomicU64,
    unlocks: AtomicU64,
}

/// Counters of the local Scratch service ([`LocalFoundry::scratch_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ScratchStats {
    /// Values stored and not expired.
    pub entries: usize,
    /// Locks held and not expired.
    pub locks: usize,
    /// Successful lock refreshes.
    pub refreshes: u64,
    /// Locks released by an unlock call.
    pub unlocks: u64,
}

impl ScratchStore {
    pub(crate) fn new(token: String) -> Self {
        Self {
            token,
            entries: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            offset_ms: AtomicU64::new(0),
            next_lock: AtomicU64::new(1),
            refreshes: AtomicU64::new(0),
            unlocks: AtomicU64::new(0),
        }
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    fn now(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }

    fn check(&self, state: &FoundryState, headers: &HeaderMap) -> Result<(), ApiError> {
        let ok = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == self.token);
        if ok {
            Ok(())
        } else {
            state.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
            Err(ApiError::unauthorized("InvalidScratchToken"))
        }
    }
}

pub(super) fn routes() -> Router<Arc<FoundryState>> {
    let p = |path: &str| format!("{SCRATCH_PREFIX}{path}");
    Router::new()
        .route(&p("/v1/cache/get"), post(cache_get))
        .route(&p("/v1/cache"), post(cache_set))
        .route(&p("/v1/cache/delete"), post(cache_delete))
        .route(&p("/v1/cache/exists"), post(cache_exists))
        .route(&p("/v1/cache/batch-get"), post(cache_batch_get))
        .route(&p("/v1/lock/try-lock"), post(try_lock))
        .route(&p("/v1/lock/unlock"), post(unlock))
        .route(&p("/v1/lock/refresh"), post(refresh))
}

/// The request body as JSON, and its string field `field`.
fn field(body: &[u8], field: &str) -> Result<(Value, String), ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_argument("InvalidScratchRequest").param("message", e.to_string())
    })?;
    let text = value
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::invalid_argument("InvalidScratchRequest")
                .param("message", format!("missing string field `{field}`"))
        })?;
    Ok((value, text))
}

fn ttl(name: Option<&str>) -> Result<Duration, ApiError> {
    let minutes = match name {
        None => 60,
        Some("ONE_MINUTE") => 1,
        Some("FIVE_MINUTES") => 5,
        Some("FIFTEEN_MINUTES") => 15,
        Some("ONE_HOUR") => 60,
        Some("SIX_HOURS") => 360,
        Some("TWELVE_HOURS") => 720,
        Some("ONE_DAY") => 1440,
        Some(other) => {
            return Err(ApiError::invalid_argument("InvalidScratchTtl").param("ttl", other));
        }
    };
    Ok(Duration::from_secs(minutes * 60))
}

/// The live value of `key`, dropping it when expired.
fn live(store: &ScratchStore, key: &str) -> Option<Value> {
    let now = store.now();
    let mut entries = store.entries.lock().unwrap_or_else(PoisonError::into_inner);
    match entries.get(key) {
        Some((v, expires)) if *expires > now => Some(v.clone()),
        Some(_) => {
            entries.remove(key);
            None
        }
        None => None,
    }
}

async fn cache_get(
    State(state): State<Arc<FoundryState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    state.scratch.check(&state, &headers)?;
    let (_, key) = field(&body, "key")?;
    Ok(match live(&state.scratch, &key) {
        Some(value) => Json(value).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn cache_set(
    State(state): State<Arc<FoundryState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<StatusCode, ApiError> {
    let store = &state.scratch;
    store.check(&state, &headers)?;
    let (request, key) = field(&body, "key")?;
    let value = match request.get("value") {
        Some(v @ Value::Object(o)) if o.contains_key("value") => v.clone(),
        _ => {
            return Err(ApiError::invalid_argument("InvalidScratchRequest")
                .param("message", "`value` must be {\"value\": …}"));
        }
    };
    let ttl = ttl(request.get("ttl").and_then(Value::as_str))?;
    let expires = store.now() + ttl;
    store
        .entries
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, (value, expires));
    Ok(StatusCode::NO_CONTENT)
}

async fn cache_delete(
    State(state): State<Arc<FoundryState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<StatusCode, ApiError> {
    state.scratch.check(&state, &headers)?;
    let (_, key) = field(&body, "key")?;
    state
        .scratch
        .entries
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&key);
    Ok(StatusCode::NO_CONTENT)
}

async fn cache_exists(
    State(state): State<Arc<FoundryState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Json<Value>, ApiError> {
    state.scratch.check(&state, &headers)?;
    let (_, key) = field(&body, "key")?;
    Ok(Json(
        json!({ "exists": live(&state.scratch, &key).is_some() }),
    ))
}

async fn cache_batch_get(
    State(state): State<Arc<FoundryState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Json<Value>, ApiError> {
    state.scratch.check(&state, &headers)?;
    let request: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid_argument("InvalidScratchRequest").param("message", e.to_string())
    })?;
    let keys: Vec<&str> = request
        .get("keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .ok_or_else(|| {
            ApiError::invalid_argument("InvalidScratchRequest")
                .param("message", "missing array field `keys`")
        })?;
    if keys.len() > MAX_BATCH_KEYS {
        return Err(ApiError::invalid_argument("TooManyScratchKeys")
            .param("count", keys.len())
            .param("max", MAX_BATCH_KEYS));
    }
    let entries: serde_json::Map<String, Value> = keys
        .into_iter()
        .filter_map(|k| live(&state.scratch, k).map(|v| (k.to_owned(), v)))
        .collect();
    Ok(Json(json!({ "entries": entries })))
}

async fn try_lock(
    State(state): State<Arc<FoundryState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Json<Value>, ApiError> {
    let store = &state.scratch;
    store.check(&state, &headers)?;
    let (_, name) = field(&body, "lockName")?;
    let now = store.now();
    let mut locks = store.locks.lock().unwrap_or_else(PoisonError::into_inner);
    if locks.get(&name).is_some_and(|(_, expires)| *expires > now) {
        return Ok(Json(json!({ "type": "notAcquired", "notAcquired": {} })));
    }
    let id = format!("lock-{}", store.next_lock.fetch_add(1, Ordering::SeqCst));
    locks.insert(name.clone(), (id.clone(), now + LOCK_EXPIRY));
    Ok(Json(json!({
        "type": "acquired",
        "acquired": { "lockName": name, "lockId": id },
    })))
}

/// The lock name and id of a request's `handle`.
fn handle(body: &[u8]) -> Result<(String, String), ApiError> {
    let request: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_argument("InvalidScratchRequest").param("message", e.to_string())
    })?;
    let h = request.get("handle");
    let get = |k: &str| h.and_then(|h| h.get(k)).and_then(Value::as_str);
    match (get("lockName"), get("lockId")) {
        (Some(n), Some(i)) => Ok((n.to_owned(), i.to_owned())),
        _ => Err(ApiError::invalid_argument("InvalidScratchRequest").param(
            "message",
            "`handle` must be the `acquired` object of try-lock",
        )),
    }
}

async fn unlock(
    State(state): State<Arc<FoundryState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<StatusCode, ApiError> {
    let store = &state.scratch;
    store.check(&state, &headers)?;
    let (name, id) = handle(&body)?;
    let mut locks = store.locks.lock().unwrap_or_else(PoisonError::into_inner);
    if locks.get(&name).is_some_and(|(held, _)| *held == id) {
        locks.remove(&name);
        store.unlocks.fetch_add(1, Ordering::SeqCst);
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn refresh(
    State(state): State<Arc<FoundryState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Json<Value>, ApiError> {
    let store = &state.scratch;
    store.check(&state, &headers)?;
    let (name, id) = handle(&body)?;
    let now = store.now();
    let mut locks = store.locks.lock().unwrap_or_else(PoisonError::into_inner);
    let success = match locks.get_mut(&name) {
        Some((held, expires)) if *held == id && *expires > now => {
            *expires = now + LOCK_EXPIRY;
            store.refreshes.fetch_add(1, Ordering::SeqCst);
            true
        }
        _ => false,
    };
    Ok(Json(json!({ "success": success })))
}

impl LocalFoundry {
    /// The token Scratch accepts (exported as `SCRATCH_TOKEN`).
    pub fn scratch_token(&self) -> &str {
        self.state.scratch.token()
    }

    /// Moves the Scratch clock forward by `by`: values and locks whose time is up expire, as
    /// if that time had passed.
    pub fn advance_scratch_clock(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.state.scratch.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// The Scratch counters so far.
    pub fn scratch_stats(&self) -> ScratchStats {
        let s = &self.state.scratch;
        let now = s.now();
        ScratchStats {
            entries: s
                .entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .filter(|(_, e)| *e > now)
                .count(),
            locks: s
                .locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .filter(|(_, e)| *e > now)
                .count(),
            refreshes: s.refreshes.load(Ordering::SeqCst),
            unlocks: s.unlocks.load(Ordering::SeqCst),
        }
    }
}
