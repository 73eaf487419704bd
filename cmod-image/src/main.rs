//! `cmod-image`: build and check Foundry compute-module images without a Docker daemon.
//!
//! Install with `cargo install cmod-image` (or `cargo install --path cmod-image` from a checkout)
//! and run `cmod-image help` for usage; see `docs/container.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cmod_image::build::{BinarySource, BuildOptions, CargoFeatures, ServerMode};
use cmod_image::requirements::SERVER_OPENAPI_LABEL;

const USAGE: &str = "\
cmod-image: daemonless OCI images for cmod compute modules (Foundry requirements built in)

USAGE:
    cmod-image build [--manifest-path <Cargo.toml>] [--package <PKG>] [--bin <NAME>] [OPTIONS]
    cmod-image build --no-build --binary <PATH> --tag <NAME:TAG> (--output <DIR> | --archive <FILE>) [OPTIONS]
    cmod-image check <LAYOUT-DIR | ARCHIVE.tar>

BUILD OPTIONS:
        --manifest-path <PATH>   Cargo.toml of the crate to build (default: cargo's search from
                             the current directory, like `cargo build`)
    -p, --package <PKG>      cargo package to build (`cargo build -p PKG`), e.g. in a workspace
        --profile <PROFILE>  cargo profile (default: release)
    -F, --features <LIST>    features to enable (comma separated; repeatable)
        --all-features       enable every feature
        --no-default-features
                             build without the package's default features (the default:
                             a module's `local` feature, the embedded local runtime, stays out)
        --default-features   keep the package's default features
        --allow-local-runtime
                             package a binary that links cmod-runtime's embedded local runtime
                             (refused by default: production images leave it out)
        --bin <NAME>         binary target, when the package has several
        --no-build           do not run cargo; package --binary PATH as is
        --binary <PATH>      the binary to package (with --no-build)
        --output <DIR>       write an OCI image layout directory
                             (default without --archive: <target>/oci/<bin>)
        --archive <FILE>     write the layout as one tar (oci-archive; `docker load` works too)
        --tag <NAME:TAG>     image reference (default <bin>:<package version>; never `latest`)
        --user <UID>         numeric non-root runtime uid/gid (default 5000)
        --expose <PORT>      expose a port for HTTP probes (1024-65535, not 8945/8946); repeatable
        --label <K=V>        add an image label; repeatable
        --server-mode        run the module in Foundry's server (OpenAPI) mode: writes the
                             `server.openapi` label from the binary's `--print-openapi`, and
                             sets CMOD_MODE=server and CMOD_SERVER_PORT
        --server-port <PORT> with --server-mode: the port (default 8080; 1024-65535, not
                             8945/8946)
        --openapi <FILE>     with --server-mode: use this document instead of running the
                             binary (e.g. for a binary that cannot run on this host)
        --env <K=V>          add an environment variable; repeatable
        --add-file <HOST:IMAGE>  copy a host file into the image at an absolute path; repeatable
        --ca-bundle <FILE>   CA bundle to ship (default /etc/ssl/certs/ca-certificates.crt)
        --busybox <FILE>     busybox to use as /bin/sh, tee, echo (default: the host's
                             /bin/sh, tee and echo; a static host busybox for static binaries)

ENVIRONMENT:
    SOURCE_DATE_EPOCH        timestamp for file mtimes and `created` (default 0: reproducible)
    CARGO                    cargo program to run (default `cargo`)
    CARGO_TARGET_DIR, CARGO_*  passed to cargo as usual

`build` checks the image it wrote; `check` exits 1 when an image violates a requirement,
including a `server.openapi` label that breaks Foundry's OpenAPI constraints.";

#[derive(Debug)]
enum Cli {
    Help,
    Build(Box<BuildOptions>),
    Check(PathBuf),
}

fn key_value(flag: &str, value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{flag} expects KEY=VALUE, got `{value}`")),
    }
}

