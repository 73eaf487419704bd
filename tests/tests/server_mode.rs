//! Server mode (Foundry's OpenAPI mode, docs/protocol.md §4.9): the examples and the e2e module
//! run as processes with `--server` (or `CMOD_MODE=server`) and are called over plain HTTP on
//! loopback with a minimal HTTP/1.1 client written here (so status, headers and body bytes are
//! exactly what the module sent); the `--print-openapi` document is parsed by an independent
//! OpenAPI 3 parser (`openapiv3`) and checked against each §4.9 constraint; and the same calls
//! through the job loop (`--local --invoke`, the embedded runtime over TLS) give byte-identical
//! results.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cmod_tests::child::LoggedChild;
use openapiv3::{OpenAPI, ReferenceOr, Schema, SchemaKind, Type};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const QUICKSTART: &str = env!("CARGO_BIN_EXE_example-quickstart");
const TYPED: &str = env!("CARGO_BIN_EXE_example-typed");
const E2E: &str = env!("CARGO_BIN_EXE_e2e_module");
const ONTOLOGY_EDITS: &str = env!("CARGO_BIN_EXE_example-ontology-edits");

/// Every wait in this file is bounded by this.
const LIMIT: Duration = Duration::from_secs(60);

/// The module logs this once it listens.
const READY: &str = "starting compute module in server mode";

/// A port that was free a moment ago (the module binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn command(bin: &str, port: u16) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CMOD_SERVER_PORT", port.to_string());
    cmd
}

/// Starts `bin --server` on a free port and waits until it listens.
async fn serve(bin: &str, env: &[(&str, &str)]) -> (LoggedChild, u16) {
    let port = free_port();
    let mut cmd = command(bin, port);
    cmd.arg("--server").envs(env.iter().copied());
    let mut child = LoggedChild::spawn(&mut cmd);
    child.wait_log(READY).await;
    (child, port)
}

