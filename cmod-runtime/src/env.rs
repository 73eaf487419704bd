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