fn parse_args(args: Vec<String>) -> Result<Cli, String> {
    let mut args = args.into_iter();
    let command = args.next();
    match command.as_deref() {
        None | Some("help" | "-h" | "--help") => return Ok(Cli::Help),
        Some("check") => {
            let path = args
                .next()
                .ok_or("check expects a layout directory or archive")?;
            if let Some(extra) = args.next() {
                return Err(format!("unexpected argument `{extra}`"));
            }
            return Ok(Cli::Check(PathBuf::from(path)));
        }
        Some("build") => {}
        Some(other) => {
            return Err(format!(
                "unknown command `{other}` (expected build or check)"
            ));
        }
    }
    let mut package = None;
    let mut bin = None;
    let mut no_build = false;
    let mut binary = None;
    let mut output = None;
    let mut archive = None;
    let mut tag = None;
    let mut user = None;
    let mut expose = Vec::new();
    let mut labels = BTreeMap::new();
    let mut env = Vec::new();
    let mut extra_files = Vec::new();
    let mut ca_bundle = None;
    let mut busybox = None;
    let mut profile = None;
    let mut manifest_path = None;
    let mut features = CargoFeatures::default();
    let mut allow_local_runtime = false;
    let mut server_mode = false;
    let mut server_port = None;
    let mut openapi = None;
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--server-mode" => server_mode = true,
            "--no-build" => no_build = true,
            "--all-features" => features.all_features = true,
            "--no-default-features" => features.default_features = false,
            "--default-features" => features.default_features = true,
            "--allow-local-runtime" => allow_local_runtime = true,
            _ => {}
        }
        if matches!(
            flag.as_str(),
            "--no-build"
                | "--server-mode"
                | "--all-features"
                | "--no-default-features"
                | "--default-features"
                | "--allow-local-runtime"
        ) {
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Ok(Cli::Help);
        }
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (flag, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} expects a value"))
        };
        match flag.as_str() {
            "-p" | "--package" => package = Some(value()?),
            "--bin" => bin = Some(value()?),
            "--binary" => binary = Some(PathBuf::from(value()?)),
            "--output" | "-o" => output = Some(PathBuf::from(value()?)),
            "--archive" => archive = Some(PathBuf::from(value()?)),
            "--tag" | "-t" => tag = Some(value()?),
            "--user" => {
                let v = value()?;
                user = Some(v.parse::<u32>().map_err(|_| {
                    format!("--user expects a numeric uid (Foundry requires one), got `{v}`")
                })?);
            }
            "--expose" => {
                let v = value()?;
                let port = v
                    .trim_end_matches("/tcp")
                    .parse::<u16>()
                    .map_err(|_| format!("--expose expects a port number, got `{v}`"))?;
                expose.push(port);
            }
            "--label" => {
                let (k, v) = key_value("--label", &value()?)?;
                labels.insert(k, v);
            }
            "--env" => env.push(key_value("--env", &value()?)?),
            "--add-file" => {
                let v = value()?;
                let (host, image) = v
                    .split_once(':')
                    .filter(|(h, i)| !h.is_empty() && i.starts_with('/'))
                    .ok_or_else(|| {
                        format!("--add-file expects HOST_PATH:/ABSOLUTE/IMAGE/PATH, got `{v}`")
                    })?;
                extra_files.push((PathBuf::from(host), image.to_owned()));
            }
            "--ca-bundle" => ca_bundle = Some(PathBuf::from(value()?)),
            "--busybox" => busybox = Some(PathBuf::from(value()?)),
            "--profile" => profile = Some(value()?),
            "--manifest-path" => manifest_path = Some(PathBuf::from(value()?)),
            "-F" | "--features" => features.features.push(value()?),
            "--server-port" => {
                let v = value()?;
                server_port = Some(
                    v.parse::<u16>()
                        .map_err(|_| format!("--server-port expects a port number, got `{v}`"))?,
                );
            }
            "--openapi" => openapi = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    let mut opts = match (no_build, binary, package) {
        (true, Some(path), _) => BuildOptions::prebuilt(path),
        (true, None, _) => return Err("--no-build needs --binary PATH".to_owned()),
        (false, Some(_), _) => {
            return Err(
                "--binary is only used with --no-build (or drop it to build with cargo)".to_owned(),
            );
        }
        (false, None, package) => {
            let mut opts = BuildOptions::cargo(String::new());
            opts.binary = BinarySource::Cargo { package, bin: None };
            opts
        }
    };
    if no_build
        && (manifest_path.is_some() || features != CargoFeatures::default() || profile.is_some())
    {
        return Err(
            "--manifest-path, --profile and the feature options choose how cargo builds; \
             with --no-build nothing is built"
                .to_owned(),
        );
    }
    opts.manifest_path = manifest_path;
    opts.features = features;
    opts.allow_local_runtime = allow_local_runtime;
    if !server_mode && (server_port.is_some() || openapi.is_some()) {
        return Err("--server-port and --openapi configure --server-mode; add it".to_owned());
    }
    if server_mode && labels.contains_key(SERVER_OPENAPI_LABEL) {
        return Err(format!(
            "--server-mode writes the `{SERVER_OPENAPI_LABEL}` label; drop --label {SERVER_OPENAPI_LABEL}=…"
        ));
    }
    opts.server_mode = server_mode.then(|| ServerMode {
        port: server_port.unwrap_or(ServerMode::default().port),
        openapi,
    });
    if let BinarySource::Cargo { bin: b, .. } = &mut opts.binary {
        *b = bin;
    } else if bin.is_some() {
        return Err("--bin selects a cargo binary target; with --no-build use --binary".to_owned());
    }
    if let Some(profile) = profile {
        opts.profile = profile;
    }
    opts.output_dir = output;
    opts.archive = archive;
    opts.tag = tag;
    if let Some(user) = user {
        opts.user = user;
    }
    opts.expose = expose;
    opts.labels = labels;
    opts.env = env;
    opts.extra_files = extra_files;
    if let Some(ca) = ca_bundle {
        opts.ca_bundle = ca;
    }
    opts.busybox = busybox;
    if let Some(epoch) = std::env::var_os("SOURCE_DATE_EPOCH") {
        let epoch = epoch.to_string_lossy();
        opts.source_date_epoch = epoch
            .trim()
            .parse()
            .map_err(|_| format!("SOURCE_DATE_EPOCH must be seconds since 1970, got `{epoch}`"))?;
    }
    Ok(Cli::Build(Box::new(opts)))
}

