//! The ontology metadata file: which ids Foundry's wire format uses for the object types,
//! properties and links a function edits (docs/protocol.md §4.6), and how it is generated from
//! the ontology-metadata service.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::foundry::{FoundryClient, FoundryError};

/// The ids of the object types (and their properties and links) a module edits, by API name:
/// the contents of the ontology metadata file (`ontology_metadata_config.json`).
///
/// ```json
/// {"apiNameToTypeId": {"Employee": "employee"},
///  "objectTypes": {"Employee": {
///     "rid": "ri.ontology.main.object-type.…", "typeId": "employee",
///     "primaryKey": "employeeId",
///     "properties": {"employeeId": "employee_id", "fullName": "full_name"},
///     "links": {"manager": "employee-manager"}}}}
/// ```
///
/// `apiNameToTypeId` is the file the Python SDK's `cm_ontology_metadata_config` writes; cmod
/// adds `objectTypes` (primary key, property and link ids), which edits need. Generate it once
/// with [`OntologyMetadata::fetch`] (the `ontology-metadata` program of
/// `examples/ontology-edits`) and commit it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OntologyMetadata {
    /// Object type API name → type id (the Python SDK's file).
    #[serde(default)]
    pub api_name_to_type_id: BTreeMap<String, String>,
    /// Object type API name → its ids.
    #[serde(default)]
    pub object_types: BTreeMap<String, ObjectTypeMetadata>,
}

/// The ids of one object type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectTypeMetadata {
    /// The object type's RID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rid: String,
    /// The object type's id (`typeId` in edits, key of `editedObjects` in provenance).
    pub type_id: String,
    /// The API name of the primary key property.
    pub primary_key: String,
    /// Property API name → property id.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Link API name (seen from this object type) → link type id (`relationId`).
    #[serde(default)]
    pub links: BTreeMap<String, String>,
}

impl ObjectTypeMetadata {
    /// The id of the primary key property (its API name when the file lists no id for it).
    pub fn primary_key_id(&self) -> &str {
        self.properties
            .get(&self.primary_key)
            .map_or(self.primary_key.as_str(), String::as_str)
    }
}

/// Why an ontology metadata file or answer could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OntologyMetadataError {
    /// The file is not the JSON described on [`OntologyMetadata`].
    #[error("ontology metadata file `{file}` is not valid: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong (serde's message; no values).
        message: String,
    },
    /// The ontology-metadata service's answer lacks something edits need.
    #[error("the ontology-metadata service's answer {0}")]
    Answer(String),
    /// The ontology-metadata service could not be called.
    #[error("calling the ontology-metadata service failed: {0}")]
    Request(#[from] FoundryError),
}

/// The ontology-metadata endpoint, under the stack's URL.
const BULK_LOAD_PATH: &str = "/ontology-metadata/api/ontology/ontology/bulkLoadEntities";

