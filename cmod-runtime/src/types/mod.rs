//! Rust types ↔ Foundry types: the value types with no std equivalent ([`Binary`],
//! [`Decimal`], [`Date`], [`Timestamp`]) and the complete mapping `#[compute_function]` uses.
//!
//! # The mapping
//!
//! Inputs and outputs are described to Foundry in its `DataType` union (docs/protocol.md §4.3, see
//! [`DataType`](crate::schema::DataType)). The type of every parameter and of the output is
//! converted from its [`schemars::JsonSchema`], so any type that derives `JsonSchema` (plus
//! `serde::Deserialize` for inputs, `serde::Serialize` for outputs) works as long as its shape
//! is one Foundry can represent:
//!
//! | Rust | Foundry `DataType` | wire (JSON) |
//! |---|---|---|
//! | `bool` | `boolean` | `true` |
//! | `i8` | `byte` | number |
//! | `i16`, `u8` | `short` | number |
//! | `i32`, `u16` | `integer` | number |
//! | `i64`, `isize`, `u32` | `long` | number |
//! | `f32` | `float` | number |
//! | `f64` | `double` | number |
//! | `String`, `&str`, `char`, `Box<str>`, `Cow<str>`, unit-only enums | `string` | string |
//! | [`Binary`] | `binary` | base64 string |
//! | [`Decimal`], `rust_decimal::Decimal` | `decimal` | string (`"1.25"`); numbers accepted in |
//! | [`Date`], `chrono::NaiveDate` | `date` | `"YYYY-MM-DD"` |
//! | [`Timestamp`], `chrono::DateTime<Tz>` | `timestamp` | RFC 3339, `Z` out; [`Timestamp`] also takes epoch millis in |
//! | `Vec<T>`, `&[T]`, `[T; N]`, `VecDeque<T>` | `list<T>` | array |
//! | `HashSet<T>`, `BTreeSet<T>` | `set<T>` | array |
//! | `HashMap<K, V>`, `BTreeMap<K, V>` | `map<K, V>` | object |
//! | `Option<T>` | `optionalType<T>` (an input of this type is not required) | `null` or the value |
//! | a struct (`#[derive(JsonSchema)]`) | `anonymousCustomType` with `fieldMetadata` | object |
//! | `()` (output only, also `Result<(), E>`) | `string` (as the Python SDK) | `null` |
//!
//! - **Map keys** must be of a type Foundry allows as a key (docs/protocol.md §4.3): strings
//!   (`String`, `&str`, `char`), `bool`, the integer types above, floats, decimals, dates,
//!   timestamps and [`Binary`]. JSON object keys are always strings on the wire: each is parsed
//!   with the key type and written back in that type's encoding (a [`Timestamp`] key also takes
//!   epoch millis, and leaves as RFC 3339 `Z`). The declared key type is what the key's schema
//!   reveals: integer keys are `long`; [`Date`], [`Timestamp`], [`Decimal`] and [`Binary`] keys
//!   keep their own type (`rust_decimal::Decimal` only in outputs: schemars describes its input
//!   form as "string or number", which loses the key pattern, so prefer [`Decimal`] keys);
//!   everything else (`String`, `char`, `bool`, floats, the `chrono` types) is `string`.
//! - **Other map key types** (a struct, a tuple, an enum) are rejected **at compile time**
//!   wherever the map is visible in the signature: a `HashMap<K, V>` / `BTreeMap<K, V>` written
//!   in a parameter or the return type (at any depth, e.g. `Option<Vec<HashMap<K, V>>>`), also
//!   behind a type alias. **Limitation:** inside a user struct neither the macro nor the schema
//!   check can see the key type. A struct key is then declared as a `string`-keyed map and every
//!   value fails at run time: `serde_json` cannot decode a struct from a JSON key
//!   (`InvalidInput` naming the path) or encode one as a key (`SerializationError`). A unit-only
//!   enum key is declared as a custom type with one optional field per variant (the JSON is the
//!   same object).
//! - **Structs** honour serde: `rename`/`rename_all` change field names, `default` and `Option`
//!   make a field not required on input, `skip_serializing_if` makes it not required on output,
//!   `flatten` of a struct merges its fields. Field doc comments become
//!   `fieldMetadata.documentation`.
//! - **Enums** with only unit variants are strings (their serialized names).
//! - `chrono` and `rust_decimal` types work directly when their `serde` impls are used
//!   (cmod-runtime enables `chrono/serde`, `rust_decimal/serde` and schemars' matching
//!   features); `chrono::DateTime` accepts RFC 3339 strings only, so prefer [`Timestamp`] for
//!   inputs.
//!
//! Everything else is **rejected**, because Foundry has no type for it: tuples and tuple
//! structs with several fields, enums with data (externally, internally, adjacently tagged or
//! untagged), recursive types, `serde_json::Value` and other "any JSON" types, `u64`, `usize`,
//! `u128` and `i128` (Foundry's widest integer is the signed 64-bit `long`; use `i64`), maps
//! flattened into structs, and `()` anywhere but the top of an output. The macro rejects what
//! it can see in the signature at compile time; the rest is reported by
//! [`Registry::schemas`](crate::Registry::schemas) (run at startup and by
//! `--print-schemas`) as a [`SchemaError`](crate::schema::SchemaError) naming the function, the
//! input and the offending path. Check it in a unit test:
//!
//! ```no_run
//! #[test]
//! fn schemas_are_valid() {
//!     cmod_runtime::Registry::from_linked().unwrap().schemas().unwrap();
//! }
//! ```

