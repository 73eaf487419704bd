//! The typed-tables benchmark (cmod-runtime feature `tables`): rows/s and MB/s of typed reads
//! and writes through cmod against the local Foundry over TLS, next to the floor — the same
//! data read and written with the `parquet` crate directly on a local file.
//!
//! ```text
//! cargo run --release -p cmod-bench --features tables --bin tables-bench               # 5M rows
//! cargo run --release -p cmod-bench --features tables --bin tables-bench -- \
//!     --rows 5000000 --write BENCHMARKS.md
//! ```
//!
//! Not part of `cargo test`; asserts no timings (it checks the sums it reads).

use std::collections::HashMap;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow_array::builder::{Date32Builder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use cmod_local::foundry::{
    DataOptions, LocalFoundry, LocalFoundryOptions, PipelineResource, ResourceKind,
};
use cmod_runtime::pipeline::{PipelineError, run_pipeline_with};
use cmod_runtime::types::Date;
use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};
use futures_util::TryStreamExt;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

const IN: &str = "ri.foundry.main.dataset.bench-in";
const OUT: &str = "ri.foundry.main.dataset.bench-out";
const SINK: &str = "ri.foundry.main.dataset.bench-sink";
const START: &str = "<!-- tables-bench:start -->";
const END: &str = "<!-- tables-bench:end -->";

/// A row: the generated input's columns.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Sale {
    store: String,
    day: Date,
    sku: String,
    quantity: i64,
    amount: f64,
}

/// The columns the read scenarios project (all but `sku`), as a row type.
#[derive(Debug, serde::Deserialize)]
struct SaleRead {
    #[allow(dead_code)]
    store: String,
    #[allow(dead_code)]
    day: Date,
    quantity: i64,
    #[allow(dead_code)]
    amount: f64,
}

const READ_COLUMNS: [&str; 4] = ["store", "day", "quantity", "amount"];

static SUM: AtomicI64 = AtomicI64::new(0);
static ROWS: AtomicU64 = AtomicU64::new(0);

fn sale(i: u64) -> Sale {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491_4f6c_dd1d;
    x ^= x >> 29;
    let quantity = (x % 9) as i64 + 1;
    Sale {
        store: format!("store-{:03}", x % 40),
        day: Date(
            chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default()
                + chrono::Days::new(i / 50_000 % 365),
        ),
        sku: format!("{x:016x}"),
        quantity,
        amount: quantity as f64 * 1.25,
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("store", DataType::Utf8, false),
        Field::new("day", DataType::Date32, false),
        Field::new("sku", DataType::Utf8, false),
        Field::new("quantity", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
    ]))
}

/// The floor writer: arrow builders filled by hand, the parquet crate's `ArrowWriter`, snappy.
fn floor_write(path: &Path, rows: u64) -> Result<i64, String> {
    let schema = schema();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut w =
        ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| e.to_string())?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let mut sum = 0i64;
    let mut i = 0u64;
    while i < rows {
        let n = 8192.min(rows - i);
        let (mut store, mut day, mut sku) = (
            StringBuilder::new(),
            Date32Builder::new(),
            StringBuilder::new(),
        );
        let (mut quantity, mut amount) = (Int64Builder::new(), Float64Builder::new());
        for j in i..i + n {
            let s = sale(j);
            store.append_value(&s.store);
            day.append_value((s.day.0 - epoch).num_days() as i32);
            sku.append_value(&s.sku);
            quantity.append_value(s.quantity);
            amount.append_value(s.amount);
            sum += s.quantity;
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(store.finish()),
            Arc::new(day.finish()),
            Arc::new(sku.finish()),
            Arc::new(quantity.finish()),
            Arc::new(amount.finish()),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())?;
        w.write(&batch).map_err(|e| e.to_string())?;
        i += n;
    }
    w.close().map_err(|e| e.to_string())?;
    Ok(sum)
}

