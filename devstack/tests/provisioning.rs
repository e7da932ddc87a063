//! Provisioning against the real broker with the repository's ACL and policy:
//! - `ogm-server setup` writes the password file the compose stack mounts: the service users
//!   and the listed devices log in with the passwords it generated, and a device writes only its
//!   own topics; running it again changes nothing;
//! - `ogm-server device add` gives a new device broker credentials on a running broker (edited
//!   file + SIGHUP), prints its firmware settings, and `device remove` takes them away;
//! - `scripts/setup-production` does the same set-up in one command.
//!
//! A forbidden publish is acknowledged and dropped by Mosquitto, so "not delivered" is proven by
//! ordering: the same client then publishes an allowed marker, and the subscriber must see the
//! marker with nothing forbidden before it (as in broker_acl.rs).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::process::Command;
use std::time::Duration;

use ogm_devstack::deployment::{Deployment, device_password, ogm_server};
use ogm_devstack::{
    BrokerPorts, Credentials, DASHBOARD_USER, Mosquitto, MqttProbe, SERVER_USER, cargo_bin,
    repo_root,
};

const T: Duration = Duration::from_secs(10);

/// The server's view: subscribed to every device topic.
async fn subscriber(port: u16, password: &str) -> MqttProbe {
    MqttProbe::subscribed(port, SERVER_USER, password, "open_grid_monitor/#")
        .await
        .unwrap()
}

/// Publishes `allowed` and `forbidden` topics as `device`, then a marker on its own logs topic;
/// returns the topics `server` saw up to the marker.
async fn delivered(
    server: &mut MqttProbe,
    device: &mut MqttProbe,
    allowed: &[String],
    forbidden: &[&str],
    own_logs: &str,
) -> Vec<String> {
    for t in allowed {
        device.publish(t, "ok", false).await.unwrap();
    }
    for t in forbidden {
        device.publish(t, "forged", false).await.unwrap();
    }
    device.publish(own_logs, "marker", false).await.unwrap();
    let got = server.messages_until_payload(b"marker", T).await.unwrap();
    got.into_iter().map(|m| m.topic).collect()
}

fn own_topics(id: &str) -> Vec<String> {
    ["measurement", "status", "logs"]
        .iter()
        .map(|k| format!("open_grid_monitor/{id}/{k}"))
        .collect()
}

#[tokio::test]
async fn setup_writes_a_password_file_the_broker_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::prepare(dir.path(), &["dev-a", "dev-b"]).unwrap();
    assert_eq!(d.devices.len(), 2, "{}", d.stdout);
    let broker = Mosquitto::start_with_password_file(
        &dir.path().join("broker"),
        BrokerPorts::free(),
        &d.password_file(),
    )
    .unwrap();
    let port = broker.ports.mqtt;

    let mut server = subscriber(port, d.var("OGM_MQTT_PASSWORD").unwrap()).await;
    MqttProbe::connect(
        port,
        DASHBOARD_USER,
        d.var("OGM_DASHBOARD_MQTT_PASSWORD").unwrap(),
    )
    .await
    .unwrap();
    assert!(
        MqttProbe::connect(port, "dev-a", &d.devices["dev-b"])
            .await
            .is_err(),
        "one device's password is not another's"
    );
    assert!(
        MqttProbe::connect(
            port,
            SERVER_USER,
            d.var("OGM_DASHBOARD_MQTT_PASSWORD").unwrap()
        )
        .await
        .is_err()
    );
    let mut dev_a = MqttProbe::connect(port, "dev-a", &d.devices["dev-a"])
        .await
        .unwrap();
    let got = delivered(
        &mut server,
        &mut dev_a,
        &own_topics("dev-a"),
        &["open_grid_monitor/dev-b/measurement", "open_grid_monitor/x"],
        "open_grid_monitor/dev-a/logs",
    )
    .await;
    let mut expected = own_topics("dev-a");
    expected.push("open_grid_monitor/dev-a/logs".into());
    assert_eq!(got, expected, "forged messages must not be delivered");

    // Again: every secret and every hash is kept.
    let passwd_before = std::fs::read_to_string(d.password_file()).unwrap();
    let again = Deployment::setup(dir.path()).unwrap();
    assert_eq!(again.env, d.env);
    assert_eq!(
        std::fs::read_to_string(d.password_file()).unwrap(),
        passwd_before
    );
    assert!(
        again.stdout.contains("nothing generated"),
        "{}",
        again.stdout
    );
    assert!(again.stdout.contains("Devices kept"), "{}", again.stdout);
}

