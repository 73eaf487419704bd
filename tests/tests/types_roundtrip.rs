//! Every supported type, every wire encoding docs/protocol.md §4.5 lists for it: JSON in → the Rust
//! value → JSON out, through the generated `call` of a real `#[compute_function]`. Bad payloads
//! give `InvalidInput` errors naming the input and the path, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;

use cmod_runtime::Output;
use cmod_runtime::schema::DataType;
use cmod_runtime::types::{Binary, Date, Decimal, Timestamp};
use cmod_runtime::{Context, ErrorKind, FunctionDef, JobError, compute_function};
use cmod_tests::reference::{AllTypes, Inner};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// Calls a function the way the job loop does, returning its JSON result.
async fn call(def: &FunctionDef, query: Value) -> Result<Value, JobError> {
    let raw = RawValue::from_string(query.to_string()).unwrap();
    match (def.call)(Context::for_test("job-1"), raw).await? {
        Output::Json(bytes) => Ok(serde_json::from_slice(&bytes).unwrap()),
        Output::Stream(_) => panic!("`{}` unexpectedly streamed", def.name),
    }
}

/// `value_in` decodes to `expected`, and the function echoing it posts `json_out`.
async fn roundtrip<T>(def: &FunctionDef, value_in: Value, expected: T, json_out: Value)
where
    T: DeserializeOwned + PartialEq + Debug,
{
    let decoded: T = serde_json::from_value(value_in.clone())
        .unwrap_or_else(|e| panic!("{value_in} does not decode: {e}"));
    assert_eq!(decoded, expected, "decoding {value_in}");
    let out = call(def, json!({ "v": value_in }))
        .await
        .unwrap_or_else(|e| panic!("`{}` with {value_in}: {e}", def.name));
    assert_eq!(out, json_out, "`{}` with {value_in}", def.name);
}

macro_rules! echo_fns {
    ($($name:ident: $ty:ty),* $(,)?) => {$(
        #[compute_function]
        fn $name(v: $ty) -> $ty {
            v
        }
    )*};
}

echo_fns! {
    rt_bool: bool,
    rt_byte: i8,
    rt_short: i16,
    rt_integer: i32,
    rt_long: i64,
    rt_float: f32,
    rt_double: f64,
    rt_string: String,
    rt_decimal: Decimal,
    rt_binary: Binary,
    rt_date: Date,
    rt_timestamp: Timestamp,
    rt_list: Vec<i32>,
    rt_set: BTreeSet<String>,
    rt_map: BTreeMap<String, i64>,
    rt_int_map: HashMap<i32, String>,
    rt_date_map: BTreeMap<Date, bool>,
    rt_optional: Option<i32>,
    rt_chrono_date: chrono::NaiveDate,
    rt_chrono_timestamp: chrono::DateTime<chrono::Utc>,
    rt_rust_decimal: rust_decimal::Decimal,
    rt_unsigned_byte: u8,
    rt_unsigned_short: u16,
    rt_unsigned_int: u32,
    rt_char: char,
    rt_enum: Priority,
    rt_decimal_map: BTreeMap<Decimal, i32>,
    rt_rust_decimal_map: BTreeMap<rust_decimal::Decimal, i32>,
    rt_bool_map: BTreeMap<bool, i32>,
    rt_timestamp_map: BTreeMap<Timestamp, i32>,
    rt_binary_map: BTreeMap<Binary, i32>,
    rt_char_map: BTreeMap<char, i32>,
    rt_unsigned_map: BTreeMap<u32, i32>,
}

/// A unit-only enum: a string on the wire (its serialized variant names).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
enum Priority {
    Low,
    High,
}

/// The Foundry type the function declares for its input `v`.
fn input_type(def: &FunctionDef) -> DataType {
    let schema = (def.schema)().unwrap_or_else(|e| panic!("`{}`: {e}", def.name));
    assert_eq!(schema.inputs[0].name, "v");
    schema.inputs[0].data_type.clone()
}

