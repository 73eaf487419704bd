//! cmod-local: a local Foundry compute-module runtime and local Foundry APIs over real HTTPS.
//!
//! Everything here listens on loopback only, is never started implicitly, and speaks real TLS
//! with a certificate authority generated for the run, so a module's production code paths
//! (token file, CA file, TLS verification, the wire protocol) are exercised unchanged.
//!
//! # The local compute-module runtime
//!
//! [`LocalRuntime`] is the runtime side of the functions-mode protocol (`GET job` long-poll,
//! `POST results/{jobId}`, `POST schemas`, `POST restart-notify`, `Module-Auth-Token` on every
//! call). [`LocalRuntime::env`] is the environment a module needs to talk to it — the same
//! variables Foundry sets (`GET_JOB_URI`, `MODULE_AUTH_TOKEN`, `DEFAULT_CA_PATH`, …) — so the
//! module cannot tell it from the real thing.
//!
//! The library API is made for tests: enqueue jobs, await their results, read the posted
//! schemas, count what happened ([`Stats`]: polls, auth failures, duplicate results, the most
//! jobs in flight at once, …), and inject faults ([`Faults`]: refuse connections for a while,
//! answer the next N result posts with a 5xx, delay every response). A second result for the
//! same job is rejected with 409 and counted, so a test can prove exactly-once delivery.
//!
//! With [`LocalRuntimeOptions::invoke_port`] set, a developer **invoke API** runs next to it
//! over plain HTTP on 127.0.0.1: `POST /functions/{name}` with the function's input as a JSON
//! body answers with the function's result; `GET /schemas`, `GET /jobs` and `GET /stats` show
//! what the module registered and is doing.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use cmod_local::{LocalRuntime, LocalRuntimeOptions};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = LocalRuntime::start(LocalRuntimeOptions {
//!     max_concurrent_tasks: 4,
//!     ..LocalRuntimeOptions::default()
//! })
//! .await?;
//!
//! // Start the module with the runtime's environment.
//! let mut module = tokio::process::Command::new("target/debug/my-module")
//!     .envs(runtime.env())
//!     .kill_on_drop(true)
//!     .spawn()?;
//!
//! let schemas = runtime.wait_for_schemas(Duration::from_secs(10)).await?;
//! println!("registered: {schemas}");
//!
//! // Call a function and check its result.
//! let result = runtime
//!     .call("add", serde_json::json!({"x": 1, "y": 2}), Duration::from_secs(10))
//!     .await?;
//! assert_eq!(result.json()?, serde_json::json!(3));
//!
//! // Make the next two result posts fail, and check the module retried.
//! runtime.faults().fail_next_results(2, 503);
//! runtime.call("add", serde_json::json!({"x": 2, "y": 2}), Duration::from_secs(30)).await?;
//! assert_eq!(runtime.stats().rejected_by_fault, 2);
//! assert_eq!(runtime.stats().duplicate_results, 0);
//!
//! module.kill().await?;
//! runtime.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # The `cmod-local` command
//!
//! `cmod-local run -- <module-binary>` starts the runtime (and the invoke API on port 8947),
//! launches the module with the runtime's environment, prints a ready `curl` line for each
//! function the module registers, forwards Ctrl-C/SIGTERM to it, and exits with its status.
//! `cmod-local serve` only starts the runtime and prints its environment as `export` lines.
//!
//! # The local Foundry
//!
//! [`foundry`] serves the Foundry APIs a module calls (OAuth2, datasets, streams, media sets,
//! Scratch, and the execute API that routes calls to other local modules) over HTTPS, for
//! pipeline-mode and application-permission modules.
pub mod foundry;
pub mod https;
pub mod runtime;
pub mod tls;

pub use runtime::{
    Faults, JobResult, JobSpec, LocalError, LocalRuntime, LocalRuntimeOptions, Stats, TokenRotation,
};
