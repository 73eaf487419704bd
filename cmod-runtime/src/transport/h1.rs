//! The runtime client's HTTP/1.1 transport: hyper's client connection over tokio-rustls, with a
//! small keep-alive pool per origin (issue 15, BENCHMARKS.md).
//!
//! Why not reqwest here, as everywhere else: the profile of the job path showed two costs that
//! reqwest cannot switch off. Its hyper connections use vectored writes over rustls, which turns
//! every queued slice — a chunk-size line, a chunk, its CRLF, each header block — into a TLS
//! record of its own and a `writev` of its own: 40 % of the module's CPU for a stream of small
//! items, 20 % for a trivial job. And every request pays for URL handling, the pool's hashing
//! and locking, and a hand-off to a connection task. This transport writes through hyper's
//! flattening buffer (`writev(false)`: one record per flush), builds request targets without a
//! URL parser, and keeps at most a few idle connections per origin.
//!
//! **No connection task.** A connection's I/O is driven by the task that uses it: the request
//! future while the request goes out and the response head comes in, then the response body
//! while it is read ([`ResponseBody`]); an idle pooled connection is driven by no one and looked
//! at when it is taken out. With a task per connection, every request and every response
//! crossed between two tasks, and on Tokio's multi-thread runtime those hand-offs woke idle
//! worker threads (futex wake-ups, then lock contention between the threads): at
//! `MAX_CONCURRENT_TASKS=1` that was most of what separated the job loop from the
//! single-threaded floor. A connection still busy when its user lets go of it (the runtime
//! answered before the request body ended, or a response body was left unread) is finished on a
//! task of its own — given up on once it moves no bytes for the idle limit — and then kept.
//!
//! It follows no redirect (there is no redirect handling at all) and sends no `Referer`: the
//! module auth token only ever goes to the origin it was configured for.

use std::future::{Future, poll_fn};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http::header::HOST;
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The most a connection buffers before it writes: four TLS records' worth of plaintext
/// (rustls seals at most 16 KiB per record), less a margin so that the small chunk crossing the
/// limit does not make a fifth record of a few bytes. hyper's default (about 400 KiB) held a
/// streamed result back until that much was encoded, leaving the runtime idle meanwhile; with
/// 64 KiB it starts on the stream sooner (15 % more items/s, BENCHMARKS.md). A larger single
/// chunk (a 1 MB result) is still written whole.
const WRITE_BUF_MAX: usize = 4 * 16 * 1024 - 256;

/// A request body: empty, buffered or streamed; errors abort the request.
pub(crate) type Body = UnsyncBoxBody<Bytes, std::io::Error>;
/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum H1Error {
    /// No connection could be made (refused, unreachable, DNS, TCP timeout).
    #[error("cannot connect to {origin}: {message}")]
    Connect { origin: String, message: String },
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol error).
    #[error("TLS handshake with {origin} failed: {message}")]
    Tls { origin: String, message: String },
    /// The connection failed during the exchange.
    #[error("{}", describe(.0))]
    Http(#[from] hyper::Error),
}

impl H1Error {
    /// Whether no connection could be made at all.
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, H1Error::Connect { .. })
    }
}

/// A hyper error with its causes (never a URL: hyper's errors carry none).
fn describe(e: &hyper::Error) -> String {
    let mut text = e.to_string();
    super::describe::push_causes(&mut text, e);
    text
}

