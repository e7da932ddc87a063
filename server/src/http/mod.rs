//! The HTTP API and the dashboard.
//!
//! - [`paths`]: every route path, in one place.
//! - [`error`]: [`ApiError`], the one error type handlers return; clients get `{"error": "..."}`.
//! - [`api`]: `/api/config` and the JSON 404 for unknown API paths.
//! - [`data`]: devices, history, logs, CSV export, the Flux proxy.
//! - [`ops`]: health, metrics, rejected messages.
//! - [`dashboard`]: the built dashboard with an SPA fallback to `index.html`.
//! - [`limits`]: the per-client rate limit on `/api/*` and the request body limit.
//!
//! CORS: without `--cors-allowed-origins` no CORS header is sent, so browsers let only pages
//! of the server's own origin read its answers.

pub mod api;
pub mod dashboard;
pub mod data;
pub mod error;
pub mod limits;
pub mod ops;
pub mod paths;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};

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
        .route(paths::INGEST_REJECTED_DEVICES, get(ops::rejected_by_device))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::rate_limit,
        ));
    let router = Router::new()
        .nest(paths::API, api)
        .route(paths::METRICS, get(ops::metrics))
        .fallback_service(dashboard::service(&state.config.dist_dir))
        .layer(DefaultBodyLimit::max(limits::MAX_BODY_BYTES));
    let router = match cors(&state.config.cors_allowed_origins) {
        Some(layer) => router.layer(layer),
        None => router,
    };
    router.with_state(state)
}

/// The CORS layer for the configured origins (`*` for any); `None` for same-origin only.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<&String> = origins.iter().filter(|o| !o.is_empty()).collect();
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| *o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE])
            .expose_headers([header::CONTENT_DISPOSITION, header::RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(3600)),
    )
}
