//! The attribute's arguments: `name = "…"`, `rename_all = "…"`, `streaming`,
//! `edits = ["…", …]`, `ontology_metadata = "…"`, `crate = "…"`.

use proc_macro2::TokenStream;
use syn::spanned::Spanned;
use syn::{LitStr, Meta};

use crate::common::{Errors, parse_metas, str_lit};

/// The longest wire name accepted.
const MAX_NAME_LEN: usize = 128;

const EXPECTED: &str =
    "expected one of: `name`, `rename_all`, `streaming`, `edits`, `ontology_metadata`, `crate`";

/// Parsed `#[compute_function(…)]` arguments.
#[derive(Default)]
pub(crate) struct Args {
    /// `name = "…"`: the wire name.
    pub(crate) name: Option<String>,
    /// `rename_all = "…"`: how parameter names become input names.
    pub(crate) rename_all: Option<RenameRule>,
    /// `streaming`: stream a concrete return type.
    pub(crate) streaming: bool,
    /// `crate = "…"`: the path to `cmod_runtime`.
    pub(crate) krate: Option<syn::Path>,
    /// `edits = ["Employee", …]`: the object types whose edits the function returns, and the
    /// `edits` key (for errors about the argument as a whole).
    pub(crate) edits: Option<(syn::Path, Vec<LitStr>)>,
    /// `ontology_metadata = "…"`: the metadata file, relative to the source file.
    pub(crate) ontology_metadata: Option<LitStr>,
    /// Whether `edits` was written (also when its value was invalid).
    pub(crate) edits_written: bool,
}

impl Args {
    /// Parses the arguments, recording every problem in `errors`.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let mut args = Args::default();
        let metas = match parse_metas(tokens) {
            Ok(metas) => metas,
            Err(e) => {
                errors.push(syn::Error::new(
                    e.span(),
                    format!(
                        "invalid `#[compute_function]` arguments: {e}; write e.g. \
                         `#[compute_function(name = \"my_function\", streaming)]`"
                    ),
                ));
                return args;
            }
        };
        let mut seen: Vec<String> = Vec::new();
        for meta in metas {
            let Some(key) = meta.path().get_ident().map(ToString::to_string) else {
                errors.spanned(meta.path(), format!("unknown argument; {EXPECTED}"));
                continue;
            };
            if seen.contains(&key) {
                errors.spanned(meta.path(), format!("`{key}` is set more than once"));
                continue;
            }
            seen.push(key.clone());
            match key.as_str() {
                "name" => {
                    if let Some(lit) = string_value(&meta, "name", "my_function", errors) {
                        match validate_name(&lit.value()) {
                            Ok(()) => args.name = Some(lit.value()),
                            Err(msg) => errors.spanned(&lit, msg),
                        }
                    }
                }
                "rename_all" => {
                    if let Some(lit) = string_value(&meta, "rename_all", "camelCase", errors) {
                        match RenameRule::parse(&lit.value()) {
                            Some(rule) => args.rename_all = Some(rule),
                            None => errors.spanned(
                                &lit,
                                format!(
                                    "unknown `rename_all` rule `{}`; expected one of: {}",
                                    lit.value(),
                                    RenameRule::NAMES
                                        .iter()
                                        .map(|n| format!("\"{n}\""))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            ),
                        }
                    }
                }
                "streaming" => match &meta {
                    Meta::Path(_) => args.streaming = true,
                    other => errors.spanned(
                        other,
                        "`streaming` takes no value; write `#[compute_function(streaming)]`",
                    ),
                },
                "edits" => {
                    args.edits_written = true;
                    if let Some(types) = edits_value(&meta, errors) {
                        args.edits = Some((meta.path().clone(), types));
                    }
                }
                "ontology_metadata" => {
                    if let Some(lit) = string_value(
                        &meta,
                        "ontology_metadata",
                        "../ontology_metadata_config.json",
                        errors,
                    ) {
                        args.ontology_metadata = Some(lit);
                    }
                }
                "crate" => {
                    if let Some(lit) = string_value(&meta, "crate", "::cmod_runtime", errors) {
                        match lit.parse::<syn::Path>() {
                            Ok(path) => args.krate = Some(path),
                            Err(_) => errors.spanned(
                                &lit,
                                format!(
                                    "`crate` must be a path to the `cmod_runtime` crate, like \
                                     `\"::cmod_runtime\"`, not `{}`",
                                    lit.value()
                                ),
                            ),
                        }
                    }
                }
                other => errors.spanned(
                    meta.path(),
                    format!("unknown argument `{other}`; {EXPECTED}"),
                ),
            }
        }
        args
    }
}

