//! An authenticated HTTP client for Foundry APIs.
