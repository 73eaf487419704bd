//! Auth modes end to end: cmod's `FoundryClient` and application-token provider against the
//! local Foundry's OAuth2 endpoint, over real TLS with the generated CA.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use cmod_local::foundry::{LocalClient, LocalFoundry, LocalFoundryOptions, TokenGrant};
use cmod_runtime::auth::{AuthError, Credentials};
use cmod_runtime::foundry::{FoundryClient, FoundryError, RetryPolicy, Service};
use cmod_runtime::{Context, Secret};
use cmod_tests::log_capture::{self, Captured};
use serde_json::Value;

const CLIENT_ID: &str = "test-app";
const CLIENT_SECRET: &str = "planted-client-secret-4f1e";
const WHOAMI: &str = "/v2/admin/users/getCurrent";

/// Every test is bounded: a hang fails fast.
async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test timed out")
}

async fn foundry(ttl: Duration) -> LocalFoundry {
    LocalFoundry::start(LocalFoundryOptions {
        clients: vec![LocalClient::new(CLIENT_ID, CLIENT_SECRET)],
        token_ttl: ttl,
        ..LocalFoundryOptions::default()
    })
    .await
    .expect("local Foundry starts")
}

fn env_of(foundry: &LocalFoundry) -> HashMap<String, String> {
    foundry.env().into_iter().collect()
}

/// A client built the way a module builds it: from the variables the local Foundry exports.
fn client(foundry: &LocalFoundry) -> FoundryClient {
    let env = env_of(foundry);
    FoundryClient::builder()
        .build_from_lookup(&|k| env.get(k).cloned())
        .expect("client builds")
}

#[tokio::test]
async fn application_token_is_fetched_once_and_reused() {
    bounded(async {
        let foundry = foundry(Duration::from_secs(3600)).await;
        let client = client(&foundry);
        assert_eq!(client.credentials().mode(), "application");
        for _ in 0..3 {
            let me: Value = client.get_json(WHOAMI).await.unwrap();
            assert_eq!(me["id"], CLIENT_ID);
            assert_eq!(me["principalKind"], "application");
        }
        let stats = foundry.stats();
        assert_eq!(stats.token_requests, 1, "{stats:?}");
        assert_eq!(stats.api_requests, 3, "{stats:?}");
        assert_eq!(stats.unauthorized, 0, "{stats:?}");
    })
    .await;
}

#[tokio::test]
async fn tokens_are_cached_per_scope_set() {
    bounded(async {
        let foundry = foundry(Duration::from_secs(3600)).await;
        let base = client(&foundry);
        let read = base.with_scopes(["api:datasets-read", "api:streams-read"]);
        let same = base.with_scopes(["api:streams-read", "api:datasets-read"]);
        let write = base.with_scopes(["api:datasets-write"]);
        let me: Value = read.get_json(WHOAMI).await.unwrap();
        assert_eq!(
            me["scopes"],
            serde_json::json!(["api:datasets-read", "api:streams-read"])
        );
        let _: Value = same.get_json(WHOAMI).await.unwrap();
        assert_eq!(foundry.stats().token_requests, 1);
        let me: Value = write.get_json(WHOAMI).await.unwrap();
        assert_eq!(me["scopes"], serde_json::json!(["api:datasets-write"]));
        assert_eq!(foundry.stats().token_requests, 2);
    })
    .await;
}

#[tokio::test]
async fn token_is_refreshed_before_it_expires() {
    bounded(async {
        // 4 s tokens are refreshed once 75% (3 s) of their lifetime has passed.
        let foundry = foundry(Duration::from_secs(4)).await;
        let client = client(&foundry);
        let _: Value = client.get_json(WHOAMI).await.unwrap();
        assert_eq!(foundry.stats().token_requests, 1);
        tokio::time::sleep(Duration::from_millis(3300)).await;
        let _: Value = client.get_json(WHOAMI).await.unwrap();
        let stats = foundry.stats();
        assert_eq!(stats.token_requests, 2, "{stats:?}");
        // The old token was never used past its refresh point: no request was refused.
        assert_eq!(stats.unauthorized, 0, "{stats:?}");
    })
    .await;
}

