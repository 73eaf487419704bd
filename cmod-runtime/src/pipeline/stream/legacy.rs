//! The seed document's stream-proxy endpoints (docs/protocol.md §5.4), used where the high-scale API is
//! unavailable (it answers 404, 405 or 501):
//!
//! * `GET {stream_proxy}/streams/{rid}/branches/{branch}/records`: the stream's records. The
//!   answer's shape varies: a top-level array or one wrapped in `records` / `values` / `data`;
//!   items `{"offset", "value"}`, `{"record"}` or the record itself (offset = position).
//! * `POST {stream_proxy}/streams/{rid}/branches/{branch}/jsonRecord`: publishes one record.
//!
//! Costs of the fallback: every read fetches the whole answer of `…/records` (memory grows with
//! the stream), and every record is published with its own request.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use serde_json::Value;
use serde_json::value::RawValue;

use super::super::api::{Api, encode_segment};
use super::super::error::{PipelineError, ResourceRef};
use crate::foundry::{Method, Service};

/// HTTP statuses meaning "this API is not served here".
pub(crate) fn refused_status(e: &PipelineError) -> Option<u16> {
    match e {
        PipelineError::Foundry { source, .. } => {
            source.status().filter(|s| matches!(s, 404 | 405 | 501))
        }
        _ => None,
    }
}

/// Whether a handle switched to the legacy endpoints; logs the switch once.
#[derive(Debug, Default)]
pub(crate) struct Mode {
    legacy: AtomicBool,
}

impl Mode {
    pub(crate) fn is_legacy(&self) -> bool {
        self.legacy.load(Ordering::Relaxed)
    }

    /// Switches to the legacy endpoints after `status`, logging one WARN line the first time.
    pub(crate) fn switch(&self, resource: &ResourceRef, status: u16) {
        if !self.legacy.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                alias = %resource.alias,
                rid = %resource.rid,
                branch = %resource.branch,
                status,
                "the high-scale streams API is unavailable (HTTP {status}); using the stream-proxy \
                 endpoints `streams/{{rid}}/branches/{{branch}}/records` and `…/jsonRecord` for \
                 stream `{}`: every read fetches the stream's records in one answer and every \
                 record is published with its own request",
                resource.alias
            );
        }
    }
}

fn path(resource: &ResourceRef, action: &str) -> String {
    format!(
        "streams/{}/branches/{}/{action}",
        encode_segment(&resource.rid),
        encode_segment(&resource.branch)
    )
}

/// Every record `…/records` answers, with its offset.
pub(crate) async fn read_all(
    api: &Api,
    resource: &ResourceRef,
) -> Result<Vec<(u64, Value)>, PipelineError> {
    let req = api.request(Method::GET, Service::StreamProxy, path(resource, "records"));
    let body: Value = api
        .json(
            resource,
            || "reading records (stream-proxy)".to_owned(),
            req,
        )
        .await?;
    let items = match body {
        Value::Array(a) => a,
        Value::Object(mut o) => ["records", "values", "data"]
            .iter()
            .find_map(|k| match o.remove(*k) {
                Some(Value::Array(a)) => Some(a),
                _ => None,
            })
            .ok_or_else(|| PipelineError::Protocol {
                resource: Box::new(resource.clone()),
                operation: "reading records (stream-proxy)".to_owned(),
                message: "expected an array of records, or one under `records`, `values` or \
                          `data`"
                    .to_owned(),
            })?,
        _ => {
            return Err(PipelineError::Protocol {
                resource: Box::new(resource.clone()),
                operation: "reading records (stream-proxy)".to_owned(),
                message: "expected an array of records".to_owned(),
            });
        }
    };
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let index = i as u64;
            match item {
                Value::Object(mut o) if o.contains_key("value") || o.contains_key("record") => {
                    let offset = o.get("offset").and_then(super::as_offset).unwrap_or(index);
                    let value = o
                        .remove("value")
                        .or_else(|| o.remove("record"))
                        .unwrap_or(Value::Null);
                    (offset, value)
                }
                other => (index, other),
            }
        })
        .collect())
}

/// Publishes each record of `records` (a JSON array) with its own `…/jsonRecord` call.
pub(crate) async fn publish_each(
    api: &Api,
    resource: &ResourceRef,
    records: &[u8],
) -> Result<(), PipelineError> {
    let list: Vec<Box<RawValue>> =
        serde_json::from_slice(records).map_err(|e| PipelineError::Encode {
            resource: Box::new(resource.clone()),
            message: e.to_string(),
        })?;
    let total = list.len();
    for (i, record) in list.into_iter().enumerate() {
        let body: Box<str> = record.into();
        let req = api
            .request(
                Method::POST,
                Service::StreamProxy,
                path(resource, "jsonRecord"),
            )
            .body(Bytes::from(body.into_boxed_bytes()), "application/json");
        api.send(
            resource,
            || format!("publishing record {} of {total} (stream-proxy)", i + 1),
            req,
        )
        .await?;
    }
    Ok(())
}
