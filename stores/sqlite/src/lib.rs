//! The embedded store: [`SqliteStore`] implements [`ogm_store::Store`] on one SQLite file in
//! WAL mode. Measurements live in three tiers (raw readings, 1 s and 1 min envelopes), each as
//! rows while recent and as compressed blocks once sealed, so the file holds years of history
//! in a few bytes a reading and a history query's cost grows with the points it returns, not
//! with the readings in its range.
//!
//! Layout:
//! - `schema`: connection settings and the tables (raw rows keyed `(device, ts)`
//!   `WITHOUT ROWID`, per-minute rollups, block tables, logs, devices, meta); migrations.
//! - `write`: one transaction per batch; `INSERT OR IGNORE` (and, before a sealed window, a
//!   look in its block) makes writes idempotent, and only readings actually inserted reach the
//!   per-minute rollups and the devices' last-seen times.
//! - `codec`: the block format (pure): pcodec columns.
//! - `blocks`: reading a tier's blocks and rows as one stream; rewriting a window as blocks.
//! - `seal`: compaction steps, each one transaction: sealing a window, retiring raw readings
//!   into 1 s envelopes, dropping old envelopes, giving pages back.
//! - `plan`: pure planning: which tier serves which part of a range, the bucket interval,
//!   folding rows into buckets.
//! - `read`: history, logs, devices and export queries.
//! - `events`: the server's device events, saved by (device, start) and read by range.
//! - `prune`: retention horizons and batched deletes of status rows and logs.
//! - `pool`: lazily opened reading connections; `error`: SQLite errors as [`StoreError`].
//!
//! Concurrency: one writing connection behind a mutex, and a small pool of reading
//! connections. All SQLite work runs in `tokio::task::spawn_blocking`. In WAL mode readers see
//! the last commit and never wait for the writer.
//!
//! History: the raw count in `[start, stop)` is taken from the envelopes (per-minute cells for
//! the aligned middle, per-second cells and raw readings only for the partial edges) and stops
//! counting once it passes `max_points`, so it is cheap for any range.
//! [`ogm_store::bucket_interval_us`] then picks the interval; 0 means raw points. Buckets are
//! read from the coarsest tier whose cell width divides the interval (raw readings below a
//! second; for whole seconds a sealed dense window's 1 s envelopes, else its readings, and
//! retired envelopes before the raw horizon; per-minute cells for whole minutes), again with
//! finer tiers at the edges only, so answers are exact: the same buckets a scan of the readings
//! would give. Where raw readings or 1 s envelopes have been retired or dropped, the interval
//! is raised to a multiple of the finest tier still complete there.

mod blocks;
mod codec;
mod error;
mod events;
mod plan;
mod pool;
mod prune;
mod read;
mod schema;
mod seal;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ogm_protocol::DeviceId;
use ogm_store::{
    DeviceSummary, EventQuery, ExportQuery, ExportStream, History, HistoryQuery, LogQuery, LogRow,
    Record, Store, StoreError, StoreKind, StoredEvent, WriteOutcome,
};
use rusqlite::Connection;
use tokio::sync::mpsc;

pub use prune::PruneOutcome;
pub use read::RowsRead;
pub use seal::SealOutcome;

use crate::blocks::{MINUTES, RAW, SECONDS};
use crate::plan::clamp_range;
use crate::pool::ReadPool;
use crate::prune::{Kept, PRUNE_BATCH, Target};
use crate::write::Writer;

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "ogm.sqlite3";

/// Measurements per export chunk.
pub const EXPORT_CHUNK: usize = 5_000;

/// How commits reach the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Every commit is synced: a committed batch survives a power cut (the default).
    #[default]
    Full,
    /// The log is synced only at checkpoints: commits survive a crash of the server, but the
    /// newest may be lost on a power cut. Faster on slow storage such as SD cards.
    Normal,
}

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long raw measurements and status rows are kept; `None` keeps them forever. Older
    /// measurements become 1 s envelopes; per-minute envelopes are always kept, so long ranges
    /// stay queryable.
    pub raw_retention: Option<Duration>,
    /// How long per-second rollups are kept; never less than `raw_retention` (`None`: as long
    /// as raw rows).
    pub second_rollup_retention: Option<Duration>,
    /// How long device log entries are kept; `None` keeps them forever.
    pub log_retention: Option<Duration>,
    /// The most bytes of log entries kept (texts and a fixed share per row); past it the
    /// oldest go first, whatever their age. `None`: no bound.
    pub log_max_bytes: Option<u64>,
    /// How commits reach the disk.
    pub synchronous: Synchronous,
    /// How long a statement waits for a lock before it fails as unavailable.
    pub busy_timeout: Duration,
    /// Idle reading connections kept open.
    pub read_connections: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            raw_retention: None,
            second_rollup_retention: None,
            log_retention: Some(Duration::from_secs(90 * 24 * 3600)),
            log_max_bytes: None,
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            read_connections: 4,
        }
    }
}

