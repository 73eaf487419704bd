//! Service discovery (`FOUNDRY_SERVICE_DISCOVERY_V2`).
