//! `cmod-image build --server-mode`: the quickstart example built with the real `cargo build`,
//! its `server.openapi` label written from the binary's `--print-openapi` for the chosen port,
//! `CMOD_MODE=server` and `CMOD_SERVER_PORT` set, and the image passing `check` (which
//! validates the label against Foundry's §4.9 constraints).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: panics are failures

mod common;

use cmod_image::build::{BuildError, BuildOptions, ServerMode, build};
use common::{manifest_and_config, work_dir};
use serde_json::Value;

fn options(dir: &std::path::Path, mode: ServerMode) -> BuildOptions {
    let mut opts = BuildOptions::cargo("quickstart");
    // As in `common::quickstart`: the dev profile reuses the workspace's test build.
    opts.profile = "dev".to_owned();
    opts.output_dir = Some(dir.join("layout"));
    opts.tag = Some("quickstart:0.1.0-server".to_owned());
    opts.server_mode = Some(mode);
    opts
}

#[test]
fn server_mode_images_carry_the_checked_openapi_label() {
    let dir = work_dir("server-mode");
    let opts = options(
        &dir,
        ServerMode {
            port: 9123,
            openapi: None,
        },
    );
    build(&opts).unwrap();
    let layout = dir.join("layout");
    let (_, config) = manifest_and_config(&layout);
    let label = config["config"]["Labels"]["server.openapi"]
        .as_str()
        .expect("a server.openapi label");
    let doc: Value = serde_json::from_str(label).unwrap();
    assert_eq!(doc["servers"][0]["url"], "http://localhost:9123");
    assert_eq!(doc["paths"]["/add"]["post"]["operationId"], "add");
    assert_eq!(doc["paths"]["/greet"]["post"]["operationId"], "greet");
    let env: Vec<&str> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(env.contains(&"CMOD_MODE=server"), "{env:?}");
    assert!(env.contains(&"CMOD_SERVER_PORT=9123"), "{env:?}");
    let report = cmod_image::check(&layout).unwrap();
    assert!(report.is_ok(), "{report}");

    // A document given as a file must name the same port.
    let file = dir.join("openapi.json");
    std::fs::write(&file, label).unwrap();
    let err = build(&options(
        &dir,
        ServerMode {
            port: 9124,
            openapi: Some(file),
        },
    ))
    .unwrap_err();
    assert!(matches!(err, BuildError::ServerOpenApi { .. }), "{err}");
    assert!(err.to_string().contains("http://localhost:9124"), "{err}");
}
