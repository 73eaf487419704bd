//! Dataset schemas (`getSchema` / `putSchema`), in Foundry's `DatasetSchema` shape, and where the
//! [`DataStore`] keeps them.
//!
//! ```text
//! datasets/<rid>/schemas/<branch>/<txn rid>.json   the schema put for that transaction
//! ```
//!
//! A schema belongs to a transaction of a branch (its `endTransactionRid`); files seeded by hand
//! belong to [`SEED_TRANSACTION_RID`], so a hand-written
//! `schemas/master/ri.foundry.main.transaction.00000000-0000-0000-0000-000000000000.json` types
//! seeded CSV files. Reading the schema at a transaction takes the newest schema put for that
//! transaction or an earlier committed one of the branch (a schema carries over to later
//! transactions until another is put).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::datasets::{SEED_TRANSACTION_RID, TransactionType};
use super::{
    DataStore, StoreError, TransactionStatus, branch_dir_name, check_branch, create_dir, invalid,
    not_found, read_json, to_json, write_atomic,
};
use crate::foundry::oauth::random_uuid;

/// The type of a column (`DatasetFieldSchema.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum FieldType {
    Array,
    Binary,
    Boolean,
    Byte,
    Date,
    Decimal,
    Double,
    Float,
    Integer,
    Long,
    Map,
    Short,
    String,
    Struct,
    Timestamp,
}

/// One field of a dataset schema (`DatasetFieldSchema`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldSchema {
    /// The column name; absent in nested types (`arraySubtype`, `mapKeyType`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Whether values may be null.
    #[serde(default = "yes")]
    pub nullable: bool,
    /// User metadata (descriptions, archetypes, …).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub custom_metadata: serde_json::Map<String, serde_json::Value>,
    /// The element type of an `ARRAY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_subtype: Option<Box<FieldSchema>>,
    /// The key type of a `MAP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_key_type: Option<Box<FieldSchema>>,
    /// The value type of a `MAP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_value_type: Option<Box<FieldSchema>>,
    /// The fields of a `STRUCT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_schemas: Option<Vec<FieldSchema>>,
    /// Total digits of a `DECIMAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<u8>,
    /// Digits after the point of a `DECIMAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<i8>,
    /// Spark user-defined type class, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_defined_type_class: Option<String>,
}

fn yes() -> bool {
    true
}

/// A dataset schema (`DatasetSchema`): `{"fieldSchemaList": [...]}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetSchema {
    /// The columns, in order.
    #[serde(default)]
    pub field_schema_list: Vec<FieldSchema>,
}

/// How Foundry reads the files of a dataset (`dataframeReader`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum DataframeReader {
    Avro,
    Csv,
    #[default]
    Parquet,
    Datasource,
}

/// A schema as stored and as `getSchema` answers it (`GetDatasetSchemaResponse`), plus the
/// `dataframeReader` it was put with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredSchema {
    /// The branch.
    pub branch_name: String,
    /// The transaction the schema belongs to.
    pub end_transaction_rid: String,
    /// The schema.
    pub schema: DatasetSchema,
    /// A fresh id per `putSchema`.
    pub version_id: String,
    /// The reader given to `putSchema` (default `PARQUET`).
    #[serde(default)]
    pub dataframe_reader: DataframeReader,
}

impl DatasetSchema {
    /// Checks the schema as Foundry's `InvalidSchema` would: named, unique top-level columns, and
    /// the nested types each type needs. The error names the field.
    pub fn validate(&self) -> Result<(), StoreError> {
        let mut seen = BTreeSet::new();
        for (i, f) in self.field_schema_list.iter().enumerate() {
            let Some(name) = f.name.as_deref().filter(|n| !n.is_empty()) else {
                return Err(invalid(
                    "InvalidSchema",
                    format!("field {i} of fieldSchemaList has no name"),
                ));
            };
            if !seen.insert(name) {
                return Err(invalid(
                    "InvalidSchema",
                    format!("column `{name}` appears twice in fieldSchemaList"),
                ));
            }
            f.validate(name)?;
        }
        Ok(())
    }
}

impl FieldSchema {
    fn validate(&self, path: &str) -> Result<(), StoreError> {
        let need = |what: &str| {
            invalid(
                "InvalidSchema",
                format!(
                    "field `{path}` of type {:?} needs `{what}`",
                    self.field_type
                ),
            )
        };
        match self.field_type {
            FieldType::Array => self
                .array_subtype
                .as_ref()
                .ok_or_else(|| need("arraySubtype"))?
                .validate(&format!("{path}[]"))?,
            FieldType::Map => {
                self.map_key_type
                    .as_ref()
                    .ok_or_else(|| need("mapKeyType"))?
                    .validate(&format!("{path}.key"))?;
                self.map_value_type
                    .as_ref()
                    .ok_or_else(|| need("mapValueType"))?
                    .validate(&format!("{path}.value"))?;
            }
            FieldType::Struct => {
                let subs = self
                    .sub_schemas
                    .as_ref()
                    .ok_or_else(|| need("subSchemas"))?;
                for (i, s) in subs.iter().enumerate() {
                    let name = s.name.clone().unwrap_or_else(|| i.to_string());
                    s.validate(&format!("{path}.{name}"))?;
                }
            }
            FieldType::Decimal => match (self.precision, self.scale) {
                (Some(p), Some(s)) if (1..=38).contains(&p) && s >= 0 && s as u8 <= p => {}
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "InvalidSchema",
                        format!(
                            "field `{path}`: DECIMAL precision must be 1..=38 and scale 0..=precision"
                        ),
                    ));
                }
                _ => return Err(need("precision` and `scale")),
            },
            _ => {}
        }
        Ok(())
    }
}

