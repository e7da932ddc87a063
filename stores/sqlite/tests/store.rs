//! The embedded store through the `Store` trait, on real files in temp dirs.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use ogm_protocol::{DeviceId, Kind, LogEntry, LogLevel, Measurement, Payload, Status, fixtures};
use ogm_store::{
    Bucket, EventQuery, ExportQuery, Field, History, HistoryQuery, LogQuery, Record, Store,
    StoredEvent, WriteOutcome, bucket_interval_us,
};
use ogm_store_sqlite::{RowsRead, SqliteOptions, SqliteStore};

const S: i64 = 1_000_000;
const MIN: i64 = 60 * S;
const H: i64 = 60 * MIN;
const DAY: i64 = 24 * H;
/// 2023-11-14T22:14:00Z, a whole minute.
const T0: i64 = 1_700_000_040 * S;

fn dev(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

fn open(dir: &std::path::Path) -> SqliteStore {
    SqliteStore::open(dir, SqliteOptions::default()).unwrap()
}

/// Seals every closed window (as if the server ran for years more).
async fn seal_all(store: &SqliteStore) -> u64 {
    store.seal(1 << 60).await.unwrap().items
}

fn m_at(ts: i64, k: i64) -> Measurement {
    Measurement {
        timestamp: ts,
        // Multiples of 1/64 and integers: sums are exact, so means can be checked exactly.
        frequency: 49.5 + (k % 64) as f64 / 64.0,
        voltage: 230.0 + (k % 7) as f64,
        current: (k % 10) as f64,
        power: k as f64,
    }
}

fn rec(id: &DeviceId, p: Payload) -> Record {
    Record {
        device_id: id.clone(),
        payload: p,
    }
}

fn status_at(ts: i64, rssi: i32) -> Status {
    Status {
        timestamp: ts,
        rssi,
        free_heap: 200_000 + ts.rem_euclid(1000) as u64,
        online: Some(true),
        battery: None,
        dropped: Some(0),
    }
}

fn log_at(ts: i64, level: LogLevel, message: &str) -> LogEntry {
    LogEntry {
        timestamp: ts,
        level,
        message: message.to_owned(),
        module: "test".to_owned(),
    }
}

/// `n` measurements `step` apart from `t0`, value index `k` = 0, 1, 2, …
fn ramp(id: &DeviceId, t0: i64, n: i64, step: i64) -> Vec<Record> {
    (0..n)
        .map(|k| rec(id, Payload::Measurement(m_at(t0 + k * step, k))))
        .collect()
}

async fn write_all(store: &SqliteStore, records: Vec<Record>) -> WriteOutcome {
    let mut total = WriteOutcome::default();
    for chunk in records.chunks(5_000) {
        let o = store.write(chunk.to_vec()).await.unwrap();
        total.stored += o.stored;
        total.duplicates += o.duplicates;
    }
    total
}

/// A history answer, and the rows the query visited in each tier.
async fn counted(store: &SqliteStore, q: HistoryQuery) -> (History, RowsRead) {
    let before = store.rows_read();
    let h = store.history(q).await.unwrap();
    let after = store.rows_read();
    let read = RowsRead {
        raw: after.raw - before.raw,
        second: after.second - before.second,
        minute: after.minute - before.minute,
    };
    (h, read)
}

/// The newest `limit` log entries of `device_id` (None: every device), of any level and time.
fn all_logs(device_id: Option<DeviceId>, limit: u32) -> LogQuery {
    LogQuery {
        device_id,
        min_level: None,
        start_us: 0,
        stop_us: i64::MAX,
        limit,
        max_bytes: usize::MAX,
    }
}

fn hq(id: &DeviceId, field: Field, start_us: i64, stop_us: i64, max_points: u32) -> HistoryQuery {
    HistoryQuery::new(id.clone(), field, start_us, stop_us, max_points)
        .expect("a valid history query")
}

/// The buckets a scan of raw points gives (the definition the store must match).
fn reference(points: &[(i64, f64)], start: i64, stop: i64, interval: i64) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    for &(t, v) in points.iter().filter(|(t, _)| *t >= start && *t < stop) {
        let key = if interval == 0 {
            t
        } else {
            t.div_euclid(interval) * interval
        };
        match out.last_mut() {
            Some(b) if b.t == key => {
                b.min = b.min.min(v);
                b.max = b.max.max(v);
                b.mean += v;
                b.count += 1;
            }
            _ => out.push(Bucket {
                t: key,
                min: v,
                mean: v,
                max: v,
                count: 1,
            }),
        }
    }
    for b in &mut out {
        b.mean /= b.count as f64;
    }
    out
}

fn assert_same(got: &[Bucket], want: &[Bucket], ctx: &str) {
    assert_eq!(got.len(), want.len(), "{ctx}: bucket count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(
            (g.t, g.min, g.max, g.count),
            (w.t, w.min, w.max, w.count),
            "{ctx}"
        );
        assert!(
            (g.mean - w.mean).abs() <= 1e-9 * w.mean.abs().max(1.0),
            "{ctx}: mean {} vs {}",
            g.mean,
            w.mean
        );
    }
}

