//! Fills an embedded store with realistic data through `write()`, then times history queries
//! as `/api/history` makes them.
//!
//! ```text
//! cargo bench -p ogm-store-sqlite --bench history -- --devices 10 --days 1 --hz 10
//! ```
//!
//! Flags (each also an `OGM_BENCH_*` variable): `--devices` (2), `--days` (1, fractions
//! allowed), `--hz` (10), `--batch` records per write (1000), `--queries` per span (200),
//! `--sync full|normal` (full), `--dir` (a temp dir, removed afterwards).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ogm_protocol::{DeviceId, LogEntry, LogLevel, Measurement, Payload, Status};
use ogm_store::{Field, HistoryQuery, Record, Store};
use ogm_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};

const S: i64 = 1_000_000;
const H: i64 = 3600 * S;
const DAY: i64 = 24 * H;
/// Data ends at 2024-06-01T00:00:00Z.
const END: i64 = 1_717_200_000 * S;

struct Config {
    devices: usize,
    days: f64,
    hz: f64,
    batch: usize,
    queries: usize,
    sync: Synchronous,
    dir: Option<PathBuf>,
}

fn config() -> Config {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == &format!("--{name}"))
            .and_then(|i| args.get(i + 1).cloned())
            .or_else(|| std::env::var(format!("OGM_BENCH_{}", name.to_uppercase())).ok())
    };
    let num = |name: &str, default: f64| -> f64 {
        get(name).and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    Config {
        devices: num("devices", 2.0).max(1.0) as usize,
        days: num("days", 1.0).max(0.01),
        hz: num("hz", 10.0).clamp(0.01, 1000.0),
        batch: num("batch", 1000.0).max(1.0) as usize,
        queries: num("queries", 200.0).max(1.0) as usize,
        sync: match get("sync").as_deref() {
            Some("normal") => Synchronous::Normal,
            _ => Synchronous::Full,
        },
        dir: get("dir").map(PathBuf::from),
    }
}

/// xorshift64*: deterministic, no dependencies.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// One simulated device: a mean-reverting grid frequency, a daily load cycle.
struct Device {
    id: DeviceId,
    rng: Rng,
    df: f64,
    offset_us: i64,
}

impl Device {
    fn measurement(&mut self, ts: i64) -> Measurement {
        self.df += 0.002 * self.rng.unit() - 0.001 * self.df;
        let day = (ts % DAY) as f64 / DAY as f64 * std::f64::consts::TAU;
        let voltage = 230.0 + 3.0 * day.sin() + 0.3 * self.rng.unit();
        let current = 4.0 + 3.0 * (day - 1.0).sin() + 0.5 * self.rng.unit();
        Measurement {
            timestamp: ts,
            frequency: 50.0 + self.df + 0.0005 * self.rng.unit(),
            voltage,
            current,
            power: voltage * current * 0.95,
        }
    }

