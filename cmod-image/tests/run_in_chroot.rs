//! The real proof that the image is complete: extract the quickstart image's root filesystem,
//! `chroot` into it as uid 5000 with only the image's environment, start the entrypoint against
//! the local runtime (real HTTPS with the runtime's generated CA, copied into the image as
//! Foundry mounts it), and have it answer jobs. Also runs Foundry's log-capture tools
//! (`/bin/sh`, `set`, `tee`) from the image.
//!
//! Needs root for `chroot`; skipped with a printed reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: panics are failures

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cmod_local::{LocalRuntime, LocalRuntimeOptions};
use common::{blob_path, is_root, manifest_and_config, quickstart};

/// Why this machine cannot run the test, if it cannot. A silent skip would hide the one test
/// that proves the image runs, so skipping needs `CMOD_IMAGE_SKIP_CHROOT=1`; without it a
/// machine that cannot chroot fails the test, saying why.
fn skip_reason() -> Option<String> {
    let reason = cannot_chroot()?;
    assert!(
        std::env::var_os("CMOD_IMAGE_SKIP_CHROOT").is_some(),
        "cannot run the image here: {reason}; set CMOD_IMAGE_SKIP_CHROOT=1 to skip this test"
    );
    Some(reason)
}

fn cannot_chroot() -> Option<String> {
    if !is_root() {
        return Some("not running as root, which `chroot` requires".to_owned());
    }
    if which("chroot").is_none() {
        return Some("no `chroot` program on this host (coreutils)".to_owned());
    }
    None
}

fn which(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Extracts the image's layers into a fresh directory; returns it and the config's Env.
fn extract_rootfs(name: &str) -> (PathBuf, Vec<(String, String)>) {
    let image = quickstart();
    let (manifest, config) = manifest_and_config(&image.layout);
    let root = common::work_dir(name);
    for layer in manifest["layers"].as_array().expect("layers") {
        let blob = std::fs::read(blob_path(
            &image.layout,
            layer["digest"].as_str().expect("digest"),
        ))
        .expect("layer blob");
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob.as_slice()));
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.unpack(&root).expect("unpack layer");
    }
    let env = config["config"]["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(|e| e.as_str()?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (root, env)
}

fn chroot_command(root: &Path, env: &[(String, String)], argv: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(which("chroot").expect("chroot"));
    cmd.arg("--userspec=5000:5000")
        .arg(root)
        .args(argv)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[test]
fn log_capture_tools_work_inside_the_image() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED log_capture_tools_work_inside_the_image: {reason}");
        return;
    }
    let (root, env) = extract_rootfs("rootfs-shell");
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let out = rt
        .block_on(async {
            let cmd = chroot_command(&root, &env, &["/bin/sh", "-c", "set; echo hi | tee /tmp/x"])
                .output();
            tokio::time::timeout(Duration::from_secs(30), cmd).await
        })
        .expect("the shell finishes within 30 s")
        .expect("chroot runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "status {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("PATH=") || stdout.contains("PATH='"),
        "`set` listed the variables: {stdout}"
    );
    assert!(stdout.ends_with("hi\n"), "tee copied to stdout: {stdout}");
    assert_eq!(
        std::fs::read_to_string(root.join("tmp/x")).expect("tee wrote /tmp/x as uid 5000"),
        "hi\n"
    );
}

#[test]
fn the_extracted_image_answers_jobs_from_the_local_runtime() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED the_extracted_image_answers_jobs_from_the_local_runtime: {reason}");
        return;
    }
    let (root, image_env) = extract_rootfs("rootfs-run");
    let (_, config) = manifest_and_config(&quickstart().layout);
    let entrypoint: Vec<String> = config["config"]["Entrypoint"]
        .as_array()
        .expect("Entrypoint")
        .iter()
        .map(|a| a.as_str().expect("string").to_owned())
        .collect();
    let logs = root.with_file_name("rootfs-run.log");

    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let runtime = LocalRuntime::start(LocalRuntimeOptions::default())
            .await
            .expect("local runtime starts");

        // Foundry mounts the token and CA files into the container, readable by uid 5000: copy
        // them into the image's filesystem and point the variables at the in-image paths.
        let secrets = root.join("run/secrets");
        std::fs::create_dir_all(&secrets).expect("secrets dir");
        let mut env = image_env.clone();
        for (key, value) in runtime.env() {
            let value = match key.as_str() {
                "MODULE_AUTH_TOKEN" | "DEFAULT_CA_PATH" | "CONNECTIONS_TO_OTHER_PODS_CA_PATH" => {
                    let name = Path::new(&value).file_name().expect("file name");
                    let inside = secrets.join(name);
                    std::fs::copy(&value, &inside).expect("copy runtime file into the image");
                    std::fs::set_permissions(
                        &inside,
                        std::os::unix::fs::PermissionsExt::from_mode(0o644),
                    )
                    .expect("chmod");
                    format!("/run/secrets/{}", name.to_string_lossy())
                }
                _ => value,
            };
            env.push((key, value));
        }
        env.push(("COMPUTE_SESSION_ID".to_owned(), "ses-chroot-test".to_owned()));

        let log_file = std::fs::File::create(&logs).expect("log file");
        let argv: Vec<&str> = entrypoint.iter().map(String::as_str).collect();
        let mut child = chroot_command(&root, &env, &argv)
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file)
            .spawn()
            .expect("start the entrypoint under chroot");
        let show_logs = || std::fs::read_to_string(&logs).unwrap_or_default();

        let calls = async {
            let add = runtime
                .call("add", serde_json::json!({"x": 2, "y": 3}), Duration::from_secs(60))
                .await?;
            let greet = runtime
                .call("greet", serde_json::json!({"name": "Foundry"}), Duration::from_secs(30))
                .await?;
            Ok::<_, cmod_local::LocalError>((add, greet))
        };
        let (add, greet) = tokio::select! {
            result = calls => result.unwrap_or_else(|e| {
                panic!("the module in the image did not answer: {e}\nmodule output:\n{}", show_logs())
            }),
            status = child.wait() => panic!(
                "the entrypoint exited before answering ({status:?}); module output:\n{}",
                show_logs()
            ),
        };
        assert_eq!(add.json().expect("JSON result"), serde_json::json!(5), "{add:?}");
        assert_eq!(
            greet.json().expect("JSON result"),
            serde_json::json!("Hello, Foundry!"),
            "{greet:?}"
        );

        child.start_kill().expect("stop the module");
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        runtime.shutdown().await;
    });
}
