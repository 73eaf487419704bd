//! Building an image: `cargo build --release`, then one layer with everything the binary needs
//! to run on Foundry, written as an OCI image layout directory and/or archive.
//!
//! The layer holds:
//!
//! - `/app/<bin>`, the entrypoint (mode 0755);
//! - every shared library it links, at the path the host's loader resolved (`ldd`), and the
//!   dynamic loader at its `PT_INTERP` path (e.g. `/lib64/ld-linux-x86-64.so.2`);
//! - `/etc/ssl/certs/ca-certificates.crt` (from the host; `SSL_CERT_FILE` points at it);
//! - `/etc/passwd`, `/etc/group` with the runtime user (uid/gid 5000 by default),
//!   `/etc/nsswitch.conf` and a loopback `/etc/hosts` (container runtimes mount their own);
//! - `/tmp` with mode 1777;
//! - a shell for Foundry's stdout log capture (`/bin/sh` with the `set` builtin, and `tee`) plus
//!   `echo` for the default exec readiness probe: `--busybox FILE` if given; else, for a
//!   dynamically linked binary, the host's `/bin/sh`, `tee` and `echo` (they share the libc
//!   already in the image, so they are smaller than busybox); for a static binary, a static
//!   busybox found on the host (falling back to the host tools and their libraries).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use crate::elf::{self, ElfError};
use crate::layout::{
    ContainerConfig, Digest, History, Image, ImageConfiguration, ImageRef, Layer, LayoutError,
    RootFs,
};
use crate::rootfs::{Rootfs, RootfsError};

pub use crate::requirements::{APP_DIR, CA_BUNDLE, DEFAULT_USER, IMAGE_PATH, RESERVED_PORTS};
use crate::requirements::{SERVER_MODE_ENV, SERVER_OPENAPI_LABEL, SERVER_PORT_VAR};

const BUSYBOX_CANDIDATES: [&str; 4] = [
    "/bin/busybox",
    "/usr/bin/busybox",
    "/usr/local/bin/busybox",
    "/sbin/busybox",
];
const BUSYBOX_APPLETS: [&str; 12] = [
    "sh", "tee", "echo", "cat", "env", "ls", "sleep", "true", "false", "id", "mkdir", "rm",
];
const HOST_TOOL_DIRS: [&str; 4] = ["/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin"];
/// Directories glibc's loader searches without an `ld.so.cache`; libraries found elsewhere are
/// added to `LD_LIBRARY_PATH`.
const DEFAULT_LIB_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Errors while building an image. Each names the file, command or option to fix.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A command (cargo, ldd) could not be started.
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `cargo build` failed.
    #[error("`{command}` failed ({status}); fix the errors cargo printed above")]
    CargoFailed {
        /// The cargo command line.
        command: String,
        /// Cargo's exit status.
        status: ExitStatus,
    },
    /// Cargo's JSON output could not be read.
    #[error("cannot read cargo's build messages: {0}")]
    CargoMessages(#[source] io::Error),
    /// The package built no (matching) binary.
    #[error("{package} produced no binary{}; pass --bin NAME for the binary to package",
        bin.as_ref().map(|b| format!(" named `{b}`")).unwrap_or_default())]
    NoBinary {
        /// The package (`package `name``, or the manifest it came from).
        package: String,
        /// The requested binary name, if any.
        bin: Option<String>,
    },
    /// The package has several binaries and none was chosen.
    #[error("{package} has several binaries ({}); choose one with --bin NAME", names.join(", "))]
    AmbiguousBinary {
        /// The package (`package `name``, or the manifest it came from).
        package: String,
        /// Its binaries.
        names: Vec<String>,
    },
    /// A host file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file meant to run in the image is not an ELF executable.
    #[error(
        "{path} is not a Linux executable ({source}); cmod-image packages ELF binaries built by cargo"
    )]
    NotElf {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ElfError,
    },
    /// A binary is built for another architecture.
    #[error(
        "{path} is built for {machine}, but Foundry runs linux/amd64: build for the x86_64-unknown-linux-gnu target"
    )]
    WrongArch {
        /// The file.
        path: PathBuf,
        /// Its machine.
        machine: String,
    },
    /// `ldd` failed on a binary.
    #[error("`ldd {path}` failed: {detail}")]
    Ldd {
        /// The binary.
        path: PathBuf,
        /// ldd's error output.
        detail: String,
    },
    /// A shared library a binary links is not installed on the host.
    #[error(
        "{path} links `{library}`, which the host's dynamic loader cannot find (ldd: not found); install it or set LD_LIBRARY_PATH before building"
    )]
    LibraryNotFound {
        /// The binary.
        path: PathBuf,
        /// The missing library.
        library: String,
    },
    /// The CA bundle is missing.
    #[error(
        "CA certificate bundle {path} is missing ({source}); install the `ca-certificates` package or pass --ca-bundle FILE"
    )]
    MissingCaBundle {
        /// The expected bundle path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// No shell/tee/echo could be found for log capture.
    #[error(
        "no shell for Foundry's log capture: {detail}; install `busybox-static` or pass --busybox FILE"
    )]
    NoShell {
        /// What is missing.
        detail: String,
    },
    /// No tag was given and none could be derived.
    #[error("no image tag: pass --tag name:tag (Foundry rejects `latest`)")]
    TagRequired,
    /// No output was given and none could be derived.
    #[error("no output: pass --output DIR and/or --archive FILE.tar")]
    NoOutput,
    /// The runtime user is root.
    #[error("the image user must be a numeric non-root uid (Foundry refuses uid 0); got --user 0")]
    RootUser,
    /// A port cannot be exposed.
    #[error("port {port} cannot be exposed: {reason}")]
    Port {
        /// The port.
        port: u16,
        /// Why not.
        reason: &'static str,
    },
    /// An entry of the filesystem conflicts with another.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// Writing the layout failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The binary links `cmod-runtime`'s embedded local runtime (see [`crate::local_runtime`]).
    #[error(
        "{} contains cmod-runtime's embedded local runtime (found `{marker}`), which a production image leaves out. \
         Make it a feature of your crate: `cmod-runtime = {{ version = \"…\", default-features = false }}` with \
         `[features] default = [\"local\"]` and `local = [\"cmod-runtime/local\"]`; cmod-image builds without \
         default features unless you pass --default-features or --all-features. \
         Or pass --allow-local-runtime to package it anyway",
        path.display()
    )]
    LocalRuntimeLinked {
        /// The binary.
        path: PathBuf,
        /// The marker found in it.
        marker: &'static str,
    },
    /// Writing the layer's tar failed.
    #[error("cannot write the layer tar: {0}")]
    Tar(#[source] io::Error),
    /// The server-mode OpenAPI document could not be produced.
    #[error(
        "`{} --print-openapi` failed ({detail}); pass the document with --openapi FILE instead",
        path.display()
    )]
    PrintOpenApi {
        /// The binary.
        path: PathBuf,
        /// What went wrong (exit status and stderr, or the spawn error).
        detail: String,
    },
    /// The server-mode OpenAPI document breaks Foundry's constraints.
    #[error(
        "the `server.openapi` document ({source_of}) does not meet Foundry's constraints:\n  {}",
        problems.join("\n  ")
    )]
    ServerOpenApi {
        /// Where the document came from.
        source_of: String,
        /// Every problem found.
        problems: Vec<String>,
    },
}

