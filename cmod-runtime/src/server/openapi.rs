//! The OpenAPI document of server mode (docs/protocol.md §4.9), generated from the registry:
//! one `POST /<function>` operation per function, `operationId` = the function's wire name, the
//! inputs as one JSON object body, one `200` `application/json` response.
//!
//! Foundry accepts OpenAPI ≥ 3.0.0 with one server `http://localhost:<port>` and no
//! `anyOf`/`oneOf`/`allOf` or multi-type schemas. The document is OpenAPI **3.0.3** (3.1 would
//! express `null` with a multi-type `type` array), and schemars' JSON Schemas (draft 2020-12,
//! kept by [`capture`]) are rewritten into that subset:
//!
//! | schemars | OpenAPI 3.0 |
//! |---|---|
//! | named types (`$defs`) | `components/schemas` + `$ref` (same name, different shape: `Name_2`) |
//! | `Option<T>`: `"type": [T, "null"]`, `anyOf: [T, null]` | `T` with `nullable: true` (a `$ref` is inlined: 3.0 ignores siblings of `$ref`); an `Option` input is also not `required` |
//! | unit enums: `enum`, `oneOf` of `const` strings | `type: string` + `enum` |
//! | `const` | a one-value `enum` |
//! | single `allOf` (a documented `$ref`) | its one schema |
//! | maps with typed keys (`patternProperties`) | `additionalProperties` (JSON keys are strings) |
//! | `contentEncoding: base64` | `format: byte` |
//! | `i8`/`i16`/`u8`/`u16`/`u32` formats | `int32`/`int64` with `minimum`/`maximum` |
//! | `()` output (`null`) | `type: string, nullable: true` (Foundry's declared `string`) |
//! | `OntologyEdits` output | `type: array` of `type: object` (the edits' wire format) |
//!
//! Anything else (data enums, untagged enums, `serde_json::Value`, tuples) is already refused by
//! the Foundry schema built first; what still cannot be written fails with a [`SchemaError`]
//! naming the function, the input or output, the Rust type and the path.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::functions::registry::{Registry, RegistryError};
use crate::schema::build::capture::{self, JsonSchemas};
use crate::schema::{Position, SchemaError};

/// The OpenAPI version written.
pub(crate) const OPENAPI_VERSION: &str = "3.0.3";

const COMPONENTS_PREFIX: &str = "#/components/schemas/";
const DEFS_PREFIX: &str = "#/$defs/";

/// The OpenAPI document serving `registry` on `http://localhost:{port}`.
pub(crate) fn document(registry: &Registry, port: u16) -> Result<Value, RegistryError> {
    let mut components = Components::default();
    let mut paths = Map::new();
    for def in registry.functions() {
        let (schema, captured) = capture::json_schemas(def.schema)?;
        let captured = captured.ok_or_else(|| {
            SchemaError::serialize(format!(
                "compute function `{}`: its JSON Schemas were not recorded (a cmod bug; please \
                 report it)",
                def.name
            ))
        })?;
        let operation = operation(
            &captured,
            schema.output.description.as_deref(),
            &mut components,
        )?;
        paths.insert(format!("/{}", def.name), json!({ "post": operation }));
    }
    let mut doc = json!({
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "cmod compute module",
            "version": "0.0.0",
            "description": "Functions served by a cmod compute module in Foundry's server (OpenAPI) mode: \
                            POST the inputs as one JSON object to /<function>."
        },
        "servers": [{ "url": format!("http://localhost:{port}") }],
        "paths": paths,
    });
    if !components.schemas.is_empty() {
        doc["components"] = json!({ "schemas": components.schemas });
    }
    Ok(doc)
}

