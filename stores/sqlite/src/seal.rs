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

/// Seals one device window of `tier` in its own transaction; returns its items and, for raw
/// readings, the newest one's time.
pub(crate) fn seal_window(
    conn: &mut Connection,
    tier: &Tiered,
    device: i64,
    w0: i64,
    raw_kept_from: i64,
) -> rusqlite::Result<(u64, Option<i64>)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (n, newest) = if *tier == RAW {
        blocks::seal_raw(&tx, device, w0, raw_kept_from)?
    } else {
        (blocks::seal_cells(&tx, tier, device, w0)?, None)
    };
    tx.commit()?;
    Ok((n as u64, newest))
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
    let w1 = w0 + RAW.window;
    let boundary = ceil_to_second(raw_kept_from);
    let mut readings = Vec::new();
    blocks::raw_readings(&tx, device, (w0, w1), |m| {
        if m.timestamp >= boundary {
            readings.push(m);
        }
        true
    })?;
    let sealed = tx
        .prepare_cached(
            "SELECT 1 FROM measurement_block WHERE device = ?1 AND t0 >= ?2 AND t0 < ?3",
        )?
        .exists(params![device, w0, w1])?;
    let mut cells = Vec::new();
    blocks::cells(&tx, &SECONDS, device, (w0, boundary.min(w1)), |c| {
        cells.push(c);
        true
    })?;
    if !sealed {
        // No sealed readings: envelopes from the horizon on are an earlier retirement's (one
        // that a failure cut short before the horizon moved), and stay; only rows are new.
        let mut stmt = tx.prepare_cached(
            "SELECT data FROM measurement_1s_block WHERE device = ?1 AND t0 >= ?2 AND t0 < ?3",
        )?;
        let mut rows = stmt.query(params![device, w0, w1])?;
        while let Some(r) = rows.next()? {
            let kept =
                crate::codec::decode_cells(r.get_ref(0)?.as_blob()?).map_err(blocks::damaged)?;
            cells.extend(kept.into_iter().filter(|c| c.t >= boundary));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::Writer;
    use ogm_protocol::{DeviceId, Payload};
    use ogm_store::Record;

    const H: i64 = 3_600_000_000;
    /// An hour, as a window start.
    const W0: i64 = 472_222 * H;

    fn store() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let conn =
            crate::schema::open_writer(&dir.path().join("t.sqlite3"), &Default::default()).unwrap();
        (dir, Writer::new(conn).unwrap())
    }

    /// `n` readings of `device` from `t0`, `step` apart.
    fn readings(w: &mut Writer, device: &str, t0: i64, n: i64, step: i64) {
        let id = DeviceId::new(device).unwrap();
        let batch: Vec<Record> = (0..n)
            .map(|k| Record {
                device_id: id.clone(),
                payload: Payload::Measurement(ogm_protocol::fixtures::measurement(
                    t0 + k * step,
                    50.0,
                )),
            })
            .collect();
        assert_eq!(w.write(&batch).unwrap().stored as i64, n);
    }

    /// Readings the 1 s envelopes of `device` (key 1, 2, ...) count in the window.
    fn enveloped(conn: &Connection, device: i64) -> i64 {
        let mut n = 0;
        blocks::cells(conn, &SECONDS, device, (W0, W0 + H), |c| {
            n += c.n;
            true
        })
        .unwrap();
        n
    }

    /// A retirement cut short (the first device retired, the horizon not yet raised) runs
    /// again: the device already retired keeps its envelopes, and a late row joins them.
    #[test]
    fn a_retirement_run_again_keeps_what_the_first_run_made() {
        let (_dir, mut w) = store();
        readings(&mut w, "a", W0, 3_600, 1_000_000);
        readings(&mut w, "b", W0, 3_600, 1_000_000);
        assert_eq!(
            seal_window(&mut w.conn, &RAW, 1, W0, i64::MIN).unwrap().0,
            3_600
        );
        assert_eq!(retire_raw(&mut w.conn, 1, W0, i64::MIN).unwrap(), 3_600);
        assert_eq!(enveloped(&w.conn, 1), 3_600);
        // The run again, after a late reading of the first device arrived.
        readings(&mut w, "a", W0 + 500_000, 1, 1);
        assert_eq!(retire_raw(&mut w.conn, 1, W0, i64::MIN).unwrap(), 1);
        assert_eq!(retire_raw(&mut w.conn, 2, W0, i64::MIN).unwrap(), 3_600);
        assert_eq!(enveloped(&w.conn, 1), 3_601);
        assert_eq!(enveloped(&w.conn, 2), 3_600);
        // Nothing left to retire: a third run changes nothing.
        assert_eq!(retire_raw(&mut w.conn, 1, W0, i64::MIN).unwrap(), 0);
        assert_eq!(enveloped(&w.conn, 1), 3_601);
    }

    /// A version 2 file's horizon in the middle of a sparse hour: its 1 s rows before it are
    /// kept, and the readings after it get envelopes too, so the hour's envelopes are whole.
    #[test]
    fn a_horizon_inside_a_sparse_hour_leaves_no_hole_in_its_envelopes() {
        let (_dir, mut w) = store();
        let horizon = W0 + 1_800_000_000 + 500_000;
        // Readings every 4 s after the horizon; 1 s rows (as version 2 wrote them) before it.
        readings(&mut w, "a", horizon + 1_000_000, 450, 4_000_000);
        for k in 0..450i64 {
            w.conn
                .execute(
                    "INSERT INTO measurement_1s VALUES (1, ?1, 1, 50, 50, 50, 230, 230, 230, \
                     1, 1, 1, 230, 230, 230)",
                    [W0 + 4 * k * 1_000_000],
                )
                .unwrap();
        }
        assert_eq!(
            seal_window(&mut w.conn, &RAW, 1, W0, horizon).unwrap().0,
            450
        );
        assert_eq!(enveloped(&w.conn, 1), 900, "450 kept and 450 made");
        let covered = blocks::envelopes_cover(&w.conn, 1, (horizon + 1, W0 + H)).unwrap();
        assert!(covered, "the envelopes now serve the readings' seconds");
    }
}
