//! Without the `tables` feature, `readTable` answers a Foundry error naming the feature (the
//! endpoint itself is tested with the feature on in `tests/tests/local_tables.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[cfg(not(feature = "tables"))]
#[tokio::test]
async fn read_table_names_the_feature_it_needs() {
    use cmod_local::foundry::{DataOptions, LocalFoundry, LocalFoundryOptions, TokenGrant};

    let dir = tempfile::tempdir().unwrap();
    let foundry = LocalFoundry::start(LocalFoundryOptions {
        dir: Some(dir.path().join("foundry")),
        data: DataOptions {
            dir: Some(dir.path().join("data")),
            ..DataOptions::default()
        },
        ..LocalFoundryOptions::default()
    })
    .await
    .unwrap();
    foundry.data().create_dataset("ri.ds.t").unwrap();
    let token = foundry.issue_token(TokenGrant::user("t"));
    let resp = common::client_trusting(foundry.ca_pem())
        .get(format!(
            "{}/v2/datasets/ri.ds.t/readTable?format=ARROW",
            foundry.api_url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 501);
    let v: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(v["errorName"], "ReadTableNotEnabled");
    let detail = v["parameters"]["detail"].as_str().unwrap();
    assert!(detail.contains("`tables` feature"), "{detail}");
    foundry.shutdown().await;
}
