//! Logging through [`tracing`].
//!
//! In Foundry every record is one SLS JSON line on stdout (docs/protocol.md §8.2):
//!
//! ```json
//! {"type":"service.1","level":"INFO","time":"2026-01-02T03:04:05.123456Z","origin":"my_module::prices",
//!  "thread":"tokio-runtime-worker","params":{"process_id":"7","job_id":"9a2a…","session_id":"ses-1",
//!  "function":"add"},"unsafeParams":{"ticker":"ACME"},"message":"adding","safe":true}
//! ```
//!
//! `job_id` is filled in for everything logged while a job runs — including `tracing` calls in
//! your own functions. Only identifiers the framework sets (process, session and job ids, the
//! function name, a few counters of its own records) go to `params`; every other field —
//! anything your code logs — goes to `unsafeParams`, since its content is not known to be safe.
//! `origin` is the logger: the `tracing` target (by default the module path), never a source
//! path. A panic is logged as an `ERROR` line whose `stacktrace` holds the backtrace; any
//! record with a `stacktrace` field gets it there too. Locally (`CMOD_LOCAL=1`) records are printed in a readable format instead.
//! The level comes from `CMOD_LOG` or `RUST_LOG` (an [`EnvFilter`] directive such as
//! `info,my_module=debug`); the default is `info`.
//!
//! Fields whose name suggests a secret (`token`, `secret`, `password`, `authorization`,
//! `auth_header`, `credential`, `client_secret`) are replaced by `<redacted>`, and
//! [`Secret`](crate::Secret) values print as `<redacted>` anyway.

use crate::env::vars;
use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// How log records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// SLS JSON lines (Foundry).
    Sls,
    /// Human-readable lines (local runs).
    Pretty,
}

/// The env filter: `CMOD_LOG`, else `RUST_LOG`, else `info`.
pub(crate) fn env_filter() -> EnvFilter {
    let directives = crate::env::var(vars::CMOD_LOG)
        .or_else(|| crate::env::var(vars::RUST_LOG))
        .unwrap_or_else(|| "info".to_owned());
    EnvFilter::try_new(&directives).unwrap_or_else(|e| {
        eprintln!("ignoring invalid log filter `{directives}`: {e}; using `info`");
        EnvFilter::new("info")
    })
}

/// Installs the global subscriber (once; later calls do nothing). [`crate::run`] calls this.
pub fn init(format: LogFormat) {
    let filter = env_filter();
    let result = match format {
        LogFormat::Sls => {
            let installed = tracing_subscriber::registry()
                .with(SlsLayer::new(
                    std::io::stdout,
                    crate::env::var(vars::COMPUTE_SESSION_ID),
                ))
                .with(filter)
                .try_init();
            if installed.is_ok() {
                install_panic_hook();
            }
            installed
        }
        LogFormat::Pretty => tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(colours(
                        std::io::IsTerminal::is_terminal(&std::io::stderr()),
                        crate::env::var(vars::NO_COLOR),
                    ))
                    .with_writer(std::io::stderr)
                    .compact(),
            )
            .with(filter)
            .try_init(),
    };
    // Already initialised (by the user or an earlier call): keep theirs.
    let _ = result;
}

/// Whether readable (local) logs use colours: only on a terminal, and never when `NO_COLOR`
/// is set to anything non-empty (<https://no-color.org>).
fn colours(terminal: bool, no_color: Option<String>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Logs every panic as one SLS `ERROR` line with its backtrace in `stacktrace` (instead of the
/// default hook's plain text on stderr), inside whatever span panicked (so with its job id).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(non-string panic payload)");
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let stacktrace = std::backtrace::Backtrace::force_capture();
        tracing::error!(
            target: "cmod_runtime::panic",
            stacktrace = %stacktrace,
            "panicked at {location}: {message}"
        );
    }));
}

/// Fields that stay in `params` wherever they come from a framework span or record.
const SAFE_IDS: &[&str] = &[
    "process_id",
    "session_id",
    "job_id",
    "function",
    "pipeline",
    "alias",
    "rid",
];
/// Further fields that stay in `params` on the framework's own records.
const FRAMEWORK_SAFE: &[&str] = &[
    "functions",
    "max_concurrent_tasks",
    "attempt",
    "status",
    "error_kind",
    "signal",
];

/// Whether `target` is the framework's own (its fields are known).
fn is_framework(target: &str) -> bool {
    target == "cmod_runtime" || target.starts_with("cmod_runtime::")
}

/// A [`Layer`] writing SLS JSON lines to `W`.
#[derive(Debug)]
pub struct SlsLayer<W> {
    make_writer: W,
    session_id: String,
    process_id: String,
}

impl<W> SlsLayer<W>
where
    W: for<'a> MakeWriter<'a> + 'static,
{
    /// A layer writing to `make_writer`, tagging records with `session_id`.
    pub fn new(make_writer: W, session_id: Option<String>) -> Self {
        Self {
            make_writer,
            session_id: session_id.unwrap_or_default(),
            process_id: std::process::id().to_string(),
        }
    }
}

