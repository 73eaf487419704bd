//! `GET /v2/datasets/{rid}/readTable`: a dataset's view as one table, as an Arrow IPC stream or
//! CSV (header line, then rows).
//!
//! The table is built from the view's files (or, with `startTransactionRid` /
//! `endTransactionRid`, the files the transactions of that range added): `*.parquet` files,
//! read row group by row group with the `parquet` crate, and `*.csv` files (header line first,
//! columns in the schema's order), read with `arrow-csv`. Other files, and files whose name
//! starts with `_` (`_SUCCESS`, …), are not part of the table. The columns are those of the
//! stored schema (`putSchema`), converted to Arrow types (table below); without one, those of the
//! first Parquet file, or the header of the first CSV file as nullable strings. Parquet columns
//! are cast to the table's types; a column missing from a file is null there (when nullable).
//!
//! | Foundry type | Arrow type |
//! |---|---|
//! | BOOLEAN, BYTE, SHORT, INTEGER, LONG | Boolean, Int8, Int16, Int32, Int64 |
//! | FLOAT, DOUBLE | Float32, Float64 |
//! | STRING, BINARY | Utf8, Binary |
//! | DATE, TIMESTAMP | Date32, Timestamp(Microsecond, "UTC") |
//! | DECIMAL(p, s) | Decimal128(p, s) |
//! | ARRAY, MAP, STRUCT | List (item `element`), Map (`entries`: `key`, `value`), Struct |
//!
//! The response is streamed: files are read on a blocking thread one batch (8192 rows) at a
//! time, encoded, and sent through a bounded channel (4 chunks of at least 64 KiB: one encoded
//! batch, or several small ones), so memory stays bounded whatever the dataset's size. Errors found before the first chunk (bad parameters,
//! unreadable files, a file whose columns do not match) are Foundry JSON errors; an error later
//! in the stream (a CSV value that does not parse as its column's type) ends the response
//! early, and is logged naming the file.
//!
//! Needs the `tables` cargo feature (Arrow and Parquet); without it the endpoint answers 501
//! `ReadTableNotEnabled`, naming the feature.

use std::sync::Arc;

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::HeaderMap;
#[cfg(not(feature = "tables"))]
use axum::http::StatusCode;
use axum::response::Response;

use super::datasets::{READ, authorize_rid};
use super::{ApiError, FoundryState};

/// `readTable` without the `tables` feature: a clear 501.
#[cfg(not(feature = "tables"))]
pub(crate) async fn read_table(
    State(state): State<Arc<FoundryState>>,
    UrlPath(rid): UrlPath<String>,
    RawQuery(_query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "NOT_IMPLEMENTED",
        "ReadTableNotEnabled",
    )
    .param("datasetRid", rid)
    .param(
        "detail",
        "this cmod-local was built without the `tables` feature: readTable needs it \
         (cargo install cmod-local --features tables, or features = [\"tables\"] on the \
         cmod-local dependency)",
    ))
}

/// `readTable` with the `tables` feature.
#[cfg(feature = "tables")]
pub(crate) async fn read_table(
    State(state): State<Arc<FoundryState>>,
    UrlPath(rid): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize_rid(&state, &headers, READ, &rid)?;
    imp::read_table(state, rid, query.unwrap_or_default()).await
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space, `%XX` a byte).
#[cfg_attr(not(feature = "tables"), allow(dead_code))]
fn decode_component(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(feature = "tables")]
mod imp {
    use std::fs::File;
    use std::io::{BufRead, BufReader};
    use std::path::PathBuf;
    use std::sync::Arc;

    use arrow_array::{ArrayRef, RecordBatch, new_null_array};
    use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
    use axum::body::Body;
    use axum::http::{StatusCode, header};
    use axum::response::Response;
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::decode_component;
    use crate::foundry::datasets::{MASTER, api_error};
    use crate::foundry::store::{
        DatasetSchema, FieldSchema, FieldType, StoreError, TransactionRange,
    };
    use crate::foundry::{ApiError, FoundryState};