fn map_of(keys: DataType) -> DataType {
    DataType::Map {
        keys: Box::new(keys),
        values: Box::new(DataType::Integer),
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test]
async fn numbers_booleans_strings() {
    roundtrip(
        &rt_bool::__CMOD_FUNCTION_DEF,
        json!(true),
        true,
        json!(true),
    )
    .await;
    roundtrip(
        &rt_byte::__CMOD_FUNCTION_DEF,
        json!(-128),
        -128i8,
        json!(-128),
    )
    .await;
    roundtrip(&rt_short::__CMOD_FUNCTION_DEF, json!(7), 7i16, json!(7)).await;
    roundtrip(&rt_integer::__CMOD_FUNCTION_DEF, json!(3), 3i32, json!(3)).await;
    // Beyond f64's exact range: longs stay exact.
    let big = 9_007_199_254_740_993i64;
    roundtrip(&rt_long::__CMOD_FUNCTION_DEF, json!(big), big, json!(big)).await;
    roundtrip(
        &rt_float::__CMOD_FUNCTION_DEF,
        json!(1.5),
        1.5f32,
        json!(1.5),
    )
    .await;
    roundtrip(
        &rt_double::__CMOD_FUNCTION_DEF,
        json!(2.5),
        2.5f64,
        json!(2.5),
    )
    .await;
    // An integer is a valid double; it comes back as a JSON float.
    roundtrip(
        &rt_double::__CMOD_FUNCTION_DEF,
        json!(2),
        2.0f64,
        json!(2.0),
    )
    .await;
    roundtrip(
        &rt_string::__CMOD_FUNCTION_DEF,
        json!("t"),
        "t".to_owned(),
        json!("t"),
    )
    .await;
}

#[tokio::test]
async fn unsigned_integers_widen_to_the_next_signed_type() {
    // `u8` → short, `u16` → integer, `u32` → long: every value fits the Foundry type.
    let b = &rt_unsigned_byte::__CMOD_FUNCTION_DEF;
    assert_eq!(input_type(b), DataType::Short);
    roundtrip(b, json!(255), 255u8, json!(255)).await;
    roundtrip(b, json!(0), 0u8, json!(0)).await;
    let s = &rt_unsigned_short::__CMOD_FUNCTION_DEF;
    assert_eq!(input_type(s), DataType::Integer);
    roundtrip(s, json!(65_535), 65_535u16, json!(65_535)).await;
    let i = &rt_unsigned_int::__CMOD_FUNCTION_DEF;
    assert_eq!(input_type(i), DataType::Long);
    roundtrip(
        i,
        json!(4_294_967_295u32),
        u32::MAX,
        json!(4_294_967_295u32),
    )
    .await;
    // The wider Foundry type can carry values the Rust type cannot: an error, not a wrap.
    assert_eq!(
        invalid(b, json!({"v": 256})).await,
        "input `v`: invalid value: integer `256`, expected u8"
    );
    assert_eq!(
        invalid(s, json!({"v": -1})).await,
        "input `v`: invalid value: integer `-1`, expected u16"
    );
    assert_eq!(
        invalid(i, json!({"v": 4_294_967_296i64})).await,
        "input `v`: invalid value: integer `4294967296`, expected u32"
    );
}

#[tokio::test]
async fn chars_and_unit_enums_are_strings() {
    let c = &rt_char::__CMOD_FUNCTION_DEF;
    assert_eq!(input_type(c), DataType::String);
    roundtrip(c, json!("x"), 'x', json!("x")).await;
    roundtrip(c, json!("é"), 'é', json!("é")).await;
    assert_eq!(
        invalid(c, json!({"v": "xy"})).await,
        "input `v`: invalid value: string \"xy\", expected a character"
    );

    let e = &rt_enum::__CMOD_FUNCTION_DEF;
    assert_eq!(input_type(e), DataType::String);
    roundtrip(e, json!("low"), Priority::Low, json!("low")).await;
    roundtrip(e, json!("high"), Priority::High, json!("high")).await;
    assert_eq!(
        invalid(e, json!({"v": "medium"})).await,
        "input `v`: unknown variant `medium`, expected `low` or `high`"
    );
}

#[tokio::test]
async fn map_keys_of_every_allowed_kind() {
    // JSON object keys are strings; each is parsed with the key type and written back in that
    // type's encoding.
    let d = &rt_decimal_map::__CMOD_FUNCTION_DEF;
    assert_eq!(input_type(d), map_of(DataType::Decimal));
    let by_amount = BTreeMap::from([(dec("1.50"), 1), (dec("-2"), 2)]);
    roundtrip(
        d,
        json!({"1.50": 1, "-2": 2}),
        by_amount,
        json!({"1.50": 1, "-2": 2}),
    )
    .await;
    // `rust_decimal::Decimal` keys parse the same, but schemars describes its input form as
    // "string or number", which loses the key pattern: an input map declares `string` keys
    // (documented; use `cmod_runtime::types::Decimal` for `decimal` keys).
    let r = &rt_rust_decimal_map::__CMOD_FUNCTION_DEF;
    assert_eq!(input_type(r), map_of(DataType::String));
    let exact: rust_decimal::Decimal = "0.25".parse().unwrap();
    roundtrip(
        r,
        json!({"0.25": 1}),
        BTreeMap::from([(exact, 1)]),
        json!({"0.25": 1}),
    )
    .await;

    // Booleans are `"true"` / `"false"` keys; Foundry sees string keys.
    let b = &rt_bool_map::__CMOD_FUNCTION_DEF;
    assert_eq!(input_type(b), map_of(DataType::String));
    roundtrip(
        b,
        json!({"true": 1, "false": 0}),
        BTreeMap::from([(true, 1), (false, 0)]),
        json!({"false": 0, "true": 1}),
    )
    .await;

    // Timestamp keys take every timestamp encoding and leave as RFC 3339 UTC.
    let t = &rt_timestamp_map::__CMOD_FUNCTION_DEF;
    assert_eq!(input_type(t), map_of(DataType::Timestamp));
    let by_time = BTreeMap::from([
        (ts("2024-01-02T03:04:05Z"), 1),
        (ts("2024-01-02T03:04:05.123Z"), 2),
    ]);
    roundtrip(
        t,
        json!({"2024-01-02T04:04:05+01:00": 1, "1704164645123": 2}),
        by_time,
        json!({"2024-01-02T03:04:05Z": 1, "2024-01-02T03:04:05.123Z": 2}),
    )
    .await;

    let bin = &rt_binary_map::__CMOD_FUNCTION_DEF;
    assert_eq!(input_type(bin), map_of(DataType::Binary));
    roundtrip(
        bin,
        json!({"aGk=": 1}),
        BTreeMap::from([(Binary::new(*b"hi"), 1)]),
        json!({"aGk=": 1}),
    )
    .await;

    let c = &rt_char_map::__CMOD_FUNCTION_DEF;
    assert_eq!(input_type(c), map_of(DataType::String));
    roundtrip(
        c,
        json!({"a": 1}),
        BTreeMap::from([('a', 1)]),
        json!({"a": 1}),
    )
    .await;

    let u = &rt_unsigned_map::__CMOD_FUNCTION_DEF;
    assert_eq!(input_type(u), map_of(DataType::Long));
    roundtrip(
        u,
        json!({"4294967295": 1}),
        BTreeMap::from([(u32::MAX, 1)]),
        json!({"4294967295": 1}),
    )
    .await;

    // Date keys (with `rt_date_map` below) are `date`.
    assert_eq!(
        input_type(&rt_date_map::__CMOD_FUNCTION_DEF),
        DataType::Map {
            keys: Box::new(DataType::Date),
            values: Box::new(DataType::Boolean),
        }
    );
    // A key that does not parse as the key type names the input and the key.
    let msg = invalid(t, json!({"v": {"noon": 1}})).await;
    assert!(msg.starts_with("input `v`"), "{msg}");
    assert!(msg.contains("invalid timestamp `noon`"), "{msg}");
}

#[tokio::test]
async fn decimals_are_strings_out_and_strings_or_numbers_in() {
    let d = &rt_decimal::__CMOD_FUNCTION_DEF;
    roundtrip(d, json!("1.25"), dec("1.25"), json!("1.25")).await;
    roundtrip(d, json!(1.25), dec("1.25"), json!("1.25")).await;
    roundtrip(d, json!(3), dec("3"), json!("3")).await;
    // The scale is kept, as Java's BigDecimal and Python's Decimal keep it.
    roundtrip(d, json!("1.50"), dec("1.50"), json!("1.50")).await;
    roundtrip(d, json!("-1.5e3"), dec("-1500"), json!("-1500")).await;
    let r = &rt_rust_decimal::__CMOD_FUNCTION_DEF;
    let exact: rust_decimal::Decimal = "1.25".parse().unwrap();
    roundtrip(r, json!("1.25"), exact, json!("1.25")).await;
}

#[tokio::test]
async fn binary_is_base64() {
    let b = &rt_binary::__CMOD_FUNCTION_DEF;
    // Unlike the Python SDK (which hands over the base64 text's UTF-8 bytes), the value is the
    // decoded bytes.
    roundtrip(b, json!("aGk="), Binary::new(*b"hi"), json!("aGk=")).await;
    roundtrip(b, json!("aGk"), Binary::new(*b"hi"), json!("aGk=")).await;
    roundtrip(b, json!(""), Binary::default(), json!("")).await;
}

#[tokio::test]
async fn dates_and_timestamps() {
    let day = Date::from_ymd(2024, 1, 2).unwrap();
    roundtrip(
        &rt_date::__CMOD_FUNCTION_DEF,
        json!("2024-01-02"),
        day,
        json!("2024-01-02"),
    )
    .await;
    let chrono_day = chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
    let d = &rt_chrono_date::__CMOD_FUNCTION_DEF;
    roundtrip(d, json!("2024-01-02"), chrono_day, json!("2024-01-02")).await;

    let t = &rt_timestamp::__CMOD_FUNCTION_DEF;
    let cases = [
        // RFC 3339 with `Z`, as the Python SDK sends (with and without fraction).
        (json!("2024-01-02T03:04:05Z"), "2024-01-02T03:04:05Z"),
        (
            json!("2024-01-02T03:04:05.123Z"),
            "2024-01-02T03:04:05.123Z",
        ),
        (
            json!("2024-01-02T03:04:05.123456Z"),
            "2024-01-02T03:04:05.123456Z",
        ),
        // Any offset, converted to UTC.
        (json!("2024-01-02T04:04:05+01:00"), "2024-01-02T03:04:05Z"),
        // Epoch milliseconds (older SDKs, the docs), as a number or a string of digits.
        (json!(1_704_164_645_123i64), "2024-01-02T03:04:05.123Z"),
        (json!("1704164645123"), "2024-01-02T03:04:05.123Z"),
    ];
    for (value_in, out) in cases {
        roundtrip(t, value_in, ts(out), json!(out)).await;
    }
    let c = &rt_chrono_timestamp::__CMOD_FUNCTION_DEF;
    let instant: chrono::DateTime<chrono::Utc> = "2024-01-02T03:04:05.123Z".parse().unwrap();
    roundtrip(
        c,
        json!("2024-01-02T03:04:05.123Z"),
        instant,
        json!("2024-01-02T03:04:05.123Z"),
    )
    .await;
}

#[tokio::test]
async fn collections_and_optionals() {
    roundtrip(
        &rt_list::__CMOD_FUNCTION_DEF,
        json!([1, 2]),
        vec![1, 2],
        json!([1, 2]),
    )
    .await;
    // Sets arrive as arrays (duplicates collapse) and leave as arrays.
    let tags = BTreeSet::from(["a".to_owned(), "b".to_owned()]);
    roundtrip(
        &rt_set::__CMOD_FUNCTION_DEF,
        json!(["b", "a", "b"]),
        tags,
        json!(["a", "b"]),
    )
    .await;
    let scores = BTreeMap::from([("k".to_owned(), 1i64)]);
    roundtrip(
        &rt_map::__CMOD_FUNCTION_DEF,
        json!({"k": 1}),
        scores,
        json!({"k": 1}),
    )
    .await;
    // Keys arrive as strings and are parsed with the key type.
    let by_int = HashMap::from([(7, "x".to_owned())]);
    roundtrip(
        &rt_int_map::__CMOD_FUNCTION_DEF,
        json!({"7": "x"}),
        by_int,
        json!({"7": "x"}),
    )
    .await;
    let by_day = BTreeMap::from([(Date::from_ymd(2024, 1, 2).unwrap(), true)]);
    let d = &rt_date_map::__CMOD_FUNCTION_DEF;
    roundtrip(
        d,
        json!({"2024-01-02": true}),
        by_day,
        json!({"2024-01-02": true}),
    )
    .await;

    let o = &rt_optional::__CMOD_FUNCTION_DEF;
    roundtrip(o, json!(5), Some(5), json!(5)).await;
    roundtrip(o, json!(null), None::<i32>, json!(null)).await;
    // An optional input may be left out altogether.
    assert_eq!(call(o, json!({})).await.unwrap(), json!(null));
}

// ---- Map keys the macro cannot see (inside a user struct): the documented limitation. ----

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Hidden {
    by_point: BTreeMap<Point, i32>,
}

#[compute_function]
fn hidden_struct_keys(h: Hidden) -> i32 {
    h.by_point.values().sum()
}

#[compute_function]
fn hidden_struct_keys_out() -> Hidden {
    Hidden {
        by_point: BTreeMap::from([(Point { x: 1, y: 2 }, 3)]),
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Weights {
    by_priority: BTreeMap<Priority, i32>,
}

#[compute_function]
fn hidden_enum_keys(w: Weights) -> Weights {
    w
}

#[tokio::test]
async fn map_keys_inside_structs_are_checked_by_serde_json() {
    // The schema cannot tell a struct key from a string key…
    let def = &hidden_struct_keys::__CMOD_FUNCTION_DEF;
    let schema = (def.schema)().unwrap();
    let DataType::AnonymousCustomType(h) = &schema.inputs[0].data_type else {
        panic!("{:?}", schema.inputs[0].data_type)
    };
    assert_eq!(h.fields["by_point"], map_of(DataType::String));
    // …but no JSON key decodes into a struct: an `InvalidInput` naming the path.
    assert_eq!(
        invalid(def, json!({"h": {"by_point": {"1,2": 3}}})).await,
        "input `h` at `h.by_point.1,2`: invalid type: string \"1,2\", expected struct Point"
    );

    // …nor encodes one as a JSON key.
    let err = call(&hidden_struct_keys_out::__CMOD_FUNCTION_DEF, json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SerializationError, "{err}");
    assert!(err.message().contains("key must be a string"), "{err}");

    // A unit-only enum key inside a struct is described by its possible keys: a custom type
    // with one optional field per variant (the JSON is the same object).
    let def = &hidden_enum_keys::__CMOD_FUNCTION_DEF;
    let schema = (def.schema)().unwrap();
    let DataType::AnonymousCustomType(w) = &schema.inputs[0].data_type else {
        panic!("{:?}", schema.inputs[0].data_type)
    };
    let DataType::AnonymousCustomType(by_priority) = &w.fields["by_priority"] else {
        panic!("{:?}", w.fields["by_priority"])
    };
    assert_eq!(
        by_priority.fields.keys().collect::<Vec<_>>(),
        ["high", "low"]
    );
    let out = call(def, json!({"w": {"by_priority": {"low": 1}}}))
        .await
        .unwrap();
    assert_eq!(out, json!({"by_priority": {"low": 1}}));
}

// ---- The reference module's `types_roundtrip`, with the fixture's typed query. ----

#[compute_function]
fn types_roundtrip(p: AllTypes) -> AllTypes {
    p
}

fn fixture_query() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/python-sdk-typed-query.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let fixture: Value = serde_json::from_str(&text).unwrap();
    fixture["query"].clone()
}

#[tokio::test]
async fn the_python_sdk_typed_query_round_trips() {
    let query = fixture_query();
    let decoded: AllTypes = serde_json::from_value(query["p"].clone()).unwrap();
    assert_eq!(
        decoded,
        AllTypes {
            flag: true,
            count: 3,
            ratio: 1.5,
            text: "t".into(),
            blob: Binary::new(*b"hi"),
            day: Date::from_ymd(2024, 1, 2).unwrap(),
            moment: ts("2024-01-02T03:04:05.123Z"),
            amount: dec("1.25"),
            items: vec![1, 2],
            tags: BTreeSet::from(["a".into(), "b".into()]),
            scores: BTreeMap::from([("k".into(), 1)]),
            inner: Inner {
                label: "l".into(),
                weight: 0.5
            },
            big: 9_007_199_254_740_993,
            small: 7,
            tiny: 1,
            precise: 2.5,
            maybe: None,
        }
    );
    let out = call(&types_roundtrip::__CMOD_FUNCTION_DEF, query)
        .await
        .unwrap();
    // What the Python SDK cannot emit at all (decimal, bytes, set), in the documented encodings.
    assert_eq!(
        out,
        json!({
            "amount": "1.25", "big": 9_007_199_254_740_993i64, "blob": "aGk=", "count": 3,
            "day": "2024-01-02", "flag": true, "inner": {"label": "l", "weight": 0.5},
            "items": [1, 2], "maybe": null, "moment": "2024-01-02T03:04:05.123Z",
            "precise": 2.5, "ratio": 1.5, "scores": {"k": 1}, "small": 7, "tags": ["a", "b"],
            "text": "t", "tiny": 1
        })
    );
}

// ---- Bad payloads. ----

#[compute_function]
fn add(x: i32, y: i32) -> i32 {
    x + y
}

async fn invalid(def: &FunctionDef, query: Value) -> String {
    let err = call(def, query.clone())
        .await
        .expect_err("the payload should be rejected");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    err.message().to_owned()
}

#[tokio::test]
async fn bad_payloads_name_the_input_and_the_path() {
    let add = &add::__CMOD_FUNCTION_DEF;
    assert_eq!(
        invalid(add, json!({"x": 1})).await,
        "missing required input `y`"
    );
    assert_eq!(
        invalid(add, json!({"x": "1", "y": 2})).await,
        "input `x`: invalid type: string \"1\", expected i32"
    );
    assert_eq!(
        invalid(add, json!([1, 2])).await,
        "the query must be a JSON object with one entry per input, not an array"
    );
    assert_eq!(
        invalid(add, json!({"x": 3_000_000_000i64, "y": 1})).await,
        "input `x`: invalid value: integer `3000000000`, expected i32"
    );

    let all = &types_roundtrip::__CMOD_FUNCTION_DEF;
    let with = |field: &str, value: Value| {
        let mut q = fixture_query();
        q["p"][field] = value;
        q
    };
    let msg = invalid(all, with("moment", json!("yesterday"))).await;
    assert!(
        msg.starts_with(
            "input `p` at `p.moment`: invalid timestamp `yesterday`: expected an RFC 3339"
        ),
        "{msg}"
    );
    let msg = invalid(all, with("blob", json!("not base64!"))).await;
    assert!(
        msg.starts_with("input `p` at `p.blob`: invalid base64"),
        "{msg}"
    );
    let msg = invalid(all, with("day", json!("2024-13-01"))).await;
    assert!(
        msg.starts_with("input `p` at `p.day`: invalid date `2024-13-01`"),
        "{msg}"
    );
    let msg = invalid(all, with("amount", json!("one"))).await;
    assert!(
        msg.starts_with("input `p` at `p.amount`: invalid decimal `one`"),
        "{msg}"
    );
    let msg = invalid(all, with("items", json!([1, "two"]))).await;
    assert_eq!(
        msg,
        "input `p` at `p.items[1]`: invalid type: string \"two\", expected i32"
    );
    let mut q = fixture_query();
    q["p"]["inner"].as_object_mut().unwrap().remove("label");
    let msg = invalid(all, q).await;
    assert_eq!(msg, "input `p` at `p.inner`: missing field `label`");
    // Booleans are JSON booleans: unlike Python's `bool("false")`, a string is an error.
    let msg = invalid(&rt_bool::__CMOD_FUNCTION_DEF, json!({"v": "false"})).await;
    assert_eq!(
        msg,
        "input `v`: invalid type: string \"false\", expected a boolean"
    );
}

#[tokio::test]
async fn unknown_inputs_are_rejected_but_unknown_struct_fields_follow_serde() {
    // Top-level: the inputs are exactly the parameters, so a typo is caught.
    assert_eq!(
        invalid(&add::__CMOD_FUNCTION_DEF, json!({"x": 1, "y": 2, "z": 3})).await,
        "unknown input `z`, expected `x` or `y`"
    );
    // Inside a user struct, serde's own rules apply: `AllTypes` does not deny unknown fields.
    let mut q = fixture_query();
    q["p"]["extra"] = json!("ignored");
    assert!(call(&types_roundtrip::__CMOD_FUNCTION_DEF, q).await.is_ok());
}

#[compute_function]
fn nothing() -> String {
    "ok".into()
}

#[tokio::test]
async fn functions_without_inputs_accept_an_empty_or_null_query() {
    let def = &nothing::__CMOD_FUNCTION_DEF;
    assert_eq!(call(def, json!({})).await.unwrap(), json!("ok"));
    assert_eq!(call(def, json!(null)).await.unwrap(), json!("ok"));
    assert_eq!(
        invalid(def, json!({"x": 1})).await,
        "unknown input `x`: this function takes no inputs"
    );
}
