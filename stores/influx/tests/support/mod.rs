//! What the stand-in tests share: an axum app served on a loopback port for the test's
//! duration, a free address, and the request's `Authorization` header.

#![allow(dead_code)] // each test file uses its own part

pub(crate) mod flux_parser;

use std::net::SocketAddr;

use axum::Router;
use axum::http::{HeaderMap, header};

/// An app served on 127.0.0.1; dropping it stops serving.
pub(crate) struct Served {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Served {
    /// Serves `app` on `addr` (port 0: any free port).
    pub(crate) async fn start(addr: SocketAddr, app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, task }
    }

    /// Serves `app` on any free loopback port.
    pub(crate) async fn on_free_port(app: Router) -> Self {
        Self::start(SocketAddr::from(([127, 0, 0, 1], 0)), app).await
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A loopback address nothing listens on (free a moment ago).
pub(crate) fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The request's `Authorization` header, if it is text.
pub(crate) fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}
