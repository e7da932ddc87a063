//! The write path: one transaction per batch that inserts raw rows with `INSERT OR IGNORE`
//! and, only for rows actually inserted, folds them into the per-minute rollups and the
//! devices' last-seen times. A redelivered record therefore changes nothing and is counted as
//! a duplicate; one older than the device's newest sealed window is first looked up in the
//! sealed block that would hold it.
//!
//! A measurement with a non-finite value (rejected upstream, so never expected) is skipped
//! with a warning and counted neither as stored nor as a duplicate: SQLite would turn NaN
//! into NULL, and one such record must not make the whole batch fail forever.

use std::collections::{BTreeMap, HashMap};

use ogm_protocol::{LogEntry, LogLevel, Measurement, Payload, Status};
use ogm_store::{Record, WriteOutcome, bucket_start};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::plan::MINUTE_US;

/// The writing connection and what it has learnt of device ids.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    /// Device id → `devices.id`; only entries committed to the database.
    ids: HashMap<String, i64>,
    /// `devices.id` → its newest sealed reading's time (readings after it need no look-up).
    sealed: HashMap<i64, i64>,
}

/// Min, max and sum of `N` fields over `n` rows.
#[derive(Debug, Clone, Copy)]
struct Agg<const N: usize> {
    n: i64,
    min: [f64; N],
    max: [f64; N],
    sum: [f64; N],
}

impl<const N: usize> Agg<N> {
    fn one(v: [f64; N]) -> Self {
        Self {
            n: 1,
            min: v,
            max: v,
            sum: v,
        }
    }

    fn merge(&mut self, o: &Self) {
        self.n += o.n;
        for i in 0..N {
            self.min[i] = self.min[i].min(o.min[i]);
            self.max[i] = self.max[i].max(o.max[i]);
            self.sum[i] += o.sum[i];
        }
    }
}

/// Rollup increments of one batch, keyed (device, cell start), merged before they are written.
type Cells<const N: usize> = BTreeMap<(i64, i64), Agg<N>>;

fn add<const N: usize>(cells: &mut Cells<N>, key: (i64, i64), agg: Agg<N>) {
    cells
        .entry(key)
        .and_modify(|a| a.merge(&agg))
        .or_insert(agg);
}

const MEASUREMENT_FIELDS: [&str; 4] = ["frequency", "voltage", "current", "power"];
const STATUS_FIELDS: [&str; 2] = ["rssi", "free_heap"];

/// `INSERT … ON CONFLICT DO UPDATE` that merges one rollup cell into `table`.
fn upsert_sql(table: &str, fields: &[&str]) -> String {
    let mut cols = String::from("device, ts, n");
    let mut vals = String::from("?1, ?2, ?3");
    let mut sets = String::from("n = n + excluded.n");
    let mut p = 4;
    for f in fields {
        cols += &format!(", {f}_min, {f}_max, {f}_sum");
        vals += &format!(", ?{}, ?{}, ?{}", p, p + 1, p + 2);
        sets += &format!(
            ", {f}_min = min({f}_min, excluded.{f}_min), \
             {f}_max = max({f}_max, excluded.{f}_max), \
             {f}_sum = {f}_sum + excluded.{f}_sum"
        );
        p += 3;
    }
    format!(
        "INSERT INTO {table} ({cols}) VALUES ({vals}) \
         ON CONFLICT (device, ts) DO UPDATE SET {sets}"
    )
}

fn flush<const N: usize>(
    tx: &Transaction<'_>,
    table: &str,
    fields: &[&str; N],
    cells: &Cells<N>,
) -> rusqlite::Result<()> {
    if cells.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(&upsert_sql(table, fields))?;
    let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(3 + 3 * N);
    for (&(device, ts), agg) in cells {
        values.clear();
        values.extend([device.into(), ts.into(), agg.n.into()]);
        for i in 0..N {
            values.extend([agg.min[i].into(), agg.max[i].into(), agg.sum[i].into()]);
        }
        stmt.execute(rusqlite::params_from_iter(values.iter()))?;
    }
    Ok(())
}

pub(crate) fn level_code(l: LogLevel) -> i64 {
    match l {
        LogLevel::Trace => 0,
        LogLevel::Debug => 1,
        LogLevel::Info => 2,
        LogLevel::Warn => 3,
        LogLevel::Error => 4,
    }
}

fn sat_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn finite(m: &Measurement) -> bool {
    [m.frequency, m.voltage, m.current, m.power]
        .iter()
        .all(|v| v.is_finite())
}

impl Writer {
    pub(crate) fn new(conn: Connection) -> rusqlite::Result<Self> {
        let sealed = crate::blocks::sealed_newest(&conn)?.into_iter().collect();
        Ok(Self {
            conn,
            ids: HashMap::new(),
            sealed,
        })
    }

    /// Notes that `device`'s newest sealed reading is at `t`.
    pub(crate) fn sealed_until(&mut self, device: i64, t: i64) {
        let e = self.sealed.entry(device).or_insert(t);
        *e = (*e).max(t);
    }

    /// Stores a batch in one transaction.
    pub(crate) fn write(&mut self, batch: &[Record]) -> rusqlite::Result<WriteOutcome> {
        let mut fresh = Vec::new();
        let result = write_batch(&mut self.conn, &self.ids, &self.sealed, &mut fresh, batch);
        if result.is_ok() {
            // Only ids that were committed are remembered.
            self.ids.extend(fresh);
        }
        result
    }
}

