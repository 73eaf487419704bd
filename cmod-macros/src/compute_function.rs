//! `#[compute_function]`: parse ([`args`]), validate ([`signature`]), expand ([`codegen`]).
//!
//! The user's fn is always re-emitted unchanged (so it stays callable and IDEs keep working,
//! even when the attribute is misused); after it come, on success:
//!
//! ```text
//! #[doc(hidden)] <vis> mod add {                  // type namespace: `add` the fn is untouched
//!     pub struct __cmod_MakeDef;
//!     pub static __CMOD_FUNCTION_DEF: FunctionDef = __cmod_MakeDef::__CMOD_DEF;
//! }
//! const _: () = {
//!     #[derive(Deserialize, JsonSchema)] #[serde(deny_unknown_fields)]
//!     struct __cmod_Input<T0, ..> { #[serde(rename = "x")] x: T0, ... }  // one field per input,
//!                                                  // used as `__cmod_Input<i64, ..>`
//!     fn __cmod_check_types() { assert_input::<i64>(); assert_map_key::<K>(); ... }  // spanned
//!     static __CMOD_SPEC: FunctionSpec = ...;                        // names, types, docs
//!     fn __cmod_schema() -> Result<FunctionSchema, SchemaError> { function_schema::<__cmod_Input>(..) }
//!     fn __cmod_call(ctx: Context, query: JobInput) -> JobFuture { decode, call, encode }
//!     // (an `async fn`'s future is checked to be `Send` at the fn's name)
//!     impl add::__cmod_MakeDef { const __CMOD_DEF: FunctionDef = ...; }   // outer scope: user types resolve
//!     inventory::submit! { add::__cmod_MakeDef::__CMOD_DEF }
//! };
//! ```
//!
//! Otherwise every problem found is reported at once, each at the tokens it is about.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Item, LitStr, Meta};

mod args;
mod checks;
mod codegen;
mod edits;
mod signature;

use crate::common::{Errors, item_with_errors, str_lit};
use args::Args;
use signature::Param;

/// Expands the attribute; on error, the item unchanged plus the errors.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone()) {
        Ok(expanded) => expanded,
        Err(e) => item_with_errors(item, e),
    }
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = Args::parse(args, &mut errors);
    let func = match syn::parse2::<Item>(item.clone())? {
        Item::Fn(func) => func,
        other => {
            errors.push(syn::Error::new(
                item_keyword_span(&other),
                "`#[compute_function]` can only be used on a `fn` or an `async fn`",
            ));
            errors.finish()?;
            return Ok(item);
        }
    };
    let analysis = signature::analyze(&func.sig, args.streaming, &mut errors);

    let mut wire_names: Vec<String> = Vec::new();
    if let Some(analysis) = &analysis {
        for param in &analysis.params {
            let Param::Input(input) = param else { continue };
            let name = input.ident.unraw().to_string();
            let wire = match args.rename_all {
                Some(rule) => rule.apply(&name),
                None => name,
            };
            if wire_names.contains(&wire) {
                errors.spanned(
                    &input.ident,
                    format!("two inputs are named `{wire}` after renaming; rename a parameter"),
                );
            }
            wire_names.push(wire);
        }
    }
    let edits = edits::check(
        &func,
        &args,
        analysis.as_ref().map(|a| &a.output),
        &mut errors,
    );
    errors.finish()?;
    let Some(analysis) = analysis else {
        // `analyze` returns `None` only after recording an error.
        return Ok(item);
    };

    let mut out = func.to_token_stream();
    out.extend(codegen::generate(
        &func,
        &args,
        &analysis,
        &wire_names,
        edits.as_ref(),
    ));
    Ok(out)
}