/// A tiny deterministic generator for test ranges.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: i64) -> i64 {
        (self.next() % n.max(1) as u64) as i64
    }
}

#[tokio::test]
async fn the_same_batch_twice_is_stored_once_and_rollups_do_not_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = dev("esp32-grid-001");
    let now = 1_703_123_456_789_123 + S;
    let mut batch: Vec<Record> = fixtures::GOOD
        .iter()
        .map(|(kind, json)| {
            let p = ogm_protocol::payload::decode(*kind, json.as_bytes(), now)
                .unwrap()
                .payload;
            rec(&id, p)
        })
        .collect();
    assert_eq!(batch[0].payload.kind(), Kind::Measurement);
    let t0 = 1_703_123_400_000_000;
    batch.extend(ramp(&id, t0, 1200, 100_000));

    let first = store.write(batch.clone()).await.unwrap();
    assert_eq!(
        first,
        WriteOutcome {
            stored: 1203,
            duplicates: 0
        }
    );

    let queries = [
        hq(&id, Field::Frequency, t0, t0 + 2 * MIN, 10_000), // raw
        hq(&id, Field::Power, t0, t0 + 2 * MIN, 1000),       // raw rows bucketed
        hq(&id, Field::Voltage, t0 - H, t0 + H, 30),         // per-minute cells
        hq(&id, Field::Current, t0, t0 + 2 * MIN, 20),       // per-second cells
        hq(&id, Field::Rssi, t0 - H, t0 + H, 30),            // status rollup
    ];
    let mut before = Vec::new();
    for q in &queries {
        before.push(store.history(q.clone()).await.unwrap());
    }
    assert!(before[0].interval_us == 0 && before[0].points.len() == 1201);
    assert_eq!(before[1].interval_us, 121_000);
    assert!(before[2].interval_us % MIN == 0 && before[3].interval_us % S == 0);
    let fixture_m = before[0]
        .points
        .iter()
        .any(|b| b.t == 1_703_123_456_789_123 && b.min == 50.02);
    assert!(fixture_m, "the seed's measurement is stored");

    // Sent again once sealed in blocks: still nothing new.
    assert!(seal_all(&store).await >= 1201);
    let again = store.write(batch.clone()).await.unwrap();
    assert_eq!(
        again,
        WriteOutcome {
            stored: 0,
            duplicates: 1203
        }
    );
    for (q, b) in queries.iter().zip(&before) {
        assert_eq!(&store.history(q.clone()).await.unwrap(), b, "{q:?}");
    }
    let total: u64 = before[2].points.iter().map(|b| b.count).sum();
    assert_eq!(total, 1201, "per-minute counts are not doubled");

    // A record repeated inside one batch counts once.
    let r = ramp(&id, t0 + H, 1, S);
    let twice = store.write(vec![r[0].clone(), r[0].clone()]).await.unwrap();
    assert_eq!(
        twice,
        WriteOutcome {
            stored: 1,
            duplicates: 1
        }
    );
    let logs = store.logs(all_logs(Some(id.clone()), 10)).await.unwrap();
    assert_eq!(logs.len(), 1, "the seed's log entry, once");
    assert_eq!(logs[0].message, "Grid frequency measurement completed");
}

#[tokio::test]
async fn raw_points_when_they_fit_with_inclusive_start_and_exclusive_stop() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = dev("a");
    write_all(&store, ramp(&id, T0, 100, 250_000)).await;
    let h = store
        .history(hq(&id, Field::Power, T0 + 250_000, T0 + 10 * S, 1000))
        .await
        .unwrap();
    assert_eq!(h.interval_us, 0);
    assert_eq!(h.points.len(), 39, "points 1..=39; 40 is at stop");
    for (i, b) in h.points.iter().enumerate() {
        let k = i as i64 + 1;
        assert_eq!(
            *b,
            Bucket {
                t: T0 + k * 250_000,
                min: k as f64,
                mean: k as f64,
                max: k as f64,
                count: 1
            }
        );
    }
    // Exactly max_points raw points is still raw; one fewer allowed point buckets them.
    let h = store
        .history(hq(&id, Field::Power, T0, T0 + 25 * S, 100))
        .await
        .unwrap();
    assert_eq!((h.interval_us, h.points.len()), (0, 100));
    let h = store
        .history(hq(&id, Field::Power, T0, T0 + 25 * S, 99))
        .await
        .unwrap();
    assert!(h.interval_us > 0 && h.points.len() <= 99);
}

