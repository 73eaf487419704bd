//! The **pricing** module: the callee of the `module-calls` example. Its functions are called by
//! the `orders` module (`orders.rs`) through Foundry's execute API, like any Foundry caller
//! (Workshop, the Ontology SDK, another module) would call them.
//!
//! ```text
//! cargo run -p module-calls --bin pricing -- --local --invoke price '{"sku": "apple", "quantity": 3}'
//! ```

use cmod_runtime::{Context, compute_function};

/// A price quote.
#[derive(Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Quote {
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: i64,
    /// Price of one, in cents.
    pub unit_cents: i64,
    /// Price of all, in cents.
    pub total_cents: i64,
    /// The user the quote was made for, when the caller passed its user's token on.
    pub quoted_for: Option<String>,
}

/// An unknown product.
#[derive(Debug, thiserror::Error)]
#[error("unknown sku `{0}`")]
pub struct UnknownSku(String);

fn unit_cents(sku: &str) -> Option<i64> {
    match sku {
        "apple" => Some(40),
        "pear" => Some(55),
        "melon" => Some(230),
        _ => None,
    }
}

fn quote(ctx: &Context, sku: String, quantity: i64) -> Result<Quote, UnknownSku> {
    let unit = unit_cents(&sku).ok_or_else(|| UnknownSku(sku.clone()))?;
    Ok(Quote {
        quoted_for: ctx.user_id().map(str::to_owned),
        total_cents: unit * quantity,
        unit_cents: unit,
        quantity,
        sku,
    })
}

/// Prices `quantity` of `sku`.
#[compute_function]
fn price(ctx: Context, sku: String, quantity: i64) -> Result<Quote, UnknownSku> {
    quote(&ctx, sku, quantity)
}

/// Prices one of each of `skus`, streaming one quote per product (skipping unknown ones).
#[compute_function]
fn price_list(ctx: Context, skus: Vec<String>) -> impl Iterator<Item = Quote> {
    skus.into_iter()
        .filter_map(move |sku| quote(&ctx, sku, 1).ok())
}

#[tokio::main]
async fn main() -> Result<(), cmod_runtime::Error> {
    cmod_runtime::run().await
}
