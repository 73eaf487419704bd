//! Typed tables (feature `tables`): dataset rows in and out as Rust types, through Arrow record
//! batches and Parquet files (docs/protocol.md §5.3).
//!
//! * [`DatasetInput::rows`](crate::pipeline::DatasetInput::rows) /
//!   [`DatasetInput::table`](crate::pipeline::DatasetInput::table) (`read.rs`): Parquet files
//!   of the view, streamed through a temporary file and decoded one batch at a time; other
//!   files through `readTable?format=ARROW`.
//! * [`DatasetOutput::rows`](crate::pipeline::DatasetOutput::rows) (`write.rs`): a
//!   [`TableWriter`] that encodes Parquet row groups as rows come and uploads them, then
//!   writes the schema with `putSchema`.
//! * `schema.rs`: the Foundry and Arrow schemas derived from a row type.

mod read;
mod schema;
mod write;

pub use read::{DEFAULT_BATCH_ROWS, TableRead};
pub use schema::{
    DECIMAL_PRECISION, DECIMAL_SCALE, DatasetSchema, FieldSchema, FieldType, table_schema,
};
pub use write::{TableWriteOptions, TableWriter, TableWritten};

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::read::decode_rows;
    use super::schema::derive;
    use crate::pipeline::error::{PipelineError, ResourceKind, ResourceRef};
    use crate::types::{Binary, Date, Decimal, Timestamp};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    struct Inner {
        label: String,
        weight: Option<f64>,
    }

    /// Every Foundry column type, through the row type's serde impls.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    struct All {
        boolean: bool,
        byte: i8,
        short: i16,
        integer: i32,
        long: i64,
        float: f32,
        double: f64,
        string: String,
        binary: Binary,
        decimal: Decimal,
        rust_decimal: rust_decimal::Decimal,
        date: Date,
        naive_date: chrono::NaiveDate,
        timestamp: Timestamp,
        chrono_timestamp: chrono::DateTime<chrono::Utc>,
        list: Vec<i64>,
        optional: Option<String>,
        map: BTreeMap<String, i64>,
        nested: Inner,
        nested_list: Vec<Inner>,
    }

    fn resource() -> ResourceRef {
        ResourceRef {
            alias: "t".into(),
            rid: "ri.t".into(),
            branch: "master".into(),
            kind: ResourceKind::Dataset,
        }
    }

    fn sample(i: i64) -> All {
        let ts = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456 + i).unwrap();
        All {
            boolean: i % 2 == 0,
            byte: -8,
            short: 1600,
            integer: -32_000_000,
            long: i * 1_000_000_007,
            float: 1.5,
            double: -2.25e100,
            string: format!("row {i} ✓"),
            binary: Binary(vec![0, 159, 146, 150, i as u8]),
            decimal: "12345.678901".parse().unwrap(),
            rust_decimal: rust_decimal::Decimal::new(-314159, 5),
            date: "2024-02-29".parse().unwrap(),
            naive_date: chrono::NaiveDate::from_ymd_opt(1969, 7, 20).unwrap(),
            timestamp: Timestamp(ts),
            chrono_timestamp: ts,
            list: vec![i, -i, 0],
            optional: (i % 2 == 0).then(|| "some".to_owned()),
            map: BTreeMap::from([("a".to_owned(), i), ("b".to_owned(), 2)]),
            nested: Inner {
                label: "x".into(),
                weight: None,
            },
            nested_list: vec![Inner {
                label: "y".into(),
                weight: Some(0.5),
            }],
        }
    }

    #[test]
    fn every_type_round_trips_through_parquet_bytes() {
        let derived = derive::<All>().unwrap();
        let rows: Vec<All> = (0..5).map(sample).collect();
        let mut builder = serde_arrow::ArrayBuilder::from_arrow(derived.arrow.fields()).unwrap();
        for r in &rows {
            crate::types::columnar(|| builder.push(r)).unwrap();
        }
        let batch = builder.to_record_batch().unwrap();
        let mut w = ArrowWriter::try_new(Vec::new(), derived.arrow.clone(), None).unwrap();
        w.write(&batch).unwrap();
        let bytes = bytes::Bytes::from(w.into_inner().unwrap());
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        let mut back = Vec::new();
        for b in reader {
            back.extend(decode_rows::<All>(&resource(), "f.parquet", b.unwrap(), 0).unwrap());
        }
        assert_eq!(back, rows);
    }

    #[test]
    fn a_mismatching_row_names_file_row_and_column() {
        #[derive(Serialize, JsonSchema)]
        struct Written {
            id: i64,
            amount: Option<i64>,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Read {
            id: i64,
            amount: i64,
        }
        let derived = derive::<Written>().unwrap();
        let mut builder = serde_arrow::ArrayBuilder::from_arrow(derived.arrow.fields()).unwrap();
        for (id, amount) in [(0, Some(1)), (1, Some(2)), (2, None)] {
            builder.push(Written { id, amount }).unwrap();
        }
        let batch = builder.to_record_batch().unwrap();
        let e = decode_rows::<Read>(&resource(), "in/a.parquet", batch, 10).unwrap_err();
        let PipelineError::Table {
            file, row, column, ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!(
            (file.as_str(), *row, column.as_deref()),
            ("in/a.parquet", Some(12), Some("amount")),
            "{e}"
        );
    }
}
