//! The accept loop: the only code that holds the listening socket and the clients' sockets.
//!
//! Each connection is served by hyper's HTTP/1 with
//! - a header-read timeout: a client that sends a request's head slowly (slowloris), or keeps
//!   an idle keep-alive connection open, is disconnected after [`Timeouts::header_read`];
//! - a write-stall timeout: a client that stops reading an answer (a long CSV export, say) is
//!   disconnected once a write has waited [`WRITE_STALL`];
//! - the peer's address as `ConnectInfo<SocketAddr>`, which the per-client rate limit reads.
//!
//! `axum::serve` exposes neither timeout, hence this loop (hyper-util's pieces, as
//! `axum::serve` uses them).
//!
//! Shutdown is bounded: once the shutdown future completes the listener closes, every
//! connection is asked to finish (an idle one closes at once, one mid-answer after it), and
//! after [`Timeouts::shutdown_grace`] those still open are dropped, so [`serve_connections`]
//! always returns.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_io_timeout::TimeoutStream;
use tower::ServiceExt as _;

/// How long a write to a client may wait for the client to read.
pub const WRITE_STALL: Duration = Duration::from_secs(60);

/// The connection timeouts; `None` turns one off.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Longest time to receive a request's head, and to wait for the next request on an idle
    /// connection.
    pub header_read: Option<Duration>,
    /// After shutdown is asked for, how long open connections get before they are dropped.
    pub shutdown_grace: Duration,
}

/// Serves `app` on every connection `listener` accepts until `shutdown` completes; then
/// lets open connections finish for at most `timeouts.shutdown_grace` and returns.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Finished connections are reaped as they end, so the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        accept_failed(&e).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let mut stream = TimeoutStream::new(stream);
                stream.set_write_timeout(Some(WRITE_STALL));
                let service = app.clone().map_request(move |mut req: axum::http::Request<Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                });
                let connection = http.serve_connection(
                    TokioIo::new(Box::pin(stream)),
                    TowerToHyperService::new(service),
                );
                let connection = graceful.watch(connection);
                connections.spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    let open = connections.len();
    tracing::info!(open, "HTTP server stopping; open connections get to finish");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(timeouts.shutdown_grace) => {
            tracing::warn!(
                open = connections.len(),
                grace = ?timeouts.shutdown_grace,
                "connections still open after the grace period; dropping them"
            );
        }
    }
    connections.shutdown().await;
}

/// After a failed `accept`: per-connection errors are ignored; others (out of file
/// descriptors) are logged and the loop pauses a moment instead of spinning.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
