//! Pipeline mode end to end: the real pipeline client (alias map, build token, service
//! discovery, TLS with the generated CA) against the local Foundry's dataset, stream and
//! media-set endpoints.
//!
//! Two kinds of tests:
//! * in-process: pipelines defined below, run with `run_pipeline_with` and an explicit
//!   environment (no process-global state);
//! * child processes: the `pipeline-datasets` / `pipeline-streams` examples (built from their
//!   sources as `example-pipeline-*` binaries of this crate), run with the variables Foundry
//!   would set, for exit codes, SIGTERM and peak memory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use cmod_tests::log_capture::{self, Captured};
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cmod_local::foundry::{
    DataOptions, LocalFoundry, PipelineResource, ResourceKind, TokenGrant, TransactionStatus,
    TransactionType,
};
use cmod_runtime::auth::Credentials;
use cmod_runtime::foundry::FoundryClient;
use cmod_runtime::pipeline::{PipelineError, run_pipeline_with};
use cmod_runtime::{
    DatasetInput, DatasetOutput, MediaSetInput, MediaSetOutput, Secret, StreamOutput, pipeline,
};
use serde_json::{Value, json};

const IN: &str = "ri.foundry.main.dataset.in";
const OUT: &str = "ri.foundry.main.dataset.out";
/// Every wait in this file is bounded by this.
const LIMIT: Duration = Duration::from_secs(120);

struct Env {
    foundry: LocalFoundry,
    _dir: tempfile::TempDir,
    vars: HashMap<String, String>,
}

impl Env {
    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |k| self.vars.get(k).cloned()
    }

    fn data(&self) -> &cmod_local::foundry::DataStore {
        self.foundry.data()
    }

    /// Statuses of the dataset's transactions, newest first.
    fn statuses(&self, rid: &str) -> Vec<TransactionStatus> {
        cmod_tests::foundry::statuses(self.data(), rid)
    }
}

async fn foundry(data: DataOptions) -> (LocalFoundry, tempfile::TempDir) {
    cmod_tests::foundry::start(data, None).await
}

/// A local Foundry with the given resources and the pipeline variables for them.
async fn env_with(data: DataOptions, resources: &[(&str, &str, ResourceKind)]) -> Env {
    let (foundry, dir) = foundry(data).await;
    let resources: Vec<PipelineResource> = resources
        .iter()
        .map(|(alias, rid, kind)| {
            match kind {
                ResourceKind::Dataset => foundry.data().create_dataset(rid).unwrap(),
                ResourceKind::Stream => foundry.data().create_stream(rid).unwrap(),
                ResourceKind::MediaSet => foundry.data().create_media_set(rid, true).unwrap(),
            }
            PipelineResource::new(*alias, *rid, *kind)
        })
        .collect();
    let vars = foundry
        .pipeline_env(&resources)
        .unwrap()
        .into_iter()
        .collect();
    Env {
        foundry,
        _dir: dir,
        vars,
    }
}

async fn datasets_env(data: DataOptions) -> Env {
    env_with(
        data,
        &[
            ("raw", IN, ResourceKind::Dataset),
            ("copy", OUT, ResourceKind::Dataset),
        ],
    )
    .await
}

async fn run(
    def: &'static cmod_runtime::pipeline::PipelineDef,
    env: &Env,
) -> Result<(), cmod_runtime::Error> {
    tokio::time::timeout(
        LIMIT,
        run_pipeline_with(def, &env.lookup(), std::future::pending()),
    )
    .await
    .expect("the pipeline did not finish in time")
}

/// Captures what this thread logs at INFO and above, as the SLS lines the module prints in
/// Foundry. `#[tokio::test]` runs on a current-thread runtime, so the pipeline and the local
/// Foundry log on this thread (see `cmod_tests::log_capture`).
fn capture_sls() -> Captured {
    use tracing_subscriber::layer::SubscriberExt as _;
    log_capture::capture(|| {
        tracing_subscriber::registry()
            .with(cmod_runtime::logging::SlsLayer::new(
                || log_capture::ThreadWriter,
                None,
            ))
            .with(tracing_subscriber::filter::LevelFilter::INFO)
    })
}

/// Every line of `text` as an SLS record; fails on a line that is not one.
fn sls_records(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let record: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not an SLS JSON line ({e}): {line}"));
            assert_eq!(record["type"], "service.1", "{line}");
            assert!(record["params"].is_object(), "{line}");
            record
        })
        .collect()
}

