//! Logging: SLS JSON lines in Foundry, a readable format locally.
