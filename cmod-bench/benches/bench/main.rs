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

/// How much work each measurement does.
#[derive(Debug, Clone, Copy)]
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
        stream_reps: 3,
    };

    /// The Python SDK is one to two orders of magnitude slower: fewer jobs, one repetition.
    const PYTHON: Plan = Plan {
        startup_samples: 3,
        warmup_jobs: 100,
        throughput_jobs: 2_000,
        throughput_reps: 1,
        latency_jobs: 300,
        payload_bytes: 1_000_000,
        payload_jobs: 10,
        payload_reps: 1,
        stream_items: 100_000,
        stream_reps: 1,
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
            ..self
        }
    }
}

/// Everything measured for one implementation.
#[derive(Debug, Default)]
pub(crate) struct Results {
    pub(crate) plan: Option<Plan>,
    pub(crate) startup: Vec<Duration>,
    pub(crate) idle_rss_kib: u64,
    pub(crate) peak_kib_1: u64,
    pub(crate) peak_kib_8: u64,
    pub(crate) throughput_1: Vec<f64>,
    pub(crate) throughput_8: Vec<f64>,
    /// Module CPU time per job over the throughput repetitions.
    pub(crate) cpu_per_job_1: Option<Duration>,
    pub(crate) cpu_per_job_8: Option<Duration>,
    pub(crate) latency: Option<scenarios::Latency>,
    pub(crate) payload_1: Vec<f64>,
    pub(crate) payload_8: Vec<f64>,
    pub(crate) stream: Vec<Duration>,
}

