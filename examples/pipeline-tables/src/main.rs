//! A pipeline-mode compute module over typed tables.
//!
//! Reads the `sales` dataset (Parquet; columns `store`, `day`, `sku`, `quantity`, `amount`) as
//! typed [`Sale`] rows — only the columns `Sale` has are read, streamed batch by batch, so
//! memory stays bounded whatever the dataset's size — and writes one [`DailyTotal`] row per
//! store and day to the `daily_totals` dataset as Parquet, with the dataset schema derived from
//! `DailyTotal`. A row that does not match `Sale` fails the run naming the file, row and column,
//! and nothing is committed.
//!
//! Run it on the local Foundry, with the seed data of this directory:
//!
//! ```text
//! CMOD_LOCAL=1 CMOD_LOCAL_DATA=examples/pipeline-tables/data cargo run -p pipeline-tables
//! ls examples/pipeline-tables/data/datasets/ri.foundry.main.dataset.daily-totals/branches/master/
//! ```

use std::collections::BTreeMap;
use std::pin::pin;

use cmod_runtime::pipeline::PipelineError;
use cmod_runtime::types::Date;
use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};
use futures_util::TryStreamExt;

/// One sale: a row of the input (its other columns, like `sku`, are not read).
#[derive(Debug, serde::Deserialize)]
pub struct Sale {
    /// The store.
    pub store: String,
    /// The day of the sale.
    pub day: Date,
    /// Units sold.
    pub quantity: i64,
    /// Revenue, in the store's currency.
    pub amount: f64,
}

/// One store's totals for one day: a row of the output.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct DailyTotal {
    /// The store.
    pub store: String,
    /// The day.
    pub day: Date,
    /// Number of sales.
    pub sales: i64,
    /// Units sold.
    pub quantity: i64,
    /// Revenue.
    pub revenue: f64,
}

/// Sums the sales of each store and day.
#[pipeline(input = "sales", output = "daily_totals")]
async fn daily_totals(sales: DatasetInput, out: DatasetOutput) -> Result<(), PipelineError> {
    let mut totals: BTreeMap<(String, Date), (i64, i64, f64)> = BTreeMap::new();
    let mut rows = pin!(sales.rows::<Sale>());
    while let Some(sale) = rows.try_next().await? {
        let t = totals.entry((sale.store, sale.day)).or_default();
        t.0 += 1;
        t.1 += sale.quantity;
        t.2 += sale.amount;
    }
    let mut writer = out.rows::<DailyTotal>()?;
    for ((store, day), (sales, quantity, revenue)) in totals {
        writer
            .write(&DailyTotal {
                store,
                day,
                sales,
                quantity,
                revenue,
            })
            .await?;
    }
    writer.finish().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), cmod_runtime::Error> {
    cmod_runtime::run().await
}
