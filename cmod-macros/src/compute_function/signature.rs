//! Validates the annotated fn's signature and works out its inputs, `Context` and output.

use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, Ident, Pat, PathArguments, ReturnType, Signature, Type, TypeParamBound,
};

use crate::common::Errors;

/// One parameter of the annotated fn.
pub(crate) enum Param {
    /// The per-job `Context`, by value or by `&`.
    Context { by_ref: bool },
    /// An input.
    Input(Box<Input>),
}

/// A parameter that is an input.
pub(crate) struct Input {
    /// The parameter's name (also the input struct's field name).
    pub(crate) ident: Ident,
    /// The owned type stored in the input struct (`String` for `&str`, `Vec<T>` for `&[T]`).
    pub(crate) field_ty: Type,
    /// Whether the fn takes it by reference.
    pub(crate) by_ref: bool,
    /// The parameter's type as written.
    pub(crate) written: Type,
}

/// What the fn returns.
pub(crate) struct Output {
    /// The return type as written (`()` when there is none).
    pub(crate) ty: Type,
    /// Whether it is a `Result` (by its last path segment, so aliases count).
    pub(crate) fallible: bool,
    /// What the success value is.
    pub(crate) shape: Shape,
    /// The success type as written (`T` of `Result<T, E>`, the item type of a stream), whose
    /// map key types the generated code checks.
    pub(crate) checked: Option<Type>,
}

/// The success value of a function.
pub(crate) enum Shape {
    /// One value, serialized as the result.
    Value,
    /// `impl Iterator<Item = T>` (also `IntoIterator`): streamed from the blocking pool.
    Iter(Item),
    /// `impl Stream<Item = T>`: streamed as it is polled.
    Stream(Item),
    /// A concrete type with the `streaming` argument: stream or iterator, picked by its traits.
    Tagged,
}

/// The item type of a streamed output.
pub(crate) struct Item {
    /// The item type as written.
    pub(crate) ty: Type,
    /// Whether items are `Result`s (an `Err` item ends the stream with that error).
    pub(crate) fallible: bool,
}

/// The checked signature.
pub(crate) struct Analysis {
    pub(crate) params: Vec<Param>,
    pub(crate) output: Output,
}

const ITERATOR_TRAITS: [&str; 4] = [
    "Iterator",
    "IntoIterator",
    "ExactSizeIterator",
    "DoubleEndedIterator",
];
const STREAM_TRAITS: [&str; 2] = ["Stream", "FusedStream"];
/// Map types (by last path segment), whose first type argument is the key.
pub(crate) const MAP_TYPES: [&str; 2] = ["HashMap", "BTreeMap"];

/// Checks the signature, recording every problem in `errors`. `None` when it cannot be used.
pub(crate) fn analyze(sig: &Signature, streaming: bool, errors: &mut Errors) -> Option<Analysis> {
    let before = errors.len();
    let generic = "`#[compute_function]` functions cannot be generic: Foundry needs concrete \
                   input and output types";
    if !sig.generics.params.is_empty() {
        errors.spanned(&sig.generics.params, generic);
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.spanned(where_clause, generic);
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.spanned(
            unsafety,
            "`#[compute_function]` cannot be used on an `unsafe fn`: the runtime must be able to \
             call it safely",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(
            variadic,
            "`#[compute_function]` functions cannot be variadic",
        );
    }

    let mut params = Vec::new();
    let mut context_seen = false;
    for arg in &sig.inputs {
        let pat_type = match arg {
            FnArg::Receiver(receiver) => {
                errors.spanned(
                    receiver,
                    "`#[compute_function]` cannot be used on methods: `self` parameters are not \
                     supported; use a free function",
                );
                continue;
            }
            FnArg::Typed(pat_type) => pat_type,
        };
        for attr in &pat_type.attrs {
            if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
                errors.spanned(
                    attr,
                    "`#[cfg]` on a parameter of a `#[compute_function]` is not supported: the \
                     inputs must not depend on the configuration",
                );
            }
        }
        if let Some(by_ref) = context_kind(&pat_type.ty, errors) {
            if context_seen {
                errors.spanned(
                    &pat_type.ty,
                    "only one `Context` parameter is allowed in a `#[compute_function]`",
                );
            }
            context_seen = true;
            check_context_pattern(&pat_type.pat, errors);
            params.push(Param::Context { by_ref });
            continue;
        }
        let Some(ident) = input_ident(&pat_type.pat, errors) else {
            continue;
        };
        if let Some(input) = input_type(ident, &pat_type.ty, errors) {
            params.push(Param::Input(Box::new(input)));
        }
    }

    let output = output(&sig.output, streaming, errors);
    (errors.len() == before).then_some(Analysis { params, output })
}

/// `Some(by_ref)` when `ty` is `Context` or `&Context` (by last path segment).
fn context_kind(ty: &Type, errors: &mut Errors) -> Option<bool> {
    match ty {
        Type::Path(_) if is_context(ty) => Some(false),
        Type::Reference(r) if is_context(&r.elem) => {
            if let Some(m) = &r.mutability {
                errors.spanned(
                    m,
                    "take `Context` by value or by shared reference (`&Context`), not `&mut`",
                );
            }
            Some(true)
        }
        Type::Paren(p) => context_kind(&p.elem, errors),
        Type::Group(g) => context_kind(&g.elem, errors),
        _ => None,
    }
}

fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Context" && s.arguments.is_none()),
        Type::Paren(p) => is_context(&p.elem),
        Type::Group(g) => is_context(&g.elem),
        _ => false,
    }
}

fn check_context_pattern(pat: &Pat, errors: &mut Errors) {
    match pat {
        Pat::Ident(p) if p.subpat.is_none() => {}
        Pat::Wild(_) => {}
        other => errors.spanned(
            other,
            "argument patterns are not supported by `#[compute_function]`; use a plain \
             identifier",
        ),
    }
}

fn input_ident(pat: &Pat, errors: &mut Errors) -> Option<Ident> {
    match pat {
        Pat::Ident(p) if p.subpat.is_none() => Some(p.ident.clone()),
        Pat::Wild(w) => {
            errors.spanned(
                w,
                "give this parameter a name: `#[compute_function]` uses parameter names as input \
                 names",
            );
            None
        }
        other => {
            errors.spanned(
                other,
                "argument patterns are not supported by `#[compute_function]`; use a plain \
                 identifier (it becomes the input's name)",
            );
            None
        }
    }
}

fn input_type(ident: Ident, ty: &Type, errors: &mut Errors) -> Option<Input> {
    let before = errors.len();
    let (field_ty, by_ref) = match ty {
        Type::ImplTrait(t) => {
            errors.spanned(
                t,
                "`impl Trait` parameters are not supported by `#[compute_function]`: use a \
                 concrete type",
            );
            return None;
        }
        Type::Reference(r) => {
            if let Some(m) = &r.mutability {
                errors.spanned(
                    m,
                    "`&mut` parameters are not supported by `#[compute_function]`: take the input \
                     by value or by `&`",
                );
            }
            if let Some(lt) = &r.lifetime {
                errors.spanned(
                    lt,
                    "references with explicit lifetimes are not supported by \
                     `#[compute_function]`: write `&T` or take an owned type",
                );
            }
            (owned_type(&r.elem), true)
        }
        other => (other.clone(), false),
    };
    check_type(&field_ty, Position::Input, errors);
    (errors.len() == before).then(|| Input {
        ident,
        field_ty,
        by_ref,
        written: ty.clone(),
    })
}

