//! The storage interface: the [`Store`] trait and the typed queries and answers it speaks.
//!
//! The server picks one implementation at start-up: `ogm-store-sqlite` (embedded, the default:
//! rusqlite in WAL mode with per-second and per-minute rollups) or `ogm-store-influx` (InfluxDB
//! 2 in the seed's schema, with an on-disk spool and Flux). The ingest task and the HTTP API
//! only see [`Store`].

use ogm_protocol::{DeviceId, LogEntry, LogLevel, Measurement, Payload, Status};
use serde::Serialize;
use tokio::sync::mpsc;

/// One validated message, ready to store. Its timestamp is the payload's (already replaced by
/// the receive time when the device's was unusable).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub device_id: DeviceId,
    pub payload: Payload,
}

/// Which store is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Embedded,
    Influxdb,
}

/// A field whose history can be queried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
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
        matches!(
            self,
            Field::Frequency | Field::Voltage | Field::Current | Field::Power
        )
    }
}

/// A typed history request. `start_us <= stop_us`, `1 <= max_points <= 10_000` (the API
/// checks both before a store sees the query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    pub device_id: DeviceId,
    pub field: Field,
    /// Inclusive, µs since the Unix epoch.
    pub start_us: i64,
    /// Exclusive, µs since the Unix epoch.
    pub stop_us: i64,
    pub max_points: u32,
}

/// One bucket of a history answer; with `interval_us == 0` each bucket is one raw point
/// (min == mean == max, count 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bucket {
    /// Bucket start (or the raw point's timestamp), µs.
    pub t: i64,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    pub count: u64,
}

/// A history answer: at most `max_points` buckets, oldest first, empty buckets left out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    /// 0 for raw points.
    pub interval_us: i64,
    pub points: Vec<Bucket>,
}

/// A log request; newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    pub device_id: Option<DeviceId>,
    /// Entries at this level or more severe.
    pub min_level: Option<LogLevel>,
    pub start_us: i64,
    pub stop_us: i64,
    pub limit: u32,
    /// The newest entries stop once their [`LogRow::weight`]s add up to more than this; the
    /// entry that crosses it is kept, so an answer holds at least one. It bounds an answer's
    /// size (and the memory behind it) whatever the entries hold: see [`keep_newest`].
    pub max_bytes: usize,
}

/// A stored log entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogRow {
    pub t: i64,
    pub device_id: DeviceId,
    pub level: LogLevel,
    pub message: String,
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
    /// for the rest (the names, the time, the level). What [`LogQuery::max_bytes`] counts.
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

/// Cuts `rows` (newest first) to what a log query answers: at most `limit` entries, and none
/// after the one whose weight takes the total past `max_bytes`.
pub fn keep_newest(rows: &mut Vec<LogRow>, limit: u32, max_bytes: usize) {
    let mut total = 0usize;
    let mut keep = 0;
    for row in rows
        .iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
    {
        keep += 1;
        total = total.saturating_add(row.weight());
        if total > max_bytes {
            break;
        }
    }
    rows.truncate(keep);
}

/// What the store knows of a device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceSummary {
    pub device_id: DeviceId,
    /// The newest timestamp of anything it sent, µs.
    pub last_seen: i64,
    pub last_measurement: Option<Measurement>,
    pub last_status: Option<Status>,
}

/// A raw-measurement export request (CSV).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportQuery {
    pub device_id: DeviceId,
    pub start_us: i64,
    pub stop_us: i64,
}

/// How a committed batch went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Records newly stored.
    pub stored: usize,
    /// Records already there (a redelivery), left as they were.
    pub duplicates: usize,
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Backend(String),
    #[error("{0} is not supported by this store")]
    Unsupported(&'static str),
    /// The request is valid but the store refuses it (e.g. a Flux query naming another bucket).
    #[error("{0}")]
    Refused(String),
}

/// Chunks of raw measurements, oldest first, for a streamed export.
pub type ExportStream = mpsc::Receiver<Result<Vec<Measurement>, StoreError>>;

/// A streamed Flux answer (InfluxDB's annotated CSV), chunk by chunk.
pub type FluxStream = mpsc::Receiver<Result<bytes::Bytes, StoreError>>;

/// The one storage interface.
///
/// `write` must be idempotent on (device, kind, timestamp): writing a record twice stores it
/// once. It returns only once the batch is durable (committed, or safely spooled), because the
/// ingest acknowledges messages to the broker after it returns.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    fn kind(&self) -> StoreKind;
    async fn write(&self, batch: Vec<Record>) -> Result<WriteOutcome, StoreError>;
    /// Whether the store answers right now.
    async fn healthy(&self) -> bool;
    async fn history(&self, query: HistoryQuery) -> Result<History, StoreError>;
    async fn logs(&self, query: LogQuery) -> Result<Vec<LogRow>, StoreError>;
    async fn devices(&self) -> Result<Vec<DeviceSummary>, StoreError>;
    async fn export(&self, query: ExportQuery) -> Result<ExportStream, StoreError>;
    /// Runs a Flux query (InfluxDB only).
    async fn flux(&self, query: String) -> Result<FluxStream, StoreError> {
        let _ = query;
        Err(StoreError::Unsupported("Flux"))
    }
}

