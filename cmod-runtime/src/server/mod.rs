//! Server mode: the module's `#[compute_function]`s served over plain HTTP on localhost, for
//! Foundry's OpenAPI server mode (docs/protocol.md §4.9), where the platform turns each
//! job into an HTTP call to the container described by the image label `server.openapi`.
//!
//! Chosen with `--server` or `CMOD_MODE=server`; `CMOD_SERVER_PORT` (default 8080) is the port,
//! `--print-openapi` prints the document. The functions are the very same: one `POST /<name>`
//! route per [`FunctionDef`](crate::functions::FunctionDef), the JSON inputs as the body, decoded,
//! called and encoded by the functions-mode code (`functions/call/`, `functions/job.rs`), with
//! the same error body (`functions/outcome.rs`), logs, `MAX_CONCURRENT_TASKS` limit and
//! graceful shutdown (`functions/drain.rs`).
//!
//! | File | Owns |
//! |---|---|
//! | `mod.rs` | configuration (`CMOD_SERVER_PORT`, `MAX_CONCURRENT_TASKS`, grace period), `run` |
//! | `serve.rs` | listeners, connections, one request: route, read, call, answer |
//! | `openapi.rs` | the OpenAPI 3.0.3 document from the registry |
//! | `local.rs` | `CMOD_LOCAL=1`: the local Foundry, `curl` lines |

#[cfg(feature = "local")]
pub(crate) mod local;
pub(crate) mod openapi;
mod serve;

use std::time::Duration;

use crate::env::vars;
use crate::functions::Registry;

pub(crate) use serve::{Server, bind};

/// The port used when `CMOD_SERVER_PORT` is unset.
pub(crate) const DEFAULT_PORT: u16 = 8080;
/// Ports Foundry's sidecars use (docs/protocol.md §9).
const RESERVED_PORTS: [u16; 2] = [8945, 8946];

/// `CMOD_SERVER_PORT`, or [`DEFAULT_PORT`]: 1024–65535 and not 8945/8946 (Foundry's rule for
/// container ports).
pub(crate) fn port_from_env() -> Result<u16, crate::Error> {
    match crate::env::var(vars::CMOD_SERVER_PORT) {
        None => Ok(DEFAULT_PORT),
        Some(raw) => parse_port(&raw).map_err(|why| {
            crate::Error::Usage(format!("{}=`{raw}` {why}", vars::CMOD_SERVER_PORT))
        }),
    }
}

fn parse_port(raw: &str) -> Result<u16, &'static str> {
    match raw.trim().parse::<u16>() {
        Ok(p) if RESERVED_PORTS.contains(&p) => {
            Err("is reserved for Foundry's sidecars (8945 and 8946); choose another port")
        }
        Ok(p @ 1024..) => Ok(p),
        _ => Err("is not a port between 1024 and 65535, which Foundry requires"),
    }
}

/// What server mode reads from the environment.
#[derive(Debug, Clone)]
pub(crate) struct ServerConfig {
    /// The port to listen on (loopback).
    pub(crate) port: u16,
    /// Calls running at once at most; more wait for a slot.
    pub(crate) max_concurrent_tasks: usize,
    /// How long running calls may finish after SIGTERM.
    pub(crate) grace_period: Duration,
}

impl ServerConfig {
    /// `CMOD_SERVER_PORT`, `MAX_CONCURRENT_TASKS` (default 1), `CMOD_SHUTDOWN_GRACE_SECS`.
    pub(crate) fn from_env() -> Result<Self, crate::Error> {
        let max_concurrent_tasks = match crate::env::var(vars::MAX_CONCURRENT_TASKS) {
            None => 1,
            Some(v) => crate::config::parse_max_concurrent_tasks(&v).map_err(|message| {
                crate::Error::Usage(format!("{}: {message}", vars::MAX_CONCURRENT_TASKS))
            })?,
        };
        Ok(Self {
            port: port_from_env()?,
            max_concurrent_tasks,
            grace_period: crate::functions::job_loop::grace_period_from_env(),
        })
    }
}

/// `--print-openapi`: prints the OpenAPI document for `CMOD_SERVER_PORT` to stdout.
pub(crate) fn print_openapi() -> crate::Result<()> {
    use std::io::Write as _;
    let registry = Registry::from_linked()?;
    let document = openapi::document(&registry, port_from_env()?)?;
    let text = serde_json::to_string_pretty(&document)
        .map_err(|e| crate::Error::Runtime(format!("cannot encode the OpenAPI document: {e}")))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").map_err(|source| crate::Error::Io {
        context: "writing the OpenAPI document to stdout".into(),
        source,
    })
}

/// Serves `registry` in server mode until SIGTERM/SIGINT, then shuts down gracefully.
pub(crate) async fn run(registry: Registry, config: ServerConfig) -> crate::Result<()> {
    // The document is built (and every function checked for OpenAPI) before anything listens,
    // so a type that cannot be expressed fails at startup, naming the function and the type.
    openapi::document(&registry, config.port)?;
    let listeners = bind(config.port).await?;
    Server::new(registry, config)
        .run(listeners, crate::shutdown_signal())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_follow_foundrys_rule() {
        assert_eq!(parse_port(" 8080 "), Ok(8080));
        assert_eq!(parse_port("65535"), Ok(65535));
        assert!(parse_port("8945").unwrap_err().contains("reserved"));
        assert!(parse_port("8946").is_err());
        assert!(parse_port("80").unwrap_err().contains("1024"));
        assert!(parse_port("70000").is_err());
        assert!(parse_port("http").is_err());
    }
}
