//! Functions-mode configuration, read from the environment the platform sets (docs/protocol.md §2, §3.12).
//!
//! | Variable | Use |
//! |---|---|
//! | `GET_JOB_URI_V2`, `POST_RESULT_URI_V2`, `POST_SCHEMA_URI_V2` | preferred when set |
//! | `GET_JOB_URI`, `POST_RESULT_URI`, `POST_SCHEMA_URI` | full URIs, or paths joined to `RUNTIME_HOST`:`RUNTIME_PORT` |
//! | `RUNTIME_HOST`, `RUNTIME_PORT` (or `RUNTIME_API`, `SERVICE_HOST`/`SERVICE_PORT`) | host and port for path-only URIs |
//! | `RESTART_NOTIFICATION_URI` | restart notification; skipped when unset |
//! | `MODULE_AUTH_TOKEN` | path of the token file, sent (trimmed) as `Module-Auth-Token`; the file may change while the module runs: compared at most once a second, re-read at once after a 401/403 (then the request is sent once more with the new token); a file missing, empty or holding a token a header cannot carry keeps the last good token |
//! | `DEFAULT_CA_PATH`, `CONNECTIONS_TO_OTHER_PODS_CA_PATH` | PEM files; both trusted when present |
//! | `MAX_CONCURRENT_TASKS` | jobs in flight at once (default 1, at most 1024) |
//! | `COMPUTE_SESSION_ID` | replica id, added to every log line |
//! | `CMOD_CONCURRENT_POLLS` | `1`/`true`: up to one outstanding long-poll per free slot instead of one at a time (opt-in, **unverified against Foundry's runtime**; default `0`) |
//!
//! Every problem is collected, and reported at once in one [`ConfigError`].

use crate::env::vars;
use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::secret::Secret;
use crate::transport::shown_url;

/// The variable bounding the jobs in flight at once.
pub(crate) const MAX_CONCURRENT_TASKS_VAR: &str = vars::MAX_CONCURRENT_TASKS;
/// The largest accepted `MAX_CONCURRENT_TASKS`: each task holds a connection and a worker, so
/// a typo (an extra digit or three) must not become thousands of them.
pub(crate) const MAX_CONCURRENT_TASKS_LIMIT: usize = 1024;

/// Parses `MAX_CONCURRENT_TASKS` (1..=[`MAX_CONCURRENT_TASKS_LIMIT`]); the error says what is
/// accepted (the caller names the variable).
pub(crate) fn parse_max_concurrent_tasks(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(n @ 1..=MAX_CONCURRENT_TASKS_LIMIT) => Ok(n),
        _ => Err(format!(
            "`{raw}` is not a whole number between 1 and {MAX_CONCURRENT_TASKS_LIMIT}"
        )),
    }
}

/// The variable opting in to concurrent polling: up to one outstanding long-poll per free
/// concurrency slot instead of one at a time. Unverified against Foundry's runtime.
pub(crate) const CONCURRENT_POLLS_VAR: &str = vars::CMOD_CONCURRENT_POLLS;

/// Parses `CMOD_CONCURRENT_POLLS` (`1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`, any case);
/// the error says what is accepted (the caller names the variable).
pub(crate) fn parse_concurrent_polls(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "`{raw}` is not a switch: use 1 (or true) to poll once per free slot, 0 (or false) \
             to poll one at a time"
        )),
    }
}

/// The environment variable that opts in to the embedded local runtime.
pub const LOCAL_OPT_IN_VAR: &str = vars::CMOD_LOCAL;