#[tokio::test]
async fn twenty_concurrent_callers_cause_one_token_request() {
    bounded(async {
        let foundry = foundry(Duration::from_secs(3600)).await;
        let client = client(&foundry);
        let calls = (0..20).map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.get_json::<Value>(WHOAMI).await })
        });
        for result in futures_util::future::join_all(calls).await {
            let me = result.unwrap().unwrap();
            assert_eq!(me["id"], CLIENT_ID);
        }
        let stats = foundry.stats();
        assert_eq!(stats.token_requests, 1, "{stats:?}");
        assert_eq!(stats.api_requests, 20, "{stats:?}");
    })
    .await;
}

#[tokio::test]
async fn wrong_secret_says_authentication_failed_without_echoing_it() {
    bounded(async {
        let foundry = foundry(Duration::from_secs(3600)).await;
        let wrong = "planted-wrong-secret-9a7c";
        let env = env_of(&foundry);
        let client = FoundryClient::builder()
            .app_credentials(CLIENT_ID, Secret::new(wrong))
            .build_from_lookup(&|k| env.get(k).cloned())
            .unwrap();
        let err = client.get_json::<Value>(WHOAMI).await.unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains("authentication failed"), "{text}");
        assert!(text.contains(CLIENT_ID), "{text}");
        assert!(text.contains("InvalidClientCredentials"), "{text}");
        assert!(!text.contains(wrong), "{text}");
        assert!(matches!(
            err,
            FoundryError::Auth(AuthError::TokenRejected { status: 401, .. })
        ));
        // Refused credentials are not retried.
        assert_eq!(foundry.stats().token_requests, 1);
        assert_eq!(foundry.stats().api_requests, 0);
    })
    .await;
}

#[tokio::test]
async fn unauthorized_mid_way_refreshes_the_token_and_retries_once() {
    bounded(async {
        let foundry = foundry(Duration::from_secs(3600)).await;
        let client = client(&foundry);
        let _: Value = client.get_json(WHOAMI).await.unwrap();
        foundry.revoke_all_tokens();
        let me: Value = client.get_json(WHOAMI).await.unwrap();
        assert_eq!(me["id"], CLIENT_ID);
        let stats = foundry.stats();
        assert_eq!(stats.unauthorized, 1, "{stats:?}");
        assert_eq!(stats.token_requests, 2, "{stats:?}");
        assert_eq!(stats.api_requests, 3, "{stats:?}");
    })
    .await;
}