#[tokio::test]
async fn a_ramp_buckets_exactly_from_each_tier() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = dev("ramp");
    // 10 Hz for two hours: power = k for the k-th point.
    write_all(&store, ramp(&id, T0, 72_000, 100_000)).await;
    // In rows, then sealed in blocks: the same answers.
    for sealed in [false, true] {
        if sealed {
            assert_eq!(
                seal_all(&store).await,
                72_000 + 120,
                "readings and minute cells"
            );
        }

        // One hour at 1000 points: 4 s buckets from per-second cells, 40 points each.
        let (h, read) = counted(&store, hq(&id, Field::Power, T0, T0 + H, 1000)).await;
        assert_eq!(h.interval_us, 4 * S);
        assert_eq!(h.points.len(), 900);
        for (j, b) in h.points.iter().enumerate() {
            let a = 40 * j as i64;
            let want = Bucket {
                t: T0 + j as i64 * 4 * S,
                min: a as f64,
                mean: a as f64 + 19.5,
                max: (a + 39) as f64,
                count: 40,
            };
            assert_eq!(*b, want);
        }
        // Seconds fold from the readings while they are rows; a sealed window has its 1 s
        // envelopes (10 readings a second is dense).
        let want = if sealed { (0, 3600) } else { (36_000, 0) };
        assert_eq!((read.raw, read.second), want);

        // Two hours at 100 points: 120 s buckets from per-minute cells.
        let (h, read) = counted(&store, hq(&id, Field::Power, T0, T0 + 2 * H, 100)).await;
        assert_eq!(h.interval_us, 2 * MIN);
        assert_eq!(h.points.len(), 60);
        for (j, b) in h.points.iter().enumerate() {
            let a = 1200 * j as i64;
            assert_eq!((b.min, b.max, b.count), (a as f64, (a + 1199) as f64, 1200));
            assert_eq!(b.mean, a as f64 + 599.5);
        }
        assert_eq!((read.raw, read.second), (0, 0));
        assert!(read.minute <= 120 + 2);

        // One minute at 100 points: 607 ms buckets from raw rows.
        let h = store
            .history(hq(&id, Field::Power, T0, T0 + MIN, 100))
            .await
            .unwrap();
        assert_eq!(h.interval_us, 607_000);
        let pts: Vec<(i64, f64)> = (0..600).map(|k| (T0 + k * 100_000, k as f64)).collect();
        assert_same(&h.points, &reference(&pts, T0, T0 + MIN, 607_000), "607 ms");

        // Frequency, voltage and current come from the same cells.
        let h = store
            .history(hq(&id, Field::Frequency, T0, T0 + H, 1000))
            .await
            .unwrap();
        assert_eq!(h.points[0].min, 49.5);
        assert_eq!(h.points[0].max, 49.5 + 39.0 / 64.0);
    }
}

/// Random ranges (aligned or not, any max_points) over data with jitter and a gap: the answer
/// equals a scan of raw rows with the same interval, never exceeds max_points, and is raw
/// exactly when the raw points fit.
#[tokio::test]
async fn random_ranges_match_a_scan_of_raw_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = dev("jitter");
    let mut rng = Lcg(7);
    let mut points = Vec::new();
    let mut records = Vec::new();
    let mut t = T0 + 123_457;
    for k in 0..40_000i64 {
        // ~10 Hz with jitter, and a 20-minute gap after the first 20,000 points.
        t += 90_000 + rng.below(20_000);
        if k == 20_000 {
            t += 20 * MIN;
        }
        let v = 50.0 + (rng.below(2001) - 1000) as f64 * 1e-4;
        let mut m = m_at(t, k);
        m.frequency = v;
        points.push((t, v));
        records.push(rec(&id, Payload::Measurement(m)));
    }
    write_all(&store, records).await;
    let (first, last) = (points[0].0, points[points.len() - 1].0);
    // Rows only; the first half sealed; all sealed; late readings in sealed windows (rows
    // again); those sealed with their windows.
    for phase in 0..5 {
        match phase {
            1 => {
                let n = store.seal(points[30_000].0 + 3 * MIN).await.unwrap().items;
                assert!(n > 10_000 && n < 40_000, "{n}");
            }
            2 | 4 => assert!(seal_all(&store).await > 0),
            3 => {
                let mut late = Vec::new();
                for _ in 0..500 {
                    let (t, _) = points[rng.below(40_000) as usize];
                    let v = 49.0 + rng.below(1000) as f64 * 1e-3;
                    if points.binary_search_by_key(&(t + 1), |p| p.0).is_err() {
                        points.push((t + 1, v));
                        points.sort_by_key(|p| p.0);
                        let mut m = m_at(t + 1, 0);
                        m.frequency = v;
                        late.push(rec(&id, Payload::Measurement(m)));
                    }
                }
                let n = late.len();
                assert_eq!(write_all(&store, late.clone()).await.stored, n);
                let again = store.write(late).await.unwrap();
                assert_eq!(
                    (again.stored, again.duplicates),
                    (0, n),
                    "rows beside blocks"
                );
            }
            _ => {}
        }
        random_queries(&store, &id, &points, (first, last), &mut rng).await;
    }
}

