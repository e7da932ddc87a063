//! History benchmark: D devices x N days x R Hz of measurements in the embedded store, then
//! `GET /api/history` for one device over 1 h, 24 h and 7 d at 1000 points through a running
//! `ogm-server`, p50 and p99 as the client sees them. In the same run the same points go into a
//! real InfluxDB 1.6 (Debian's `influxdb`), and the equivalent InfluxQL `GROUP BY time()` query
//! is timed beside it.
//!
//! `cargo build --release -p ogm-server -p ogm-devstack && target/release/ogm-bench-history --devices 10 --days 7 --hz 10`

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
        Some(Influxd::start(&dir.path().join("influxd"))?)
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
    let (mut sqlite_s, mut influx_s) = (0.0, 0.0);
    let chunk = 10_000i64;
    let mut t = start;
    let mut line = String::new();
    while t < end {
        let stop = (t + chunk * step_us).min(end);
        let mut batch = Vec::new();
        for id in &ids {
            let mut ts = t;
            while ts < stop {
                let x = ts as f64 / 1e6;
                let f = 50.0 + 0.03 * (x / 97.0).sin() + 0.005 * (x * 1.3).sin();
                batch.push(Record {
                    device_id: id.clone(),
                    payload: Payload::Measurement(Measurement {
                        timestamp: ts,
                        frequency: f,
                        voltage: 230.0 + (x / 600.0).sin(),
                        current: 5.0,
                        power: 1100.0,
                    }),
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
        t = stop;
    }
    let total = (points_per_device * args.devices as i64) as f64;
    println!(
        "insert: embedded {:.0} points/s, influxdb 1.6 {:.0} points/s",
        total / sqlite_s,
        if influx_s > 0.0 {
            total / influx_s
        } else {
            0.0
        }
    );
    drop(store);
    let db_bytes: u64 = std::fs::read_dir(&data)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "embedded store size: {:.0} MiB",
        db_bytes as f64 / 1_048_576.0
    );

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
    Ok(())
}
