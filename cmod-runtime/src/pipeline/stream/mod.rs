//! [`StreamInput`] and [`StreamOutput`]: typed stream records through Foundry's high-scale
//! streams API (docs/protocol.md §5.4) on the stream proxy:
//! `…/v2/highScale/streams/datasets/{rid}/streams/{branch}/{getEndOffsets,getRecords,publishRecords}`.
//!
//! That API was chosen over the legacy `jsonRecord` endpoint because it reads from an offset in
//! bounded batches and publishes many records per request (one request per record would make
//! large outputs slow). Where the high-scale API is unavailable (HTTP 404, 405 or 501), handles
//! switch to the seed document's stream-proxy endpoints ([`legacy`]) and log one WARN line.
//!
//! [`StreamInput::follow`] reads a stream continuously ([`super::follow`]).

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use std::sync::Arc;

use super::api::{Api, encode_segment};
use super::error::{PipelineError, ResourceKind, ResourceRef};
use super::follow::{Follow, FollowControl, FollowOptions};
use super::{InputHandle, OutputHandle, PipelineContext};
use crate::foundry::{Method, Service};

pub(crate) mod legacy;

/// Records fetched per `getRecords` call by [`StreamInput::records`].
const READ_BATCH: usize = 1000;
/// At most this many records per `publishRecords` call.
const PUBLISH_MAX_RECORDS: usize = 1000;
/// At most about this many bytes of JSON per `publishRecords` call.
const PUBLISH_MAX_BYTES: usize = 1024 * 1024;

/// A record read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record<T> {
    /// The partition it was read from.
    pub partition: u32,
    /// Its offset in that partition.
    pub offset: u64,
    /// The decoded record.
    pub value: T,
}

fn stream_path(resource: &ResourceRef, action: &str) -> String {
    format!(
        "v2/highScale/streams/datasets/{}/streams/{}/{action}",
        encode_segment(&resource.rid),
        encode_segment(&resource.branch)
    )
}

/// A stream input: records decoded into `T` with serde.
///
/// [`StreamInput::records`] reads every record present when it starts (each partition from
/// offset 0 to its end offset) in batches of 1000; [`StreamInput::read_batch`] reads from any
/// offset; [`StreamInput::follow`] reads continuously, waiting for new records, and resumes
/// where the previous replica stopped.
pub struct StreamInput<T> {
    pub(crate) resource: ResourceRef,
    pub(crate) api: Api,
    mode: Arc<legacy::Mode>,
    pub(crate) control: Arc<FollowControl>,
    _record: PhantomData<fn() -> T>,
}

impl<T> Clone for StreamInput<T> {
    fn clone(&self) -> Self {
        Self {
            resource: self.resource.clone(),
            api: self.api.clone(),
            mode: self.mode.clone(),
            control: self.control.clone(),
            _record: PhantomData,
        }
    }
}

impl<T> fmt::Debug for StreamInput<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamInput")
            .field("resource", &self.resource)
            .field("record", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: DeserializeOwned + Send + 'static> InputHandle for StreamInput<T> {
    const KIND: ResourceKind = ResourceKind::Stream;

    async fn open(ctx: &PipelineContext, alias: &'static str) -> Result<Self, PipelineError> {
        let input = StreamInput {
            resource: ctx.resource(alias, Self::KIND)?,
            api: ctx.api().clone(),
            mode: Arc::default(),
            control: ctx.follow_control().clone(),
            _record: PhantomData,
        };
        // Fail at startup, naming the alias, when the stream is unreachable.
        input.end_offsets().await?;
        Ok(input)
    }
}

#[derive(serde::Deserialize)]
struct RawRecord {
    offset: serde_json::Value,
    value: Box<RawValue>,
}

