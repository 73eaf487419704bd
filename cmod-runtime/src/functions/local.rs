//! The embedded local runtime: `CMOD_LOCAL=1` or `--local`.
//!
//! Starts `cmod-local`'s compute-module runtime in this process (real HTTPS on 127.0.0.1 with a
//! generated CA), points the module's configuration at it through the [`crate::env`] overlay,
//! and runs the normal job loop against it — the same code path as in Foundry: TLS, schema
//! posting, long-poll, result posting.
//!
//! * `--invoke NAME '{json}'` (repeatable): calls the function(s) through the runtime, prints
//!   each result, and exits.
//! * Otherwise it serves until Ctrl-C and prints a ready `curl` line for the invoke API.
//!
//! `CMOD_LOCAL_PORT` fixes the invoke API's port (default: any free port);
//! `MAX_CONCURRENT_TASKS` works as in Foundry.

use std::time::Duration;

use std::sync::Arc;

use cmod_local::foundry::{LocalFoundry, LocalFoundryOptions, LocalSource};
use cmod_local::runtime::CallEvent;
use cmod_local::tls::LocalCa;
use cmod_local::{LocalRuntime, LocalRuntimeOptions};
use tokio::sync::watch;

use crate::cli::Flags;
use crate::config::RuntimeConfig;
use crate::functions::FunctionsRuntime;
use crate::functions::registry::Registry;
use crate::logging::{self, LogFormat};

/// How long `--invoke` waits for one call.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) fn local_err(what: &str, e: impl std::fmt::Display) -> crate::Error {
    crate::Error::Local(format!("{what}: {e}"))
}

pub(crate) async fn run_local(flags: Flags) -> crate::Result<()> {
    logging::init(LogFormat::Pretty);
    let registry = Registry::from_linked()?;
    let schemas = registry
        .schemas()
        .map_err(crate::functions::registry::RegistryError::from)?;

    let invoke_port = match crate::env::var(crate::env::vars::CMOD_LOCAL_PORT) {
        Some(p) => p.trim().parse::<u16>().map_err(|_| {
            crate::Error::Usage(format!("CMOD_LOCAL_PORT=`{p}` is not a port number"))
        })?,
        None => 0,
    };
    let max_concurrent_tasks = match crate::env::var(crate::config::MAX_CONCURRENT_TASKS_VAR) {
        None => 1,
        Some(v) => crate::config::parse_max_concurrent_tasks(&v).map_err(|message| {
            crate::Error::Usage(format!(
                "{}: {message}",
                crate::config::MAX_CONCURRENT_TASKS_VAR
            ))
        })?,
    };
    // One CA for both local servers, so the module trusts both through DEFAULT_CA_PATH.
    let ca = Arc::new(
        LocalCa::generate("cmod local CA")
            .map_err(|e| local_err("cannot create the local CA", e))?,
    );
    let runtime = LocalRuntime::start(LocalRuntimeOptions {
        invoke_port: Some(invoke_port),
        max_concurrent_tasks,
        ca: Some(Arc::clone(&ca)),
        ..LocalRuntimeOptions::default()
    })
    .await
    .map_err(|e| local_err("cannot start the local runtime", e))?;
    let foundry = start_foundry(ca).await?;

    // The module's environment: the local runtime's and the local Foundry's variables (OAuth
    // client, discovery, sources), over the process environment.
    let mut overlay = foundry.env();
    overlay.retain(|(k, _)| k != crate::env::vars::DEFAULT_CA_PATH);
    overlay.extend(runtime.env());
    // The local Foundry's execute API routes calls to this module's RID to its own runtime.
    let rid_var = crate::env::vars::FOUNDRY_COMPUTE_MODULE_RID;
    let rid = crate::env::var(rid_var).unwrap_or_else(|| LOCAL_MODULE_RID.to_owned());
    foundry.register_module(rid.clone(), runtime.clone());
    overlay.push((rid_var.to_owned(), rid));
    // Other local modules (their own `CMOD_LOCAL=1` processes) reachable by RID.
    for (rid, url) in local_modules(crate::env::var(crate::env::vars::CMOD_LOCAL_MODULES))? {
        foundry
            .register_module_url(rid, &url)
            .map_err(|e| crate::Error::Usage(format!("CMOD_LOCAL_MODULES: {e}")))?;
    }
    crate::env::install_overlay(overlay);
    let config = RuntimeConfig::from_env()?;
    crate::sources::check_required_sources()?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let module = tokio::spawn(
        FunctionsRuntime::new(config, registry).run_until(async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }),
    );

    let outcome = if flags.invoke.is_empty() {
        serve(&runtime, &schemas).await
    } else {
        invoke_all(&runtime, &flags.invoke).await
    };

    let _ = stop_tx.send(true);
    // A stopping job loop lets a poll under way finish (up to 2 s, for a job it may bring);
    // here no job can come, so end open polls at once instead of waiting them out.
    let stopped = async {
        let mut module = module;
        loop {
            runtime.end_open_polls();
            tokio::select! {
                r = &mut module => break r,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    };
    let module_result = match tokio::time::timeout(Duration::from_secs(30), stopped).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(local_err("the job loop stopped unexpectedly", e)),
        Err(_) => Err(crate::Error::Local(
            "the job loop did not stop within 30 s".into(),
        )),
    };
    runtime.shutdown().await;
    foundry.shutdown().await;
    outcome.and(module_result)
}

