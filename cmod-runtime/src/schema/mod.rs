//! Foundry's function-schema type system (docs/protocol.md §4): what the module posts to
//! `POST_SCHEMA_URI` and prints with `--print-schemas`.
//!
//! A [`FunctionSchema`] is built for every `#[compute_function]` from the
//! [`schemars::JsonSchema`] of its parameters and of its output; the Rust → Foundry mapping
//! table is in [`crate::types`]. Types Foundry cannot represent produce a [`SchemaError`] that
//! names the function, the input (or the output), the Rust type and the path inside it.
//!
//! The JSON shapes are exactly the ones the official SDKs post:
//!
//! ```json
//! {"functionName": "add",
//!  "inputs": [{"name": "x", "required": true, "constraints": [],
//!              "dataType": {"type": "long", "long": {}}}],
//!  "output": {"type": "single", "single": {"dataType": {"type": "long", "long": {}}}},
//!  "ontologyProvenance": null}
//! ```
//!
//! Two things cmod adds, both optional fields of Foundry's schema that the Python SDK leaves
//! out: structs carry `fieldMetadata` (`required` and, from field doc comments,
//! `documentation`), and the function's doc comment becomes the output's `description`.

use std::collections::BTreeMap;
use std::fmt;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

pub(crate) mod build;
pub(crate) mod convert;

use build::FunctionSpec;

/// One function's schema: one element of the JSON array posted to `POST_SCHEMA_URI`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionSchema {
    /// The wire name (`functionName`, dispatched on as `queryType`).
    pub function_name: String,
    /// The function's inputs: the fields of the job's `query` object, in parameter order.
    pub inputs: Vec<FunctionInput>,
    /// The function's output.
    pub output: FunctionOutput,
    /// `null`, except for functions that return ontology edits:
    /// `{"editedObjects": {typeId: {}}, "editedLinks": {}}` with the object types they declare
    /// (`#[compute_function(edits = [...])]`).
    pub ontology_provenance: Option<serde_json::Value>,
}

/// One input of a function (`FunctionInputType`). Serialized with `"constraints": []`, as every
/// official SDK does.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionInput {
    /// The input's name: the key in the job's `query` object.
    pub name: String,
    /// Whether the query must contain it (`false` for `Option<T>` parameters).
    pub required: bool,
    /// Its type.
    pub data_type: DataType,
}

impl Serialize for FunctionInput {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("FunctionInput", 4)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("required", &self.required)?;
        s.serialize_field("constraints", &[(); 0])?;
        s.serialize_field("dataType", &self.data_type)?;
        s.end()
    }
}

/// A function's output (`FunctionOutputType`, always its `single` variant):
/// `{"type": "single", "single": {"dataType": …, "description"?: …}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionOutput {
    /// The type of the result; `list<T>` for streaming functions.
    pub data_type: DataType,
    /// The function's doc comment, if any.
    pub description: Option<String>,
}

impl Serialize for FunctionOutput {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Single<'a> {
            data_type: &'a DataType,
            #[serde(skip_serializing_if = "Option::is_none")]
            description: Option<&'a str>,
        }
        let mut m = serializer.serialize_map(Some(2))?;
        m.serialize_entry("type", "single")?;
        m.serialize_entry(
            "single",
            &Single {
                data_type: &self.data_type,
                description: self.description.as_deref(),
            },
        )?;
        m.end()
    }
}

