//! The local Foundry: OAuth2 token endpoint, datasets, streams and media sets over HTTPS.
pub mod datasets;
pub mod media;
pub mod oauth;
pub mod streams;
