//! Following a stream input: [`Follow`], [`FollowOptions`], [`StartPosition`].
//!
//! A followed stream is read batch by batch from a position that survives restarts: the
//! platform's stream subscribers (docs/protocol.md §5.4) keep the committed offsets. When the module is
//! asked to stop (SIGTERM), the followed stream ends, so the pipeline function returns normally
//! and its outputs are flushed; the runtime waits [`FOLLOW_SHUTDOWN_GRACE`] for that.
//!
//! Requests (the subscriber API is a preview API: docs/protocol.md §5.4 names its operations; the bodies
//! below are what cmod sends and what the local Foundry serves, not verified on a real stack):
//!
//! | When | Request |
//! |---|---|
//! | first read | `POST {api}/v2/streams/datasets/{rid}/streams/{branch}/subscribers?preview=true` `{"subscriberId", "startPosition": "EARLIEST"\|"LATEST"}` (409 = exists) |
//! | | `GET {api}/v2/streams/datasets/{rid}/streams/{branch}/subscribers/{id}?preview=true` |
//! | | `GET {stream_proxy}/v2/highScale/streams/datasets/{rid}/streams/{branch}/subscribers/{id}/getReadPosition?preview=true` → `{"<partition>": <next offset>}` |
//! | | `GET …/getEndOffsets` (partitions; the fallback start) |
//! | each batch | `GET …/getRecords?partitionId&startOffset&limit` (or the stream-proxy `…/records`) |
//! | next batch asked | `POST …/subscribers/{id}/commitOffsets?preview=true` `{"offsets": {"<partition>": <next offset>}}` |
//!
//! HTTP 403, 404, 405 or 501 on the first three means "no subscriber API": the fallback of
//! [`FollowOptions::start`], with one WARN line.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::Stream;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::watch;

use super::api::encode_segment;
use super::error::PipelineError;
use super::stream::{Record, StreamInput};
use crate::foundry::{Method, Service};
use crate::transport::Backoff;

/// How long the runtime waits, after SIGTERM, for a pipeline that follows streams to return
/// (its followed streams end at their next request; what it publishes meanwhile is flushed).
pub(crate) const FOLLOW_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Where a followed stream starts when there is no committed position to resume from: a new
/// subscriber, or (with a warning) a stack where the subscriber API is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartPosition {
    /// At the first record still in the stream: nothing is skipped; without subscribers a
    /// restarted replica processes every record again.
    #[default]
    Earliest,
    /// At the end of the stream when following starts: only records published from then on;
    /// without subscribers a restarted replica skips what was published while it was down.
    Latest,
}

impl StartPosition {
    fn name(self) -> &'static str {
        match self {
            StartPosition::Earliest => "EARLIEST",
            StartPosition::Latest => "LATEST",
        }
    }
}

/// Options of [`StreamInput::follow_with`].
#[derive(Debug, Clone)]
pub struct FollowOptions {
    subscriber: Option<String>,
    use_subscriber: bool,
    start: StartPosition,
    batch_size: usize,
    idle_min: Duration,
    idle_max: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        Self {
            subscriber: None,
            use_subscriber: true,
            start: StartPosition::Earliest,
            batch_size: 1000,
            idle_min: Duration::from_millis(100),
            idle_max: Duration::from_secs(2),
        }
    }
}

impl FollowOptions {
    /// The defaults: subscriber `cmod-<pipeline function>-<alias>`, start
    /// [`StartPosition::Earliest`], batches of 1000 records, idle polling from 100 ms doubling
    /// up to 2 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// The subscriber id (letters, digits, `-`, `_`, `.`). Replicas using the same id share one
    /// committed position; give each pipeline reading the same stream its own id.
    pub fn subscriber(mut self, id: impl Into<String>) -> Self {
        self.subscriber = Some(id.into());
        self.use_subscriber = true;
        self
    }

    /// Follow without a subscriber: nothing is committed and every start begins at
    /// [`FollowOptions::start`].
    pub fn without_subscriber(mut self) -> Self {
        self.use_subscriber = false;
        self
    }

    /// Where to start without a committed position (see [`StartPosition`]).
    pub fn start(mut self, start: StartPosition) -> Self {
        self.start = start;
        self
    }

