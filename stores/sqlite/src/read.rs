//! The read path: history (planned by [`crate::plan`]), logs, device summaries and export
//! chunks. Every function runs on a pooled reading connection inside a blocking task.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use ogm_protocol::{DeviceId, LogLevel, Measurement, Status};
use ogm_store::{DeviceSummary, Field, History, HistoryQuery, LogQuery, LogRow};
use rusqlite::{Connection, OptionalExtension, params};

use crate::blocks;
use crate::codec::{Block, CodecError};
use crate::plan::{
    Folder, Segment, Source, Tier, choose_interval, clamp_range, finest_complete_width, plan,
};
use crate::prune::Kept;

/// Rows visited by history queries, per tier, since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowsRead {
    pub raw: u64,
    pub second: u64,
    pub minute: u64,
}

#[derive(Debug, Default)]
pub(crate) struct RowCounter {
    raw: AtomicU64,
    second: AtomicU64,
    minute: AtomicU64,
}

impl RowCounter {
    fn add(&self, tier: Tier, n: u64) {
        let c = match tier {
            Tier::Raw => &self.raw,
            Tier::Second => &self.second,
            Tier::Minute => &self.minute,
        };
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> RowsRead {
        RowsRead {
            raw: self.raw.load(Ordering::Relaxed),
            second: self.second.load(Ordering::Relaxed),
            minute: self.minute.load(Ordering::Relaxed),
        }
    }
}

/// Where a field lives. Measured fields: the three block tiers of [`crate::blocks`] (1 s
/// envelopes only where raw readings were retired; elsewhere seconds fold from the readings).
/// Status fields: rows only, raw and per-minute.
#[derive(Debug, Clone, Copy)]
struct FieldTables {
    column: &'static str,
    /// The field's place among the measured ones; `None` for a status field.
    measured: Option<usize>,
    raw: &'static str,
    second: Option<&'static str>,
    minute: &'static str,
}

/// One cell of a field: start, min, max, sum, readings (a raw reading is a cell of one).
type Env = (i64, f64, f64, f64, i64);

impl FieldTables {
    fn of(field: Field) -> Self {
        let measured = Field::MEASURED.iter().position(|f| *f == field);
        if measured.is_some() {
            Self {
                column: field.as_str(),
                measured,
                raw: "measurement",
                second: Some("measurement_1s"),
                minute: "measurement_1m",
            }
        } else {
            Self {
                column: field.as_str(),
                measured,
                raw: "status",
                second: None,
                minute: "status_1m",
            }
        }
    }

    fn table(&self, tier: Tier) -> &'static str {
        match tier {
            Tier::Raw => self.raw,
            Tier::Second => self.second.unwrap_or(self.raw),
            Tier::Minute => self.minute,
        }
    }

    /// Every source of the field, finest first, with how far back each is complete.
    fn sources(&self, kept: &Kept) -> Vec<Source> {
        let mut s = vec![Source {
            tier: Tier::Raw,
            kept_from: kept.from(self.raw),
        }];
        if let Some(t) = self.second {
            s.push(Source {
                tier: Tier::Second,
                kept_from: kept.from(t),
            });
        }
        s.push(Source {
            tier: Tier::Minute,
            kept_from: i64::MIN,
        });
        s
    }

    /// Rows of one tier in `[?2, ?3)` for device `?1`, oldest first, as [`Env`] columns.
    fn rows_sql(&self, tier: Tier) -> String {
        let (t, c) = (self.table(tier), self.column);
        match tier {
            Tier::Raw => format!(
                "SELECT ts, {c}, {c}, {c}, 1 FROM {t} \
                 WHERE device = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts"
            ),
            _ => format!(
                "SELECT ts, {c}_min, {c}_max, {c}_sum, n FROM {t} \
                 WHERE device = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts"
            ),
        }
    }
}

fn device_key(conn: &Connection, id: &DeviceId) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM devices WHERE name = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()
}

fn env_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Env> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

