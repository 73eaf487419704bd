//! Foundry's function-schema type system (PROTOCOL §4) and the mapping from Rust types.
//!
//! OWNER: the `#[compute_function]` work (issue 3) fills this in. The types below are the
//! interface the registry and the job loop rely on.

use serde::Serialize;

/// One function's schema: one element of the JSON array posted to `POST_SCHEMA_URI`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionSchema {
    /// The wire name.
    pub function_name: String,
    /// The function's inputs.
    pub inputs: Vec<serde_json::Value>,
    /// The function's output.
    pub output: serde_json::Value,
    /// Always `null` (no ontology edits).
    pub ontology_provenance: Option<serde_json::Value>,
}

/// A Rust type that Foundry's type system cannot represent, or a schema that failed to build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SchemaError {
    message: String,
}

impl SchemaError {
    /// The schemas could not be serialized.
    pub fn serialize(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}
