//! Shared by the integration tests: one release build of the quickstart example's image per
//! test binary (cargo's second build of the same package is a no-op), and small helpers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: panics are failures
#![allow(dead_code, unreachable_pub)] // each test binary uses a subset

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cmod_image::build::{BuildOptions, BuildReport, build};
use sha2::{Digest as _, Sha256};

/// The tag the tests give the quickstart image.
pub const TAG: &str = "quickstart:0.1.0-test";

/// A fresh directory under cargo's per-test temporary dir (`target/tmp`), named after the
/// test binary and `name`; emptied first.
pub fn work_dir(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let stem = exe
        .file_stem()
        .expect("test binary name")
        .to_string_lossy()
        .into_owned();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cmod-image")
        .join(stem)
        .join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clear work dir");
    }
    std::fs::create_dir_all(&dir).expect("create work dir");
    dir
}

/// The quickstart image, built once per test binary with the real `cargo build` (dev profile).
#[derive(Debug)]
pub struct QuickstartImage {
    pub report: BuildReport,
    pub layout: PathBuf,
    pub archive: PathBuf,
    pub work: PathBuf,
}

/// The image, built on first use. A failed build is remembered, so the other tests of the
/// binary fail at once with the same message instead of rebuilding.
pub fn quickstart() -> &'static QuickstartImage {
    static IMAGE: OnceLock<Result<QuickstartImage, String>> = OnceLock::new();
    let image = IMAGE.get_or_init(|| {
        let work = work_dir("quickstart");
        let layout = work.join("layout");
        let archive = work.join("quickstart.tar");
        let mut opts = BuildOptions::cargo("quickstart");
        // The dev profile reuses what `cargo test --workspace` already compiled, which keeps CI
        // within its time budget; what the image must contain does not depend on the profile
        // (`cmod-image build` defaults to release).
        opts.profile = "dev".to_owned();
        opts.output_dir = Some(layout.clone());
        opts.archive = Some(archive.clone());
        opts.tag = Some(TAG.to_owned());
        let report =
            build(&opts).map_err(|e| format!("building the quickstart image failed: {e}"))?;
        // Shown with --nocapture: the image size is part of what this test reports.
        eprintln!("{report}");
        Ok(QuickstartImage {
            report,
            layout,
            archive,
            work,
        })
    });
    match image {
        Ok(image) => image,
        Err(e) => panic!("{e}"),
    }
}

pub fn sha256(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Path of a blob in a layout directory, from a `sha256:` digest.
pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    layout.join("blobs/sha256").join(hex)
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("layer is gzip");
    out
}

/// The manifest and config of the single image in a layout directory.
pub fn manifest_and_config(layout: &Path) -> (serde_json::Value, serde_json::Value) {
    let index = read_json(&layout.join("index.json"));
    let digest = index["manifests"][0]["digest"].as_str().expect("digest");
    let manifest = read_json(&blob_path(layout, digest));
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config digest");
    let config = read_json(&blob_path(layout, config_digest));
    (manifest, config)
}

/// Whether this process runs as root (needed for `chroot`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}