fn run_check(path: &Path) -> ExitCode {
    match cmod_image::check(path) {
        Ok(report) => {
            print!("{report}");
            if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                eprintln!("{} fails Foundry's container requirements", path.display());
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: cannot check {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = match parse_args(std::env::args().skip(1).collect()) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e}\n\nRun `cmod-image help` for usage.");
            return ExitCode::from(2);
        }
    };
    match cli {
        Cli::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Cli::Check(path) => run_check(&path),
        Cli::Build(opts) => {
            let report = match cmod_image::build(&opts) {
                Ok(report) => report,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            print!("{report}");
            let written = report.archive.as_ref().or(report.output_dir.as_ref());
            let Some(written) = written else {
                return ExitCode::SUCCESS;
            };
            println!(
                "\nchecking {} against Foundry's requirements:",
                written.display()
            );
            let code = run_check(written);
            if code == ExitCode::SUCCESS {
                let (transport, path) = match &report.archive {
                    Some(a) => ("oci-archive", a),
                    None => ("oci", written),
                };
                let name = report.reference.name.rsplit('/').next().unwrap_or_default();
                println!(
                    "\npush it (never as `latest`; see docs/container.md):\n    skopeo copy {transport}:{} docker://<stack>-container-registry.palantirfoundry.com/{name}:{}",
                    path.display(),
                    report.reference.tag
                );
            }
            code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_build_and_check() {
        let Ok(Cli::Build(opts)) = parse_args(args(
            "build -p quickstart --bin quickstart --archive q.tar --tag q:1 --expose 8080 --label a=b --env X=1",
        )) else {
            panic!("expected build");
        };
        assert_eq!(
            opts.binary,
            BinarySource::Cargo {
                package: Some("quickstart".into()),
                bin: Some("quickstart".into())
            }
        );
        assert_eq!(opts.expose, [8080]);
        assert_eq!(opts.labels.get("a").map(String::as_str), Some("b"));
        assert!(matches!(parse_args(args("check dir")), Ok(Cli::Check(_))));
    }

    #[test]
    fn builds_any_crate_with_cargo_feature_flags() {
        let Ok(Cli::Build(opts)) = parse_args(args(
            "build --manifest-path ../m/Cargo.toml -F a,b --features=c --allow-local-runtime",
        )) else {
            panic!("expected build");
        };
        assert_eq!(
            opts.binary,
            BinarySource::Cargo {
                package: None,
                bin: None
            }
        );
        assert_eq!(
            opts.manifest_path.as_deref(),
            Some(Path::new("../m/Cargo.toml"))
        );
        assert_eq!(
            opts.features.args(),
            ["--no-default-features", "--features", "a,b,c"]
        );
        assert!(opts.allow_local_runtime);

        let Ok(Cli::Build(opts)) = parse_args(args("build --no-default-features")) else {
            panic!("expected build");
        };
        assert_eq!(opts.features.args(), ["--no-default-features"]);
        assert!(!opts.allow_local_runtime);
        let Ok(Cli::Build(opts)) = parse_args(args("build -p q --default-features")) else {
            panic!("expected build");
        };
        assert!(opts.features.args().is_empty());
        let Ok(Cli::Build(opts)) = parse_args(args("build --all-features")) else {
            panic!("expected build");
        };
        assert_eq!(opts.features.args(), ["--all-features"]);

        let err = parse_args(args("build --no-build --binary x --features a")).unwrap_err();
        assert!(err.contains("--no-build"), "{err}");
    }

    #[test]
    fn server_mode_options() {
        let Ok(Cli::Build(opts)) = parse_args(args("build --server-mode --server-port 9000"))
        else {
            panic!("expected build");
        };
        assert_eq!(
            opts.server_mode,
            Some(ServerMode {
                port: 9000,
                openapi: None
            })
        );
        let Ok(Cli::Build(opts)) = parse_args(args("build --server-mode --openapi doc.json"))
        else {
            panic!("expected build");
        };
        let mode = opts.server_mode.unwrap();
        assert_eq!(mode.port, 8080);
        assert_eq!(mode.openapi.as_deref(), Some(Path::new("doc.json")));
        let err = parse_args(args("build --server-port 9000")).unwrap_err();
        assert!(err.contains("--server-mode"), "{err}");
        let err = parse_args(args("build --server-mode --label server.openapi={}")).unwrap_err();
        assert!(err.contains("drop --label"), "{err}");
    }

    #[test]
    fn usage_errors_are_specific() {
        let err = parse_args(args("build --no-build")).unwrap_err();
        assert!(err.contains("--binary"), "{err}");
        let err = parse_args(args("build -p x --user root")).unwrap_err();
        assert!(err.contains("numeric"), "{err}");
        let err = parse_args(args("build -p x --env NOEQUALS")).unwrap_err();
        assert!(err.contains("KEY=VALUE"), "{err}");
        let err = parse_args(args("frobnicate")).unwrap_err();
        assert!(err.contains("frobnicate"), "{err}");
    }
}
