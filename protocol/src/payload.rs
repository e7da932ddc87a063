//! The seed's three payloads, decoded with typed errors and plausibility checks.
//!
//! Decoding is strict about types and ranges and lenient about extra fields, so newer firmware
//! can add fields without breaking older servers. A missing or implausible device timestamp is
//! not an error: the caller passes its receive time and learns, through [`TimestampFix`], that
//! it was used instead.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::topic::Kind;

/// Largest payload accepted, in bytes. The broker's `message_size_limit` is larger, so an
/// oversized message still reaches us and is counted rather than vanishing.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// 2020-01-01T00:00:00Z in µs: device clocks before this have not been set by SNTP.
pub const MIN_PLAUSIBLE_TIMESTAMP_US: i64 = 1_577_836_800_000_000;
/// How far a device clock may run ahead of the receiver's before its timestamp is replaced.
pub const MAX_CLOCK_AHEAD_US: i64 = 5 * 60 * 1_000_000;
/// Longest log message and module name accepted, in bytes.
pub const MAX_LOG_TEXT: usize = 4096;

/// One reading from the metering chip. Topic `…/{device_id}/measurement`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// µs since the Unix epoch.
    pub timestamp: i64,
    /// Hz.
    pub frequency: f64,
    /// V RMS.
    pub voltage: f64,
    /// A RMS.
    pub current: f64,
    /// W, active power; negative when exporting.
    pub power: f64,
}

/// Device health. Topic `…/{device_id}/status`, retained; the last will sets `online: false`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// µs since the Unix epoch.
    pub timestamp: i64,
    /// WiFi signal, dBm.
    pub rssi: i32,
    /// Bytes.
    pub free_heap: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// Percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery: Option<f64>,
    /// Readings the device dropped from its offline buffer since boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
}

/// A log line from a device. Topic `…/{device_id}/logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// µs since the Unix epoch.
    pub timestamp: i64,
    pub level: LogLevel,
    pub message: String,
    pub module: String,
}

/// Log severity; accepted in any letter case, written upper case as the seed does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub const ALL: [LogLevel; 5] = [
        Self::Trace,
        Self::Debug,
        Self::Info,
        Self::Warn,
        Self::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "TRACE",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }

    /// Parses a level in any case; `WARNING` and `ERR` are accepted as aliases.
    pub fn parse(s: &str) -> Option<Self> {
        let eq = |a: &str| s.eq_ignore_ascii_case(a);
        Some(if eq("TRACE") || eq("VERBOSE") {
            Self::Trace
        } else if eq("DEBUG") {
            Self::Debug
        } else if eq("INFO") {
            Self::Info
        } else if eq("WARN") || eq("WARNING") {
            Self::Warn
        } else if eq("ERROR") || eq("ERR") {
            Self::Error
        } else {
            return None;
        })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <alloc::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(alloc::format!(
                "unknown log level {s:?}; expected TRACE, DEBUG, INFO, WARN or ERROR"
            ))
        })
    }
}

/// Any of the three payloads.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Measurement(Measurement),
    Status(Status),
    Logs(LogEntry),
}

impl Payload {
    pub fn kind(&self) -> Kind {
        match self {
            Payload::Measurement(_) => Kind::Measurement,
            Payload::Status(_) => Kind::Status,
            Payload::Logs(_) => Kind::Logs,
        }
    }

    pub fn timestamp(&self) -> i64 {
        match self {
            Payload::Measurement(m) => m.timestamp,
            Payload::Status(s) => s.timestamp,
            Payload::Logs(l) => l.timestamp,
        }
    }

    /// Encodes as the JSON a device sends.
    pub fn to_json(&self) -> Vec<u8> {
        match self {
            Payload::Measurement(m) => m.to_json(),
            Payload::Status(s) => s.to_json(),
            Payload::Logs(l) => l.to_json(),
        }
    }
}

/// Whether the device's timestamp was used, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampFix {
    /// The device's own timestamp was plausible and kept.
    Kept,
    /// The payload had no timestamp; the receive time was used.
    Missing,
    /// The timestamp was before 2020 (clock not set); the receive time was used.
    TooOld,
    /// The timestamp was more than five minutes ahead; the receive time was used.
    InFuture,
}

impl TimestampFix {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kept => "kept",
            Self::Missing => "missing",
            Self::TooOld => "too_old",
            Self::InFuture => "in_future",
        }
    }
}

/// A decoded payload and what happened to its timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<T> {
    pub payload: T,
    pub timestamp_fix: TimestampFix,
}

/// Why a payload was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload is {len} bytes; the limit is {MAX_PAYLOAD_BYTES}")]
    TooLarge { len: usize },
    #[error("malformed JSON: {0}")]
    Malformed(String),
    #[error("unexpected JSON shape: {0}")]
    Schema(String),
    #[error("{field} {reason}")]
    OutOfRange {
        field: &'static str,
        reason: &'static str,
    },
}

