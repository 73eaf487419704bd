// Functions returning ontology edits: plain, `Result`, `async`, a path to the type, next to a
// function without edits.
use cmod_runtime::{OntologyEdits, compute_function};

#[compute_function(edits = ["Employee"], ontology_metadata = "../edits/ontology_metadata_config.json")]
fn hire(id: i64, name: String) -> OntologyEdits {
    let mut edits = OntologyEdits::new();
    edits.add_object("Employee", id).set("fullName", name);
    edits
}

#[compute_function(
    edits = ["Employee", "Office"],
    ontology_metadata = "../edits/ontology_metadata_config.json",
    name = "moveEmployee"
)]
async fn relocate(id: i64, office: String) -> Result<cmod_runtime::OntologyEdits, std::io::Error> {
    let mut edits = OntologyEdits::new();
    edits.add_link("offices", ("Employee", id), ("Office", office));
    Ok(edits)
}

#[compute_function]
fn plain(x: i64) -> i64 {
    x
}

fn main() {
    // The functions stay callable.
    assert_eq!(hire(1, "Ada".into()).len(), 1);
    let schemas = cmod_runtime::Registry::from_linked().unwrap().schemas().unwrap();
    let hire = schemas.iter().find(|s| s.function_name == "hire").unwrap();
    assert_eq!(
        hire.ontology_provenance,
        Some(serde_json::json!({"editedObjects": {"employee": {}}, "editedLinks": {}}))
    );
}
