//! Every allowed map key type, written out, behind aliases, in inputs and outputs (the key
//! check must not reject any of them), and `async fn`s whose futures are `Send` while borrowing
//! their inputs (the `Send` check must not reject them). `main` checks the schemas too.
#![deny(warnings)]

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use cmod_runtime::types::{Binary, Date, Decimal, Timestamp};
use cmod_runtime::{Registry, compute_function, function};

type Scores = HashMap<String, i32>;
type ByDay = BTreeMap<Date, Vec<Scores>>;

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Report {
    by_day: ByDay,
}

#[compute_function]
#[allow(clippy::too_many_arguments)]
fn keys(
    by_name: HashMap<String, i32>,
    by_int: BTreeMap<i64, bool>,
    by_small: BTreeMap<u8, i8>,
    by_flag: BTreeMap<bool, f64>,
    by_char: BTreeMap<char, String>,
    by_decimal: BTreeMap<Decimal, i32>,
    by_rust_decimal: BTreeMap<rust_decimal::Decimal, i32>,
    by_time: BTreeMap<Timestamp, i32>,
    by_chrono: BTreeMap<chrono::NaiveDate, i32>,
    by_bytes: std::collections::BTreeMap<Binary, i32>,
    aliased: Option<Vec<ByDay>>,
    report: Report,
) -> BTreeMap<Cow<'static, str>, i32> {
    let _ = (
        by_name, by_int, by_small, by_flag, by_char, by_decimal, by_rust_decimal, by_time,
        by_chrono, by_bytes, aliased, report,
    );
    BTreeMap::new()
}

async fn pause() {}

#[compute_function]
async fn borrowed(name: &str, scores: &Scores) -> HashMap<&'static str, Box<str>> {
    pause().await;
    let _ = (name, scores);
    HashMap::new()
}

#[compute_function]
async fn aliased_output() -> Result<Report, String> {
    pause().await;
    Ok(Report {
        by_day: ByDay::new(),
    })
}

#[compute_function]
fn streamed() -> impl Iterator<Item = BTreeMap<chrono::DateTime<chrono::Utc>, i32>> {
    std::iter::empty()
}

fn main() {
    let registry = Registry::builder()
        .function(function!(keys))
        .function(function!(borrowed))
        .function(function!(aliased_output))
        .function(function!(streamed))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    registry.schemas().unwrap_or_else(|e| panic!("{e}"));
}
