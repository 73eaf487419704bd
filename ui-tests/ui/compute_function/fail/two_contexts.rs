use cmod_runtime::{Context, compute_function};

#[compute_function]
fn twice(a: Context, x: i32, b: &Context) -> String {
    format!("{}{}{x}", a.job_id(), b.job_id())
}

#[compute_function]
fn mutable(ctx: &mut Context) -> String {
    ctx.job_id().to_owned()
}

fn main() {}