/// A raw block's readings of the measured field `i`, as cells of one.
fn raw_envs(bytes: &[u8], i: usize) -> Result<Vec<Env>, CodecError> {
    let b = Block::raw(bytes)?;
    let v = b.field(i)?;
    Ok(b.times()?
        .into_iter()
        .zip(v)
        .map(|(t, v)| (t, v, v, v, 1))
        .collect())
}

/// A cell block's envelopes of the measured field `i`.
fn cell_envs(bytes: &[u8], i: usize) -> Result<Vec<Env>, CodecError> {
    let b = Block::cells(bytes)?;
    let [min, max, sum] = b.envelope(i)?;
    Ok(b.times()?
        .into_iter()
        .zip(b.counts()?)
        .enumerate()
        .map(|(j, (t, n))| (t, min[j], max[j], sum[j], n))
        .collect())
}

/// Blocks one history query has decoded, by table and newest time: its count and its
/// buckets, and the edges of neighbouring tiers, often read the same block.
/// Kept to a few dozen blocks, so a long range still streams in bounded memory.
type Memo = HashMap<(&'static str, i64), Rc<[Env]>>;
const MEMO_BLOCKS: usize = 32;

/// One history query's reading state: its field of one device, the raw horizon it planned
/// with, the counter of rows visited and the blocks it has decoded.
struct Query<'a> {
    conn: &'a Connection,
    field: FieldTables,
    device: i64,
    raw_kept_from: i64,
    rows: &'a RowCounter,
    memo: Memo,
}

impl Query<'_> {
    /// Reads one segment's cells in time order until `f` says stop, counting what it visits.
    fn visit(&mut self, seg: &Segment, f: &mut dyn FnMut(Env) -> bool) -> rusqlite::Result<()> {
        let Self {
            conn,
            field,
            device,
            raw_kept_from,
            rows,
            memo,
        } = self;
        let (conn, device, raw_kept_from, rows) = (*conn, *device, *raw_kept_from, *rows);
        let mut counted =
            |tier: Tier, conn: &Connection, lo: i64, hi: i64| -> rusqlite::Result<()> {
                if lo >= hi {
                    return Ok(());
                }
                let mut visited = 0u64;
                let mut go = |e: Env| {
                    visited += 1;
                    f(e)
                };
                let sql = field.rows_sql(tier);
                let result = match (field.measured, tier) {
                    (None, _) => {
                        let mut stmt = conn.prepare_cached(&sql)?;
                        let mut it = stmt.query(params![device, lo, hi])?;
                        while let Some(r) = it.next()? {
                            if !go(env_row(r)?) {
                                break;
                            }
                        }
                        Ok(())
                    }
                    (Some(i), tier) => {
                        let blocks = match tier {
                            Tier::Raw => &blocks::RAW,
                            Tier::Second => &blocks::SECONDS,
                            Tier::Minute => &blocks::MINUTES,
                        };
                        let decode =
                            |t1: i64, row: &rusqlite::Row<'_>| -> rusqlite::Result<Rc<[Env]>> {
                                if let Some(v) = memo.get(&(blocks.blocks, t1)) {
                                    return Ok(Rc::clone(v));
                                }
                                let bytes = blocks::data(row)?;
                                let v: Rc<[Env]> = if tier == Tier::Raw {
                                    raw_envs(bytes, i)
                                } else {
                                    cell_envs(bytes, i)
                                }
                                .map_err(blocks::damaged)?
                                .into();
                                if memo.len() < MEMO_BLOCKS {
                                    memo.insert((blocks.blocks, t1), Rc::clone(&v));
                                }
                                Ok(v)
                            };
                        blocks::merged(
                            conn,
                            blocks,
                            device,
                            (lo, hi),
                            &sql,
                            env_row,
                            decode,
                            |e| e.0,
                            go,
                        )
                    }
                };
                rows.add(tier, visited);
                result
            };
        match seg.tier {
            // Before the raw horizon, 1 s envelopes are all there is. After it, window by window,
            // a sealed window's envelopes where it has them, else the readings.
            Tier::Second if field.measured.is_some() => {
                let split = crate::seal::ceil_to_second(raw_kept_from).clamp(seg.lo, seg.hi);
                counted(Tier::Second, conn, seg.lo, split)?;
                let mut a = split;
                while a < seg.hi {
                    let b = (blocks::RAW.window_of(a) + blocks::RAW.window).min(seg.hi);
                    if blocks::envelopes_cover(conn, device, (a, b))? {
                        counted(Tier::Second, conn, a, b)?;
                    } else {
                        counted(Tier::Raw, conn, a, b)?;
                    }
                    a = b;
                }
                Ok(())
            }
            tier => counted(tier, conn, seg.lo, seg.hi),
        }
    }
}