/// Fields recorded on a span, kept in its extensions.
/// A span's fields, recorded once when it opens (no map, no key copies: names are static).
struct SpanFields(Vec<(&'static str, Value)>);

impl<S, W> Layer<S> for SlsLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: LayerContext<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut visitor = JsonVisitor::default();
        attrs.record(&mut visitor);
        span.extensions_mut().insert(SpanFields(visitor.fields));
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: LayerContext<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut visitor = JsonVisitor::default();
        values.record(&mut visitor);
        let mut ext = span.extensions_mut();
        if let Some(fields) = ext.get_mut::<SpanFields>() {
            for (name, value) in visitor.fields {
                match fields.0.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, v)) => *v = value,
                    None => fields.0.push((name, value)),
                }
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let mut params = Map::new();
        let mut unsafe_params = Map::new();
        params.insert("process_id".into(), Value::String(self.process_id.clone()));
        params.insert("job_id".into(), Value::String(String::new()));
        params.insert("session_id".into(), Value::String(self.session_id.clone()));
        // Span fields, outermost first, so inner spans win.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let framework = is_framework(span.metadata().target());
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    for (k, v) in &fields.0 {
                        if framework && SAFE_IDS.contains(k) {
                            params.insert((*k).to_owned(), v.clone());
                        } else {
                            unsafe_params.insert((*k).to_owned(), v.clone());
                        }
                    }
                }
            }
        }
        let mut visitor = JsonVisitor::default();
        event.record(&mut visitor);
        let message = visitor.message.take().unwrap_or_default();
        let meta = event.metadata();
        let framework = is_framework(meta.target());
        let mut stacktrace = None;
        for (k, v) in visitor.fields {
            if k == "stacktrace" {
                stacktrace = Some(v);
            } else if framework && (SAFE_IDS.contains(&k) || FRAMEWORK_SAFE.contains(&k)) {
                params.insert(k.to_owned(), v);
            } else {
                unsafe_params.insert(k.to_owned(), v);
            }
        }

        let thread = std::thread::current();
        let mut record = serde_json::json!({
            "type": "service.1",
            "level": level_name(meta.level()),
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            // The logger, as SLS means it: never the build machine's source path.
            "origin": meta.target(),
            "thread": thread.name().unwrap_or("unnamed"),
            "params": Value::Object(params),
            "message": message,
            "safe": true,
        });
        if let Some(map) = record.as_object_mut() {
            if !unsafe_params.is_empty() {
                map.insert("unsafeParams".into(), Value::Object(unsafe_params));
            }
            if let Some(trace) = stacktrace {
                map.insert("stacktrace".into(), trace);
            }
        }
        let mut line = record.to_string();
        line.push('\n');
        let mut writer = self.make_writer.make_writer();
        let _ = writer.write_all(line.as_bytes());
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// Whether a field name suggests a secret value.
pub(crate) fn is_sensitive(name: &str) -> bool {
    let n = name.as_bytes();
    [
        "token",
        "secret",
        "password",
        "authorization",
        "auth_header",
        "credential",
        "cookie",
    ]
    .iter()
    .any(|s| {
        n.windows(s.len())
            .any(|w| w.eq_ignore_ascii_case(s.as_bytes()))
    })
}

#[derive(Default)]
struct JsonVisitor {
    /// In the order recorded; a later value of a name wins where they are merged.
    fields: Vec<(&'static str, Value)>,
    message: Option<String>,
}

impl JsonVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else if is_sensitive(name) {
            self.fields.push((name, Value::String("<redacted>".into())));
        } else {
            self.fields.push((name, value));
        }
    }
}

impl Visit for JsonVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.put(field, Value::String(s));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colours(true, None));
        assert!(colours(true, Some(String::new())));
        assert!(!colours(true, Some("1".into())));
        assert!(!colours(false, None));
    }
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn sls_lines_carry_the_protocol_fields_and_the_job_id() {
        let buf = Buf::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::registry()
            .with(SlsLayer::new(move || sink.clone(), Some("ses-1".into())));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("job", job_id = "job-42", function = "add");
            let _g = span.enter();
            tracing::info!(x = 3, token = "tok-secret", "adding {}", 2);
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(line["type"], "service.1");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "adding 2");
        assert_eq!(line["safe"], true);
        // The logger (module path), never the build machine's source path.
        assert_eq!(line["origin"], "cmod_runtime::logging::tests");
        assert!(line["time"].as_str().unwrap().ends_with('Z'));
        assert!(line["thread"].is_string());
        let params = &line["params"];
        assert_eq!(params["job_id"], "job-42");
        assert_eq!(params["session_id"], "ses-1");
        assert_eq!(params["process_id"], std::process::id().to_string());
        assert_eq!(params["function"], "add");
        // Fields of user code are not known to be safe: `unsafeParams`.
        assert_eq!(params.as_object().unwrap().len(), 4, "{params}");
        let unsafe_params = &line["unsafeParams"];
        assert_eq!(unsafe_params["x"], 3);
        assert_eq!(unsafe_params["token"], "<redacted>");
        assert!(!out.contains("tok-secret"));
        assert!(line.get("stacktrace").is_none());
    }

    #[test]
    fn a_stacktrace_field_becomes_the_stacktrace_of_the_line() {
        let buf = Buf::default();
        let sink = buf.clone();
        let subscriber =
            tracing_subscriber::registry().with(SlsLayer::new(move || sink.clone(), None));
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(stacktrace = "at f (x.rs:1)\nat g", "it failed");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["stacktrace"], "at f (x.rs:1)\nat g");
        assert!(line["params"].get("stacktrace").is_none());
        assert!(
            line.get("unsafeParams")
                .is_none_or(|u| u.get("stacktrace").is_none())
        );
    }

    #[test]
    fn records_outside_jobs_have_an_empty_job_id() {
        let buf = Buf::default();
        let sink = buf.clone();
        let subscriber =
            tracing_subscriber::registry().with(SlsLayer::new(move || sink.clone(), None));
        tracing::subscriber::with_default(subscriber, || tracing::warn!("no job here"));
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["params"]["job_id"], "");
        assert_eq!(line["params"]["session_id"], "");
    }
}