/// Where the binary comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinarySource {
    /// `cargo build --release [--manifest-path M] [-p <package>] [--bin <bin>]`.
    Cargo {
        /// The package to build (default: the package of the manifest, as cargo chooses).
        package: Option<String>,
        /// The binary target, when the package has several.
        bin: Option<String>,
    },
    /// An already built binary (`--no-build --binary PATH`).
    Prebuilt {
        /// The binary.
        path: PathBuf,
        /// Version for the default tag and label, if known.
        version: Option<String>,
    },
}

/// Everything `build` needs. Start from [`BuildOptions::cargo`] or [`BuildOptions::prebuilt`].
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The binary to package.
    pub binary: BinarySource,
    /// Write the layout into this directory.
    pub output_dir: Option<PathBuf>,
    /// Write the layout as one tar archive here.
    pub archive: Option<PathBuf>,
    /// `name:tag`; default `<bin>:<package version>`.
    pub tag: Option<String>,
    /// Runtime uid and gid (non-zero).
    pub user: u32,
    /// Ports to expose (1024–65535, not 8945/8946). Only needed for HTTP probes.
    pub expose: Vec<u16>,
    /// Extra image labels (e.g. `server.openapi`).
    pub labels: BTreeMap<String, String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Extra files: host path → absolute image path.
    pub extra_files: Vec<(PathBuf, String)>,
    /// The CA bundle to copy (default [`CA_BUNDLE`]).
    pub ca_bundle: PathBuf,
    /// A busybox binary to use as the shell; default: see the module docs.
    pub busybox: Option<PathBuf>,
    /// Timestamp for every mtime and `created` (seconds since the epoch; `SOURCE_DATE_EPOCH`).
    pub source_date_epoch: i64,
    /// The cargo program (default: `$CARGO`, else `cargo`).
    pub cargo: Option<PathBuf>,
    /// The cargo profile to build with (default `release`).
    pub profile: String,
    /// `--manifest-path`: the `Cargo.toml` of the crate (or workspace) to build; default: cargo's
    /// search from the current directory.
    pub manifest_path: Option<PathBuf>,
    /// Which cargo features to build with (default: none of the default features).
    pub features: CargoFeatures,
    /// Package a binary that links `cmod-runtime`'s embedded local runtime (refused by default:
    /// see [`crate::local_runtime`]).
    pub allow_local_runtime: bool,
    /// Foundry's server (OpenAPI) mode: the `server.openapi` label and the module's
    /// `CMOD_MODE=server`, `CMOD_SERVER_PORT` (docs/protocol.md §4.9).
    pub server_mode: Option<ServerMode>,
}

