//! Sealed blocks on disk: each of the three measurement tiers keeps recent data as rows and
//! older data as compressed blocks ([`crate::codec`]), one or more per device and aligned
//! window, never crossing a window's edge. This module reads both as one time-ordered stream
//! and rewrites a window's rows and blocks as new blocks, in the caller's transaction.
//!
//! | tier | rows | blocks | window |
//! |---|---|---|---|
//! | raw readings | `measurement` | `measurement_block` | 1 h |
//! | 1 s envelopes | `measurement_1s` (files of version 2 only) | `measurement_1s_block` | 1 h |
//! | 1 min envelopes | `measurement_1m` (upserted by the ingest) | `measurement_1m_block` | 1 day |
//!
//! A block row is `(device, t0, t1, n, data)`: its first and last timestamp (or cell start),
//! its readings, the codec's bytes. Raw rows are never in a block too (the writer checks
//! sealed windows before it inserts); a cell may be in a block and a row at once (a late
//! reading's minute), and readers fold the two like any cells of one bucket.

use std::rc::Rc;

use ogm_protocol::Measurement;
use ogm_store::bucket_start;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::codec::{self, Block, Cell, CodecError, MAX_BLOCK};
use crate::plan::SECOND_US;

const HOUR_US: i64 = 3600 * SECOND_US;
const DAY_US: i64 = 24 * HOUR_US;

/// One tier's row table, block table and window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tiered {
    pub rows: &'static str,
    pub blocks: &'static str,
    pub window: i64,
}

pub(crate) const RAW: Tiered = Tiered {
    rows: "measurement",
    blocks: "measurement_block",
    window: HOUR_US,
};
pub(crate) const SECONDS: Tiered = Tiered {
    rows: "measurement_1s",
    blocks: "measurement_1s_block",
    window: HOUR_US,
};
pub(crate) const MINUTES: Tiered = Tiered {
    rows: "measurement_1m",
    blocks: "measurement_1m_block",
    window: DAY_US,
};

impl Tiered {
    pub(crate) fn window_of(&self, t: i64) -> i64 {
        bucket_start(t, self.window)
    }

    /// Blocks of `?1` that may hold times in `[?2, ?3)`, oldest first (`?2` is rounded down
    /// to its window by the caller).
    pub(crate) fn blocks_sql(&self) -> String {
        format!(
            "SELECT t1, data FROM {} WHERE device = ?1 AND t0 >= ?2 AND t0 < ?3 ORDER BY t0",
            self.blocks
        )
    }
}

/// A damaged block as a SQLite conversion error, so it travels the same way.
pub(crate) fn damaged(e: CodecError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
}

