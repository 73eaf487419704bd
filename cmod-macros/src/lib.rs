//! Procedural macros for cmod: `#[compute_function]` and `#[pipeline]`.
//!
//! This crate only parses, validates and expands; all runtime logic lives in `cmod-runtime`,
//! which re-exports these macros. Depend on `cmod-runtime`, not on this crate.

use proc_macro::TokenStream;

mod common;
mod compute_function;
mod pipeline;

/// Turns a `fn` or `async fn` into a Foundry compute function. See `cmod_runtime`'s docs.
#[proc_macro_attribute]
pub fn compute_function(args: TokenStream, item: TokenStream) -> TokenStream {
    compute_function::expand(args.into(), item.into()).into()
}

/// Turns an `async fn` into a pipeline-mode compute module. See `cmod_runtime`'s docs.
///
/// Keys: `input = "alias"` and `output = "alias"` (repeatable, bound to the parameters in
/// order), `after_success = "exit" | "stay_alive"` (optional), and `crate = "…"` (optional): the
/// path to `cmod_runtime` when it is renamed or re-exported (an absolute path, like
/// `"::my_cmod"` or `"crate::rt"`); the generated code then uses it instead of `::cmod_runtime`.
#[proc_macro_attribute]
pub fn pipeline(args: TokenStream, item: TokenStream) -> TokenStream {
    pipeline::expand(args.into(), item.into()).into()
}
