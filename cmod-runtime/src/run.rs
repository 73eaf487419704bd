//! [`run`]: the entry point that picks the execution mode from the environment.

use crate::cli::{Flags, MODE_VAR, Mode, USAGE, utf8_args};
use crate::config::{LOCAL_OPT_IN_VAR, RuntimeConfig};
use crate::functions::FunctionsRuntime;
use crate::functions::Registry;
use crate::logging::{self, LogFormat};

fn local_opt_in() -> bool {
    crate::env::var(LOCAL_OPT_IN_VAR).is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// Runs the module: the one call a compute module's `main` makes.
///
/// * `--print-schemas`: prints the JSON array of function schemas that would be posted, and
///   returns (no runtime needed — diff it in CI).
/// * `CMOD_LOCAL=1` or `--local`: runs on the embedded local runtime (never implicit). With
///   `--invoke NAME '{json}'` it calls the function through the local runtime, prints the
///   result and exits; otherwise it serves until Ctrl-C and prints a ready `curl` line.
/// * `--server` or `CMOD_MODE=server`: server mode, for Foundry's OpenAPI server mode — the same
///   functions served over HTTP (`POST /<function>`) on `localhost:CMOD_SERVER_PORT` (default
///   8080); `--print-openapi` prints the document for the image label `server.openapi`.
/// * In Foundry, functions mode (the job loop) — or pipeline mode when the module has a
///   `#[pipeline]` and `BUILD2_TOKEN` / `RESOURCE_ALIAS_MAP` are set. After a successful
///   pipeline the process stays alive until SIGTERM in Foundry (so the platform does not run
///   it again) and exits locally; `CMOD_PIPELINE_AFTER_SUCCESS=exit|stay_alive` or
///   `#[pipeline(after_success = "…")]` chooses (see [the `pipeline` module](mod@crate::pipeline)).
///
/// Without a Foundry environment and without the opt-in it fails with an error naming the
/// missing variables and how to run locally. It returns after a graceful shutdown on
/// SIGTERM/SIGINT.
pub async fn run() -> crate::Result<()> {
    let flags = Flags::parse(utf8_args(std::env::args_os().skip(1))?)?;
    if flags.help {
        print!("{USAGE}");
        return Ok(());
    }
    if flags.print_schemas {
        return print_schemas();
    }
    if flags.print_openapi {
        return crate::server::print_openapi();
    }
    let (server, pipeline) = choose_mode(&flags, crate::pipeline::registered()?)?;
    if flags.local || local_opt_in() {
        #[cfg(feature = "local")]
        return match pipeline {
            Some(def) => {
                logging::init(LogFormat::Pretty);
                crate::pipeline::run_replica(def, true, shutdown_signal()).await
            }
            None if server => crate::server::local::run_local().await,
            None => crate::functions::local::run_local(flags).await,
        };
        #[cfg(not(feature = "local"))]
        return Err(crate::Error::Usage(
            "this binary was built without cmod-runtime's `local` feature; rebuild with it to use CMOD_LOCAL=1 / --local".into(),
        ));
    }
    if !flags.invoke.is_empty() {
        return Err(crate::Error::Usage(format!(
            "`--invoke` only works on the local runtime: add `--local` or set {LOCAL_OPT_IN_VAR}=1"
        )));
    }
    if let Some(def) = pipeline {
        if crate::pipeline::has_pipeline_environment(crate::env::lookup()) {
            logging::init(LogFormat::Sls);
            crate::sources::check_required_sources()?;
            return crate::pipeline::run_replica(def, false, shutdown_signal()).await;
        }
        if !crate::config::has_functions_environment(crate::env::lookup()) {
            return Err(crate::config::ConfigError {
                problems: Vec::new(),
                no_foundry_environment: true,
            }
            .into());
        }
    }
    if server {
        let config = crate::server::ServerConfig::from_env()?;
        logging::init(LogFormat::Sls);
        let registry = Registry::from_linked()?;
        crate::sources::check_required_sources()?;
        return crate::server::run(registry, config).await;
    }
    let config = RuntimeConfig::from_env()?;
    logging::init(LogFormat::Sls);
    let registry = Registry::from_linked()?;
    crate::sources::check_required_sources()?;
    FunctionsRuntime::new(config, registry).run().await
}

/// Whether to serve the functions over HTTP (server mode: `--server` or `CMOD_MODE=server`,
/// never implicit), and the pipeline to run (`None` for functions or server mode). A binary
/// that links both `#[compute_function]`s and a `#[pipeline]` must say which (`--functions` /
/// `--pipeline` / `--server` or `CMOD_MODE`); `--invoke` means functions mode.
fn choose_mode(
    flags: &Flags,
    pipeline: Option<&'static crate::pipeline::PipelineDef>,
) -> crate::Result<(bool, Option<&'static crate::pipeline::PipelineDef>)> {
    let pipeline = match chosen_mode(flags)? {
        Some(Mode::Server) => return Ok((true, None)),
        chosen => choose_pipeline(chosen, pipeline)?,
    };
    Ok((false, pipeline))
}

fn chosen_mode(flags: &Flags) -> crate::Result<Option<Mode>> {
    Ok(match flags.mode {
        Some(mode) => Some(mode),
        None if !flags.invoke.is_empty() => Some(Mode::Functions),
        None => Mode::from_env(crate::env::var(MODE_VAR))?,
    })
}

fn choose_pipeline(
    chosen: Option<Mode>,
    pipeline: Option<&'static crate::pipeline::PipelineDef>,
) -> crate::Result<Option<&'static crate::pipeline::PipelineDef>> {
    let functions = inventory::iter::<crate::functions::FunctionDef>
        .into_iter()
        .count();
    match (chosen, pipeline) {
        (Some(Mode::Functions | Mode::Server), _) => Ok(None),
        (Some(Mode::Pipeline), Some(def)) => Ok(Some(def)),
        (Some(Mode::Pipeline), None) => Err(crate::Error::Usage(
            "pipeline mode was chosen (`--pipeline` or CMOD_MODE=pipeline) but this binary has no #[pipeline]".into(),
        )),
        (None, Some(def)) if functions > 0 => Err(crate::Error::Usage(format!(
            "this binary has both {functions} #[compute_function](s) and the #[pipeline] `{}`: choose the mode with `--functions` / `--pipeline` / `--server` or {MODE_VAR}=functions|pipeline|server",
            def.name
        ))),
        (None, pipeline) => Ok(pipeline),
    }
}

/// Prints the schemas of every linked function to stdout.
pub fn print_schemas() -> crate::Result<()> {
    use std::io::Write as _;
    let registry = Registry::from_linked()?;
    let json = registry
        .schemas_json()
        .map_err(crate::functions::RegistryError::from)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{json}").map_err(|source| crate::Error::Io {
        context: "writing the schemas to stdout".into(),
        source,
    })
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!(signal = "SIGINT", "shutting down"),
        _ = term => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
}
