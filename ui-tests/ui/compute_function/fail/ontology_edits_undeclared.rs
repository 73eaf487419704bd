// A function returning `OntologyEdits` must declare the object types it edits.
use cmod_runtime::{OntologyEdits, compute_function};

#[compute_function]
fn hire(id: i64) -> OntologyEdits {
    let mut edits = OntologyEdits::new();
    edits.delete_object("Employee", id);
    edits
}

#[compute_function]
fn fire(id: i64) -> Result<OntologyEdits, String> {
    let _ = id;
    Ok(OntologyEdits::new())
}

fn main() {}