pub(crate) fn as_offset(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl<T: DeserializeOwned + Send + 'static> StreamInput<T> {
    /// The alias this handle is bound to.
    pub fn alias(&self) -> &str {
        &self.resource.alias
    }

    /// The stream RID.
    pub fn rid(&self) -> &str {
        &self.resource.rid
    }

    /// The branch read.
    pub fn branch(&self) -> &str {
        &self.resource.branch
    }

    /// The end offset of each partition: the offset the next published record will get.
    pub async fn end_offsets(&self) -> Result<BTreeMap<u32, u64>, PipelineError> {
        if !self.mode.is_legacy() {
            match self.high_scale_end_offsets().await {
                Err(e) => match legacy::refused_status(&e) {
                    Some(status) => self.mode.switch(&self.resource, status),
                    None => return Err(e),
                },
                ok => return ok,
            }
        }
        let all = legacy::read_all(&self.api, &self.resource).await?;
        let end = all
            .iter()
            .map(|(o, _)| o.saturating_add(1))
            .max()
            .unwrap_or(0);
        Ok(BTreeMap::from([(0, end)]))
    }

    async fn high_scale_end_offsets(&self) -> Result<BTreeMap<u32, u64>, PipelineError> {
        let req = self.api.request(
            Method::GET,
            Service::StreamProxy,
            stream_path(&self.resource, "getEndOffsets"),
        );
        let raw: BTreeMap<String, serde_json::Value> = self
            .api
            .json(&self.resource, || "reading end offsets".to_owned(), req)
            .await?;
        raw.into_iter()
            .map(|(k, v)| match (k.trim().parse::<u32>(), as_offset(&v)) {
                (Ok(p), Some(o)) => Ok((p, o)),
                _ => Err(PipelineError::Protocol {
                    resource: Box::new(self.resource.clone()),
                    operation: "reading end offsets".to_owned(),
                    message: format!("partition `{k}` has offset {v}; expected numbers"),
                }),
            })
            .collect()
    }

    /// Up to `limit` records of `partition` from `start_offset` on.
    pub async fn read_batch(
        &self,
        partition: u32,
        start_offset: u64,
        limit: usize,
    ) -> Result<Vec<Record<T>>, PipelineError> {
        if !self.mode.is_legacy() {
            match self
                .high_scale_read_batch(partition, start_offset, limit)
                .await
            {
                Err(e) => match legacy::refused_status(&e) {
                    Some(status) => self.mode.switch(&self.resource, status),
                    None => return Err(e),
                },
                ok => return ok,
            }
        }
        if partition != 0 {
            return Ok(Vec::new());
        }
        legacy::read_all(&self.api, &self.resource)
            .await?
            .into_iter()
            .filter(|(o, _)| *o >= start_offset)
            .take(limit.max(1))
            .map(|(offset, v)| {
                let value =
                    serde_path_to_error::deserialize(v).map_err(|e| PipelineError::Decode {
                        resource: Box::new(self.resource.clone()),
                        partition,
                        offset,
                        message: e.to_string(),
                    })?;
                Ok(Record {
                    partition,
                    offset,
                    value,
                })
            })
            .collect()
    }

    async fn high_scale_read_batch(
        &self,
        partition: u32,
        start_offset: u64,
        limit: usize,
    ) -> Result<Vec<Record<T>>, PipelineError> {
        let req = self
            .api
            .request(
                Method::GET,
                Service::StreamProxy,
                stream_path(&self.resource, "getRecords"),
            )
            .query("partitionId", partition)
            .query("startOffset", start_offset)
            .query("limit", limit.max(1));
        let raw: Vec<RawRecord> = self
            .api
            .json(
                &self.resource,
                || format!("reading records of partition {partition} from offset {start_offset}"),
                req,
            )
            .await?;
        raw.into_iter()
            .map(|r| {
                let offset = as_offset(&r.offset).ok_or_else(|| PipelineError::Protocol {
                    resource: Box::new(self.resource.clone()),
                    operation: "reading records".to_owned(),
                    message: format!("record offset {} is not a number", r.offset),
                })?;
                let mut de = serde_json::Deserializer::from_str(r.value.get());
                let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                    PipelineError::Decode {
                        resource: Box::new(self.resource.clone()),
                        partition,
                        offset,
                        message: e.to_string(),
                    }
                })?;
                Ok(Record {
                    partition,
                    offset,
                    value,
                })
            })
            .collect()
    }

    /// Every record present when the stream is first polled, partition by partition, fetched
    /// in bounded batches as the stream is consumed.
    pub fn records(&self) -> impl Stream<Item = Result<Record<T>, PipelineError>> + Send + '_ {
        futures_util::stream::try_unfold(self.cursor(), |mut cursor| async move {
            Ok(cursor.next_batch().await?.map(|batch| {
                (
                    futures_util::stream::iter(batch.into_iter().map(Ok)),
                    cursor,
                )
            }))
        })
        .try_flatten()
    }

    /// Follows the stream with the default [`FollowOptions`]: an endless stream of records that
    /// waits for new ones, resumes where the previous replica stopped, and ends when the module
    /// is asked to stop (SIGTERM). See [`Follow`] for the delivery guarantee.
    ///
    /// ```no_run
    /// use cmod_runtime::pipeline::{FollowOptions, PipelineError, StartPosition};
    /// use cmod_runtime::{StreamInput, StreamOutput, pipeline};
    ///
    /// #[derive(serde::Deserialize, serde::Serialize)]
    /// struct Reading { sensor: String, celsius: f64 }
    ///
    /// #[pipeline(input = "readings", output = "hot")]
    /// async fn hot(readings: StreamInput<Reading>, hot: StreamOutput<Reading>) -> Result<(), PipelineError> {
    ///     let mut follow = readings.follow_with(FollowOptions::new().start(StartPosition::Latest));
    ///     // Publish each batch before asking for the next: asking commits the previous one.
    ///     while let Some(batch) = follow.next_batch().await? {
    ///         let out: Vec<Reading> = batch.into_iter().map(|r| r.value).filter(|r| r.celsius > 30.0).collect();
    ///         hot.publish(&out).await?;
    ///     }
    ///     Ok(()) // after SIGTERM: outputs flushed, exit 0
    /// }
    /// # fn main() {}
    /// ```
    pub fn follow(&self) -> Follow<T> {
        self.follow_with(FollowOptions::default())
    }

    /// [`StreamInput::follow`] with explicit options (subscriber id, fallback start position,
    /// batch size, idle polling).
    pub fn follow_with(&self, options: FollowOptions) -> Follow<T> {
        Follow::new(self.clone(), options)
    }

    /// A cursor over every record present when its first batch is read (each partition from
    /// offset 0 to its end offset at that moment), in batches of at most 1000 records.
    pub fn cursor(&self) -> RecordCursor<'_, T> {
        RecordCursor {
            input: self,
            ends: None,
            index: 0,
            next: 0,
        }
    }
}

