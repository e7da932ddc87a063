//! The last rejected messages, for `GET /api/ingest/rejected`, and rate-limited logging of them.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How many rejections are kept.
pub const CAPACITY: usize = 100;
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

/// A bounded ring of recent rejections.
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
}

impl RejectedRing {
    /// Records a rejection and logs it unless too many were logged this minute.
    pub fn push(&self, t: i64, topic: &str, reason: &'static str, detail: String, payload: &[u8]) {
        let text: String =
            String::from_utf8_lossy(&payload[..payload.len().min(PAYLOAD_CHARS * 4)])
                .chars()
                .take(PAYLOAD_CHARS)
                .collect();
        let topic: String = topic.chars().take(256).collect();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
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
}
