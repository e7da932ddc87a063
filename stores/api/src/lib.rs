//! The storage interface: the [`Store`] trait and the typed queries and answers it speaks.
//!
//! The server picks one implementation at start-up: `ogm-store-sqlite` (embedded, the default:
//! rusqlite in WAL mode with per-second and per-minute rollups) or `ogm-store-influx` (InfluxDB
//! 2 in the seed's schema, with an on-disk spool and Flux). The ingest task and the HTTP API
//! only see [`Store`].

use ogm_protocol::{DeviceId, LogLevel, Measurement, Payload, Status};
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

pub use ogm_protocol::http::{Bucket, Field, LogRow};

/// A typed history request, valid by construction ([`HistoryQuery::new`]): `start_us < stop_us`
/// and `1 <= max_points <=` [`ogm_protocol::http::MAX_POINTS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    device_id: DeviceId,
    field: Field,
    start_us: i64,
    stop_us: i64,
    max_points: u32,
}

/// Why a [`HistoryQuery`] cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryQueryError {
    #[error("stop must be after start")]
    EmptyRange,
    #[error("max_points must be 1 to {max}, not {0}", max = ogm_protocol::http::MAX_POINTS)]
    MaxPoints(u32),
}

impl HistoryQuery {
    /// `field` of `device_id` from `start_us` (inclusive) to `stop_us` (exclusive), µs since
    /// the Unix epoch, in at most `max_points` buckets.
    pub fn new(
        device_id: DeviceId,
        field: Field,
        start_us: i64,
        stop_us: i64,
        max_points: u32,
    ) -> Result<Self, HistoryQueryError> {
        if stop_us <= start_us {
            return Err(HistoryQueryError::EmptyRange);
        }
        if !(1..=ogm_protocol::http::MAX_POINTS).contains(&max_points) {
            return Err(HistoryQueryError::MaxPoints(max_points));
        }
        Ok(Self {
            device_id,
            field,
            start_us,
            stop_us,
            max_points,
        })
    }

    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    pub fn field(&self) -> Field {
        self.field
    }

    /// Inclusive, µs since the Unix epoch.
    pub fn start_us(&self) -> i64 {
        self.start_us
    }

    /// Exclusive, µs since the Unix epoch.
    pub fn stop_us(&self) -> i64 {
        self.stop_us
    }

    pub fn max_points(&self) -> u32 {
        self.max_points
    }
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

/// An event of one device as the server's watch found it (`ogm_grid::DeviceEvent`, stored),
/// keyed by (device, start).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub device_id: DeviceId,
    pub start_us: i64,
    /// The first reading back to normal; None while it lasts.
    pub end_us: Option<i64>,
    /// The latest reading inside it.
    pub last_us: i64,
    /// The reading farthest from nominal, Hz.
    pub extreme_hz: f64,
    /// Largest |RoCoF|, Hz/s (signed).
    pub rocof: Option<f64>,
    /// Whether the frequency left the event band (else only RoCoF did).
    pub frequency: bool,
}

/// Stored device events that overlap `start_us..stop_us` (start before `stop_us`, not ended
/// before `start_us`), newest start first, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    pub device_id: Option<DeviceId>,
    pub start_us: i64,
    pub stop_us: i64,
    pub limit: u32,
}

/// How a committed batch went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Records newly stored.
    pub stored: usize,
    /// Records already there (a redelivery), left as they were.
    pub duplicates: usize,
}

/// What went wrong, in words a client may read, and the error underneath when there is one.
pub struct Cause {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Cause {
    /// `message`, caused by `source`.
    pub fn new(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Self {
            message,
            source: None,
        }
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        String::from(message).into()
    }
}

impl std::ops::Deref for Cause {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Cause");
        d.field("message", &self.message);
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

/// A store failure. [`std::error::Error::source`] gives the error underneath (SQLite's, the
/// HTTP client's, …) when there is one.
#[derive(Debug)]
pub enum StoreError {
    /// The store cannot answer now (down, busy, out of space): worth retrying.
    Unavailable(Cause),
    /// The store failed.
    Backend(Cause),
    /// This store does not do that.
    Unsupported(&'static str),
    /// The request is valid but the store refuses it (e.g. a Flux query naming another bucket).
    Refused(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable(c) => write!(f, "store unavailable: {c}"),
            StoreError::Backend(c) => write!(f, "store error: {c}"),
            StoreError::Unsupported(what) => write!(f, "{what} is not supported by this store"),
            StoreError::Refused(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Unavailable(c) | StoreError::Backend(c) => c
                .source
                .as_deref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            StoreError::Unsupported(_) | StoreError::Refused(_) => None,
        }
    }
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
    /// Bytes the store's files take on this machine's disk; None for a store kept elsewhere
    /// (InfluxDB).
    fn disk_bytes(&self) -> Option<u64> {
        None
    }
    async fn write(&self, batch: Vec<Record>) -> Result<WriteOutcome, StoreError>;
    /// Whether the store answers right now.
    async fn healthy(&self) -> bool;
    async fn history(&self, query: HistoryQuery) -> Result<History, StoreError>;
    async fn logs(&self, query: LogQuery) -> Result<Vec<LogRow>, StoreError>;
    async fn devices(&self) -> Result<Vec<DeviceSummary>, StoreError>;
    async fn export(&self, query: ExportQuery) -> Result<ExportStream, StoreError>;
    /// Stores device events, replacing any with the same (device, start). With `replace_from`,
    /// first removes that device's events that start at or after that time (a rewind's answer
    /// replaces what was found before). One transaction.
    async fn save_events(
        &self,
        replace_from: Option<(DeviceId, i64)>,
        events: Vec<StoredEvent>,
    ) -> Result<(), StoreError> {
        let _ = (replace_from, events);
        Err(StoreError::Unsupported("events"))
    }
    /// Stored device events ([`EventQuery`]).
    async fn events(&self, query: EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let _ = query;
        Err(StoreError::Unsupported("events"))
    }
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

    #[test]
    fn a_history_query_is_valid_by_construction() {
        let d = DeviceId::new("d").unwrap();
        let q = HistoryQuery::new(d.clone(), Field::Power, 1, 2, 1).unwrap();
        assert_eq!(
            (q.field(), q.start_us(), q.stop_us(), q.max_points()),
            (Field::Power, 1, 2, 1)
        );
        assert_eq!(q.device_id(), &d);
        let max = ogm_protocol::http::MAX_POINTS;
        assert!(HistoryQuery::new(d.clone(), Field::Power, 1, 2, max).is_ok());
        for (start, stop, n, err) in [
            (2, 2, 1, HistoryQueryError::EmptyRange),
            (3, 2, 1, HistoryQueryError::EmptyRange),
            (1, 2, 0, HistoryQueryError::MaxPoints(0)),
            (1, 2, max + 1, HistoryQueryError::MaxPoints(max + 1)),
        ] {
            assert_eq!(
                HistoryQuery::new(d.clone(), Field::Power, start, stop, n),
                Err(err)
            );
        }
    }

    #[test]
    fn a_store_error_keeps_what_caused_it() {
        use std::error::Error as _;
        let io = std::io::Error::other("disk on fire");
        let e = StoreError::Unavailable(Cause::new("cannot write", io));
        assert_eq!(e.to_string(), "store unavailable: cannot write");
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("disk on fire")
        );
        let plain = StoreError::Backend("no cause".into());
        assert!(plain.source().is_none());
        assert_eq!(plain.to_string(), "store error: no cause");
    }
}
