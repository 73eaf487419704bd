//! [`Decimal`]: exact decimal numbers, a string on the wire.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::{DECIMAL_PATTERN, FORMAT_DECIMAL};

/// Foundry `decimal`: an exact decimal number ([`rust_decimal::Decimal`]: 96-bit mantissa,
/// scale 0–28).
///
/// Sent as a JSON string (`"1.25"`), keeping its scale (`"1.50"` stays `"1.50"`). Inbound it
/// also accepts JSON numbers (`1.25`, `3`) and scientific notation in strings (`"1.5e3"`).
///
/// ```
/// use cmod_runtime::types::Decimal;
///
/// let d: Decimal = serde_json::from_str("1.25").unwrap();
/// assert_eq!(serde_json::to_string(&d).unwrap(), r#""1.25""#);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Decimal(pub rust_decimal::Decimal);

/// Why a string is not a [`Decimal`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid decimal `{input}`: {reason}")]
pub struct ParseDecimalError {
    input: String,
    reason: String,
}

impl Decimal {
    /// The wrapped value.
    pub fn into_inner(self) -> rust_decimal::Decimal {
        self.0
    }
}

impl FromStr for Decimal {
    type Err = ParseDecimalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        rust_decimal::Decimal::from_str(t)
            .or_else(|e| {
                if t.contains(['e', 'E']) {
                    rust_decimal::Decimal::from_scientific(t)
                } else {
                    Err(e)
                }
            })
            .map(Self)
            .map_err(|e| ParseDecimalError {
                input: s.chars().take(64).collect(),
                reason: e.to_string(),
            })
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<rust_decimal::Decimal> for Decimal {
    fn from(d: rust_decimal::Decimal) -> Self {
        Self(d)
    }
}

impl From<Decimal> for rust_decimal::Decimal {
    fn from(d: Decimal) -> Self {
        d.0
    }
}

impl From<i64> for Decimal {
    fn from(n: i64) -> Self {
        Self(n.into())
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Decimal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal number (a string such as \"1.25\", or a JSON number)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
                Ok(Decimal(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
                Ok(Decimal(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
                // The shortest representation that round-trips (`0.1` stays `0.1`).
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for Decimal {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Decimal".into()
    }

    fn schema_id() -> Cow<'static, str> {
        "cmod_runtime::types::Decimal".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": FORMAT_DECIMAL,
            "pattern": DECIMAL_PATTERN,
        })
    }
}
