//! API tests on the router with `oneshot`: no sockets.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use ogm_protocol::{DeviceId, LogEntry, LogLevel, Measurement, Payload, Status};
use ogm_server::{AppState, Config, http};
use ogm_store::{Record, Store};
use ogm_store_sqlite::{SqliteOptions, SqliteStore};
use tower::ServiceExt as _;

/// A router on a real embedded store in a temp dir, with `dist` as the dashboard.
fn app_with_store(
    dist: &std::path::Path,
    data: &std::path::Path,
) -> (axum::Router, Arc<SqliteStore>) {
    let mut config = Config::defaults();
    config.dist_dir = dist.to_path_buf();
    config.dashboard_mqtt_password = "dash-secret".into();
    config.flux_proxy = true;
    let store = Arc::new(SqliteStore::open(data, SqliteOptions::default()).unwrap());
    (http::router(AppState::new(config, store.clone())), store)
}

fn app(dist: &std::path::Path) -> axum::Router {
    let data = tempfile::tempdir().unwrap().keep();
    app_with_store(dist, &data).0
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
    let (status, headers, body) = get(app(dist.path()), "/api/config", "grid.example:8080").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers.contains(&("cache-control".into(), "no-store".into())),
        "it follows the Host header, so no cache may keep it: {headers:?}"
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["mqtt_ws_url"], "ws://grid.example:9001");
    assert_eq!(v["mqtt_username"], "ogm.dashboard");
    assert_eq!(v["mqtt_password"], "dash-secret");
    assert_eq!(v["topic_prefix"], "open_grid_monitor");
    assert_eq!(v["nominal_hz"], 50);
    assert_eq!(v["grid_area"], "ce");
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

const T0: i64 = 1_703_123_456_000_000;

fn id(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

/// One device with an hour of 1 Hz measurements, a status, and three log lines.
async fn seeded() -> (tempfile::TempDir, tempfile::TempDir, axum::Router) {
    let dist = built_dist();
    let data = tempfile::tempdir().unwrap();
    let (app, store) = app_with_store(dist.path(), data.path());
    let mut batch: Vec<Record> = (0..3600)
        .map(|i| Record {
            device_id: id("dev-1"),
            payload: Payload::Measurement(Measurement {
                timestamp: T0 + i * 1_000_000,
                frequency: 50.0 + (i % 60) as f64 / 1000.0,
                voltage: 230.0,
                current: 1.0,
                power: 230.0,
            }),
        })
        .collect();
    batch.push(Record {
        device_id: id("dev-1"),
        payload: Payload::Status(Status {
            timestamp: T0,
            rssi: -50,
            free_heap: 1000,
            online: Some(true),
            battery: None,
            dropped: None,
        }),
    });
    for (i, level) in [LogLevel::Info, LogLevel::Warn, LogLevel::Error]
        .into_iter()
        .enumerate()
    {
        batch.push(Record {
            device_id: id("dev-1"),
            payload: Payload::Logs(LogEntry {
                timestamp: T0 + i as i64,
                level,
                message: format!("m{i}"),
                module: "x".into(),
            }),
        });
    }
    store.write(batch).await.unwrap();
    (dist, data, app)
}

async fn get_json(app: axum::Router, uri: &str) -> (StatusCode, serde_json::Value) {
    let (status, _, body) = get(app, uri, "h").await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{uri}: {e}: {body}")),
    )
}

