//! Watching a result as it arrives: a streamed result's items, one JSON value each, handed to
//! the caller while the module is still producing them ([`LocalRuntime::call_streamed`]), for
//! `--invoke` and the invoke API.
//!
//! The wire format does not change: the module sends one JSON value per HTTP chunk with no
//! separator (a single value for a non-streamed result). The runtime forwards each chunk of the
//! first delivery attempt as it is read. If that attempt breaks off and the module re-sends the
//! result (whole, as it always does), no more items are reported: the caller gets the complete
//! body in [`CallEvent::Done`] and knows how many items it has already shown.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use std::hash::Hasher as _;
use std::sync::Arc;

use super::error::LocalError;
use super::state::State;
use super::{JobResult, LocalRuntime, wait_for_result};

/// What the runtime sees of a result POST for a watched job.
#[derive(Debug)]
pub(crate) enum Progress {
    /// A delivery attempt began; `chunked`: it is a streamed body.
    Started { chunked: bool },
    /// A piece of the body, as read.
    Chunk(Bytes),
    /// The attempt broke off before its body ended (the module will re-send it whole).
    Interrupted,
    /// The result was accepted (the body is complete).
    Accepted,
}

/// Splits a streamed body into its JSON values. A value split across chunks is reassembled;
/// values that share a chunk are separated. (Two bare numbers in one chunk are ambiguous; the
/// module never sends that: one value per chunk.)
#[derive(Debug, Default)]
pub struct ItemSplitter {
    buf: Vec<u8>,
}

impl ItemSplitter {
    /// Adds the next chunk; returns the values it completes, as their JSON text.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        self.buf.extend_from_slice(chunk);
        let mut items = Vec::new();
        let mut consumed = 0;
        let mut values =
            serde_json::Deserializer::from_slice(&self.buf).into_iter::<serde::de::IgnoredAny>();
        loop {
            let start = values.byte_offset();
            match values.next() {
                None => {
                    consumed = self.buf.len();
                    break;
                }
                Some(Ok(_)) => {
                    let end = values.byte_offset();
                    items.push(Bytes::copy_from_slice(trim(&self.buf[start..end])));
                    consumed = end;
                }
                // The rest is an incomplete value: wait for the next chunk.
                Some(Err(e)) if e.is_eof() => break,
                // Not JSON: hand the rest over as it is rather than hide it.
                Some(Err(_)) => {
                    items.push(Bytes::copy_from_slice(trim(&self.buf[start..])));
                    consumed = self.buf.len();
                    break;
                }
            }
        }
        self.buf.drain(..consumed);
        items
    }

    /// The bytes left over at the end of the body (an incomplete value), if any.
    pub fn finish(self) -> Option<Bytes> {
        let rest = trim(&self.buf);
        (!rest.is_empty()).then(|| Bytes::copy_from_slice(rest))
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

/// What [`StreamedCall::next`] reports.
#[derive(Debug)]
pub enum CallEvent {
    /// The result is a stream (the module sent it chunked); items follow.
    Streaming,
    /// One item of a streamed result (its JSON text), as it arrived.
    Item(Bytes),
    /// The result is in. For a streamed result whose items were all reported, `body` is their
    /// concatenation; if the delivery was re-sent after an interruption (or replaced by an
    /// error), it is the whole body as finally accepted.
    Done(JobResult),
}

/// A call whose result is watched as it arrives ([`LocalRuntime::call_streamed`]).
#[derive(Debug)]
pub struct StreamedCall {
    state: Arc<State>,
    job_id: String,
    progress: mpsc::UnboundedReceiver<Progress>,
    splitter: ItemSplitter,
    ready: VecDeque<CallEvent>,
    /// Items are reported from the first attempt only.
    reporting: bool,
    started: bool,
    accepted: bool,
    /// Every item of the accepted body was reported.
    complete: bool,
    /// Bytes of the first attempt seen while reporting, and their hash: a re-sent body that
    /// starts with them continues the items already reported.
    seen: usize,
    seen_hash: std::collections::hash_map::DefaultHasher,
}

impl StreamedCall {
    pub(crate) fn from_parts(
        state: Arc<State>,
        job_id: String,
        progress: mpsc::UnboundedReceiver<Progress>,
    ) -> Self {
        Self {
            state,
            job_id,
            progress,
            splitter: ItemSplitter::default(),
            ready: VecDeque::new(),
            reporting: true,
            started: false,
            accepted: false,
            complete: false,
            seen: 0,
            seen_hash: Default::default(),
        }
    }

    /// The job's id.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// The next event. `idle` bounds the wait for each event, not the whole call: a stream
    /// that keeps producing is never cut off. After [`CallEvent::Done`] the call is over
    /// (further calls return [`LocalError::ResultTaken`]).
    pub async fn next(&mut self, idle: Duration) -> Result<CallEvent, LocalError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            if self.accepted {
                let result = wait_for_result(&self.state, &self.job_id, idle).await?;
                return Ok(CallEvent::Done(result));
            }
            let progress = tokio::select! {
                biased;
                p = self.progress.recv() => p,
                // Also wakes when the job leaves flight without a result (dropped, cancelled,
                // shut down): `wait_for_result` then says why.
                r = wait_for_result(&self.state, &self.job_id, idle) => {
                    // Items of an accepted result may still be queued: report them first.
                    while let Ok(p) = self.progress.try_recv() {
                        self.absorb(p);
                    }
                    let result = r?;
                    self.ready.push_back(CallEvent::Done(result));
                    continue;
                }
            };
            match progress {
                Some(p) => self.absorb(p),
                // The job left flight without a result; `wait_for_result` reports why.
                None => self.accepted = true,
            }
        }
    }

    /// What of `result` was not reported as [`CallEvent::Item`]s, as lines (one JSON value
    /// each, newline-terminated): nothing when every item was reported; the items after those
    /// already reported when the module re-sent the stream whole; the whole body when it was
    /// replaced (for example by an error result).
    pub fn rest_after_items(&self, result: &JobResult) -> Option<Bytes> {
        if self.complete {
            return None;
        }
        let body = &result.body[..];
        let leftover = self.splitter.buf.len();
        let rest = if self.seen == 0 {
            body
        } else if body.len() >= self.seen && {
            let mut h = std::collections::hash_map::DefaultHasher::default();
            h.write(&body[..self.seen]);
            h.finish() == self.seen_hash.finish()
        } {
            &body[self.seen - leftover.min(self.seen)..]
        } else {
            body
        };
        if rest.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let mut splitter = ItemSplitter::default();
        let mut items = splitter.push(rest);
        items.extend(splitter.finish());
        let mut out = Vec::with_capacity(rest.len() + items.len());
        for item in items {
            out.extend_from_slice(&item);
            out.push(b'\n');
        }
        Some(Bytes::from(out))
    }

    fn absorb(&mut self, progress: Progress) {
        match progress {
            Progress::Started { chunked } => {
                if self.started {
                    self.reporting = false;
                } else {
                    self.started = true;
                    self.reporting = chunked;
                    if chunked {
                        self.ready.push_back(CallEvent::Streaming);
                    }
                }
            }
            Progress::Chunk(bytes) if self.reporting => {
                self.seen += bytes.len();
                self.seen_hash.write(&bytes);
                for item in self.splitter.push(&bytes) {
                    self.ready.push_back(CallEvent::Item(item));
                }
            }
            Progress::Chunk(_) => {}
            Progress::Interrupted => self.reporting = false,
            Progress::Accepted => {
                if self.reporting
                    && let Some(rest) = std::mem::take(&mut self.splitter).finish()
                {
                    self.ready.push_back(CallEvent::Item(rest));
                }
                self.complete = self.reporting && self.started;
                self.accepted = true;
            }
        }
    }
}

