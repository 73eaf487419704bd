//! Calling another compute module (issue 17, item 2): the two modules of
//! `examples/module-calls` run as processes side by side, each against its own local runtime,
//! both against one local Foundry (one CA, real TLS). The orders module's functions call the
//! pricing module's through the local Foundry's execute API, which routes by `deployedAppRid` to
//! the pricing module's runtime (`LocalFoundry::register_module`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::sync::Arc;
use std::time::Duration;

use cmod_local::foundry::{DataOptions, LocalFoundry, TokenGrant};
use cmod_local::runtime::JobSpec;
use cmod_local::tls::LocalCa;
use cmod_local::{LocalRuntime, LocalRuntimeOptions};
use cmod_runtime::{FoundryClient, ModuleCallError, Modules};
use cmod_tests::child::LoggedChild;
use serde_json::{Value, json};

const PRICING: &str = env!("CARGO_BIN_EXE_example-module-calls-pricing");
const ORDERS: &str = env!("CARGO_BIN_EXE_example-module-calls-orders");
const PRICING_RID: &str = "ri.foundry.main.deployed-app.pricing";

/// Every wait in this file is bounded by this.
const LIMIT: Duration = Duration::from_secs(60);

struct Modules2 {
    foundry: LocalFoundry,
    orders_rt: LocalRuntime,
    _pricing_rt: LocalRuntime,
    orders: LoggedChild,
    pricing: LoggedChild,
    _dir: tempfile::TempDir,
}

async fn runtime(ca: &Arc<LocalCa>) -> LocalRuntime {
    LocalRuntime::start(LocalRuntimeOptions {
        ca: Some(Arc::clone(ca)),
        max_concurrent_tasks: 4,
        long_poll_timeout: Duration::from_millis(500),
        ..LocalRuntimeOptions::default()
    })
    .await
    .unwrap()
}

fn spawn(
    bin: &str,
    foundry: &LocalFoundry,
    rt: &LocalRuntime,
    extra: &[(&str, &str)],
) -> LoggedChild {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(foundry.env())
        .envs(rt.env())
        .env("CMOD_LOG", "info")
        .envs(extra.iter().copied());
    LoggedChild::spawn(&mut cmd)
}

/// The local Foundry, both runtimes and both module processes, with the pricing module's
/// runtime registered under [`PRICING_RID`] and both modules' schemas posted.
async fn start() -> Modules2 {
    let ca = Arc::new(LocalCa::generate("module calls test CA").unwrap());
    let (foundry, dir) = cmod_tests::foundry::start(DataOptions::default(), Some(ca.clone())).await;
    let pricing_rt = runtime(&ca).await;
    let orders_rt = runtime(&ca).await;
    foundry.register_module(PRICING_RID, pricing_rt.clone());
    let pricing = spawn(PRICING, &foundry, &pricing_rt, &[]);
    let orders = spawn(
        ORDERS,
        &foundry,
        &orders_rt,
        &[("PRICING_MODULE_RID", PRICING_RID)],
    );
    pricing_rt.wait_for_schemas(LIMIT).await.unwrap();
    orders_rt.wait_for_schemas(LIMIT).await.unwrap();
    Modules2 {
        foundry,
        orders_rt,
        _pricing_rt: pricing_rt,
        orders,
        pricing,
        _dir: dir,
    }
}

impl Modules2 {
    /// Calls a function of the orders module; its result as JSON.
    async fn call(&self, job: JobSpec) -> Value {
        let id = self.orders_rt.enqueue_job(job);
        let result = self.orders_rt.wait_result(&id, LIMIT).await;
        match result {
            Ok(r) => r.json().unwrap(),
            Err(e) => panic!(
                "{e}\norders log:\n{}\npricing log:\n{}",
                self.orders.log(),
                self.pricing.log()
            ),
        }
    }

    async fn stop(self) {
        let (status, log) = self.orders.terminate().await;
        assert!(status.success(), "orders: {status}\n{log}");
        let (status, log) = self.pricing.terminate().await;
        assert!(status.success(), "pricing: {status}\n{log}");
    }
}

fn order() -> Value {
    json!({"lines": [{"sku": "apple", "quantity": 3}, {"sku": "melon", "quantity": 1}]})
}

