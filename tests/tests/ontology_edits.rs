//! Ontology edits (docs/protocol.md §4.6), end to end over TLS:
//!
//! * `examples/ontology-edits` runs as a process against the local runtime: the schemas it
//!   posts (`list<ontologyEdit>` output, `ontologyProvenance` with the declared object types'
//!   ids) are the golden file `tests/fixtures/ontology-edits/schemas.json`, and each edit kind
//!   comes back in the wire format below;
//! * its `ontology-metadata` program, run against the local Foundry's `bulkLoadEntities`,
//!   writes exactly the committed `examples/ontology-edits/ontology_metadata_config.json`, and
//!   never prints the token.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use cmod_local::foundry::{DataOptions, TokenGrant};
use cmod_local::{LocalRuntime, LocalRuntimeOptions};
use cmod_tests::child::LoggedChild;
use serde_json::{Value, json};

const MODULE: &str = env!("CARGO_BIN_EXE_example-ontology-edits");
const METADATA_PROGRAM: &str = env!("CARGO_BIN_EXE_example-ontology-metadata");
/// Every wait in this file is bounded by this.
const WAIT: Duration = Duration::from_secs(60);

fn example_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/ontology-edits")
        .join(name)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `{"typeId": t, "primaryKey": {k: v}}`.
fn locator(type_id: &str, key: &str, value: Value) -> Value {
    json!({"typeId": type_id, "primaryKey": {key: value}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_functions_post_their_provenance_and_return_each_edit_kind() {
    let rt = LocalRuntime::start(LocalRuntimeOptions {
        long_poll_timeout: Duration::from_millis(500),
        ..LocalRuntimeOptions::default()
    })
    .await
    .unwrap();
    let mut cmd = tokio::process::Command::new(MODULE);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(rt.env());
    let module = LoggedChild::spawn(&mut cmd);

    // The posted schemas: the golden file.
    let posted = rt.wait_for_schemas(WAIT).await.unwrap();
    let golden = read_json(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ontology-edits/schemas.json"),
    );
    assert_eq!(posted, golden, "posted schemas:\n{posted:#}");
    let hire = posted
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["functionName"] == "hire")
        .unwrap();
    assert_eq!(
        hire["output"],
        json!({"type": "single", "single": {
            "dataType": {"type": "list", "list": {"elementsType": {"type": "ontologyEdit", "ontologyEdit": {}}}},
            "description": "Hires an employee: adds the `Employee` and links it to its `Office`."}})
    );
    assert_eq!(
        hire["ontologyProvenance"],
        json!({"editedObjects": {"employee": {}, "office": {}}, "editedLinks": {}})
    );

    let employee = |id: i64| locator("employee", "employee_id", json!(id));
    let office = |id: &str| locator("office", "office_id", json!(id));

    // addObject + addLink.
    let r = rt
        .call(
            "hire",
            json!({"employee_id": 7, "name": "Ada", "title": "Engineer", "office_id": "LON"}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(
        r.json().unwrap(),
        json!([
            {"type": "addObject", "addObject": {
                "locator": employee(7),
                "propertyValues": {"full_name": "Ada", "job_title": "Engineer"}}},
            {"type": "addLink", "addLink": {"locator": {
                "relationId": "employee-office",
                "sourceObjectLocator": employee(7),
                "targetObjectLocator": office("LON")}}}
        ])
    );

    // modifyObject + removeLink (our reading: addLink's shape) + addLink, from a `Result`.
    let r = rt
        .call(
            "relocate",
            json!({"employee_id": 7, "from_office": "LON", "to_office": "PAR", "title": "Lead"}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(
        r.json().unwrap(),
        json!([
            {"type": "modifyObject", "modifyObject": {
                "locator": employee(7), "propertyValues": {"job_title": "Lead"}}},
            {"type": "removeLink", "removeLink": {"locator": {
                "relationId": "employee-office",
                "sourceObjectLocator": employee(7),
                "targetObjectLocator": office("LON")}}},
            {"type": "addLink", "addLink": {"locator": {
                "relationId": "employee-office",
                "sourceObjectLocator": employee(7),
                "targetObjectLocator": office("PAR")}}}
        ])
    );

    // The `Err` of a `Result<OntologyEdits, E>` is an ordinary error result.
    let r = rt
        .call(
            "relocate",
            json!({"employee_id": 7, "from_office": "LON", "to_office": "LON", "title": "x"}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(
        r.json().unwrap(),
        json!({"error": {"kind": "FunctionError", "message": "employee 7 is already in office `LON`"}})
    );

    // deleteObject, from an `async fn`.
    let r = rt
        .call("dismiss", json!({"employee_id": 7}), WAIT)
        .await
        .unwrap();
    assert_eq!(
        r.json().unwrap(),
        json!([{"type": "deleteObject", "deleteObject": {"locator": employee(7)}}])
    );

    let (status, log) = tokio::time::timeout(WAIT, module.terminate())
        .await
        .expect("the module did not stop");
    assert!(status.success(), "{log}");
}

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

async fn run_metadata_program(envs: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(METADATA_PROGRAM);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(envs.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("the metadata program did not exit")
        .unwrap();
    Run {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_program_writes_the_committed_file_from_bulk_load_entities() {
    let (foundry, dir) = cmod_tests::foundry::start(DataOptions::default(), None).await;
    let ontology_dir = foundry.data().root().join("ontology");
    std::fs::create_dir_all(&ontology_dir).unwrap();
    std::fs::copy(
        example_file("data/ontology/entities.json"),
        ontology_dir.join("entities.json"),
    )
    .unwrap();
    let token = foundry.issue_token(TokenGrant::user("developer"));
    let ca = foundry.ca_path().display().to_string();
    let url = foundry.base_url();
    let out = dir.path().join("ontology_metadata_config.json");
    let out_arg = out.display().to_string();
    let rids = [
        "--object-type-rid",
        "ri.ontology.main.object-type.employee",
        "--object-type-rid",
        "ri.ontology.main.object-type.office",
        "--link-type-rid",
        "ri.ontology.main.relation.employee-office",
    ];
    let mut args = vec!["--foundry-url", &url, "--out", &out_arg];
    args.extend(rids);

    let run = run_metadata_program(
        &[("FOUNDRY_TOKEN", &token), ("DEFAULT_CA_PATH", &ca)],
        &args,
    )
    .await;
    assert!(
        run.success,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains("2 object types: Employee, Office"),
        "{}",
        run.stdout
    );
    let written = std::fs::read_to_string(&out).unwrap();
    let committed = std::fs::read_to_string(example_file("ontology_metadata_config.json")).unwrap();
    assert_eq!(
        written, committed,
        "the program's file differs from the committed one"
    );

    // The token from a file works the same.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let token_arg = token_file.display().to_string();
    let mut with_file = args.clone();
    with_file.extend(["--token-file", &token_arg]);
    let run = run_metadata_program(&[("DEFAULT_CA_PATH", &ca)], &with_file).await;
    assert!(run.success, "{}", run.stderr);

    // A refused token: an error that does not show it.
    let wrong = "wrong-token-7f3a9c";
    let run =
        run_metadata_program(&[("FOUNDRY_TOKEN", wrong), ("DEFAULT_CA_PATH", &ca)], &args).await;
    assert!(!run.success);
    assert!(run.stderr.contains("401"), "{}", run.stderr);
    assert!(
        !run.stderr.contains(wrong) && !run.stdout.contains(wrong),
        "{}",
        run.stderr
    );

    // An unknown RID: named in the error.
    let mut unknown = vec!["--foundry-url", &url, "--out", &out_arg];
    unknown.extend(["--object-type-rid", "ri.ontology.main.object-type.nope"]);
    let run = run_metadata_program(
        &[("FOUNDRY_TOKEN", &token), ("DEFAULT_CA_PATH", &ca)],
        &unknown,
    )
    .await;
    assert!(!run.success);
    assert!(
        run.stderr.contains("ri.ontology.main.object-type.nope"),
        "{}",
        run.stderr
    );

    // A token on the command line is refused before anything is sent.
    let run = run_metadata_program(&[], &["--foundry-url", &url, "--token", "abc"]).await;
    assert!(!run.success);
    assert!(run.stderr.contains("FOUNDRY_TOKEN"), "{}", run.stderr);
}