impl LocalRuntime {
    /// Queues a call to `function` and watches its result as it arrives: a streamed result's
    /// items are reported one by one while the module produces them. The wire format between
    /// module and runtime is unchanged.
    pub fn call_streamed(&self, function: &str, query: serde_json::Value) -> StreamedCall {
        let (job_id, progress) = self
            .inner
            .state
            .enqueue_watched(super::JobSpec::new(function, query));
        StreamedCall::from_parts(Arc::clone(&self.inner.state), job_id, progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(items: Vec<Bytes>) -> Vec<String> {
        items
            .into_iter()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    #[test]
    fn one_value_per_chunk() {
        let mut s = ItemSplitter::default();
        assert_eq!(texts(s.push(b"3")), ["3"]);
        assert_eq!(texts(s.push(b"\"two\"")), ["\"two\""]);
        assert_eq!(texts(s.push(b"{\"a\":[1,2]}")), ["{\"a\":[1,2]}"]);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn values_split_across_chunks_and_sharing_chunks() {
        let mut s = ItemSplitter::default();
        assert!(s.push(b"{\"a\":").is_empty());
        assert_eq!(texts(s.push(b"1}{\"b\":2}[")), ["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(texts(s.push(b"true]")), ["[true]"]);
        assert!(s.push(b"\"unfinished").is_empty());
        assert_eq!(s.finish().as_deref(), Some(&b"\"unfinished"[..]));
    }

    #[test]
    fn text_that_is_not_json_is_handed_over_as_is() {
        let mut s = ItemSplitter::default();
        assert_eq!(texts(s.push(b"not json")), ["not json"]);
        assert_eq!(s.finish(), None);
    }
}
