//! Typed writes: [`DatasetOutput::rows`] → [`TableWriter`]: rows → Arrow batches
//! (serde_arrow) → Parquet row groups (snappy) → streamed uploads, and the dataset schema
//! (`putSchema`) in the output's transaction.

use std::fmt;
use std::marker::PhantomData;

use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use schemars::JsonSchema;
use serde::Serialize;

use super::read::table_error;
use super::schema::{DatasetSchema, Derived, derive};
use crate::foundry::{Method, Service};
use crate::pipeline::api::encode_segment;
use crate::pipeline::dataset::{DatasetOutput, FileInfo, FileWriter};
use crate::pipeline::error::PipelineError;

/// Sizes of a [`TableWriter`]'s batches, row groups and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableWriteOptions {
    batch_rows: usize,
    row_group_bytes: usize,
    file_bytes: usize,
    prefix: String,
}

impl Default for TableWriteOptions {
    fn default() -> Self {
        Self {
            batch_rows: 8192,
            row_group_bytes: 32 * 1024 * 1024,
            file_bytes: 256 * 1024 * 1024,
            prefix: "part".to_owned(),
        }
    }
}

impl TableWriteOptions {
    /// Rows buffered before they are encoded into the current row group (default 8192).
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// A row group is flushed (encoded and uploaded) once its encoded size in memory reaches
    /// this many bytes (default 32 MiB): the writer's memory bound.
    pub fn row_group_bytes(mut self, bytes: usize) -> Self {
        self.row_group_bytes = bytes.max(1);
        self
    }

    /// A file is closed and the next one started once this many bytes were written to it
    /// (default 256 MiB).
    pub fn file_bytes(mut self, bytes: usize) -> Self {
        self.file_bytes = bytes.max(1);
        self
    }

    /// File names start with this (default `part`): `part-<transaction>-00000.parquet`; may
    /// contain `/` for a directory.
    pub fn file_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// What a [`TableWriter`] wrote.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TableWritten {
    /// Rows written.
    pub rows: u64,
    /// The Parquet files uploaded, in order.
    pub files: Vec<FileInfo>,
    /// The schema written with `putSchema`.
    pub schema: DatasetSchema,
}

struct OpenFile {
    path: String,
    parquet: ArrowWriter<Vec<u8>>,
    upload: FileWriter,
    rows: u64,
}

/// Streams rows of type `T` into Parquet files of a dataset output
/// ([`DatasetOutput::rows`]). Call [`TableWriter::finish`] at the end: it closes the last file
/// and writes the dataset schema; a writer dropped without it leaves an unfinished upload, so
/// the output is aborted instead of committed.
pub struct TableWriter<T> {
    output: DatasetOutput,
    derived: Derived,
    rust_type: &'static str,
    options: TableWriteOptions,
    builder: serde_arrow::ArrayBuilder,
    buffered: u64,
    file: Option<OpenFile>,
    files_started: usize,
    rows: u64,
    written: Vec<FileInfo>,
    /// A row failed to encode: the builder may hold part of it.
    poisoned: bool,
    _row: PhantomData<fn(&T)>,
}

impl<T> fmt::Debug for TableWriter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableWriter")
            .field("output", &self.output.alias())
            .field("row_type", &self.rust_type)
            .field("rows", &self.rows)
            .field("files", &self.written.len())
            .finish_non_exhaustive()
    }
}

impl DatasetOutput {
    /// A writer of typed rows into Parquet files of this output, with the dataset schema
    /// derived from `T` (see [`table_schema`](crate::pipeline::table_schema)); default sizes.
    pub fn rows<T: Serialize + JsonSchema>(&self) -> Result<TableWriter<T>, PipelineError> {
        self.rows_with(TableWriteOptions::default())
    }

