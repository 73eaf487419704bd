//! Builds a [`FunctionSchema`] from what `#[compute_function]` generates: a [`FunctionSpec`],
//! the hidden input struct (one field per input) and the output type.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value};

use super::convert::{Converter, Problem};
use super::{DataType, FunctionInput, FunctionOutput, FunctionSchema, Position, SchemaError};
use crate::ontology::EditsSpec;

/// What the macro knows about a function, for its schema and for error messages.
#[derive(Debug)]
pub struct FunctionSpec {
    /// The wire name.
    pub name: &'static str,
    /// `module::path::rust_name`, for messages.
    pub rust_path: &'static str,
    /// The inputs, in parameter order.
    pub inputs: &'static [InputSpec],
    /// The output type as written (the item type for streaming functions).
    pub output_type: &'static str,
    /// Whether the output is streamed (registered as `list<item>`).
    pub streaming: bool,
    /// The function's doc comment.
    pub description: Option<&'static str>,
    /// `#[compute_function(edits = [...])]`: the output is ontology edits.
    pub edits: Option<&'static EditsSpec>,
}

/// One input: its wire name and its Rust type as written.
#[derive(Debug)]
pub struct InputSpec {
    /// The wire name (a field of the input struct).
    pub name: &'static str,
    /// The parameter's type as written.
    pub rust_type: &'static str,
}

/// The schema of `T` in `generator`: a `$ref` for named types, inline otherwise. The generated
/// code passes `schema_of::<Output>` to [`function_schema`].
pub fn schema_of<T: ?Sized + JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// Builds the Foundry schema of a function whose inputs are the fields of `I` (named by
/// `spec.inputs`) and whose output (or streamed item) schema is produced by `output`.
pub fn function_schema<I: JsonSchema>(
    spec: &FunctionSpec,
    output: fn(&mut SchemaGenerator) -> Schema,
) -> Result<FunctionSchema, SchemaError> {
    // Inputs are read, so they follow serde's deserialization rules (`default`, `Option`).
    let root = SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<I>()
        .to_value();
    let empty = Map::new();
    let defs = root
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let properties = root.get("properties").and_then(Value::as_object);
    let required: Vec<&str> = root
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();

    let mut inputs = Vec::with_capacity(spec.inputs.len());
    for input in spec.inputs {
        let position = || Position::Input(input.name.to_owned());
        let unsupported = |p: Problem| {
            SchemaError::unsupported(spec, position(), input.rust_type, p.path, p.reason)
        };
        let schema = properties.and_then(|p| p.get(input.name)).ok_or_else(|| {
            unsupported(Problem {
                path: String::new(),
                reason: "the input is missing from the generated input schema (a cmod bug; \
                         please report it)"
                    .to_owned(),
            })
        })?;
        let data_type = Converter::new(defs, input.name)
            .convert(schema)
            .map_err(unsupported)?;
        inputs.push(FunctionInput {
            name: input.name.to_owned(),
            required: required.contains(&input.name),
            data_type,
        });
    }

    // Outputs are written, so they follow serde's serialization rules (`skip_serializing_if`).
    let mut generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let out = output(&mut generator).to_value();
    let unsupported = |p: Problem| {
        SchemaError::unsupported(spec, Position::Output, spec.output_type, p.path, p.reason)
    };
    let mut converter = Converter::new(generator.definitions(), "output");
    let mut ontology_provenance = None;
    let data_type = if let Some(edits) = spec.edits {
        // `OntologyEdits` is a list of edits: declared as the Python SDK declares
        // `list[OntologyEdit]` (docs/protocol.md §4.6).
        ontology_provenance = Some(edits.provenance().map_err(|reason| {
            unsupported(Problem {
                path: String::new(),
                reason,
            })
        })?);
        DataType::List(Box::new(DataType::OntologyEdit))
    } else if spec.streaming {
        DataType::List(Box::new(converter.convert(&out).map_err(unsupported)?))
    } else if is_unit(&out) {
        // `()` (also `Result<(), E>`): posted as `null`, declared as the Python SDK declares
        // functions without a return annotation.
        DataType::String
    } else {
        converter.convert(&out).map_err(unsupported)?
    };

    capture::offer(spec, &root, &out, generator.definitions());
    Ok(FunctionSchema {
        function_name: spec.name.to_owned(),
        inputs,
        output: FunctionOutput {
            data_type,
            description: spec
                .description
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
        },
        ontology_provenance,
    })
}

/// `{"type": "null"}`: the schema of `()` and unit structs.
fn is_unit(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// The JSON Schemas a [`FunctionSchema`] is built from, kept for the OpenAPI document of server
/// mode (`server/openapi.rs`). `FunctionDef::schema` is a plain `fn` generated by the macro, so
/// instead of a second generated entry point, [`capture::json_schemas`] arms a thread-local slot
/// around one call of it and [`function_schema`] fills the slot on success. Nothing is kept when
/// no capture is armed (the functions-mode path).
pub(crate) mod capture {
    use std::cell::RefCell;

    use serde_json::{Map, Value};

    use super::{FunctionSchema, FunctionSpec, SchemaError};

    /// One function's schemas as schemars generated them (draft 2020-12).
    #[derive(Debug)]
    pub(crate) struct JsonSchemas {
        /// A copy of the macro's spec (names and Rust types, for error messages).
        pub(crate) spec: FunctionSpec,
        /// The input struct's root schema (deserialization rules), with its `$defs`.
        pub(crate) input_root: Value,
        /// The output's (or streamed item's) schema (serialization rules).
        pub(crate) output: Value,
        /// The definitions the output schema refers to.
        pub(crate) output_defs: Map<String, Value>,
    }

    thread_local! {
        static SLOT: RefCell<Option<Option<JsonSchemas>>> = const { RefCell::new(None) };
    }

    /// Calls `schema` (a `FunctionDef::schema`) and returns its result with the JSON Schemas it
    /// was built from (`None` if the function's schema was not built by [`super::function_schema`]).
    pub(crate) fn json_schemas(
        schema: fn() -> Result<FunctionSchema, SchemaError>,
    ) -> Result<(FunctionSchema, Option<JsonSchemas>), SchemaError> {
        SLOT.with(|s| *s.borrow_mut() = Some(None));
        let built = schema();
        let captured = SLOT.with(|s| s.borrow_mut().take()).flatten();
        built.map(|schema| (schema, captured))
    }

    /// Keeps the schemas if a capture is armed on this thread.
    pub(super) fn offer(
        spec: &FunctionSpec,
        input_root: &Value,
        output: &Value,
        output_defs: &Map<String, Value>,
    ) {
        SLOT.with(|s| {
            let mut slot = s.borrow_mut();
            if let Some(empty @ None) = slot.as_mut() {
                *empty = Some(JsonSchemas {
                    spec: FunctionSpec {
                        name: spec.name,
                        rust_path: spec.rust_path,
                        inputs: spec.inputs,
                        output_type: spec.output_type,
                        streaming: spec.streaming,
                        description: spec.description,
                        edits: spec.edits,
                    },
                    input_root: input_root.clone(),
                    output: output.clone(),
                    output_defs: output_defs.clone(),
                });
            }
        });
    }
}
