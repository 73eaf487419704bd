//! The task that owns the servers: takes the runtime server down and back up for
//! [`Faults::refuse_connections_for`](super::Faults::refuse_connections_for), and stops
//! everything on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::state::State;
use crate::https::{ServerHandle, serve_https_gated};

/// How often a failed re-bind of the runtime port is retried.
const REBIND_RETRY: Duration = Duration::from_millis(100);

/// Requests to the supervisor.
#[derive(Debug)]
pub(crate) enum Command {
    /// Go down (listener closed, connections dropped) for this long.
    Refuse(Duration),
    /// Stop both servers; answer on the channel when done.
    Shutdown(oneshot::Sender<()>),
}

pub(crate) struct Supervisor {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: Arc<ServerConfig>,
    pub(crate) router: Router,
    pub(crate) gate: Arc<AtomicBool>,
    pub(crate) state: Arc<State>,
    pub(crate) server: Option<ServerHandle>,
    pub(crate) invoke: Option<ServerHandle>,
    /// When the runtime server is down: when to listen again.
    pub(crate) reopen_at: Option<Instant>,
}

impl Supervisor {
    /// Serves the runtime on `listener`, unless the gate is closed (start "down").
    pub(crate) fn start_server(&mut self, listener: TcpListener) -> std::io::Result<()> {
        let handle = serve_https_gated(
            listener,
            self.tls.clone(),
            self.router.clone(),
            self.gate.clone(),
        )?;
        self.server = Some(handle);
        Ok(())
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut rebind_failures: u32 = 0;
        loop {
            let reopen_at = self.reopen_at;
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(Command::Refuse(d)) => self.go_down(d).await,
                    Some(Command::Shutdown(done)) => {
                        self.stop().await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.stop().await;
                        return;
                    }
                },
                _ = sleep_until(reopen_at), if reopen_at.is_some() => {
                    match TcpListener::bind(self.addr).await.and_then(|l| self.start_server(l)) {
                        Ok(()) => {
                            self.reopen_at = None;
                            self.gate.store(false, Ordering::Release);
                            rebind_failures = 0;
                            tracing::info!(addr = %self.addr, "local runtime accepts connections again");
                        }
                        Err(e) => {
                            if rebind_failures.is_multiple_of(50) {
                                tracing::warn!(addr = %self.addr, "could not listen again on the runtime port, retrying: {e}");
                            }
                            rebind_failures = rebind_failures.saturating_add(1);
                            self.reopen_at = Some(Instant::now() + REBIND_RETRY);
                        }
                    }
                }
            }
        }
    }

    async fn go_down(&mut self, d: Duration) {
        self.gate.store(true, Ordering::Release);
        self.state.interrupt_polls();
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        let until = Instant::now() + d;
        self.reopen_at = Some(self.reopen_at.map_or(until, |at| at.max(until)));
        tracing::info!(addr = %self.addr, for_ = ?d, "fault injection: local runtime refuses connections");
    }

    async fn stop(&mut self) {
        self.state.close();
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        if let Some(invoke) = self.invoke.take() {
            invoke.shutdown().await;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
