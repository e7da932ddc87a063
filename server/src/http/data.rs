//! The data API: devices, history, logs, CSV export and the Flux proxy. Handlers parse and
//! check parameters, ask the [`ogm_store::Store`], and shape the JSON; they never know which
//! store they have.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use ogm_protocol::{DeviceId, LogLevel};
use ogm_store::{DeviceSummary, ExportQuery, Field, HistoryQuery, LogQuery, LogRow, StoreError};
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::AppState;
use crate::time::parse_time_us;

/// Largest `max_points`.
pub const MAX_POINTS_CAP: u32 = 10_000;
/// `max_points` when not given.
pub const DEFAULT_MAX_POINTS: u32 = 1_000;
/// Longest range a request may name: 20 years.
const MAX_RANGE_US: i64 = 20 * 366 * 86_400_000_000;
/// A device that sent nothing for this long is shown offline (three status intervals).
pub const SILENCE_US: i64 = 30_000_000;
/// Most log entries one request returns.
const MAX_LOG_LIMIT: u32 = 10_000;

pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ApiError::Unavailable(format!("store unavailable: {m}")),
            StoreError::Unsupported(what) => ApiError::NotImplemented(format!(
                "{what} needs the InfluxDB store (OGM_STORE=influxdb)"
            )),
            StoreError::Refused(m) => ApiError::BadRequest(m),
            StoreError::Backend(m) => ApiError::Internal(anyhow::anyhow!(m)),
        }
    }
}

fn device_param(s: Option<&str>) -> Result<DeviceId, ApiError> {
    let s = s.ok_or_else(|| ApiError::BadRequest("device_id is required".into()))?;
    DeviceId::new(s).map_err(|e| ApiError::BadRequest(format!("device_id: {e}")))
}

/// Parses `start`/`stop` (defaults: `-1h` and `now`) and checks the range.
fn range(
    start: Option<&str>,
    stop: Option<&str>,
    default_start: &str,
) -> Result<(i64, i64), ApiError> {
    let now = now_us();
    let start = parse_time_us(start.unwrap_or(default_start), now)
        .map_err(|e| ApiError::BadRequest(format!("start: {e}")))?;
    let stop = parse_time_us(stop.unwrap_or("now"), now)
        .map_err(|e| ApiError::BadRequest(format!("stop: {e}")))?;
    if stop <= start {
        return Err(ApiError::BadRequest("stop must be after start".into()));
    }
    if stop.saturating_sub(start) > MAX_RANGE_US {
        return Err(ApiError::BadRequest(
            "the range is longer than 20 years".into(),
        ));
    }
    Ok((start, stop))
}

async fn known_device(state: &AppState, id: &DeviceId) -> Result<(), ApiError> {
    if state
        .store
        .devices()
        .await?
        .iter()
        .any(|d| &d.device_id == id)
    {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!("unknown device {id:?}")))
    }
}

/// A device as `GET /api/devices` shows it.
#[derive(Debug, Serialize)]
pub struct DeviceView {
    #[serde(flatten)]
    pub summary: DeviceSummary,
    /// False after its last will, or after [`SILENCE_US`] without a message.
    pub online: bool,
}

/// `GET /api/devices`.
pub async fn devices(State(state): State<AppState>) -> Result<Json<Vec<DeviceView>>, ApiError> {
    let now = now_us();
    let list = state.store.devices().await?;
    Ok(Json(
        list.into_iter()
            .map(|summary| {
                let will_says_offline = summary
                    .last_status
                    .as_ref()
                    .is_some_and(|s| s.online == Some(false))
                    && summary.last_measurement.as_ref().is_none_or(|m| {
                        m.timestamp <= summary.last_status.as_ref().map_or(0, |s| s.timestamp)
                    });
                let online = !will_says_offline && now - summary.last_seen <= SILENCE_US;
                DeviceView { summary, online }
            })
            .collect(),
    ))
}

/// Query of `GET /api/history`.
#[derive(Debug, Deserialize)]
pub struct HistoryParams {
    device_id: Option<String>,
    field: Option<String>,
    start: Option<String>,
    stop: Option<String>,
    max_points: Option<String>,
}

/// Answer of `GET /api/history`.
#[derive(Debug, Serialize)]
pub struct HistoryAnswer {
    pub device_id: DeviceId,
    pub field: Field,
    pub start: i64,
    pub stop: i64,
    pub interval_us: i64,
    pub points: Vec<ogm_store::Bucket>,
}

