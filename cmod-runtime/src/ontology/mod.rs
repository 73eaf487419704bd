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

#[cfg(test)]
mod tests {
    use super::*;

    const METADATA: &str = r#"{
        "apiNameToTypeId": {"Employee": "employee", "Office": "office"},
        "objectTypes": {
            "Employee": {"typeId": "employee", "primaryKey": "employeeId",
                "properties": {"employeeId": "employee_id", "fullName": "full_name"},
                "links": {"offices": "employee-office"}},
            "Office": {"typeId": "office", "primaryKey": "officeId",
                "properties": {"officeId": "office_id"}}
        }
    }"#;

    static SPEC: EditsSpec = EditsSpec::new(
        "hire",
        &["Employee", "Office"],
        "ontology_metadata_config.json",
        METADATA,
    );

    fn message(r: Result<Output, JobError>) -> String {
        match r {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::SerializationError);
                e.message().to_owned()
            }
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn provenance_lists_the_declared_type_ids() {
        assert_eq!(
            SPEC.provenance().unwrap(),
            json!({"editedObjects": {"employee": {}, "office": {}}, "editedLinks": {}})
        );
    }

    #[test]
    fn a_property_set_twice_keeps_the_last_value_and_values_keep_their_json_type() {
        let mut edits = OntologyEdits::new();
        edits
            .add_object("Employee", "E-1")
            .set("fullName", "A")
            .set("fullName", json!({"nested": [1, 2.5, null]}));
        let wire = edits.to_wire(SPEC.metadata().unwrap()).unwrap();
        assert_eq!(
            wire,
            json!([{"type": "addObject", "addObject": {
                "locator": {"typeId": "employee", "primaryKey": {"employee_id": "E-1"}},
                "propertyValues": {"full_name": {"nested": [1, 2.5, null]}}}}])
        );
    }

    #[test]
    fn an_undeclared_object_type_is_refused_naming_the_function_and_the_type() {
        let mut edits = OntologyEdits::new();
        edits.delete_object("Project", 1);
        let m = message(SPEC.encode(&edits));
        assert!(
            m.starts_with("the ontology edits of compute function `hire` could not be encoded"),
            "{m}"
        );
        assert!(
            m.contains("object type `Project`, which the function does not declare"),
            "{m}"
        );
        assert!(m.contains("`Employee`, `Office`"), "{m}");
        // A link's ends count too.
        let mut edits = OntologyEdits::new();
        edits.add_link("offices", ("Employee", 1), ("Project", 2));
        assert!(message(SPEC.encode(&edits)).contains("`Project`"));
    }

    #[test]
    fn unknown_properties_and_links_name_the_object_type() {
        let mut edits = OntologyEdits::new();
        edits.modify_object("Employee", 1).set("salary", 10);
        let m = message(SPEC.encode(&edits));
        assert!(
            m.contains(
                "object type `Employee` has no property `salary` (it has: employeeId, fullName)"
            ),
            "{m}"
        );
        let mut edits = OntologyEdits::new();
        edits.add_link("manager", ("Employee", 1), ("Employee", 2));
        let m = message(SPEC.encode(&edits));
        assert!(
            m.contains("object type `Employee` has no link `manager` (it has: offices)"),
            "{m}"
        );
        let mut edits = OntologyEdits::new();
        edits.remove_link("occupants", ("Office", "LON"), ("Employee", 2));
        assert!(message(SPEC.encode(&edits)).contains("(it has: none)"));
    }

    #[test]
    fn a_value_that_is_not_json_is_reported_by_name() {
        let mut map = std::collections::HashMap::new();
        map.insert((1, 2), 3);
        let mut edits = OntologyEdits::new();
        edits.add_object("Employee", 1).set("fullName", map);
        let m = message(SPEC.encode(&edits));
        assert!(m.contains("the value of `fullName` is not JSON"), "{m}");
    }

    #[test]
    fn bulk_load_answers_become_the_metadata_file() {
        let answer = json!({
            "objectTypes": [{"objectType": {
                "rid": "ri.ot.e", "id": "employee", "apiName": "Employee",
                "primaryKeys": ["ri.p.id"],
                "propertyTypes": {
                    "ri.p.id": {"rid": "ri.p.id", "id": "employee_id", "apiName": "employeeId"},
                    "ri.p.n": {"rid": "ri.p.n", "id": "full_name", "apiName": "fullName"}}}}],
            "linkTypes": [
                {"linkType": {"id": "employee-mentor", "definition": {"type": "manyToMany",
                    "manyToMany": {"objectTypeRidA": "ri.ot.e", "objectTypeRidB": "ri.ot.e",
                        "objectTypeAToBLinkMetadata": {"apiName": "mentees"},
                        "objectTypeBToALinkMetadata": {"apiName": "mentors"}}}}},
                {"linkType": {"id": "one-to-many", "definition": {"type": "oneToMany", "oneToMany": {}}}}]
        });
        let m = OntologyMetadata::from_bulk_load(&answer).unwrap();
        let e = m.object_type("Employee").unwrap();
        assert_eq!(e.type_id, "employee");
        assert_eq!(e.primary_key, "employeeId");
        assert_eq!(e.primary_key_id(), "employee_id");
        assert_eq!(e.links.get("mentees").unwrap(), "employee-mentor");
        assert_eq!(e.links.get("mentors").unwrap(), "employee-mentor");
        assert_eq!(m.api_name_to_type_id.get("Employee").unwrap(), "employee");
        // The file round-trips.
        assert_eq!(OntologyMetadata::parse(&m.to_json(), "f").unwrap(), m);

        let bad = json!({"objectTypes": [{"objectType": {"rid": "r", "id": "i", "apiName": "A",
            "primaryKeys": ["missing"], "propertyTypes": {}}}]});
        let e = OntologyMetadata::from_bulk_load(&bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("object type `A`"), "{e}");
        let e = OntologyMetadata::parse("{\"objectTypes\": 1}", "meta.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("ontology metadata file `meta.json` is not valid"),
            "{e}"
        );
    }

    #[test]
    fn the_request_body_is_the_python_sdks() {
        assert_eq!(
            OntologyMetadata::bulk_load_request(&["ri.o".to_owned()], &["ri.l".to_owned()]),
            json!({
                "objectTypes": [{"identifier": {"type": "objectTypeRid", "objectTypeRid": "ri.o"}}],
                "linkTypes": [{"identifier": {"type": "linkTypeRid", "linkTypeRid": "ri.l"}}],
                "loadRedacted": true,
                "includeObjectTypesWithoutSearchableDatasources": true,
                "includeEntityMetadata": false
            })
        );
    }
}
