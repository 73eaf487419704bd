//! `Context` anywhere in the parameter list, by value or by reference, any path to it.

use cmod_runtime::{Context, compute_function};

#[compute_function]
fn first(ctx: Context, x: i32) -> String {
    format!("{}{x}", ctx.job_id())
}

#[compute_function]
fn last(x: i32, ctx: &Context) -> String {
    format!("{}{x}", ctx.job_id())
}

#[compute_function]
async fn middle(a: i32, ctx: cmod_runtime::Context, b: i32) -> String {
    format!("{}{}", ctx.job_id(), a + b)
}

#[compute_function]
fn unused(_: Context) -> bool {
    true
}

#[compute_function]
fn unused_named(_ctx: &cmod_runtime::Context) -> bool {
    true
}

fn main() {
    let ctx = Context::for_test("j");
    let _ = (first(ctx.clone(), 1), last(1, &ctx), middle(1, ctx.clone(), 2));
    let _ = (unused(ctx.clone()), unused_named(&ctx));
}