/// Visits the items of one tier in `[lo, hi)` in time order, blocks and rows merged, until
/// `f` says stop. `decode` turns a block row (its newest time, and the row, whose `data` it
/// reads with [`data`] unless it knows the block already) into its items; `row` reads one of
/// `rows_sql`'s rows (whose parameters are device, lo, hi).
#[allow(clippy::too_many_arguments, reason = "one merge for every item kind")]
pub(crate) fn merged<T: Clone>(
    conn: &Connection,
    tier: &Tiered,
    device: i64,
    (lo, hi): (i64, i64),
    rows_sql: &str,
    row: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
    mut decode: impl FnMut(i64, &Row<'_>) -> rusqlite::Result<Rc<[T]>>,
    time: impl Fn(&T) -> i64,
    mut f: impl FnMut(T) -> bool,
) -> rusqlite::Result<()> {
    let mut rows_stmt = conn.prepare_cached(rows_sql)?;
    let mut rows = rows_stmt.query(params![device, lo, hi])?;
    let mut next_row = match rows.next()? {
        Some(r) => Some(row(r)?),
        None => None,
    };
    let mut blocks_stmt = conn.prepare_cached(&tier.blocks_sql())?;
    let mut blocks = blocks_stmt.query(params![device, tier.window_of(lo), hi])?;
    while let Some(b) = blocks.next()? {
        let t1 = b.get::<_, i64>(0)?;
        if t1 < lo {
            continue;
        }
        let items = decode(t1, b)?;
        for item in items.iter() {
            let t = time(item);
            if t < lo {
                continue;
            }
            if t >= hi {
                break;
            }
            while let Some(r) = next_row.take_if(|r| time(r) < t) {
                if !f(r) {
                    return Ok(());
                }
                next_row = match rows.next()? {
                    Some(r) => Some(row(r)?),
                    None => None,
                };
            }
            if !f(item.clone()) {
                return Ok(());
            }
        }
    }
    while let Some(r) = next_row.take() {
        if !f(r) {
            return Ok(());
        }
        next_row = match rows.next()? {
            Some(r) => Some(row(r)?),
            None => None,
        };
    }
    Ok(())
}

/// A block row's bytes (the second column of [`Tiered::blocks_sql`]).
pub(crate) fn data<'r>(row: &'r Row<'_>) -> rusqlite::Result<&'r [u8]> {
    row.get_ref(1)?.as_blob().map_err(Into::into)
}

/// A decoder for [`merged`] that decodes every block it is given.
fn each<T>(
    decode: impl Fn(&[u8]) -> Result<Vec<T>, CodecError>,
) -> impl FnMut(i64, &Row<'_>) -> rusqlite::Result<Rc<[T]>> {
    move |_, row| Ok(decode(data(row)?).map_err(damaged)?.into())
}

/// Raw readings as full measurements.
pub(crate) const RAW_ROWS_SQL: &str = "SELECT ts, frequency, voltage, current, power \
     FROM measurement WHERE device = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts";

pub(crate) fn measurement_row(r: &Row<'_>) -> rusqlite::Result<Measurement> {
    Ok(Measurement {
        timestamp: r.get(0)?,
        frequency: r.get(1)?,
        voltage: r.get(2)?,
        current: r.get(3)?,
        power: r.get(4)?,
    })
}

/// Cells of a rollup table, all four fields.
pub(crate) fn cell_rows_sql(table: &str) -> String {
    format!(
        "SELECT ts, n, frequency_min, frequency_max, frequency_sum, voltage_min, voltage_max, \
         voltage_sum, current_min, current_max, current_sum, power_min, power_max, power_sum \
         FROM {table} WHERE device = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts"
    )
}

pub(crate) fn cell_row(r: &Row<'_>) -> rusqlite::Result<Cell> {
    let mut c = Cell {
        t: r.get(0)?,
        n: r.get(1)?,
        min: [0.0; codec::FIELDS],
        max: [0.0; codec::FIELDS],
        sum: [0.0; codec::FIELDS],
    };
    for i in 0..codec::FIELDS {
        c.min[i] = r.get(2 + 3 * i)?;
        c.max[i] = r.get(3 + 3 * i)?;
        c.sum[i] = r.get(4 + 3 * i)?;
    }
    Ok(c)
}

/// Every reading of `device` in `[lo, hi)`, oldest first.
pub(crate) fn raw_readings(
    conn: &Connection,
    device: i64,
    range: (i64, i64),
    f: impl FnMut(Measurement) -> bool,
) -> rusqlite::Result<()> {
    merged(
        conn,
        &RAW,
        device,
        range,
        RAW_ROWS_SQL,
        measurement_row,
        each(codec::decode_raw),
        |m| m.timestamp,
        f,
    )
}

/// Every cell of a rollup tier of `device` in `[lo, hi)`, oldest first (a cell may come twice,
/// from a block and a row).
pub(crate) fn cells(
    conn: &Connection,
    tier: &Tiered,
    device: i64,
    range: (i64, i64),
    f: impl FnMut(Cell) -> bool,
) -> rusqlite::Result<()> {
    merged(
        conn,
        tier,
        device,
        range,
        &cell_rows_sql(tier.rows),
        cell_row,
        each(codec::decode_cells),
        |c| c.t,
        f,
    )
}

/// Most readings in a raw block, and cells in a dense window's 1 s envelope block: a block is
/// decompressed whole, so a short range (the edges of any range) should not pay for a whole
/// dense hour; pcodec gains little past a few thousand values (at 10 Hz: 5.1 B a reading in
/// blocks of 600, 4.6 in blocks of 3000), and a blob's last overflow page is half empty on
/// average. Retired envelopes (read rarely, kept a year) are a block per hour.
const RAW_BLOCK: usize = 2048;
const SECONDS_BLOCK: usize = 600;

/// Splits `items` (time order) into at most `max` each, evenly.
fn chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let k = items.len().div_ceil(max).max(1);
    items.chunks(items.len().div_ceil(k).max(1))
}

/// Replaces what `tier` holds of `device` in the window starting at `w0` (rows and blocks)
/// with blocks of at most `max` of `items`. Runs in the caller's transaction.
#[allow(clippy::too_many_arguments, reason = "one rewrite for every item kind")]
fn rewrite<T>(
    conn: &Connection,
    tier: &Tiered,
    device: i64,
    (w0, max): (i64, usize),
    items: &[T],
    time: impl Fn(&T) -> i64,
    count: impl Fn(&T) -> i64,
    encode: impl Fn(&[T]) -> Vec<u8>,
) -> rusqlite::Result<()> {
    let w1 = w0 + tier.window;
    conn.prepare_cached(&format!(
        "DELETE FROM {} WHERE device = ?1 AND t0 >= ?2 AND t0 < ?3",
        tier.blocks
    ))?
    .execute(params![device, w0, w1])?;
    conn.prepare_cached(&format!(
        "DELETE FROM {} WHERE device = ?1 AND ts >= ?2 AND ts < ?3",
        tier.rows
    ))?
    .execute(params![device, w0, w1])?;
    let mut insert = conn.prepare_cached(&format!(
        "INSERT INTO {} (device, t0, t1, n, data) VALUES (?1, ?2, ?3, ?4, ?5)",
        tier.blocks
    ))?;
    for chunk in chunks(items, max) {
        let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
            continue;
        };
        let n: i64 = chunk.iter().map(&count).sum();
        insert.execute(params![device, time(first), time(last), n, encode(chunk)])?;
    }
    Ok(())
}