/// The embedded store. Cheap to share behind an `Arc<dyn Store>`.
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    options: SqliteOptions,
    writer: Mutex<Writer>,
    readers: ReadPool,
    kept: Kept,
    rows: read::RowCounter,
    newest_sealed: blocks::NewestSealed,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database [`DB_FILE`] in `dir`. Blocking: call it at
    /// start-up or from a blocking task.
    pub fn open(dir: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(ogm_store::Cause::new(
                format!("cannot create {}: {e}", dir.display()),
                e,
            ))
        })?;
        let path = dir.join(DB_FILE);
        let conn = schema::open_writer(&path, &options).map_err(error::map)?;
        let kept = Kept::load(&conn).map_err(error::map)?;
        let readers = ReadPool::new(path.clone(), options.clone());
        // Open one reader now, so a broken file fails at start-up rather than at a query.
        drop(readers.get().map_err(error::map)?);
        tracing::info!(path = %path.display(), "embedded store open");
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                options,
                writer: Mutex::new(Writer::new(conn).map_err(error::map)?),
                readers,
                kept,
                rows: read::RowCounter::default(),
                newest_sealed: blocks::NewestSealed::default(),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Rows history queries have visited per tier since opening (for tests and benchmarks).
    pub fn rows_read(&self) -> RowsRead {
        self.inner.rows.snapshot()
    }

    /// Tiered retention as of `now_us`: raw readings past `raw_retention` become 1 s envelopes
    /// (window by window, each its own transaction), 1 s envelopes past
    /// `second_rollup_retention` go, and so do status rows past the raw retention and logs past
    /// theirs, then the oldest logs past `log_max_bytes`. Deletions run in batches of a few
    /// thousand rows, so ingest interleaves. Per-minute envelopes are never deleted.
    pub async fn prune(&self, now_us: i64) -> Result<PruneOutcome, StoreError> {
        let o = &self.inner.options;
        // Per-second cells never go before raw rows: a tier must not be emptier than a finer one.
        let second = match (o.raw_retention, o.second_rollup_retention) {
            (Some(raw), Some(sec)) => Some(raw.max(sec)),
            (Some(raw), None) => Some(raw),
            (None, _) => None,
        };
        let mut deleted = [0u64; 4];
        if let Some(cutoff) = Target::new("measurement", o.raw_retention, RAW.window).cutoff(now_us)
        {
            deleted[0] = self.retire_raw(cutoff).await?;
        }
        if let Some(cutoff) = Target::new("measurement_1s", second, SECONDS.window).cutoff(now_us) {
            let devices = self
                .with_writer(move |w, inner| {
                    inner.kept.raise(&w.conn, "measurement_1s", cutoff)?;
                    prune::device_keys(&w.conn)
                })
                .await?;
            for device in devices {
                deleted[2] += self
                    .with_writer(move |w, _| seal::drop_seconds(&mut w.conn, device, cutoff))
                    .await?;
            }
        }
        let targets = [
            (Target::new("status", o.raw_retention, 1), 1),
            // Rows of a version 2 file.
            (Target::new("measurement_1s", second, SECONDS.window), 2),
            (Target::new("logs", o.log_retention, 1), 3),
        ];
        for (target, slot) in targets {
            let Some(cutoff) = target.cutoff(now_us) else {
                continue;
            };
            let table = target.table;
            let devices = self
                .with_writer(move |w, inner| {
                    inner.kept.raise(&w.conn, table, cutoff)?;
                    prune::device_keys(&w.conn)
                })
                .await?;
            for device in devices {
                loop {
                    let n = self
                        .with_writer(move |w, _| {
                            prune::delete_batch(&mut w.conn, table, device, cutoff)
                        })
                        .await?;
                    deleted[slot] += n;
                    if n < PRUNE_BATCH as u64 {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
        }
        if let Some(max) = o.log_max_bytes {
            deleted[3] += self
                .with_writer(move |w, _| prune::logs_over_size(&mut w.conn, max))
                .await?;
        }
        let out = PruneOutcome {
            measurements: deleted[0],
            statuses: deleted[1],
            second_rollups: deleted[2],
            logs: deleted[3],
        };
        if deleted.iter().any(|&n| n > 0) {
            tracing::info!(
                measurements = out.measurements,
                statuses = out.statuses,
                second_rollups = out.second_rollups,
                logs = out.logs,
                "retired and pruned old data"
            );
        }
        Ok(out)
    }

    /// Turns every raw reading before `cutoff` (a window start) into 1 s envelopes, the
    /// oldest window first across all devices; the raw horizon follows each finished window,
    /// so a reader finds every window either still raw or already in envelopes.
    async fn retire_raw(&self, cutoff: i64) -> Result<u64, StoreError> {
        let mut readings = 0;
        loop {
            let next = self
                .with_writer(move |w, _| {
                    let devices = prune::device_keys(&w.conn)?;
                    let mut oldest: Option<i64> = None;
                    for &d in &devices {
                        if let Some(t) = blocks::oldest_window(&w.conn, &RAW, d, cutoff)? {
                            oldest = Some(oldest.map_or(t, |o| o.min(t)));
                        }
                    }
                    Ok(oldest.map(|w0| (w0, devices)))
                })
                .await?;
            let Some((w0, devices)) = next else {
                break;
            };
            for device in devices {
                readings += self
                    .with_writer(move |w, inner| {
                        let kept = inner.kept.from("measurement");
                        seal::retire_raw(&mut w.conn, device, w0, kept)
                    })
                    .await?;
            }
            let done = w0 + RAW.window;
            self.with_writer(move |w, inner| inner.kept.raise(&w.conn, "measurement", done))
                .await?;
        }
        self.with_writer(move |w, inner| inner.kept.raise(&w.conn, "measurement", cutoff))
            .await?;
        Ok(readings)
    }

    /// Compaction as of `now_us`: every closed window of raw readings and of 1 min envelopes
    /// still in rows is sealed into compressed blocks, a version 2 file's 1 s rows are sealed
    /// or dropped (where raw readings say the same), and free pages go back to the disk. Each
    /// device window is its own short transaction. The server runs this every minute.
    pub async fn seal(&self, now_us: i64) -> Result<SealOutcome, StoreError> {
        let mut out = SealOutcome::default();
        let devices = self.with_writer(|w, _| prune::device_keys(&w.conn)).await?;
        for device in devices {
            for tier in [RAW, MINUTES, SECONDS] {
                // Raw rows from the raw horizon on (older ones are retired by the next prune);
                // a version 2 file's 1 s rows before it.
                let raw_kept = self.inner.kept.from("measurement");
                let range = match tier {
                    RAW => (raw_kept, seal::horizon(&tier, now_us)),
                    SECONDS => (i64::MIN, raw_kept),
                    _ => (i64::MIN, seal::horizon(&tier, now_us)),
                };
                while let Some(w0) = self
                    .with_writer(move |w, _| {
                        blocks::oldest_row_window(&w.conn, &tier, device, range)
                    })
                    .await?
                {
                    out.items += self
                        .with_writer(move |w, _| {
                            let (n, newest) =
                                seal::seal_window(&mut w.conn, &tier, device, w0, raw_kept)?;
                            if let Some(t) = newest {
                                w.sealed_until(device, t);
                            }
                            Ok(n)
                        })
                        .await?;
                    out.windows += 1;
                }
            }
            let raw_from = self.inner.kept.from("measurement");
            while self
                .with_writer(move |w, _| {
                    seal::drop_redundant_seconds(&mut w.conn, device, raw_from)
                })
                .await?
                > 0
            {}
        }
        out.pages_freed = self.with_writer(|w, _| seal::give_back(&w.conn)).await?;
        if out.windows > 0 {
            tracing::debug!(
                windows = out.windows,
                items = out.items,
                pages_freed = out.pages_freed,
                "sealed closed windows"
            );
        }
        Ok(out)
    }

    /// Runs `f` with the writing connection in a blocking task.
    async fn with_writer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Writer, &Inner) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut w = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut w, &inner)
        })
        .await
        .map_err(error::join)?
        .map_err(error::map)
    }

    /// Runs `f` with a pooled reading connection in a blocking task.
    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &Inner) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.readers.get()?;
            f(&mut conn, &inner)
        })
        .await
        .map_err(error::join)?
        .map_err(error::map)
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn disk_bytes(&self) -> Option<u64> {
        // The database and its write-ahead log (the shared-memory index is not data).
        let mut wal = self.inner.path.clone().into_os_string();
        wal.push("-wal");
        let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        Some(len(&self.inner.path) + len(Path::new(&wal)))
    }

    fn kind(&self) -> StoreKind {
        StoreKind::Embedded
    }

    async fn write(&self, batch: Vec<Record>) -> Result<WriteOutcome, StoreError> {
        if batch.is_empty() {
            return Ok(WriteOutcome::default());
        }
        self.with_writer(move |w, _| w.write(&batch)).await
    }

    async fn healthy(&self) -> bool {
        self.with_reader(|c, _| {
            c.query_row("SELECT count(*) FROM devices", [], |r| r.get::<_, i64>(0))
        })
        .await
        .is_ok()
    }

    async fn history(&self, query: HistoryQuery) -> Result<History, StoreError> {
        self.with_reader(move |c, inner| read::history(c, &query, &inner.kept, &inner.rows))
            .await
    }

    async fn logs(&self, query: LogQuery) -> Result<Vec<LogRow>, StoreError> {
        self.with_reader(move |c, _| read::logs(c, &query)).await
    }

    async fn devices(&self) -> Result<Vec<DeviceSummary>, StoreError> {
        self.with_reader(|c, inner| read::devices(c, &inner.newest_sealed))
            .await
    }

    async fn export(&self, query: ExportQuery) -> Result<ExportStream, StoreError> {
        let (tx, rx) = mpsc::channel(4);
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || export(&inner, &query, &tx));
        Ok(rx)
    }

    async fn save_events(
        &self,
        replace_from: Option<(DeviceId, i64)>,
        events: Vec<StoredEvent>,
    ) -> Result<(), StoreError> {
        self.with_writer(move |w, _| events::save(&mut w.conn, replace_from.as_ref(), &events))
            .await
    }

    async fn events(&self, query: EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        self.with_reader(move |c, _| events::read(c, &query)).await
    }
}

