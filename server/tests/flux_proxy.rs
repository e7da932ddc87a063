//! `POST /api/flux` in InfluxDB mode, on the router with `oneshot`: the proxy is off without a
//! read-only token of its own, and its limits are flags. What queries may run, and the limits
//! at work, are tested against a stand-in for InfluxDB with the real Flux parser in
//! `stores/influx/tests/`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use clap::Parser as _;
use ogm_server::{AppState, Cli, Config, StoreChoice, http, open_store};
use tower::ServiceExt as _;

const QUERY: &str = "from(bucket: \"open_grid_monitor\") |> range(start: -1h)";

/// InfluxDB mode, with nothing listening where InfluxDB should be.
fn influx_config(data: &std::path::Path, read_token: Option<&str>) -> Config {
    let nothing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = Config::defaults();
    config.store = StoreChoice::Influxdb;
    config.influxdb_url = format!("http://{}", nothing.local_addr().unwrap());
    config.influxdb_token = "write-token".into();
    config.influxdb_read_token = read_token.map(str::to_owned);
    config.data_dir = data.to_owned();
    config.flux_proxy = true;
    config
}

async fn post_flux(config: Config) -> (StatusCode, serde_json::Value) {
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let store = open_store(&config, stopped).await.unwrap();
    let res = http::router(AppState::new(config, store))
        .oneshot(Request::post("/api/flux").body(Body::from(QUERY)).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn the_proxy_is_off_by_default() {
    let data = tempfile::tempdir().unwrap();
    let mut config = influx_config(data.path(), Some("read-token"));
    config.flux_proxy = false;
    let (status, v) = post_flux(config).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"], http::data::FLUX_PROXY_OFF);
    assert!(!Config::defaults().flux_proxy);
    let cli = Cli::try_parse_from(["ogm-server", "--flux-proxy"]).unwrap();
    assert!(cli.config.flux_proxy);
}

#[tokio::test]
async fn the_proxy_is_off_without_a_read_token_of_its_own() {
    let data = tempfile::tempdir().unwrap();
    for read_token in [None, Some("write-token")] {
        let (status, v) = post_flux(influx_config(data.path(), read_token)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        let e = v["error"].as_str().unwrap();
        assert!(
            e.starts_with("the Flux proxy is off") && e.contains("INFLUXDB_READ_TOKEN"),
            "{e}"
        );
    }
    // With one, the query goes on to InfluxDB (down here: 503 saying so).
    let (status, v) = post_flux(influx_config(data.path(), Some("read-token"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(e.contains("InfluxDB") && !e.contains("READ_TOKEN"), "{e}");
}

#[tokio::test]
async fn limits_are_flags_and_checked_at_start() {
    let cli = Cli::try_parse_from([
        "ogm-server",
        "--flux-timeout",
        "5s",
        "--flux-max-mb",
        "2",
        "--flux-max-range",
        "0",
    ])
    .unwrap();
    let c = &cli.config;
    assert_eq!(
        (c.flux_timeout, c.flux_max_mb, c.flux_max_range),
        (Duration::from_secs(5), 2, Duration::ZERO)
    );
    let d = Config::defaults();
    assert_eq!(
        (d.flux_timeout, d.flux_max_mb, d.flux_max_range),
        (Duration::from_secs(30), 8, Duration::from_secs(31 * 86_400))
    );
    assert!(Cli::try_parse_from(["ogm-server", "--flux-max-mb", "0"]).is_err());
    let data = tempfile::tempdir().unwrap();
    let mut config = influx_config(data.path(), Some("read-token"));
    config.flux_timeout = Duration::ZERO;
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let Err(e) = open_store(&config, stopped).await else {
        panic!("a zero timeout should be refused");
    };
    assert!(format!("{e:#}").contains("timeout"), "{e:#}");
}