/// Foundry's `DataType` union (docs/protocol.md §4.3), serialized as a Conjure union:
/// `{"type": "<variant>", "<variant>": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataType {
    /// `boolean`.
    Boolean,
    /// `byte`: 8-bit signed integer.
    Byte,
    /// `short`: 16-bit signed integer.
    Short,
    /// `integer`: 32-bit signed integer.
    Integer,
    /// `long`: 64-bit signed integer.
    Long,
    /// `float`: 32-bit float.
    Float,
    /// `double`: 64-bit float.
    Double,
    /// `decimal` (sent as `{}`: no precision or scale).
    Decimal,
    /// `string`.
    String,
    /// `binary`: bytes, base64 on the wire.
    Binary,
    /// `date`: `YYYY-MM-DD`.
    Date,
    /// `timestamp`: an instant.
    Timestamp,
    /// `list<T>`: `{"elementsType": T}`.
    List(Box<DataType>),
    /// `set<T>`: `{"elementsType": T}`.
    Set(Box<DataType>),
    /// `map<K, V>`: `{"keysType": K, "valuesType": V}`.
    Map {
        /// The key type.
        keys: Box<DataType>,
        /// The value type.
        values: Box<DataType>,
    },
    /// `optionalType<T>`: `{"wrappedType": T}`.
    Optional(Box<DataType>),
    /// `anonymousCustomType`: a struct.
    AnonymousCustomType(CustomType),
    /// `ontologyEdit` (output only): one ontology edit. Functions returning
    /// [`OntologyEdits`](crate::OntologyEdits) declare `list<ontologyEdit>`.
    OntologyEdit,
}

impl DataType {
    /// The Conjure variant name (`"integer"`, `"optionalType"`, …).
    pub fn variant_name(&self) -> &'static str {
        match self {
            DataType::Boolean => "boolean",
            DataType::Byte => "byte",
            DataType::Short => "short",
            DataType::Integer => "integer",
            DataType::Long => "long",
            DataType::Float => "float",
            DataType::Double => "double",
            DataType::Decimal => "decimal",
            DataType::String => "string",
            DataType::Binary => "binary",
            DataType::Date => "date",
            DataType::Timestamp => "timestamp",
            DataType::List(_) => "list",
            DataType::Set(_) => "set",
            DataType::Map { .. } => "map",
            DataType::Optional(_) => "optionalType",
            DataType::AnonymousCustomType(_) => "anonymousCustomType",
            DataType::OntologyEdit => "ontologyEdit",
        }
    }
}

impl Serialize for DataType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Empty {}
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Elements<'a> {
            elements_type: &'a DataType,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct KeysValues<'a> {
            keys_type: &'a DataType,
            values_type: &'a DataType,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wrapped<'a> {
            wrapped_type: &'a DataType,
        }

        let name = self.variant_name();
        let mut m = serializer.serialize_map(Some(2))?;
        m.serialize_entry("type", name)?;
        match self {
            DataType::List(e) | DataType::Set(e) => {
                m.serialize_entry(name, &Elements { elements_type: e })?;
            }
            DataType::Map { keys, values } => m.serialize_entry(
                name,
                &KeysValues {
                    keys_type: keys,
                    values_type: values,
                },
            )?,
            DataType::Optional(w) => m.serialize_entry(name, &Wrapped { wrapped_type: w })?,
            DataType::AnonymousCustomType(c) => m.serialize_entry(name, c)?,
            _ => m.serialize_entry(name, &Empty {})?,
        }
        m.end()
    }
}

/// The payload of `anonymousCustomType`: a struct's fields, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomType {
    /// Each field's type.
    pub fields: BTreeMap<String, DataType>,
    /// Each field's metadata (every field has an entry).
    pub field_metadata: BTreeMap<String, FieldMetadata>,
}

/// What Foundry knows about one struct field besides its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldMetadata {
    /// Whether the field must be present.
    pub required: bool,
    /// The field's doc comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
}

/// A function whose types Foundry's type system cannot represent, or schemas that could not be
/// encoded.
///
/// The message names the function, where the problem is (an input, or the output), the Rust
/// type as written in the signature, the path inside it, and what to do, e.g.:
///
/// ```text
/// compute function `pairs` (crate::pairs): input `p` of type `Pairs`, at `p.items[item]`:
/// a tuple has no Foundry type; use a struct with named fields
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SchemaError(Box<SchemaErrorInner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct SchemaErrorInner {
    function: String,
    location: String,
    position: Option<Position>,
    rust_type: String,
    path: String,
    reason: String,
}

/// Where in a function a [`SchemaError`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Position {
    /// The input with this wire name.
    Input(String),
    /// The output (for streaming functions: each item).
    Output,
}

