//! The server's HTTP API as the page reads it: request URLs and answers. Pure.
//!
//! `GET /api/history`, `GET /api/logs`, `GET /api/devices` and the `GET /api/export.csv` link.
//! Answers are parsed leniently (unknown fields ignored) and every failure is a sentence for the
//! page, never a panic.

use ogm_protocol::{DeviceId, LogLevel, Measurement, Status};
use serde::Deserialize;

use crate::series::Sample;

/// A field of `/api/history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Frequency,
    Voltage,
    Current,
    Power,
}

impl Field {
    pub const ALL: [Field; 4] = [
        Field::Frequency,
        Field::Voltage,
        Field::Current,
        Field::Power,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Frequency => "frequency",
            Field::Voltage => "voltage",
            Field::Current => "current",
            Field::Power => "power",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Field::Frequency => "Frequency",
            Field::Voltage => "Voltage",
            Field::Current => "Current",
            Field::Power => "Power",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Field::Frequency => "Hz",
            Field::Voltage => "V",
            Field::Current => "A",
            Field::Power => "W",
        }
    }

    /// This field of a measurement.
    pub fn of(self, m: &Measurement) -> f64 {
        match self {
            Field::Frequency => m.frequency,
            Field::Voltage => m.voltage,
            Field::Current => m.current,
            Field::Power => m.power,
        }
    }
}

/// `GET /api/history`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HistoryAnswer {
    pub start: i64,
    pub stop: i64,
    /// 0: raw points.
    pub interval_us: i64,
    pub points: Vec<Sample>,
}

impl HistoryAnswer {
    pub fn from_json(body: &str) -> Result<Self, String> {
        serde_json::from_str(body).map_err(|e| format!("bad /api/history answer: {e}"))
    }
}

/// One entry of `GET /api/logs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LogRow {
    pub t: i64,
    pub device_id: DeviceId,
    pub level: LogLevel,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub module: String,
}

/// `GET /api/logs`' answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LogsAnswer {
    /// Newest first.
    pub entries: Vec<LogRow>,
    /// The server stopped at its byte budget before the `limit` asked for: older entries may
    /// follow, as after a full page.
    #[serde(default)]
    pub truncated: bool,
}

/// `GET /api/logs`' answer.
pub fn logs_from_json(body: &str) -> Result<LogsAnswer, String> {
    serde_json::from_str(body).map_err(|e| format!("bad /api/logs answer: {e}"))
}

/// One device of `GET /api/devices`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeviceView {
    pub device_id: DeviceId,
    /// Newest timestamp of anything it sent, µs.
    pub last_seen: i64,
    /// True only while [`Self::state`] is `online`.
    pub online: bool,
    /// `online`, `silent` or `offline` (`ogm_protocol::liveness`); absent from older servers.
    #[serde(default)]
    pub state: Option<String>,
    /// The interval the server learnt from its measurements, ms; absent when not known yet.
    #[serde(default)]
    pub interval_ms: Option<i64>,
    #[serde(default)]
    pub last_measurement: Option<Measurement>,
    #[serde(default)]
    pub last_status: Option<Status>,
}

/// `GET /api/devices`' answer. Entries that do not parse are skipped.
pub fn devices_from_json(body: &str) -> Result<Vec<DeviceView>, String> {
    let raw: Vec<serde_json::Value> =
        serde_json::from_str(body).map_err(|e| format!("bad /api/devices answer: {e}"))?;
    Ok(raw
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

/// `/api/history?…`.
pub fn history_url(
    device: &DeviceId,
    field: Field,
    start_us: i64,
    stop_us: i64,
    max_points: usize,
) -> String {
    format!(
        "/api/history?device_id={device}&field={}&start={start_us}&stop={stop_us}&max_points={}",
        field.as_str(),
        max_points.clamp(1, 10_000)
    )
}

/// `/api/logs?…`, newest first, older than `stop_us` when given.
pub fn logs_url(
    device: Option<&DeviceId>,
    level: Option<LogLevel>,
    stop_us: Option<i64>,
    limit: u32,
) -> String {
    let mut url = format!("/api/logs?limit={limit}&start=-30d");
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

/// `/api/export.csv?…`: the raw measurements of the range on screen.
pub fn export_url(device: &DeviceId, start_us: i64, stop_us: i64) -> String {
    format!("/api/export.csv?device_id={device}&start={start_us}&stop={stop_us}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_answers_parse() {
        let a = HistoryAnswer::from_json(
            r#"{"device_id":"d","field":"frequency","start":1,"stop":9,"interval_us":4000000,
               "points":[{"t":0,"min":49.9,"mean":50.0,"max":50.1,"count":40}]}"#,
        )
        .unwrap();
        assert_eq!(a.interval_us, 4_000_000);
        assert_eq!(a.points[0].max, 50.1);
        assert_eq!(a.points[0].first, 0);
        assert!(HistoryAnswer::from_json("{\"error\":\"x\"}").is_err());
    }

    #[test]
    fn logs_and_devices_parse() {
        let l = logs_from_json(
            r#"{"entries":[{"t":5,"device_id":"d","level":"WARN","message":"m","module":"x"}],
                "truncated":true}"#,
        )
        .unwrap();
        assert_eq!((l.entries[0].level, l.truncated), (LogLevel::Warn, true));
        assert!(logs_from_json(r#"{"entries":[]}"#).is_ok_and(|l| !l.truncated));
        let d = devices_from_json(
            r#"[{"device_id":"a","last_seen":7,"online":false,"last_measurement":null,
                 "last_status":{"timestamp":7,"rssi":-50,"free_heap":1000,"online":false}},
                {"device_id":"bad.id","last_seen":1,"online":true},
                {"device_id":"b","last_seen":8,"online":false,"state":"silent",
                 "interval_ms":1000}]"#,
        )
        .unwrap();
        assert_eq!(d.len(), 2, "an entry that does not parse is skipped");
        assert_eq!(d[0].last_status.as_ref().unwrap().rssi, -50);
        assert_eq!((d[0].state.as_deref(), d[0].interval_ms), (None, None));
        assert_eq!(
            (d[1].state.as_deref(), d[1].interval_ms),
            (Some("silent"), Some(1000))
        );
    }

    #[test]
    fn urls() {
        let d = DeviceId::new("sim-01").unwrap();
        assert_eq!(
            history_url(&d, Field::Power, 1, 2, 0),
            "/api/history?device_id=sim-01&field=power&start=1&stop=2&max_points=1"
        );
        assert_eq!(
            logs_url(Some(&d), Some(LogLevel::Warn), Some(9), 200),
            "/api/logs?limit=200&start=-30d&device_id=sim-01&level=WARN&stop=9"
        );
        assert_eq!(
            export_url(&d, 1, 2),
            "/api/export.csv?device_id=sim-01&start=1&stop=2"
        );
    }
}
