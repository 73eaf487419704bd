//! The command-line flags [`run`](crate::run) understands; everything else is left to the
//! module. Shared by `run` and local mode.

/// The usage text printed by `--help`.
pub(crate) const USAGE: &str = "\
A Foundry compute module built with cmod.

Usage: MODULE [OPTIONS]

In Foundry the module needs no arguments: the mode and its settings come from the environment.

Options:
  --local                  Run on the embedded local runtime and local Foundry (or CMOD_LOCAL=1)
  --invoke NAME [JSON]     With --local: call function NAME with JSON inputs (default {}), print
                           the result and exit; repeatable. Exits non-zero if a call returned an
                           error. A streamed result prints one JSON value per line as it arrives.
  --functions              Run in functions mode (needed when the binary also has a #[pipeline];
                           or CMOD_MODE=functions)
  --pipeline               Run the #[pipeline] (or CMOD_MODE=pipeline)
  --server                 Serve the functions over HTTP on localhost:CMOD_SERVER_PORT (default
                           8080), for Foundry's OpenAPI server mode (or CMOD_MODE=server)
  --print-schemas          Print the function schemas Foundry would receive, and exit
  --print-openapi          Print the OpenAPI document of server mode (the image label
                           `server.openapi`) for CMOD_SERVER_PORT, and exit
  -h, --help               Print this help, and exit

Environment: CMOD_LOCAL=1, CMOD_LOCAL_PORT, CMOD_LOCAL_DATA, CMOD_MODE, CMOD_SERVER_PORT, RUST_LOG,
NO_COLOR.
";

/// Which mode a binary that links both `#[compute_function]`s and a `#[pipeline]` runs; and
/// server mode, which is never chosen implicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Functions,
    Pipeline,
    /// The functions over HTTP, for Foundry's OpenAPI server mode (`server/`).
    Server,
}

/// The variable that chooses the mode of a binary with both kinds of entry points.
pub(crate) const MODE_VAR: &str = crate::env::vars::CMOD_MODE;

impl Mode {
    /// `CMOD_MODE`, if set.
    pub(crate) fn from_env(value: Option<String>) -> Result<Option<Self>, crate::Error> {
        match value.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some("functions") => Ok(Some(Mode::Functions)),
            Some("pipeline") => Ok(Some(Mode::Pipeline)),
            Some("server") => Ok(Some(Mode::Server)),
            Some(other) => Err(crate::Error::Usage(format!(
                "{MODE_VAR}=`{other}` is not a mode: use `functions`, `pipeline` or `server`"
            ))),
        }
    }
}

/// Command-line flags `run` understands. Anything else is a usage error.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    pub(crate) help: bool,
    pub(crate) print_schemas: bool,
    pub(crate) print_openapi: bool,
    pub(crate) local: bool,
    pub(crate) mode: Option<Mode>,
    /// `--invoke NAME [JSON]`, repeatable (local mode only).
    pub(crate) invoke: Vec<(String, String)>,
}

impl Flags {
    pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, crate::Error> {
        let mut flags = Flags::default();
        let mut args = args.into_iter().peekable();
        let set_mode = |flags: &mut Flags, mode: Mode| match flags.mode {
            Some(m) if m != mode => Err(crate::Error::Usage(
                "`--functions`, `--pipeline` and `--server` exclude each other: choose one".into(),
            )),
            _ => {
                flags.mode = Some(mode);
                Ok(())
            }
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-h" | "--help" => flags.help = true,
                "--print-schemas" => flags.print_schemas = true,
                "--print-openapi" => flags.print_openapi = true,
                "--local" => flags.local = true,
                "--functions" => set_mode(&mut flags, Mode::Functions)?,
                "--pipeline" => set_mode(&mut flags, Mode::Pipeline)?,
                "--server" => set_mode(&mut flags, Mode::Server)?,
                "--invoke" => {
                    let name = args.next().ok_or_else(|| {
                        crate::Error::Usage(
                            "`--invoke` needs a function name: `--invoke NAME '{\"input\": …}'`"
                                .into(),
                        )
                    })?;
                    let input = match args.peek() {
                        Some(next) if !next.starts_with("--") => args.next().unwrap_or_default(),
                        _ => "{}".to_owned(),
                    };
                    flags.invoke.push((name, input));
                }
                other => {
                    return Err(crate::Error::Usage(format!(
                        "unknown argument `{other}`; run with `--help` for the options"
                    )));
                }
            }
        }
        if flags.mode == Some(Mode::Pipeline) && !flags.invoke.is_empty() {
            return Err(crate::Error::Usage(
                "`--invoke` calls functions: it cannot be combined with `--pipeline`".into(),
            ));
        }
        if flags.mode == Some(Mode::Server) && !flags.invoke.is_empty() {
            return Err(crate::Error::Usage(
                "`--invoke` calls through the local job runtime: in server mode, call the \
                 functions over HTTP (`--local --server` prints a curl line for each)"
                    .into(),
            ));
        }
        Ok(flags)
    }
}

