//! The ingest: every message devices publish, validated, persisted in batches, and
//! acknowledged to the broker only once the batch holding it is committed.
//!
//! - [`classify`]: pure: topic + payload → a [`Record`] to store, or a [`Rejection`].
//! - [`budget`]: pure: how much one device may store per second of its own timestamps.
//! - [`rejected`]: the ring of the last rejections behind `GET /api/ingest/rejected`.
//! - [`presence`]: each device's learnt interval and last word (its last will), in memory, for
//!   the online/silent/offline state of `GET /api/devices`.
//! - [`session`]: pure: the broker session as a state machine (CONNACK, SUBACK, failures →
//!   subscriptions, health and backoff).
//! - [`mqtt`]: the only code that talks to the broker (rumqttc, QoS 1, persistent session,
//!   manual acknowledgements), carrying out the session's actions, and the batch writer.
//!
//! Delivery is at-least-once end to end: an unacknowledged message is redelivered by the broker
//! after a crash or reconnect, and the store's idempotent write makes the redelivery harmless.

pub mod budget;
pub mod mqtt;
pub mod presence;
pub mod rejected;
pub mod session;

use ogm_protocol::payload;
use ogm_protocol::{TimestampFix, Topic};
use ogm_store::Record;

pub use mqtt::{IngestConfig, MqttIngest, Observers};
pub use presence::Presences;
pub use rejected::{DeviceRejections, Rejected, RejectedRing};

/// Why a message is not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// A stable name for counting (`unknown_topic` or `PayloadError::reason()`).
    pub reason: &'static str,
    /// What exactly was wrong, for the rejected ring and the log.
    pub detail: String,
}

/// Turns one MQTT message into a record, or says why not. `now_us` is the receive time.
pub fn classify(
    prefix: &str,
    topic: &str,
    payload: &[u8],
    now_us: i64,
) -> Result<(Record, TimestampFix), Rejection> {
    let parsed = Topic::parse(prefix, topic).map_err(|e| Rejection {
        reason: "unknown_topic",
        detail: e.to_string(),
    })?;
    let decoded = payload::decode(parsed.kind, payload, now_us).map_err(|e| Rejection {
        reason: e.reason(),
        detail: e.to_string(),
    })?;
    Ok((
        Record {
            device_id: parsed.device_id,
            payload: decoded.payload,
        },
        decoded.timestamp_fix,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogm_protocol::{TOPIC_PREFIX, fixtures};

    const NOW: i64 = 1_703_123_456_789_123 + 1_000_000;

    #[test]
    fn good_fixtures_become_records() {
        for (kind, json) in fixtures::GOOD {
            let topic = format!("{TOPIC_PREFIX}/dev-1/{}", kind.as_str());
            let (rec, fix) = classify(TOPIC_PREFIX, &topic, json.as_bytes(), NOW).unwrap();
            assert_eq!(
                (rec.device_id.as_str(), rec.payload.kind(), fix),
                ("dev-1", kind, TimestampFix::Kept)
            );
        }
    }

    #[test]
    fn bad_input_is_rejected_with_its_reason() {
        for (kind, name, bytes, reason) in fixtures::BAD {
            let topic = format!("{TOPIC_PREFIX}/dev-1/{}", kind.as_str());
            let r = classify(TOPIC_PREFIX, &topic, bytes, NOW).expect_err(name);
            assert_eq!(r.reason, *reason, "{name}");
        }
        for topic in [
            "open_grid_monitor/dev-1/weather",
            "open_grid_monitor/a.b/measurement",
            "other/x/status",
            "open_grid_monitor/x",
        ] {
            let r =
                classify(TOPIC_PREFIX, topic, fixtures::MEASUREMENT.as_bytes(), NOW).unwrap_err();
            assert_eq!(r.reason, "unknown_topic", "{topic}");
        }
    }
}
