//! Startup of the job loop: post the schemas and send the restart notification (docs/protocol.md §3.1).

use std::time::Duration;

use bytes::Bytes;

use super::client::{ClientError, RuntimeClient};
use crate::transport::Backoff;

/// The message logged for TLS failures: they are never silent, since they mean the runtime's
/// certificate is not signed by the CA this module trusts.
pub(super) fn log_tls_error(e: &ClientError) {
    tracing::error!(
        "refusing to talk to the runtime: TLS verification failed ({e}); check that \
         DEFAULT_CA_PATH / CONNECTIONS_TO_OTHER_PODS_CA_PATH hold the runtime's CA"
    );
}

/// Posts the schemas, retrying connection errors with capped backoff (about 30 s in all).
/// Returns `false` when the runtime could not be reached, so the caller can try again later.
pub(super) async fn post_schemas(client: &RuntimeClient, body: Bytes) -> bool {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    for attempt in 1..=10 {
        match client.post_schemas(body.clone()).await {
            Ok(true) => {
                tracing::info!("function schemas posted");
                return true;
            }
            Ok(false) => return true,
            Err(e) if e.is_transient() && attempt < 10 => {
                if e.is_tls() {
                    log_tls_error(&e);
                } else if e.is_connect() {
                    tracing::debug!("runtime not reachable yet, retrying schema post: {e}");
                } else {
                    tracing::warn!("retrying schema post: {e}");
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                tracing::error!(
                    "could not post the function schemas (functions may not appear in Foundry): {e}"
                );
                // Worth another try later only if the runtime was unreachable.
                return !e.is_transient();
            }
        }
    }
    false
}

/// Sends the restart notification (when configured) and logs the jobs the runtime dropped.
pub(super) async fn restart_notification(client: &RuntimeClient) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    for attempt in 1..=5 {
        match client.restart_notification().await {
            Ok(None) => return,
            Ok(Some(ids)) if ids.is_empty() => {
                tracing::info!("restart notification sent; no stale jobs");
                return;
            }
            Ok(Some(ids)) => {
                tracing::warn!(removed_jobs = %ids.join(","), "restart notification: the runtime dropped {} stale job(s)", ids.len());
                return;
            }
            Err(e) if e.is_transient() && attempt < 5 => {
                tracing::debug!("retrying restart notification: {e}");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                tracing::warn!("restart notification failed: {e}");
                return;
            }
        }
    }
}
