//! Generates the registration of a checked `#[compute_function]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{ItemFn, Type};

use super::args::Args;
use super::checks;
use super::edits::Edits;
use super::signature::{Analysis, Item, Param, Shape};
use super::{doc_comment, type_string};
use crate::common::{compact, default_crate, hidden_def_module, private_path, return_span};

/// Everything emitted after the (unchanged) user fn.
pub(crate) fn generate(
    func: &ItemFn,
    args: &Args,
    analysis: &Analysis,
    wire_names: &[String],
    edits: Option<&Edits>,
) -> TokenStream {
    let krate = args.krate.clone().unwrap_or_else(default_crate);
    let p = private_path(&krate);
    let krate_str = compact(&krate);
    let serde_crate = format!("{krate_str}::__private::serde");
    let schemars_crate = format!("{krate_str}::__private::schemars");

    let fn_ident = &func.sig.ident;
    let vis = &func.vis;
    let rust_name = fn_ident.unraw().to_string();
    let wire_name = args.name.clone().unwrap_or_else(|| rust_name.clone());
    let output = &analysis.output;
    let is_async = func.sig.asyncness.is_some();
    let streaming = !matches!(output.shape, Shape::Value);

    // The hidden input struct: one field per input, renamed to its wire name.
    let inputs: Vec<_> = analysis
        .params
        .iter()
        .filter_map(|p| match p {
            Param::Input(input) => Some(input),
            Param::Context { .. } => None,
        })
        .collect();
    // The input struct is generic over the input types (`__cmod_Input<i64, Query>`): the
    // derives then require `Deserialize`/`JsonSchema` of an input only on their impls, so a
    // missing one is reported once, by `assert_input` at that input, not inside the derives.
    let type_params: Vec<_> = (0..inputs.len())
        .map(|i| format_ident!("__cmod_T{}", i))
        .collect();
    let fields = inputs
        .iter()
        .zip(wire_names)
        .zip(&type_params)
        .map(|((input, wire), param)| {
            let ident = &input.ident;
            quote!(#[serde(rename = #wire)] #ident: #param,)
        });
    let field_tys = inputs.iter().map(|input| &input.field_ty);
    let input_ty = quote!(__cmod_Input<#(#field_tys),*>);
    let mut checks: Vec<TokenStream> = inputs
        .iter()
        .map(|input| checks::input(&p, &input.field_ty, &input.written))
        .collect();
    for input in &inputs {
        checks::map_keys(&p, &input.field_ty, &mut checks);
    }
    if let Some(ok) = &output.checked {
        checks::map_keys(&p, ok, &mut checks);
    }
    let input_specs = inputs.iter().zip(wire_names).map(|(input, wire)| {
        let written = type_string(&input.written);
        quote!(#p::InputSpec { name: #wire, rust_type: #written })
    });

    let call_args = analysis.params.iter().map(|param| match param {
        Param::Context { by_ref: false } => quote!(__cmod_ctx),
        Param::Context { by_ref: true } => quote!(&__cmod_ctx),
        Param::Input(input) => {
            let ident = &input.ident;
            if input.by_ref {
                quote!(&__cmod_input.#ident)
            } else {
                quote!(__cmod_input.#ident)
            }
        }
    });
    let call = quote!(#fn_ident(#(#call_args),*));
    // Awaits the call of an `async fn`. Its future must be `Send`: checked once, at the fn's
    // name; `SendTag` keeps a non-`Send` future from failing the job future a second time.
    let send_check = quote_spanned! {fn_ident.span()=>
        #p::async_compute_function_must_return_a_send_future(&__cmod_fut);
    };
    let call_await = quote! {
        {
            let __cmod_fut = #call;
            #send_check
            #[allow(unused_imports)]
            use #p::{ViaNotSend as _, ViaSend as _};
            let __cmod_fut = #p::SendTag(__cmod_fut).__cmod_send();
            __cmod_fut
        }
        .await
    };

    let ret_ty = &output.ty;
    let ret_span = return_span(&func.sig);
    // The success type (`T` of `Result<T, E>`, also through aliases).
    let ok_ty = if output.fallible {
        quote_spanned!(ret_span=> <#ret_ty as #p::FunctionResult>::Ok)
    } else {
        quote!(#ret_ty)
    };
    let function_error = quote! {{
        use #p::{ViaDisplay as _, ViaNothing as _, ViaStdError as _};
        (&&#p::ErrorTag(&__cmod_err)).__cmod_function_error()
    }};
    // `__cmod_ret` → `Result<success value, JobError>`.
    let to_result = if output.fallible {
        quote_spanned! {ret_span=>
            match #p::into_result(__cmod_ret) {
                ::core::result::Result::Ok(__cmod_ok) => ::core::result::Result::Ok(__cmod_ok),
                ::core::result::Result::Err(__cmod_err) => {
                    ::core::result::Result::Err(#function_error)
                }
            }
        }
    } else {
        quote!(::core::result::Result::Ok::<_, #p::JobError>(__cmod_ret))
    };
    // Runs the call, leaving its `Result<success, JobError>` in `__cmod_ret` (sync calls on
    // the blocking pool).
    let call_to_result = if is_async {
        quote! {
            let __cmod_ret = #call_await;
            let __cmod_ret = #to_result?;
        }
    } else {
        quote! {
            let __cmod_ret = #p::run_blocking(move || {
                let __cmod_ret = #call;
                #to_result
            }).await??;
        }
    };

    let body = match &output.shape {
        Shape::Value => {
            // How the success value `__cmod_ok` / `__cmod_ret` is encoded.
            let encode_of = |value: TokenStream| match edits {
                Some(_) => quote_spanned!(ret_span=> #p::encode_edits(&#value, &__CMOD_EDITS)),
                None => quote_spanned!(ret_span=> #p::encode_value(&#value)),
            };
            let encode = if output.fallible {
                let encode_ok = encode_of(quote_spanned!(ret_span=> __cmod_ok));
                quote_spanned! {ret_span=>
                    match #p::into_result(__cmod_ret) {
                        ::core::result::Result::Ok(__cmod_ok) => #encode_ok,
                        ::core::result::Result::Err(__cmod_err) => {
                            ::core::result::Result::Err(#function_error)
                        }
                    }
                }
            } else {
                encode_of(quote_spanned!(ret_span=> __cmod_ret))
            };
            if is_async {
                quote! {
                    let __cmod_ret = #call_await;
                    #encode
                }
            } else {
                // Encoding on the blocking pool too: the value need not be `Send`, and a big
                // result is not serialized on the job loop's threads.
                quote! {
                    #p::run_blocking(move || {
                        let __cmod_ret = #call;
                        #encode
                    }).await?
                }
            }
        }
        Shape::Iter(item) => {
            let encoder = item_appender(&p, item, &function_error);
            if is_async {
                quote! {
                    let __cmod_ret = #call_await;
                    let __cmod_ret = #to_result?;
                    #p::iter_output(move || ::core::result::Result::Ok(__cmod_ret), #encoder).await
                }
            } else {
                // The call and the iteration both run on the blocking pool.
                quote! {
                    #p::iter_output(move || {
                        let __cmod_ret = #call;
                        #to_result
                    }, #encoder).await
                }
            }
        }
        Shape::Stream(item) => {
            let encoder = item_encoder(&p, item, &function_error);
            quote! {
                #call_to_result
                ::core::result::Result::Ok(#p::stream_output(__cmod_ret, #encoder))
            }
        }
        Shape::Tagged => quote! {
            #call_to_result
            {
                use #p::{ViaIntoIterator as _, ViaStream as _};
                (&#p::StreamTag::<#ok_ty>::new()).__cmod_stream(__cmod_ret)
            }.await
        },
    };

    let output_schema = match &output.shape {
        // The edits' schema comes from `__CMOD_EDITS`.
        Shape::Value if edits.is_some() => quote!(#p::schema_of::<()>),
        Shape::Value => quote_spanned!(ret_span=> #p::schema_of::<#ok_ty>),
        Shape::Iter(item) | Shape::Stream(item) => {
            let item_ok = item_ok_type(&p, item);
            quote!(#p::schema_of::<#item_ok>)
        }
        Shape::Tagged => quote! {
            |__cmod_gen| {
                use #p::{ViaIntoIterator as _, ViaStream as _};
                (&#p::StreamTag::<#ok_ty>::new()).__cmod_item_schema(__cmod_gen)
            }
        },
    };

    let description = match doc_comment(&func.attrs) {
        Some(doc) => quote!(::core::option::Option::Some(#doc)),
        None => quote!(::core::option::Option::None),
    };
    let output_type = type_string(ret_ty);
    let (edits_static, edits_ref) = match edits {
        Some(e) => (
            e.spec(&p, &wire_name),
            quote!(::core::option::Option::Some(&__CMOD_EDITS)),
        ),
        None => (quote!(), quote!(::core::option::Option::None)),
    };

    let hidden_mod = hidden_def_module(
        vis,
        fn_ident,
        &format_ident!("__cmod_MakeDef"),
        &format_ident!("__CMOD_FUNCTION_DEF"),
        &quote!(#p::FunctionDef),
        " The registration of this `#[compute_function]`, for `cmod_runtime::function!`.",
    );

    quote! {
        #hidden_mod

        const _: () = {
            #[derive(#p::serde::Deserialize, #p::schemars::JsonSchema)]
            #[serde(
                crate = #serde_crate,
                deny_unknown_fields,
                expecting = "a JSON object with the function's inputs"
            )]
            #[schemars(crate = #schemars_crate)]
            #[allow(non_camel_case_types)]
            struct __cmod_Input<#(#type_params),*> {
                #(#fields)*
            }

            // Type-level checks, each at the tokens it is about (never called).
            #[allow(dead_code)]
            fn __cmod_check_types() {
                #(#checks)*
            }

            static __CMOD_SPEC: #p::FunctionSpec = #p::FunctionSpec {
                name: #wire_name,
                rust_path: ::core::concat!(::core::module_path!(), "::", #rust_name),
                inputs: &[#(#input_specs),*],
                output_type: #output_type,
                streaming: #streaming,
                description: #description,
                edits: #edits_ref,
            };

            #edits_static

            fn __cmod_schema() -> ::core::result::Result<#p::FunctionSchema, #p::SchemaError> {
                #[allow(unused_imports)]
                use #p::{ViaInputSchema as _, ViaNoInputSchema as _};
                (&#p::InputTag::<#input_ty>::new())
                    .__cmod_function_schema(&__CMOD_SPEC, #output_schema)
            }

            fn __cmod_call(__cmod_ctx: #p::Context, __cmod_query: #p::JobInput) -> #p::JobFuture {
                #p::box_future(async move {
                    let __cmod_input: #input_ty = {
                        #[allow(unused_imports)]
                        use #p::{ViaInputDeserialize as _, ViaNoInputDeserialize as _};
                        (&#p::InputTag::<#input_ty>::new()).__cmod_decode(&__cmod_query)?
                    };
                    #body
                })
            }

            impl #fn_ident::__cmod_MakeDef {
                const __CMOD_DEF: #p::FunctionDef = #p::FunctionDef {
                    name: #wire_name,
                    module_path: ::core::module_path!(),
                    rust_name: #rust_name,
                    file: ::core::file!(),
                    line: ::core::line!(),
                    streaming: #streaming,
                    schema: __cmod_schema,
                    call: __cmod_call,
                };
            }

            #p::inventory::submit! { #fn_ident::__cmod_MakeDef::__CMOD_DEF }
        };
    }
}

/// The closure encoding one streamed item (an `Err` item becomes a `FunctionError`).
fn item_encoder(p: &TokenStream, item: &Item, function_error: &TokenStream) -> TokenStream {
    let span = item.ty.span();
    if item.fallible {
        quote_spanned! {span=>
            |__cmod_item| match #p::into_result(__cmod_item) {
                ::core::result::Result::Ok(__cmod_ok) => #p::encode_item(&__cmod_ok),
                ::core::result::Result::Err(__cmod_err) => {
                    ::core::result::Result::Err(#function_error)
                }
            }
        }
    } else {
        quote_spanned!(span=> |__cmod_item| #p::encode_item(&__cmod_item))
    }
}

/// The closure appending one iterated item's JSON to a batch buffer (an `Err` item becomes a
/// `FunctionError`).
fn item_appender(p: &TokenStream, item: &Item, function_error: &TokenStream) -> TokenStream {
    let span = item.ty.span();
    if item.fallible {
        quote_spanned! {span=>
            |__cmod_buf: &mut ::std::vec::Vec<u8>, __cmod_item| match #p::into_result(__cmod_item) {
                ::core::result::Result::Ok(__cmod_ok) => #p::encode_item_into(__cmod_buf, &__cmod_ok),
                ::core::result::Result::Err(__cmod_err) => {
                    ::core::result::Result::Err(#function_error)
                }
            }
        }
    } else {
        quote_spanned! {span=>
            |__cmod_buf: &mut ::std::vec::Vec<u8>, __cmod_item| #p::encode_item_into(__cmod_buf, &__cmod_item)
        }
    }
}

/// The type whose schema describes one streamed item.
fn item_ok_type(p: &TokenStream, item: &Item) -> TokenStream {
    let ty: &Type = &item.ty;
    if item.fallible {
        quote_spanned!(ty.span()=> <#ty as #p::FunctionResult>::Ok)
    } else {
        quote!(#ty)
    }
}