/// The scheme, host and port requests go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    tls: bool,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of `url` (`http` or `https` only).
    pub(crate) fn of(url: &reqwest::Url) -> Result<Self, String> {
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(format!("unsupported scheme `{other}` (http or https)")),
        };
        let host = url
            .host_str()
            .ok_or("no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        Ok(Self { tls, host, port })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// How much of a response body no one read is drained to keep its connection; a larger one
/// closes the connection instead.
const DRAIN_LIMIT: usize = 64 * 1024;
/// How many times in a row a connection that keeps waking its own task during a poll is polled
/// again at once, before the scheduler gets to run other tasks (see [`ConnIo::poll_with`]).
const REWAKE_ROUNDS: usize = 8;

/// The state machine doing one connection's I/O (hyper's `Connection`).
type Driver = http1::Connection<TokioIo<Io>, TrackedBody>;

/// One HTTP/1.1 connection: the handle requests go in through, and its I/O.
struct Conn {
    sender: SendRequest<TrackedBody>,
    io: ConnIo,
    /// How many reads and writes moved bytes: a connection finishing on its own
    /// ([`Pool::release`]) is given up on once this stops changing for the idle limit.
    activity: Arc<AtomicU64>,
    /// Whether the connection is done with the last request's body. hyper's `is_ready` says
    /// yes as soon as the response arrived, even while the body is still going out (an early
    /// answer): such a connection must be finished, not pooled undriven.
    body_done: Arc<AtomicBool>,
}

/// A connection's I/O, driven by whoever waits on the connection.
struct ConnIo {
    /// `None` once the connection is over (closed by either side, or failed): its error, if
    /// any, reached the request or body waiting on it.
    driver: Option<Pin<Box<Driver>>>,
    filter: Arc<WakeFilter>,
    waker: Waker,
}

/// The waker a connection's I/O and its waiters are polled with: notes wake-ups that happen
/// during [`ConnIo::poll_with`], forwards the others to the task.
struct WakeFilter {
    polling: AtomicBool,
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for WakeFilter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // SeqCst on both sides: either this wake-up sees the poll in progress, or the poll sees
        // `woken` once it is over (then the task may be polled once more than needed, never
        // once less).
        self.woken.store(true, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

impl Conn {
    fn new(sender: SendRequest<TrackedBody>, driver: Driver, activity: Arc<AtomicU64>) -> Self {
        let filter = Arc::new(WakeFilter {
            polling: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(Arc::clone(&filter));
        Self {
            sender,
            io: ConnIo {
                driver: Some(Box::pin(driver)),
                filter,
                waker,
            },
            activity,
            body_done: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Whether the connection can take a request now (as far as is known without polling it).
    fn ready(&self) -> bool {
        self.io.driver.is_some() && self.sender.is_ready() && self.body_done.load(Ordering::Acquire)
    }

    /// Lets the connection process what it already received, without waiting (an idle one: a
    /// close by the server). Whether it can take a request now.
    fn settle(&mut self) -> bool {
        self.io.poll_driver(&mut Context::from_waker(Waker::noop()));
        self.ready()
    }
}

impl ConnIo {
    /// Polls the connection's I/O, then `f` (which waits on something the I/O produces: a
    /// response, a body frame), both with the connection's waker.
    ///
    /// The I/O wakes its own task often while it works (hyper's dispatcher between reading and
    /// writing, a response handed to its waiter): such wake-ups, noted during the poll, make this
    /// poll again at once instead of returning `Pending` with the task notified — which Tokio's
    /// multi-thread runtime treats as a yield, re-queueing the task and waking an idle worker
    /// thread to steal it. After `REWAKE_ROUNDS` rounds it yields after all (something that
    /// yields on purpose, e.g. out of Tokio's cooperative budget, still does).
    fn poll_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut f: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        let ConnIo {
            driver,
            filter,
            waker,
        } = self;
        filter.task.register(cx.waker());
        let mut inner = Context::from_waker(waker);
        for _ in 0..REWAKE_ROUNDS {
            filter.woken.store(false, Ordering::SeqCst);
            filter.polling.store(true, Ordering::SeqCst);
            poll_driver(driver, &mut inner);
            let polled = f(&mut inner);
            filter.polling.store(false, Ordering::SeqCst);
            if polled.is_ready() {
                return polled;
            }
            if !filter.woken.swap(false, Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Forgets the task that last waited on the connection: wake-ups of the connection no one
    /// waits on go nowhere.
    fn detach(&self) {
        self.filter.task.register(Waker::noop());
    }

    fn poll_driver(&mut self, cx: &mut Context<'_>) {
        poll_driver(&mut self.driver, cx);
    }
}

/// Polls a connection's I/O; `None` once it is over.
fn poll_driver(driver: &mut Option<Pin<Box<Driver>>>, cx: &mut Context<'_>) {
    if let Some(running) = driver
        && running.as_mut().poll(cx).is_ready()
    {
        *driver = None;
    }
}

/// An idle connection and since when it has been idle.
struct Idle {
    conn: Conn,
    since: Instant,
}

/// The connections of one origin.
struct Pool {
    origin: Origin,
    host_header: HeaderValue,
    server_name: ServerName<'static>,
    idle: Mutex<Vec<Idle>>,
    idle_timeout: Duration,
    max_idle: usize,
    /// How long a connection its user let go of while still busy (the rest of a request body
    /// going out, of a response body coming in) may move no bytes before it is dropped.
    finish_idle: Duration,
}

impl Pool {
    /// An idle connection ready for a request, dropping expired ones and ones the server closed.
    fn checkout(&self) -> Option<Conn> {
        let now = Instant::now();
        loop {
            let idle = {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                idle.retain(|c| now.duration_since(c.since) < self.idle_timeout);
                // The most recently used: its TLS session and buffers are warm.
                idle.pop()?
            };
            let mut conn = idle.conn;
            if conn.settle() {
                return Some(conn);
            }
        }
    }

    fn checkin(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Takes `conn` back once its user is done with it: kept when it can take another request;
    /// finished on a task of its own when it is still busy (the rest of a request body still
    /// going out after an early answer, or `unread`, a response body no one read).
    fn release(self: &Arc<Self>, mut conn: Conn, unread: Option<Incoming>) {
        let mut unread = unread.filter(|body| !body.is_end_stream());
        if unread.is_none() && conn.settle() {
            self.checkin(conn);
            return;
        }
        // What already arrived may be all there is to finish (a small unread body): no task.
        let mut drained = 0;
        let noop = &mut Context::from_waker(Waker::noop());
        match poll_finish(&mut conn, &mut unread, &mut drained, noop) {
            Poll::Ready(true) => return self.checkin(conn),
            Poll::Ready(false) => return,
            Poll::Pending => {}
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = Arc::clone(self);
        runtime.spawn(async move {
            // An idle limit, never a cap: a connection still moving bytes (a long request body
            // after an early answer) is given all the time it needs.
            let idle = pool.finish_idle;
            let mut seen = conn.activity.load(Ordering::Relaxed);
            let mut quiet = pin!(tokio::time::sleep(idle));
            let finished = poll_fn(|cx| {
                if let Poll::Ready(kept) = poll_finish(&mut conn, &mut unread, &mut drained, cx) {
                    return Poll::Ready(kept);
                }
                let now = conn.activity.load(Ordering::Relaxed);
                if now != seen {
                    seen = now;
                    quiet.as_mut().reset(Instant::now() + idle);
                }
                quiet.as_mut().poll(cx).map(|()| false)
            })
            .await;
            if finished {
                pool.checkin(conn);
            }
        });
    }
}

/// Drives `conn` until it can take another request, draining `unread` (at most `DRAIN_LIMIT`
/// bytes in all, counted in `drained`). Whether it can.
fn poll_finish(
    conn: &mut Conn,
    unread: &mut Option<Incoming>,
    drained: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<bool> {
    let Conn {
        sender,
        io,
        body_done,
        ..
    } = conn;
    let polled = io.poll_with(cx, |cx| {
        while let Some(body) = unread {
            match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    *drained += frame.data_ref().map_or(0, Bytes::len);
                    if *drained > DRAIN_LIMIT {
                        return Poll::Ready(false);
                    }
                }
                Poll::Ready(None) => *unread = None,
                Poll::Ready(Some(Err(_))) => return Poll::Ready(false),
                Poll::Pending => return Poll::Pending,
            }
        }
        if sender.is_ready() && body_done.load(Ordering::Acquire) {
            Poll::Ready(true)
        } else if sender.is_closed() {
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    });
    polled.map(|ready| ready && io.driver.is_some())
}

/// A response body that drives its connection while it is read, and gives the connection back
/// to the pool when it ends or is dropped.
pub(crate) struct ResponseBody {
    incoming: Option<Incoming>,
    conn: Option<(Conn, Arc<Pool>)>,
}

impl hyper::body::Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(incoming) = &mut this.incoming else {
            return Poll::Ready(None);
        };
        let polled = match &mut this.conn {
            Some((conn, _)) => conn
                .io
                .poll_with(cx, |cx| Pin::new(&mut *incoming).poll_frame(cx)),
            None => Pin::new(incoming).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(None) => {
                let conn = this.conn.take();
                if let Some((conn, _)) = &conn {
                    // What the connection does from now on (the body's end noticed) is no
                    // longer this task's business: no wake-up of it.
                    conn.io.detach();
                }
                this.incoming = None;
                if let Some((conn, pool)) = conn {
                    pool.release(conn, None);
                }
            }
            // The connection is broken: never reused.
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("ended", &self.incoming.is_none())
            .finish_non_exhaustive()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some((conn, pool)) = self.conn.take() {
            conn.io.detach();
            pool.release(conn, self.incoming.take());
        }
    }
}

/// An HTTP/1.1 client for a few fixed origins. Cheap to clone.
#[derive(Clone)]
pub(crate) struct H1Client {
    tls: TlsConnector,
    pools: Arc<[Arc<Pool>]>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for H1Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Client")
            .field(
                "origins",
                &self.pools.iter().map(|p| &p.origin).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl H1Client {
    /// A client for `origins`, trusting what `tls` trusts. At most `max_idle` idle connections
    /// are kept per origin, each for at most `idle_timeout`. A connection let go of while still
    /// busy is dropped once it moved no bytes for `finish_idle`.
    pub(crate) fn new(
        tls: rustls::ClientConfig,
        origins: impl IntoIterator<Item = Origin>,
        connect_timeout: Duration,
        (idle_timeout, max_idle): (Duration, usize),
        finish_idle: Duration,
    ) -> Result<Self, String> {
        let mut pools: Vec<Arc<Pool>> = Vec::new();
        for origin in origins {
            if pools.iter().any(|p| p.origin == origin) {
                continue;
            }
            let default_port = if origin.tls { 443 } else { 80 };
            let authority = match (origin.host.contains(':'), origin.port == default_port) {
                (true, true) => format!("[{}]", origin.host),
                (true, false) => format!("[{}]:{}", origin.host, origin.port),
                (false, true) => origin.host.clone(),
                (false, false) => format!("{}:{}", origin.host, origin.port),
            };
            let host_header = HeaderValue::from_str(&authority)
                .map_err(|_| format!("invalid host `{}`", origin.host))?;
            let server_name = ServerName::try_from(origin.host.clone())
                .map_err(|e| format!("invalid TLS server name `{}`: {e}", origin.host))?;
            pools.push(Arc::new(Pool {
                origin,
                host_header,
                server_name,
                idle: Mutex::new(Vec::new()),
                idle_timeout,
                max_idle: max_idle.max(1),
                finish_idle,
            }));
        }
        Ok(Self {
            tls: TlsConnector::from(Arc::new(tls)),
            pools: pools.into(),
            connect_timeout,
        })
    }

    /// Sends `request` (its URI: a path and query only) to `origin`, which must be one of the
    /// client's. A request that a pooled connection could not take (it had been closed while
    /// idle) goes out again on a new connection: it was never sent, so nothing is repeated.
    ///
    /// The connection is driven by the returned future, then by the response's body: read the
    /// body, or drop the response, before waiting on anything the exchange has yet to do.
    pub(crate) async fn send(
        &self,
        origin: &Origin,
        mut request: Request<Body>,
    ) -> Result<Response<ResponseBody>, H1Error> {
        let Some(pool) = self.pools.iter().find(|p| &p.origin == origin) else {
            return Err(H1Error::Connect {
                origin: origin.to_string(),
                message: "not an origin of this client".into(),
            });
        };
        request.headers_mut().insert(HOST, pool.host_header.clone());
        // Tells the connection when it is done with the body (see `Conn::body_done`).
        let body_done = Arc::new(AtomicBool::new(false));
        let mut request = request.map(|body| TrackedBody {
            inner: body,
            _done: BodyDone(Arc::clone(&body_done)),
        });
        loop {
            let (mut conn, reused) = match pool.checkout() {
                Some(conn) => (conn, true),
                None => (self.connect(pool).await?, false),
            };
            conn.body_done = Arc::clone(&body_done);
            let Conn { sender, io, .. } = &mut conn;
            let mut response = pin!(sender.try_send_request(request));
            let answered = poll_fn(|cx| io.poll_with(cx, |cx| response.as_mut().poll(cx))).await;
            match answered {
                Ok(response) => {
                    let pool = Arc::clone(pool);
                    return Ok(response.map(|incoming| ResponseBody {
                        incoming: Some(incoming),
                        conn: Some((conn, pool)),
                    }));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(H1Error::Http(e.into_error())),
                },
            }
        }
    }

    /// A new connection to `pool`'s origin.
    async fn connect(&self, pool: &Pool) -> Result<Conn, H1Error> {
        let origin = &pool.origin;
        let connect_error = |message: String| H1Error::Connect {
            origin: origin.to_string(),
            message,
        };
        let tcp = tokio::time::timeout(self.connect_timeout, tcp_connect(origin))
            .await
            .map_err(|_| {
                connect_error(format!(
                    "no connection within {} s",
                    self.connect_timeout.as_secs()
                ))
            })?
            .map_err(connect_error)?;
        let _ = tcp.set_nodelay(true);
        let io = if origin.tls {
            let tls = tokio::time::timeout(
                self.connect_timeout,
                self.tls.connect(pool.server_name.clone(), tcp),
            )
            .await
            .map_err(|_| H1Error::Tls {
                origin: origin.to_string(),
                message: format!("no handshake within {} s", self.connect_timeout.as_secs()),
            })?
            .map_err(|e| H1Error::Tls {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
            Stream::Tls(Box::new(tls))
        } else {
            Stream::Plain(tcp)
        };
        let activity = Arc::new(AtomicU64::new(0));
        let io = Io {
            stream: io,
            activity: Arc::clone(&activity),
        };
        // Flattened writes: headers and small chunks are copied into one buffer and written as
        // one TLS record, not queued as slices that rustls would seal one by one.
        let (sender, driver) = http1::Builder::new()
            .writev(false)
            .max_buf_size(WRITE_BUF_MAX)
            .handshake(TokioIo::new(io))
            .await?;
        Ok(Conn::new(sender, driver, activity))
    }
}

/// Connects to the first address of `origin` that answers. `localhost` is 127.0.0.1: the
/// runtime sidecar binds IPv4 only (docs/protocol.md §3.2).
async fn tcp_connect(origin: &Origin) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = if origin.host.eq_ignore_ascii_case("localhost") {
        vec![SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            origin.port,
        )]
    } else if let Ok(ip) = origin.host.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, origin.port)]
    } else {
        tokio::net::lookup_host((origin.host.as_str(), origin.port))
            .await
            .map_err(|e| format!("cannot resolve `{}`: {e}", origin.host))?
            .collect()
    };
    let mut last = format!("`{}` resolves to no address", origin.host);
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// A connection, with or without TLS, counting its reads and writes.
struct Io {
    stream: Stream,
    /// Bumped by every read or write that moved bytes (see [`Conn::activity`]).
    activity: Arc<AtomicU64>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Io {
    fn moved(&self) {
        self.activity.fetch_add(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if buf.filled().len() > before {
            this.moved();
        }
        polled
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.moved();
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Marks, when dropped, that the connection let go of a request's body: hyper drops it once
/// it was sent whole, or failed.
struct BodyDone(Arc<AtomicBool>);

impl Drop for BodyDone {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A request body that marks its end ([`BodyDone`]).
struct TrackedBody {
    inner: Body,
    _done: BodyDone,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body of `bytes` (or none when empty).
pub(crate) fn full(bytes: Bytes) -> Body {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body streamed from `stream`, one frame per item.
pub(crate) fn streamed<S>(stream: S) -> Body
where
    S: futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    use futures_util::TryStreamExt as _;
    http_body_util::StreamBody::new(stream.map_ok(hyper::body::Frame::data)).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;
    use crate::transport::{Trust, tls_config};

    const WAIT: Duration = Duration::from_secs(10);

    /// A plain-HTTP server answering `ok` to each request; with `one_per_connection` it closes
    /// the connection shortly after each answer **without** saying so (`Connection: close`), as
    /// a server does when its keep-alive timeout ends. Returns its origin and the connection count.
    async fn server(one_per_connection: bool) -> (Origin, Arc<AtomicUsize>) {
        server_answering(one_per_connection, b"ok".to_vec()).await
    }

    /// [`server`] answering `body` to each request.
    async fn server_answering(
        one_per_connection: bool,
        body: Vec<u8>,
    ) -> (Origin, Arc<AtomicUsize>) {
        let mut answer =
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
        answer.extend_from_slice(&body);
        let answer: Arc<[u8]> = answer.into();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let answer = Arc::clone(&answer);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let mut chunk = [0u8; 1024];
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            if tcp.write_all(&answer).await.is_err() {
                                return;
                            }
                            if one_per_connection {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        (Origin::of(&url).unwrap(), accepted)
    }

    fn client(origin: &Origin) -> H1Client {
        client_finishing_within(origin, Duration::from_secs(60))
    }

    fn client_finishing_within(origin: &Origin, finish_idle: Duration) -> H1Client {
        let tls = tls_config(Trust::Only(&[]), None).unwrap();
        H1Client::new(
            tls,
            [origin.clone()],
            Duration::from_secs(5),
            (Duration::from_secs(60), 4),
            finish_idle,
        )
        .unwrap()
    }

    async fn get(client: &H1Client, origin: &Origin) -> Bytes {
        let mut request = Request::new(full(Bytes::new()));
        *request.uri_mut() = "/job".parse().unwrap();
        let response = tokio::time::timeout(WAIT, client.send(origin, request))
            .await
            .unwrap()
            .unwrap();
        crate::transport::watchdog::read_incoming(response.into_body(), WAIT)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn sequential_requests_share_one_keep_alive_connection() {
        let (origin, accepted) = server(false).await;
        let client = client(&origin);
        for _ in 0..5 {
            assert_eq!(get(&client, &origin).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_replaced_without_an_error() {
        let (origin, accepted) = server(true).await;
        let client = client(&origin);
        for _ in 0..3 {
            assert_eq!(get(&client, &origin).await, "ok");
            // Longer than the server keeps the connection after answering.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    async fn answered(client: &H1Client, origin: &Origin) -> Response<ResponseBody> {
        let mut request = Request::new(full(Bytes::new()));
        *request.uri_mut() = "/result".parse().unwrap();
        tokio::time::timeout(WAIT, client.send(origin, request))
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn a_response_dropped_unread_gives_its_connection_back() {
        let (origin, accepted) = server_answering(false, b"{\"status\":\"ok\"}".to_vec()).await;
        let client = client(&origin);
        for _ in 0..5 {
            let response = answered(&client, &origin).await;
            assert_eq!(response.status(), 200);
            drop(response);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unread_body_larger_than_the_drain_limit_closes_its_connection() {
        let (origin, accepted) = server_answering(false, vec![b'x'; DRAIN_LIMIT * 2]).await;
        let client = client(&origin);
        for _ in 0..3 {
            drop(answered(&client, &origin).await);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        // Read whole, the same body keeps its connection.
        assert_eq!(get(&client, &origin).await.len(), DRAIN_LIMIT * 2);
        assert_eq!(get(&client, &origin).await.len(), DRAIN_LIMIT * 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
    }

    /// A server that answers the one request it accepts as soon as its headers arrived (before
    /// its body), then hands the connection and what it read so far to `rest`. Its origin.
    async fn answering_early<F, Fut>(rest: F) -> Origin
    where
        F: FnOnce(TcpStream, Vec<u8>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut chunk = [0u8; 1024];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = tcp.read(&mut chunk).await.unwrap();
                seen.extend_from_slice(&chunk[..n]);
            }
            tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            rest(tcp, seen).await;
        });
        let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        Origin::of(&url).unwrap()
    }

    /// POSTs `body`, expects the 200 and lets go of the response at once.
    async fn post_and_let_go(client: &H1Client, origin: &Origin, body: Body) {
        let mut request = Request::new(body);
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = "/result".parse().unwrap();
        let response = tokio::time::timeout(WAIT, client.send(origin, request))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    /// The runtime answers a POST before its (slow, streamed) body is sent: the rest of the body
    /// still goes out, on a task of its own, after the caller let go of the response.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_still_going_out_after_an_early_answer_is_finished_without_its_caller() {
        use futures_util::StreamExt as _;
        let (got_tx, got_rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
        let origin = answering_early(|mut tcp, mut seen| async move {
            let mut chunk = [0u8; 1024];
            // The chunked body ends with `0\r\n\r\n`.
            while !seen.ends_with(b"0\r\n\r\n") {
                let n = tcp.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the connection closed before the body ended");
                seen.extend_from_slice(&chunk[..n]);
            }
            let _ = got_tx.send(seen);
        })
        .await;
        // The body takes 600 ms in all, pausing 200 ms at most: an idle limit of 400 ms must
        // not cut it (a cap would).
        let client = client_finishing_within(&origin, Duration::from_millis(400));
        let parts =
            futures_util::stream::iter(["first;", "second;", "third"]).then(|part| async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok::<_, std::io::Error>(Bytes::from_static(part.as_bytes()))
            });
        post_and_let_go(&client, &origin, streamed(parts)).await;
        let seen = tokio::time::timeout(WAIT, got_rx).await.unwrap().unwrap();
        let seen = String::from_utf8_lossy(&seen);
        for part in ["first;", "second;", "third"] {
            assert!(seen.contains(part), "{part} missing from {seen}");
        }
    }

    /// The runtime answers early and then stops reading the body: the connection finishing on
    /// its own is given up on after the idle limit, not kept forever.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_finishing_on_its_own_is_dropped_once_it_moves_nothing() {
        const BODY: usize = 16 << 20;
        let (got_tx, got_rx) = tokio::sync::oneshot::channel::<usize>();
        let origin = answering_early(|mut tcp, seen| async move {
            // Stop reading for longer than the client's idle limit, then take what is left.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let mut chunk = vec![0u8; 64 * 1024];
            let mut total = seen.len();
            while let Ok(n) = tcp.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                total += n;
            }
            let _ = got_tx.send(total);
        })
        .await;
        let client = client_finishing_within(&origin, Duration::from_millis(300));
        // Streamed (as result streams are): hyper goes on sending it after the answer.
        let chunk = Bytes::from(vec![b'x'; BODY / 64]);
        let chunks = futures_util::stream::iter((0..64).map(move |_| Ok(chunk.clone())));
        post_and_let_go(&client, &origin, streamed(chunks)).await;
        let total = tokio::time::timeout(WAIT, got_rx).await.unwrap().unwrap();
        assert!(
            total < BODY,
            "the stalled connection was kept until the whole body went out ({total} bytes)"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error_naming_the_origin() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let origin = Origin::of(&url).unwrap();
        let client = client(&origin);
        let mut request = Request::new(full(Bytes::new()));
        *request.uri_mut() = "/job".parse().unwrap();
        let err = client.send(&origin, request).await.unwrap_err();
        assert!(err.is_connect(), "{err}");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
    }
}
