//! `check` rejects images that break Foundry's requirements, each with the right message, and
//! accepts a minimal valid one. The images are crafted with cmod-image's layout writer (no cargo
//! build needed), as directories and archives, plus one Docker-style multi-layer image.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: panics are failures

use std::collections::BTreeMap;
use std::path::Path;

use cmod_image::check::{CheckReport, Violation};
use cmod_image::layout::{
    ANNOTATION_REF_NAME, ContainerConfig, Image, ImageConfiguration, ImageRef, Layer, RootFs,
};
use cmod_image::rootfs::Rootfs;

/// A minimal image that meets every requirement: a script entrypoint, /bin/sh, tee, echo, CAs.
fn good_fs() -> Rootfs {
    let mut fs = Rootfs::new();
    fs.add_file("/app/module", b"#!/bin/sh\necho serving\n".to_vec(), 0o755)
        .unwrap();
    for tool in ["sh", "tee", "echo"] {
        fs.add_file(&format!("/bin/{tool}"), b"stand-in".to_vec(), 0o755)
            .unwrap();
    }
    fs.add_file(
        "/etc/ssl/certs/ca-certificates.crt",
        b"-----BEGIN CERTIFICATE-----\n".to_vec(),
        0o644,
    )
    .unwrap();
    fs.add_dir("/tmp", 0o1777).unwrap();
    fs
}

fn config_for(layers: &[Layer]) -> ImageConfiguration {
    ImageConfiguration {
        created: None,
        architecture: "amd64".to_owned(),
        os: "linux".to_owned(),
        variant: None,
        config: Some(ContainerConfig {
            user: Some("5000".to_owned()),
            env: Some(vec!["PATH=/usr/bin:/bin".to_owned()]),
            entrypoint: Some(vec!["/app/module".to_owned()]),
            ..ContainerConfig::default()
        }),
        rootfs: RootFs {
            kind: "layers".to_owned(),
            diff_ids: layers.iter().map(|l| l.diff_id.to_string()).collect(),
        },
        history: None,
    }
}

fn image_of(layers_fs: &[Rootfs]) -> Image {
    let layers: Vec<Layer> = layers_fs
        .iter()
        .map(|fs| Layer::from_tar(&fs.to_tar(0).unwrap()).unwrap())
        .collect();
    Image {
        config: config_for(&layers),
        layers,
        reference: Some(ImageRef::parse("module:1.0.0").unwrap()),
        index_annotations: BTreeMap::new(),
    }
}

fn good_image() -> Image {
    image_of(&[good_fs()])
}

/// Writes `image` as a layout directory and an archive, checks both, and returns the report
/// (asserting both forms agree).
fn check_image(image: &Image) -> CheckReport {
    let dir = tempfile::tempdir().unwrap();
    let files = image.to_layout_files().unwrap();
    files.write_dir(&dir.path().join("layout")).unwrap();
    files.write_archive(&dir.path().join("image.tar")).unwrap();
    let from_dir = cmod_image::check(&dir.path().join("layout")).unwrap();
    let from_archive = cmod_image::check(&dir.path().join("image.tar")).unwrap();
    let a: Vec<_> = from_dir.violations().cloned().collect();
    let b: Vec<_> = from_archive.violations().cloned().collect();
    assert_eq!(a, b, "directory and archive give the same verdict");
    from_dir
}

/// Checks `image` and asserts it fails with exactly `expected` violations; returns their messages.
fn violations(image: &Image) -> Vec<(Violation, String)> {
    let report = check_image(image);
    assert!(!report.is_ok(), "expected a failing check");
    report
        .violations()
        .map(|v| (v.clone(), v.to_string()))
        .collect()
}

fn single(image: &Image) -> (Violation, String) {
    let mut v = violations(image);
    assert_eq!(v.len(), 1, "exactly one violation expected, got {v:#?}");
    v.remove(0)
}

fn with_config(f: impl FnOnce(&mut ContainerConfig)) -> Image {
    let mut image = good_image();
    f(image.config.config.as_mut().unwrap());
    image
}

#[test]
fn a_minimal_valid_image_passes() {
    let report = check_image(&good_image());
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.images.len(), 1);
    assert_eq!(report.images[0].reference.as_deref(), Some("module:1.0.0"));
    assert!(report.images[0].warnings.is_empty(), "{report}");
}

#[test]
fn root_user_is_rejected() {
    for user in [Some("0"), Some("root"), Some("0:0"), None] {
        let image = with_config(|c| c.user = user.map(str::to_owned));
        let (v, msg) = single(&image);
        assert!(matches!(v, Violation::RootUser { .. }), "{user:?}: {v:?}");
        assert!(
            msg.contains("runs as root") && msg.contains("USER 5000"),
            "{msg}"
        );
    }
}

