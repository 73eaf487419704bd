//! The local Foundry's typed-table endpoints, driven over real TLS with a plain HTTP client:
//! dataset transactions with Foundry's view semantics (SNAPSHOT / APPEND / UPDATE / DELETE),
//! incremental file listings, `getSchema` / `putSchema`, and `readTable` (Arrow IPC stream and
//! CSV, checked with the arrow crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use cmod_local::foundry::{DataOptions, LocalFoundry, SEED_TRANSACTION_RID, TokenGrant};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

/// Every request of these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(30);
const DS: &str = "ri.foundry.main.dataset.tables";

struct Api {
    foundry: LocalFoundry,
    _dir: tempfile::TempDir,
    client: reqwest::Client,
    token: String,
}

impl Api {
    async fn start() -> Self {
        let (foundry, dir) = cmod_tests::foundry::start(DataOptions::default(), None).await;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(foundry.ca_pem().as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .timeout(BOUND)
            .build()
            .unwrap();
        let token = foundry.issue_token(TokenGrant::user("tables-test"));
        foundry.data().create_dataset(DS).unwrap();
        Self {
            foundry,
            _dir: dir,
            client,
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/datasets/{DS}{path}", self.foundry.api_url())
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, bytes::Bytes) {
        let resp = req.bearer_auth(&self.token).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.bytes().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, bytes::Bytes) {
        self.send(self.client.get(self.url(path))).await
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        let (s, b) = self.get(path).await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, b) = self
            .send(json_body(self.client.post(self.url(path)), &body))
            .await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    async fn put_schema(&self, body: Value) -> (u16, Value) {
        let (s, b) = self
            .send(json_body(self.client.put(self.url("/putSchema")), &body))
            .await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    /// Opens a transaction of `kind` on master.
    async fn open(&self, kind: &str) -> String {
        let (s, t) = self
            .post_json("/transactions", json!({ "transactionType": kind }))
            .await;
        assert_eq!(s, 200, "{t}");
        assert_eq!(t["transactionType"], kind);
        t["rid"].as_str().unwrap().to_owned()
    }

    async fn upload(&self, txn: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
        let (s, b) = self
            .send(
                self.client
                    .post(self.url(&format!("/files/{path}/upload?transactionRid={txn}")))
                    .body(body),
            )
            .await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    async fn close(&self, txn: &str, action: &str) -> (u16, Value) {
        self.post_json(&format!("/transactions/{txn}/{action}"), json!({}))
            .await
    }

    /// One committed transaction of `kind` writing `files`.
    async fn commit(&self, kind: &str, files: &[(&str, &[u8])]) -> String {
        let t = self.open(kind).await;
        for (p, b) in files {
            let (s, v) = self.upload(&t, p, b.to_vec()).await;
            assert_eq!(s, 200, "{v}");
        }
        let (s, v) = self.close(&t, "commit").await;
        assert_eq!(s, 200, "{v}");
        t
    }

    /// `(path, transactionRid)` of the view's files for the listing query `query`.
    async fn files(&self, query: &str) -> Vec<(String, String)> {
        let (s, v) = self.get_json(&format!("/files?{query}")).await;
        assert_eq!(s, 200, "{v}");
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap().to_owned(),
                    f["transactionRid"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

fn json_body(req: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
    req.header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
}

fn pair(p: &str, t: &str) -> (String, String) {
    (p.to_owned(), t.to_owned())
}

#[tokio::test]
async fn transactions_build_the_view_as_foundry_documents() {
    let api = Api::start().await;
    api.foundry
        .data()
        .put_file(DS, "master", "seed.csv", b"id\n1\n")
        .unwrap();
    let seed = SEED_TRANSACTION_RID;

    // APPEND adds a file.
    let a = api.commit("APPEND", &[("a.csv", b"id\n2\n")]).await;
    assert_eq!(
        api.files("").await,
        [pair("a.csv", &a), pair("seed.csv", seed)]
    );

    // APPEND writing a path already in the view: the commit fails and the view is unchanged.
    let bad = api.open("APPEND").await;
    let (s, v) = api.upload(&bad, "a.csv", b"id\n99\n".to_vec()).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api.close(&bad, "commit").await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["errorName"], "FileAlreadyExists");
    assert!(
        v["parameters"]["detail"]
            .as_str()
            .unwrap()
            .contains("a.csv")
    );
    let (s, v) = api.get_json(&format!("/transactions/{bad}")).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("OPEN")));
    let (s, _) = api.close(&bad, "abort").await;
    assert_eq!(s, 200);
    let (s, body) = api.get("/files/a.csv/content").await;
    assert_eq!((s, &body[..]), (200, &b"id\n2\n"[..]));

    // UPDATE adds and overwrites.
    let u = api
        .commit("UPDATE", &[("a.csv", b"id\n3\n"), ("b.csv", b"id\n4\n")])
        .await;
    assert_eq!(
        api.files("").await,
        [pair("a.csv", &u), pair("b.csv", &u), pair("seed.csv", seed)]
    );
    let (_, body) = api.get("/files/a.csv/content").await;
    assert_eq!(&body[..], b"id\n3\n");

    // Incremental listings: the files added by the transactions of a range.
    assert_eq!(
        api.files(&format!("startTransactionRid={u}")).await,
        [pair("a.csv", &u), pair("b.csv", &u)]
    );
    assert_eq!(
        api.files(&format!("endTransactionRid={seed}")).await,
        [pair("seed.csv", seed)]
    );
    let (s, v) = api
        .get_json(&format!("/files?startTransactionRid={bad}"))
        .await;
    assert_eq!(
        (s, v["errorName"].as_str()),
        (400, Some("TransactionNotCommitted"))
    );

    // DELETE, through the file endpoint in its own transaction, and in an open one.
    let (s, _) = api
        .send(
            api.client
                .delete(api.url("/files/seed.csv?branchName=master")),
        )
        .await;
    assert_eq!(s, 204);
    let d = api.open("DELETE").await;
    let (s, v) = api.upload(&d, "c.csv", b"x".to_vec()).await;
    assert_eq!(
        (s, v["errorName"].as_str()),
        (400, Some("InvalidTransactionType"))
    );
    let (s, _) = api
        .send(
            api.client
                .delete(api.url(&format!("/files/b.csv?transactionRid={d}"))),
        )
        .await;
    assert_eq!(s, 204);
    let (s, v) = api
        .send(
            api.client
                .delete(api.url(&format!("/files/zz.csv?transactionRid={d}"))),
        )
        .await;
    assert_eq!(s, 404, "{v:?}");
    assert_eq!(
        api.files("").await.len(),
        2,
        "an open DELETE changes nothing"
    );
    let (s, _) = api.close(&d, "commit").await;
    assert_eq!(s, 200);
    assert_eq!(api.files("").await, [pair("a.csv", &u)]);

    // SNAPSHOT replaces the view.
    let snap = api.commit("SNAPSHOT", &[("only.csv", b"id\n5\n")]).await;
    assert_eq!(api.files("").await, [pair("only.csv", &snap)]);

    // Transactions show their types, newest first.
    let (s, v) = api.get_json("/transactions?preview=true").await;
    assert_eq!(s, 200);
    let kinds: Vec<_> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{} {}",
                t["transactionType"].as_str().unwrap(),
                t["status"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "SNAPSHOT COMMITTED",
            "DELETE COMMITTED",
            "DELETE COMMITTED",
            "UPDATE COMMITTED",
            "APPEND ABORTED",
            "APPEND COMMITTED"
        ]
    );
}

fn schema_body() -> Value {
    json!({"fieldSchemaList": [
        {"name": "id", "type": "LONG", "nullable": false, "customMetadata": {"description": "key"}},
        {"name": "name", "type": "STRING", "nullable": true},
        {"name": "price", "type": "DECIMAL", "precision": 10, "scale": 2, "nullable": true},
    ]})
}

#[tokio::test]
async fn schemas_are_put_in_a_transaction_and_read_once_committed() {
    let api = Api::start().await;
    let (s, v) = api.get_json("/getSchema?branchName=master").await;
    assert_eq!(
        (s, v["errorName"].as_str()),
        (404, Some("SchemaNotFound")),
        "{v}"
    );

    // Put in the writing transaction: visible when it commits.
    let t = api.open("SNAPSHOT").await;
    let (s, v) = api
        .put_schema(json!({
            "branchName": "master",
            "endTransactionRid": t,
            "dataframeReader": "PARQUET",
            "schema": schema_body(),
        }))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["endTransactionRid"], t.as_str());
    assert_eq!(v["schema"], schema_body());
    let version = v["versionId"].as_str().unwrap().to_owned();
    let (s, _) = api.get_json("/getSchema").await;
    assert_eq!(s, 404, "not committed yet");
    let (s, _) = api.close(&t, "commit").await;
    assert_eq!(s, 200);
    // `preview=true` is accepted.
    let (s, v) = api.get_json("/getSchema?preview=true").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({
            "branchName": "master",
            "endTransactionRid": t,
            "schema": schema_body(),
            "versionId": version,
        })
    );
    // The schema carries over to later transactions, and is a file the user can read.
    let later = api.commit("APPEND", &[("x.csv", b"1,a,2.50\n")]).await;
    let (s, v) = api
        .get_json(&format!("/getSchema?endTransactionRid={later}"))
        .await;
    assert_eq!((s, &v["schema"]), (200, &schema_body()));
    let on_disk = api
        .foundry
        .data()
        .root()
        .join("datasets")
        .join(DS)
        .join("schemas/master")
        .join(format!("{t}.json"));
    let stored: Value = serde_json::from_slice(&std::fs::read(&on_disk).unwrap()).unwrap();
    assert_eq!(stored["schema"], schema_body());
    assert_eq!(stored["dataframeReader"], "PARQUET");

    // Invalid schemas name the field.
    let (s, v) = api
        .put_schema(json!({"schema": {"fieldSchemaList": [
            {"name": "tags", "type": "ARRAY", "nullable": true}
        ]}}))
        .await;
    assert_eq!(
        (s, v["errorName"].as_str()),
        (400, Some("InvalidSchema")),
        "{v}"
    );
    assert!(
        v["parameters"]["detail"]
            .as_str()
            .unwrap()
            .contains("`tags`")
    );
    let (s, v) = api
        .put_schema(json!({"schema": {"fieldSchemaList": [
            {"name": "x", "type": "VARCHAR", "nullable": true}
        ]}}))
        .await;
    assert_eq!(
        (s, v["errorName"].as_str()),
        (400, Some("InvalidSchema")),
        "{v}"
    );
}
