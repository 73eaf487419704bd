//! Builds the quickstart example's image with the real `cargo build` and validates the
//! OCI layout independently of cmod-image's own types: documents parse, every digest and size
//! matches its blob, the platform is linux/amd64, the user is numeric and non-root, and the
//! layer holds the entrypoint, its loader and libraries, a shell with tee, and CA certificates.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: panics are failures

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use common::{TAG, blob_path, gunzip, manifest_and_config, quickstart, read_json, sha256};

/// Every entry of an uncompressed layer tar: path → (type, mode, uid, gid, contents / link).
fn layer_entries(tar: &[u8]) -> BTreeMap<String, (tar::EntryType, u32, u64, u64, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar);
    let mut entries = BTreeMap::new();
    let mut order = Vec::new();
    for entry in archive.entries().expect("layer is a tar") {
        let mut entry = entry.expect("tar entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let path = path.trim_end_matches('/').to_owned();
        let header = entry.header().clone();
        let mut data = Vec::new();
        if header.entry_type() == tar::EntryType::Symlink {
            data = entry
                .link_name()
                .expect("link")
                .expect("symlink target")
                .to_string_lossy()
                .into_owned()
                .into_bytes();
        } else {
            entry.read_to_end(&mut data).expect("read entry");
        }
        order.push(path.clone());
        let previous = entries.insert(
            path.clone(),
            (
                header.entry_type(),
                header.mode().expect("mode"),
                header.uid().expect("uid"),
                header.gid().expect("gid"),
                data,
            ),
        );
        assert!(previous.is_none(), "duplicate entry {path} in the layer");
    }
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(
        order, sorted,
        "layer entries are sorted (deterministic layer)"
    );
    entries
}

#[test]
fn quickstart_image_is_a_valid_oci_layout_for_foundry() {
    let image = quickstart();
    let layout = &image.layout;

    // oci-layout + index.json.
    assert_eq!(
        read_json(&layout.join("oci-layout")),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = read_json(&layout.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1);
    let mdesc = &manifests[0];
    assert_eq!(
        mdesc["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        mdesc["annotations"]["org.opencontainers.image.ref.name"],
        "0.1.0-test"
    );
    assert_eq!(mdesc["annotations"]["io.containerd.image.name"], TAG);
    assert_eq!(mdesc["platform"]["os"], "linux");
    assert_eq!(mdesc["platform"]["architecture"], "amd64");

    // Manifest: digest and size match the blob; media types.
    let mdigest = mdesc["digest"].as_str().expect("digest");
    let mbytes = std::fs::read(blob_path(layout, mdigest)).expect("manifest blob");
    assert_eq!(sha256(&mbytes), mdigest);
    assert_eq!(mbytes.len() as u64, mdesc["size"].as_u64().expect("size"));
    assert_eq!(mdigest, image.report.manifest_digest.to_string());
    let (manifest, config) = manifest_and_config(layout);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );

    // Config: digest, size, platform, user, entrypoint, env, labels.
    let cdigest = manifest["config"]["digest"]
        .as_str()
        .expect("config digest");
    let cbytes = std::fs::read(blob_path(layout, cdigest)).expect("config blob");
    assert_eq!(sha256(&cbytes), cdigest);
    assert_eq!(
        cbytes.len() as u64,
        manifest["config"]["size"].as_u64().expect("size")
    );
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    let user = config["config"]["User"].as_str().expect("User is set");
    let uid: u32 = user.parse().expect("User is numeric");
    assert_ne!(uid, 0, "User is not root");
    assert_eq!(uid, 5000);
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/app/quickstart"])
    );
    assert_eq!(config["config"]["WorkingDir"], "/app");
    let env: Vec<&str> = config["config"]["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert!(
        env.iter()
            .any(|e| e.starts_with("PATH=") && e.contains("/bin")),
        "{env:?}"
    );
    assert!(
        env.contains(&"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
        "{env:?}"
    );
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.title"],
        "quickstart"
    );
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.version"],
        "0.1.0"
    );
    assert!(
        config["config"].get("ExposedPorts").is_none(),
        "no ports exposed"
    );
    assert_eq!(config["rootfs"]["type"], "layers");
    assert!(!config["history"].as_array().expect("history").is_empty());

    // The layer: gzip'd tar, digest and size of the compressed blob, diff_id of the tar.
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let ldigest = layers[0]["digest"].as_str().expect("layer digest");
    let lbytes = std::fs::read(blob_path(layout, ldigest)).expect("layer blob");
    assert_eq!(sha256(&lbytes), ldigest);
    assert_eq!(
        lbytes.len() as u64,
        layers[0]["size"].as_u64().expect("size")
    );
    assert_eq!(lbytes.len() as u64, image.report.compressed_size);
    let tar = gunzip(&lbytes);
    assert_eq!(tar.len() as u64, image.report.uncompressed_size);
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([sha256(&tar)])
    );

    let entries = layer_entries(&tar);
    for (path, (_, _, uid, gid, _)) in &entries {
        assert_eq!(
            (uid, gid),
            (&0, &0),
            "{path} is root-owned (read-only to the module)"
        );
    }
    let file = |path: &str| {
        let (kind, mode, _, _, data) = entries
            .get(path)
            .unwrap_or_else(|| panic!("{path} is missing from the layer"));
        assert_eq!(*kind, tar::EntryType::Regular, "{path} is a regular file");
        (*mode, data.clone())
    };

    // The entrypoint is the binary cargo built, executable.
    let (mode, data) = file("app/quickstart");
    assert_eq!(mode, 0o755);
    assert_eq!(
        data,
        std::fs::read(&image.report.binary).expect("built binary"),
        "the layer holds the binary cargo built"
    );
    // Built without the package's default features: the quickstart's `local` feature (the
    // embedded local runtime) is not in the production image.
    assert_eq!(
        cmod_image::local_runtime::find_marker(&data),
        None,
        "the image's entrypoint links cmod-runtime's embedded local runtime"
    );
    // Its dynamic loader (PT_INTERP) and every library ldd resolves.
    let elf = cmod_image::elf::parse(&data).expect("ELF");
    assert!(elf.is_amd64());
    if let Some(interp) = &elf.interpreter {
        let (mode, _) = file(interp.trim_start_matches('/'));
        assert_eq!(mode & 0o111, 0o111, "loader {interp} is executable");
        let libs = cmod_image::build::shared_libraries(&image.report.binary).expect("ldd");
        assert!(!libs.is_empty(), "a dynamic binary links at least libc");
        for lib in libs {
            file(lib.to_str().expect("utf-8 path").trim_start_matches('/'));
        }
    }
    // Log capture: /bin/sh and tee (and echo for the default readiness probe) are executable.
    for tool in ["bin/sh", "bin/tee", "bin/echo"] {
        match entries.get(tool) {
            Some((tar::EntryType::Symlink, _, _, _, target)) => {
                assert_eq!(target, b"busybox", "{tool} is a busybox applet");
                let (mode, _) = file("bin/busybox");
                assert_eq!(mode, 0o755);
            }
            _ => assert_eq!(file(tool).0, 0o755, "{tool} is executable"),
        }
    }
    // CA certificates, the runtime user, a writable /tmp.
    let (_, ca) = file("etc/ssl/certs/ca-certificates.crt");
    assert!(String::from_utf8_lossy(&ca).contains("BEGIN CERTIFICATE"));
    let (_, passwd) = file("etc/passwd");
    assert!(
        String::from_utf8_lossy(&passwd).contains(":5000:5000:"),
        "uid 5000 in /etc/passwd"
    );
    let (_, group) = file("etc/group");
    assert!(String::from_utf8_lossy(&group).contains(":5000:"));
    let (kind, mode, ..) = entries.get("tmp").expect("/tmp");
    assert_eq!((*kind, *mode), (tar::EntryType::Directory, 0o1777));

    // The image passes cmod-image's own check, as a directory and as an archive.
    for path in [&image.layout, &image.archive] {
        let report = cmod_image::check(path).expect("check runs");
        assert!(report.is_ok(), "{}:\n{report}", path.display());
    }
}

