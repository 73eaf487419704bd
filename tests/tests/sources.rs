//! Sources and service discovery: the mounted files parsed into typed values, clear errors for
//! missing and malformed files, required-source declarations, and a REST source client talking
//! to the local Foundry's echo endpoint over TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use cmod_tests::log_capture::{self, Captured};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use cmod_local::foundry::{LocalFoundry, LocalFoundryOptions, LocalSource};
use cmod_runtime::discovery::ServiceDiscovery;
use cmod_runtime::sources::{
    AwsCredentials, ResolvedCredentials, SourceError, Sources, required_sources,
};
use serde_json::Value;

cmod_runtime::require_source!("DeclaredApi", ["additionalSecretTOKEN"]);
cmod_runtime::require_source!("DeclaredBare");

fn lookup<'a>(map: &'a HashMap<&'static str, String>) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| map.get(k).cloned()
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p.display().to_string()
}

const CONFIGURATIONS: &str = r#"{
  "MyApi": {
    "secrets": {"additionalSecretKEY": "planted-config-secret"},
    "httpConnectionConfig": {
      "url": "https://api.example.com/v1",
      "authHeaders": {"Authorization": "Bearer planted-header"},
      "queryParameters": {"apiKey": "planted-query"}
    },
    "proxyToken": "planted-proxy-token",
    "sourceConfiguration": {"type": "rest", "timeoutSeconds": 30},
    "resolvedCredentials": {"cloudCredentials": {"awsCredentials": {"sessionCredentials": {
      "accessKeyId": "AKIA1", "secretAccessKey": "planted-aws-secret",
      "sessionToken": "planted-session", "expiration": "2030-01-01T00:00:00Z"}}}},
    "clientCertificate": {"pemCertificate": "-----BEGIN CERTIFICATE-----\n", "pemPrivateKey": "planted-key"},
    "serverCertificates": {"internal-ca": "-----BEGIN CERTIFICATE-----\n"}
  },
  "Bucket": {"sourceConfiguration": {"type": "s3"}}
}"#;