/// A validated functions-mode configuration.
///
/// Made by [`RuntimeConfig::from_env`] or [`RuntimeConfig::from_lookup`]; its fields
/// can be changed afterwards. `#[non_exhaustive]`: a later version may add fields (as
/// `concurrent_polls` was added), so it is not built with a struct literal outside this crate.
#[derive(Clone)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// Where to GET jobs.
    pub get_job_uri: String,
    /// Base URI for results; a result goes to `{post_result_uri}/{jobId}`.
    pub post_result_uri: String,
    /// Where to POST the function schemas, if anywhere.
    pub post_schema_uri: Option<String>,
    /// Where to POST the restart notification, if anywhere.
    pub restart_notification_uri: Option<String>,
    /// The `Module-Auth-Token` value, as read at startup.
    pub module_auth_token: Option<Secret>,
    /// The file it was read from (`MODULE_AUTH_TOKEN`). When set, the runtime client watches it
    /// and sends its current content (checked at most once a second, and again at once after
    /// the runtime answers 401 or 403); when `None`, `module_auth_token` is sent as it is.
    pub module_auth_token_file: Option<PathBuf>,
    /// Certificates trusted for runtime calls, with the file each came from.
    pub trusted_cas: Vec<TrustedCa>,
    /// Maximum number of jobs in flight.
    pub max_concurrent_tasks: usize,
    /// `CMOD_CONCURRENT_POLLS`: keep up to one outstanding long-poll per free slot (each poll
    /// holds its slot while outstanding) instead of one poll at a time. Opt-in, unverified
    /// against Foundry's runtime; `false` by default.
    pub concurrent_polls: bool,
    /// `COMPUTE_SESSION_ID`, when set.
    pub session_id: Option<String>,
}

impl fmt::Debug for RuntimeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeConfig")
            .field("get_job_uri", &shown_url(&self.get_job_uri))
            .field("post_result_uri", &shown_url(&self.post_result_uri))
            .field(
                "post_schema_uri",
                &self.post_schema_uri.as_deref().map(shown_url),
            )
            .field(
                "restart_notification_uri",
                &self.restart_notification_uri.as_deref().map(shown_url),
            )
            .field("module_auth_token", &self.module_auth_token)
            .field("module_auth_token_file", &self.module_auth_token_file)
            .field("trusted_cas", &self.trusted_cas)
            .field("max_concurrent_tasks", &self.max_concurrent_tasks)
            .field("concurrent_polls", &self.concurrent_polls)
            .field("session_id", &self.session_id)
            .finish()
    }
}

/// CA certificates read from one PEM file.
#[derive(Clone)]
pub struct TrustedCa {
    /// The variable that named the file.
    pub var: &'static str,
    /// The file.
    pub path: PathBuf,
    /// The certificates in it.
    pub certs: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for TrustedCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedCa")
            .field("var", &self.var)
            .field("path", &self.path)
            .field("certs", &self.certs.len())
            .finish()
    }
}

/// One thing wrong with the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The variable involved.
    pub var: String,
    /// What is wrong with it.
    pub message: String,
}

/// The environment does not describe a usable compute-module runtime. Lists every problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Every problem found.
    pub problems: Vec<Problem>,
    /// Whether no Foundry variable was set at all (then the message explains local mode).
    pub no_foundry_environment: bool,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.no_foundry_environment {
            writeln!(
                f,
                "no Foundry compute-module environment found (missing GET_JOB_URI or \
                 GET_JOB_URI_V2, POST_RESULT_URI, MODULE_AUTH_TOKEN, DEFAULT_CA_PATH, and for \
                 pipelines BUILD2_TOKEN and RESOURCE_ALIAS_MAP)."
            )?;
            write!(
                f,
                "To run this module on the embedded local runtime, set {LOCAL_OPT_IN_VAR}=1 \
                 (for example `{LOCAL_OPT_IN_VAR}=1 cargo run`) or pass `--local`."
            )
        } else {
            write!(f, "invalid compute-module configuration:")?;
            for p in &self.problems {
                write!(f, "\n  - {}: {}", p.var, p.message)?;
            }
            Ok(())
        }
    }
}

/// Variables whose presence means "we are in a Foundry functions-mode container".
const FUNCTIONS_MARKERS: &[&str] = &[
    vars::GET_JOB_URI,
    vars::GET_JOB_URI_V2,
    vars::POST_RESULT_URI,
    vars::POST_RESULT_URI_V2,
    vars::MODULE_AUTH_TOKEN,
    vars::RUNTIME_HOST,
];

