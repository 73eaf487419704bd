//! Local Foundry media API.