/// The number of raw readings in the planned range, exact up to `cap + 1`, then it stops
/// counting. Coarse segments go first so a dense range stops after a few rollup cells.
fn count_capped(q: &mut Query<'_>, segments: &[Segment], cap: u64) -> rusqlite::Result<u64> {
    let mut order: Vec<&Segment> = segments.iter().collect();
    order.sort_by_key(|s| std::cmp::Reverse(s.tier));
    let mut total = 0u64;
    for seg in order {
        if total > cap {
            break;
        }
        q.visit(seg, &mut |e| {
            total += u64::try_from(e.4).unwrap_or(0);
            total <= cap
        })?;
    }
    Ok(total)
}

/// Folds the planned segments into buckets. With `interval == 0`, gives `None` as soon as
/// there are more than `max` points.
fn read_buckets(
    q: &mut Query<'_>,
    segments: &[Segment],
    (interval, max): (i64, u32),
) -> rusqlite::Result<Option<Vec<ogm_store::Bucket>>> {
    let mut folder = Folder::new(interval);
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let mut over = false;
    for seg in segments {
        q.visit(seg, &mut |e| {
            folder.cell(e.0, e.1, e.2, e.3, u64::try_from(e.4).unwrap_or(0));
            over = interval == 0 && folder.len() > limit;
            !over
        })?;
        if over {
            return Ok(None);
        }
    }
    Ok(Some(folder.finish()))
}

/// Answers a history query; see the crate documentation for the strategy.
pub(crate) fn history(
    conn: &mut Connection,
    q: &HistoryQuery,
    kept: &Kept,
    rows: &RowCounter,
) -> rusqlite::Result<History> {
    let (start, stop) = clamp_range(q.start_us(), q.stop_us());
    let empty = History {
        interval_us: 0,
        points: Vec::new(),
    };
    if start >= stop {
        return Ok(empty);
    }
    // One read transaction: the count and the rows come from the same snapshot.
    let tx = conn.transaction()?;
    let Some(device) = device_key(&tx, q.device_id())? else {
        return Ok(empty);
    };
    let field = FieldTables::of(q.field());
    let sources = field.sources(kept);
    let max = q.max_points().max(1);
    let mut query = Query {
        conn: &tx,
        field,
        device,
        raw_kept_from: sources[0].kept_from,
        rows,
        memo: Memo::new(),
    };
    let count = count_capped(&mut query, &plan(start, stop, &sources), u64::from(max))?;
    let finest = finest_complete_width(start, &sources);
    let mut interval = choose_interval(start, stop, max, count, finest);
    loop {
        let usable: Vec<Source> = if interval == 0 {
            sources[..1].to_vec()
        } else {
            sources
                .iter()
                .copied()
                .filter(|s| interval % s.tier.width_us() == 0)
                .collect()
        };
        let segments = plan(start, stop, &usable);
        match read_buckets(&mut query, &segments, (interval, max))? {
            Some(points) => {
                return Ok(History {
                    interval_us: interval,
                    points,
                });
            }
            // More raw rows than counted: impossible within one snapshot, but never answer
            // with more than max_points.
            None => interval = choose_interval(start, stop, max, u64::MAX, finest),
        }
    }
}

const LOGS_SQL: &str = "SELECT device, ts, message, module FROM logs \
     WHERE level = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts DESC LIMIT ?4";
const LOGS_OF_DEVICE_SQL: &str = "SELECT device, ts, message, module FROM logs \
     WHERE device = ?5 AND level = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts DESC LIMIT ?4";

