//! Counters and histograms for `GET /metrics` (Prometheus text format), kept in atomics so the
//! ingest hot path never takes a lock to count.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

use ogm_protocol::TimestampFix;

/// Why a message was not stored. The payload reasons are `PayloadError::reason()`.
/// `over_*_budget` are the per-device budgets (`ingest::budget`); `stale_retained` a retained
/// message delivered again on subscribing whose timestamp had to be replaced (it was stored
/// when it first arrived).
pub const REJECT_REASONS: [&str; 8] = [
    "unknown_topic",
    "too_large",
    "malformed_json",
    "wrong_schema",
    "out_of_range",
    "over_message_budget",
    "over_byte_budget",
    "stale_retained",
];

const BATCH_BUCKETS: [f64; 8] = [1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0];
const LATENCY_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// A Prometheus histogram with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum in millionths of the observed unit.
    sum_micro: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if v <= *b {
                c.fetch_add(1, Relaxed);
            }
        }
        self.sum_micro.fetch_add((v * 1e6) as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", c.load(Relaxed));
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micro.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Everything `/metrics` reports.
#[derive(Debug)]
pub struct Metrics {
    pub received: AtomicU64,
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: [AtomicU64; REJECT_REASONS.len()],
    pub timestamp_replaced: [AtomicU64; 3],
    pub store_errors: AtomicU64,
    pub mqtt_reconnects: AtomicU64,
    pub mqtt_connected: AtomicBool,
    /// Every subscription of the current connection granted: messages flow to the ingest.
    pub mqtt_subscribed: AtomicBool,
    pub batch_size: Histogram,
    pub commit_seconds: Histogram,
    /// API requests refused by the per-client rate limit.
    pub http_rate_limited: AtomicU64,
    /// The last store write failed and the ingest is retrying it.
    pub store_failing: AtomicBool,
    /// Messages received and waiting for the writer in the hand-off channel.
    pub handoff_queued: AtomicU64,
    /// Since when (µs) the writer has held a batch it could not commit yet; 0 when none.
    pub uncommitted_since_us: AtomicI64,
    /// When (µs) the ingest last received a device message; 0 before the first.
    pub last_received_us: AtomicI64,
    /// When (µs) the broker's count of received publishes was last seen to grow (its
    /// `$SYS/broker/publish/messages/received`); 0 if never.
    pub broker_published_us: AtomicI64,
    /// Data requests refused because as many as allowed were being served.
    pub http_overloaded: AtomicU64,
    /// Requests whose answer did not start within the request timeout.
    pub http_timed_out: AtomicU64,
    /// The store's files on this disk, bytes (embedded store; 0 for InfluxDB).
    pub store_bytes: AtomicU64,
    /// Their growth over the last day, bytes a day (0 until sampled for an hour).
    pub store_growth_bytes_per_day: AtomicI64,
    /// Measurements the grid watch analysed (from the ingest, or in a share group from its
    /// own subscription).
    pub watch_readings: AtomicU64,
    /// Device events the grid watch saved (each save of an open or closed event).
    pub events_saved: AtomicU64,
    /// Rewinds: a device's events analysed again from the store after late readings.
    pub event_rewinds: AtomicU64,
    /// Failed saves or rewinds of the grid watch (each is retried).
    pub event_errors: AtomicU64,
    /// Events not saved yet (waiting for the store).
    pub events_unsaved: AtomicU64,
    /// Events dropped because too many waited for a failing store.
    pub events_dropped: AtomicU64,
    /// Readings waiting for the grid watch's analysis (held for stragglers).
    pub event_readings_pending: AtomicU64,
    /// Publishes the server made itself (grid summary, alerts, Home Assistant discovery).
    pub own_publishes: AtomicU64,
    /// Notifications delivered, failed tries, and those waiting in the outbox.
    pub notifications_sent: AtomicU64,
    pub notification_failures: AtomicU64,
    pub notifications_waiting: AtomicU64,
    /// Alerts active now.
    pub alerts_active: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            received: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            rejected: Default::default(),
            timestamp_replaced: Default::default(),
            store_errors: AtomicU64::new(0),
            mqtt_reconnects: AtomicU64::new(0),
            mqtt_connected: AtomicBool::new(false),
            mqtt_subscribed: AtomicBool::new(false),
            batch_size: Histogram::new(&BATCH_BUCKETS),
            commit_seconds: Histogram::new(&LATENCY_BUCKETS),
            http_rate_limited: AtomicU64::new(0),
            store_failing: AtomicBool::new(false),
            handoff_queued: AtomicU64::new(0),
            uncommitted_since_us: AtomicI64::new(0),
            last_received_us: AtomicI64::new(0),
            broker_published_us: AtomicI64::new(0),
            http_overloaded: AtomicU64::new(0),
            http_timed_out: AtomicU64::new(0),
            watch_readings: AtomicU64::new(0),
            store_bytes: AtomicU64::new(0),
            store_growth_bytes_per_day: AtomicI64::new(0),
            events_saved: AtomicU64::new(0),
            event_rewinds: AtomicU64::new(0),
            event_errors: AtomicU64::new(0),
            events_unsaved: AtomicU64::new(0),
            events_dropped: AtomicU64::new(0),
            event_readings_pending: AtomicU64::new(0),
            own_publishes: AtomicU64::new(0),
            notifications_sent: AtomicU64::new(0),
            notification_failures: AtomicU64::new(0),
            notifications_waiting: AtomicU64::new(0),
            alerts_active: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn count_received(&self, n: u64) {
        self.received.fetch_add(n, Relaxed);
    }

    pub fn count_rejected(&self, reason: &str) {
        if let Some(i) = REJECT_REASONS.iter().position(|r| *r == reason) {
            self.rejected[i].fetch_add(1, Relaxed);
        }
    }

    pub fn count_timestamp_fix(&self, fix: TimestampFix) {
        let i = match fix {
            TimestampFix::Kept => return,
            TimestampFix::Missing => 0,
            TimestampFix::TooOld => 1,
            TimestampFix::InFuture => 2,
        };
        self.timestamp_replaced[i].fetch_add(1, Relaxed);
    }

    /// All rejections so far.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::with_capacity(4096);
        let _ = writeln!(
            o,
            "# HELP ogm_messages_received_total Messages received from the broker.\n# TYPE ogm_messages_received_total counter\nogm_messages_received_total {}",
            self.received.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP ogm_messages_stored_total Messages newly stored.\n# TYPE ogm_messages_stored_total counter\nogm_messages_stored_total {}",
            self.stored.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP ogm_messages_duplicate_total Redelivered messages that were already stored.\n# TYPE ogm_messages_duplicate_total counter\nogm_messages_duplicate_total {}",
            self.duplicates.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP ogm_messages_rejected_total Messages acknowledged and not stored, by reason.\n# TYPE ogm_messages_rejected_total counter"
        );
        for (r, c) in REJECT_REASONS.iter().zip(&self.rejected) {
            let _ = writeln!(
                o,
                "ogm_messages_rejected_total{{reason=\"{r}\"}} {}",
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP ogm_timestamps_replaced_total Device timestamps replaced by the receive time, by cause.\n# TYPE ogm_timestamps_replaced_total counter"
        );
        for (r, c) in ["missing", "too_old", "in_future"]
            .iter()
            .zip(&self.timestamp_replaced)
        {
            let _ = writeln!(
                o,
                "ogm_timestamps_replaced_total{{cause=\"{r}\"}} {}",
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP ogm_store_errors_total Failed store writes (each is retried).\n# TYPE ogm_store_errors_total counter\nogm_store_errors_total {}",
            self.store_errors.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP ogm_store_failing Whether the last store write failed (the ingest retries it and acknowledges nothing meanwhile).\n# TYPE ogm_store_failing gauge\nogm_store_failing {}",
            u8::from(self.store_failing.load(Relaxed))
        );
        let _ = writeln!(
            o,
            "# HELP ogm_ingest_handoff_queued Messages received and waiting for the store writer.\n# TYPE ogm_ingest_handoff_queued gauge\nogm_ingest_handoff_queued {}",
            self.handoff_queued.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP ogm_mqtt_reconnects_total Broker connections after the first.\n# TYPE ogm_mqtt_reconnects_total counter\nogm_mqtt_reconnects_total {}",
            self.mqtt_reconnects.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP ogm_mqtt_connected Whether the ingest is connected to the broker.\n# TYPE ogm_mqtt_connected gauge\nogm_mqtt_connected {}",
            u8::from(self.mqtt_connected.load(Relaxed))
        );
        let _ = writeln!(
            o,
            "# HELP ogm_http_rate_limited_total API requests refused with 429 by the per-client rate limit.\n# TYPE ogm_http_rate_limited_total counter\nogm_http_rate_limited_total {}",
            self.http_rate_limited.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP ogm_http_overloaded_total Data requests refused with 503 because as many as allowed were being served.\n# TYPE ogm_http_overloaded_total counter\nogm_http_overloaded_total {}",
            self.http_overloaded.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP ogm_http_timed_out_total Requests answered 503 because their answer did not start within the request timeout.\n# TYPE ogm_http_timed_out_total counter\nogm_http_timed_out_total {}",
            self.http_timed_out.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP ogm_store_bytes The embedded store's files on disk (database and write-ahead log).\n# TYPE ogm_store_bytes gauge\nogm_store_bytes {}",
            self.store_bytes.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP ogm_store_growth_bytes_per_day How fast the embedded store grew over the last day (negative when pruning freed more).\n# TYPE ogm_store_growth_bytes_per_day gauge\nogm_store_growth_bytes_per_day {}",
            self.store_growth_bytes_per_day.load(Relaxed)
        );
        for (name, kind, help, v) in [
            (
                "ogm_watch_readings_total",
                "counter",
                "Measurements the grid watch analysed.",
                &self.watch_readings,
            ),
            (
                "ogm_events_saved_total",
                "counter",
                "Device events the grid watch saved (opened, grown or closed).",
                &self.events_saved,
            ),
            (
                "ogm_event_rewinds_total",
                "counter",
                "Devices whose events were analysed again from the store after late readings.",
                &self.event_rewinds,
            ),
            (
                "ogm_event_errors_total",
                "counter",
                "Failed saves or rewinds of the grid watch (each is retried).",
                &self.event_errors,
            ),
            (
                "ogm_events_unsaved",
                "gauge",
                "Device events waiting for the store.",
                &self.events_unsaved,
            ),
            (
                "ogm_events_dropped_total",
                "counter",
                "Device events dropped because too many waited for a failing store.",
                &self.events_dropped,
            ),
            (
                "ogm_event_readings_pending",
                "gauge",
                "Readings waiting for the grid watch's analysis (held for stragglers, or during a rewind).",
                &self.event_readings_pending,
            ),
            (
                "ogm_mqtt_own_publishes_total",
                "counter",
                "Publishes the server made itself (grid summary, alerts, Home Assistant).",
                &self.own_publishes,
            ),
            (
                "ogm_notifications_sent_total",
                "counter",
                "Alert notifications a channel took.",
                &self.notifications_sent,
            ),
            (
                "ogm_notification_failures_total",
                "counter",
                "Failed tries to deliver an alert notification (each is retried).",
                &self.notification_failures,
            ),
            (
                "ogm_notifications_waiting",
                "gauge",
                "Alert notifications waiting in the outbox.",
                &self.notifications_waiting,
            ),
            (
                "ogm_alerts_active",
                "gauge",
                "Alerts firing now.",
                &self.alerts_active,
            ),
        ] {
            let _ = writeln!(
                o,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
        self.batch_size.render(
            &mut o,
            "ogm_ingest_batch_size",
            "Messages per committed batch.",
        );
        self.commit_seconds.render(
            &mut o,
            "ogm_store_commit_seconds",
            "Time to commit one batch.",
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.count_received(1);
        m.count_rejected("malformed_json");
        m.count_rejected("not_a_reason");
        m.batch_size.observe(120.0);
        m.commit_seconds.observe(0.002);
        let text = m.render();
        assert!(text.contains("ogm_messages_received_total 1"));
        assert!(text.contains("ogm_messages_rejected_total{reason=\"malformed_json\"} 1"));
        assert!(text.contains("ogm_ingest_batch_size_bucket{le=\"100\"} 0"));
        assert!(text.contains("ogm_ingest_batch_size_bucket{le=\"250\"} 1"));
        assert!(text.contains("ogm_store_commit_seconds_count 1"));
        assert_eq!(m.rejected_total(), 1);
    }
}
