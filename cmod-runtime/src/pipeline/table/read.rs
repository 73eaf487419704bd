//! Typed reads: [`DatasetInput::rows`], [`DatasetInput::record_batches`], [`TableRead`].
//!
//! Parquet files of the view are read directly: each file is streamed to an unnamed temporary
//! file (never into memory), then decoded one record batch at a time on the blocking pool, so
//! memory is bounded by a row group's projected columns plus a batch of rows, whatever the
//! dataset's size. Views with other files (CSV, …), or a read that asks for the platform's view
//! of the table, go through `readTable?format=ARROW` (an Arrow IPC stream, spooled the same way).

use std::fmt;
use std::io::{BufReader, Seek, SeekFrom};
use std::sync::Arc;

use arrow_array::RecordBatch;
use futures_util::{Stream, StreamExt, TryStreamExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Visitor};
use tokio::io::AsyncWriteExt;

use super::schema::DatasetSchema;
use crate::foundry::{Method, Service};
use crate::pipeline::api::encode_segment;
use crate::pipeline::dataset::{DatasetInput, TxnRange};
use crate::pipeline::error::{PipelineError, ResourceRef};

/// Rows per record batch unless [`TableRead::batch_rows`] says otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 8192;
/// Decoded batches queued ahead of the consumer.
const QUEUE: usize = 2;
/// What errors name as the file when rows come from `readTable`.
const READ_TABLE: &str = "readTable?format=ARROW";

/// A typed read of a dataset input, configured before it starts
/// ([`DatasetInput::table`]).
///
/// ```no_run
/// # use cmod_runtime::pipeline::DatasetInput;
/// # use futures_util::TryStreamExt;
/// # async fn f(input: DatasetInput) -> Result<(), cmod_runtime::pipeline::PipelineError> {
/// #[derive(serde::Deserialize)]
/// struct Order { customer: String, amount: f64 }
/// let mut rows = std::pin::pin!(input.table().from_transaction("ri.foundry.main.transaction.1").rows::<Order>());
/// while let Some(order) = rows.try_next().await? {
///     println!("{} {}", order.customer, order.amount);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TableRead<'a> {
    input: &'a DatasetInput,
    columns: Option<Vec<String>>,
    range: TxnRange,
    platform: bool,
    batch_rows: usize,
}

impl fmt::Debug for TableRead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableRead")
            .field("alias", &self.input.resource.alias)
            .field("columns", &self.columns)
            .field("range", &self.range)
            .field("platform", &self.platform)
            .field("batch_rows", &self.batch_rows)
            .finish()
    }
}

