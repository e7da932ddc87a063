//! Ingest benchmark: N seed-format measurements from D devices published at QoS 1 as fast as
//! the broker takes them, received at the same time by a plain `mosquitto_sub` (the ceiling)
//! and by `ogm-server` (stored in the embedded store). Prints both rates, their ratio, whether
//! every message was stored exactly once, and the server's peak RSS.
//!
//! `cargo run --release -p ogm-devstack --bin ogm-bench-ingest -- --messages 1000000 --devices 100`
//! (add `--alerts deploy/alerts.example.toml --home-assistant` for the server watching the grid:
//! every rule evaluated, Home Assistant's summary published)
//! (build `ogm-server` in the same profile first: `cargo build --release -p ogm-server`).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use ogm_devstack::fixtures::now_us;
use ogm_devstack::{ChildProcess, Stack, StackOptions, http_get};
use ogm_protocol::{DeviceId, Kind, Measurement, TOPIC_PREFIX, Topic};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

#[derive(Parser)]
struct Args {
    /// Messages in total.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Publishing devices (each its own MQTT connection).
    #[arg(long, default_value_t = 100)]
    devices: u64,
    /// An alert rules file for the server (e.g. deploy/alerts.example.toml): the ingest with
    /// every rule evaluated on every measurement.
    #[arg(long)]
    alerts: Option<std::path::PathBuf>,
    /// Home Assistant discovery and the grid summary on.
    #[arg(long)]
    home_assistant: bool,
}

fn metric(url: &str, name: &str) -> u64 {
    ogm_devstack::ingest_check::metric(url, name).unwrap_or(0.0) as u64
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let per_device = args.messages / args.devices;
    let total = per_device * args.devices;
    let dir = tempfile::tempdir()?;
    let mut options = StackOptions::for_test(dir.path().to_path_buf(), 0);
    let password = "bench-pw".to_owned();
    let ids: Vec<String> = (0..args.devices).map(|i| format!("bench-{i:03}")).collect();
    options.extra_devices = ids.iter().map(|i| (i.clone(), password.clone())).collect();
    if let Some(rules) = &args.alerts {
        let rules = std::fs::canonicalize(rules)?;
        options
            .server_env
            .push(("OGM_ALERTS_FILE".into(), rules.display().to_string()));
    }
    if args.home_assistant {
        options
            .server_env
            .push(("OGM_HOME_ASSISTANT".into(), "true".into()));
    }
    println!(
        "server: event watch on; alert rules {}; Home Assistant {}",
        args.alerts
            .as_ref()
            .map_or("none".to_owned(), |p| p.display().to_string()),
        if args.home_assistant { "on" } else { "off" }
    );
    let stack = Stack::up(options)?;
    let url = stack.http_url();
    let port = stack.broker.ports.mqtt;
    // Wait for the server's subscription: its health says connected.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http_get(&format!("{url}/api/health"))?
        .body
        .contains("\"connected\":true")
    {
        anyhow::ensure!(Instant::now() < deadline, "server never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The ceiling: a plain subscriber at QoS 1 on the same stream, with a persistent session
    // created (subscribed, acknowledged) before the stream starts, so it misses nothing.
    let sub_args = |extra: &[&str]| {
        let mut c = Command::new("mosquitto_sub");
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            ogm_devstack::SERVER_USER,
            "-P",
        ])
        .arg(&stack.options.credentials.server)
        .args([
            "-q",
            "1",
            "-c",
            "-i",
            "ogm.server-bench-ceiling",
            "-t",
            "open_grid_monitor/+/measurement",
        ])
        .args(extra)
        .stdout(Stdio::null());
        c
    };
    anyhow::ensure!(
        sub_args(&["-E"]).status()?.success(),
        "mosquitto_sub could not subscribe"
    );
    let mut sub =
        ChildProcess::spawn("mosquitto_sub", sub_args(&["-C", &total.to_string()]), None)?;

    println!(
        "publishing {total} measurements from {} devices at QoS 1 …",
        args.devices
    );
    let acked = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for id in &ids {
        let mut o = MqttOptions::new(id.clone(), "127.0.0.1", port);
        o.set_credentials(id.clone(), password.clone())
            .set_inflight(100)
            .set_keep_alive(Duration::from_secs(60));
        let (client, mut eventloop) = AsyncClient::new(o, 1000);
        let topic = Topic::new(DeviceId::new(id)?, Kind::Measurement).to_topic(TOPIC_PREFIX);
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let poller = tokio::spawn(async move {
                let mut mine = 0;
                while mine < per_device {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            mine += 1;
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            eprintln!("publisher: {e}");
                            return;
                        }
                    }
                }
            });
            let base = now_us() - 3_600_000_000;
            for i in 0..per_device {
                let m = Measurement {
                    timestamp: base + i as i64 * 20_000,
                    frequency: 50.0 + (i % 200) as f64 * 0.0001,
                    voltage: 230.1,
                    current: 4.2,
                    power: 966.4,
                };
                if client
                    .publish(topic.as_str(), QoS::AtLeastOnce, false, m.to_json())
                    .await
                    .is_err()
                {
                    break;
                }
            }
            let _ = poller.await;
        }));
    }
    let mut peak_rss = 0;
    let server_pid = stack.server.pid();
    let (mut t_pub, mut t_sub, mut t_store) = (None, None, None);
    while t_pub.is_none() || t_sub.is_none() || t_store.is_none() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_rss = peak_rss.max(rss_kib(server_pid));
        if t_pub.is_none() && acked.load(Ordering::Relaxed) >= total {
            t_pub = Some(t0.elapsed());
        }
        if t_sub.is_none() && !sub.is_running() {
            t_sub = Some(t0.elapsed());
        }
        if t_store.is_none()
            && metric(&url, "ogm_messages_stored_total")
                + metric(&url, "ogm_messages_duplicate_total")
                >= total
        {
            t_store = Some(t0.elapsed());
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(1800), "timed out");
    }
    for t in tasks {
        let _ = t.await;
    }
    let (t_pub, t_sub, t_store) = (
        t_pub.unwrap_or_default(),
        t_sub.unwrap_or_default(),
        t_store.unwrap_or_default(),
    );
    let stored = metric(&url, "ogm_messages_stored_total");
    let dups = metric(&url, "ogm_messages_duplicate_total");
    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    println!(
        "published (all PUBACKed):  {:>8.0} msg/s  ({t_pub:.2?})",
        rate(t_pub)
    );
    println!(
        "mosquitto_sub received:    {:>8.0} msg/s  ({t_sub:.2?})  <- ceiling",
        rate(t_sub)
    );
    println!(
        "ogm-server stored:         {:>8.0} msg/s  ({t_store:.2?})",
        rate(t_store)
    );
    println!(
        "ratio ingest/ceiling:      {:.2}",
        t_sub.as_secs_f64() / t_store.as_secs_f64()
    );
    println!(
        "stored {stored} of {total} (duplicates ignored: {dups}); exactly once: {}",
        stored == total
    );
    println!(
        "server peak RSS while ingesting: {:.1} MiB",
        peak_rss as f64 / 1024.0
    );
    Ok(())
}