/// Seals `device`'s raw readings in the window at `w0`: its rows and any earlier blocks
/// become new blocks. A dense window (more than [`DENSE`] readings a second) also gets its
/// 1 s envelopes, so a range read in whole seconds needs a tenth of the values; a sparse one
/// does not (they would repeat the readings). Returns the readings the window holds.
///
/// Where the window holds the raw horizon of a version 2 file (its readings pruned at any
/// µs), the 1 s envelopes before the horizon stay as they are.
pub(crate) fn seal_raw(
    conn: &Connection,
    device: i64,
    w0: i64,
    raw_kept_from: i64,
) -> rusqlite::Result<(usize, Option<i64>)> {
    let mut all: Vec<Measurement> = Vec::new();
    raw_readings(conn, device, (w0, w0 + RAW.window), |m| {
        all.push(m);
        true
    })?;
    all.dedup_by_key(|m| m.timestamp);
    rewrite(
        conn,
        &RAW,
        device,
        (w0, RAW_BLOCK),
        &all,
        |m| m.timestamp,
        |_| 1,
        codec::encode_raw,
    )?;
    let boundary = crate::seal::ceil_to_second(raw_kept_from);
    let live = &all[all.partition_point(|m| m.timestamp < boundary)..];
    let seconds = seconds_of(live);
    let mut envelopes = Vec::new();
    cells(
        conn,
        &SECONDS,
        device,
        (w0, boundary.min(w0 + RAW.window)),
        |c| {
            envelopes.push(c);
            true
        },
    )?;
    // Envelopes cover a window whole or not at all: where a version 2 file's cells are kept
    // before the horizon, the readings after it get theirs too, however sparse.
    if live.len() as f64 > DENSE * seconds.len() as f64 || !envelopes.is_empty() {
        envelopes.extend(seconds);
    }
    replace_cells(conn, &SECONDS, device, (w0, SECONDS_BLOCK), envelopes)?;
    Ok((all.len(), all.last().map(|m| m.timestamp)))
}

/// Readings a second, on average over the seconds that have any, above which a sealed window
/// keeps its 1 s envelopes beside its readings.
const DENSE: f64 = 1.5;

/// Whether `[a, b)` (inside one raw window) can be read from the window's 1 s envelopes: the
/// window has them and no reading arrived since it was sealed.
pub(crate) fn envelopes_cover(
    conn: &Connection,
    device: i64,
    (a, b): (i64, i64),
) -> rusqlite::Result<bool> {
    let w0 = RAW.window_of(a);
    let has_envelopes = conn
        .prepare_cached(
            "SELECT 1 FROM measurement_1s_block WHERE device = ?1 AND t0 >= ?2 AND t0 < ?3",
        )?
        .exists(params![device, w0, w0 + RAW.window])?;
    if !has_envelopes {
        return Ok(false);
    }
    let has_rows = conn
        .prepare_cached("SELECT 1 FROM measurement WHERE device = ?1 AND ts >= ?2 AND ts < ?3")?
        .exists(params![device, a, b])?;
    Ok(!has_rows)
}

/// Seals `device`'s cells of a rollup tier in the window at `w0`, folding cells that come
/// twice (a minute that got a late reading after it was sealed).
pub(crate) fn seal_cells(
    conn: &Connection,
    tier: &Tiered,
    device: i64,
    w0: i64,
) -> rusqlite::Result<usize> {
    let mut all: Vec<Cell> = Vec::new();
    cells(conn, tier, device, (w0, w0 + tier.window), |c| {
        all.push(c);
        true
    })?;
    replace_cells(conn, tier, device, (w0, MAX_BLOCK), all)
}

/// Replaces what `tier` holds of `device` in the window at `w0` with `cells` (any order; cells
/// with the same start are folded into one), in blocks of at most `max`. Returns the cells
/// written.
pub(crate) fn replace_cells(
    conn: &Connection,
    tier: &Tiered,
    device: i64,
    (w0, max): (i64, usize),
    mut all: Vec<Cell>,
) -> rusqlite::Result<usize> {
    all.sort_by_key(|c| c.t);
    let mut folded: Vec<Cell> = Vec::with_capacity(all.len());
    for c in all {
        match folded.last_mut() {
            Some(last) if last.t == c.t => last.merge(&c),
            _ => folded.push(c),
        }
    }
    rewrite(
        conn,
        tier,
        device,
        (w0, max),
        &folded,
        |c| c.t,
        |c| c.n,
        codec::encode_cells,
    )?;
    Ok(folded.len())
}

