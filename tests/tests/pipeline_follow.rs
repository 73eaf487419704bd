//! Followed streams end to end: the `pipeline-follow` example (built from its sources as the
//! `example-pipeline-follow` binary of this crate) as a child process, with the variables
//! Foundry would set, against the local Foundry over TLS.
//!
//! The example follows `events` (`{"id", "user", "action"}`) and publishes each event, enriched,
//! to `enriched`, with the stream subscriber `cmod-enrich-events`. In these tests an event's
//! `id` is its offset, so the output says exactly which records were processed how often.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use cmod_local::foundry::{DataOptions, DataStore, LocalFoundry, PipelineResource, ResourceKind};
use cmod_tests::child::LoggedChild;
use serde_json::{Value, json};

const EVENTS: &str = "ri.foundry.main.dataset.events";
const ENRICHED: &str = "ri.foundry.main.dataset.enriched";
const SUBSCRIBER: &str = "cmod-enrich-events";
/// Every wait in this file is bounded by this.
const LIMIT: Duration = Duration::from_secs(120);

struct Env {
    foundry: LocalFoundry,
    _dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Env {
    async fn new(data: DataOptions) -> Env {
        let (foundry, dir) = cmod_tests::foundry::start(data, None).await;
        foundry.data().create_stream(EVENTS).unwrap();
        foundry.data().create_stream(ENRICHED).unwrap();
        let vars = foundry
            .pipeline_env(&[
                PipelineResource::new("events", EVENTS, ResourceKind::Stream),
                PipelineResource::new("enriched", ENRICHED, ResourceKind::Stream),
            ])
            .unwrap();
        Env {
            foundry,
            _dir: dir,
            vars,
        }
    }

    fn data(&self) -> &DataStore {
        self.foundry.data()
    }

    /// Appends events with ids `ids` through the local Foundry's control call.
    async fn append(&self, ids: std::ops::Range<u64>) {
        let records: Vec<Value> = ids.map(event).collect();
        self.data()
            .append_records(EVENTS, "master", &records)
            .await
            .unwrap();
    }

    /// The ids in the output stream, in order.
    fn output_ids(&self) -> Vec<u64> {
        self.data()
            .records(ENRICHED, "master")
            .unwrap()
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect()
    }

    /// The committed position of the example's subscriber.
    fn committed(&self) -> u64 {
        self.data()
            .subscriber(EVENTS, "master", SUBSCRIBER)
            .unwrap()
            .offsets["0"]
    }

    /// Waits until the output holds at least `n` records.
    async fn wait_output(&self, n: usize, module: &mut Module) {
        let deadline = Instant::now() + LIMIT;
        loop {
            let have = self.output_ids().len();
            if have >= n {
                return;
            }
            if let Some(status) = module.child.try_wait().unwrap() {
                panic!(
                    "the module exited ({status}) with {have} of {n} output records:\n{}",
                    module.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "only {have} of {n} output records in time:\n{}",
                module.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn event(id: u64) -> Value {
    let action = if id.is_multiple_of(3) {
        "purchase"
    } else {
        "login"
    };
    json!({ "id": id, "user": format!("u{}", id % 17), "action": action })
}

/// A running example process; its stdout and stderr are collected.
type Module = LoggedChild;

fn spawn(env: &Env, extra: &[(&str, &str)]) -> Module {
    LoggedChild::spawn(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_example-pipeline-follow"))
            .env_clear()
            .envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied()),
    )
}

/// How many times each id appears.
fn counts(ids: &[u64]) -> BTreeMap<u64, usize> {
    let mut c = BTreeMap::new();
    for id in ids {
        *c.entry(*id).or_insert(0) += 1;
    }
    c
}

#[tokio::test]
async fn a_followed_stream_picks_up_records_appended_after_start_without_busy_polling() {
    let env = Env::new(DataOptions::default()).await;
    env.append(0..3).await;
    let mut module = spawn(&env, &[]);
    env.wait_output(3, &mut module).await;

    // Idle: polling backs off (100 ms doubling to 2 s), it does not spin.
    let before = env.foundry.stats().api_requests;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_requests = env.foundry.stats().api_requests - before;
    assert!(
        idle_requests <= 15,
        "{idle_requests} requests in 3 s of idle following"
    );

    // New records through the local Foundry's control call…
    env.append(3..6).await;
    env.wait_output(6, &mut module).await;
    // …and appended by hand to the stream's file (a line, then one without its newline).
    let file = env.data().stream_location(EVENTS, "master").unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
    writeln!(f, "{}", event(6)).unwrap();
    write!(f, "{}", event(7)).unwrap();
    drop(f);
    env.wait_output(8, &mut module).await;

    let (status, log) = module.terminate().await;
    assert!(status.success(), "SIGTERM must exit 0 ({status}):\n{log}");
    assert_eq!(env.output_ids(), (0..8).collect::<Vec<_>>());
    assert_eq!(env.committed(), 8);
    let out = env.data().records(ENRICHED, "master").unwrap();
    assert_eq!(
        out[0],
        json!({"id": 0, "user": "u0", "action": "purchase", "weight": 10})
    );
    assert!(log.contains("subscriber"), "{log}");
}

#[tokio::test]
async fn a_module_killed_mid_stream_resumes_without_loss_and_at_most_one_batch_twice() {
    const TOTAL: u64 = 20_000;
    const BATCH: u64 = 100;
    let env = Env::new(DataOptions::default()).await;
    env.append(0..TOTAL).await;
    let batch = BATCH.to_string();
    let opts = [("FOLLOW_BATCH_SIZE", batch.as_str())];

    let mut first = spawn(&env, &opts);
    env.wait_output(3000, &mut first).await;
    // Kill it in the window the guarantee is about: a batch's outputs are published and its
    // commit is under way (held back by 503s, which the module retries).
    env.foundry.fail_next_requests_to("/commitOffsets", 3, 503);
    let deadline = Instant::now() + LIMIT;
    while env.foundry.stats().injected_faults == 0 {
        assert!(Instant::now() < deadline, "no commit was attempted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.signal("KILL");
    let status = first.wait().await;
    assert!(!status.success());
    let committed = env.committed();
    let published = env.output_ids().len() as u64;
    eprintln!("killed with {published} records published, {committed} committed");
    // Offsets are committed after the outputs are published, and the next batch is only read
    // after the commit: what was published but not committed is at most one batch.
    assert!(
        committed <= published && published <= committed + BATCH,
        "committed {committed}, published {published}"
    );
    // Here exactly that batch: published, not committed.
    assert_eq!(published, committed + BATCH);

    let mut second = spawn(&env, &opts);
    second.wait_log("following stream").await;
    env.wait_output((TOTAL + published - committed) as usize, &mut second)
        .await;
    let (status, log) = second.terminate().await;
    assert!(status.success(), "{status}:\n{log}");

    let ids = env.output_ids();
    let c = counts(&ids);
    // Nothing missing.
    assert_eq!(c.len() as u64, TOTAL);
    assert_eq!(c.keys().next_back(), Some(&(TOTAL - 1)));
    for (id, n) in &c {
        if *id < committed {
            // Committed before the kill: exactly once.
            assert_eq!(*n, 1, "record {id} (committed) was processed {n} times");
        } else {
            assert!(*n <= 2, "record {id} was processed {n} times");
        }
    }
    let duplicates = ids.len() as u64 - TOTAL;
    assert_eq!(duplicates, published - committed);
    assert!(duplicates <= BATCH);
    assert_eq!(env.committed(), TOTAL);
}

#[tokio::test]
async fn sigterm_mid_stream_exits_0_commits_what_was_published_and_loses_nothing() {
    const TOTAL: u64 = 20_000;
    let env = Env::new(DataOptions::default()).await;
    env.append(0..TOTAL).await;
    let opts = [("FOLLOW_BATCH_SIZE", "100")];

    let mut first = spawn(&env, &opts);
    env.wait_output(2000, &mut first).await;
    let (status, log) = first.terminate().await;
    assert!(status.success(), "SIGTERM must exit 0 ({status}):\n{log}");
    let published = env.output_ids().len() as u64;
    assert_eq!(
        env.committed(),
        published,
        "everything published is committed"
    );
    assert_eq!(env.output_ids(), (0..published).collect::<Vec<_>>());

    // The next replica continues exactly there.
    let mut second = spawn(&env, &opts);
    env.wait_output(TOTAL as usize, &mut second).await;
    let (status, log) = second.terminate().await;
    assert!(status.success(), "{status}:\n{log}");
    assert_eq!(env.output_ids(), (0..TOTAL).collect::<Vec<_>>());
}

#[tokio::test]
async fn without_the_high_scale_api_the_seed_stream_proxy_endpoints_are_used() {
    let env = Env::new(DataOptions {
        high_scale_streams: false,
        ..DataOptions::default()
    })
    .await;
    env.append(0..3).await;
    let mut module = spawn(&env, &[]);
    env.wait_output(3, &mut module).await;
    env.append(3..5).await;
    env.wait_output(5, &mut module).await;
    let (status, log) = module.terminate().await;
    assert!(status.success(), "{status}:\n{log}");
    // Published one by one through `…/jsonRecord` (the high-scale routes answer 404).
    assert_eq!(env.output_ids(), (0..5).collect::<Vec<_>>());
    assert_eq!(
        log.matches("the high-scale streams API is unavailable (HTTP 404)")
            .count(),
        2,
        "one WARN line per handle:\n{log}"
    );
    // The subscriber positions are high-scale routes too: the start position is used.
    assert!(log.contains("stream subscribers are unavailable"), "{log}");
}

#[tokio::test]
async fn without_subscribers_the_chosen_start_position_is_used_and_a_warning_says_so() {
    let env = Env::new(DataOptions {
        stream_subscribers: false,
        ..DataOptions::default()
    })
    .await;
    env.append(0..3).await;

    // `latest`: only what is published after the start.
    let mut module = spawn(&env, &[("FOLLOW_START", "latest")]);
    module.wait_log("following stream").await;
    env.append(3..5).await;
    env.wait_output(2, &mut module).await;
    let (status, log) = module.terminate().await;
    assert!(status.success(), "{status}:\n{log}");
    assert_eq!(env.output_ids(), [3, 4]);
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("stream subscribers are unavailable (HTTP 404)"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(warnings[0].contains("latest"), "{}", warnings[0]);

    // `earliest`: everything, again (nothing was committed).
    let mut module = spawn(&env, &[("FOLLOW_START", "earliest")]);
    env.wait_output(2 + 5, &mut module).await;
    let (status, log) = module.terminate().await;
    assert!(status.success(), "{status}:\n{log}");
    assert_eq!(env.output_ids(), [3, 4, 0, 1, 2, 3, 4]);
    assert!(
        log.lines()
            .any(|l| l.contains("stream subscribers are unavailable") && l.contains("earliest")),
        "{log}"
    );
}

/// Forwards every event, record by record, through the `Stream` interface of a followed input.
#[cmod_runtime::pipeline(input = "events", output = "enriched")]
async fn forward_records(
    events: cmod_runtime::StreamInput<Value>,
    enriched: cmod_runtime::StreamOutput<Value>,
) -> Result<(), cmod_runtime::pipeline::PipelineError> {
    use futures_util::StreamExt as _;
    let mut records = events.follow_with(
        cmod_runtime::pipeline::FollowOptions::new()
            .subscriber("in-process")
            .batch_size(7),
    );
    while let Some(r) = records.next().await {
        enriched.publish_one(&r?.value).await?;
    }
    Ok(())
}

#[tokio::test]
async fn in_process_the_record_stream_ends_on_shutdown_and_the_run_succeeds() {
    let env = Env::new(DataOptions::default()).await;
    env.append(0..50).await;
    let vars: std::collections::HashMap<String, String> = env.vars.iter().cloned().collect();
    let lookup = move |k: &str| vars.get(k).cloned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = cmod_runtime::pipeline::run_pipeline_with(
        cmod_runtime::pipeline_def!(forward_records),
        &lookup,
        async {
            let _ = stopped.await;
        },
    );
    let drive = async {
        let deadline = Instant::now() + LIMIT;
        while env.output_ids().len() < 50 {
            assert!(
                Instant::now() < deadline,
                "the pipeline did not forward in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        env.append(50..60).await;
        while env.output_ids().len() < 60 {
            assert!(
                Instant::now() < deadline,
                "appended records were not forwarded"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop.send(());
    };
    let (result, ()) = tokio::time::timeout(LIMIT, async { tokio::join!(run, drive) })
        .await
        .expect("the pipeline did not stop in time");
    result.expect("a followed pipeline stopped by the shutdown signal succeeds");
    assert_eq!(env.output_ids(), (0..60).collect::<Vec<_>>());
    assert_eq!(
        env.data()
            .subscriber(EVENTS, "master", "in-process")
            .unwrap()
            .offsets["0"],
        60
    );
}

/// Peak resident memory of a process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Pushes 1,000,000 records through a followed stream (half present at start, half appended
/// while it follows) and prints the module's peak RSS. Run with
/// `cargo test -p cmod-tests --release --test pipeline_follow -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "memory benchmark: about 3 minutes in a debug build; figures in BENCHMARKS.md"]
async fn following_a_million_records_keeps_memory_flat() {
    const TOTAL: u64 = 1_000_000;
    let env = Env::new(DataOptions::default()).await;
    let file = env.data().stream_location(EVENTS, "master").unwrap();
    let write = |range: std::ops::Range<u64>| {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .unwrap();
        let mut w = std::io::BufWriter::new(f);
        for id in range {
            serde_json::to_writer(&mut w, &event(id)).unwrap();
            w.write_all(b"\n").unwrap();
        }
        w.flush().unwrap();
    };
    write(0..TOTAL / 2);
    let started = Instant::now();
    let mut module = spawn(&env, &[]);
    let pid = module.child.id().unwrap();
    env.wait_output(100_000, &mut module).await;
    let rss_early = peak_rss_kib(pid).unwrap();
    write(TOTAL / 2..TOTAL);
    let deadline = Instant::now() + Duration::from_secs(600);
    while env.data().end_offset(ENRICHED, "master").unwrap() < TOTAL {
        assert!(Instant::now() < deadline, "not done in 10 minutes");
        assert!(
            module.child.try_wait().unwrap().is_none(),
            "{}",
            module.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    let rss_peak = peak_rss_kib(pid).unwrap();
    let (status, log) = module.terminate().await;
    assert!(status.success(), "{status}:\n{log}");
    assert_eq!(env.committed(), TOTAL);
    println!(
        "followed {TOTAL} records in {:.1} s ({:.0} records/s); module peak RSS {} KiB after \
         100,000 records, {} KiB after {TOTAL}",
        elapsed.as_secs_f64(),
        TOTAL as f64 / elapsed.as_secs_f64(),
        rss_early,
        rss_peak
    );
    assert!(
        rss_peak < rss_early + 32 * 1024,
        "memory grew from {rss_early} KiB to {rss_peak} KiB"
    );
}
