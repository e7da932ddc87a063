//! The data API: devices, history, logs, CSV export and the Flux proxy. Handlers parse and
//! check parameters, ask the [`ogm_store::Store`], and shape the JSON; they never know which
//! store they have.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use ogm_protocol::http::{
    AlertsAnswer, DEFAULT_EVENT_LIMIT, DEFAULT_LOG_LIMIT, DEFAULT_MAX_POINTS, DeviceView,
    EventDevice, EventParams, EventsAnswer, ExportParams, GridEventView, HistoryAnswer,
    HistoryParams, LogParams, LogsAnswer, MAX_EVENT_LIMIT, MAX_LOG_LIMIT, MAX_LOGS_ANSWER_BYTES,
    MAX_POINTS, MAX_RANGE_US,
};
use ogm_protocol::{DeviceId, DeviceState, LogLevel, Presence};
use ogm_store::{
    DeviceSummary, EventQuery, ExportQuery, Field, HistoryQuery, LogQuery, LogRow, StoreError,
};

use super::ApiError;
use super::error::ApiQuery;
use crate::AppState;
use crate::grid_watch::device_event;
use crate::time::{now_us, parse_time_us};

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(ref m) => {
                ApiError::Unavailable(format!("store unavailable: {m}"))
            }
            StoreError::Unsupported(what) => ApiError::NotImplemented(format!(
                "{what} needs the InfluxDB store (OGM_STORE=influxdb)"
            )),
            StoreError::Refused(m) => ApiError::BadRequest(m),
            e @ StoreError::Backend(_) => ApiError::Internal(anyhow::Error::new(e)),
        }
    }
}

fn device_param(s: Option<&str>) -> Result<DeviceId, ApiError> {
    let s = s.ok_or_else(|| ApiError::BadRequest("device_id is required".into()))?;
    DeviceId::new(s).map_err(|e| ApiError::BadRequest(format!("device_id: {e}")))
}

/// A count parameter of a query: its default when absent, else 1 to its most.
struct CountParam {
    name: &'static str,
    default: u32,
    max: u32,
}

const MAX_POINTS_PARAM: CountParam = CountParam {
    name: "max_points",
    default: DEFAULT_MAX_POINTS,
    max: MAX_POINTS,
};

const LIMIT_PARAM: CountParam = CountParam {
    name: "limit",
    default: DEFAULT_LOG_LIMIT,
    max: MAX_LOG_LIMIT,
};

const EVENT_LIMIT_PARAM: CountParam = CountParam {
    name: "limit",
    default: DEFAULT_EVENT_LIMIT,
    max: MAX_EVENT_LIMIT,
};

/// Most device events read for one `/api/events` answer; past it, `more` says so.
const MAX_DEVICE_EVENTS_READ: u32 = 20_000;

impl CountParam {
    fn parse(&self, s: Option<&str>) -> Result<u32, ApiError> {
        let Some(s) = s else {
            return Ok(self.default);
        };
        match s.parse::<u32>() {
            Ok(n) if (1..=self.max).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "{} must be 1 to {}, not {s:?}",
                self.name, self.max
            ))),
        }
    }
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

/// How `GET /api/devices` shows a device: what the store holds and what the ingest learnt
/// (`presence`; `None` when it has seen nothing of the device since the server started), under
/// the liveness rule.
pub fn device_view(summary: DeviceSummary, presence: Option<Presence>, now_us: i64) -> DeviceView {
    let presence = presence.unwrap_or_default();
    // The last word in arrival order when the ingest saw one; else the store's: its newest
    // status is a last will and no measurement is newer.
    let online = presence.online.or_else(|| {
        let will = summary
            .last_status
            .as_ref()
            .filter(|s| s.online == Some(false))?;
        summary
            .last_measurement
            .as_ref()
            .is_none_or(|m| m.timestamp <= will.timestamp)
            .then_some(false)
    });
    let state = DeviceState::of(online, summary.last_seen, presence.interval_us(), now_us);
    DeviceView {
        device_id: summary.device_id,
        last_seen: summary.last_seen,
        last_measurement: summary.last_measurement,
        last_status: summary.last_status,
        online: state == DeviceState::Online,
        state: Some(state),
        interval_ms: presence.learnt_interval_us().map(|us| (us + 500) / 1_000),
    }
}

/// `GET /api/devices`.
pub async fn devices(State(state): State<AppState>) -> Result<Json<Vec<DeviceView>>, ApiError> {
    let now = now_us();
    let mut list = state.store.devices().await?;
    // In the order people number devices (`sim-9` before `sim-10`), whatever the store's.
    list.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    let presences = state.presences.get_all(list.iter().map(|d| &d.device_id));
    Ok(Json(
        list.into_iter()
            .zip(presences)
            .map(|(summary, presence)| device_view(summary, presence, now))
            .collect(),
    ))
}

