//! API tests on the router with `oneshot`: no sockets.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use ogm_server::{AppState, Config, http};
use tower::ServiceExt as _;

fn app(dist: &std::path::Path) -> axum::Router {
    let mut config = Config::defaults();
    config.dist_dir = dist.to_path_buf();
    config.dashboard_mqtt_password = "dash-secret".into();
    http::router(AppState::new(config))
}

async fn get(
    app: axum::Router,
    uri: &str,
    host: &str,
) -> (StatusCode, Vec<(String, String)>, String) {
    let res = app
        .oneshot(
            Request::get(uri)
                .header(header::HOST, host)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn built_dist() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<html>dashboard</html>").unwrap();
    std::fs::write(dir.path().join("app-abc123.wasm"), b"\0asm").unwrap();
    dir
}

#[tokio::test]
async fn config_tells_the_dashboard_where_the_broker_is() {
    let dist = built_dist();
    let (status, _, body) = get(app(dist.path()), "/api/config", "grid.example:8080").await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["mqtt_ws_url"], "ws://grid.example:9001");
    assert_eq!(v["mqtt_username"], "ogm.dashboard");
    assert_eq!(v["mqtt_password"], "dash-secret");
    assert_eq!(v["topic_prefix"], "open_grid_monitor");
    assert_eq!(v["nominal_hz"], 50);
}

#[tokio::test]
async fn spa_fallback_serves_index_for_app_paths_and_files_as_they_are() {
    let dist = built_dist();
    for path in ["/", "/devices/sim-01", "/insight?kiosk"] {
        let (status, headers, body) = get(app(dist.path()), path, "h").await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body, "<html>dashboard</html>", "{path}");
        assert!(
            headers.contains(&("cache-control".into(), "no-cache".into())),
            "{path}"
        );
    }
    let (status, _, body) = get(app(dist.path()), "/app-abc123.wasm", "h").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "\0asm"));
}

#[tokio::test]
async fn unknown_api_paths_get_a_json_404_not_the_dashboard() {
    let dist = built_dist();
    let (status, _, body) = get(app(dist.path()), "/api/nope", "h").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "no API route /api/nope");
}

#[tokio::test]
async fn a_missing_build_says_how_to_build_it() {
    let empty = tempfile::tempdir().unwrap();
    let (status, _, body) = get(app(empty.path()), "/", "h").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("trunk build"));
}
