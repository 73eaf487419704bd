//! [`OntologyEdits`]: the value a function returns to make ontology edits, and its wire format
//! (docs/protocol.md §4.6).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::metadata::{ObjectTypeMetadata, OntologyMetadata};

/// Ontology edits, returned by a function declared with
/// `#[compute_function(edits = ["ObjectType", …])]` (directly or as `Ok` of a `Result`): Foundry
/// applies them when the function backs an action.
///
/// Object types, properties and links are named by their **API names**; the function's ontology
/// metadata file maps them to the ids Foundry's wire format uses (see the README, "Ontology
/// edits"). Primary keys and property values are any [`Serialize`] value (strings, numbers,
/// booleans, [`Date`](crate::types::Date), [`Timestamp`](crate::types::Timestamp), …).
///
/// ```
/// use cmod_runtime::OntologyEdits;
///
/// let mut edits = OntologyEdits::new();
/// edits.add_object("Employee", 7).set("fullName", "Ada Lovelace").set("office", "London");
/// edits.modify_object("Employee", 3).set("office", "Paris");
/// edits.delete_object("Employee", 4);
/// edits.add_link("manager", ("Employee", 7), ("Employee", 3));
/// assert_eq!(edits.len(), 4);
/// ```
///
/// It is deliberately neither `Serialize` nor `JsonSchema`: edits are only ever the whole output
/// of a function, never a field of another output, an item of a list or of a stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OntologyEdits {
    edits: Vec<Edit>,
    /// The first value that could not be converted to JSON (reported when the edits are
    /// encoded).
    problem: Option<String>,
}

/// One edit, with API names.
#[derive(Debug, Clone, PartialEq)]
enum Edit {
    AddObject(ObjectChange),
    ModifyObject(ObjectChange),
    DeleteObject(Locator),
    AddLink(LinkChange),
    RemoveLink(LinkChange),
}

#[derive(Debug, Clone, PartialEq)]
struct Locator {
    object_type: String,
    primary_key: Value,
}

#[derive(Debug, Clone, PartialEq)]
struct ObjectChange {
    locator: Locator,
    /// Property API name → value, in the order set (a property set twice keeps the last value).
    properties: Vec<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq)]
struct LinkChange {
    link_type: String,
    source: Locator,
    target: Locator,
}

/// The property values of an object being added or modified: returned by
/// [`OntologyEdits::add_object`] and [`OntologyEdits::modify_object`].
#[derive(Debug)]
pub struct ObjectEdit<'a> {
    edits: &'a mut OntologyEdits,
    index: usize,
}

impl ObjectEdit<'_> {
    /// Sets property `property` (its API name) to `value`.
    pub fn set(self, property: impl Into<String>, value: impl Serialize) -> Self {
        let property = property.into();
        let value = self.edits.value(&property, value);
        if let Some(Edit::AddObject(change) | Edit::ModifyObject(change)) =
            self.edits.edits.get_mut(self.index)
        {
            change.properties.retain(|(name, _)| *name != property);
            change.properties.push((property, value));
        }
        self
    }
}

