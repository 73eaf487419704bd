//! Generated Foundry schemas: the reference module's functions must post exactly what the
//! official Python SDK posts (`tests/fixtures/python-sdk-schemas.json`), and types Foundry
//! cannot represent must be rejected with errors naming the function, the input and the path.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::collections::{BTreeMap, HashMap, HashSet};

use cmod_runtime::RegistryError;
use cmod_runtime::schema::{DataType, FunctionSchema, Position, SchemaError};
use cmod_runtime::types::{Binary, Date, Decimal, Timestamp};
use cmod_runtime::{FunctionDef, Registry, compute_function, function};
use cmod_tests::reference::AllTypes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

// ---- The reference module (`tests/fixtures/reference_module.py`), in Rust. ----
//
// Python's `int` is Foundry `integer` (32-bit), so these use `i32` where the Python module
// uses `int`; with `i64` cmod would (deliberately, and correctly) declare `long`.

#[compute_function]
fn add(x: i32, y: i32) -> i32 {
    x + y
}

#[compute_function]
fn hello(name: String) -> String {
    format!("Hello, {name}!")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Payload {
    text: String,
    numbers: Vec<i32>,
    note: Option<String>,
}

#[compute_function]
fn echo(payload: Payload) -> Payload {
    payload
}

#[compute_function]
async fn sleep_ms(ms: i32) -> i32 {
    tokio::time::sleep(std::time::Duration::from_millis(
        ms.max(0).unsigned_abs().into(),
    ))
    .await;
    ms
}

#[derive(Debug, thiserror::Error)]
#[error("intentional failure from fail()")]
struct Intentional;

#[compute_function]
fn fail() -> Result<String, Intentional> {
    Err(Intentional)
}

#[compute_function]
fn count(n: i32) -> impl Iterator<Item = i32> {
    0..n
}

#[compute_function]
fn types(p: AllTypes) -> BTreeMap<String, String> {
    BTreeMap::from([("text".to_owned(), p.text)])
}

#[compute_function]
fn types_roundtrip(p: AllTypes) -> AllTypes {
    p
}

fn reference_registry() -> Registry {
    Registry::builder()
        .function(function!(add))
        .function(function!(hello))
        .function(function!(echo))
        .function(function!(sleep_ms))
        .function(function!(fail))
        .function(function!(count))
        .function(function!(types))
        .function(function!(types_roundtrip))
        .build()
        .unwrap()
}

fn fixture() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/python-sdk-schemas.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Removes every `fieldMetadata` (cmod's one deliberate addition to struct types), returning
/// them by JSON pointer so they can be checked separately.
fn strip_field_metadata(v: &mut Value, at: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) => {
            if let Some(meta) = map.remove("fieldMetadata") {
                out.insert(at.to_owned(), meta);
            }
            for (k, child) in map.iter_mut() {
                strip_field_metadata(child, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                strip_field_metadata(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn reference_module_schemas_match_the_python_sdk_field_for_field() {
    let posted: Value =
        serde_json::from_str(&reference_registry().schemas_json().unwrap()).unwrap();
    let Value::Array(posted) = posted else {
        panic!("schemas must be a JSON array")
    };
    let expected = fixture();
    assert_eq!(posted.len(), expected.len());

    for want in expected {
        let name = want["functionName"].as_str().unwrap();
        let mut got = posted
            .iter()
            .find(|f| f["functionName"] == name)
            .unwrap_or_else(|| panic!("no schema for `{name}`"))
            .clone();

        // Deliberate difference: cmod adds `fieldMetadata` (required flags and field docs) to
        // every struct; the Python SDK sends none. Checked below, then removed.
        let mut meta = BTreeMap::new();
        strip_field_metadata(&mut got, "", &mut meta);
        for (at, m) in &meta {
            for (field, fm) in m.as_object().unwrap() {
                assert!(fm["required"].is_boolean(), "{name}{at}/{field}: {fm}");
            }
        }

        // Everything else is identical: names, order of inputs, types, required flags,
        // `constraints: []`, the `single` output and `ontologyProvenance: null`.
        assert_eq!(
            got, want,
            "schema of `{name}` differs from the Python SDK's"
        );
    }
}

#[test]
fn field_metadata_follows_serde_on_each_side() {
    let schemas = reference_registry().schemas().unwrap();
    let echo = schemas.iter().find(|s| s.function_name == "echo").unwrap();
    let meta = |dt: &DataType| match dt {
        DataType::AnonymousCustomType(c) => c
            .field_metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.required))
            .collect::<BTreeMap<_, _>>(),
        other => panic!("not a struct: {other:?}"),
    };
    // Inputs are read: a missing `Option` field is `None`, so it is not required.
    assert_eq!(
        meta(&echo.inputs[0].data_type),
        BTreeMap::from([
            ("note".into(), false),
            ("numbers".into(), true),
            ("text".into(), true)
        ])
    );
    // Outputs are written: `note` is always present (as `null` when empty).
    assert_eq!(
        meta(&echo.output.data_type),
        BTreeMap::from([
            ("note".into(), true),
            ("numbers".into(), true),
            ("text".into(), true)
        ])
    );
}

// ---- Mapping details beyond the reference module. ----

fn schema(def: &FunctionDef) -> FunctionSchema {
    (def.schema)().unwrap_or_else(|e| panic!("{e}"))
}

/// Documented: first line of the function.
///
/// And more.
#[compute_function(name = "documented.fn", rename_all = "camelCase")]
fn documented(max_items: Option<i64>, since_day: chrono::NaiveDate) -> Documented {
    let _ = (max_items, since_day);
    Documented {
        total_count: 0,
        skipped: None,
    }
}

/// The output.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Documented {
    /// How many there are.
    total_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<u8>,
}

#[test]
fn docs_renames_and_optional_inputs() {
    let s = serde_json::to_value(schema(&documented::__CMOD_FUNCTION_DEF)).unwrap();
    assert_eq!(
        s,
        json!({
            "functionName": "documented.fn",
            "inputs": [
                {"name": "maxItems", "required": false, "constraints": [], "dataType":
                    {"type": "optionalType", "optionalType": {"wrappedType": {"type": "long", "long": {}}}}},
                {"name": "sinceDay", "required": true, "constraints": [], "dataType": {"type": "date", "date": {}}}
            ],
            "output": {"type": "single", "single": {
                "description": "Documented: first line of the function.\n\nAnd more.",
                "dataType": {"type": "anonymousCustomType", "anonymousCustomType": {
                    "fields": {
                        "totalCount": {"type": "long", "long": {}},
                        "skipped": {"type": "optionalType", "optionalType": {"wrappedType": {"type": "short", "short": {}}}}
                    },
                    "fieldMetadata": {
                        "totalCount": {"required": true, "documentation": "How many there are."},
                        "skipped": {"required": false}
                    }
                }}
            }},
            "ontologyProvenance": null
        })
    );
}

#[derive(Deserialize, JsonSchema)]
enum Color {
    /// Documented variants make schemars emit `oneOf`; still a string.
    Red,
    Green,
}

#[compute_function]
#[allow(clippy::too_many_arguments)]
fn mapping(
    color: Color,
    by_day: BTreeMap<Date, Vec<Timestamp>>,
    by_id: HashMap<i32, HashSet<String>>,
    amounts: HashMap<Decimal, rust_decimal::Decimal>,
    when: chrono::DateTime<chrono::Utc>,
    small: u8,
    medium: u16,
    large: u32,
    bytes: Binary,
    text: &str,
    slice: &[f64],
    chars: [char; 2],
) {
    let _ = (
        color, by_day, by_id, amounts, when, small, medium, large, bytes, text, slice, chars,
    );
}

fn t(name: &str) -> Value {
    json!({"type": name, name: {}})
}

#[test]
fn every_mapping_rule() {
    let s = schema(&mapping::__CMOD_FUNCTION_DEF);
    let inputs: BTreeMap<String, Value> = s
        .inputs
        .iter()
        .map(|i| (i.name.clone(), serde_json::to_value(&i.data_type).unwrap()))
        .collect();
    let list = |e: Value| json!({"type": "list", "list": {"elementsType": e}});
    let set = |e: Value| json!({"type": "set", "set": {"elementsType": e}});
    let map = |k: Value, v: Value| json!({"type": "map", "map": {"keysType": k, "valuesType": v}});
    let expected = BTreeMap::from([
        ("color".to_owned(), t("string")),
        ("by_day".to_owned(), map(t("date"), list(t("timestamp")))),
        ("by_id".to_owned(), map(t("long"), set(t("string")))),
        ("amounts".to_owned(), map(t("decimal"), t("decimal"))),
        ("when".to_owned(), t("timestamp")),
        ("small".to_owned(), t("short")),
        ("medium".to_owned(), t("integer")),
        ("large".to_owned(), t("long")),
        ("bytes".to_owned(), t("binary")),
        ("text".to_owned(), t("string")),
        ("slice".to_owned(), list(t("double"))),
        ("chars".to_owned(), list(t("string"))),
    ]);
    assert_eq!(inputs, expected);
    // Inputs keep parameter order.
    let order: Vec<&str> = s.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(order[..3], ["color", "by_day", "by_id"]);
    // `()` output: declared `string` (as Python does without a return annotation).
    assert_eq!(s.output.data_type, DataType::String);
    assert!(s.inputs.iter().all(|i| i.required));
}

#[compute_function(streaming)]
fn explicit_streaming() -> Vec<Payload> {
    Vec::new()
}

#[compute_function]
fn stream_of_results(
    n: i32,
) -> Result<impl futures_util::Stream<Item = Result<i16, Intentional>>, Intentional> {
    Ok(futures_util::stream::iter((0..n).map(|i| Ok(i as i16))))
}

#[test]
fn streaming_outputs_are_lists_of_items() {
    assert!(explicit_streaming::__CMOD_FUNCTION_DEF.streaming);
    let s = serde_json::to_value(schema(&explicit_streaming::__CMOD_FUNCTION_DEF)).unwrap();
    assert_eq!(s["output"]["single"]["dataType"]["type"], "list");
    assert_eq!(
        s["output"]["single"]["dataType"]["list"]["elementsType"]["type"],
        "anonymousCustomType"
    );
    let s = schema(&stream_of_results::__CMOD_FUNCTION_DEF);
    assert_eq!(
        s.output.data_type,
        DataType::List(Box::new(DataType::Short))
    );
}

// ---- Types Foundry cannot represent: rejected at startup, naming function, input, path. ----

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Node {
    label: String,
    children: Vec<Node>,
}

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Wide {
    ok: i64,
    nested: BTreeMap<String, Vec<u64>>,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[allow(dead_code)]
enum Shape {
    Circle { radius: f64 },
    Square(f64),
}

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Pair(i32, String);

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Loose {
    extra: HashMap<String, serde_json::Value>,
}

#[compute_function]
fn recursive(tree: Node) -> i32 {
    tree.children.len() as i32
}

#[compute_function]
fn too_wide(ok: i32, w: Wide) -> i32 {
    ok + w.ok as i32
}

#[compute_function]
fn data_enum() -> Shape {
    Shape::Square(1.0)
}

#[compute_function]
fn pair(p: Pair) -> i32 {
    p.0
}

#[compute_function]
fn loose(l: Loose) -> i64 {
    l.extra.len() as i64
}

fn schema_error(def: &FunctionDef) -> SchemaError {
    match (def.schema)() {
        Ok(s) => panic!("`{}` should be rejected, got {s:?}", def.name),
        Err(e) => e,
    }
}

#[test]
fn unsupported_types_are_rejected_naming_function_input_and_path() {
    let e = schema_error(&recursive::__CMOD_FUNCTION_DEF);
    assert_eq!(e.function(), "recursive");
    assert_eq!(e.position(), Some(&Position::Input("tree".into())));
    assert_eq!(e.rust_type(), "Node");
    assert_eq!(e.path(), "tree.children[item]");
    assert!(e.reason().contains("`Node` contains itself"), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "compute function `recursive` ({}::recursive): input `tree` of type `Node`, at \
             `tree.children[item]`: the type `Node` contains itself; Foundry types cannot be \
             recursive",
            module_path!()
        )
    );

    let e = schema_error(&too_wide::__CMOD_FUNCTION_DEF);
    assert_eq!(e.position(), Some(&Position::Input("w".into())));
    assert_eq!(e.path(), "w.nested[value][item]");
    assert!(
        e.reason().contains("`u64`") && e.reason().contains("use `i64`"),
        "{e}"
    );

    let e = schema_error(&data_enum::__CMOD_FUNCTION_DEF);
    assert_eq!(e.position(), Some(&Position::Output));
    assert_eq!(e.rust_type(), "Shape");
    assert!(e.reason().contains("enum with data"), "{e}");

    let e = schema_error(&pair::__CMOD_FUNCTION_DEF);
    assert_eq!(e.path(), "p");
    assert!(e.reason().contains("tuple"), "{e}");

    let e = schema_error(&loose::__CMOD_FUNCTION_DEF);
    assert_eq!(e.path(), "l.extra");
    assert!(e.reason().contains("any JSON value"), "{e}");
}

#[test]
fn a_registry_with_an_unsupported_function_fails_its_schema_check() {
    let registry = Registry::builder()
        .function(function!(add))
        .function(function!(pair))
        .build()
        .unwrap();
    let err = registry.schemas().unwrap_err();
    assert_eq!(err.function(), "pair");
    // `run()` turns it into this startup error.
    let err = cmod_runtime::Error::from(RegistryError::from(err));
    assert!(err.to_string().contains("compute function `pair`"), "{err}");
}

#[compute_function(name = "same")]
fn same_one() -> i32 {
    1
}

#[compute_function(name = "same")]
fn same_two() -> i32 {
    2
}

#[test]
fn two_functions_with_one_wire_name_are_an_error_naming_both() {
    let err = Registry::builder()
        .function(function!(same_one))
        .function(function!(same_two))
        .build()
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`same`"), "{msg}");
    assert!(
        msg.contains("same_one") && msg.contains("same_two"),
        "{msg}"
    );
}