/// The object types of `edits = ["A", "B"]`: a non-empty list of distinct, non-empty string
/// literals (every problem recorded in `errors`).
fn edits_value(meta: &Meta, errors: &mut Errors) -> Option<Vec<LitStr>> {
    const HOW: &str = "`edits` lists the API names of the object types the function edits: \
                       `edits = [\"Employee\"]`";
    let Meta::NameValue(nv) = meta else {
        errors.at(meta.span(), HOW);
        return None;
    };
    let syn::Expr::Array(array) = &nv.value else {
        errors.spanned(&nv.value, HOW);
        return None;
    };
    if array.elems.is_empty() {
        errors.spanned(
            &nv.value,
            format!("`edits` must name at least one object type; {HOW}"),
        );
        return None;
    }
    let before = errors.len();
    let mut types: Vec<LitStr> = Vec::new();
    for elem in &array.elems {
        let Some(lit) = str_lit(elem) else {
            errors.spanned(elem, format!("expected a string literal; {HOW}"));
            continue;
        };
        let name = lit.value();
        if name.trim().is_empty() || name.chars().any(char::is_whitespace) {
            errors.spanned(
                lit,
                "an object type API name cannot be empty or contain spaces",
            );
        } else if types.iter().any(|t| t.value() == name) {
            errors.spanned(lit, format!("object type `{name}` is listed twice"));
        } else {
            types.push(lit.clone());
        }
    }
    (errors.len() == before).then_some(types)
}

/// The string literal of `key = "…"`, or an error saying how to write it.
fn string_value(meta: &Meta, key: &str, example: &str, errors: &mut Errors) -> Option<LitStr> {
    if let Meta::NameValue(nv) = meta {
        if let Some(lit) = str_lit(&nv.value) {
            return Some(lit.clone());
        }
        errors.spanned(
            &nv.value,
            format!("`{key}` must be a string literal: `{key} = \"{example}\"`"),
        );
    } else {
        errors.at(
            meta.span(),
            format!("`{key}` needs a value: `{key} = \"{example}\"`"),
        );
    }
    None
}

/// Wire names: 1–128 characters, starting with an ASCII letter or `_`, then ASCII letters,
/// digits, `_`, `-` or `.`. They are dispatched on (`queryType`), shown in Foundry and used in
/// URLs and shells by the local tools, so nothing that needs quoting.
pub(crate) fn validate_name(name: &str) -> Result<(), String> {
    let rule = format!(
        "a function name starts with an ASCII letter or `_` and contains only ASCII letters, \
         digits, `_`, `-` and `.` (at most {MAX_NAME_LEN} characters)"
    );
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(format!("the function name must not be empty; {rule}"));
    };
    let ok_first = first.is_ascii_alphabetic() || first == '_';
    let ok_rest = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok_first || !ok_rest || name.len() > MAX_NAME_LEN {
        return Err(format!("invalid function name {name:?}: {rule}"));
    }
    Ok(())
}

/// serde's `rename_all` rules, applied to parameter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RenameRule {
    Lower,
    Upper,
    Pascal,
    Camel,
    Snake,
    ScreamingSnake,
    Kebab,
    ScreamingKebab,
}

