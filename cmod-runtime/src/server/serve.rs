//! The HTTP server of server mode: listeners on loopback, one task per connection (HTTP/1.1,
//! hyper), and one request = one call of a function, answered with exactly one response.
//!
//! * `POST /<function>` with the inputs as one JSON object (an empty body is `{}`): `200` with
//!   the result as JSON — for a streaming function every item, as one JSON array.
//! * Errors answer with the functions-mode error body (`{"error": {"kind", "message"}}`,
//!   `functions/outcome.rs`) and a status by kind: `400` `InvalidInput` (also a body that is not
//!   JSON, or a method other than POST: `405`), `404` `UnknownFunction`, `503` `Shutdown`, `500`
//!   for `FunctionError`, `Panic` and `SerializationError`.
//! * At most `MAX_CONCURRENT_TASKS` calls run at once; further requests wait for a slot.
//! * Shutdown (`functions/drain.rs`): stop accepting, let each connection finish its request
//!   and close, tell running functions (`Context::cancelled`), wait the grace period, then end
//!   the rest with `503 Shutdown`.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::ServerConfig;
use crate::context::Context;
use crate::functions::job::{call_function, shutdown_error, unknown_function};
use crate::functions::{ErrorKind, JobError, Output, Registry};
use crate::transport::watchdog::read_incoming;

/// How long a request body may make no progress.
const BODY_IDLE: Duration = Duration::from_secs(120);
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Listens on `127.0.0.1:port`, and on `[::1]:port` when the host has IPv6 loopback (the
/// document's server is `http://localhost:<port>`, which may resolve to either).
pub(crate) async fn bind(port: u16) -> Result<Vec<TcpListener>, crate::Error> {
    let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .map_err(|source| crate::Error::Io {
            context: format!(
                "server mode cannot listen on 127.0.0.1:{port} ({}); choose another port",
                crate::env::vars::CMOD_SERVER_PORT
            ),
            source,
        })?;
    let mut listeners = vec![v4];
    match TcpListener::bind((Ipv6Addr::LOCALHOST, port)).await {
        Ok(v6) => listeners.push(v6),
        Err(e) => tracing::debug!("not listening on [::1]:{port}: {e}"),
    }
    Ok(listeners)
}

/// What every connection shares.
struct Shared {
    registry: Registry,
    slots: Semaphore,
    /// Becomes `true` when shutdown starts: connections close after their request, functions
    /// see it through their context.
    stop: watch::Receiver<bool>,
    /// Becomes `true` when the grace period is over: running calls end with `Shutdown`.
    hard_stop: watch::Receiver<bool>,
    next_request: AtomicU64,
}

/// Server mode's HTTP server.
#[derive(Debug)]
pub(crate) struct Server {
    registry: Registry,
    config: ServerConfig,
}

impl Server {
    pub(crate) fn new(registry: Registry, config: ServerConfig) -> Self {
        Self { registry, config }
    }

    /// Serves on `listeners` until `shutdown` completes, then drains.
    pub(crate) async fn run(
        self,
        listeners: Vec<TcpListener>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> crate::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (hard_tx, hard_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            registry: self.registry,
            slots: Semaphore::new(self.config.max_concurrent_tasks),
            stop: stop_rx,
            hard_stop: hard_rx,
            next_request: AtomicU64::new(1),
        });
        tracing::info!(
            functions = shared.registry.len(),
            port = self.config.port,
            max_concurrent_tasks = self.config.max_concurrent_tasks,
            "starting compute module in server mode"
        );
        tokio::pin!(shutdown);
        let mut connections = JoinSet::new();
        let mut backoff =
            crate::transport::Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            let accept =
                futures_util::future::select_all(listeners.iter().map(|l| Box::pin(l.accept())));
            let accepted = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                (accepted, _, _) = accept => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    backoff.reset();
                    connections.spawn(serve_connection(Arc::clone(&shared), stream));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    let delay = backoff.next_delay();
                    tracing::warn!("cannot accept a connection: {e}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
            }
            while connections.try_join_next().is_some() {}
        }
        drop(listeners);
        crate::functions::drain::drain(connections, &stop_tx, &hard_tx, self.config.grace_period)
            .await;
        Ok(())
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut stop = shared.stop.clone();
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(&shared, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let before_stop = tokio::select! {
        served = connection.as_mut() => Some(served),
        _ = stop.wait_for(|s| *s) => None,
    };
    let served = match before_stop {
        Some(served) => served,
        None => {
            // Finish the request under way (if any), then close.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = served {
        tracing::debug!("connection ended: {e}");
    }
}

/// Answers one request: exactly one response, logged like a job.
async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let id = format!(
        "http-{}",
        shared.next_request.fetch_add(1, Ordering::Relaxed)
    );
    let path = request.uri().path();
    let name = path.strip_prefix('/').unwrap_or(path).to_owned();
    let span = tracing::info_span!("job", job_id = %id, function = %name);
    async {
        let started = std::time::Instant::now();
        tracing::debug!(method = %request.method(), "call received");
        let outcome = respond(shared, request, &name, id, tracing::Span::current()).await;
        match &outcome {
            Ok(_) => tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "job succeeded"
            ),
            Err(Failure { error, .. }) => tracing::info!(
                error_kind = %error.kind(),
                error_message = error.message(),
                "job failed"
            ),
        }
        match outcome {
            Ok(body) => response(StatusCode::OK, body),
            Err(Failure { status, error }) => {
                let mut r = response(status, Bytes::from(error.to_result_body()));
                if status == StatusCode::METHOD_NOT_ALLOWED {
                    r.headers_mut()
                        .insert(ALLOW, HeaderValue::from_static("POST"));
                }
                r
            }
        }
    }
    .instrument(span)
    .await
}

