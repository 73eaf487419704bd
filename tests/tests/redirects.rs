//! Redirects never carry credentials to another origin: the Foundry and OAuth clients follow
//! only same-origin HTTPS redirects; a REST source follows any, but drops its auth headers and
//! secret query parameters when leaving the connection's origin; no `Referer` anywhere. Each
//! test has a local TLS server redirect to a second one and checks what the second received.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

mod support;

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cmod_runtime::Secret;
use cmod_runtime::auth::Credentials;
use cmod_runtime::foundry::FoundryClient;
use cmod_runtime::sources::Sources;
use support::{Recorder, Tls, bounded, origin};

fn redirect(status: StatusCode, to: &str) -> Response {
    (status, [(header::LOCATION, to.to_owned())], "").into_response()
}

/// A server that records every request and answers `{"ok": true}`.
fn recording(rec: Recorder) -> Router {
    Router::new().fallback(move |req: Request<Body>| {
        let rec = rec.clone();
        async move {
            rec.record(req).await;
            axum::Json(serde_json::json!({"ok": true}))
        }
    })
}

/// A server recording every request and redirecting by path: `/…/same` to `/…/landing` on
/// itself (307), `/…/away` to `other` (302), `/…/away307` to `other` (307), `/…/plain` to
/// `other` over plain HTTP, anything else answers `{"ok": true}`.
fn redirecting(rec: Recorder, other: String) -> Router {
    Router::new().fallback(move |req: Request<Body>| {
        let (rec, other) = (rec.clone(), other.clone());
        async move {
            let seen = rec.record(req).await;
            let path = seen.uri.split('?').next().unwrap_or_default().to_owned();
            let base = path.rsplit_once('/').map(|(b, _)| b).unwrap_or_default();
            if path.ends_with("/same") {
                redirect(
                    StatusCode::TEMPORARY_REDIRECT,
                    &format!("{base}/landing?x=1"),
                )
            } else if path.ends_with("/away") {
                redirect(StatusCode::FOUND, &other)
            } else if path.ends_with("/away307") || path.ends_with("/oauth2/token") {
                redirect(StatusCode::TEMPORARY_REDIRECT, &other)
            } else if path.ends_with("/plain") {
                redirect(StatusCode::FOUND, &other.replace("https://", "http://"))
            } else {
                axum::Json(serde_json::json!({"ok": true})).into_response()
            }
        }
    })
}

fn no_referer(seen: &[support::Seen]) {
    for s in seen {
        assert!(!s.headers.contains_key("referer"), "{s:?}");
    }
}

