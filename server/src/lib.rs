//! Open Grid Monitor server: one binary that persists what devices publish and serves the HTTP
//! API and the built dashboard.
//!
//! Layout:
//! - [`config`]: typed configuration from flags and `OGM_*` environment variables.
//! - [`http`]: the axum router: `/api/*` routes, JSON errors, and the dashboard with SPA fallback.
//!
//! [`run`] takes the config and a shutdown future; `main.rs` only parses and calls it.

pub mod config;
pub mod http;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

pub use config::Config;

/// State shared by every request handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
}

impl AppState {
    pub fn new(config: Config) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

/// Binds the HTTP address and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding {}", config.http_addr))?;
    serve(listener, AppState::new(config), shutdown).await
}

/// Serves on an already-bound listener (tests bind `127.0.0.1:0`).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    if !state.config.dist_dir.join("index.html").exists() {
        tracing::warn!(dist_dir = %state.config.dist_dir.display(), "dashboard not built; run `trunk build --release`");
    }
    tracing::info!(%addr, "serving HTTP API and dashboard");
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("HTTP server stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}
