//! Table schemas: Foundry's dataset schema (`fieldSchemaList`, docs/protocol.md §5.3) and the
//! Arrow schema of the Parquet files, both derived from a row type's [`JsonSchema`] through the
//! same Rust → Foundry mapping the functions use ([`crate::types`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{DataType as Arrow, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::{Deserialize, Serialize};

use crate::schema::DataType;
use crate::schema::convert::Converter;

/// Precision of `DECIMAL` columns derived from [`Decimal`](crate::types::Decimal) and
/// `rust_decimal::Decimal` (which carry no precision of their own): 38 digits, the widest
/// Parquet/Spark decimal.
pub const DECIMAL_PRECISION: u8 = 38;
/// Scale of derived `DECIMAL` columns: 18 fractional digits (20 integer digits remain).
pub const DECIMAL_SCALE: i8 = 18;

/// A Foundry dataset schema: `{"fieldSchemaList": [...]}` as `getSchema` answers and `putSchema`
/// takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DatasetSchema {
    /// The columns, in order.
    pub field_schema_list: Vec<FieldSchema>,
}

impl DatasetSchema {
    /// The schema with these columns.
    pub fn new(field_schema_list: Vec<FieldSchema>) -> Self {
        Self { field_schema_list }
    }
}

/// One column (or a nested element) of a [`DatasetSchema`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FieldSchema {
    /// The column name (absent for array elements and map keys and values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The Foundry type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Whether values may be null.
    #[serde(default)]
    pub nullable: bool,
    /// Free-form metadata (empty when derived).
    #[serde(default, deserialize_with = "null_as_default")]
    pub custom_metadata: BTreeMap<String, serde_json::Value>,
    /// `ARRAY`: the element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_subtype: Option<Box<FieldSchema>>,
    /// `MAP`: the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_key_type: Option<Box<FieldSchema>>,
    /// `MAP`: the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_value_type: Option<Box<FieldSchema>>,
    /// `STRUCT`: the fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_schemas: Option<Vec<FieldSchema>>,
    /// `DECIMAL`: total digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<u8>,
    /// `DECIMAL`: fractional digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<i8>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A Foundry column type (`FieldSchema.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
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
    /// A type this version does not know.
    #[serde(other)]
    Unknown,
}

impl FieldSchema {
    fn leaf(name: Option<String>, field_type: FieldType, nullable: bool) -> Self {
        Self {
            name,
            field_type,
            nullable,
            custom_metadata: BTreeMap::new(),
            array_subtype: None,
            map_key_type: None,
            map_value_type: None,
            sub_schemas: None,
            precision: None,
            scale: None,
        }
    }
}

/// A row type's table schema, both ways.
#[derive(Debug, Clone)]
pub(crate) struct Derived {
    pub(crate) arrow: SchemaRef,
    pub(crate) foundry: DatasetSchema,
}

/// The dataset schema of a table whose rows are `T` (a struct): the one
/// [`DatasetOutput::rows`](crate::pipeline::DatasetOutput::rows) writes with `putSchema`.
///
/// Columns are the struct's fields (as serde names them), in name order; `Option<T>` fields are
/// nullable; the types follow the [mapping of the functions](crate::types), with `DECIMAL`
/// columns of precision [`DECIMAL_PRECISION`] and scale [`DECIMAL_SCALE`]. A type with no
/// Foundry column type (a tuple, an enum with data, `u64`, …) is an error naming the path.
pub fn table_schema<T: JsonSchema>() -> Result<DatasetSchema, String> {
    derive::<T>().map(|d| d.foundry)
}

/// Derives both schemas of `T`.
pub(crate) fn derive<T: JsonSchema>() -> Result<Derived, String> {
    let mut generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let root = generator.subschema_for::<T>().to_value();
    let data_type = Converter::new(generator.definitions(), "row")
        .convert(&root)
        .map_err(|p| format!("at `{}`: {}", p.path, p.reason))?;
    let DataType::AnonymousCustomType(custom) = data_type else {
        return Err(format!(
            "a table row must be a struct with named fields, not `{}`",
            data_type.variant_name()
        ));
    };
    let mut arrow = Vec::with_capacity(custom.fields.len());
    let mut foundry = Vec::with_capacity(custom.fields.len());
    for (name, ty) in &custom.fields {
        let (nullable, ty) = unwrap_optional(ty);
        arrow.push(arrow_field(name, ty, nullable));
        foundry.push(foundry_field(Some(name.clone()), ty, nullable));
    }
    Ok(Derived {
        arrow: Arc::new(Schema::new(arrow)),
        foundry: DatasetSchema::new(foundry),
    })
}

fn unwrap_optional(ty: &DataType) -> (bool, &DataType) {
    match ty {
        DataType::Optional(inner) => (true, unwrap_optional(inner).1),
        other => (false, other),
    }
}