#[tokio::test]
async fn history_returns_raw_points_or_min_mean_max_buckets() {
    let (_d, _s, app) = seeded().await;
    let stop = T0 + 3_600_000_000;
    let (status, v) = get_json(
        app.clone(),
        &format!(
            "/api/history?device_id=dev-1&field=frequency&start={T0}&stop={stop}&max_points=10000"
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["interval_us"].as_i64(),
            v["points"].as_array().unwrap().len()
        ),
        (Some(0), 3600)
    );
    let (_, v) = get_json(
        app.clone(),
        &format!("/api/history?device_id=dev-1&start={T0}&stop={stop}&max_points=60"),
    )
    .await;
    let points = v["points"].as_array().unwrap();
    assert!(
        points.len() <= 60 && v["interval_us"].as_i64().unwrap() >= 60_000_000,
        "{v}"
    );
    let counted: u64 = points.iter().map(|p| p["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 3600);
    let full = points
        .iter()
        .find(|p| p["count"] == 120)
        .expect("a full minute bucket");
    assert_eq!(
        (full["min"].as_f64(), full["max"].as_f64()),
        (Some(50.0), Some(50.059))
    );
    assert!((full["mean"].as_f64().unwrap() - 50.0295).abs() < 1e-9);
    let (status, v) = get_json(
        app,
        &format!("/api/history?device_id=dev-1&field=rssi&start=2023-12-21T00:00:00Z&stop={stop}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["points"][0]["max"], -50.0);
}

#[tokio::test]
async fn bad_parameters_get_a_400_that_says_what_is_wrong() {
    let (_d, _s, app) = seeded().await;
    for (uri, says) in [
        ("/api/history?field=frequency", "device_id is required"),
        ("/api/history?device_id=no/slash", "device_id"),
        ("/api/history?device_id=ghost", "unknown device"),
        (
            "/api/history?device_id=dev-1&field=temperature",
            "unknown field",
        ),
        (
            "/api/history?device_id=dev-1&start=now&stop=-1h",
            "stop must be after start",
        ),
        (
            "/api/history?device_id=dev-1&start=yesterday",
            "start: cannot read time",
        ),
        ("/api/history?device_id=dev-1&max_points=0", "max_points"),
        (
            "/api/history?device_id=dev-1&max_points=10001",
            "max_points",
        ),
        (
            "/api/history?device_id=dev-1&start=0&stop=99999999999999999",
            "20 years",
        ),
        ("/api/logs?level=LOUD", "unknown level"),
        ("/api/logs?limit=-1", "limit"),
        ("/api/export.csv?device_id=ghost", "unknown device"),
    ] {
        let (status, v) = get_json(app.clone(), uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{uri}: {v}");
    }
}

#[tokio::test]
async fn logs_devices_export_and_flux() {
    let (_d, _s, app) = seeded().await;
    let stop = T0 + 3_600_000_000;
    let (_, v) = get_json(
        app.clone(),
        &format!("/api/logs?device_id=dev-1&start={T0}&stop={stop}&level=WARN"),
    )
    .await;
    assert_eq!(v["truncated"], false, "{v}");
    let levels: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["ERROR", "WARN"], "newest first, WARN and above");
    let (_, v) = get_json(app.clone(), "/api/devices").await;
    assert_eq!(v[0]["device_id"], "dev-1");
    assert_eq!(v[0]["last_measurement"]["timestamp"], T0 + 3_599_000_000);
    assert_eq!(v[0]["last_status"]["rssi"], -50);
    assert_eq!(v[0]["online"], false, "silent since 2023");
    assert_eq!(v[0]["state"], "silent");
    assert!(v[0].get("interval_ms").is_none(), "nothing learnt: {v}");
    let (status, _, csv) = get(
        app.clone(),
        &format!("/api/export.csv?device_id=dev-1&start={T0}&stop={stop}"),
        "h",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "timestamp,frequency,voltage,current,power");
    assert_eq!(lines.len(), 3601);
    assert_eq!(lines[1], format!("{T0},50,230,1,230"));
    let res = app
        .oneshot(
            Request::post("/api/flux")
                .body(Body::from("from(bucket: \"open_grid_monitor\")"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NOT_IMPLEMENTED,
        "the embedded store has no Flux"
    );
}

#[tokio::test]
async fn metrics_and_rejected_are_served() {
    let (_d, _s, app) = seeded().await;
    let (status, _, text) = get(app.clone(), "/metrics", "h").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("# TYPE ogm_messages_stored_total counter"),
        "{text}"
    );
    let (status, v) = get_json(app.clone(), "/api/ingest/rejected").await;
    assert_eq!((status, v), (StatusCode::OK, serde_json::json!([])));
    let (_, v) = get_json(app, "/api/health").await;
    assert_eq!(
        (
            v["status"].as_str(),
            v["store"]["kind"].as_str(),
            v["store"]["ok"].as_bool()
        ),
        (Some("degraded"), Some("embedded"), Some(true)),
        "no broker in this test"
    );
}

use ogm_devstack::fixtures::now_us;

fn measurements(dev: &str, stamps: impl IntoIterator<Item = i64>) -> Vec<Record> {
    stamps
        .into_iter()
        .map(|t| Record {
            device_id: id(dev),
            payload: Payload::Measurement(Measurement {
                timestamp: t,
                frequency: 50.0,
                voltage: 230.0,
                current: 1.0,
                power: 230.0,
            }),
        })
        .collect()
}

/// The entries of `GET /api/devices` by device id: (state, online, interval_ms).
async fn device_states(
    app: axum::Router,
) -> std::collections::BTreeMap<String, (String, bool, Option<i64>)> {
    let (status, v) = get_json(app, "/api/devices").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["device_id"].as_str().unwrap().to_owned(),
                (
                    d["state"].as_str().unwrap().to_owned(),
                    d["online"].as_bool().unwrap(),
                    d["interval_ms"].as_i64(),
                ),
            )
        })
        .collect()
}

/// `GET /api/devices` applies the dashboard's rule to what the ingest learnt (fed here as the
/// ingest feeds it: committed records, in arrival order) and, after a restart, to what the store
/// holds.
#[tokio::test]
async fn devices_are_online_silent_or_offline_by_their_own_interval_and_last_will() {
    let dist = built_dist();
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::defaults();
    config.dist_dir = dist.path().to_path_buf();
    let store = Arc::new(SqliteStore::open(data.path(), SqliteOptions::default()).unwrap());
    let state = AppState::new(config, store.clone());
    let presences = state.presences.clone();
    let app = http::router(state);
    let now = now_us();
    const S: i64 = 1_000_000;
    // "fresh": 1 Hz, last heard 2 s ago. "quiet": 1 Hz, last heard 8 s ago: silent after 5 s
    // (three intervals, raised to the 5 s floor), where the flat rule said 30 s. "slow": one
    // measurement a minute, last heard 2 min ago: still online. "gone": its last will, stamped
    // before its measurements, arrived last.
    let mut batch = measurements("fresh", (0..5).map(|i| now - 6 * S + i * S));
    batch.extend(measurements("quiet", (0..5).map(|i| now - 12 * S + i * S)));
    batch.extend(measurements(
        "slow",
        (0..5).map(|i| now - 6 * 60 * S + i * 60 * S),
    ));
    batch.extend(measurements("gone", (0..5).map(|i| now - 6 * S + i * S)));
    batch.push(Record {
        device_id: id("gone"),
        payload: Payload::Status(Status {
            timestamp: now - 60 * S,
            rssi: -50,
            free_heap: 1,
            online: Some(false),
            battery: None,
            dropped: None,
        }),
    });
    store.write(batch.clone()).await.unwrap();
    presences.observe(&batch);
    let s = |state: &str, online: bool, ms: Option<i64>| (state.to_owned(), online, ms);
    let expected = [
        ("fresh", s("online", true, Some(1_000))),
        ("gone", s("offline", false, Some(1_000))),
        ("quiet", s("silent", false, Some(1_000))),
        ("slow", s("online", true, Some(60_000))),
    ];
    assert_eq!(
        device_states(app.clone()).await,
        expected
            .iter()
            .map(|(d, v)| ((*d).to_owned(), v.clone()))
            .collect()
    );

    // After a restart nothing is learnt yet: the flat 30 s and the store's newest status (the
    // will is older than the measurements there, so it is not known to be the last word).
    let dist2 = built_dist();
    let mut config = Config::defaults();
    config.dist_dir = dist2.path().to_path_buf();
    let state = AppState::new(config, store.clone());
    let presences = state.presences.clone();
    let app = http::router(state);
    let before = device_states(app.clone()).await;
    assert_eq!(before["quiet"], s("online", true, None), "30 s flat");
    assert_eq!(before["slow"], s("silent", false, None), "30 s flat");
    // ... until the start-up task reads the intervals back from the store.
    let learnt =
        ogm_server::ingest::presence::seed_from_store(store.clone(), presences, now_us()).await;
    assert_eq!(learnt, 4);
    let after = device_states(app).await;
    assert_eq!(after["quiet"], s("silent", false, Some(1_000)));
    assert_eq!(after["slow"], s("online", true, Some(60_000)));
    assert_eq!(after["fresh"], s("online", true, Some(1_000)));
}
