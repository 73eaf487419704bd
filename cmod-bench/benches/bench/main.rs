//! The cmod benchmark: cmod vs a minimal hand-written client (and the official Python SDK when
//! it is installed), against the local runtime over real TLS on loopback, in one run.
//!
//! ```text
//! cargo bench -p cmod-bench                              # print the table
//! cargo bench -p cmod-bench -- --write BENCHMARKS.md     # and update BENCHMARKS.md
//! ```
//!
//! Cargo builds `bench-module` and `baseline` in the release-based `bench` profile first; this
//! driver starts a `cmod_local::LocalRuntime` in-process for every module process it spawns
//! (each with only the runtime's environment, like the tests do) and measures, for each
//! implementation: time to first poll, idle and peak RSS, throughput of a trivial function with
//! `MAX_CONCURRENT_TASKS` = 1 and 8, sequential latency, 1 MB JSON in/out, and a 100,000-item
//! stream. See `--help` for the options.

mod module;
mod report;
mod scenarios;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cmod_local::{LocalRuntime, LocalRuntimeOptions};

use module::{Implementation, Kind, Module};

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    #[error(transparent)]
    Local(#[from] cmod_local::LocalError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{module} module {message} (its output is in {})", log.display())]
    Module {
        module: &'static str,
        message: String,
        log: PathBuf,
    },
    #[error("wrong result: {0}")]
    Check(String),
    #[error("{0}")]
    Usage(String),
}

/// The trivial function as a plain `fn` (cmod runs it on Tokio's blocking pool).
pub(crate) const ADD: &str = "add";
/// The trivial function as an `async fn` (cmod runs it on the job's task).
pub(crate) const ADD_ASYNC: &str = "add_async";
/// Streaming from an `Iterator` (cmod drives it on Tokio's blocking pool).
pub(crate) const COUNT: &str = "count";
/// Streaming from a `Stream` (cmod polls it on the job's task).
pub(crate) const COUNT_STREAM: &str = "count_stream";
/// An async sleep holding a slot without CPU (slot utilization).
pub(crate) const SLEEP_MS: &str = "sleep_ms";
/// The sleeps of the slot-utilization figures (ms), at 8 slots.
pub(crate) const UTILIZATION_MS: [u64; 2] = [1, 10];
/// `MAX_CONCURRENT_TASKS` of the slot-utilization figures.
pub(crate) const UTILIZATION_SLOTS: usize = 8;

/// How much work each measurement does.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Plan {
    pub(crate) startup_samples: usize,
    pub(crate) warmup_jobs: usize,
    pub(crate) throughput_jobs: usize,
    pub(crate) throughput_reps: usize,
    pub(crate) latency_jobs: usize,
    pub(crate) payload_bytes: usize,
    pub(crate) payload_jobs: usize,
    pub(crate) payload_reps: usize,
    pub(crate) stream_items: u64,
    pub(crate) stream_reps: usize,
    /// Slot-utilization jobs of 1 ms (those of 10 ms: a tenth).
    pub(crate) utilization_jobs: usize,
}

impl Plan {
    /// Slot-utilization jobs of `ms` milliseconds: about the same wall time for each.
    pub(crate) fn utilization_jobs(&self, ms: u64) -> usize {
        (self.utilization_jobs / ms.max(1) as usize).max(1)
    }
}

impl Plan {
    /// The full plan for cmod and the baseline.
    const FULL: Plan = Plan {
        startup_samples: 10,
        warmup_jobs: 1_000,
        throughput_jobs: 20_000,
        throughput_reps: 3,
        latency_jobs: 2_000,
        payload_bytes: 1_000_000,
        payload_jobs: 40,
        payload_reps: 3,
        stream_items: 100_000,
        stream_reps: 5,
        // ~4 s per sample at 8 slots: with 4,000 (~1.3 s) one scheduling hiccup on the
        // shared machine moved a median by 5 % (BENCHMARKS.md).
        utilization_jobs: 12_000,
    };

