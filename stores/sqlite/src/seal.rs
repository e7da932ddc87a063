//! Compaction, one short write transaction per device and window so ingest interleaves:
//! sealing closed windows of rows into blocks, retiring raw readings past their retention into
//! 1 s envelopes, dropping 1 s envelopes past theirs, and giving freed pages back to the disk.
//! Each step is atomic, so a crash between two leaves every reading exactly once.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::blocks::{self, RAW, SECONDS, Tiered};
use crate::codec::Block;
use crate::plan::{MINUTE_US, SECOND_US};

/// A window is sealed once its end is this far in the past (late readings of a sealed window
/// are taken too, and sealed again with it on the next pass).
pub(crate) const SEAL_GRACE_US: i64 = 2 * MINUTE_US;

/// What one [`crate::SqliteStore::seal`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealOutcome {
    /// Device windows rewritten as blocks.
    pub windows: u64,
    /// Readings (raw) or cells (rollups) in them.
    pub items: u64,
    /// Pages given back to the file system.
    pub pages_freed: u64,
}

/// Start of the first window that is not yet closed at `now_us`.
pub(crate) fn horizon(tier: &Tiered, now_us: i64) -> i64 {
    tier.window_of(now_us.saturating_sub(SEAL_GRACE_US))
}

/// Seals one device window of `tier` in its own transaction; returns its items.
pub(crate) fn seal_window(
    conn: &mut Connection,
    tier: &Tiered,
    device: i64,
    w0: i64,
    raw_kept_from: i64,
) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = if *tier == RAW {
        blocks::seal_raw(&tx, device, w0, raw_kept_from)?
    } else {
        blocks::seal_cells(&tx, tier, device, w0)?
    };
    tx.commit()?;
    Ok(n as u64)
}

/// Turns a device's raw readings in the window at `w0` into 1 s envelopes and deletes the
/// readings, in one transaction; returns the readings. Envelopes the window already has from
/// before `raw_kept_from` (a version 2 file pruned its readings at any µs) are kept; the rest
/// are made from the readings.
pub(crate) fn retire_raw(
    conn: &mut Connection,
    device: i64,
    w0: i64,
    raw_kept_from: i64,
) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let boundary = ceil_to_second(raw_kept_from);
    let mut readings = Vec::new();
    blocks::raw_readings(&tx, device, (w0, w0 + RAW.window), |m| {
        if m.timestamp >= boundary {
            readings.push(m);
        }
        true
    })?;
    let mut cells = Vec::new();
    blocks::cells(
        &tx,
        &SECONDS,
        device,
        (w0, boundary.min(w0 + RAW.window)),
        |c| {
            cells.push(c);
            true
        },
    )?;
    cells.extend(blocks::seconds_of(&readings));
    blocks::replace_cells(&tx, &SECONDS, device, (w0, crate::codec::MAX_BLOCK), cells)?;
    for sql in [
        "DELETE FROM measurement WHERE device = ?1 AND ts >= ?2 AND ts < ?3",
        "DELETE FROM measurement_block WHERE device = ?1 AND t0 >= ?2 AND t0 < ?3",
    ] {
        tx.prepare_cached(sql)?
            .execute(params![device, w0, w0 + RAW.window])?;
    }
    tx.commit()?;
    Ok(readings.len() as u64)
}

/// The first whole second at or after `t` (`t` itself beyond the time limit, such as the
/// `i64::MIN` of a horizon never raised).
pub(crate) fn ceil_to_second(t: i64) -> i64 {
    if t.unsigned_abs() > crate::plan::TIME_LIMIT_US.unsigned_abs() {
        return t;
    }
    let f = ogm_store::bucket_start(t, SECOND_US);
    if f == t {
        t
    } else {
        f.saturating_add(SECOND_US)
    }
}

/// Deletes a device's 1 s envelope blocks before `cutoff` (a window start); returns the cells.
pub(crate) fn drop_seconds(
    conn: &mut Connection,
    device: i64,
    cutoff: i64,
) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut cells = 0u64;
    {
        let mut stmt = tx.prepare_cached(
            "SELECT data FROM measurement_1s_block WHERE device = ?1 AND t0 < ?2",
        )?;
        let mut rows = stmt.query(params![device, cutoff])?;
        while let Some(r) = rows.next()? {
            let block = Block::cells(r.get_ref(0)?.as_blob()?).map_err(blocks::damaged)?;
            cells += block.len() as u64;
        }
    }
    tx.prepare_cached("DELETE FROM measurement_1s_block WHERE device = ?1 AND t0 < ?2")?
        .execute(params![device, cutoff])?;
    tx.commit()?;
    Ok(cells)
}

/// A version 2 file's 1 s rows where raw readings are kept say nothing the readings do not:
/// deletes those of the oldest such window; returns how many went (0: none left).
pub(crate) fn drop_redundant_seconds(
    conn: &mut Connection,
    device: i64,
    raw_kept_from: i64,
) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let first: Option<i64> = tx
        .prepare_cached(
            "SELECT ts FROM measurement_1s WHERE device = ?1 AND ts >= ?2 ORDER BY ts LIMIT 1",
        )?
        .query_row(params![device, raw_kept_from], |r| r.get(0))
        .optional()?;
    let Some(first) = first else {
        return Ok(0);
    };
    let end = SECONDS.window_of(first) + SECONDS.window;
    let n = tx
        .prepare_cached("DELETE FROM measurement_1s WHERE device = ?1 AND ts >= ?2 AND ts < ?3")?
        .execute(params![device, first, end])?;
    tx.commit()?;
    Ok(n as u64)
}

/// Free pages kept rather than given back (64 KiB): the rows of the next hour take pages
/// again anyway, but a store's size on disk should be what it holds.
const FREE_SLACK_PAGES: i64 = 16;

/// Gives free pages past a slack back to the file system: at once where the file was made
/// with incremental auto-vacuum (every file since version 3), and by one full `VACUUM` the
/// first time for an older file that compaction left mostly free.
pub(crate) fn give_back(conn: &Connection) -> rusqlite::Result<u64> {
    let mode: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
    let free: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
    let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
    let freed = if mode == 2 && free > FREE_SLACK_PAGES {
        let excess = free - FREE_SLACK_PAGES;
        // Each step of the pragma frees one page: step it to the end.
        let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({excess})"))?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
        excess
    } else if mode != 2 && free > 0 && free * 2 >= pages {
        tracing::info!(
            free_pages = free,
            pages,
            "rewriting the embedded store once to give its free pages back (incremental from now on)"
        );
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
        free
    } else {
        return Ok(0);
    };
    // The file shrinks at a checkpoint; the log, which now holds the moved pages, with it.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(u64::try_from(freed).unwrap_or(0))
}
