//! What tests publish and when: device topics, payloads an outside device sends, and the wall
//! clock in the payloads' unit (µs since the Unix epoch). Shared by the black-box tests and the
//! browser tests (`page` re-exports them).

use std::time::{SystemTime, UNIX_EPOCH};

use ogm_protocol::{DeviceId, Kind, LogEntry, LogLevel, Measurement, Payload, TOPIC_PREFIX, Topic};

/// One second in µs, the unit of payload timestamps.
const S: i64 = 1_000_000;

/// The wall clock in µs since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The topic of a device's messages of `kind`; `id` must be a valid device id.
pub fn topic(id: &str, kind: Kind) -> String {
    let id = DeviceId::new(id).unwrap_or_else(|e| panic!("{id}: {e}"));
    Topic::new(id, kind).to_topic(TOPIC_PREFIX)
}

/// A measurement payload at `timestamp` (µs) with `frequency`; voltage, current and power drift
/// slowly with the time (periods of 10, 15 and 20 minutes), so every chart has a shape.
pub fn measurement(timestamp: i64, frequency: f64) -> Vec<u8> {
    Payload::Measurement(Measurement {
        timestamp,
        frequency,
        voltage: 230.0 + (timestamp / S % 600) as f64 * 0.005,
        current: 2.0 + (timestamp / S % 900) as f64 * 0.001,
        power: 460.0 + (timestamp / S % 1200) as f64 * 0.05,
    })
    .to_json()
}

/// A log entry payload of module `test`.
pub fn log(timestamp: i64, level: LogLevel, message: &str) -> Vec<u8> {
    Payload::Logs(LogEntry {
        timestamp,
        level,
        message: message.into(),
        module: "test".into(),
    })
    .to_json()
}
