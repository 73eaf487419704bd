//! The functions-mode examples (`quickstart`, `app-permissions`, `sources`) run as users run
//! them: as processes (built from their sources as `example-*` binaries of this crate), with an
//! empty environment plus `PATH`, on the embedded local runtime (`--local --invoke NAME JSON`),
//! which starts the local runtime and the local Foundry over TLS. Each test checks the
//! `NAME(JSON) => RESULT` line the module prints.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

const QUICKSTART: &str = env!("CARGO_BIN_EXE_example-quickstart");
const APP_PERMISSIONS: &str = env!("CARGO_BIN_EXE_example-app-permissions");
const SOURCES: &str = env!("CARGO_BIN_EXE_example-sources");

/// Every run in this file is bounded by this.
const LIMIT: Duration = Duration::from_secs(120);

struct Finished {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn output(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

/// Runs `bin args…` with an empty environment (only `PATH`) and waits for it to exit.
async fn run(bin: &str, args: &[&str]) -> Finished {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("`{bin} {args:?}` did not exit within {LIMIT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    Finished {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `bin --local --invoke name input`; returns the `result` of the one
/// `name(input) => result` line it prints.
async fn invoke(bin: &str, name: &str, input: &str) -> String {
    let done = run(bin, &["--local", "--invoke", name, input]).await;
    assert!(done.success, "`--invoke {name}` failed:\n{}", done.output());
    let prefix = format!("{name}({input}) => ");
    let results: Vec<&str> = done
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .collect();
    assert_eq!(
        results.len(),
        1,
        "expected one `{prefix}…` line:\n{}",
        done.output()
    );
    results[0].to_owned()
}

fn parse(result: &str) -> Value {
    serde_json::from_str(result).unwrap_or_else(|e| panic!("`{result}` is not JSON: {e}"))
}

#[tokio::test]
async fn quickstart_add_as_the_readme_shows() {
    let done = run(
        QUICKSTART,
        &["--local", "--invoke", "add", r#"{"x": 2, "y": 3}"#],
    )
    .await;
    assert!(done.success, "{}", done.output());
    assert!(
        done.stdout
            .lines()
            .any(|line| line == r#"add({"x": 2, "y": 3}) => 5"#),
        "{}",
        done.output()
    );
}

#[tokio::test]
async fn quickstart_greet_uses_its_wire_name() {
    let result = invoke(QUICKSTART, "greet", r#"{"name": "Ada"}"#).await;
    assert_eq!(parse(&result), json!("Hello, Ada!"));
}

#[tokio::test]
async fn quickstart_without_foundry_or_opt_in_says_how_to_run_locally() {
    let done = run(QUICKSTART, &[]).await;
    assert!(!done.success, "{}", done.output());
    let text = format!("{}{}", done.stdout, done.stderr);
    assert!(text.contains("GET_JOB_URI"), "{}", done.output());
    assert!(text.contains("CMOD_LOCAL=1"), "{}", done.output());
}

#[tokio::test]
async fn quickstart_prints_its_schemas_without_a_runtime() {
    let done = run(QUICKSTART, &["--print-schemas"]).await;
    assert!(done.success, "{}", done.output());
    let schemas = parse(&done.stdout);
    let names: Vec<&str> = schemas
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|s| s["functionName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["add", "greet"]);
    let add_inputs: Vec<(&str, &str)> = schemas[0]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap(),
                i["dataType"]["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(add_inputs, [("x", "long"), ("y", "long")]);

    let long = json!({"type": "long", "long": {}});
    let string = json!({"type": "string", "string": {}});
    let input = |name: &str, data_type: &Value| json!({"name": name, "required": true, "constraints": [], "dataType": data_type});
    let output = |data_type: &Value, description: &str| json!({"type": "single", "single": {"dataType": data_type, "description": description}});
    assert_eq!(
        schemas,
        json!([
            {
                "functionName": "add",
                "inputs": [input("x", &long), input("y", &long)],
                "output": output(&long, "Adds two integers."),
                "ontologyProvenance": null
            },
            {
                "functionName": "greet",
                "inputs": [input("name", &string)],
                "output": output(&string, "Greets someone by name."),
                "ontologyProvenance": null
            }
        ])
    );
}

#[tokio::test]
async fn app_permissions_whoami_is_the_local_application() {
    // Local mode gives the module the local Foundry's generated OAuth2 client; `whoami` fetches
    // an application token with it and asks Foundry who that is.
    let result = invoke(APP_PERMISSIONS, "whoami", "{}").await;
    assert_eq!(
        parse(&result),
        json!({"id": "cmod-local-app", "username": "cmod-local-app"})
    );
}

#[tokio::test]
async fn sources_secret_names_lists_the_required_secret() {
    let result = invoke(SOURCES, "secret_names", "{}").await;
    assert_eq!(parse(&result), json!(["additionalSecretApiKey"]));
}

#[tokio::test]
async fn sources_forecast_calls_the_local_stand_in() {
    let result = invoke(SOURCES, "forecast", r#"{"city":"Paris"}"#).await;
    let forecast = parse(&result);
    assert_eq!(forecast["city"], "Paris", "{forecast}");
    assert_eq!(forecast["status"], 200, "{forecast}");
    // The local echo source saw the request the function made.
    let echoed = parse(forecast["body"].as_str().expect("a string body"));
    assert_eq!(echoed["source"], "WeatherApi", "{echoed}");
    assert_eq!(echoed["path"], "/forecast", "{echoed}");
    assert_eq!(echoed["queryParameters"], json!(["city"]), "{echoed}");
}
