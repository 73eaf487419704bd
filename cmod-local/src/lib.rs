//! cmod-local: a local Foundry compute-module runtime and local Foundry APIs over real HTTPS.
#![allow(missing_docs)]
pub mod foundry;
pub mod https;
pub mod runtime;
pub mod tls;
