//! The `cmod-local` command-line tool, run as a real process.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

mod common;

use common::{RequestJson, ResponseJson};

use std::process::Stdio;

use common::BOUND;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_cmod-local");
/// Set for the child process that plays the module in `run_launches_a_module_end_to_end`.
const CHILD_VAR: &str = "CMOD_LOCAL_TEST_MODULE";

fn cmod_local(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "cmod_local=info")
        .kill_on_drop(true);
    c
}

/// Reads lines (bounded) until one satisfies `find`; returns what `find` extracted.
async fn read_until<R, T>(lines: &mut Lines<R>, mut find: impl FnMut(&str) -> Option<T>) -> T
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    timeout(BOUND, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("output ended early");
            if let Some(found) = find(&line) {
                return found;
            }
        }
    })
    .await
    .expect("expected output never came")
}

fn terminate(child: &Child) {
    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
}

async fn exit_code(child: &mut Child) -> Option<i32> {
    timeout(BOUND, child.wait()).await.unwrap().unwrap().code()
}

fn pipes(child: &mut Child) -> (Lines<BufReader<ChildStdout>>, Lines<BufReader<ChildStderr>>) {
    (
        BufReader::new(child.stdout.take().unwrap()).lines(),
        BufReader::new(child.stderr.take().unwrap()).lines(),
    )
}

#[tokio::test]
async fn help_and_usage_errors() {
    let out = cmod_local(&["--help"]).output().await.unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("cmod-local run") && help.contains("--invoke-port"),
        "{help}"
    );

    let out = cmod_local(&["run", "--bogus", "--", "x"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}

#[tokio::test]
async fn run_hands_the_environment_to_the_module_and_exits_with_its_status() {
    let script = r#"test -s "$MODULE_AUTH_TOKEN" && test -s "$DEFAULT_CA_PATH" \
        && test "$CONNECTIONS_TO_OTHER_PODS_CA_PATH" = "$DEFAULT_CA_PATH" \
        && echo "uri=$GET_JOB_URI tasks=$MAX_CONCURRENT_TASKS host=$RUNTIME_HOST"; exit 7"#;
    let out = cmod_local(&[
        "run",
        "--no-invoke",
        "--max-concurrent-tasks",
        "3",
        "--",
        "sh",
        "-c",
        script,
    ])
    .output()
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("uri=https://localhost:"), "{stdout}");
    assert!(
        stdout.contains("/interactive-module/api/internal-query/job tasks=3 host=localhost"),
        "{stdout}"
    );
}

