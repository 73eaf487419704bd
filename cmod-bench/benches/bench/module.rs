//! Module processes under test: how to start each implementation, when it first polled, and
//! how much memory it holds.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cmod_local::LocalRuntime;
use tokio::process::{Child, Command};

use crate::BenchError;

/// Names another `bench-module` executable to measure as cmod.
pub(crate) const MODULE_OVERRIDE_VAR: &str = "CMOD_BENCH_MODULE";

/// How long a module may take to reach its first poll before the bench gives up.
const FIRST_POLL_TIMEOUT: Duration = Duration::from_secs(60);

/// The implementations compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `bench-module`: cmod's `#[compute_function]` + `cmod_runtime::run()`.
    Cmod,
    /// `bench-module` with `CMOD_CONCURRENT_POLLS=1`: one outstanding poll per free slot.
    CmodConcurrent,
    /// `hyper-floor`: the thinnest client, hyper's HTTP/1 connection on a current-thread runtime.
    Floor,
    /// `baseline`: the minimal hand-written client.
    Baseline,
    /// `baseline --one-poll-at-a-time`: the same client shaped like cmod's loop (one poll in
    /// flight, jobs on their own tasks, a semaphore of `MAX_CONCURRENT_TASKS`).
    BaselineOnePoll,
    /// `python/bench_module.py` on the official Python SDK.
    Python,
}

impl Kind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Cmod => "cmod",
            Kind::CmodConcurrent => "cmod-concurrent-polls",
            Kind::Floor => "hyper-floor",
            Kind::Baseline => "baseline",
            Kind::BaselineOnePoll => "baseline-one-poll",
            Kind::Python => "python",
        }
    }
}

/// How to start one implementation.
#[derive(Debug, Clone)]
pub(crate) struct Implementation {
    pub(crate) kind: Kind,
    program: PathBuf,
    args: Vec<String>,
    /// Set on top of the runtime's environment.
    env: Vec<(&'static str, &'static str)>,
}

