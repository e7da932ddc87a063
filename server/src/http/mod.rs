//! The HTTP API and the dashboard.
//!
//! - [`paths`]: every route path, in one place.
//! - [`error`]: [`ApiError`], the one error type handlers return; clients get `{"error": "..."}`.
//! - [`api`]: the `/api/*` handlers.
//! - [`dashboard`]: the built dashboard with an SPA fallback to `index.html`.

pub mod api;
pub mod dashboard;
pub mod error;
pub mod paths;

use axum::Router;
use axum::routing::get;

pub use error::ApiError;

use crate::AppState;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(paths::CONFIG, get(api::config))
        .route(paths::HEALTH, get(api::health))
        .fallback(api::not_found);
    Router::new()
        .nest(paths::API, api)
        .fallback_service(dashboard::service(&state.config.dist_dir))
        .with_state(state)
}