/// The Arrow type of a Foundry type: what the Parquet files hold.
fn arrow_type(ty: &DataType) -> Arrow {
    match ty {
        DataType::Boolean => Arrow::Boolean,
        DataType::Byte => Arrow::Int8,
        DataType::Short => Arrow::Int16,
        DataType::Integer => Arrow::Int32,
        DataType::Long => Arrow::Int64,
        DataType::Float => Arrow::Float32,
        DataType::Double => Arrow::Float64,
        DataType::Decimal => Arrow::Decimal128(DECIMAL_PRECISION, DECIMAL_SCALE),
        DataType::Binary => Arrow::Binary,
        DataType::Date => Arrow::Date32,
        // Foundry and Spark timestamps are microseconds, UTC.
        DataType::Timestamp => Arrow::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::List(e) | DataType::Set(e) => {
            let (nullable, e) = unwrap_optional(e);
            Arrow::List(arrow_field("element", e, nullable))
        }
        DataType::Map { keys, values } => {
            let (vnull, v) = unwrap_optional(values);
            let entries = Fields::from(vec![
                arrow_field("key", unwrap_optional(keys).1, false),
                arrow_field("value", v, vnull),
            ]);
            Arrow::Map(
                Arc::new(Field::new("entries", Arrow::Struct(entries), false)),
                false,
            )
        }
        DataType::Optional(inner) => arrow_type(inner),
        DataType::AnonymousCustomType(c) => Arrow::Struct(
            c.fields
                .iter()
                .map(|(n, t)| {
                    let (nullable, t) = unwrap_optional(t);
                    arrow_field(n, t, nullable)
                })
                .collect::<Vec<FieldRef>>()
                .into(),
        ),
        // Strings and anything newer.
        _ => Arrow::Utf8,
    }
}

fn arrow_field(name: &str, ty: &DataType, nullable: bool) -> FieldRef {
    Arc::new(Field::new(name, arrow_type(ty), nullable))
}

fn foundry_field(name: Option<String>, ty: &DataType, nullable: bool) -> FieldSchema {
    let leaf = |t| FieldSchema::leaf(name.clone(), t, nullable);
    match ty {
        DataType::Boolean => leaf(FieldType::Boolean),
        DataType::Byte => leaf(FieldType::Byte),
        DataType::Short => leaf(FieldType::Short),
        DataType::Integer => leaf(FieldType::Integer),
        DataType::Long => leaf(FieldType::Long),
        DataType::Float => leaf(FieldType::Float),
        DataType::Double => leaf(FieldType::Double),
        DataType::Decimal => FieldSchema {
            precision: Some(DECIMAL_PRECISION),
            scale: Some(DECIMAL_SCALE),
            ..leaf(FieldType::Decimal)
        },
        DataType::Binary => leaf(FieldType::Binary),
        DataType::Date => leaf(FieldType::Date),
        DataType::Timestamp => leaf(FieldType::Timestamp),
        DataType::List(e) | DataType::Set(e) => {
            let (n, e) = unwrap_optional(e);
            FieldSchema {
                array_subtype: Some(Box::new(foundry_field(None, e, n))),
                ..leaf(FieldType::Array)
            }
        }
        DataType::Map { keys, values } => {
            let (vn, v) = unwrap_optional(values);
            FieldSchema {
                map_key_type: Some(Box::new(foundry_field(
                    None,
                    unwrap_optional(keys).1,
                    false,
                ))),
                map_value_type: Some(Box::new(foundry_field(None, v, vn))),
                ..leaf(FieldType::Map)
            }
        }
        DataType::Optional(inner) => foundry_field(name, inner, true),
        DataType::AnonymousCustomType(c) => FieldSchema {
            sub_schemas: Some(
                c.fields
                    .iter()
                    .map(|(n, t)| {
                        let (nullable, t) = unwrap_optional(t);
                        foundry_field(Some(n.clone()), t, nullable)
                    })
                    .collect(),
            ),
            ..leaf(FieldType::Struct)
        },
        _ => leaf(FieldType::String),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(JsonSchema, Serialize)]
    #[allow(dead_code)]
    struct Row {
        id: i64,
        name: Option<String>,
        tags: Vec<String>,
        price: crate::types::Decimal,
        at: crate::types::Timestamp,
    }

    #[test]
    fn derives_foundry_and_arrow_schemas() {
        let d = derive::<Row>().unwrap();
        let json = serde_json::to_value(&d.foundry).unwrap();
        assert_eq!(json["fieldSchemaList"][0]["name"], "at");
        assert_eq!(json["fieldSchemaList"][0]["type"], "TIMESTAMP");
        assert_eq!(json["fieldSchemaList"][2]["type"], "STRING");
        assert_eq!(json["fieldSchemaList"][2]["nullable"], true);
        assert_eq!(json["fieldSchemaList"][3]["precision"], 38);
        assert_eq!(json["fieldSchemaList"][4]["arraySubtype"]["type"], "STRING");
        assert_eq!(
            d.arrow.field_with_name("price").unwrap().data_type(),
            &Arrow::Decimal128(38, 18)
        );
        assert!(d.arrow.field_with_name("name").unwrap().is_nullable());
    }

    #[test]
    fn a_row_must_be_a_struct() {
        let e = derive::<Vec<i64>>().unwrap_err();
        assert!(e.contains("struct with named fields"), "{e}");
        let e = derive::<(i64, i64)>().unwrap_err();
        assert!(e.contains("tuple"), "{e}");
    }
}