/// How an image runs its module in Foundry's server mode (`--server-mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMode {
    /// The port the module listens on and the document's server names (default 8080).
    pub port: u16,
    /// The OpenAPI document to use; default: the binary's `--print-openapi` output (the binary
    /// runs on the build host, with `CMOD_SERVER_PORT` set to [`ServerMode::port`]).
    pub openapi: Option<PathBuf>,
}

impl Default for ServerMode {
    fn default() -> Self {
        Self {
            port: 8080,
            openapi: None,
        }
    }
}

/// The cargo feature selection of an image build.
///
/// Unlike `cargo build`, the default is **no default features**: a module crate enables the
/// embedded local runtime for development with `default = ["local"]`, and the production image
/// leaves it out. `default_features: true` (`--default-features`) keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CargoFeatures {
    /// `--features`: features to enable (comma or space separated lists are split).
    pub features: Vec<String>,
    /// `--all-features`.
    pub all_features: bool,
    /// Keep the package's default features (off by default).
    pub default_features: bool,
}

impl CargoFeatures {
    /// The cargo arguments for this selection.
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.all_features {
            args.push("--all-features".to_owned());
        } else if !self.default_features {
            args.push("--no-default-features".to_owned());
        }
        let features: Vec<&str> = self
            .features
            .iter()
            .flat_map(|f| f.split([',', ' ']))
            .filter(|f| !f.is_empty())
            .collect();
        if !features.is_empty() {
            args.push("--features".to_owned());
            args.push(features.join(","));
        }
        args
    }
}

/// One `cargo build` of an image's binary.
#[derive(Debug, Clone, Copy)]
pub struct CargoBuild<'a> {
    /// The cargo program.
    pub cargo: &'a Path,
    /// `--profile`.
    pub profile: &'a str,
    /// `--manifest-path`.
    pub manifest_path: Option<&'a Path>,
    /// `-p`.
    pub package: Option<&'a str>,
    /// `--bin`.
    pub bin: Option<&'a str>,
    /// Feature selection.
    pub features: &'a CargoFeatures,
}

impl CargoBuild<'_> {
    /// The arguments after the program name.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "build".to_owned(),
            "--profile".to_owned(),
            self.profile.to_owned(),
        ];
        if let Some(manifest) = self.manifest_path {
            args.push("--manifest-path".to_owned());
            args.push(manifest.display().to_string());
        }
        if let Some(package) = self.package {
            args.push("-p".to_owned());
            args.push(package.to_owned());
        }
        if let Some(bin) = self.bin {
            args.push("--bin".to_owned());
            args.push(bin.to_owned());
        }
        args.extend(self.features.args());
        args
    }

    /// The command line, for messages.
    pub fn command_line(&self) -> String {
        let mut line = String::from("cargo");
        for arg in self.args() {
            line.push(' ');
            line.push_str(&arg);
        }
        line
    }

    fn what(&self) -> String {
        match (self.package, self.manifest_path) {
            (Some(p), _) => format!("package `{p}`"),
            (None, Some(m)) => format!("the package of {}", m.display()),
            (None, None) => "the current package".to_owned(),
        }
    }
}

impl BuildOptions {
    fn with_binary(binary: BinarySource) -> Self {
        Self {
            binary,
            output_dir: None,
            archive: None,
            tag: None,
            user: DEFAULT_USER,
            expose: Vec::new(),
            labels: BTreeMap::new(),
            env: Vec::new(),
            extra_files: Vec::new(),
            ca_bundle: PathBuf::from(CA_BUNDLE),
            busybox: None,
            source_date_epoch: 0,
            cargo: None,
            profile: "release".to_owned(),
            manifest_path: None,
            features: CargoFeatures::default(),
            allow_local_runtime: false,
            server_mode: None,
        }
    }

    /// Builds `package` with cargo (release profile, no default features) and packages its
    /// binary.
    pub fn cargo(package: impl Into<String>) -> Self {
        Self::with_binary(BinarySource::Cargo {
            package: Some(package.into()),
            bin: None,
        })
    }

    /// Builds the package of the manifest at `manifest_path` (a crate anywhere, not only in this
    /// workspace; like `cargo build --manifest-path`) and packages its binary.
    pub fn manifest(manifest_path: impl Into<PathBuf>) -> Self {
        let mut opts = Self::with_binary(BinarySource::Cargo {
            package: None,
            bin: None,
        });
        opts.manifest_path = Some(manifest_path.into());
        opts
    }

