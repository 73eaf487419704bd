//! JSON Schema (as schemars 1 generates it, draft 2020-12) → Foundry [`DataType`].

use serde_json::{Map, Value};

use super::{CustomType, DataType, FieldMetadata};
use crate::types::{
    BINARY_KEY_PATTERN, CONTENT_ENCODING_BASE64, DATE_PATTERN, DECIMAL_PATTERN, FORMAT_DATE,
    FORMAT_DATE_TIME, FORMAT_DECIMAL, RUST_DECIMAL_IN_PATTERN, SIGNED_KEY_PATTERN,
    TIMESTAMP_PATTERN, UNSIGNED_KEY_PATTERN,
};

/// Where `$ref`s point: schemars' draft 2020-12 definitions.
const DEFS_PREFIX: &str = "#/$defs/";

/// Why a schema could not be converted, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) path: String,
    pub(crate) reason: String,
}

/// Converts schemas that may `$ref` into `defs`, tracking the path for error messages and the
/// definitions being expanded (to reject recursive types).
pub(crate) struct Converter<'a> {
    defs: &'a Map<String, Value>,
    expanding: Vec<&'a str>,
    path: Vec<String>,
}

impl<'a> Converter<'a> {
    /// A converter whose paths start at `root` (an input name, or `output`).
    pub(crate) fn new(defs: &'a Map<String, Value>, root: &str) -> Self {
        Self {
            defs,
            expanding: Vec::new(),
            path: vec![root.to_owned()],
        }
    }

