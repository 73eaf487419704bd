//! Test-only crate: the end-to-end suites are in `tests/` (the compile-time ones are the
//! `cmod-ui-tests` crate); this library holds what several of them share.

/// Job envelopes of the runtime that cmod must answer without running a function.
pub mod envelopes {
    use cmod_local::JobSpec;
    use serde_json::json;

    /// A job (id `v9-job`) in an envelope variant cmod does not know, `computeModuleJobV9`: it
    /// gets one `InvalidInput` error result naming the variant.
    pub fn unknown_variant_job() -> JobSpec {
        JobSpec {
            job_id: Some("v9-job".to_owned()),
            raw_envelope: Some(json!({
                "type": "computeModuleJobV9",
                "computeModuleJobV9": {"jobId": "v9-job", "queryType": "add", "query": {"x": 2, "y": 2}}
            })),
            ..JobSpec::new("add", json!({}))
        }
    }
}

pub mod log_capture {
    //! Capturing what the current thread logs through `tracing`.
    //!
    //! The subscriber is global and writes into a per-thread buffer: a thread-scoped subscriber
    //! (`set_default`) misses events whose callsite another test thread registered first
    //! (tracing caches "never" for it), which makes captures flaky while other tests run.

    use std::cell::RefCell;
    use std::sync::{Arc, Mutex, Once, PoisonError};

    /// A shared buffer that log lines are captured into.
    #[derive(Debug, Clone, Default)]
    pub struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        /// Everything captured so far, as text.
        pub fn text(&self) -> String {
            let bytes = self
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }

    thread_local! {
        /// Where this thread's log lines go (nowhere when `None`).
        static CAPTURE: RefCell<Option<Captured>> = const { RefCell::new(None) };
    }

    /// Writes into the calling thread's capture buffer, if it has one.
    #[derive(Debug, Clone, Copy)]
    pub struct ThreadWriter;

    impl std::io::Write for ThreadWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            CAPTURE.with(|c| {
                if let Some(c) = &*c.borrow() {
                    c.0.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(buf);
                }
            });
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Installs the subscriber `make` builds as the global default (once per test binary; it
    /// must write through [`ThreadWriter`]) and starts capturing this thread's log lines.
    pub fn capture<S>(make: impl FnOnce() -> S) -> Captured
    where
        S: tracing::Subscriber + Send + Sync + 'static,
    {
        static GLOBAL: Once = Once::new();
        GLOBAL.call_once(|| {
            // Fails only if something else already set a global subscriber, in which case
            // nothing is captured and the test's own assertions say so.
            let _ = tracing::subscriber::set_global_default(make());
        });
        let captured = Captured::default();
        CAPTURE.with(|c| *c.borrow_mut() = Some(captured.clone()));
        captured
    }
}

pub mod reference {
    //! The input type of the Python reference module's `types` and `types_roundtrip` functions
    //! (`tests/fixtures/reference_module.py`), in Rust: one field per Foundry type.

    use std::collections::{BTreeMap, BTreeSet};

    use cmod_runtime::types::{Binary, Date, Decimal, Timestamp};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    /// The nested struct of [`AllTypes`].
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct Inner {
        /// A string.
        pub label: String,
        /// A float.
        pub weight: f32,
    }

    /// Every type the reference module covers (Python `int` is `i32`, Foundry's `integer`).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct AllTypes {
        /// boolean
        pub flag: bool,
        /// integer
        pub count: i32,
        /// float
        pub ratio: f32,
        /// string
        pub text: String,
        /// binary
        pub blob: Binary,
        /// date
        pub day: Date,
        /// timestamp
        pub moment: Timestamp,
        /// decimal
        pub amount: Decimal,
        /// list
        pub items: Vec<i32>,
        /// set
        pub tags: BTreeSet<String>,
        /// map
        pub scores: BTreeMap<String, i32>,
        /// nested struct
        pub inner: Inner,
        /// long
        pub big: i64,
        /// short
        pub small: i16,
        /// byte
        pub tiny: i8,
        /// double
        pub precise: f64,
        /// optional string
        #[serde(default)]
        pub maybe: Option<String>,
    }
}

/// A module process run by a test: its stdout and stderr collected as they come, every wait
/// bounded. Shared by the pipeline suites (replica lifecycle, followed streams). Test support:
/// a failed expectation panics (a failed test).
#[allow(clippy::expect_used)]
pub mod child {
    use std::process::{ExitStatus, Stdio};
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::{Duration, Instant};

    use tokio::io::AsyncBufReadExt as _;

