//! A continuous pipeline-mode compute module: stream → stream, until it is asked to stop.
//!
//! Follows the `events` stream (`{"id": 1, "user": "ada", "action": "purchase"}`) and publishes
//! each event, enriched with a weight, to the `enriched` stream
//! (`{"id", "user", "action", "weight"}`). It waits for new events while the stream is idle,
//! resumes after a restart where the previous run stopped (stream subscriber
//! `cmod-enrich-events`; at most one batch is processed twice after a crash, nothing after
//! SIGTERM), and on SIGTERM / Ctrl-C publishes what it is processing, commits and exits 0.
//!
//! Run it on the local Foundry, with the seed data of this directory, and feed it events from
//! another terminal:
//!
//! ```text
//! CMOD_LOCAL=1 CMOD_LOCAL_DATA=examples/pipeline-follow/data cargo run -p pipeline-follow
//! echo '{"id": 4, "user": "bob", "action": "purchase"}' \
//!   >> examples/pipeline-follow/data/streams/ri.foundry.main.dataset.events/master.jsonl
//! tail -f examples/pipeline-follow/data/streams/ri.foundry.main.dataset.enriched/master.jsonl
//! ```
//!
//! Options (environment): `FOLLOW_START` = `earliest` (default) or `latest`: where to start when
//! there is no committed position (a new subscriber, or a stack refusing the subscriber API);
//! `FOLLOW_BATCH_SIZE`: records per batch (default 1000).

use cmod_runtime::pipeline::{FollowOptions, PipelineError, StartPosition};
use cmod_runtime::{StreamInput, StreamOutput, pipeline};
use serde::{Deserialize, Serialize};

/// A record of the input stream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Event {
    id: u64,
    user: String,
    action: String,
}

/// A record of the output stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Enriched {
    id: u64,
    user: String,
    action: String,
    weight: u32,
}

fn enrich(e: Event) -> Enriched {
    let weight = match e.action.as_str() {
        "purchase" => 10,
        "login" => 1,
        _ => 2,
    };
    Enriched {
        id: e.id,
        user: e.user,
        action: e.action,
        weight,
    }
}

/// The follow options of this module, from `FOLLOW_START` and `FOLLOW_BATCH_SIZE`.
fn options() -> FollowOptions {
    let start = match std::env::var("FOLLOW_START").as_deref().map(str::trim) {
        Ok("latest") => StartPosition::Latest,
        _ => StartPosition::Earliest,
    };
    let batch = std::env::var("FOLLOW_BATCH_SIZE")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1000);
    FollowOptions::new()
        .subscriber("cmod-enrich-events")
        .start(start)
        .batch_size(batch)
}

/// Enriches every event, as it arrives, until the module is asked to stop.
#[pipeline(input = "events", output = "enriched")]
async fn enrich_events(
    events: StreamInput<Event>,
    enriched: StreamOutput<Enriched>,
) -> Result<(), PipelineError> {
    let mut follow = events.follow_with(options());
    // Each batch is published before the next is asked for: asking commits the previous one.
    while let Some(batch) = follow.next_batch().await? {
        let out: Vec<Enriched> = batch.into_iter().map(|r| enrich(r.value)).collect();
        enriched.publish(&out).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), cmod_runtime::Error> {
    cmod_runtime::run().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_by_action() {
        let e = |action: &str| Event {
            id: 1,
            user: "u".into(),
            action: action.into(),
        };
        assert_eq!(enrich(e("purchase")).weight, 10);
        assert_eq!(enrich(e("login")).weight, 1);
        assert_eq!(enrich(e("other")).weight, 2);
    }
}