/// The owned type stored for a `&T` parameter: `String` for `str`, `Vec<T>` for `[T]`.
fn owned_type(elem: &Type) -> Type {
    let span = elem.span();
    match elem {
        Type::Path(p) if p.qself.is_none() && p.path.is_ident("str") => {
            syn::parse_quote_spanned!(span=> ::std::string::String)
        }
        Type::Slice(s) => {
            let inner = &s.elem;
            syn::parse_quote_spanned!(span=> ::std::vec::Vec<#inner>)
        }
        other => other.clone(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    Input,
    Output,
}

/// Rejects what Foundry cannot represent and the macro can see: tuples, 64-bit+ unsigned and
/// 128-bit integers, references inside inputs, `impl Trait`, trait objects, fn pointers.
fn check_type(ty: &Type, position: Position, errors: &mut Errors) {
    match ty {
        Type::Tuple(t) if t.elems.is_empty() && position == Position::Input => {
            errors.spanned(t, "`()` carries no value and cannot be an input");
        }
        Type::Tuple(t) if t.elems.is_empty() => {}
        Type::Tuple(t) => errors.spanned(
            t,
            "tuples have no Foundry type; use a struct with named fields",
        ),
        Type::Path(p) => {
            if p.qself.is_none()
                && let Some(ident) = p.path.get_ident()
                && matches!(
                    ident.to_string().as_str(),
                    "u64" | "usize" | "u128" | "i128"
                )
            {
                errors.spanned(
                    ident,
                    format!(
                        "`{ident}` has no Foundry type: Foundry's widest integer is the signed \
                         64-bit `long`; use `i64`"
                    ),
                );
            }
            for segment in &p.path.segments {
                let PathArguments::AngleBracketed(args) = &segment.arguments else {
                    continue;
                };
                let is_map = MAP_TYPES.iter().any(|m| segment.ident == m);
                let types = args.args.iter().filter_map(|a| match a {
                    GenericArgument::Type(t) => Some(t),
                    _ => None,
                });
                for (i, t) in types.enumerate() {
                    match t {
                        Type::Tuple(key) if is_map && i == 0 => errors.spanned(
                            key,
                            "a tuple cannot be a map key: Foundry map keys are strings, \
                             integers, `bool`, floats, decimals, dates, timestamps or binary; \
                             use one of those (e.g. a `String` key) or a list of structs",
                        ),
                        _ => check_type(t, position, errors),
                    }
                }
            }
        }
        Type::Reference(r) => {
            if position == Position::Input {
                errors.spanned(
                    r,
                    "references are only supported as a whole parameter type (`&str`, `&[T]`, \
                     `&T`); use an owned type here (e.g. `String`)",
                );
            } else {
                check_type(&r.elem, position, errors);
            }
        }
        Type::Array(a) => check_type(&a.elem, position, errors),
        Type::Slice(s) => check_type(&s.elem, position, errors),
        Type::Paren(p) => check_type(&p.elem, position, errors),
        Type::Group(g) => check_type(&g.elem, position, errors),
        Type::ImplTrait(t) => {
            errors.spanned(t, "`impl Trait` is not supported here: use a concrete type")
        }
        Type::TraitObject(t) => errors.spanned(
            t,
            "trait objects (`dyn Trait`) have no Foundry type: use a concrete type",
        ),
        Type::BareFn(t) => errors.spanned(t, "function pointers have no Foundry type"),
        Type::Ptr(t) => errors.spanned(t, "raw pointers have no Foundry type"),
        Type::Never(t) => errors.spanned(
            t,
            "a `#[compute_function]` must return a value; `!` has no Foundry type",
        ),
        Type::Infer(t) => errors.spanned(t, "write the type out: `_` is not allowed here"),
        _ => {}
    }
}

fn output(ret: &ReturnType, streaming: bool, errors: &mut Errors) -> Output {
    let ty: Type = match ret {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let fallible = is_result(&ty);
    // The success type as written: the first type argument of `Result<T, …>`.
    let ok = if fallible {
        first_type_arg(&ty)
    } else {
        Some(&ty)
    };
    let streamed = match ok {
        Some(ok) => streamed_item(ok, errors),
        None => Streamed::No,
    };
    let mut checked = ok.cloned();
    let shape = match streamed {
        Streamed::Yes(is_iter, item) => {
            checked = if item.fallible {
                first_type_arg(&item.ty).cloned()
            } else {
                Some(item.ty.clone())
            };
            if is_iter {
                Shape::Iter(*item)
            } else {
                Shape::Stream(*item)
            }
        }
        // Already reported; any shape will do.
        Streamed::Invalid => Shape::Value,
        Streamed::No if streaming => Shape::Tagged,
        Streamed::No => {
            if let Some(ok) = ok {
                check_type(ok, Position::Output, errors);
            }
            Shape::Value
        }
    };
    Output {
        ty,
        fallible,
        shape,
        checked,
    }
}

/// Whether a return type is a streamed `impl Trait`.
enum Streamed {
    /// Not `impl Trait`.
    No,
    /// `impl Iterator<Item = T>` (`true`) or `impl Stream<Item = T>` (`false`).
    Yes(bool, Box<Item>),
    /// An `impl Trait` that cannot be streamed (reported).
    Invalid,
}

/// For `impl Iterator<Item = T>` / `impl Stream<Item = T>`, the item. Other `impl Trait`
/// types are reported.
fn streamed_item(ty: &Type, errors: &mut Errors) -> Streamed {
    let Type::ImplTrait(imp) = ty else {
        return Streamed::No;
    };
    for bound in &imp.bounds {
        let TypeParamBound::Trait(t) = bound else {
            continue;
        };
        let Some(last) = t.path.segments.last() else {
            continue;
        };
        let name = last.ident.to_string();
        let is_iter = ITERATOR_TRAITS.contains(&name.as_str());
        if !is_iter && !STREAM_TRAITS.contains(&name.as_str()) {
            continue;
        }
        let item = match &last.arguments {
            PathArguments::AngleBracketed(args) => args.args.iter().find_map(|a| match a {
                GenericArgument::AssocType(assoc) if assoc.ident == "Item" => Some(&assoc.ty),
                _ => None,
            }),
            _ => None,
        };
        let Some(item) = item else {
            errors.spanned(
                t,
                format!("name the item type of the streamed output: `impl {name}<Item = T>`"),
            );
            return Streamed::Invalid;
        };
        let item_fallible = is_result(item);
        let checked = if item_fallible {
            first_type_arg(item)
        } else {
            Some(item)
        };
        if let Some(checked) = checked {
            check_type(checked, Position::Output, errors);
        }
        return Streamed::Yes(
            is_iter,
            Box::new(Item {
                ty: item.clone(),
                fallible: item_fallible,
            }),
        );
    }
    errors.spanned(
        imp,
        "`impl Trait` return types are only supported for streaming: return \
         `impl Iterator<Item = T>` or `impl Stream<Item = T>` (or a concrete type)",
    );
    Streamed::Invalid
}

/// Whether the type's last path segment is `Result`.
pub(crate) fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
        Type::Paren(p) => is_result(&p.elem),
        Type::Group(g) => is_result(&g.elem),
        _ => false,
    }
}

fn first_type_arg(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Path(p) => match &p.path.segments.last()?.arguments {
            PathArguments::AngleBracketed(args) => args.args.iter().find_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            }),
            _ => None,
        },
        Type::Paren(p) => first_type_arg(&p.elem),
        Type::Group(g) => first_type_arg(&g.elem),
        _ => None,
    }
}
