//! Operations endpoints: health, Prometheus metrics, and the last rejected messages.

use std::sync::atomic::Ordering::Relaxed;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;

use crate::ingest::{DeviceRejections, Rejected};
use crate::time::now_us;
use crate::{AppState, health};

/// `GET /api/health`: `ok`, or `degraded` with its `problems` (`crate::health`): the broker
/// connection, the store answering and accepting writes, the ingest moving, the disk.
pub async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    let m = &state.metrics;
    // A store on a hung disk must not hang its own health check.
    let store_answers =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.store.healthy())
            .await
            .unwrap_or(false);
    let inputs = health::Inputs {
        now_us: now_us(),
        mqtt_connected: m.mqtt_connected.load(Relaxed),
        mqtt_subscribed: m.mqtt_subscribed.load(Relaxed),
        store_answers,
        store_failing: m.store_failing.load(Relaxed),
        uncommitted_since_us: m.uncommitted_since_us.load(Relaxed),
        last_received_us: m.last_received_us.load(Relaxed),
        broker_published_us: m.broker_published_us.load(Relaxed),
        disk: free_bytes(&state.config.data_dir).map(|free_bytes| health::Disk {
            free_bytes,
            min_free_bytes: state.config.min_free_mb.saturating_mul(1024 * 1024),
        }),
    };
    let problems = health::assess(&inputs);
    Json(json!({
        "status": if problems.is_empty() { "ok" } else { "degraded" },
        "problems": problems,
        "mqtt": { "connected": inputs.mqtt_connected, "subscribed": inputs.mqtt_subscribed },
        "store": {
            "kind": state.store.kind(),
            "ok": store_answers && !inputs.store_failing,
            "writes_failing": inputs.store_failing,
            "bytes": state.store_size.bytes(),
            "growth_bytes_per_day": state.store_size.growth_per_day().map(f64::round),
        },
        "ingest": {
            "stalled": health::stalled(&inputs),
            "uncommitted_for_s": age_s(inputs.now_us, inputs.uncommitted_since_us),
            "last_received_s_ago": age_s(inputs.now_us, inputs.last_received_us),
            "broker_last_took_publishes_s_ago": age_s(inputs.now_us, inputs.broker_published_us),
        },
        "disk": inputs.disk.map(|d| json!({
            "free_bytes": d.free_bytes,
            "min_free_bytes": d.min_free_bytes,
            "days_until_full": crate::store_size::days_until_full(
                d.free_bytes,
                state.store_size.growth_per_day(),
            ),
        })),
    }))
}

/// Seconds from `since_us` to `now_us`, to a tenth; `None` for never (0).
fn age_s(now_us: i64, since_us: i64) -> Option<f64> {
    (since_us > 0).then(|| ((now_us - since_us) / 100_000) as f64 / 10.0)
}

/// Free space for an unprivileged writer in the file system holding `dir` (or its nearest
/// existing ancestor); `None` if it cannot be read.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let dir = dir.ancestors().find(|d| d.exists())?;
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// `GET /api/ingest/rejected`: newest first.
pub async fn rejected(State(state): State<AppState>) -> Json<Vec<Rejected>> {
    Json(state.rejected.snapshot())
}

/// `GET /api/ingest/rejected/devices`: every device's rejections since start, by reason (the
/// per-device budgets among them), most rejected first.
pub async fn rejected_by_device(State(state): State<AppState>) -> Json<Vec<DeviceRejections>> {
    Json(state.rejected.by_device())
}