    /// The Python SDK is an order of magnitude slower: fewer jobs, one repetition.
    const PYTHON: Plan = Plan {
        startup_samples: 5,
        warmup_jobs: 200,
        throughput_jobs: 5_000,
        throughput_reps: 1,
        latency_jobs: 1_000,
        payload_bytes: 1_000_000,
        payload_jobs: 10,
        payload_reps: 1,
        stream_items: 100_000,
        stream_reps: 1,
        utilization_jobs: 0,
    };

    /// A tenth of the work, for trying the bench out (not for BENCHMARKS.md).
    fn quick(self) -> Plan {
        Plan {
            startup_samples: self.startup_samples.div_ceil(3),
            warmup_jobs: self.warmup_jobs / 10,
            throughput_jobs: self.throughput_jobs / 10,
            throughput_reps: 1,
            latency_jobs: self.latency_jobs / 10,
            payload_jobs: self.payload_jobs.div_ceil(10),
            payload_reps: 1,
            stream_items: self.stream_items / 10,
            stream_reps: 1,
            utilization_jobs: self.utilization_jobs / 10,
            ..self
        }
    }
}

/// The least module CPU a per-job figure is computed from: 5 of the kernel's 10 ms ticks.
const MIN_CPU: Duration = Duration::from_millis(50);

/// Throughput repetitions of one function at one `MAX_CONCURRENT_TASKS`.
#[derive(Debug, Default)]
pub(crate) struct Throughput {
    /// Jobs per second of each repetition.
    pub(crate) rates: Vec<f64>,
    /// Module CPU time (user + system) over all repetitions.
    pub(crate) cpu: Duration,
    /// Jobs over all repetitions.
    pub(crate) jobs: usize,
}

impl Throughput {
    pub(crate) fn median(&self) -> Option<f64> {
        let m = median_f64(&self.rates);
        m.is_finite().then_some(m)
    }

    /// Module CPU per job; `None` below [`MIN_CPU`] measured in all (the kernel counts in
    /// 10 ms ticks: fewer than 5 would be noise).
    pub(crate) fn cpu_per_job(&self) -> Option<Duration> {
        if self.cpu < MIN_CPU {
            return None;
        }
        u32::try_from(self.jobs)
            .ok()
            .filter(|j| *j > 0)
            .map(|j| self.cpu / j)
    }
}

/// Everything measured for one implementation.
#[derive(Debug, Default)]
pub(crate) struct Results {
    pub(crate) plan: Plan,
    /// Spawn → first poll, every sample.
    pub(crate) startup: Vec<Duration>,
    /// VmRSS once started, before any job.
    pub(crate) idle_rss_kib: Option<u64>,
    /// VmHWM at the end of the run with that `MAX_CONCURRENT_TASKS`.
    pub(crate) peak_kib: BTreeMap<usize, u64>,
    /// By (function, `MAX_CONCURRENT_TASKS`).
    pub(crate) throughput: BTreeMap<(&'static str, usize), Throughput>,
    /// Enqueue → result of sequential jobs, by function.
    pub(crate) latency: BTreeMap<&'static str, Vec<Duration>>,
    /// MB/s of each repetition, by `MAX_CONCURRENT_TASKS`.
    pub(crate) payload: BTreeMap<usize, Vec<f64>>,
    /// Enqueue → complete result of each streaming repetition, by function.
    pub(crate) stream: BTreeMap<&'static str, Vec<Duration>>,
    /// The same against a runtime whose server has a thread of its own
    /// ([`streaming_own_thread`]).
    pub(crate) stream_own_thread: BTreeMap<&'static str, Vec<Duration>>,
    /// `sleep_ms` jobs at 8 slots, by the sleep (ms): jobs/s and module CPU.
    pub(crate) utilization: BTreeMap<u64, Throughput>,
    /// Module CPU of the latency runs, by function (no rates).
    pub(crate) latency_cpu: BTreeMap<&'static str, Throughput>,
    /// Module CPU of the payload runs, by `MAX_CONCURRENT_TASKS` (no rates).
    pub(crate) payload_cpu: BTreeMap<usize, Throughput>,
    /// Module CPU of the streaming runs, by function; one "job" per streamed result (no rates).
    pub(crate) stream_cpu: BTreeMap<&'static str, Throughput>,
}

/// One implementation under test, with what it runs and what it measured.
struct Contender {
    imp: Implementation,
    plan: Plan,
    /// The trivial functions it serves.
    functions: &'static [&'static str],
    /// The streaming functions it serves.
    streams: &'static [&'static str],
    /// Only throughput (the baseline in cmod's shape); else everything.
    throughput_only: bool,
    results: Results,
}

