//! Pipeline replicas on long lifetimes (issue 12, items 1, 4 and 6), over TLS against the local
//! Foundry:
//! * the lifecycle of the process: a pipeline that succeeds stays alive (and is not re-run)
//!   until SIGTERM, then exits 0; `CMOD_PIPELINE_AFTER_SUCCESS=exit` exits; a failure aborts and
//!   exits non-zero; with the functions-mode variables set, a job gets an error result. These
//!   run the `pipeline-datasets` example (`example-pipeline-datasets`) as a child process.
//! * build token rotation during a run, and a token that stays refused (in process);
//! * reuse of the build system's OPEN transaction: only on the output's own branch, found on any
//!   page of the transaction listing (in process).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::collections::HashMap;
use std::time::Duration;

use cmod_local::foundry::{
    DataOptions, LocalFoundry, PipelineResource, ResourceKind, TransactionStatus, TransactionType,
};
use cmod_local::{LocalRuntime, LocalRuntimeOptions};
use cmod_runtime::pipeline::{PipelineError, run_pipeline_with};
use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};
use cmod_tests::child::LoggedChild;
use tokio::sync::Notify;

const IN: &str = "ri.foundry.main.dataset.in";
const OUT: &str = "ri.foundry.main.dataset.out";
/// Every wait in this file is bounded by this.
const LIMIT: Duration = Duration::from_secs(120);

struct Env {
    foundry: LocalFoundry,
    _dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    vars: HashMap<String, String>,
}

impl Env {
    fn data(&self) -> &cmod_local::foundry::DataStore {
        self.foundry.data()
    }

    /// Statuses of the dataset's transactions, newest first.
    fn statuses(&self, rid: &str) -> Vec<TransactionStatus> {
        cmod_tests::foundry::statuses(self.data(), rid)
    }
}

async fn env_with(
    data: DataOptions,
    ca: Option<std::sync::Arc<cmod_local::tls::LocalCa>>,
    aliases: (&str, &str),
) -> Env {
    let (foundry, dir) = cmod_tests::foundry::start(data, ca).await;
    foundry.data().create_dataset(IN).unwrap();
    foundry.data().create_dataset(OUT).unwrap();
    let env = foundry
        .pipeline_env(&[
            PipelineResource::new(aliases.0, IN, ResourceKind::Dataset),
            PipelineResource::new(aliases.1, OUT, ResourceKind::Dataset),
        ])
        .unwrap();
    Env {
        foundry,
        _dir: dir,
        vars: env.iter().cloned().collect(),
        env,
    }
}

/// `raw` → `copy`, for the in-process pipelines below.
async fn copy_env(data: DataOptions) -> Env {
    env_with(data, None, ("raw", "copy")).await
}

/// `orders` → `totals`, for the `pipeline-datasets` example.
async fn orders_env() -> Env {
    let env = env_with(DataOptions::default(), None, ("orders", "totals")).await;
    seed_orders(&env);
    env
}

fn seed_orders(env: &Env) {
    env.data()
        .put_file(
            IN,
            "master",
            "jan.csv",
            b"region,product,quantity\nwest,apples,3\n",
        )
        .unwrap();
}

async fn run(
    def: &'static cmod_runtime::pipeline::PipelineDef,
    env: &Env,
) -> cmod_runtime::Result<()> {
    let lookup = |k: &str| env.vars.get(k).cloned();
    tokio::time::timeout(
        LIMIT,
        run_pipeline_with(def, &lookup, std::future::pending()),
    )
    .await
    .expect("the pipeline did not finish in time")
}

async fn copy_files(raw: &DatasetInput, copy: &DatasetOutput) -> Result<(), PipelineError> {
    for f in raw.list_files(None).await? {
        let bytes = raw.read(&f.path).await?;
        copy.write(&f.path, bytes).await?;
    }
    Ok(())
}

// ---- lifecycle: the example as a child process ------------------------------------------------

fn example() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_example-pipeline-datasets"));
    cmd.env_clear();
    cmd
}

const COMPLETED: &str = "pipeline completed; this replica stays alive";

