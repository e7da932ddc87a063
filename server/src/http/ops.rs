//! Operations endpoints: health, Prometheus metrics, and the last rejected messages.

use std::sync::atomic::Ordering::Relaxed;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;

use crate::AppState;
use crate::ingest::Rejected;

/// `GET /api/health`: `ok` when the broker connection and the store both answer.
pub async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    let mqtt = state.metrics.mqtt_connected.load(Relaxed);
    let subscribed = state.metrics.mqtt_subscribed.load(Relaxed);
    let store_ok = state.store.healthy().await;
    Json(json!({
        "status": if mqtt && store_ok { "ok" } else { "degraded" },
        "mqtt": { "connected": mqtt, "subscribed": subscribed },
        "store": { "kind": state.store.kind(), "ok": store_ok },
    }))
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