impl PayloadError {
    /// A short stable name for counting rejections by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Malformed(_) => "malformed_json",
            Self::Schema(_) => "wrong_schema",
            Self::OutOfRange { .. } => "out_of_range",
        }
    }
}

impl From<serde_json::Error> for PayloadError {
    fn from(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        let msg = alloc::format!("{e}");
        match e.classify() {
            Category::Data => Self::Schema(msg),
            Category::Syntax | Category::Eof | Category::Io => Self::Malformed(msg),
        }
    }
}

/// Decodes a payload of `kind`; `now_us` is the receive time, used when the device's is unusable.
pub fn decode(kind: Kind, bytes: &[u8], now_us: i64) -> Result<Decoded<Payload>, PayloadError> {
    Ok(match kind {
        Kind::Measurement => Measurement::decode(bytes, now_us)?.map(Payload::Measurement),
        Kind::Status => Status::decode(bytes, now_us)?.map(Payload::Status),
        Kind::Logs => LogEntry::decode(bytes, now_us)?.map(Payload::Logs),
    })
}

impl<T> Decoded<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Decoded<U> {
        Decoded {
            payload: f(self.payload),
            timestamp_fix: self.timestamp_fix,
        }
    }
}

fn resolve_timestamp(ts: Option<i64>, now_us: i64) -> (i64, TimestampFix) {
    match ts {
        None => (now_us, TimestampFix::Missing),
        Some(t) if t < MIN_PLAUSIBLE_TIMESTAMP_US => (now_us, TimestampFix::TooOld),
        Some(t) if t > now_us.saturating_add(MAX_CLOCK_AHEAD_US) => {
            (now_us, TimestampFix::InFuture)
        }
        Some(t) => (t, TimestampFix::Kept),
    }
}

fn check_size(bytes: &[u8]) -> Result<(), PayloadError> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(PayloadError::TooLarge { len: bytes.len() });
    }
    Ok(())
}

fn in_range(field: &'static str, v: f64, lo: f64, hi: f64) -> Result<(), PayloadError> {
    if !v.is_finite() {
        return Err(PayloadError::OutOfRange {
            field,
            reason: "is not a finite number",
        });
    }
    if v < lo || v > hi {
        return Err(PayloadError::OutOfRange {
            field,
            reason: "is outside its plausible range",
        });
    }
    Ok(())
}

/// Plausible ranges. Wide enough for 50 and 60 Hz grids, islanded generators and exporting
/// homes; narrow enough to catch a device that sends garbage.
pub mod limits {
    pub const FREQUENCY_HZ: (f64, f64) = (1.0, 100.0);
    pub const VOLTAGE_V: (f64, f64) = (0.0, 1000.0);
    pub const CURRENT_A: (f64, f64) = (0.0, 1000.0);
    pub const POWER_W: (f64, f64) = (-1.0e6, 1.0e6);
    pub const RSSI_DBM: (i32, i32) = (-200, 50);
    pub const BATTERY_PERCENT: (f64, f64) = (0.0, 100.0);
}

#[derive(Deserialize)]
struct WireMeasurement {
    timestamp: Option<i64>,
    frequency: f64,
    voltage: f64,
    current: f64,
    power: f64,
}

