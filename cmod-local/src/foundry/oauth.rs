//! Local Foundry OAuth2 (multipass) token endpoint.