#[test]
fn non_numeric_user_is_rejected() {
    for user in ["app", "5000:staff"] {
        let image = with_config(|c| c.user = Some(user.to_owned()));
        let (v, msg) = single(&image);
        assert_eq!(
            v,
            Violation::NonNumericUser {
                user: user.to_owned()
            }
        );
        assert!(msg.contains("not numeric"), "{msg}");
    }
    let image = with_config(|c| c.user = Some("5001:5001".to_owned()));
    assert!(check_image(&image).is_ok());
}

#[test]
fn arm64_is_rejected() {
    let mut image = good_image();
    image.config.architecture = "arm64".to_owned();
    let (v, msg) = single(&image);
    assert!(matches!(v, Violation::WrongPlatform { .. }));
    assert!(
        msg.contains("linux/arm64") && msg.contains("linux/amd64"),
        "{msg}"
    );
}

#[test]
fn reserved_and_out_of_range_ports_are_rejected() {
    for port in ["8945/tcp", "8946/tcp"] {
        let image = with_config(|c| {
            c.exposed_ports = Some(BTreeMap::from([(port.to_owned(), serde_json::json!({}))]));
        });
        let (v, msg) = single(&image);
        assert_eq!(
            v,
            Violation::ReservedPort {
                port: port.to_owned()
            }
        );
        assert!(msg.contains(port) && msg.contains("reserved"), "{msg}");
    }
    let image = with_config(|c| {
        c.exposed_ports = Some(BTreeMap::from([(
            "80/tcp".to_owned(),
            serde_json::json!({}),
        )]));
    });
    let (v, msg) = single(&image);
    assert_eq!(
        v,
        Violation::PortOutOfRange {
            port: "80/tcp".to_owned()
        }
    );
    assert!(msg.contains("1024-65535"), "{msg}");
    let image = with_config(|c| {
        c.exposed_ports = Some(BTreeMap::from([(
            "8080/tcp".to_owned(),
            serde_json::json!({}),
        )]));
    });
    assert!(
        check_image(&image).is_ok(),
        "a probe port like 8080 is fine"
    );
}

#[test]
fn missing_shell_is_rejected() {
    let mut fs = Rootfs::new();
    for (path, node) in good_fs().entries() {
        if path == "/bin/sh" {
            continue;
        }
        match node {
            cmod_image::rootfs::Node::Dir { mode } => fs.add_dir(&path, *mode).unwrap(),
            cmod_image::rootfs::Node::File { mode, data } => {
                fs.add_file(&path, data.clone(), *mode).unwrap();
            }
            cmod_image::rootfs::Node::Symlink { target } => fs.add_symlink(&path, target).unwrap(),
        }
    }
    // The script entrypoint needs /bin/sh as well: both are reported.
    let v = violations(&image_of(&[fs]));
    assert!(
        v.iter().any(|(v, msg)| *v == Violation::MissingShell
            && msg.contains("/bin/sh")
            && msg.contains("log capture")),
        "{v:#?}"
    );
    assert!(
        v.iter()
            .any(|(v, _)| matches!(v, Violation::MissingInterpreter { .. }))
    );
}

#[test]
fn a_later_layer_deleting_tee_is_seen_through_symlinks_and_whiteouts() {
    // Docker-style: /bin -> usr/bin, tools in /usr/bin, then a layer whiting out tee.
    let mut base = Rootfs::new();
    base.add_symlink("/bin", "usr/bin").unwrap();
    for tool in ["dash", "tee", "echo"] {
        base.add_file(&format!("/usr/bin/{tool}"), b"x".to_vec(), 0o755)
            .unwrap();
    }
    base.add_symlink("/usr/bin/sh", "dash").unwrap();
    base.add_file("/app/module", b"#!/bin/sh\n".to_vec(), 0o755)
        .unwrap();
    base.add_file("/etc/ssl/certs/ca-certificates.crt", b"pem".to_vec(), 0o644)
        .unwrap();
    let good = image_of(std::slice::from_ref(&base));
    assert!(
        check_image(&good).is_ok(),
        "merged-/usr layout resolves /bin/sh"
    );

    let mut delete = Rootfs::new();
    delete
        .add_file("/usr/bin/.wh.tee", Vec::new(), 0o644)
        .unwrap();
    let (v, msg) = single(&image_of(&[base, delete]));
    assert!(matches!(v, Violation::MissingTee { .. }), "{v:?}");
    assert!(msg.contains("tee") && msg.contains("log capture"), "{msg}");
}