    /// The current path: `p.inner.tags[item]`.
    fn path(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            if !out.is_empty() && !seg.starts_with('[') {
                out.push('.');
            }
            out.push_str(seg);
        }
        out
    }

    fn problem(&self, reason: impl Into<String>) -> Problem {
        Problem {
            path: self.path(),
            reason: reason.into(),
        }
    }

    fn nested<T>(
        &mut self,
        segment: impl Into<String>,
        f: impl FnOnce(&mut Self) -> Result<T, Problem>,
    ) -> Result<T, Problem> {
        self.path.push(segment.into());
        let r = f(self);
        self.path.pop();
        r
    }

    /// Converts one schema.
    pub(crate) fn convert(&mut self, schema: &'a Value) -> Result<DataType, Problem> {
        let obj = match schema {
            Value::Object(obj) => obj,
            Value::Bool(true) => {
                return Err(self.problem(
                    "it accepts any JSON value (like `serde_json::Value`), which has no Foundry \
                     type; use a concrete type",
                ));
            }
            _ => return Err(self.problem("it accepts no value at all")),
        };

        if let Some(r) = obj.get("$ref") {
            return self.convert_ref(r);
        }
        if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
            return match all.as_slice() {
                [only] => self.convert(only),
                _ => Err(self.problem(
                    "it combines several schemas (`allOf`, e.g. a flattened enum), which Foundry \
                     cannot represent",
                )),
            };
        }
        if let Some(alts) = obj
            .get("anyOf")
            .or_else(|| obj.get("oneOf"))
            .and_then(Value::as_array)
        {
            return self.convert_alternatives(alts);
        }
        if is_decimal(obj) {
            return Ok(wrap_nullable(obj, DataType::Decimal));
        }

        let mut types: Vec<&str> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => {
                if obj.contains_key("properties") {
                    vec!["object"]
                } else if let Some(kind) = const_or_enum_kind(obj) {
                    vec![kind]
                } else {
                    return Err(self.problem(format!(
                        "cmod cannot map this JSON schema to a Foundry type: {}",
                        snippet(schema)
                    )));
                }
            }
        };
        let nullable = types.contains(&"null");
        types.retain(|t| *t != "null");
        let inner = match types.as_slice() {
            [] => {
                return Err(self.problem(
                    "`()` and unit structs carry no value; Foundry has no type for them (only a \
                     function's whole output may be `()`)",
                ));
            }
            [t] => self.convert_typed(t, obj)?,
            _ => {
                return Err(self.problem(format!(
                    "it accepts several JSON types ({}), e.g. an untagged enum, which Foundry \
                     cannot represent; use one type",
                    types.join(", ")
                )));
            }
        };
        Ok(if nullable {
            DataType::Optional(Box::new(inner))
        } else {
            inner
        })
    }

    fn convert_ref(&mut self, r: &'a Value) -> Result<DataType, Problem> {
        let name = r
            .as_str()
            .and_then(|r| r.strip_prefix(DEFS_PREFIX))
            .ok_or_else(|| self.problem(format!("unsupported `$ref` {r}")))?;
        if self.expanding.contains(&name) {
            return Err(self.problem(format!(
                "the type `{}` contains itself; Foundry types cannot be recursive",
                unescape_pointer(name)
            )));
        }
        let target = self.defs.get(name).ok_or_else(|| {
            self.problem(format!(
                "`$ref` to a missing definition `{}`",
                unescape_pointer(name)
            ))
        })?;
        self.expanding.push(name);
        let r = self.convert(target);
        self.expanding.pop();
        r
    }

    fn convert_alternatives(&mut self, alts: &'a [Value]) -> Result<DataType, Problem> {
        let (nulls, others): (Vec<&Value>, Vec<&Value>) = alts.iter().partition(|a| is_null(a));
        let inner = match others.as_slice() {
            [] => return Err(self.problem("it is always `null`, which has no Foundry type")),
            [only] => self.convert(only)?,
            _ if others.iter().all(|a| is_string_constant(a)) => DataType::String,
            _ => {
                return Err(self.problem(
                    "an enum with data (or an untagged enum) has no Foundry type; use a struct, \
                     or an enum whose variants are all unit variants (sent as strings)",
                ));
            }
        };
        Ok(if nulls.is_empty() {
            inner
        } else {
            DataType::Optional(Box::new(inner))
        })
    }

    fn convert_typed(
        &mut self,
        ty: &str,
        obj: &'a Map<String, Value>,
    ) -> Result<DataType, Problem> {
        match ty {
            "boolean" => Ok(DataType::Boolean),
            "integer" => self.integer(obj.get("format").and_then(Value::as_str)),
            "number" => Ok(match obj.get("format").and_then(Value::as_str) {
                Some("float") => DataType::Float,
                _ => DataType::Double,
            }),
            "string" => Ok(string_type(obj)),
            "array" => self.array(obj),
            "object" => self.object(obj),
            other => Err(self.problem(format!("unknown JSON schema type `{other}`"))),
        }
    }

    fn integer(&self, format: Option<&str>) -> Result<DataType, Problem> {
        let too_wide = |rust: &str| {
            self.problem(format!(
                "`{rust}` has no Foundry type: Foundry's widest integer is the signed 64-bit \
                 `long`; use `i64`"
            ))
        };
        match format {
            Some("int8") => Ok(DataType::Byte),
            Some("int16" | "uint8") => Ok(DataType::Short),
            Some("int32" | "uint16") => Ok(DataType::Integer),
            Some("int64" | "int" | "uint32") | None => Ok(DataType::Long),
            Some("uint64") => Err(too_wide("u64")),
            Some("uint") => Err(too_wide("usize")),
            Some("uint128") => Err(too_wide("u128")),
            Some("int128") => Err(too_wide("i128")),
            Some(other) => Err(self.problem(format!("unknown integer format `{other}`"))),
        }
    }

    fn array(&mut self, obj: &'a Map<String, Value>) -> Result<DataType, Problem> {
        if obj.contains_key("prefixItems") {
            return Err(self.problem(
                "a tuple (or a tuple struct with several fields) has no Foundry type; use a \
                 struct with named fields",
            ));
        }
        let items = obj
            .get("items")
            .ok_or_else(|| self.problem("an array without an element type"))?;
        let element = self.nested("[item]", |c| c.convert(items))?;
        Ok(if obj.get("uniqueItems") == Some(&Value::Bool(true)) {
            DataType::Set(Box::new(element))
        } else {
            DataType::List(Box::new(element))
        })
    }

    fn object(&mut self, obj: &'a Map<String, Value>) -> Result<DataType, Problem> {
        let props = obj.get("properties").and_then(Value::as_object);
        let has_props = props.is_some_and(|p| !p.is_empty());
        let additional = obj.get("additionalProperties");
        let patterns = obj
            .get("patternProperties")
            .and_then(Value::as_object)
            .filter(|p| !p.is_empty());

        if let Some(patterns) = patterns {
            let extra_values = matches!(additional, Some(Value::Object(_) | Value::Bool(true)));
            if has_props || extra_values || patterns.len() > 1 {
                return Err(self.problem(
                    "a map whose keys have several types (or fields mixed with map entries) has \
                     no Foundry type",
                ));
            }
            let Some((pattern, values)) = patterns.iter().next() else {
                return Err(self.problem("an empty map schema"));
            };
            let keys = key_type_from_pattern(pattern);
            let values = self.nested("[value]", |c| c.convert(values))?;
            return Ok(DataType::Map {
                keys: Box::new(keys),
                values: Box::new(values),
            });
        }

        match (has_props, additional) {
            (false, Some(Value::Bool(true))) => Err(self.problem(
                "a map of any JSON values has no Foundry type; use a concrete value type",
            )),
            (false, Some(values @ Value::Object(_))) => {
                let values = self.nested("[value]", |c| c.convert(values))?;
                Ok(DataType::Map {
                    keys: Box::new(DataType::String),
                    values: Box::new(values),
                })
            }
            (true, Some(Value::Object(_) | Value::Bool(true))) => Err(self.problem(
                "it mixes named fields with arbitrary extra entries (`#[serde(flatten)]` of a \
                 map?), which Foundry cannot represent",
            )),
            _ => self.structure(obj, props),
        }
    }

    fn structure(
        &mut self,
        obj: &'a Map<String, Value>,
        props: Option<&'a Map<String, Value>>,
    ) -> Result<DataType, Problem> {
        let required: Vec<&str> = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut ty = CustomType::default();
        for (name, schema) in props.into_iter().flatten() {
            let data_type = self.nested(name.as_str(), |c| c.convert(schema))?;
            ty.fields.insert(name.clone(), data_type);
            ty.field_metadata.insert(
                name.clone(),
                FieldMetadata {
                    required: required.contains(&name.as_str()),
                    documentation: description(schema),
                },
            );
        }
        Ok(DataType::AnonymousCustomType(ty))
    }
}