/// The arguments as UTF-8, or a usage error naming the first one that is not (instead of the
/// panic of `std::env::args`).
pub(crate) fn utf8_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<Vec<String>, crate::Error> {
    args.into_iter()
        .enumerate()
        .map(|(i, arg)| {
            arg.into_string().map_err(|bad| {
                crate::Error::Usage(format!(
                    "command-line argument {} (`{}`) is not valid UTF-8",
                    i + 1,
                    bad.to_string_lossy()
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn non_utf8_arguments_are_a_usage_error_not_a_panic() {
        use std::os::unix::ffi::OsStringExt as _;
        let args = vec![
            std::ffi::OsString::from("--local"),
            std::ffi::OsString::from_vec(vec![b'a', 0xff, b'b']),
        ];
        let e = utf8_args(args).unwrap_err().to_string();
        assert!(
            e.contains("argument 2") && e.contains("not valid UTF-8"),
            "{e}"
        );
        assert_eq!(
            utf8_args(vec![std::ffi::OsString::from("--local")]).unwrap(),
            vec!["--local".to_owned()]
        );
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_flags_and_rejects_the_rest() {
        let e = Flags::parse(args(&["--local", "--foo"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown argument `--foo`") && e.contains("--help"),
            "{e}"
        );
        let e = Flags::parse(args(&["stray"])).unwrap_err().to_string();
        assert!(e.contains("unknown argument `stray`"), "{e}");
        assert!(Flags::parse(args(&["-h"])).unwrap().help);
        assert!(Flags::parse(args(&["--help"])).unwrap().help);
        assert!(Flags::parse(args(&["--functions", "--pipeline"])).is_err());
        assert!(Flags::parse(args(&["--pipeline", "--invoke", "add"])).is_err());
        assert!(Flags::parse(args(&["--server", "--invoke", "add"])).is_err());
        assert!(Flags::parse(args(&["--server", "--functions"])).is_err());
        let f = Flags::parse(args(&["--server", "--print-openapi"])).unwrap();
        assert_eq!(f.mode, Some(Mode::Server));
        assert!(f.print_openapi);
        assert_eq!(
            Mode::from_env(Some(" server ".into())).unwrap(),
            Some(Mode::Server)
        );
        assert_eq!(
            Flags::parse(args(&["--pipeline"])).unwrap().mode,
            Some(Mode::Pipeline)
        );
        assert_eq!(
            Mode::from_env(Some("functions".into())).unwrap(),
            Some(Mode::Functions)
        );
        assert_eq!(Mode::from_env(None).unwrap(), None);
        assert!(Mode::from_env(Some("both".into())).is_err());
        let f = Flags::parse(args(&[
            "--local",
            "--invoke",
            "add",
            r#"{"x":1}"#,
            "--invoke",
            "ping",
        ]))
        .unwrap();
        assert!(f.local && !f.print_schemas);
        assert_eq!(
            f.invoke,
            vec![
                ("add".into(), r#"{"x":1}"#.into()),
                ("ping".into(), "{}".into())
            ]
        );
        assert!(Flags::parse(args(&["--invoke"])).is_err());
    }
}
