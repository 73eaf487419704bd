//! Pipeline mode against the local Foundry: the `RESOURCE_ALIAS_MAP` and `BUILD2_TOKEN` files
//! of a run, and a pipeline token that reaches exactly the resources of that alias map.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cmod_local::foundry::LocalFoundryError> {
//! use cmod_local::foundry::{LocalFoundry, LocalFoundryOptions};
//! use cmod_local::foundry::{PipelineResource, ResourceKind};
//!
//! let foundry = LocalFoundry::start(LocalFoundryOptions::default()).await?;
//! foundry.data().put_file("ri.foundry.main.dataset.in", "master", "orders.csv", b"a,1\n")?;
//! foundry.data().create_dataset("ri.foundry.main.dataset.out")?;
//! let env = foundry.pipeline_env(&[
//!     PipelineResource::new("orders", "ri.foundry.main.dataset.in", ResourceKind::Dataset),
//!     PipelineResource::new("totals", "ri.foundry.main.dataset.out", ResourceKind::Dataset),
//! ])?;
//! // `env` holds RESOURCE_ALIAS_MAP, BUILD2_TOKEN, FOUNDRY_SERVICE_DISCOVERY_V2,
//! // DEFAULT_CA_PATH, …: run the module with them.
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::store::DataStore;
use super::{LocalFoundry, LocalFoundryError, TokenGrant, io_err};

/// What a pipeline alias names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// A dataset (`DatasetInput` / `DatasetOutput`).
    Dataset,
    /// A stream (`StreamInput<T>` / `StreamOutput<T>`).
    Stream,
    /// A media set (`MediaSetInput` / `MediaSetOutput`).
    MediaSet,
}

/// One entry of a run's alias map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineResource {
    /// The alias the module declares.
    pub alias: String,
    /// The resource RID.
    pub rid: String,
    /// The branch; `None` means `master`.
    pub branch: Option<String>,
    /// What the RID names (used to create missing resources).
    pub kind: ResourceKind,
}

impl PipelineResource {
    /// An alias for `rid` on `master`.
    pub fn new(alias: impl Into<String>, rid: impl Into<String>, kind: ResourceKind) -> Self {
        Self {
            alias: alias.into(),
            rid: rid.into(),
            branch: None,
            kind,
        }
    }

    /// Sets the branch.
    pub fn branch(mut self, branch: impl Into<String>) -> Self {
        self.branch = Some(branch.into());
        self
    }
}

/// One entry of the `aliases.json` file of a local data directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AliasEntry {
    rid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    branch: Option<String>,
}

/// The RID a local run gives an alias that `aliases.json` does not map yet.
pub fn default_rid(alias: &str, kind: ResourceKind) -> String {
    let safe: String = alias
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    match kind {
        ResourceKind::Dataset | ResourceKind::Stream => format!("ri.foundry.main.dataset.{safe}"),
        ResourceKind::MediaSet => format!("ri.mio.main.media-set.{safe}"),
    }
}

/// The resources of a local run, from `<data dir>/aliases.json` (`{"alias": {"rid", "branch"?}}`,
/// editable by hand): aliases missing from it get [`default_rid`], are added to the file, and
/// their resources are created empty (so users see where to seed inputs).
pub fn local_resources(
    store: &DataStore,
    declared: &[(&str, ResourceKind)],
) -> Result<Vec<PipelineResource>, LocalFoundryError> {
    let file = store.root().join("aliases.json");
    let mut map: BTreeMap<String, AliasEntry> = if file.is_file() {
        let text = std::fs::read(&file).map_err(io_err(format!("reading {}", file.display())))?;
        serde_json::from_slice(&text).map_err(|e| {
            LocalFoundryError::Options(format!(
                "{} is not a valid alias map ({{\"alias\": {{\"rid\": \"…\", \"branch\": \
                 \"…\"}}}}): {e}",
                file.display()
            ))
        })?
    } else {
        BTreeMap::new()
    };
    let mut changed = false;
    let mut out = Vec::new();
    for &(alias, kind) in declared {
        let entry = map.entry(alias.to_owned()).or_insert_with(|| {
            changed = true;
            AliasEntry {
                rid: default_rid(alias, kind),
                branch: None,
            }
        });
        let exists = match kind {
            ResourceKind::Dataset => store.dataset_exists(&entry.rid),
            ResourceKind::Stream => store.stream_exists(&entry.rid),
            ResourceKind::MediaSet => store.media_set_exists(&entry.rid),
        };
        if !exists {
            match kind {
                ResourceKind::Dataset => store.create_dataset(&entry.rid)?,
                ResourceKind::Stream => store.create_stream(&entry.rid)?,
                ResourceKind::MediaSet => store.create_media_set(&entry.rid, true)?,
            }
        }
        out.push(PipelineResource {
            alias: alias.to_owned(),
            rid: entry.rid.clone(),
            branch: entry.branch.clone(),
            kind,
        });
    }
    if changed {
        let text = serde_json::to_vec_pretty(&map)
            .map_err(|e| LocalFoundryError::Options(format!("serializing aliases: {e}")))?;
        std::fs::write(&file, text).map_err(io_err(format!("writing {}", file.display())))?;
    }
    Ok(out)
}

impl LocalFoundry {
    /// The data directory behind the dataset, stream and media-set endpoints: seed inputs and
    /// inspect outputs through it.
    pub fn data(&self) -> &DataStore {
        &self.state.data
    }