    /// Records per batch (1 to 10,000; default 1000). This is also the bound on records
    /// delivered twice after a crash (see [`Follow`]).
    pub fn batch_size(mut self, records: usize) -> Self {
        self.batch_size = records.clamp(1, 10_000);
        self
    }

    /// Idle polling: wait `min` after the first empty read, doubling up to `max` while the
    /// stream stays idle; back to `min` once records arrive.
    pub fn idle_poll(mut self, min: Duration, max: Duration) -> Self {
        self.idle_min = min.max(Duration::from_millis(1));
        self.idle_max = max.max(self.idle_min);
        self
    }
}

/// Shared by every followed stream of one pipeline run: the stop signal and how many follow.
pub(crate) struct FollowControl {
    pipeline: String,
    stop: watch::Sender<bool>,
    active: AtomicUsize,
}

impl fmt::Debug for FollowControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FollowControl")
            .field("pipeline", &self.pipeline)
            .field("stopping", &*self.stop.borrow())
            .field("following", &self.following())
            .finish()
    }
}

impl FollowControl {
    pub(crate) fn new(pipeline: &str) -> Arc<Self> {
        Arc::new(Self {
            pipeline: pipeline.to_owned(),
            stop: watch::Sender::new(false),
            active: AtomicUsize::new(0),
        })
    }