/// 300 random ranges over `points` (aligned or not, any max_points), each answer checked
/// against a scan of the points.
async fn random_queries(
    store: &SqliteStore,
    id: &DeviceId,
    points: &[(i64, f64)],
    (first, last): (i64, i64),
    rng: &mut Lcg,
) {
    for i in 0..300 {
        let max_points = [1, 2, 7, 100, 999, 1000, 10_000][i % 7];
        let span = [S / 3, 5 * S, MIN + 7, 17 * MIN, H, 2 * H][rng.below(6) as usize];
        let span = span / 2 + rng.below(span);
        let mut start = first - MIN + rng.below(last - first + 2 * MIN);
        if i % 5 == 0 {
            start -= start.rem_euclid(MIN); // aligned sometimes
        }
        let stop = start + span;
        let h = store
            .history(hq(id, Field::Frequency, start, stop, max_points))
            .await
            .unwrap();
        let want = reference(points, start, stop, h.interval_us);
        let ctx = format!(
            "[{start}, {stop}) max {max_points} interval {}",
            h.interval_us
        );
        assert_same(&h.points, &want, &ctx);
        assert!(h.points.len() <= max_points as usize, "{ctx}");
        let raw = points
            .iter()
            .filter(|(t, _)| *t >= start && *t < stop)
            .count() as u64;
        assert_eq!(h.interval_us == 0, raw <= u64::from(max_points), "{ctx}");
        assert!(
            h.interval_us >= bucket_interval_us(start, stop, max_points, raw),
            "{ctx}"
        );
        assert!(
            h.points.windows(2).all(|w| w[0].t < w[1].t),
            "{ctx}: oldest first"
        );
        assert!(h.points.iter().all(|b| b.count > 0), "{ctx}");
    }
}

#[tokio::test]
async fn empty_buckets_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = dev("gappy");
    // Minutes 0-10 and 50-60 of an hour, at 1 Hz.
    let mut r = ramp(&id, T0, 600, S);
    r.extend(ramp(&id, T0 + 50 * MIN, 600, S));
    write_all(&store, r).await;
    let h = store
        .history(hq(&id, Field::Power, T0, T0 + H, 60))
        .await
        .unwrap();
    assert_eq!(h.interval_us, 2 * MIN);
    let starts: Vec<i64> = h.points.iter().map(|b| (b.t - T0) / MIN).collect();
    assert_eq!(starts, [0, 2, 4, 6, 8, 50, 52, 54, 56, 58]);
    assert!(h.points.iter().all(|b| b.count == 120));
    // Nothing at all in range: no points.
    let h = store
        .history(hq(&id, Field::Power, T0 + 20 * MIN, T0 + 40 * MIN, 60))
        .await
        .unwrap();
    assert!(h.points.is_empty());
}

#[tokio::test]
async fn seven_days_at_1000_points_read_only_per_minute_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = dev("week");
    // One measurement every 10 s and one status a minute for 7 days.
    let mut r = ramp(&id, T0, 7 * 8640, 10 * S);
    let rssi: Vec<(i64, f64)> = (0..7 * 1440)
        .map(|k| (T0 + k * MIN + 5 * S, -50.0 - (k % 30) as f64))
        .collect();
    r.extend(
        rssi.iter()
            .map(|&(t, v)| rec(&id, Payload::Status(status_at(t, v as i32)))),
    );
    write_all(&store, r).await;

    let (h, read) = counted(&store, hq(&id, Field::Frequency, T0, T0 + 7 * DAY, 1000)).await;
    assert_eq!(h.interval_us, 11 * MIN);
    assert!(h.points.len() <= 1000);
    assert_eq!(h.points.iter().map(|b| b.count).sum::<u64>(), 7 * 8640);
    assert_eq!(read.raw, 0, "no raw rows");
    assert_eq!(read.second, 0, "no per-second rows");
    assert!(
        read.minute <= 7 * 1440 + 1001,
        "{} minute rows",
        read.minute
    );

    // Unaligned edges add at most a second of raw rows and 59 per-second rows at each end.
    let (h, read) = counted(
        &store,
        hq(
            &id,
            Field::Power,
            T0 + 17 * S + 3,
            T0 + 7 * DAY - 29 * S - 5,
            1000,
        ),
    )
    .await;
    assert!(h.points.len() <= 1000);
    // Seconds fold from the raw readings: under a minute of them at each end, one every 10 s.
    assert!(read.raw <= 2 * 6, "{:?}", read);
    assert_eq!(read.second, 0, "{:?}", read);

    // Status fields: per-minute status rollups.
    let (h, read) = counted(&store, hq(&id, Field::Rssi, T0, T0 + 7 * DAY, 1000)).await;
    assert_eq!(h.interval_us, 11 * MIN);
    assert_same(
        &h.points,
        &reference(&rssi, T0, T0 + 7 * DAY, 11 * MIN),
        "rssi",
    );
    assert_eq!((read.raw, read.second), (0, 0));
}