/// Log entries, newest first: one indexed query per level at or above the minimum, merged.
pub(crate) fn logs(conn: &mut Connection, q: &LogQuery) -> rusqlite::Result<Vec<LogRow>> {
    let (start, stop) = clamp_range(q.start_us, q.stop_us);
    if q.limit == 0 || start >= stop {
        return Ok(Vec::new());
    }
    let tx = conn.transaction()?;
    let names: HashMap<i64, DeviceId> = match &q.device_id {
        Some(id) => match device_key(&tx, id)? {
            Some(k) => HashMap::from([(k, id.clone())]),
            None => return Ok(Vec::new()),
        },
        None => device_names(&tx)?,
    };
    let only = q
        .device_id
        .as_ref()
        .and_then(|_| names.keys().next().copied());
    let limit = i64::from(q.limit);
    let mut out = Vec::new();
    for level in LogLevel::ALL
        .into_iter()
        .filter(|l| q.min_level.is_none_or(|m| *l >= m))
    {
        let code = crate::write::level_code(level);
        let mut stmt = tx.prepare_cached(if only.is_some() {
            LOGS_OF_DEVICE_SQL
        } else {
            LOGS_SQL
        })?;
        let mut it = match only {
            Some(device) => stmt.query(params![code, start, stop, limit, device])?,
            None => stmt.query(params![code, start, stop, limit])?,
        };
        // An entry of the answer has less than `max_bytes` of newer entries before it, of
        // every level together and so of its own level: reading each level that far suffices.
        let mut weight = 0usize;
        while let Some(r) = it.next()? {
            let Some(device_id) = names.get(&r.get::<_, i64>(0)?) else {
                continue;
            };
            let row = LogRow {
                t: r.get(1)?,
                device_id: device_id.clone(),
                level,
                message: r.get(2)?,
                module: r.get(3)?,
            };
            weight = weight.saturating_add(row.weight());
            out.push(row);
            if weight > q.max_bytes {
                break;
            }
        }
    }
    out.sort_by(|a, b| b.t.cmp(&a.t).then_with(|| a.device_id.cmp(&b.device_id)));
    ogm_store::keep_newest(&mut out, q.limit, q.max_bytes);
    Ok(out)
}

/// `devices.id` → device id, skipping names that are not valid ids (never written by us).
fn device_names(conn: &Connection) -> rusqlite::Result<HashMap<i64, DeviceId>> {
    let mut stmt = conn.prepare_cached("SELECT id, name FROM devices")?;
    let mut it = stmt.query([])?;
    let mut out = HashMap::new();
    while let Some(r) = it.next()? {
        if let Ok(id) = DeviceId::new(&r.get::<_, String>(1)?) {
            out.insert(r.get(0)?, id);
        }
    }
    Ok(out)
}

/// Every device with its newest measurement and status, each found by one index probe.
pub(crate) fn devices(
    conn: &mut Connection,
    sealed: &blocks::NewestSealed,
) -> rusqlite::Result<Vec<DeviceSummary>> {
    let tx = conn.transaction()?;
    let mut list: Vec<(i64, String, i64)> = Vec::new();
    {
        let mut stmt =
            tx.prepare_cached("SELECT id, name, last_seen FROM devices ORDER BY name")?;
        let mut it = stmt.query([])?;
        while let Some(r) = it.next()? {
            list.push((r.get(0)?, r.get(1)?, r.get(2)?));
        }
    }
    let mut last_m = tx.prepare_cached(
        "SELECT ts, frequency, voltage, current, power FROM measurement \
         WHERE device = ?1 ORDER BY ts DESC LIMIT 1",
    )?;
    let mut last_s = tx.prepare_cached(
        "SELECT ts, rssi, free_heap, online, battery, dropped FROM status \
         WHERE device = ?1 ORDER BY ts DESC LIMIT 1",
    )?;
    let mut out = Vec::with_capacity(list.len());
    for (key, name, last_seen) in list {
        let Ok(device_id) = DeviceId::new(&name) else {
            continue;
        };
        let row = last_m
            .query_row([key], blocks::measurement_row)
            .optional()?;
        // A device quiet for longer than a window has its newest reading in a block (and a
        // late reading's row may be older than it).
        let last_measurement = match (row, sealed.get(&tx, key)?) {
            (Some(r), Some(b)) => Some(if b.timestamp > r.timestamp { b } else { r }),
            (r, b) => r.or(b),
        };
        let last_status = last_s
            .query_row([key], |r| {
                Ok(Status {
                    timestamp: r.get(0)?,
                    rssi: i32::try_from(r.get::<_, i64>(1)?).unwrap_or(i32::MIN),
                    free_heap: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    online: r.get(3)?,
                    battery: r.get(4)?,
                    dropped: r
                        .get::<_, Option<i64>>(5)?
                        .map(|d| u64::try_from(d).unwrap_or(0)),
                })
            })
            .optional()?;
        out.push(DeviceSummary {
            device_id,
            last_seen,
            last_measurement,
            last_status,
        });
    }
    Ok(out)
}