/// Whether `records` has an `ERROR` record with these `params`, whose `error` (in
/// `unsafeParams`: its text is not known to be safe) contains `error_contains`.
fn has_error_record(records: &[Value], params: &[(&str, &str)], error_contains: &str) -> bool {
    records.iter().any(|r| {
        r["level"] == "ERROR"
            && params.iter().all(|(k, v)| r["params"][*k] == *v)
            && r["unsafeParams"]["error"]
                .as_str()
                .is_some_and(|e| e.contains(error_contains))
    })
}

// ---- in-process pipelines --------------------------------------------------------------------

/// Copies every file, streaming both ways (download chunks → `FileWriter`).
#[pipeline(input = "raw", output = "copy")]
async fn copy_all(raw: DatasetInput, copy: DatasetOutput) -> Result<(), PipelineError> {
    for f in raw.list_files(None).await? {
        let mut reader = raw.open(&f.path).await?;
        let mut writer = copy.create(&f.path);
        while let Some(chunk) = reader.chunk().await? {
            writer.write(&chunk).await?;
        }
        writer.finish().await?;
    }
    Ok(())
}

/// Writes the listing of all files and of the `a/` prefix.
#[pipeline(input = "raw", output = "copy")]
async fn write_listing(raw: DatasetInput, copy: DatasetOutput) -> Result<(), PipelineError> {
    let all: Vec<String> = raw
        .list_files(None)
        .await?
        .into_iter()
        .map(|f| f.path)
        .collect();
    let a: Vec<String> = raw
        .list_files(Some("a/"))
        .await?
        .into_iter()
        .map(|f| f.path)
        .collect();
    copy.write("all.txt", all.join("\n")).await?;
    copy.write("a.txt", a.join("\n")).await?;
    Ok(())
}

/// Starts a file and drops the writer without finishing it.
#[pipeline(input = "raw", output = "copy")]
async fn drops_writer(raw: DatasetInput, copy: DatasetOutput) -> Result<(), PipelineError> {
    raw.list_files(None).await?;
    let mut w = copy.create("partial.csv");
    w.write(b"half a file").await?;
    drop(w);
    Ok(())
}

/// Writes a file, then fails.
#[pipeline(input = "raw", output = "copy")]
async fn fails_after_writing(_raw: DatasetInput, copy: DatasetOutput) -> Result<(), String> {
    copy.write("written.csv", "a,b\n")
        .await
        .map_err(|e| e.to_string())?;
    Err("something went wrong after writing".to_owned())
}

/// Writes a file, then panics.
#[pipeline(input = "raw", output = "copy")]
async fn panics_after_writing(
    _raw: DatasetInput,
    copy: DatasetOutput,
) -> Result<(), PipelineError> {
    copy.write("written.csv", "a,b\n").await?;
    panic!("planted panic after writing");
}

/// Publishes 2500 records (three `publishRecords` batches) to `events` and writes two files to
/// `copy`.
#[pipeline(input = "raw", output = "copy", output = "events")]
async fn publish_and_upload(
    _raw: DatasetInput,
    copy: DatasetOutput,
    events: StreamOutput<Value>,
) -> Result<(), PipelineError> {
    events.publish(&event_records()).await?;
    copy.write("a.csv", "1\n").await?;
    copy.write("dir/b.csv", "2\n").await?;
    Ok(())
}

/// Writes one file to each of two dataset outputs.
#[pipeline(input = "raw", output = "copy", output = "copy2")]
async fn writes_two_outputs(
    _raw: DatasetInput,
    copy: DatasetOutput,
    copy2: DatasetOutput,
) -> Result<(), PipelineError> {
    copy.write("one.csv", "1\n").await?;
    copy2.write("two.csv", "2\n").await?;
    Ok(())
}

fn event_records() -> Vec<Value> {
    (0..2500).map(|i| json!({"i": i})).collect()
}

