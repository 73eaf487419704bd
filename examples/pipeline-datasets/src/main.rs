//! A pipeline-mode compute module over datasets.
//!
//! Reads every `.csv` file of the `orders` dataset (header `region,product,quantity`), and
//! writes `totals.csv` (`region,orders,quantity`, one line per region, sorted) to the `totals`
//! dataset. Files are streamed line by line, so memory stays flat whatever their size; the
//! output is streamed too. If any line is malformed, the run fails naming the file and line,
//! and the output transaction is aborted (nothing is committed).
//!
//! Run it on the local Foundry, with the seed data of this directory:
//!
//! ```text
//! CMOD_LOCAL=1 CMOD_LOCAL_DATA=examples/pipeline-datasets/data cargo run -p pipeline-datasets
//! cat examples/pipeline-datasets/data/datasets/ri.foundry.main.dataset.totals/branches/master/totals.csv
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cmod_runtime::pipeline::PipelineError;
use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};
use tokio::io::AsyncBufReadExt;

/// Why the aggregation failed.
#[derive(Debug, thiserror::Error)]
enum OrdersError {
    /// Reading or writing a dataset failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A line of an input file is not `region,product,quantity`.
    #[error("{file}:{line}: {message}")]
    Malformed {
        file: String,
        line: u64,
        message: String,
    },
    /// The input stream broke mid-file.
    #[error("reading {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// Orders and quantity of one region.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Total {
    orders: u64,
    quantity: u64,
}

/// The running totals, by region.
#[derive(Debug, Default)]
struct Totals(BTreeMap<String, Total>);

impl Totals {
    /// Adds one `region,product,quantity` line.
    fn add_line(&mut self, line: &str) -> Result<(), String> {
        let mut fields = line.split(',');
        let (Some(region), Some(_product), Some(quantity), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(format!(
                "expected 3 comma-separated fields `region,product,quantity`, got `{line}`"
            ));
        };
        let region = region.trim();
        if region.is_empty() {
            return Err("the region is empty".to_owned());
        }
        let quantity: u64 = quantity
            .trim()
            .parse()
            .map_err(|_| format!("quantity `{}` is not a whole number", quantity.trim()))?;
        let total = match self.0.get_mut(region) {
            Some(t) => t,
            None => self.0.entry(region.to_owned()).or_default(),
        };
        total.orders += 1;
        total.quantity += quantity;
        Ok(())
    }

    /// The output CSV.
    fn to_csv(&self) -> String {
        let mut csv = String::from("region,orders,quantity\n");
        for (region, t) in &self.0 {
            let _ = writeln!(csv, "{region},{},{}", t.orders, t.quantity);
        }
        csv
    }
}

/// Totals the orders of every CSV file of `orders` into `totals/totals.csv`.
#[pipeline(input = "orders", output = "totals")]
async fn aggregate(orders: DatasetInput, totals: DatasetOutput) -> Result<(), OrdersError> {
    let mut sums = Totals::default();
    for file in orders.list_files(None).await? {
        if !file.path.ends_with(".csv") {
            continue;
        }
        let mut lines = orders.open(&file.path).await?.lines();
        let mut number = 0u64;
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(|source| OrdersError::Read {
                file: file.path.clone(),
                source,
            })?
        {
            number += 1;
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || (number == 1 && line.starts_with("region,")) {
                continue;
            }
            sums.add_line(line)
                .map_err(|message| OrdersError::Malformed {
                    file: file.path.clone(),
                    line: number,
                    message,
                })?;
        }
    }
    let mut out = totals.create("totals.csv");
    out.write(sums.to_csv()).await?;
    out.finish().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), cmod_runtime::Error> {
    cmod_runtime::run().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_by_region_sorted() {
        let mut t = Totals::default();
        for line in ["west,apple,3", "east,pear,1", "west, plum ,4"] {
            t.add_line(line).unwrap();
        }
        assert_eq!(t.to_csv(), "region,orders,quantity\neast,1,1\nwest,2,7\n");
    }

    #[test]
    fn malformed_lines_say_why() {
        let mut t = Totals::default();
        assert!(
            t.add_line("west,apple")
                .unwrap_err()
                .contains("3 comma-separated")
        );
        assert!(
            t.add_line("west,apple,lots")
                .unwrap_err()
                .contains("`lots`")
        );
        assert!(
            t.add_line(",apple,1")
                .unwrap_err()
                .contains("region is empty")
        );
    }
}