/// Reads a [`StreamInput`] batch by batch ([`StreamInput::cursor`]).
pub struct RecordCursor<'a, T> {
    input: &'a StreamInput<T>,
    ends: Option<Vec<(u32, u64)>>,
    index: usize,
    next: u64,
}

impl<T> fmt::Debug for RecordCursor<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordCursor")
            .field("input", &self.input.resource.alias)
            .field("ends", &self.ends)
            .field("partition_index", &self.index)
            .field("next_offset", &self.next)
            .finish()
    }
}

impl<T: DeserializeOwned + Send + 'static> RecordCursor<'_, T> {
    /// The next batch of records; `None` once every partition is read up to its end offset.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Record<T>>>, PipelineError> {
        let ends = match &self.ends {
            Some(e) => e.clone(),
            None => {
                let e: Vec<(u32, u64)> = self.input.end_offsets().await?.into_iter().collect();
                self.ends = Some(e.clone());
                e
            }
        };
        loop {
            let Some(&(partition, end)) = ends.get(self.index) else {
                return Ok(None);
            };
            if self.next >= end {
                self.index += 1;
                self.next = 0;
                continue;
            }
            let want = usize::try_from(end - self.next)
                .unwrap_or(usize::MAX)
                .min(READ_BATCH);
            let batch = self.input.read_batch(partition, self.next, want).await?;
            let Some(last) = batch.last().map(|r| r.offset) else {
                // Nothing where records were expected (retention): next partition.
                self.index += 1;
                self.next = 0;
                continue;
            };
            self.next = last.saturating_add(1);
            let batch: Vec<_> = batch.into_iter().filter(|r| r.offset < end).collect();
            if batch.is_empty() {
                continue;
            }
            return Ok(Some(batch));
        }
    }
}

/// A stream output: records serialized with serde and published in batches
/// (`publishRecords`, at most 1000 records or about 1 MiB per request). Transient failures
/// (connection errors, HTTP 429/502/503/504) are retried with capped exponential backoff; a
/// batch is all-or-nothing on Foundry's side, so a retried batch is never half-published (but
/// a batch whose answer was lost may be published twice).
///
/// Where the high-scale API is unavailable (HTTP 404, 405 or 501), records are published one by
/// one through the stream proxy's `…/jsonRecord` endpoint instead (one WARN line says so).
pub struct StreamOutput<T> {
    resource: ResourceRef,
    api: Api,
    mode: legacy::Mode,
    _record: PhantomData<fn(T)>,
}

