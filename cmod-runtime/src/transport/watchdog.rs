//! Idle timeouts for HTTP exchanges: a limit on how long a transfer may make **no progress**,
//! never on how long a healthy transfer takes.
//!
//! An exchange has three phases, and each has its own clock:
//!
//! * **producing**: the request body is waiting for its producer (a streamed result whose
//!   function is still computing). Not limited: the function's own time is not a network
//!   problem (shutdown handles functions that run too long).
//! * **handed off**: a chunk of the body was handed to the connection and the connection has
//!   not come back for the next one. Limited by `idle`: the peer stopped reading.
//! * **finished**: the whole body was sent (or there was none) and the response headers have not
//!   arrived. Limited by `response`.
//!
//! Response bodies are read chunk by chunk, each chunk within `idle` ([`read_body`]).
//!
//! reqwest's own `read_timeout` is not used for this: its timer starts with the request and is
//! not reset while the request body uploads, so it caps every upload that takes longer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use futures_util::Stream;

/// The limits of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// How long the peer may take no part of the body (upload), or send none of it (download).
    pub(crate) idle: Duration,
    /// How long the response headers may take once the request body has been sent.
    pub(crate) response: Duration,
}

/// Which limit ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stall {
    /// The peer stopped taking the request body.
    Upload(Duration),
    /// No response headers arrived after the request body was sent.
    Response(Duration),
    /// The response body stopped arriving.
    Download(Duration),
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stall::Upload(d) => write!(
                f,
                "timed out: the server took none of the request body for {} s",
                d.as_secs_f64()
            ),
            Stall::Response(d) => write!(
                f,
                "timed out: no response within {} s after the request was sent",
                d.as_secs_f64()
            ),
            Stall::Download(d) => write!(
                f,
                "timed out: the response body stalled for {} s",
                d.as_secs_f64()
            ),
        }
    }
}

const PRODUCING: u64 = 0;
const HANDED_OFF: u64 = 1;
const FINISHED: u64 = 2;
const PHASE_SHIFT: u32 = 62;
const TIME_MASK: u64 = (1 << PHASE_SHIFT) - 1;

/// The progress of one request body, shared by the body (which records it) and the watchdog
/// (which reads it). One atomic word: the phase and when it began.
#[derive(Debug)]
pub(crate) struct Progress {
    base: Instant,
    state: AtomicU64,
    ended: std::sync::atomic::AtomicBool,
    /// Wakes a watcher sleeping on the previous phase's deadline when the phase changes (a
    /// body that finishes is then held to `response` from that moment, even when `response`
    /// is shorter than `idle`).
    changed: tokio::sync::Notify,
}

impl Progress {
    /// Progress of a request whose body is about to be sent (`has_body`) or that has none.
    pub(crate) fn new(has_body: bool) -> Arc<Self> {
        let progress = Arc::new(Self {
            base: Instant::now(),
            state: AtomicU64::new(0),
            ended: std::sync::atomic::AtomicBool::new(!has_body),
            changed: tokio::sync::Notify::new(),
        });
        progress.set(if has_body { HANDED_OFF } else { FINISHED });
        progress
    }

    fn set(&self, phase: u64) {
        let millis = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(TIME_MASK);
        let word = (phase << PHASE_SHIFT) | (millis & TIME_MASK);
        let previous = self.state.swap(word, Ordering::AcqRel);
        if previous >> PHASE_SHIFT != phase {
            self.changed.notify_waiters();
        }
    }

    fn get(&self) -> (u64, Instant) {
        let word = self.state.load(Ordering::Acquire);
        (
            word >> PHASE_SHIFT,
            self.base + Duration::from_millis(word & TIME_MASK),
        )
    }

    /// The connection asked for more of the body; it is now up to the producer.
    pub(crate) fn producing(&self) {
        self.set(PRODUCING);
    }

    /// A chunk was handed to the connection.
    pub(crate) fn handed_off(&self) {
        self.set(HANDED_OFF);
    }

    /// The body ended: every byte was handed to the connection.
    pub(crate) fn finished(&self) {
        self.ended.store(true, Ordering::Release);
        self.set(FINISHED);
    }

