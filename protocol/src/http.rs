//! The HTTP API's contract, written once: the server answers with these types and the dashboard
//! reads them. Route paths ([`path`]), the limits a request must keep ([`MAX_POINTS`] …), the
//! query parameters ([`HistoryParams`], [`LogParams`], [`ExportParams`], [`EventParams`]) and the URLs that carry
//! them, and the answers ([`ConfigAnswer`], [`DeviceView`], [`HistoryAnswer`], [`LogsAnswer`]).
//!
//! Answers are read leniently (unknown fields are ignored, fields an older server did not send
//! have defaults), so the server can grow without breaking a page that is still open.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::{DeviceId, DeviceState, GridArea, LogEntry, LogLevel, Measurement, Status};

/// Every route path of the server. The API's routes are relative to [`path::API`].
pub mod path {
    /// Prefix of the JSON API.
    pub const API: &str = "/api";
    /// `GET`: what the dashboard needs to connect to the broker ([`super::ConfigAnswer`]).
    pub const CONFIG: &str = "/config";
    /// `GET`: liveness and readiness.
    pub const HEALTH: &str = "/health";
    /// `GET`: every device with its latest values ([`super::DeviceView`]).
    pub const DEVICES: &str = "/devices";
    /// `GET`: min/mean/max buckets of one field of one device ([`super::HistoryAnswer`]).
    pub const HISTORY: &str = "/history";
    /// `GET`: device logs, newest first ([`super::LogsAnswer`]).
    pub const LOGS: &str = "/logs";
    /// `GET`: raw measurements as CSV.
    pub const EXPORT_CSV: &str = "/export.csv";
    /// `GET`: the grid events the server found, newest first ([`super::EventsAnswer`]).
    pub const EVENTS: &str = "/events";
    /// `GET`: active and past alerts with their deliveries ([`super::AlertsAnswer`]).
    pub const ALERTS: &str = "/alerts";
    /// `POST`: a Flux query, proxied to InfluxDB.
    pub const FLUX: &str = "/flux";
    /// `GET`: the last rejected messages.
    pub const INGEST_REJECTED: &str = "/ingest/rejected";
    /// `GET`: rejections since start, counted by device and reason.
    pub const INGEST_REJECTED_DEVICES: &str = "/ingest/rejected/devices";
    /// `GET`: Prometheus metrics (outside `/api`).
    pub const METRICS: &str = "/metrics";
    /// The API routes the dashboard calls, under [`API`].
    pub const PAGE_ROUTES: [&str; 7] = [CONFIG, DEVICES, HISTORY, LOGS, EXPORT_CSV, EVENTS, ALERTS];
}

/// Largest `max_points` of a history request.
pub const MAX_POINTS: u32 = 10_000;
/// `max_points` when not given.
pub const DEFAULT_MAX_POINTS: u32 = 1_000;
/// Most log entries one request returns.
pub const MAX_LOG_LIMIT: u32 = 10_000;
/// `limit` of a log request when not given.
pub const DEFAULT_LOG_LIMIT: u32 = 200;
/// Largest `/api/logs` answer, bytes (bounded by the entries' [`LogRow::weight`]): past it the
/// answer stops and says so ([`LogsAnswer::truncated`]), and the client asks again for what is
/// older.
pub const MAX_LOGS_ANSWER_BYTES: usize = 1 << 20;
/// Longest range a request may name: 20 years, µs.
pub const MAX_RANGE_US: i64 = 20 * 366 * 86_400_000_000;

/// A field whose history can be asked for, spelled as [`Field::as_str`] says (in JSON too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Frequency,
    Voltage,
    Current,
    Power,
    Rssi,
    FreeHeap,
}

impl Field {
    pub const ALL: [Field; 6] = [
        Field::Frequency,
        Field::Voltage,
        Field::Current,
        Field::Power,
        Field::Rssi,
        Field::FreeHeap,
    ];

