//! `#[pipeline]`: parse → validate → expand.
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
//! any other value is an error at the value.
//!
//! The function is always re-emitted unchanged (so it stays callable from tests, and IDEs keep
//! working when the attribute is wrong); every problem is reported at once, each at the tokens
//! that cause it.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, Meta, Type};

use crate::common::{
    Errors, compact, default_crate, hidden_def_module, item_with_errors, parse_metas, private_path,
    return_span, str_lit,
};

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

/// Which way a resource flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Input,
    Output,
}

impl Direction {
    fn key(self) -> &'static str {
        match self {
            Direction::Input => "input",
            Direction::Output => "output",
        }
    }
}

/// One `input = "…"` / `output = "…"` key of the attribute.
#[derive(Clone)]
struct AliasArg {
    direction: Direction,
    alias: LitStr,
}

/// The parsed attribute: the aliases in order, and which keys were present but unusable (so
/// that follow-up checks do not pile consequential errors on top).
#[derive(Default)]
struct Args {
    aliases: Vec<AliasArg>,
    /// `after_success = "exit" | "stay_alive"`: the variant name of `AfterSuccess`.
    after_success: Option<&'static str>,
    /// `input`/`output` keys present with an unusable value, by direction.
    bad_keys: Vec<Direction>,
    /// The arguments could not be parsed at all.
    unparsable: bool,
}

/// Parses the attribute arguments into the ordered list of aliases.
fn parse_args(args: TokenStream, errors: &mut Errors) -> Args {
    let metas = match parse_metas(args) {
        Ok(m) => m,
        Err(e) => {
            errors.push(syn::Error::new(
                e.span(),
                format!(
                    "{e}; expected `#[pipeline(input = \"alias\", output = \"alias\")]` \
                     (keys repeatable)"
                ),
            ));
            return Args {
                unparsable: true,
                ..Args::default()
            };
        }
    };
    let mut out = Args::default();
    let mut after_success_seen = false;
    for meta in metas {
        let path = meta.path();
        let direction = if path.is_ident("input") {
            Direction::Input
        } else if path.is_ident("output") {
            Direction::Output
        } else if path.is_ident("after_success") {
            if after_success_seen {
                errors.spanned(path, "duplicate `after_success`: give it once");
                continue;
            }
            after_success_seen = true;
            out.after_success = parse_after_success(&meta, errors);
            continue;
        } else {
            let name = compact(path);
            errors.spanned(
                path,
                format!(
                    "unknown argument `{name}`; expected one of: `input`, `output`, \
                     `after_success`"
                ),
            );
            continue;
        };
        let key = direction.key();
        match &meta {
            Meta::NameValue(nv) => match str_lit(&nv.value) {
                Some(s) => out.aliases.push(AliasArg {
                    direction,
                    alias: s.clone(),
                }),
                None => {
                    let other = &nv.value;
                    out.bad_keys.push(direction);
                    errors.spanned(
                        other,
                        format!(
                            "the resource alias must be a string literal: `{key} = \"alias\"` \
                             (the alias configured for this compute module in Foundry)"
                        ),
                    );
                }
            },
            Meta::Path(p) => {
                out.bad_keys.push(direction);
                errors.spanned(
                    p,
                    format!("`{key}` needs a resource alias: `{key} = \"alias\"`"),
                );
            }
            Meta::List(l) => {
                out.bad_keys.push(direction);
                errors.spanned(
                    l,
                    format!("use `{key} = \"alias\"` (one alias per key; repeat the key for more)"),
                );
            }
        }
    }
    out
}

/// `after_success = "exit" | "stay_alive"` → the `AfterSuccess` variant; errors point at the
/// value.
fn parse_after_success(meta: &Meta, errors: &mut Errors) -> Option<&'static str> {
    const EXPECTED: &str = "expected `after_success = \"exit\"` (the process exits once the \
                            pipeline completed) or `after_success = \"stay_alive\"` (it stays \
                            alive until SIGTERM, so Foundry does not run the pipeline again)";
    let Meta::NameValue(nv) = meta else {
        errors.spanned(meta, format!("`after_success` needs a value: {EXPECTED}"));
        return None;
    };
    let Some(lit) = str_lit(&nv.value) else {
        errors.spanned(
            &nv.value,
            format!("`after_success` takes a string literal: {EXPECTED}"),
        );
        return None;
    };
    match lit.value().as_str() {
        "exit" => Some("Exit"),
        "stay_alive" => Some("StayAlive"),
        other => {
            errors.spanned(
                lit,
                format!("invalid `after_success` value {other:?}; {EXPECTED}"),
            );
            None
        }
    }
}