#[tokio::test]
async fn a_successful_pipeline_stays_alive_until_sigterm_and_is_not_rerun() {
    let env = orders_env().await;
    let mut child = LoggedChild::spawn(example().envs(&env.vars));
    child.wait_log(COMPLETED).await;
    assert_eq!(env.statuses(OUT), [TransactionStatus::Committed]);
    // Still running a while later, and the output was written once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        child.child.try_wait().unwrap().is_none(),
        "the replica exited after success:\n{}",
        child.log()
    );
    assert_eq!(env.statuses(OUT), [TransactionStatus::Committed]);
    assert_eq!(child.log().matches(COMPLETED).count(), 1, "{}", child.log());
    let (status, log) = child.terminate().await;
    assert!(status.success(), "{status}:\n{log}");
    assert_eq!(env.statuses(OUT), [TransactionStatus::Committed]);
}

#[tokio::test]
async fn after_success_exit_exits_at_once() {
    let env = orders_env().await;
    let mut child = LoggedChild::spawn(
        example()
            .envs(&env.vars)
            .env("CMOD_PIPELINE_AFTER_SUCCESS", "exit"),
    );
    let status = child.wait().await;
    assert!(status.success(), "{status}:\n{}", child.log());
    assert_eq!(env.statuses(OUT), [TransactionStatus::Committed]);
    assert!(!child.log().contains(COMPLETED), "{}", child.log());
}

#[tokio::test]
async fn an_invalid_after_success_value_is_a_startup_error() {
    let env = orders_env().await;
    let mut child = LoggedChild::spawn(
        example()
            .envs(&env.vars)
            .env("CMOD_PIPELINE_AFTER_SUCCESS", "forever"),
    );
    let status = child.wait().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!status.success());
    let text = child.log();
    assert!(
        text.contains("CMOD_PIPELINE_AFTER_SUCCESS") && text.contains("forever"),
        "{text}"
    );
    // Nothing ran.
    assert!(env.statuses(OUT).is_empty(), "{:?}", env.statuses(OUT));
}

#[tokio::test]
async fn a_failed_pipeline_aborts_and_exits_non_zero_instead_of_staying_alive() {
    let env = env_with(DataOptions::default(), None, ("orders", "totals")).await;
    env.data()
        .put_file(
            IN,
            "master",
            "bad.csv",
            b"region,product,quantity\nwest,apples\n",
        )
        .unwrap();
    let mut child = LoggedChild::spawn(example().envs(&env.vars));
    let status = child.wait().await;
    assert!(!status.success(), "{}", child.log());
    assert_eq!(env.statuses(OUT), [TransactionStatus::Aborted]);
    assert!(!child.log().contains(COMPLETED), "{}", child.log());
}

#[tokio::test]
async fn with_functions_variables_the_replica_answers_jobs_with_an_error() {
    let ca = std::sync::Arc::new(cmod_local::tls::LocalCa::generate("replica test CA").unwrap());
    let runtime = LocalRuntime::start(LocalRuntimeOptions {
        ca: Some(ca.clone()),
        ..LocalRuntimeOptions::default()
    })
    .await
    .unwrap();
    let env = env_with(DataOptions::default(), Some(ca), ("orders", "totals")).await;
    seed_orders(&env);
    let mut vars = env.vars.clone();
    vars.extend(runtime.env());
    let mut child = LoggedChild::spawn(example().envs(&vars));
    child.wait_log(COMPLETED).await;
    for _ in 0..2 {
        let job = runtime.enqueue("add", serde_json::json!({"a": 1}));
        let result = runtime.wait_result(&job, LIMIT).await.unwrap();
        let body = result.json().unwrap();
        assert_eq!(body["error"]["kind"], "UnknownFunction", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("pipeline mode") && message.contains("`add`"),
            "{body}"
        );
    }
    assert!(child.child.try_wait().unwrap().is_none(), "{}", child.log());
    assert_eq!(env.statuses(OUT), [TransactionStatus::Committed]);
    let (status, log) = child.terminate().await;
    assert!(status.success(), "{status}:\n{log}");
}

// ---- build token rotation (in process) ------------------------------------------------------

static ROTATE_STARTED: Notify = Notify::const_new();
static ROTATE_GO: Notify = Notify::const_new();

/// Opens its handles (the output transaction with the first token), waits for the test to
/// rotate the token, then reads, writes and returns (so the commit uses the new token).
#[pipeline(input = "raw", output = "copy")]
async fn copy_across_rotation(raw: DatasetInput, copy: DatasetOutput) -> Result<(), PipelineError> {
    ROTATE_STARTED.notify_one();
    let _ = tokio::time::timeout(LIMIT, ROTATE_GO.notified()).await;
    copy_files(&raw, &copy).await
}