    /// The fields of a measurement: the device page's charts.
    pub const MEASURED: [Field; 4] = [
        Field::Frequency,
        Field::Voltage,
        Field::Current,
        Field::Power,
    ];

    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Frequency => "frequency",
            Field::Voltage => "voltage",
            Field::Current => "current",
            Field::Power => "power",
            Field::Rssi => "rssi",
            Field::FreeHeap => "free_heap",
        }
    }

    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// Whether the field comes from measurements (else from status messages).
    pub fn is_measurement(self) -> bool {
        Field::MEASURED.contains(&self)
    }

    /// Its name in a title.
    pub fn title(self) -> &'static str {
        match self {
            Field::Frequency => "Frequency",
            Field::Voltage => "Voltage",
            Field::Current => "Current",
            Field::Power => "Power",
            Field::Rssi => "RSSI",
            Field::FreeHeap => "Free heap",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Field::Frequency => "Hz",
            Field::Voltage => "V",
            Field::Current => "A",
            Field::Power => "W",
            Field::Rssi => "dBm",
            Field::FreeHeap => "B",
        }
    }

    /// This field of a measurement (None for a field of status messages).
    pub fn of(self, m: &Measurement) -> Option<f64> {
        match self {
            Field::Frequency => Some(m.frequency),
            Field::Voltage => Some(m.voltage),
            Field::Current => Some(m.current),
            Field::Power => Some(m.power),
            Field::Rssi | Field::FreeHeap => None,
        }
    }
}

spelled_by_as_str!(Field, "unknown field");

/// `GET /api/config`: what the dashboard needs to connect to the broker by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigAnswer {
    /// The broker's MQTT-over-WebSocket URL, `ws://…` or `wss://…`.
    pub mqtt_ws_url: String,
    /// The read-only dashboard user; empty for none.
    #[serde(default)]
    pub mqtt_username: String,
    /// Its password (public by design); empty for none.
    #[serde(default)]
    pub mqtt_password: String,
    /// First topic level of every device topic.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Nominal grid frequency, Hz (50 or 60).
    #[serde(default = "default_nominal")]
    pub nominal_hz: u32,
    /// The synchronous area whose bands the dashboard draws: `ce`, `gb` or `nordic` (one the
    /// page does not know falls back to Continental Europe's).
    #[serde(default)]
    pub grid_area: String,
}

fn default_prefix() -> String {
    String::from(crate::TOPIC_PREFIX)
}

fn default_nominal() -> u32 {
    50
}

impl ConfigAnswer {
    /// Parses and checks an answer; the error is a sentence for the page.
    pub fn from_json(body: &str) -> Result<Self, String> {
        let c: Self =
            serde_json::from_str(body).map_err(|e| format!("bad /api/config answer: {e}"))?;
        if !(c.mqtt_ws_url.starts_with("ws://") || c.mqtt_ws_url.starts_with("wss://")) {
            return Err(format!(
                "mqtt_ws_url must start with ws:// or wss://, not {:?}",
                c.mqtt_ws_url
            ));
        }
        if c.topic_prefix.is_empty()
            || c.topic_prefix.ends_with('/')
            || c.topic_prefix.contains(['+', '#'])
        {
            return Err(format!("bad topic_prefix {:?}", c.topic_prefix));
        }
        if !(40..=70).contains(&c.nominal_hz) {
            return Err(format!(
                "nominal_hz {} is not a grid frequency",
                c.nominal_hz
            ));
        }
        Ok(c)
    }

    /// The synchronous area the server is set to.
    pub fn area(&self) -> GridArea {
        GridArea::parse(&self.grid_area).unwrap_or_default()
    }

    /// The username to send, if any.
    pub fn username(&self) -> Option<String> {
        Some(self.mqtt_username.clone()).filter(|s| !s.is_empty())
    }

    /// The password to send, if any.
    pub fn password(&self) -> Option<String> {
        Some(self.mqtt_password.clone()).filter(|s| !s.is_empty())
    }
}

/// One device of `GET /api/devices`: what the store knows of it and the liveness rule's
/// verdict ([`crate::liveness`], the dashboard's rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    pub device_id: DeviceId,
    /// The newest timestamp of anything it sent, µs.
    pub last_seen: i64,
    #[serde(default)]
    pub last_measurement: Option<Measurement>,
    #[serde(default)]
    pub last_status: Option<Status>,
    /// True only when [`Self::state`] is online (kept for older clients).
    pub online: bool,
    /// Absent from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DeviceState>,
    /// The usual interval between its messages as learnt from their timestamps, ms; absent
    /// until known (the rule then assumes 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<i64>,
}

