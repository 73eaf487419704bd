//! References, optional inputs, user structs, renames, raw identifiers.

use std::collections::{BTreeMap, HashSet};

use cmod_runtime::compute_function;
use cmod_runtime::types::{Binary, Date, Decimal, Timestamp};

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Point {
    x: f64,
    y: f64,
}

#[compute_function(rename_all = "camelCase")]
fn everything(
    text: &str,
    values: &[i16],
    point: &Point,
    maybe_point: Option<Point>,
    r#type: String,
    blob: Binary,
    day: Date,
    at: Timestamp,
    amount: Decimal,
    tags: HashSet<String>,
    scores: BTreeMap<String, f32>,
    mut counter: i8,
) -> Point {
    counter += 1;
    let _ = (text, values, maybe_point, r#type, blob, day, at, amount, tags, scores, counter);
    Point { x: point.x, y: point.y }
}

fn main() {}