#[test]
fn valid_files_are_parsed_into_typed_values() {
    let dir = tempfile::tempdir().unwrap();
    let map = HashMap::from([
        (
            "SOURCE_CREDENTIALS",
            write(
                dir.path(),
                "creds.json",
                r#"{"MyApi": {"additionalSecretOTHER": "planted-cred-secret"}, "OnlyCreds": {"a": "b"}}"#,
            ),
        ),
        (
            "SOURCE_CONFIGURATIONS_PATH",
            write(dir.path(), "config.json", CONFIGURATIONS),
        ),
    ]);
    let sources = Sources::from_lookup(&lookup(&map)).unwrap();
    assert_eq!(
        sources.names().collect::<Vec<_>>(),
        ["Bucket", "MyApi", "OnlyCreds"]
    );
    let api = sources.source("MyApi").unwrap();
    // Secrets from both files.
    assert_eq!(
        api.require_secret("additionalSecretKEY").unwrap().expose(),
        "planted-config-secret"
    );
    assert_eq!(
        api.secret("additionalSecretOTHER").unwrap().expose(),
        "planted-cred-secret"
    );
    let http = api.http_connection().unwrap();
    assert_eq!(http.url, "https://api.example.com/v1");
    assert_eq!(
        http.auth_headers["Authorization"].expose(),
        "Bearer planted-header"
    );
    assert_eq!(http.query_parameters["apiKey"].expose(), "planted-query");
    assert_eq!(
        api.proxy_token.as_ref().unwrap().expose(),
        "planted-proxy-token"
    );
    assert_eq!(
        api.source_configuration.as_ref().unwrap()["timeoutSeconds"],
        30
    );
    match api.resolved_credentials.as_ref().unwrap() {
        ResolvedCredentials::Aws(AwsCredentials::Session {
            access_key_id,
            secret_access_key,
            expiration,
            ..
        }) => {
            assert_eq!(access_key_id, "AKIA1");
            assert_eq!(secret_access_key.expose(), "planted-aws-secret");
            assert_eq!(expiration.as_deref(), Some("2030-01-01T00:00:00Z"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        api.client_certificate
            .as_ref()
            .unwrap()
            .pem_private_key
            .expose(),
        "planted-key"
    );
    assert!(api.server_certificates.contains_key("internal-ca"));
    assert!(sources.source("Bucket").unwrap().http.is_none());

    // Nothing secret in Debug output.
    let dbg = format!("{sources:?}");
    for s in [
        "planted-config-secret",
        "planted-cred-secret",
        "planted-header",
        "planted-query",
        "planted-proxy-token",
        "planted-aws-secret",
        "planted-session",
        "planted-key",
    ] {
        assert!(!dbg.contains(s), "{s} leaked: {dbg}");
    }
}

#[test]
fn lookups_of_missing_sources_and_secrets_name_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    let map = HashMap::from([(
        "SOURCE_CONFIGURATIONS_PATH",
        write(dir.path(), "config.json", CONFIGURATIONS),
    )]);
    let sources = Sources::from_lookup(&lookup(&map)).unwrap();
    let err = sources.source("Nope").unwrap_err().to_string();
    assert!(err.contains("`Nope` is not attached"), "{err}");
    assert!(err.contains("attached: Bucket, MyApi"), "{err}");
    let err = sources
        .source("MyApi")
        .unwrap()
        .require_secret("additionalSecretX")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no secret `additionalSecretX`"), "{err}");
    assert!(err.contains("it has: additionalSecretKEY"), "{err}");
    let err = sources.source("Bucket").unwrap().http_client().unwrap_err();
    assert!(matches!(err, SourceError::NoHttpConnection { .. }), "{err}");

    let none = Sources::from_lookup(&|_| None).unwrap();
    assert!(none.is_empty());
    let err = none.source("MyApi").unwrap_err().to_string();
    assert!(
        err.contains("neither SOURCE_CREDENTIALS nor SOURCE_CONFIGURATIONS_PATH is set"),
        "{err}"
    );
}

#[test]
fn missing_files_name_the_variable_and_the_file() {
    for var in ["SOURCE_CREDENTIALS", "SOURCE_CONFIGURATIONS_PATH"] {
        let map = HashMap::from([(var, "/nonexistent/dir/sources.json".to_owned())]);
        let err = Sources::from_lookup(&lookup(&map)).unwrap_err().to_string();
        assert!(err.starts_with(var), "{err}");
        assert!(err.contains("/nonexistent/dir/sources.json"), "{err}");
        assert!(err.contains("cannot read"), "{err}");
    }
    let map = HashMap::from([(
        "FOUNDRY_SERVICE_DISCOVERY_V2",
        "/nonexistent/discovery.yml".to_owned(),
    )]);
    let err = ServiceDiscovery::from_lookup(&lookup(&map))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("FOUNDRY_SERVICE_DISCOVERY_V2"), "{err}");
    assert!(err.contains("/nonexistent/discovery.yml"), "{err}");
}

#[test]
fn malformed_json_names_the_file_and_never_quotes_values() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // Syntax error after a secret value.
        (
            "SOURCE_CREDENTIALS",
            r#"{"MyApi": {"k": "planted-syntax"} x}"#,
            "invalid JSON",
        ),
        // A secret where a map is expected.
        (
            "SOURCE_CREDENTIALS",
            r#"{"MyApi": "planted-type"}"#,
            "at `MyApi`",
        ),
        // A number where a secret string is expected.
        (
            "SOURCE_CONFIGURATIONS_PATH",
            r#"{"MyApi": {"secrets": {"k": 42}, "proxyToken": "planted-x"}}"#,
            "at `MyApi.secrets.k`",
        ),
        // A missing required field.
        (
            "SOURCE_CONFIGURATIONS_PATH",
            r#"{"MyApi": {"httpConnectionConfig": {"authHeaders": {"A": "planted-y"}}}}"#,
            "missing field `url`",
        ),
        // Incomplete resolved credentials.
        (
            "SOURCE_CONFIGURATIONS_PATH",
            r#"{"MyApi": {"resolvedCredentials": {"oauth2Credentials": {"expiration": "x"}}}}"#,
            "resolvedCredentials.oauth2Credentials.accessToken",
        ),
    ];
    for (i, (var, text, expected)) in cases.into_iter().enumerate() {
        let path = write(dir.path(), &format!("bad{i}.json"), text);
        let map = HashMap::from([(var, path.clone())]);
        let err = Sources::from_lookup(&lookup(&map)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, SourceError::Parse { .. }), "{msg}");
        assert!(msg.starts_with(var), "{msg}");
        assert!(msg.contains(&path), "{msg}");
        assert!(msg.contains(expected), "case {i}: {msg}");
        assert!(!msg.contains("planted"), "case {i} quoted a value: {msg}");
    }
}