impl Implementation {
    /// `bench-module` as built by this `cargo bench`, or the build named by
    /// `CMOD_BENCH_MODULE` (to compare another version of cmod with the same driver).
    pub(crate) fn cmod() -> Self {
        Self {
            kind: Kind::Cmod,
            program: std::env::var_os(MODULE_OVERRIDE_VAR).map_or_else(
                || PathBuf::from(env!("CARGO_BIN_EXE_bench-module")),
                PathBuf::from,
            ),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// cmod with opt-in concurrent polling.
    pub(crate) fn cmod_concurrent() -> Self {
        Self {
            kind: Kind::CmodConcurrent,
            env: vec![("CMOD_CONCURRENT_POLLS", "1")],
            ..Self::cmod()
        }
    }

    pub(crate) fn floor() -> Self {
        Self {
            kind: Kind::Floor,
            program: PathBuf::from(env!("CARGO_BIN_EXE_hyper-floor")),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub(crate) fn baseline() -> Self {
        Self {
            kind: Kind::Baseline,
            program: PathBuf::from(env!("CARGO_BIN_EXE_baseline")),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub(crate) fn baseline_one_poll() -> Self {
        Self {
            kind: Kind::BaselineOnePoll,
            program: PathBuf::from(env!("CARGO_BIN_EXE_baseline")),
            args: vec!["--one-poll-at-a-time".to_owned()],
            env: Vec::new(),
        }
    }

    pub(crate) fn python(interpreter: PathBuf, script: &Path) -> Self {
        Self {
            kind: Kind::Python,
            program: interpreter,
            args: vec![script.display().to_string()],
            env: Vec::new(),
        }
    }
}

/// A running module process (in its own process group, killed with it).
#[derive(Debug)]
pub(crate) struct Module {
    child: Child,
    pid: u32,
    log: PathBuf,
    spawned_at: Instant,
}

impl Module {
    /// Starts `imp` with the runtime's environment only (plus `PATH`), its output going to a
    /// log file under the target directory.
    pub(crate) fn spawn(
        imp: &Implementation,
        rt: &LocalRuntime,
        run_name: &str,
    ) -> Result<Module, BenchError> {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cmod-bench");
        std::fs::create_dir_all(&dir).map_err(|source| BenchError::Io {
            context: format!("creating {}", dir.display()),
            source,
        })?;
        let log = dir.join(format!("{}-{run_name}.log", imp.kind.label()));
        let file = std::fs::File::create(&log).map_err(|source| BenchError::Io {
            context: format!("creating {}", log.display()),
            source,
        })?;
        let err_file = file.try_clone().map_err(|source| BenchError::Io {
            context: format!("opening {}", log.display()),
            source,
        })?;
        let mut cmd = Command::new(&imp.program);
        cmd.args(&imp.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(rt.env())
            .envs(imp.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err_file))
            .process_group(0)
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let child = cmd.spawn().map_err(|source| BenchError::Io {
            context: format!("starting {}", imp.program.display()),
            source,
        })?;
        let pid = child.id().ok_or_else(|| BenchError::Module {
            module: imp.kind.label(),
            message: "exited immediately".into(),
            log: log.clone(),
        })?;
        Ok(Module {
            child,
            pid,
            log,
            spawned_at,
        })
    }

    /// The module's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the runtime's first poll; returns the time from spawn to it.
    pub(crate) async fn time_to_first_poll(
        &mut self,
        rt: &LocalRuntime,
        kind: Kind,
    ) -> Result<Duration, BenchError> {
        let deadline = Instant::now() + FIRST_POLL_TIMEOUT;
        loop {
            if let Some(at) = rt.first_poll_at() {
                return Ok(at.saturating_duration_since(self.spawned_at));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failed(kind, format!("exited with {status} before polling")));
            }
            if Instant::now() > deadline {
                return Err(
                    self.failed(kind, format!("did not poll within {FIRST_POLL_TIMEOUT:?}"))
                );
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// The error for a module that misbehaved, pointing at its log.
    pub(crate) fn failed(&self, kind: Kind, message: String) -> BenchError {
        BenchError::Module {
            module: kind.label(),
            message,
            log: self.log.clone(),
        }
    }

    /// Resident memory of the process and its descendants (Python's worker processes).
    pub(crate) fn memory(&self) -> Result<Memory, BenchError> {
        let mut total = Memory::default();
        for pid in process_tree(self.pid) {
            // A worker may exit between the listing and the read: skip it.
            if let Ok(m) = Memory::of(pid) {
                total.rss_kib += m.rss_kib;
                total.hwm_kib += m.hwm_kib;
            }
        }
        if total.rss_kib == 0 {
            return Err(BenchError::Io {
                context: format!("reading /proc/{}/status", self.pid),
                source: std::io::Error::other("process gone"),
            });
        }
        Ok(total)
    }

    /// User + system CPU time consumed so far by the process and its live descendants.
    pub(crate) fn cpu_time(&self) -> Duration {
        // /proc/<pid>/stat counts in USER_HZ ticks, 100 per second on every Linux ABI.
        const TICK: Duration = Duration::from_millis(10);
        let mut ticks = 0u64;
        for pid in process_tree(self.pid) {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            for i in [11, 12] {
                ticks += fields
                    .get(i)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        TICK * u32::try_from(ticks).unwrap_or(u32::MAX)
    }

    /// Kills the whole process group and reaps the process.
    pub(crate) async fn stop(mut self) {
        if let Some(pgid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// `VmRSS` (now) and `VmHWM` (peak) from `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Memory {
    pub(crate) rss_kib: u64,
    pub(crate) hwm_kib: u64,
}

impl Memory {
    fn of(pid: u32) -> std::io::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .unwrap_or(0)
        };
        Ok(Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        })
    }
}

/// `pid` and all its descendants, found through the `PPid` of every process in `/proc`.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) else {
                continue;
            };
            if let Some(ppid) = status
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                parents.push((p, ppid));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}
