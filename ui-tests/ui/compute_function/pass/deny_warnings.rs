//! The expansion is warning-free under strict lints, for public and private functions, in
//! nested modules and in block scope.
#![deny(warnings)]
#![deny(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    unused,
    rust_2018_idioms,
    non_camel_case_types,
    non_snake_case
)]

//! Crate docs.

use cmod_runtime::{Context, compute_function};

/// Public and documented.
#[compute_function]
pub fn public(x: i32) -> i32 {
    x
}

#[compute_function]
fn private(ctx: Context) -> String {
    ctx.job_id().to_owned()
}

mod nested {
    use cmod_runtime::compute_function;

    #[compute_function]
    pub(crate) async fn in_module(text: &str) -> usize_free::Len {
        usize_free::Len(text.len() as i64)
    }

    pub(crate) mod usize_free {
        /// A length.
        #[derive(serde::Serialize, schemars::JsonSchema)]
        pub(crate) struct Len(pub(crate) i64);
    }
}

fn main() {
    #[compute_function]
    fn local(x: i32) -> i32 {
        x + 1
    }

    let _ = cmod_runtime::Registry::builder()
        .function(cmod_runtime::function!(public))
        .function(cmod_runtime::function!(private))
        .function(cmod_runtime::function!(nested::in_module))
        .function(cmod_runtime::function!(local))
        .build();
}
