//! The embedded local runtime (`CMOD_LOCAL=1`).
