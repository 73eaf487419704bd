//! `cmod-local`: run a Foundry compute module on your machine, against the local compute-module
//! runtime (real HTTPS with a generated CA, real protocol), and call its functions with `curl`.
//!
//! ```text
//! cmod-local run [OPTIONS] -- <module-binary> [ARGS...]
//! cmod-local serve [OPTIONS]
//! ```
//!
//! Run `cmod-local --help` for the options.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use cmod_local::{LocalRuntime, LocalRuntimeOptions};

/// The invoke API's default port, next to the two Foundry reserves for its sidecars (8945, 8946).
const DEFAULT_INVOKE_PORT: u16 = 8947;

const HELP: &str = "\
cmod-local: run a Foundry compute module locally, against a local compute-module runtime

USAGE:
    cmod-local run [OPTIONS] -- <MODULE-BINARY> [ARGS...]
        Start the runtime, then launch the module with the environment Foundry would give it
        (GET_JOB_URI, POST_RESULT_URI, MODULE_AUTH_TOKEN, DEFAULT_CA_PATH, ...). Ctrl-C and
        SIGTERM are forwarded to the module; cmod-local exits with the module's exit status.
    cmod-local serve [OPTIONS]
        Only start the runtime and print its environment as `export` lines, to start a module
        yourself (e.g. under a debugger). Stops on Ctrl-C.

OPTIONS:
    --max-concurrent-tasks <N>    MAX_CONCURRENT_TASKS handed to the module [default: 1]
    --port <PORT>                 runtime HTTPS port on 127.0.0.1; 0 = any free port [default: 0]
    --invoke-port <PORT>          invoke API port on 127.0.0.1; 0 = any free port [default: 8947]
    --no-invoke                   do not start the invoke API
    --long-poll-timeout <SECS>    how long GET job holds an idle poll [default: 5]
    --dir <DIR>                   write the token and CA files to DIR [default: a temporary directory]
    -h, --help                    print this help
    -V, --version                 print the version

