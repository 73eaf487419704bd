//! HTTP transport shared by every client (runtime, Foundry, OAuth, sources): the backoff
//! formula and idle timeouts.

mod backoff;
pub(crate) mod watchdog;

pub(crate) use backoff::Backoff;
