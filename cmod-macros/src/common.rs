//! Helpers shared by `#[compute_function]` and `#[pipeline]`: error accumulation, attribute
//! argument parsing, spans, and the hidden definition module both generate.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Meta, ReturnType, Signature, Token, Visibility};

/// Accumulates errors so that all of them are reported at once.
#[derive(Default)]
pub(crate) struct Errors {
    all: Option<syn::Error>,
    count: usize,
}

impl Errors {
    /// Records an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.count += 1;
        match &mut self.all {
            Some(all) => all.combine(error),
            None => self.all = Some(error),
        }
    }

    /// Records an error spanning `tokens`.
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error at `span`.
    pub(crate) fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// How many errors were recorded.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// `Ok` when nothing was recorded, otherwise all errors combined.
    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.all {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The item's tokens followed by the compile errors (the item is always re-emitted, so it stays
/// callable and IDEs keep working when the attribute is misused).
pub(crate) fn item_with_errors(mut item: TokenStream, errors: syn::Error) -> TokenStream {
    item.extend(errors.into_compile_error());
    item
}

/// Parses attribute arguments as comma-separated metas (`key`, `key = value`, `key(…)`).
pub(crate) fn parse_metas(tokens: TokenStream) -> syn::Result<Punctuated<Meta, Token![,]>> {
    Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens)
}

/// The string literal an expression is, if it is one.
pub(crate) fn str_lit(expr: &Expr) -> Option<&LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s),
        _ => None,
    }
}

/// Tokens as written, without the spaces token printing adds: `::cmod_runtime`, `a::b`.
pub(crate) fn compact(tokens: impl ToTokens) -> String {
    tokens.to_token_stream().to_string().replace(' ', "")
}

/// Where problems with what the fn returns are reported: its return type, or its name when it
/// has none.
pub(crate) fn return_span(sig: &Signature) -> Span {
    match &sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => sig.ident.span(),
    }
}

/// The path generated code reaches `cmod_runtime` internals through: `<krate>::__private`.
pub(crate) fn private_path(krate: &syn::Path) -> TokenStream {
    quote!(#krate::__private)
}

/// The default path to the runtime crate, `::cmod_runtime`.
pub(crate) fn default_crate() -> syn::Path {
    syn::parse_quote!(::cmod_runtime)
}

/// The hidden module named like the fn (type namespace, so the fn itself is untouched) that
/// holds the nameable definition: `pub struct <maker>;` and
/// `pub static <def>: <def_ty> = <maker>::__CMOD_DEF;`. The `__CMOD_DEF` constant is added by
/// an `impl` in a `const _` block of the fn's scope, where the user's imports resolve.
pub(crate) fn hidden_def_module(
    vis: &Visibility,
    name: &Ident,
    maker: &Ident,
    def: &Ident,
    def_ty: &TokenStream,
    doc: &str,
) -> TokenStream {
    quote! {
        #[doc(hidden)]
        #[allow(
            dead_code,
            missing_docs,
            missing_debug_implementations,
            non_camel_case_types,
            unreachable_pub
        )]
        #vis mod #name {
            pub struct #maker;
            #[doc = #doc]
            pub static #def: #def_ty = #maker::__CMOD_DEF;
        }
    }
}
