//! Local Foundry streams API.
