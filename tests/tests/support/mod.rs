//! Small programmable HTTPS servers for the transport tests (timeouts, redirects): axum routers
//! served over real TLS with a generated CA, recording what each request carried.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use cmod_local::https::{ServerHandle, serve_https_on};
use cmod_local::tls::LocalCa;

/// Every wait in these tests is bounded by this.
pub(crate) const LIMIT: Duration = Duration::from_secs(60);

pub(crate) async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test step timed out")
}

/// What one request carried.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    /// Path and query.
    pub(crate) uri: String,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
}

/// A recording of requests, shared with the handlers.
#[derive(Clone, Default)]
pub(crate) struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    /// Records a request (its body read whole).
    pub(crate) async fn record(&self, req: Request<axum::body::Body>) -> Seen {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let seen = Seen {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        };
        self.0.lock().unwrap().push(seen.clone());
        seen
    }
}

/// A generated CA, written to `dir/ca.pem` for `DEFAULT_CA_PATH`.
pub(crate) struct Tls {
    pub(crate) ca: LocalCa,
    pub(crate) ca_path: String,
}

impl Tls {
    pub(crate) fn new(dir: &Path) -> Tls {
        let ca = LocalCa::generate("cmod transport tests").unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, ca.ca_pem()).unwrap();
        Tls {
            ca,
            ca_path: path.display().to_string(),
        }
    }

    /// Serves `router` over HTTPS on a free loopback port. With `small_buffer`, the listening
    /// socket's receive buffer is small, so a server that stops reading stops the client soon.
    pub(crate) async fn serve(&self, router: Router, small_buffer: bool) -> ServerHandle {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if small_buffer {
            socket.set_recv_buffer_size(16 * 1024).unwrap();
        }
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let listener = socket.listen(64).unwrap();
        serve_https_on(listener, self.ca.server_config().unwrap(), router).unwrap()
    }
}

/// `https://localhost:<port>`.
pub(crate) fn origin(server: &ServerHandle) -> String {
    format!("https://localhost:{}", server.addr().port())
}
