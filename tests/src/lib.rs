//! Test-only crate: the end-to-end and compile-time suites are in `tests/`; this library holds
//! what several of them share.

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