    fn status(&mut self, ts: i64) -> Status {
        Status {
            timestamp: ts,
            rssi: -55 + (self.rng.unit() * 10.0) as i32,
            free_heap: 180_000 + (self.rng.next() % 20_000),
            online: Some(true),
            battery: None,
            dropped: Some(0),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn file_size(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn main() {
    let cfg = config();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = cfg.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    runtime.block_on(run(cfg, dir));
}

async fn run(cfg: Config, dir: PathBuf) {
    let options = SqliteOptions {
        synchronous: cfg.sync,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&dir, options).expect("open store");
    let period = (S as f64 / cfg.hz).round() as i64;
    let start = END - (cfg.days * DAY as f64) as i64;
    let steps = (END - start) / period;
    println!(
        "fill: {} devices x {} days x {} Hz = {} measurements (+ status every 10 s, a log line \
         every 10 min), batches of {}, synchronous={:?}, {}",
        cfg.devices,
        cfg.days,
        cfg.hz,
        steps * cfg.devices as i64,
        cfg.batch,
        cfg.sync,
        dir.display()
    );

    let mut devices: Vec<Device> = (0..cfg.devices)
        .map(|i| Device {
            id: DeviceId::new(&format!("bench-{i:03}")).expect("device id"),
            rng: Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1)),
            df: 0.0,
            offset_us: 1_000 + 37 * i as i64,
        })
        .collect();

    let t = Instant::now();
    let mut batch = Vec::with_capacity(cfg.batch + cfg.devices * 2);
    let (mut records, mut measurements) = (0u64, 0u64);
    let mut next_report = Instant::now() + Duration::from_secs(10);
    let status_every = (10 * S / period).max(1);
    let log_every = (600 * S / period).max(1);
    for k in 0..steps {
        let base = start + k * period;
        for d in devices.iter_mut() {
            // A few hundred µs of jitter, as a device's clock gives.
            let ts = base + d.offset_us + (d.rng.next() % 400) as i64;
            let m = d.measurement(ts);
            batch.push(Record {
                device_id: d.id.clone(),
                payload: Payload::Measurement(m),
            });
            measurements += 1;
            if k % status_every == 0 {
                let s = d.status(ts + 1);
                batch.push(Record {
                    device_id: d.id.clone(),
                    payload: Payload::Status(s),
                });
            }
            if k % log_every == 0 {
                batch.push(Record {
                    device_id: d.id.clone(),
                    payload: Payload::Logs(LogEntry {
                        timestamp: ts + 2,
                        level: LogLevel::Info,
                        message: "Grid frequency measurement completed".to_owned(),
                        module: "ade7953".to_owned(),
                    }),
                });
            }
        }
        if batch.len() >= cfg.batch || k + 1 == steps {
            records += batch.len() as u64;
            let out = store
                .write(std::mem::take(&mut batch))
                .await
                .expect("write");
            assert_eq!(out.duplicates, 0);
            if Instant::now() > next_report {
                let s = t.elapsed().as_secs_f64();
                eprintln!(
                    "  {:.0}% {} records in {:.0} s ({:.0}/s)",
                    100.0 * k as f64 / steps as f64,
                    records,
                    s,
                    records as f64 / s
                );
                next_report += Duration::from_secs(10);
            }
        }
    }
    let fill = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let sealed = store.seal(END + DAY).await.expect("seal");
    println!(
        "seal: {} windows, {} readings and cells in {:.1} s",
        sealed.windows,
        sealed.items,
        t.elapsed().as_secs_f64()
    );
    let db = file_size(store.path());
    let wal = file_size(&store.path().with_extension("sqlite3-wal"));
    println!(
        "insert: {records} records ({measurements} measurements) in {fill:.1} s = {:.0} records/s",
        records as f64 / fill
    );
    println!(
        "size: db {:.1} MiB + wal {:.1} MiB = {:.1} bytes per measurement (raw + rollups + status + logs)",
        mib(db),
        mib(wal),
        (db + wal) as f64 / measurements as f64
    );

    let id = devices[0].id.clone();
    let mut rng = Rng(42);
    for (name, span) in [("1 h", H), ("24 h", DAY), ("7 d", 7 * DAY)] {
        let mut times = Vec::with_capacity(cfg.queries);
        let before = store.rows_read();
        let mut points = 0usize;
        let mut interval = 0;
        for _ in 0..cfg.queries {
            // Ranges ending anywhere in the data (the newest when the span is longer).
            let room = (END - start - span).max(0);
            let stop = END - (rng.next() % (room as u64 + 1)) as i64;
            let q = HistoryQuery::new(id.clone(), Field::Frequency, stop - span, stop, 1000)
                .expect("a valid history query");
            let t = Instant::now();
            let h = store.history(q).await.expect("history");
            times.push(t.elapsed());
            points += h.points.len();
            interval = h.interval_us;
            assert!(h.points.len() <= 1000);
        }
        times.sort();
        let read = store.rows_read();
        let n = cfg.queries as u64;
        println!(
            "history {name:>4} @1000: p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}  interval {} s, \
             {} points, rows read per query: raw {} second {} minute {}",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times[times.len() - 1],
            interval as f64 / 1e6,
            points / cfg.queries,
            (read.raw - before.raw) / n,
            (read.second - before.second) / n,
            (read.minute - before.minute) / n,
        );
    }

    // The same 24 h query while another task writes as fast as it can: readers must not wait
    // for the writer.
    let writer = {
        let store = std::sync::Arc::new(store);
        let w = std::sync::Arc::clone(&store);
        let mut devs = std::mem::take(&mut devices);
        let handle = tokio::spawn(async move {
            let mut k = 0i64;
            let mut written = 0u64;
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                let mut batch = Vec::with_capacity(cfg.batch);
                while batch.len() < cfg.batch {
                    for d in devs.iter_mut() {
                        let m = d.measurement(END + k * period + d.offset_us);
                        batch.push(Record {
                            device_id: d.id.clone(),
                            payload: Payload::Measurement(m),
                        });
                    }
                    k += 1;
                }
                written += batch.len() as u64;
                w.write(batch).await.expect("write");
            }
            written as f64 / t.elapsed().as_secs_f64()
        });
        (store, handle)
    };
    let (store, handle) = writer;
    let mut times = Vec::new();
    while !handle.is_finished() {
        let stop = END - (rng.next() % (DAY as u64 / 2)) as i64;
        let q = HistoryQuery::new(id.clone(), Field::Frequency, stop - DAY, stop, 1000)
            .expect("a valid history query");
        let t = Instant::now();
        store.history(q).await.expect("history");
        times.push(t.elapsed());
    }
    let rate = handle.await.expect("writer task");
    times.sort();
    println!(
        "history 24 h @1000 during ingest ({rate:.0} records/s): p50 {:.2?}  p99 {:.2?}  ({} queries)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.len()
    );
}
