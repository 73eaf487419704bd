// Ontology edits are only ever the whole output of a function.
use cmod_runtime::{OntologyEdits, compute_function};

// `edits` on a function that returns something else.
#[compute_function(edits = ["Employee"], ontology_metadata = "../edits/ontology_metadata_config.json")]
fn count() -> i64 {
    1
}

// Edits inside another output.
#[compute_function(edits = ["Employee"], ontology_metadata = "../edits/ontology_metadata_config.json")]
fn batches() -> Vec<OntologyEdits> {
    Vec::new()
}

#[compute_function]
fn maybe() -> Result<Option<OntologyEdits>, String> {
    Ok(None)
}

// Streamed edits.
#[compute_function(edits = ["Employee"], ontology_metadata = "../edits/ontology_metadata_config.json")]
fn streamed() -> impl Iterator<Item = OntologyEdits> {
    std::iter::empty()
}

// A struct holding edits cannot be an output: `OntologyEdits` is neither `Serialize` nor
// `JsonSchema`.
#[derive(serde::Serialize, schemars::JsonSchema)]
struct Report {
    edits: OntologyEdits,
}

fn main() {}