    /// Packages an already built binary.
    pub fn prebuilt(path: impl Into<PathBuf>) -> Self {
        Self::with_binary(BinarySource::Prebuilt {
            path: path.into(),
            version: None,
        })
    }
}

/// What was built.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The image reference (`name:tag`).
    pub reference: ImageRef,
    /// Digest of the manifest (what a registry calls the image).
    pub manifest_digest: Digest,
    /// Digest of the configuration (Docker's image id).
    pub config_digest: Digest,
    /// Size of the gzip'd layer (what is pushed and pulled).
    pub compressed_size: u64,
    /// Size of the layer's uncompressed tar (the container's disk footprint).
    pub uncompressed_size: u64,
    /// The host binary that was packaged.
    pub binary: PathBuf,
    /// The entrypoint inside the image.
    pub entrypoint: String,
    /// Which shell provides log capture.
    pub shell: String,
    /// Shared libraries and loader copied into the image.
    pub libraries: Vec<String>,
    /// The layout directory, if written.
    pub output_dir: Option<PathBuf>,
    /// The layout archive, if written.
    pub archive: Option<PathBuf>,
}

fn mib(bytes: u64) -> String {
    // Display only; precision loss above 2^53 bytes is irrelevant.
    #[allow(clippy::cast_precision_loss)]
    let m = bytes as f64 / (1024.0 * 1024.0);
    format!("{m:.1} MiB")
}

impl fmt::Display for BuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "image      {}", self.reference)?;
        writeln!(f, "digest     {}", self.manifest_digest)?;
        writeln!(
            f,
            "entrypoint {} (from {})",
            self.entrypoint,
            self.binary.display()
        )?;
        writeln!(f, "shell      {}", self.shell)?;
        writeln!(f, "libraries  {}", self.libraries.join(" "))?;
        writeln!(
            f,
            "size       {} compressed ({} bytes), {} uncompressed ({} bytes)",
            mib(self.compressed_size),
            self.compressed_size,
            mib(self.uncompressed_size),
            self.uncompressed_size
        )?;
        if let Some(dir) = &self.output_dir {
            writeln!(f, "layout     {}", dir.display())?;
        }
        if let Some(archive) = &self.archive {
            writeln!(f, "archive    {}", archive.display())?;
        }
        Ok(())
    }
}

/// A binary produced by cargo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltBinary {
    /// Its path in the target directory.
    pub path: PathBuf,
    /// The binary target's name.
    pub name: String,
    /// The package version.
    pub version: Option<String>,
}

/// Version from a cargo package id: `path+file:///…/quickstart#0.1.0`,
/// `registry+…#name@1.2.3` or the older `name 1.2.3 (source)`.
fn version_from_package_id(id: &str) -> Option<String> {
    if let Some((_, frag)) = id.rsplit_once('#') {
        let v = frag.rsplit_once('@').map_or(frag, |(_, v)| v);
        return Some(v.to_owned());
    }
    id.split_whitespace().nth(1).map(str::to_owned)
}

