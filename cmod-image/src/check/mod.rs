//! Checking an image against Foundry's container requirements (docs/protocol.md §8.1, §9).
//!
//! Works on any OCI image layout directory or archive — ours, `docker save` (Docker ≥ 25),
//! `skopeo copy … oci:DIR` or `oci-archive:FILE`, buildah/podman. Every problem found is reported
//! (not just the first) as a [`Violation`] whose message says what to change; documents that do
//! not parse at all are a [`CheckError`].
//!
//! Verified: the layout marker; every blob's digest and size against its descriptor; media
//! types; each layer's uncompressed digest against the config's `diff_ids`; platform
//! `linux/amd64`; a numeric non-root user; exposed ports in 1024–65535 and not 8945/8946; a tag
//! other than `latest`; `/bin/sh` and `tee` (for stdout log capture); the entrypoint present and
//! executable in the merged layers, built for amd64, with its dynamic loader or script
//! interpreter present. Warnings (not failures) cover `echo` (the default exec readiness probe)
//! and a CA bundle.
//!
//! [`check`] reads the documents and blobs; the merged filesystem of the layers and the checks
//! on it (shell, `tee`, entrypoint) are in `fs`. Nothing here depends on [`mod@crate::build`]:
//! the shared requirements are in [`crate::requirements`].

mod fs;
mod openapi;

use std::fmt;
use std::path::Path;

use crate::layout::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, Descriptor, Digest, ImageConfiguration, ImageIndex,
    ImageManifest, Layout, LayoutError, media_type, parse_json,
};
use crate::requirements::{RESERVED_PORTS, SERVER_MODE_ENV, SERVER_OPENAPI_LABEL, SERVER_PORT_VAR};
use fs::{Compression, Fs, check_filesystem, read_layer};
pub use openapi::{server_openapi_problems, server_port};