impl DatasetInput {
    /// A typed read of this input's current view, to configure (columns, transactions, the
    /// platform's view) before streaming rows or record batches.
    pub fn table(&self) -> TableRead<'_> {
        TableRead {
            input: self,
            columns: None,
            range: TxnRange::default(),
            platform: false,
            batch_rows: DEFAULT_BATCH_ROWS,
        }
    }

    /// Streams the rows of the current view as `T` (a struct deriving `Deserialize`), reading
    /// only the columns `T` has. A row that does not match `T` ends the stream with
    /// [`PipelineError::Table`] naming the file, the row and the column. Same as
    /// `self.table().rows::<T>()`.
    pub fn rows<T>(&self) -> impl Stream<Item = Result<T, PipelineError>> + Send + 'static
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.table().rows()
    }

    /// Streams the current view as Arrow record batches (all columns). Same as
    /// `self.table().record_batches()`.
    pub fn record_batches(
        &self,
    ) -> impl Stream<Item = Result<RecordBatch, PipelineError>> + Send + 'static {
        self.table().record_batches()
    }

    /// The dataset's schema on this branch (`getSchema`); `None` when it has none.
    pub async fn schema(&self) -> Result<Option<DatasetSchema>, PipelineError> {
        #[derive(Deserialize)]
        struct Answer {
            schema: DatasetSchema,
        }
        let path = format!(
            "v2/datasets/{}/getSchema",
            encode_segment(&self.resource.rid)
        );
        let req = self
            .api
            .request(Method::GET, Service::ApiGateway, path)
            .query("branchName", &self.resource.branch);
        match self
            .api
            .json::<Answer>(&self.resource, || "reading the schema".to_owned(), req)
            .await
        {
            Ok(a) => Ok(Some(a.schema)),
            Err(e) if e.status() == Some(404) && e.error_name() != Some("DatasetNotFound") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn detached(&self) -> DatasetInput {
        self.clone_handle()
    }
}

impl<'a> TableRead<'a> {
    /// Reads only these columns (by default: all of them for record batches, the fields of `T`
    /// for rows).
    pub fn columns<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Reads only what the transactions from `transaction_rid` (included) to the latest added
    /// (`startTransactionRid`): an incremental read of what was appended since then.
    pub fn from_transaction(mut self, transaction_rid: impl Into<String>) -> Self {
        self.range.start = Some(transaction_rid.into());
        self
    }

    /// Reads the view as of `transaction_rid` (included) instead of the latest
    /// (`endTransactionRid`).
    pub fn to_transaction(mut self, transaction_rid: impl Into<String>) -> Self {
        self.range.end = Some(transaction_rid.into());
        self
    }

    /// Reads the platform's view of the table (`readTable?format=ARROW`, with the dataset's
    /// schema applied by Foundry) even when every file is Parquet.
    pub fn platform_view(mut self) -> Self {
        self.platform = true;
        self
    }

    /// Rows per record batch (at least 1; default [`DEFAULT_BATCH_ROWS`]).
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// Streams record batches.
    pub fn record_batches(
        self,
    ) -> impl Stream<Item = Result<RecordBatch, PipelineError>> + Send + 'static {
        self.start(|_, _, batch, _| Ok(batch))
    }

    /// Streams typed rows; see [`DatasetInput::rows`].
    pub fn rows<T>(mut self) -> impl Stream<Item = Result<T, PipelineError>> + Send + 'static
    where
        T: DeserializeOwned + Send + 'static,
    {
        if self.columns.is_none() {
            self.columns = struct_fields::<T>();
        }
        self.start(decode_rows::<T>)
            .map_ok(|rows| futures_util::stream::iter(rows.into_iter().map(Ok)))
            .try_flatten()
    }

    fn start<O, F>(self, decode: F) -> impl Stream<Item = Result<O, PipelineError>> + Send + 'static
    where
        O: Send + 'static,
        F: Fn(&ResourceRef, &str, RecordBatch, u64) -> Result<O, PipelineError>
            + Send
            + Sync
            + 'static,
    {
        let (tx, mut rx) = tokio::sync::mpsc::channel(QUEUE);
        let job = Job {
            input: self.input.detached(),
            columns: self.columns,
            range: self.range,
            platform: self.platform,
            batch_rows: self.batch_rows,
            decode: Arc::new(decode),
            tx,
        };
        let task = AbortOnDrop(tokio::spawn(job.run()));
        futures_util::stream::poll_fn(move |cx| {
            let _keep = &task;
            rx.poll_recv(cx)
        })
    }
}

/// Aborts the producer when the stream is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Decode<O> =
    Arc<dyn Fn(&ResourceRef, &str, RecordBatch, u64) -> Result<O, PipelineError> + Send + Sync>;

/// The producer of one read: lists the files, spools and decodes them.
struct Job<O> {
    input: DatasetInput,
    columns: Option<Vec<String>>,
    range: TxnRange,
    platform: bool,
    batch_rows: usize,
    decode: Decode<O>,
    tx: tokio::sync::mpsc::Sender<Result<O, PipelineError>>,
}

/// Whether a listed file holds table data (not `_SUCCESS`, `_schema`, `.crc` files and such).
fn is_data_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    !(name.is_empty() || name.starts_with('_') || name.starts_with('.') || name.ends_with(".crc"))
}