    /// Every wait of these helpers is bounded by this.
    pub const LIMIT: Duration = Duration::from_secs(120);

    /// A running child process and everything it printed so far.
    #[derive(Debug)]
    pub struct LoggedChild {
        /// The process.
        pub child: tokio::process::Child,
        log: Arc<Mutex<String>>,
    }

    impl LoggedChild {
        /// Spawns `cmd` (stdin closed, stdout and stderr piped and collected, killed on drop).
        ///
        /// # Panics
        /// If the process cannot be spawned (a test failure).
        pub fn spawn(cmd: &mut tokio::process::Command) -> LoggedChild {
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot spawn the module: {e}"));
            let log = Arc::new(Mutex::new(String::new()));
            let pipes: [Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>; 2] = [
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            ];
            for pipe in pipes.into_iter().flatten() {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(pipe).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let mut l = log.lock().unwrap_or_else(PoisonError::into_inner);
                        l.push_str(&line);
                        l.push('\n');
                    }
                });
            }
            LoggedChild { child, log }
        }

        /// Everything printed so far (stdout and stderr, line by line).
        pub fn log(&self) -> String {
            self.log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }

        /// Waits (bounded) until the log contains `text`.
        ///
        /// # Panics
        /// If the process exits first, or the bound passes.
        pub async fn wait_log(&mut self, text: &str) {
            let deadline = Instant::now() + LIMIT;
            while !self.log().contains(text) {
                if let Ok(Some(status)) = self.child.try_wait() {
                    // Let the readers drain the last lines.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if self.log().contains(text) {
                        return;
                    }
                    panic!(
                        "the module exited ({status}) before logging `{text}`:\n{}",
                        self.log()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "no `{text}` in the log in time:\n{}",
                    self.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        /// Sends `signal` (`TERM`, `KILL`, …) with `kill`.
        ///
        /// # Panics
        /// If the process is gone or `kill` fails.
        pub fn signal(&self, signal: &str) {
            let pid = self.child.id().expect("the module is running");
            let ok = std::process::Command::new("kill")
                .args([format!("-{signal}"), pid.to_string()])
                .status()
                .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
            assert!(ok.success(), "kill -{signal} {pid} failed");
        }

        /// Waits (bounded) for the exit status.
        ///
        /// # Panics
        /// If the process does not exit within [`LIMIT`].
        pub async fn wait(&mut self) -> ExitStatus {
            tokio::time::timeout(LIMIT, self.child.wait())
                .await
                .expect("the module did not exit in time")
                .unwrap_or_else(|e| panic!("waiting for the module: {e}"))
        }

        /// The exit status (bounded) and the whole log.
        pub async fn finish(mut self) -> (ExitStatus, String) {
            let status = self.wait().await;
            // Let the log readers drain the pipes.
            tokio::time::sleep(Duration::from_millis(100)).await;
            (status, self.log())
        }

        /// SIGTERM, then [`LoggedChild::finish`].
        pub async fn terminate(self) -> (ExitStatus, String) {
            self.signal("TERM");
            self.finish().await
        }
    }
}

/// A local Foundry for the pipeline suites, in a temporary directory.
pub mod foundry {
    use std::sync::Arc;

    use cmod_local::foundry::{
        DataOptions, DataStore, LocalFoundry, LocalFoundryOptions, TransactionStatus,
    };
    use cmod_local::tls::LocalCa;

    /// Starts a local Foundry whose files and data live in a fresh temporary directory (kept
    /// alive by the returned guard), trusting `ca` if given.
    ///
    /// # Panics
    /// If the directory or the servers cannot be created (a test failure).
    pub async fn start(
        data: DataOptions,
        ca: Option<Arc<LocalCa>>,
    ) -> (LocalFoundry, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let foundry = LocalFoundry::start(LocalFoundryOptions {
            dir: Some(dir.path().join("foundry")),
            data: DataOptions {
                dir: Some(dir.path().join("data")),
                ..data
            },
            ca,
            ..LocalFoundryOptions::default()
        })
        .await
        .unwrap_or_else(|e| panic!("cannot start the local Foundry: {e}"));
        (foundry, dir)
    }

    /// The statuses of a dataset's transactions, newest first.
    ///
    /// # Panics
    /// If the dataset does not exist.
    pub fn statuses(data: &DataStore, rid: &str) -> Vec<TransactionStatus> {
        data.transactions(rid)
            .unwrap_or_else(|e| panic!("transactions of {rid}: {e}"))
            .into_iter()
            .map(|t| t.status)
            .collect()
    }
}