impl<T> fmt::Debug for StreamOutput<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamOutput")
            .field("resource", &self.resource)
            .field("record", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: Serialize + Send + 'static> OutputHandle for StreamOutput<T> {
    const KIND: ResourceKind = ResourceKind::Stream;

    async fn open(ctx: &PipelineContext, alias: &'static str) -> Result<Self, PipelineError> {
        Ok(StreamOutput {
            resource: ctx.resource(alias, Self::KIND)?,
            api: ctx.api().clone(),
            mode: legacy::Mode::default(),
            _record: PhantomData,
        })
    }
}

impl<T: Serialize + Send + 'static> StreamOutput<T> {
    /// The alias this handle is bound to.
    pub fn alias(&self) -> &str {
        &self.resource.alias
    }

    /// The stream RID.
    pub fn rid(&self) -> &str {
        &self.resource.rid
    }

    /// The branch written.
    pub fn branch(&self) -> &str {
        &self.resource.branch
    }

    /// Publishes one record.
    pub async fn publish_one(&self, record: &T) -> Result<(), PipelineError> {
        self.publish(std::iter::once(record)).await.map(|_| ())
    }

    /// Publishes records in batches; returns how many were published.
    pub async fn publish<I>(&self, records: I) -> Result<usize, PipelineError>
    where
        I: IntoIterator,
        I::Item: Borrow<T>,
    {
        let mut body = Vec::with_capacity(16 * 1024);
        let mut in_batch = 0usize;
        let mut total = 0usize;
        for record in records {
            let len_before = body.len();
            body.push(if in_batch == 0 { b'[' } else { b',' });
            serde_json::to_writer(&mut body, record.borrow()).map_err(|e| {
                PipelineError::Encode {
                    resource: Box::new(self.resource.clone()),
                    message: e.to_string(),
                }
            })?;
            in_batch += 1;
            if in_batch >= PUBLISH_MAX_RECORDS || body.len() >= PUBLISH_MAX_BYTES {
                if body.len() > PUBLISH_MAX_BYTES && in_batch > 1 {
                    // This record overflowed the batch: send the others, start anew with it.
                    let overflow = body.split_off(len_before + 1);
                    body.truncate(len_before);
                    self.send_batch(&mut body, in_batch - 1).await?;
                    total += in_batch - 1;
                    body.push(b'[');
                    body.extend_from_slice(&overflow);
                    in_batch = 1;
                } else {
                    self.send_batch(&mut body, in_batch).await?;
                    total += in_batch;
                    in_batch = 0;
                }
            }
        }
        if in_batch > 0 {
            self.send_batch(&mut body, in_batch).await?;
            total += in_batch;
        }
        Ok(total)
    }

    /// Sends `[r1,r2,…` (without the closing bracket) as one `publishRecords` call and clears it.
    async fn send_batch(&self, records: &mut Vec<u8>, count: usize) -> Result<(), PipelineError> {
        records.push(b']');
        if !self.mode.is_legacy() {
            match self.send_high_scale(records, count).await {
                Err(e) => match legacy::refused_status(&e) {
                    // Refused before anything was applied: publish through the stream proxy.
                    Some(status) => self.mode.switch(&self.resource, status),
                    None => return Err(e),
                },
                Ok(()) => {
                    records.clear();
                    return Ok(());
                }
            }
        }
        legacy::publish_each(&self.api, &self.resource, records).await?;
        records.clear();
        Ok(())
    }

    /// One `publishRecords` call with `records` (a JSON array).
    async fn send_high_scale(&self, records: &[u8], count: usize) -> Result<(), PipelineError> {
        let mut body = Vec::with_capacity(records.len() + 16);
        body.extend_from_slice(b"{\"records\":");
        body.extend_from_slice(records);
        body.extend_from_slice(b"}");
        let req = self
            .api
            .request(
                Method::POST,
                Service::StreamProxy,
                stream_path(&self.resource, "publishRecords"),
            )
            .body(Bytes::from(body), "application/json");
        self.api
            .send(
                &self.resource,
                || format!("publishing {count} record(s)"),
                req,
            )
            .await?;
        Ok(())
    }
}
