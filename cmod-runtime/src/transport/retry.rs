//! Timeouts and retries of the platform clients (Foundry, OAuth): which failures are transient,
//! and the loop that retries them with [`Backoff`].

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::RETRY_AFTER;

use super::backoff::Backoff;
use super::describe::describe_reqwest_error;
use super::watchdog::{self, Limits, SendError};

/// Network timeouts of a client. None of them caps a transfer that keeps making progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Time to establish a connection (TCP + TLS).
    pub connect: Duration,
    /// Longest wait for the response headers once the request body was sent.
    pub response: Duration,
    /// Longest time without progress: the server taking none of the request body, or sending
    /// none of the response body.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            response: Duration::from_secs(60),
            idle: Duration::from_secs(60),
        }
    }
}

impl Timeouts {
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            idle: self.idle,
            response: self.response,
        }
    }

    /// The defaults, with `response` and `idle` overridden by `response_var` / `idle_var`.
    pub(crate) fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        defaults: Timeouts,
        idle_var: &str,
        response_var: &str,
    ) -> Result<Timeouts, String> {
        Ok(Timeouts {
            connect: defaults.connect,
            idle: watchdog::limit_var(lookup, idle_var, defaults.idle)?,
            response: watchdog::limit_var(lookup, response_var, defaults.response)?,
        })
    }
}

/// Retries of transient failures: connect errors, HTTP 429/502/503/504, and timeouts of
/// idempotent requests. The wait doubles from `initial_backoff` up to `max_backoff`; a
/// `Retry-After` header (in seconds) is honoured up to `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retries).
    pub max_retries: u32,
    /// The first wait.
    pub initial_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(3),
        }
    }
}

/// Whether a status is worth retrying.
fn retryable_status(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// Sends the request built by `build` (with `body`, shared between attempts, when given) under
/// the idle `limits` ([`watchdog::send_tracked`]), retrying transient failures per `policy`.
/// Returns the last response when retries run out on a retryable status.
pub(crate) async fn send_with_retry(
    policy: &RetryPolicy,
    limits: Limits,
    idempotent: bool,
    what: &str,
    body: Option<&Bytes>,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, SendError> {
    let mut backoff = Backoff::new(policy.initial_backoff, policy.max_backoff);
    let mut attempt = 0u32;
    loop {
        let result = watchdog::send_tracked_with(build(), body.cloned(), limits).await;
        let wait = match &result {
            Ok(r) if retryable_status(r.status()) && attempt < policy.max_retries => {
                let retry_after = r
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                tracing::debug!(
                    status = r.status().as_u16(),
                    attempt = attempt + 1,
                    "{what}: transient HTTP status, retrying"
                );
                // The backoff advances either way: a later wait without `Retry-After` is as
                // long as if every wait had been the backoff's.
                let computed = backoff.next_delay();
                retry_after.map_or(computed, |d| d.min(policy.max_backoff))
            }
            Err(SendError::Transport(e))
                if attempt < policy.max_retries
                    && (e.is_connect() || (idempotent && e.is_timeout())) =>
            {
                tracing::debug!(
                    attempt = attempt + 1,
                    error = %describe_reqwest_error(e),
                    "{what}: transient error, retrying"
                );
                backoff.next_delay()
            }
            Err(SendError::Stalled(stall)) if attempt < policy.max_retries && idempotent => {
                tracing::debug!(
                    attempt = attempt + 1,
                    error = %stall,
                    "{what}: timed out, retrying"
                );
                backoff.next_delay()
            }
            _ => return result,
        };
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        let mut b = Backoff::new(p.initial_backoff, p.max_backoff);
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        assert_eq!(b.next_delay(), Duration::from_millis(200));
        assert_eq!((0..30).map(|_| b.next_delay()).last(), Some(p.max_backoff));
    }
}
