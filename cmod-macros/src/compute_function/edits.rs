//! `#[compute_function(edits = ["Employee", …], ontology_metadata = "…")]`: checks that the
//! function returns `OntologyEdits` (and only then declares edits), reads the ontology metadata
//! file at compile time and checks every declared object type against it.

use std::path::{Path, PathBuf};

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{GenericArgument, ItemFn, PathArguments, Type};

use super::args::Args;
use super::signature::{Output, Shape};
use crate::common::Errors;

/// The type name a function returns edits as.
const EDITS_TYPE: &str = "OntologyEdits";
/// The metadata file looked for in the crate root.
const DEFAULT_FILE: &str = "ontology_metadata_config.json";
const GENERATE: &str = "generate it once with the `ontology-metadata` program of \
                        `examples/ontology-edits` (README, \"Ontology edits\")";

/// What the generated code needs about a function's edits.
pub(crate) struct Edits {
    /// The declared object types.
    pub(crate) object_types: Vec<String>,
    /// The metadata file as written (for messages).
    pub(crate) file_shown: String,
    /// The metadata file's absolute path (for `include_str!`).
    pub(crate) file_path: String,
}

impl Edits {
    /// `static __CMOD_EDITS: EditsSpec = …;`
    pub(crate) fn spec(&self, p: &TokenStream, wire_name: &str) -> TokenStream {
        let types = &self.object_types;
        let shown = &self.file_shown;
        let path = &self.file_path;
        quote! {
            static __CMOD_EDITS: #p::EditsSpec = #p::EditsSpec::new(
                #wire_name,
                &[#(#types),*],
                #shown,
                ::core::include_str!(#path),
            );
        }
    }
}

/// Checks the edits declaration against the return type and the metadata file. `None` when the
/// function declares no edits (or after recording an error).
pub(crate) fn check(
    func: &ItemFn,
    args: &Args,
    output: Option<&Output>,
    errors: &mut Errors,
) -> Option<Edits> {
    let returns_edits = output.and_then(|o| edits_output(o, errors));
    let Some((key, types)) = &args.edits else {
        if let Some(lit) = &args.ontology_metadata {
            errors.spanned(
                lit,
                "`ontology_metadata` is only used with `edits = [...]`: declare the object types \
                 the function edits",
            );
        }
        if let (Some(span), false) = (returns_edits, args.edits_written) {
            errors.at(
                span,
                format!(
                    "a function returning `{EDITS_TYPE}` must declare the object types it edits: \
                     `#[compute_function(edits = [\"Employee\"])]` (Foundry receives them as the \
                     function's `ontologyProvenance`)"
                ),
            );
        }
        return None;
    };
    let fn_name = func.sig.ident.to_string();
    if output.is_some() && returns_edits.is_none() {
        errors.spanned(
            key,
            format!(
                "`edits` declares ontology edits, but `{fn_name}` does not return them: return \
                 `cmod_runtime::{EDITS_TYPE}` or `Result<{EDITS_TYPE}, E>`"
            ),
        );
    }
    if args.streaming {
        errors.spanned(key, "ontology edits cannot be streamed: remove `streaming`");
    }

    let (file_shown, path, span) = match &args.ontology_metadata {
        Some(lit) => {
            let written = lit.value();
            let path = match source_dir(lit.span()) {
                Some(dir) => dir.join(&written),
                None => PathBuf::from(&written),
            };
            (written, path, lit.span())
        }
        None => {
            let dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
            let path = dir.unwrap_or_default().join(DEFAULT_FILE);
            (DEFAULT_FILE.to_owned(), path, key.span())
        }
    };
    let known = match read_object_types(&path) {
        Ok(known) => known,
        Err(problem) => {
            let whence = if args.ontology_metadata.is_some() {
                format!("`{file_shown}` (relative to this source file)")
            } else {
                format!(
                    "`{DEFAULT_FILE}` in the crate root (or name another file with \
                     `ontology_metadata = \"…\"`, relative to this source file)"
                )
            };
            errors.at(
                span,
                format!(
                    "the edits of `{fn_name}` need the ontology metadata file {whence}: {problem}"
                ),
            );
            return None;
        }
    };
    let before = errors.len();
    for lit in types {
        let name = lit.value();
        if !known.contains(&name) {
            errors.spanned(
                lit,
                format!(
                    "`{fn_name}` declares edits of object type `{name}`, which is not in \
                     `{file_shown}` (it has: {}); fix the API name, or regenerate the file with \
                     this object type's RID",
                    if known.is_empty() {
                        "no object types".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
    }
    if errors.len() != before {
        return None;
    }
    Some(Edits {
        object_types: types.iter().map(syn::LitStr::value).collect(),
        file_shown,
        file_path: path.to_string_lossy().into_owned(),
    })
}

/// Where the success type is `OntologyEdits` (by its last path segment, as `Result` is found),
/// the span of that type. `OntologyEdits` anywhere else in the return type is an error.
fn edits_output(output: &Output, errors: &mut Errors) -> Option<Span> {
    let ok = output.checked.as_ref()?;
    let top = matches!(output.shape, Shape::Value) && last_segment_is(ok, EDITS_TYPE);
    let mut nested = Vec::new();
    if top {
        if let Type::Path(path) = ok {
            for segment in &path.path.segments {
                find_nested(&segment.arguments, &mut nested);
            }
        }
    } else {
        find_in(ok, &mut nested);
    }
    for span in nested {
        errors.at(
            span,
            format!(
                "`{EDITS_TYPE}` can only be the whole output of a function (`-> {EDITS_TYPE}` or \
                 `-> Result<{EDITS_TYPE}, E>`), not part of another output or a streamed item"
            ),
        );
    }
    top.then(|| ok.span())
}

fn last_segment_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == name && s.arguments.is_none()),
        Type::Paren(p) => last_segment_is(&p.elem, name),
        Type::Group(g) => last_segment_is(&g.elem, name),
        _ => false,
    }
}

/// Every `OntologyEdits` inside `ty`, itself included.
fn find_in(ty: &Type, out: &mut Vec<Span>) {
    match ty {
        Type::Path(p) => {
            if last_segment_is(ty, EDITS_TYPE) {
                out.push(ty.span());
            }
            for segment in &p.path.segments {
                find_nested(&segment.arguments, out);
            }
        }
        Type::Reference(r) => find_in(&r.elem, out),
        Type::Array(a) => find_in(&a.elem, out),
        Type::Slice(s) => find_in(&s.elem, out),
        Type::Paren(p) => find_in(&p.elem, out),
        Type::Group(g) => find_in(&g.elem, out),
        Type::Tuple(t) => t.elems.iter().for_each(|t| find_in(t, out)),
        _ => {}
    }
}

fn find_nested(args: &PathArguments, out: &mut Vec<Span>) {
    if let PathArguments::AngleBracketed(args) = args {
        for arg in &args.args {
            if let GenericArgument::Type(t) = arg {
                find_in(t, out);
            }
        }
    }
}

/// The directory of the source file `span` is in (inside a compiler-run macro only).
fn source_dir(span: Span) -> Option<PathBuf> {
    if !proc_macro::is_available() {
        return None;
    }
    let file = span.unwrap().local_file()?;
    // rustc gives paths relative to its working directory; `include_str!` needs them absolute.
    let file = match file.is_absolute() {
        true => file,
        false => std::env::current_dir().ok()?.join(file),
    };
    file.parent().map(Path::to_path_buf)
}

/// The object type API names of a metadata file (`objectTypes` keys).
fn read_object_types(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("it does not exist; {GENERATE}")
        } else {
            format!("it cannot be read: {e}")
        }
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("it is not JSON: {e}"))?;
    let Some(types) = value.get("objectTypes").and_then(|t| t.as_object()) else {
        let python = value.get("apiNameToTypeId").is_some();
        return Err(format!(
            "it has no `objectTypes` (the primary key, property and link ids edits need){}; \
             {GENERATE}",
            if python {
                ": it looks like the Python SDK's file, which has only `apiNameToTypeId`"
            } else {
                ""
            }
        ));
    };
    for (name, t) in types {
        for field in ["typeId", "primaryKey"] {
            if t.get(field).and_then(|v| v.as_str()).is_none() {
                return Err(format!(
                    "its object type `{name}` has no string `{field}`; {GENERATE}"
                ));
            }
        }
    }
    Ok(types.keys().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute_function::signature::analyze;
    use syn::parse_quote;

    /// Whether the output is edits, and how many errors the return type gets.
    fn classify(sig: syn::Signature) -> (bool, usize) {
        let mut errors = Errors::default();
        let analysis = analyze(&sig, false, &mut errors).expect("a valid signature");
        let top = edits_output(&analysis.output, &mut errors).is_some();
        (top, errors.len())
    }

    #[test]
    fn only_the_whole_output_can_be_edits() {
        assert_eq!(classify(parse_quote!(fn f() -> OntologyEdits)), (true, 0));
        assert_eq!(
            classify(parse_quote!(fn f() -> cmod_runtime::OntologyEdits)),
            (true, 0)
        );
        assert_eq!(
            classify(parse_quote!(fn f() -> Result<OntologyEdits, E>)),
            (true, 0)
        );
        assert_eq!(classify(parse_quote!(fn f() -> i64)), (false, 0));
        assert_eq!(
            classify(parse_quote!(fn f() -> Vec<OntologyEdits>)),
            (false, 1)
        );
        assert_eq!(
            classify(parse_quote!(fn f() -> Result<Option<OntologyEdits>, E>)),
            (false, 1)
        );
        assert_eq!(
            classify(parse_quote!(fn f() -> impl Iterator<Item = OntologyEdits>)),
            (false, 1)
        );
    }

    #[test]
    fn metadata_files_are_checked() {
        let dir = std::env::temp_dir().join(format!("cmod-macros-edits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let good = write(
            "good.json",
            r#"{"objectTypes": {"B": {"typeId": "b", "primaryKey": "id"},
                               "A": {"typeId": "a", "primaryKey": "id"}}}"#,
        );
        assert_eq!(read_object_types(&good).unwrap(), ["A", "B"]);
        let python = write("python.json", r#"{"apiNameToTypeId": {"A": "a"}}"#);
        assert!(
            read_object_types(&python)
                .unwrap_err()
                .contains("Python SDK's file")
        );
        let no_key = write("nokey.json", r#"{"objectTypes": {"A": {"typeId": "a"}}}"#);
        assert!(
            read_object_types(&no_key)
                .unwrap_err()
                .contains("object type `A` has no string `primaryKey`")
        );
        let not_json = write("bad.json", "{");
        assert!(
            read_object_types(&not_json)
                .unwrap_err()
                .starts_with("it is not JSON")
        );
        assert!(
            read_object_types(&dir.join("absent.json"))
                .unwrap_err()
                .starts_with("it does not exist")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