    /// Prepares a pipeline run: issues a pipeline token restricted to the RIDs of `resources`,
    /// writes it (`BUILD2_TOKEN`) and the alias map (`RESOURCE_ALIAS_MAP`) next to the other
    /// generated files, and returns those two variables plus [`LocalFoundry::env`] (discovery,
    /// CA, …). Every call writes a new pair of files and issues a new token.
    pub fn pipeline_env(
        &self,
        resources: &[PipelineResource],
    ) -> Result<Vec<(String, String)>, LocalFoundryError> {
        let dir = self
            .ca_path()
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .to_owned();
        let token = self.issue_token(TokenGrant::pipeline(
            resources.iter().map(|r| r.rid.clone()),
        ));
        let mut map = serde_json::Map::new();
        for r in resources {
            map.insert(r.alias.clone(), json!({ "rid": r.rid, "branch": r.branch }));
        }
        let n = super::oauth::random_uuid();
        let alias_path = dir.join(format!("RESOURCE_ALIAS_MAP-{n}.json"));
        let token_path = dir.join(format!("BUILD2_TOKEN-{n}"));
        let text = serde_json::to_vec_pretty(&serde_json::Value::Object(map))
            .map_err(|e| LocalFoundryError::Options(format!("serializing the alias map: {e}")))?;
        std::fs::write(&alias_path, text)
            .map_err(io_err(format!("writing {}", alias_path.display())))?;
        std::fs::write(&token_path, &token)
            .map_err(io_err(format!("writing {}", token_path.display())))?;
        let mut env = vec![
            (
                "RESOURCE_ALIAS_MAP".to_owned(),
                alias_path.display().to_string(),
            ),
            ("BUILD2_TOKEN".to_owned(), token_path.display().to_string()),
        ];
        env.extend(
            self.env()
                .into_iter()
                .filter(|(k, _)| k != "CLIENT_ID" && k != "CLIENT_SECRET"),
        );
        Ok(env)
    }

    /// Rotates the build token of a run prepared by [`LocalFoundry::pipeline_env`] (`env` is
    /// what it returned), as Foundry does during a long run: issues a new token for the same
    /// resources, replaces the `BUILD2_TOKEN` file atomically (write + rename, so a reader sees
    /// the old or the new token, never a partial one), then revokes the old token, whose next
    /// request gets 401. Returns nothing secret; the new token is in the file.
    pub fn rotate_build_token(&self, env: &[(String, String)]) -> Result<(), LocalFoundryError> {
        let path = env
            .iter()
            .find(|(k, _)| k == "BUILD2_TOKEN")
            .map(|(_, v)| std::path::PathBuf::from(v))
            .ok_or_else(|| {
                LocalFoundryError::Options(
                    "rotate_build_token: the environment has no BUILD2_TOKEN".to_owned(),
                )
            })?;
        let old = std::fs::read_to_string(&path)
            .map_err(io_err(format!("reading {}", path.display())))?;
        let old = old.trim();
        let new = self.state.tokens.reissue(old).ok_or_else(|| {
            LocalFoundryError::Options(format!(
                "rotate_build_token: the token in {} is unknown or already revoked",
                path.display()
            ))
        })?;
        let tmp = path.with_extension("rotating");
        std::fs::write(&tmp, &new).map_err(io_err(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io_err(format!(
            "replacing {} with {}",
            path.display(),
            tmp.display()
        )))?;
        self.state.tokens.revoke(old);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn rotating_the_build_token_replaces_the_file_and_revokes_the_old_token() {
        let foundry = LocalFoundry::start(super::super::LocalFoundryOptions::default())
            .await
            .unwrap();
        let env = foundry
            .pipeline_env(&[PipelineResource::new(
                "out",
                "ri.foundry.main.dataset.out",
                ResourceKind::Dataset,
            )])
            .unwrap();
        let file = env
            .iter()
            .find(|(k, _)| k == "BUILD2_TOKEN")
            .unwrap()
            .1
            .clone();
        let old = std::fs::read_to_string(&file).unwrap();
        foundry.rotate_build_token(&env).unwrap();
        let new = std::fs::read_to_string(&file).unwrap();
        assert_ne!(old, new);
        let tokens = &foundry.state.tokens;
        assert!(tokens.authorize(&bearer(&old), None).is_err());
        let principal = tokens.authorize(&bearer(&new), None).unwrap();
        // Same reach as the old token.
        assert!(principal.can_access("ri.foundry.main.dataset.out"));
        assert!(!principal.can_access("ri.foundry.main.dataset.other"));
        // The old token cannot be rotated again.
        std::fs::write(&file, &old).unwrap();
        assert!(foundry.rotate_build_token(&env).is_err());
        foundry.shutdown().await;
    }

    #[test]
    fn local_resources_fill_in_and_persist_missing_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataStore::open(dir.path(), 100).unwrap();
        std::fs::write(
            dir.path().join("aliases.json"),
            r#"{"orders": {"rid": "ri.foundry.main.dataset.mine", "branch": "dev"}}"#,
        )
        .unwrap();
        let got = local_resources(
            &store,
            &[
                ("orders", ResourceKind::Dataset),
                ("events out", ResourceKind::Stream),
                ("images", ResourceKind::MediaSet),
            ],
        )
        .unwrap();
        assert_eq!(got[0].rid, "ri.foundry.main.dataset.mine");
        assert_eq!(got[0].branch.as_deref(), Some("dev"));
        assert_eq!(got[1].rid, "ri.foundry.main.dataset.events-out");
        assert!(store.stream_exists(&got[1].rid));
        assert!(store.media_set_exists("ri.mio.main.media-set.images"));
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("aliases.json")).unwrap())
                .unwrap();
        assert_eq!(
            saved["events out"]["rid"],
            "ri.foundry.main.dataset.events-out"
        );
    }
}