#[test]
fn discovery_files_parse_and_malformed_yaml_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "sd.yml",
        "api-gateway:\n  - https://stack/api\nstream_proxy: [\"https://stack/stream-proxy/api\"]\nfoundry_mio: [\"https://stack/mio/api\"]\nmultipass: [\"https://stack/multipass/api\"]\n",
    );
    let map = HashMap::from([("FOUNDRY_SERVICE_DISCOVERY_V2", good)]);
    let d = ServiceDiscovery::from_lookup(&lookup(&map))
        .unwrap()
        .unwrap();
    assert_eq!(d.api_gateway(), Some("https://stack/api"));
    assert_eq!(d.stream_proxy(), Some("https://stack/stream-proxy/api"));
    assert_eq!(d.media(), Some("https://stack/mio/api"));
    assert_eq!(d.multipass(), Some("https://stack/multipass/api"));

    let bad = write(
        dir.path(),
        "bad.yml",
        "api_gateway: [\"https://x/api\"\n  oops: : :\n",
    );
    let map = HashMap::from([("FOUNDRY_SERVICE_DISCOVERY_V2", bad.clone())]);
    let err = ServiceDiscovery::from_lookup(&lookup(&map))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("FOUNDRY_SERVICE_DISCOVERY_V2"), "{err}");
    assert!(err.contains(&bad), "{err}");
    assert!(err.contains("not valid"), "{err}");
    assert!(ServiceDiscovery::from_lookup(&|_| None).unwrap().is_none());
}

#[test]
fn required_source_declarations_fail_when_missing() {
    let declared: Vec<_> = required_sources()
        .into_iter()
        .filter(|r| r.api_name.starts_with("Declared"))
        .collect();
    assert_eq!(declared.len(), 2);

    // Nothing attached: both sources are reported, with where they were declared.
    let err = Sources::from_lookup(&|_| None)
        .unwrap()
        .check(declared.iter().copied())
        .unwrap_err()
        .to_string();
    assert!(err.contains("source `DeclaredApi`"), "{err}");
    assert!(err.contains("source `DeclaredBare`"), "{err}");
    assert!(err.contains("tests/tests/sources.rs:"), "{err}");
    assert!(err.contains("not attached"), "{err}");

    // Attached without the declared secret: the secret is named.
    let dir = tempfile::tempdir().unwrap();
    let map = HashMap::from([(
        "SOURCE_CREDENTIALS",
        write(
            dir.path(),
            "c.json",
            r#"{"DeclaredApi": {"additionalSecretOTHER": "planted"}, "DeclaredBare": {}}"#,
        ),
    )]);
    let err = Sources::from_lookup(&lookup(&map))
        .unwrap()
        .check(declared.iter().copied())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("secret `additionalSecretTOKEN` is missing"),
        "{err}"
    );
    assert!(!err.contains("DeclaredBare"), "{err}");
    assert!(!err.contains("planted"), "{err}");

    // Everything attached.
    let map = HashMap::from([(
        "SOURCE_CREDENTIALS",
        write(
            dir.path(),
            "ok.json",
            r#"{"DeclaredApi": {"additionalSecretTOKEN": "t"}, "DeclaredBare": {}}"#,
        ),
    )]);
    Sources::from_lookup(&lookup(&map))
        .unwrap()
        .check(declared.iter().copied())
        .unwrap();
}