/// Whether any functions-mode variable is set.
pub(crate) fn has_functions_environment(lookup: &dyn Fn(&str) -> Option<String>) -> bool {
    FUNCTIONS_MARKERS
        .iter()
        .any(|v| lookup(v).is_some_and(|s| !s.is_empty()))
}

/// Reads a variable, treating empty as unset.
pub(crate) fn var(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name).filter(|v| !v.trim().is_empty())
}

/// Reads a token file: trimmed contents; an error names the variable and the file.
pub(crate) fn read_token_file(var: &str, path: &Path) -> Result<Secret, Problem> {
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().is_empty() => Err(Problem {
            var: var.to_owned(),
            message: format!("token file {} is empty", path.display()),
        }),
        Ok(s) => Ok(Secret::new(s.trim())),
        Err(e) => Err(Problem {
            var: var.to_owned(),
            message: format!("cannot read token file {}: {e}", path.display()),
        }),
    }
}

/// Reads the CA certificates of a PEM file; an error names the variable and the file.
pub(crate) fn read_ca_file(var: &'static str, path: &Path) -> Result<TrustedCa, Problem> {
    let problem = |message: String| Problem {
        var: var.to_owned(),
        message,
    };
    let bytes = std::fs::read(path)
        .map_err(|e| problem(format!("cannot read CA file {}: {e}", path.display())))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| problem(format!("CA file {} is not valid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(problem(format!(
            "CA file {} contains no certificate",
            path.display()
        )));
    }
    Ok(TrustedCa {
        var,
        path: path.to_owned(),
        certs,
    })
}