#[tokio::test]
async fn logs_are_newest_first_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b) = (dev("a"), dev("b"));
    let mut r = Vec::new();
    for k in 0..50i64 {
        let level = LogLevel::ALL[(k % 5) as usize];
        r.push(rec(
            &a,
            Payload::Logs(log_at(T0 + k * S, level, &format!("a{k}"))),
        ));
        r.push(rec(
            &b,
            Payload::Logs(log_at(T0 + k * S + 1, level, &format!("b{k}"))),
        ));
    }
    // Same timestamp on two devices: ordered by device id.
    r.push(rec(
        &b,
        Payload::Logs(log_at(T0 + 100 * S, LogLevel::Error, "tie-b")),
    ));
    r.push(rec(
        &a,
        Payload::Logs(log_at(T0 + 100 * S, LogLevel::Error, "tie-a")),
    ));
    store.write(r).await.unwrap();
    let q = |device_id: Option<DeviceId>, min_level, start_us, stop_us, limit| LogQuery {
        device_id,
        min_level,
        start_us,
        stop_us,
        limit,
        max_bytes: usize::MAX,
    };

    let all = store.logs(q(None, None, 0, i64::MAX, 1000)).await.unwrap();
    assert_eq!(all.len(), 102);
    assert!(all.windows(2).all(|w| w[0].t >= w[1].t), "newest first");
    assert_eq!(
        (all[0].message.as_str(), all[1].message.as_str()),
        ("tie-a", "tie-b")
    );
    assert_eq!(all[2].message, "b49");

    let warn_a = store
        .logs(q(
            Some(a.clone()),
            Some(LogLevel::Warn),
            T0,
            T0 + 50 * S,
            1000,
        ))
        .await
        .unwrap();
    assert_eq!(warn_a.len(), 20);
    assert!(
        warn_a
            .iter()
            .all(|l| l.device_id == a && l.level >= LogLevel::Warn)
    );
    assert_eq!(warn_a[0].message, "a49");
    assert_eq!(warn_a[0].level, LogLevel::Error);
    assert_eq!(warn_a[0].module, "test");

    // A byte budget: the newest entries as without one, up to the one whose weight passes it,
    // although each level is read only that far.
    let budget = all[..7]
        .iter()
        .map(ogm_store::LogRow::weight)
        .sum::<usize>()
        - 1;
    let cut = store
        .logs(LogQuery {
            max_bytes: budget,
            ..q(None, None, 0, i64::MAX, 1000)
        })
        .await
        .unwrap();
    assert_eq!(cut, all[..7]);
    let one = store
        .logs(LogQuery {
            max_bytes: 0,
            ..q(None, None, 0, i64::MAX, 1000)
        })
        .await
        .unwrap();
    assert_eq!(one, all[..1], "at least one");

    let limited = store
        .logs(q(None, Some(LogLevel::Info), T0, T0 + 10 * S, 3))
        .await
        .unwrap();
    let names: Vec<&str> = limited.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(names, ["b9", "a9", "b8"]);

    let range = store
        .logs(q(Some(b.clone()), None, T0 + 10 * S, T0 + 12 * S, 100))
        .await
        .unwrap();
    let names: Vec<&str> = range.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(names, ["b11", "b10"], "start inclusive, stop exclusive");

    assert!(
        store
            .logs(q(Some(dev("nobody")), None, 0, i64::MAX, 10))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .logs(q(None, None, 0, i64::MAX, 0))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn devices_report_their_newest_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b) = (dev("dev-a"), dev("dev-b"));
    let now = 1_703_123_456_789_123 + S;
    let fixture_status =
        ogm_protocol::payload::decode(Kind::Status, fixtures::STATUS.as_bytes(), now)
            .unwrap()
            .payload;
    let Payload::Status(seed_status) = fixture_status.clone() else {
        unreachable!()
    };
    // Newest first, older later: "latest" is by timestamp, not by arrival.
    store
        .write(vec![
            rec(&a, Payload::Measurement(m_at(T0 + 10 * S, 10))),
            rec(&a, Payload::Status(status_at(T0 + 20 * S, -40))),
        ])
        .await
        .unwrap();
    store
        .write(vec![
            rec(&a, Payload::Measurement(m_at(T0, 0))),
            rec(&a, Payload::Status(status_at(T0, -80))),
            rec(
                &a,
                Payload::Logs(log_at(T0 + 30 * S, LogLevel::Info, "later")),
            ),
            rec(&b, fixture_status),
        ])
        .await
        .unwrap();
    let d = store.devices().await.unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].device_id, a);
    assert_eq!(d[0].last_seen, T0 + 30 * S, "logs count as seen");
    assert_eq!(d[0].last_measurement, Some(m_at(T0 + 10 * S, 10)));
    assert_eq!(d[0].last_status, Some(status_at(T0 + 20 * S, -40)));
    assert_eq!(d[1].device_id, b);
    assert_eq!(d[1].last_seen, seed_status.timestamp);
    assert_eq!(d[1].last_measurement, None);
    assert_eq!(d[1].last_status, Some(seed_status));
    // Sealed in a block, the newest measurement is still found (twice: once decoded, once
    // remembered); a newer row wins over it.
    assert!(seal_all(&store).await > 0);
    for _ in 0..2 {
        let d = store.devices().await.unwrap();
        assert_eq!(d[0].last_measurement, Some(m_at(T0 + 10 * S, 10)));
    }
    store
        .write(vec![rec(&a, Payload::Measurement(m_at(T0 + H, 99)))])
        .await
        .unwrap();
    let d = store.devices().await.unwrap();
    assert_eq!(d[0].last_measurement, Some(m_at(T0 + H, 99)));
}