    const BATCH_ROWS: usize = 8192;
    const CHUNK: usize = 64 * 1024;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Format {
        Arrow,
        Csv,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Parquet,
        Csv,
    }

    /// One file of the table.
    #[derive(Debug)]
    struct TableFile {
        path: String,
        location: PathBuf,
        kind: Kind,
    }

    /// The parsed query of a readTable request.
    #[derive(Debug, Default)]
    struct Params {
        format: Option<String>,
        branch: Option<String>,
        columns: Vec<String>,
        range: TransactionRange,
        row_limit: Option<String>,
    }

    fn parse(query: &str) -> Result<Params, ApiError> {
        let mut p = Params::default();
        for pair in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(k), Some(v)) = (decode_component(k), decode_component(v)) else {
                return Err(ApiError::invalid_argument("InvalidArgument").param(
                    "detail",
                    format!("query parameter `{pair}` is not valid UTF-8"),
                ));
            };
            match k.as_str() {
                "format" => p.format = Some(v),
                "branchName" => p.branch = Some(v),
                // Repeated (`columns=a&columns=b`, the SDKs) or comma-separated (the curl example
                // of Foundry's documentation).
                "columns" => p
                    .columns
                    .extend(v.split(',').filter(|c| !c.is_empty()).map(str::to_owned)),
                "startTransactionRid" => p.range.start = Some(v),
                "endTransactionRid" => p.range.end = Some(v),
                "rowLimit" => p.row_limit = Some(v),
                _ => {}
            }
        }
        Ok(p)
    }

    fn bad_param(name: &str, value: &str, expected: &str) -> ApiError {
        ApiError::invalid_argument("InvalidArgument")
            .param("parameter", name)
            .param("value", value)
            .param("detail", format!("`{name}` must be {expected}"))
    }

    fn read_error(rid: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "ReadTableError",
        )
        .param("datasetRid", rid)
        .param("message", message.into())
    }

    pub(super) async fn read_table(
        state: Arc<FoundryState>,
        rid: String,
        query: String,
    ) -> Result<Response, ApiError> {
        let p = parse(&query)?;
        let format = match p.format.as_deref() {
            Some("ARROW") => Format::Arrow,
            Some("CSV") => Format::Csv,
            Some(other) => return Err(bad_param("format", other, "ARROW or CSV")),
            None => return Err(bad_param("format", "", "given: ARROW or CSV")),
        };
        let row_limit = match p.row_limit.as_deref() {
            None => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| bad_param("rowLimit", v, "a non-negative integer"))?,
            ),
        };
        let branch = p.branch.clone().unwrap_or_else(|| MASTER.to_owned());
        let data = &state.data;
        if !data.dataset_exists(&rid) {
            return Err(ApiError::not_found("DatasetNotFound").param("datasetRid", rid));
        }
        let files: Vec<TableFile> = data
            .view_files(&rid, &branch, &p.range)
            .map_err(api_error)?
            .into_iter()
            .filter_map(|f| {
                let name = f.path.rsplit('/').next().unwrap_or(&f.path);
                if name.starts_with('_') {
                    return None;
                }
                let lower = name.to_ascii_lowercase();
                let kind = if lower.ends_with(".parquet") {
                    Kind::Parquet
                } else if lower.ends_with(".csv") {
                    Kind::Csv
                } else {
                    return None;
                };
                let location = data.file_location(&rid, &branch, &f.path).ok()?;
                Some(TableFile {
                    path: f.path,
                    location,
                    kind,
                })
            })
            .collect();
        let stored = match data.get_schema(&rid, &branch, p.range.end.as_deref()) {
            Ok(s) => Some(s.schema),
            Err(StoreError::NotFound {
                name: "SchemaNotFound",
                ..
            }) => None,
            Err(e) => return Err(api_error(e)),
        };

        // Everything that reads files runs on a blocking thread.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, ApiError>>(4);
        let columns = p.columns;
        let rid2 = rid.clone();
        let branch2 = branch.clone();
        tokio::task::spawn_blocking(move || {
            let send_err = |e: ApiError| {
                let _ = tx.blocking_send(Err(e));
            };
            let plan = match Plan::new(&rid2, &branch2, stored, files, &columns, format) {
                Ok(p) => p,
                Err(e) => return send_err(e),
            };
            if let Err(e) = plan.run(&rid2, format, row_limit, &tx) {
                send_err(e);
            }
        });
        // The first chunk (or error) decides the status.
        let first = match rx.recv().await {
            Some(Ok(b)) => b,
            Some(Err(e)) => return Err(e),
            None => return Err(read_error(&rid, "the table reader stopped")),
        };
        let rest = futures_util::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Some(Ok(b)) => Some((Ok(b), rx)),
                Some(Err(e)) => Some((
                    Err(std::io::Error::other(format!(
                        "readTable failed mid-stream: {}",
                        e.error_name
                    ))),
                    rx,
                )),
                None => None,
            }
        });
        let body = futures_util::StreamExt::chain(
            futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }),
            rest,
        );
        let mut response = Response::new(Body::from_stream(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/octet-stream"),
        );
        Ok(response)
    }

    /// The table to produce: its (projected) schema and, per file, how to read it.
    struct Plan {
        /// The whole table's schema (before projection).
        table: SchemaRef,
        /// The indices of the requested columns in `table`.
        projection: Vec<usize>,
        /// The output schema.
        out: SchemaRef,
        files: Vec<TableFile>,
    }

    impl Plan {
        fn new(
            rid: &str,
            branch: &str,
            stored: Option<DatasetSchema>,
            files: Vec<TableFile>,
            columns: &[String],
            format: Format,
        ) -> Result<Self, ApiError> {
            let table: SchemaRef = match stored {
                Some(s) => Arc::new(to_arrow(&s)),
                None => match files.first() {
                    Some(f) => file_schema(rid, f)?,
                    None => {
                        return Err(ApiError::not_found("SchemaNotFound")
                            .param("datasetRid", rid)
                            .param("branchName", branch)
                            .param(
                                "detail",
                                "the dataset has no schema (putSchema) and its view has no \
                                 .parquet or .csv file to take one from",
                            ));
                    }
                },
            };
            let projection: Vec<usize> = if columns.is_empty() {
                (0..table.fields().len()).collect()
            } else {
                columns
                    .iter()
                    .map(|c| {
                        table.index_of(c).map_err(|_| {
                            ApiError::invalid_argument("ColumnNotFound")
                                .param("datasetRid", rid)
                                .param("column", c.as_str())
                                .param(
                                    "detail",
                                    format!(
                                        "the table has no column `{c}` (columns: {})",
                                        table
                                            .fields()
                                            .iter()
                                            .map(|f| f.name().as_str())
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    ),
                                )
                        })
                    })
                    .collect::<Result<_, _>>()?
            };
            let out =
                Arc::new(table.project(&projection).map_err(|e| {
                    read_error(rid, format!("projecting the requested columns: {e}"))
                })?);
            if format == Format::Csv
                && let Some(f) = out.fields().iter().find(|f| f.data_type().is_nested())
            {
                return Err(ApiError::invalid_argument("ColumnTypesNotSupported")
                    .param("datasetRid", rid)
                    .param(
                        "detail",
                        format!(
                            "column `{}` is {}: CSV has no nested types, read it with \
                             format=ARROW or leave it out with `columns`",
                            f.name(),
                            f.data_type()
                        ),
                    ));
            }
            // Check every file's columns now, so a mismatch is an error response rather than a
            // truncated stream.
            for f in &files {
                let fs = file_schema(rid, f)?;
                if f.kind == Kind::Csv {
                    // Positional: the header must name the table's columns, in order.
                    let have: Vec<&str> = fs.fields().iter().map(|f| f.name().as_str()).collect();
                    let want: Vec<&str> =
                        table.fields().iter().map(|f| f.name().as_str()).collect();
                    if have != want {
                        return Err(read_error(
                            rid,
                            format!(
                                "{}: the header names the columns {have:?}, the table has \
                                 {want:?} (CSV columns are read in the schema's order)",
                                f.path
                            ),
                        ));
                    }
                    continue;
                }
                for i in &projection {
                    let want = table.field(*i);
                    match fs.field_with_name(want.name()) {
                        Ok(have) if castable(have, want) => {}
                        Ok(have) => {
                            return Err(read_error(
                                rid,
                                format!(
                                    "{}: column `{}` is {} in the file, which cannot be read \
                                     as the table's {}",
                                    f.path,
                                    want.name(),
                                    have.data_type(),
                                    want.data_type()
                                ),
                            ));
                        }
                        Err(_) if f.kind == Kind::Parquet && want.is_nullable() => {}
                        Err(_) => {
                            return Err(read_error(
                                rid,
                                format!("{}: no column `{}` in the file", f.path, want.name()),
                            ));
                        }
                    }
                }
            }
            Ok(Self {
                table,
                projection,
                out,
                files,
            })
        }

        /// Reads every file and sends the encoded table through `tx`.
        fn run(
            &self,
            rid: &str,
            format: Format,
            row_limit: Option<u64>,
            tx: &tokio::sync::mpsc::Sender<Result<bytes::Bytes, ApiError>>,
        ) -> Result<(), ApiError> {
            let mut enc = Encoder::new(rid, format, &self.out)?;
            let mut remaining = row_limit.unwrap_or(u64::MAX);
            let send = |enc: &mut Encoder, force: bool| -> bool {
                if enc.pending() < CHUNK && !force {
                    return true;
                }
                tx.blocking_send(Ok(bytes::Bytes::from(enc.take()))).is_ok()
            };
            'files: for f in &self.files {
                if remaining == 0 {
                    break;
                }
                let batches = self.batches(rid, f)?;
                for batch in batches {
                    let batch = batch?;
                    let take = (batch.num_rows() as u64).min(remaining) as usize;
                    let batch = if take < batch.num_rows() {
                        batch.slice(0, take)
                    } else {
                        batch
                    };
                    remaining -= take as u64;
                    enc.write(rid, &batch)?;
                    if !send(&mut enc, false) {
                        // The client went away.
                        return Ok(());
                    }
                    if remaining == 0 {
                        break 'files;
                    }
                }
            }
            enc.finish(rid)?;
            send(&mut enc, true);
            Ok(())
        }

        /// The batches of one file, in the output schema.
        fn batches(
            &self,
            rid: &str,
            f: &TableFile,
        ) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, ApiError>> + '_>, ApiError>
        {
            let open =
                File::open(&f.location).map_err(|e| read_error(rid, format!("{}: {e}", f.path)))?;
            let rid = rid.to_owned();
            let path = f.path.clone();
            let out = self.out.clone();
            match f.kind {
                Kind::Parquet => {
                    let builder = ParquetRecordBatchReaderBuilder::try_new(open)
                        .map_err(|e| read_error(&rid, format!("{path}: {e}")))?;
                    let file = builder.schema().clone();
                    let roots: Vec<usize> = out
                        .fields()
                        .iter()
                        .filter_map(|o| file.index_of(o.name()).ok())
                        .collect();
                    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
                    let reader = builder
                        .with_projection(mask)
                        .with_batch_size(BATCH_ROWS)
                        .build()
                        .map_err(|e| read_error(&rid, format!("{path}: {e}")))?;
                    Ok(Box::new(reader.map(move |b| {
                        let b = b.map_err(|e| read_error(&rid, format!("{path}: {e}")))?;
                        conform(&rid, &path, &b, &out)
                    })))
                }
                Kind::Csv => {
                    // CSV columns are positional: read with the table's schema when it has one
                    // (the header is checked against it in `file_schema`), else as strings.
                    let reader = arrow_csv::ReaderBuilder::new(self.table.clone())
                        .with_header(true)
                        .with_batch_size(BATCH_ROWS)
                        .with_projection(self.projection.clone())
                        .build(open)
                        .map_err(|e| read_error(&rid, format!("{path}: {e}")))?;
                    Ok(Box::new(reader.map(move |b| {
                        let b = b.map_err(|e| {
                            let e = read_error(&rid, format!("{path}: {e}"));
                            tracing::warn!(file = %path, "readTable: {:?}", e.parameters);
                            e
                        })?;
                        RecordBatch::try_new(out.clone(), b.columns().to_vec())
                            .map_err(|e| read_error(&rid, format!("{path}: {e}")))
                    })))
                }
            }
        }
    }

    /// `batch` (columns by name) as a batch of `out`: columns cast to its types, missing ones
    /// null.
    fn conform(
        rid: &str,
        path: &str,
        batch: &RecordBatch,
        out: &SchemaRef,
    ) -> Result<RecordBatch, ApiError> {
        let columns: Vec<ArrayRef> = out
            .fields()
            .iter()
            .map(|f| match batch.column_by_name(f.name()) {
                Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
                Some(c) => arrow_cast::cast(c, f.data_type())
                    .map_err(|e| read_error(rid, format!("{path}: column `{}`: {e}", f.name()))),
                None => Ok(new_null_array(f.data_type(), batch.num_rows())),
            })
            .collect::<Result<_, _>>()?;
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(out.clone(), columns, &options)
            .map_err(|e| read_error(rid, format!("{path}: {e}")))
    }

    fn castable(have: &Field, want: &Field) -> bool {
        have.data_type() == want.data_type()
            || arrow_cast::can_cast_types(have.data_type(), want.data_type())
    }

    /// A file's own columns: a Parquet file's Arrow schema, or a CSV file's header (as nullable
    /// strings).
    fn file_schema(rid: &str, f: &TableFile) -> Result<SchemaRef, ApiError> {
        let open =
            File::open(&f.location).map_err(|e| read_error(rid, format!("{}: {e}", f.path)))?;
        match f.kind {
            Kind::Parquet => Ok(ParquetRecordBatchReaderBuilder::try_new(open)
                .map_err(|e| read_error(rid, format!("{}: {e}", f.path)))?
                .schema()
                .clone()),
            Kind::Csv => {
                let mut header = String::new();
                BufReader::new(open)
                    .read_line(&mut header)
                    .map_err(|e| read_error(rid, format!("{}: {e}", f.path)))?;
                let fields: Vec<Field> = split_header(&header)
                    .into_iter()
                    .map(|name| Field::new(name, DataType::Utf8, true))
                    .collect();
                Ok(Arc::new(Schema::new(fields)))
            }
        }
    }

    /// The names of a CSV header line: comma-separated, `"`-quoted with `""` escapes.
    fn split_header(header: &str) -> Vec<String> {
        let line = header.trim_end_matches(['\r', '\n']);
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    cur.push('"');
                    chars.next();
                }
                ('"', _) => quoted = !quoted,
                (',', false) => out.push(std::mem::take(&mut cur)),
                (c, _) => cur.push(c),
            }
        }
        out.push(cur);
        out
    }

    /// Encodes batches as an Arrow IPC stream or CSV into a buffer drained by the caller.
    enum Encoder {
        Arrow(Box<arrow_ipc::writer::StreamWriter<Vec<u8>>>),
        Csv(Box<arrow_csv::Writer<Sink>>, Sink),
    }

    /// A writer appending to a buffer the encoder's owner drains (the CSV writer flushes after
    /// every batch but gives no access to its writer).
    #[derive(Clone, Default)]
    struct Sink(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Encoder {
        fn new(rid: &str, format: Format, schema: &SchemaRef) -> Result<Self, ApiError> {
            Ok(match format {
                Format::Arrow => Self::Arrow(Box::new(
                    arrow_ipc::writer::StreamWriter::try_new(Vec::new(), schema)
                        .map_err(|e| read_error(rid, format!("encoding Arrow: {e}")))?,
                )),
                Format::Csv => {
                    let sink = Sink::default();
                    let mut w = arrow_csv::WriterBuilder::new()
                        .with_header(true)
                        .build(sink.clone());
                    // The header line, even for an empty table.
                    w.write(&RecordBatch::new_empty(schema.clone()))
                        .map_err(|e| read_error(rid, format!("encoding CSV: {e}")))?;
                    Self::Csv(Box::new(w), sink)
                }
            })
        }

        fn write(&mut self, rid: &str, batch: &RecordBatch) -> Result<(), ApiError> {
            match self {
                Self::Arrow(w) => w.write(batch),
                Self::Csv(w, _) => w.write(batch),
            }
            .map_err(|e| read_error(rid, format!("encoding the table: {e}")))
        }

        fn finish(&mut self, rid: &str) -> Result<(), ApiError> {
            match self {
                Self::Arrow(w) => w
                    .finish()
                    .map_err(|e| read_error(rid, format!("encoding the table: {e}"))),
                Self::Csv(..) => Ok(()),
            }
        }

        /// Bytes encoded and not taken yet.
        fn pending(&mut self) -> usize {
            match self {
                Self::Arrow(w) => w.get_mut().len(),
                Self::Csv(_, sink) => sink.0.borrow().len(),
            }
        }

        /// Takes the bytes encoded so far.
        fn take(&mut self) -> Vec<u8> {
            match self {
                Self::Arrow(w) => std::mem::take(w.get_mut()),
                Self::Csv(_, sink) => std::mem::take(&mut *sink.0.borrow_mut()),
            }
        }
    }

    /// The Arrow schema of a Foundry dataset schema (table in the module docs).
    fn to_arrow(s: &DatasetSchema) -> Schema {
        Schema::new(
            s.field_schema_list
                .iter()
                .map(|f| field(f.name.as_deref().unwrap_or_default(), f))
                .collect::<Vec<_>>(),
        )
    }

    fn field(name: &str, f: &FieldSchema) -> Field {
        Field::new(name, data_type(f), f.nullable)
    }

    fn data_type(f: &FieldSchema) -> DataType {
        let sub = |s: &Option<Box<FieldSchema>>, name: &str, nullable: Option<bool>| match s {
            Some(s) => {
                let mut fl = field(name, s);
                if let Some(n) = nullable {
                    fl = fl.with_nullable(n);
                }
                fl
            }
            None => Field::new(name, DataType::Utf8, true),
        };
        match f.field_type {
            FieldType::Boolean => DataType::Boolean,
            FieldType::Byte => DataType::Int8,
            FieldType::Short => DataType::Int16,
            FieldType::Integer => DataType::Int32,
            FieldType::Long => DataType::Int64,
            FieldType::Float => DataType::Float32,
            FieldType::Double => DataType::Float64,
            FieldType::String => DataType::Utf8,
            FieldType::Binary => DataType::Binary,
            FieldType::Date => DataType::Date32,
            FieldType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            FieldType::Decimal => {
                DataType::Decimal128(f.precision.unwrap_or(38), f.scale.unwrap_or(18))
            }
            FieldType::Array => DataType::List(Arc::new(sub(&f.array_subtype, "element", None))),
            FieldType::Map => {
                let entries = Fields::from(vec![
                    sub(&f.map_key_type, "key", Some(false)),
                    sub(&f.map_value_type, "value", None),
                ]);
                DataType::Map(
                    Arc::new(Field::new("entries", DataType::Struct(entries), false)),
                    false,
                )
            }
            FieldType::Struct => DataType::Struct(
                f.sub_schemas
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, s)| field(&s.name.clone().unwrap_or_else(|| format!("_{i}")), s))
                    .collect::<Vec<_>>()
                    .into(),
            ),
        }
    }
}