/// An error result and its HTTP status.
struct Failure {
    status: StatusCode,
    error: JobError,
}

impl From<JobError> for Failure {
    fn from(error: JobError) -> Self {
        Self {
            status: status(error.kind()),
            error,
        }
    }
}

/// The HTTP status of an error result. The OpenAPI document declares only `200` (Foundry
/// accepts one response code per operation); an error is any other status, with the error body.
fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::UnknownFunction => StatusCode::NOT_FOUND,
        ErrorKind::Shutdown => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Routes, reads, decodes, calls and encodes: the result body, or the error to answer with.
async fn respond(
    shared: &Shared,
    request: Request<Incoming>,
    name: &str,
    id: String,
    span: tracing::Span,
) -> Result<Bytes, Failure> {
    let Some(def) = shared.registry.get(name) else {
        return Err(unknown_function(&shared.registry, name).into());
    };
    if request.method() != Method::POST {
        return Err(Failure {
            status: StatusCode::METHOD_NOT_ALLOWED,
            error: JobError::new(
                ErrorKind::InvalidInput,
                format!(
                    "`{} /{name}`: functions are called with POST and the inputs as a JSON object",
                    request.method()
                ),
            ),
        });
    }
    let auth_header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = read_incoming(request.into_body(), BODY_IDLE)
        .await
        .map_err(|e| JobError::new(ErrorKind::InvalidInput, e.to_string()))?;
    let text = String::from_utf8(Vec::from(body)).map_err(|_| {
        JobError::new(
            ErrorKind::InvalidInput,
            "the request body is not UTF-8 text",
        )
    })?;
    let text = if text.trim().is_empty() {
        "null".to_owned()
    } else {
        text
    };
    let query = serde_json::value::RawValue::from_string(text).map_err(|e| {
        JobError::new(
            ErrorKind::InvalidInput,
            format!("the request body is not JSON: {e}"),
        )
    })?;

    let mut hard_stop = shared.hard_stop.clone();
    let _slot = tokio::select! {
        slot = shared.slots.acquire() => slot.map_err(|_| shutdown_error())?,
        _ = hard_stop.wait_for(|s| *s) => return Err(shutdown_error().into()),
    };
    tracing::debug!("call started");
    let ctx = Context::builder(id)
        .function_name(name)
        .auth_header(auth_header)
        .shutdown_signal(shared.stop.clone())
        .build();
    let output = call_function(def, ctx, query, span, shared.hard_stop.clone()).await?;
    match output {
        Output::Json(bytes) => Ok(Bytes::from(bytes)),
        Output::Stream(items) => {
            // One JSON array of every item; an error item is the call's error (never a prefix).
            let collect = async {
                let mut items = items;
                let mut array = vec![b'['];
                while let Some(item) = items.next().await {
                    if array.len() > 1 {
                        array.push(b',');
                    }
                    array.extend_from_slice(&item?);
                }
                array.push(b']');
                Ok::<_, JobError>(Bytes::from(array))
            };
            let collected = tokio::select! {
                collected = collect => collected,
                _ = hard_stop.wait_for(|s| *s) => Err(shutdown_error()),
            };
            Ok(collected?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Sends a request whose body is `content-length: 8`, written in `chunks` with `pause`
    /// between them, to a hyper connection whose service reads the body with an idle limit of
    /// 1 s; returns what the service saw (the body, or the error).
    async fn read_slowly(chunks: &[&[u8]], pause: Duration) -> String {
        let (client, server) = tokio::io::duplex(1024);
        let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
            let seen = match read_incoming(request.into_body(), Duration::from_secs(1)).await {
                Ok(body) => String::from_utf8_lossy(&body).into_owned(),
                Err(e) => e.to_string(),
            };
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(seen))))
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), service);
        let serving = tokio::spawn(connection);
        let (mut read, mut write) = tokio::io::split(client);
        write
            .write_all(b"POST /f HTTP/1.1\r\nhost: x\r\ncontent-length: 8\r\n\r\n")
            .await
            .unwrap();
        for chunk in chunks {
            tokio::time::sleep(pause).await;
            write.write_all(chunk).await.unwrap();
        }
        let mut response = vec![0; 1024];
        let n = read.read(&mut response).await.unwrap();
        serving.abort();
        let response = String::from_utf8_lossy(&response[..n]).into_owned();
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or(response)
    }

    #[tokio::test(start_paused = true)]
    async fn request_bodies_have_an_idle_limit_not_a_total_one() {
        // 8 s in all, but never 1 s without progress.
        let slow: Vec<&[u8]> = vec![b"a"; 8];
        assert_eq!(
            read_slowly(&slow, Duration::from_millis(900)).await,
            "aaaaaaaa"
        );
        // Stops after 2 of 8 bytes.
        let seen = read_slowly(&[b"ab"], Duration::ZERO).await;
        assert_eq!(seen, "the request body made no progress for 1s");
    }

    #[test]
    fn statuses_separate_bad_input_from_failures() {
        assert_eq!(status(ErrorKind::InvalidInput), StatusCode::BAD_REQUEST);
        assert_eq!(status(ErrorKind::UnknownFunction), StatusCode::NOT_FOUND);
        assert_eq!(status(ErrorKind::Shutdown), StatusCode::SERVICE_UNAVAILABLE);
        for kind in [
            ErrorKind::FunctionError,
            ErrorKind::Panic,
            ErrorKind::SerializationError,
        ] {
            assert_eq!(status(kind), StatusCode::INTERNAL_SERVER_ERROR);
        }
    }
}