/// The `description` of a schema (a field's doc comment), if any.
fn description(schema: &Value) -> Option<String> {
    schema
        .get("description")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
}

fn is_null(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// `{"type": "string", "const": "A"}` / `{"enum": ["A", "B"]}`: one unit variant of an enum
/// whose variants carry docs.
fn is_string_constant(schema: &Value) -> bool {
    let Some(obj) = schema.as_object() else {
        return false;
    };
    let string_typed = obj.get("type").is_none_or(|t| t == "string");
    let constant = obj.get("const").is_some_and(Value::is_string)
        || obj
            .get("enum")
            .and_then(Value::as_array)
            .is_some_and(|e| e.iter().all(Value::is_string));
    string_typed && constant
}

fn const_or_enum_kind(obj: &Map<String, Value>) -> Option<&'static str> {
    let values: Vec<&Value> = match (obj.get("const"), obj.get("enum")) {
        (Some(c), _) => vec![c],
        (None, Some(Value::Array(e))) => e.iter().collect(),
        _ => return None,
    };
    values
        .iter()
        .all(|v| v.is_string() || v.is_null())
        .then_some("string")
}

fn is_decimal(obj: &Map<String, Value>) -> bool {
    obj.get("format").and_then(Value::as_str) == Some(FORMAT_DECIMAL)
        || matches!(
            obj.get("pattern").and_then(Value::as_str),
            Some(DECIMAL_PATTERN | RUST_DECIMAL_IN_PATTERN)
        )
}

fn wrap_nullable(obj: &Map<String, Value>, inner: DataType) -> DataType {
    let nullable = obj
        .get("type")
        .and_then(Value::as_array)
        .is_some_and(|ts| ts.iter().any(|t| t == "null"));
    if nullable {
        DataType::Optional(Box::new(inner))
    } else {
        inner
    }
}

fn string_type(obj: &Map<String, Value>) -> DataType {
    if obj.get("contentEncoding").and_then(Value::as_str) == Some(CONTENT_ENCODING_BASE64) {
        return DataType::Binary;
    }
    match obj.get("format").and_then(Value::as_str) {
        Some(FORMAT_DATE) => DataType::Date,
        Some(FORMAT_DATE_TIME) => DataType::Timestamp,
        Some("byte") => DataType::Binary,
        _ => DataType::String,
    }
}