#[tokio::test]
async fn rest_source_client_sends_the_connection_headers_and_trusts_server_certificates() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let foundry = LocalFoundry::start(LocalFoundryOptions {
            sources: vec![
                LocalSource::echo("MyApi")
                    .secret("additionalSecretKEY", "planted-secret-value")
                    .auth_header("Authorization", "Bearer planted-header-value")
                    .query_parameter("apiKey", "planted-query-value"),
            ],
            ..LocalFoundryOptions::default()
        })
        .await
        .unwrap();
        let env: HashMap<String, String> = foundry.env().into_iter().collect();
        // Only the sources files: the local CA is trusted through the source's
        // `serverCertificates`, not through DEFAULT_CA_PATH.
        let only_sources = |k: &str| {
            k.starts_with("SOURCE_")
                .then(|| env.get(k).cloned())
                .flatten()
        };
        let sources = Sources::from_lookup(&only_sources).unwrap();
        let api = sources.source("MyApi").unwrap();
        assert_eq!(
            api.require_secret("additionalSecretKEY").unwrap().expose(),
            "planted-secret-value"
        );
        let client = api.http_client_from_lookup(&only_sources).unwrap();
        assert!(client.base_url().ends_with("/local-sources/MyApi"));
        let echo: Value = client
            .get("/items?page=2")
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json_value()
            .await;
        assert_eq!(echo["source"], "MyApi");
        assert_eq!(echo["path"], "/items");
        assert_eq!(echo["authenticated"], true);
        assert_eq!(
            echo["queryParameters"],
            serde_json::json!(["apiKey", "page"])
        );

        // With another auth header the source refuses the call: the echo endpoint checks it.
        let status = client
            .get("/items")
            .header("Authorization", "Bearer wrong")
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 401);
        assert!(!format!("{client:?} {api:?}").contains("planted"));
    })
    .await
    .expect("test timed out");
}

/// Captures everything this thread logs, at every level (see `cmod_tests::log_capture`).
fn capture_logs() -> Captured {
    log_capture::capture(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| log_capture::ThreadWriter)
            .finish()
    })
}

/// `err`'s `Display`, `Debug` and every cause.
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = format!("{err} {err:?}");
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(&format!(" | {s} {s:?}"));
        source = s.source();
    }
    text
}

