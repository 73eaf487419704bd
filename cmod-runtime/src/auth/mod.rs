//! Foundry auth modes: application permissions (OAuth2 client credentials), the per-job user token, the pipeline job token.