impl Measurement {
    pub fn decode(bytes: &[u8], now_us: i64) -> Result<Decoded<Self>, PayloadError> {
        check_size(bytes)?;
        let w: WireMeasurement = serde_json::from_slice(bytes)?;
        use limits::*;
        in_range("frequency", w.frequency, FREQUENCY_HZ.0, FREQUENCY_HZ.1)?;
        in_range("voltage", w.voltage, VOLTAGE_V.0, VOLTAGE_V.1)?;
        in_range("current", w.current, CURRENT_A.0, CURRENT_A.1)?;
        in_range("power", w.power, POWER_W.0, POWER_W.1)?;
        let (timestamp, timestamp_fix) = resolve_timestamp(w.timestamp, now_us);
        Ok(Decoded {
            payload: Self {
                timestamp,
                frequency: w.frequency,
                voltage: w.voltage,
                current: w.current,
                power: w.power,
            },
            timestamp_fix,
        })
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct WireStatus {
    timestamp: Option<i64>,
    rssi: i32,
    free_heap: u64,
    #[serde(default)]
    online: Option<bool>,
    #[serde(default)]
    battery: Option<f64>,
    #[serde(default)]
    dropped: Option<u64>,
}

impl Status {
    pub fn decode(bytes: &[u8], now_us: i64) -> Result<Decoded<Self>, PayloadError> {
        check_size(bytes)?;
        let w: WireStatus = serde_json::from_slice(bytes)?;
        use limits::*;
        if w.rssi < RSSI_DBM.0 || w.rssi > RSSI_DBM.1 {
            return Err(PayloadError::OutOfRange {
                field: "rssi",
                reason: "is outside its plausible range",
            });
        }
        if let Some(b) = w.battery {
            in_range("battery", b, BATTERY_PERCENT.0, BATTERY_PERCENT.1)?;
        }
        let (timestamp, timestamp_fix) = resolve_timestamp(w.timestamp, now_us);
        Ok(Decoded {
            payload: Self {
                timestamp,
                rssi: w.rssi,
                free_heap: w.free_heap,
                online: w.online,
                battery: w.battery,
                dropped: w.dropped,
            },
            timestamp_fix,
        })
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct WireLogEntry {
    timestamp: Option<i64>,
    level: LogLevel,
    message: String,
    #[serde(default)]
    module: String,
}

impl LogEntry {
    pub fn decode(bytes: &[u8], now_us: i64) -> Result<Decoded<Self>, PayloadError> {
        check_size(bytes)?;
        let w: WireLogEntry = serde_json::from_slice(bytes)?;
        for (field, text) in [("message", &w.message), ("module", &w.module)] {
            if text.len() > MAX_LOG_TEXT {
                return Err(PayloadError::OutOfRange {
                    field,
                    reason: "is longer than 4096 bytes",
                });
            }
        }
        let (timestamp, timestamp_fix) = resolve_timestamp(w.timestamp, now_us);
        Ok(Decoded {
            payload: Self {
                timestamp,
                level: w.level,
                message: w.message,
                module: w.module,
            },
            timestamp_fix,
        })
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    const NOW: i64 = 1_703_123_456_789_123 + 1_000_000;

    #[test]
    fn seed_examples_decode_exactly() {
        let m = Measurement::decode(fixtures::MEASUREMENT.as_bytes(), NOW).unwrap();
        assert_eq!(m.timestamp_fix, TimestampFix::Kept);
        assert_eq!(
            m.payload,
            Measurement {
                timestamp: 1_703_123_456_789_123,
                frequency: 50.02,
                voltage: 230.5,
                current: 10.2,
                power: 2351.0
            }
        );
        let s = Status::decode(fixtures::STATUS.as_bytes(), NOW)
            .unwrap()
            .payload;
        assert_eq!((s.rssi, s.free_heap, s.online), (-45, 234_567, None));
        let l = LogEntry::decode(fixtures::LOGS.as_bytes(), NOW)
            .unwrap()
            .payload;
        assert_eq!(l.level, LogLevel::Info);
        assert_eq!(l.message, "Grid frequency measurement completed");
        assert_eq!(l.module, "ade7953");
    }

    #[test]
    fn encoding_round_trips_the_seed_examples() {
        for (kind, json) in fixtures::GOOD {
            let p = decode(kind, json.as_bytes(), NOW).unwrap().payload;
            let again = decode(kind, &p.to_json(), NOW).unwrap().payload;
            assert_eq!(p, again);
            let a: serde_json::Value = serde_json::from_str(json).unwrap();
            let b: serde_json::Value = serde_json::from_slice(&p.to_json()).unwrap();
            assert_eq!(a, b, "{kind:?} re-encodes to the seed's exact fields");
        }
    }

    #[test]
    fn every_bad_fixture_is_rejected_with_its_reason() {
        for (kind, name, bytes, reason) in fixtures::BAD {
            let err = decode(*kind, bytes, NOW).expect_err(name);
            assert_eq!(err.reason(), *reason, "{name}: {err}");
        }
    }

    #[test]
    fn oversized_payloads_are_rejected_before_parsing() {
        let big = alloc::vec![b' '; MAX_PAYLOAD_BYTES + 1];
        assert_eq!(
            decode(Kind::Logs, &big, NOW),
            Err(PayloadError::TooLarge {
                len: MAX_PAYLOAD_BYTES + 1
            })
        );
    }

    #[test]
    fn implausible_timestamps_are_replaced_by_receive_time() {
        let cases = [
            (
                r#"{"frequency":50,"voltage":230,"current":1,"power":230}"#,
                TimestampFix::Missing,
            ),
            (
                r#"{"timestamp":1000,"frequency":50,"voltage":230,"current":1,"power":230}"#,
                TimestampFix::TooOld,
            ),
            (
                r#"{"timestamp":9003123456789123,"frequency":50,"voltage":230,"current":1,"power":230}"#,
                TimestampFix::InFuture,
            ),
        ];
        for (json, fix) in cases {
            let d = Measurement::decode(json.as_bytes(), NOW).unwrap();
            assert_eq!((d.payload.timestamp, d.timestamp_fix), (NOW, fix));
        }
    }

    #[test]
    fn extra_fields_and_optional_status_fields_are_accepted() {
        let s = Status::decode(
            br#"{"timestamp":1703123456789123,"rssi":-60,"free_heap":1,"online":false,"battery":88.5,"fw":"1.2"}"#,
            NOW,
        )
        .unwrap()
        .payload;
        assert_eq!((s.online, s.battery), (Some(false), Some(88.5)));
    }

    #[test]
    fn log_levels_parse_in_any_case() {
        assert_eq!(LogLevel::parse("warning"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::parse("Error"), Some(LogLevel::Error));
        assert_eq!(LogLevel::parse("LOUD"), None);
    }
}
