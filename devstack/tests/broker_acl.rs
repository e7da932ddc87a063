//! The project's Mosquitto policy and ACL, proven against the real broker.
//!
//! A forbidden publish is acknowledged and dropped by Mosquitto, so "not delivered" is proven by
//! ordering: the same client then publishes an allowed marker, and the subscriber must see the
//! marker with nothing forbidden before it.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use ogm_devstack::{
    BrokerPorts, Credentials, DASHBOARD_USER, Mosquitto, MqttProbe, SERVER_USER, mosquitto_pub,
};
use rumqttc::QoS;

const T: Duration = Duration::from_secs(10);

struct Broker {
    _dir: tempfile::TempDir,
    broker: Mosquitto,
    creds: Credentials,
}

fn broker() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let creds = Credentials::generate();
    let mut users = creds.service_users().to_vec();
    users.extend([
        ("dev-a", creds.device.as_str()),
        ("dev-b", creds.device.as_str()),
    ]);
    let broker = Mosquitto::start(dir.path(), BrokerPorts::free(), &users).unwrap();
    Broker {
        _dir: dir,
        broker,
        creds,
    }
}

impl Broker {
    async fn server(&self) -> MqttProbe {
        MqttProbe::subscribed(
            self.broker.ports.mqtt,
            SERVER_USER,
            &self.creds.server,
            "open_grid_monitor/#",
        )
        .await
        .unwrap()
    }
    async fn device(&self, id: &str) -> MqttProbe {
        MqttProbe::connect(self.broker.ports.mqtt, id, &self.creds.device)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn anonymous_and_wrong_passwords_are_refused() {
    let b = broker();
    let port = b.broker.ports.mqtt;
    assert!(MqttProbe::connect(port, "", "").await.is_err(), "anonymous");
    assert!(
        MqttProbe::connect(port, "dev-a", "wrong").await.is_err(),
        "wrong password"
    );
    assert!(
        MqttProbe::connect(port, "nobody", &b.creds.device)
            .await
            .is_err(),
        "unknown user"
    );
    assert!(
        MqttProbe::connect(port, "dev-a", &b.creds.device)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_device_writes_its_own_topics_and_nothing_else() {
    let b = broker();
    let mut server = b.server().await;
    let mut dev = b.device("dev-a").await;
    for kind in ["measurement", "status", "logs"] {
        dev.publish(&format!("open_grid_monitor/dev-a/{kind}"), kind, false)
            .await
            .unwrap();
    }
    for forbidden in [
        "open_grid_monitor/dev-b/measurement",
        "open_grid_monitor/dev-a/other",
        "open_grid_monitor/x",
        "elsewhere/dev-a/measurement",
    ] {
        dev.publish(forbidden, "forged", false).await.unwrap();
    }
    dev.publish("open_grid_monitor/dev-a/logs", "marker", false)
        .await
        .unwrap();
    let got = server.messages_until_payload(b"marker", T).await.unwrap();
    let topics: Vec<&str> = got.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "open_grid_monitor/dev-a/measurement",
            "open_grid_monitor/dev-a/status",
            "open_grid_monitor/dev-a/logs",
            "open_grid_monitor/dev-a/logs"
        ],
        "forged messages must not be delivered"
    );
}

#[tokio::test]
async fn a_device_reads_only_its_own_topics() {
    // Mosquitto grants every SUBSCRIBE and filters on delivery, so prove it by delivery order:
    // dev-b's message is routed before dev-a's own marker, which dev-a must see first.
    let b = broker();
    let mut dev_a = b.device("dev-a").await;
    assert!(
        dev_a
            .subscribe("open_grid_monitor/#", QoS::AtLeastOnce)
            .await
            .unwrap()
    );
    let mut dev_b = b.device("dev-b").await;
    dev_b
        .publish(
            "open_grid_monitor/dev-b/measurement",
            "not for dev-a",
            false,
        )
        .await
        .unwrap();
    dev_a
        .publish("open_grid_monitor/dev-a/status", "marker", false)
        .await
        .unwrap();
    let got = dev_a.next_message(T).await.unwrap();
    assert_eq!(
        (got.topic.as_str(), got.payload.as_slice()),
        ("open_grid_monitor/dev-a/status", &b"marker"[..])
    );
}

#[tokio::test]
async fn the_dashboard_reads_everything_and_writes_nothing() {
    let b = broker();
    let port = b.broker.ports.mqtt;
    let mut dash = MqttProbe::connect(port, DASHBOARD_USER, &b.creds.dashboard)
        .await
        .unwrap();
    assert!(
        dash.subscribe("open_grid_monitor/#", QoS::AtMostOnce)
            .await
            .unwrap()
    );
    let mut server = b.server().await;
    dash.publish(
        "open_grid_monitor/dev-a/measurement",
        "forged by the dashboard",
        false,
    )
    .await
    .unwrap();
    let mut dev = b.device("dev-a").await;
    dev.publish("open_grid_monitor/dev-a/status", "marker", false)
        .await
        .unwrap();
    let got = server
        .messages_until("open_grid_monitor/dev-a/status", T)
        .await
        .unwrap();
    assert_eq!(
        got.len(),
        1,
        "the dashboard's publish must not be delivered: {got:?}"
    );
    let seen = dash
        .messages_until("open_grid_monitor/dev-a/status", T)
        .await
        .unwrap();
    assert_eq!(seen.last().unwrap().payload, b"marker");
}

#[tokio::test]
async fn an_outside_client_publishes_with_the_command_line_tool() {
    let b = broker();
    let mut server = b.server().await;
    let (ok, err) = mosquitto_pub(
        b.broker.ports.mqtt,
        "dev-b",
        &b.creds.device,
        "open_grid_monitor/dev-b/measurement",
        b"hi",
    )
    .unwrap();
    assert!(ok, "{err}");
    let m = server.next_message(T).await.unwrap();
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice()),
        ("open_grid_monitor/dev-b/measurement", &b"hi"[..])
    );
}

#[tokio::test]
async fn users_added_at_run_time_can_connect() {
    let b = broker();
    assert!(
        MqttProbe::connect(b.broker.ports.mqtt, "dev-new", "pw-new")
            .await
            .is_err()
    );
    b.broker.add_user("dev-new", "pw-new").unwrap();
    // Mosquitto reloads its password file on SIGHUP asynchronously: retry until it has.
    MqttProbe::connect_eventually(b.broker.ports.mqtt, "dev-new", "pw-new", T)
        .await
        .unwrap();
}
