//! The module's own command line, run as users run it: `--help`, unknown arguments, `--invoke`
//! exit codes and streamed output, prompt exit, colours, the mode choice of a binary with both
//! kinds of entry points, and the local data directory announcement. Each test runs the binary
//! as a child process with an empty environment (plus `PATH`), bounded in time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

const MODULE: &str = env!("CARGO_BIN_EXE_e2e_module");
const BOTH: &str = env!("CARGO_BIN_EXE_both_modes");
const PIPELINE: &str = env!("CARGO_BIN_EXE_example-pipeline-datasets");

/// Every run in this file is bounded by this.
const LIMIT: Duration = Duration::from_secs(120);

struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn output(&self) -> String {
        format!(
            "exit code {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn command(bin: &str, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Finished {
    let out = tokio::time::timeout(LIMIT, command(bin, args, env).output())
        .await
        .unwrap_or_else(|_| panic!("`{bin} {args:?}` did not exit within {LIMIT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    Finished {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn help_prints_usage_and_exits_0() {
    for flag in ["--help", "-h"] {
        let done = run(MODULE, &[flag], &[]).await;
        assert_eq!(done.code, Some(0), "{}", done.output());
        assert!(
            done.stdout.contains("Usage:")
                && done.stdout.contains("--invoke NAME [JSON]")
                && done.stdout.contains("--local"),
            "{}",
            done.output()
        );
        assert!(
            !done.stderr.contains("Foundry environment"),
            "{}",
            done.output()
        );
    }
}

#[tokio::test]
async fn unknown_arguments_are_rejected() {
    for args in [&["--local", "--frobnicate"][..], &["stray"][..]] {
        let done = run(MODULE, args, &[]).await;
        assert_ne!(done.code, Some(0), "{}", done.output());
        let bad = args.last().unwrap();
        assert!(
            done.stderr.contains(&format!("unknown argument `{bad}`"))
                && done.stderr.contains("--help"),
            "{}",
            done.output()
        );
    }
}

#[tokio::test]
async fn invoke_exits_non_zero_when_the_function_returns_an_error() {
    let done = run(
        MODULE,
        &["--local", "--invoke", "fail", r#"{"reason": "no luck"}"#],
        &[],
    )
    .await;
    assert_eq!(done.code, Some(1), "{}", done.output());
    // The error result is printed like any result, and the exit message names the function.
    assert!(
        done.stdout
            .contains(r#"fail({"reason": "no luck"}) => {"error":"#),
        "{}",
        done.output()
    );
    assert!(
        done.stderr
            .contains("`fail` returned an error (FunctionError)")
            && done.stderr.contains("no luck"),
        "{}",
        done.output()
    );
    // The `job failed` log line carries the message, not only the kind.
    assert!(
        done.stderr
            .lines()
            .any(|l| l.contains("job failed") && l.contains("no luck")),
        "{}",
        done.output()
    );
    // Every call still runs; the exit code reports the failure.
    let done = run(
        MODULE,
        &[
            "--local",
            "--invoke",
            "fail",
            r#"{"reason": "first"}"#,
            "--invoke",
            "add",
            r#"{"x": 1, "y": 2}"#,
        ],
        &[],
    )
    .await;
    assert_eq!(done.code, Some(1), "{}", done.output());
    assert!(
        done.stdout.contains(r#"add({"x": 1, "y": 2}) => 3"#),
        "{}",
        done.output()
    );
    let ok = run(
        MODULE,
        &["--local", "--invoke", "add", r#"{"x": 1, "y": 2}"#],
        &[],
    )
    .await;
    assert_eq!(ok.code, Some(0), "{}", ok.output());
}

#[tokio::test]
async fn a_streamed_result_prints_one_value_per_line() {
    let done = run(
        MODULE,
        &["--local", "--invoke", "count", r#"{"n": 3}"#],
        &[],
    )
    .await;
    assert_eq!(done.code, Some(0), "{}", done.output());
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            r#"count({"n": 3}) => stream"#,
            "0",
            "1",
            "2",
            "end of stream (3 items)"
        ],
        "{}",
        done.output()
    );
}

async fn next(stdout: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(LIMIT, stdout.next_line())
        .await
        .expect("a line within the bound")
        .unwrap()
        .expect("a line before the end of output")
}

#[tokio::test]
async fn streamed_items_are_printed_as_they_arrive() {
    // Three items 1.5 s apart: the first line is out while the module is still producing.
    let mut child = command(
        MODULE,
        &[
            "--local",
            "--invoke",
            "slow_count",
            r#"{"n": 3, "ms": 1500}"#,
        ],
        &[],
    )
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(
        next(&mut stdout).await,
        r#"slow_count({"n": 3, "ms": 1500}) => stream"#
    );
    assert_eq!(next(&mut stdout).await, "0");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first item must be printed before the stream ends"
    );
    assert_eq!(next(&mut stdout).await, "1");
    assert_eq!(next(&mut stdout).await, "2");
    assert_eq!(next(&mut stdout).await, "end of stream (3 items)");
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn invoke_exits_without_waiting_out_a_poll() {
    // Before the fix about half the runs waited 2 s for the job loop's last long-poll; the
    // job loop logs (debug) when it gives up on that poll. No run may need it.
    for _ in 0..6 {
        let done = run(
            MODULE,
            &["--local", "--invoke", "add", r#"{"x": 2, "y": 3}"#],
            &[("RUST_LOG", "debug,hyper=info,rustls=info,h2=info")],
        )
        .await;
        assert_eq!(done.code, Some(0), "{}", done.output());
        assert!(
            !done.stderr.contains("did not finish within"),
            "the run waited for its last poll:\n{}",
            done.output()
        );
    }
}

#[tokio::test]
async fn an_answered_invoke_is_not_reported_as_in_flight_at_shutdown() {
    // The job's result was delivered (and printed) before the module stops: its drain must
    // not announce it as a job still running. Before the fix, a run now and then logged
    // `waiting for in-flight jobs in_flight=1` for it (its task was still finishing).
    for _ in 0..8 {
        let done = run(
            MODULE,
            &["--local", "--invoke", "add", r#"{"x": 2, "y": 3}"#],
            &[],
        )
        .await;
        assert_eq!(done.code, Some(0), "{}", done.output());
        assert!(
            done.stdout.contains(r#"add({"x": 2, "y": 3}) => 5"#),
            "{}",
            done.output()
        );
        assert!(
            !done.stderr.contains("waiting for in-flight jobs"),
            "an answered job was reported in flight:\n{}",
            done.output()
        );
    }
}

#[tokio::test]
async fn no_colours_when_stderr_is_not_a_terminal() {
    let done = run(
        MODULE,
        &["--local", "--invoke", "add", r#"{"x": 1, "y": 1}"#],
        &[],
    )
    .await;
    assert_eq!(done.code, Some(0), "{}", done.output());
    assert!(!done.stderr.is_empty());
    assert!(!done.stderr.contains('\x1b'), "{}", done.output());
}

#[tokio::test]
async fn a_binary_with_both_modes_must_be_told_which() {
    let done = run(BOTH, &["--local"], &[]).await;
    assert_ne!(done.code, Some(0), "{}", done.output());
    assert!(
        done.stderr.contains("#[pipeline] `copy`")
            && done.stderr.contains("--functions")
            && done.stderr.contains("CMOD_MODE"),
        "{}",
        done.output()
    );
    // `--invoke` means functions mode.
    let done = run(
        BOTH,
        &["--local", "--invoke", "add", r#"{"x": 1, "y": 2}"#],
        &[],
    )
    .await;
    assert_eq!(done.code, Some(0), "{}", done.output());
    assert!(
        done.stdout.contains(r#"add({"x": 1, "y": 2}) => 3"#),
        "{}",
        done.output()
    );
    // So does `--functions` / CMOD_MODE=functions.
    let done = run(
        BOTH,
        &[
            "--local",
            "--functions",
            "--invoke",
            "add",
            r#"{"x": 2, "y": 2}"#,
        ],
        &[],
    )
    .await;
    assert_eq!(done.code, Some(0), "{}", done.output());
    let done = run(
        BOTH,
        &["--local", "--invoke", "add", r#"{"x": 2, "y": 2}"#],
        &[("CMOD_MODE", "functions")],
    )
    .await;
    assert_eq!(done.code, Some(0), "{}", done.output());
    // A mode that is not one, and a pipeline chosen where there is none.
    let done = run(BOTH, &["--local"], &[("CMOD_MODE", "both")]).await;
    assert!(
        done.stderr.contains("CMOD_MODE=`both` is not a mode"),
        "{}",
        done.output()
    );
    let done = run(MODULE, &["--local", "--pipeline"], &[]).await;
    assert!(
        done.stderr.contains("has no #[pipeline]"),
        "{}",
        done.output()
    );
    let done = run(BOTH, &["--pipeline", "--invoke", "add"], &[]).await;
    assert!(
        done.stderr.contains("cannot be combined"),
        "{}",
        done.output()
    );
}

#[tokio::test]
async fn the_local_data_directory_is_announced_when_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh-data");
    let done = run(
        PIPELINE,
        &[],
        &[
            ("CMOD_LOCAL", "1"),
            ("CMOD_LOCAL_DATA", data.to_str().unwrap()),
            ("CMOD_PIPELINE_AFTER_SUCCESS", "exit"),
        ],
    )
    .await;
    assert!(data.exists(), "{}", done.output());
    assert!(
        done.stderr.contains("created the local data directory")
            && done.stderr.contains(data.to_str().unwrap()),
        "{}",
        done.output()
    );
}
