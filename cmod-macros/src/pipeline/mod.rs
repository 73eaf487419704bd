//! `#[pipeline]`: parse ([`args`]) → validate ([`validate`]) → expand ([`codegen`]).
//!
//! ```text
//! #[pipeline(input = "raw_orders", output = "clean_orders")]
//! async fn clean(raw: DatasetInput, out: DatasetOutput) -> Result<(), MyError> { … }
//! ```
//!
//! **Binding rule**: the aliases bind to the parameters *in order*: the first `input`/`output`
//! key binds to the first parameter, the second key to the second parameter, and so on. So there
//! must be exactly as many keys as parameters, a parameter bound to an `input` alias must be an
//! input handle and one bound to an `output` alias an output handle. Known handle type names are
//! checked here (so the error names the alias); any other type is checked by the
//! `InputHandle`/`OutputHandle` traits of `cmod-runtime`, whose `#[diagnostic::on_unimplemented]`
//! messages explain the rule.
//!
//! `after_success = "exit" | "stay_alive"` (optional, once) sets `PipelineDef::after_success`;
//! any other value is an error at the value. `transaction(out = "append", …)` (optional) sets
//! `PipelineDef::transactions`: each name must be an `output` alias, each value `snapshot`,
//! `append` or `update`. `crate = "…"` (optional, once) is the path to
//! `cmod_runtime` the generated code uses instead of `::cmod_runtime` (when the crate is renamed
//! or re-exported), as for `#[compute_function]`.
//!
//! The function is always re-emitted unchanged (so it stays callable from tests, and IDEs keep
//! working when the attribute is wrong); every problem is reported at once, each at the tokens
//! that cause it.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ItemFn;
use syn::spanned::Spanned;

mod args;
mod codegen;
mod validate;

use crate::common::{Errors, item_with_errors};