mod binary;
mod date;
mod decimal;
mod timestamp;

pub use binary::Binary;
pub use date::{Date, ParseDateError};
pub use decimal::{Decimal, ParseDecimalError};
pub use timestamp::{ParseTimestampError, Timestamp};

thread_local! {
    /// Set while rows are encoded to or decoded from Arrow columns (feature `tables`).
    static COLUMNAR: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with [`Binary`] and [`Timestamp`] in their columnar encodings: raw bytes for binary
/// columns, and timestamps read as text rather than epoch milliseconds. serde_arrow's nested
/// (de)serializers report themselves human-readable, so the types cannot tell on their own.
#[cfg_attr(not(feature = "tables"), allow(dead_code))]
pub(crate) fn columnar<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            COLUMNAR.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(COLUMNAR.with(|c| c.replace(true)));
    f()
}

/// Whether [`columnar`] is in effect on this thread.
pub(crate) fn is_columnar() -> bool {
    COLUMNAR.with(std::cell::Cell::get)
}

/// JSON Schema `format` of [`Date`] (and `chrono::NaiveDate`).
pub(crate) const FORMAT_DATE: &str = "date";
/// JSON Schema `format` of [`Timestamp`] (and `chrono::DateTime`).
pub(crate) const FORMAT_DATE_TIME: &str = "date-time";
/// JSON Schema `format` of [`Decimal`].
pub(crate) const FORMAT_DECIMAL: &str = "decimal";
/// JSON Schema `contentEncoding` of [`Binary`].
pub(crate) const CONTENT_ENCODING_BASE64: &str = "base64";

// Patterns: besides documenting the string forms, they survive where schemars drops `format`
// (map keys become `patternProperties`), so the key type can still be recovered.

/// Pattern of [`Date`] strings.
pub(crate) const DATE_PATTERN: &str = r"^\d{4}-\d{2}-\d{2}$";
/// Pattern of [`Timestamp`] strings as emitted and as RFC 3339 allows.
pub(crate) const TIMESTAMP_PATTERN: &str =
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$";
/// Pattern of [`Decimal`] strings as emitted (also schemars' pattern for serialized
/// `rust_decimal::Decimal`).
pub(crate) const DECIMAL_PATTERN: &str = r"^-?\d+(\.\d+)?$";
/// schemars' pattern for `rust_decimal::Decimal` on input.
pub(crate) const RUST_DECIMAL_IN_PATTERN: &str = r"^-?\d+(\.\d+)?([eE]\d+)?$";
/// Pattern of [`Binary`] (standard base64) strings.
pub(crate) const BINARY_KEY_PATTERN: &str = r"^[A-Za-z0-9+/]*={0,2}$";
/// schemars' key pattern for maps with signed integer keys.
pub(crate) const SIGNED_KEY_PATTERN: &str = r"^-?\d+$";
/// schemars' key pattern for maps with unsigned integer keys.
pub(crate) const UNSIGNED_KEY_PATTERN: &str = r"^\d+$";
