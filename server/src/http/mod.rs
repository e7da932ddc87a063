//! The HTTP API and the dashboard.
//!
//! - [`paths`]: every route path, in one place.
//! - [`error`]: [`ApiError`], the one error type handlers return; clients get `{"error": "..."}`,
//!   and so does every other refusal ([`error::json_errors`]).
//! - [`api`]: `/api/config` and the JSON 404 for unknown API paths.
//! - [`data`]: devices, history, logs, CSV export, the Flux proxy.
//! - [`ops`]: health, metrics, rejected messages.
//! - [`dashboard`]: the built dashboard with an SPA fallback to `index.html`, and its caching.
//! - [`limits`]: the per-client rate limit on `/api/*`, the request body limit, and what the
//!   data routes' concurrency limit and the request timeout answer.
//! - [`security`]: the headers every answer carries (Content-Security-Policy, …) and the
//!   redirect of paths with `//`.
//! - [`accept`]: the accept loop: header-read and write-stall timeouts, bounded shutdown.
//!
//! CORS: without `--cors-allowed-origins` no CORS header is sent, so browsers let only pages
//! of the server's own origin read its answers.

pub mod accept;
pub mod api;
pub mod dashboard;
pub mod data;
pub mod error;
pub mod limits;
pub mod ops;
pub mod paths;
pub mod security;

use std::sync::Arc;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use error::ApiError;

use crate::AppState;

/// The whole HTTP surface.
///
/// From the outside in: the security headers, compression (gzip or br, as the client
/// accepts), the redirect of paths with `//`, JSON for every refusal, CORS, the request
/// timeout, the body limit; then per route: the rate limit on `/api/*`, and the concurrency
/// limit shared by the data routes.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let metrics = state.metrics.clone();
    // Data routes: one limit shared by all of them; past it, refused at once (load shedding)
    // rather than queued.
    let mut data = Router::new()
        .route(paths::DEVICES, get(data::devices))
        .route(paths::HISTORY, get(data::history))
        .route(paths::LOGS, get(data::logs))
        .route(paths::EVENTS, get(data::events))
        .route(paths::ALERTS, get(data::alerts))
        .route(paths::EXPORT_CSV, get(data::export_csv));
    if config.flux_proxy {
        data = data.route(paths::FLUX, post(data::flux));
    }
    // Layers added later run first. The concurrency limit is innermost; `read_body` outside it
    // reads the whole body (bounded in size and time) before a slot is taken, so a client
    // that sends slowly holds none.
    let data = data
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new({
                    let metrics = metrics.clone();
                    move |e| limits::overloaded(metrics.clone(), e)
                }))
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::new(
                    config.http_data_concurrency as usize,
                )),
        )
        .layer(from_fn_with_state(
            config.http_body_timeout,
            limits::read_body,
        ));
    // Off, the Flux proxy answers at once: no body read, no data slot.
    let flux_off =
        (!config.flux_proxy).then(|| Router::new().route(paths::FLUX, post(data::flux_off)));
    let api = Router::new()
        .route(paths::CONFIG, get(api::config))
        .route(paths::HEALTH, get(ops::health))
        .route(paths::INGEST_REJECTED, get(ops::rejected))
        .route(paths::INGEST_REJECTED_DEVICES, get(ops::rejected_by_device))
        .merge(data)
        .merge(flux_off.unwrap_or_default())
        .fallback(api::not_found)
        .layer(from_fn_with_state(state.clone(), limits::rate_limit));
    let mut router = Router::new()
        .nest(paths::API, api)
        .route(paths::METRICS, get(ops::metrics))
        .fallback_service(dashboard::service(&config.dist_dir))
        .layer(DefaultBodyLimit::max(limits::MAX_BODY_BYTES));
    let timeout = config.http_request_timeout;
    if !timeout.is_zero() {
        // Until the answer starts: a CSV export or a Flux answer streams on after it.
        router = router.layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new({
                    let metrics = metrics.clone();
                    move |e| limits::timed_out(metrics.clone(), timeout, e)
                }))
                .timeout(timeout),
        );
    }
    if let Some(cors) = cors(&config.cors_allowed_origins) {
        router = router.layer(cors);
    }
    let policy = Arc::new(security::BrowserPolicy::new(config.clone()));
    router
        .layer(from_fn(error::json_errors))
        .layer(from_fn(security::collapse_slashes))
        .layer(CompressionLayer::new())
        .layer(from_fn_with_state(policy, security::security_headers))
        .with_state(state)
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
