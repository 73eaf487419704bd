//! The process-wide Foundry client and sources are built on first use; a failure then (a file
//! not mounted yet, a transient read error) is not remembered: the next use tries again.
//! Alone in its binary: it installs the process's environment overlay.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use cmod_runtime::foundry::FoundryClient;
use cmod_runtime::sources::Sources;

#[test]
fn a_failed_first_build_of_the_shared_clients_is_retried_on_next_use() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let creds = dir.path().join("creds.json");
    let conf = dir.path().join("conf.json");
    let token = dir.path().join("token");
    std::fs::write(&token, "planted-token-9f2e").unwrap();
    assert!(cmod_runtime::testing::install_env_overlay([
        ("DEFAULT_CA_PATH".to_owned(), ca.display().to_string()),
        ("SOURCE_CREDENTIALS".to_owned(), creds.display().to_string()),
        (
            "SOURCE_CONFIGURATIONS_PATH".to_owned(),
            conf.display().to_string()
        ),
        ("BUILD2_TOKEN".to_owned(), token.display().to_string()),
        ("FOUNDRY_URL".to_owned(), "localhost:1".to_owned()),
    ]));

    // Nothing mounted yet: both fail, naming the file.
    let err = FoundryClient::from_env().unwrap_err().to_string();
    assert!(err.contains("DEFAULT_CA_PATH"), "{err}");
    let err = Sources::global().unwrap_err().to_string();
    assert!(err.contains("SOURCE_CREDENTIALS"), "{err}");

    // Mounted: the next use succeeds.
    let local = cmod_local::tls::LocalCa::generate("retry test").unwrap();
    std::fs::write(&ca, local.ca_pem()).unwrap();
    std::fs::write(&creds, r#"{"Api": {"additionalSecretKEY": "v"}}"#).unwrap();
    std::fs::write(&conf, gcp_token("planted-gcp-1", "2001-01-01T00:00:00Z")).unwrap();
    let client = FoundryClient::from_env().unwrap();
    assert_eq!(client.credentials().mode(), "pipeline");
    let sources = Sources::global().unwrap();
    assert!(sources.get("Api").is_some());
    // And is then shared.
    assert!(std::ptr::eq(sources, Sources::global().unwrap()));
    assert_eq!(gcp_of(sources), "planted-gcp-1");

    // Its cloud credentials expired: Foundry mounts new ones, and they are read again.
    std::fs::write(&conf, gcp_token("planted-gcp-2", "2099-01-01T00:00:00Z")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gcp_of(Sources::global().unwrap()) != "planted-gcp-2" {
        assert!(
            std::time::Instant::now() < deadline,
            "expired credentials never re-read"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Valid ones are not re-read: the same value from then on.
    let fresh = Sources::global().unwrap();
    std::fs::write(&conf, gcp_token("planted-gcp-3", "2099-01-01T00:00:00Z")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(std::ptr::eq(fresh, Sources::global().unwrap()));
}

fn gcp_token(token: &str, expiration: &str) -> String {
    serde_json::json!({"Api": {"resolvedCredentials": {"gcpOauthCredentials": {
        "accessToken": token, "expiration": expiration}}}})
    .to_string()
}

fn gcp_of(sources: &Sources) -> String {
    match sources
        .get("Api")
        .unwrap()
        .resolved_credentials
        .as_ref()
        .unwrap()
    {
        cmod_runtime::sources::ResolvedCredentials::GcpOauth { access_token, .. } => {
            access_token.expose().to_owned()
        }
        other => panic!("{other:?}"),
    }
}