impl Contender {
    fn new(imp: Implementation, plan: Plan) -> Self {
        let kind = imp.kind;
        Self {
            imp,
            plan,
            functions: match kind {
                Kind::Cmod | Kind::CmodConcurrent | Kind::BaselineOnePoll => &[ADD_ASYNC, ADD],
                Kind::Floor | Kind::Baseline | Kind::Python => &[ADD],
            },
            streams: match kind {
                Kind::Cmod => &[COUNT_STREAM, COUNT],
                _ => &[COUNT],
            },
            throughput_only: matches!(kind, Kind::BaselineOnePoll | Kind::CmodConcurrent),
            results: Results {
                plan,
                ..Results::default()
            },
        }
    }
}

struct Args {
    write: Option<PathBuf>,
    quick: bool,
    python: bool,
    only: Option<Kind>,
    /// `--profile FUNCTION SLOTS SECONDS`: one module under one load, for `perf record -p`.
    profile: Option<(&'static str, usize, u64)>,
    /// `--own-thread`: `--profile` against a runtime whose servers have a thread of their own.
    own_thread: bool,
}

const HELP: &str = "\
cmod benchmark: cmod vs a minimal hand-written client (vs the Python SDK when installed).

usage: cargo bench -p cmod-bench [-- OPTIONS]

options:
  --write PATH   also write the results into PATH (relative paths are taken from the
                 workspace root, e.g. `--write BENCHMARKS.md`); text outside the
                 generated block is kept
  --quick        a tenth of the work, to try things out (never for BENCHMARKS.md)
  --no-python    skip the Python SDK even when `python3` can import `compute_modules`
  --only NAME    run only `cmod` (both polling modes), `cmod-concurrent-polls`,
                 `hyper-floor`, `baseline` (both shapes), `baseline-one-poll` or `python`
  --profile FUNCTION SLOTS SECONDS
                 no figures: start one module (`--only`, default cmod) with SLOTS as
                 MAX_CONCURRENT_TASKS, print its pid, and keep it busy with FUNCTION
                 (add, add_async: 20,000-job batches; count, count_stream: 100,000-item
                 streams; sleep_ms: batches of 12,000 jobs sleeping 1 ms, the slot
                 utilization load) for SECONDS, e.g. for `perf record -g -p PID`
                 (BENCHMARKS.md)
  --own-thread   with --profile: the runtime's servers on a thread of their own (a
                 current-thread Tokio runtime), as in the second streaming figures
  --help         this text

The Python SDK column needs `pip install foundry-compute-modules` for `python3` (or the
interpreter named by CMOD_BENCH_PYTHON). CMOD_BENCH_MODULE=PATH measures another build of
`bench-module` as cmod (e.g. one from before a change, built with its own target directory).";

