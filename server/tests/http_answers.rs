//! What every answer carries and how every refusal looks, on the router with `oneshot`:
//! `{"error": ...}` for each refusal (a query that does not parse, a method not allowed, an
//! unknown path, a timeout, the data routes' concurrency limit), the security headers on API
//! and dashboard answers, compression, caching by kind of file, paths with `//`, and the byte
//! budget of `/api/logs`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use ogm_protocol::{DeviceId, LogEntry, LogLevel, Payload};
use ogm_server::{AppState, Config, http};
use ogm_store::{Record, Store};
use ogm_store_sqlite::{SqliteOptions, SqliteStore};
use support::{CSS, GateStore, JS, KIOSK_SCRIPT, MODULE_SCRIPT, WASM, trunk_dist};
use tower::ServiceExt as _;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.headers))
    }

    /// The `{"error": ...}` of a refusal, after checking its shape.
    fn error(&self) -> String {
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/json",
            "{}",
            self.status
        );
        let v = self.json();
        assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
        v["error"].as_str().unwrap().to_owned()
    }
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: to_bytes(body, 16 << 20).await.unwrap().to_vec(),
    }
}

fn get(uri: &str) -> axum::http::request::Builder {
    Request::get(uri).header(header::HOST, "grid.example:8080")
}

async fn fetch(app: &Router, uri: &str) -> Answer {
    send(app, get(uri).body(Body::empty()).unwrap()).await
}

fn config(dist: &std::path::Path) -> Config {
    let mut c = Config::defaults();
    c.dist_dir = dist.to_path_buf();
    c.flux_proxy = true;
    c
}

/// The router on a [`GateStore`].
fn gated(config: Config) -> (Arc<GateStore>, AppState, Router) {
    let store = GateStore::new();
    let state = AppState::new(config, store.clone());
    (store, state.clone(), http::router(state))
}

#[tokio::test]
async fn every_refusal_is_json_with_its_status() {
    let dist = trunk_dist();
    let (_store, _state, app) = gated(config(dist.path()));

    // A repeated or malformed query parameter: axum's own rejection, as JSON.
    let a = fetch(&app, "/api/logs?limit=5&limit=6").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.error().contains("duplicate field `limit`"),
        "{}",
        a.error()
    );
    let a = fetch(&app, "/api/history?device_id=dev-1&device_id=dev-2").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.error().contains("device_id"), "{}", a.error());

    // Methods a path does not take: API, metrics and dashboard alike, with `Allow`.
    for (method, uri, allowed) in [
        (Method::POST, "/api/config", "GET"),
        (Method::DELETE, "/api/logs", "GET"),
        (Method::GET, "/api/flux", "POST"),
        (Method::PUT, "/metrics", "GET"),
        (Method::POST, "/", "GET"),
        (Method::from_bytes(b"BREW").unwrap(), "/devices", "GET"),
    ] {
        let a = send(
            &app,
            get(uri).method(method.clone()).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert!(a.header(header::ALLOW).contains(allowed), "{method} {uri}");
        assert_eq!(
            a.error(),
            format!("method {method} is not allowed on {uri}")
        );
    }

    let a = fetch(&app, "/api/nope").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.error(), "no API route /api/nope");

    let a = send(
        &app,
        Request::post("/api/flux")
            .body(Body::from(vec![b'x'; http::limits::MAX_BODY_BYTES + 1]))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(a.error().contains("longer than"));
}

#[tokio::test(start_paused = true)]
async fn a_request_that_takes_too_long_gets_a_json_503() {
    let dist = trunk_dist();
    let mut c = config(dist.path());
    c.http_request_timeout = Duration::from_secs(30);
    let (_store, _state, app) = gated(c);
    // The store never answers; paused time runs ahead to the timeout.
    let a = fetch(&app, "/api/history?device_id=dev-1").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.error(), "the request took longer than 30 s");
    let metrics = String::from_utf8(fetch(&app, "/metrics").await.body).unwrap();
    assert!(metrics.contains("ogm_http_timed_out_total 1"), "{metrics}");
}

#[tokio::test]
async fn past_the_data_routes_concurrency_limit_a_fast_503_with_retry_after() {
    let dist = trunk_dist();
    let mut c = config(dist.path());
    c.http_data_concurrency = 2;
    let (store, _state, app) = gated(c);
    let held: Vec<_> = (0..2)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { fetch(&app, "/api/history?device_id=dev-1").await })
        })
        .collect();
    store.wait_inside(2).await;

    // Every data route shares the limit; the others do not count against it.
    for uri in [
        "/api/history?device_id=dev-1",
        "/api/devices",
        "/api/logs",
        "/api/export.csv?device_id=dev-1",
    ] {
        let a = fetch(&app, uri).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(a.header(header::RETRY_AFTER), "1", "{uri}");
        assert_eq!(a.error(), "the server is busy; retry in 1 s", "{uri}");
    }
    for uri in ["/api/config", "/api/health", "/metrics", "/"] {
        assert_eq!(fetch(&app, uri).await.status, StatusCode::OK, "{uri}");
    }
    let metrics = String::from_utf8(fetch(&app, "/metrics").await.body).unwrap();
    assert!(metrics.contains("ogm_http_overloaded_total 4"), "{metrics}");

    store.open();
    for h in held {
        assert_eq!(h.await.unwrap().status, StatusCode::OK);
    }
    assert_eq!(fetch(&app, "/api/devices").await.status, StatusCode::OK);
}

