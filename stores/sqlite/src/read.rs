//! The read path: history (planned by [`crate::plan`]), logs, device summaries and export
//! chunks. Every function runs on a pooled reading connection inside a blocking task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use ogm_protocol::{DeviceId, LogLevel, Measurement, Status};
use ogm_store::{DeviceSummary, Field, History, HistoryQuery, LogQuery, LogRow};
use rusqlite::{Connection, OptionalExtension, params};

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

/// Where a field lives: its raw table and column, and its rollup tables.
#[derive(Debug, Clone, Copy)]
struct FieldTables {
    column: &'static str,
    raw: &'static str,
    second: Option<&'static str>,
    minute: &'static str,
}

impl FieldTables {
    fn of(field: Field) -> Self {
        if field.is_measurement() {
            Self {
                column: field.as_str(),
                raw: "measurement",
                second: Some("measurement_1s"),
                minute: "measurement_1m",
            }
        } else {
            Self {
                column: field.as_str(),
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

    /// Rows of one tier in `[?2, ?3)` for device `?1`, oldest first.
    fn rows_sql(&self, tier: Tier) -> String {
        let (t, c) = (self.table(tier), self.column);
        match tier {
            Tier::Raw => format!(
                "SELECT ts, {c} FROM {t} WHERE device = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts"
            ),
            _ => format!(
                "SELECT ts, {c}_min, {c}_max, {c}_sum, n FROM {t} \
                 WHERE device = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts"
            ),
        }
    }

    /// Raw rows counted up to `?4`, or the rollup cells' counts.
    fn count_sql(&self, tier: Tier) -> String {
        let t = self.table(tier);
        match tier {
            Tier::Raw => format!(
                "SELECT count(*) FROM \
                 (SELECT 1 FROM {t} WHERE device = ?1 AND ts >= ?2 AND ts < ?3 LIMIT ?4)"
            ),
            _ => format!("SELECT n FROM {t} WHERE device = ?1 AND ts >= ?2 AND ts < ?3"),
        }
    }
}

fn device_key(conn: &Connection, id: &DeviceId) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM devices WHERE name = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()
}

/// The number of raw rows in the planned range, exact up to `cap + 1`, then it stops counting.
/// Coarse segments go first so a dense range stops after a few rollup rows.
fn count_capped(
    conn: &Connection,
    field: &FieldTables,
    device: i64,
    segments: &[Segment],
    cap: u64,
    rows: &RowCounter,
) -> rusqlite::Result<u64> {
    let mut order: Vec<&Segment> = segments.iter().collect();
    order.sort_by_key(|s| std::cmp::Reverse(s.tier));
    let mut total = 0u64;
    for seg in order {
        if total > cap {
            break;
        }
        let mut stmt = conn.prepare_cached(&field.count_sql(seg.tier))?;
        if seg.tier == Tier::Raw {
            let limit = i64::try_from(cap + 1 - total).unwrap_or(i64::MAX);
            let n: i64 = stmt.query_row(params![device, seg.lo, seg.hi, limit], |r| r.get(0))?;
            let n = u64::try_from(n).unwrap_or(0);
            rows.add(Tier::Raw, n);
            total += n;
        } else {
            let mut it = stmt.query(params![device, seg.lo, seg.hi])?;
            let mut visited = 0;
            while let Some(r) = it.next()? {
                visited += 1;
                total += u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0);
                if total > cap {
                    break;
                }
            }
            rows.add(seg.tier, visited);
        }
    }
    Ok(total)
}

/// Folds the planned segments into buckets. With `interval == 0`, gives `None` as soon as
/// there are more than `max` points.
fn read_buckets(
    conn: &Connection,
    field: &FieldTables,
    device: i64,
    segments: &[Segment],
    interval: i64,
    max: u32,
    rows: &RowCounter,
) -> rusqlite::Result<Option<Vec<ogm_store::Bucket>>> {
    let mut folder = Folder::new(interval);
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    for seg in segments {
        let mut stmt = conn.prepare_cached(&field.rows_sql(seg.tier))?;
        let mut it = stmt.query(params![device, seg.lo, seg.hi])?;
        let mut visited = 0;
        while let Some(r) = it.next()? {
            visited += 1;
            let t: i64 = r.get(0)?;
            if seg.tier == Tier::Raw {
                folder.point(t, r.get(1)?);
            } else {
                let n = u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0);
                folder.cell(t, r.get(1)?, r.get(2)?, r.get(3)?, n);
            }
            if interval == 0 && folder.len() > limit {
                rows.add(seg.tier, visited);
                return Ok(None);
            }
        }
        rows.add(seg.tier, visited);
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
    let count = count_capped(
        &tx,
        &field,
        device,
        &plan(start, stop, &sources),
        u64::from(max),
        rows,
    )?;
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
        match read_buckets(&tx, &field, device, &segments, interval, max, rows)? {
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

fn measurement_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Measurement> {
    Ok(Measurement {
        timestamp: r.get(0)?,
        frequency: r.get(1)?,
        voltage: r.get(2)?,
        current: r.get(3)?,
        power: r.get(4)?,
    })
}

/// Every device with its newest measurement and status, each found by one index probe.
pub(crate) fn devices(conn: &mut Connection) -> rusqlite::Result<Vec<DeviceSummary>> {
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
        let last_measurement = last_m.query_row([key], measurement_row).optional()?;
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
    let mut stmt = conn.prepare_cached(
        "SELECT ts, frequency, voltage, current, power FROM measurement \
         WHERE device = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts LIMIT ?4",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![device, lo, hi, limit], measurement_row)?;
    rows.collect()
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
                sqls.push(t.count_sql(tier));
            }
        }
        for s in [
            LOGS_SQL,
            LOGS_OF_DEVICE_SQL,
            "SELECT ts, frequency, voltage, current, power FROM measurement WHERE device = ?1 ORDER BY ts DESC LIMIT 1",
            "SELECT ts, rssi, free_heap, online, battery, dropped FROM status WHERE device = ?1 ORDER BY ts DESC LIMIT 1",
            "SELECT ts, frequency, voltage, current, power FROM measurement WHERE device = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts LIMIT ?4",
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
