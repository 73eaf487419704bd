//! The environment the module reads its configuration from.
//!
//! In Foundry that is the process environment. The embedded local runtime adds the variables of
//! the local servers on top of it without mutating the process environment (which would need
//! `unsafe` in edition 2024), by installing an overlay with [`install_overlay`] before any
//! configuration is read. All configuration code reads through [`var`].

use std::collections::HashMap;
use std::sync::OnceLock;

static OVERLAY: OnceLock<HashMap<String, String>> = OnceLock::new();

/// Installs variables that take precedence over the process environment. Only the first call
/// has an effect; returns `false` if an overlay was already installed.
#[cfg(feature = "local")]
pub(crate) fn install_overlay(vars: impl IntoIterator<Item = (String, String)>) -> bool {
    OVERLAY.set(vars.into_iter().collect()).is_ok()
}

/// Reads a variable: the overlay first, then the process environment. Empty values count as
/// unset.
pub(crate) fn var(name: &str) -> Option<String> {
    OVERLAY
        .get()
        .and_then(|o| o.get(name).cloned())
        .or_else(|| std::env::var(name).ok())
        .filter(|v| !v.trim().is_empty())
}

/// [`var`] as a `&dyn Fn` lookup, the form the `from_lookup` constructors take.
pub(crate) fn lookup() -> &'static (dyn Fn(&str) -> Option<String> + Sync) {
    &var
}