/// `GET /api/history`.
pub async fn history(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<HistoryParams>,
) -> Result<Json<HistoryAnswer>, ApiError> {
    let device_id = device_param(p.device_id.as_deref())?;
    let field_s = p.field.as_deref().unwrap_or("frequency");
    let field = Field::parse(field_s).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown field {field_s:?}; one of frequency, voltage, current, power, rssi, free_heap"
        ))
    })?;
    let (start, stop) = range(p.start.as_deref(), p.stop.as_deref(), "-1h")?;
    let max_points = MAX_POINTS_PARAM.parse(p.max_points.as_deref())?;
    let query = HistoryQuery::new(device_id.clone(), field, start, stop, max_points)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    known_device(&state, &device_id).await?;
    let h = state.store.history(query).await?;
    Ok(Json(HistoryAnswer {
        device_id,
        field,
        start,
        stop,
        interval_us: h.interval_us,
        points: h.points,
    }))
}

/// `GET /api/logs`: newest first, at most `limit` entries and about a MiB.
pub async fn logs(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<LogParams>,
) -> Result<Json<LogsAnswer>, ApiError> {
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
    let limit = LIMIT_PARAM.parse(p.limit.as_deref())?;
    let entries = state
        .store
        .logs(LogQuery {
            device_id,
            min_level,
            start_us: start,
            stop_us: stop,
            limit,
            max_bytes: MAX_LOGS_ANSWER_BYTES,
        })
        .await?;
    let truncated = entries.len() < limit as usize
        && entries.iter().map(LogRow::weight).sum::<usize>() > MAX_LOGS_ANSWER_BYTES;
    Ok(Json(LogsAnswer { entries, truncated }))
}

/// `GET /api/events`: the grid events the server found, newest first. Device events are read
/// for every device and joined ([`ogm_grid::join_events`]), so a grid event is the same whether
/// or not `device_id` narrows the answer to those it saw.
pub async fn events(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<EventParams>,
) -> Result<Json<EventsAnswer>, ApiError> {
    let device_id = match p.device_id.as_deref() {
        None | Some("") => None,
        d => Some(device_param(d)?),
    };
    let (start, stop) = range(p.start.as_deref(), p.stop.as_deref(), "-30d")?;
    let limit = EVENT_LIMIT_PARAM.parse(p.limit.as_deref())? as usize;
    let rows = state
        .store
        .events(EventQuery {
            device_id: None,
            start_us: start,
            stop_us: stop,
            limit: MAX_DEVICE_EVENTS_READ,
        })
        .await?;
    let capped = rows.len() == MAX_DEVICE_EVENTS_READ as usize;
    let nominal_hz = f64::from(state.config.nominal_hz);
    let mut grid = ogm_grid::join_events(rows.into_iter().map(device_event), nominal_hz);
    grid.retain(|g| {
        device_id
            .as_ref()
            .is_none_or(|d| g.devices.iter().any(|(id, _)| id == d))
    });
    grid.reverse();
    let more = capped || grid.len() > limit;
    grid.truncate(limit);
    let events = grid
        .into_iter()
        .map(|g| GridEventView {
            start_us: g.start_us,
            end_us: g.end_us,
            last_us: g.last_us,
            extreme_hz: g.extreme_hz,
            extreme_mhz: g.extreme_mhz(nominal_hz),
            device_id: g.device,
            rocof: g.rocof,
            frequency: g.frequency,
            devices: g
                .devices
                .into_iter()
                .map(|(device_id, extreme_hz)| EventDevice {
                    device_id,
                    extreme_hz,
                })
                .collect(),
        })
        .collect();
    Ok(Json(EventsAnswer { events, more }))
}

/// `GET /api/alerts`: active alerts and the last resolved ones, with their deliveries.
pub async fn alerts(State(state): State<AppState>) -> Result<Json<AlertsAnswer>, ApiError> {
    let Some(alerts) = state.alerts.clone() else {
        return Ok(Json(AlertsAnswer {
            enabled: false,
            active: Vec::new(),
            past: Vec::new(),
        }));
    };
    let answer = tokio::task::spawn_blocking(move || alerts.answer())
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?
        .map_err(ApiError::Internal)?;
    Ok(Json(answer))
}

