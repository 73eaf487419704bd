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
    assert_eq!(v["parameters"]["transactionRid"], bad.as_str());
    assert_eq!(v["parameters"]["datasetRid"], DS);
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

// ---- readTable ----------------------------------------------------------------------------

use arrow_array::{Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// A snappy Parquet file of rows `from..to` (`id` LONG, `name` STRING, `score` DOUBLE), in row
/// groups of 1000 rows.
fn parquet_rows(from: i64, to: i64) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
    ]));
    let ids: Vec<i64> = (from..to).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("n{i}")).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                ids.iter().map(|i| *i as f64 / 2.0).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(1000))
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

/// Decodes an Arrow IPC stream.
fn arrow_batches(body: &[u8]) -> (Arc<Schema>, Vec<RecordBatch>) {
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None).unwrap();
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>().unwrap();
    (schema, batches)
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b
                .column_by_name("id")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            c.values().to_vec()
        })
        .collect()
}

#[tokio::test]
async fn parquet_views_read_as_arrow_and_csv_with_projection_limits_and_ranges() {
    let api = Api::start().await;
    // A user drops a Parquet file into the dataset directory...
    api.foundry
        .data()
        .put_file(
            DS,
            "master",
            "part-00000.snappy.parquet",
            &parquet_rows(0, 2500),
        )
        .unwrap();
    // ...and files that are not part of the table.
    api.foundry
        .data()
        .put_file(DS, "master", "_SUCCESS", b"")
        .unwrap();
    api.foundry
        .data()
        .put_file(DS, "master", "notes/readme.txt", b"hello")
        .unwrap();
    // An APPEND transaction adds more rows.
    let a = api
        .commit(
            "APPEND",
            &[("spark/part-00001.parquet", &parquet_rows(2500, 2600))],
        )
        .await;

    let (s, body) = api.get("/readTable?format=ARROW").await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let (schema, batches) = arrow_batches(&body);
    assert_eq!(
        schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone()))
            .collect::<Vec<_>>(),
        [
            ("id", DataType::Int64),
            ("name", DataType::Utf8),
            ("score", DataType::Float64)
        ]
    );
    assert_eq!(ids(&batches), (0..2600).collect::<Vec<_>>());
    let name = batches[0]
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(name.value(7), "n7");

    // Projection (order as asked, repeated or comma-separated) and rowLimit.
    for q in ["columns=name&columns=id", "columns=name%2Cid"] {
        let (s, body) = api
            .get(&format!("/readTable?format=ARROW&{q}&rowLimit=1234"))
            .await;
        assert_eq!(s, 200);
        let (schema, batches) = arrow_batches(&body);
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["name", "id"], "{q}");
        assert_eq!(rows(&batches), 1234);
    }
    let (s, body) = api.get("/readTable?format=ARROW&rowLimit=0").await;
    assert_eq!(s, 200);
    let (schema, batches) = arrow_batches(&body);
    assert_eq!((schema.fields().len(), rows(&batches)), (3, 0));

    // Incremental: only the rows of the files the APPEND added.
    let (s, body) = api
        .get(&format!("/readTable?format=ARROW&startTransactionRid={a}"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        ids(&arrow_batches(&body).1),
        (2500..2600).collect::<Vec<_>>()
    );
    let (s, body) = api
        .get(&format!(
            "/readTable?format=ARROW&endTransactionRid={SEED_TRANSACTION_RID}"
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(rows(&arrow_batches(&body).1), 2500);

    // CSV: a header line, then rows.
    let (s, body) = api
        .get("/readTable?format=CSV&columns=id&columns=score&rowLimit=3")
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        String::from_utf8(body.to_vec()).unwrap(),
        "id,score\n0,0.0\n1,0.5\n2,1.0\n"
    );
    let (s, body) = api.get("/readTable?format=CSV").await;
    assert_eq!(s, 200);
    assert_eq!(
        String::from_utf8(body.to_vec()).unwrap().lines().count(),
        2601
    );

    // Errors: Foundry's JSON shape, naming what is wrong.
    let (s, v) = api
        .get_json("/readTable?format=ARROW&columns=id&columns=nope")
        .await;
    assert_eq!(
        (s, v["errorName"].as_str()),
        (400, Some("ColumnNotFound")),
        "{v}"
    );
    assert_eq!(v["parameters"]["column"], "nope");
    assert!(v["errorInstanceId"].is_string());
    let (s, v) = api.get_json("/readTable?format=JSON").await;
    assert_eq!(
        (s, v["parameters"]["parameter"].as_str()),
        (400, Some("format")),
        "{v}"
    );
    let (s, v) = api.get_json("/readTable").await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = api.get_json("/readTable?format=CSV&rowLimit=-1").await;
    assert_eq!(
        (s, v["parameters"]["parameter"].as_str()),
        (400, Some("rowLimit")),
        "{v}"
    );
}

#[tokio::test]
async fn csv_and_parquet_are_typed_by_the_stored_schema() {
    let api = Api::start().await;
    let (s, v) = api.get_json("/readTable?format=ARROW").await;
    assert_eq!(
        (s, v["errorName"].as_str()),
        (404, Some("SchemaNotFound")),
        "{v}"
    );

    // A CSV dataset without a schema reads as strings.
    api.foundry
        .data()
        .put_file(
            DS,
            "master",
            "data.csv",
            b"id,name,price\n1,\"a, b\",2.50\n2,,3\n",
        )
        .unwrap();
    let (s, body) = api.get("/readTable?format=ARROW").await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let (schema, batches) = arrow_batches(&body);
    assert!(
        schema
            .fields()
            .iter()
            .all(|f| *f.data_type() == DataType::Utf8)
    );
    let name = batches[0]
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(name.value(0), "a, b");

    // With a schema, typed.
    let (s, v) = api
        .put_schema(json!({"dataframeReader": "CSV", "schema": schema_body()}))
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, body) = api.get("/readTable?format=ARROW").await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let (schema, batches) = arrow_batches(&body);
    assert_eq!(
        schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
            .collect::<Vec<_>>(),
        [
            ("id", DataType::Int64, false),
            ("name", DataType::Utf8, true),
            ("price", DataType::Decimal128(10, 2), true)
        ]
    );
    assert_eq!(ids(&batches), [1, 2]);
    assert!(batches[0].column(1).is_null(1));
    let (s, body) = api.get("/readTable?format=CSV").await;
    assert_eq!(s, 200);
    assert_eq!(
        String::from_utf8(body.to_vec()).unwrap(),
        "id,name,price\n1,\"a, b\",2.50\n2,,3.00\n"
    );

    // A Parquet file with narrower types is cast to the schema's (INTEGER id → LONG).
    let narrow = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        narrow.clone(),
        vec![
            Arc::new(Int32Array::from(vec![3, 4])),
            Arc::new(StringArray::from(vec!["c", "d"])),
        ],
    )
    .unwrap();
    let mut file = Vec::new();
    let mut w = ArrowWriter::try_new(&mut file, narrow, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    api.commit("APPEND", &[("more.parquet", &file)]).await;
    let (s, body) = api.get("/readTable?format=ARROW").await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let (_, batches) = arrow_batches(&body);
    assert_eq!(ids(&batches), [1, 2, 3, 4]);
    // `price` is missing from the Parquet file: null there.
    let last = batches.last().unwrap();
    assert_eq!(last.column(2).null_count(), last.num_rows());

    // A value that does not parse as its column's type: an error naming the file.
    let ugly = api
        .commit("APPEND", &[("ugly.csv", b"id,name,price\nseven,e,1\n")])
        .await;
    let (s, v) = api.get_json("/readTable?format=ARROW").await;
    assert_eq!(
        (s, v["errorName"].as_str()),
        (500, Some("ReadTableError")),
        "{v}"
    );
    assert!(
        v["parameters"]["message"]
            .as_str()
            .unwrap()
            .contains("ugly.csv"),
        "{v}"
    );
    let (s, _) = api
        .send(api.client.delete(api.url("/files/ugly.csv")))
        .await;
    assert_eq!(s, 204);
    let (s, _) = api.get("/readTable?format=ARROW").await;
    assert_eq!(s, 200, "readable again once {ugly}'s file is deleted");

    // A CSV file whose header does not match the schema is an error naming the file.
    api.commit("APPEND", &[("bad.csv", b"id,title,price\n5,e,1\n")])
        .await;
    let (s, v) = api.get_json("/readTable?format=ARROW").await;
    assert_eq!(
        (s, v["errorName"].as_str()),
        (500, Some("ReadTableError")),
        "{v}"
    );
    assert!(
        v["parameters"]["message"]
            .as_str()
            .unwrap()
            .contains("bad.csv"),
        "{v}"
    );
}

