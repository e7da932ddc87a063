//! The last rejected messages, for `GET /api/ingest/rejected`, and rate-limited logging of them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How many rejections are kept.
pub const CAPACITY: usize = 100;
/// How many devices' counts are kept; past it, new devices are counted under [`OTHER_DEVICES`].
pub const DEVICES_COUNTED: usize = 10_000;
/// Where rejections of topics naming no device, or of devices past [`DEVICES_COUNTED`], count.
pub const OTHER_DEVICES: &str = "(other)";
/// How much of a payload is kept, in characters.
pub const PAYLOAD_CHARS: usize = 200;
/// At most this many rejections are logged per minute; the rest are only counted.
const LOG_PER_MINUTE: u32 = 10;

/// One rejected message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// Receive time, µs.
    pub t: i64,
    pub topic: String,
    pub reason: &'static str,
    pub detail: String,
    /// The payload as text (lossy), truncated.
    pub payload: String,
    pub payload_bytes: usize,
}

/// One device's rejections since the server started, by reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRejections {
    pub device_id: String,
    pub total: u64,
    pub reasons: BTreeMap<&'static str, u64>,
}

/// A bounded ring of recent rejections, and counts by device and reason.
#[derive(Debug, Default)]
pub struct RejectedRing {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    ring: VecDeque<Rejected>,
    window_start: Option<Instant>,
    logged_in_window: u32,
    suppressed: u64,
    by_device: HashMap<String, BTreeMap<&'static str, u64>>,
}

impl RejectedRing {
    /// Records a rejection and logs it unless too many were logged this minute.
    pub fn push(&self, t: i64, topic: &str, reason: &'static str, detail: String, payload: &[u8]) {
        let text: String =
            String::from_utf8_lossy(&payload[..payload.len().min(PAYLOAD_CHARS * 4)])
                .chars()
                .take(PAYLOAD_CHARS)
                .collect();
        let device = device_of(topic);
        let topic: String = topic.chars().take(256).collect();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = match device {
            Some(d)
                if inner.by_device.contains_key(d) || inner.by_device.len() < DEVICES_COUNTED =>
            {
                d
            }
            _ => OTHER_DEVICES,
        };
        *inner
            .by_device
            .entry(key.to_owned())
            .or_default()
            .entry(reason)
            .or_default() += 1;
        let now = Instant::now();
        if inner
            .window_start
            .is_none_or(|s| now.duration_since(s) > Duration::from_secs(60))
        {
            if inner.suppressed > 0 {
                tracing::warn!(
                    suppressed = inner.suppressed,
                    "more rejected messages were not logged"
                );
            }
            inner.window_start = Some(now);
            inner.logged_in_window = 0;
            inner.suppressed = 0;
        }
        if inner.logged_in_window < LOG_PER_MINUTE {
            inner.logged_in_window += 1;
            tracing::warn!(%topic, reason, %detail, bytes = payload.len(), "rejected message");
        } else {
            inner.suppressed += 1;
        }
        if inner.ring.len() == CAPACITY {
            inner.ring.pop_front();
        }
        inner.ring.push_back(Rejected {
            t,
            topic,
            reason,
            detail,
            payload: text,
            payload_bytes: payload.len(),
        });
    }

    /// Newest first.
    pub fn snapshot(&self) -> Vec<Rejected> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.ring.iter().rev().cloned().collect()
    }

    /// Every device's counts, most rejected first.
    pub fn by_device(&self) -> Vec<DeviceRejections> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<DeviceRejections> = inner
            .by_device
            .iter()
            .map(|(d, reasons)| DeviceRejections {
                device_id: d.clone(),
                total: reasons.values().sum(),
                reasons: reasons.clone(),
            })
            .collect();
        v.sort_by(|a, b| b.total.cmp(&a.total).then(a.device_id.cmp(&b.device_id)));
        v
    }
}

/// The device a topic names, if it is shaped like a device topic (a valid id or not).
fn device_of(topic: &str) -> Option<&str> {
    let rest = topic
        .strip_prefix(ogm_protocol::TOPIC_PREFIX)?
        .strip_prefix('/')?;
    let (device, _) = rest.split_once('/')?;
    (!device.is_empty() && device.len() <= 64).then_some(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_hundred_truncated() {
        let ring = RejectedRing::default();
        for i in 0..150 {
            ring.push(i, "t", "malformed_json", "x".into(), &[b'a'; 10_000]);
        }
        let s = ring.snapshot();
        assert_eq!(s.len(), CAPACITY);
        assert_eq!((s[0].t, s[99].t), (149, 50));
        assert_eq!(
            (s[0].payload.len(), s[0].payload_bytes),
            (PAYLOAD_CHARS, 10_000)
        );
    }

    #[test]
    fn counts_by_device_and_reason() {
        let ring = RejectedRing::default();
        for _ in 0..3 {
            ring.push(
                0,
                "open_grid_monitor/dev-a/measurement",
                "over_message_budget",
                String::new(),
                b"",
            );
        }
        ring.push(
            0,
            "open_grid_monitor/dev-a/logs",
            "over_byte_budget",
            String::new(),
            b"",
        );
        ring.push(
            0,
            "open_grid_monitor/dev-b/status",
            "malformed_json",
            String::new(),
            b"",
        );
        ring.push(0, "elsewhere", "unknown_topic", String::new(), b"");
        let by = ring.by_device();
        assert_eq!(
            by.iter()
                .map(|d| (d.device_id.as_str(), d.total))
                .collect::<Vec<_>>(),
            [("dev-a", 4), (OTHER_DEVICES, 1), ("dev-b", 1)]
        );
        assert_eq!(by[0].reasons["over_message_budget"], 3);
    }
}
