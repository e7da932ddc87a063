//! The device simulator against the real broker: what its devices publish, that they agree (one
//! grid), their last will on a crash, their own offline status on SIGTERM, and that they come
//! back after a broker restart.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use ogm_devstack::{
    BrokerPorts, ChildProcess, Credentials, Mosquitto, MqttProbe, Received, SERVER_USER, cargo_bin,
};
use ogm_protocol::payload::decode;
use ogm_protocol::{Payload, TOPIC_PREFIX, Topic};

const T: Duration = Duration::from_secs(20);

struct Setup {
    dir: tempfile::TempDir,
    broker: Mosquitto,
    creds: Credentials,
}

fn setup(ids: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let creds = Credentials::generate();
    let mut users = creds.service_users().to_vec();
    users.extend(ids.iter().map(|id| (*id, creds.device.as_str())));
    let broker = Mosquitto::start(&dir.path().join("broker"), BrokerPorts::free(), &users).unwrap();
    Setup { dir, broker, creds }
}

impl Setup {
    fn sim(&self, devices: usize, rate_hz: f64) -> ChildProcess {
        let mut cmd = Command::new(cargo_bin("ogm-sim").unwrap());
        cmd.env("OGM_SIM_BROKER", self.broker.mqtt_url())
            .env("OGM_SIM_DEVICES", devices.to_string())
            .env("OGM_SIM_PASSWORD", &self.creds.device)
            .env("OGM_SIM_RATE_HZ", rate_hz.to_string())
            .env("OGM_SIM_SEED", "7");
        ChildProcess::spawn("ogm-sim", cmd, Some(&self.dir.path().join("sim.log"))).unwrap()
    }

    /// Waits until `sub` has seen every device of `ids` say offline, then until a new
    /// subscriber gets each one's offline status retained (live delivery clears the retain
    /// flag; a new subscriber gets the retained copy).
    async fn offline_and_retained(&self, sub: &mut MqttProbe, ids: &[&str]) {
        until_each(sub, ids, |_, p, _| offline(p)).await;
        let mut late = self.subscriber().await;
        until_each(&mut late, ids, |_, p, m| m.retain && offline(p)).await;
    }

    async fn subscriber(&self) -> MqttProbe {
        MqttProbe::subscribed(
            self.broker.ports.mqtt,
            SERVER_USER,
            &self.creds.server,
            &format!("{TOPIC_PREFIX}/#"),
        )
        .await
        .unwrap()
    }
}

/// A status that does not say offline.
fn online(p: &Payload) -> bool {
    matches!(p, Payload::Status(st) if st.online != Some(false))
}

/// A status that says offline (a last will, or the device's own goodbye).
fn offline(p: &Payload) -> bool {
    matches!(p, Payload::Status(st) if st.online == Some(false))
}

fn parse(m: &Received) -> (String, Payload) {
    let t = Topic::parse(TOPIC_PREFIX, &m.topic).unwrap_or_else(|e| panic!("{}: {e}", m.topic));
    let p = decode(t.kind, &m.payload, 0)
        .unwrap_or_else(|e| panic!("{}: {e}: {}", m.topic, String::from_utf8_lossy(&m.payload)));
    (t.device_id.to_string(), p.payload)
}

/// Reads messages until `pred` has held for every id in `ids`.
async fn until_each(
    sub: &mut MqttProbe,
    ids: &[&str],
    mut pred: impl FnMut(&str, &Payload, &Received) -> bool,
) {
    let mut done: BTreeMap<String, bool> = ids.iter().map(|i| ((*i).to_owned(), false)).collect();
    while done.values().any(|d| !d) {
        let m = sub
            .next_message(T)
            .await
            .unwrap_or_else(|e| panic!("{e}; still waiting for {done:?}"));
        let (id, p) = parse(&m);
        if pred(&id, &p, &m) {
            done.insert(id, true);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_publish_consistent_readings_and_announce_presence() {
    let ids = ["sim-01", "sim-02"];
    let s = setup(&ids);
    let mut sub = s.subscriber().await;
    let mut sim = s.sim(2, 10.0);

    // Retained online status on connect, then measurements on each device's own topic.
    until_each(&mut sub, &ids, |_, p, _| online(p)).await;
    let mut latest: BTreeMap<String, f64> = BTreeMap::new();
    let mut measurements = 0;
    while measurements < 60 {
        let m = sub.next_message(T).await.unwrap();
        if let (id, Payload::Measurement(x)) = parse(&m) {
            measurements += 1;
            assert!((49.5..50.5).contains(&x.frequency), "{x:?}");
            assert!((200.0..260.0).contains(&x.voltage), "{x:?}");
            let pf = x.power / (x.voltage * x.current);
            assert!(
                (0.85..=1.0001).contains(&pf),
                "P = V I pf with pf {pf}: {x:?}"
            );
            latest.insert(id, x.frequency);
        }
    }
    let spread = latest.values().cloned().fold(f64::MIN, f64::max)
        - latest.values().cloned().fold(f64::MAX, f64::min);
    assert!(
        spread < 0.02,
        "devices on one grid agree within 20 mHz: {latest:?}"
    );

    // A crash: the broker publishes each device's last will, retained, online=false.
    sim.kill();
    s.offline_and_retained(&mut sub, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_reconnect_after_a_broker_restart_and_say_goodbye_on_sigterm() {
    let ids = ["sim-01"];
    let mut s = setup(&ids);
    let mut sim = s.sim(1, 10.0);
    let mut sub = s.subscriber().await;
    until_each(&mut sub, &ids, |_, p, _| {
        matches!(p, Payload::Measurement(_))
    })
    .await;

    s.broker.restart().unwrap();
    let mut sub = s.subscriber().await;
    until_each(&mut sub, &ids, |_, p, _| online(p)).await;
    until_each(&mut sub, &ids, |_, p, _| {
        matches!(p, Payload::Measurement(_))
    })
    .await;

    sim.stop();
    s.offline_and_retained(&mut sub, &ids).await;
    let log = std::fs::read_to_string(s.dir.path().join("sim.log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "{log}");
}