/// `CMOD_LOCAL_MODULES=RID=URL[,RID=URL…]`: other local modules' invoke APIs, by RID.
fn local_modules(value: Option<String>) -> crate::Result<Vec<(String, String)>> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .split_once('=')
                .map(|(rid, url)| (rid.trim().to_owned(), url.trim().to_owned()))
                .filter(|(rid, url)| !rid.is_empty() && !url.is_empty())
                .ok_or_else(|| {
                    crate::Error::Usage(format!(
                        "CMOD_LOCAL_MODULES: `{entry}` is not RID=URL (e.g. \
                         ri.foundry.main.deployed-app.pricing=http://127.0.0.1:8948)"
                    ))
                })
        })
        .collect()
}

/// The module's RID in local mode unless `FOUNDRY_COMPUTE_MODULE_RID` is set.
pub(crate) const LOCAL_MODULE_RID: &str = "ri.foundry.main.deployed-app.local";

/// Starts the local Foundry (OAuth2 token endpoint, discovery, datasets, streams), with a local
/// echo source for every source the module declares with `require_source!`.
pub(crate) async fn start_foundry(ca: Arc<LocalCa>) -> crate::Result<LocalFoundry> {
    let sources = crate::sources::required_sources()
        .into_iter()
        .map(|required| {
            required
                .secrets
                .iter()
                .fold(LocalSource::echo(required.api_name), |source, secret| {
                    source.secret(*secret, format!("local-{secret}"))
                })
        })
        .collect();
    LocalFoundry::start(LocalFoundryOptions {
        ca: Some(ca),
        sources,
        ..LocalFoundryOptions::default()
    })
    .await
    .map_err(|e| local_err("cannot start the local Foundry", e))
}