#[tokio::test]
async fn device_add_gives_a_new_device_its_own_topics_on_a_running_broker() {
    let dir = tempfile::tempdir().unwrap();
    let creds = Credentials::generate();
    let mut users = creds.service_users().to_vec();
    users.push(("dev-b", creds.device.as_str()));
    // A password file as mosquitto_passwd wrote it: device add edits it in place.
    let broker = Mosquitto::start(dir.path(), BrokerPorts::free(), &users).unwrap();
    let port = broker.ports.mqtt;
    let passwd = dir.path().join("passwd");
    let pid = broker.pid().unwrap().to_string();

    let out = ogm_server(
        &[
            "device",
            "add",
            "bad/id",
            "--password-file",
            passwd.to_str().unwrap(),
        ],
        &[],
    )
    .unwrap();
    assert!(!out.status.success());
    let out = ogm_server(
        &[
            "device",
            "add",
            "ogm.evil",
            "--password-file",
            passwd.to_str().unwrap(),
        ],
        &[],
    )
    .unwrap();
    assert!(
        !out.status.success(),
        "a service-like name is not a device id"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a device id"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = ogm_server(
        &[
            "device",
            "add",
            "dev-new",
            "--password-file",
            passwd.to_str().unwrap(),
            "--reload-pid",
            &pid,
        ],
        &[("OGM_PUBLIC_MQTT_URL", "mqtt://192.0.2.10:1883")],
    )
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let settings = String::from_utf8(out.stdout).unwrap();
    assert!(
        settings.contains("broker = \"mqtt://192.0.2.10:1883\""),
        "{settings}"
    );
    assert!(settings.contains("id = \"dev-new\""), "{settings}");
    let password = device_password(&settings).unwrap();

    let mut server = subscriber(port, &creds.server).await;
    let mut dev = MqttProbe::connect_eventually(port, "dev-new", &password, T)
        .await
        .unwrap();
    let got = delivered(
        &mut server,
        &mut dev,
        &own_topics("dev-new"),
        &[
            "open_grid_monitor/dev-b/measurement",
            "open_grid_monitor/dev-new/other",
            "elsewhere/dev-new/measurement",
        ],
        "open_grid_monitor/dev-new/logs",
    )
    .await;
    let mut expected = own_topics("dev-new");
    expected.push("open_grid_monitor/dev-new/logs".into());
    assert_eq!(got, expected, "only its own topics");
    // The other users of the edited file still log in.
    MqttProbe::connect(port, "dev-b", &creds.device)
        .await
        .unwrap();
    MqttProbe::connect(port, DASHBOARD_USER, &creds.dashboard)
        .await
        .unwrap();

    // Removed: the broker refuses it after the reload.
    let out = ogm_server(
        &[
            "device",
            "remove",
            "dev-new",
            "--password-file",
            passwd.to_str().unwrap(),
            "--reload-pid",
            &pid,
        ],
        &[],
    )
    .unwrap();
    assert!(out.status.success());
    ogm_devstack::wait::expect_async("refused after removal", T, || async {
        MqttProbe::connect(port, "dev-new", &password)
            .await
            .is_err()
    })
    .await;
}

#[tokio::test]
async fn the_setup_script_prepares_a_deployment_in_one_command() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(repo_root().join(".env.example")).unwrap();
    std::fs::write(
        dir.path().join(".env"),
        example.replace("OGM_DEVICES=", "OGM_DEVICES=esp32-s3_01,"),
    )
    .unwrap();
    let run = || {
        Command::new("bash")
            .arg(repo_root().join("scripts/setup-production"))
            .env("OGM_SERVER_BIN", cargo_bin("ogm-server").unwrap())
            .env("OGM_DEPLOY_DIR", dir.path())
            .output()
            .unwrap()
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("docker compose up -d"),
        "says what is next: {stdout}"
    );
    let d = Deployment::setup(dir.path()).unwrap();
    assert!(d.devices.contains_key("esp32-s3_01"));
    for key in [
        "OGM_MQTT_PASSWORD",
        "OGM_DASHBOARD_MQTT_PASSWORD",
        "INFLUXDB_ADMIN_PASSWORD",
        "INFLUXDB_ADMIN_TOKEN",
        "GRAFANA_ADMIN_PASSWORD",
    ] {
        assert!(d.var(key).unwrap().len() >= 24, "{key}");
    }
    let broker = Mosquitto::start_with_password_file(
        &dir.path().join("broker"),
        BrokerPorts::free(),
        &d.password_file(),
    )
    .unwrap();
    MqttProbe::connect(broker.ports.mqtt, "esp32-s3_01", &d.devices["esp32-s3_01"])
        .await
        .unwrap();
    let second = run();
    assert!(second.status.success());
    assert_eq!(
        Deployment::setup(dir.path()).unwrap().env,
        d.env,
        "idempotent"
    );
}