/// Runs `cargo build` as described by `build` (cargo's progress and diagnostics go to this
/// process's stderr) and returns the binary it produced.
pub fn cargo_build(build: &CargoBuild<'_>) -> Result<BuiltBinary, BuildError> {
    let cargo = build.cargo;
    let bin = build.bin;
    let mut cmd = Command::new(cargo);
    cmd.args(build.args());
    cmd.arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|source| BuildError::Spawn {
        program: cargo.display().to_string(),
        source,
    })?;
    let mut found = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in io::BufReader::new(stdout).lines() {
            let line = line.map_err(BuildError::CargoMessages)?;
            // Non-JSON lines (from build scripts) are not ours to interpret.
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            let is_bin = msg["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"));
            if let (true, Some(exe), Some(name)) = (
                is_bin,
                msg["executable"].as_str(),
                msg["target"]["name"].as_str(),
            ) {
                found.push(BuiltBinary {
                    path: PathBuf::from(exe),
                    name: name.to_owned(),
                    version: msg["package_id"].as_str().and_then(version_from_package_id),
                });
            }
        }
    }
    let status = child.wait().map_err(|source| BuildError::Spawn {
        program: cargo.display().to_string(),
        source,
    })?;
    if !status.success() {
        return Err(BuildError::CargoFailed {
            command: build.command_line(),
            status,
        });
    }
    if let Some(bin) = bin {
        found.retain(|b| b.name == bin);
    }
    match found.len() {
        0 => Err(BuildError::NoBinary {
            package: build.what(),
            bin: bin.map(str::to_owned),
        }),
        1 => Ok(found.remove(0)),
        _ => Err(BuildError::AmbiguousBinary {
            package: build.what(),
            names: found.into_iter().map(|b| b.name).collect(),
        }),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path).map_err(|source| BuildError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The shared libraries `ldd` resolves for `path` (absolute host paths, loader excluded).
pub fn shared_libraries(path: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let out = Command::new("ldd")
        .arg(path)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BuildError::Spawn {
            program: "ldd".to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(BuildError::Ldd {
            path: path.to_path_buf(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    parse_ldd(path, &String::from_utf8_lossy(&out.stdout))
}

fn parse_ldd(path: &Path, output: &str) -> Result<Vec<PathBuf>, BuildError> {
    let mut libs = Vec::new();
    for line in output.lines() {
        let Some((name, rest)) = line.trim().split_once("=>") else {
            continue; // vdso or the loader itself
        };
        let rest = rest.trim();
        if rest.starts_with("not found") {
            return Err(BuildError::LibraryNotFound {
                path: path.to_path_buf(),
                library: name.trim().to_owned(),
            });
        }
        let lib = rest.split(" (0x").next().unwrap_or_default().trim();
        if lib.starts_with('/') {
            libs.push(PathBuf::from(lib));
        }
    }
    Ok(libs)
}

/// Collects files into the root filesystem, tracking the libraries copied.
struct Assembler {
    fs: Rootfs,
    libraries: BTreeSet<String>,
}

impl Assembler {
    /// Adds an ELF executable at `image_path`, with its loader and shared libraries.
    fn add_elf(&mut self, host: &Path, image_path: &str) -> Result<elf::ElfInfo, BuildError> {
        let data = read(host)?;
        let info = elf::parse(&data).map_err(|source| BuildError::NotElf {
            path: host.to_path_buf(),
            source,
        })?;
        if !info.is_amd64() {
            return Err(BuildError::WrongArch {
                path: host.to_path_buf(),
                machine: info.machine_name(),
            });
        }
        self.fs.add_file(image_path, data, 0o755)?;
        if let Some(interp) = &info.interpreter {
            if !self.libraries.contains(interp) {
                self.fs.add_file(interp, read(Path::new(interp))?, 0o755)?;
                self.libraries.insert(interp.clone());
            }
            for lib in shared_libraries(host)? {
                let image_lib = lib.to_string_lossy().into_owned();
                if self.libraries.insert(image_lib.clone()) {
                    self.fs.add_file(&image_lib, read(&lib)?, 0o644)?;
                }
            }
        }
        Ok(info)
    }
}

fn find_host_tool(name: &str) -> Option<PathBuf> {
    HOST_TOOL_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn static_busybox() -> Option<PathBuf> {
    BUSYBOX_CANDIDATES.iter().map(PathBuf::from).find(|p| {
        std::fs::read(p)
            .ok()
            .and_then(|data| elf::parse(&data).ok())
            .is_some_and(|info| info.is_amd64() && info.interpreter.is_none())
    })
}

fn add_busybox(asm: &mut Assembler, busybox: &Path) -> Result<String, BuildError> {
    let info = asm.add_elf(busybox, "/bin/busybox")?;
    for applet in BUSYBOX_APPLETS {
        asm.fs.add_symlink(&format!("/bin/{applet}"), "busybox")?;
    }
    let linkage = if info.interpreter.is_some() {
        "dynamic"
    } else {
        "static"
    };
    Ok(format!(
        "busybox ({linkage}, from {}) as /bin/sh, tee, echo, …",
        busybox.display()
    ))
}

/// The host's `/bin/sh`, `tee` and `echo`, or what is missing.
fn host_tools() -> Result<[(PathBuf, &'static str); 3], String> {
    let sh = PathBuf::from("/bin/sh");
    if !sh.exists() {
        return Err("the host has no /bin/sh".to_owned());
    }
    let find = |tool| {
        find_host_tool(tool).ok_or_else(|| format!("the host has no `{tool}` in /usr/bin or /bin"))
    };
    Ok([
        (sh, "/bin/sh"),
        (find("tee")?, "/bin/tee"),
        (find("echo")?, "/bin/echo"),
    ])
}

/// Adds the log-capture shell (`/bin/sh` with `set`, `tee`) and `echo`; returns a description.
///
/// An explicit `--busybox` always wins. Otherwise the smaller choice: for a dynamically linked
/// entrypoint the host's dash and coreutils (≈ 0.2 MiB, sharing the libc already in the image)
/// beat a static busybox (≈ 2 MiB); for a static entrypoint a static busybox avoids shipping
/// libc just for the shell.
fn add_shell(
    asm: &mut Assembler,
    busybox: Option<&Path>,
    entrypoint_is_static: bool,
) -> Result<String, BuildError> {
    if let Some(busybox) = busybox {
        return add_busybox(asm, busybox);
    }
    let found_busybox = static_busybox();
    if entrypoint_is_static && let Some(busybox) = &found_busybox {
        return add_busybox(asm, busybox);
    }
    match host_tools() {
        Ok(tools) => {
            let mut described = Vec::new();
            for (host, image_path) in tools {
                asm.add_elf(&host, image_path)?;
                let real = std::fs::canonicalize(&host).unwrap_or(host);
                described.push(format!("{image_path} (host {})", real.display()));
            }
            Ok(described.join(", "))
        }
        Err(detail) => match &found_busybox {
            Some(busybox) => add_busybox(asm, busybox),
            None => Err(BuildError::NoShell {
                detail: format!("no static busybox found and {detail}"),
            }),
        },
    }
}

fn validate(opts: &BuildOptions) -> Result<(), BuildError> {
    if opts.user == 0 {
        return Err(BuildError::RootUser);
    }
    let server_port = opts.server_mode.as_ref().map(|s| s.port);
    for &port in opts.expose.iter().chain(&server_port) {
        if RESERVED_PORTS.contains(&port) {
            return Err(BuildError::Port {
                port,
                reason: "8945 and 8946 are reserved for Foundry's sidecars",
            });
        }
        if port < 1024 {
            return Err(BuildError::Port {
                port,
                reason: "Foundry only allows ports 1024-65535",
            });
        }
    }
    Ok(())
}

/// The server-mode document, compact: from `--openapi FILE`, or printed by the binary for
/// `mode.port`; checked against Foundry's constraints and the port.
fn server_document(binary: &Path, mode: &ServerMode) -> Result<String, BuildError> {
    let (text, source_of) = match &mode.openapi {
        Some(file) => (
            String::from_utf8_lossy(&read(file)?).into_owned(),
            file.display().to_string(),
        ),
        None => {
            let out = Command::new(binary)
                .arg("--print-openapi")
                .env_clear()
                .env("PATH", IMAGE_PATH)
                .env(SERVER_PORT_VAR, mode.port.to_string())
                .stdin(Stdio::null())
                .output()
                .map_err(|e| BuildError::PrintOpenApi {
                    path: binary.to_path_buf(),
                    detail: e.to_string(),
                })?;
            if !out.status.success() {
                return Err(BuildError::PrintOpenApi {
                    path: binary.to_path_buf(),
                    detail: format!(
                        "{}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                });
            }
            (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                format!("`{} --print-openapi`", binary.display()),
            )
        }
    };
    let mut problems = crate::check::server_openapi_problems(&text);
    let port = crate::check::server_port(&text);
    if problems.is_empty() && port != Some(mode.port) {
        problems.push(format!(
            "its server is not `http://localhost:{}`, the port the module will listen on",
            mode.port
        ));
    }
    if !problems.is_empty() {
        return Err(BuildError::ServerOpenApi {
            source_of,
            problems,
        });
    }
    let compact: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| BuildError::ServerOpenApi {
            source_of: "the document".to_owned(),
            problems: vec![e.to_string()],
        })?;
    Ok(compact.to_string())
}

fn rfc3339(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Builds (or takes) the binary and writes the image. See the module docs for the contents.
pub fn build(opts: &BuildOptions) -> Result<BuildReport, BuildError> {
    validate(opts)?;
    let built = match &opts.binary {
        BinarySource::Cargo { package, bin } => {
            let cargo = opts
                .cargo
                .clone()
                .or_else(|| std::env::var_os("CARGO").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("cargo"));
            cargo_build(&CargoBuild {
                cargo: &cargo,
                profile: &opts.profile,
                manifest_path: opts.manifest_path.as_deref(),
                package: package.as_deref(),
                bin: bin.as_deref(),
                features: &opts.features,
            })?
        }
        BinarySource::Prebuilt { path, version } => BuiltBinary {
            path: path.clone(),
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "app".to_owned()),
            version: version.clone(),
        },
    };
    let reference = match (&opts.tag, &built.version) {
        (Some(tag), _) => ImageRef::parse(tag)?,
        (None, Some(version)) => ImageRef::parse(&format!("{}:{version}", built.name))?,
        (None, None) => return Err(BuildError::TagRequired),
    };
    let output_dir = match (&opts.output_dir, &opts.archive, &opts.binary) {
        (None, None, BinarySource::Cargo { .. }) => {
            // `<target>/release/<bin>` → `<target>/oci/<bin>`.
            let target = built.path.parent().and_then(Path::parent);
            Some(
                target
                    .ok_or(BuildError::NoOutput)?
                    .join("oci")
                    .join(&built.name),
            )
        }
        (None, None, BinarySource::Prebuilt { .. }) => return Err(BuildError::NoOutput),
        (dir, _, _) => dir.clone(),
    };

    let entrypoint = format!("{APP_DIR}/{}", built.name);
    let mut asm = Assembler {
        fs: Rootfs::new(),
        libraries: BTreeSet::new(),
    };
    if !opts.allow_local_runtime
        && let Some(marker) = crate::local_runtime::find_marker(&read(&built.path)?)
    {
        return Err(BuildError::LocalRuntimeLinked {
            path: built.path.clone(),
            marker,
        });
    }
    let server_document = match &opts.server_mode {
        Some(mode) => Some(server_document(&built.path, mode)?),
        None => None,
    };
    let entry = asm.add_elf(&built.path, &entrypoint)?;
    let shell = add_shell(
        &mut asm,
        opts.busybox.as_deref(),
        entry.interpreter.is_none(),
    )?;
    let ca = std::fs::read(&opts.ca_bundle).map_err(|source| BuildError::MissingCaBundle {
        path: opts.ca_bundle.clone(),
        source,
    })?;
    asm.fs.add_file(CA_BUNDLE, ca, 0o644)?;
    let uid = opts.user;
    asm.fs.add_file(
        "/etc/passwd",
        format!("root:x:0:0:root:/root:/sbin/nologin\ncmod:x:{uid}:{uid}:cmod compute module:/tmp:/sbin/nologin\n").into_bytes(),
        0o644,
    )?;
    asm.fs.add_file(
        "/etc/group",
        format!("root:x:0:\ncmod:x:{uid}:\n").into_bytes(),
        0o644,
    )?;
    asm.fs.add_file(
        "/etc/nsswitch.conf",
        b"passwd: files\ngroup: files\nhosts: files dns\n".to_vec(),
        0o644,
    )?;
    asm.fs.add_file(
        "/etc/hosts",
        b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_vec(),
        0o644,
    )?;
    asm.fs.add_dir("/tmp", 0o1777)?;
    for (host, image_path) in &opts.extra_files {
        let meta = std::fs::metadata(host).map_err(|source| BuildError::Read {
            path: host.clone(),
            source,
        })?;
        let mode = if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        asm.fs.add_file(image_path, read(host)?, mode)?;
    }

    let created = rfc3339(opts.source_date_epoch);
    let mtime = u64::try_from(opts.source_date_epoch).unwrap_or(0);
    let tar = asm.fs.to_tar(mtime).map_err(BuildError::Tar)?;
    let layer = Layer::from_tar(&tar)?;

    let mut env = vec![
        format!("PATH={IMAGE_PATH}"),
        format!("SSL_CERT_FILE={CA_BUNDLE}"),
        // glibc's per-thread malloc arenas inflate a multi-threaded module's peak RSS; two
        // arenas cut the MAX_CONCURRENT_TASKS=8 peak by about a third at no throughput cost
        // (BENCHMARKS.md). `--env MALLOC_ARENA_MAX=…` overrides it.
        "MALLOC_ARENA_MAX=2".to_owned(),
    ];
    let extra_lib_dirs: BTreeSet<&str> = asm
        .libraries
        .iter()
        .filter_map(|l| Path::new(l).parent()?.to_str())
        .filter(|d| !DEFAULT_LIB_DIRS.contains(d))
        .collect();
    if !extra_lib_dirs.is_empty() {
        let dirs: Vec<&str> = extra_lib_dirs.into_iter().collect();
        env.push(format!("LD_LIBRARY_PATH={}", dirs.join(":")));
    }
    if let Some(mode) = &opts.server_mode {
        for (k, v) in [
            (SERVER_MODE_ENV.0, SERVER_MODE_ENV.1.to_owned()),
            (SERVER_PORT_VAR, mode.port.to_string()),
        ] {
            if !opts.env.iter().any(|(key, _)| key == k) {
                env.push(format!("{k}={v}"));
            }
        }
    }
    env.extend(opts.env.iter().map(|(k, v)| format!("{k}={v}")));
    let mut labels = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_owned(),
            built.name.clone(),
        ),
        (
            "org.opencontainers.image.created".to_owned(),
            created.clone(),
        ),
        ("dev.cmod.image.log-capture".to_owned(), shell.clone()),
    ]);
    if let Some(version) = &built.version {
        labels.insert(
            "org.opencontainers.image.version".to_owned(),
            version.clone(),
        );
    }
    labels.extend(opts.labels.clone());
    if let Some(document) = server_document {
        labels.insert(SERVER_OPENAPI_LABEL.to_owned(), document);
    }
    let exposed = (!opts.expose.is_empty()).then(|| {
        opts.expose
            .iter()
            .map(|p| (format!("{p}/tcp"), serde_json::json!({})))
            .collect()
    });
    let config = ImageConfiguration {
        created: Some(created.clone()),
        architecture: "amd64".to_owned(),
        os: "linux".to_owned(),
        variant: None,
        config: Some(ContainerConfig {
            user: Some(uid.to_string()),
            exposed_ports: exposed,
            env: Some(env),
            entrypoint: Some(vec![entrypoint.clone()]),
            cmd: None,
            working_dir: Some(APP_DIR.to_owned()),
            labels: Some(labels),
            stop_signal: Some("SIGTERM".to_owned()),
        }),
        rootfs: RootFs {
            kind: "layers".to_owned(),
            diff_ids: vec![layer.diff_id.to_string()],
        },
        history: Some(vec![History {
            created: Some(created),
            created_by: Some(format!(
                "cmod-image build: {entrypoint}, {} shared libraries, CA certificates, {shell}",
                asm.libraries.len()
            )),
            comment: Some("cmod-image".to_owned()),
            empty_layer: None,
        }]),
    };
    let compressed_size = layer.descriptor.size;
    let uncompressed_size = layer.uncompressed_size;
    let image = Image {
        config,
        layers: vec![layer],
        reference: Some(reference.clone()),
        index_annotations: BTreeMap::new(),
    };
    let files = image.to_layout_files()?;
    if let Some(dir) = &output_dir {
        files.write_dir(dir)?;
    }
    if let Some(archive) = &opts.archive {
        if let Some(parent) = archive.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| {
                BuildError::Layout(LayoutError::Io {
                    path: parent.to_path_buf(),
                    source,
                })
            })?;
        }
        files.write_archive(archive)?;
    }
    Ok(BuildReport {
        reference,
        manifest_digest: files.manifest_digest,
        config_digest: files.config_digest,
        compressed_size,
        uncompressed_size,
        binary: built.path,
        entrypoint,
        shell,
        libraries: asm.libraries.into_iter().collect(),
        output_dir,
        archive: opts.archive.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_is_parsed() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        let libs = parse_ldd(Path::new("x"), out).unwrap();
        assert_eq!(
            libs,
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6")
            ]
        );
        let err = parse_ldd(Path::new("x"), "\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(err.to_string().contains("libfoo.so.1"), "{err}");
    }

    #[test]
    fn package_id_versions() {
        assert_eq!(
            version_from_package_id("path+file:///work/main/examples/quickstart#0.1.0").as_deref(),
            Some("0.1.0")
        );
        assert_eq!(
            version_from_package_id("path+file:///w/x#quick-start@2.0.1").as_deref(),
            Some("2.0.1")
        );
        assert_eq!(
            version_from_package_id("quickstart 0.1.0 (path+file:///w)").as_deref(),
            Some("0.1.0")
        );
    }

    #[test]
    fn reserved_and_low_ports_and_root_are_rejected() {
        let mut opts = BuildOptions::prebuilt("/nonexistent");
        opts.expose = vec![8945];
        assert!(matches!(
            validate(&opts),
            Err(BuildError::Port { port: 8945, .. })
        ));
        opts.expose = vec![80];
        assert!(matches!(
            validate(&opts),
            Err(BuildError::Port { port: 80, .. })
        ));
        opts.expose = vec![8080];
        opts.user = 0;
        assert!(matches!(validate(&opts), Err(BuildError::RootUser)));
    }

    #[test]
    fn a_binary_with_the_local_runtime_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let binary = dir.path().join("module");
        std::fs::write(&binary, b"#!/bin/sh\n# cmod local runtime CA\n").expect("write");
        let mut opts = BuildOptions::prebuilt(&binary);
        opts.tag = Some("module:1".to_owned());
        opts.output_dir = Some(dir.path().join("out"));
        let err = build(&opts).expect_err("refused");
        assert!(
            matches!(&err, BuildError::LocalRuntimeLinked { marker, .. } if *marker == "cmod local runtime CA"),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains("--allow-local-runtime"), "{message}");
        assert!(message.contains("default-features = false"), "{message}");
        // Allowed: packaging goes on (and fails here only because this is not a real ELF).
        opts.allow_local_runtime = true;
        let err = build(&opts).expect_err("not an ELF");
        assert!(matches!(err, BuildError::NotElf { .. }), "{err}");
    }

    #[test]
    fn cargo_arguments_carry_the_manifest_package_and_features() {
        let features = CargoFeatures {
            features: vec!["a,b".to_owned(), "c".to_owned()],
            ..CargoFeatures::default()
        };
        let build = CargoBuild {
            cargo: Path::new("cargo"),
            profile: "release",
            manifest_path: Some(Path::new("m/Cargo.toml")),
            package: None,
            bin: Some("svc"),
            features: &features,
        };
        assert_eq!(
            build.command_line(),
            "cargo build --profile release --manifest-path m/Cargo.toml --bin svc --no-default-features --features a,b,c"
        );
        assert_eq!(build.what(), "the package of m/Cargo.toml");
    }
}