    /// [`DatasetOutput::rows`] with explicit batch, row-group and file sizes.
    pub fn rows_with<T: Serialize + JsonSchema>(
        &self,
        options: TableWriteOptions,
    ) -> Result<TableWriter<T>, PipelineError> {
        let rust_type = std::any::type_name::<T>();
        let schema_error = |message: String| PipelineError::TableSchema {
            resource: Box::new(self.state.resource.clone()),
            rust_type: rust_type.to_owned(),
            message,
        };
        let derived = derive::<T>().map_err(schema_error)?;
        let builder = serde_arrow::ArrayBuilder::from_arrow(derived.arrow.fields())
            .map_err(|e| schema_error(e.message().to_owned()))?;
        Ok(TableWriter {
            output: DatasetOutput {
                state: self.state.clone(),
            },
            derived,
            rust_type,
            options,
            builder,
            buffered: 0,
            file: None,
            files_started: 0,
            rows: 0,
            written: Vec::new(),
            poisoned: false,
            _row: PhantomData,
        })
    }
}

/// The column an error of serde_arrow names (`field: "$.a.b"` in its message).
fn annotated_field(display: &str) -> Option<String> {
    let rest = display.split("field: \"").nth(1)?;
    let field = rest.split('"').next()?;
    Some(field.trim_start_matches("$.").to_owned())
}

