//! Hooks for tests that run a module in-process against `cmod-local`'s servers (feature
//! `testing`; enable it in `[dev-dependencies]` only). These exist for tests, follow the local
//! servers' needs, and are not covered by the crate's stability promise.
//!
//! ```toml
//! [dev-dependencies]
//! cmod-runtime = { version = "…", features = ["testing"] }
//! ```

/// Points the module's configuration at other variables — typically a local Foundry's or local
/// runtime's `env()` — without touching the process environment (which would need `unsafe`).
/// The variables take precedence over the process environment for every configuration read.
/// Only the first call has an effect; returns `false` if an overlay was already installed.
pub fn install_env_overlay(vars: impl IntoIterator<Item = (String, String)>) -> bool {
    crate::env::install_overlay(vars)
}

pub use crate::pipeline::local::{LocalPipeline, start_local as start_local_pipeline};
