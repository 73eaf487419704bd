// A type that is only named `OntologyEdits` is not cmod's.
use cmod_runtime::compute_function;

#[derive(serde::Serialize, schemars::JsonSchema)]
struct OntologyEdits {
    count: i64,
}

#[compute_function(edits = ["Employee"], ontology_metadata = "../edits/ontology_metadata_config.json")]
fn mine() -> OntologyEdits {
    OntologyEdits { count: 1 }
}

fn main() {}
