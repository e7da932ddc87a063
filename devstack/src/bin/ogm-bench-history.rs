//! History benchmark: D devices x N days x R Hz of measurements in the embedded store, then
//! `GET /api/history` for one device over 1 h, 24 h and 7 d at 1000 points through a running
//! `ogm-server`, p50 and p99 as the client sees them. In the same run the same points go into a
//! real InfluxDB 1.6 (Debian's `influxdb`), and the equivalent InfluxQL `GROUP BY time()` query
//! is timed beside it.
//!
//! The readings are what a board sends: frequency at 0.1 mHz (a mean-reverting walk with
//! noise), voltage at 10 mV, current at 1 mA, power at 0.1 W. Both stores' bytes per
//! measurement are printed: the embedded store's files (sealed blocks, rollups, WAL) once its
//! compaction has sealed every closed window, as the server's minute task does while the data
//! comes in, and InfluxDB's TSM files and WAL once it has snapshotted its cache and fully
//! compacted the shards (not its preallocated series index). After the timings the embedded
//! store's tiers are measured one by one (raw readings retired into 1 s envelopes, then those
//! dropped), and the disk 10 devices need a year under the default tiered retention (raw 30 d,
//! 1 s envelopes 365 d, 1 min envelopes for good) is printed.
//!
//! `cargo build --release -p ogm-server -p ogm-devstack && target/release/ogm-bench-history --devices 10 --days 7 --hz 10`
//! (the disk figures of the storage issue: `--devices 10 --days 0.0834 --hz 10` and
//! `--devices 10 --days 0.834 --hz 1`, 720 000 measurements each)

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use ogm_devstack::{
    ChildProcess, Influxd, cargo_bin, free_port, http_get, http_post, wait_for_port,
};
use ogm_protocol::{DeviceId, Measurement, Payload};
use ogm_store::{Record, Store, bucket_interval_us};
use ogm_store_sqlite::{SqliteOptions, SqliteStore};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10)]
    devices: usize,
    #[arg(long, default_value_t = 1.0)]
    days: f64,
    #[arg(long, default_value_t = 10.0)]
    hz: f64,
    /// Queries per range and system.
    #[arg(long, default_value_t = 100)]
    queries: usize,
    /// Skip InfluxDB.
    #[arg(long)]
    no_influx: bool,
}

/// xorshift64*: deterministic, no dependencies.
struct Rng(u64);

impl Rng {
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// One board's readings, as it rounds them.
struct Board {
    rng: Rng,
    /// The grid's slow walk, Hz off 50.
    walk: f64,
    /// The mains voltage's slow walk, V off 230.
    volts: f64,
}

impl Board {
    fn new(seed: u64) -> Self {
        Self {
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            walk: 0.0,
            volts: 0.0,
        }
    }

    fn reading(&mut self, ts: i64, step_s: f64) -> Measurement {
        let round = |v: f64, unit: f64| (v / unit).round() * unit;
        // Mean-reverting over minutes, about ±20 mHz, plus a board's ~0.5 mHz noise.
        self.walk += -self.walk * step_s / 120.0 + 0.004 * step_s.sqrt() * self.rng.unit();
        self.volts += -self.volts * step_s / 600.0 + 0.05 * step_s.sqrt() * self.rng.unit();
        let frequency = round(50.0 + self.walk + 0.0005 * self.rng.unit(), 0.0001);
        let voltage = round(230.0 + self.volts + 0.02 * self.rng.unit(), 0.01);
        let current = round(4.0 + 0.05 * self.rng.unit(), 0.001);
        let power = round(voltage * current * 0.97, 0.1);
        Measurement {
            timestamp: ts,
            frequency,
            voltage,
            current,
            power,
        }
    }
}

/// Bytes of the files under `dir` whose names pass `keep`, and how many there are.
fn bytes_under(dir: &std::path::Path, keep: &dyn Fn(&str) -> bool) -> (u64, usize) {
    let mut total = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return total;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            let (b, n) = bytes_under(&e.path(), keep);
            total = (total.0 + b, total.1 + n);
        } else if keep(&e.file_name().to_string_lossy()) {
            total = (total.0 + meta.len(), total.1 + 1);
        }
    }
    total
}