INVOKE API (plain HTTP on 127.0.0.1):
    POST /functions/<NAME>        call a function; the JSON body is its input, the response its result
                                  (?timeout_secs=N, default 300; an Authorization header becomes the job's authHeader)
    GET  /schemas                 the function schemas the module posted
    GET  /jobs                    jobs in flight
    GET  /stats                   counters

ENVIRONMENT:
    RUST_LOG                      log filter for cmod-local's own logs [default: cmod_local=info]
";

/// What to do.
#[derive(Debug)]
enum Cli {
    Help,
    Version,
    Run {
        options: LocalRuntimeOptions,
        program: OsString,
        args: Vec<OsString>,
    },
    Serve {
        options: LocalRuntimeOptions,
    },
}

/// A command-line mistake, with the message to print.
#[derive(Debug, PartialEq)]
struct UsageError(String);

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

fn parse_number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, UsageError> {
    value
        .parse()
        .map_err(|_| usage(format!("{flag} expects a number, got `{value}`")))
}

/// Parses the arguments after the program name.
fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, UsageError> {
    let mut args = args.into_iter();
    let command = match args.next() {
        None => return Ok(Cli::Help),
        Some(c) => c,
    };
    let command = command.to_string_lossy().into_owned();
    let run = match command.as_str() {
        "-h" | "--help" | "help" => return Ok(Cli::Help),
        "-V" | "--version" => return Ok(Cli::Version),
        "run" => true,
        "serve" => false,
        other => {
            return Err(usage(format!(
                "unknown command `{other}`: expected `run` or `serve`"
            )));
        }
    };
    let mut options = LocalRuntimeOptions {
        invoke_port: Some(DEFAULT_INVOKE_PORT),
        ..LocalRuntimeOptions::default()
    };
    let mut rest: Vec<OsString> = Vec::new();
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            rest.push(arg);
            break;
        };
        if text == "--" {
            break;
        }
        if !text.starts_with('-') {
            rest.push(arg);
            break;
        }
        let (flag, inline) = match text.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (text.to_owned(), None),
        };
        let mut value = |flag: &str| -> Result<String, UsageError> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args
                    .next()
                    .map(|v| v.to_string_lossy().into_owned())
                    .ok_or_else(|| usage(format!("{flag} expects a value"))),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Cli::Help),
            "-V" | "--version" => return Ok(Cli::Version),
            "--max-concurrent-tasks" => {
                let n: usize = parse_number(&flag, &value(&flag)?)?;
                if n == 0 {
                    return Err(usage("--max-concurrent-tasks must be at least 1"));
                }
                options.max_concurrent_tasks = n;
            }
            "--port" => options.port = parse_number(&flag, &value(&flag)?)?,
            "--invoke-port" => options.invoke_port = Some(parse_number(&flag, &value(&flag)?)?),
            "--no-invoke" => options.invoke_port = None,
            "--long-poll-timeout" => {
                let secs: f64 = parse_number(&flag, &value(&flag)?)?;
                if !(secs.is_finite() && (0.0..=3600.0).contains(&secs)) {
                    return Err(usage(
                        "--long-poll-timeout must be between 0 and 3600 seconds",
                    ));
                }
                options.long_poll_timeout = Duration::from_secs_f64(secs);
            }
            "--dir" => options.dir = Some(value(&flag)?.into()),
            other => return Err(usage(format!("unknown option `{other}` for `{command}`"))),
        }
    }
    rest.extend(args);
    if run {
        let mut rest = rest.into_iter();
        let Some(program) = rest.next() else {
            return Err(usage(
                "`run` needs the module to launch: cmod-local run [OPTIONS] -- <MODULE-BINARY> [ARGS...]",
            ));
        };
        Ok(Cli::Run {
            options,
            program,
            args: rest.collect(),
        })
    } else if let Some(extra) = rest.first() {
        Err(usage(format!(
            "`serve` takes no module ({}); use `cmod-local run -- <MODULE-BINARY>` to launch one",
            extra.to_string_lossy()
        )))
    } else {
        Ok(Cli::Serve { options })
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("cmod_local=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = match parse(std::env::args_os().skip(1)) {
        Ok(cli) => cli,
        Err(UsageError(message)) => {
            eprintln!("cmod-local: {message}\n\nRun `cmod-local --help` for usage.");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cmod-local: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli {
        Cli::Help => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Cli::Version => {
            println!("cmod-local {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Cli::Serve { options } => {
            init_logging();
            runtime.block_on(serve(options))
        }
        Cli::Run {
            options,
            program,
            args,
        } => {
            init_logging();
            runtime.block_on(run(options, program, args))
        }
    }
}

/// Quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

async fn start(options: LocalRuntimeOptions) -> Result<LocalRuntime, ExitCode> {
    LocalRuntime::start(options).await.map_err(|e| {
        eprintln!("cmod-local: {e}");
        ExitCode::FAILURE
    })
}

fn print_invoke_help(runtime: &LocalRuntime) {
    match runtime.invoke_url() {
        Some(url) => eprintln!(
            "cmod-local: invoke API on {url} (GET {url}/schemas lists the functions)\n\
             cmod-local: call a function with:\n    curl -sS {url}/functions/<NAME> -H 'Content-Type: application/json' -d '{{...}}'"
        ),
        None => eprintln!("cmod-local: invoke API disabled (--no-invoke)"),
    }
}

/// Once the module posts its schemas, prints a ready `curl` line for each function.
fn announce_functions(runtime: &LocalRuntime) {
    let Some(url) = runtime.invoke_url() else {
        return;
    };
    let runtime = runtime.clone();
    tokio::spawn(async move {
        let Ok(schemas) = runtime
            .wait_for_schemas(Duration::from_secs(24 * 3600))
            .await
        else {
            return;
        };
        let functions = schemas.as_array().map(Vec::as_slice).unwrap_or_default();
        if functions.is_empty() {
            eprintln!("cmod-local: the module registered no functions");
            return;
        }
        eprintln!(
            "cmod-local: the module registered {} function(s):",
            functions.len()
        );
        for f in functions {
            let Some(name) = f.get("functionName").and_then(|n| n.as_str()) else {
                continue;
            };
            let body = sample_input(f).to_string();
            eprintln!(
                "    curl -sS {url}/functions/{} -H 'Content-Type: application/json' -d {}",
                shell_quote(name),
                shell_quote(&body)
            );
        }
    });
}

/// An example input object for a function schema (docs/protocol.md §4): required inputs only, each
/// with a placeholder value of its type.
fn sample_input(function: &serde_json::Value) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    for input in function
        .get("inputs")
        .and_then(|i| i.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let required = input
            .get("required")
            .and_then(|r| r.as_bool())
            .unwrap_or(true);
        if let (true, Some(name)) = (required, input.get("name").and_then(|n| n.as_str())) {
            let data_type = input.get("dataType").unwrap_or(&serde_json::Value::Null);
            object.insert(name.to_owned(), sample_value(data_type, 0));
        }
    }
    serde_json::Value::Object(object)
}

fn sample_value(data_type: &serde_json::Value, depth: usize) -> serde_json::Value {
    use serde_json::{Value, json};
    if depth > 8 {
        return Value::Null;
    }
    let kind = data_type.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let inner = data_type.get(kind).unwrap_or(&Value::Null);
    match kind {
        "boolean" => json!(false),
        "byte" | "short" | "integer" | "long" => json!(0),
        "float" | "double" => json!(0.0),
        "decimal" => json!("0"),
        "string" | "binary" => json!(""),
        "date" => json!("2024-01-01"),
        "timestamp" => json!("2024-01-01T00:00:00Z"),
        "list" | "set" => json!([]),
        "map" => json!({}),
        "anonymousCustomType" => {
            let mut object = serde_json::Map::new();
            if let Some(fields) = inner.get("fields").and_then(|f| f.as_object()) {
                for (name, field_type) in fields {
                    object.insert(name.clone(), sample_value(field_type, depth + 1));
                }
            }
            Value::Object(object)
        }
        _ => Value::Null,
    }
}

async fn serve(options: LocalRuntimeOptions) -> ExitCode {
    // Listen for signals before anything else, so an early SIGTERM still stops us cleanly.
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cmod-local: could not listen for signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match start(options).await {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    for (key, value) in runtime.env() {
        println!("export {key}={}", shell_quote(&value));
    }
    eprintln!(
        "cmod-local: runtime listening on https://localhost:{}; start your module with the variables above",
        runtime.runtime_addr().port()
    );
    print_invoke_help(&runtime);
    announce_functions(&runtime);
    let _ = signals.next().await;
    eprintln!("cmod-local: stopping");
    runtime.shutdown().await;
    ExitCode::SUCCESS
}

async fn run(options: LocalRuntimeOptions, program: OsString, args: Vec<OsString>) -> ExitCode {
    // Listen for signals before the module exists, so none can reach us unhandled (which would
    // end cmod-local and orphan the module).
    let mut signals = match Signals::new() {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!(
                "cmod-local: could not listen for signals, Ctrl-C will not be forwarded: {e}"
            );
            None
        }
    };
    let runtime = match start(options).await {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&args)
        .envs(runtime.env())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // Own process group: a terminal's Ctrl-C reaches only cmod-local, which forwards it once.
    #[cfg(unix)]
    command.process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!(
                "cmod-local: could not start module `{}`: {e}",
                program.to_string_lossy()
            );
            runtime.shutdown().await;
            return ExitCode::from(match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                std::io::ErrorKind::PermissionDenied => 126,
                _ => 1,
            });
        }
    };
    eprintln!(
        "cmod-local: runtime on https://localhost:{}, module `{}` started (pid {})",
        runtime.runtime_addr().port(),
        program.to_string_lossy(),
        child.id().map_or_else(|| "?".to_owned(), |p| p.to_string()),
    );
    print_invoke_help(&runtime);
    announce_functions(&runtime);

    let mut forwarded = 0u32;
    let status = loop {
        let signal = async {
            match signals.as_mut() {
                Some(s) => s.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = child.wait() => break status,
            signal = signal => {
                forwarded += 1;
                forward(&mut child, signal, forwarded);
            }
        }
    };
    runtime.shutdown().await;
    match status {
        Ok(status) => exit_code_of(status),
        Err(e) => {
            eprintln!("cmod-local: could not wait for the module: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The exit code mirroring the module's: its own code, or 128 + the signal that ended it.
fn exit_code_of(status: std::process::ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            eprintln!("cmod-local: the module was ended by signal {signal}");
            return ExitCode::from(u8::try_from(128 + (signal & 0x7f)).unwrap_or(1));
        }
    }
    ExitCode::FAILURE
}

/// A termination request cmod-local received.
#[derive(Debug, Clone, Copy)]
enum Signal {
    Interrupt,
    Terminate,
}

/// SIGINT / SIGTERM (Ctrl-C elsewhere), as a stream.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Signal::Interrupt,
                _ = self.terminate.recv() => Signal::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Interrupt
        }
    }
}