#[test]
fn archive_holds_the_same_layout_and_a_docker_manifest() {
    let image = quickstart();
    let mut archive = tar::Archive::new(std::fs::File::open(&image.archive).expect("archive"));
    let mut files = BTreeMap::new();
    for entry in archive.entries().expect("archive is a tar") {
        let mut entry = entry.expect("entry");
        if entry.header().entry_type() == tar::EntryType::Regular {
            let path = entry.path().expect("path").to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read");
            files.insert(path, data);
        }
    }
    for name in ["oci-layout", "index.json", "manifest.json"] {
        assert_eq!(
            files.get(name),
            Some(&std::fs::read(image.layout.join(name)).expect(name)),
            "{name} in the archive equals the layout's"
        );
    }
    let (manifest, _) = manifest_and_config(&image.layout);
    let mut digests = vec![
        manifest["config"]["digest"]
            .as_str()
            .expect("config")
            .to_owned(),
    ];
    digests.extend(
        manifest["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["digest"].as_str().expect("digest").to_owned()),
    );
    for digest in &digests {
        let rel = blob_path(Path::new(""), digest);
        let data = files
            .get(rel.to_str().expect("utf-8"))
            .unwrap_or_else(|| panic!("{digest} is in the archive"));
        assert_eq!(&sha256(data), digest);
    }
    // `docker load` / `crane push tarball` read manifest.json.
    let docker: serde_json::Value =
        serde_json::from_slice(&files["manifest.json"]).expect("manifest.json");
    assert_eq!(docker[0]["RepoTags"], serde_json::json!([TAG]));
    assert_eq!(
        docker[0]["Config"],
        blob_path(Path::new(""), &digests[0])
            .to_string_lossy()
            .as_ref()
    );
}

#[test]
fn rebuilding_the_same_binary_gives_the_same_digest() {
    let image = quickstart();
    let work = common::work_dir("rebuild");
    let mut opts = cmod_image::BuildOptions::prebuilt(&image.report.binary);
    opts.tag = Some(TAG.to_owned());
    opts.output_dir = Some(work.join("layout"));
    // The cargo build recorded the package version as a label; give the same one.
    if let cmod_image::build::BinarySource::Prebuilt { version, .. } = &mut opts.binary {
        *version = Some("0.1.0".to_owned());
    }
    let again = cmod_image::build(&opts).expect("rebuild");
    assert_eq!(again.manifest_digest, image.report.manifest_digest);
    assert_eq!(again.config_digest, image.report.config_digest);
}
