//! Home Assistant through the real broker: with `OGM_HOME_ASSISTANT=true` the server keeps
//! retained discovery configs for the grid and for each simulated device, publishes the grid
//! summary once a second, and says `online`/`offline` on its status topic (the entities'
//! availability), `offline` when it stops. Read as Home Assistant reads them: with the
//! dashboard's read-only user (README, "Home Assistant").

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::time::Duration;

use ogm_devstack::{DASHBOARD_USER, MqttProbe, Stack, StackOptions};
use rumqttc::QoS;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grid_and_each_device_appear_in_home_assistant() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StackOptions::for_test(dir.path().to_path_buf(), 2);
    options.rate_hz = 5.0;
    options.sim_trips = false;
    options.server_env = vec![("OGM_HOME_ASSISTANT".into(), "true".into())];
    let reader_pw = options.credentials.dashboard.clone();
    let mut stack = Stack::up(options).unwrap();
    let mut probe = MqttProbe::subscribed(
        stack.broker.ports.mqtt,
        DASHBOARD_USER,
        &reader_pw,
        "homeassistant/#",
    )
    .await
    .unwrap();
    assert!(
        probe
            .subscribe("ogm_server/#", QoS::AtLeastOnce)
            .await
            .unwrap()
    );

    let mut configs: BTreeMap<String, Value> = BTreeMap::new();
    let mut summary: Option<Value> = None;
    let mut status = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while configs.len() < 16
        || status != "online"
        || summary
            .as_ref()
            .is_none_or(|s| s["devices_online"] != 2 || s["frequency"].is_null())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "configs {:?}, status {status:?}, summary {summary:?}",
            configs.keys()
        );
        let m = probe.next_message(Duration::from_secs(10)).await.unwrap();
        let text = String::from_utf8_lossy(&m.payload).into_owned();
        match m.topic.as_str() {
            "ogm_server/status" => status = text,
            "ogm_server/grid" => summary = Some(serde_json::from_str(&text).unwrap()),
            t if t.starts_with("homeassistant/") => {
                assert!(m.retain || !configs.is_empty(), "{t} is retained");
                configs.insert(t.to_owned(), serde_json::from_str(&text).unwrap());
            }
            _ => {}
        }
    }
    let grid = &configs["homeassistant/sensor/ogm_grid/frequency/config"];
    assert_eq!(grid["device_class"], "frequency");
    assert_eq!(grid["unit_of_measurement"], "Hz");
    assert_eq!(grid["state_class"], "measurement");
    assert_eq!(grid["availability_topic"], "ogm_server/status");
    let alert = &configs["homeassistant/binary_sensor/ogm_grid/alert/config"];
    assert_eq!(alert["device_class"], "problem");
    let power = &configs["homeassistant/sensor/ogm_sim-01/power/config"];
    assert_eq!(power["device_class"], "power");
    assert_eq!(power["unit_of_measurement"], "W");
    assert_eq!(power["state_topic"], "open_grid_monitor/sim-01/measurement");
    assert_eq!(power["device"]["identifiers"][0], "ogm_sim-01");
    let rssi = &configs["homeassistant/sensor/ogm_sim-02/rssi/config"];
    assert_eq!(rssi["device_class"], "signal_strength");
    assert_eq!(
        rssi["availability"][0]["topic"],
        "open_grid_monitor/sim-02/status"
    );
    for (topic, config) in &configs {
        assert!(
            config.get("object_id").is_none(),
            "{topic}: object_id is deprecated"
        );
    }
    // The readings Home Assistant's device sensors take, through the same read-only user.
    assert!(
        probe
            .subscribe("open_grid_monitor/+/measurement", QoS::AtMostOnce)
            .await
            .unwrap()
    );
    let m = probe.next_message(Duration::from_secs(10)).await.unwrap();
    assert!(m.topic.starts_with("open_grid_monitor/sim-"), "{}", m.topic);
    let s = summary.unwrap();
    let f = s["frequency"].as_f64().unwrap();
    assert!((49.8..50.2).contains(&f), "{s}");
    assert_eq!(s["alert"], "OFF");
    println!("FIGURE grid summary: {s}");

    // Stopped (SIGTERM): the entities go unavailable.
    stack.server.stop();
    let mut said = Vec::new();
    while let Ok(m) = probe.next_message(Duration::from_secs(10)).await {
        if m.topic == "ogm_server/status" {
            said.push(String::from_utf8_lossy(&m.payload).into_owned());
            if said.last().is_some_and(|s| s == "offline") {
                break;
            }
        }
    }
    assert_eq!(said.last().map(String::as_str), Some("offline"), "{said:?}");
}