impl SchemaError {
    /// The schemas could not be serialized (not expected to happen).
    pub fn serialize(message: impl Into<String>) -> Self {
        Self(Box::new(SchemaErrorInner {
            function: String::new(),
            location: String::new(),
            position: None,
            rust_type: String::new(),
            path: String::new(),
            reason: message.into(),
        }))
    }

    pub(crate) fn unsupported(
        spec: &FunctionSpec,
        position: Position,
        rust_type: &str,
        path: String,
        reason: String,
    ) -> Self {
        Self(Box::new(SchemaErrorInner {
            function: spec.name.to_owned(),
            location: spec.rust_path.to_owned(),
            position: Some(position),
            rust_type: rust_type.to_owned(),
            path,
            reason,
        }))
    }

    /// The wire name of the function (empty for serialization errors).
    pub fn function(&self) -> &str {
        &self.0.function
    }

    /// Which input, or the output; `None` for serialization errors.
    pub fn position(&self) -> Option<&Position> {
        self.0.position.as_ref()
    }

    /// The Rust type of that input or output, as written in the signature.
    pub fn rust_type(&self) -> &str {
        &self.0.rust_type
    }

    /// The path of the unsupported part inside the input or output: `p.inner.scores[value]`
    /// (fields by name, `[item]` for list/set elements, `[key]`/`[value]` for maps); for the
    /// output it starts with `output`.
    pub fn path(&self) -> &str {
        &self.0.path
    }

    /// Why it is unsupported and what to do.
    pub fn reason(&self) -> &str {
        &self.0.reason
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.0;
        let Some(position) = &e.position else {
            return write!(f, "the function schemas could not be encoded: {}", e.reason);
        };
        write!(f, "compute function `{}` ({}): ", e.function, e.location)?;
        match position {
            Position::Input(name) => write!(f, "input `{name}`")?,
            Position::Output => f.write_str("the output")?,
        }
        write!(f, " of type `{}`", e.rust_type)?;
        if !e.path.is_empty() {
            write!(f, ", at `{}`", e.path)?;
        }
        write!(f, ": {}", e.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_types_serialize_as_conjure_unions() {
        let t = DataType::Map {
            keys: Box::new(DataType::String),
            values: Box::new(DataType::List(Box::new(DataType::Optional(Box::new(
                DataType::Integer,
            ))))),
        };
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"type": "map", "map": {
                "keysType": {"type": "string", "string": {}},
                "valuesType": {"type": "list", "list": {"elementsType":
                    {"type": "optionalType", "optionalType": {"wrappedType": {"type": "integer", "integer": {}}}}}}}})
        );
    }

    #[test]
    fn function_schema_has_the_posted_shape() {
        let mut fields = BTreeMap::new();
        fields.insert("a".to_owned(), DataType::Date);
        let mut field_metadata = BTreeMap::new();
        field_metadata.insert(
            "a".to_owned(),
            FieldMetadata {
                required: false,
                documentation: Some("doc".into()),
            },
        );
        let s = FunctionSchema {
            function_name: "f".into(),
            inputs: vec![FunctionInput {
                name: "x".into(),
                required: true,
                data_type: DataType::AnonymousCustomType(CustomType {
                    fields,
                    field_metadata,
                }),
            }],
            output: FunctionOutput {
                data_type: DataType::Binary,
                description: None,
            },
            ontology_provenance: None,
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({
                "functionName": "f",
                "inputs": [{"name": "x", "required": true, "constraints": [], "dataType": {
                    "type": "anonymousCustomType", "anonymousCustomType": {
                        "fields": {"a": {"type": "date", "date": {}}},
                        "fieldMetadata": {"a": {"required": false, "documentation": "doc"}}}}}],
                "output": {"type": "single", "single": {"dataType": {"type": "binary", "binary": {}}}},
                "ontologyProvenance": null
            })
        );
    }
}