/// Copies `a.png` reversed into the output media set.
#[pipeline(input = "images", output = "flipped")]
async fn flip_image(images: MediaSetInput, flipped: MediaSetOutput) -> Result<(), String> {
    let bytes = images
        .read_path("a.png")
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no item a.png")?;
    let reversed: Vec<u8> = bytes.iter().rev().copied().collect();
    flipped
        .upload("flipped/a.png", reversed)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes how many files `orders` has.
#[pipeline(input = "orders", output = "totals")]
async fn count_files(orders: DatasetInput, totals: DatasetOutput) -> Result<(), PipelineError> {
    let n = orders.list_files(None).await?.len();
    totals.write("count.txt", n.to_string()).await?;
    Ok(())
}

// ---- in-process tests ------------------------------------------------------------------------

#[tokio::test]
async fn streamed_copy_commits_the_output_exactly_once() {
    let env = datasets_env(DataOptions::default()).await;
    // 3 MiB + a bit: several download and upload chunks.
    let big: Vec<u8> = (0..(3 * 1024 * 1024 + 7))
        .map(|i| (i % 251) as u8)
        .collect();
    env.data().put_file(IN, "master", "big.bin", &big).unwrap();
    env.data()
        .put_file(IN, "master", "dir/with space/ü.csv", b"x,y\n")
        .unwrap();
    run(cmod_runtime::pipeline_def!(copy_all), &env)
        .await
        .unwrap();

    assert_eq!(env.data().read_file(OUT, "master", "big.bin").unwrap(), big);
    assert_eq!(
        env.data()
            .read_file(OUT, "master", "dir/with space/ü.csv")
            .unwrap(),
        b"x,y\n"
    );
    assert_eq!(env.statuses(OUT), [TransactionStatus::Committed]);
    let t = &env.data().transactions(OUT).unwrap()[0];
    assert_eq!(t.transaction_type, TransactionType::Snapshot);
}

#[tokio::test]
async fn listing_follows_pages_and_prefixes() {
    let env = datasets_env(DataOptions {
        max_page_size: 2,
        ..DataOptions::default()
    })
    .await;
    for p in ["a/1.csv", "a/2.csv", "a/3.csv", "b.csv", "c/d.csv"] {
        env.data().put_file(IN, "master", p, b"1").unwrap();
    }
    run(cmod_runtime::pipeline_def!(write_listing), &env)
        .await
        .unwrap();
    let all = String::from_utf8(env.data().read_file(OUT, "master", "all.txt").unwrap()).unwrap();
    assert_eq!(all, "a/1.csv\na/2.csv\na/3.csv\nb.csv\nc/d.csv");
    let a = String::from_utf8(env.data().read_file(OUT, "master", "a.txt").unwrap()).unwrap();
    assert_eq!(a, "a/1.csv\na/2.csv\na/3.csv");
}

#[tokio::test]
async fn falls_back_to_legacy_endpoints_without_the_public_api() {
    let env = datasets_env(DataOptions {
        public_dataset_reads: false,
        max_page_size: 2,
        ..DataOptions::default()
    })
    .await;
    for p in ["a.csv", "b.csv", "c.csv"] {
        env.data().put_file(IN, "master", p, p.as_bytes()).unwrap();
    }
    run(cmod_runtime::pipeline_def!(copy_all), &env)
        .await
        .unwrap();
    for p in ["a.csv", "b.csv", "c.csv"] {
        assert_eq!(
            env.data().read_file(OUT, "master", p).unwrap(),
            p.as_bytes()
        );
    }
    assert_eq!(env.statuses(OUT), [TransactionStatus::Committed]);
}

#[tokio::test]
async fn a_user_error_aborts_the_output() {
    let env = datasets_env(DataOptions::default()).await;
    env.data()
        .put_file(OUT, "master", "old.csv", b"old")
        .unwrap();
    let err = run(cmod_runtime::pipeline_def!(fails_after_writing), &env)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("fails_after_writing") && msg.contains("something went wrong"),
        "{msg}"
    );
    assert_eq!(env.statuses(OUT), [TransactionStatus::Aborted]);
    assert_eq!(
        env.data().read_file(OUT, "master", "old.csv").unwrap(),
        b"old"
    );
    assert!(env.data().read_file(OUT, "master", "written.csv").is_err());
}

#[tokio::test]
async fn a_panicking_pipeline_aborts_its_output_and_logs_the_error() {
    let logs = capture_sls();
    let env = datasets_env(DataOptions::default()).await;
    env.data()
        .put_file(OUT, "master", "old.csv", b"old")
        .unwrap();
    let err = run(cmod_runtime::pipeline_def!(panics_after_writing), &env)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, cmod_runtime::Error::Pipeline(e) if matches!(**e, PipelineError::Panicked { .. })),
        "{err:?}"
    );
    assert!(
        msg.contains("`panics_after_writing` panicked")
            && msg.contains("planted panic after writing"),
        "{msg}"
    );
    // The output transaction was opened, written to, and aborted: nothing committed.
    assert_eq!(env.statuses(OUT), [TransactionStatus::Aborted]);
    assert_eq!(
        env.data().read_file(OUT, "master", "old.csv").unwrap(),
        b"old"
    );
    assert!(env.data().read_file(OUT, "master", "written.csv").is_err());
    // Logged at ERROR with the pipeline, alias and RID of the aborted output.
    let records = sls_records(&logs.text());
    assert!(
        has_error_record(
            &records,
            &[
                ("pipeline", "panics_after_writing"),
                ("alias", "copy"),
                ("rid", OUT)
            ],
            "planted panic after writing"
        ),
        "{records:#?}"
    );
}