/// The connection's query parameters and auth headers (credentials) never show in the errors,
/// `Debug` output, response URLs or logs of the source client: neither for a refused connection
/// nor for an error status. Logs are captured at TRACE on this thread (a current-thread runtime
/// keeps every task, ours and the local Foundry's, on it).
#[tokio::test(flavor = "current_thread")]
async fn source_credentials_never_reach_errors_or_logs() {
    let captured = capture_logs();
    let planted = [
        "planted-query-secret-71c2",
        "planted-header-secret-0be9",
        "planted-echo-query-5a3f",
        "planted-echo-header-e27d",
    ];
    let mut outputs = String::new();

    tokio::time::timeout(Duration::from_secs(60), async {
        // 1. Connection refused: a loopback port nothing listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            r#"{{"Closed": {{"httpConnectionConfig": {{
                "url": "https://127.0.0.1:{port}/v1",
                "authHeaders": {{"X-Api-Key": "{}"}},
                "queryParameters": {{"apiKey": "{}"}}}}}}}}"#,
            planted[1], planted[0]
        );
        let map = HashMap::from([(
            "SOURCE_CONFIGURATIONS_PATH",
            write(dir.path(), "config.json", &config),
        )]);
        let sources = Sources::from_lookup(&lookup(&map)).unwrap();
        let client = sources
            .source("Closed")
            .unwrap()
            .http_client_from_lookup(&lookup(&map))
            .unwrap();
        let request = client.get("/items?page=2");
        outputs.push_str(&format!("{request:?} {client:?} "));
        let err = request.send().await.unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        let text = describe(&err);
        // Still useful: where the request went.
        assert!(
            text.contains(&format!("127.0.0.1:{port}/v1/items")),
            "{text}"
        );
        outputs.push_str(&text);

        // 2. An error status from a source over TLS (the local Foundry's echo source, refusing
        //    a wrong auth header).
        let foundry = LocalFoundry::start(LocalFoundryOptions {
            sources: vec![
                LocalSource::echo("Echo")
                    .auth_header("Authorization", format!("Bearer {}", planted[3]))
                    .query_parameter("apiKey", planted[2]),
            ],
            ..LocalFoundryOptions::default()
        })
        .await
        .unwrap();
        let env: HashMap<String, String> = foundry.env().into_iter().collect();
        let env_lookup = |k: &str| env.get(k).cloned();
        let sources = Sources::from_lookup(&env_lookup).unwrap();
        let client = sources
            .source("Echo")
            .unwrap()
            .http_client_from_lookup(&env_lookup)
            .unwrap();
        let refused = client
            .get("/items?page=3")
            .header("Authorization", "Bearer wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.url().query(), None);
        let err = refused.error_for_status().unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(401));
        let text = describe(&err);
        assert!(text.contains("/local-sources/Echo/items"), "{text}");
        outputs.push_str(&text);

        // The query parameters are still sent: the source accepts the real call.
        let echo: Value = client
            .get("/items?page=3")
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json_value()
            .await;
        assert_eq!(
            echo["queryParameters"],
            serde_json::json!(["apiKey", "page"])
        );
    })
    .await
    .expect("test timed out");

    let logs = captured.text();
    assert!(
        logs.contains("source request failed"),
        "the subscriber captured our logs: {logs}"
    );
    for secret in planted {
        assert!(!outputs.contains(secret), "{secret} leaked: {outputs}");
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}

/// `Response::json` needs reqwest's `json` feature; decode by hand.
trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_slice(&self.bytes().await.unwrap()).unwrap()
    }
}

#[tokio::test]
async fn local_foundry_generates_discovery_and_sources_files() {
    let foundry = LocalFoundry::start(LocalFoundryOptions {
        sources: vec![LocalSource::echo("Gen").secret("additionalSecretA", "x")],
        ..LocalFoundryOptions::default()
    })
    .await
    .unwrap();
    let env: HashMap<String, String> = foundry.env().into_iter().collect();
    for var in [
        "CLIENT_ID",
        "CLIENT_SECRET",
        "FOUNDRY_URL",
        "FOUNDRY_SERVICE_DISCOVERY_V2",
        "DEFAULT_CA_PATH",
        "SOURCE_CREDENTIALS",
        "SOURCE_CONFIGURATIONS_PATH",
    ] {
        assert!(env.contains_key(var), "{var} missing from {:?}", env.keys());
    }
    let d = ServiceDiscovery::from_file(Path::new(&env["FOUNDRY_SERVICE_DISCOVERY_V2"])).unwrap();
    assert_eq!(
        d.api_gateway(),
        Some(format!("{}/api", foundry.base_url()).as_str())
    );
    assert_eq!(
        d.stream_proxy(),
        Some(format!("{}/stream-proxy/api", foundry.base_url()).as_str())
    );
    assert_eq!(
        env["FOUNDRY_URL"],
        format!("localhost:{}", foundry.addr().port())
    );
    let sources = Sources::from_lookup(&|k| env.get(k).cloned()).unwrap();
    assert_eq!(
        sources
            .source("Gen")
            .unwrap()
            .secret("additionalSecretA")
            .unwrap()
            .expose(),
        "x"
    );
    // Without sources, no sources files are exported.
    let plain = LocalFoundry::start(LocalFoundryOptions::default())
        .await
        .unwrap();
    assert!(!plain.env().iter().any(|(k, _)| k.starts_with("SOURCE_")));
}
