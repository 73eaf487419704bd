//! HTTP transport shared by every client (runtime, Foundry, OAuth, sources), each concern in
//! one place: the runtime client's own HTTP/1.1 transport on hyper ([`h1`]: the two hot calls,
//! poll and post, without reqwest's per-request work), TLS and client construction with the trust made explicit ([`Trust`]: the runtime
//! trusts exactly its configured CAs, the platform clients the public roots plus
//! `DEFAULT_CA_PATH`), timeouts and idle limits ([`watchdog`]), the one backoff formula
//! ([`Backoff`]), retries of transient failures ([`send_with_retry`]), error descriptions
//! ([`describe_reqwest_error`]) and URL redaction ([`shown_url`]).

mod backoff;
mod describe;
pub(crate) mod h1;
mod redact;
mod retry;
mod tls;
pub(crate) mod watchdog;

pub(crate) use backoff::Backoff;
pub(crate) use describe::{describe_reqwest_error, describe_send_error};
pub(crate) use redact::{scrub_error, scrub_response, shown, shown_url};
pub(crate) use retry::send_with_retry;
pub use retry::{RetryPolicy, Timeouts};
pub(crate) use tls::{PlatformCas, Trust, platform_client, platform_client_builder, tls_config};