fn key_type_from_pattern(pattern: &str) -> DataType {
    match pattern {
        SIGNED_KEY_PATTERN | UNSIGNED_KEY_PATTERN => DataType::Long,
        DATE_PATTERN => DataType::Date,
        TIMESTAMP_PATTERN => DataType::Timestamp,
        DECIMAL_PATTERN | RUST_DECIMAL_IN_PATTERN => DataType::Decimal,
        BINARY_KEY_PATTERN => DataType::Binary,
        _ => DataType::String,
    }
}

/// JSON pointer unescaping for definition names (`~1` → `/`, `~0` → `~`).
fn unescape_pointer(name: &str) -> String {
    name.replace("~1", "/").replace("~0", "~")
}

fn snippet(schema: &Value) -> String {
    let s = schema.to_string();
    if s.chars().count() > 120 {
        let mut t: String = s.chars().take(117).collect();
        t.push_str("...");
        t
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert(schema: Value, defs: Value) -> Result<DataType, Problem> {
        let defs = defs.as_object().cloned().unwrap_or_default();
        let mut c = Converter::new(&defs, "x");
        c.convert(&schema)
    }

    #[test]
    fn integer_formats_map_to_foundry_widths() {
        for (format, expected) in [
            ("int8", DataType::Byte),
            ("int16", DataType::Short),
            ("uint8", DataType::Short),
            ("int32", DataType::Integer),
            ("uint16", DataType::Integer),
            ("int64", DataType::Long),
            ("uint32", DataType::Long),
        ] {
            let got = convert(json!({"type": "integer", "format": format}), json!({})).unwrap();
            assert_eq!(got, expected, "{format}");
        }
        let err = convert(json!({"type": "integer", "format": "uint64"}), json!({})).unwrap_err();
        assert!(
            err.reason.contains("`u64`") && err.reason.contains("i64"),
            "{err:?}"
        );
    }

    #[test]
    fn recursive_definitions_are_rejected_with_the_type_name() {
        let defs = json!({"Rec": {"type": "object", "properties": {
            "next": {"anyOf": [{"$ref": "#/$defs/Rec"}, {"type": "null"}]}}}});
        let err = convert(json!({"$ref": "#/$defs/Rec"}), defs).unwrap_err();
        assert_eq!(err.path, "x.next");
        assert!(err.reason.contains("`Rec` contains itself"), "{err:?}");
    }

    #[test]
    fn the_same_definition_twice_is_not_recursion() {
        let defs = json!({"I": {"type": "object", "properties": {"a": {"type": "string"}}}});
        let schema = json!({"type": "object", "properties": {
            "one": {"$ref": "#/$defs/I"}, "two": {"$ref": "#/$defs/I"}}});
        assert!(convert(schema, defs).is_ok());
    }

    #[test]
    fn paths_name_fields_items_and_values() {
        let schema = json!({"type": "object", "properties": {"m": {"type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "array",
                "prefixItems": [{"type": "string"}]}}}}});
        let err = convert(schema, json!({})).unwrap_err();
        assert_eq!(err.path, "x.m[value][item]");
        assert!(err.reason.contains("tuple"));
    }

    #[test]
    fn unit_enums_with_documented_variants_are_strings() {
        let schema = json!({"oneOf": [
            {"type": "string", "const": "A", "description": "a"},
            {"type": "string", "enum": ["B"]}]});
        assert_eq!(convert(schema, json!({})).unwrap(), DataType::String);
    }

    #[test]
    fn data_enums_and_any_values_are_rejected() {
        let data = json!({"oneOf": [{"type": "object", "properties": {"A": {"type": "integer"}}},
                                    {"type": "string", "const": "B"}]});
        assert!(
            convert(data, json!({}))
                .unwrap_err()
                .reason
                .contains("enum with data")
        );
        assert!(
            convert(json!(true), json!({}))
                .unwrap_err()
                .reason
                .contains("any JSON")
        );
        let map_any = json!({"type": "object", "additionalProperties": true});
        assert!(convert(map_any, json!({})).is_err());
    }

    #[test]
    fn map_keys_follow_their_patterns() {
        let schema = json!({"type": "object", "additionalProperties": false,
            "patternProperties": {DATE_PATTERN: {"type": "boolean"}}});
        assert_eq!(
            convert(schema, json!({})).unwrap(),
            DataType::Map {
                keys: Box::new(DataType::Date),
                values: Box::new(DataType::Boolean)
            }
        );
    }
}