/// Every environment variable the module reads, by name: the one place the names are written.
///
/// | Variable | Read for |
/// |---|---|
/// | `GET_JOB_URI` | Where to long-poll for jobs (`config.rs`) |
/// | `GET_JOB_URI_V2` | The same, newer runtimes (preferred) |
/// | `POST_RESULT_URI` | Base of result posts |
/// | `POST_RESULT_URI_V2` | The same, newer runtimes (preferred) |
/// | `POST_SCHEMA_URI` | Where to post the function schemas |
/// | `POST_SCHEMA_URI_V2` | The same, newer runtimes (preferred) |
/// | `RESTART_NOTIFICATION_URI` | Where to report a restart |
/// | `MODULE_AUTH_TOKEN` | File holding the `Module-Auth-Token`; watched while running (compared at most once a second, re-read after a 401/403) (`config.rs`, `functions/module_token.rs`) |
/// | `RUNTIME_HOST` | Runtime host (base of relative URIs) |
/// | `RUNTIME_PORT` | Runtime port |
/// | `SERVICE_HOST` | Older name of `RUNTIME_HOST` |
/// | `SERVICE_PORT` | Older name of `RUNTIME_PORT` |
/// | `MAX_CONCURRENT_TASKS` | Jobs in flight at most (1..=1024) |
/// | `COMPUTE_SESSION_ID` | Session id carried by every log line |
/// | `DEFAULT_CA_PATH` | CA bundle trusted for the runtime and Foundry |
/// | `CONNECTIONS_TO_OTHER_PODS_CA_PATH` | Further CAs trusted for the runtime |
/// | `FOUNDRY_URL` | Foundry's base URL when there is no service discovery (`foundry/`) |
/// | `FOUNDRY_SERVICE_DISCOVERY_V2` | Service discovery file (`discovery.rs`) |
/// | `CLIENT_ID` | OAuth2 client id, application permissions (`auth/`) |
/// | `CLIENT_SECRET` | OAuth2 client secret |
/// | `SOURCE_CREDENTIALS` | Sources' secrets file (`sources/`) |
/// | `SOURCE_CONFIGURATIONS_PATH` | Sources' configuration file |
/// | `BUILD2_TOKEN` | File holding the build token, re-read when it changes (`auth/`) |
/// | `SCRATCH_TOKEN` | Scratch cache and lock: the raw `Authorization` value; Scratch is off without it (`scratch/`) |
/// | `FOUNDRY_COMPUTE_MODULE_RID` | This module's RID (local mode routes calls to it to the embedded runtime) |
/// | `CMOD_MODULE_CALL_TIMEOUT_SECS` | How long a call of another module's function may take to answer (`modules/`) |
/// | `RESOURCE_ALIAS_MAP` | Alias → resource map (`pipeline/aliases.rs`) |
/// | `CMOD_PIPELINE_AFTER_SUCCESS` | `exit` or `stay_alive` after success (`pipeline/replica.rs`) |
/// | `CMOD_LOCAL` | `1`: run on the embedded local runtime (`run.rs`) |
/// | `CMOD_LOCAL_PORT` | The local invoke API's port (`functions/local.rs`) |
/// | `CMOD_LOCAL_MODULES` | `RID=URL,…`: other local modules' invoke APIs the local execute API routes to (`functions/local.rs`) |
/// | `CMOD_LOCAL_DATA` | The local data directory (`pipeline/local.rs`) |
/// | `CMOD_MODE` | `functions` or `pipeline` for a binary with both; `server` for server mode (`cli.rs`) |
/// | `CMOD_SERVER_PORT` | Server mode's port, 1024–65535 except 8945/8946 (default 8080) (`server/`) |
/// | `CMOD_CONCURRENT_POLLS` | `1`: one open long-poll per free slot (opt-in, unverified against Foundry) (`config.rs`) |
/// | `CMOD_SHUTDOWN_GRACE_SECS` | Grace period after SIGTERM (`functions/job_loop.rs`) |
/// | `CMOD_RUNTIME_IDLE_TIMEOUT_SECS` | Runtime client idle limit (`functions/client.rs`) |
/// | `CMOD_RUNTIME_RESPONSE_TIMEOUT_SECS` | Runtime client response-header limit |
/// | `CMOD_FOUNDRY_IDLE_TIMEOUT_SECS` | Foundry client idle limit (`foundry/`) |
/// | `CMOD_FOUNDRY_RESPONSE_TIMEOUT_SECS` | Foundry client response-header limit |
/// | `CMOD_SOURCE_IDLE_TIMEOUT_SECS` | Source client idle limit (`sources/client.rs`) |
/// | `CMOD_SOURCE_RESPONSE_TIMEOUT_SECS` | Source client response-header limit |
/// | `CMOD_LOG` | Log filter (else `RUST_LOG`, else `info`) (`logging.rs`) |
/// | `RUST_LOG` | Log filter |
/// | `NO_COLOR` | Set: no colours in local logs |
#[cfg_attr(not(feature = "local"), allow(dead_code))] // local-mode names
pub(crate) mod vars {
    pub(crate) const GET_JOB_URI: &str = "GET_JOB_URI";
    pub(crate) const GET_JOB_URI_V2: &str = "GET_JOB_URI_V2";
    pub(crate) const POST_RESULT_URI: &str = "POST_RESULT_URI";
    pub(crate) const POST_RESULT_URI_V2: &str = "POST_RESULT_URI_V2";
    pub(crate) const POST_SCHEMA_URI: &str = "POST_SCHEMA_URI";
    pub(crate) const POST_SCHEMA_URI_V2: &str = "POST_SCHEMA_URI_V2";
    pub(crate) const RESTART_NOTIFICATION_URI: &str = "RESTART_NOTIFICATION_URI";
    pub(crate) const MODULE_AUTH_TOKEN: &str = "MODULE_AUTH_TOKEN";
    pub(crate) const RUNTIME_HOST: &str = "RUNTIME_HOST";
    pub(crate) const RUNTIME_PORT: &str = "RUNTIME_PORT";
    pub(crate) const SERVICE_HOST: &str = "SERVICE_HOST";
    pub(crate) const SERVICE_PORT: &str = "SERVICE_PORT";
    pub(crate) const MAX_CONCURRENT_TASKS: &str = "MAX_CONCURRENT_TASKS";
    pub(crate) const COMPUTE_SESSION_ID: &str = "COMPUTE_SESSION_ID";
    pub(crate) const DEFAULT_CA_PATH: &str = "DEFAULT_CA_PATH";
    pub(crate) const CONNECTIONS_TO_OTHER_PODS_CA_PATH: &str = "CONNECTIONS_TO_OTHER_PODS_CA_PATH";
    pub(crate) const FOUNDRY_URL: &str = "FOUNDRY_URL";
    pub(crate) const FOUNDRY_SERVICE_DISCOVERY_V2: &str = "FOUNDRY_SERVICE_DISCOVERY_V2";
    pub(crate) const CLIENT_ID: &str = "CLIENT_ID";
    pub(crate) const CLIENT_SECRET: &str = "CLIENT_SECRET";
    pub(crate) const SOURCE_CREDENTIALS: &str = "SOURCE_CREDENTIALS";
    pub(crate) const SOURCE_CONFIGURATIONS_PATH: &str = "SOURCE_CONFIGURATIONS_PATH";
    pub(crate) const BUILD2_TOKEN: &str = "BUILD2_TOKEN";
    pub(crate) const RESOURCE_ALIAS_MAP: &str = "RESOURCE_ALIAS_MAP";
    pub(crate) const SCRATCH_TOKEN: &str = "SCRATCH_TOKEN";
    pub(crate) const FOUNDRY_COMPUTE_MODULE_RID: &str = "FOUNDRY_COMPUTE_MODULE_RID";
    pub(crate) const CMOD_MODULE_CALL_TIMEOUT_SECS: &str = "CMOD_MODULE_CALL_TIMEOUT_SECS";
    pub(crate) const CMOD_PIPELINE_AFTER_SUCCESS: &str = "CMOD_PIPELINE_AFTER_SUCCESS";
    pub(crate) const CMOD_LOCAL: &str = "CMOD_LOCAL";
    pub(crate) const CMOD_LOCAL_PORT: &str = "CMOD_LOCAL_PORT";
    pub(crate) const CMOD_LOCAL_DATA: &str = "CMOD_LOCAL_DATA";
    pub(crate) const CMOD_LOCAL_MODULES: &str = "CMOD_LOCAL_MODULES";
    pub(crate) const CMOD_MODE: &str = "CMOD_MODE";
    pub(crate) const CMOD_SERVER_PORT: &str = "CMOD_SERVER_PORT";
    pub(crate) const CMOD_CONCURRENT_POLLS: &str = "CMOD_CONCURRENT_POLLS";
    pub(crate) const CMOD_SHUTDOWN_GRACE_SECS: &str = "CMOD_SHUTDOWN_GRACE_SECS";
    pub(crate) const CMOD_RUNTIME_IDLE_TIMEOUT_SECS: &str = "CMOD_RUNTIME_IDLE_TIMEOUT_SECS";
    pub(crate) const CMOD_RUNTIME_RESPONSE_TIMEOUT_SECS: &str =
        "CMOD_RUNTIME_RESPONSE_TIMEOUT_SECS";
    pub(crate) const CMOD_FOUNDRY_IDLE_TIMEOUT_SECS: &str = "CMOD_FOUNDRY_IDLE_TIMEOUT_SECS";
    pub(crate) const CMOD_FOUNDRY_RESPONSE_TIMEOUT_SECS: &str =
        "CMOD_FOUNDRY_RESPONSE_TIMEOUT_SECS";
    pub(crate) const CMOD_SOURCE_IDLE_TIMEOUT_SECS: &str = "CMOD_SOURCE_IDLE_TIMEOUT_SECS";
    pub(crate) const CMOD_SOURCE_RESPONSE_TIMEOUT_SECS: &str = "CMOD_SOURCE_RESPONSE_TIMEOUT_SECS";
    pub(crate) const CMOD_LOG: &str = "CMOD_LOG";
    pub(crate) const RUST_LOG: &str = "RUST_LOG";
    pub(crate) const NO_COLOR: &str = "NO_COLOR";
}