/// A layout that cannot be checked at all (unreadable, or a document that does not parse).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Reading or parsing the layout failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// One way an image fails Foundry's requirements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The `oci-layout` marker has an unknown version.
    LayoutVersion {
        /// The version found.
        version: String,
    },
    /// `index.json` lists no image.
    NoImage,
    /// The image runs as root (user `0`, `root`, or unset).
    RootUser {
        /// The configured user (empty when unset).
        user: String,
    },
    /// The user is a name, not a numeric uid.
    NonNumericUser {
        /// The configured user.
        user: String,
    },
    /// The image is not `linux/amd64`.
    WrongPlatform {
        /// The image's os.
        os: String,
        /// The image's architecture.
        architecture: String,
    },
    /// A multi-platform index has no `linux/amd64` image.
    NoAmd64InIndex {
        /// The platforms it has.
        platforms: Vec<String>,
    },
    /// A port reserved for Foundry's sidecars is exposed.
    ReservedPort {
        /// The exposed port entry (`8945/tcp`).
        port: String,
    },
    /// An exposed port is outside 1024–65535 (or unparseable).
    PortOutOfRange {
        /// The exposed port entry.
        port: String,
    },
    /// The image is tagged `latest`.
    LatestTag {
        /// The tag or name carrying it.
        reference: String,
    },
    /// `/bin/sh` is missing or not executable.
    MissingShell,
    /// No `tee` in the image's `PATH`.
    MissingTee {
        /// The `PATH` searched.
        path: String,
    },
    /// Neither `Entrypoint` nor `Cmd` is set.
    NoEntrypoint,
    /// The entrypoint binary is not in the layers.
    MissingEntrypoint {
        /// The entrypoint as configured.
        entrypoint: String,
    },
    /// The entrypoint exists but is not an executable file.
    EntrypointNotExecutable {
        /// The path in the image.
        path: String,
    },
    /// The entrypoint is an ELF binary for another architecture.
    EntrypointWrongArch {
        /// The path in the image.
        path: String,
        /// Its machine.
        machine: String,
    },
    /// The entrypoint's dynamic loader (or script interpreter) is not in the layers.
    MissingInterpreter {
        /// The entrypoint path.
        path: String,
        /// The missing loader or interpreter.
        interpreter: String,
    },
    /// A blob referenced by a descriptor is missing.
    MissingBlob {
        /// What it is (`manifest`, `config`, `layer 1`).
        what: String,
        /// Its digest.
        digest: String,
    },
    /// A blob's sha256 differs from its descriptor.
    DigestMismatch {
        /// What it is.
        what: String,
        /// The descriptor's digest.
        expected: String,
        /// The blob's actual digest.
        actual: String,
    },
    /// A blob's size differs from its descriptor.
    SizeMismatch {
        /// What it is.
        what: String,
        /// The descriptor's size.
        expected: u64,
        /// The blob's actual size.
        actual: u64,
    },
    /// A layer's uncompressed digest differs from the config's `diff_ids`.
    DiffIdMismatch {
        /// Layer index (0 = base).
        layer: usize,
        /// The config's diff id.
        expected: String,
        /// The actual digest of the uncompressed tar.
        actual: String,
    },
    /// The number of layers and `diff_ids` differ.
    LayerCountMismatch {
        /// Layers in the manifest.
        layers: usize,
        /// `rootfs.diff_ids` in the config.
        diff_ids: usize,
    },
    /// A descriptor has a media type that does not fit its role.
    BadMediaType {
        /// What it is.
        what: String,
        /// The media type.
        media_type: String,
    },
    /// A layer cannot be decompressed or read as tar.
    LayerUnreadable {
        /// Layer index.
        layer: usize,
        /// The error.
        error: String,
    },
    /// The `server.openapi` label breaks one of Foundry's constraints on the document.
    ServerOpenApi {
        /// What is wrong, naming the operation or schema.
        problem: String,
    },
    /// The `server.openapi` document's server port differs from the `CMOD_SERVER_PORT` the
    /// module will listen on.
    ServerPortMismatch {
        /// The port of the document's server URL.
        document: u16,
        /// The image's `CMOD_SERVER_PORT`.
        env: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LayoutVersion { version } => write!(
                f,
                "oci-layout has imageLayoutVersion `{version}`; expected `1.0.0`"
            ),
            Self::NoImage => write!(f, "index.json lists no image manifest"),
            Self::RootUser { user } if user.is_empty() => write!(
                f,
                "the image runs as root (no User set): Foundry requires a numeric non-root user; add `USER 5000` (or build with cmod-image, which sets it)"
            ),
            Self::RootUser { user } => write!(
                f,
                "the image runs as root (User `{user}`): Foundry requires a numeric non-root user such as `USER 5000`"
            ),
            Self::NonNumericUser { user } => write!(
                f,
                "User `{user}` is not numeric: Foundry requires a numeric uid (e.g. `USER 5000`), not a user name"
            ),
            Self::WrongPlatform { os, architecture } => write!(
                f,
                "the image is for {os}/{architecture}, but Foundry runs linux/amd64: build with `--platform=linux/amd64` (for cargo: the x86_64-unknown-linux-gnu target)"
            ),
            Self::NoAmd64InIndex { platforms } => write!(
                f,
                "the image index has no linux/amd64 image (it has: {}), but Foundry runs linux/amd64",
                platforms.join(", ")
            ),
            Self::ReservedPort { port } => write!(
                f,
                "exposed port {port} is reserved: Foundry's sidecars use 8945 and 8946; remove the EXPOSE or pick another port"
            ),
            Self::PortOutOfRange { port } => write!(
                f,
                "exposed port `{port}` is outside 1024-65535, which Foundry requires"
            ),
            Self::LatestTag { reference } => write!(
                f,
                "the image is tagged `{reference}`: Foundry does not accept `latest`; tag it with a version or commit id"
            ),
            Self::MissingShell => write!(
                f,
                "/bin/sh is missing (or not executable): Foundry's stdout log capture needs /bin/sh with `set` and `tee`; add busybox or use a base image with a shell"
            ),
            Self::MissingTee { path } => write!(
                f,
                "`tee` is not in the image's PATH ({path}): Foundry's stdout log capture needs it; add busybox or coreutils"
            ),
            Self::NoEntrypoint => write!(f, "the image has neither Entrypoint nor Cmd"),
            Self::MissingEntrypoint { entrypoint } => {
                write!(
                    f,
                    "the entrypoint `{entrypoint}` is not in the image's layers"
                )
            }
            Self::EntrypointNotExecutable { path } => write!(
                f,
                "the entrypoint {path} is not an executable file (mode lacks the x bits, or it is a directory)"
            ),
            Self::EntrypointWrongArch { path, machine } => write!(
                f,
                "the entrypoint {path} is built for {machine}, but Foundry runs linux/amd64"
            ),
            Self::MissingInterpreter { path, interpreter } => write!(
                f,
                "the entrypoint {path} needs {interpreter}, which is not in the image's layers (it cannot start)"
            ),
            Self::MissingBlob { what, digest } => {
                write!(f, "the {what} blob {digest} is missing from the layout")
            }
            Self::DigestMismatch {
                what,
                expected,
                actual,
            } => write!(
                f,
                "the {what} blob's digest is {actual}, but its descriptor says {expected} (corrupt or edited blob)"
            ),
            Self::SizeMismatch {
                what,
                expected,
                actual,
            } => write!(
                f,
                "the {what} blob is {actual} bytes, but its descriptor says {expected}"
            ),
            Self::DiffIdMismatch {
                layer,
                expected,
                actual,
            } => write!(
                f,
                "layer {layer}'s uncompressed digest is {actual}, but the config's rootfs.diff_ids says {expected}"
            ),
            Self::LayerCountMismatch { layers, diff_ids } => write!(
                f,
                "the manifest has {layers} layer(s) but the config lists {diff_ids} diff_id(s)"
            ),
            Self::BadMediaType { what, media_type } => {
                write!(f, "the {what} has unsupported media type `{media_type}`")
            }
            Self::LayerUnreadable { layer, error } => {
                write!(f, "layer {layer} cannot be read as a tar archive: {error}")
            }
            Self::ServerOpenApi { problem } => {
                write!(f, "label `{SERVER_OPENAPI_LABEL}`: {problem}")
            }
            Self::ServerPortMismatch { document, env } => write!(
                f,
                "label `{SERVER_OPENAPI_LABEL}` sends requests to port {document}, but the image sets {SERVER_PORT_VAR}={env}: \
                 regenerate the document with CMOD_SERVER_PORT={env} (cmod-image build --server-mode does both)"
            ),
        }
    }
}

