//! Every Foundry type cmod supports, as inputs and outputs.
//!
//! Print the schemas Foundry will see (the mapping table is in `cmod_runtime::types`):
//!
//! ```text
//! cargo run -p typed -- --print-schemas
//! ```
//!
//! Call a function on the embedded local runtime:
//!
//! ```text
//! cargo run -p typed -- --local --invoke shift '{"at": 1704164645123, "by_days": 2}'
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cmod_runtime::types::{Binary, Date, Decimal, Timestamp};
use cmod_runtime::{Context, compute_function};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reading from one sensor. Field docs become `fieldMetadata.documentation` in Foundry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Reading {
    /// The sensor's id.
    sensor_id: String,
    /// When it was taken.
    taken_at: Timestamp,
    /// The value, exact.
    value: Decimal,
    /// Raw payload, base64 on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw: Option<Binary>,
}

/// How urgent something is: an enum with only unit variants is a Foundry `string`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
enum Priority {
    Low,
    High,
}

/// Every scalar type: boolean, byte, short, integer, long, float, double, string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Scalars {
    flag: bool,
    tiny: i8,
    small: i16,
    count: i32,
    big: i64,
    ratio: f32,
    precise: f64,
    text: String,
}

/// Echoes every scalar type.
#[compute_function]
fn scalars(s: Scalars) -> Scalars {
    s
}

/// Moves a timestamp by whole days; also reports the calendar date it lands on.
#[compute_function]
fn shift(at: Timestamp, by_days: i32) -> Result<Shifted, ShiftError> {
    let moved = chrono::TimeDelta::try_days(i64::from(by_days))
        .and_then(|delta| at.0.checked_add_signed(delta))
        .ok_or(ShiftError::OutOfRange(by_days))?;
    Ok(Shifted {
        at: Timestamp(moved),
        day: Date(moved.date_naive()),
    })
}

/// The result of [`shift`].
#[derive(Debug, Serialize, JsonSchema)]
struct Shifted {
    /// The moved instant (RFC 3339, UTC).
    at: Timestamp,
    /// Its date (YYYY-MM-DD).
    day: Date,
}

/// Why [`shift`] failed.
#[derive(Debug, thiserror::Error)]
enum ShiftError {
    /// The result is not a representable timestamp.
    #[error("shifting by {0} days leaves the representable range")]
    OutOfRange(i32),
}

/// Sums exact decimals (a JSON string or number each), grouped by label.
#[compute_function]
fn totals(amounts: BTreeMap<String, Vec<Decimal>>) -> BTreeMap<String, Decimal> {
    amounts
        .into_iter()
        .map(|(label, values)| {
            let sum = values.iter().map(|d| d.0).sum();
            (label, Decimal(sum))
        })
        .collect()
}

/// Returns the bytes reversed (binary: base64 in and out).
#[compute_function]
fn reverse_bytes(data: Binary) -> Binary {
    let mut bytes = data.into_inner();
    bytes.reverse();
    Binary::new(bytes)
}

/// Groups readings by day (map keys of type `date`), keeping the distinct sensor ids (a set).
#[compute_function]
fn sensors_by_day(readings: Vec<Reading>) -> BTreeMap<Date, BTreeSet<String>> {
    let mut by_day: BTreeMap<Date, BTreeSet<String>> = BTreeMap::new();
    for r in readings {
        by_day
            .entry(Date(r.taken_at.0.date_naive()))
            .or_default()
            .insert(r.sensor_id);
    }
    by_day
}

/// Counts the items per priority; `limit` is optional (an `Option` input is not required).
#[compute_function]
fn triage(items: &[Priority], limit: Option<i32>) -> HashMap<String, i32> {
    let mut counts = HashMap::new();
    let take = limit.map_or(items.len(), |l| usize::try_from(l.max(0)).unwrap_or(0));
    for p in items.iter().take(take) {
        let key = match p {
            Priority::Low => "low",
            Priority::High => "high",
        };
        *counts.entry(key.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Streams the readings above a threshold, one JSON object per chunk (output: `list<Reading>`).
#[compute_function]
fn above(
    ctx: Context,
    readings: Vec<Reading>,
    threshold: Decimal,
) -> impl Iterator<Item = Reading> {
    let job = ctx.job_id().to_owned();
    readings
        .into_iter()
        .filter(move |r| r.value > threshold && !job.is_empty())
}

/// Looks up a day of the week for a date; `None` (JSON `null`) for dates before 1970.
#[compute_function]
async fn weekday(day: Date) -> Option<String> {
    let epoch = Date::from_ymd(1970, 1, 1)?;
    (day >= epoch).then(|| day.0.format("%A").to_string())
}

#[tokio::main]
async fn main() -> Result<(), cmod_runtime::Error> {
    cmod_runtime::run().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_is_representable_in_foundry() {
        let registry = cmod_runtime::Registry::from_linked().unwrap();
        let schemas = registry.schemas().unwrap();
        assert_eq!(schemas.len(), 8);
    }

    #[test]
    fn functions_are_plain_rust() {
        let at: Timestamp = "2024-01-02T03:04:05Z".parse().unwrap();
        let shifted = shift(at, 2).unwrap();
        assert_eq!(shifted.day.to_string(), "2024-01-04");
        assert_eq!(reverse_bytes(Binary::new(*b"ab")), Binary::new(*b"ba"));
        let counts = triage(&[Priority::High, Priority::Low, Priority::High], Some(2));
        assert_eq!(counts.get("high"), Some(&1));
    }

    #[tokio::test]
    async fn decimals_sum_exactly() {
        let input: BTreeMap<String, Vec<Decimal>> =
            serde_json::from_str(r#"{"a": ["0.1", 0.2, "1e1"]}"#).unwrap();
        let out = serde_json::to_value(totals(input)).unwrap();
        assert_eq!(out, serde_json::json!({"a": "10.3"}));
        assert_eq!(
            weekday(Date::from_ymd(2024, 1, 1).unwrap())
                .await
                .as_deref(),
            Some("Monday")
        );
    }
}