impl DataStore {
    fn schema_dir(&self, rid: &str, branch: &str) -> Result<std::path::PathBuf, StoreError> {
        check_branch(branch)?;
        Ok(self
            .dataset_dir(rid)?
            .join("schemas")
            .join(branch_dir_name(branch)))
    }

    /// Stores `schema` for a transaction of `branch` (`putSchema`): `end` names it (an open or
    /// committed transaction of the branch), otherwise the branch's newest committed transaction
    /// (or [`SEED_TRANSACTION_RID`] when none).
    pub async fn put_schema(
        &self,
        rid: &str,
        branch: &str,
        end: Option<&str>,
        reader: DataframeReader,
        schema: DatasetSchema,
    ) -> Result<StoredSchema, StoreError> {
        let _guard = self.lock.lock().await;
        schema.validate()?;
        // `BranchNotFound` for a branch with neither files nor transactions.
        self.branch_head(rid, branch)?;
        let end = match end {
            Some(t) => {
                let txn = self.transaction(rid, t)?;
                if txn.branch_name != branch {
                    return Err(invalid(
                        "InvalidParameterCombination",
                        format!(
                            "transaction {t} belongs to branch `{}`, not `{branch}`",
                            txn.branch_name
                        ),
                    ));
                }
                if txn.status == TransactionStatus::Aborted {
                    return Err(invalid(
                        "TransactionNotOpen",
                        format!("transaction {t} of {rid} is aborted"),
                    ));
                }
                t.to_owned()
            }
            None => self.head_transaction(rid, branch)?,
        };
        let stored = StoredSchema {
            branch_name: branch.to_owned(),
            end_transaction_rid: end,
            schema,
            version_id: random_uuid(),
            dataframe_reader: reader,
        };
        let dir = self.schema_dir(rid, branch)?;
        create_dir(&dir)?;
        write_atomic(
            &dir.join(format!("{}.json", stored.end_transaction_rid)),
            &to_json(&stored)?,
        )?;
        Ok(stored)
    }

    /// The schema of `branch` at transaction `end` (default: the newest committed one): the
    /// schema put for it or for the nearest earlier committed transaction. `SchemaNotFound` when
    /// there is none.
    pub fn get_schema(
        &self,
        rid: &str,
        branch: &str,
        end: Option<&str>,
    ) -> Result<StoredSchema, StoreError> {
        self.branch_head(rid, branch)?;
        let mut chain = self.committed_chain(rid, branch)?;
        if let Some(end) = end {
            match chain.iter().position(|t| t == end) {
                Some(i) => chain.truncate(i + 1),
                None => {
                    // An open transaction of the branch: its own schema, then the committed ones.
                    let t = self.transaction(rid, end)?;
                    if t.branch_name != branch || t.status != TransactionStatus::Open {
                        return Err(invalid(
                            "InvalidParameterCombination",
                            format!(
                                "transaction {end} is not a committed or open transaction of \
                                 branch `{branch}`"
                            ),
                        ));
                    }
                    chain.push(end.to_owned());
                }
            }
        }
        let dir = self.schema_dir(rid, branch)?;
        for txn in chain.iter().rev() {
            let p = dir.join(format!("{txn}.json"));
            if p.is_file() {
                return read_json(&p);
            }
        }
        Err(not_found(
            "SchemaNotFound",
            format!("dataset {rid} has no schema on branch `{branch}`"),
        ))
    }

    /// [`SEED_TRANSACTION_RID`] then the committed transactions of `branch`, oldest first: the
    /// order in which they built the branch's view.
    pub(crate) fn committed_chain(
        &self,
        rid: &str,
        branch: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut all = self.transactions(rid)?;
        all.reverse();
        let mut chain = vec![SEED_TRANSACTION_RID.to_owned()];
        chain.extend(
            all.into_iter()
                .filter(|t| t.branch_name == branch && t.status == TransactionStatus::Committed)
                .map(|t| t.rid),
        );
        Ok(chain)
    }
}