/// The result of checking one image of a layout.
#[derive(Debug, Clone, Default)]
pub struct ImageCheck {
    /// The tag or name from `index.json`, if any.
    pub reference: Option<String>,
    /// The manifest digest.
    pub manifest_digest: String,
    /// The entrypoint argv, when configured.
    pub entrypoint: Vec<String>,
    /// The configured user.
    pub user: Option<String>,
    /// Number of filesystem entries after applying all layers.
    pub files: usize,
    /// Requirement failures.
    pub violations: Vec<Violation>,
    /// Things worth knowing that do not fail the check.
    pub warnings: Vec<String>,
}

/// The result of checking a layout: one entry per image it holds.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// The layout's images.
    pub images: Vec<ImageCheck>,
    /// Layout-level violations (marker, empty index).
    pub violations: Vec<Violation>,
}

impl CheckReport {
    /// True when no violation was found.
    pub fn is_ok(&self) -> bool {
        self.violations().next().is_none()
    }

    /// Every violation, layout-level first.
    pub fn violations(&self) -> impl Iterator<Item = &Violation> {
        self.violations
            .iter()
            .chain(self.images.iter().flat_map(|i| i.violations.iter()))
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for v in &self.violations {
            writeln!(f, "error: {v}")?;
        }
        for image in &self.images {
            writeln!(
                f,
                "image {} ({})",
                image.reference.as_deref().unwrap_or("<untagged>"),
                image.manifest_digest
            )?;
            writeln!(
                f,
                "  user {}, entrypoint {:?}, {} files",
                image.user.as_deref().unwrap_or("<unset>"),
                image.entrypoint,
                image.files
            )?;
            for v in &image.violations {
                writeln!(f, "  error: {v}")?;
            }
            for w in &image.warnings {
                writeln!(f, "  warning: {w}")?;
            }
            if image.violations.is_empty() {
                writeln!(f, "  ok: meets Foundry's container requirements")?;
            }
        }
        Ok(())
    }
}

/// Checks the layout directory or archive at `path`.
pub fn check(path: &Path) -> Result<CheckReport, CheckError> {
    check_layout(&Layout::open(path)?)
}

/// Checks an opened layout.
pub fn check_layout(layout: &Layout) -> Result<CheckReport, CheckError> {
    let mut report = CheckReport::default();
    let marker = layout.oci_layout()?;
    if marker.image_layout_version != "1.0.0" {
        report.violations.push(Violation::LayoutVersion {
            version: marker.image_layout_version,
        });
    }
    let index = layout.index()?;
    if index.manifests.is_empty() {
        report.violations.push(Violation::NoImage);
    }
    for desc in &index.manifests {
        let mut image = ImageCheck {
            reference: desc
                .annotations
                .get(ANNOTATION_IMAGE_NAME)
                .or_else(|| desc.annotations.get(ANNOTATION_REF_NAME))
                .cloned(),
            manifest_digest: desc.digest.clone(),
            ..ImageCheck::default()
        };
        check_tag(desc, &mut image.violations);
        let manifest_desc = if is_index(&desc.media_type) {
            match select_amd64(layout, desc, &mut image)? {
                Some(d) => d,
                None => {
                    report.images.push(image);
                    continue;
                }
            }
        } else {
            desc.clone()
        };
        check_image(layout, &manifest_desc, &mut image)?;
        report.images.push(image);
    }
    Ok(report)
}