impl DeviceView {
    /// `GET /api/devices`' answer. Entries that do not parse are skipped.
    pub fn list_from_json(body: &str) -> Result<Vec<DeviceView>, String> {
        let raw: Vec<&serde_json::value::RawValue> =
            serde_json::from_str(body).map_err(|e| format!("bad /api/devices answer: {e}"))?;
        Ok(raw
            .into_iter()
            .filter_map(|v| serde_json::from_str(v.get()).ok())
            .collect())
    }
}

/// Every refusal: `{"error": "..."}`, a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    pub error: String,
}

/// The query of `GET /api/history`, as sent (the server checks each parameter and says which
/// one is wrong; absent ones take their defaults: `frequency`, the last hour,
/// [`DEFAULT_MAX_POINTS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HistoryParams {
    pub device_id: Option<String>,
    pub field: Option<String>,
    pub start: Option<String>,
    pub stop: Option<String>,
    pub max_points: Option<String>,
}

impl HistoryParams {
    /// `/api/history?…` for `field` of `device` from `start_us` to `stop_us` (µs), in at most
    /// `max_points` buckets (clamped to 1 ..= [`MAX_POINTS`]).
    pub fn url(
        device: &DeviceId,
        field: Field,
        start_us: i64,
        stop_us: i64,
        max_points: usize,
    ) -> String {
        let max_points = max_points.clamp(1, MAX_POINTS as usize);
        format!(
            "{}{}?device_id={device}&field={}&start={start_us}&stop={stop_us}&max_points={max_points}",
            path::API,
            path::HISTORY,
            field.as_str(),
        )
    }
}

/// One bucket of a history answer; with [`HistoryAnswer::interval_us`] 0 each bucket is one raw
/// point (min == mean == max, count 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Bucket start (or the raw point's timestamp), µs.
    pub t: i64,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    pub count: u64,
}

/// `GET /api/history`'s answer: at most `max_points` buckets, oldest first, empty buckets
/// left out. `P` is how the reader takes a bucket (the server writes [`Bucket`]s; the
/// dashboard reads them straight into its own samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryAnswer<P = Bucket> {
    pub device_id: DeviceId,
    pub field: Field,
    pub start: i64,
    pub stop: i64,
    /// The buckets' width, µs; 0: raw points.
    pub interval_us: i64,
    pub points: Vec<P>,
}

impl<P: serde::de::DeserializeOwned> HistoryAnswer<P> {
    pub fn from_json(body: &str) -> Result<Self, String> {
        serde_json::from_str(body).map_err(|e| format!("bad /api/history answer: {e}"))
    }
}

/// The query of `GET /api/logs`, as sent (absent: every device, every level, the last 7 days,
/// [`DEFAULT_LOG_LIMIT`] entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct LogParams {
    pub device_id: Option<String>,
    pub level: Option<String>,
    pub start: Option<String>,
    pub stop: Option<String>,
    pub limit: Option<String>,
}

impl LogParams {
    /// `/api/logs?…` for the last 30 days, newest first, older than `stop_us` when given.
    pub fn url(
        device: Option<&DeviceId>,
        level: Option<LogLevel>,
        stop_us: Option<i64>,
        limit: u32,
    ) -> String {
        let mut url = format!("{}{}?limit={limit}&start=-30d", path::API, path::LOGS);
        if let Some(d) = device {
            url.push_str(&format!("&device_id={d}"));
        }
        if let Some(l) = level {
            url.push_str(&format!("&level={}", l.as_str()));
        }
        if let Some(s) = stop_us {
            url.push_str(&format!("&stop={s}"));
        }
        url
    }
}

/// One stored log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    pub t: i64,
    pub device_id: DeviceId,
    pub level: LogLevel,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub module: String,
}

impl LogRow {
    pub fn new(device_id: DeviceId, e: LogEntry) -> Self {
        Self {
            t: e.timestamp,
            device_id,
            level: e.level,
            message: e.message,
            module: e.module,
        }
    }

