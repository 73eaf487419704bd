//! [`Binary`]: bytes, base64 on the wire.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Deref, DerefMut};

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::{BINARY_KEY_PATTERN, CONTENT_ENCODING_BASE64};

/// Accepts standard base64 with or without `=` padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Foundry `binary`: raw bytes, sent as a standard base64 string (RFC 4648 §4, padded).
///
/// Inbound, padding is optional; anything else that is not base64 is an `InvalidInput` error
/// naming the input. Dereferences to `[u8]`.
///
/// ```
/// use cmod_runtime::types::Binary;
///
/// let b: Binary = serde_json::from_str(r#""aGk=""#).unwrap();
/// assert_eq!(&*b, b"hi");
/// assert_eq!(serde_json::to_string(&b).unwrap(), r#""aGk=""#);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Binary(pub Vec<u8>);

impl Binary {
    /// Wraps bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }

    /// The wire form: standard, padded base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.0)
    }

    /// Decodes standard base64 (padding optional).
    pub fn from_base64(text: &str) -> Result<Self, base64::DecodeError> {
        LENIENT.decode(text).map(Self)
    }
}

impl fmt::Debug for Binary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Binary({} bytes)", self.0.len())
    }
}

impl Deref for Binary {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for Binary {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl AsRef<[u8]> for Binary {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Binary {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for Binary {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl From<Binary> for Vec<u8> {
    fn from(b: Binary) -> Self {
        b.0
    }
}

impl Serialize for Binary {
    /// Base64 in human-readable formats (JSON); raw bytes in binary ones (Arrow and Parquet
    /// `BINARY` columns).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() && !super::is_columnar() {
            serializer.serialize_str(&self.to_base64())
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Binary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Binary;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Binary, E> {
                Binary::from_base64(v)
                    .map_err(|e| E::custom(format_args!("invalid base64 (binary input): {e}")))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Binary, E> {
                Ok(Binary(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Binary, E> {
                Ok(Binary(v))
            }
        }
        if deserializer.is_human_readable() && !super::is_columnar() {
            deserializer.deserialize_str(V)
        } else {
            deserializer.deserialize_byte_buf(V)
        }
    }
}

impl JsonSchema for Binary {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Binary".into()
    }

    fn schema_id() -> Cow<'static, str> {
        "cmod_runtime::types::Binary".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "contentEncoding": CONTENT_ENCODING_BASE64,
            "pattern": BINARY_KEY_PATTERN,
        })
    }
}