fn is_index(media_type: &str) -> bool {
    media_type == media_type::IMAGE_INDEX || media_type == media_type::DOCKER_MANIFEST_LIST
}

fn check_tag(desc: &Descriptor, violations: &mut Vec<Violation>) {
    if desc
        .annotations
        .get(ANNOTATION_REF_NAME)
        .map(String::as_str)
        == Some("latest")
    {
        violations.push(Violation::LatestTag {
            reference: "latest".to_owned(),
        });
    } else if let Some(name) = desc.annotations.get(ANNOTATION_IMAGE_NAME)
        && name
            .rsplit_once(':')
            .is_some_and(|(_, tag)| tag == "latest")
    {
        violations.push(Violation::LatestTag {
            reference: name.clone(),
        });
    }
}

/// Reads a blob and verifies its digest and size; `None` when missing or mismatched.
fn verified_blob(
    layout: &Layout,
    what: &str,
    desc: &Descriptor,
    violations: &mut Vec<Violation>,
) -> Result<Option<Vec<u8>>, CheckError> {
    let data = match layout.read_blob(desc) {
        Ok(data) => data,
        Err(LayoutError::Missing { .. }) => {
            violations.push(Violation::MissingBlob {
                what: what.to_owned(),
                digest: desc.digest.clone(),
            });
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let mut ok = true;
    let actual = Digest::of(&data).to_string();
    if actual != desc.digest {
        violations.push(Violation::DigestMismatch {
            what: what.to_owned(),
            expected: desc.digest.clone(),
            actual,
        });
        ok = false;
    }
    if data.len() as u64 != desc.size {
        violations.push(Violation::SizeMismatch {
            what: what.to_owned(),
            expected: desc.size,
            actual: data.len() as u64,
        });
        ok = false;
    }
    Ok(ok.then_some(data))
}

fn select_amd64(
    layout: &Layout,
    desc: &Descriptor,
    image: &mut ImageCheck,
) -> Result<Option<Descriptor>, CheckError> {
    let Some(data) = verified_blob(layout, "image index", desc, &mut image.violations)? else {
        return Ok(None);
    };
    let nested: ImageIndex = parse_json(&format!("image index {}", desc.digest), &data)?;
    let found = nested.manifests.iter().find(|m| {
        m.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
    });
    match found {
        Some(m) => Ok(Some(m.clone())),
        None => {
            let platforms: Vec<String> = nested
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref())
                .map(|p| format!("{}/{}", p.os, p.architecture))
                .collect();
            image
                .violations
                .push(Violation::NoAmd64InIndex { platforms });
            Ok(None)
        }
    }
}

fn check_image(
    layout: &Layout,
    desc: &Descriptor,
    image: &mut ImageCheck,
) -> Result<(), CheckError> {
    let violations = &mut image.violations;
    if desc.media_type != media_type::IMAGE_MANIFEST
        && desc.media_type != media_type::DOCKER_MANIFEST
    {
        violations.push(Violation::BadMediaType {
            what: "manifest".to_owned(),
            media_type: desc.media_type.clone(),
        });
        return Ok(());
    }
    let Some(data) = verified_blob(layout, "manifest", desc, violations)? else {
        return Ok(());
    };
    image.manifest_digest = desc.digest.clone();
    let manifest: ImageManifest = parse_json(&format!("manifest {}", desc.digest), &data)?;
    if manifest.config.media_type != media_type::IMAGE_CONFIG
        && manifest.config.media_type != media_type::DOCKER_CONFIG
    {
        violations.push(Violation::BadMediaType {
            what: "config".to_owned(),
            media_type: manifest.config.media_type.clone(),
        });
    }
    let Some(config_data) = verified_blob(layout, "config", &manifest.config, violations)? else {
        return Ok(());
    };
    let config: ImageConfiguration =
        parse_json(&format!("config {}", manifest.config.digest), &config_data)?;
    check_config(&config, image);

    let violations = &mut image.violations;
    if manifest.layers.len() != config.rootfs.diff_ids.len() {
        violations.push(Violation::LayerCountMismatch {
            layers: manifest.layers.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        });
    }
    let mut fs = Fs::default();
    let mut layer_data = Vec::new();
    let mut layer_errors = Vec::new();
    for (i, layer) in manifest.layers.iter().enumerate() {
        let what = format!("layer {i}");
        let compression = match layer.media_type.as_str() {
            media_type::LAYER_TAR_GZIP | media_type::DOCKER_LAYER_GZIP => Compression::Gzip,
            media_type::LAYER_TAR => Compression::None,
            other => {
                violations.push(Violation::BadMediaType {
                    what,
                    media_type: other.to_owned(),
                });
                layer_data.push(None);
                continue;
            }
        };
        let Some(data) = verified_blob(layout, &what, layer, violations)? else {
            layer_data.push(None);
            continue;
        };
        match read_layer(&data, compression) {
            Ok((entries, diff_id)) => {
                let expected = config.rootfs.diff_ids.get(i);
                if expected.is_some_and(|e| *e != diff_id.to_string()) {
                    violations.push(Violation::DiffIdMismatch {
                        layer: i,
                        expected: expected.cloned().unwrap_or_default(),
                        actual: diff_id.to_string(),
                    });
                }
                fs.apply(i, entries);
            }
            Err(e) => {
                layer_errors.push(i);
                violations.push(Violation::LayerUnreadable {
                    layer: i,
                    error: e.to_string(),
                });
            }
        }
        layer_data.push(Some((data, compression)));
    }
    image.files = fs.len();
    if layer_data.iter().any(Option::is_none) || !layer_errors.is_empty() {
        // Missing files would only be noise on top of the broken layer(s) reported above.
        image.warnings.push(
            "filesystem checks (shell, tee, entrypoint) skipped: not every layer could be verified and read".to_owned(),
        );
        return Ok(());
    }
    check_filesystem(&fs, &config, &layer_data, image);
    Ok(())
}

/// Server mode (docs/protocol.md §4.9): the `server.openapi` label's document, and its port
/// against the module's `CMOD_SERVER_PORT`.
fn check_server_mode(runtime: &crate::layout::ContainerConfig, image: &mut ImageCheck) {
    let env = |name: &str| {
        runtime
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.split_once('='))
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
            .next_back()
    };
    let label = runtime
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVER_OPENAPI_LABEL));
    let Some(document) = label else {
        if env(SERVER_MODE_ENV.0).as_deref() == Some(SERVER_MODE_ENV.1) {
            image.warnings.push(format!(
                "{}={} but no `{SERVER_OPENAPI_LABEL}` label: Foundry cannot detect the functions \
                 (build with `cmod-image build --server-mode`)",
                SERVER_MODE_ENV.0, SERVER_MODE_ENV.1
            ));
        }
        return;
    };
    for problem in server_openapi_problems(document) {
        image.violations.push(Violation::ServerOpenApi { problem });
    }
    // Only for cmod modules in server mode (other servers choose their port their own way);
    // cmod's default port is 8080.
    let cmod_server = env(SERVER_MODE_ENV.0).as_deref() == Some(SERVER_MODE_ENV.1);
    let listens = env(SERVER_PORT_VAR).or_else(|| cmod_server.then(|| "8080".to_owned()));
    if let (Some(port), Some(listens)) = (server_port(document), listens)
        && listens.trim() != port.to_string()
    {
        image.violations.push(Violation::ServerPortMismatch {
            document: port,
            env: listens,
        });
    }
}