/// The `post` operation of one function.
fn operation(
    captured: &JsonSchemas,
    description: Option<&str>,
    components: &mut Components,
) -> Result<Value, SchemaError> {
    let spec = &captured.spec;
    let empty = Map::new();
    let input_defs = captured
        .input_root
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let properties = captured
        .input_root
        .get("properties")
        .and_then(Value::as_object);
    let required: Vec<&str> = captured
        .input_root
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();

    let mut body_properties = Map::new();
    let mut body_required = Vec::new();
    for input in spec.inputs {
        let mut rewriter = Rewriter::new(input_defs, components, input.name);
        let schema = properties
            .and_then(|p| p.get(input.name))
            .ok_or_else(|| rewriter.problem("the input is missing from the generated input schema"))
            .and_then(|schema| rewriter.rewrite(schema))
            .map_err(|p| {
                SchemaError::unsupported(
                    spec,
                    Position::Input(input.name.to_owned()),
                    input.rust_type,
                    p.path,
                    p.reason,
                )
            })?;
        body_properties.insert(input.name.to_owned(), schema);
        if required.contains(&input.name) {
            body_required.push(input.name);
        }
    }
    let mut body = json!({
        "type": "object",
        "properties": body_properties,
        "additionalProperties": false,
    });
    if !body_required.is_empty() {
        body["required"] = json!(body_required);
    }

    let mut rewriter = Rewriter::new(&captured.output_defs, components, "output");
    let output = if spec.edits.is_some() {
        // `OntologyEdits`: the body is the edits' wire format, a list of `{"type": …}` objects
        // (docs/protocol.md §4.6); its Rust type has no JSON Schema of its own.
        Ok(json!({ "type": "array", "items": { "type": "object" } }))
    } else if captured.output.get("type").and_then(Value::as_str) == Some("null") {
        // `()`: the body is `null`; Foundry's schema declares `string`, as the Python SDK does.
        Ok(json!({ "type": "string", "nullable": true }))
    } else {
        rewriter.rewrite(&captured.output)
    };
    let output = output.map_err(|p| {
        SchemaError::unsupported(spec, Position::Output, spec.output_type, p.path, p.reason)
    })?;
    let output = if spec.streaming {
        json!({ "type": "array", "items": output })
    } else {
        output
    };

    let mut op = json!({
        "operationId": spec.name,
        "requestBody": {
            "required": !body_required.is_empty(),
            "content": { "application/json": { "schema": body } },
        },
        "responses": {
            "200": {
                "description": if spec.streaming {
                    "The result: every streamed item, as one JSON array."
                } else {
                    "The result."
                },
                "content": { "application/json": { "schema": output } },
            }
        },
    });
    if let Some(d) = description.map(str::trim).filter(|d| !d.is_empty()) {
        op["summary"] = json!(d.lines().next().unwrap_or(d));
        op["description"] = json!(d);
    }
    Ok(op)
}

/// `components/schemas`, filled as definitions are met; a name is reused only for the same
/// rewritten schema.
#[derive(Default)]
struct Components {
    schemas: BTreeMap<String, Value>,
}

impl Components {
    /// The component name for `schema`, added under `wanted` (or `wanted_2`, … when another
    /// schema already has that name).
    fn add(&mut self, wanted: &str, schema: Value) -> String {
        let base = component_name(wanted);
        let mut name = base.clone();
        let mut n = 1;
        loop {
            match self.schemas.get(&name) {
                None => {
                    self.schemas.insert(name.clone(), schema);
                    return name;
                }
                Some(existing) if *existing == schema => return name,
                Some(_) => {
                    n += 1;
                    name = format!("{base}_{n}");
                }
            }
        }
    }
}

/// A definition name as an OpenAPI component key (`^[a-zA-Z0-9.\-_]+$`).
fn component_name(def: &str) -> String {
    let name: String = def
        .replace("~1", "/")
        .replace("~0", "~")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "Type".to_owned()
    } else {
        name
    }
}

/// Why a schema could not be rewritten, and where.
struct Problem {
    path: String,
    reason: String,
}

/// Rewrites one side's (inputs' or output's) JSON Schemas into OpenAPI 3.0 schemas.
struct Rewriter<'a> {
    defs: &'a Map<String, Value>,
    components: &'a mut Components,
    /// Definition name → component name, for definitions already added.
    added: BTreeMap<String, String>,
    /// Definitions being rewritten (a guard: recursive types never get here).
    expanding: Vec<String>,
    path: Vec<String>,
}

impl<'a> Rewriter<'a> {
    fn new(defs: &'a Map<String, Value>, components: &'a mut Components, root: &str) -> Self {
        Self {
            defs,
            components,
            added: BTreeMap::new(),
            expanding: Vec::new(),
            path: vec![root.to_owned()],
        }
    }

