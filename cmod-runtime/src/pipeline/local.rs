//! Pipeline mode on the embedded local Foundry (`CMOD_LOCAL=1`).
//!
//! The local Foundry serves datasets, streams and media sets from a data directory
//! (`CMOD_LOCAL_DATA`, default `./cmod-local-data`; layout in `cmod_local::foundry::DataStore`).
//! `<data dir>/aliases.json` maps each alias to a RID (`{"alias": {"rid", "branch"?}}`); aliases
//! missing from it get a RID derived from the alias (`ri.foundry.main.dataset.<alias>`) and an
//! empty resource, and are written back so users see where to seed inputs. The run gets its own
//! `RESOURCE_ALIAS_MAP` and `BUILD2_TOKEN` files, and the token reaches only those resources.

use std::path::PathBuf;

use cmod_local::foundry::{
    DataOptions, LocalFoundry, LocalFoundryOptions, ResourceKind as LocalKind, local_resources,
};

use super::{PipelineDef, ResourceKind};

/// The variable naming the local data directory.
pub(crate) const LOCAL_DATA_VAR: &str = crate::env::vars::CMOD_LOCAL_DATA;

/// The local data directory: `CMOD_LOCAL_DATA`, or `./cmod-local-data`.
pub(crate) fn local_data_dir() -> PathBuf {
    crate::env::var(LOCAL_DATA_VAR)
        .map(|d| PathBuf::from(d.trim()))
        .unwrap_or_else(|| PathBuf::from("cmod-local-data"))
}

fn local_kind(kind: ResourceKind) -> LocalKind {
    match kind {
        ResourceKind::Dataset => LocalKind::Dataset,
        ResourceKind::Stream => LocalKind::Stream,
        ResourceKind::MediaSet => LocalKind::MediaSet,
    }
}

/// A local Foundry prepared for one pipeline run; keep it alive while the pipeline runs.
#[derive(Debug)]
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
pub struct LocalPipeline {
    /// The running local Foundry.
    pub foundry: LocalFoundry,
    /// The variables to install (with `cmod_runtime::testing::install_env_overlay`) before running the
    /// pipeline: `RESOURCE_ALIAS_MAP`, `BUILD2_TOKEN`, `FOUNDRY_SERVICE_DISCOVERY_V2`,
    /// `DEFAULT_CA_PATH`, `FOUNDRY_URL`.
    pub env: Vec<(String, String)>,
}

/// Starts a local Foundry on `data_dir` and prepares the alias map and build token of `def`.
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
pub async fn start_local(
    def: &'static PipelineDef,
    data_dir: PathBuf,
) -> Result<LocalPipeline, crate::Error> {
    let local = |e: cmod_local::foundry::LocalFoundryError| {
        crate::Error::Local(format!(
            "local Foundry for pipeline `{}` (data directory {}): {e}",
            def.name,
            data_dir.display()
        ))
    };
    let foundry = LocalFoundry::start(LocalFoundryOptions {
        data: DataOptions {
            dir: Some(data_dir.clone()),
            ..DataOptions::default()
        },
        ..LocalFoundryOptions::default()
    })
    .await
    .map_err(local)?;
    let declared: Vec<(&str, LocalKind)> = def
        .aliases()
        .map(|a| (a.alias, local_kind(a.kind)))
        .collect();
    let resources = local_resources(foundry.data(), &declared).map_err(local)?;
    for r in &resources {
        tracing::info!(
            alias = %r.alias,
            rid = %r.rid,
            "local resource (data directory {})",
            data_dir.display()
        );
    }
    let env = foundry.pipeline_env(&resources).map_err(local)?;
    Ok(LocalPipeline { foundry, env })
}

/// Runs the linked pipeline on a local Foundry: starts it on [`local_data_dir`], installs the
/// run's variables as the environment overlay, runs the pipeline until it ends or `shutdown`
/// completes, and stops the local Foundry.
pub(crate) async fn run_local_pipeline(
    def: &'static PipelineDef,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), crate::Error> {
    let data_dir = local_data_dir();
    let created = !data_dir.exists();
    let prepared = start_local(def, data_dir.clone()).await?;
    if created {
        let shown = std::path::absolute(&data_dir).unwrap_or_else(|_| data_dir.clone());
        tracing::info!(
            "created the local data directory {} (set {LOCAL_DATA_VAR} to use another)",
            shown.display()
        );
    }
    if !crate::env::install_overlay(prepared.env.iter().cloned()) {
        return Err(crate::Error::Local(
            "the environment overlay was already installed; cannot point the pipeline at the \
             local Foundry"
                .to_owned(),
        ));
    }
    tracing::info!(
        pipeline = def.name,
        "running on the local Foundry {} with data directory {}",
        prepared.foundry.base_url(),
        data_dir.display()
    );
    let result = super::run_pipeline(def, shutdown).await;
    prepared.foundry.shutdown().await;
    result
}
