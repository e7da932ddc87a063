//! Every route the dashboard calls exists in the router and answers the contract's type: the
//! page's URLs are built by `ogm_protocol::http`'s builders, as the page builds them, and the
//! answers are read with the types the page reads them with. No sockets (`oneshot`).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use ogm_protocol::http::{
    AlertsAnswer, Bucket, ConfigAnswer, DeviceView, EventParams, EventsAnswer, ExportParams, Field,
    HistoryAnswer, HistoryParams, LogParams, LogsAnswer, path,
};
use ogm_protocol::{DeviceId, LogEntry, LogLevel, Payload};
use ogm_server::{AppState, Config, http};
use ogm_store::{Record, Store, StoredEvent};
use ogm_store_sqlite::{SqliteOptions, SqliteStore};
use tower::ServiceExt as _;

/// A minute ago, µs: inside the page's log window (the last 30 days).
fn a_minute_ago() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(now.as_micros()).unwrap() - 60_000_000
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    let res = app
        .clone()
        .oneshot(
            Request::get(uri)
                .header("host", "127.0.0.1:8080")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let body = to_bytes(res.into_body(), 1 << 24).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The router on a real embedded store, and the temp dirs that hold it and the dashboard.
struct App {
    router: axum::Router,
    store: Arc<SqliteStore>,
    _dirs: [tempfile::TempDir; 2],
}

fn app() -> App {
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(dist.path().join("index.html"), "<html></html>").unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::defaults();
    config.dist_dir = dist.path().to_path_buf();
    let store = Arc::new(SqliteStore::open(data.path(), SqliteOptions::default()).unwrap());
    App {
        router: http::router(AppState::new(config, store.clone())),
        store,
        _dirs: [dist, data],
    }
}

#[tokio::test]
async fn every_route_the_page_calls_answers_the_contract() {
    let App {
        router: app,
        store,
        _dirs,
    } = app();
    let device = DeviceId::new("dev-1").unwrap();
    let t = a_minute_ago();
    let measurement = |t: i64| ogm_protocol::fixtures::measurement(t, 50.01);
    let log = LogEntry {
        timestamp: t,
        level: LogLevel::Warn,
        message: "m".into(),
        module: "x".into(),
    };
    store
        .write(vec![
            Record {
                device_id: device.clone(),
                payload: Payload::Measurement(measurement(t)),
            },
            Record {
                device_id: device.clone(),
                payload: Payload::Logs(log),
            },
        ])
        .await
        .unwrap();

    let mut called = Vec::new();
    let mut check = |route: &'static str, url: String| {
        assert!(url.starts_with(&format!("{}{route}", path::API)), "{url}");
        called.push(route);
        url
    };

    let (status, body) = get(
        &app,
        &check(path::CONFIG, format!("{}{}", path::API, path::CONFIG)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    ConfigAnswer::from_json(&body).unwrap();

    let (status, body) = get(
        &app,
        &check(path::DEVICES, format!("{}{}", path::API, path::DEVICES)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let devices = DeviceView::list_from_json(&body).unwrap();
    assert_eq!(devices.len(), 1, "{body}");
    assert_eq!(devices[0].device_id, device);
    assert!(devices[0].state.is_some(), "{body}");

    for field in Field::MEASURED {
        let url = HistoryParams::url(&device, field, t - 1_000_000, t + 1_000_000, 1_000);
        let (status, body) = get(&app, &check(path::HISTORY, url)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let a = HistoryAnswer::<Bucket>::from_json(&body).unwrap();
        assert_eq!((a.field, a.points.len()), (field, 1), "{body}");
    }

    let url = LogParams::url(Some(&device), Some(LogLevel::Info), Some(t + 1), 200);
    let (status, body) = get(&app, &check(path::LOGS, url)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        LogsAnswer::from_json(&body).unwrap().entries.len(),
        1,
        "{body}"
    );

    let url = ExportParams::url(&device, t - 1_000_000, t + 1_000_000);
    let (status, body) = get(&app, &check(path::EXPORT_CSV, url)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.starts_with("timestamp,frequency"), "{body}");

    let other = DeviceId::new("dev-2").unwrap();
    let event = |device_id: &DeviceId, start_us: i64, extreme_hz: f64| StoredEvent {
        device_id: device_id.clone(),
        start_us,
        end_us: Some(start_us + 3_000_000),
        last_us: start_us + 2_900_000,
        extreme_hz,
        rocof: Some(-0.3),
        frequency: true,
    };
    store
        .save_events(
            None,
            vec![
                event(&device, t - 5_000_000, 49.8),
                event(&other, t - 4_000_000, 49.7),
                event(&other, t - 40_000_000, 50.2),
            ],
        )
        .await
        .unwrap();
    let url = EventParams::url(Some(&device), t - 60_000_000, t + 1_000_000, 10);
    let (status, body) = get(&app, &check(path::EVENTS, url)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let a = EventsAnswer::from_json(&body).unwrap();
    assert_eq!(a.events.len(), 1, "{body}");
    let e = &a.events[0];
    assert_eq!(
        (e.start_us, e.device_id.as_str()),
        (t - 5_000_000, "dev-2"),
        "{body}"
    );
    assert!((e.extreme_mhz + 300.0).abs() < 1e-6, "{body}");
    assert_eq!(e.devices.len(), 2, "{body}");
    // Every device, newest first, one per page.
    let url = EventParams::url(None, t - 60_000_000, t + 1_000_000, 1);
    let a = EventsAnswer::from_json(&get(&app, &url).await.1).unwrap();
    assert_eq!((a.events.len(), a.more), (1, true));
    let url = EventParams::url(None, t - 60_000_000, a.events[0].start_us, 1);
    let a = EventsAnswer::from_json(&get(&app, &url).await.1).unwrap();
    assert_eq!((a.events.len(), a.more), (1, false));
    assert_eq!(a.events[0].start_us, t - 40_000_000);
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "device_id=no%20such",
        "start=x",
    ] {
        let (status, body) = get(&app, &format!("{}{}?{bad}", path::API, path::EVENTS)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body.contains("\"error\""), "{bad}: {body}");
    }

    let url = format!("{}{}", path::API, path::ALERTS);
    let (status, body) = get(&app, &check(path::ALERTS, url)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let a = AlertsAnswer::from_json(&body).unwrap();
    assert!(!a.enabled && a.active.is_empty(), "{body}");

    for route in path::PAGE_ROUTES {
        assert!(
            called.contains(&route),
            "{route} is not called by this test"
        );
    }
}

#[tokio::test]
async fn a_route_the_router_lacks_is_not_found() {
    let app = app();
    let (status, body) = get(&app.router, &format!("{}/not-a-route", path::API)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}
