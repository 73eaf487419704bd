//! `RESOURCE_ALIAS_MAP` (docs/protocol.md §5.1): alias → `{"rid", "branch"?}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::Problem;

/// The variable naming the alias map file.
pub const RESOURCE_ALIAS_MAP_VAR: &str = crate::env::vars::RESOURCE_ALIAS_MAP;

/// The branch used when the alias map gives none.
pub const DEFAULT_BRANCH: &str = "master";

/// One resource of the alias map.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Resource {
    /// The resource RID (`ri.foundry.main.dataset.…`).
    pub rid: String,
    /// The branch; absent, `null` or empty means [`DEFAULT_BRANCH`].
    #[serde(default)]
    pub branch: Option<String>,
}

impl Resource {
    /// The branch to use.
    pub fn branch(&self) -> &str {
        self.branch
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .unwrap_or(DEFAULT_BRANCH)
    }
}

/// The parsed alias map and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceAliasMap {
    file: PathBuf,
    resources: BTreeMap<String, Resource>,
}

impl ResourceAliasMap {
    /// Reads the file named by `RESOURCE_ALIAS_MAP` through `lookup`.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, Problem> {
        let path = crate::config::var(lookup, RESOURCE_ALIAS_MAP_VAR).ok_or_else(|| Problem {
            var: RESOURCE_ALIAS_MAP_VAR.to_owned(),
            message: "not set: pipeline mode needs the alias map file Foundry mounts (alias → \
                      {\"rid\", \"branch\"})"
                .to_owned(),
        })?;
        Self::from_file(Path::new(path.trim()))
    }

    /// Reads and parses an alias map file.
    pub fn from_file(path: &Path) -> Result<Self, Problem> {
        let text = std::fs::read(path).map_err(|e| Problem {
            var: RESOURCE_ALIAS_MAP_VAR.to_owned(),
            message: format!("cannot read alias map file {}: {e}", path.display()),
        })?;
        Self::parse(path, &text)
    }

    /// Parses alias map JSON; `path` is used in error messages.
    pub fn parse(path: &Path, json: &[u8]) -> Result<Self, Problem> {
        let problem = |message: String| Problem {
            var: RESOURCE_ALIAS_MAP_VAR.to_owned(),
            message,
        };
        let mut de = serde_json::Deserializer::from_slice(json);
        let resources: BTreeMap<String, Resource> = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| {
                let at = e.path().to_string();
                let at = if at == "." {
                    String::new()
                } else {
                    format!(" at `{at}`")
                };
                problem(format!(
                    "alias map file {} is not valid{at}: {} (expected a JSON object such as \
                     {{\"raw_orders\": {{\"rid\": \"ri.foundry.main.dataset.…\", \"branch\": \
                     \"master\"}}}})",
                    path.display(),
                    e.inner()
                ))
            })?;
        if let Some((alias, _)) = resources.iter().find(|(_, r)| r.rid.trim().is_empty()) {
            return Err(problem(format!(
                "alias map file {}: alias `{alias}` has an empty `rid`",
                path.display()
            )));
        }
        Ok(Self {
            file: path.to_owned(),
            resources,
        })
    }

    /// The file the map was read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The resource of an alias.
    pub fn get(&self, alias: &str) -> Option<&Resource> {
        self.resources.get(alias)
    }

    /// Every alias, sorted.
    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.resources.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_branches_and_defaults_to_master() {
        let m = ResourceAliasMap::parse(
            Path::new("/m.json"),
            br#"{"a": {"rid": "ri.1"}, "b": {"rid": "ri.2", "branch": null},
                 "c": {"rid": "ri.3", "branch": "dev"}, "d": {"rid": "ri.4", "branch": ""}}"#,
        )
        .unwrap();
        assert_eq!(m.get("a").unwrap().branch(), "master");
        assert_eq!(m.get("b").unwrap().branch(), "master");
        assert_eq!(m.get("c").unwrap().branch(), "dev");
        assert_eq!(m.get("d").unwrap().branch(), "master");
        assert_eq!(m.aliases().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    }

    #[test]
    fn malformed_json_names_the_variable_file_and_place() {
        let e = ResourceAliasMap::parse(Path::new("/x/aliases.json"), br#"{"a": {"rid": 5}}"#)
            .unwrap_err();
        assert_eq!(e.var, "RESOURCE_ALIAS_MAP");
        assert!(e.message.contains("/x/aliases.json"), "{}", e.message);
        assert!(e.message.contains("a.rid"), "{}", e.message);
        let e = ResourceAliasMap::parse(Path::new("/x/aliases.json"), b"{not json").unwrap_err();
        assert!(e.message.contains("not valid"), "{}", e.message);
        let e =
            ResourceAliasMap::parse(Path::new("/x/a.json"), br#"{"a": {"rid": " "}}"#).unwrap_err();
        assert!(e.message.contains("empty `rid`"), "{}", e.message);
    }

    #[test]
    fn unset_or_unreadable_file_is_reported() {
        let e = ResourceAliasMap::from_lookup(&|_| None).unwrap_err();
        assert!(e.message.contains("not set"), "{}", e.message);
        let e = ResourceAliasMap::from_lookup(&|k| {
            (k == "RESOURCE_ALIAS_MAP").then(|| "/nonexistent/map.json".to_owned())
        })
        .unwrap_err();
        assert!(e.message.contains("/nonexistent/map.json"), "{}", e.message);
    }
}