#[tokio::test]
async fn transient_503s_on_publish_and_upload_are_retried_and_land_once() {
    let events = "ri.foundry.main.dataset.events";
    let env = env_with(
        DataOptions::default(),
        &[
            ("raw", IN, ResourceKind::Dataset),
            ("copy", OUT, ResourceKind::Dataset),
            ("events", events, ResourceKind::Stream),
        ],
    )
    .await;
    env.foundry.fail_next_requests_to("/publishRecords", 2, 503);
    env.foundry
        .fail_next_requests_to("/files/a.csv/upload", 2, 503);
    run(cmod_runtime::pipeline_def!(publish_and_upload), &env)
        .await
        .unwrap();
    // Every injected fault was hit (so each call was retried past two 503s)…
    assert_eq!(env.foundry.stats().injected_faults, 4);
    // …and every record and file is there exactly once.
    assert_eq!(
        env.data().records(events, "master").unwrap(),
        event_records()
    );
    let files: Vec<String> = env
        .data()
        .list_files(OUT, "master", None, None, None)
        .unwrap()
        .items
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(files, ["a.csv", "dir/b.csv"]);
    assert_eq!(
        env.data().read_file(OUT, "master", "a.csv").unwrap(),
        b"1\n"
    );
    assert_eq!(
        env.data().read_file(OUT, "master", "dir/b.csv").unwrap(),
        b"2\n"
    );
    assert_eq!(env.statuses(OUT), [TransactionStatus::Committed]);
}

#[tokio::test]
async fn a_failed_second_commit_leaves_the_first_committed_and_says_so() {
    // The behaviour the module docs describe under "Several outputs: commits are not atomic".
    let logs = capture_sls();
    let out2 = "ri.foundry.main.dataset.out2";
    let env = env_with(
        DataOptions::default(),
        &[
            ("raw", IN, ResourceKind::Dataset),
            ("copy", OUT, ResourceKind::Dataset),
            ("copy2", out2, ResourceKind::Dataset),
        ],
    )
    .await;
    // Every attempt (1 + 4 retries) to commit `copy2`'s transaction gets a 503; its abort then
    // goes through.
    env.foundry
        .fail_next_requests_to("dataset.out2/transactions/ri.", 5, 503);
    let err = run(cmod_runtime::pipeline_def!(writes_two_outputs), &env)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, cmod_runtime::Error::Pipeline(e)
            if matches!(**e, PipelineError::PartiallyCommitted { .. })),
        "{err:?}"
    );
    assert!(
        msg.contains("`copy2`") && msg.contains("503") && msg.contains("stay committed"),
        "{msg}"
    );
    assert!(msg.contains(&format!("`copy` ({OUT}")), "{msg}");
    assert_eq!(env.foundry.stats().injected_faults, 5);
    // The first output stays committed; the second was aborted.
    assert_eq!(env.statuses(OUT), [TransactionStatus::Committed]);
    assert_eq!(
        env.data().read_file(OUT, "master", "one.csv").unwrap(),
        b"1\n"
    );
    assert_eq!(env.statuses(out2), [TransactionStatus::Aborted]);
    assert!(env.data().read_file(out2, "master", "two.csv").is_err());
    let records = sls_records(&logs.text());
    assert!(
        has_error_record(
            &records,
            &[
                ("pipeline", "writes_two_outputs"),
                ("alias", "copy2"),
                ("rid", out2)
            ],
            "503"
        ),
        "{records:#?}"
    );
}

#[tokio::test]
async fn an_unfinished_writer_aborts_instead_of_committing() {
    let env = datasets_env(DataOptions::default()).await;
    let err = run(cmod_runtime::pipeline_def!(drops_writer), &env)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`copy`") && msg.contains(OUT) && msg.contains("finish()"),
        "{msg}"
    );
    assert_eq!(env.statuses(OUT), [TransactionStatus::Aborted]);
    assert!(env.data().read_file(OUT, "master", "partial.csv").is_err());
}

#[tokio::test]
async fn the_build_systems_open_transaction_is_reused_and_left_open() {
    let env = datasets_env(DataOptions::default()).await;
    env.data()
        .put_file(IN, "master", "f.csv", b"1,2\n")
        .unwrap();
    let build = env
        .data()
        .create_transaction(OUT, "master", TransactionType::Snapshot)
        .await
        .unwrap();
    run(cmod_runtime::pipeline_def!(copy_all), &env)
        .await
        .unwrap();
    // Uploaded into the build system's transaction, which stays open for it to commit.
    let txns = env.data().transactions(OUT).unwrap();
    assert_eq!(txns.len(), 1);
    assert_eq!(txns[0].rid, build.rid);
    assert_eq!(txns[0].status, TransactionStatus::Open);
    env.data()
        .commit_transaction(OUT, &build.rid)
        .await
        .unwrap();
    assert_eq!(
        env.data().read_file(OUT, "master", "f.csv").unwrap(),
        b"1,2\n"
    );
}