/// The span of the keyword that says what an item is (`struct`, `impl`, …).
fn item_keyword_span(item: &Item) -> proc_macro2::Span {
    match item {
        Item::Struct(i) => i.struct_token.span,
        Item::Enum(i) => i.enum_token.span,
        Item::Union(i) => i.union_token.span,
        Item::Impl(i) => i.impl_token.span,
        Item::Trait(i) => i.trait_token.span,
        Item::Mod(i) => i.mod_token.span,
        Item::Const(i) => i.const_token.span,
        Item::Static(i) => i.static_token.span,
        Item::Type(i) => i.type_token.span,
        Item::Use(i) => i.use_token.span,
        other => other.span(),
    }
}

/// The doc comment of an item, as rustdoc would join it (one leading space per line removed).
pub(crate) fn doc_comment(attrs: &[Attribute]) -> Option<String> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => str_lit(&nv.value).map(LitStr::value),
            _ => None,
        })
        .flat_map(|s| {
            s.split('\n')
                .map(|l| l.trim_end_matches('\r').to_owned())
                .collect::<Vec<_>>()
        })
        .map(|line| line.strip_prefix(' ').map(str::to_owned).unwrap_or(line))
        .collect();
    let doc = lines.join("\n").trim().to_owned();
    (!doc.is_empty()).then_some(doc)
}

/// A type as written, for messages: `Vec<Foo>`, `&str`, `HashMap<String, i32>`.
pub(crate) fn type_string(ty: &syn::Type) -> String {
    ty.to_token_stream()
        .to_string()
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" <", "<")
        .replace(" >", ">")
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" ,", ",")
        .replace("& ", "&")
        .replace(" ;", ";")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace("[ ", "[")
        .replace(" ]", "]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn expand_str(args: TokenStream, item: TokenStream) -> String {
        expand(args, item).to_string()
    }

    #[test]
    fn type_strings_read_like_source() {
        let ty: syn::Type =
            syn::parse_quote!(std::collections::HashMap<String, Vec<(i32, &'static str)>>);
        assert_eq!(
            type_string(&ty),
            "std::collections::HashMap<String, Vec<(i32, &'static str)>>"
        );
    }

    #[test]
    fn docs_are_joined_like_rustdoc() {
        let f: syn::ItemFn = syn::parse_quote! {
            /// Adds two integers.
            ///
            /// Saturates.
            fn add() {}
        };
        assert_eq!(
            doc_comment(&f.attrs).as_deref(),
            Some("Adds two integers.\n\nSaturates.")
        );
    }

    #[test]
    fn the_fn_is_reemitted_unchanged_on_error() {
        let item = quote!(
            fn add(self, x: i64) -> i64 {
                x
            }
        );
        let out = expand_str(quote!(), item.clone());
        assert!(out.starts_with(&item.to_string()), "{out}");
        assert!(out.contains("compile_error"), "{out}");
        assert!(!out.contains("__cmod_MakeDef"), "{out}");
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let out = expand_str(
            quote!(nme = "x"),
            quote!(
                fn f<T>(self, (a, b): (i32, i32), c: impl Sized, d: u64) {}
            ),
        );
        for needle in [
            "unknown argument `nme`",
            "cannot be generic",
            "`self` parameters",
            "argument patterns",
            "`impl Trait` parameters",
            "`u64` has no Foundry type",
        ] {
            assert!(out.contains(needle), "missing {needle:?} in {out}");
        }
    }

    #[test]
    fn registration_uses_the_crate_override_and_wire_names() {
        let out = expand_str(
            quote!(
                crate = "::my_cmod",
                name = "text.upper",
                rename_all = "camelCase"
            ),
            quote!(
                fn upper(max_len: i32, text: &str) -> String {
                    text.to_owned()
                }
            ),
        );
        assert!(
            out.contains(":: my_cmod :: __private :: FunctionDef"),
            "{out}"
        );
        assert!(out.contains("\"::my_cmod::__private::serde\""), "{out}");
        assert!(out.contains("name : \"text.upper\""), "{out}");
        assert!(out.contains("rename = \"maxLen\""), "{out}");
        assert!(out.contains("& __cmod_input . text"), "{out}");
        assert!(out.contains("run_blocking"), "{out}");
    }
}