/// How history buckets are sized: the smallest "nice" interval (whole milliseconds below 1 s,
/// whole seconds below 1 min, whole minutes above, so rollups can serve them) for which the
/// buckets over the range, aligned to multiples of the interval since the epoch (as Flux's
/// `aggregateWindow` aligns them), number at most `max_points`. 0 (raw points) when
/// `raw_count <= max_points`.
pub fn bucket_interval_us(start_us: i64, stop_us: i64, max_points: u32, raw_count: u64) -> i64 {
    if raw_count <= u64::from(max_points) {
        return 0;
    }
    let span = (stop_us - start_us).max(1);
    // Epoch alignment can add one partial bucket at the start.
    let n = i64::from(max_points.saturating_sub(1).max(1));
    let min = (span + n - 1) / n;
    const MS: i64 = 1_000;
    const S: i64 = 1_000_000;
    const M: i64 = 60 * S;
    let unit = if min <= S {
        MS
    } else if min <= M {
        S
    } else {
        M
    };
    (min + unit - 1) / unit * unit
}

/// The start of the epoch-aligned bucket of `interval_us` that holds `t_us`.
pub fn bucket_start(t_us: i64, interval_us: i64) -> i64 {
    t_us.div_euclid(interval_us) * interval_us
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_nice_and_never_exceed_max_points() {
        const H: i64 = 3_600_000_000;
        assert_eq!(bucket_interval_us(0, H, 1000, 1000), 0, "raw when it fits");
        assert_eq!(bucket_interval_us(0, H, 1000, 36_000), 4_000_000);
        assert_eq!(bucket_interval_us(0, 24 * H, 1000, 864_000), 120_000_000);
        assert_eq!(
            bucket_interval_us(0, 7 * 24 * H, 1000, 6_048_000),
            660_000_000
        );
        assert_eq!(bucket_interval_us(0, 300_000_000, 1000, 3000), 301_000);
        for (start, span, max) in [
            (7, H, 7),
            (123_456, 24 * H, 999),
            (999_999, 12_345_678, 10_000),
            (5, 1, 1),
            (0, 2, 2),
        ] {
            let i = bucket_interval_us(start, start + span, max, u64::MAX);
            let buckets = (bucket_start(start + span - 1, i) - bucket_start(start, i)) / i + 1;
            assert!(
                i > 0 && buckets <= i64::from(max),
                "{span} {max} {i} {buckets}"
            );
        }
    }

    fn row(t: i64, message: &str) -> LogRow {
        LogRow {
            t,
            device_id: DeviceId::new("dev-1").unwrap(),
            level: LogLevel::Error,
            message: message.into(),
            module: "m\"\\\u{1}".into(),
        }
    }

    #[test]
    fn a_log_row_weighs_at_least_its_json() {
        for message in [
            "",
            "plain",
            "quote \" back \\ nl \n tab \t",
            "\u{0}\u{1f}",
            "é€😀",
        ] {
            for t in [0, i64::MIN, i64::MAX] {
                let r = row(t, message);
                let json = serde_json::to_string(&r).unwrap();
                // Less, since a comma between entries of an array comes with it.
                assert!(json.len() < r.weight(), "{json}: {}", r.weight());
                assert!(r.weight() <= json.len() + 64, "{json}: {}", r.weight());
            }
        }
    }

    #[test]
    fn the_newest_entries_are_kept_up_to_the_limit_and_past_the_budget_by_one() {
        let rows: Vec<LogRow> = (0..10).map(|i| row(100 - i, "x")).collect();
        let w = rows[0].weight();
        let kept = |limit, max_bytes| {
            let mut r = rows.clone();
            keep_newest(&mut r, limit, max_bytes);
            r.iter().map(|r| r.t).collect::<Vec<_>>()
        };
        assert_eq!(kept(3, usize::MAX), [100, 99, 98]);
        assert_eq!(kept(10, 2 * w), [100, 99, 98], "the crossing entry is kept");
        assert_eq!(kept(10, 2 * w + 1), [100, 99, 98]);
        assert_eq!(kept(10, 3 * w - 1), [100, 99, 98]);
        assert_eq!(kept(10, 0), [100], "always one");
        assert_eq!(kept(2, 0), [100]);
        assert_eq!(kept(0, usize::MAX), Vec::<i64>::new());
    }

    #[test]
    fn fields_round_trip() {
        for f in Field::ALL {
            assert_eq!(Field::parse(f.as_str()), Some(f));
        }
        assert_eq!(Field::parse("temperature"), None);
    }
}