    fn problem(&self, reason: impl Into<String>) -> Problem {
        let mut path = String::new();
        for seg in &self.path {
            if !path.is_empty() && !seg.starts_with('[') {
                path.push('.');
            }
            path.push_str(seg);
        }
        Problem {
            path,
            reason: format!("{} (OpenAPI server mode)", reason.into()),
        }
    }

    fn nested(&mut self, segment: impl Into<String>, schema: &Value) -> Result<Value, Problem> {
        self.path.push(segment.into());
        let r = self.rewrite(schema);
        self.path.pop();
        r
    }

    /// Rewrites one schema.
    fn rewrite(&mut self, schema: &Value) -> Result<Value, Problem> {
        let Value::Object(obj) = schema else {
            return Err(self.problem(
                "it accepts any JSON value (or none), which OpenAPI 3.0 cannot describe with one type",
            ));
        };
        if let Some(r) = obj.get("$ref") {
            let name = self.component_for(r)?;
            return Ok(json!({ "$ref": format!("{COMPONENTS_PREFIX}{name}") }));
        }
        if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
            return match all.as_slice() {
                [only] => {
                    let mut inner = self.rewrite(only)?;
                    keep_description(obj, &mut inner);
                    Ok(inner)
                }
                _ => Err(self.problem("it combines several schemas (`allOf`)")),
            };
        }
        if let Some(alts) = obj
            .get("anyOf")
            .or_else(|| obj.get("oneOf"))
            .and_then(Value::as_array)
        {
            let mut out = self.alternatives(alts)?;
            keep_description(obj, &mut out);
            return Ok(out);
        }

