//! The attribute's arguments: `input = "…"` / `output = "…"` (in order), `after_success = "…"`,
//! `crate = "…"`.

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

/// The parsed attribute: the aliases in order, and which keys were present but unusable (so
/// that follow-up checks do not pile consequential errors on top).
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) aliases: Vec<AliasArg>,
    /// `after_success = "exit" | "stay_alive"`: the variant name of `AfterSuccess`.
    pub(crate) after_success: Option<&'static str>,
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
                     `after_success`, `crate`"
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