/// `GET /api/export.csv`: raw measurements, streamed as they are read.
pub async fn export_csv(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ExportParams>,
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

/// What `POST /api/flux` answers while the proxy is off (`--flux-proxy`).
pub const FLUX_PROXY_OFF: &str = "the Flux proxy is off (OGM_FLUX_PROXY=true turns it on; put the \
    API behind authentication first: a Flux query can make InfluxDB compute without bound)";

/// Logged at start when the proxy is on.
pub const FLUX_PROXY_ON_WARNING: &str = "the Flux proxy (POST /api/flux) is on: put the API \
    behind authentication, a Flux query can make InfluxDB compute without bound";

/// `POST /api/flux` while the proxy is off: 503 at once, like the proxy without a read-only
/// token, without reading the body or taking a data slot (the router mounts it outside them).
pub async fn flux_off() -> ApiError {
    ApiError::Unavailable(FLUX_PROXY_OFF.into())
}

/// `POST /api/flux`: the body is a Flux query; the answer is InfluxDB's annotated CSV, streamed.
/// The store decides what may run (`ogm_store_influx::flux_guard`: 400 with the reason) and
/// limits time and size; 503 when the proxy is off (no read-only token) or InfluxDB is down.
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
    let rx = state.store.flux(query).await.map_err(|e| match e {
        // The store's own words say what is off or down ("the Flux proxy is off: ...").
        StoreError::Unavailable(m) => ApiError::Unavailable(m.to_string()),
        e => ApiError::from(e),
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use ogm_protocol::fixtures;

    const T: i64 = 1_703_123_456_000_000;

    fn summary(last_m: Option<i64>, last_s: Option<(i64, Option<bool>)>) -> DeviceSummary {
        DeviceSummary {
            device_id: DeviceId::new("d").unwrap(),
            last_seen: last_m.max(last_s.map(|s| s.0)).unwrap_or(T),
            last_measurement: last_m.map(|t| fixtures::measurement(t, 50.0)),
            last_status: last_s.map(|(t, online)| fixtures::status(t, online)),
        }
    }

    fn one_hz() -> Presence {
        let mut p = Presence::default();
        for i in 0..5 {
            p.measurement(T + i * 1_000_000);
        }
        p
    }

    #[test]
    fn a_learnt_interval_sets_the_silence_limit() {
        let last = T + 4_000_000;
        let s = || summary(Some(last), None);
        let v = device_view(s(), Some(one_hz()), last + 5_000_000);
        assert_eq!(
            (v.state.map(DeviceState::as_str), v.online, v.interval_ms),
            (Some("online"), true, Some(1_000))
        );
        // Three seconds of a 1 Hz device, but never less than the floor of five.
        let v = device_view(s(), Some(one_hz()), last + 5_000_001);
        assert_eq!(
            (v.state.map(DeviceState::as_str), v.online),
            (Some("silent"), false)
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(
            (&json["state"], &json["online"], &json["interval_ms"]),
            (&"silent".into(), &false.into(), &1000.into())
        );
        assert_eq!(
            json["device_id"], "d",
            "the store's fields stay as they were"
        );
    }

    #[test]
    fn without_a_learnt_interval_silence_is_thirty_seconds() {
        let v = device_view(summary(Some(T), None), None, T + 30_000_000);
        assert_eq!(
            (v.state.map(DeviceState::as_str), v.interval_ms),
            (Some("online"), None)
        );
        let json = serde_json::to_value(&v).unwrap();
        assert!(json.get("interval_ms").is_none(), "{json}");
        let v = device_view(summary(Some(T), None), None, T + 30_000_001);
        assert_eq!(v.state, Some(DeviceState::Silent));
    }

    #[test]
    fn the_last_will_is_the_last_word_in_arrival_order_else_in_the_store() {
        // The will is stamped when the device connected, before its measurements.
        let mut p = one_hz();
        p.status(T - 1_000_000, Some(false));
        let s = summary(Some(T + 4_000_000), Some((T + 2_000_000, Some(true))));
        let v = device_view(s.clone(), Some(p), T + 4_000_000);
        assert_eq!(
            (v.state.map(DeviceState::as_str), v.online),
            (Some("offline"), false)
        );
        // Nothing seen since a restart: the store's newest status decides, unless a
        // measurement is newer.
        let will = summary(Some(T), Some((T + 1, Some(false))));
        assert_eq!(
            device_view(will, None, T + 1).state,
            Some(DeviceState::Offline)
        );
        let back = summary(Some(T + 2), Some((T + 1, Some(false))));
        assert_eq!(
            device_view(back, None, T + 2).state,
            Some(DeviceState::Online)
        );
        assert_eq!(
            device_view(s, None, T + 4_000_000).state,
            Some(DeviceState::Online)
        );
    }
}
