//! Typed tables end to end (cmod-runtime feature `tables`): rows in and out through Parquet,
//! schemas, transaction types, against the local Foundry over TLS with the real pipeline client.
//!
//! * in-process pipelines defined below, run with `run_pipeline_with`;
//! * the `pipeline-tables` example as a child process (`example-pipeline-tables`).
//!
//! The 1 GB run is ignored by default (it takes minutes); run it with
//!
//! ```text
//! cargo test --release -p cmod-tests --test pipeline_tables -- --ignored --nocapture
//! ```
//!
//! or, quicker to build, with a release build of the example only (the test process — the
//! generator and the local Foundry — then runs unoptimized):
//!
//! ```text
//! cargo build --release -p pipeline-tables
//! CMOD_TABLES_EXAMPLE=target/release/pipeline-tables \
//!     cargo test -p cmod-tests --test pipeline_tables -- --ignored --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::pin::pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::builder::{Date32Builder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use cmod_local::foundry::{
    DataOptions, LocalFoundry, PipelineResource, ResourceKind, TransactionStatus,
};
use cmod_runtime::pipeline::{
    PipelineError, TableWriteOptions, TransactionType, run_pipeline_with, table_schema,
};
use cmod_runtime::types::{Binary, Date, Decimal, Timestamp};
use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};
use futures_util::TryStreamExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

const IN: &str = "ri.foundry.main.dataset.in";
const OUT: &str = "ri.foundry.main.dataset.out";
const SINK: &str = "ri.foundry.main.dataset.sink";
/// Every wait in this file is bounded by this (the 1 GB run has its own).
const LIMIT: Duration = Duration::from_secs(120);

struct Env {
    foundry: LocalFoundry,
    _dir: tempfile::TempDir,
    vars: HashMap<String, String>,
}

impl Env {
    fn data(&self) -> &cmod_local::foundry::DataStore {
        self.foundry.data()
    }

    fn statuses(&self, rid: &str) -> Vec<TransactionStatus> {
        cmod_tests::foundry::statuses(self.data(), rid)
    }

    async fn run(&self, def: &'static cmod_runtime::pipeline::PipelineDef) -> Result<(), String> {
        let lookup = |k: &str| self.vars.get(k).cloned();
        tokio::time::timeout(
            LIMIT,
            run_pipeline_with(def, &lookup, std::future::pending()),
        )
        .await
        .expect("the pipeline did not finish in time")
        .map_err(|e| e.to_string())
    }

    /// Reads `rid` back through `DatasetInput::rows` (pipeline `read_back`): the rows, as JSON,
    /// and the dataset schema.
    async fn read_back<T: serde::de::DeserializeOwned>(&self, def: ReadBack) -> (Vec<T>, String) {
        let pipeline = match def {
            ReadBack::Sales => cmod_runtime::pipeline_def!(read_sales),
            ReadBack::All => cmod_runtime::pipeline_def!(read_all),
            ReadBack::Daily => cmod_runtime::pipeline_def!(read_daily),
        };
        self.run(pipeline).await.unwrap();
        let rows = self.data().read_file(SINK, "master", "rows.json").unwrap();
        let schema = self
            .data()
            .read_file(SINK, "master", "schema.json")
            .unwrap();
        (
            serde_json::from_slice(&rows).unwrap(),
            String::from_utf8(schema).unwrap(),
        )
    }
}

enum ReadBack {
    Sales,
    All,
    Daily,
}

/// A local Foundry with `in`, `out` (also readable as `back`), `sink`, and the example's
/// `sales` (= `in`) and `daily_totals` (= `out`) aliases.
async fn env() -> Env {
    let (foundry, dir) = cmod_tests::foundry::start(DataOptions::default(), None).await;
    for rid in [IN, OUT, SINK] {
        foundry.data().create_dataset(rid).unwrap();
    }
    let resources: Vec<PipelineResource> = [
        ("in", IN),
        ("out", OUT),
        ("back", OUT),
        ("sink", SINK),
        ("sales", IN),
        ("daily_totals", OUT),
    ]
    .into_iter()
    .map(|(alias, rid)| PipelineResource::new(alias, rid, ResourceKind::Dataset))
    .collect();
    let vars = foundry
        .pipeline_env(&resources)
        .unwrap()
        .into_iter()
        .collect();
    Env {
        foundry,
        _dir: dir,
        vars,
    }
}

// ---- row types ------------------------------------------------------------------------------