#[tokio::test]
async fn a_resource_outside_the_alias_map_is_refused() {
    let env = datasets_env(DataOptions::default()).await;
    // A dataset that exists but is not among the token's resources.
    let other = "ri.foundry.main.dataset.not-configured";
    env.data()
        .put_file(other, "master", "secret.csv", b"s")
        .unwrap();

    // The server refuses the build token for it (and accepts it for a configured input)…
    let token = std::fs::read_to_string(&env.vars["BUILD2_TOKEN"]).unwrap();
    let client = FoundryClient::builder()
        .credentials(Credentials::Pipeline(Secret::new(token.trim())))
        .build_from_lookup(&env.lookup())
        .unwrap();
    let refused = client
        .get(format!("/v2/datasets/{other}/files"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    client
        .get(format!("/v2/datasets/{IN}/files"))
        .send()
        .await
        .unwrap();

    // …and a module whose alias map points an alias at it fails at startup, naming it.
    let map = env._dir.path().join("other-map.json");
    std::fs::write(
        &map,
        format!(r#"{{"raw": {{"rid": "{other}"}}, "copy": {{"rid": "{OUT}"}}}}"#),
    )
    .unwrap();
    let mut vars = env.vars.clone();
    vars.insert("RESOURCE_ALIAS_MAP".into(), map.display().to_string());
    let lookup = move |k: &str| vars.get(k).cloned();
    let err = tokio::time::timeout(
        LIMIT,
        run_pipeline_with(
            cmod_runtime::pipeline_def!(copy_all),
            &lookup,
            std::future::pending(),
        ),
    )
    .await
    .unwrap()
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`raw`") && msg.contains(other) && msg.contains("403"),
        "{msg}"
    );
    assert!(msg.contains("BUILD2_TOKEN"), "{msg}");
    assert!(
        !env.statuses(OUT).contains(&TransactionStatus::Committed),
        "nothing may be committed"
    );
}

#[tokio::test]
async fn media_items_are_read_and_uploaded_in_a_committed_transaction() {
    let images = "ri.mio.main.media-set.images";
    let flipped = "ri.mio.main.media-set.flipped";
    let env = env_with(
        DataOptions::default(),
        &[
            ("images", images, ResourceKind::MediaSet),
            ("flipped", flipped, ResourceKind::MediaSet),
        ],
    )
    .await;
    env.data()
        .put_media_item(images, "master", "a.png", b"\x89PNG-data")
        .unwrap();
    run(cmod_runtime::pipeline_def!(flip_image), &env)
        .await
        .unwrap();
    let item = env
        .data()
        .media_item_by_path(flipped, "master", "flipped/a.png")
        .unwrap();
    let file = env.data().media_item_location(flipped, &item).unwrap();
    assert_eq!(std::fs::read(file).unwrap(), b"atad-GNP\x89");
    let txns = env.data().media_transactions(flipped).unwrap();
    assert_eq!(txns.len(), 1);
    assert_eq!(txns[0].status, TransactionStatus::Committed);
}

#[tokio::test]
async fn bad_environments_fail_at_startup_naming_the_variable_file_or_alias() {
    let env = datasets_env(DataOptions::default()).await;
    let def = cmod_runtime::pipeline_def!(copy_all);
    let dir = env._dir.path();
    let with = |key: &str, value: String| {
        let mut vars = env.vars.clone();
        vars.insert(key.to_owned(), value);
        vars
    };
    let run_with = |vars: HashMap<String, String>| async move {
        let lookup = move |k: &str| vars.get(k).cloned();
        tokio::time::timeout(
            LIMIT,
            run_pipeline_with(def, &lookup, std::future::pending()),
        )
        .await
        .unwrap()
        .unwrap_err()
        .to_string()
    };

    // Malformed alias map JSON.
    let bad = dir.join("bad-map.json");
    std::fs::write(&bad, r#"{"raw": {"rid": "x"}, "copy": }"#).unwrap();
    let msg = run_with(with("RESOURCE_ALIAS_MAP", bad.display().to_string())).await;
    assert!(
        msg.contains("RESOURCE_ALIAS_MAP") && msg.contains(&bad.display().to_string()),
        "{msg}"
    );

    // Missing token file.
    let missing = dir.join("no-such-token");
    let msg = run_with(with("BUILD2_TOKEN", missing.display().to_string())).await;
    assert!(
        msg.contains("BUILD2_TOKEN") && msg.contains(&missing.display().to_string()),
        "{msg}"
    );

    // An alias typo: the map has `copies`, the pipeline declares `copy`.
    let typo = dir.join("typo-map.json");
    std::fs::write(
        &typo,
        format!(r#"{{"raw": {{"rid": "{IN}"}}, "copies": {{"rid": "{OUT}"}}}}"#),
    )
    .unwrap();
    let msg = run_with(with("RESOURCE_ALIAS_MAP", typo.display().to_string())).await;
    assert!(
        msg.contains("`copy`") && msg.contains("`copies`") && msg.contains("`raw`"),
        "{msg}"
    );
    assert!(msg.contains(&typo.display().to_string()), "{msg}");
    assert!(env.data().transactions(OUT).unwrap().is_empty());
}

#[tokio::test]
async fn local_mode_maps_missing_aliases_to_new_resources() {
    // What `CMOD_LOCAL=1` does for a pipeline: a local Foundry on a data directory, with
    // `aliases.json` completed for aliases it does not map yet.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aliases.json"),
        r#"{"orders": {"rid": "ri.foundry.main.dataset.my-orders"}}"#,
    )
    .unwrap();
    let def = cmod_runtime::pipeline_def!(count_files);
    let local = cmod_runtime::testing::start_local_pipeline(def, dir.path().to_owned())
        .await
        .unwrap();
    let store = local.foundry.data();
    for p in ["a.csv", "b.csv"] {
        store
            .put_file("ri.foundry.main.dataset.my-orders", "master", p, b"1")
            .unwrap();
    }
    let vars: HashMap<String, String> = local.env.iter().cloned().collect();
    let lookup = move |k: &str| vars.get(k).cloned();
    tokio::time::timeout(
        LIMIT,
        run_pipeline_with(def, &lookup, std::future::pending()),
    )
    .await
    .unwrap()
    .unwrap();
    let out = "ri.foundry.main.dataset.totals";
    assert_eq!(store.read_file(out, "master", "count.txt").unwrap(), b"2");
    let aliases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("aliases.json")).unwrap()).unwrap();
    assert_eq!(aliases["totals"]["rid"], out);
    assert_eq!(
        aliases["orders"]["rid"],
        "ri.foundry.main.dataset.my-orders"
    );
    local.foundry.shutdown().await;
}

// ---- the examples as child processes ---------------------------------------------------------

fn example(name: &str) -> tokio::process::Command {
    let bin = match name {
        "datasets" => env!("CARGO_BIN_EXE_example-pipeline-datasets"),
        _ => env!("CARGO_BIN_EXE_example-pipeline-streams"),
    };
    let mut cmd = tokio::process::Command::new(bin);
    cmd.env_clear()
        // These tests wait for the process to end: exit once the pipeline completed instead of
        // staying alive as a Foundry replica does (tests/pipeline_replica.rs covers that).
        .env("CMOD_PIPELINE_AFTER_SUCCESS", "exit")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn orders_env(data: DataOptions) -> Env {
    env_with(
        data,
        &[
            ("orders", IN, ResourceKind::Dataset),
            ("totals", OUT, ResourceKind::Dataset),
        ],
    )
    .await
}

struct Finished {
    success: bool,
    /// stdout, then stderr.
    output: String,
    /// stdout alone (SLS lines in Foundry mode).
    stdout: String,
}

async fn run_example(name: &str, env: &Env) -> Finished {
    let out = tokio::time::timeout(LIMIT, example(name).envs(&env.vars).output())
        .await
        .expect("the example did not finish in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Finished {
        success: out.status.success(),
        output: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
        stdout,
    }
}

#[tokio::test]
async fn datasets_example_commits_the_totals_once() {
    let env = orders_env(DataOptions::default()).await;
    env.data()
        .put_file(
            IN,
            "master",
            "2024/jan.csv",
            b"region,product,quantity\nwest,apples,3\neast,pears,1\n",
        )
        .unwrap();
    env.data()
        .put_file(
            IN,
            "master",
            "2024/feb.csv",
            b"region,product,quantity\r\nwest,plums,4\r\n",
        )
        .unwrap();
    env.data()
        .put_file(IN, "master", "README.txt", b"not a csv")
        .unwrap();
    let done = run_example("datasets", &env).await;
    assert!(done.success, "{}", done.output);
    let totals = env.data().read_file(OUT, "master", "totals.csv").unwrap();
    assert_eq!(
        String::from_utf8(totals).unwrap(),
        "region,orders,quantity\neast,1,1\nwest,2,7\n"
    );
    assert_eq!(env.statuses(OUT), [TransactionStatus::Committed]);
}

#[tokio::test]
async fn datasets_example_failure_aborts_and_exits_non_zero() {
    let env = orders_env(DataOptions::default()).await;
    env.data()
        .put_file(
            IN,
            "master",
            "orders.csv",
            b"region,product,quantity\nwest,apples,3\neast,pears,many\n",
        )
        .unwrap();
    let done = run_example("datasets", &env).await;
    assert!(!done.success, "{}", done.output);
    assert!(
        done.output.contains("orders.csv:3") && done.output.contains("`many`"),
        "{}",
        done.output
    );
    assert_eq!(env.statuses(OUT), [TransactionStatus::Aborted]);
    assert!(env.data().read_file(OUT, "master", "totals.csv").is_err());
    // Run with the variables Foundry sets (no CMOD_LOCAL), the module logs SLS JSON lines on
    // stdout; the failure is logged at ERROR with the pipeline, alias and RID of the output.
    let records = sls_records(&done.stdout);
    assert!(
        has_error_record(
            &records,
            &[("pipeline", "aggregate"), ("alias", "totals"), ("rid", OUT)],
            "orders.csv:3"
        ),
        "{}",
        done.stdout
    );
    assert!(
        has_error_record(&records, &[("pipeline", "aggregate")], "`many`"),
        "{}",
        done.stdout
    );
}

#[tokio::test]
async fn datasets_example_alias_typo_is_a_clear_startup_error() {
    let (foundry, dir) = foundry(DataOptions::default()).await;
    foundry.data().create_dataset(IN).unwrap();
    foundry.data().create_dataset(OUT).unwrap();
    let vars = foundry
        .pipeline_env(&[
            PipelineResource::new("order", IN, ResourceKind::Dataset),
            PipelineResource::new("totals", OUT, ResourceKind::Dataset),
        ])
        .unwrap()
        .into_iter()
        .collect();
    let env = Env {
        foundry,
        _dir: dir,
        vars,
    };
    let done = run_example("datasets", &env).await;
    assert!(!done.success, "{}", done.output);
    assert!(
        done.output.contains("`orders`")
            && done.output.contains("`order`")
            && done.output.contains("RESOURCE_ALIAS_MAP"),
        "{}",
        done.output
    );
    assert!(env.data().transactions(OUT).unwrap().is_empty());
}

#[tokio::test]
async fn datasets_example_sigterm_aborts_the_output() {
    let env = orders_env(DataOptions::default()).await;
    // A named pipe as the input file: the read stays open until this test closes it, so the
    // pipeline is certainly mid-run when it gets SIGTERM.
    let fifo = env
        .data()
        .file_location(IN, "master", "orders.csv")
        .unwrap();
    let fifo_path = fifo.clone();
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (opened, was_opened) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        // Blocks until the local Foundry opens the pipe to serve it.
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        w.write_all(b"region,product,quantity\nwest,apples,3\n")
            .unwrap();
        w.flush().unwrap();
        let _ = opened.send(());
        let _ = released.recv_timeout(LIMIT);
    });

    let mut child = example("datasets").envs(&env.vars).spawn().unwrap();
    let pid = child.id().unwrap();
    // Wait until the output transaction is open and the input is being read.
    let deadline = Instant::now() + LIMIT;
    loop {
        if was_opened.try_recv().is_ok() {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            // Unblock the writer thread before failing.
            let _ = std::fs::File::open(&fifo_path);
            panic!("the pipeline exited ({status}) before reading its input");
        }
        assert!(
            Instant::now() < deadline,
            "the pipeline never started reading"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.statuses(OUT), [TransactionStatus::Open]);
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("the pipeline did not stop after SIGTERM")
        .unwrap();
    let _ = release.send(());
    writer.join().unwrap();
    assert!(!status.success(), "a cancelled pipeline must exit non-zero");
    assert_eq!(env.statuses(OUT), [TransactionStatus::Aborted]);
    assert!(env.data().read_file(OUT, "master", "totals.csv").is_err());
}

/// Peak resident memory of a process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Writes a ~100 MB orders file; returns the expected totals CSV.
fn write_big_orders(path: &Path) -> String {
    let regions = ["north", "south", "east", "west"];
    let mut counts = [(0u64, 0u64); 4];
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    w.write_all(b"region,product,quantity\n").unwrap();
    let mut written = 0usize;
    let mut i = 0usize;
    while written < 100 * 1000 * 1000 {
        let r = i % 4;
        let q = (i % 97) as u64;
        let line = format!("{},product-{},{q}\n", regions[r], i % 1000);
        written += line.len();
        w.write_all(line.as_bytes()).unwrap();
        counts[r].0 += 1;
        counts[r].1 += q;
        i += 1;
    }
    w.flush().unwrap();
    let mut expected = String::from("region,orders,quantity\n");
    let mut sorted: Vec<(usize, &str)> = regions.iter().copied().enumerate().collect();
    sorted.sort_by_key(|(_, r)| *r);
    for (idx, r) in sorted {
        expected.push_str(&format!("{r},{},{}\n", counts[idx].0, counts[idx].1));
    }
    expected
}

#[tokio::test]
async fn datasets_example_processes_100_mb_with_bounded_memory() {
    let env = orders_env(DataOptions::default()).await;
    env.data().put_file(IN, "master", "big.csv", b"").unwrap();
    let path: PathBuf = env.data().file_location(IN, "master", "big.csv").unwrap();
    let expected = tokio::task::spawn_blocking(move || write_big_orders(&path))
        .await
        .unwrap();

    let mut child = example("datasets")
        .envs(&env.vars)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let deadline = Instant::now() + LIMIT;
    let mut peak = 0u64;
    let status = loop {
        if let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the example did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success());
    assert!(peak > 0, "no memory reading of the child");
    eprintln!("peak RSS of the child: {peak} KiB");
    assert!(
        peak < 64 * 1024,
        "peak RSS {} KiB while processing a 100 MB file",
        peak
    );
    let totals = env.data().read_file(OUT, "master", "totals.csv").unwrap();
    assert_eq!(String::from_utf8(totals).unwrap(), expected);
    assert_eq!(env.statuses(OUT), [TransactionStatus::Committed]);
}

#[tokio::test]
async fn streams_example_transforms_every_record() {
    let readings = "ri.foundry.main.dataset.readings";
    let converted = "ri.foundry.main.dataset.converted";
    let env = env_with(
        DataOptions::default(),
        &[
            ("readings", readings, ResourceKind::Stream),
            ("converted", converted, ResourceKind::Stream),
        ],
    )
    .await;
    // More than one read batch (1000) and one publish batch.
    let input: Vec<serde_json::Value> = (0..2500)
        .map(|i| serde_json::json!({"sensor": format!("s{}", i % 7), "celsius": (i % 60) as f64 - 10.0}))
        .collect();
    env.data()
        .append_records(readings, "master", &input)
        .await
        .unwrap();
    let done = run_example("streams", &env).await;
    assert!(done.success, "{}", done.output);
    let out = env.data().records(converted, "master").unwrap();
    assert_eq!(out.len(), input.len());
    for (i, (o, r)) in out.iter().zip(&input).enumerate() {
        let c = r["celsius"].as_f64().unwrap();
        assert_eq!(o["sensor"], r["sensor"], "record {i}");
        assert_eq!(o["celsius"].as_f64(), Some(c), "record {i}");
        assert_eq!(
            o["fahrenheit"].as_f64(),
            Some(c * 9.0 / 5.0 + 32.0),
            "record {i}"
        );
        assert_eq!(o["alert"].as_bool(), Some(c > 30.0), "record {i}");
    }
}

#[tokio::test]
async fn streams_example_refuses_a_stream_outside_the_token() {
    // The token covers the output stream only; the input stream is not in its alias map.
    let (foundry, dir) = foundry(DataOptions::default()).await;
    foundry.data().create_stream("ri.s.in").unwrap();
    foundry.data().create_stream("ri.s.out").unwrap();
    let token = foundry.issue_token(TokenGrant::pipeline(["ri.s.out"]));
    let vars: HashMap<String, String> = foundry
        .pipeline_env(&[
            PipelineResource::new("readings", "ri.s.in", ResourceKind::Stream),
            PipelineResource::new("converted", "ri.s.out", ResourceKind::Stream),
        ])
        .unwrap()
        .into_iter()
        .collect();
    let token_file = dir.path().join("narrow-token");
    std::fs::write(&token_file, token).unwrap();
    let mut vars = vars;
    vars.insert("BUILD2_TOKEN".into(), token_file.display().to_string());
    let env = Env {
        foundry,
        _dir: dir,
        vars,
    };
    let done = run_example("streams", &env).await;
    assert!(!done.success, "{}", done.output);
    assert!(
        done.output.contains("`readings`")
            && done.output.contains("ri.s.in")
            && done.output.contains("403"),
        "{}",
        done.output
    );
}