#[test]
fn missing_or_foreign_entrypoint_is_rejected() {
    let image = with_config(|c| c.entrypoint = Some(vec!["/app/nope".to_owned()]));
    let (v, msg) = single(&image);
    assert_eq!(
        v,
        Violation::MissingEntrypoint {
            entrypoint: "/app/nope".to_owned()
        }
    );
    assert!(msg.contains("/app/nope"), "{msg}");

    let image = with_config(|c| {
        c.entrypoint = None;
        c.cmd = None;
    });
    assert_eq!(single(&image).0, Violation::NoEntrypoint);

    // An arm64 ELF as entrypoint.
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[18..20].copy_from_slice(&cmod_image::elf::EM_AARCH64.to_le_bytes());
    let mut fs = good_fs();
    fs.add_file("/app/module", elf, 0o755).unwrap();
    let (v, msg) = single(&image_of(&[fs]));
    assert!(matches!(v, Violation::EntrypointWrongArch { .. }), "{v:?}");
    assert!(msg.contains("arm64"), "{msg}");

    // A dynamically linked amd64 binary (this test) without its loader in the image.
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let interp = cmod_image::elf::parse(&exe).unwrap().interpreter;
    if let Some(interp) = interp {
        let mut fs = good_fs();
        fs.add_file("/app/module", exe, 0o755).unwrap();
        let (v, msg) = single(&image_of(&[fs]));
        assert_eq!(
            v,
            Violation::MissingInterpreter {
                path: "/app/module".to_owned(),
                interpreter: interp.clone()
            }
        );
        assert!(
            msg.contains(&interp) && msg.contains("cannot start"),
            "{msg}"
        );
    }

    // Not executable.
    let mut fs = good_fs();
    fs.add_file("/app/module", b"#!/bin/sh\n".to_vec(), 0o644)
        .unwrap();
    assert!(matches!(
        single(&image_of(&[fs])).0,
        Violation::EntrypointNotExecutable { .. }
    ));
}

#[test]
fn a_server_openapi_label_is_checked_against_foundrys_constraints() {
    let good = serde_json::json!({
        "openapi": "3.0.3",
        "info": {"title": "m", "version": "0"},
        "servers": [{"url": "http://localhost:8080"}],
        "paths": {"/add": {"post": {"operationId": "add", "responses": {"200": {
            "description": "r", "content": {"application/json": {"schema": {"type": "integer"}}}}}}}}
    });
    let labelled = |doc: &serde_json::Value, env: &[&str]| {
        with_config(|c| {
            c.labels = Some(BTreeMap::from([(
                "server.openapi".to_owned(),
                doc.to_string(),
            )]));
            c.env
                .get_or_insert_with(Vec::new)
                .extend(env.iter().map(|e| (*e).to_owned()));
        })
    };
    let report = check_image(&labelled(&good, &["CMOD_MODE=server"]));
    assert!(report.is_ok(), "{report}");

    let mut bad = good.clone();
    bad["paths"]["/add"]["post"]["responses"]["200"]["content"]["application/json"]["schema"] =
        serde_json::json!({"oneOf": [{"type": "integer"}, {"type": "string"}]});
    let (v, msg) = single(&labelled(&bad, &[]));
    assert!(matches!(v, Violation::ServerOpenApi { .. }), "{v:?}");
    assert!(
        msg.starts_with("label `server.openapi`: the schema at") && msg.contains("`oneOf`"),
        "{msg}"
    );

    let (v, msg) = single(&labelled(&good, &["CMOD_SERVER_PORT=9000"]));
    assert_eq!(
        v,
        Violation::ServerPortMismatch {
            document: 8080,
            env: "9000".to_owned()
        }
    );
    assert!(msg.contains("CMOD_SERVER_PORT=9000"), "{msg}");

    // CMOD_MODE=server without the label: a warning, not a failure.
    let report = check_image(&with_config(|c| {
        c.env
            .get_or_insert_with(Vec::new)
            .push("CMOD_MODE=server".to_owned());
    }));
    assert!(report.is_ok(), "{report}");
    assert!(
        report.images[0]
            .warnings
            .iter()
            .any(|w| w.contains("no `server.openapi` label")),
        "{report}"
    );
}

#[test]
fn latest_tag_is_rejected() {
    let mut image = good_image();
    image
        .index_annotations
        .insert(ANNOTATION_REF_NAME.to_owned(), "latest".to_owned());
    let (v, msg) = single(&image);
    assert!(matches!(v, Violation::LatestTag { .. }));
    assert!(msg.contains("latest"), "{msg}");
}