/// The oldest window of `device` in `tier` with rows in `[from, before)`.
pub(crate) fn oldest_row_window(
    conn: &Connection,
    tier: &Tiered,
    device: i64,
    (from, before): (i64, i64),
) -> rusqlite::Result<Option<i64>> {
    let t: Option<i64> = conn
        .prepare_cached(&format!(
            "SELECT ts FROM {} WHERE device = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts LIMIT 1",
            tier.rows
        ))?
        .query_row(params![device, from, before], |r| r.get(0))
        .optional()?;
    Ok(t.map(|t| tier.window_of(t)))
}

/// The oldest window of `device` in `tier` with rows or blocks before `before`.
pub(crate) fn oldest_window(
    conn: &Connection,
    tier: &Tiered,
    device: i64,
    before: i64,
) -> rusqlite::Result<Option<i64>> {
    let block: Option<i64> = conn
        .prepare_cached(&format!(
            "SELECT t0 FROM {} WHERE device = ?1 AND t0 < ?2 ORDER BY t0 LIMIT 1",
            tier.blocks
        ))?
        .query_row(params![device, before], |r| r.get(0))
        .optional()?;
    let row = oldest_row_window(conn, tier, device, (i64::MIN, before))?;
    Ok(match (block.map(|t| tier.window_of(t)), row) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Per device, its newest sealed reading's time: a reading after it is in no block.
pub(crate) fn sealed_newest(conn: &Connection) -> rusqlite::Result<Vec<(i64, i64)>> {
    let mut stmt = conn.prepare("SELECT device, max(t1) FROM measurement_block GROUP BY device")?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Whether a sealed raw block of `device` holds a reading at `ts`. Only a block whose span
/// covers `ts` is read and decoded (a backlog landing after a sealed stretch costs one index
/// probe a reading).
pub(crate) fn sealed_holds(conn: &Connection, device: i64, ts: i64) -> rusqlite::Result<bool> {
    let block = conn
        .prepare_cached(
            "SELECT t0, t1 FROM measurement_block WHERE device = ?1 AND t0 <= ?2 \
             ORDER BY t0 DESC LIMIT 1",
        )?
        .query_row(params![device, ts], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })
        .optional()?;
    let Some((t0, _)) = block.filter(|&(_, t1)| t1 >= ts) else {
        return Ok(false);
    };
    let mut stmt =
        conn.prepare_cached("SELECT data FROM measurement_block WHERE device = ?1 AND t0 = ?2")?;
    let mut rows = stmt.query(params![device, t0])?;
    let Some(row) = rows.next()? else {
        return Ok(false);
    };
    let times = Block::raw(row.get_ref(0)?.as_blob()?)
        .and_then(|b| b.times())
        .map_err(damaged)?;
    Ok(times.binary_search(&ts).is_ok())
}

/// The newest sealed reading of each device, remembered by its timestamp: a reading never
/// changes once stored, so its block is decoded once, not at every device list (which every
/// history request consults).
#[derive(Debug, Default)]
pub(crate) struct NewestSealed(std::sync::Mutex<std::collections::HashMap<i64, Measurement>>);

impl NewestSealed {
    pub(crate) fn get(
        &self,
        conn: &Connection,
        device: i64,
    ) -> rusqlite::Result<Option<Measurement>> {
        let newest: Option<(i64, i64)> = conn
            .prepare_cached(
                "SELECT t0, t1 FROM measurement_block WHERE device = ?1 ORDER BY t0 DESC LIMIT 1",
            )?
            .query_row([device], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((t0, t1)) = newest else {
            return Ok(None);
        };
        let mut cache = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(m) = cache.get(&device).filter(|m| m.timestamp == t1) {
            return Ok(Some(*m));
        }
        let data: Vec<u8> = conn
            .prepare_cached("SELECT data FROM measurement_block WHERE device = ?1 AND t0 = ?2")?
            .query_row(params![device, t0], |r| r.get(0))?;
        let last = codec::decode_raw(&data).map_err(damaged)?.pop();
        if let Some(m) = &last {
            cache.insert(device, *m);
        }
        Ok(last)
    }
}

/// 1 s envelopes of readings in time order.
pub(crate) fn seconds_of(readings: &[Measurement]) -> Vec<Cell> {
    let mut out: Vec<Cell> = Vec::new();
    for m in readings {
        let t = bucket_start(m.timestamp, SECOND_US);
        let one = Cell::one(m, t);
        match out.last_mut() {
            Some(last) if last.t == t => last.merge(&one),
            _ => out.push(one),
        }
    }
    out
}