#[tokio::test]
async fn export_streams_every_measurement_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b) = (dev("a"), dev("b"));
    let mut r = ramp(&a, T0, 12_345, 100_000);
    r.extend(ramp(&b, T0, 100, 100_000));
    write_all(&store, r).await;

    let mut rx = store
        .export(ExportQuery {
            device_id: a.clone(),
            start_us: T0 + 100_000,
            stop_us: T0 + 12_000 * 100_000,
        })
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk.unwrap();
        assert!(!chunk.is_empty() && chunk.len() <= ogm_store_sqlite::EXPORT_CHUNK);
        chunks += 1;
        got.extend(chunk);
    }
    assert_eq!(chunks, 3);
    let want: Vec<Measurement> = (1..12_000).map(|k| m_at(T0 + k * 100_000, k)).collect();
    assert_eq!(got, want);

    // A receiver that goes away stops the export without trouble.
    let rx = store
        .export(ExportQuery {
            device_id: a.clone(),
            start_us: 0,
            stop_us: i64::MAX,
        })
        .await
        .unwrap();
    drop(rx);
    let mut rx = store
        .export(ExportQuery {
            device_id: dev("nobody"),
            start_us: 0,
            stop_us: i64::MAX,
        })
        .await
        .unwrap();
    assert!(rx.recv().await.is_none());
    assert!(store.healthy().await);
}

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let id = dev("durable");
    let q = hq(&id, Field::Voltage, T0, T0 + H, 100);
    let before: History;
    {
        let store = open(dir.path());
        write_all(&store, ramp(&id, T0, 3600, S)).await;
        store
            .write(vec![rec(
                &id,
                Payload::Logs(log_at(T0, LogLevel::Warn, "kept")),
            )])
            .await
            .unwrap();
        before = store.history(q.clone()).await.unwrap();
    }
    let store = open(dir.path());
    assert!(store.healthy().await);
    assert_eq!(store.history(q).await.unwrap(), before);
    assert_eq!(before.points.iter().map(|b| b.count).sum::<u64>(), 3600);
    let d = store.devices().await.unwrap();
    assert_eq!(d[0].last_measurement, Some(m_at(T0 + 3599 * S, 3599)));
    // Ids are remembered across opens: the same device is not added twice.
    let o = store.write(ramp(&id, T0, 1, S)).await.unwrap();
    assert_eq!(
        o,
        WriteOutcome {
            stored: 0,
            duplicates: 1
        }
    );
    assert_eq!(store.devices().await.unwrap().len(), 1);
}

#[tokio::test]
async fn pruning_drops_old_rows_but_keeps_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let id = dev("old");
    let now = T0 + 3 * DAY;
    let mut r = ramp(&id, T0, 7200, S);
    r.extend((0..720).map(|k| rec(&id, Payload::Status(status_at(T0 + k * 10 * S, -60)))));
    r.push(rec(&id, Payload::Logs(log_at(T0, LogLevel::Info, "old"))));
    r.push(rec(
        &id,
        Payload::Logs(log_at(now - H, LogLevel::Info, "fresh")),
    ));
    r.extend(ramp(&id, now - MIN, 60, S));

    let wide = hq(&id, Field::Power, T0, T0 + 2 * H, 100);
    let minute = hq(&id, Field::Power, T0 + 10 * MIN, T0 + 11 * MIN, 1000);
    let rssi = hq(&id, Field::Rssi, T0, T0 + 2 * H, 100);
    let options = SqliteOptions {
        raw_retention: Some(Duration::from_secs(86_400)),
        second_rollup_retention: Some(Duration::from_secs(30 * 86_400)),
        log_retention: Some(Duration::from_secs(86_400)),
        ..SqliteOptions::default()
    };
    let (wide_before, minute_before, rssi_before);
    {
        let store = SqliteStore::open(dir.path(), options.clone()).unwrap();
        write_all(&store, r).await;
        // The old readings sealed in blocks, the last minute's still rows.
        assert_eq!(store.seal(now).await.unwrap().items, 7200 + 120);
        wide_before = store.history(wide.clone()).await.unwrap();
        minute_before = store.history(minute.clone()).await.unwrap();
        rssi_before = store.history(rssi.clone()).await.unwrap();
        assert_eq!(minute_before.interval_us, 0);

        let pruned = store.prune(now).await.unwrap();
        assert_eq!(pruned.measurements, 7200, "in two batches");
        assert_eq!(
            (pruned.statuses, pruned.second_rollups, pruned.logs),
            (720, 0, 1)
        );
        assert_eq!(store.prune(now).await.unwrap(), Default::default());

        assert_eq!(store.history(wide.clone()).await.unwrap(), wide_before);
        assert_eq!(store.history(rssi.clone()).await.unwrap(), rssi_before);
        // Raw rows are gone: the same minute now comes from per-second cells.
        let h = store.history(minute.clone()).await.unwrap();
        assert_eq!(h.interval_us, S);
        let as_raw: Vec<Bucket> = h.points.clone();
        assert_eq!(
            as_raw, minute_before.points,
            "1 Hz data: one point per second"
        );
        // Recent raw rows are still there.
        let recent = store
            .history(hq(&id, Field::Power, now - MIN, now, 1000))
            .await
            .unwrap();
        assert_eq!((recent.interval_us, recent.points.len()), (0, 60));
        let logs = store.logs(all_logs(None, 10)).await.unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].message, "fresh");
    }
    // Reopened with a shorter per-second retention: only per-minute cells remain for the old
    // range, and the store remembers what it pruned.
    let store = SqliteStore::open(
        dir.path(),
        SqliteOptions {
            second_rollup_retention: Some(Duration::from_secs(86_400)),
            ..options
        },
    )
    .unwrap();
    let h = store.history(minute.clone()).await.unwrap();
    assert_eq!(
        h.interval_us, S,
        "per-second cells still there before pruning"
    );
    let pruned = store.prune(now).await.unwrap();
    assert_eq!(pruned.second_rollups, 7200);
    let h = store.history(minute.clone()).await.unwrap();
    assert_eq!(h.interval_us, MIN);
    assert_eq!(h.points.len(), 1);
    assert_eq!(
        (h.points[0].min, h.points[0].max, h.points[0].count),
        (600.0, 659.0, 60)
    );
    assert_eq!(store.history(wide).await.unwrap(), wide_before);
    drop(store);
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    assert_eq!(store.history(minute).await.unwrap().interval_us, MIN);
}