/// InfluxDB's TSM and WAL bytes once it has written its cache out and compacted (no WAL
/// segment left with data, and the TSM files unchanged for 5 s), waited for up to 5 minutes.
fn influx_bytes(dir: &std::path::Path) -> anyhow::Result<(u64, u64)> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = (u64::MAX, usize::MAX);
    let mut stable = 0;
    loop {
        let tsm = bytes_under(&dir.join("data"), &|n| n.ends_with(".tsm"));
        let (wal, _) = bytes_under(&dir.join("wal"), &|n| n.ends_with(".wal"));
        let tmp = bytes_under(&dir.join("data"), &|n| n.ends_with(".tmp")).1;
        if tsm == last && wal == 0 && tmp == 0 {
            stable += 1;
            if stable >= 5 {
                return Ok((tsm.0, wal));
            }
        } else {
            stable = 0;
        }
        last = tsm;
        anyhow::ensure!(
            Instant::now() < deadline,
            "influxd did not settle: TSM {tsm:?}, WAL {wal} bytes"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn time_it(n: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<(f64, f64)> {
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((percentile(&mut ms, 0.5), percentile(&mut ms, 0.99)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let step_us = (1e6 / args.hz) as i64;
    let points_per_device = (args.days * 86_400.0 * args.hz) as i64;
    let end = 1_790_000_000_000_000i64;
    let start = end - points_per_device * step_us;
    let influx = if args.no_influx {
        None
    } else {
        Some(Influxd::start_with(
            &dir.path().join("influxd"),
            "  cache-snapshot-write-cold-duration = \"1s\"\n  compact-full-write-cold-duration = \"1s\"",
        )?)
    };
    if let Some(i) = &influx {
        let r = http_post(
            &format!("{}/query?q={}", i.url(), urlencode("CREATE DATABASE ogm")),
            "",
        )?;
        anyhow::ensure!(r.status == 200, "create database: {}", r.body);
    }

    println!(
        "filling {} devices x {} days x {} Hz = {} points …",
        args.devices,
        args.days,
        args.hz,
        points_per_device * args.devices as i64
    );
    let store = SqliteStore::open(&data, SqliteOptions::default())?;
    let ids: Vec<DeviceId> = (0..args.devices)
        .map(|i| DeviceId::new(&format!("dev-{i:02}")))
        .collect::<Result<_, _>>()?;
    let (mut sqlite_s, mut influx_s, mut seal_s) = (0.0, 0.0, 0.0);
    let now = ogm_devstack::fixtures::now_us();
    let chunk = 10_000i64;
    let mut t = start;
    let mut line = String::new();
    let mut boards: Vec<Board> = (0..ids.len()).map(|i| Board::new(i as u64 + 1)).collect();
    let step_s = step_us as f64 / 1e6;
    while t < end {
        let stop = (t + chunk * step_us).min(end);
        let mut batch = Vec::new();
        for (id, board) in ids.iter().zip(&mut boards) {
            let mut ts = t;
            while ts < stop {
                batch.push(Record {
                    device_id: id.clone(),
                    payload: Payload::Measurement(board.reading(ts, step_s)),
                });
                ts += step_us;
            }
        }
        if let Some(i) = &influx {
            line.clear();
            ogm_store_influx::encode(&batch, "bench", &mut line);
            let w = Instant::now();
            let r = http_post(&format!("{}/write?db=ogm&precision=u", i.url()), &line)?;
            anyhow::ensure!(r.status == 204, "influx write: {} {}", r.status, r.body);
            influx_s += w.elapsed().as_secs_f64();
        }
        let w = Instant::now();
        store.write(batch).await?;
        sqlite_s += w.elapsed().as_secs_f64();
        // The server seals closed windows every minute; these readings are all in the past.
        let w = Instant::now();
        store.seal(now).await?;
        seal_s += w.elapsed().as_secs_f64();
        t = stop;
    }
    let total = (points_per_device * args.devices as i64) as f64;
    println!(
        "insert: embedded {:.0} points/s (and {seal_s:.1} s sealing), influxdb 1.6 {:.0} points/s",
        total / sqlite_s,
        if influx_s > 0.0 {
            total / influx_s
        } else {
            0.0
        }
    );
    // The store alone, without HTTP: where the time goes.
    let q = ogm_store::HistoryQuery::new(
        ids[0].clone(),
        ogm_store::Field::Frequency,
        end - 3_600_000_000,
        end,
        1000,
    )?;
    let mut ms = Vec::new();
    for _ in 0..args.queries {
        let t = Instant::now();
        store.history(q.clone()).await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "store alone, 1 h at 1000 points: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&mut ms, 0.5),
        percentile(&mut ms, 0.99)
    );
    drop(store);
    let (db_bytes, _) = bytes_under(&data, &|_| true);
    let per = |b: u64| b as f64 / total;
    match &influx {
        Some(_) => {
            let (tsm, wal) = influx_bytes(&dir.path().join("influxd"))?;
            println!(
                "disk: embedded {:.1} B/measurement ({:.1} MiB), influxdb 1.6 {:.1} B/measurement (TSM {:.1} MiB + WAL {wal} B, compacted): embedded/influxdb {:.2}",
                per(db_bytes),
                db_bytes as f64 / 1_048_576.0,
                per(tsm + wal),
                tsm as f64 / 1_048_576.0,
                db_bytes as f64 / (tsm + wal).max(1) as f64
            );
        }
        None => println!(
            "disk: embedded {:.1} B/measurement ({:.1} MiB)",
            per(db_bytes),
            db_bytes as f64 / 1_048_576.0
        ),
    }

    // The server, on the filled data dir (no broker: its ingest keeps retrying in the background).
    let http_port = free_port();
    let mut cmd = Command::new(cargo_bin("ogm-server")?);
    cmd.env("OGM_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env("OGM_MQTT_URL", format!("mqtt://127.0.0.1:{}", free_port()))
        .env("OGM_DATA_DIR", &data)
        .env("OGM_RAW_RETENTION", "0")
        // One client sending queries back to back: the per-client rate limit would be measured.
        .env("OGM_RATE_LIMIT_PER_SEC", "0")
        .env("RUST_LOG", "error");
    let _server = ChildProcess::spawn("ogm-server", cmd, Some(&dir.path().join("server.log")))?;
    wait_for_port(
        SocketAddr::from(([127, 0, 0, 1], http_port)),
        Duration::from_secs(30),
    )?;

    println!(
        "\n{:<6} {:>10} {:>22} {:>24}",
        "range", "buckets", "embedded p50 / p99 ms", "influxdb 1.6 p50 / p99 ms"
    );
    for (name, span) in [
        ("1 h", 3_600_000_000i64),
        ("24 h", 86_400_000_000),
        ("7 d", 604_800_000_000),
    ] {
        if span > end - start {
            continue;
        }
        let (s, e) = (end - span, end);
        let url = format!(
            "http://127.0.0.1:{http_port}/api/history?device_id=dev-00&field=frequency&start={s}&stop={e}&max_points=1000"
        );
        let first = http_get(&url)?.json()?;
        let buckets = first["points"].as_array().map_or(0, Vec::len);
        let (p50, p99) = time_it(args.queries, || {
            let r = http_get(&url)?;
            anyhow::ensure!(r.status == 200, "{}", r.body);
            Ok(())
        })?;
        let influx_fig = match &influx {
            Some(i) => {
                let every = bucket_interval_us(s, e, 1000, u64::MAX);
                let q = format!(
                    "SELECT min(frequency), mean(frequency), max(frequency), count(frequency) FROM grid_data WHERE device_id = 'dev-00' AND time >= {s}u AND time < {e}u GROUP BY time({every}u)"
                );
                let qurl = format!("{}/query?db=ogm&epoch=u&q={}", i.url(), urlencode(&q));
                let (a, b) = time_it(args.queries, || {
                    let r = http_get(&qurl)?;
                    anyhow::ensure!(
                        r.status == 200 && !r.body.contains("\"error\""),
                        "{}",
                        r.body
                    );
                    Ok(())
                })?;
                format!("{a:>10.2} / {b:>7.2}")
            }
            None => "-".into(),
        };
        println!("{name:<6} {buckets:>10} {p50:>12.2} / {p99:>7.2} {influx_fig:>24}");
    }
    drop(_server);
    tiers(&data, &args, db_bytes, now).await
}

/// The embedded store's tiers one by one: every raw reading retired into 1 s envelopes, then
/// those dropped; and what 10 devices at this rate need on disk a year.
async fn tiers(data: &std::path::Path, args: &Args, all: u64, now: i64) -> anyhow::Result<()> {
    let size = |dir: &std::path::Path| bytes_under(dir, &|_| true).0;
    let step = |raw: Duration, second: Duration| {
        let data = data.to_path_buf();
        async move {
            let store = SqliteStore::open(
                &data,
                SqliteOptions {
                    raw_retention: Some(raw),
                    second_rollup_retention: Some(second),
                    ..SqliteOptions::default()
                },
            )?;
            store.prune(now).await?;
            store.seal(now).await?;
            drop(store);
            anyhow::Ok(size(&data))
        }
    };
    let day = Duration::from_secs(86_400);
    // What an empty store takes (schema pages), not counted as minutes.
    let empty_dir = tempfile::tempdir()?;
    drop(SqliteStore::open(
        empty_dir.path(),
        SqliteOptions::default(),
    )?);
    let empty = size(empty_dir.path());
    let without_raw = step(Duration::ZERO, 400 * day).await?;
    let minutes_only = step(Duration::ZERO, Duration::ZERO).await?;
    let device_days = args.devices as f64 * args.days;
    let readings = device_days * 86_400.0 * args.hz;
    let seconds = device_days * 86_400.0;
    // While kept, raw readings take their blocks and, in a dense window, its 1 s envelopes.
    let raw = all.saturating_sub(minutes_only) as f64;
    let second = without_raw.saturating_sub(minutes_only) as f64;
    let minute = minutes_only.saturating_sub(empty) as f64;
    println!(
        "\ntiers: raw readings {:.2} B/reading (with a dense window's 1 s envelopes), 1 s \
         envelopes {:.2} B/second, 1 min envelopes \
         {:.1} B/minute",
        raw / readings,
        second / seconds,
        minute / (seconds / 60.0)
    );
    let per_device_day = |b: f64| b / device_days;
    let first_year = 10.0
        * (30.0 * per_device_day(raw)
            + 335.0 * per_device_day(second)
            + 365.0 * per_device_day(minute));
    let next_years = 10.0 * 365.0 * per_device_day(minute);
    println!(
        "disk for 10 devices at {} Hz (raw 30 d, 1 s envelopes 365 d, 1 min envelopes kept): \
         {:.2} GB the first year, then {:.0} MB a year",
        args.hz,
        first_year / 1e9,
        next_years / 1e6
    );
    Ok(())
}