#[tokio::test]
async fn user_token_from_the_job_context_calls_foundry_as_the_user() {
    bounded(async {
        let foundry = foundry(Duration::from_secs(3600)).await;
        let token = foundry.issue_token(TokenGrant::user("alice"));
        let ctx = Context::builder("job-1")
            .auth_header(format!("Bearer {token}"))
            .build();
        let me: Value = client(&foundry)
            .as_user(&ctx)
            .unwrap()
            .get_json(WHOAMI)
            .await
            .unwrap();
        assert_eq!(me["id"], "alice");
        assert_eq!(me["principalKind"], "user");
        // User tokens cannot be refreshed: a refused one is an error naming the status, once.
        foundry.revoke_all_tokens();
        let err = client(&foundry)
            .as_user(&ctx)
            .unwrap()
            .get_json::<Value>(WHOAMI)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(401));
        let api = err.api().unwrap();
        assert_eq!(api.error_name.as_deref(), Some("InvalidToken"));
        assert!(!err.to_string().contains(&token));
        assert_eq!(foundry.stats().unauthorized, 1);

        let no_user = Context::for_test("job-2");
        let err = client(&foundry).as_user(&no_user).unwrap_err();
        assert!(err.to_string().contains("job-2"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn pipeline_token_plugs_into_the_client() {
    bounded(async {
        let foundry = foundry(Duration::from_secs(3600)).await;
        let token = foundry.issue_token(TokenGrant::pipeline(["ri.foundry.main.dataset.1"]));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("BUILD2_TOKEN");
        std::fs::write(&file, format!("{token}\n")).unwrap();
        let mut env = env_of(&foundry);
        env.remove("CLIENT_ID");
        env.insert("BUILD2_TOKEN".to_owned(), file.display().to_string());
        let client = FoundryClient::builder()
            .build_from_lookup(&|k| env.get(k).cloned())
            .unwrap();
        assert_eq!(client.credentials().mode(), "pipeline");
        let me: Value = client.get_json(WHOAMI).await.unwrap();
        assert_eq!(me["principalKind"], "pipeline");
        assert_eq!(foundry.stats().token_requests, 0);
    })
    .await;
}

#[tokio::test]
async fn no_platform_permissions_names_the_mode_to_enable() {
    bounded(async {
        let foundry = foundry(Duration::from_secs(3600)).await;
        let mut env = env_of(&foundry);
        env.remove("CLIENT_ID");
        env.remove("CLIENT_SECRET");
        let client = FoundryClient::builder()
            .build_from_lookup(&|k| env.get(k).cloned())
            .unwrap();
        let err = client
            .get_json::<Value>(WHOAMI)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("application permissions are not configured"),
            "{err}"
        );
        assert!(err.contains("CLIENT_ID/CLIENT_SECRET"), "{err}");
        assert_eq!(foundry.stats().api_requests, 0);
    })
    .await;
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff() {
    bounded(async {
        let foundry = foundry(Duration::from_secs(3600)).await;
        let client = client(&foundry);
        foundry.fail_next_requests(2, 503);
        let me: Value = client.get_json(WHOAMI).await.unwrap();
        assert_eq!(me["id"], CLIENT_ID);
        assert_eq!(foundry.stats().api_requests, 3);

        // Out of retries: the last answer is the error, with Foundry's error body.
        let env = env_of(&foundry);
        let no_retry = FoundryClient::builder()
            .retry(RetryPolicy {
                max_retries: 1,
                ..RetryPolicy::default()
            })
            .build_from_lookup(&|k| env.get(k).cloned())
            .unwrap();
        foundry.fail_next_requests(5, 503);
        let err = no_retry.get_json::<Value>(WHOAMI).await.unwrap_err();
        assert_eq!(err.status(), Some(503));
        assert_eq!(
            err.api().unwrap().error_name.as_deref(),
            Some("InjectedFault")
        );
        assert!(err.api().unwrap().error_instance_id.is_some());
    })
    .await;
}

#[tokio::test]
async fn foundry_errors_carry_the_foundry_error_body() {
    bounded(async {
        let foundry = foundry(Duration::from_secs(3600)).await;
        let err = client(&foundry)
            .get_json::<Value>("/v2/no/such/endpoint")
            .await
            .unwrap_err();
        let api = err.api().unwrap();
        assert_eq!(api.status, 404);
        assert_eq!(api.error_code.as_deref(), Some("NOT_FOUND"));
        assert_eq!(api.error_name.as_deref(), Some("EndpointNotFound"));
        let text = err.to_string();
        assert!(text.contains("/api/v2/no/such/endpoint"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn service_urls_come_from_the_generated_discovery_file() {
    bounded(async {
        let foundry = foundry(Duration::from_secs(3600)).await;
        let client = client(&foundry);
        let base = foundry.base_url();
        assert_eq!(client.api_url().unwrap(), format!("{base}/api"));
        assert_eq!(
            client.service_url(Service::StreamProxy).unwrap(),
            format!("{base}/stream-proxy/api")
        );
        assert_eq!(
            client.service_url(Service::Multipass).unwrap(),
            format!("{base}/multipass/api")
        );
    })
    .await;
}

#[tokio::test]
async fn absurd_expires_in_from_the_token_endpoint_never_panics() {
    bounded(async {
        // (value the token endpoint answers, token requests for two calls): a huge lifetime is
        // capped (the token is reused); a negative, NaN or non-numeric one means "expires now"
        // (the token serves its call, the next call fetches a new one).
        let cases = [
            (serde_json::json!(1e30), 1),
            (serde_json::json!(u64::MAX), 1),
            (serde_json::json!(-5), 2),
            (serde_json::json!("NaN"), 2),
            (serde_json::json!("soon"), 2),
        ];
        for (value, expected_token_requests) in cases {
            let foundry = foundry(Duration::from_secs(3600)).await;
            foundry.set_token_expires_in(Some(value.clone()));
            let client = client(&foundry);
            for _ in 0..2 {
                let me: Value = client.get_json(WHOAMI).await.unwrap();
                assert_eq!(me["id"], CLIENT_ID, "expires_in {value}");
            }
            let stats = foundry.stats();
            assert_eq!(
                stats.token_requests, expected_token_requests,
                "expires_in {value}: {stats:?}"
            );
            assert_eq!(stats.unauthorized, 0, "expires_in {value}: {stats:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn the_token_is_never_sent_to_another_origin_unless_allowed() {
    bounded(async {
        let foundry = foundry(Duration::from_secs(3600)).await;
        let client = client(&foundry);
        let port = foundry.addr().port();
        // The configured origin is https://localhost:PORT; an absolute URL on it is fine.
        let me: Value = client
            .get_json(format!("https://localhost:{port}/api{WHOAMI}"))
            .await
            .unwrap();
        assert_eq!(me["id"], CLIENT_ID);
        let before = foundry.stats();

        // The same server under another host name is another origin: refused before anything
        // is sent (no token request, no API request), naming the host but not the query.
        let other = format!("https://127.0.0.1:{port}/api{WHOAMI}?planted=query-value-9d1e");
        let err = client.get(other.as_str()).send().await.unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(
            matches!(&err, FoundryError::ForeignOrigin { host, .. } if host == "127.0.0.1"),
            "{text}"
        );
        assert!(
            text.contains("127.0.0.1") && text.contains(&format!("https://localhost:{port}")),
            "{text}"
        );
        assert!(text.contains("allow_any_origin"), "{text}");
        assert!(!text.contains("query-value-9d1e"), "{text}");
        assert_eq!(foundry.stats(), before, "nothing may reach the server");

        // Any other host or port is refused too, before any connection is tried.
        for url in [
            "https://evil.example.com/api/v2/x".to_owned(),
            format!("https://localhost:{}/api/v2/x", port.wrapping_add(1)),
            format!("http://localhost:{port}/api/v2/x"),
        ] {
            let err = client.get(url.as_str()).send().await.unwrap_err();
            assert!(
                matches!(err, FoundryError::ForeignOrigin { .. }),
                "{url}: {err}"
            );
        }

        // With the explicit opt-in the request goes out (and the server accepts the token).
        let me: Value = client
            .get(format!("https://127.0.0.1:{port}/api{WHOAMI}"))
            .allow_any_origin()
            .send_json()
            .await
            .unwrap();
        assert_eq!(me["id"], CLIENT_ID);
        assert_eq!(foundry.stats().api_requests, before.api_requests + 1);
    })
    .await;
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

/// Runs every auth flow with a TRACE-level subscriber capturing all logs (ours, reqwest's,
/// hyper's, rustls's and the local Foundry's: a current-thread runtime keeps every task on this
/// thread), then greps the logs and every `Debug` output for the secrets and tokens involved.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_or_token_appears_in_logs_or_debug_output() {
    let captured = capture_logs();

    let mut planted: Vec<String> = vec![CLIENT_SECRET.to_owned()];
    let mut debug_output = String::new();
    bounded(async {
        let foundry = foundry(Duration::from_secs(3600)).await;
        let client = client(&foundry);
        let token = client.access_token().await.unwrap();
        planted.push(token.expose().to_owned());
        let _: Value = client.get_json(WHOAMI).await.unwrap();
        foundry.revoke_all_tokens();
        let _: Value = client.get_json(WHOAMI).await.unwrap();
        planted.push(client.access_token().await.unwrap().expose().to_owned());

        let wrong = "planted-wrong-secret-3c2d";
        planted.push(wrong.to_owned());
        let env = env_of(&foundry);
        let bad = FoundryClient::builder()
            .app_credentials(CLIENT_ID, Secret::new(wrong))
            .build_from_lookup(&|k| env.get(k).cloned())
            .unwrap();
        let err = bad.get_json::<Value>(WHOAMI).await.unwrap_err();
        debug_output.push_str(&format!("{err:?} {err}"));

        let user_token = foundry.issue_token(TokenGrant::user("bob"));
        planted.push(user_token.clone());
        let ctx = Context::builder("job-9")
            .auth_header(format!("Bearer {user_token}"))
            .build();
        let as_user = client.as_user(&ctx).unwrap();
        let _: Value = as_user.get_json(WHOAMI).await.unwrap();
        foundry.revoke_all_tokens();
        let err = as_user.get_json::<Value>(WHOAMI).await.unwrap_err();
        debug_output.push_str(&format!(
            "{err:?} {err} {client:?} {as_user:?} {ctx:?} {:?} {:?}",
            client.credentials(),
            Credentials::Bearer(Secret::new(user_token.clone())),
        ));
    })
    .await;

    let logs = captured.text();
    assert!(
        logs.contains("fetched an application token"),
        "the subscriber captured our logs: {logs}"
    );
    for secret in &planted {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret leaked into the logs"
        );
        assert!(
            !debug_output.contains(secret.as_str()),
            "a secret leaked into Debug/Display output: {debug_output}"
        );
    }
}