    /// An upper bound of the entry's size in JSON: its texts as JSON escapes them, and 96 bytes
    /// for the rest (the names, the time, the level). What [`MAX_LOGS_ANSWER_BYTES`] counts.
    pub fn weight(&self) -> usize {
        96 + self.device_id.len() + json_escaped_len(&self.message) + json_escaped_len(&self.module)
    }
}

/// The length of `s` in a JSON string, without the quotes: `"` and `\` and the control
/// characters with a short escape take two bytes, other control characters six (`\u001f`).
fn json_escaped_len(s: &str) -> usize {
    s.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

/// `GET /api/logs`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogsAnswer {
    /// Newest first.
    pub entries: Vec<LogRow>,
    /// The answer stopped at [`MAX_LOGS_ANSWER_BYTES`] before `limit` entries: older entries
    /// may follow (ask again with `stop` after the oldest entry's `t`).
    #[serde(default)]
    pub truncated: bool,
}

impl LogsAnswer {
    pub fn from_json(body: &str) -> Result<Self, String> {
        serde_json::from_str(body).map_err(|e| format!("bad /api/logs answer: {e}"))
    }
}

/// Most grid events in one `/api/events` answer.
pub const MAX_EVENT_LIMIT: u32 = 1_000;
/// `limit` of `/api/events` when not given.
pub const DEFAULT_EVENT_LIMIT: u32 = 100;

/// The query of `GET /api/events`, as sent (absent: every device, the last 30 days,
/// [`DEFAULT_EVENT_LIMIT`] events). `device_id` keeps the grid events that device saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EventParams {
    pub device_id: Option<String>,
    pub start: Option<String>,
    pub stop: Option<String>,
    pub limit: Option<String>,
}

impl EventParams {
    /// `/api/events?…` from `start_us` to `stop_us` (µs), newest first.
    pub fn url(device: Option<&DeviceId>, start_us: i64, stop_us: i64, limit: u32) -> String {
        let mut url = format!(
            "{}{}?start={start_us}&stop={stop_us}&limit={limit}",
            path::API,
            path::EVENTS
        );
        if let Some(d) = device {
            url.push_str(&format!("&device_id={d}"));
        }
        url
    }
}

/// One device's part in a grid event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDevice {
    pub device_id: DeviceId,
    /// The reading farthest from nominal it saw, Hz.
    pub extreme_hz: f64,
}

/// One disturbance as the server saw it: the events of every device that start within 10 s of
/// each other, joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridEventView {
    /// The earliest start, µs.
    pub start_us: i64,
    /// The latest end, µs; None while it lasts.
    pub end_us: Option<i64>,
    /// The latest reading inside it, µs.
    pub last_us: i64,
    /// The reading farthest from nominal, Hz, and the device that read it.
    pub extreme_hz: f64,
    pub extreme_mhz: f64,
    pub device_id: DeviceId,
    /// Largest |RoCoF|, Hz/s (signed).
    pub rocof: Option<f64>,
    /// Whether the frequency left the event band (else only RoCoF did).
    pub frequency: bool,
    /// Every device that saw it.
    pub devices: Vec<EventDevice>,
}

/// `GET /api/events`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsAnswer {
    /// Newest first.
    pub events: Vec<GridEventView>,
    /// Older events may follow: ask again with `stop` at the oldest event's `start_us`.
    #[serde(default)]
    pub more: bool,
}

impl EventsAnswer {
    pub fn from_json(body: &str) -> Result<Self, String> {
        serde_json::from_str(body).map_err(|e| format!("bad /api/events answer: {e}"))
    }
}

/// One notification of an alert: what a webhook receives as JSON (`format = "json"`), what the
/// MQTT channel publishes retained, and what an e-mail says in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertNotice {
    /// `{alert id}-{state}`: the same for every retry of this notification, so a receiver can
    /// drop a second copy.
    pub id: String,
    pub alert_id: i64,
    /// The rule's name and kind (`frequency`, `rocof`, `grid_time`, `silent`, `clock`, `server`).
    pub rule: String,
    pub kind: String,
    /// `grid`, `server` or a device id.
    pub subject: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// When the condition began, µs.
    pub started_us: i64,
    /// When it fired (or resolved), µs.
    pub at_us: i64,
    /// The value farthest from normal so far, its unit, and the device that read it.
    pub extreme: f64,
    pub unit: String,
    pub device_id: Option<String>,
    /// One line for people.
    pub summary: String,
    /// The dashboard's view of it.
    pub link: String,
}

