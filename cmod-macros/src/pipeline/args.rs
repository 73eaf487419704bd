//! The attribute's arguments: `input = "…"` / `output = "…"` (in order), `after_success = "…"`,
//! `transaction(alias = "…", …)`, `crate = "…"`.

use proc_macro2::TokenStream;
use syn::{LitStr, Meta};

use crate::common::{Errors, compact, parse_metas, str_lit};

/// Which way a resource flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Input,
    Output,
}

impl Direction {
    pub(crate) fn key(self) -> &'static str {
        match self {
            Direction::Input => "input",
            Direction::Output => "output",
        }
    }
}

/// One `input = "…"` / `output = "…"` key of the attribute.
#[derive(Clone)]
pub(crate) struct AliasArg {
    pub(crate) direction: Direction,
    pub(crate) alias: LitStr,
}

/// One `alias = "append"` of `transaction(…)`.
#[derive(Clone)]
pub(crate) struct TransactionArg {
    /// The output alias, as written (an identifier or a string literal).
    pub(crate) alias: LitStr,
    /// The `TransactionType` variant name.
    pub(crate) variant: &'static str,
}

/// The parsed attribute: the aliases in order, and which keys were present but unusable (so
/// that follow-up checks do not pile consequential errors on top).
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) aliases: Vec<AliasArg>,
    /// `after_success = "exit" | "stay_alive"`: the variant name of `AfterSuccess`.
    pub(crate) after_success: Option<&'static str>,
    /// `transaction(alias = "snapshot" | "append" | "update", …)`.
    pub(crate) transactions: Vec<TransactionArg>,
    /// `crate = "…"`: the path to `cmod_runtime` generated code uses instead of
    /// `::cmod_runtime`.
    pub(crate) krate: Option<syn::Path>,
    /// `input`/`output` keys present with an unusable value, by direction.
    pub(crate) bad_keys: Vec<Direction>,
    /// The arguments could not be parsed at all.
    pub(crate) unparsable: bool,
}

/// Parses the attribute arguments into the ordered list of aliases.
pub(crate) fn parse_args(args: TokenStream, errors: &mut Errors) -> Args {
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
    let mut crate_seen = false;
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
        } else if path.is_ident("transaction") {
            parse_transactions(&meta, &mut out.transactions, errors);
            continue;
        } else if path.is_ident("crate") {
            if crate_seen {
                errors.spanned(path, "duplicate `crate`: give it once");
                continue;
            }
            crate_seen = true;
            out.krate = parse_crate(&meta, errors);
            continue;
        } else {
            let name = compact(path);
            errors.spanned(
                path,
                format!(
                    "unknown argument `{name}`; expected one of: `input`, `output`, \
                     `after_success`, `transaction`, `crate`"
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

/// `transaction(alias = "append", …)` → one [`TransactionArg`] per output; errors point at the
/// offending token. Whether each alias is a declared output is checked in `validate`.
fn parse_transactions(meta: &Meta, out: &mut Vec<TransactionArg>, errors: &mut Errors) {
    const EXPECTED: &str = "write `transaction(output_alias = \"snapshot\" | \"append\" | \
                            \"update\")`, one entry per dataset output whose transaction is not a \
                            snapshot";
    let Meta::List(list) = meta else {
        errors.spanned(meta, format!("`transaction` takes a list: {EXPECTED}"));
        return;
    };
    let entries = match list
        .parse_args_with(syn::punctuated::Punctuated::<Meta, syn::Token![,]>::parse_terminated)
    {
        Ok(e) => e,
        Err(e) => {
            errors.push(syn::Error::new(e.span(), format!("{e}; {EXPECTED}")));
            return;
        }
    };
    if entries.is_empty() {
        errors.spanned(list, format!("empty `transaction(...)`; {EXPECTED}"));
    }
    for entry in entries {
        let Meta::NameValue(nv) = &entry else {
            errors.spanned(
                &entry,
                format!("each entry is `output_alias = \"append\"`; {EXPECTED}"),
            );
            continue;
        };
        let Some(ident) = nv.path.get_ident() else {
            errors.spanned(
                &nv.path,
                format!("the output alias must be a single name; {EXPECTED}"),
            );
            continue;
        };
        let alias = LitStr::new(&ident.to_string(), ident.span());
        let Some(lit) = str_lit(&nv.value) else {
            errors.spanned(
                &nv.value,
                format!("the transaction type must be a string literal; {EXPECTED}"),
            );
            continue;
        };
        let variant = match lit.value().to_ascii_lowercase().as_str() {
            "snapshot" => "Snapshot",
            "append" => "Append",
            "update" => "Update",
            other => {
                errors.spanned(
                    lit,
                    format!(
                        "invalid transaction type {other:?} for output `{ident}`: expected \
                         \"snapshot\" (the output becomes exactly this run's files), \"append\" \
                         (this run's files are added) or \"update\" (added, replacing files of \
                         the same path)"
                    ),
                );
                continue;
            }
        };
        if out.iter().any(|t| t.alias.value() == alias.value()) {
            errors.spanned(
                &nv.path,
                format!("duplicate transaction type for output `{ident}`: give it once"),
            );
            continue;
        }
        out.push(TransactionArg { alias, variant });
    }
}

/// `crate = "…"` → the path generated code uses instead of `::cmod_runtime`; errors point at
/// the value.
fn parse_crate(meta: &Meta, errors: &mut Errors) -> Option<syn::Path> {
    const EXPECTED: &str = "write the path to the `cmod_runtime` crate as a string, like \
                            `crate = \"::cmod_runtime\"` or `crate = \"crate::rt\"`";
    let Meta::NameValue(nv) = meta else {
        errors.spanned(meta, format!("`crate` needs a value: {EXPECTED}"));
        return None;
    };
    let Some(lit) = str_lit(&nv.value) else {
        errors.spanned(
            &nv.value,
            format!("`crate` takes a string literal: {EXPECTED}"),
        );
        return None;
    };
    match lit.parse::<syn::Path>() {
        Ok(path) => Some(path),
        Err(_) => {
            errors.spanned(
                lit,
                format!(
                    "`crate` must be a path to the `cmod_runtime` crate, not {:?}; {EXPECTED}",
                    lit.value()
                ),
            );
            None
        }
    }
}