fn device_key(
    tx: &Transaction<'_>,
    known: &HashMap<String, i64>,
    fresh: &mut Vec<(String, i64)>,
    name: &str,
    ts: i64,
) -> rusqlite::Result<i64> {
    if let Some(&id) = known.get(name) {
        return Ok(id);
    }
    if let Some((_, id)) = fresh.iter().find(|(n, _)| n == name) {
        return Ok(*id);
    }
    let existing = tx
        .prepare_cached("SELECT id FROM devices WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    let id = match existing {
        Some(id) => id,
        None => {
            tx.prepare_cached("INSERT INTO devices (name, last_seen) VALUES (?1, ?2)")?
                .execute(params![name, ts])?;
            tx.last_insert_rowid()
        }
    };
    fresh.push((name.to_owned(), id));
    Ok(id)
}

fn write_batch(
    conn: &mut Connection,
    known: &HashMap<String, i64>,
    sealed: &HashMap<i64, i64>,
    fresh: &mut Vec<(String, i64)>,
    batch: &[Record],
) -> rusqlite::Result<WriteOutcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = WriteOutcome::default();
    let mut m_1m: Cells<4> = BTreeMap::new();
    let mut s_1m: Cells<2> = BTreeMap::new();
    let mut last_seen: HashMap<i64, i64> = HashMap::new();
    {
        let mut ins_m = tx.prepare_cached(
            "INSERT OR IGNORE INTO measurement (device, ts, frequency, voltage, current, power) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut ins_s = tx.prepare_cached(
            "INSERT OR IGNORE INTO status (device, ts, rssi, free_heap, online, battery, dropped) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut ins_l = tx.prepare_cached(
            "INSERT OR IGNORE INTO logs (device, ts, level, message, module) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for rec in batch {
            if let Payload::Measurement(m) = &rec.payload
                && !finite(m)
            {
                tracing::warn!(device = %rec.device_id, ts = m.timestamp, "measurement with a non-finite value not stored");
                continue;
            }
            let ts = rec.payload.timestamp();
            let device = device_key(&tx, known, fresh, rec.device_id.as_str(), ts)?;
            let inserted = match &rec.payload {
                Payload::Measurement(m) => {
                    let v = [m.frequency, m.voltage, m.current, m.power];
                    let in_sealed = sealed.get(&device).is_some_and(|&newest| ts <= newest)
                        && crate::blocks::sealed_holds(&tx, device, ts)?;
                    let n = if in_sealed {
                        0
                    } else {
                        ins_m.execute(params![device, ts, v[0], v[1], v[2], v[3]])?
                    };
                    if n > 0 {
                        add(
                            &mut m_1m,
                            (device, bucket_start(ts, MINUTE_US)),
                            Agg::one(v),
                        );
                    }
                    n > 0
                }
                Payload::Status(s) => {
                    let n = insert_status(&mut ins_s, device, s)?;
                    if n > 0 {
                        let v = [f64::from(s.rssi), s.free_heap as f64];
                        add(
                            &mut s_1m,
                            (device, bucket_start(ts, MINUTE_US)),
                            Agg::one(v),
                        );
                    }
                    n > 0
                }
                Payload::Logs(l) => insert_log(&mut ins_l, device, l)? > 0,
            };
            if inserted {
                out.stored += 1;
                last_seen
                    .entry(device)
                    .and_modify(|t| *t = (*t).max(ts))
                    .or_insert(ts);
            } else {
                out.duplicates += 1;
            }
        }
    }
    flush(&tx, "measurement_1m", &MEASUREMENT_FIELDS, &m_1m)?;
    flush(&tx, "status_1m", &STATUS_FIELDS, &s_1m)?;
    {
        let mut seen =
            tx.prepare_cached("UPDATE devices SET last_seen = max(last_seen, ?2) WHERE id = ?1")?;
        for (device, ts) in last_seen {
            seen.execute(params![device, ts])?;
        }
    }
    tx.commit()?;
    Ok(out)
}

fn insert_status(
    stmt: &mut rusqlite::CachedStatement<'_>,
    device: i64,
    s: &Status,
) -> rusqlite::Result<usize> {
    let battery = s.battery.filter(|b| b.is_finite());
    stmt.execute(params![
        device,
        s.timestamp,
        s.rssi,
        sat_i64(s.free_heap),
        s.online,
        battery,
        s.dropped.map(sat_i64),
    ])
}

fn insert_log(
    stmt: &mut rusqlite::CachedStatement<'_>,
    device: i64,
    l: &LogEntry,
) -> rusqlite::Result<usize> {
    stmt.execute(params![
        device,
        l.timestamp,
        level_code(l.level),
        l.message,
        l.module
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_merges_min_max_sum_and_count() {
        let sql = upsert_sql("status_1m", &STATUS_FIELDS);
        assert!(sql.contains("n = n + excluded.n"), "{sql}");
        assert!(sql.contains("rssi_min = min(rssi_min, excluded.rssi_min)"));
        assert!(sql.contains("free_heap_sum = free_heap_sum + excluded.free_heap_sum"));
        assert!(sql.contains("?9"), "{sql}");
        assert!(!sql.contains("?10"), "{sql}");
    }
}