        let mut types: Vec<&str> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ if obj.contains_key("properties") => vec!["object"],
            _ if obj.contains_key("enum") || obj.contains_key("const") => vec!["string"],
            _ => return Err(self.problem("a schema without a type")),
        };
        let mut nullable = types.contains(&"null");
        types.retain(|t| *t != "null");
        let ty = match types.as_slice() {
            [t] => *t,
            // rust_decimal's input form: "a string or a number", written as a string.
            _ if is_decimal(obj) => "string",
            [] => return Err(self.problem("a value that is always `null` has no OpenAPI 3.0 type")),
            _ => {
                return Err(self.problem(format!(
                    "it accepts several JSON types ({}), which Foundry's OpenAPI import refuses",
                    types.join(", ")
                )));
            }
        };
        let mut out = Map::new();
        out.insert("type".into(), json!(ty));
        match ty {
            "integer" => integer(obj, &mut out),
            "number" => copy(obj, &mut out, &["format"]),
            "string" => {
                if obj.get("contentEncoding").and_then(Value::as_str) == Some("base64") {
                    out.insert("format".into(), json!("byte"));
                } else {
                    copy(obj, &mut out, &["format"]);
                }
                copy(obj, &mut out, &["pattern", "minLength", "maxLength"]);
            }
            "boolean" => {}
            "array" => {
                if obj.contains_key("prefixItems") {
                    return Err(self.problem("a tuple has no OpenAPI 3.0 schema"));
                }
                let items = obj
                    .get("items")
                    .ok_or_else(|| self.problem("an array without an element type"))?;
                let items = self.nested("[item]", items)?;
                out.insert("items".into(), items);
                copy(obj, &mut out, &["uniqueItems", "minItems", "maxItems"]);
            }
            "object" => self.object(obj, &mut out)?,
            other => return Err(self.problem(format!("unknown JSON schema type `{other}`"))),
        }
        // Unit enums and constants.
        let constants: Option<Vec<Value>> = match (obj.get("const"), obj.get("enum")) {
            (Some(c), _) => Some(vec![c.clone()]),
            (None, Some(Value::Array(e))) => Some(e.clone()),
            _ => None,
        };
        if let Some(mut values) = constants {
            if values.iter().any(Value::is_null) {
                nullable = true;
            } else if nullable {
                values.push(Value::Null);
            }
            out.insert("enum".into(), Value::Array(values));
        }
        if nullable {
            out.insert("nullable".into(), json!(true));
        }
        copy(
            obj,
            &mut out,
            &[
                "description",
                "title",
                "default",
                "deprecated",
                "readOnly",
                "writeOnly",
            ],
        );
        if let Some(first) = obj
            .get("examples")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            out.insert("example".into(), first.clone());
        }
        Ok(Value::Object(out))
    }

    /// `anyOf`/`oneOf`: `T | null` (`Option<T>`) or unit variants with docs.
    fn alternatives(&mut self, alts: &[Value]) -> Result<Value, Problem> {
        let (nulls, others): (Vec<&Value>, Vec<&Value>) = alts
            .iter()
            .partition(|a| a.get("type").and_then(Value::as_str) == Some("null"));
        let nullable = !nulls.is_empty();
        let mut out = match others.as_slice() {
            [only] if nullable => self.inline(only)?,
            [only] => self.rewrite(only)?,
            _ if others.iter().all(|a| string_constants(a).is_some()) => {
                let values: Vec<Value> = others
                    .iter()
                    .filter_map(|a| string_constants(a))
                    .flatten()
                    .collect();
                json!({ "type": "string", "enum": values })
            }
            _ => {
                return Err(self.problem(
                    "an enum with data (or an untagged enum) needs `oneOf`, which Foundry's \
                     OpenAPI import refuses; use a struct, or an enum of unit variants",
                ));
            }
        };
        if nullable && let Value::Object(o) = &mut out {
            o.insert("nullable".into(), json!(true));
            if let Some(Value::Array(values)) = o.get_mut("enum")
                && !values.iter().any(Value::is_null)
            {
                values.push(Value::Null);
            }
        }
        Ok(out)
    }

    /// Like [`Self::rewrite`], but a `$ref` is replaced by the definition's rewritten schema,
    /// so that `nullable` can be added to it (OpenAPI 3.0 ignores the siblings of a `$ref`).
    fn inline(&mut self, schema: &Value) -> Result<Value, Problem> {
        match schema.get("$ref") {
            Some(r) => {
                let name = self.component_for(r)?;
                Ok(self
                    .components
                    .schemas
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| json!({})))
            }
            None => self.rewrite(schema),
        }
    }

    fn object(
        &mut self,
        obj: &Map<String, Value>,
        out: &mut Map<String, Value>,
    ) -> Result<(), Problem> {
        if let Some(patterns) = obj.get("patternProperties").and_then(Value::as_object)
            && let Some((_, values)) = patterns.iter().next()
        {
            if patterns.len() > 1 {
                return Err(self.problem("a map whose keys have several types"));
            }
            let values = self.nested("[value]", values)?;
            out.insert("additionalProperties".into(), values);
            return Ok(());
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            let mut rewritten = Map::new();
            for (name, schema) in props {
                let s = self.nested(name.as_str(), schema)?;
                rewritten.insert(name.clone(), s);
            }
            out.insert("properties".into(), Value::Object(rewritten));
            if let Some(required) = obj.get("required").and_then(Value::as_array)
                && !required.is_empty()
            {
                out.insert("required".into(), Value::Array(required.clone()));
            }
        }
        match obj.get("additionalProperties") {
            Some(Value::Bool(b)) => {
                out.insert("additionalProperties".into(), json!(b));
            }
            Some(values @ Value::Object(_)) => {
                let values = self.nested("[value]", values)?;
                out.insert("additionalProperties".into(), values);
            }
            _ => {}
        }
        Ok(())
    }

    /// The component name of the definition `r` points to, adding it (and the definitions it
    /// uses) on first use.
    fn component_for(&mut self, r: &Value) -> Result<String, Problem> {
        let def = r
            .as_str()
            .and_then(|r| r.strip_prefix(DEFS_PREFIX))
            .ok_or_else(|| self.problem(format!("unsupported `$ref` {r}")))?
            .to_owned();
        if let Some(name) = self.added.get(&def) {
            return Ok(name.clone());
        }
        if self.expanding.contains(&def) {
            return Err(self.problem(format!("the type `{def}` contains itself")));
        }
        let defs = self.defs;
        let target = defs
            .get(&def)
            .ok_or_else(|| self.problem(format!("`$ref` to a missing definition `{def}`")))?;
        self.expanding.push(def.clone());
        let rewritten = self.rewrite(target);
        self.expanding.pop();
        let name = self.components.add(&def, rewritten?);
        self.added.insert(def, name.clone());
        Ok(name)
    }
}