#[tokio::test]
async fn a_token_rotated_mid_run_is_used_for_reads_writes_and_the_commit() {
    let env = copy_env(DataOptions::default()).await;
    env.data().put_file(IN, "master", "a.csv", b"1\n").unwrap();
    let token_file = env.vars["BUILD2_TOKEN"].clone();
    let before = std::fs::read_to_string(&token_file).unwrap();
    let control = async {
        tokio::time::timeout(LIMIT, ROTATE_STARTED.notified())
            .await
            .unwrap();
        env.foundry.rotate_build_token(&env.env).unwrap();
        ROTATE_GO.notify_one();
    };
    let (result, ()) = tokio::join!(
        run(cmod_runtime::pipeline_def!(copy_across_rotation), &env),
        control
    );
    assert_ne!(std::fs::read_to_string(&token_file).unwrap(), before);
    let statuses = env.statuses(OUT);
    if let Err(e) = &result {
        panic!("the run failed: {e}; output transactions: {statuses:?}");
    }
    assert_eq!(env.statuses(OUT), [TransactionStatus::Committed]);
    assert_eq!(
        env.data().read_file(OUT, "master", "a.csv").unwrap(),
        b"1\n"
    );
}

static REFUSED_STARTED: Notify = Notify::const_new();
static REFUSED_GO: Notify = Notify::const_new();

/// Copies, then waits for the test to revoke every token before returning, so the commit is
/// refused (a function's own errors reach `run` as text; errors of the runtime's own calls
/// keep their variant).
#[pipeline(input = "raw", output = "copy")]
async fn copy_then_commit_after_revocation(
    raw: DatasetInput,
    copy: DatasetOutput,
) -> Result<(), PipelineError> {
    copy_files(&raw, &copy).await?;
    REFUSED_STARTED.notify_one();
    let _ = tokio::time::timeout(LIMIT, REFUSED_GO.notified()).await;
    Ok(())
}

#[tokio::test]
async fn a_token_still_refused_after_rereading_names_the_alias_and_rid() {
    let env = copy_env(DataOptions::default()).await;
    env.data().put_file(IN, "master", "a.csv", b"1\n").unwrap();
    let control = async {
        tokio::time::timeout(LIMIT, REFUSED_STARTED.notified())
            .await
            .unwrap();
        // Revoked, and no new token in the file.
        env.foundry.revoke_all_tokens();
        REFUSED_GO.notify_one();
    };
    let (result, ()) = tokio::join!(
        run(
            cmod_runtime::pipeline_def!(copy_then_commit_after_revocation),
            &env
        ),
        control
    );
    let err = result.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("`copy`") && message.contains(OUT) && message.contains("401"),
        "{message}"
    );
    assert!(message.contains("BUILD2_TOKEN was re-read"), "{message}");
    let cmod_runtime::Error::Pipeline(p) = &err else {
        panic!("not a pipeline error: {err:?}")
    };
    assert!(matches!(**p, PipelineError::TokenRefused { .. }), "{p:?}");
    assert_eq!(p.resource().unwrap().alias, "copy");
    assert_eq!(p.status(), Some(401));
}

// ---- build-system transactions (in process) --------------------------------------------------

#[pipeline(input = "raw", output = "copy")]
async fn copy_all(raw: DatasetInput, copy: DatasetOutput) -> Result<(), PipelineError> {
    copy_files(&raw, &copy).await
}

#[tokio::test]
async fn an_open_transaction_of_another_branch_is_not_reused() {
    let env = copy_env(DataOptions::default()).await;
    // Foundry's own transaction shape: no branch field.
    env.foundry.set_transaction_branch_names(false);
    env.data().put_file(IN, "master", "a.csv", b"1\n").unwrap();
    let other = env
        .data()
        .create_transaction(OUT, "feature/x", TransactionType::Snapshot)
        .await
        .unwrap();
    run(cmod_runtime::pipeline_def!(copy_all), &env)
        .await
        .unwrap();
    // The output's branch got its own committed transaction with the file...
    assert_eq!(
        env.data().read_file(OUT, "master", "a.csv").unwrap(),
        b"1\n"
    );
    let txns = env.data().transactions(OUT).unwrap();
    let mine: Vec<_> = txns.iter().filter(|t| t.branch_name == "master").collect();
    assert_eq!(mine.len(), 1, "{txns:?}");
    assert_eq!(mine[0].status, TransactionStatus::Committed);
    // ...and the other branch's transaction is untouched and still open.
    let other_now = env.data().transaction(OUT, &other.rid).unwrap();
    assert_eq!(other_now.status, TransactionStatus::Open);
    env.data()
        .commit_transaction(OUT, &other.rid)
        .await
        .unwrap();
    assert!(
        env.data().read_file(OUT, "feature/x", "a.csv").is_err(),
        "a file was written into the other branch's transaction"
    );
}