/// A file of schema version 2, written by the release before sealed blocks (commit c7c8fa9;
/// `tests/fixtures/README.md` says how): device `legacy-1` read every 4 s for two hours from
/// `LEGACY_T0`, power = k for the k-th reading, status every minute, one log entry, and the
/// first hour's raw readings pruned (its 1 s rows kept). Opened by this release it answers as
/// it did, and compaction then seals it and gives the space back.
#[tokio::test]
async fn a_version_2_file_is_upgraded_in_place() {
    const LEGACY_T0: i64 = 1_699_999_200 * S;
    let made_at = LEGACY_T0 + H + DAY;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/v2-c7c8fa9.sqlite3"
        ),
        dir.path().join(ogm_store_sqlite::DB_FILE),
    )
    .unwrap();
    let options = SqliteOptions {
        raw_retention: Some(Duration::from_secs(86_400)),
        second_rollup_retention: Some(Duration::from_secs(30 * 86_400)),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(dir.path(), options.clone()).unwrap();
    let id = dev("legacy-1");
    let points: Vec<(i64, f64)> = (0..1800)
        .map(|k| (LEGACY_T0 + 4 * k * S + 250_000, k as f64))
        .collect();
    let queries = [
        hq(&id, Field::Power, LEGACY_T0, LEGACY_T0 + 2 * H, 100), // per-minute rows
        hq(&id, Field::Power, LEGACY_T0 + H, LEGACY_T0 + 2 * H, 1000), // raw rows
        hq(&id, Field::Power, LEGACY_T0 + 7, LEGACY_T0 + H - 3, 500), // its 1 s rows
        hq(
            &id,
            Field::Power,
            LEGACY_T0 + 50 * MIN,
            LEGACY_T0 + 70 * MIN,
            400,
        ), // both
    ];
    let mut before = Vec::new();
    for q in &queries {
        let h = store.history(q.clone()).await.unwrap();
        assert!(!h.points.is_empty(), "{q:?}");
        let want = reference(&points, q.start_us(), q.stop_us(), h.interval_us);
        assert_same(&h.points, &want, &format!("{q:?}"));
        before.push(h);
    }
    assert_eq!(before[1].interval_us, 0, "raw readings of the second hour");
    assert_eq!(
        before[2].interval_us % S,
        0,
        "1 s rows where raw ones were pruned"
    );
    let rssi = store
        .history(hq(&id, Field::Rssi, LEGACY_T0, LEGACY_T0 + 2 * H, 1000))
        .await
        .unwrap();
    let logs = store.logs(all_logs(None, 10)).await.unwrap();
    assert_eq!(logs[0].message, "written by the version 2 store");
    let bytes_before = store.disk_bytes().unwrap();

    let sealed = store.seal(made_at).await.unwrap();
    assert!(sealed.windows >= 3, "{sealed:?}");
    for (q, b) in queries.iter().zip(&before) {
        assert_eq!(&store.history(q.clone()).await.unwrap(), b, "{q:?}");
    }
    let bytes_after = store.disk_bytes().unwrap();
    assert!(
        bytes_after * 2 < bytes_before,
        "{bytes_before} B before compaction, {bytes_after} B after"
    );
    // Reopened: the same answers; a reading sent again is a duplicate, a new one is stored.
    drop(store);
    let store = SqliteStore::open(dir.path(), options).unwrap();
    for (q, b) in queries.iter().zip(&before) {
        assert_eq!(&store.history(q.clone()).await.unwrap(), b, "{q:?}");
    }
    let rssi_after = store
        .history(hq(&id, Field::Rssi, LEGACY_T0, LEGACY_T0 + 2 * H, 1000))
        .await
        .unwrap();
    assert_eq!(rssi_after, rssi);
    let mut again = m_at(points[1000].0, 1000);
    again.power = 1000.0;
    let o = store
        .write(vec![
            rec(&id, Payload::Measurement(again)),
            rec(&id, Payload::Measurement(m_at(made_at, 1))),
        ])
        .await
        .unwrap();
    assert_eq!((o.stored, o.duplicates), (1, 1));
}