/// Checks the aliases themselves: non-empty, no whitespace, no duplicates, at least one of each
/// direction.
fn validate_aliases(args: &Args, args_span: Span, errors: &mut Errors) {
    let aliases = &args.aliases;
    let mut seen: Vec<(String, Direction)> = Vec::new();
    for a in aliases {
        let value = a.alias.value();
        if value.is_empty() {
            errors.spanned(
                &a.alias,
                "empty resource alias; use the alias configured for this compute module in \
                 Foundry, e.g. `input = \"raw_orders\"`",
            );
            continue;
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            errors.spanned(
                &a.alias,
                format!(
                    "invalid resource alias {:?}: aliases cannot contain whitespace or control \
                     characters",
                    value
                ),
            );
            continue;
        }
        if let Some((_, first)) = seen.iter().find(|(s, _)| *s == value) {
            errors.spanned(
                &a.alias,
                format!(
                    "duplicate resource alias `{value}`: it is already declared as an `{}`; each \
                     alias binds to exactly one parameter",
                    first.key()
                ),
            );
            continue;
        }
        seen.push((value, a.direction));
    }
    if args.unparsable {
        return;
    }
    // A direction counts as declared when a key of it was written, even with a bad value
    // (that value's error is enough).
    let missing: Vec<&str> = [Direction::Input, Direction::Output]
        .into_iter()
        .filter(|d| !aliases.iter().any(|a| a.direction == *d) && !args.bad_keys.contains(d))
        .map(Direction::key)
        .collect();
    let example = "e.g. `#[pipeline(input = \"raw_orders\", output = \"clean_orders\")]`";
    match missing.as_slice() {
        [] => {}
        [key] => errors.at(
            args_span,
            format!("`#[pipeline]` needs at least one `{key} = \"alias\"`, {example}"),
        ),
        _ => errors.at(
            args_span,
            format!(
                "`#[pipeline]` needs its resource aliases: at least one `input = \"alias\"` and \
                 one `output = \"alias\"`, {example}"
            ),
        ),
    }
}

/// The direction a known handle type name implies, from the last segment of its path.
fn known_direction(ty: &Type) -> Option<(Direction, String)> {
    let Type::Path(tp) = ty else { return None };
    if tp.qself.is_some() {
        return None;
    }
    let name = tp.path.segments.last()?.ident.to_string();
    let direction = match name.as_str() {
        "DatasetInput" | "StreamInput" | "MediaSetInput" => Direction::Input,
        "DatasetOutput" | "StreamOutput" | "MediaSetOutput" => Direction::Output,
        _ => return None,
    };
    Some((direction, name))
}

fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Validates the function and returns its handle parameter types, in order.
fn validate_fn<'f>(func: &'f ItemFn, errors: &mut Errors) -> Vec<&'f Type> {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            "`#[pipeline]` requires an `async fn`: write `async fn`",
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.spanned(
            &sig.generics,
            "`#[pipeline]` functions cannot be generic; use concrete handle types such as \
             `StreamInput<MyRecord>`",
        );
    }
    if let Some(c) = &sig.constness {
        errors.spanned(c, "`#[pipeline]` functions cannot be `const`");
    }
    if let Some(u) = &sig.unsafety {
        errors.spanned(u, "`#[pipeline]` functions cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(abi, "`#[pipeline]` functions cannot have an `extern` ABI");
    }
    if let Some(v) = &sig.variadic {
        errors.spanned(v, "`#[pipeline]` functions cannot be variadic");
    }
    let mut types = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => errors.spanned(
                r,
                "`#[pipeline]` functions cannot take `self`; use a free `async fn`",
            ),
            FnArg::Typed(pt) => {
                if let Type::ImplTrait(_) = &*pt.ty {
                    errors.spanned(
                        &pt.ty,
                        "`impl Trait` parameters are not supported by `#[pipeline]`; use a \
                         handle type such as `DatasetInput` or `DatasetOutput`",
                    );
                }
                types.push(&*pt.ty);
            }
        }
    }
    types
}