/// A file-name-safe form of a transaction RID (its last segment).
fn unique_part(rid: &str) -> String {
    let last = rid.rsplit('.').next().unwrap_or(rid);
    last.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

impl<T: Serialize> TableWriter<T> {
    /// The schema written at [`finish`](TableWriter::finish).
    pub fn schema(&self) -> &DatasetSchema {
        &self.derived.foundry
    }

    /// Rows written so far.
    pub fn rows_written(&self) -> u64 {
        self.rows
    }

    fn next_path(&self) -> String {
        format!(
            "{}-{}-{:05}.parquet",
            self.options.prefix,
            unique_part(&self.output.state.transaction_rid),
            self.files_started
        )
    }

    fn error(&self, row: Option<u64>, column: Option<String>, message: String) -> PipelineError {
        let file = match &self.file {
            Some(f) => f.path.clone(),
            None => self.next_path(),
        };
        table_error(&self.output.state.resource, &file, row, column, message)
    }

    /// Appends a row. Rows are encoded in batches; a full row group is uploaded as it
    /// completes.
    pub async fn write(&mut self, row: &T) -> Result<(), PipelineError> {
        if self.poisoned {
            return Err(self.error(
                None,
                None,
                "an earlier row failed to encode; the writer cannot continue".to_owned(),
            ));
        }
        let pushed = crate::types::columnar(|| self.builder.push(row));
        if let Err(e) = pushed {
            self.poisoned = true;
            let in_file = self.file.as_ref().map_or(0, |f| f.rows) + self.buffered;
            return Err(self.error(
                Some(in_file),
                annotated_field(&e.to_string()),
                format!(
                    "the row does not fit the table schema of `{}`: {}",
                    self.rust_type,
                    e.message()
                ),
            ));
        }
        self.buffered += 1;
        self.rows += 1;
        if self.buffered >= self.options.batch_rows as u64 {
            self.encode_batch().await?;
        }
        Ok(())
    }

    /// Appends every row of an iterator.
    pub async fn write_all<'r, I>(&mut self, rows: I) -> Result<(), PipelineError>
    where
        I: IntoIterator<Item = &'r T>,
        T: 'r,
    {
        for row in rows {
            self.write(row).await?;
        }
        Ok(())
    }

    fn open_file(&mut self) -> Result<(), PipelineError> {
        if self.file.is_some() {
            return Ok(());
        }
        let path = self.next_path();
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let parquet = ArrowWriter::try_new(Vec::new(), self.derived.arrow.clone(), Some(props))
            .map_err(|e| self.error(None, None, format!("cannot start a Parquet file: {e}")))?;
        let upload = self.output.create(&path);
        self.files_started += 1;
        self.file = Some(OpenFile {
            path,
            parquet,
            upload,
            rows: 0,
        });
        Ok(())
    }

    /// Encodes the buffered rows into the open file, flushing the row group and rolling the
    /// file at their size bounds.
    async fn encode_batch(&mut self) -> Result<(), PipelineError> {
        if self.buffered == 0 {
            return Ok(());
        }
        let (encoded, roll) = self.encode_buffered()?;
        if let (false, Some(file)) = (encoded.is_empty(), self.file.as_mut()) {
            file.upload.write(encoded).await?;
        }
        if roll {
            self.close_file().await?;
        }
        Ok(())
    }

    /// The synchronous part of [`TableWriter::encode_batch`]: the bytes to upload, and whether
    /// the file is full.
    fn encode_buffered(&mut self) -> Result<(Vec<u8>, bool), PipelineError> {
        let batch = self.builder.to_record_batch().map_err(|e| {
            self.error(None, None, format!("cannot build a batch: {}", e.message()))
        })?;
        self.open_file()?;
        let rows = self.buffered;
        self.buffered = 0;
        let resource = &self.output.state.resource;
        let Some(file) = self.file.as_mut() else {
            return Ok((Vec::new(), false));
        };
        let parquet_err = |e: parquet::errors::ParquetError| {
            table_error(
                resource,
                &file.path,
                None,
                None,
                format!("cannot encode Parquet: {e}"),
            )
        };
        file.parquet.write(&batch).map_err(parquet_err)?;
        if file.parquet.in_progress_size() >= self.options.row_group_bytes {
            file.parquet.flush().map_err(parquet_err)?;
        }
        file.rows += rows;
        let encoded = std::mem::take(file.parquet.inner_mut());
        Ok((
            encoded,
            file.parquet.bytes_written() >= self.options.file_bytes,
        ))
    }

    async fn close_file(&mut self) -> Result<(), PipelineError> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let OpenFile {
            path,
            parquet,
            mut upload,
            ..
        } = file;
        let rest = parquet.into_inner().map_err(|e| {
            table_error(
                &self.output.state.resource,
                &path,
                None,
                None,
                format!("cannot finish the Parquet file: {e}"),
            )
        })?;
        upload.write(rest).await?;
        let info = upload.finish().await?;
        tracing::debug!(alias = %self.output.alias(), file = %path, "table file uploaded");
        self.written.push(info);
        Ok(())
    }

    /// Uploads the rest, closes the last file and writes the dataset schema (`putSchema`) in
    /// the output's transaction. With no rows at all, one empty file with the schema is
    /// written, so readers still see the columns.
    pub async fn finish(mut self) -> Result<TableWritten, PipelineError> {
        if self.poisoned {
            return Err(self.error(
                None,
                None,
                "an earlier row failed to encode; nothing more is written".to_owned(),
            ));
        }
        self.encode_batch().await?;
        if self.written.is_empty() {
            self.open_file()?;
        }
        self.close_file().await?;
        put_schema(&self.output, &self.derived.foundry).await?;
        Ok(TableWritten {
            rows: self.rows,
            files: std::mem::take(&mut self.written),
            schema: self.derived.foundry.clone(),
        })
    }
}

/// `putSchema` of the output's dataset, in its transaction.
async fn put_schema(output: &DatasetOutput, schema: &DatasetSchema) -> Result<(), PipelineError> {
    let s = &output.state;
    let path = format!("v2/datasets/{}/putSchema", encode_segment(&s.resource.rid));
    let body = serde_json::json!({
        "branchName": s.resource.branch,
        "endTransactionRid": s.transaction_rid,
        "dataframeReader": "PARQUET",
        "schema": schema,
    });
    let req = s
        .api
        .request(Method::PUT, Service::ApiGateway, path)
        .json(&body);
    s.api
        .send(
            &s.resource,
            || "writing the schema (putSchema)".to_owned(),
            req,
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_serde_arrow_errors() {
        assert_eq!(
            annotated_field(r#"Error: bad (data_type: "Int64", field: "$.a.b")"#).as_deref(),
            Some("a.b")
        );
        assert_eq!(annotated_field("Error: bad"), None);
        assert_eq!(unique_part("ri.foundry.main.transaction.00a-1"), "00a-1");
    }
}
