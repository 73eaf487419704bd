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