/// Checks that aliases and parameters match up one to one, in order.
fn validate_binding(func: &ItemFn, aliases: &[AliasArg], types: &[&Type], errors: &mut Errors) {
    let name = &func.sig.ident;
    let n_params = types.len();
    let n_aliases = aliases.len();
    let rule = "aliases bind to the parameters in order: the first `input`/`output` key to the \
                first parameter, the second key to the second parameter, and so on";
    if n_aliases > n_params {
        for extra in &aliases[n_params..] {
            errors.spanned(
                &extra.alias,
                format!(
                    "`#[pipeline]` declares {n_aliases} resource aliases but `{name}` has {n_params} \
                     parameter{}: `{}` has no parameter to bind to; add a parameter for it ({rule})",
                    if n_params == 1 { "" } else { "s" },
                    extra.alias.value()
                ),
            );
        }
    } else if n_params > n_aliases {
        let params: Vec<&FnArg> = func.sig.inputs.iter().collect();
        for extra in params.iter().skip(n_aliases) {
            errors.spanned(
                extra,
                format!(
                    "`{name}` has {n_params} parameters but `#[pipeline]` declares {n_aliases} \
                     resource alias{}: this parameter is not bound to any alias; add an \
                     `input = \"…\"` or `output = \"…\"` key for it ({rule})",
                    if n_aliases == 1 { "" } else { "es" }
                ),
            );
        }
    }
    if n_aliases != n_params {
        // The pairing is off: direction errors would only be consequences.
        return;
    }
    for (i, (a, ty)) in aliases.iter().zip(types).enumerate() {
        if let Some((direction, type_name)) = known_direction(ty)
            && direction != a.direction
        {
            errors.spanned(
                ty,
                format!(
                    "`{type_name}` is an {} handle, but this {} parameter is bound to {} alias \
                     `{}` ({rule}); use {} or reorder the keys",
                    direction.key(),
                    ordinal(i + 1),
                    a.direction.key(),
                    a.alias.value(),
                    match a.direction {
                        Direction::Input => "`DatasetInput`, `StreamInput<T>` or `MediaSetInput`",
                        Direction::Output => {
                            "`DatasetOutput`, `StreamOutput<T>` or `MediaSetOutput`"
                        }
                    },
                ),
            );
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
    let args = parse_args(args, &mut errors);
    validate_aliases(&args, args_span, &mut errors);
    let types = validate_fn(func, &mut errors);
    // Counting parameters against aliases only makes sense when every key was usable.
    if !args.unparsable && args.bad_keys.is_empty() {
        validate_binding(func, &args.aliases, &types, &mut errors);
    }
    errors.finish()?;
    Ok(generate(func, &args.aliases, args.after_success, &types))
}

fn generate(
    func: &ItemFn,
    aliases: &[AliasArg],
    after_success: Option<&'static str>,
    types: &[&Type],
) -> TokenStream {
    let name = &func.sig.ident;
    let name_str = name.to_string();
    let p = private_path(&default_crate());
    let after_success = match after_success {
        Some(variant) => {
            let variant = format_ident!("{}", variant);
            quote!(::core::option::Option::Some(#p::AfterSuccess::#variant))
        }
        None => quote!(::core::option::Option::None),
    };
    let vars: Vec<_> = (0..types.len())
        .map(|i| format_ident!("__cmod_handle_{}", i))
        .collect();
    let mut opens = Vec::new();
    let mut input_defs = Vec::new();
    let mut output_defs = Vec::new();
    for ((a, ty), var) in aliases.iter().zip(types).zip(&vars) {
        let alias = &a.alias;
        let (tr, list) = match a.direction {
            Direction::Input => (quote!(InputHandle), &mut input_defs),
            Direction::Output => (quote!(OutputHandle), &mut output_defs),
        };
        // Spanned on the parameter type, so a type that is not a handle of the right direction
        // is reported there (through the traits' `on_unimplemented` messages).
        let trait_path = quote_spanned!(ty.span()=> #p::#tr);
        opens.push(quote_spanned! {ty.span()=>
            let #var = <#ty as #trait_path>::open(&__cmod_ctx, #alias).await?;
        });
        list.push(quote_spanned! {ty.span()=>
            #p::AliasDef { alias: #alias, kind: <#ty as #trait_path>::KIND }
        });
    }
    let ret_span = return_span(&func.sig);
    let finish = quote_spanned! {ret_span=>
        #p::pipeline_result(#name_str, __cmod_output)
    };
    let vis = &func.vis;
    // The pattern of `#[compute_function]`: a hidden module named like the fn (type namespace,
    // so the fn is untouched) holds the nameable definition for `cmod_runtime::pipeline_def!`;
    // the definition itself is built in a `const _` block of the fn's scope, where the user's
    // imports (the handle types) resolve.
    let hidden_mod = hidden_def_module(
        vis,
        name,
        &format_ident!("__cmod_MakePipeline"),
        &format_ident!("__CMOD_PIPELINE_DEF"),
        &quote!(#p::PipelineDef),
        " The definition of this `#[pipeline]`, for `cmod_runtime::pipeline_def!`.",
    );
    quote! {
        #hidden_mod

        const _: () = {
            fn __cmod_pipeline_run(__cmod_ctx: #p::PipelineContext) -> #p::PipelineFuture {
                ::std::boxed::Box::pin(async move {
                    #(#opens)*
                    let __cmod_output = #name(#(#vars),*).await;
                    #finish
                })
            }

            impl #name::__cmod_MakePipeline {
                const __CMOD_DEF: #p::PipelineDef = #p::PipelineDef {
                    name: #name_str,
                    module_path: ::core::module_path!(),
                    file: ::core::file!(),
                    line: ::core::line!(),
                    inputs: &[#(#input_defs),*],
                    outputs: &[#(#output_defs),*],
                    run: __cmod_pipeline_run,
                    after_success: #after_success,
                };
            }

            #p::inventory::submit! { #name::__cmod_MakePipeline::__CMOD_DEF }
        };
    }
}

#[cfg(test)]
mod tests {
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
