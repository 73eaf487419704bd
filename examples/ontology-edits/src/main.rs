//! Functions that return ontology edits, for actions backed by a compute module.
//!
//! Each function declares the object types it edits (`edits = [...]`): Foundry receives them
//! as the function's `ontologyProvenance`, and the edits are checked against them before they
//! are sent. Object types, properties and links are named by their API names; the ontology
//! metadata file next to this crate (`ontology_metadata_config.json`, written once by the
//! `ontology-metadata` program in `src/bin/`) maps them to the ids Foundry's wire format uses,
//! and is read when the module is compiled.
//!
//! ```text
//! cargo run -p ontology-edits -- --local --invoke hire '{"employee_id": 7, "name": "Ada", "office_id": "LON"}'
//! cargo run -p ontology-edits -- --print-schemas
//! ```

use cmod_runtime::{OntologyEdits, compute_function};

/// Why a relocation is refused.
#[derive(Debug, thiserror::Error)]
pub enum RelocateError {
    /// The employee would move to the office they are in.
    #[error("employee {0} is already in office `{1}`")]
    SameOffice(i64, String),
}

/// Hires an employee: adds the `Employee` and links it to its `Office`.
#[compute_function(
    edits = ["Employee", "Office"],
    ontology_metadata = "../ontology_metadata_config.json"
)]
fn hire(employee_id: i64, name: String, title: Option<String>, office_id: String) -> OntologyEdits {
    let mut edits = OntologyEdits::new();
    let employee = edits
        .add_object("Employee", employee_id)
        .set("fullName", name);
    if let Some(title) = title {
        employee.set("title", title);
    }
    edits.add_link("offices", ("Employee", employee_id), ("Office", office_id));
    edits
}

/// Moves an employee to another office, with a new title.
#[compute_function(
    edits = ["Employee", "Office"],
    ontology_metadata = "../ontology_metadata_config.json"
)]
fn relocate(
    employee_id: i64,
    from_office: String,
    to_office: String,
    title: String,
) -> Result<OntologyEdits, RelocateError> {
    if from_office == to_office {
        return Err(RelocateError::SameOffice(employee_id, to_office));
    }
    let mut edits = OntologyEdits::new();
    edits
        .modify_object("Employee", employee_id)
        .set("title", title);
    edits
        .remove_link(
            "offices",
            ("Employee", employee_id),
            ("Office", from_office),
        )
        .add_link("offices", ("Employee", employee_id), ("Office", to_office));
    Ok(edits)
}

/// Removes an employee.
#[compute_function(
    edits = ["Employee"],
    ontology_metadata = "../ontology_metadata_config.json"
)]
async fn dismiss(employee_id: i64) -> OntologyEdits {
    let mut edits = OntologyEdits::new();
    edits.delete_object("Employee", employee_id);
    edits
}

/// Not every function edits the ontology.
#[compute_function]
fn headcount(employees: Vec<i64>) -> i64 {
    employees.len().try_into().unwrap_or(i64::MAX)
}

#[tokio::main]
async fn main() -> Result<(), cmod_runtime::Error> {
    cmod_runtime::run().await
}