/// Expands the attribute: the item unchanged, plus either the generated registration or the
/// compile errors.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            // Not a function at all: say so, keep the tokens so other errors still show.
            let msg = syn::Error::new(
                e.span(),
                "`#[pipeline]` goes on an `async fn`; this item is not a function",
            );
            return item_with_errors(item, msg);
        }
    };
    match build(args, &func) {
        Ok(generated) => quote! { #func #generated },
        Err(errors) => {
            let errors = errors.into_compile_error();
            quote! { #func #errors }
        }
    }
}

fn build(args: TokenStream, func: &ItemFn) -> Result<TokenStream, syn::Error> {
    let args_span = if args.is_empty() {
        Span::call_site()
    } else {
        args.span()
    };
    let mut errors = Errors::default();
    let args = args::parse_args(args, &mut errors);
    validate::validate_aliases(&args, args_span, &mut errors);
    let types = validate::validate_fn(func, &mut errors);
    // Counting parameters against aliases only makes sense when every key was usable.
    if !args.unparsable && args.bad_keys.is_empty() {
        validate::validate_binding(func, &args.aliases, &types, &mut errors);
    }
    errors.finish()?;
    Ok(codegen::generate(func, &args, &types))
}

#[cfg(test)]
mod tests {
    use super::validate::ordinal;
    use super::*;

    fn errors_of(args: TokenStream, item: TokenStream) -> Vec<String> {
        let func: ItemFn = syn::parse2(item).unwrap();
        match build(args, &func) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn after_success_takes_exit_or_stay_alive_once() {
        let f = quote!(
            async fn f(a: DatasetInput, b: DatasetOutput) {}
        );
        for ok in ["exit", "stay_alive"] {
            let errs = errors_of(
                quote!(input = "raw", output = "out", after_success = #ok),
                f.clone(),
            );
            assert!(errs.is_empty(), "{ok}: {errs:?}");
        }
        let errs = errors_of(
            quote!(input = "raw", output = "out", after_success = "forever"),
            f.clone(),
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("invalid `after_success` value \"forever\"")
                && errs[0].contains("`after_success = \"stay_alive\"`"),
            "{errs:?}"
        );
        let errs = errors_of(
            quote!(
                input = "raw",
                output = "out",
                after_success = "exit",
                after_success = "exit"
            ),
            f,
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("duplicate `after_success`"), "{errs:?}");
    }

    #[test]
    fn transaction_types_name_outputs() {
        let f = quote!(
            async fn f(a: DatasetInput, b: DatasetOutput, c: DatasetOutput) {}
        );
        let errs = errors_of(
            quote!(
                input = "raw",
                output = "out",
                output = "o2",
                transaction(out = "append", o2 = "UPDATE")
            ),
            f.clone(),
        );
        assert!(errs.is_empty(), "{errs:?}");
        let errs = errors_of(
            quote!(
                input = "raw",
                output = "out",
                output = "o2",
                transaction(raw = "append", nope = "append", out = "delete", o2 = 1)
            ),
            f.clone(),
        );
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(
            errs.iter().any(|e| e.contains("`raw` is an input")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("`nope` is not an output") && e.contains("`out`, `o2`")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("invalid transaction type \"delete\"")),
            "{errs:?}"
        );
        let errs = errors_of(
            quote!(
                input = "raw",
                output = "out",
                output = "o2",
                transaction = "append"
            ),
            f,
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("`transaction` takes a list"), "{errs:?}");
    }

    #[test]
    fn crate_path_is_used_once_and_must_be_a_path() {
        let f = quote!(
            async fn f(a: DatasetInput, b: DatasetOutput) {}
        );
        let func: ItemFn = syn::parse2(f.clone()).unwrap();
        let expanded = build(
            quote!(input = "raw", output = "out", crate = "crate::rt"),
            &func,
        )
        .unwrap()
        .to_string();
        assert!(expanded.contains("crate :: rt :: __private"), "{expanded}");
        assert!(!expanded.contains(":: cmod_runtime ::"), "{expanded}");

        let errs = errors_of(
            quote!(input = "raw", output = "out", crate = "::a", crate = "::b"),
            f.clone(),
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("duplicate `crate`"), "{errs:?}");

        for bad in [
            quote!(crate = "not a path"),
            quote!(crate = rt),
            quote!(crate),
        ] {
            let errs = errors_of(quote!(input = "raw", output = "out", #bad), f.clone());
            assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
            assert!(errs[0].contains("`crate`"), "{bad}: {errs:?}");
        }
    }

    #[test]
    fn valid_pipeline_expands() {
        let errs = errors_of(
            quote!(input = "raw", output = "clean"),
            quote!(
                async fn f(a: DatasetInput, b: DatasetOutput) -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errs = errors_of(
            quote!(input = "", input = 3, colour = "x", output = "a b"),
            quote!(
                fn f(a: DatasetInput) {}
            ),
        );
        let all = errs.join("\n");
        assert!(all.contains("empty resource alias"), "{all}");
        assert!(all.contains("string literal"), "{all}");
        assert!(all.contains("unknown argument `colour`"), "{all}");
        assert!(all.contains("whitespace"), "{all}");
        assert!(all.contains("requires an `async fn`"), "{all}");
    }

    #[test]
    fn missing_keys_duplicates_and_counts() {
        let errs = errors_of(
            quote!(input = "a", input = "a"),
            quote!(
                async fn f(a: DatasetInput) {}
            ),
        );
        let all = errs.join("\n");
        assert!(all.contains("duplicate resource alias `a`"), "{all}");
        assert!(all.contains("at least one `output"), "{all}");
        assert!(all.contains("has no parameter to bind to"), "{all}");
    }

    #[test]
    fn direction_mismatch_names_the_alias() {
        let errs = errors_of(
            quote!(output = "clean", input = "raw"),
            quote!(
                async fn f(a: DatasetInput, b: DatasetOutput) {}
            ),
        );
        let all = errs.join("\n");
        assert!(
            all.contains("`DatasetInput` is an input handle") && all.contains("`clean`"),
            "{all}"
        );
        assert_eq!(errs.len(), 2, "{all}");
    }

    #[test]
    fn ordinals() {
        let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22].map(ordinal).to_vec();
        assert_eq!(
            got,
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd"
            ]
        );
    }
}