/// A row of the generated sales files (the example reads the same columns but `sku`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
struct Sale {
    store: String,
    day: Date,
    sku: String,
    quantity: i64,
    amount: f64,
}

/// The example's output row, as a reader of its dataset declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
struct DailyTotal {
    store: String,
    day: Date,
    sales: i64,
    quantity: i64,
    revenue: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
struct Inner {
    label: String,
    weight: Option<f64>,
}

/// Every Foundry column type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
struct AllTypes {
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
    date: Date,
    timestamp: Timestamp,
    chrono_timestamp: chrono::DateTime<chrono::Utc>,
    list: Vec<String>,
    optional: Option<i64>,
    map: BTreeMap<String, f64>,
    nested: Inner,
    nested_list: Vec<Inner>,
}

fn all_types(i: i64) -> AllTypes {
    let ts =
        chrono::DateTime::from_timestamp_micros(1_700_000_000_000_001 + i * 1_000_003).unwrap();
    AllTypes {
        boolean: i % 2 == 1,
        byte: i8::MIN,
        short: i16::MAX,
        integer: -(i as i32),
        long: i64::MAX - i,
        float: 0.25,
        double: i as f64 * -0.5 - 1e12,
        string: format!("ünïcode {i}"),
        binary: Binary(vec![0, 255, i as u8]),
        decimal: format!("-{i}123456.000000000000000001").parse().unwrap(),
        date: "1999-12-31".parse().unwrap(),
        timestamp: Timestamp(ts),
        chrono_timestamp: ts,
        list: vec!["a".into(), String::new()],
        optional: (i % 3 != 0).then_some(i),
        map: BTreeMap::from([("k".to_owned(), 0.5)]),
        nested: Inner {
            label: "n".into(),
            weight: Some(i as f64),
        },
        nested_list: vec![
            Inner {
                label: "a".into(),
                weight: None,
            };
            (i % 3) as usize
        ],
    }
}

// ---- pipelines --------------------------------------------------------------------------------

/// Serializes what a read-back pipeline saw into the sink.
async fn sink<T: Serialize>(
    input: &DatasetInput,
    out: &DatasetOutput,
    rows: &[T],
) -> Result<(), PipelineError> {
    let schema = input.schema().await?;
    out.write("rows.json", serde_json::to_vec(rows).unwrap())
        .await?;
    out.write("schema.json", serde_json::to_vec(&schema).unwrap())
        .await?;
    Ok(())
}

#[pipeline(input = "back", output = "sink")]
async fn read_sales(back: DatasetInput, out: DatasetOutput) -> Result<(), PipelineError> {
    let rows: Vec<Sale> = back.rows().try_collect().await?;
    sink(&back, &out, &rows).await
}

#[pipeline(input = "back", output = "sink")]
async fn read_all(back: DatasetInput, out: DatasetOutput) -> Result<(), PipelineError> {
    let rows: Vec<AllTypes> = back.rows().try_collect().await?;
    sink(&back, &out, &rows).await
}

#[pipeline(input = "back", output = "sink")]
async fn read_daily(back: DatasetInput, out: DatasetOutput) -> Result<(), PipelineError> {
    let rows: Vec<DailyTotal> = back.rows().try_collect().await?;
    sink(&back, &out, &rows).await
}

/// 250 rows of every type, in small row groups and files (several files, several groups each).
#[pipeline(input = "in", output = "out")]
async fn write_all(_in: DatasetInput, out: DatasetOutput) -> Result<(), PipelineError> {
    let options = TableWriteOptions::default()
        .batch_rows(16)
        .row_group_bytes(2 * 1024)
        .file_bytes(16 * 1024);
    let mut w = out.rows_with::<AllTypes>(options)?;
    for i in 0..250 {
        w.write(&all_types(i)).await?;
    }
    let written = w.finish().await?;
    assert!(written.files.len() > 1, "{written:?}");
    Ok(())
}

async fn copy_sales(input: &DatasetInput, out: &DatasetOutput) -> Result<(), PipelineError> {
    let mut rows = pin!(input.rows::<Sale>());
    let mut w = out.rows::<Sale>()?;
    while let Some(row) = rows.try_next().await? {
        w.write(&row).await?;
    }
    w.finish().await?;
    Ok(())
}

#[pipeline(input = "in", output = "out", transaction(out = "append"))]
async fn copy_append(input: DatasetInput, out: DatasetOutput) -> Result<(), PipelineError> {
    assert_eq!(out.transaction_type(), TransactionType::Append);
    copy_sales(&input, &out).await
}

#[pipeline(input = "in", output = "out")]
async fn copy_snapshot(input: DatasetInput, out: DatasetOutput) -> Result<(), PipelineError> {
    assert_eq!(out.transaction_type(), TransactionType::Snapshot);
    copy_sales(&input, &out).await
}

// ---- the generated input ------------------------------------------------------------------------

/// What the aggregation of a generated file must give.
#[derive(Debug, Default)]
struct Expected {
    rows: u64,
    totals: BTreeMap<(String, Date), (i64, i64, f64)>,
}

fn epoch_day(days: i32) -> Date {
    Date(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Days::new(days as u64))
}

/// Writes a sales Parquet file of about `target_bytes` (snappy, row groups of `group_rows`)
/// with the parquet crate directly; `null_quantity_at` leaves one quantity null.
fn write_sales(
    path: &Path,
    target_bytes: u64,
    group_rows: usize,
    null_quantity_at: Option<u64>,
) -> Expected {
    let schema = Arc::new(Schema::new(vec![
        Field::new("store", DataType::Utf8, false),
        Field::new("day", DataType::Date32, false),
        Field::new("sku", DataType::Utf8, false),
        Field::new("quantity", DataType::Int64, true),
        Field::new("amount", DataType::Float64, false),
    ]));
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(group_rows))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
    let mut expected = Expected::default();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let batch_rows = group_rows.min(65_536);
    let mut i = 0u64;
    loop {
        let (mut store, mut day, mut sku) = (
            StringBuilder::new(),
            Date32Builder::new(),
            StringBuilder::new(),
        );
        let (mut quantity, mut amount) = (Int64Builder::new(), Float64Builder::new());
        for _ in 0..batch_rows {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let s = format!("store-{:03}", seed % 40);
            let d = 19_700 + (i / 50_000 % 365) as i32;
            let q = (seed >> 20) as i64 % 9 + 1;
            let a = q as f64 * 1.25;
            store.append_value(&s);
            day.append_value(d);
            sku.append_value(format!("{seed:016x}"));
            if null_quantity_at == Some(i) {
                quantity.append_null();
            } else {
                quantity.append_value(q);
            }
            amount.append_value(a);
            let t = expected.totals.entry((s, epoch_day(d))).or_default();
            t.0 += 1;
            t.1 += q;
            t.2 += a;
            expected.rows += 1;
            i += 1;
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(store.finish()),
            Arc::new(day.finish()),
            Arc::new(sku.finish()),
            Arc::new(quantity.finish()),
            Arc::new(amount.finish()),
        ];
        w.write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
            .unwrap();
        if (w.bytes_written() + w.in_progress_size()) as u64 >= target_bytes {
            break;
        }
    }
    w.close().unwrap();
    expected
}