/// One HTTP response as received.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `METHOD /path` with `body` on a fresh connection (`Connection: close`), bounded.
async fn request(port: u16, method: &str, path: &str, body: &str) -> Reply {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: localhost:{port}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(LIMIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within {LIMIT:?}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let body = raw[split + 4..].to_vec();
    let reply = Reply {
        status,
        headers,
        body,
    };
    if let Some(len) = reply.header("content-length") {
        assert_eq!(len.parse::<usize>().unwrap(), reply.body.len(), "{reply:?}");
    }
    reply
}

async fn post(port: u16, function: &str, body: &str) -> Reply {
    request(port, "POST", &format!("/{function}"), body).await
}

#[tokio::test]
async fn quickstart_is_served_over_http() {
    let (child, port) = serve(QUICKSTART, &[]).await;

    let r = post(port, "add", r#"{"x": 2, "y": 3}"#).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"5"[..]), "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = post(port, "greet", r#"{"name": "Ada"}"#).await;
    assert_eq!((r.status, r.json()), (200, json!("Hello, Ada!")));

    // A user error: 500 with the functions-mode error body.
    let r = post(port, "greet", r#"{"name": " "}"#).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json(),
        json!({"error": {"kind": "FunctionError", "message": "the name must not be empty"}})
    );
    // Bad input: 400, the message names the input.
    let r = post(port, "add", r#"{"x": "two", "y": 3}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["kind"], "InvalidInput");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("input `x`"),
        "{r:?}"
    );
    let r = post(port, "add", r#"{"x": 2"#).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not JSON"),
        "{r:?}"
    );
    let r = post(port, "add", "").await;
    assert_eq!(r.status, 400, "an empty body is `{{}}`: x is missing");
    assert_eq!(
        r.json()["error"]["message"],
        "missing required input `x`",
        "{r:?}"
    );
    // Unknown function: 404; another method: 405 with `Allow: POST`.
    let r = post(port, "nope", "{}").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["kind"], "UnknownFunction");
    let r = request(port, "GET", "/add", "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(r.json()["error"]["kind"], "InvalidInput");

    let (status, log) = child.terminate().await;
    assert!(status.success(), "{status}\n{log}");
    // The same SLS job logs as the job loop.
    let failed = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "job failed" && l["params"]["function"] == "greet")
        .unwrap_or_else(|| panic!("no `job failed` line for greet:\n{log}"));
    assert_eq!(failed["params"]["error_kind"], "FunctionError", "{failed}");
}

#[tokio::test]
async fn typed_is_served_over_http() {
    let (child, port) = serve(TYPED, &[("CMOD_MODE", "server")]).await;
    let scalars = json!({"flag": true, "tiny": -8, "small": 300, "count": 70000,
        "big": 9007199254740993i64, "ratio": 1.5, "precise": 0.1, "text": "é"});
    let r = post(port, "scalars", &json!({ "s": scalars }).to_string()).await;
    assert_eq!((r.status, r.json()), (200, scalars));
    let r = post(port, "shift", r#"{"at": 1704164645123, "by_days": 2}"#).await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"at": "2024-01-04T03:04:05.123Z", "day": "2024-01-04"})
        )
    );
    let r = post(port, "totals", r#"{"amounts": {"a": ["0.1", 0.2, "1e1"]}}"#).await;
    assert_eq!((r.status, r.json()), (200, json!({"a": "10.3"})));
    let r = post(port, "reverse_bytes", r#"{"data": "YWJj"}"#).await;
    assert_eq!((r.status, r.json()), (200, json!("Y2Jh")));
    // An Option input may be left out.
    let r = post(port, "triage", r#"{"items": ["high", "low", "high"]}"#).await;
    assert_eq!((r.status, r.json()), (200, json!({"high": 2, "low": 1})));
    let r = post(port, "triage", r#"{"items": ["high", "low"], "limit": 1}"#).await;
    assert_eq!((r.status, r.json()), (200, json!({"high": 1})));
    let r = post(port, "weekday", r#"{"day": "1969-12-31"}"#).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"null"[..]));
    // A streaming function answers with one JSON array.
    let readings = json!([
        {"sensorId": "a", "takenAt": "2024-01-02T03:04:05Z", "value": "1.5"},
        {"sensorId": "b", "takenAt": "2024-01-02T03:04:05Z", "value": "0.5"},
        {"sensorId": "c", "takenAt": "2024-01-03T00:00:00Z", "value": "2"}]);
    let r = post(
        port,
        "above",
        &json!({"readings": readings, "threshold": "1"}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let names: Vec<Value> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sensorId"].clone())
        .collect();
    assert_eq!(names, vec![json!("a"), json!("c")]);
    let r = post(
        port,
        "above",
        &json!({"readings": [], "threshold": "1"}).to_string(),
    )
    .await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"[]"[..]));

    let (status, log) = child.terminate().await;
    assert!(status.success(), "{status}\n{log}");
}

#[tokio::test]
async fn panics_stream_errors_and_unserializable_results_are_one_error_response() {
    let (child, port) = serve(E2E, &[]).await;
    let r = post(port, "boom", "{}").await;
    assert_eq!(
        (r.status, r.json()["error"]["kind"].clone()),
        (500, json!("Panic"))
    );
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("kaboom from boom()")
    );
    let r = post(port, "unserializable", "").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["kind"], "SerializationError");
    let r = post(port, "count", r#"{"n": 3}"#).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"[0,1,2]"[..]));
    let (status, log) = child.terminate().await;
    assert!(status.success(), "{status}\n{log}");
}

/// How many times the module logged `text` so far.
fn count(child: &LoggedChild, text: &str) -> usize {
    child.log().matches(text).count()
}

#[tokio::test]
async fn calls_beyond_max_concurrent_tasks_wait_for_a_slot() {
    let (child, port) = serve(
        E2E,
        &[
            ("MAX_CONCURRENT_TASKS", "2"),
            ("CMOD_LOG", "info,cmod_runtime::server=debug"),
        ],
    )
    .await;
    let started = Instant::now();
    let calls: Vec<_> = (0..3)
        .map(|_| tokio::spawn(post(port, "sleep_ms", r#"{"ms": 1000}"#)))
        .collect();
    // Two start at once; the third is received but waits for a slot.
    let deadline = Instant::now() + LIMIT;
    while count(&child, "call started") < 2 || count(&child, "call received") < 3 {
        assert!(
            Instant::now() < deadline,
            "calls not started:\n{}",
            child.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if started.elapsed() < Duration::from_millis(900) {
        // (Unless the machine was so slow that the first calls are already ending.)
        assert_eq!(count(&child, "call started"), 2, "{}", child.log());
    }
    for call in calls {
        let r = tokio::time::timeout(LIMIT, call).await.unwrap().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"1000"[..]), "{r:?}");
    }
    // Two slots, three 1 s calls: at least two rounds.
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(count(&child, "call started"), 3);
    let (status, log) = child.terminate().await;
    assert!(status.success(), "{status}\n{log}");
}

#[tokio::test]
async fn sigterm_lets_running_calls_finish_then_ends_the_rest_with_shutdown() {
    let (mut child, port) = serve(
        E2E,
        &[
            ("MAX_CONCURRENT_TASKS", "2"),
            ("CMOD_SHUTDOWN_GRACE_SECS", "1"),
            ("CMOD_LOG", "info,cmod_runtime::server=debug"),
        ],
    )
    .await;
    // One call that watches its context, one that ignores it past the grace period.
    let cancellable = tokio::spawn(post(port, "wait_for_cancel", r#"{"ms": 30000}"#));
    let stubborn = tokio::spawn(post(port, "sleep_ms", r#"{"ms": 30000}"#));
    let deadline = Instant::now() + LIMIT;
    while child.log().matches("call received").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "calls not received:\n{}",
            child.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.signal("TERM");
    let cancellable = tokio::time::timeout(LIMIT, cancellable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (cancellable.status, cancellable.json()),
        (200, json!("cancelled"))
    );
    let stubborn = tokio::time::timeout(LIMIT, stubborn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stubborn.status, 503, "{stubborn:?}");
    assert_eq!(stubborn.json()["error"]["kind"], "Shutdown");
    let status = child.wait().await;
    assert!(status.success(), "{status}\n{}", child.log());
    // Nothing listens any more.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );
}

/// Runs `bin args…` to completion (bounded) and returns its stdout.
async fn output(bin: &str, port: u16, args: &[&str]) -> String {
    let mut cmd = command(bin, port);
    cmd.args(args).kill_on_drop(true);
    let out = tokio::time::timeout(LIMIT, cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The document's schemas, recursively: each must be one plain type (no `anyOf`/`oneOf`/
/// `allOf`/`not`, no untyped "any" schema).
fn check_schema(doc: &OpenAPI, schema: &ReferenceOr<Schema>, at: &str) {
    let schema = match schema {
        ReferenceOr::Reference { reference } => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{at}: reference {reference} is not to a component"));
            assert!(
                doc.components
                    .as_ref()
                    .is_some_and(|c| c.schemas.contains_key(name)),
                "{at}: dangling reference {reference}"
            );
            return;
        }
        ReferenceOr::Item(schema) => schema,
    };
    match &schema.schema_kind {
        SchemaKind::Type(Type::Object(o)) => {
            for (name, p) in &o.properties {
                check_schema(doc, &p.clone().unbox(), &format!("{at}.{name}"));
            }
            if let Some(openapiv3::AdditionalProperties::Schema(s)) = &o.additional_properties {
                check_schema(doc, s, &format!("{at}[value]"));
            }
        }
        SchemaKind::Type(Type::Array(a)) => {
            let items = a
                .items
                .as_ref()
                .unwrap_or_else(|| panic!("{at}: array without items"));
            check_schema(doc, &items.clone().unbox(), &format!("{at}[item]"));
        }
        SchemaKind::Type(_) => {}
        other => panic!("{at}: not a single-type schema: {other:?}"),
    }
}

/// No `anyOf`/`oneOf`/`allOf` key and no multi-type `type` anywhere in the raw JSON.
fn check_raw(value: &Value, at: &str) {
    match value {
        Value::Object(o) => {
            for key in ["anyOf", "oneOf", "allOf"] {
                assert!(!o.contains_key(key), "{at}: `{key}`");
            }
            if let Some(t) = o.get("type") {
                assert!(t.is_string(), "{at}: multi-type schema {t}");
            }
            for (k, v) in o {
                check_raw(v, &format!("{at}/{k}"));
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                check_raw(v, &format!("{at}/{i}"));
            }
        }
        _ => {}
    }
}

/// §4.9, constraint by constraint, on the document `bin --print-openapi` prints.
async fn check_document(bin: &str) -> OpenAPI {
    let port = free_port();
    let text = output(bin, port, &["--print-openapi"]).await;
    let raw: Value = serde_json::from_str(&text).unwrap();
    check_raw(&raw, "");
    let doc: OpenAPI = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("openapiv3 cannot parse the document: {e}\n{text}"));
    // OpenAPI >= 3.0.0.
    let version: Vec<u32> = doc.openapi.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(version.len() == 3 && version[0] == 3, "{}", doc.openapi);
    // Exactly one server: http://localhost:<port>.
    assert_eq!(doc.servers.len(), 1);
    assert_eq!(doc.servers[0].url, format!("http://localhost:{port}"));
    // One operation per function, operationId = the function name (as --print-schemas has it).
    let schemas: Value =
        serde_json::from_str(&output(bin, port, &["--print-schemas"]).await).unwrap();
    let functions: BTreeSet<String> = schemas
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["functionName"].as_str().unwrap().to_owned())
        .collect();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        let ReferenceOr::Item(item) = item else {
            panic!("{path}: a path reference")
        };
        // Verbs limited to GET/PUT/POST/DELETE.
        assert!(
            item.patch.is_none()
                && item.head.is_none()
                && item.options.is_none()
                && item.trace.is_none(),
            "{path}: a verb Foundry refuses"
        );
        for (verb, op) in [
            ("get", &item.get),
            ("put", &item.put),
            ("post", &item.post),
            ("delete", &item.delete),
        ] {
            let Some(op) = op else { continue };
            let at = format!("{verb} {path}");
            // Every operation has an operationId (= function name).
            let id = op
                .operation_id
                .clone()
                .unwrap_or_else(|| panic!("{at}: no operationId"));
            assert_eq!(path, &format!("/{id}"), "{at}");
            operation_ids.insert(id);
            // Every parameter has a schema; no cookie parameters.
            for p in item.parameters.iter().chain(&op.parameters) {
                let ReferenceOr::Item(p) = p else {
                    panic!("{at}: a parameter reference")
                };
                let data = p.parameter_data_ref();
                assert!(
                    matches!(data.format, openapiv3::ParameterSchemaOrContent::Schema(_)),
                    "{at}: parameter {} has no schema",
                    data.name
                );
                assert!(
                    !matches!(p, openapiv3::Parameter::Cookie { .. }),
                    "{at}: cookie parameter {}",
                    data.name
                );
            }
            if let Some(ReferenceOr::Item(body)) = &op.request_body {
                for (media, content) in &body.content {
                    assert_eq!(media, "application/json", "{at}");
                    check_schema(
                        &doc,
                        content.schema.as_ref().unwrap(),
                        &format!("{at} body"),
                    );
                }
            }
            // Exactly one response code, application/json.
            assert!(op.responses.default.is_none(), "{at}: a default response");
            assert_eq!(op.responses.responses.len(), 1, "{at}");
            let (code, response) = op.responses.responses.iter().next().unwrap();
            assert_eq!(*code, openapiv3::StatusCode::Code(200), "{at}");
            let ReferenceOr::Item(response) = response else {
                panic!("{at}: a response reference")
            };
            assert_eq!(
                response.content.keys().collect::<Vec<_>>(),
                vec!["application/json"],
                "{at}"
            );
            let schema = response.content["application/json"]
                .schema
                .as_ref()
                .unwrap();
            check_schema(&doc, schema, &format!("{at} response"));
        }
    }
    assert_eq!(operation_ids, functions);
    for (name, schema) in doc.components.iter().flat_map(|c| &c.schemas) {
        check_schema(&doc, schema, &format!("components.{name}"));
    }
    doc
}

#[tokio::test]
async fn the_openapi_documents_meet_foundrys_constraints() {
    let quickstart = check_document(QUICKSTART).await;
    assert_eq!(quickstart.paths.paths.len(), 2);
    let typed = check_document(TYPED).await;
    let components = &typed.components.as_ref().unwrap().schemas;
    // A unit enum is a string enum; an Option field is nullable and not required; structs are
    // components.
    let ReferenceOr::Item(priority) = &components["Priority"] else {
        panic!()
    };
    let SchemaKind::Type(Type::String(priority)) = &priority.schema_kind else {
        panic!("{priority:?}")
    };
    assert_eq!(
        priority.enumeration,
        vec![Some("low".to_owned()), Some("high".to_owned())]
    );
    let ReferenceOr::Item(reading) = &components["Reading"] else {
        panic!()
    };
    let SchemaKind::Type(Type::Object(reading)) = &reading.schema_kind else {
        panic!()
    };
    assert!(!reading.required.contains(&"raw".to_owned()));
    let ReferenceOr::Item(raw) = &reading.properties["raw"] else {
        panic!()
    };
    assert!(raw.schema_data.nullable);
    // The optional input `limit` of `triage`.
    let raw_doc: Value = serde_json::to_value(&typed).unwrap();
    let body = &raw_doc["paths"]["/triage"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["required"], json!(["items"]));
    assert_eq!(body["properties"]["limit"]["nullable"], json!(true));
    // The document names the port it is given.
    let doc: Value =
        serde_json::from_str(&output(QUICKSTART, 4242, &["--print-openapi"]).await).unwrap();
    assert_eq!(doc["servers"], json!([{"url": "http://localhost:4242"}]));
    // An edits function answers the edits' wire format: a list of objects.
    let edits: Value = serde_json::to_value(check_document(ONTOLOGY_EDITS).await).unwrap();
    let answer = &edits["paths"]["/hire"]["post"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert_eq!(
        answer,
        &json!({"type": "array", "items": {"type": "object"}})
    );
}

#[tokio::test]
async fn a_reserved_server_port_is_refused_naming_the_variable() {
    let mut cmd = command(QUICKSTART, 8945);
    cmd.arg("--server").kill_on_drop(true);
    let out = tokio::time::timeout(LIMIT, cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CMOD_SERVER_PORT=`8945`") && stderr.contains("reserved"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_job_loop_and_the_server_give_byte_identical_results() {
    let calls: [(&str, &str, &str); 6] = [
        (
            TYPED,
            "scalars",
            r#"{"s": {"flag": false, "tiny": 1, "small": 2, "count": 3, "big": -4, "ratio": 0.3, "precise": 1e-7, "text": "a\"b\u00e9"}}"#,
        ),
        (
            TYPED,
            "shift",
            r#"{"at": "2024-01-02T03:04:05+02:00", "by_days": -1}"#,
        ),
        (
            TYPED,
            "totals",
            r#"{"amounts": {"b": [1, "2.50"], "a": ["0.1"]}}"#,
        ),
        (TYPED, "weekday", r#"{"day": "2024-01-01"}"#),
        (QUICKSTART, "add", r#"{"x": -7, "y": 3}"#),
        (QUICKSTART, "greet", r#"{"name": ""}"#),
    ];
    for bin in [TYPED, QUICKSTART] {
        let mine: Vec<_> = calls.iter().filter(|c| c.0 == bin).collect();
        // Through the job loop: the embedded local runtime over TLS prints each result body.
        let mut args = vec!["--local"];
        for (_, name, input) in &mine {
            args.extend(["--invoke", name, input]);
        }
        let mut cmd = command(bin, free_port());
        cmd.args(&args).kill_on_drop(true);
        let out = tokio::time::timeout(LIMIT, cmd.output())
            .await
            .unwrap()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        // Through the server.
        let (child, port) = serve(bin, &[]).await;
        for (_, name, input) in &mine {
            let prefix = format!("{name}({input}) => ");
            let via_jobs = stdout
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no `{prefix}` line:\n{stdout}"));
            let via_http = post(port, name, input).await;
            assert_eq!(
                String::from_utf8(via_http.body.clone()).unwrap(),
                via_jobs,
                "{name}({input})"
            );
        }
        let (status, log) = child.terminate().await;
        assert!(status.success(), "{status}\n{log}");
    }
}

#[tokio::test]
async fn local_server_mode_prints_curl_lines_that_work() {
    let port = free_port();
    let mut cmd = command(QUICKSTART, port);
    cmd.env("CMOD_LOCAL", "1").arg("--server");
    let mut child = LoggedChild::spawn(&mut cmd);
    let line = format!("curl -s -X POST http://localhost:{port}/add ");
    child.wait_log(&line).await;
    child.wait_log(READY).await;
    let log = child.log();
    let curl = log.lines().find(|l| l.contains(&line)).unwrap();
    let body = curl
        .split_once("-d '")
        .and_then(|(_, rest)| rest.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no -d '…' in {curl}"));
    let r = post(port, "add", body).await;
    assert_eq!((r.status, r.json()), (200, json!(2)), "{body}");
    assert!(
        log.contains(&format!("http://localhost:{port}/greet ")),
        "{log}"
    );
    let (status, log) = child.terminate().await;
    assert!(status.success(), "{status}\n{log}");
}