/// One channel's delivery of one notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryView {
    pub channel: String,
    /// `firing` or `resolved`.
    pub state: String,
    pub attempts: u32,
    pub delivered_us: Option<i64>,
    pub last_error: Option<String>,
    /// Retried for a day without success.
    pub gave_up: bool,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    pub id: i64,
    pub rule: String,
    pub kind: String,
    pub subject: String,
    pub started_us: i64,
    pub fired_us: i64,
    /// None while active.
    pub resolved_us: Option<i64>,
    pub extreme: f64,
    pub unit: String,
    pub device_id: Option<String>,
    pub summary: String,
    pub link: String,
    /// False when the rule's rate limit held it back (recorded, not sent).
    pub notified: bool,
    pub deliveries: Vec<DeliveryView>,
}

/// `GET /api/alerts`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsAnswer {
    /// Whether the server has alert rules at all.
    pub enabled: bool,
    /// Active alerts, newest first.
    pub active: Vec<AlertView>,
    /// Resolved alerts, newest first (the last 100).
    pub past: Vec<AlertView>,
}

impl AlertsAnswer {
    pub fn from_json(body: &str) -> Result<Self, String> {
        serde_json::from_str(body).map_err(|e| format!("bad /api/alerts answer: {e}"))
    }
}

/// The query of `GET /api/export.csv`, as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ExportParams {
    pub device_id: Option<String>,
    pub start: Option<String>,
    pub stop: Option<String>,
}

impl ExportParams {
    /// `/api/export.csv?…`: the raw measurements of `device` from `start_us` to `stop_us`.
    pub fn url(device: &DeviceId, start_us: i64, stop_us: i64) -> String {
        format!(
            "{}{}?device_id={device}&start={start_us}&stop={stop_us}",
            path::API,
            path::EXPORT_CSV
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_through_their_names() {
        assert_eq!(
            Field::ALL.map(|f| Field::parse(f.as_str())),
            Field::ALL.map(Some)
        );
        let json = serde_json::to_string(&Field::ALL).unwrap();
        assert_eq!(
            json,
            r#"["frequency","voltage","current","power","rssi","free_heap"]"#
        );
        assert_eq!(
            serde_json::from_str::<[Field; 6]>(&json).unwrap(),
            Field::ALL
        );
        assert!(Field::MEASURED.iter().all(|f| f.is_measurement()));
        assert!(!Field::Rssi.is_measurement());
        assert_eq!(Field::parse("Frequency"), None);
        assert!(serde_json::from_str::<Field>("\"Frequency\"").is_err());
    }

    #[test]
    fn the_device_state_is_spelled_as_the_api_spells_it() {
        for s in [
            DeviceState::Online,
            DeviceState::Silent,
            DeviceState::Offline,
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<DeviceState>(&json).unwrap(), s);
        }
    }

    #[test]
    fn history_answers_parse_into_any_bucket_type() {
        let body = r#"{"device_id":"d","field":"frequency","start":1,"stop":9,"interval_us":4000000,
               "points":[{"t":0,"min":49.9,"mean":50.0,"max":50.1,"count":40}]}"#;
        let a = HistoryAnswer::<Bucket>::from_json(body).unwrap();
        assert_eq!(a.interval_us, 4_000_000);
        assert_eq!(a.points[0].max, 50.1);
        assert_eq!(a.field, Field::Frequency);
        let again = serde_json::to_string(&a).unwrap();
        assert_eq!(HistoryAnswer::<Bucket>::from_json(&again).unwrap(), a);
        assert!(HistoryAnswer::<Bucket>::from_json("{\"error\":\"x\"}").is_err());
    }