/// Seeds `IN` with a generated file at `path` (inside the dataset).
fn seed_sales(env: &Env, path: &str, bytes: u64, null_quantity_at: Option<u64>) -> Expected {
    env.data().put_file(IN, "master", path, b"").unwrap();
    let location = env.data().file_location(IN, "master", path).unwrap();
    write_sales(&location, bytes, 10_000, null_quantity_at)
}

fn daily_rows(expected: &Expected) -> Vec<DailyTotal> {
    expected
        .totals
        .iter()
        .map(|((store, day), (sales, quantity, revenue))| DailyTotal {
            store: store.clone(),
            day: *day,
            sales: *sales,
            quantity: *quantity,
            revenue: *revenue,
        })
        .collect()
}

/// The example binary: the one built with this test, or `CMOD_TABLES_EXAMPLE` (e.g. a release
/// build of `pipeline-tables` when this test runs unoptimized).
fn example() -> tokio::process::Command {
    let bin = std::env::var_os("CMOD_TABLES_EXAMPLE")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_example-pipeline-tables").into());
    let mut cmd = tokio::process::Command::new(bin);
    cmd.env_clear()
        .env("CMOD_PIPELINE_AFTER_SUCCESS", "exit")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

// ---- tests --------------------------------------------------------------------------------------

#[tokio::test]
async fn every_foundry_type_round_trips_through_a_parquet_output() {
    let env = env().await;
    env.run(cmod_runtime::pipeline_def!(write_all))
        .await
        .unwrap();
    let files = env
        .data()
        .list_files(OUT, "master", None, None, None)
        .unwrap()
        .items;
    assert!(
        files.iter().all(|f| f.path.ends_with(".parquet")) && files.len() > 1,
        "{files:?}"
    );
    let (rows, schema) = env.read_back::<AllTypes>(ReadBack::All).await;
    let want: Vec<AllTypes> = (0..250).map(all_types).collect();
    assert_eq!(rows.len(), want.len());
    // Files are listed by path, which is the order they were written in.
    for (i, (got, want)) in rows.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "row {i}");
    }

    // The schema written in the same transaction is the one derived from the row type.
    let derived = serde_json::to_value(table_schema::<AllTypes>().unwrap()).unwrap();
    let written: serde_json::Value = serde_json::from_str(&schema).unwrap();
    assert_eq!(written, derived);
    let types: Vec<&str> = derived["fieldSchemaList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    for t in [
        "BOOLEAN",
        "BYTE",
        "SHORT",
        "INTEGER",
        "LONG",
        "FLOAT",
        "DOUBLE",
        "STRING",
        "BINARY",
        "DECIMAL",
        "DATE",
        "TIMESTAMP",
        "ARRAY",
        "MAP",
        "STRUCT",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    assert_eq!(env.statuses(OUT), [TransactionStatus::Committed]);
}

