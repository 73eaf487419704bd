//! Rust types for Foundry values that have no std equivalent: binary, decimal, date, timestamp.
