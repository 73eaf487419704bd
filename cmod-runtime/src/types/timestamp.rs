//! [`Timestamp`]: an instant in UTC, RFC 3339 on the wire.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::{FORMAT_DATE_TIME, TIMESTAMP_PATTERN};

/// Foundry `timestamp`: an instant ([`chrono::DateTime<Utc>`]).
///
/// Inbound it accepts what every official SDK has sent: an RFC 3339 string with `Z` or any
/// offset (`2024-01-02T03:04:05Z`, `2024-01-02T04:04:05.123+01:00`), or epoch milliseconds as a
/// JSON integer (`1704164645123`) or a string of digits. Outbound it is always RFC 3339 in UTC
/// with `Z` and as many fraction digits as needed (0, 3, 6 or 9): `2024-01-02T03:04:05.123Z`.
///
/// ```
/// use cmod_runtime::types::Timestamp;
///
/// let t: Timestamp = serde_json::from_str("1704164645123").unwrap();
/// assert_eq!(serde_json::to_string(&t).unwrap(), r#""2024-01-02T03:04:05.123Z""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

/// Why a value is not a [`Timestamp`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid timestamp `{input}`: expected an RFC 3339 string such as 2024-01-02T03:04:05Z or \
     epoch milliseconds ({reason})"
)]
pub struct ParseTimestampError {
    input: String,
    reason: String,
}

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch, if representable.
    pub fn from_epoch_millis(millis: i64) -> Option<Self> {
        DateTime::from_timestamp_millis(millis).map(Self)
    }

    /// Milliseconds since the Unix epoch (sub-millisecond precision is dropped).
    pub fn epoch_millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    /// The wrapped value.
    pub fn into_inner(self) -> DateTime<Utc> {
        self.0
    }

    /// The wire form: RFC 3339, UTC, `Z`.
    pub fn to_rfc3339(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }
}

fn millis_error(input: impl fmt::Display) -> ParseTimestampError {
    ParseTimestampError {
        input: input.to_string(),
        reason: "epoch milliseconds out of range".to_owned(),
    }
}

impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix('-').unwrap_or(s);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<i64>()
                .ok()
                .and_then(Self::from_epoch_millis)
                .ok_or_else(|| millis_error(s));
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Self(t.with_timezone(&Utc)))
            .map_err(|e| ParseTimestampError {
                input: s.chars().take(64).collect(),
                reason: e.to_string(),
            })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self(t)
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(t: Timestamp) -> Self {
        t.0
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp string or epoch milliseconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Timestamp::from_epoch_millis(v).ok_or_else(|| E::custom(millis_error(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v)
                    .ok()
                    .and_then(Timestamp::from_epoch_millis)
                    .ok_or_else(|| E::custom(millis_error(v)))
            }
        }
        // Binary formats (Arrow timestamp columns) hand out integers in the column's unit, not
        // epoch milliseconds: ask them for the RFC 3339 text instead.
        if deserializer.is_human_readable() && !super::is_columnar() {
            deserializer.deserialize_any(V)
        } else {
            deserializer.deserialize_str(V)
        }
    }
}

impl JsonSchema for Timestamp {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }

    fn schema_id() -> Cow<'static, str> {
        "cmod_runtime::types::Timestamp".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": FORMAT_DATE_TIME,
            "pattern": TIMESTAMP_PATTERN,
        })
    }
}