/// Integer formats: OpenAPI 3.0 names `int32` and `int64`; narrower and unsigned Rust integers
/// keep their range as `minimum`/`maximum`.
fn integer(obj: &Map<String, Value>, out: &mut Map<String, Value>) {
    let (format, range): (&str, Option<(i64, i64)>) =
        match obj.get("format").and_then(Value::as_str) {
            Some("int8") => ("int32", Some((i64::from(i8::MIN), i64::from(i8::MAX)))),
            Some("int16") => ("int32", Some((i64::from(i16::MIN), i64::from(i16::MAX)))),
            Some("uint8") => ("int32", Some((0, i64::from(u8::MAX)))),
            Some("uint16") => ("int32", Some((0, i64::from(u16::MAX)))),
            Some("int32") => ("int32", None),
            Some("uint32") => ("int64", Some((0, i64::from(u32::MAX)))),
            _ => ("int64", None),
        };
    out.insert("format".into(), json!(format));
    if let Some((min, max)) = range {
        out.insert("minimum".into(), json!(min));
        out.insert("maximum".into(), json!(max));
    }
    copy(obj, out, &["minimum", "maximum"]);
}

fn copy(from: &Map<String, Value>, to: &mut Map<String, Value>, keys: &[&str]) {
    for key in keys {
        if let Some(v) = from.get(*key) {
            to.insert((*key).to_owned(), v.clone());
        }
    }
}

fn keep_description(from: &Map<String, Value>, to: &mut Value) {
    if let (Some(d), Value::Object(to)) = (from.get("description"), to) {
        to.entry("description").or_insert_with(|| d.clone());
    }
}

/// The string values of `{"const": "A"}` / `{"enum": ["A"]}` (a documented unit variant).
fn string_constants(schema: &Value) -> Option<Vec<Value>> {
    let obj = schema.as_object()?;
    if obj.get("type").is_some_and(|t| t != "string") {
        return None;
    }
    let values = match (obj.get("const"), obj.get("enum")) {
        (Some(c), _) => vec![c.clone()],
        (None, Some(Value::Array(e))) => e.clone(),
        _ => return None,
    };
    values.iter().all(Value::is_string).then_some(values)
}