impl OntologyEdits {
    /// No edits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates an object of type `object_type` (API name) with primary key `primary_key`; set
    /// its properties on the returned [`ObjectEdit`].
    pub fn add_object(
        &mut self,
        object_type: impl Into<String>,
        primary_key: impl Serialize,
    ) -> ObjectEdit<'_> {
        let locator = self.locator(object_type.into(), primary_key);
        self.push_object(Edit::AddObject(ObjectChange {
            locator,
            properties: Vec::new(),
        }))
    }

    /// Changes properties of the existing object of type `object_type` with primary key
    /// `primary_key`; set them on the returned [`ObjectEdit`].
    pub fn modify_object(
        &mut self,
        object_type: impl Into<String>,
        primary_key: impl Serialize,
    ) -> ObjectEdit<'_> {
        let locator = self.locator(object_type.into(), primary_key);
        self.push_object(Edit::ModifyObject(ObjectChange {
            locator,
            properties: Vec::new(),
        }))
    }

    /// Deletes the object of type `object_type` with primary key `primary_key`.
    pub fn delete_object(
        &mut self,
        object_type: impl Into<String>,
        primary_key: impl Serialize,
    ) -> &mut Self {
        let locator = self.locator(object_type.into(), primary_key);
        self.edits.push(Edit::DeleteObject(locator));
        self
    }

    /// Links `source` to `target` (each `(object type, primary key)`) through the link type
    /// whose API name, seen from the source object type, is `link_type`.
    pub fn add_link<S: Serialize, T: Serialize>(
        &mut self,
        link_type: impl Into<String>,
        source: (&str, S),
        target: (&str, T),
    ) -> &mut Self {
        let change = self.link(link_type.into(), source, target);
        self.edits.push(Edit::AddLink(change));
        self
    }

    /// Removes the link from `source` to `target` through `link_type` (as
    /// [`add_link`](Self::add_link)).
    pub fn remove_link<S: Serialize, T: Serialize>(
        &mut self,
        link_type: impl Into<String>,
        source: (&str, S),
        target: (&str, T),
    ) -> &mut Self {
        let change = self.link(link_type.into(), source, target);
        self.edits.push(Edit::RemoveLink(change));
        self
    }

    /// Appends every edit of `other`.
    pub fn extend(&mut self, other: OntologyEdits) -> &mut Self {
        self.edits.extend(other.edits);
        if self.problem.is_none() {
            self.problem = other.problem;
        }
        self
    }

    /// The number of edits.
    pub fn len(&self) -> usize {
        self.edits.len()
    }

    /// Whether there are no edits.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// The object types (API names) these edits touch, links' ends included.
    pub fn object_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = Vec::new();
        for edit in &self.edits {
            let locators: [Option<&Locator>; 2] = match edit {
                Edit::AddObject(c) | Edit::ModifyObject(c) => [Some(&c.locator), None],
                Edit::DeleteObject(l) => [Some(l), None],
                Edit::AddLink(c) | Edit::RemoveLink(c) => [Some(&c.source), Some(&c.target)],
            };
            for l in locators.into_iter().flatten() {
                if !types.contains(&l.object_type.as_str()) {
                    types.push(&l.object_type);
                }
            }
        }
        types
    }

    /// The edits in Foundry's wire format (docs/protocol.md §4.6): a JSON array of
    /// `{"type": "addObject", "addObject": {"locator": {"typeId", "primaryKey": {id: value}},
    /// "propertyValues": {id: value}}}`, `modifyObject` (same), `deleteObject` (`locator`
    /// only), `addLink` / `removeLink` (`{"locator": {"relationId", "sourceObjectLocator",
    /// "targetObjectLocator"}}`), every API name replaced by its id from `metadata`.
    ///
    /// A function's result is exactly this; call it in unit tests to see what a function's
    /// edits become.
    pub fn to_wire(&self, metadata: &OntologyMetadata) -> Result<Value, OntologyEditsError> {
        if let Some(problem) = &self.problem {
            return Err(OntologyEditsError::Value(problem.clone()));
        }
        let mut out = Vec::with_capacity(self.edits.len());
        for edit in &self.edits {
            out.push(match edit {
                Edit::AddObject(c) => union("addObject", object_change(c, metadata)?),
                Edit::ModifyObject(c) => union("modifyObject", object_change(c, metadata)?),
                Edit::DeleteObject(l) => {
                    union("deleteObject", json!({"locator": locator(l, metadata)?.1}))
                }
                Edit::AddLink(c) => union("addLink", link_change(c, metadata)?),
                Edit::RemoveLink(c) => union("removeLink", link_change(c, metadata)?),
            });
        }
        Ok(Value::Array(out))
    }

    fn push_object(&mut self, edit: Edit) -> ObjectEdit<'_> {
        self.edits.push(edit);
        ObjectEdit {
            index: self.edits.len() - 1,
            edits: self,
        }
    }

    fn locator(&mut self, object_type: String, primary_key: impl Serialize) -> Locator {
        let primary_key = self.value(&format!("{object_type}.<primary key>"), primary_key);
        Locator {
            object_type,
            primary_key,
        }
    }

    fn link<S: Serialize, T: Serialize>(
        &mut self,
        link_type: String,
        source: (&str, S),
        target: (&str, T),
    ) -> LinkChange {
        LinkChange {
            link_type,
            source: self.locator(source.0.to_owned(), source.1),
            target: self.locator(target.0.to_owned(), target.1),
        }
    }

    /// `value` as JSON; on failure, remembers the first problem (naming `what`) and uses `null`.
    fn value(&mut self, what: &str, value: impl Serialize) -> Value {
        match serde_json::to_value(value) {
            Ok(v) => v,
            Err(e) => {
                if self.problem.is_none() {
                    self.problem = Some(format!("the value of `{what}` is not JSON: {e}"));
                }
                Value::Null
            }
        }
    }
}

