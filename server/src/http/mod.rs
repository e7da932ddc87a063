//! The HTTP API and the dashboard.
//!
//! - [`paths`]: every route path, in one place.
//! - [`error`]: [`ApiError`], the one error type handlers return; clients get `{"error": "..."}`.
//! - [`api`]: `/api/config` and the JSON 404 for unknown API paths.
//! - [`data`]: devices, history, logs, CSV export, the Flux proxy.
//! - [`ops`]: health, metrics, rejected messages.
//! - [`dashboard`]: the built dashboard with an SPA fallback to `index.html`.

pub mod api;
pub mod dashboard;
pub mod data;
pub mod error;
pub mod ops;
pub mod paths;

use axum::Router;
use axum::routing::{get, post};

pub use error::ApiError;

use crate::AppState;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(paths::CONFIG, get(api::config))
        .route(paths::HEALTH, get(ops::health))
        .route(paths::DEVICES, get(data::devices))
        .route(paths::HISTORY, get(data::history))
        .route(paths::LOGS, get(data::logs))
        .route(paths::EXPORT_CSV, get(data::export_csv))
        .route(paths::FLUX, post(data::flux))
        .route(paths::INGEST_REJECTED, get(ops::rejected))
        .fallback(api::not_found);
    Router::new()
        .nest(paths::API, api)
        .route(paths::METRICS, get(ops::metrics))
        .fallback_service(dashboard::service(&state.config.dist_dir))
        .with_state(state)
}