/// Writes a Parquet file of rows `0..rows` into the dataset directory, 50 000 rows at a time
/// (never the whole file in memory).
fn seed_large_parquet(api: &Api, rows: i64) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
    ]));
    api.foundry
        .data()
        .put_file(DS, "master", "big.parquet", b"")
        .unwrap();
    let path = api
        .foundry
        .data()
        .file_location(DS, "master", "big.parquet")
        .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(50_000))
        .build();
    let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
    let mut from = 0;
    while from < rows {
        let to = (from + 50_000).min(rows);
        let ids: Vec<i64> = (from..to).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(StringArray::from(
                    ids.iter().map(|i| format!("name-{i}")).collect::<Vec<_>>(),
                )),
                Arc::new(Float64Array::from(
                    ids.iter().map(|i| *i as f64).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        w.write(&batch).unwrap();
        from = to;
    }
    w.close().unwrap();
}

/// Reads `readTable` chunk by chunk without keeping it: (chunks, bytes).
async fn drain(api: &Api, query: &str) -> (usize, u64) {
    let mut resp = api
        .client
        .get(api.url(&format!("/readTable?{query}")))
        .timeout(Duration::from_secs(600))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (mut chunks, mut bytes) = (0, 0u64);
    while let Some(c) = resp.chunk().await.unwrap() {
        chunks += 1;
        bytes += c.len() as u64;
    }
    (chunks, bytes)
}

#[tokio::test]
async fn large_tables_are_streamed_in_chunks() {
    let api = Api::start().await;
    seed_large_parquet(&api, 200_000);
    let (chunks, bytes) = drain(&api, "format=ARROW").await;
    assert!(bytes > 3_000_000, "{bytes} bytes");
    // About 64 KiB at a time (an encoded batch more at most), not one buffer.
    assert!(
        chunks as u64 >= bytes / (2 * 1024 * 1024),
        "{chunks} chunks for {bytes} bytes"
    );
    assert!(chunks >= 10, "{chunks} chunks");
    let (s, body) = api.get("/readTable?format=ARROW&columns=id").await;
    assert_eq!(s, 200);
    assert_eq!(
        ids(&arrow_batches(&body).1),
        (0..200_000).collect::<Vec<_>>()
    );
}

/// Peak resident memory of this process (VmHWM, KiB), after resetting it when `reset`.
fn peak_rss_kib(reset: bool) -> u64 {
    if reset {
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// 5 million rows (159 MB as Arrow, 152 MB as CSV) read through readTable: the peak memory
/// of the process (server and client) grows by far less than the table (measured: +6 MiB).
/// About two minutes in a debug build:
/// `cargo test -p cmod-tests --test local_tables -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "about two minutes in a debug build; run with --ignored (see the doc comment)"]
async fn reading_a_large_table_keeps_memory_bounded() {
    let api = Api::start().await;
    seed_large_parquet(&api, 5_000_000);
    for format in ["ARROW", "CSV"] {
        let before = peak_rss_kib(true);
        let (chunks, bytes) = tokio::time::timeout(
            Duration::from_secs(600),
            drain(&api, &format!("format={format}")),
        )
        .await
        .unwrap();
        let growth = peak_rss_kib(false).saturating_sub(before);
        eprintln!("{format}: {bytes} bytes in {chunks} chunks, peak RSS +{growth} KiB");
        assert!(bytes > 100_000_000, "{bytes}");
        assert!(growth < 64 * 1024, "peak RSS grew by {growth} KiB");
    }
}