#[tokio::test]
async fn the_foundry_client_follows_same_origin_redirects_only() {
    let dir = tempfile::tempdir().unwrap();
    let tls = Tls::new(dir.path());
    let (a_rec, b_rec) = (Recorder::default(), Recorder::default());
    let b = tls.serve(recording(b_rec.clone()), false).await;
    let a = tls
        .serve(
            redirecting(a_rec.clone(), format!("{}/steal?x=1", origin(&b))),
            false,
        )
        .await;
    let vars = HashMap::from([("DEFAULT_CA_PATH", tls.ca_path.clone())]);
    let client = FoundryClient::builder()
        .foundry_url(origin(&a))
        .credentials(Credentials::Pipeline(Secret::new("planted-token-31ab")))
        .build_from_lookup(&|k| vars.get(k).cloned())
        .unwrap();

    // Same origin: followed, with the credential.
    let ok: serde_json::Value = bounded(client.get("/v2/same?q=planted-query").send_json())
        .await
        .unwrap();
    assert_eq!(ok["ok"], true);
    let seen = a_rec.seen();
    let landing = seen.iter().find(|s| s.uri.contains("/landing")).unwrap();
    assert_eq!(
        landing.headers.get("authorization").map(String::as_str),
        Some("Bearer planted-token-31ab")
    );

    // Another origin (port), or plain HTTP: not followed; the 3xx is the answer.
    for path in ["/v2/away?q=planted-query", "/v2/away307", "/v2/plain"] {
        let err = bounded(client.post(path).json(&serde_json::json!({"a": 1})).send())
            .await
            .unwrap_err();
        assert!(matches!(err.status(), Some(302 | 307)), "{err}");
        let text = err.to_string();
        assert!(!text.contains("planted-token"), "{text}");
        assert!(text.contains("same origin"), "{text}");
    }
    assert!(b_rec.seen().is_empty(), "{:?}", b_rec.seen());
    no_referer(&a_rec.seen());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn the_token_request_never_follows_a_redirect_to_another_origin() {
    let dir = tempfile::tempdir().unwrap();
    let tls = Tls::new(dir.path());
    let (a_rec, b_rec) = (Recorder::default(), Recorder::default());
    let b = tls.serve(recording(b_rec.clone()), false).await;
    let a = tls
        .serve(
            redirecting(
                a_rec.clone(),
                format!("{}/multipass/api/oauth2/token", origin(&b)),
            ),
            false,
        )
        .await;
    let vars = HashMap::from([("DEFAULT_CA_PATH", tls.ca_path.clone())]);
    let client = FoundryClient::builder()
        .foundry_url(origin(&a))
        .app_credentials("my-app", Secret::new("planted-client-secret"))
        .build_from_lookup(&|k| vars.get(k).cloned())
        .unwrap();
    let err = bounded(client.get_json::<serde_json::Value>("/v2/x"))
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("planted-client-secret"), "{text}");
    // The secret went to the configured token endpoint only.
    assert!(
        a_rec
            .seen()
            .iter()
            .any(|s| String::from_utf8_lossy(&s.body).contains("planted-client-secret"))
    );
    assert!(b_rec.seen().is_empty(), "{:?}", b_rec.seen());
    no_referer(&a_rec.seen());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_source_drops_its_credentials_when_a_redirect_leaves_its_origin() {
    let dir = tempfile::tempdir().unwrap();
    let tls = Tls::new(dir.path());
    let (a_rec, b_rec) = (Recorder::default(), Recorder::default());
    let b = tls.serve(recording(b_rec.clone()), false).await;
    let a = tls
        .serve(
            redirecting(
                a_rec.clone(),
                format!("{}/land?apiKey=planted-query&keep=1", origin(&b)),
            ),
            false,
        )
        .await;
    let conf = dir.path().join("sources.json");
    std::fs::write(
        &conf,
        serde_json::json!({
            "Api": {"httpConnectionConfig": {
                "url": format!("{}/v1", origin(&a)),
                "authHeaders": {"X-Api-Key": "planted-header", "Authorization": "Bearer planted-bearer"},
                "queryParameters": {"apiKey": "planted-query"}
            }}
        })
        .to_string(),
    )
    .unwrap();
    let vars = HashMap::from([
        ("SOURCE_CONFIGURATIONS_PATH", conf.display().to_string()),
        ("DEFAULT_CA_PATH", tls.ca_path.clone()),
    ]);
    let lookup = |k: &str| vars.get(k).cloned();
    let client = Sources::from_lookup(&lookup)
        .unwrap()
        .source("Api")
        .unwrap()
        .http_client_from_lookup(&lookup)
        .unwrap();

    // Same origin: followed with the credentials (and the 307 keeps method and body).
    let resp = bounded(client.post("/same").body("payload").send())
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let seen = a_rec.seen();
    let landing = seen.iter().find(|s| s.uri.contains("/landing")).unwrap();
    assert_eq!(landing.method, "POST");
    assert_eq!(landing.body, b"payload");
    assert_eq!(landing.headers["x-api-key"], "planted-header");

    // Another origin: followed without any credential.
    for (method, path) in [("GET", "/away"), ("POST", "/away307")] {
        let req = match method {
            "GET" => client.get(path),
            _ => client.post(path).body("payload"),
        };
        let resp = bounded(req.send()).await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        assert!(!resp.url().as_str().contains("planted"), "{}", resp.url());
    }
    let landed = b_rec.seen();
    assert_eq!(landed.len(), 2, "{landed:?}");
    for s in &landed {
        let all = format!("{s:?}");
        assert!(
            !all.contains("planted"),
            "a credential left the origin: {all}"
        );
        assert!(s.uri.contains("keep=1"), "{all}");
    }
    assert_eq!(landed[1].method, "POST");
    assert_eq!(landed[1].body, b"payload");
    no_referer(&a_rec.seen());
    no_referer(&landed);
    a.shutdown().await;
    b.shutdown().await;
}
