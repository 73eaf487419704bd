//! Local Foundry datasets API.
