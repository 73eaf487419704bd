//! The command-line flags [`run`](crate::run) understands; everything else is left to the
//! module. Shared by `run` and local mode.

/// Command-line flags `run` understands (everything else is left to the module).
#[derive(Debug, Default)]
pub(crate) struct Flags {
    pub(crate) print_schemas: bool,
    pub(crate) local: bool,
    /// `--invoke NAME [JSON]`, repeatable (local mode only).
    pub(crate) invoke: Vec<(String, String)>,
}

impl Flags {
    pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, crate::Error> {
        let mut flags = Flags::default();
        let mut args = args.into_iter().peekable();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--print-schemas" => flags.print_schemas = true,
                "--local" => flags.local = true,
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
                _ => {}
            }
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
    fn parses_flags_and_ignores_the_rest() {
        let f = Flags::parse(args(&[
            "--foo",
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