/// The floor reader: the parquet crate's reader on the local file, the same four columns,
/// summing `quantity`.
fn floor_read(path: &Path) -> Result<(u64, i64), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| e.to_string())?;
    let roots: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| READ_COLUMNS.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(8192)
        .build()
        .map_err(|e| e.to_string())?;
    let (mut rows, mut sum) = (0u64, 0i64);
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        rows += batch.num_rows() as u64;
        let q = batch
            .column_by_name("quantity")
            .ok_or("no quantity column")?
            .as_primitive::<Int64Type>();
        sum += q.values().iter().sum::<i64>();
    }
    Ok((rows, sum))
}

#[pipeline(input = "in", output = "sink")]
async fn read_rows(input: DatasetInput, _sink: DatasetOutput) -> Result<(), PipelineError> {
    let mut rows = pin!(input.rows::<SaleRead>());
    let (mut n, mut sum) = (0u64, 0i64);
    while let Some(r) = rows.try_next().await? {
        n += 1;
        sum += r.quantity;
    }
    ROWS.store(n, Ordering::SeqCst);
    SUM.store(sum, Ordering::SeqCst);
    Ok(())
}

#[pipeline(input = "in", output = "sink")]
async fn read_batches(input: DatasetInput, _sink: DatasetOutput) -> Result<(), PipelineError> {
    let mut batches = pin!(input.table().columns(READ_COLUMNS).record_batches());
    let (mut n, mut sum) = (0u64, 0i64);
    while let Some(b) = batches.try_next().await? {
        n += b.num_rows() as u64;
        if let Some(q) = b.column_by_name("quantity") {
            sum += q.as_primitive::<Int64Type>().values().iter().sum::<i64>();
        }
    }
    ROWS.store(n, Ordering::SeqCst);
    SUM.store(sum, Ordering::SeqCst);
    Ok(())
}

#[pipeline(input = "in", output = "out")]
async fn write_rows(_input: DatasetInput, out: DatasetOutput) -> Result<(), PipelineError> {
    let rows = ROWS.load(Ordering::SeqCst);
    let mut w = out.rows::<Sale>()?;
    for i in 0..rows {
        w.write(&sale(i)).await?;
    }
    w.finish().await?;
    Ok(())
}

struct Measure {
    name: &'static str,
    rows: u64,
    bytes: u64,
    took: Duration,
}