/// The CSP's `script-src` hash of an inline script.
fn csp_hash(script: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script))
    )
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let dist = trunk_dist();
    let (_store, _state, app) = gated(config(dist.path()));
    for uri in [
        "/",
        "/?view=logs",
        &format!("/{WASM}"),
        "/api/config",
        "/api/nope",
        "/api/logs?limit=0",
        "/metrics",
        "//evil.example/",
    ] {
        let a = fetch(&app, uri).await;
        let csp = a.header(header::CONTENT_SECURITY_POLICY);
        for part in [
            "default-src 'none'",
            "script-src 'self' 'wasm-unsafe-eval'",
            &csp_hash(MODULE_SCRIPT),
            &csp_hash(KIOSK_SCRIPT),
            "style-src 'self'",
            "style-src-attr 'unsafe-inline'",
            "connect-src 'self' ws://grid.example:9001;",
            "frame-src 'self';",
            "frame-ancestors 'self'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(part), "{uri}: {part} not in {csp}");
        }
        assert_eq!(a.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{uri}");
        assert_eq!(a.header(header::REFERRER_POLICY), "no-referrer", "{uri}");
        assert_eq!(a.header(header::X_FRAME_OPTIONS), "SAMEORIGIN", "{uri}");
    }

    // Behind a TLS proxy the page opens wss://, and the policy allows that one.
    let a = send(
        &app,
        get("/")
            .header("x-forwarded-proto", "https")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let csp = a.header(header::CONTENT_SECURITY_POLICY);
    assert!(
        csp.contains("connect-src 'self' wss://grid.example:9443;"),
        "{csp}"
    );

    // A fixed broker URL, and kiosk views embedded by another site.
    let mut c = config(dist.path());
    c.mqtt_ws_url = Some("wss://mqtt.grid.example/mqtt".into());
    c.frame_ancestors =
        ogm_server::http::security::parse_frame_ancestors("self https://wall.example").unwrap();
    let (_store, _state, app) = gated(c);
    let a = fetch(&app, "/").await;
    let csp = a.header(header::CONTENT_SECURITY_POLICY);
    assert!(
        csp.contains("connect-src 'self' wss://mqtt.grid.example/mqtt;")
            && csp.ends_with("frame-ancestors 'self' https://wall.example"),
        "{csp}"
    );
    assert!(
        a.headers.get(header::X_FRAME_OPTIONS).is_none(),
        "X-Frame-Options cannot name another site"
    );

    let mut c = config(dist.path());
    c.frame_ancestors = ogm_server::http::security::parse_frame_ancestors("none").unwrap();
    let (_store, _state, app) = gated(c);
    assert_eq!(
        fetch(&app, "/").await.header(header::X_FRAME_OPTIONS),
        "DENY"
    );
}

#[tokio::test]
async fn compression_is_negotiated() {
    let dist = trunk_dist();
    let (_store, _state, app) = gated(config(dist.path()));
    let raw = std::fs::metadata(dist.path().join(WASM)).unwrap().len() as usize;
    for (accept, encoding) in [
        (Some("br"), Some("br")),
        (Some("gzip"), Some("gzip")),
        (Some("gzip, deflate, br"), Some("br")),
        (Some("identity"), None),
        (None, None),
    ] {
        let mut req = get(&format!("/{WASM}"));
        if let Some(a) = accept {
            req = req.header(header::ACCEPT_ENCODING, a);
        }
        let a = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(
            a.headers
                .get(header::CONTENT_ENCODING)
                .map(|v| v.to_str().unwrap()),
            encoding,
            "{accept:?}"
        );
        assert!(
            a.header(header::VARY)
                .to_ascii_lowercase()
                .contains("accept-encoding")
        );
        if encoding.is_some() {
            assert!(a.body.len() < raw / 10, "{accept:?}: {}", a.body.len());
        } else {
            assert_eq!(a.body.len(), raw);
        }
    }
    // API answers too.
    let a = send(
        &app,
        get("/api/config")
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.header(header::CONTENT_ENCODING), "gzip");
}

#[tokio::test]
async fn content_named_files_are_cached_for_a_year_the_rest_revalidated() {
    let dist = trunk_dist();
    let (_store, _state, app) = gated(config(dist.path()));
    for file in [JS, WASM, CSS] {
        let a = fetch(&app, &format!("/{file}")).await;
        assert_eq!(a.status, StatusCode::OK, "{file}");
        assert_eq!(
            a.header(header::CACHE_CONTROL),
            "public, max-age=31536000, immutable",
            "{file}"
        );
    }
    for uri in [
        "/",
        "/index.html",
        "/devices/sim-01",
        "/?view=insight&kiosk",
        "/robots.txt",
        // A content name this build does not have (an old page asking): the SPA fallback,
        // which must not be kept.
        "/ogm-frontend-ffffffffffffffff.js",
    ] {
        let a = fetch(&app, uri).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}");
        assert_eq!(a.header(header::CACHE_CONTROL), "no-cache", "{uri}");
    }
    // Revalidating index.html costs a 304.
    let first = fetch(&app, "/").await;
    let a = send(
        &app,
        get("/")
            .header(
                header::IF_MODIFIED_SINCE,
                first.header(header::LAST_MODIFIED),
            )
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    assert_eq!(a.header(header::CACHE_CONTROL), "no-cache");
    assert!(a.body.is_empty());
}

#[tokio::test]
async fn a_path_with_double_slashes_is_redirected_to_a_path_on_this_site() {
    let dist = trunk_dist();
    let (_store, _state, app) = gated(config(dist.path()));
    for (uri, to) in [
        ("//evil.example/", "/evil.example/"),
        ("//evil.example/?view=logs", "/evil.example/?view=logs"),
        ("///evil.example//x", "/evil.example/x"),
        ("/devices//sim-01", "/devices/sim-01"),
        ("//api/config", "/api/config"),
    ] {
        let a = fetch(&app, uri).await;
        assert_eq!(a.status, StatusCode::PERMANENT_REDIRECT, "{uri}");
        assert_eq!(a.header(header::LOCATION), to, "{uri}");
    }
    // Where it leads is the page, whose links start with its own single-slash path.
    let a = fetch(&app, "/evil.example/").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&a.body).contains("<script type=\"module\">"));
}