fn check_config(config: &ImageConfiguration, image: &mut ImageCheck) {
    let violations = &mut image.violations;
    if config.os != "linux" || config.architecture != "amd64" {
        violations.push(Violation::WrongPlatform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
        });
    }
    let runtime = config.config.clone().unwrap_or_default();
    let user = runtime.user.clone().unwrap_or_default();
    image.user = runtime.user.clone();
    let (uid, gid) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user.as_str(), None),
    };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if uid.is_empty() || uid == "root" || (numeric(uid) && uid.bytes().all(|b| b == b'0')) {
        violations.push(Violation::RootUser { user: user.clone() });
    } else if !numeric(uid) || gid.is_some_and(|g| !numeric(g)) {
        violations.push(Violation::NonNumericUser { user: user.clone() });
    }
    for port in runtime.exposed_ports.iter().flat_map(|p| p.keys()) {
        let number = port.split('/').next().unwrap_or_default();
        match number.parse::<u32>() {
            Ok(n) if RESERVED_PORTS.iter().any(|&r| u32::from(r) == n) => {
                violations.push(Violation::ReservedPort { port: port.clone() });
            }
            Ok(n) if (1024..=65535).contains(&n) => {}
            _ => violations.push(Violation::PortOutOfRange { port: port.clone() }),
        }
    }
    check_server_mode(&runtime, image);
    image.entrypoint = match (&runtime.entrypoint, &runtime.cmd) {
        (Some(e), _) if !e.is_empty() => e.clone(),
        (_, Some(c)) => c.clone(),
        _ => Vec::new(),
    };
}