/// The device's key, for an export.
pub(crate) fn export_device(conn: &Connection, id: &DeviceId) -> rusqlite::Result<Option<i64>> {
    device_key(conn, id)
}

/// Up to `limit` raw measurements in `[lo, hi)`, oldest first.
pub(crate) fn export_chunk(
    conn: &Connection,
    device: i64,
    lo: i64,
    hi: i64,
    limit: usize,
) -> rusqlite::Result<Vec<Measurement>> {
    let mut out = Vec::with_capacity(limit.min(1 << 16));
    blocks::raw_readings(conn, device, (lo, hi), |m| {
        out.push(m);
        out.len() < limit
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every history, log, device and export query must be an index search, never a scan.
    #[test]
    fn every_read_is_an_index_search() {
        let dir = tempfile::tempdir().unwrap();
        let conn =
            crate::schema::open_writer(&dir.path().join("t.db"), &Default::default()).unwrap();
        let mut sqls = Vec::new();
        for f in Field::ALL {
            let t = FieldTables::of(f);
            for tier in [Tier::Raw, Tier::Second, Tier::Minute] {
                if tier == Tier::Second && t.second.is_none() {
                    continue;
                }
                sqls.push(t.rows_sql(tier));
            }
        }
        for tier in [blocks::RAW, blocks::SECONDS, blocks::MINUTES] {
            sqls.push(tier.blocks_sql());
        }
        sqls.push(
            "SELECT 1 FROM measurement_1s_block WHERE device = ?1 AND t0 >= ?2 AND t0 < ?3".into(),
        );
        for tier in [blocks::SECONDS, blocks::MINUTES] {
            sqls.push(blocks::cell_rows_sql(tier.rows));
        }
        for s in [
            LOGS_SQL,
            LOGS_OF_DEVICE_SQL,
            "SELECT ts, frequency, voltage, current, power FROM measurement WHERE device = ?1 ORDER BY ts DESC LIMIT 1",
            "SELECT ts, rssi, free_heap, online, battery, dropped FROM status WHERE device = ?1 ORDER BY ts DESC LIMIT 1",
            blocks::RAW_ROWS_SQL,
            "SELECT t0, t1 FROM measurement_block WHERE device = ?1 AND t0 <= ?2 ORDER BY t0 DESC LIMIT 1",
            "SELECT t0, t1 FROM measurement_block WHERE device = ?1 ORDER BY t0 DESC LIMIT 1",
            "SELECT data FROM measurement_block WHERE device = ?1 AND t0 = ?2",
        ] {
            sqls.push(s.to_owned());
        }
        for sql in sqls {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let n = stmt.parameter_count();
            let detail: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(vec![0i64; n]), |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = detail.join(" | ");
            assert!(plan.contains("SEARCH"), "{sql}\n  {plan}");
            // Scanning the LIMITed sub-query's own output is fine; scanning a table is not.
            assert!(
                !detail
                    .iter()
                    .any(|d| d.contains("SCAN") && !d.contains("subquery")),
                "{sql}\n  {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{sql}\n  {plan}");
        }
    }
}