#[tokio::test]
async fn non_finite_values_are_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = dev("noisy");
    let mut bad = m_at(T0 + S, 1);
    bad.frequency = f64::NAN;
    let mut inf = m_at(T0 + 2 * S, 2);
    inf.power = f64::INFINITY;
    let mut battery = status_at(T0, -50);
    battery.battery = Some(f64::NAN);
    battery.free_heap = u64::MAX;
    let o = store
        .write(vec![
            rec(&id, Payload::Measurement(m_at(T0, 0))),
            rec(&id, Payload::Measurement(bad)),
            rec(&id, Payload::Measurement(inf)),
            rec(&id, Payload::Status(battery)),
        ])
        .await
        .unwrap();
    assert_eq!(
        o,
        WriteOutcome {
            stored: 2,
            duplicates: 0
        }
    );
    let h = store
        .history(hq(&id, Field::Frequency, T0, T0 + MIN, 10))
        .await
        .unwrap();
    assert_eq!(h.points.len(), 1);
    let d = store.devices().await.unwrap();
    let s = d[0].last_status.clone().unwrap();
    assert_eq!((s.battery, s.free_heap), (None, i64::MAX as u64));
}

#[tokio::test]
async fn unknown_devices_and_empty_ranges_give_empty_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(store.healthy().await);
    assert!(store.devices().await.unwrap().is_empty());
    let id = dev("a");
    let h = store
        .history(hq(&id, Field::Power, T0, T0 + H, 100))
        .await
        .unwrap();
    assert_eq!(
        h,
        History {
            interval_us: 0,
            points: vec![]
        }
    );
    write_all(&store, ramp(&id, T0, 10, S)).await;
    // An empty or reversed range cannot even be asked.
    for (start, stop) in [(T0, T0), (T0 + S, T0)] {
        assert!(HistoryQuery::new(id.clone(), Field::Power, start, stop, 100).is_err());
    }
    for (start, stop) in [(i64::MIN, i64::MIN + 1), (i64::MAX - 1, i64::MAX)] {
        let h = store
            .history(hq(&id, Field::Power, start, stop, 100))
            .await
            .unwrap();
        assert!(h.points.is_empty(), "[{start}, {stop})");
    }
    let h = store
        .history(hq(&id, Field::Power, i64::MIN, i64::MAX, 1))
        .await
        .unwrap();
    assert_eq!(h.points.len(), 1);
    assert_eq!(h.points[0].count, 10);
    assert!(store.write(vec![]).await.unwrap() == WriteOutcome::default());
}

fn event(id: &DeviceId, start_us: i64, end_us: Option<i64>, extreme_hz: f64) -> StoredEvent {
    StoredEvent {
        device_id: id.clone(),
        start_us,
        end_us,
        last_us: end_us.unwrap_or(start_us + 5),
        extreme_hz,
        rocof: None,
        frequency: true,
    }
}

fn events_in(start_us: i64, stop_us: i64, device_id: Option<DeviceId>) -> EventQuery {
    EventQuery {
        device_id,
        start_us,
        stop_us,
        limit: 100,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_keyed_by_device_and_start_and_a_rewind_replaces_what_follows() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dev("ev-a"), dev("ev-b"));
    {
        let store = open(dir.path());
        // Saved open, then saved again closed: one row.
        store
            .save_events(None, vec![event(&a, 100, None, 49.8)])
            .await
            .unwrap();
        store
            .save_events(
                None,
                vec![
                    event(&a, 100, Some(200), 49.7),
                    event(&a, 500, Some(600), 50.2),
                ],
            )
            .await
            .unwrap();
        store
            .save_events(None, vec![event(&b, 110, Some(190), 49.75)])
            .await
            .unwrap();
    }
    // Reopened: they survive, newest start first, overlapping the range.
    let store = open(dir.path());
    let all = store.events(events_in(0, 1_000, None)).await.unwrap();
    let starts: Vec<(i64, &str)> = all
        .iter()
        .map(|e| (e.start_us, e.device_id.as_str()))
        .collect();
    assert_eq!(starts, [(500, "ev-a"), (110, "ev-b"), (100, "ev-a")]);
    assert_eq!(all[2], event(&a, 100, Some(200), 49.7));
    // Overlap: an event that ended before the range is out, one still open is in.
    assert_eq!(
        store
            .events(events_in(201, 1_000, None))
            .await
            .unwrap()
            .len(),
        1
    );
    store
        .save_events(None, vec![event(&b, 700, None, 49.85)])
        .await
        .unwrap();
    let open = store.events(events_in(5_000, 6_000, None)).await.unwrap();
    assert_eq!(open, [event(&b, 700, None, 49.85)]);
    // A rewind of ev-a from 150: its events from then on are replaced, ev-b's stay.
    store
        .save_events(
            Some((a.clone(), 150)),
            vec![event(&a, 480, Some(620), 50.21)],
        )
        .await
        .unwrap();
    let a_events = store
        .events(events_in(0, 1_000, Some(a.clone())))
        .await
        .unwrap();
    assert_eq!(
        a_events,
        [
            event(&a, 480, Some(620), 50.21),
            event(&a, 100, Some(200), 49.7)
        ]
    );
    assert_eq!(
        store
            .events(events_in(0, 1_000, Some(b)))
            .await
            .unwrap()
            .len(),
        2
    );
}