/// Forwards `signal` to the module; from the third request on, kills it.
fn forward(child: &mut tokio::process::Child, signal: Signal, count: u32) {
    if count >= 3 {
        eprintln!("cmod-local: third signal; killing the module");
        let _ = child.start_kill();
        return;
    }
    eprintln!("cmod-local: forwarding {signal:?} to the module (send it twice more to kill it)");
    #[cfg(unix)]
    {
        use rustix::process::{Pid, Signal as Sig, kill_process};
        let sig = match signal {
            Signal::Interrupt => Sig::INT,
            Signal::Terminate => Sig::TERM,
        };
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw);
        if let Some(pid) = pid
            && let Err(e) = kill_process(pid, sig)
        {
            eprintln!("cmod-local: could not signal the module: {e}");
        }
    }
    #[cfg(not(unix))]
    {
        let _ = child.start_kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Cli, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn parses_run_with_options_and_module_args() {
        let Cli::Run {
            options,
            program,
            args,
        } = parse_strs(&[
            "run",
            "--max-concurrent-tasks",
            "4",
            "--port=9000",
            "--invoke-port",
            "0",
            "--",
            "./module",
            "--flag",
            "x",
        ])
        .unwrap()
        else {
            panic!("expected run");
        };
        assert_eq!(options.max_concurrent_tasks, 4);
        assert_eq!(options.port, 9000);
        assert_eq!(options.invoke_port, Some(0));
        assert_eq!(program, "./module");
        assert_eq!(args, ["--flag", "x"]);
    }

    #[test]
    fn module_may_follow_options_without_double_dash() {
        let Cli::Run { program, args, .. } = parse_strs(&["run", "mod", "--port", "1"]).unwrap()
        else {
            panic!("expected run");
        };
        assert_eq!(program, "mod");
        assert_eq!(args, ["--port", "1"]);
    }

    #[test]
    fn serve_defaults() {
        let Cli::Serve { options } = parse_strs(&["serve"]).unwrap() else {
            panic!("expected serve");
        };
        assert_eq!(options.invoke_port, Some(DEFAULT_INVOKE_PORT));
        assert_eq!(options.max_concurrent_tasks, 1);
        let Cli::Serve { options } = parse_strs(&["serve", "--no-invoke"]).unwrap() else {
            panic!("expected serve");
        };
        assert_eq!(options.invoke_port, None);
    }

    #[test]
    fn usage_errors_name_the_problem() {
        assert!(
            parse_strs(&["run"])
                .unwrap_err()
                .0
                .contains("MODULE-BINARY")
        );
        assert!(
            parse_strs(&["run", "--port", "x", "--", "m"])
                .unwrap_err()
                .0
                .contains("--port")
        );
        assert!(
            parse_strs(&["run", "--bogus", "--", "m"])
                .unwrap_err()
                .0
                .contains("--bogus")
        );
        assert!(parse_strs(&["launch"]).unwrap_err().0.contains("launch"));
        assert!(parse_strs(&["serve", "x"]).unwrap_err().0.contains("run"));
        assert!(
            parse_strs(&["run", "--max-concurrent-tasks", "0", "m"])
                .unwrap_err()
                .0
                .contains("at least 1")
        );
        assert!(matches!(parse_strs(&[]).unwrap(), Cli::Help));
        assert!(matches!(parse_strs(&["--version"]).unwrap(), Cli::Version));
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/tmp/a-b/c.pem"), "/tmp/a-b/c.pem");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn sample_inputs_follow_the_schema() {
        let schema = serde_json::json!({
            "functionName": "f",
            "inputs": [
                {"name": "x", "required": true, "dataType": {"type": "integer", "integer": {}}},
                {"name": "o", "required": false, "dataType": {"type": "string", "string": {}}},
                {"name": "p", "required": true, "dataType": {"type": "anonymousCustomType",
                    "anonymousCustomType": {"fields": {"d": {"type": "date", "date": {}}}}}}
            ]
        });
        assert_eq!(
            sample_input(&schema),
            serde_json::json!({"x": 0, "p": {"d": "2024-01-01"}})
        );
    }
}