fn is_decimal(obj: &Map<String, Value>) -> bool {
    obj.get("format").and_then(Value::as_str) == Some(crate::types::FORMAT_DECIMAL)
        || matches!(
            obj.get("pattern").and_then(Value::as_str),
            Some(crate::types::DECIMAL_PATTERN | crate::types::RUST_DECIMAL_IN_PATTERN)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(schema: Value, defs: Value) -> (Result<Value, String>, BTreeMap<String, Value>) {
        let defs = defs.as_object().cloned().unwrap_or_default();
        let mut components = Components::default();
        let r = Rewriter::new(&defs, &mut components, "x")
            .rewrite(&schema)
            .map_err(|p| format!("{}: {}", p.path, p.reason));
        (r, components.schemas)
    }

    #[test]
    fn options_become_nullable_and_refs_components() {
        let defs = json!({"P": {"type": "object", "properties": {"a": {"type": ["integer", "null"], "format": "int32"}}}});
        let (r, comps) = rewrite(
            json!({"type": "object", "properties": {
                "p": {"$ref": "#/$defs/P"},
                "q": {"anyOf": [{"$ref": "#/$defs/P"}, {"type": "null"}]}}}),
            defs,
        );
        let r = r.unwrap();
        assert_eq!(
            r["properties"]["p"],
            json!({"$ref": "#/components/schemas/P"})
        );
        let p = json!({"type": "object", "properties": {"a": {"type": "integer", "format": "int32", "nullable": true}}});
        assert_eq!(comps["P"], p);
        let mut q = p.clone();
        q["nullable"] = json!(true);
        assert_eq!(r["properties"]["q"], q);
    }

    #[test]
    fn unit_enums_become_string_enums() {
        let (r, _) = rewrite(
            json!({"type": "string", "enum": ["low", "high"]}),
            json!({}),
        );
        assert_eq!(
            r.unwrap(),
            json!({"type": "string", "enum": ["low", "high"]})
        );
        let (r, _) = rewrite(
            json!({"oneOf": [{"type": "string", "const": "A", "description": "a"}, {"type": "string", "enum": ["B"]}, {"type": "null"}]}),
            json!({}),
        );
        assert_eq!(
            r.unwrap(),
            json!({"type": "string", "enum": ["A", "B", null], "nullable": true})
        );
    }

    #[test]
    fn data_enums_and_multi_types_fail_with_the_path() {
        let (r, _) = rewrite(
            json!({"type": "object", "properties": {"e": {"oneOf": [{"type": "object"}, {"type": "string", "const": "B"}]}}}),
            json!({}),
        );
        let e = r.unwrap_err();
        assert!(e.starts_with("x.e: an enum with data"), "{e}");
        let (r, _) = rewrite(json!({"type": ["string", "integer"]}), json!({}));
        assert!(
            r.unwrap_err()
                .contains("several JSON types (string, integer)")
        );
    }

    #[test]
    fn names_clash_only_for_different_shapes() {
        let mut c = Components::default();
        assert_eq!(c.add("A<B>", json!({"type": "string"})), "A_B_");
        assert_eq!(c.add("A<B>", json!({"type": "string"})), "A_B_");
        assert_eq!(c.add("A<B>", json!({"type": "integer"})), "A_B__2");
    }

    /// A hand-made `FunctionDef` (what `#[compute_function]` generates) whose input is a tuple.
    mod pairs {
        use crate::functions::{FunctionDef, JobFuture, JobInput};
        use crate::schema::build::{FunctionSpec, InputSpec, function_schema, schema_of};
        use crate::schema::{FunctionSchema, SchemaError};

        #[derive(serde::Deserialize, schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Input {
            p: (i32, i32),
        }

        static SPEC: FunctionSpec = FunctionSpec {
            name: "pairs",
            rust_path: "tests::pairs",
            inputs: &[InputSpec {
                name: "p",
                rust_type: "(i32, i32)",
            }],
            output_type: "i64",
            streaming: false,
            description: None,
            edits: None,
        };

        fn schema() -> Result<FunctionSchema, SchemaError> {
            function_schema::<Input>(&SPEC, schema_of::<i64>)
        }

        fn call(_: crate::Context, _: JobInput) -> JobFuture {
            Box::pin(async { Ok(crate::functions::Output::Json(b"0".to_vec())) })
        }

        pub(super) static DEF: FunctionDef = FunctionDef {
            name: "pairs",
            module_path: "tests",
            rust_name: "pairs",
            file: file!(),
            line: line!(),
            streaming: false,
            schema,
            call,
        };
    }

    #[test]
    fn an_inexpressible_type_fails_naming_the_function_and_the_type() {
        let registry = Registry::builder().function(&pairs::DEF).build().unwrap();
        let e = document(&registry, 8080).unwrap_err().to_string();
        assert!(
            e.contains("compute function `pairs`") && e.contains("input `p` of type `(i32, i32)`"),
            "{e}"
        );
        // What the Foundry schema accepts but OpenAPI 3.0 could not write fails the same way.
        let captured = JsonSchemas {
            spec: crate::schema::build::FunctionSpec {
                name: "mixed",
                rust_path: "tests::mixed",
                inputs: &[crate::schema::build::InputSpec {
                    name: "v",
                    rust_type: "Either",
                }],
                output_type: "i64",
                streaming: false,
                description: None,
                edits: None,
            },
            input_root: json!({"type": "object", "properties": {"v": {"type": ["string", "integer"]}}}),
            output: json!({"type": "integer", "format": "int64"}),
            output_defs: Map::new(),
        };
        let e = operation(&captured, None, &mut Components::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "compute function `mixed` (tests::mixed): input `v` of type `Either`, at `v`: it \
             accepts several JSON types (string, integer), which Foundry's OpenAPI import refuses \
             (OpenAPI server mode)"
        );
    }

    #[test]
    fn narrow_integers_keep_their_range() {
        let (r, _) = rewrite(
            json!({"type": "integer", "format": "uint8", "minimum": 0}),
            json!({}),
        );
        assert_eq!(
            r.unwrap(),
            json!({"type": "integer", "format": "int32", "minimum": 0, "maximum": 255})
        );
    }
}
