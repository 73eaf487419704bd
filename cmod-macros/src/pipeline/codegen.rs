//! The expansion: a hidden definition module named like the fn, and in a `const _` block the
//! run function that opens the handles in order, the `PipelineDef` and its registration.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, Type};

use super::args::{Args, Direction};
use crate::common::{default_crate, hidden_def_module, private_path, return_span};

/// The registration of a validated `#[pipeline]` fn (its handle types in order).
pub(crate) fn generate(func: &ItemFn, args: &Args, types: &[&Type]) -> TokenStream {
    let aliases = &args.aliases;
    let name = &func.sig.ident;
    let name_str = name.to_string();
    let krate = args.krate.clone().unwrap_or_else(default_crate);
    let p = private_path(&krate);
    let after_success = match args.after_success {
        Some(variant) => {
            let variant = format_ident!("{}", variant);
            quote!(::core::option::Option::Some(#p::AfterSuccess::#variant))
        }
        None => quote!(::core::option::Option::None),
    };
    let transactions = args.transactions.iter().map(|t| {
        let alias = &t.alias;
        let variant = format_ident!("{}", t.variant);
        quote!((#alias, #p::TransactionType::#variant))
    });
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
                    transactions: &[#(#transactions),*],
                };
            }

            #p::inventory::submit! { #name::__cmod_MakePipeline::__CMOD_DEF }
        };
    }
}
