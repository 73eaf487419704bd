// Malformed `edits` / `ontology_metadata` arguments: every problem is reported.
use cmod_runtime::{OntologyEdits, compute_function};

#[compute_function(edits = [])]
fn empty() -> OntologyEdits {
    OntologyEdits::new()
}

#[compute_function(edits = "Employee")]
fn not_a_list() -> OntologyEdits {
    OntologyEdits::new()
}

#[compute_function(edits = ["Employee", 1, "Employee", "Two words"])]
fn bad_items() -> OntologyEdits {
    OntologyEdits::new()
}

#[compute_function(ontology_metadata = "../edits/ontology_metadata_config.json")]
fn metadata_without_edits() -> i64 {
    1
}

#[compute_function(ontology_metadata = 1, edits)]
fn no_values() -> i64 {
    1
}

fn main() {}