#[tokio::test]
async fn append_adds_to_the_previous_run_and_snapshot_replaces_it() {
    let env = env().await;
    let expected = seed_sales(&env, "sales/part-0.parquet", 40_000, None);
    let n = expected.rows as usize;

    env.run(cmod_runtime::pipeline_def!(copy_snapshot))
        .await
        .unwrap();
    env.run(cmod_runtime::pipeline_def!(copy_append))
        .await
        .unwrap();
    let (rows, _) = env.read_back::<Sale>(ReadBack::Sales).await;
    assert_eq!(rows.len(), 2 * n, "APPEND added to the SNAPSHOT's rows");
    env.run(cmod_runtime::pipeline_def!(copy_append))
        .await
        .unwrap();
    let (rows, _) = env.read_back::<Sale>(ReadBack::Sales).await;
    assert_eq!(rows.len(), 3 * n, "a second APPEND added again");
    let types: Vec<_> = env
        .data()
        .transactions(OUT)
        .unwrap()
        .into_iter()
        .map(|t| format!("{:?}", t.transaction_type))
        .collect();
    assert_eq!(types, ["Append", "Append", "Snapshot"], "newest first");

    env.run(cmod_runtime::pipeline_def!(copy_snapshot))
        .await
        .unwrap();
    let (rows, _) = env.read_back::<Sale>(ReadBack::Sales).await;
    assert_eq!(rows.len(), n, "SNAPSHOT replaced everything");
    let files = env
        .data()
        .list_files(OUT, "master", None, None, None)
        .unwrap()
        .items;
    assert_eq!(files.len(), 1, "{files:?}");
}

#[tokio::test]
async fn a_row_that_does_not_match_names_the_file_row_and_column() {
    let env = env().await;
    seed_sales(&env, "sales/a.parquet", 20_000, None);
    seed_sales(&env, "sales/b.parquet", 20_000, Some(7_777));
    let e = env
        .run(cmod_runtime::pipeline_def!(copy_snapshot))
        .await
        .unwrap_err();
    assert!(
        e.contains("file `sales/b.parquet`, row 7777, column `quantity`"),
        "{e}"
    );
    assert_eq!(env.statuses(OUT), [TransactionStatus::Aborted]);
}

#[tokio::test]
async fn example_aggregates_typed_parquet_rows_with_a_schema() {
    let env = env().await;
    let expected = seed_sales(&env, "sales/part-0.parquet", 300_000, None);
    let out = tokio::time::timeout(LIMIT, example().envs(&env.vars).output())
        .await
        .expect("the example did not finish in time")
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (rows, schema) = env.read_back::<DailyTotal>(ReadBack::Daily).await;
    assert_eq!(rows, daily_rows(&expected));
    let written: serde_json::Value = serde_json::from_str(&schema).unwrap();
    assert_eq!(
        written,
        serde_json::to_value(table_schema::<DailyTotal>().unwrap()).unwrap()
    );
}

