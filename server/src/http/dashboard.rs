//! The built dashboard (Trunk's `dist/`): files as they are, any other path gets `index.html`
//! so that links into the single-page app work.
//!
//! Caching: Trunk names the files it builds with a hash of their content
//! (`ogm-frontend-513e849be902ace3_bg.wasm`), so a browser may keep those for a year without
//! asking again ([`IMMUTABLE`]); everything else, `index.html` and the SPA fallback above all,
//! is revalidated on every load (`no-cache`, answered `304` when unchanged), so a new build is
//! picked up at once. Compression is the router's (`mod.rs`).

use std::path::Path;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodRouter, get_service};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeader;

/// `Cache-Control` of files whose name holds a hash of their content.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of everything else.
pub const REVALIDATE: &str = "no-cache";

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
        HeaderValue::from_static(REVALIDATE),
    );
    get_service(
        ServeDir::new(dist)
            .append_index_html_on_directories(false)
            .fallback(spa),
    )
    .layer(axum::middleware::from_fn(cache_control))
}

/// Middleware: [`IMMUTABLE`] for a file Trunk named by its content, [`REVALIDATE`] otherwise,
/// unless the answer says already (the SPA fallback does).
async fn cache_control(req: Request, next: Next) -> Response {
    let hashed = req
        .uri()
        .path()
        .rsplit('/')
        .next()
        .is_some_and(is_content_named);
    let mut res = next.run(req).await;
    let served = res.status().is_success() || res.status() == StatusCode::NOT_MODIFIED;
    if !res.headers().contains_key(header::CACHE_CONTROL) {
        let value = if hashed && served {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    res
}

/// Whether a file name holds Trunk's content hash: `-` and 16 lowercase hex digits, then the
/// extension or `_bg` (`style-9c9b081324360cb2.css`, `app-513e849be902ace3_bg.wasm`).
pub fn is_content_named(name: &str) -> bool {
    name.match_indices('-').any(|(i, _)| {
        let rest = &name[i + 1..];
        rest.len() > 16
            && rest.as_bytes()[..16]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            && matches!(rest.as_bytes()[16], b'.' | b'_')
    })
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

#[cfg(test)]
mod tests {
    use super::is_content_named;

    #[test]
    fn trunk_content_names_are_told_apart() {
        for hashed in [
            "ogm-frontend-513e849be902ace3.js",
            "ogm-frontend-513e849be902ace3_bg.wasm",
            "style-9c9b081324360cb2.css",
        ] {
            assert!(is_content_named(hashed), "{hashed}");
        }
        for plain in [
            "index.html",
            "favicon.ico",
            "style.css",
            "app-513e849be902ace.js",
            "app-513E849BE902ACE3.js",
            "app-513e849be902ace3",
            "app-513e849be902ace3x.js",
        ] {
            assert!(!is_content_named(plain), "{plain}");
        }
    }
}
