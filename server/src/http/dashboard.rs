//! The built dashboard (Trunk's `dist/`): files as they are, any other path gets `index.html`
//! so that links into the single-page app work.

use std::path::Path;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::{MethodRouter, get_service};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeader;

/// Serves `dist`; falls back to `index.html` (never cached, so a new build is picked up), or to
/// a page that says how to build the dashboard when there is none.
pub fn service(dist: &Path) -> MethodRouter {
    let index = dist.join("index.html");
    if !index.exists() {
        return axum::routing::get(not_built);
    }
    let spa = SetResponseHeader::overriding(
        ServeFile::new(index),
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    get_service(
        ServeDir::new(dist)
            .append_index_html_on_directories(false)
            .fallback(spa),
    )
}

async fn not_built() -> impl IntoResponse {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(
            "<h1>Open Grid Monitor</h1><p>The dashboard is not built. Run \
             <code>trunk build --release</code> at the repository root, or point \
             <code>OGM_DIST_DIR</code> at a built <code>dist/</code>.</p>",
        ),
    )
}
