// The metadata file is read at compile time: a declared object type must be in it, and the
// file must exist and hold `objectTypes`.
use cmod_runtime::{OntologyEdits, compute_function};

#[compute_function(
    edits = ["Employee", "Projcet", "Office"],
    ontology_metadata = "../edits/ontology_metadata_config.json"
)]
fn unknown_type() -> OntologyEdits {
    OntologyEdits::new()
}

#[compute_function(edits = ["Employee"], ontology_metadata = "../edits/missing.json")]
fn missing_file() -> OntologyEdits {
    OntologyEdits::new()
}

#[compute_function(edits = ["Employee"], ontology_metadata = "../edits/python_metadata.json")]
fn python_file() -> OntologyEdits {
    OntologyEdits::new()
}

// Without `ontology_metadata`, the file is `ontology_metadata_config.json` in the crate root.
#[compute_function(edits = ["Employee"])]
fn default_file() -> OntologyEdits {
    OntologyEdits::new()
}

fn main() {}
