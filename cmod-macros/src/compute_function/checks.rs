//! Compile-time checks of the types in a `#[compute_function]` signature that need the
//! compiler (trait impls, type aliases), each spanned at the user's tokens so that a problem
//! is one error there. The traits behind them carry `#[diagnostic::on_unimplemented]`
//! messages (`cmod_runtime::__private`).

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::quote_spanned;
use syn::spanned::Spanned;
use syn::{GenericArgument, PathArguments, Type, TypePath};

use super::signature::MAP_TYPES;

/// `T: Deserialize + JsonSchema` for an input of (owned) type `ty`, at `span_of`.
pub(crate) fn input(p: &TokenStream, ty: &Type, span_of: &Type) -> TokenStream {
    quote_spanned!(span_of.span()=> #p::assert_input::<#ty>();)
}

/// Checks every map key type inside `ty`: for a `HashMap<K, V>` / `BTreeMap<K, V>` as written,
/// `K: FoundryMapKey` at `K`; for every other named type (which may be an alias of a map), the
/// key type the compiler finds, at that name.
pub(crate) fn map_keys(p: &TokenStream, ty: &Type, out: &mut Vec<TokenStream>) {
    match ty {
        Type::Path(path) => {
            match written_map_key(path) {
                Some(key) => out.push(quote_spanned! {key.span()=>
                    #p::assert_map_key::<#key>();
                }),
                None => out.push(respan(
                    quote_spanned! {ty.span()=>
                    #p::assert_map_key_of({
                        #[allow(unused_imports)]
                        use #p::{ViaMap as _, ViaNotMap as _};
                        (&#p::MapKeyTag::<#ty>::new()).__cmod_map_key()
                    });
                    },
                    ty.span(),
                )),
            }
            if let Some(qself) = &path.qself {
                map_keys(p, &qself.ty, out);
            }
            for segment in &path.path.segments {
                if let PathArguments::AngleBracketed(args) = &segment.arguments {
                    for arg in &args.args {
                        if let GenericArgument::Type(t) = arg {
                            map_keys(p, t, out);
                        }
                    }
                }
            }
        }
        Type::Reference(r) => map_keys(p, &r.elem, out),
        Type::Array(a) => map_keys(p, &a.elem, out),
        Type::Slice(s) => map_keys(p, &s.elem, out),
        Type::Paren(paren) => map_keys(p, &paren.elem, out),
        Type::Group(g) => map_keys(p, &g.elem, out),
        Type::Tuple(t) => t.elems.iter().for_each(|t| map_keys(p, t, out)),
        _ => {}
    }
}

/// `tokens` with every span (also inside groups) set to `span`, so that rustc points the whole
/// check at the user's type instead of at the attribute.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                return TokenTree::Group(inner);
            }
            tree.set_span(span);
            tree
        })
        .collect()
}

/// `K` of a `HashMap<K, …>` / `BTreeMap<K, …>` as written.
fn written_map_key(path: &TypePath) -> Option<&Type> {
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if !MAP_TYPES.iter().any(|m| last.ident == m) {
        return None;
    }
    match &last.arguments {
        PathArguments::AngleBracketed(args) => args.args.iter().find_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn checks(ty: Type) -> Vec<String> {
        let mut out = Vec::new();
        map_keys(&quote!(P), &ty, &mut out);
        out.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn written_map_keys_are_checked_at_the_key() {
        let out = checks(syn::parse_quote!(
            Option<std::collections::HashMap<Point, Vec<i32>>>
        ));
        // `Option<…>`, the map's key, `Point` and `Vec<i32>`, `i32` (as possible aliases).
        assert_eq!(out.len(), 5, "{out:#?}");
        assert!(out[1].contains("assert_map_key :: < Point >"), "{}", out[1]);
        assert!(out[0].contains("MapKeyTag :: < Option <"), "{}", out[0]);
    }

    #[test]
    fn named_types_are_checked_through_the_tag() {
        let out = checks(syn::parse_quote!(Vec<Scores>));
        assert_eq!(out.len(), 2, "{out:#?}");
        assert!(out[1].contains("MapKeyTag :: < Scores >"), "{}", out[1]);
    }
}
