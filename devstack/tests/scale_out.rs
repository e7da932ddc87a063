//! Scale-out: two `ogm-server` replicas (their own client ids, the same
//! `OGM_MQTT_SHARE_GROUP`) against one real Mosquitto split the device stream between them
//! through the shared subscription `$share/<group>/open_grid_monitor/...`.
//!
//! Each replica keeps its own embedded store here, on purpose: a message delivered to both
//! replicas would then show up in both stores and be caught. (With one shared store, InfluxDB in
//! production, the idempotent writes would hide such a double delivery: a weaker test.) So the
//! union of the two stores must hold every published message exactly once, and each store a
//! share of them. The grid watch runs on replica 1 only (`OGM_GRID_WATCH`) and sees every
//! reading through its own subscription.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ogm_devstack::fixtures;
use ogm_devstack::ingest_check::{self, STEP_US};
use ogm_devstack::{
    BrokerPorts, ChildProcess, Credentials, DASHBOARD_USER, Mosquitto, MqttProbe, SERVER_USER,
    cargo_bin, free_port, wait_for_port,
};
use ogm_protocol::Kind;

const GROUP: &str = "ogm-ingest";
const DEVICES: [&str; 2] = ["scale-a", "scale-b"];
const PER_DEVICE: usize = 300;

struct Replica {
    url: String,
    _process: ChildProcess,
}

/// Replica 1 watches the grid (every reading, from its own subscription); replica 2 does not.
fn start_replica(n: usize, dir: &Path, broker: &Mosquitto, creds: &Credentials) -> Replica {
    let port = free_port();
    let data = dir.join(format!("replica-{n}"));
    std::fs::create_dir_all(&data).unwrap();
    let mut cmd = Command::new(cargo_bin("ogm-server").unwrap());
    cmd.env("OGM_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("OGM_MQTT_URL", broker.mqtt_url())
        .env("OGM_MQTT_USERNAME", SERVER_USER)
        .env("OGM_MQTT_PASSWORD", &creds.server)
        .env("OGM_DASHBOARD_MQTT_USERNAME", DASHBOARD_USER)
        .env("OGM_DASHBOARD_MQTT_PASSWORD", &creds.dashboard)
        .env("OGM_MQTT_CLIENT_ID", format!("ogm.server-{n}"))
        .env("OGM_MQTT_SHARE_GROUP", GROUP)
        .env("OGM_DATA_DIR", data.join("store"))
        .env("OGM_DIST_DIR", data.join("no-dashboard"))
        .env("OGM_RATE_LIMIT_PER_SEC", "0")
        .env("OGM_GRID_WATCH", (n == 1).to_string());
    let process = ChildProcess::spawn("ogm-server", cmd, Some(&data.join("server.log"))).unwrap();
    wait_for_port(
        SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(20),
    )
    .unwrap_or_else(|e| panic!("replica {n}: {e}\n{}", process.log_text()));
    Replica {
        url: format!("http://127.0.0.1:{port}"),
        _process: process,
    }
}

fn metric(r: &Replica, name: &str) -> u64 {
    ingest_check::metric(&r.url, name).unwrap_or_else(|| panic!("no metric {name}")) as u64
}

/// The measurement timestamps `r` stored for `device` (none if it never saw the device).
fn stored(r: &Replica, device: &str) -> Vec<i64> {
    ingest_check::stored_timestamps(&r.url, device)
}

fn measurement(t: i64) -> Vec<u8> {
    fixtures::measurement(t, 50.01)
}

fn topic(id: &str) -> String {
    fixtures::topic(id, Kind::Measurement)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_in_one_share_group_split_the_stream_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let creds = Credentials::generate();
    let mut users = creds.service_users().to_vec();
    users.extend(DEVICES.iter().map(|d| (*d, creds.device.as_str())));
    let broker = Mosquitto::start(&dir.path().join("broker"), BrokerPorts::free(), &users).unwrap();
    let replicas = [
        start_replica(1, dir.path(), &broker, &creds),
        start_replica(2, dir.path(), &broker, &creds),
    ];
    let mut devices = Vec::new();
    for d in DEVICES {
        devices.push(
            MqttProbe::connect(broker.ports.mqtt, d, &creds.device)
                .await
                .unwrap(),
        );
    }
    let base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
        - 600_000_000;

    // Until both replicas have subscribed, a message may go to the one that has: publish one
    // at a time until each has stored something. These messages count like the others.
    let mut sent = 0usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    while replicas
        .iter()
        .any(|r| metric(r, "ogm_messages_stored_total") == 0)
    {
        assert!(Instant::now() < deadline, "a replica never stored anything");
        for (d, probe) in DEVICES.iter().zip(devices.iter_mut()) {
            probe
                .publish(&topic(d), measurement(base + sent as i64 * STEP_US), false)
                .await
                .unwrap();
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sent < PER_DEVICE, "warm-up took {sent} messages");
    for i in sent..PER_DEVICE {
        for (d, probe) in DEVICES.iter().zip(devices.iter_mut()) {
            probe
                .publish(&topic(d), measurement(base + i as i64 * STEP_US), false)
                .await
                .unwrap();
        }
    }

    let total = DEVICES.len() * PER_DEVICE;
    let deadline = Instant::now() + Duration::from_secs(60);
    while replicas
        .iter()
        .map(|r| metric(r, "ogm_messages_stored_total"))
        .sum::<u64>()
        < total as u64
    {
        assert!(
            Instant::now() < deadline,
            "not everything was stored in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let expected: BTreeSet<i64> = (0..PER_DEVICE).map(|i| base + i as i64 * STEP_US).collect();
    let mut shares = Vec::new();
    for d in DEVICES {
        let per_replica: Vec<Vec<i64>> = replicas.iter().map(|r| stored(r, d)).collect();
        let all: Vec<i64> = per_replica.iter().flatten().copied().collect();
        let unique: BTreeSet<i64> = all.iter().copied().collect();
        assert_eq!(
            all.len(),
            unique.len(),
            "{d}: a message stored by both replicas"
        );
        assert_eq!(
            unique,
            expected,
            "{d}: stored {} of {PER_DEVICE}",
            unique.len()
        );
        shares.push(per_replica.iter().map(Vec::len).collect::<Vec<_>>());
    }
    let per_replica: Vec<usize> = (0..replicas.len())
        .map(|i| shares.iter().map(|s| s[i]).sum())
        .collect();
    for (i, n) in per_replica.iter().enumerate() {
        assert!(*n > 0, "replica {} got no share: {per_replica:?}", i + 1);
    }
    for r in &replicas {
        assert_eq!(metric(r, "ogm_messages_duplicate_total"), 0);
    }
    // The grid watch on replica 1 analysed every reading published once both were up, not
    // only its share; replica 2 watches nothing.
    let after_warm_up = ((PER_DEVICE - sent) * DEVICES.len()) as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    let watched = loop {
        let n = metric(&replicas[0], "ogm_watch_readings_total");
        if n >= after_warm_up || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        watched >= after_warm_up && watched as usize > per_replica[0],
        "replica 1 watched {watched} readings, stored {}, {after_warm_up} published after warm-up",
        per_replica[0]
    );
    assert_eq!(metric(&replicas[1], "ogm_watch_readings_total"), 0);
    println!(
        "FIGURE shared subscription: {total} messages split {per_replica:?} between two replicas; the watching replica analysed {watched}"
    );
}