    #[test]
    fn logs_and_devices_parse() {
        let l = LogsAnswer::from_json(
            r#"{"entries":[{"t":5,"device_id":"d","level":"WARN","message":"m","module":"x"}],
                "truncated":true}"#,
        )
        .unwrap();
        assert_eq!((l.entries[0].level, l.truncated), (LogLevel::Warn, true));
        assert!(LogsAnswer::from_json(r#"{"entries":[]}"#).is_ok_and(|l| !l.truncated));
        let d = DeviceView::list_from_json(
            r#"[{"device_id":"a","last_seen":7,"online":false,"last_measurement":null,
                 "last_status":{"timestamp":7,"rssi":-50,"free_heap":1000,"online":false}},
                {"device_id":"bad.id","last_seen":1,"online":true},
                {"device_id":"b","last_seen":8,"online":false,"state":"silent",
                 "interval_ms":1000}]"#,
        )
        .unwrap();
        assert_eq!(d.len(), 2, "an entry that does not parse is skipped");
        assert_eq!(d[0].last_status.as_ref().unwrap().rssi, -50);
        assert_eq!((d[0].state, d[0].interval_ms), (None, None));
        assert_eq!(
            (d[1].state, d[1].interval_ms),
            (Some(DeviceState::Silent), Some(1000))
        );
    }

    #[test]
    fn a_device_view_writes_its_state_and_leaves_out_what_is_unknown() {
        let v = DeviceView {
            device_id: DeviceId::new("d").unwrap(),
            last_seen: 1,
            last_measurement: None,
            last_status: None,
            online: true,
            state: Some(DeviceState::Online),
            interval_ms: None,
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"device_id":"d","last_seen":1,"last_measurement":null,"last_status":null,"online":true,"state":"online"}"#
        );
    }

    #[test]
    fn urls_spell_the_paths_and_parameters() {
        let d = DeviceId::new("sim-01").unwrap();
        assert_eq!(
            HistoryParams::url(&d, Field::Power, 1, 2, 0),
            "/api/history?device_id=sim-01&field=power&start=1&stop=2&max_points=1"
        );
        assert_eq!(
            HistoryParams::url(&d, Field::Power, 1, 2, 1 << 20),
            "/api/history?device_id=sim-01&field=power&start=1&stop=2&max_points=10000"
        );
        assert_eq!(
            LogParams::url(Some(&d), Some(LogLevel::Warn), Some(9), 200),
            "/api/logs?limit=200&start=-30d&device_id=sim-01&level=WARN&stop=9"
        );
        assert_eq!(
            ExportParams::url(&d, 1, 2),
            "/api/export.csv?device_id=sim-01&start=1&stop=2"
        );
        for route in path::PAGE_ROUTES {
            assert!(
                route.starts_with('/') && !route.starts_with(path::API),
                "{route}"
            );
        }
    }

    #[test]
    fn config_answers_are_checked() {
        let c = ConfigAnswer::from_json(
            r#"{"mqtt_ws_url":"ws://h:9001","mqtt_username":"ogm.dashboard","mqtt_password":"p","topic_prefix":"open_grid_monitor","nominal_hz":50,"extra":1}"#,
        )
        .unwrap();
        assert_eq!(c.nominal_hz, 50);
        assert_eq!(c.area(), GridArea::ContinentalEurope);
        assert_eq!(c.username().as_deref(), Some("ogm.dashboard"));
        let c =
            ConfigAnswer::from_json(r#"{"mqtt_ws_url":"wss://h/mqtt","grid_area":"gb"}"#).unwrap();
        assert_eq!(c.area(), GridArea::GreatBritain);
        assert_eq!(c.topic_prefix, "open_grid_monitor");
        assert_eq!((c.username(), c.password()), (None, None));
        for bad in [
            "",
            "{}",
            r#"{"mqtt_ws_url":"http://h"}"#,
            r#"{"mqtt_ws_url":"ws://h","topic_prefix":"a/#"}"#,
            r#"{"mqtt_ws_url":"ws://h","nominal_hz":0}"#,
            r#"{"mqtt_ws_url":"ws://h","nominal_hz":50.5}"#,
        ] {
            assert!(ConfigAnswer::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_log_row_weighs_at_least_its_json() {
        let row = LogRow {
            t: 1_703_123_456_789_123,
            device_id: DeviceId::new("dev-1").unwrap(),
            level: LogLevel::Error,
            message: "quote \" backslash \\ newline \n bell \u{7}".into(),
            module: "m".into(),
        };
        assert!(row.weight() >= serde_json::to_string(&row).unwrap().len());
    }
}