/// Peak resident memory of a process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::test]
#[ignore = "1 GB of Parquet: run in release (see the file's docs)"]
async fn example_aggregates_1_gb_of_parquet_under_128_mib() {
    const GB: u64 = 1024 * 1024 * 1024;
    let env = env().await;
    let t = Instant::now();
    let expected = tokio::task::spawn_blocking({
        env.data()
            .put_file(IN, "master", "sales/big.parquet", b"")
            .unwrap();
        let path = env
            .data()
            .file_location(IN, "master", "sales/big.parquet")
            .unwrap();
        move || write_sales(&path, GB, 1_000_000, None)
    })
    .await
    .unwrap();
    let size = std::fs::metadata(
        env.data()
            .file_location(IN, "master", "sales/big.parquet")
            .unwrap(),
    )
    .unwrap()
    .len();
    eprintln!(
        "generated {size} bytes, {} rows in {:?}",
        expected.rows,
        t.elapsed()
    );
    let mut child = example()
        .envs(&env.vars)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(1200);
    let mut peak = 0u64;
    let status = loop {
        if let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the example did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let took = started.elapsed();
    assert!(status.success());
    eprintln!(
        "1 GB run: {size} bytes, {} rows in {took:?} ({:.0} rows/s, {:.1} MB/s), peak RSS {peak} KiB",
        expected.rows,
        expected.rows as f64 / took.as_secs_f64(),
        size as f64 / 1e6 / took.as_secs_f64()
    );
    assert!(peak > 0, "no memory reading of the child");
    assert!(peak < 128 * 1024, "peak RSS {peak} KiB over 128 MiB");
    let (rows, _) = env.read_back::<DailyTotal>(ReadBack::Daily).await;
    assert_eq!(rows, daily_rows(&expected));
}

#[tokio::test]
async fn a_csv_dataset_reads_through_read_table_with_the_same_typed_api() {
    let env = env().await;
    env.data()
        .put_file(
            IN,
            "master",
            "sales/jan.csv",
            // Columns in the schema's order (the derived schema orders them by name).
            b"amount,day,quantity,sku,store\n3.75,2024-01-02,3,a1,store-001\n1.25,2024-01-03,1,b2,store-002\n",
        )
        .unwrap();
    // The schema the platform applies to the CSV files: the one derived from the row type.
    let schema: cmod_local::foundry::DatasetSchema =
        serde_json::from_value(serde_json::to_value(table_schema::<Sale>().unwrap()).unwrap())
            .unwrap();
    env.data()
        .put_schema(
            IN,
            "master",
            None,
            cmod_local::foundry::DataframeReader::Csv,
            schema,
        )
        .await
        .unwrap();
    env.run(cmod_runtime::pipeline_def!(copy_snapshot))
        .await
        .unwrap();
    let (rows, _) = env.read_back::<Sale>(ReadBack::Sales).await;
    assert_eq!(
        rows,
        [
            Sale {
                store: "store-001".into(),
                day: "2024-01-02".parse().unwrap(),
                sku: "a1".into(),
                quantity: 3,
                amount: 3.75,
            },
            Sale {
                store: "store-002".into(),
                day: "2024-01-03".parse().unwrap(),
                sku: "b2".into(),
                quantity: 1,
                amount: 1.25,
            },
        ]
    );
}

/// The transaction `read_since` reads from (only one test uses it).
static SINCE: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// Reads only what the transactions from [`SINCE`] on added.
#[pipeline(input = "back", output = "sink")]
async fn read_since(back: DatasetInput, out: DatasetOutput) -> Result<(), PipelineError> {
    let from = SINCE.lock().unwrap().clone();
    let rows: Vec<Sale> = back
        .table()
        .from_transaction(from)
        .rows()
        .try_collect()
        .await?;
    out.write("rows.json", serde_json::to_vec(&rows).unwrap())
        .await?;
    Ok(())
}

#[tokio::test]
async fn an_incremental_read_gets_only_what_later_transactions_added() {
    let env = env().await;
    let expected = seed_sales(&env, "sales/part-0.parquet", 20_000, None);
    env.run(cmod_runtime::pipeline_def!(copy_snapshot))
        .await
        .unwrap();
    env.run(cmod_runtime::pipeline_def!(copy_append))
        .await
        .unwrap();
    // Newest first: the APPEND, then the SNAPSHOT.
    let append = env.data().transactions(OUT).unwrap()[0].rid.clone();
    *SINCE.lock().unwrap() = append;
    env.run(cmod_runtime::pipeline_def!(read_since))
        .await
        .unwrap();
    let rows: Vec<Sale> =
        serde_json::from_slice(&env.data().read_file(SINK, "master", "rows.json").unwrap())
            .unwrap();
    assert_eq!(rows.len() as u64, expected.rows, "only the APPEND's rows");
}