impl RuntimeConfig {
    /// Reads the environment (the process environment, plus the variables the embedded local
    /// runtime points the module at).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(crate::env::lookup())
    }

    /// Reads configuration through `lookup` (a variable name → value function), so tests and
    /// the local runtime can supply an environment without touching the process's.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        if !has_functions_environment(lookup) {
            return Err(ConfigError {
                problems,
                no_foundry_environment: true,
            });
        }
        let base = runtime_base(lookup, &mut problems);
        let mut uri = |v2: &str, v1: &str, required: bool| -> Option<String> {
            if let Some(u) = var(lookup, v2) {
                return check_uri(v2, &u, &base, &mut problems);
            }
            match var(lookup, v1) {
                Some(u) => check_uri(v1, &u, &base, &mut problems),
                None => {
                    if required {
                        problems.push(Problem {
                            var: v1.to_owned(),
                            message: format!("not set (nor {v2})"),
                        });
                    }
                    None
                }
            }
        };
        let get_job_uri = uri(vars::GET_JOB_URI_V2, vars::GET_JOB_URI, true);
        let post_result_uri = uri(vars::POST_RESULT_URI_V2, vars::POST_RESULT_URI, true)
            .map(|u| u.trim_end_matches('/').to_owned());
        let post_schema_uri = uri(vars::POST_SCHEMA_URI_V2, vars::POST_SCHEMA_URI, false);
        let restart_notification_uri = var(lookup, vars::RESTART_NOTIFICATION_URI)
            .and_then(|u| check_uri(vars::RESTART_NOTIFICATION_URI, &u, &base, &mut problems));

        let module_auth_token_file = var(lookup, vars::MODULE_AUTH_TOKEN).map(PathBuf::from);
        let module_auth_token = match &module_auth_token_file {
            Some(path) => match read_token_file(vars::MODULE_AUTH_TOKEN, path) {
                Ok(t) => Some(t),
                Err(p) => {
                    problems.push(p);
                    None
                }
            },
            None => {
                let uses_v2 = var(lookup, vars::GET_JOB_URI_V2).is_some();
                if !uses_v2 {
                    problems.push(Problem {
                        var: vars::MODULE_AUTH_TOKEN.to_owned(),
                        message: "not set: the runtime requires the Module-Auth-Token header"
                            .to_owned(),
                    });
                }
                None
            }
        };

        let mut trusted_cas = Vec::new();
        for ca_var in [
            vars::DEFAULT_CA_PATH,
            vars::CONNECTIONS_TO_OTHER_PODS_CA_PATH,
        ] {
            if let Some(path) = var(lookup, ca_var) {
                match read_ca_file(ca_var, Path::new(&path)) {
                    Ok(ca) => trusted_cas.push(ca),
                    Err(p) => problems.push(p),
                }
            }
        }
        let any_https = [&get_job_uri, &post_result_uri, &post_schema_uri]
            .iter()
            .any(|u| u.as_deref().is_some_and(|u| u.starts_with("https://")));
        if any_https
            && trusted_cas.is_empty()
            && !problems.iter().any(|p| p.var.ends_with("CA_PATH"))
        {
            problems.push(Problem {
                var: vars::DEFAULT_CA_PATH.to_owned(),
                message: "not set: an https runtime URI needs the runtime's CA (set \
                          DEFAULT_CA_PATH or CONNECTIONS_TO_OTHER_PODS_CA_PATH)"
                    .to_owned(),
            });
        }

        let max_concurrent_tasks = match var(lookup, MAX_CONCURRENT_TASKS_VAR) {
            None => 1,
            Some(v) => match parse_max_concurrent_tasks(&v) {
                Ok(n) => n,
                Err(message) => {
                    problems.push(Problem {
                        var: MAX_CONCURRENT_TASKS_VAR.to_owned(),
                        message,
                    });
                    1
                }
            },
        };
        let concurrent_polls = match var(lookup, CONCURRENT_POLLS_VAR) {
            None => false,
            Some(v) => parse_concurrent_polls(&v).unwrap_or_else(|message| {
                problems.push(Problem {
                    var: CONCURRENT_POLLS_VAR.to_owned(),
                    message,
                });
                false
            }),
        };
        let session_id = var(lookup, vars::COMPUTE_SESSION_ID);

        match (get_job_uri, post_result_uri) {
            (Some(get_job_uri), Some(post_result_uri)) if problems.is_empty() => Ok(Self {
                get_job_uri,
                post_result_uri,
                post_schema_uri,
                restart_notification_uri,
                module_auth_token,
                module_auth_token_file,
                trusted_cas,
                max_concurrent_tasks,
                concurrent_polls,
                session_id,
            }),
            _ => Err(ConfigError {
                problems,
                no_foundry_environment: false,
            }),
        }
    }
}

/// `https://{RUNTIME_HOST}:{RUNTIME_PORT}` (or the `RUNTIME_API` / `SERVICE_*` variants), used to
/// complete path-only URIs.
fn runtime_base(
    lookup: &dyn Fn(&str) -> Option<String>,
    _problems: &mut [Problem],
) -> Option<String> {
    let host = var(lookup, vars::RUNTIME_HOST).or_else(|| var(lookup, vars::SERVICE_HOST));
    let port = var(lookup, vars::RUNTIME_PORT).or_else(|| var(lookup, vars::SERVICE_PORT));
    match (host, port) {
        (Some(h), Some(p)) => Some(format!("https://{h}:{}", p.trim())),
        _ => var(lookup, "RUNTIME_API")
            .or_else(|| var(lookup, "SERVICE_API"))
            .map(|api| format!("https://{}", api.trim())),
    }
}