impl RenameRule {
    const NAMES: [&'static str; 8] = [
        "lowercase",
        "UPPERCASE",
        "PascalCase",
        "camelCase",
        "snake_case",
        "SCREAMING_SNAKE_CASE",
        "kebab-case",
        "SCREAMING-KEBAB-CASE",
    ];

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "lowercase" => Self::Lower,
            "UPPERCASE" => Self::Upper,
            "PascalCase" => Self::Pascal,
            "camelCase" => Self::Camel,
            "snake_case" => Self::Snake,
            "SCREAMING_SNAKE_CASE" => Self::ScreamingSnake,
            "kebab-case" => Self::Kebab,
            "SCREAMING-KEBAB-CASE" => Self::ScreamingKebab,
            _ => return None,
        })
    }

    /// Renames a snake_case parameter name exactly as serde renames a field.
    pub(crate) fn apply(self, field: &str) -> String {
        match self {
            Self::Lower | Self::Snake => field.to_owned(),
            Self::Upper | Self::ScreamingSnake => field.to_ascii_uppercase(),
            Self::Pascal => {
                let mut out = String::with_capacity(field.len());
                let mut capitalize = true;
                for ch in field.chars() {
                    if ch == '_' {
                        capitalize = true;
                    } else if capitalize {
                        out.push(ch.to_ascii_uppercase());
                        capitalize = false;
                    } else {
                        out.push(ch);
                    }
                }
                out
            }
            Self::Camel => {
                let pascal = Self::Pascal.apply(field);
                let mut chars = pascal.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                    None => pascal,
                }
            }
            Self::Kebab => field.replace('_', "-"),
            Self::ScreamingKebab => field.to_ascii_uppercase().replace('_', "-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn rename_rules_match_serde() {
        let cases = [
            (RenameRule::Camel, "max_items", "maxItems"),
            (RenameRule::Pascal, "max_items", "MaxItems"),
            (RenameRule::ScreamingSnake, "max_items", "MAX_ITEMS"),
            (RenameRule::Kebab, "max_items", "max-items"),
            (RenameRule::ScreamingKebab, "max_items", "MAX-ITEMS"),
            (RenameRule::Lower, "max_items", "max_items"),
            (RenameRule::Camel, "x", "x"),
        ];
        for (rule, input, expected) in cases {
            assert_eq!(rule.apply(input), expected, "{rule:?}");
        }
    }

    #[test]
    fn names_are_validated() {
        for ok in ["add", "_x", "text.upper", "a-b", "A1"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "1a", "tab\t", "é", &"a".repeat(129)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn edits_are_parsed_and_validated() {
        let mut errors = Errors::default();
        let args = Args::parse(
            quote!(edits = ["Employee", "Office"], ontology_metadata = "m.json"),
            &mut errors,
        );
        assert!(errors.finish().is_ok());
        let (_, types) = args.edits.unwrap();
        let names: Vec<String> = types.iter().map(LitStr::value).collect();
        assert_eq!(names, ["Employee", "Office"]);
        assert_eq!(args.ontology_metadata.unwrap().value(), "m.json");

        let mut errors = Errors::default();
        let args = Args::parse(quote!(edits = ["A", "A", 2, ""]), &mut errors);
        assert!(args.edits.is_none() && args.edits_written);
        assert_eq!(errors.len(), 3);
    }

    #[test]
    fn every_problem_is_reported() {
        let mut errors = Errors::default();
        let args = Args::parse(
            quote!(
                name = "a b",
                foo,
                streaming = 1,
                name = "x",
                rename_all = "camel"
            ),
            &mut errors,
        );
        assert!(args.name.is_none());
        let messages: Vec<String> = errors
            .finish()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(messages.len(), 5, "{messages:#?}");
        assert!(messages[0].starts_with("invalid function name \"a b\""));
        assert!(messages[1].starts_with("unknown argument `foo`"));
        assert!(messages[2].starts_with("`streaming` takes no value"));
        assert_eq!(messages[3], "`name` is set more than once");
        assert!(messages[4].starts_with("unknown `rename_all` rule `camel`"));
    }
}