/// `GET /api/history`.
pub async fn history(
    State(state): State<AppState>,
    Query(p): Query<HistoryParams>,
) -> Result<Json<HistoryAnswer>, ApiError> {
    let device_id = device_param(p.device_id.as_deref())?;
    let field_s = p.field.as_deref().unwrap_or("frequency");
    let field = Field::parse(field_s).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown field {field_s:?}; one of frequency, voltage, current, power, rssi, free_heap"
        ))
    })?;
    let (start, stop) = range(p.start.as_deref(), p.stop.as_deref(), "-1h")?;
    let max_points = match p.max_points.as_deref() {
        None => DEFAULT_MAX_POINTS,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=MAX_POINTS_CAP).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "max_points must be 1 to {MAX_POINTS_CAP}, not {s:?}"
                )));
            }
        },
    };
    known_device(&state, &device_id).await?;
    let h = state
        .store
        .history(HistoryQuery {
            device_id: device_id.clone(),
            field,
            start_us: start,
            stop_us: stop,
            max_points,
        })
        .await?;
    Ok(Json(HistoryAnswer {
        device_id,
        field,
        start,
        stop,
        interval_us: h.interval_us,
        points: h.points,
    }))
}

/// Query of `GET /api/logs`.
#[derive(Debug, Deserialize)]
pub struct LogParams {
    device_id: Option<String>,
    level: Option<String>,
    start: Option<String>,
    stop: Option<String>,
    limit: Option<String>,
}

/// `GET /api/logs`: newest first.
pub async fn logs(
    State(state): State<AppState>,
    Query(p): Query<LogParams>,
) -> Result<Json<Vec<LogRow>>, ApiError> {
    let device_id = match p.device_id.as_deref() {
        None | Some("") => None,
        d => Some(device_param(d)?),
    };
    let min_level = match p.level.as_deref() {
        None | Some("") => None,
        Some(l) => Some(LogLevel::parse(l).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown level {l:?}; one of TRACE, DEBUG, INFO, WARN, ERROR"
            ))
        })?),
    };
    let (start, stop) = range(p.start.as_deref(), p.stop.as_deref(), "-7d")?;
    let limit = match p.limit.as_deref() {
        None => 200,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=MAX_LOG_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "limit must be 1 to {MAX_LOG_LIMIT}, not {s:?}"
                )));
            }
        },
    };
    Ok(Json(
        state
            .store
            .logs(LogQuery {
                device_id,
                min_level,
                start_us: start,
                stop_us: stop,
                limit,
            })
            .await?,
    ))
}

/// Query of `GET /api/export.csv`.
#[derive(Debug, Deserialize)]
pub struct ExportParams {
    device_id: Option<String>,
    start: Option<String>,
    stop: Option<String>,
}

/// `GET /api/export.csv`: raw measurements, streamed as they are read.
pub async fn export_csv(
    State(state): State<AppState>,
    Query(p): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let device_id = device_param(p.device_id.as_deref())?;
    let (start, stop) = range(p.start.as_deref(), p.stop.as_deref(), "-1h")?;
    known_device(&state, &device_id).await?;
    let rx = state
        .store
        .export(ExportQuery {
            device_id: device_id.clone(),
            start_us: start,
            stop_us: stop,
        })
        .await?;
    let header_line = Bytes::from_static(b"timestamp,frequency,voltage,current,power\n");
    let stream =
        futures_util::stream::unfold((rx, Some(header_line)), |(mut rx, header)| async move {
            if let Some(h) = header {
                return Some((Ok::<Bytes, std::io::Error>(h), (rx, None)));
            }
            match rx.recv().await? {
                Ok(chunk) => {
                    let mut out = String::with_capacity(chunk.len() * 48);
                    for m in chunk {
                        use std::fmt::Write as _;
                        let _ = writeln!(
                            out,
                            "{},{},{},{},{}",
                            m.timestamp, m.frequency, m.voltage, m.current, m.power
                        );
                    }
                    Some((Ok(Bytes::from(out)), (rx, None)))
                }
                Err(e) => {
                    tracing::error!(error = %e, "export failed midway");
                    Some((Err(std::io::Error::other(e.to_string())), (rx, None)))
                }
            }
        });
    let filename = format!("attachment; filename=\"{device_id}-{start}-{stop}.csv\"");
    let mut res = Body::from_stream(stream).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&filename) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// Largest Flux query accepted, in bytes (the router's body limit).
const MAX_FLUX_BYTES: usize = super::limits::MAX_BODY_BYTES;

/// `POST /api/flux`: the body is a Flux query; the answer is InfluxDB's annotated CSV, streamed.
pub async fn flux(
    State(state): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!("the query is longer than {MAX_FLUX_BYTES} bytes"))
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })?;
    let query = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("the query is not UTF-8".into()))?;
    if query.trim().is_empty() {
        return Err(ApiError::BadRequest("the body must be a Flux query".into()));
    }
    let rx = state.store.flux(query).await?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await? {
            Ok(b) => Some((Ok::<Bytes, std::io::Error>(b), rx)),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), rx)),
        }
    });
    let mut res = Body::from_stream(stream).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    Ok(res)
}