/// Whether files may be uploaded into a transaction of this type.
pub(crate) fn accepts_uploads(t: TransactionType) -> bool {
    t != TransactionType::Delete
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundry::store::test_store as store;

    fn field(name: &str, t: FieldType) -> FieldSchema {
        FieldSchema {
            name: Some(name.to_owned()),
            field_type: t,
            nullable: true,
            custom_metadata: serde_json::Map::new(),
            array_subtype: None,
            map_key_type: None,
            map_value_type: None,
            sub_schemas: None,
            precision: None,
            scale: None,
            user_defined_type_class: None,
        }
    }

    #[test]
    fn validation_names_the_field() {
        let s = DatasetSchema {
            field_schema_list: vec![
                field("id", FieldType::Long),
                field("tags", FieldType::Array),
            ],
        };
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("`tags`") && e.contains("arraySubtype"), "{e}");
        let s = DatasetSchema {
            field_schema_list: vec![field("id", FieldType::Long), field("id", FieldType::Long)],
        };
        assert!(s.validate().unwrap_err().to_string().contains("twice"));
        let s = DatasetSchema {
            field_schema_list: vec![field("price", FieldType::Decimal)],
        };
        assert!(s.validate().unwrap_err().to_string().contains("precision"));
    }

    #[test]
    fn the_wire_shape_round_trips() {
        let text = r#"{"fieldSchemaList":[{"name":"id","type":"LONG","nullable":false,
            "customMetadata":{"description":"Primary key"}},
            {"name":"price","type":"DECIMAL","precision":10,"scale":2,"nullable":true},
            {"name":"tags","type":"ARRAY","nullable":true,"arraySubtype":{"type":"STRING","nullable":false}},
            {"name":"m","type":"STRUCT","nullable":true,"subSchemas":[{"name":"t","type":"DOUBLE","nullable":true}]}]}"#;
        let s: DatasetSchema = serde_json::from_str(text).unwrap();
        s.validate().unwrap();
        let back: serde_json::Value = serde_json::to_value(&s).unwrap();
        let orig: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(back, orig);
    }

    #[tokio::test]
    async fn schemas_carry_over_to_later_transactions_and_aborted_ones_never_count() {
        let (_d, s) = store(10);
        s.create_dataset("ri.ds.1").unwrap();
        assert!(matches!(
            s.get_schema("ri.ds.1", "master", None),
            Err(StoreError::NotFound {
                name: "SchemaNotFound",
                ..
            })
        ));
        let one = DatasetSchema {
            field_schema_list: vec![field("a", FieldType::String)],
        };
        let seeded = s
            .put_schema("ri.ds.1", "master", None, DataframeReader::Csv, one.clone())
            .await
            .unwrap();
        assert_eq!(seeded.end_transaction_rid, SEED_TRANSACTION_RID);
        let t = s
            .create_transaction("ri.ds.1", "master", TransactionType::Append)
            .await
            .unwrap();
        let two = DatasetSchema {
            field_schema_list: vec![field("b", FieldType::Long)],
        };
        s.put_schema(
            "ri.ds.1",
            "master",
            Some(&t.rid),
            DataframeReader::Parquet,
            two.clone(),
        )
        .await
        .unwrap();
        // Not committed yet: the branch still reads the seeded schema, the open one its own.
        assert_eq!(s.get_schema("ri.ds.1", "master", None).unwrap().schema, one);
        assert_eq!(
            s.get_schema("ri.ds.1", "master", Some(&t.rid))
                .unwrap()
                .schema,
            two
        );
        s.abort_transaction("ri.ds.1", &t.rid).await.unwrap();
        assert_eq!(s.get_schema("ri.ds.1", "master", None).unwrap().schema, one);
        let t2 = s
            .create_transaction("ri.ds.1", "master", TransactionType::Append)
            .await
            .unwrap();
        s.put_schema(
            "ri.ds.1",
            "master",
            Some(&t2.rid),
            DataframeReader::Parquet,
            two.clone(),
        )
        .await
        .unwrap();
        s.commit_transaction("ri.ds.1", &t2.rid).await.unwrap();
        let got = s.get_schema("ri.ds.1", "master", None).unwrap();
        assert_eq!(got.schema, two);
        assert_eq!(got.end_transaction_rid, t2.rid);
        // A later transaction without its own schema reads the previous one.
        let t3 = s
            .create_transaction("ri.ds.1", "master", TransactionType::Update)
            .await
            .unwrap();
        s.commit_transaction("ri.ds.1", &t3.rid).await.unwrap();
        assert_eq!(s.get_schema("ri.ds.1", "master", None).unwrap().schema, two);
        assert_eq!(
            s.get_schema("ri.ds.1", "master", Some(SEED_TRANSACTION_RID))
                .unwrap()
                .schema,
            one
        );
        assert!(matches!(
            s.get_schema("ri.ds.1", "nope", None),
            Err(StoreError::NotFound {
                name: "BranchNotFound",
                ..
            })
        ));
        assert!(matches!(
            s.put_schema("ri.ds.1", "nope", None, DataframeReader::Csv, one)
                .await,
            Err(StoreError::NotFound {
                name: "BranchNotFound",
                ..
            })
        ));
    }
}