impl OntologyMetadata {
    /// Parses the file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, OntologyMetadataError> {
        serde_json::from_str(text).map_err(|e| OntologyMetadataError::Invalid {
            file: file.to_owned(),
            message: e.to_string(),
        })
    }

    /// The object type with this API name.
    pub fn object_type(&self, api_name: &str) -> Option<&ObjectTypeMetadata> {
        self.object_types.get(api_name)
    }

    /// The API names of the object types it knows.
    pub fn object_type_names(&self) -> Vec<&str> {
        self.object_types.keys().map(String::as_str).collect()
    }

    /// The file's text (pretty-printed JSON with a final newline).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The body of the `bulkLoadEntities` request for these RIDs (docs/protocol.md §4.6).
    pub fn bulk_load_request(object_type_rids: &[String], link_type_rids: &[String]) -> Value {
        json!({
            "objectTypes": object_type_rids.iter().map(|rid| json!({
                "identifier": {"type": "objectTypeRid", "objectTypeRid": rid}
            })).collect::<Vec<_>>(),
            "linkTypes": link_type_rids.iter().map(|rid| json!({
                "identifier": {"type": "linkTypeRid", "linkTypeRid": rid}
            })).collect::<Vec<_>>(),
            "loadRedacted": true,
            "includeObjectTypesWithoutSearchableDatasources": true,
            "includeEntityMetadata": false,
        })
    }

    /// Loads the object types and link types with these RIDs from the ontology-metadata service
    /// of `client`'s stack (`POST {stack}/ontology-metadata/api/ontology/ontology/bulkLoadEntities`)
    /// with `client`'s credentials.
    pub async fn fetch(
        client: &FoundryClient,
        object_type_rids: &[String],
        link_type_rids: &[String],
    ) -> Result<Self, OntologyMetadataError> {
        let api = client.api_url().map_err(FoundryError::from)?;
        let stack = api
            .strip_suffix("/api")
            .unwrap_or(api)
            .trim_end_matches('/');
        let answer: Value = client
            .post_json(
                format!("{stack}{BULK_LOAD_PATH}"),
                &Self::bulk_load_request(object_type_rids, link_type_rids),
            )
            .await?;
        Self::from_bulk_load(&answer)
    }

    /// The metadata in a `bulkLoadEntities` answer: `{"objectTypes": [{"objectType": {"rid",
    /// "id", "apiName", "primaryKeys": [propertyRid], "propertyTypes": {rid: {"id", "apiName"}}}}],
    /// "linkTypes": [{"linkType": {"id", "definition": {"type": "manyToMany", "manyToMany":
    /// {"objectTypeRidA", "objectTypeRidB", "objectTypeAToBLinkMetadata": {"apiName"},
    /// "objectTypeBToALinkMetadata": {"apiName"}}}}}]}` (our reading of the Python SDK's
    /// client; only many-to-many links are link edits).
    pub fn from_bulk_load(answer: &Value) -> Result<Self, OntologyMetadataError> {
        let bad = |what: String| OntologyMetadataError::Answer(what);
        let str_at = |v: &Value, ptr: &str, ctx: &str| -> Result<String, OntologyMetadataError> {
            v.pointer(ptr)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("has no string `{ptr}` in {ctx}")))
        };
        let mut metadata = OntologyMetadata::default();
        let mut by_rid: BTreeMap<String, String> = BTreeMap::new();
        let object_types = answer
            .get("objectTypes")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("has no `objectTypes` list".to_owned()))?;
        for (i, entry) in object_types.iter().enumerate() {
            let ctx = format!("objectTypes[{i}]");
            let api_name = str_at(entry, "/objectType/apiName", &ctx)?;
            let ctx = format!("object type `{api_name}`");
            let rid = str_at(entry, "/objectType/rid", &ctx)?;
            let type_id = str_at(entry, "/objectType/id", &ctx)?;
            let pk_rid = str_at(entry, "/objectType/primaryKeys/0", &ctx)?;
            let property_types = entry
                .pointer("/objectType/propertyTypes")
                .and_then(Value::as_object)
                .ok_or_else(|| bad(format!("has no `propertyTypes` in {ctx}")))?;
            let mut properties = BTreeMap::new();
            let mut primary_key = None;
            for (prop_rid, prop) in property_types {
                let name = str_at(prop, "/apiName", &ctx)?;
                let id = str_at(prop, "/id", &ctx)?;
                if *prop_rid == pk_rid {
                    primary_key = Some(name.clone());
                }
                properties.insert(name, id);
            }
            let primary_key = primary_key.ok_or_else(|| {
                bad(format!(
                    "names a primary key of {ctx} that is not one of its properties"
                ))
            })?;
            if metadata.object_types.contains_key(&api_name) {
                return Err(bad(format!(
                    "has two object types with API name `{api_name}`"
                )));
            }
            by_rid.insert(rid.clone(), api_name.clone());
            metadata
                .api_name_to_type_id
                .insert(api_name.clone(), type_id.clone());
            metadata.object_types.insert(
                api_name,
                ObjectTypeMetadata {
                    rid,
                    type_id,
                    primary_key,
                    properties,
                    links: BTreeMap::new(),
                },
            );
        }
        let link_types = answer
            .get("linkTypes")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (i, entry) in link_types.iter().enumerate() {
            let ctx = format!("linkTypes[{i}]");
            let id = str_at(entry, "/linkType/id", &ctx)?;
            let Some(m2m) = entry.pointer("/linkType/definition/manyToMany") else {
                continue;
            };
            for (side, meta) in [
                ("/objectTypeRidA", "/objectTypeAToBLinkMetadata/apiName"),
                ("/objectTypeRidB", "/objectTypeBToALinkMetadata/apiName"),
            ] {
                let (Some(rid), Some(link_name)) = (
                    m2m.pointer(side).and_then(Value::as_str),
                    m2m.pointer(meta).and_then(Value::as_str),
                ) else {
                    continue;
                };
                let Some(t) = by_rid
                    .get(rid)
                    .and_then(|api| metadata.object_types.get_mut(api))
                else {
                    continue;
                };
                t.links.insert(link_name.to_owned(), id.clone());
            }
        }
        Ok(metadata)
    }
}