#[tokio::test]
async fn run_reports_a_missing_module() {
    let out = cmod_local(&["run", "--no-invoke", "--", "/definitely/not/a/module"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/definitely/not/a/module"));
}

#[tokio::test]
async fn sigterm_is_forwarded_to_the_module() {
    let mut child = cmod_local(&[
        "run",
        "--no-invoke",
        "--",
        "sh",
        "-c",
        // Bounded loop: the script ends by itself even if the test fails half-way.
        r#"trap 'echo got-term; exit 42' TERM; echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"#,
    ])
    .spawn()
    .unwrap();
    let (mut stdout, _stderr) = pipes(&mut child);
    read_until(&mut stdout, |l| (l == "ready").then_some(())).await;
    terminate(&child);
    read_until(&mut stdout, |l| (l == "got-term").then_some(())).await;
    assert_eq!(exit_code(&mut child).await, Some(42));
}

#[tokio::test]
async fn serve_prints_the_environment_and_serves_until_sigterm() {
    let mut child = cmod_local(&["serve", "--invoke-port", "0", "--long-poll-timeout", "0.2"])
        .spawn()
        .unwrap();
    let (mut stdout, _stderr) = pipes(&mut child);
    let mut env = std::collections::HashMap::new();
    read_until(&mut stdout, |line| {
        let (k, v) = line.strip_prefix("export ")?.split_once('=')?;
        env.insert(k.to_owned(), v.trim_matches('\'').to_owned());
        (k == "MAX_CONCURRENT_TASKS").then_some(())
    })
    .await;
    let ca = std::fs::read_to_string(&env["DEFAULT_CA_PATH"]).unwrap();
    let token = std::fs::read_to_string(&env["MODULE_AUTH_TOKEN"]).unwrap();
    let client = common::client_trusting(&ca);
    let resp = client
        .get(&env["GET_JOB_URI"])
        .header("Module-Auth-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    terminate(&child);
    assert_eq!(exit_code(&mut child).await, Some(0));
    assert!(
        !std::path::Path::new(&env["DEFAULT_CA_PATH"]).exists(),
        "the temporary directory is removed on exit"
    );
}

/// `cmod-local run` launches this test binary again as the module (see [`module_child`]); the
/// module reads only the environment cmod-local gives it. The test calls a function through the
/// invoke API, then stops everything with SIGTERM.
#[tokio::test]
async fn run_launches_a_module_end_to_end() {
    let me = std::env::current_exe().unwrap();
    let mut child = cmod_local(&[
        "run",
        "--invoke-port",
        "0",
        "--",
        me.to_str().unwrap(),
        "--exact",
        "module_child",
        "--ignored",
        "--nocapture",
    ])
    .env(CHILD_VAR, "1")
    .spawn()
    .unwrap();
    let (_stdout, mut stderr) = pipes(&mut child);
    let invoke = read_until(&mut stderr, |l| {
        let rest = l.split("invoke API on ").nth(1)?;
        Some(rest.split_whitespace().next()?.to_owned())
    })
    .await;
    // Once the module posts its schemas, cmod-local prints a ready curl line for `add`.
    let curl = read_until(&mut stderr, |l| l.contains("curl").then(|| l.to_owned())).await;
    let curl = if curl.contains("/functions/add") {
        curl
    } else {
        read_until(&mut stderr, |l| {
            l.contains("/functions/add").then(|| l.to_owned())
        })
        .await
    };
    assert!(curl.contains(&format!("{invoke}/functions/add")), "{curl}");
    assert!(curl.contains(r#"-d '{"x":0,"y":0}'"#), "{curl}");

    let resp = common::http_client()
        .post(format!("{invoke}/functions/add"))
        .json_body(&json!({"x": 20, "y": 22}))
        .timeout(BOUND)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "42");

    terminate(&child);
    // The module (a test harness process) dies of the forwarded SIGTERM: 128 + 15.
    assert_eq!(exit_code(&mut child).await, Some(143));
}

/// The module side of `run_launches_a_module_end_to_end`: only runs as that test's child
/// process (with `CMOD_LOCAL_TEST_MODULE` set), configured purely from the environment.
#[test]
#[ignore = "child process of run_launches_a_module_end_to_end"]
fn module_child() {
    if std::env::var_os(CHILD_VAR).is_none() {
        eprintln!("module_child only runs as the child of run_launches_a_module_end_to_end");
        return;
    }
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("cmod-local did not set {k}"));
    let token = std::fs::read_to_string(var("MODULE_AUTH_TOKEN")).unwrap();
    let ca = std::fs::read_to_string(var("DEFAULT_CA_PATH")).unwrap();
    let (get_job, post_result, post_schema) = (
        var("GET_JOB_URI"),
        var("POST_RESULT_URI"),
        var("POST_SCHEMA_URI"),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = common::client_trusting(&ca);
        let schemas = json!([{"functionName": "add", "inputs": [
            {"name": "x", "required": true, "constraints": [], "dataType": {"type": "long", "long": {}}},
            {"name": "y", "required": true, "constraints": [], "dataType": {"type": "long", "long": {}}}],
            "output": {"type": "single", "single": {"dataType": {"type": "long", "long": {}}}}}]);
        let resp = client.post(&post_schema).header("Module-Auth-Token", &token).json_body(&schemas).send().await.unwrap();
        assert_eq!(resp.status(), 204);
        loop {
            let resp = client.get(&get_job).header("Module-Auth-Token", &token).send().await.unwrap();
            if resp.status() != 200 {
                continue;
            }
            let v: serde_json::Value = resp.json_value().await;
            let job = &v["computeModuleJobV1"];
            let sum = job["query"]["x"].as_i64().unwrap() + job["query"]["y"].as_i64().unwrap();
            let url = format!("{post_result}/{}", job["jobId"].as_str().unwrap());
            let resp = client
                .post(url)
                .header("Module-Auth-Token", &token)
                .body(sum.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 204);
        }
    });
}
