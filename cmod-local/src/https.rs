//! Serving an axum [`Router`] over HTTPS on loopback, with a handle to stop it.
//!
//! Every local server (the compute-module runtime, the local Foundry) goes through
//! [`serve_https`], so they all speak real TLS with the run's generated CA.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A response extension: a handler that returns a response carrying it makes the server close
/// the connection at once instead of sending the response (fault injection: a connection cut
/// mid-request). Honoured by the HTTPS servers of this crate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AbortConnection;

/// A running server. Dropping the handle does not stop the server; call
/// [`ServerHandle::shutdown`].
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// The bound address (always on loopback).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and closes open ones.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds `127.0.0.1:port` (0 = any free port) and serves `router` over HTTPS (HTTP/1.1) with
/// `tls`, until [`ServerHandle::shutdown`].
pub async fn serve_https(
    port: u16,
    tls: Arc<ServerConfig>,
    router: Router,
) -> std::io::Result<ServerHandle> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    serve_https_on(listener, tls, router)
}

/// Like [`serve_https`], on an already-bound listener.
pub fn serve_https_on(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
) -> std::io::Result<ServerHandle> {
    serve(listener, tls, router, None)
}

/// Like [`serve_https_on`], with a `gate`: while it reads `true`, the server behaves as if it
/// were down. New connections are closed right after `accept` (before the TLS handshake), and a
/// request on an already-open connection aborts that connection without a response. Clients see
/// transport errors, never an HTTP status.
///
/// Used for fault injection: the gate closes the server at once, synchronously, while the
/// listener itself is closed a moment later by whoever owns the [`ServerHandle`].
pub fn serve_https_gated(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    gate: Arc<AtomicBool>,
) -> std::io::Result<ServerHandle> {
    serve(listener, tls, router, Some(gate))
}

fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    gate: Option<Arc<AtomicBool>>,
) -> std::io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let (stop, stop_rx) = watch::channel(false);
    let acceptor = TlsAcceptor::from(tls);
    let task = tokio::spawn(accept_loop(listener, acceptor, router, stop_rx, gate));
    Ok(ServerHandle { addr, stop, task })
}

fn is_closed(gate: Option<&AtomicBool>) -> bool {
    gate.is_some_and(|g| g.load(Ordering::Acquire))
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    mut stop: watch::Receiver<bool>,
    gate: Option<Arc<AtomicBool>>,
) {
    loop {
        let (tcp, _peer) = tokio::select! {
            _ = stopped(&mut stop) => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if is_closed(gate.as_deref()) {
            drop(tcp);
            continue;
        }
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let gate = gate.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake failed: {e}");
                    return;
                }
                Err(_) => return,
            };
            let inner = TowerToHyperService::new(router);
            let service = hyper::service::service_fn(move |req| {
                let call = (!is_closed(gate.as_deref())).then(|| inner.call(req));
                async move {
                    match call {
                        Some(call) => {
                            let Ok(response) = call.await;
                            if response.extensions().get::<AbortConnection>().is_some() {
                                return Err(std::io::Error::other(
                                    "connection aborted without a response (fault injection)",
                                ));
                            }
                            Ok(response)
                        }
                        None => Err(std::io::Error::other(
                            "server is refusing connections (fault injection)",
                        )),
                    }
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!("connection ended with error: {e}");
                    }
                }
                _ = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        });
    }
}

/// Serves `router` over plain HTTP on `127.0.0.1:port` (used for the developer-facing invoke
/// API, so `curl` needs no CA flags). Stops with the returned handle.
pub async fn serve_http(port: u16, router: Router) -> std::io::Result<ServerHandle> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            stopped(&mut stop_rx).await;
        });
        if let Err(e) = server.await {
            tracing::warn!("HTTP server ended with error: {e}");
        }
    });
    Ok(ServerHandle { addr, stop, task })
}

/// Completes once `rx` reads `true` (or its sender is gone).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