/// Feeds an export channel chunk by chunk (keyset pagination on `ts`, a fresh short read per
/// chunk so no snapshot is held while the receiver is slow); stops when the receiver is gone.
fn export(
    inner: &Inner,
    q: &ExportQuery,
    tx: &mpsc::Sender<Result<Vec<ogm_protocol::Measurement>, StoreError>>,
) {
    let fail = |e: rusqlite::Error| {
        let _ = tx.blocking_send(Err(error::map(e)));
    };
    let (mut lo, hi) = clamp_range(q.start_us, q.stop_us);
    let device = match inner
        .readers
        .get()
        .and_then(|c| read::export_device(&c, &q.device_id))
    {
        Ok(Some(d)) => d,
        Ok(None) => return,
        Err(e) => return fail(e),
    };
    while lo < hi && !tx.is_closed() {
        let chunk = inner
            .readers
            .get()
            .and_then(|c| read::export_chunk(&c, device, lo, hi, EXPORT_CHUNK));
        let rows = match chunk {
            Ok(rows) => rows,
            Err(e) => return fail(e),
        };
        let Some(last) = rows.last() else {
            return;
        };
        let full = rows.len() == EXPORT_CHUNK;
        lo = last.timestamp + 1;
        if tx.blocking_send(Ok(rows)).is_err() || !full {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogm_protocol::{DeviceId, Payload, fixtures};
    use ogm_store::Field;

    /// History reads must not wait for the writer: hold the writer's lock inside an open
    /// write transaction and query.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[allow(clippy::await_holding_lock, reason = "holding the writer is the point")]
    async fn history_does_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
        let id = DeviceId::new("dev-1").unwrap();
        let m = |ts| fixtures::measurement(ts, 50.0);
        let batch = (0..10)
            .map(|i| Record {
                device_id: id.clone(),
                payload: Payload::Measurement(m(1_700_000_000_000_000 + i)),
            })
            .collect();
        store.write(batch).await.unwrap();

        let w = store.inner.writer.lock().unwrap();
        w.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        w.conn
            .execute("DELETE FROM measurement", [])
            .expect("uncommitted delete");
        let q = HistoryQuery::new(
            id,
            Field::Frequency,
            1_700_000_000_000_000,
            1_700_000_000_000_010,
            100,
        )
        .expect("a valid history query");
        let h = tokio::time::timeout(Duration::from_secs(10), store.history(q))
            .await
            .expect("history answered while a write transaction was open")
            .unwrap();
        assert_eq!(h.points.len(), 10, "readers see the last commit");
        w.conn.execute_batch("ROLLBACK").unwrap();
    }
}