struct Args {
    write: Option<PathBuf>,
    quick: bool,
    python: bool,
    only: Option<Kind>,
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
  --only NAME    run only `cmod`, `baseline` or `python`
  --help         this text

The Python SDK column needs `pip install foundry-compute-modules` for `python3` (or the
interpreter named by CMOD_BENCH_PYTHON).";

fn parse_args() -> Result<Option<Args>, BenchError> {
    let mut args = Args {
        write: None,
        quick: false,
        python: true,
        only: None,
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
            "--no-python" => args.python = false,
            "--only" => {
                args.only = Some(match it.next().as_deref() {
                    Some("cmod") => Kind::Cmod,
                    Some("baseline") => Kind::Baseline,
                    Some("python") => Kind::Python,
                    other => {
                        return Err(BenchError::Usage(format!(
                            "--only takes cmod, baseline or python, not {other:?}"
                        )));
                    }
                })
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

fn median_f64(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn progress(kind: Kind, what: &str) {
    eprintln!("[{:>8}] {what}", kind.label());
}

/// Starts a module against a fresh runtime and waits for its first poll.
async fn start_module(
    imp: &Implementation,
    max_concurrent_tasks: usize,
    run_name: &str,
) -> Result<(LocalRuntime, Module, Duration), BenchError> {
    let rt = start_runtime(max_concurrent_tasks).await?;
    let mut m = Module::spawn(imp, &rt, run_name)?;
    let first_poll = m.time_to_first_poll(&rt, imp.kind).await?;
    Ok((rt, m, first_poll))
}

async fn warm_up(
    rt: &LocalRuntime,
    plan: &Plan,
    payload: &serde_json::Value,
) -> Result<(), BenchError> {
    scenarios::throughput(rt, plan.warmup_jobs).await?;
    scenarios::payload(rt, payload, 2).await?;
    scenarios::streaming(rt, 1_000).await?;
    Ok(())
}

/// The throughput repetitions: jobs/s of each, and the module's CPU time per job over all.
async fn throughput_runs(
    rt: &LocalRuntime,
    m: &Module,
    kind: Kind,
    plan: &Plan,
    mct: usize,
) -> Result<(Vec<f64>, Option<Duration>), BenchError> {
    let mut rates = Vec::new();
    let cpu = m.cpu_time();
    for rep in 0..plan.throughput_reps {
        progress(
            kind,
            &format!(
                "throughput, MAX_CONCURRENT_TASKS={mct}, {} jobs (#{})",
                plan.throughput_jobs,
                rep + 1
            ),
        );
        rates.push(scenarios::throughput(rt, plan.throughput_jobs).await?);
    }
    let jobs = plan.throughput_jobs * plan.throughput_reps;
    let per_job = u32::try_from(jobs)
        .ok()
        .filter(|j| *j > 0)
        .map(|j| m.cpu_time().saturating_sub(cpu) / j);
    Ok((rates, per_job))
}

async fn measure(imp: &Implementation, plan: Plan) -> Result<Results, BenchError> {
    let kind = imp.kind;
    let mut r = Results {
        plan: Some(plan),
        ..Results::default()
    };
    let payload = scenarios::payload_query(plan.payload_bytes);

    progress(
        kind,
        &format!("time to first poll × {}", plan.startup_samples),
    );
    let xb = std::env::var("XB_TPUT_ONLY").is_ok();
    if xb {
        let (rt, m, _) = start_module(imp, 1, "mct1").await?;
        warm_up(&rt, &plan, &payload).await?;
        (r.throughput_1, r.cpu_per_job_1) = throughput_runs(&rt, &m, kind, &plan, 1).await?;
        m.stop().await;
        let (rt, m, _) = start_module(imp, 8, "mct8").await?;
        warm_up(&rt, &plan, &payload).await?;
        (r.throughput_8, r.cpu_per_job_8) = throughput_runs(&rt, &m, kind, &plan, 8).await?;
        r.peak_kib_8 = m.memory()?.hwm_kib;
        m.stop().await;
        return Ok(r);
    }
    for i in 0..plan.startup_samples {
        let (rt, m, first_poll) = start_module(imp, 1, &format!("startup-{i}")).await?;
        r.startup.push(first_poll);
        m.stop().await;
        rt.shutdown().await;
    }

    // MAX_CONCURRENT_TASKS=1: idle memory, throughput, latency, payload, streaming.
    let (rt, m, first_poll) = start_module(imp, 1, "mct1").await?;
    r.startup.push(first_poll);
    tokio::time::sleep(Duration::from_millis(500)).await;
    r.idle_rss_kib = m.memory()?.rss_kib;
    warm_up(&rt, &plan, &payload).await?;
    (r.throughput_1, r.cpu_per_job_1) = throughput_runs(&rt, &m, kind, &plan, 1).await?;
    progress(
        kind,
        &format!("latency, {} sequential jobs", plan.latency_jobs),
    );
    r.latency = Some(scenarios::latency(&rt, plan.latency_jobs).await?);
    for rep in 0..plan.payload_reps {
        progress(
            kind,
            &format!(
                "payload, MAX_CONCURRENT_TASKS=1, {} × 1 MB (#{})",
                plan.payload_jobs,
                rep + 1
            ),
        );
        r.payload_1
            .push(scenarios::payload(&rt, &payload, plan.payload_jobs).await?);
    }
    for rep in 0..plan.stream_reps {
        progress(
            kind,
            &format!("streaming {} items (#{})", plan.stream_items, rep + 1),
        );
        r.stream
            .push(scenarios::streaming(&rt, plan.stream_items).await?);
    }
    r.peak_kib_1 = m.memory()?.hwm_kib;
    m.stop().await;
    rt.shutdown().await;

    // MAX_CONCURRENT_TASKS=8: throughput and payload under concurrency.
    let (rt, m, first_poll) = start_module(imp, 8, "mct8").await?;
    r.startup.push(first_poll);
    warm_up(&rt, &plan, &payload).await?;
    (r.throughput_8, r.cpu_per_job_8) = throughput_runs(&rt, &m, kind, &plan, 8).await?;
    for rep in 0..plan.payload_reps {
        progress(
            kind,
            &format!(
                "payload, MAX_CONCURRENT_TASKS=8, {} × 1 MB (#{})",
                plan.payload_jobs,
                rep + 1
            ),
        );
        r.payload_8
            .push(scenarios::payload(&rt, &payload, plan.payload_jobs).await?);
    }
    r.peak_kib_8 = m.memory()?.hwm_kib;
    m.stop().await;
    rt.shutdown().await;
    Ok(r)
}

async fn run() -> Result<(), BenchError> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    let started = Instant::now();
    let wanted = |k: Kind| args.only.is_none_or(|o| o == k);

    let python = if args.python && wanted(Kind::Python) {
        find_python()
    } else {
        Err("skipped (--no-python)".to_owned())
    };
    if let Err(why) = &python {
        eprintln!("python: {why}");
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/bench_module.py");

    let mut runs: Vec<(Kind, Results)> = Vec::new();
    for imp in [Implementation::baseline(), Implementation::cmod()] {
        if wanted(imp.kind) {
            let plan = if args.quick {
                Plan::FULL.quick()
            } else {
                Plan::FULL
            };
            runs.push((imp.kind, measure(&imp, plan).await?));
        }
    }
    let python_note = match &python {
        Ok(exe) => {
            let plan = if args.quick {
                Plan::PYTHON.quick()
            } else {
                Plan::PYTHON
            };
            match measure(&Implementation::python(exe.clone(), &script), plan).await {
                Ok(r) => {
                    runs.push((Kind::Python, r));
                    None
                }
                Err(e) => Some(format!("the Python SDK run failed: {e}")),
            }
        }
        Err(why) => Some(format!("the Python SDK was not measured: {why}")),
    };
    let report = report::Report {
        runs: &runs,
        python_note: python_note.as_deref(),
        quick: args.quick,
        elapsed: started.elapsed(),
    };
    let markdown = report.markdown();
    println!("{markdown}");
    if let Some(path) = &args.write {
        report::write(path, &markdown)?;
        eprintln!("wrote {}", path.display());
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