#[tokio::test]
async fn a_module_calls_another_as_its_application_with_retries_and_streams() {
    tokio::time::timeout(LIMIT * 2, async {
        let m = start().await;
        // Two calls of the execute API fail with 503 first: the client retries them.
        m.foundry
            .fail_next_requests_to("/compute-modules/jobs/execute", 2, 503);
        let total = m.call(JobSpec::new("order_total", order())).await;
        assert_eq!(total["total_cents"], 3 * 40 + 230, "{total}");
        assert_eq!(total["quotes"][0]["sku"], "apple", "{total}");
        // The callee ran as the caller's application (the local Foundry's client).
        assert_eq!(
            total["quotes"][1]["quoted_for"], "cmod-local-app",
            "{total}"
        );
        assert_eq!(m.foundry.stats().injected_faults, 2);

        // A streaming function: the values it streamed, decoded in order.
        let catalogue = m
            .call(JobSpec::new(
                "catalogue",
                json!({"skus": ["pear", "kiwi", "apple"]}),
            ))
            .await;
        let skus: Vec<&str> = catalogue
            .as_array()
            .unwrap_or_else(|| panic!("{catalogue}"))
            .iter()
            .map(|q| q["sku"].as_str().unwrap())
            .collect();
        assert_eq!(skus, ["pear", "apple"]);
        m.stop().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn the_calling_users_token_goes_to_the_callee() {
    tokio::time::timeout(LIMIT * 2, async {
        let m = start().await;
        let token = m.foundry.issue_token(TokenGrant::user("ada"));
        let total = m
            .call(JobSpec {
                auth_header: Some(format!("Bearer {token}")),
                ..JobSpec::new("order_total_as_user", order())
            })
            .await;
        assert_eq!(total["total_cents"], 350, "{total}");
        assert_eq!(total["quotes"][0]["quoted_for"], "ada", "{total}");
        assert_eq!(total["quotes"][1]["quoted_for"], "ada", "{total}");

        // Without a user token the caller's function fails, saying so.
        let err = m.call(JobSpec::new("order_total_as_user", order())).await;
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("user token"), "{err}");
        m.stop().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn failures_name_the_module_the_function_and_the_status() {
    tokio::time::timeout(LIMIT * 2, async {
        let m = start().await;
        // The callee's own error result.
        let err = m
            .call(JobSpec::new(
                "order_total",
                json!({"lines": [{"sku": "kiwi", "quantity": 1}]}),
            ))
            .await;
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(
            message,
            format!(
                "function `price` of module {PRICING_RID} returned an error: FunctionError: unknown sku `kiwi`"
            ),
            "{err}"
        );

        // An unknown module: Foundry's 404, with the RID.
        m.foundry.unregister_module(PRICING_RID);
        let err = m.call(JobSpec::new("order_total", order())).await;
        let message = err["error"]["message"].as_str().unwrap_or_default();
        for part in [
            &format!("calling function `price` of module {PRICING_RID} failed with HTTP 404"),
            "ComputeModuleNotFound",
        ] {
            assert!(message.contains(part), "no `{part}` in {err}");
        }
        assert!(!message.contains("Bearer"), "{err}");
        m.stop().await;
    })
    .await
    .expect("bounded");
}

/// Two `CMOD_LOCAL=1` processes on a laptop: the pricing module serves (its invoke API on a
/// fixed port), the orders module routes calls for the pricing RID there
/// (`CMOD_LOCAL_MODULES`) and calls it from `--invoke`.
#[tokio::test]
async fn two_local_mode_processes_call_each_other() {
    tokio::time::timeout(LIMIT * 2, async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut pricing = {
            let mut cmd = tokio::process::Command::new(PRICING);
            cmd.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("CMOD_LOCAL_PORT", port.to_string())
                .arg("--local");
            LoggedChild::spawn(&mut cmd)
        };
        pricing.wait_log("curl -s").await;
        let input = r#"{"lines": [{"sku": "pear", "quantity": 2}]}"#;
        let mut orders = {
            let mut cmd = tokio::process::Command::new(ORDERS);
            cmd.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("PRICING_MODULE_RID", PRICING_RID)
                .env(
                    "CMOD_LOCAL_MODULES",
                    format!("{PRICING_RID}=http://127.0.0.1:{port}"),
                )
                .args(["--local", "--invoke", "order_total", input]);
            LoggedChild::spawn(&mut cmd)
        };
        let status = orders.wait().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let log = orders.log();
        assert!(status.success(), "{log}\npricing:\n{}", pricing.log());
        let prefix = format!("order_total({input}) => ");
        let result: Value = log
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|r| serde_json::from_str(r).unwrap())
            .unwrap_or_else(|| panic!("no result line:\n{log}"));
        assert_eq!(result["total_cents"], 110, "{result}");
        // The pricing module saw the orders module's application as the user.
        assert_eq!(
            result["quotes"][0]["quoted_for"], "cmod-local-app",
            "{result}"
        );
        let (status, log) = pricing.terminate().await;
        assert!(status.success(), "{status}\n{log}");
    })
    .await
    .expect("bounded");
}

/// The client alone (no module process): a callee that never answers is given up after the
/// call's timeout, and the error names the module and function.
#[tokio::test]
async fn a_callee_that_never_answers_times_out() {
    tokio::time::timeout(LIMIT, async {
        let ca = Arc::new(LocalCa::generate("module calls test CA").unwrap());
        let (foundry, _dir) =
            cmod_tests::foundry::start(DataOptions::default(), Some(ca.clone())).await;
        // A runtime nobody polls: the job is never run.
        let idle = runtime(&ca).await;
        foundry.register_module("ri.foundry.main.deployed-app.idle", idle);
        let env: std::collections::HashMap<String, String> = foundry.env().into_iter().collect();
        let client = FoundryClient::builder()
            .build_from_lookup(&|k| env.get(k).cloned())
            .unwrap();
        let started = std::time::Instant::now();
        let err = Modules::with_client(client)
            .timeout(Duration::from_secs(1))
            .call::<Value>(
                "ri.foundry.main.deployed-app.idle",
                "master",
                "f",
                &json!({}),
            )
            .await
            .unwrap_err();
        // The 1 s limit counts from when the request was sent (a regression: it used to wait
        // for the 60 s idle limit first).
        assert!(started.elapsed() < Duration::from_secs(10), "{err}");
        assert!(
            matches!(err, ModuleCallError::Request { status: None, .. }),
            "{err:?}"
        );
        assert_eq!(err.module(), "ri.foundry.main.deployed-app.idle");
        assert_eq!(err.function(), "f");
        let text = err.to_string();
        assert!(
            text.contains("module ri.foundry.main.deployed-app.idle"),
            "{text}"
        );
    })
    .await
    .expect("bounded");
}