/// Why edits could not be put in Foundry's wire format. Each names the object type, property
/// or link involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OntologyEditsError {
    /// An object type the metadata does not know.
    #[error(
        "object type `{object_type}` is not in the ontology metadata (it knows: {known}); \
         regenerate the metadata file with this object type's RID"
    )]
    UnknownObjectType {
        /// The API name used.
        object_type: String,
        /// The API names it knows, comma-separated.
        known: String,
    },
    /// A property its object type does not have.
    #[error("object type `{object_type}` has no property `{property}` (it has: {known})")]
    UnknownProperty {
        /// The object type's API name.
        object_type: String,
        /// The property API name used.
        property: String,
        /// The property API names it has, comma-separated.
        known: String,
    },
    /// A link type the source object type does not have.
    #[error(
        "object type `{object_type}` has no link `{link}` (it has: {known}); a link is named by \
         its API name as seen from the source object, and the metadata file must be generated \
         with its link type RID"
    )]
    UnknownLink {
        /// The source object type's API name.
        object_type: String,
        /// The link API name used.
        link: String,
        /// The link API names it has, comma-separated.
        known: String,
    },
    /// A primary key or property value that is not JSON.
    #[error("{0}")]
    Value(String),
}

fn union(kind: &str, body: Value) -> Value {
    let mut m = Map::with_capacity(2);
    m.insert("type".to_owned(), Value::String(kind.to_owned()));
    m.insert(kind.to_owned(), body);
    Value::Object(m)
}

/// The object type's metadata and the wire locator `{"typeId", "primaryKey": {id: value}}`.
fn locator<'m>(
    l: &Locator,
    metadata: &'m OntologyMetadata,
) -> Result<(&'m ObjectTypeMetadata, Value), OntologyEditsError> {
    let t = metadata.object_type(&l.object_type).ok_or_else(|| {
        OntologyEditsError::UnknownObjectType {
            object_type: l.object_type.clone(),
            known: metadata.object_type_names().join(", "),
        }
    })?;
    let mut key = Map::with_capacity(1);
    key.insert(t.primary_key_id().to_owned(), l.primary_key.clone());
    Ok((t, json!({"typeId": t.type_id, "primaryKey": key})))
}

fn object_change(
    c: &ObjectChange,
    metadata: &OntologyMetadata,
) -> Result<Value, OntologyEditsError> {
    let (t, loc) = locator(&c.locator, metadata)?;
    let mut values = Map::with_capacity(c.properties.len());
    for (name, value) in &c.properties {
        let id = t
            .properties
            .get(name)
            .ok_or_else(|| OntologyEditsError::UnknownProperty {
                object_type: c.locator.object_type.clone(),
                property: name.clone(),
                known: keys(&t.properties),
            })?;
        values.insert(id.clone(), value.clone());
    }
    Ok(json!({"locator": loc, "propertyValues": values}))
}

fn link_change(c: &LinkChange, metadata: &OntologyMetadata) -> Result<Value, OntologyEditsError> {
    let (source_type, source) = locator(&c.source, metadata)?;
    let (_, target) = locator(&c.target, metadata)?;
    let relation =
        source_type
            .links
            .get(&c.link_type)
            .ok_or_else(|| OntologyEditsError::UnknownLink {
                object_type: c.source.object_type.clone(),
                link: c.link_type.clone(),
                known: keys(&source_type.links),
            })?;
    Ok(json!({"locator": {
        "relationId": relation,
        "sourceObjectLocator": source,
        "targetObjectLocator": target,
    }}))
}

fn keys(map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        "none".to_owned()
    } else {
        map.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}
