//! Checks of the aliases, of the function's signature, and of how the two bind in order.

use proc_macro2::Span;
use syn::{FnArg, ItemFn, Type};

use super::args::{AliasArg, Args, Direction};
use crate::common::Errors;

/// Checks the aliases themselves: non-empty, no whitespace, no duplicates, at least one of each
/// direction.
pub(crate) fn validate_aliases(args: &Args, args_span: Span, errors: &mut Errors) {
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
    for t in &args.transactions {
        let name = t.alias.value();
        match args.aliases.iter().find(|a| a.alias.value() == name) {
            Some(a) if a.direction == Direction::Output => {}
            Some(_) => errors.spanned(
                &t.alias,
                format!(
                    "`{name}` is an input: `transaction(...)` sets the transaction type of an \
                     output (inputs are only read)"
                ),
            ),
            None => {
                let outputs: Vec<String> = args
                    .aliases
                    .iter()
                    .filter(|a| a.direction == Direction::Output)
                    .map(|a| format!("`{}`", a.alias.value()))
                    .collect();
                errors.spanned(
                    &t.alias,
                    format!(
                        "`{name}` is not an output of this pipeline; `transaction(...)` names \
                         output aliases (declared: {})",
                        if outputs.is_empty() {
                            "none".to_owned()
                        } else {
                            outputs.join(", ")
                        }
                    ),
                );
            }
        }
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

pub(crate) fn ordinal(n: usize) -> String {
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
pub(crate) fn validate_fn<'f>(func: &'f ItemFn, errors: &mut Errors) -> Vec<&'f Type> {
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
pub(crate) fn validate_binding(
    func: &ItemFn,
    aliases: &[AliasArg],
    types: &[&Type],
    errors: &mut Errors,
) {
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
