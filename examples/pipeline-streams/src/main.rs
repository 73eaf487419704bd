//! A pipeline-mode compute module over streams.
//!
//! Reads every sensor reading of the `readings` stream (`{"sensor": "…", "celsius": 21.5}`),
//! and publishes each one, converted and flagged, to the `converted` stream
//! (`{"sensor", "celsius", "fahrenheit", "alert"}`; `alert` when above 30 °C). Records are read
//! and published in batches of at most 1000.
//!
//! Run it on the local Foundry, with the seed data of this directory:
//!
//! ```text
//! CMOD_LOCAL=1 CMOD_LOCAL_DATA=examples/pipeline-streams/data cargo run -p pipeline-streams
//! cat examples/pipeline-streams/data/streams/ri.foundry.main.dataset.converted/master.jsonl
//! ```

use cmod_runtime::pipeline::PipelineError;
use cmod_runtime::{StreamInput, StreamOutput, pipeline};
use serde::{Deserialize, Serialize};

/// Above this temperature a reading is flagged.
const ALERT_CELSIUS: f64 = 30.0;

/// A record of the input stream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

/// A record of the output stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Converted {
    sensor: String,
    celsius: f64,
    fahrenheit: f64,
    alert: bool,
}

fn convert_one(r: Reading) -> Converted {
    Converted {
        fahrenheit: r.celsius * 9.0 / 5.0 + 32.0,
        alert: r.celsius > ALERT_CELSIUS,
        celsius: r.celsius,
        sensor: r.sensor,
    }
}

/// Converts every reading to Fahrenheit and flags the hot ones.
#[pipeline(input = "readings", output = "converted")]
async fn convert(
    readings: StreamInput<Reading>,
    converted: StreamOutput<Converted>,
) -> Result<(), PipelineError> {
    let mut cursor = readings.cursor();
    while let Some(batch) = cursor.next_batch().await? {
        let out: Vec<Converted> = batch.into_iter().map(|r| convert_one(r.value)).collect();
        converted.publish(&out).await?;
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
    fn converts_and_flags() {
        let c = convert_one(Reading {
            sensor: "s1".into(),
            celsius: 37.5,
        });
        assert_eq!(c.fahrenheit, 99.5);
        assert!(c.alert);
        let c = convert_one(Reading {
            sensor: "s2".into(),
            celsius: -40.0,
        });
        assert_eq!(c.fahrenheit, -40.0);
        assert!(!c.alert);
    }
}
