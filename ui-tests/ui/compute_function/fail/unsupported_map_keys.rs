use std::collections::{BTreeMap, HashMap};

use cmod_runtime::compute_function;

#[derive(
    serde::Serialize, serde::Deserialize, schemars::JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(
    serde::Serialize, serde::Deserialize, schemars::JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
enum Color {
    Red,
    Green,
}

/// A map hidden behind an alias: the compiler still finds its key type.
type ByPoint = HashMap<Point, i32>;

#[compute_function]
fn struct_keys(counts: HashMap<Point, i32>) -> i32 {
    counts.len() as i32
}

#[compute_function]
fn aliased_keys(counts: Option<Vec<ByPoint>>) -> i32 {
    counts.map_or(0, |c| c.len() as i32)
}

#[compute_function]
async fn output_keys() -> Result<BTreeMap<Point, String>, String> {
    Ok(BTreeMap::new())
}

#[compute_function]
fn tuple_keys(pairs: BTreeMap<(i32, i32), i32>) -> i32 {
    pairs.len() as i32
}

#[compute_function]
fn enum_keys(weights: BTreeMap<Color, f64>) -> f64 {
    weights.values().sum()
}

fn main() {}