#[test]
fn several_problems_are_all_reported() {
    let mut image = with_config(|c| {
        c.user = Some("0".to_owned());
        c.exposed_ports = Some(BTreeMap::from([(
            "8946/tcp".to_owned(),
            serde_json::json!({}),
        )]));
    });
    image.config.architecture = "arm64".to_owned();
    let v: Vec<Violation> = violations(&image).into_iter().map(|(v, _)| v).collect();
    assert_eq!(v.len(), 3, "{v:#?}");
    assert!(v.iter().any(|v| matches!(v, Violation::RootUser { .. })));
    assert!(
        v.iter()
            .any(|v| matches!(v, Violation::WrongPlatform { .. }))
    );
    assert!(
        v.iter()
            .any(|v| matches!(v, Violation::ReservedPort { .. }))
    );
}

fn write_layout(image: &Image, dir: &Path) -> cmod_image::layout::LayoutFiles {
    let files = image.to_layout_files().unwrap();
    files.write_dir(dir).unwrap();
    files
}

#[test]
fn corrupted_blobs_and_wrong_diff_ids_are_rejected() {
    let image = good_image();
    let dir = tempfile::tempdir().unwrap();
    let files = write_layout(&image, dir.path());

    // Flip a byte of the layer: digest mismatch (same size).
    let layer_path = dir.path().join(
        cmod_image::layout::Digest::parse(&image.layers[0].descriptor.digest)
            .unwrap()
            .blob_path(),
    );
    let mut data = std::fs::read(&layer_path).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&layer_path, &data).unwrap();
    let report = cmod_image::check(dir.path()).unwrap();
    let v: Vec<_> = report.violations().cloned().collect();
    assert_eq!(v.len(), 1, "{v:#?}");
    assert!(
        matches!(&v[0], Violation::DigestMismatch { what, .. } if what == "layer 0"),
        "{v:#?}"
    );
    assert!(v[0].to_string().contains("corrupt"), "{}", v[0]);

    // Truncate the config: digest and size mismatch.
    let dir = tempfile::tempdir().unwrap();
    write_layout(&image, dir.path());
    let config_path = dir.path().join(files.config_digest.blob_path());
    let data = std::fs::read(&config_path).unwrap();
    std::fs::write(&config_path, &data[..data.len() - 1]).unwrap();
    let report = cmod_image::check(dir.path()).unwrap();
    let v: Vec<_> = report.violations().cloned().collect();
    assert!(
        v.iter()
            .any(|v| matches!(v, Violation::DigestMismatch { what, .. } if what == "config"))
    );
    assert!(v.iter().any(|v| matches!(
        v,
        Violation::SizeMismatch { what, expected, actual } if what == "config" && *actual + 1 == *expected
    )));

    // A missing blob.
    let dir = tempfile::tempdir().unwrap();
    write_layout(&image, dir.path());
    std::fs::remove_file(dir.path().join(files.config_digest.blob_path())).unwrap();
    let report = cmod_image::check(dir.path()).unwrap();
    assert!(matches!(
        report.violations().next(),
        Some(Violation::MissingBlob { what, .. }) if what == "config"
    ));

    // A config whose diff_ids do not match the layer.
    let mut image = good_image();
    image.config.rootfs.diff_ids = vec![cmod_image::layout::Digest::of(b"other").to_string()];
    let (v, msg) = single(&image);
    assert!(
        matches!(v, Violation::DiffIdMismatch { layer: 0, .. }),
        "{v:?}"
    );
    assert!(msg.contains("diff_ids"), "{msg}");
}

#[test]
fn not_a_layout_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = cmod_image::check(dir.path()).unwrap_err();
    assert!(err.to_string().contains("missing `oci-layout`"), "{err}");
    let err = cmod_image::check(&dir.path().join("nope.tar")).unwrap_err();
    assert!(err.to_string().contains("nope.tar"), "{err}");
}

#[test]
fn cli_check_exits_non_zero_with_the_message() {
    let mut image = good_image();
    image.config.architecture = "arm64".to_owned();
    let dir = tempfile::tempdir().unwrap();
    image
        .to_layout_files()
        .unwrap()
        .write_archive(&dir.path().join("bad.tar"))
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cmod-image"))
        .arg("check")
        .arg(dir.path().join("bad.tar"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("error: the image is for linux/arm64"),
        "{stdout}"
    );
    assert!(
        stderr.contains("fails Foundry's container requirements"),
        "{stderr}"
    );

    let good = dir.path().join("good");
    write_layout(&good_image(), &good);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cmod-image"))
        .arg("check")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok: meets Foundry's container requirements")
    );
}
