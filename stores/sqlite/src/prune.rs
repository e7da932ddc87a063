//! Retention horizons, and deleting status rows, a version 2 file's per-second rows and logs
//! older than configured, in small batches (one short write transaction each) so ingest never
//! waits long. (Raw readings are retired into 1 s envelopes and those dropped by
//! [`crate::seal`].) Per-minute envelopes are kept forever; they are what long-range history
//! reads.
//!
//! Before a table is pruned, the time from which it is complete (`kept_from`) is raised, in
//! memory and in `meta`, so history queries from then on coarsen their buckets instead of
//! reading a half-deleted range.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ogm_store::bucket_start;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// Rows deleted per transaction.
pub(crate) const PRUNE_BATCH: i64 = 5_000;

/// What one [`crate::SqliteStore::prune`] pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    pub measurements: u64,
    pub statuses: u64,
    pub second_rollups: u64,
    pub logs: u64,
}

/// A table that retention applies to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub(crate) table: &'static str,
    pub(crate) retention: Option<Duration>,
    /// Cutoffs are aligned down to this (the rollup cell width), so no cell is cut in half.
    pub(crate) align: i64,
}

impl Target {
    pub(crate) fn new(table: &'static str, retention: Option<Duration>, align: i64) -> Self {
        Self {
            table,
            retention,
            align,
        }
    }

    /// Rows with `ts` before this go.
    pub(crate) fn cutoff(&self, now_us: i64) -> Option<i64> {
        let r = i64::try_from(self.retention?.as_micros()).unwrap_or(i64::MAX);
        Some(bucket_start(now_us.saturating_sub(r), self.align.max(1)))
    }
}

/// From when on each prunable history table is complete.
#[derive(Debug)]
pub(crate) struct Kept {
    measurement: AtomicI64,
    status: AtomicI64,
    measurement_1s: AtomicI64,
}

fn meta_key(table: &str) -> String {
    format!("kept_from:{table}")
}

impl Kept {
    pub(crate) fn load(conn: &Connection) -> rusqlite::Result<Self> {
        let get = |table: &str| -> rusqlite::Result<AtomicI64> {
            let v: Option<i64> = conn
                .query_row(
                    "SELECT value FROM meta WHERE key = ?1",
                    [meta_key(table)],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(AtomicI64::new(v.unwrap_or(i64::MIN)))
        };
        Ok(Self {
            measurement: get("measurement")?,
            status: get("status")?,
            measurement_1s: get("measurement_1s")?,
        })
    }

    fn slot(&self, table: &str) -> Option<&AtomicI64> {
        match table {
            "measurement" => Some(&self.measurement),
            "status" => Some(&self.status),
            "measurement_1s" => Some(&self.measurement_1s),
            _ => None,
        }
    }

    /// Rows of `table` starting before this may be gone; `i64::MIN` if never pruned.
    pub(crate) fn from(&self, table: &str) -> i64 {
        self.slot(table)
            .map_or(i64::MIN, |a| a.load(Ordering::Acquire))
    }

    /// Raises `table`'s horizon (memory first, so readers adapt before rows go).
    pub(crate) fn raise(&self, conn: &Connection, table: &str, t: i64) -> rusqlite::Result<()> {
        let Some(slot) = self.slot(table) else {
            return Ok(());
        };
        slot.fetch_max(t, Ordering::AcqRel);
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
            params![meta_key(table), t],
        )?;
        Ok(())
    }
}

pub(crate) fn device_keys(conn: &Connection) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM devices ORDER BY id")?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

/// Deletes up to [`PRUNE_BATCH`] of `device`'s oldest rows of `table` before `cutoff`, in one
/// transaction; returns how many went.
pub(crate) fn delete_batch(
    conn: &mut Connection,
    table: &str,
    device: i64,
    cutoff: i64,
) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let last: Option<i64> = tx
        .prepare_cached(&format!(
            "SELECT ts FROM {table} WHERE device = ?1 AND ts < ?2 ORDER BY ts LIMIT 1 OFFSET ?3"
        ))?
        .query_row(params![device, cutoff, PRUNE_BATCH - 1], |r| r.get(0))
        .optional()?;
    let n = match last {
        Some(last) => tx
            .prepare_cached(&format!(
                "DELETE FROM {table} WHERE device = ?1 AND ts <= ?2"
            ))?
            .execute(params![device, last])?,
        None => tx
            .prepare_cached(&format!(
                "DELETE FROM {table} WHERE device = ?1 AND ts < ?2"
            ))?
            .execute(params![device, cutoff])?,
    };
    tx.commit()?;
    Ok(n as u64)
}

/// Bytes a log row is counted as: its texts and a fixed share for the key, level and index.
const LOG_ROW_SQL: &str = "length(CAST(message AS BLOB)) + length(CAST(module AS BLOB)) + 48";

/// Deletes the oldest log entries (by arrival) until the rest take at most `max_bytes`, in
/// batches of [`PRUNE_BATCH`] rows, each its own transaction; returns how many went.
pub(crate) fn logs_over_size(conn: &mut Connection, max_bytes: u64) -> rusqlite::Result<u64> {
    let total: i64 = conn.query_row(
        &format!("SELECT coalesce(sum({LOG_ROW_SQL}), 0) FROM logs"),
        [],
        |r| r.get(0),
    )?;
    let mut excess = i128::from(total) - i128::from(max_bytes);
    let mut deleted = 0u64;
    while excess > 0 {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut last = None;
        {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT id, {LOG_ROW_SQL} FROM logs ORDER BY id LIMIT ?1"
            ))?;
            let mut rows = stmt.query([PRUNE_BATCH])?;
            while let Some(row) = rows.next()? {
                last = Some(row.get::<_, i64>(0)?);
                excess -= i128::from(row.get::<_, i64>(1)?);
                if excess <= 0 {
                    break;
                }
            }
        }
        let Some(last) = last else {
            break;
        };
        deleted += tx.execute("DELETE FROM logs WHERE id <= ?1", [last])? as u64;
        tx.commit()?;
    }
    Ok(deleted)
}
