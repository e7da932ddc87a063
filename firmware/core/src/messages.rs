//! What a device publishes: topic, payload bytes and retain flag, built only through
//! `ogm-protocol` (its topic builder and its payload encoders), so the board, the simulator and
//! the golden fixtures can never disagree.
//!
//! Every message goes at QoS 1 ([`QOS`]). Statuses are retained, so a dashboard that subscribes
//! sees each device's latest one at once; the last will is a retained status with
//! `online: false`.

use alloc::string::String;
use alloc::vec::Vec;

use ogm_protocol::{DeviceId, Kind, LogEntry, LogLevel, Measurement, Status, TOPIC_PREFIX, Topic};

/// MQTT QoS of every message: the server's at-least-once ingest needs the device's own hop
/// acknowledged too, and its idempotent writes make redeliveries harmless.
pub const QOS: u8 = 1;

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: Kind,
    pub topic: &'a str,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// The device's health, for status messages.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Health {
    /// WiFi signal, dBm.
    pub rssi: i32,
    /// Free heap, bytes.
    pub free_heap: u64,
    /// Battery charge, percent, on boards that have one.
    pub battery: Option<f64>,
}

/// A device's three topics, spelled once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    device_id: DeviceId,
    measurement: String,
    status: String,
    logs: String,
}

impl Topics {
    pub fn new(device_id: DeviceId) -> Self {
        let topic = |kind| Topic::new(device_id.clone(), kind).to_topic(TOPIC_PREFIX);
        Self {
            measurement: topic(Kind::Measurement),
            status: topic(Kind::Status),
            logs: topic(Kind::Logs),
            device_id,
        }
    }

    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// The topic for `kind`.
    pub fn topic(&self, kind: Kind) -> &str {
        match kind {
            Kind::Measurement => &self.measurement,
            Kind::Status => &self.status,
            Kind::Logs => &self.logs,
        }
    }

    /// A measurement (not retained).
    pub fn measurement(&self, m: &Measurement) -> Message<'_> {
        self.message(Kind::Measurement, m.to_json(), false)
    }

    /// A status (retained).
    pub fn status(&self, s: &Status) -> Message<'_> {
        self.message(Kind::Status, s.to_json(), true)
    }

    /// A log line (not retained).
    pub fn log(&self, l: &LogEntry) -> Message<'_> {
        self.message(Kind::Logs, l.to_json(), false)
    }

    /// The last will: a retained status saying `online: false`, for the MQTT CONNECT packet.
    pub fn last_will(&self, timestamp: i64, health: Health, dropped: u64) -> Message<'_> {
        self.status(&status(timestamp, health, false, dropped))
    }

    fn message(&self, kind: Kind, payload: Vec<u8>, retain: bool) -> Message<'_> {
        Message {
            kind,
            topic: self.topic(kind),
            payload,
            retain,
        }
    }
}

/// A status payload.
pub fn status(timestamp: i64, health: Health, online: bool, dropped: u64) -> Status {
    Status {
        timestamp,
        rssi: health.rssi,
        free_heap: health.free_heap,
        online: Some(online),
        battery: health.battery,
        dropped: Some(dropped),
    }
}

/// A log line from `module`.
pub fn log(timestamp: i64, level: LogLevel, module: &str, message: String) -> LogEntry {
    LogEntry {
        timestamp,
        level,
        message,
        module: String::from(module),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogm_protocol::{fixtures, payload};

    const NOW: i64 = 1_703_123_456_789_123 + 1_000_000;

    fn topics() -> Topics {
        Topics::new(DeviceId::new("esp32-s3_01").unwrap())
    }

    #[test]
    fn payload_bytes_equal_the_golden_fixtures_re_encoded() {
        let t = topics();
        for (kind, json) in fixtures::GOOD {
            let decoded = payload::decode(kind, json.as_bytes(), NOW).unwrap().payload;
            let ours = match &decoded {
                payload::Payload::Measurement(m) => t.measurement(m),
                payload::Payload::Status(s) => t.status(s),
                payload::Payload::Logs(l) => t.log(l),
            };
            // Byte for byte what the protocol crate encodes...
            assert_eq!(ours.payload, decoded.to_json(), "{kind:?}");
            assert_eq!(ours.kind, kind);
            // ...which carries exactly the fixture's fields and values.
            let a: serde_json::Value = serde_json::from_str(json).unwrap();
            let b: serde_json::Value = serde_json::from_slice(&ours.payload).unwrap();
            assert_eq!(a, b, "{kind:?}");
            assert_eq!(ours.retain, kind == Kind::Status);
        }
        // The measurement fixture's compact form, spelled out.
        let m = Measurement::decode(fixtures::MEASUREMENT.as_bytes(), NOW)
            .unwrap()
            .payload;
        assert_eq!(
            t.measurement(&m).payload,
            br#"{"timestamp":1703123456789123,"frequency":50.02,"voltage":230.5,"current":10.2,"power":2351.0}"#
        );
    }

    #[test]
    fn topics_are_the_protocol_s() {
        let t = topics();
        assert_eq!(
            t.topic(Kind::Measurement),
            "open_grid_monitor/esp32-s3_01/measurement"
        );
        assert_eq!(
            t.topic(Kind::Status),
            "open_grid_monitor/esp32-s3_01/status"
        );
        assert_eq!(t.topic(Kind::Logs), "open_grid_monitor/esp32-s3_01/logs");
        for kind in Kind::ALL {
            let parsed = Topic::parse(TOPIC_PREFIX, t.topic(kind)).unwrap();
            assert_eq!(
                (parsed.kind, parsed.device_id.as_str()),
                (kind, "esp32-s3_01")
            );
        }
    }

    #[test]
    fn the_last_will_is_a_retained_offline_status() {
        let health = Health {
            rssi: -60,
            free_heap: 100_000,
            battery: None,
        };
        let topics = topics();
        let will = topics.last_will(NOW, health, 3);
        assert!(will.retain);
        assert_eq!(will.topic, "open_grid_monitor/esp32-s3_01/status");
        let s = Status::decode(&will.payload, NOW).unwrap().payload;
        assert_eq!((s.online, s.dropped, s.rssi), (Some(false), Some(3), -60));
        assert_eq!(s.battery, None);
    }

    #[test]
    fn log_lines_decode() {
        let l = log(NOW, LogLevel::Warn, "ade7953", "SPI failed".into());
        let topics = topics();
        let msg = topics.log(&l);
        let back = LogEntry::decode(&msg.payload, NOW).unwrap().payload;
        assert_eq!(back, l);
        assert!(!msg.retain);
    }
}
