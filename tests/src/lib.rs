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