    /// Whether the whole body was handed to the connection.
    pub(crate) fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Completes when a limit runs out; never while the producer is the one being waited for.
    /// With `upload_only` (the headers already arrived, only the connection's use of the body
    /// is being waited for), a finished body counts against `idle`, not `response`.
    pub(crate) async fn stalled(&self, limits: Limits, upload_only: bool) -> Stall {
        loop {
            // Registered before reading the phase, so a change after the read wakes us.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (phase, since) = self.get();
            let (limit, stall) = match phase {
                HANDED_OFF => (limits.idle, Some(Stall::Upload(limits.idle))),
                FINISHED if !upload_only => {
                    (limits.response, Some(Stall::Response(limits.response)))
                }
                // After the headers, a connection lets go of a finished body at once.
                FINISHED => (limits.idle, Some(Stall::Upload(limits.idle))),
                // Waiting for the producer: not a network problem; look again later.
                _ => (limits.idle, None),
            };
            let deadline = since + limit;
            match stall {
                Some(stall) if Instant::now() >= deadline => return stall,
                Some(_) => tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = &mut changed => {}
                },
                None => tokio::select! {
                    () = tokio::time::sleep(limit) => {}
                    () = &mut changed => {}
                },
            }
        }
    }
}

/// Runs `exchange` (a request's `send()`), failing with the [`Stall`] when `progress` shows a
/// limit ran out first.
pub(crate) async fn guard<F: Future>(
    progress: &Progress,
    limits: Limits,
    exchange: F,
) -> Result<F::Output, Stall> {
    tokio::select! {
        biased;
        out = exchange => Ok(out),
        stall = progress.stalled(limits, false) => Err(stall),
    }
}

/// Chunks a buffered body is handed over in, so progress shows during a large upload.
const CHUNK: usize = 256 * 1024;

/// A buffered request body that records its progress. Send it with an explicit
/// `Content-Length` (it is a stream to reqwest).
pub(crate) struct BufferedBody {
    rest: Bytes,
    progress: Arc<Progress>,
}

impl BufferedBody {
    pub(crate) fn new(body: Bytes, progress: Arc<Progress>) -> Self {
        Self {
            rest: body,
            progress,
        }
    }
}

impl Stream for BufferedBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.rest.is_empty() {
            self.progress.finished();
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(CHUNK);
        let chunk = self.rest.split_to(n);
        if self.rest.is_empty() {
            // The connection may not ask again once the declared length is reached.
            self.progress.finished();
        } else {
            self.progress.handed_off();
        }
        Poll::Ready(Some(Ok(chunk)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rest.len().div_ceil(CHUNK);
        (n, Some(n))
    }
}

/// A streamed request body that records its progress: waiting for `inner` is the producer's
/// time (never limited), a chunk handed over starts the idle clock, the end marks the body
/// finished.
pub(crate) struct ProgressStream<S> {
    inner: S,
    progress: Arc<Progress>,
}

impl<S> ProgressStream<S> {
    pub(crate) fn new(inner: S, progress: Arc<Progress>) -> Self {
        Self { inner, progress }
    }
}

impl<S, E> Stream for ProgressStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        match &polled {
            Poll::Pending => self.progress.producing(),
            Poll::Ready(Some(_)) => self.progress.handed_off(),
            Poll::Ready(None) => self.progress.finished(),
        }
        polled
    }
}

/// A request body with its progress recorded: a buffered body goes out in chunks with its
/// `Content-Length` kept; a streamed one is wrapped in a [`ProgressStream`]. Returns the body
/// and the length to declare (`None`: chunked).
pub(crate) fn tracked_body(
    body: reqwest::Body,
    progress: &Arc<Progress>,
) -> (reqwest::Body, Option<u64>) {
    match body.as_bytes() {
        Some(bytes) => {
            let len = bytes.len() as u64;
            let buffered = BufferedBody::new(Bytes::copy_from_slice(bytes), Arc::clone(progress));
            (reqwest::Body::wrap_stream(buffered), Some(len))
        }
        None => {
            let stream = http_body_util::BodyDataStream::new(body);
            (
                reqwest::Body::wrap_stream(ProgressStream::new(stream, Arc::clone(progress))),
                None,
            )
        }
    }
}

/// A response body stream failing with [`Stall::Download`] when no chunk arrives within
/// `idle` of being asked for. Only time spent waiting counts: the clock starts when the reader
/// asks for a chunk, so a reader that takes its time between chunks (or before the first) is
/// never the peer's stall.
struct IdleStream<S> {
    inner: S,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// Whether a chunk was asked for and has not arrived (the clock runs).
    waiting: bool,
    failed: bool,
}