async fn invoke_all(runtime: &LocalRuntime, calls: &[(String, String)]) -> crate::Result<()> {
    runtime
        .wait_for_schemas(Duration::from_secs(30))
        .await
        .map_err(|e| local_err("the module did not register its functions", e))?;
    let mut failed = None;
    for (name, input) in calls {
        let query: serde_json::Value = serde_json::from_str(input).map_err(|e| {
            crate::Error::Usage(format!(
                "the input of `--invoke {name}` is not valid JSON: {e}"
            ))
        })?;
        if let Some(error) = invoke_one(runtime, name, input, query).await? {
            failed.get_or_insert(error);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Calls one function and prints its result: `name(input) => value` on one line, or for a
/// streamed result `name(input) => stream` followed by one JSON value per line as the items
/// arrive and `end of stream (N items)`. Returns the error the function returned, if any.
async fn invoke_one(
    runtime: &LocalRuntime,
    name: &str,
    input: &str,
    query: serde_json::Value,
) -> crate::Result<Option<crate::Error>> {
    use std::io::Write as _;
    let io = |source| crate::Error::Io {
        context: "writing the result to stdout".into(),
        source,
    };
    let calling = |e| local_err(&format!("calling `{name}`"), e);
    let mut call = runtime.call_streamed(name, query);
    let mut items = 0usize;
    let mut streaming = false;
    loop {
        // An idle bound: a stream that keeps producing is never cut off.
        match call.next(INVOKE_TIMEOUT).await.map_err(calling)? {
            CallEvent::Streaming => {
                streaming = true;
                println!("{name}({input}) => stream");
            }
            CallEvent::Item(item) => {
                items += 1;
                let mut out = std::io::stdout().lock();
                out.write_all(&item).map_err(io)?;
                out.write_all(b"\n").map_err(io)?;
                out.flush().map_err(io)?;
            }
            CallEvent::Done(result) => {
                let error = invoke_error(name, &result.body);
                if !streaming {
                    println!(
                        "{name}({input}) => {}",
                        String::from_utf8_lossy(&result.body)
                    );
                } else {
                    if let Some(rest) = call.rest_after_items(&result) {
                        let mut out = std::io::stdout().lock();
                        out.write_all(&rest).map_err(io)?;
                    }
                    println!("end of stream ({items} items)");
                }
                return Ok(error);
            }
        }
    }
}

/// The error a function returned, if `body` is an error result
/// (`{"error": {"kind": …, "message": …}}`, see `outcome.rs`).
fn invoke_error(function: &str, body: &[u8]) -> Option<crate::Error> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ErrorResult {
        error: ErrorBody,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ErrorBody {
        kind: String,
        message: String,
    }
    // A streamed result that ended with an error item carries it last.
    let last = serde_json::Deserializer::from_slice(body)
        .into_iter::<serde_json::Value>()
        .filter_map(Result::ok)
        .last()?;
    let ErrorResult { error } = serde_json::from_value(last).ok()?;
    crate::functions::ErrorKind::from_wire(&error.kind)?;
    Some(crate::Error::Invoke {
        function: function.to_owned(),
        kind: error.kind,
        message: error.message,
    })
}

async fn serve(
    runtime: &LocalRuntime,
    schemas: &[crate::schema::FunctionSchema],
) -> crate::Result<()> {
    let invoke = runtime.invoke_url().unwrap_or_default();
    println!(
        "cmod local runtime: serving {} function(s); Ctrl-C to stop.",
        schemas.len()
    );
    for schema in schemas {
        let value = serde_json::to_value(schema).unwrap_or_default();
        let name = value["functionName"].as_str().unwrap_or_default();
        let mut example = serde_json::Map::new();
        for input in value["inputs"].as_array().into_iter().flatten() {
            let input_name = input["name"].as_str().unwrap_or_default().to_owned();
            example.insert(input_name, sample(&input["dataType"]));
        }
        println!(
            "  {name}:\n    curl -s -X POST {invoke}/functions/{name} -H 'content-type: application/json' -d '{}'",
            serde_json::Value::Object(example)
        );
    }
    println!("  schemas: curl -s {invoke}/schemas    jobs in flight: curl -s {invoke}/jobs");
    crate::shutdown_signal().await;
    Ok(())
}

/// A sample value of a Foundry data type (for the printed `curl` lines).
pub(crate) fn sample(data_type: &serde_json::Value) -> serde_json::Value {
    use serde_json::json;
    let kind = data_type["type"].as_str().unwrap_or_default();
    let body = &data_type[kind];
    match kind {
        "boolean" => json!(true),
        "byte" | "short" | "integer" | "long" => json!(1),
        "float" | "double" => json!(1.5),
        "decimal" => json!("1.25"),
        "binary" => json!("aGk="),
        "date" => json!("2024-01-02"),
        "timestamp" => json!("2024-01-02T03:04:05Z"),
        "list" | "set" => json!([sample(&body["elementsType"])]),
        "map" => json!({ "key": sample(&body["valuesType"]) }),
        "optionalType" => sample(&body["wrappedType"]),
        "anonymousCustomType" => {
            let fields = body["fields"].as_object().into_iter().flatten();
            serde_json::Value::Object(fields.map(|(k, v)| (k.clone(), sample(v))).collect())
        }
        _ => json!("text"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn local_modules_are_rid_url_pairs_and_errors_name_the_variable() {
        assert!(local_modules(None).unwrap().is_empty());
        assert_eq!(
            local_modules(Some(
                " ri.a=http://127.0.0.1:1 , ri.b = http://localhost:2,".into()
            ))
            .unwrap(),
            [
                ("ri.a".to_owned(), "http://127.0.0.1:1".to_owned()),
                ("ri.b".to_owned(), "http://localhost:2".to_owned())
            ]
        );
        let e = local_modules(Some("ri.a".into())).unwrap_err().to_string();
        assert!(
            e.contains("CMOD_LOCAL_MODULES") && e.contains("`ri.a`"),
            "{e}"
        );
    }

    #[test]
    fn samples_follow_the_data_type() {
        let t = json!({"type": "anonymousCustomType", "anonymousCustomType": {"fields": {
            "n": {"type": "long", "long": {}},
            "tags": {"type": "set", "set": {"elementsType": {"type": "string", "string": {}}}},
            "when": {"type": "optionalType", "optionalType": {"wrappedType": {"type": "date", "date": {}}}}
        }}});
        assert_eq!(
            sample(&t),
            json!({"n": 1, "tags": ["text"], "when": "2024-01-02"})
        );
    }
}