fn big_log(t: i64, level: LogLevel) -> Record {
    Record {
        device_id: DeviceId::new("dev-1").unwrap(),
        payload: Payload::Logs(LogEntry {
            timestamp: t,
            level,
            message: format!("{t} {}", "x".repeat(4000)),
            module: "m".into(),
        }),
    }
}

#[tokio::test]
async fn a_large_logs_answer_stops_at_its_byte_budget_and_says_so() {
    let dist = trunk_dist();
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(data.path(), SqliteOptions::default()).unwrap());
    // 600 entries of 4 KB (2.4 MB), levels mixed, a µs apart, the newest 10 s ago.
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
        - 10_000_000;
    let levels = [LogLevel::Info, LogLevel::Warn, LogLevel::Error];
    store
        .write(
            (1..=600)
                .map(|t| big_log(t0 + t, levels[t as usize % 3]))
                .collect(),
        )
        .await
        .unwrap();
    let app = http::router(AppState::new(config(dist.path()), store));
    let page = |stop: Option<i64>| {
        let stop = stop.map(|s| format!("&stop={s}")).unwrap_or_default();
        let app = app.clone();
        async move { fetch(&app, &format!("/api/logs?limit=10000&start=-1h{stop}")).await }
    };
    let mut seen = Vec::new();
    let mut stop = None;
    let mut pages = 0;
    loop {
        let a = page(stop).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(
            a.body.len() <= ogm_protocol::http::MAX_LOGS_ANSWER_BYTES + 8 * 1024,
            "{} bytes",
            a.body.len()
        );
        let v = a.json();
        let ts: Vec<i64> = v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["t"].as_i64().unwrap())
            .collect();
        pages += 1;
        seen.extend(ts.iter().copied());
        if v["truncated"] == false {
            break;
        }
        assert!(ts.len() > 100, "a page holds about a MiB: {}", ts.len());
        // The next page starts where this one stopped (its oldest entry's time is exclusive
        // here, as the times are distinct).
        stop = ts.last().copied();
        assert!(pages < 10);
    }
    assert_eq!(pages, 3, "2.4 MB in pages of 1 MiB");
    assert_eq!(
        seen,
        (1..=600).rev().map(|t| t0 + t).collect::<Vec<_>>(),
        "all, newest first"
    );
    // A limit below the budget is not a truncation.
    let a = fetch(&app, "/api/logs?limit=10&start=-1h").await;
    let v = a.json();
    assert_eq!(
        (v["entries"].as_array().unwrap().len(), &v["truncated"]),
        (10, &serde_json::Value::Bool(false))
    );
}