fn check_uri(
    var_name: &str,
    value: &str,
    base: &Option<String>,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let value = value.trim();
    if value.starts_with("https://") || value.starts_with("http://") {
        if reqwest::Url::parse(value).is_err() {
            problems.push(Problem {
                var: var_name.to_owned(),
                message: format!("`{value}` is not a valid URI"),
            });
            return None;
        }
        return Some(value.to_owned());
    }
    if value.starts_with('/') {
        return match base {
            Some(b) => Some(format!("{b}{value}")),
            None => {
                problems.push(Problem {
                    var: var_name.to_owned(),
                    message: format!(
                        "`{value}` is a path, and RUNTIME_HOST/RUNTIME_PORT (or RUNTIME_API) \
                         are not set to complete it"
                    ),
                });
                None
            }
        };
    }
    problems.push(Problem {
        var: var_name.to_owned(),
        message: format!("`{value}` is neither an http(s) URI nor an absolute path"),
    });
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup<'a>(map: &'a HashMap<&'a str, String>) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| map.get(k).cloned()
    }

    const CA: &str =
        "-----BEGIN CERTIFICATE-----\nMIIBVzCB/qADAgECAhQ=\n-----END CERTIFICATE-----\n";

    fn files(dir: &Path) -> (String, String) {
        let token = dir.join("token");
        std::fs::write(&token, "  tok-123\n").unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, CA).unwrap();
        (token.display().to_string(), ca.display().to_string())
    }

    #[test]
    fn no_environment_explains_local_mode() {
        let map = HashMap::new();
        let err = RuntimeConfig::from_lookup(&lookup(&map)).unwrap_err();
        assert!(err.no_foundry_environment);
        let msg = err.to_string();
        assert!(msg.contains("GET_JOB_URI"), "{msg}");
        assert!(msg.contains("CMOD_LOCAL=1"), "{msg}");
    }

    #[test]
    fn full_uris_token_trimmed_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let (token, ca) = files(dir.path());
        let map = HashMap::from([
            ("GET_JOB_URI", "https://localhost:8945/api/job".to_owned()),
            (
                "POST_RESULT_URI",
                "https://localhost:8945/api/results/".to_owned(),
            ),
            ("MODULE_AUTH_TOKEN", token),
            ("DEFAULT_CA_PATH", ca),
        ]);
        let c = RuntimeConfig::from_lookup(&lookup(&map)).unwrap();
        assert_eq!(c.get_job_uri, "https://localhost:8945/api/job");
        assert_eq!(c.post_result_uri, "https://localhost:8945/api/results");
        assert_eq!(c.module_auth_token.unwrap().expose(), "tok-123");
        assert_eq!(c.max_concurrent_tasks, 1);
        assert_eq!(c.trusted_cas.len(), 1);
        assert!(c.restart_notification_uri.is_none());
    }

    #[test]
    fn debug_never_shows_query_strings_or_user_info_of_uris() {
        let dir = tempfile::tempdir().unwrap();
        let (token, ca) = files(dir.path());
        let map = HashMap::from([
            (
                "GET_JOB_URI",
                "https://localhost:8945/api/job?sig=planted-sig".to_owned(),
            ),
            (
                "POST_RESULT_URI",
                "https://user:planted-pw@localhost:8945/api/results".to_owned(),
            ),
            ("MODULE_AUTH_TOKEN", token),
            ("DEFAULT_CA_PATH", ca),
        ]);
        let c = RuntimeConfig::from_lookup(&lookup(&map)).unwrap();
        let text = format!("{c:?}");
        assert!(text.contains("localhost:8945/api/job"), "{text}");
        assert!(!text.contains("planted"), "{text}");
    }

    #[test]
    fn path_only_uris_use_runtime_host_and_port_and_v2_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (token, ca) = files(dir.path());
        let map = HashMap::from([
            ("GET_JOB_URI", "/api/job".to_owned()),
            ("GET_JOB_URI_V2", "http://127.0.0.1:8946/job".to_owned()),
            ("POST_RESULT_URI", "/api/results".to_owned()),
            ("RESTART_NOTIFICATION_URI", "/api/restart".to_owned()),
            ("RUNTIME_HOST", "localhost".to_owned()),
            ("RUNTIME_PORT", "8945".to_owned()),
            ("MODULE_AUTH_TOKEN", token),
            ("CONNECTIONS_TO_OTHER_PODS_CA_PATH", ca),
            ("MAX_CONCURRENT_TASKS", "8".to_owned()),
        ]);
        let c = RuntimeConfig::from_lookup(&lookup(&map)).unwrap();
        assert_eq!(c.get_job_uri, "http://127.0.0.1:8946/job");
        assert_eq!(c.post_result_uri, "https://localhost:8945/api/results");
        assert_eq!(
            c.restart_notification_uri.as_deref(),
            Some("https://localhost:8945/api/restart")
        );
        assert_eq!(c.max_concurrent_tasks, 8);
    }

    #[test]
    fn max_concurrent_tasks_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (token, ca) = files(dir.path());
        for (raw, ok) in [("1", true), ("1024", true), ("1025", false), ("0", false)] {
            let map = HashMap::from([
                ("MODULE_AUTH_TOKEN", token.clone()),
                ("DEFAULT_CA_PATH", ca.clone()),
                ("GET_JOB_URI", "https://localhost:8945/api/job".to_owned()),
                (
                    "POST_RESULT_URI",
                    "https://localhost:8945/api/results".to_owned(),
                ),
                ("MAX_CONCURRENT_TASKS", raw.to_owned()),
            ]);
            match RuntimeConfig::from_lookup(&lookup(&map)) {
                Ok(c) => {
                    assert!(ok, "{raw} accepted");
                    assert_eq!(c.max_concurrent_tasks.to_string(), raw);
                }
                Err(e) => {
                    assert!(!ok, "{raw} refused: {e}");
                    let text = e.to_string();
                    assert!(text.contains("MAX_CONCURRENT_TASKS"), "{text}");
                    assert!(text.contains("1024"), "{text}");
                }
            }
        }
        assert_eq!(parse_max_concurrent_tasks(" 16 "), Ok(16));
        assert!(parse_max_concurrent_tasks("99999999999").is_err());
    }

    #[test]
    fn concurrent_polls_is_an_opt_in_switch_and_a_bad_value_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (token, ca) = files(dir.path());
        let base = HashMap::from([
            ("MODULE_AUTH_TOKEN", token),
            ("DEFAULT_CA_PATH", ca),
            ("GET_JOB_URI", "https://localhost:8945/api/job".to_owned()),
            (
                "POST_RESULT_URI",
                "https://localhost:8945/api/results".to_owned(),
            ),
        ]);
        let c = RuntimeConfig::from_lookup(&lookup(&base)).unwrap();
        assert!(!c.concurrent_polls, "one poll at a time is the default");
        for (raw, expected) in [
            ("1", Some(true)),
            (" TRUE ", Some(true)),
            ("on", Some(true)),
            ("0", Some(false)),
            ("false", Some(false)),
            ("2", None),
            ("maybe", None),
        ] {
            let mut map = base.clone();
            map.insert("CMOD_CONCURRENT_POLLS", raw.to_owned());
            match (RuntimeConfig::from_lookup(&lookup(&map)), expected) {
                (Ok(c), Some(e)) => assert_eq!(c.concurrent_polls, e, "{raw}"),
                (Err(err), None) => {
                    let text = err.to_string();
                    assert!(text.contains("CMOD_CONCURRENT_POLLS"), "{text}");
                    assert!(text.contains(raw), "{text}");
                }
                (r, e) => panic!("{raw}: got {r:?}, expected {e:?}"),
            }
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let map = HashMap::from([
            ("GET_JOB_URI", "/api/job".to_owned()),
            ("MODULE_AUTH_TOKEN", "/nonexistent/token".to_owned()),
            ("DEFAULT_CA_PATH", "/nonexistent/ca.pem".to_owned()),
            ("MAX_CONCURRENT_TASKS", "zero".to_owned()),
        ]);
        let err = RuntimeConfig::from_lookup(&lookup(&map)).unwrap_err();
        let vars: Vec<&str> = err.problems.iter().map(|p| p.var.as_str()).collect();
        for v in [
            "GET_JOB_URI",
            "POST_RESULT_URI",
            "MODULE_AUTH_TOKEN",
            "DEFAULT_CA_PATH",
            "MAX_CONCURRENT_TASKS",
        ] {
            assert!(vars.contains(&v), "{v} missing from {vars:?}");
        }
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/token"), "{msg}");
    }
}
