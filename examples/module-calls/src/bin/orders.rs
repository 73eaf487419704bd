//! The **orders** module: the caller of the `module-calls` example. Its functions call the
//! `pricing` module's functions (`pricing.rs`) through Foundry's execute API with
//! [`cmod_runtime::Modules`]: as the module's application ([`Modules::from_env`]) or as the
//! user who invoked the job ([`Context::modules`]).
//!
//! The pricing module's RID comes from the `PRICING_MODULE_RID` variable (set it in the orders
//! module's configuration in Foundry). Locally, run the two modules in two terminals; the orders
//! module's local Foundry routes the pricing RID to the pricing module's invoke API
//! (`CMOD_LOCAL_MODULES`):
//!
//! ```text
//! CMOD_LOCAL_PORT=8948 cargo run -p module-calls --bin pricing -- --local
//! CMOD_LOCAL_MODULES=ri.foundry.main.deployed-app.pricing=http://127.0.0.1:8948 \
//! PRICING_MODULE_RID=ri.foundry.main.deployed-app.pricing \
//!   cargo run -p module-calls --bin orders -- --local --invoke order_total '{"lines": [{"sku": "pear", "quantity": 2}]}'
//! ```
//!
//! `tests/tests/module_calls.rs` runs both as processes, in local mode as above and against a
//! local runtime each and one local Foundry (`LocalFoundry::register_module`).

use cmod_runtime::{Context, ModuleCallError, Modules, compute_function};
use serde::{Deserialize, Serialize};

/// The variable naming the pricing module's RID.
const PRICING_VAR: &str = "PRICING_MODULE_RID";

/// What the pricing module's `price` returns (the fields this module needs).
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Quote {
    /// The product.
    pub sku: String,
    /// Price of all, in cents.
    pub total_cents: i64,
    /// The user the pricing module saw.
    pub quoted_for: Option<String>,
}

/// The input of the pricing module's `price`.
#[derive(Serialize)]
struct PriceInput<'a> {
    sku: &'a str,
    quantity: i64,
}

/// One line of an order.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Line {
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: i64,
}

/// An order's total.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Total {
    /// The sum of the lines, in cents.
    pub total_cents: i64,
    /// The quotes the pricing module made.
    pub quotes: Vec<Quote>,
}

/// Why an order could not be priced.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// `PRICING_MODULE_RID` is not set.
    #[error("{PRICING_VAR} is not set: set it to the pricing module's RID")]
    NoPricingModule,
    /// No credential to call with.
    #[error(transparent)]
    Auth(#[from] cmod_runtime::auth::AuthError),
    /// The call failed (the message names the module, the function and the status).
    #[error(transparent)]
    Call(#[from] ModuleCallError),
}

fn pricing_rid() -> Result<String, OrderError> {
    std::env::var(PRICING_VAR)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or(OrderError::NoPricingModule)
}

async fn total(modules: Modules, lines: Vec<Line>) -> Result<Total, OrderError> {
    let rid = pricing_rid()?;
    let mut quotes = Vec::with_capacity(lines.len());
    for line in &lines {
        let input = PriceInput {
            sku: &line.sku,
            quantity: line.quantity,
        };
        quotes.push(
            modules
                .call::<Quote>(&rid, "master", "price", &input)
                .await?,
        );
    }
    Ok(Total {
        total_cents: quotes.iter().map(|q| q.total_cents).sum(),
        quotes,
    })
}

/// Prices an order by calling the pricing module as this module's application.
#[compute_function]
async fn order_total(lines: Vec<Line>) -> Result<Total, OrderError> {
    total(Modules::from_env()?, lines).await
}

/// Prices an order by calling the pricing module as the user who invoked this function (the
/// pricing module sees the same user).
#[compute_function]
async fn order_total_as_user(ctx: Context, lines: Vec<Line>) -> Result<Total, OrderError> {
    total(ctx.modules()?, lines).await
}

/// The pricing module's catalogue for `skus`, from its streaming `price_list`.
#[compute_function]
async fn catalogue(skus: Vec<String>) -> Result<Vec<Quote>, OrderError> {
    let rid = pricing_rid()?;
    let input = cmod_runtime::serde_json::json!({ "skus": skus });
    // The quotes are decoded as they arrive; `into_vec` gathers them (or iterate with
    // `cmod_runtime::StreamExt::next`).
    Ok(Modules::from_env()?
        .call_stream::<Quote>(&rid, "master", "price_list", &input)
        .await?
        .into_vec()
        .await?)
}

#[tokio::main]
async fn main() -> Result<(), cmod_runtime::Error> {
    cmod_runtime::run().await
}