impl<S, E> Stream for IdleStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        if !self.waiting {
            let deadline = Instant::now() + self.idle;
            self.timer.as_mut().reset(deadline);
            self.waiting = true;
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(item) => {
                self.waiting = false;
                Poll::Ready(item.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.failed = true;
                    let stall = Stall::Download(self.idle);
                    Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        stall.to_string(),
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// `response` with its body read under an idle limit: reading it (`bytes()`, `chunk()`,
/// `bytes_stream()`, …) fails with a timeout once no bytes arrived for `idle`. Status, headers,
/// URL and extensions are kept.
pub(crate) fn idle_response(response: reqwest::Response, idle: Duration) -> reqwest::Response {
    use reqwest::ResponseBuilderExt as _;
    let url = response.url().clone();
    let (mut parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    // reqwest keeps the URL in a response extension that only its builder extension can set.
    if let Ok(marker) = http::Response::builder().url(url).body(()) {
        parts.extensions.extend(marker.into_parts().0.extensions);
    }
    let stream = IdleStream {
        inner: http_body_util::BodyDataStream::new(body),
        idle,
        timer: Box::pin(tokio::time::sleep(idle)),
        waiting: false,
        failed: false,
    };
    reqwest::Response::from(http::Response::from_parts(
        parts,
        reqwest::Body::wrap_stream(stream),
    ))
}

/// Why an exchange sent with [`send_tracked`] failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No response (connect, TLS, protocol, a total timeout, …).
    Transport(reqwest::Error),
    /// A limit ran out: no progress.
    Stalled(Stall),
}

/// Sends `request` with its body's progress recorded, failing with [`SendError::Stalled`] when
/// the peer takes none of the body for `limits.idle` or sends no headers within
/// `limits.response` once it is sent. The response's body is read under `limits.idle`
/// ([`idle_response`]).
pub(crate) async fn send_tracked(
    request: reqwest::RequestBuilder,
    limits: Limits,
) -> Result<reqwest::Response, SendError> {
    send_tracked_with(request, None, limits).await
}

/// [`send_tracked`] with `body` (shared, not copied) as the request body, when given.
pub(crate) async fn send_tracked_with(
    request: reqwest::RequestBuilder,
    body: Option<Bytes>,
    limits: Limits,
) -> Result<reqwest::Response, SendError> {
    let (client, request) = request.build_split();
    let mut request = request.map_err(SendError::Transport)?;
    let progress = Progress::new(request.body().is_some() || body.is_some());
    if let Some(bytes) = body {
        let len = bytes.len() as u64;
        *request.body_mut() = Some(reqwest::Body::wrap_stream(BufferedBody::new(
            bytes,
            Arc::clone(&progress),
        )));
        request
            .headers_mut()
            .insert(reqwest::header::CONTENT_LENGTH, len.into());
    } else if let Some(body) = request.body_mut().take() {
        let (body, len) = tracked_body(body, &progress);
        *request.body_mut() = Some(body);
        if let Some(len) = len {
            request
                .headers_mut()
                .insert(reqwest::header::CONTENT_LENGTH, len.into());
        }
    }
    match guard(&progress, limits, client.execute(request)).await {
        Err(stall) => Err(SendError::Stalled(stall)),
        Ok(Err(e)) => Err(SendError::Transport(e)),
        Ok(Ok(response)) => Ok(idle_response(response, limits.idle)),
    }
}

/// Seconds from variable `var` (1..=86400) through `lookup`, or `default` when unset.
pub(crate) fn limit_var(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &str,
    default: Duration,
) -> Result<Duration, String> {
    let Some(raw) = crate::config::var(lookup, var) else {
        return Ok(default);
    };
    match raw.trim().parse::<u64>() {
        Ok(secs @ 1..=86_400) => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "{var}=`{raw}` is not a whole number of seconds between 1 and 86400"
        )),
    }
}

/// Reads a whole body — a request body in server mode, a response body in the runtime client —
/// each frame within `idle`: a peer that keeps sending is never cut off. A body of one frame is
/// returned as it came (no copy).
pub(crate) async fn read_incoming<B>(mut body: B, idle: Duration) -> Result<Bytes, IncomingError>
where
    B: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    use http_body_util::BodyExt as _;
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(IncomingError::Stalled(idle)),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(IncomingError::Transport(e)),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        match &first {
            None if rest.is_empty() => first = Some(chunk),
            _ => {
                if let Some(f) = first.take() {
                    rest.extend_from_slice(&f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok(match first {
        Some(only) => only,
        None => Bytes::from(rest),
    })
}

/// Why a body could not be read (the messages speak of a request body: server mode shows them;
/// the runtime client turns them into its own errors).
#[derive(Debug, thiserror::Error)]
pub(crate) enum IncomingError {
    #[error("the request body made no progress for {0:?}")]
    Stalled(Duration),
    #[error("the request body could not be read: {0}")]
    Transport(hyper::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    const LIMITS: Limits = Limits {
        idle: Duration::from_millis(200),
        response: Duration::from_millis(300),
    };

    #[tokio::test(start_paused = true)]
    async fn waiting_for_the_producer_never_times_out() {
        let p = Progress::new(true);
        p.producing();
        let r = tokio::time::timeout(Duration::from_secs(3600), p.stalled(LIMITS, false)).await;
        assert!(
            r.is_err(),
            "no stall while the producer is being waited for"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_chunk_not_taken_within_idle_is_an_upload_stall() {
        let p = Progress::new(true);
        p.handed_off();
        let started = tokio::time::Instant::now();
        assert_eq!(p.stalled(LIMITS, false).await, Stall::Upload(LIMITS.idle));
        assert_eq!(started.elapsed(), LIMITS.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_body_waits_for_the_response_limit_unless_only_the_upload_matters() {
        let p = Progress::new(false);
        assert_eq!(
            p.stalled(LIMITS, false).await,
            Stall::Response(LIMITS.response)
        );
        assert_eq!(p.stalled(LIMITS, true).await, Stall::Upload(LIMITS.idle));
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_limit_shorter_than_idle_counts_from_when_the_body_finished() {
        // The watcher starts while the body is handed off (idle clock, 60 s); the body then
        // finishes: the 1 s response limit must apply from then, not after the idle wait.
        let limits = Limits {
            idle: Duration::from_secs(60),
            response: Duration::from_secs(1),
        };
        let p = Progress::new(true);
        let watch = p.stalled(limits, false);
        tokio::pin!(watch);
        let started = tokio::time::Instant::now();
        tokio::select! {
            s = &mut watch => panic!("stalled before the body finished: {s:?}"),
            () = tokio::time::sleep(Duration::from_millis(100)) => p.finished(),
        }
        assert_eq!(watch.await, Stall::Response(limits.response));
        assert_eq!(started.elapsed(), Duration::from_millis(1100));
    }

    #[tokio::test(start_paused = true)]
    async fn progress_resets_the_clock() {
        let p = Progress::new(true);
        let watch = p.stalled(LIMITS, false);
        tokio::pin!(watch);
        for _ in 0..10 {
            tokio::select! {
                s = &mut watch => panic!("stalled although progressing: {s:?}"),
                () = tokio::time::sleep(Duration::from_millis(150)) => p.handed_off(),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn only_waiting_for_a_response_chunk_counts_never_the_readers_own_pauses() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let mut body = IdleStream {
            inner: futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)),
            idle: LIMITS.idle,
            timer: Box::pin(tokio::time::sleep(LIMITS.idle)),
            waiting: false,
            failed: false,
        };
        for _ in 0..2 {
            // The reader takes its time (before the first chunk, then between chunks)...
            tokio::time::sleep(LIMITS.idle * 10).await;
            let sender = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(LIMITS.idle / 2).await;
                let _ = sender.send(Ok(Bytes::from_static(b"x"))).await;
            });
            // ...and the peer answers within the limit of being asked.
            assert_eq!(
                body.next().await.unwrap().unwrap(),
                Bytes::from_static(b"x")
            );
        }
        let started = tokio::time::Instant::now();
        let stalled = body.next().await.unwrap().unwrap_err();
        assert!(stalled.to_string().contains("stalled"), "{stalled}");
        assert_eq!(started.elapsed(), LIMITS.idle);
        drop(tx);
    }

    #[tokio::test]
    async fn a_buffered_body_comes_in_chunks_and_marks_the_end() {
        let p = Progress::new(true);
        let data = Bytes::from(vec![7u8; CHUNK * 2 + 5]);
        let body = BufferedBody::new(data.clone(), Arc::clone(&p));
        let chunks: Vec<Bytes> = body.map(|c| c.unwrap()).collect().await;
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks.concat(), data.to_vec());
        assert!(p.ended());
    }
}