    /// Ends every followed stream at its next request.
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// How many [`Follow`]s exist.
    pub(crate) fn following(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

/// After a shutdown signal: ends the followed streams and, when the pipeline follows any, gives
/// it [`FOLLOW_SHUTDOWN_GRACE`] to return. `None` when it did not (or follows nothing).
pub(crate) async fn after_shutdown<F: Future + Unpin>(
    control: &FollowControl,
    run: &mut F,
) -> Option<F::Output> {
    control.stop();
    if control.following() == 0 {
        return None;
    }
    tracing::info!(
        pipeline = %control.pipeline,
        "shutdown signal received: ending the followed streams (offsets of processed records \
         are committed); waiting up to {} s for the pipeline to return",
        FOLLOW_SHUTDOWN_GRACE.as_secs()
    );
    tokio::time::timeout(FOLLOW_SHUTDOWN_GRACE, run).await.ok()
}

/// Counts a [`Follow`] in its [`FollowControl`] while it lives.
struct ActiveGuard(Arc<FollowControl>);

impl ActiveGuard {
    fn new(control: Arc<FollowControl>) -> Self {
        control.active.fetch_add(1, Ordering::SeqCst);
        Self(control)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

type Fetch<T> = BoxFuture<'static, (Box<Core<T>>, Result<Option<Vec<Record<T>>>, PipelineError>)>;

/// A followed stream input ([`StreamInput::follow`]): an endless stream of typed records that
/// waits for new ones and ends only when the module is asked to stop.
///
/// Use it as a [`Stream`] of records, or batch by batch with [`Follow::next_batch`].
///
/// # Resuming and the delivery guarantee
///
/// On its first read it creates (or finds) the stream subscriber of its id
/// ([`FollowOptions::subscriber`]; default `cmod-<pipeline function>-<alias>`) and starts at
/// the subscriber's committed position; a new subscriber starts at [`FollowOptions::start`].
/// The offsets of a batch are committed when the **next** batch is requested (calling
/// [`Follow::next_batch`] again, or polling the stream past the batch's last record), when
/// [`Follow::commit`] is called, or when the stream ends at shutdown. So: **publish a batch's
/// outputs before asking for the next one** (awaiting [`StreamOutput::publish`] does that).
/// Then:
///
/// * a record whose offset was committed is never delivered again to that subscriber, and no
///   record is ever skipped;
/// * a replica killed (SIGKILL, crash) after publishing some outputs of a batch but before its
///   commit gets that batch again when it restarts: delivery is at-least-once, and the window is
///   **at most one batch** ([`FollowOptions::batch_size`] records, 1000 by default) per crash;
/// * on SIGTERM the stream ends at its next request (after committing the batch before), the
///   function returns, its outputs are flushed and the process exits 0: nothing is lost or
///   duplicated. The runtime waits up to 20 s for that; a pipeline still busy then is cancelled
///   and reported as such.
///
/// Where the subscriber API is refused (HTTP 403, 404, 405 or 501), or with
/// [`FollowOptions::without_subscriber`], nothing is committed: following starts at
/// [`FollowOptions::start`] every time (one WARN line at startup says so when the API was
/// refused), so a restarted replica processes records again (`Earliest`) or skips those
/// published while it was down (`Latest`).
///
/// Memory: one batch is held at a time. An error (a record that does not decode, a failed
/// request after retries) is yielded once and ends the stream.
///
/// [`StreamOutput::publish`]: super::StreamOutput::publish
pub struct Follow<T> {
    core: Option<Box<Core<T>>>,
    pending: Option<Fetch<T>>,
    buffer: std::vec::IntoIter<Record<T>>,
    done: bool,
}

// Nothing is pinned in place: the fetch future is boxed.
impl<T> Unpin for Follow<T> {}

impl<T> fmt::Debug for Follow<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Follow");
        if let Some(core) = &self.core {
            d.field("input", &core.input.resource)
                .field("subscriber", &core.subscriber)
                .field("position", &core.position);
        }
        d.field("buffered", &self.buffer.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned + Send + 'static> Follow<T> {
    pub(crate) fn new(input: StreamInput<T>, options: FollowOptions) -> Self {
        let control = input.control.clone();
        let core = Core {
            stop: control.stop.subscribe(),
            backoff: Backoff::new(options.idle_min, options.idle_max),
            _active: ActiveGuard::new(control),
            input,
            options,
            subscriber: None,
            started: false,
            position: BTreeMap::new(),
            committed: BTreeMap::new(),
            next_partition: 0,
        };
        Self {
            core: Some(Box::new(core)),
            pending: None,
            buffer: Vec::new().into_iter(),
            done: false,
        }
    }

    /// The next batch of records (waiting for new ones while the stream is idle); `None` once
    /// the module is asked to stop. Commits the previous batch first (see [`Follow`]).
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Record<T>>>, PipelineError> {
        if self.buffer.len() > 0 {
            return Ok(Some(std::mem::take(&mut self.buffer).collect()));
        }
        if self.done {
            return Ok(None);
        }
        let result = if let Some(fetch) = self.pending.as_mut() {
            let (core, r) = fetch.await;
            self.pending = None;
            self.core = Some(core);
            r
        } else if let Some(core) = self.core.as_mut() {
            core.next_batch().await
        } else {
            Ok(None)
        };
        match result {
            Ok(Some(batch)) => Ok(Some(batch)),
            other => {
                self.done = true;
                other
            }
        }
    }

    /// Commits the offsets of every record delivered so far (records still buffered by the
    /// [`Stream`] are not). Only needed to commit more often than once per batch.
    pub async fn commit(&mut self) -> Result<(), PipelineError> {
        if let Some(fetch) = self.pending.as_mut() {
            let (core, r) = fetch.await;
            self.pending = None;
            self.core = Some(core);
            match r {
                Ok(Some(batch)) => self.buffer = batch.into_iter(),
                Ok(None) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
        let Some(core) = self.core.as_mut() else {
            return Ok(());
        };
        let mut target = core.position.clone();
        for r in self.buffer.as_slice() {
            let at = target.entry(r.partition).or_insert(r.offset);
            *at = (*at).min(r.offset);
        }
        core.commit_to(target).await
    }
}

impl<T: DeserializeOwned + Send + 'static> Stream for Follow<T> {
    type Item = Result<Record<T>, PipelineError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(r) = this.buffer.next() {
                return Poll::Ready(Some(Ok(r)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            if this.pending.is_none() {
                let Some(mut core) = this.core.take() else {
                    return Poll::Ready(None);
                };
                this.pending = Some(Box::pin(async move {
                    let r = core.next_batch().await;
                    (core, r)
                }));
            }
            let Some(fetch) = this.pending.as_mut() else {
                return Poll::Ready(None);
            };
            let (core, r) = ready!(fetch.as_mut().poll(cx));
            this.pending = None;
            this.core = Some(core);
            match r {
                Ok(Some(batch)) => this.buffer = batch.into_iter(),
                Ok(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

/// The state of a followed stream (moved into the fetch future while one runs).
struct Core<T> {
    input: StreamInput<T>,
    options: FollowOptions,
    /// The subscriber committing offsets, once started with one.
    subscriber: Option<String>,
    started: bool,
    /// Next offset to read, per partition.
    position: BTreeMap<u32, u64>,
    /// Last committed position.
    committed: BTreeMap<u32, u64>,
    next_partition: usize,
    stop: watch::Receiver<bool>,
    backoff: Backoff,
    _active: ActiveGuard,
}

/// HTTP statuses meaning "the subscriber API is not available to this module".
fn subscriber_refused(e: &PipelineError) -> Option<u16> {
    match e {
        PipelineError::Foundry { source, .. } => source
            .status()
            .filter(|s| matches!(s, 403 | 404 | 405 | 501)),
        _ => None,
    }
}

/// `cmod-<pipeline>-<alias>`, with characters other than `A-Z a-z 0-9 - _ .` replaced by `-`.
fn default_subscriber_id(pipeline: &str, alias: &str) -> String {
    let raw = format!("cmod-{pipeline}-{alias}");
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect()
}

fn parse_offsets(
    input_resource: &super::error::ResourceRef,
    raw: BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<u32, u64>, PipelineError> {
    raw.into_iter()
        .map(
            |(k, v)| match (k.trim().parse::<u32>(), super::stream::as_offset(&v)) {
                (Ok(p), Some(o)) => Ok((p, o)),
                _ => Err(PipelineError::Protocol {
                    resource: Box::new(input_resource.clone()),
                    operation: "reading the subscriber's position".to_owned(),
                    message: format!("partition `{k}` has offset {v}; expected numbers"),
                }),
            },
        )
        .collect()
}

impl<T: DeserializeOwned + Send + 'static> Core<T> {
    fn subscribers_path(&self) -> String {
        let r = &self.input.resource;
        format!(
            "v2/streams/datasets/{}/streams/{}/subscribers",
            encode_segment(&r.rid),
            encode_segment(&r.branch)
        )
    }

    fn high_scale_subscriber_path(&self, id: &str, action: &str) -> String {
        let r = &self.input.resource;
        format!(
            "v2/highScale/streams/datasets/{}/streams/{}/subscribers/{}/{action}",
            encode_segment(&r.rid),
            encode_segment(&r.branch),
            encode_segment(id)
        )
    }

    /// Creates (or finds) the subscriber and reads its committed position.
    async fn open_subscriber(&self, id: &str) -> Result<BTreeMap<u32, u64>, PipelineError> {
        let api = &self.input.api;
        let resource = &self.input.resource;
        let body = json!({ "subscriberId": id, "startPosition": self.options.start.name() });
        let req = api
            .request(Method::POST, Service::ApiGateway, self.subscribers_path())
            .query("preview", true)
            .json(&body);
        match api
            .send(
                resource,
                || format!("creating stream subscriber `{id}`"),
                req,
            )
            .await
        {
            Ok(_) => {}
            Err(PipelineError::Foundry { source, .. }) if source.status() == Some(409) => {}
            Err(e) => return Err(e),
        }
        let req = api
            .request(
                Method::GET,
                Service::ApiGateway,
                format!("{}/{}", self.subscribers_path(), encode_segment(id)),
            )
            .query("preview", true);
        let _: serde_json::Value = api
            .json(
                resource,
                || format!("reading stream subscriber `{id}`"),
                req,
            )
            .await?;
        let req = api
            .request(
                Method::GET,
                Service::StreamProxy,
                self.high_scale_subscriber_path(id, "getReadPosition"),
            )
            .query("preview", true);
        let raw: BTreeMap<String, serde_json::Value> = api
            .json(
                resource,
                || format!("reading the position of stream subscriber `{id}`"),
                req,
            )
            .await?;
        parse_offsets(resource, raw)
    }

    /// Finds the start position: the subscriber's committed one, or `options.start`.
    async fn start(&mut self) -> Result<(), PipelineError> {
        let resource = self.input.resource.clone();
        let id = self.options.subscriber.clone().unwrap_or_else(|| {
            default_subscriber_id(&self.input.control.pipeline, &resource.alias)
        });
        let mut committed = None;
        if self.options.use_subscriber {
            match self.open_subscriber(&id).await {
                Ok(position) => committed = Some(position),
                Err(e) => match subscriber_refused(&e) {
                    Some(status) => tracing::warn!(
                        alias = %resource.alias,
                        rid = %resource.rid,
                        branch = %resource.branch,
                        status,
                        start = self.options.start.name(),
                        "stream subscribers are unavailable (HTTP {status}) for stream `{}`: \
                         following from the {} position chosen in FollowOptions, without \
                         committed offsets, so a restarted replica starts there again ({})",
                        resource.alias,
                        self.options.start.name().to_lowercase(),
                        match self.options.start {
                            StartPosition::Earliest => "records are processed again",
                            StartPosition::Latest =>
                                "records published while it was down are skipped",
                        }
                    ),
                    None => return Err(e),
                },
            }
        }
        let ends = self.input.end_offsets().await?;
        let fallback = |p: &u32| match self.options.start {
            StartPosition::Earliest => 0,
            StartPosition::Latest => ends.get(p).copied().unwrap_or(0),
        };
        let mut position: BTreeMap<u32, u64> = ends.keys().map(|p| (*p, fallback(p))).collect();
        if let Some(c) = &committed {
            position.extend(c.iter().map(|(p, o)| (*p, *o)));
            self.subscriber = Some(id.clone());
        }
        tracing::info!(
            alias = %resource.alias,
            rid = %resource.rid,
            branch = %resource.branch,
            subscriber = self.subscriber.as_deref().unwrap_or("none"),
            ?position,
            "following stream `{}`",
            resource.alias
        );
        self.committed = position.clone();
        self.position = position;
        Ok(())
    }

    /// Commits `target` with the subscriber (no-op without one or when nothing changed).
    async fn commit_to(&mut self, target: BTreeMap<u32, u64>) -> Result<(), PipelineError> {
        let Some(id) = self.subscriber.clone() else {
            return Ok(());
        };
        if target == self.committed {
            return Ok(());
        }
        let offsets: BTreeMap<String, u64> =
            target.iter().map(|(p, o)| (p.to_string(), *o)).collect();
        let api = &self.input.api;
        let req = api
            .request(
                Method::POST,
                Service::StreamProxy,
                self.high_scale_subscriber_path(&id, "commitOffsets"),
            )
            .query("preview", true)
            .json(&json!({ "offsets": offsets }));
        api.send(
            &self.input.resource,
            || format!("committing offsets {offsets:?} of stream subscriber `{id}`"),
            req,
        )
        .await?;
        self.committed = target;
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Option<Vec<Record<T>>>, PipelineError> {
        if self.started {
            // The previous batch was handed out and the next one is asked for: it is done.
            let target = self.position.clone();
            self.commit_to(target).await?;
        } else {
            if *self.stop.borrow() {
                return Ok(None);
            }
            self.start().await?;
            self.started = true;
        }
        loop {
            if *self.stop.borrow() {
                return Ok(None);
            }
            if self.position.is_empty() {
                // No partition known yet (a stream without any): look again.
                for p in self.input.end_offsets().await?.into_keys() {
                    self.position.insert(p, 0);
                }
            }
            let partitions: Vec<(u32, u64)> = self.position.iter().map(|(p, o)| (*p, *o)).collect();
            let n = partitions.len();
            for i in 0..n {
                let (p, at) = partitions[(self.next_partition + i) % n];
                let batch = self
                    .input
                    .read_batch(p, at, self.options.batch_size)
                    .await?;
                if let Some(last) = batch.last() {
                    self.position.insert(p, last.offset.saturating_add(1));
                    self.next_partition = (self.next_partition + i + 1) % n;
                    self.backoff.reset();
                    return Ok(Some(batch));
                }
            }
            let delay = self.backoff.next_delay();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = self.stop.wait_for(|stop| *stop) => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_subscriber_ids_are_safe() {
        assert_eq!(
            default_subscriber_id("convert", "readings"),
            "cmod-convert-readings"
        );
        assert_eq!(default_subscriber_id("a::b", "x y"), "cmod-a--b-x-y");
    }

    #[test]
    fn options_are_clamped() {
        let o = FollowOptions::new()
            .batch_size(0)
            .idle_poll(Duration::ZERO, Duration::ZERO);
        assert_eq!(o.batch_size, 1);
        assert!(o.idle_min >= Duration::from_millis(1));
        assert!(o.idle_max >= o.idle_min);
        assert_eq!(FollowOptions::new().batch_size(1 << 20).batch_size, 10_000);
    }
}
