//! `/api/*` handlers.

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, header};
use ogm_protocol::http::ConfigAnswer;

use super::ApiError;
use crate::AppState;
use crate::config::Config;

/// `GET /api/config`.
pub async fn config(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ([(header::HeaderName, &'static str); 1], Json<ConfigAnswer>) {
    let c = &state.config;
    // The answer follows the request's Host and X-Forwarded-Proto: no shared cache may keep it.
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    (
        no_store,
        Json(ConfigAnswer {
            mqtt_ws_url: broker_ws_url(c, &headers),
            mqtt_username: c.dashboard_mqtt_username.clone(),
            mqtt_password: c.dashboard_mqtt_password.clone(),
            topic_prefix: ogm_protocol::TOPIC_PREFIX.to_owned(),
            nominal_hz: c.nominal_hz,
            grid_area: c.grid_area.as_str().to_owned(),
        }),
    )
}

/// The broker WebSocket URL for a page requested with `headers`: `--mqtt-ws-url`, else the
/// page's host on the ws (or, behind a TLS proxy, wss) port. The Content-Security-Policy
/// allows the same URL.
pub fn broker_ws_url(c: &Config, headers: &HeaderMap) -> String {
    c.mqtt_ws_url.clone().unwrap_or_else(|| {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(host_without_port)
            .unwrap_or("127.0.0.1");
        // A page loaded over https may only open wss:// (browsers block mixed content); the
        // reverse proxy that terminates TLS says so. Its wss port is a separate listener.
        let https = headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        if https {
            format!("wss://{host}:{}", c.mqtt_wss_port)
        } else {
            format!("ws://{host}:{}", c.mqtt_ws_port)
        }
    })
}

/// `example.com:8080` → `example.com`, `[::1]:8080` → `[::1]`; anything odd → `127.0.0.1`.
fn host_without_port(host: &str) -> &str {
    let host = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    if ok { host } else { "127.0.0.1" }
}

/// Any other `/api/*` path.
pub async fn not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::NotFound(format!("no API route {}", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::host_without_port;

    #[test]
    fn strips_ports_and_refuses_garbage() {
        assert_eq!(host_without_port("grid.example:8080"), "grid.example");
        assert_eq!(host_without_port("10.0.0.5"), "10.0.0.5");
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("evil\"><script>"), "127.0.0.1");
        assert_eq!(host_without_port(""), "127.0.0.1");
    }
}