fn parse_args() -> Result<Option<Args>, BenchError> {
    let mut args = Args {
        write: None,
        quick: false,
        python: true,
        only: None,
        profile: None,
        own_thread: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--write" => {
                let path = it
                    .next()
                    .ok_or_else(|| BenchError::Usage("--write needs a path".into()))?;
                let path = PathBuf::from(path);
                args.write = Some(if path.is_relative() {
                    workspace_root().join(path)
                } else {
                    path
                });
            }
            "--quick" => args.quick = true,
            "--own-thread" => args.own_thread = true,
            "--no-python" => args.python = false,
            "--only" => {
                args.only = Some(match it.next().as_deref() {
                    Some("cmod") => Kind::Cmod,
                    Some("cmod-concurrent-polls") => Kind::CmodConcurrent,
                    Some("hyper-floor") => Kind::Floor,
                    Some("baseline") => Kind::Baseline,
                    Some("baseline-one-poll") => Kind::BaselineOnePoll,
                    Some("python") => Kind::Python,
                    other => {
                        return Err(BenchError::Usage(format!(
                            "--only takes cmod, cmod-concurrent-polls, hyper-floor, baseline, \
                             baseline-one-poll or python, not {other:?}"
                        )));
                    }
                })
            }
            "--profile" => {
                let usage = || {
                    BenchError::Usage(
                        "--profile takes FUNCTION SLOTS SECONDS, e.g. --profile add_async 1 30"
                            .into(),
                    )
                };
                let function = match it.next().as_deref() {
                    Some(ADD) => ADD,
                    Some(ADD_ASYNC) => ADD_ASYNC,
                    Some(COUNT) => COUNT,
                    Some(COUNT_STREAM) => COUNT_STREAM,
                    Some(SLEEP_MS) => SLEEP_MS,
                    _ => return Err(usage()),
                };
                let slots = it.next().and_then(|s| s.parse().ok()).ok_or_else(usage)?;
                let seconds = it.next().and_then(|s| s.parse().ok()).ok_or_else(usage)?;
                args.profile = Some((function, slots, seconds));
            }
            "--help" | "-h" => {
                println!("{HELP}");
                return Ok(None);
            }
            // `cargo bench` passes `--bench` to every bench target.
            "--bench" => {}
            other => {
                return Err(BenchError::Usage(format!(
                    "unknown option `{other}`; see --help"
                )));
            }
        }
    }
    if args.write.is_some() && args.quick {
        return Err(BenchError::Usage(
            "--quick results are not meant for BENCHMARKS.md; drop one of --quick / --write".into(),
        ));
    }
    if args.own_thread && args.profile.is_none() {
        return Err(BenchError::Usage(
            "--own-thread goes with --profile (a full run measures streaming both ways)".into(),
        ));
    }
    Ok(Some(args))
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The Python interpreter to use when it can import the SDK: `CMOD_BENCH_PYTHON` or `python3`,
/// resolved to its real executable (so a pyenv shim works with a cleared environment).
fn find_python() -> Result<PathBuf, String> {
    let candidate = std::env::var("CMOD_BENCH_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = std::process::Command::new(&candidate)
        .args([
            "-c",
            "import sys, compute_modules; from importlib.metadata import version; \
             print(sys.executable); print(version('foundry-compute-modules'))",
        ])
        .output()
        .map_err(|e| format!("`{candidate}` cannot be run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{candidate}` cannot import the SDK (`pip install foundry-compute-modules`): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let exe = lines.next().unwrap_or_default().trim().to_owned();
    eprintln!(
        "python: {exe} with foundry-compute-modules {}",
        lines.next().unwrap_or("?")
    );
    Ok(PathBuf::from(exe))
}

async fn start_runtime(max_concurrent_tasks: usize) -> Result<LocalRuntime, BenchError> {
    Ok(LocalRuntime::start(LocalRuntimeOptions {
        max_concurrent_tasks,
        ..LocalRuntimeOptions::default()
    })
    .await?)
}

pub(crate) fn median_f64(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn progress(kind: Kind, what: &str) {
    eprintln!("[{:>17}] {what}", kind.label());
}

/// Starts a module against a fresh runtime and waits for its first poll.
async fn start_module(
    imp: &Implementation,
    max_concurrent_tasks: usize,
    run_name: &str,
) -> Result<(LocalRuntime, Module, Duration), BenchError> {
    let rt = start_runtime(max_concurrent_tasks).await?;
    let (m, first_poll) = spawn_module(imp, &rt, run_name).await?;
    Ok((rt, m, first_poll))
}

/// Starts a module against `rt` and waits for its first poll.
async fn spawn_module(
    imp: &Implementation,
    rt: &LocalRuntime,
    run_name: &str,
) -> Result<(Module, Duration), BenchError> {
    let mut m = Module::spawn(imp, rt, run_name)?;
    let first_poll = m.time_to_first_poll(rt, imp.kind).await?;
    Ok((m, first_poll))
}

/// A [`LocalRuntime`] whose servers run on a current-thread Tokio runtime on an OS thread of
/// its own, for [`streaming_own_thread`].
struct OwnThreadRuntime {
    rt: LocalRuntime,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl OwnThreadRuntime {
    async fn start(max_concurrent_tasks: usize) -> Result<Self, BenchError> {
        let (ready, started) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let io = |context: &str| {
            let context = context.to_owned();
            move |source| BenchError::Io { context, source }
        };
        let thread = std::thread::Builder::new()
            .name("bench-runtime".into())
            .spawn(move || {
                let tokio = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(t) => t,
                    Err(e) => {
                        let _ = ready.send(Err(io("building the runtime's own Tokio runtime")(e)));
                        return;
                    }
                };
                tokio.block_on(async move {
                    let _ = ready.send(start_runtime(max_concurrent_tasks).await);
                    // Keeps driving the servers until told to stop.
                    let _ = stopped.await;
                });
            })
            .map_err(io("spawning the runtime's thread"))?;
        let rt = started.await.map_err(|_| {
            io("starting the runtime on its own thread")(std::io::Error::other(
                "the thread ended before the runtime started",
            ))
        })??;
        Ok(Self { rt, stop, thread })
    }

    async fn shutdown(self) {
        self.rt.shutdown().await;
        let _ = self.stop.send(());
        let _ = tokio::task::spawn_blocking(move || self.thread.join()).await;
    }
}

/// Streaming again, each module against a runtime whose servers run on a thread of their own
/// (a current-thread Tokio runtime), implementations interleaved. In the bench process's
/// multi-thread runtime, a server receiving a burst of small chunks reschedules its connection
/// task once per chunk and wakes its idle worker for it (BENCHMARKS.md, "Streaming and the
/// runtime's server"), so that figure also measures how bursty the sender is; here the
/// receiver keeps up with every sender.
async fn streaming_own_thread(contenders: &mut [Contender]) -> Result<(), BenchError> {
    let mut live = Vec::new();
    for c in contenders.iter() {
        if c.throughput_only || c.streams.is_empty() {
            live.push(None);
            continue;
        }
        let rt = OwnThreadRuntime::start(1).await?;
        let (m, _) = spawn_module(&c.imp, &rt.rt, "stream-own-thread").await?;
        progress(c.imp.kind, "warm-up, streaming, runtime on its own thread");
        for f in c.streams {
            scenarios::streaming(&rt.rt, f, 1_000).await?;
        }
        live.push(Some((rt, m)));
    }
    for rep in 0..most(contenders, |c| c.plan.stream_reps) {
        for (c, slot) in contenders.iter_mut().zip(&live) {
            let Some((rt, _)) = slot else { continue };
            if rep >= c.plan.stream_reps {
                continue;
            }
            for f in c.streams {
                progress(
                    c.imp.kind,
                    &format!(
                        "streaming `{f}`, {} items, runtime on its own thread (#{})",
                        c.plan.stream_items,
                        rep + 1
                    ),
                );
                let elapsed = scenarios::streaming(&rt.rt, f, c.plan.stream_items).await?;
                c.results
                    .stream_own_thread
                    .entry(*f)
                    .or_default()
                    .push(elapsed);
            }
        }
    }
    for (rt, m) in live.into_iter().flatten() {
        m.stop().await;
        rt.shutdown().await;
    }
    Ok(())
}

/// Time to first poll: a fresh runtime and process per sample, implementations interleaved.
async fn startup(contenders: &mut [Contender]) -> Result<(), BenchError> {
    let samples = contenders
        .iter()
        .map(|c| c.plan.startup_samples)
        .max()
        .unwrap_or(0);
    for i in 0..samples {
        for c in contenders.iter_mut() {
            if c.throughput_only || i >= c.plan.startup_samples {
                continue;
            }
            if i == 0 {
                progress(
                    c.imp.kind,
                    &format!("time to first poll × {}", c.plan.startup_samples),
                );
            }
            let (rt, m, first_poll) = start_module(&c.imp, 1, &format!("startup-{i}")).await?;
            c.results.startup.push(first_poll);
            m.stop().await;
            rt.shutdown().await;
        }
    }
    Ok(())
}

/// The most repetitions any contender wants of something.
fn most(contenders: &[Contender], reps: impl Fn(&Contender) -> usize) -> usize {
    contenders.iter().map(reps).max().unwrap_or(0)
}

/// One run of every contender's module at `mct`: throughput, memory and payload, and at 1 also
/// latency and streaming (throughput only for the baseline in cmod's shape).
async fn phase(contenders: &mut [Contender], mct: usize) -> Result<(), BenchError> {
    let mut live = Vec::new();
    for c in contenders.iter_mut() {
        let (rt, m, first_poll) = start_module(&c.imp, mct, &format!("mct{mct}")).await?;
        if !c.throughput_only {
            c.results.startup.push(first_poll);
        }
        live.push((rt, m));
    }
    if mct == 1 {
        // Let startup settle, then take the idle footprint.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (c, (_, m)) in contenders.iter_mut().zip(&live) {
            if !c.throughput_only {
                c.results.idle_rss_kib = Some(m.memory()?.rss_kib);
            }
        }
    }
    let payload = scenarios::payload_query(Plan::FULL.payload_bytes);
    for (c, (rt, _)) in contenders.iter().zip(&live) {
        progress(c.imp.kind, &format!("warm-up, MAX_CONCURRENT_TASKS={mct}"));
        for f in c.functions {
            scenarios::throughput(rt, f, c.plan.warmup_jobs).await?;
        }
        if !c.throughput_only {
            scenarios::payload(rt, &payload, 2).await?;
            for f in c.streams {
                scenarios::streaming(rt, f, 1_000).await?;
            }
        }
    }

    // Each kind of measurement interleaves the contenders repetition by repetition, so that a
    // change in machine load hits them alike.
    for rep in 0..most(contenders, |c| c.plan.throughput_reps) {
        for (c, (rt, m)) in contenders.iter_mut().zip(&live) {
            if rep >= c.plan.throughput_reps {
                continue;
            }
            for f in c.functions {
                progress(
                    c.imp.kind,
                    &format!(
                        "throughput `{f}`, MAX_CONCURRENT_TASKS={mct}, {} jobs (#{})",
                        c.plan.throughput_jobs,
                        rep + 1
                    ),
                );
                let cpu = m.cpu_time();
                let rate = scenarios::throughput(rt, f, c.plan.throughput_jobs).await?;
                let t = c.results.throughput.entry((*f, mct)).or_default();
                t.cpu += m.cpu_time().saturating_sub(cpu);
                t.jobs += c.plan.throughput_jobs;
                t.rates.push(rate);
            }
        }
    }
    if mct == UTILIZATION_SLOTS {
        for ms in UTILIZATION_MS {
            for rep in 0..most(contenders, |c| c.plan.throughput_reps) {
                for (c, (rt, m)) in contenders.iter_mut().zip(&live) {
                    let n = c.plan.utilization_jobs(ms);
                    if rep >= c.plan.throughput_reps
                        || c.plan.utilization_jobs == 0
                        || c.imp.kind == Kind::BaselineOnePoll
                    {
                        continue;
                    }
                    progress(
                        c.imp.kind,
                        &format!(
                            "slot utilization, {n} × `sleep_ms` {ms} ms, MAX_CONCURRENT_TASKS={mct} (#{})",
                            rep + 1
                        ),
                    );
                    let cpu = m.cpu_time();
                    let rate = scenarios::utilization(rt, ms, n).await?;
                    let t = c.results.utilization.entry(ms).or_default();
                    t.cpu += m.cpu_time().saturating_sub(cpu);
                    t.jobs += n;
                    t.rates.push(rate);
                }
            }
        }
    }
    let full = |c: &Contender| !c.throughput_only;
    if mct == 1 {
        // Latency in blocks, interleaved like the rest.
        const BLOCKS: usize = 4;
        for block in 0..BLOCKS {
            for (c, (rt, m)) in contenders.iter_mut().zip(&live) {
                if !full(c) {
                    continue;
                }
                for f in c.functions {
                    if block == 0 {
                        progress(
                            c.imp.kind,
                            &format!("latency `{f}`, {} sequential jobs", c.plan.latency_jobs),
                        );
                    }
                    let cpu = m.cpu_time();
                    let samples = scenarios::latency(rt, f, c.plan.latency_jobs / BLOCKS).await?;
                    let t = c.results.latency_cpu.entry(*f).or_default();
                    t.cpu += m.cpu_time().saturating_sub(cpu);
                    t.jobs += samples.len();
                    c.results.latency.entry(*f).or_default().extend(samples);
                }
            }
        }
    }
    for rep in 0..most(contenders, |c| c.plan.payload_reps) {
        for (c, (rt, m)) in contenders.iter_mut().zip(&live) {
            if !full(c) || rep >= c.plan.payload_reps {
                continue;
            }
            progress(
                c.imp.kind,
                &format!(
                    "payload, MAX_CONCURRENT_TASKS={mct}, {} × 1 MB (#{})",
                    c.plan.payload_jobs,
                    rep + 1
                ),
            );
            let cpu = m.cpu_time();
            let rate = scenarios::payload(rt, &payload, c.plan.payload_jobs).await?;
            let t = c.results.payload_cpu.entry(mct).or_default();
            t.cpu += m.cpu_time().saturating_sub(cpu);
            t.jobs += c.plan.payload_jobs;
            c.results.payload.entry(mct).or_default().push(rate);
        }
    }
    if mct == 1 {
        for rep in 0..most(contenders, |c| c.plan.stream_reps) {
            for (c, (rt, m)) in contenders.iter_mut().zip(&live) {
                if !full(c) || rep >= c.plan.stream_reps {
                    continue;
                }
                for f in c.streams {
                    progress(
                        c.imp.kind,
                        &format!(
                            "streaming `{f}`, {} items (#{})",
                            c.plan.stream_items,
                            rep + 1
                        ),
                    );
                    let cpu = m.cpu_time();
                    let elapsed = scenarios::streaming(rt, f, c.plan.stream_items).await?;
                    let t = c.results.stream_cpu.entry(*f).or_default();
                    t.cpu += m.cpu_time().saturating_sub(cpu);
                    t.jobs += 1;
                    c.results.stream.entry(*f).or_default().push(elapsed);
                }
            }
        }
    }
    for (c, (rt, m)) in contenders.iter_mut().zip(live) {
        if full(c) {
            c.results.peak_kib.insert(mct, m.memory()?.hwm_kib);
        }
        m.stop().await;
        rt.shutdown().await;
    }
    Ok(())
}

/// Every measurement for `contenders`, interleaved.
async fn measure_all(contenders: &mut [Contender]) -> Result<(), BenchError> {
    startup(contenders).await?;
    phase(contenders, 1).await?;
    streaming_own_thread(contenders).await?;
    phase(contenders, 8).await
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

async fn run() -> Result<(), BenchError> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    if let Some((function, slots, seconds)) = args.profile {
        let kind = args.only.unwrap_or(Kind::Cmod);
        return profile(kind, function, slots, seconds, args.own_thread).await;
    }
    let started = Instant::now();
    let load_before = load_average();
    let wanted = |k: Kind| args.only.is_none_or(|o| o == k);
    let scale = |p: Plan| if args.quick { p.quick() } else { p };

    let python = if args.python && wanted(Kind::Python) {
        find_python()
    } else {
        Err("skipped (--no-python)".to_owned())
    };
    if let Err(why) = &python {
        eprintln!("python: {why}");
    }

    let mut contenders: Vec<Contender> = [
        Implementation::floor(),
        Implementation::baseline(),
        Implementation::baseline_one_poll(),
        Implementation::cmod(),
        Implementation::cmod_concurrent(),
    ]
    .into_iter()
    .filter(|imp| {
        wanted(imp.kind)
            || (imp.kind == Kind::BaselineOnePoll && wanted(Kind::Baseline))
            || (imp.kind == Kind::CmodConcurrent && wanted(Kind::Cmod))
    })
    .map(|imp| Contender::new(imp, scale(Plan::FULL)))
    .collect();
    measure_all(&mut contenders).await?;

    let python_note = match &python {
        Ok(exe) => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/bench_module.py");
            let mut py = vec![Contender::new(
                Implementation::python(exe.clone(), &script),
                scale(Plan::PYTHON),
            )];
            match measure_all(&mut py).await {
                Ok(()) => {
                    contenders.append(&mut py);
                    None
                }
                Err(e) => Some(format!("the Python SDK run failed: {e}")),
            }
        }
        Err(why) => Some(format!("the Python SDK was not measured: {why}")),
    };
    let runs: Vec<(Kind, Results)> = contenders
        .into_iter()
        .map(|c| (c.imp.kind, c.results))
        .collect();
    let report = report::Report {
        runs: &runs,
        python_note: python_note.as_deref(),
        quick: args.quick,
        elapsed: started.elapsed(),
        load: (load_before, load_average()),
    };
    let markdown = report.markdown();
    println!("{markdown}");
    if let Some(path) = &args.write {
        report::write(path, &markdown)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `--profile`: one module, one load, its pid on stdout; no figures.
async fn profile(
    kind: Kind,
    function: &'static str,
    slots: usize,
    seconds: u64,
    own_thread: bool,
) -> Result<(), BenchError> {
    let imp = match kind {
        Kind::Cmod => Implementation::cmod(),
        Kind::CmodConcurrent => Implementation::cmod_concurrent(),
        Kind::Floor => Implementation::floor(),
        Kind::Baseline => Implementation::baseline(),
        Kind::BaselineOnePoll => Implementation::baseline_one_poll(),
        Kind::Python => {
            return Err(BenchError::Usage(
                "--profile measures a native module, not python".into(),
            ));
        }
    };
    let own = match own_thread {
        true => Some(OwnThreadRuntime::start(slots).await?),
        false => None,
    };
    let rt = match &own {
        Some(own) => own.rt.clone(),
        None => start_runtime(slots).await?,
    };
    let (m, _) = spawn_module(&imp, &rt, "profile").await?;
    println!("{} pid {}", kind.label(), m.pid());
    let started = Instant::now();
    let cpu_before = m.cpu_time();
    let until = started + Duration::from_secs(seconds);
    let mut rounds = 0u64;
    while Instant::now() < until {
        match function {
            COUNT | COUNT_STREAM => {
                scenarios::streaming(&rt, function, Plan::FULL.stream_items).await?;
            }
            SLEEP_MS => {
                scenarios::utilization(&rt, 1, Plan::FULL.utilization_jobs).await?;
            }
            _ => {
                scenarios::throughput(&rt, function, Plan::FULL.throughput_jobs).await?;
            }
        }
        rounds += 1;
    }
    let cpu = m.cpu_time().saturating_sub(cpu_before);
    let wall = started.elapsed();
    let per_round = match function {
        COUNT | COUNT_STREAM => Plan::FULL.stream_items,
        SLEEP_MS => Plan::FULL.utilization_jobs as u64,
        _ => Plan::FULL.throughput_jobs as u64,
    };
    let units = (rounds * per_round).max(1);
    eprintln!(
        "{rounds} rounds of {function} in {:.1} s: {:.0} per second, module CPU {:.2} µs per {}",
        wall.as_secs_f64(),
        units as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / units as f64,
        if per_round == Plan::FULL.stream_items {
            "item"
        } else {
            "job"
        },
    );
    m.stop().await;
    match own {
        Some(own) => own.shutdown().await,
        None => rt.shutdown().await,
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmod-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