impl<O: Send + 'static> Job<O> {
    async fn run(self) {
        let tx = self.tx.clone();
        if let Err(e) = self.read().await {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn read(self) -> Result<(), PipelineError> {
        let files = if self.platform {
            Vec::new()
        } else {
            self.input
                .files_in(None, self.range.clone())
                .try_filter(|f| futures_util::future::ready(is_data_file(&f.path)))
                .try_collect::<Vec<_>>()
                .await?
        };
        let parquet = !self.platform && files.iter().all(|f| f.path.ends_with(".parquet"));
        if self.platform || !parquet {
            return self.read_table().await;
        }
        for file in files {
            let spool = self.spool_file(&file.path).await?;
            if !self.parquet(file.path, spool).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    fn table_error(&self, file: &str, message: String) -> PipelineError {
        table_error(&self.input.resource, file, None, None, message)
    }

    /// A new unnamed temporary file (deleted when closed).
    fn temp(&self, file: &str) -> Result<std::fs::File, PipelineError> {
        tempfile::tempfile()
            .map_err(|e| self.table_error(file, format!("cannot create a temporary file: {e}")))
    }

    /// Copies a response body into a temporary file, chunk by chunk.
    async fn spool(
        &self,
        file: &str,
        mut body: impl Stream<Item = Result<bytes::Bytes, PipelineError>> + Unpin,
    ) -> Result<std::fs::File, PipelineError> {
        let std_file = self.temp(file)?;
        let io = |e: std::io::Error| self.table_error(file, format!("spooling to disk: {e}"));
        let mut out = tokio::fs::File::from_std(std_file.try_clone().map_err(io)?);
        while let Some(chunk) = body.next().await {
            out.write_all(&chunk?).await.map_err(io)?;
        }
        out.flush().await.map_err(io)?;
        drop(out);
        let mut std_file = std_file;
        std_file.seek(SeekFrom::Start(0)).map_err(io)?;
        Ok(std_file)
    }

    async fn spool_file(&self, path: &str) -> Result<std::fs::File, PipelineError> {
        let reader = self.input.open(path).await?;
        self.spool(path, reader).await
    }

    /// Decodes one spooled Parquet file; `Ok(false)` when the consumer is gone.
    async fn parquet(&self, path: String, file: std::fs::File) -> Result<bool, PipelineError> {
        let resource = self.input.resource.clone();
        let columns = self.columns.clone();
        let batch_rows = self.batch_rows;
        let decode = self.decode.clone();
        let tx = self.tx.clone();
        let task = tokio::task::spawn_blocking(move || -> Result<bool, PipelineError> {
            let err = |m: String| table_error(&resource, &path, None, None, m);
            let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| err(format!("not a readable Parquet file: {e}")))?;
            if let Some(columns) = &columns {
                let roots: Vec<usize> = builder
                    .schema()
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| columns.iter().any(|c| c == f.name()))
                    .map(|(i, _)| i)
                    .collect();
                let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
                builder = builder.with_projection(mask);
            }
            let reader = builder
                .with_batch_size(batch_rows)
                .build()
                .map_err(|e| err(format!("cannot read the Parquet file: {e}")))?;
            let mut row = 0u64;
            for batch in reader {
                let batch = batch.map_err(|e| {
                    table_error(
                        &resource,
                        &path,
                        Some(row),
                        None,
                        format!("cannot read the Parquet file: {e}"),
                    )
                })?;
                let n = batch.num_rows() as u64;
                let out = decode(&resource, &path, batch, row)?;
                row += n;
                if tx.blocking_send(Ok(out)).is_err() {
                    return Ok(false);
                }
            }
            Ok(true)
        });
        task.await
            .map_err(|e| self.table_error("", format!("the decoding task failed: {e}")))?
    }

    /// `readTable?format=ARROW`: an Arrow IPC stream, spooled, then decoded.
    async fn read_table(&self) -> Result<(), PipelineError> {
        let r = &self.input.resource;
        let path = format!("v2/datasets/{}/readTable", encode_segment(&r.rid));
        let mut req = self
            .input
            .api
            .request(Method::GET, Service::ApiGateway, path)
            .query("format", "ARROW")
            .query("branchName", &r.branch);
        for c in self.columns.iter().flatten() {
            req = req.query("columns", c);
        }
        if let Some(t) = &self.range.start {
            req = req.query("startTransactionRid", t);
        }
        if let Some(t) = &self.range.end {
            req = req.query("endTransactionRid", t);
        }
        let body = self
            .input
            .api
            .download(r, || "reading the table (readTable)".to_owned(), req)
            .await?;
        let file = self.spool(READ_TABLE, body).await?;
        let resource = r.clone();
        let batch_rows = self.batch_rows;
        let decode = self.decode.clone();
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || -> Result<(), PipelineError> {
            let err = |m: String| table_error(&resource, READ_TABLE, None, None, m);
            let reader = arrow_ipc::reader::StreamReader::try_new(BufReader::new(file), None)
                .map_err(|e| err(format!("not an Arrow IPC stream: {e}")))?;
            let mut row = 0u64;
            for batch in reader {
                let batch = batch.map_err(|e| err(format!("cannot read the Arrow stream: {e}")))?;
                let mut offset = 0;
                while offset < batch.num_rows() {
                    let len = batch_rows.min(batch.num_rows() - offset);
                    let out = decode(&resource, READ_TABLE, batch.slice(offset, len), row)?;
                    offset += len;
                    row += len as u64;
                    if tx.blocking_send(Ok(out)).is_err() {
                        return Ok(());
                    }
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| self.table_error(READ_TABLE, format!("the decoding task failed: {e}")))?
    }
}

pub(crate) fn table_error(
    resource: &ResourceRef,
    file: &str,
    row: Option<u64>,
    column: Option<String>,
    message: String,
) -> PipelineError {
    PipelineError::Table {
        resource: Box::new(resource.clone()),
        file: file.to_owned(),
        row,
        column,
        message,
    }
}

/// Decodes every row of a batch; the first that does not match `T` is reported with its row
/// (index in the file) and column.
pub(super) fn decode_rows<T: DeserializeOwned>(
    resource: &ResourceRef,
    file: &str,
    batch: RecordBatch,
    first_row: u64,
) -> Result<Vec<T>, PipelineError> {
    let de = serde_arrow::Deserializer::from_record_batch(&batch).map_err(|e| {
        table_error(
            resource,
            file,
            None,
            None,
            format!("unsupported columns: {}", e.message()),
        )
    })?;
    crate::types::columnar(|| decode_items(resource, file, &de, batch.num_rows(), first_row))
}

fn decode_items<T: DeserializeOwned>(
    resource: &ResourceRef,
    file: &str,
    de: &serde_arrow::Deserializer<'_>,
    len: usize,
    first_row: u64,
) -> Result<Vec<T>, PipelineError> {
    let mut rows = Vec::with_capacity(len);
    for (i, item) in de.iter().enumerate() {
        match T::deserialize(item) {
            Ok(row) => rows.push(row),
            Err(_) => {
                // Redo the row with the path tracked, for the column.
                let Some(item) = de.get(i) else { break };
                let (column, message) = match serde_path_to_error::deserialize::<_, T>(item) {
                    Ok(_) => (None, "the row could not be decoded".to_owned()),
                    Err(e) => {
                        let message = e.inner().message().to_owned();
                        let path = e.path().to_string();
                        let column = if path == "." || path.is_empty() {
                            missing_field(&message)
                        } else {
                            Some(path)
                        };
                        (column, message)
                    }
                };
                return Err(table_error(
                    resource,
                    file,
                    Some(first_row + i as u64),
                    column,
                    format!("does not match the row type: {message}"),
                ));
            }
        }
    }
    Ok(rows)
}

/// The field of serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.split("missing field `").nth(1)?;
    Some(rest.split('`').next()?.to_owned())
}

/// The field names of a struct `T`, as serde deserializes them (`None` when `T` is not a
/// plain struct, e.g. one with `#[serde(flatten)]`: then every column is read).
pub(crate) fn struct_fields<T: DeserializeOwned>() -> Option<Vec<String>> {
    let mut fields = None;
    let _ = T::deserialize(Probe(&mut fields));
    fields.map(|f: &[&str]| f.iter().map(|s| (*s).to_owned()).collect())
}

/// A deserializer that records the field list serde asks a struct for, and fails.
struct Probe<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("field probe"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(de::Error::custom("field probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Row {
        a: i64,
        #[serde(rename = "B")]
        b: String,
    }

    #[test]
    fn struct_fields_are_probed() {
        assert_eq!(
            struct_fields::<Row>(),
            Some(vec!["a".to_owned(), "B".to_owned()])
        );
        assert_eq!(struct_fields::<i64>(), None);
    }

    #[test]
    fn data_files() {
        assert!(is_data_file("spark/part-0.parquet"));
        assert!(!is_data_file("spark/_SUCCESS"));
        assert!(!is_data_file(".part-0.parquet.crc"));
    }

    #[test]
    fn missing_field_names_the_column() {
        assert_eq!(
            missing_field("missing field `amount`").as_deref(),
            Some("amount")
        );
    }
}