impl Measure {
    fn row(&self, floor: Option<&Measure>) -> String {
        let rps = self.rows as f64 / self.took.as_secs_f64();
        let mbps = self.bytes as f64 / 1e6 / self.took.as_secs_f64();
        let ratio = floor
            .map(|f| format!("{:.2}", rps / (f.rows as f64 / f.took.as_secs_f64())))
            .unwrap_or_else(|| "1.00 (floor)".to_owned());
        format!(
            "| {} | {} | {:.2} s | {:.0} | {:.1} | {ratio} |",
            self.name,
            self.rows,
            self.took.as_secs_f64(),
            rps,
            mbps
        )
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

async fn run(rows: u64) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let foundry = LocalFoundry::start(LocalFoundryOptions {
        dir: Some(dir.path().join("foundry")),
        data: DataOptions {
            dir: Some(dir.path().join("data")),
            ..DataOptions::default()
        },
        ..LocalFoundryOptions::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    for rid in [IN, OUT, SINK] {
        foundry
            .data()
            .create_dataset(rid)
            .map_err(|e| e.to_string())?;
    }
    let resources: Vec<PipelineResource> = [("in", IN), ("out", OUT), ("sink", SINK)]
        .into_iter()
        .map(|(a, r)| PipelineResource::new(a, r, ResourceKind::Dataset))
        .collect();
    let vars: HashMap<String, String> = foundry
        .pipeline_env(&resources)
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let lookup = |k: &str| vars.get(k).cloned();
    let mut table = Vec::new();

    // Floor write, into the input dataset (the file every read then reads).
    foundry
        .data()
        .put_file(IN, "master", "sales.parquet", b"")
        .map_err(|e| e.to_string())?;
    let path = foundry
        .data()
        .file_location(IN, "master", "sales.parquet")
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    let p = path.clone();
    let want = tokio::task::spawn_blocking(move || floor_write(&p, rows))
        .await
        .map_err(|e| e.to_string())??;
    let size = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    let floor_w = Measure {
        name: "write: parquet crate, local file (floor)",
        rows,
        bytes: size,
        took: t.elapsed(),
    };

    let t = Instant::now();
    let p = path.clone();
    let (n, sum) = tokio::task::spawn_blocking(move || floor_read(&p))
        .await
        .map_err(|e| e.to_string())??;
    if (n, sum) != (rows, want) {
        return Err(format!(
            "floor read {n} rows, sum {sum}; want {rows}, {want}"
        ));
    }
    let floor_r = Measure {
        name: "read: parquet crate, local file, 4 of 5 columns (floor)",
        rows,
        bytes: size,
        took: t.elapsed(),
    };
    table.push(floor_r.row(None));

    for (name, def) in [
        (
            "read: `DatasetInput::rows::<T>()` (4 fields)",
            cmod_runtime::pipeline_def!(read_rows),
        ),
        (
            "read: `table().columns(..).record_batches()`",
            cmod_runtime::pipeline_def!(read_batches),
        ),
    ] {
        SUM.store(0, Ordering::SeqCst);
        let t = Instant::now();
        run_pipeline_with(def, &lookup, std::future::pending())
            .await
            .map_err(|e| e.to_string())?;
        let took = t.elapsed();
        let (n, sum) = (ROWS.load(Ordering::SeqCst), SUM.load(Ordering::SeqCst));
        if (n, sum) != (rows, want) {
            return Err(format!("{name}: {n} rows, sum {sum}; want {rows}, {want}"));
        }
        table.push(
            Measure {
                name,
                rows,
                bytes: size,
                took,
            }
            .row(Some(&floor_r)),
        );
    }

    table.push(floor_w.row(None));
    ROWS.store(rows, Ordering::SeqCst);
    let t = Instant::now();
    run_pipeline_with(
        cmod_runtime::pipeline_def!(write_rows),
        &lookup,
        std::future::pending(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let took = t.elapsed();
    let out_dir = foundry
        .data()
        .file_location(OUT, "master", "x")
        .map_err(|e| e.to_string())?;
    let out_bytes = out_dir.parent().map(dir_bytes).unwrap_or(0);
    table.push(
        Measure {
            name: "write: `DatasetOutput::rows::<T>()` (5 fields, with upload and putSchema)",
            rows,
            bytes: out_bytes,
            took,
        }
        .row(Some(&floor_w)),
    );
    foundry.shutdown().await;

    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    Ok(format!(
        "{START}\n_Generated by `tables-bench --rows {rows}` on {} ({cpus} CPUs); input \
         {size} bytes of snappy Parquet (`store` string, `day` date, `sku` string, `quantity` \
         long, `amount` double)._\n\n\
         | Scenario | Rows | Time | Rows/s | MB/s (Parquet bytes) | vs floor |\n\
         |---|---:|---:|---:|---:|---:|\n{}\n{END}\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        table.join("\n")
    ))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut rows = 5_000_000u64;
    let mut write: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.clone().next()) {
            ("--rows", Some(v)) => {
                rows = v.parse().unwrap_or(rows);
                it.next();
            }
            ("--write", Some(v)) => {
                write = Some(v.clone());
                it.next();
            }
            _ => {
                eprintln!("usage: tables-bench [--rows N] [--write BENCHMARKS.md]");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let block = match run(rows).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("tables-bench failed: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{block}");
    if let Some(file) = write {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let new = match (text.find(START), text.find(END)) {
            (Some(a), Some(b)) if a < b => {
                format!(
                    "{}{}{}",
                    &text[..a],
                    block.trim_end(),
                    &text[b + END.len()..]
                )
            }
            _ => format!("{}\n{block}", text.trim_end()),
        };
        if let Err(e) = std::fs::write(&file, new) {
            eprintln!("cannot write {file}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    std::process::ExitCode::SUCCESS
}
