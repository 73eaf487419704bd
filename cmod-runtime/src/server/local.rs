//! Server mode on a laptop: `CMOD_LOCAL=1` (or `--local`) with `--server` / `CMOD_MODE=server`.
//!
//! Starts the local Foundry (OAuth2, discovery, datasets, echo sources: what functions may call)
//! as functions-mode local does, installs its variables as the [`crate::env`] overlay, prints a
//! `curl` line per function, and serves the very same HTTP server as in Foundry on
//! `http://localhost:<CMOD_SERVER_PORT>` until Ctrl-C.

use std::sync::Arc;

use cmod_local::tls::LocalCa;

use super::{Server, ServerConfig, bind};
use crate::functions::Registry;
use crate::functions::local::{local_err, sample, start_foundry};
use crate::logging::{self, LogFormat};

pub(crate) async fn run_local() -> crate::Result<()> {
    logging::init(LogFormat::Pretty);
    let registry = Registry::from_linked()?;
    let config = ServerConfig::from_env()?;
    let document = super::openapi::document(&registry, config.port)?;
    let schemas = registry
        .schemas()
        .map_err(crate::functions::RegistryError::from)?;
    let ca = Arc::new(
        LocalCa::generate("cmod local CA")
            .map_err(|e| local_err("cannot create the local CA", e))?,
    );
    let foundry = start_foundry(ca).await?;
    crate::env::install_overlay(foundry.env());
    crate::sources::check_required_sources()?;
    let listeners = bind(config.port).await?;

    let base = format!("http://localhost:{}", config.port);
    println!(
        "cmod server mode (local): serving {} function(s) on {base}; Ctrl-C to stop.",
        schemas.len()
    );
    for schema in &schemas {
        println!(
            "  {}:\n    {}",
            schema.function_name,
            curl_line(&base, schema)
        );
    }
    println!(
        "  OpenAPI document ({} operations): MODULE --print-openapi",
        document["paths"].as_object().map_or(0, |p| p.len())
    );

    let served = Server::new(registry, config)
        .run(listeners, crate::shutdown_signal())
        .await;
    foundry.shutdown().await;
    served
}

/// `curl -s -X POST http://localhost:PORT/NAME -H 'content-type: application/json' -d '{…}'`
/// with a sample value for every input.
fn curl_line(base: &str, schema: &crate::schema::FunctionSchema) -> String {
    let mut example = serde_json::Map::new();
    for input in &schema.inputs {
        let data_type = serde_json::to_value(&input.data_type).unwrap_or_default();
        example.insert(input.name.clone(), sample(&data_type));
    }
    format!(
        "curl -s -X POST {base}/{} -H 'content-type: application/json' -d '{}'",
        schema.function_name,
        serde_json::Value::Object(example)
    )
}
