//! Streamed results: iterators (iterated on the blocking pool, items handed over in
//! batches) and async streams, one JSON value per chunk.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::run::{cancelled, panic_error};
use crate::functions::outcome::{ErrorKind, JobError, Output};

/// How many batches of encoded stream items may wait for the job loop before the producer
/// blocks.
const STREAM_BUFFER: usize = 16;
/// At most this many items per batch handed from an iterator's blocking thread…
const BATCH_ITEMS: usize = 4096;
/// …or this many bytes…
const BATCH_BYTES: usize = 64 * 1024;
/// …or a batch waits at most this long for more items.
const BATCH_LINGER: std::time::Duration = std::time::Duration::from_millis(5);

/// Items encoded on the blocking thread: one buffer and where each item ends in it (an
/// allocation per batch, not per item), then the error that ended the stream, if any.
struct Batch {
    data: Vec<u8>,
    ends: Vec<u32>,
    error: Option<JobError>,
}

impl Batch {
    fn new() -> Self {
        Self {
            data: Vec::new(),
            ends: Vec::new(),
            error: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty() && self.error.is_none()
    }

    /// The items as chunks sharing the batch's one buffer, then the error.
    fn into_chunks(self) -> impl Iterator<Item = Result<Bytes, JobError>> + Send {
        let data = Bytes::from(self.data);
        let items = self.ends.into_iter().scan(0usize, move |start, end| {
            let end = end as usize;
            let chunk = data.slice(*start..end);
            *start = end;
            Some(Ok(chunk))
        });
        items.chain(self.error.map(Err))
    }
}

/// Streams the items of an iterator as one JSON value per chunk. `make` (the user's call) and
/// the iteration both run on the blocking pool, so neither the iterator nor its items need to
/// be `Send`, and a slow `next()` never stalls the job loop. `encode` appends one item's JSON
/// to the batch buffer.
///
/// If `make` fails or panics, that is the job's result (no stream is started). A panic during
/// iteration ends the stream with a `Panic` error item; an item that fails to encode ends it
/// with that error.
pub async fn iter_output<F, I, E>(make: F, mut encode: E) -> Result<Output, JobError>
where
    F: FnOnce() -> Result<I, JobError> + Send + 'static,
    I: IntoIterator,
    E: FnMut(&mut Vec<u8>, I::Item) -> Result<(), JobError> + Send + 'static,
{
    let (started_tx, started_rx) = oneshot::channel::<Result<(), JobError>>();
    // Items cross from the blocking thread in batches: one hand-off per item would cost a
    // thread wake-up per item (see BENCHMARKS.md). A batch is sent when it is full or has
    // waited `BATCH_LINGER`, so a slow iterator's items still go out promptly.
    let (tx, rx) = mpsc::channel::<Batch>(STREAM_BUFFER);
    let handle = tokio::task::spawn_blocking(move || {
        let items = match make() {
            Ok(items) => items,
            Err(e) => {
                let _ = started_tx.send(Err(e));
                return;
            }
        };
        if started_tx.send(Ok(())).is_err() {
            return;
        }
        let mut batch = Batch::new();
        // Items already produced are sent even when the iterator then panics; the panic is
        // resumed afterwards so the stream ends with a `Panic` item.
        let produced = catch_unwind(AssertUnwindSafe(|| {
            let mut batch_started = std::time::Instant::now();
            for item in items {
                if batch.ends.is_empty() {
                    batch_started = std::time::Instant::now();
                }
                let encoded = encode(&mut batch.data, item);
                let last = match encoded {
                    Ok(()) => match u32::try_from(batch.data.len()) {
                        Ok(end) => {
                            batch.ends.push(end);
                            false
                        }
                        // A single item beyond 4 GiB: the stream cannot carry it.
                        Err(_) => {
                            batch.error = Some(JobError::new(
                                ErrorKind::SerializationError,
                                "a streamed item is larger than 4 GiB",
                            ));
                            true
                        }
                    },
                    Err(e) => {
                        batch.error = Some(e);
                        true
                    }
                };
                let full = batch.ends.len() >= BATCH_ITEMS
                    || batch.data.len() >= BATCH_BYTES
                    || batch_started.elapsed() >= BATCH_LINGER;
                if last || full {
                    // A send error means the stream was dropped: nobody wants more items.
                    if tx
                        .blocking_send(std::mem::replace(&mut batch, Batch::new()))
                        .is_err()
                        || last
                    {
                        return;
                    }
                }
            }
        }));
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
        if let Err(panic) = produced {
            std::panic::resume_unwind(panic);
        }
    });
    match started_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        // The task ended without reporting: it panicked (or was cancelled at shutdown).
        Err(_) => {
            return match handle.await {
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                _ => Err(cancelled()),
            };
        }
    }
    let state = (rx, Some(handle));
    let batches = futures_util::stream::unfold(state, |(mut rx, mut handle)| async move {
        if let Some(batch) = rx.recv().await {
            return Some((batch, (rx, handle)));
        }
        match handle.take()?.await {
            Err(e) if e.is_panic() => {
                let mut last = Batch::new();
                last.error = Some(panic_error(&*e.into_panic()));
                Some((last, (rx, None)))
            }
            _ => None,
        }
    });
    let chunks = batches.flat_map(|batch| futures_util::stream::iter(batch.into_chunks()));
    Ok(Output::Stream(Box::pin(chunks)))
}

/// Streams the items of an async stream as one JSON value per chunk. A panic while polling the
/// stream ends it with a `Panic` error item; an item that fails to encode (or an `Err` item of
/// a stream of `Result`s) ends it with that error.
pub fn stream_output<S, E>(stream: S, encode: E) -> Output
where
    S: Stream + Send + 'static,
    E: FnMut(S::Item) -> Result<Vec<u8>, JobError> + Send + Unpin + 'static,
{
    Output::Stream(Box::pin(Chunks {
        stream: Box::pin(stream),
        encode,
        done: false,
    }))
}

struct Chunks<S, E> {
    stream: Pin<Box<S>>,
    encode: E,
    done: bool,
}

impl<S, E> Stream for Chunks<S, E>
where
    S: Stream,
    E: FnMut(S::Item) -> Result<Vec<u8>, JobError> + Unpin,
{
    type Item = Result<Bytes, JobError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let polled = catch_unwind(AssertUnwindSafe(|| this.stream.as_mut().poll_next(cx)));
        let chunk = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(None)) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Ok(Poll::Ready(Some(item))) => {
                let encode = &mut this.encode;
                catch_unwind(AssertUnwindSafe(|| encode(item)))
                    .unwrap_or_else(|payload| Err(panic_error(&*payload)))
            }
            Err(payload) => Err(panic_error(&*payload)),
        };
        this.done = chunk.is_err();
        Poll::Ready(Some(chunk.map(Bytes::from)))
    }
}
