//! What the HTTP API lets a browser or a client do, on the router with `oneshot`: CORS (none by
//! default, an allow-list when configured), the per-client rate limit, the request body limit,
//! and the wss:// URL given to dashboards loaded over https.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use ogm_server::{AppState, Config, http};
use ogm_store_sqlite::{SqliteOptions, SqliteStore};
use tower::ServiceExt as _;

fn state(config: Config) -> (tempfile::TempDir, AppState) {
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(data.path(), SqliteOptions::default()).unwrap());
    (data, AppState::new(config, store))
}

/// The router as a client at `peer` reaches it.
fn app(state: &AppState, peer: &str) -> Router {
    http::router(state.clone()).layer(MockConnectInfo(peer.parse::<SocketAddr>().unwrap()))
}

async fn send(app: Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let res: Response = app.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = to_bytes(body, 1 << 20).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn get(uri: &str) -> axum::http::request::Builder {
    Request::get(uri).header(header::HOST, "grid.example:8080")
}

#[tokio::test]
async fn no_cors_headers_unless_origins_are_allowed() {
    let (_d, s) = state(Config::defaults());
    let req = get("/api/config")
        .header(header::ORIGIN, "https://elsewhere.example")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(app(&s, "10.0.0.1:5000"), req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
        "same-origin only by default: {headers:?}"
    );

    // What docker-compose passes for an unset OGM_CORS_ALLOWED_ORIGINS: nothing allowed.
    let mut config = Config::defaults();
    config.cors_allowed_origins = vec![String::new()];
    let (_d, s) = state(config);
    let req = get("/api/config")
        .header(header::ORIGIN, "https://elsewhere.example")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = send(app(&s, "10.0.0.1:5000"), req).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let mut config = Config::defaults();
    config.cors_allowed_origins = vec!["https://grafana.example".into()];
    let (_d, s) = state(config);
    let allowed = get("/api/devices")
        .header(header::ORIGIN, "https://grafana.example")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = send(app(&s, "10.0.0.1:5000"), allowed).await;
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://grafana.example"
    );
    let other = get("/api/devices")
        .header(header::ORIGIN, "https://elsewhere.example")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = send(app(&s, "10.0.0.1:5000"), other).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let preflight = Request::options("/api/flux")
        .header(header::ORIGIN, "https://grafana.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(app(&s, "10.0.0.1:5000"), preflight).await;
    assert!(status.is_success(), "{status}");
    let methods = headers[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
}

#[tokio::test]
async fn each_client_gets_a_burst_then_429_with_retry_after() {
    let mut config = Config::defaults();
    config.rate_limit_per_sec = 1;
    config.rate_limit_burst = 3;
    let (_d, s) = state(config);
    for _ in 0..3 {
        let (status, _, _) = send(
            app(&s, "192.0.2.7:4000"),
            get("/api/devices").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, headers, body) = send(
        app(&s, "192.0.2.7:4001"),
        get("/api/devices").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("too many requests"));

    // Unknown API paths count too; health checks never do.
    let (status, _, _) = send(
        app(&s, "192.0.2.7:4002"),
        get("/api/nope").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    for _ in 0..10 {
        let (status, _, _) = send(
            app(&s, "192.0.2.7:4003"),
            get("/api/health").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    // Another client, and the dashboard's files, are not affected.
    let (status, _, _) = send(
        app(&s, "192.0.2.8:4000"),
        get("/api/devices").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = send(
        app(&s, "192.0.2.7:4004"),
        get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("ogm_http_rate_limited_total 2"), "{body}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_clients_are_told_apart_by_x_forwarded_for() {
    let mut config = Config::defaults();
    config.rate_limit_per_sec = 1;
    config.rate_limit_burst = 1;
    config.trust_forwarded_for = true;
    let (_d, s) = state(config);
    let via_proxy = |client: &str| {
        get("/api/devices")
            .header("x-forwarded-for", format!("203.0.113.50, {client}"))
            .body(Body::empty())
            .unwrap()
    };
    let proxy = "172.18.0.9:40000";
    assert_eq!(
        send(app(&s, proxy), via_proxy("198.51.100.1")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(app(&s, proxy), via_proxy("198.51.100.2")).await.0,
        StatusCode::OK,
        "another client behind the same proxy"
    );
    assert_eq!(
        send(app(&s, proxy), via_proxy("198.51.100.1")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn request_bodies_are_capped() {
    let mut c = Config::defaults();
    c.flux_proxy = true;
    let (_d, s) = state(c);
    let big = "x".repeat(http::limits::MAX_BODY_BYTES + 1);
    let (status, _, body) = send(
        app(&s, "10.0.0.1:5000"),
        Request::post("/api/flux").body(Body::from(big)).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("longer than"),
        "{body}"
    );
    let (status, _, _) = send(
        app(&s, "10.0.0.1:5000"),
        Request::post("/api/flux")
            .body(Body::from("from(bucket: \"open_grid_monitor\")"))
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_IMPLEMENTED,
        "a small query gets through"
    );
}

#[tokio::test]
async fn dashboards_loaded_over_https_get_a_wss_url() {
    let (_d, s) = state(Config::defaults());
    let config_url = |proto: Option<&str>| {
        let mut req = get("/api/config");
        if let Some(p) = proto {
            req = req.header("x-forwarded-proto", p);
        }
        req.body(Body::empty()).unwrap()
    };
    let (_, _, body) = send(app(&s, "10.0.0.1:5000"), config_url(Some("https"))).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["mqtt_ws_url"], "wss://grid.example:9443");
    let (_, _, body) = send(app(&s, "10.0.0.1:5000"), config_url(Some("http"))).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["mqtt_ws_url"], "ws://grid.example:9001");

    let mut config = Config::defaults();
    config.mqtt_ws_url = Some("wss://grid.example/mqtt".into());
    let (_d, s) = state(config);
    let (_, _, body) = send(app(&s, "10.0.0.1:5000"), config_url(None)).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["mqtt_ws_url"], "wss://grid.example/mqtt",
        "a fixed URL wins"
    );
}
