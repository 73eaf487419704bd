//! Ontology edits as a function's output (docs/protocol.md §4.6): [`OntologyEdits`], the
//! metadata file that maps API names to ids ([`OntologyMetadata`]), and what
//! `#[compute_function(edits = [...])]` generates code against ([`EditsSpec`], through
//! `__private`).

mod edits;
mod metadata;

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

pub use edits::{ObjectEdit, OntologyEdits, OntologyEditsError};
pub use metadata::{ObjectTypeMetadata, OntologyMetadata, OntologyMetadataError};

use crate::functions::outcome::{ErrorKind, JobError, Output};

/// What `#[compute_function(edits = [...])]` knows about a function's edits: the object types
/// it declares and its metadata file (embedded with `include_str!`, checked by the macro).
#[derive(Debug)]
pub struct EditsSpec {
    /// The function's wire name.
    pub function: &'static str,
    /// The declared object types (API names).
    pub object_types: &'static [&'static str],
    /// The metadata file, as written (for messages).
    pub metadata_file: &'static str,
    /// The metadata file's text.
    pub metadata_text: &'static str,
    parsed: OnceLock<Result<OntologyMetadata, String>>,
}

impl EditsSpec {
    /// The spec (generated code).
    pub const fn new(
        function: &'static str,
        object_types: &'static [&'static str],
        metadata_file: &'static str,
        metadata_text: &'static str,
    ) -> Self {
        Self {
            function,
            object_types,
            metadata_file,
            metadata_text,
            parsed: OnceLock::new(),
        }
    }

    /// The parsed metadata (parsed once).
    pub fn metadata(&self) -> Result<&OntologyMetadata, String> {
        self.parsed
            .get_or_init(|| {
                OntologyMetadata::parse(self.metadata_text, self.metadata_file)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// `ontologyProvenance`: `{"editedObjects": {typeId: {}}, "editedLinks": {}}` for the
    /// declared object types.
    pub fn provenance(&self) -> Result<Value, String> {
        let metadata = self.metadata()?;
        let mut edited = Map::new();
        for name in self.object_types {
            let t = metadata.object_type(name).ok_or_else(|| {
                format!(
                    "compute function `{}` declares edits of object type `{name}`, which is not \
                     in {}",
                    self.function, self.metadata_file
                )
            })?;
            edited.insert(t.type_id.clone(), json!({}));
        }
        Ok(json!({"editedObjects": edited, "editedLinks": {}}))
    }

    /// The wire form of `edits`, or a `SerializationError` naming the function and what is
    /// wrong (an object type the function does not declare, an unknown property or link).
    pub fn encode(&self, edits: &OntologyEdits) -> Result<Output, JobError> {
        let fail = |message: String| {
            JobError::new(
                ErrorKind::SerializationError,
                format!(
                    "the ontology edits of compute function `{}` could not be encoded: {message}",
                    self.function
                ),
            )
        };
        for object_type in edits.object_types() {
            if !self.object_types.contains(&object_type) {
                return Err(fail(format!(
                    "they edit object type `{object_type}`, which the function does not declare \
                     (it declares {}); add it to `#[compute_function(edits = [...])]`",
                    self.object_types
                        .iter()
                        .map(|t| format!("`{t}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let metadata = self.metadata().map_err(fail)?;
        let wire = edits.to_wire(metadata).map_err(|e| fail(e.to_string()))?;
        serde_json::to_vec(&wire)
            .map(Output::Json)
            .map_err(|e| fail(e.to_string()))
    }
}

/// The output of a function declared with `#[compute_function(edits = [...])]`.
#[diagnostic::on_unimplemented(
    message = "a `#[compute_function(edits = [...])]` must return `cmod_runtime::OntologyEdits`, not `{Self}`",
    label = "not `cmod_runtime::OntologyEdits`",
    note = "return `OntologyEdits` or `Result<OntologyEdits, E>`"
)]
pub trait EditsOutput {
    /// The edits.
    fn edits(&self) -> &OntologyEdits;
}

impl EditsOutput for OntologyEdits {
    fn edits(&self) -> &OntologyEdits {
        self
    }
}

/// Encodes a function's edits (generated code).
pub fn encode_edits<T: EditsOutput>(value: &T, spec: &EditsSpec) -> Result<Output, JobError> {
    spec.encode(value.edits())
}