#[tokio::test]
async fn the_build_systems_open_transaction_is_found_without_branch_names() {
    let env = copy_env(DataOptions::default()).await;
    env.foundry.set_transaction_branch_names(false);
    env.data().put_file(IN, "master", "a.csv", b"1\n").unwrap();
    let build = env
        .data()
        .create_transaction(OUT, "master", TransactionType::Snapshot)
        .await
        .unwrap();
    run(cmod_runtime::pipeline_def!(copy_all), &env)
        .await
        .unwrap();
    let txns = env.data().transactions(OUT).unwrap();
    assert_eq!(txns.len(), 1, "{txns:?}");
    assert_eq!(txns[0].rid, build.rid);
    assert_eq!(txns[0].status, TransactionStatus::Open);
}

#[tokio::test]
async fn the_build_systems_open_transaction_is_found_on_a_later_page() {
    // Pages of 2 transactions; the build system's OPEN one is older than 6 others.
    let env = copy_env(DataOptions {
        max_page_size: 2,
        ..DataOptions::default()
    })
    .await;
    env.data().put_file(IN, "master", "a.csv", b"1\n").unwrap();
    let build = env
        .data()
        .create_transaction(OUT, "master", TransactionType::Snapshot)
        .await
        .unwrap();
    for _ in 0..6 {
        let t = env
            .data()
            .create_transaction(OUT, "dev", TransactionType::Append)
            .await
            .unwrap();
        env.data().commit_transaction(OUT, &t.rid).await.unwrap();
    }
    run(cmod_runtime::pipeline_def!(copy_all), &env)
        .await
        .unwrap();
    let build_now = env.data().transaction(OUT, &build.rid).unwrap();
    assert_eq!(build_now.status, TransactionStatus::Open);
    let master: Vec<_> = env
        .data()
        .transactions(OUT)
        .unwrap()
        .into_iter()
        .filter(|t| t.branch_name == "master")
        .collect();
    assert_eq!(master.len(), 1, "{master:?}");
    env.data()
        .commit_transaction(OUT, &build.rid)
        .await
        .unwrap();
    assert_eq!(
        env.data().read_file(OUT, "master", "a.csv").unwrap(),
        b"1\n"
    );
}

#[tokio::test]
async fn paging_without_branch_names_skips_other_branches_and_finds_the_right_one() {
    let env = copy_env(DataOptions {
        max_page_size: 2,
        ..DataOptions::default()
    })
    .await;
    env.foundry.set_transaction_branch_names(false);
    env.data().put_file(IN, "master", "a.csv", b"1\n").unwrap();
    let build = env
        .data()
        .create_transaction(OUT, "master", TransactionType::Snapshot)
        .await
        .unwrap();
    for _ in 0..5 {
        let t = env
            .data()
            .create_transaction(OUT, "dev", TransactionType::Append)
            .await
            .unwrap();
        env.data().commit_transaction(OUT, &t.rid).await.unwrap();
    }
    // The newest transaction: OPEN, on another branch, on the first page.
    let other = env
        .data()
        .create_transaction(OUT, "feature", TransactionType::Snapshot)
        .await
        .unwrap();
    run(cmod_runtime::pipeline_def!(copy_all), &env)
        .await
        .unwrap();
    assert_eq!(env.data().transactions(OUT).unwrap().len(), 7);
    assert_eq!(
        env.data().transaction(OUT, &build.rid).unwrap().status,
        TransactionStatus::Open
    );
    assert_eq!(
        env.data().transaction(OUT, &other.rid).unwrap().status,
        TransactionStatus::Open
    );
    env.data()
        .commit_transaction(OUT, &build.rid)
        .await
        .unwrap();
    env.data()
        .commit_transaction(OUT, &other.rid)
        .await
        .unwrap();
    assert_eq!(
        env.data().read_file(OUT, "master", "a.csv").unwrap(),
        b"1\n"
    );
    assert!(env.data().read_file(OUT, "feature", "a.csv").is_err());
}
