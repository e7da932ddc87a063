//! The grid in Home Assistant: retained MQTT discovery configs (under a configurable prefix,
//! `homeassistant` by default) for a "Grid" device (frequency as the median of the online
//! devices, deviation, RoCoF, grid time deviation, devices online, and an alert binary sensor,
//! all read from the grid summary) and for each measuring device (frequency, voltage, current
//! and power from its own measurement topic, RSSI from its status), with availability from the
//! server's and the devices' last wills. The grid summary goes to `ogm_server/grid` once a
//! second ([`GridSummary`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ogm_protocol::topic::{server_grid, server_status};
use ogm_protocol::{DeviceId, Kind, TOPIC_PREFIX, Topic};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::alerts::Alerts;
use crate::publisher::Publisher;
use crate::time::now_us;

/// Keeps the discovery configs on the broker and publishes the grid summary once a second,
/// until `shutdown`.
pub async fn run(
    prefix: String,
    nominal_hz: f64,
    alerts: Arc<Alerts>,
    publisher: Arc<Publisher>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut discovery = Discovery::new(&prefix);
    for (topic, payload) in discovery.grid() {
        publisher.keep_retained(&topic, payload);
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = crate::ingest::mqtt::stopped(&mut shutdown) => return,
            _ = tick.tick() => {}
        }
        for id in alerts.device_ids() {
            for (topic, payload) in discovery.device(&id) {
                publisher.keep_retained(&topic, payload);
            }
        }
        let g = alerts.grid();
        let summary = GridSummary {
            t: now_us(),
            frequency: g.frequency_hz.map(|f| (f * 1e4).round() / 1e4),
            deviation_mhz: g
                .frequency_hz
                .map(|f| ((f - nominal_hz) * 1e4).round() / 10.0),
            rocof: g.rocof.map(|r| (r * 1e4).round() / 1e4),
            grid_time_s: g.grid_time_s.map(|s| (s * 1e3).round() / 1e3),
            devices_online: g.devices_fresh,
            alert: if alerts.active_count() > 0 {
                "ON"
            } else {
                "OFF"
            },
        };
        if let Ok(json) = serde_json::to_vec(&summary) {
            publisher.publish_now(&server_grid(), json);
        }
    }
}

/// What `ogm_server/grid` carries, once a second.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridSummary {
    /// µs since the Unix epoch.
    pub t: i64,
    /// The median of the frequencies of the devices heard in the last 5 s, Hz.
    pub frequency: Option<f64>,
    /// Its deviation from nominal, mHz.
    pub deviation_mhz: Option<f64>,
    /// The median of the devices' RoCoF, Hz/s.
    pub rocof: Option<f64>,
    /// Grid time deviation over the last 24 h, s.
    pub grid_time_s: Option<f64>,
    /// Devices heard in the last 5 s.
    pub devices_online: usize,
    /// `ON` while any alert is active, else `OFF`.
    pub alert: &'static str,
}

/// Every discovery config to keep on the broker: (topic, payload).
#[derive(Debug)]
pub struct Discovery {
    prefix: String,
    announced: BTreeSet<DeviceId>,
}

impl Discovery {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_owned(),
            announced: BTreeSet::new(),
        }
    }

    /// The grid device's configs.
    pub fn grid(&self) -> Vec<(String, Vec<u8>)> {
        let device = json!({
            "identifiers": ["ogm_grid"],
            "name": "Grid",
            "manufacturer": "Open Grid Monitor",
            "model": "Grid summary",
        });
        let sensor = |key: &str, name: &str, extra: Value| {
            let mut config = json!({
                "name": name,
                "unique_id": format!("ogm_grid_{key}"),
                "state_topic": server_grid(),
                "value_template": format!("{{{{ value_json.{key} }}}}"),
                "availability_topic": server_status(),
                "expire_after": 10,
                "device": device.clone(),
            });
            merge(&mut config, extra);
            config
        };
        // (component, key in the summary, name, what the key's entity adds)
        let entities = [
            (
                "sensor",
                "frequency",
                "Frequency",
                json!({
                    "unit_of_measurement": "Hz", "device_class": "frequency",
                    "state_class": "measurement", "suggested_display_precision": 3,
                }),
            ),
            (
                "sensor",
                "deviation_mhz",
                "Deviation",
                json!({
                    "unit_of_measurement": "mHz", "state_class": "measurement",
                    "suggested_display_precision": 1, "icon": "mdi:sine-wave",
                }),
            ),
            (
                "sensor",
                "rocof",
                "RoCoF",
                json!({
                    "unit_of_measurement": "Hz/s", "state_class": "measurement",
                    "suggested_display_precision": 3, "icon": "mdi:chart-line-variant",
                }),
            ),
            (
                "sensor",
                "grid_time_s",
                "Time deviation",
                json!({
                    "unit_of_measurement": "s", "device_class": "duration",
                    "state_class": "measurement", "suggested_display_precision": 2,
                }),
            ),
            (
                "sensor",
                "devices_online",
                "Devices online",
                json!({ "state_class": "measurement", "icon": "mdi:access-point-network" }),
            ),
            // Expires like the others: a frozen server must not leave a stale "no alert".
            (
                "binary_sensor",
                "alert",
                "Alert",
                json!({ "device_class": "problem", "payload_on": "ON", "payload_off": "OFF" }),
            ),
        ];
        entities
            .into_iter()
            .map(|(component, key, name, extra)| {
                self.config(component, "ogm_grid", key, sensor(key, name, extra))
            })
            .collect()
    }

    /// A measuring device's configs, the first time it is seen; empty afterwards.
    pub fn device(&mut self, id: &DeviceId) -> Vec<(String, Vec<u8>)> {
        if !self.announced.insert(id.clone()) {
            return Vec::new();
        }
        let node = format!("ogm_{id}");
        let measurement = Topic::new(id.clone(), Kind::Measurement).to_topic(TOPIC_PREFIX);
        let status = Topic::new(id.clone(), Kind::Status).to_topic(TOPIC_PREFIX);
        let device = json!({
            "identifiers": [node],
            "name": format!("Grid monitor {id}"),
            "manufacturer": "Open Grid Monitor",
            "model": "ESP32-S3 + ADE7953",
            "via_device": "ogm_grid",
        });
        // The device's own last will only: its readings reach Home Assistant through the
        // broker, not through this server, so they stay available while the server is down.
        let availability = json!([
            {
                "topic": status,
                "value_template": "{{ 'offline' if value_json.online is defined and not value_json.online else 'online' }}",
            },
        ]);
        let sensor =
            |key: &str, name: &str, topic: &str, unit: &str, class: &str, precision: u8| {
                json!({
                    "name": name,
                    "unique_id": format!("{node}_{key}"),
                    "state_topic": topic,
                    "value_template": format!("{{{{ value_json.{key} }}}}"),
                    "unit_of_measurement": unit,
                    "device_class": class,
                    "state_class": "measurement",
                    "suggested_display_precision": precision,
                    "availability": availability.clone(),
                    "device": device.clone(),
                })
            };
        vec![
            self.config(
                "sensor",
                &node,
                "frequency",
                sensor("frequency", "Frequency", &measurement, "Hz", "frequency", 3),
            ),
            self.config(
                "sensor",
                &node,
                "voltage",
                sensor("voltage", "Voltage", &measurement, "V", "voltage", 1),
            ),
            self.config(
                "sensor",
                &node,
                "current",
                sensor("current", "Current", &measurement, "A", "current", 3),
            ),
            self.config(
                "sensor",
                &node,
                "power",
                sensor("power", "Power", &measurement, "W", "power", 1),
            ),
            self.config(
                "sensor",
                &node,
                "rssi",
                sensor("rssi", "Signal", &status, "dBm", "signal_strength", 0),
            ),
        ]
    }

    fn config(&self, component: &str, node: &str, key: &str, payload: Value) -> (String, Vec<u8>) {
        (
            format!("{}/{component}/{node}/{key}/config", self.prefix),
            payload.to_string().into_bytes(),
        )
    }
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), extra) {
        a.extend(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(p: &[u8]) -> Value {
        serde_json::from_slice(p).unwrap()
    }

    #[test]
    fn the_grid_and_each_device_are_discovered_with_classes_units_and_availability() {
        let mut d = Discovery::new("homeassistant/");
        let grid = d.grid();
        assert_eq!(grid.len(), 6);
        assert_eq!(grid[0].0, "homeassistant/sensor/ogm_grid/frequency/config");
        let f = parse(&grid[0].1);
        assert_eq!(f["device_class"], "frequency");
        assert_eq!(f["unit_of_measurement"], "Hz");
        assert_eq!(f["state_class"], "measurement");
        assert_eq!(f["state_topic"], "ogm_server/grid");
        assert_eq!(f["value_template"], "{{ value_json.frequency }}");
        assert_eq!(f["availability_topic"], "ogm_server/status");
        let alert = parse(&grid[5].1);
        assert_eq!(
            grid[5].0,
            "homeassistant/binary_sensor/ogm_grid/alert/config"
        );
        assert_eq!(alert["device_class"], "problem");
        let id = DeviceId::new("sim-01").unwrap();
        let dev = d.device(&id);
        assert_eq!(dev.len(), 5);
        let rssi = parse(&dev[4].1);
        assert_eq!(rssi["device_class"], "signal_strength");
        assert_eq!(rssi["state_topic"], "open_grid_monitor/sim-01/status");
        assert_eq!(
            rssi["availability"],
            json!([{
                "topic": "open_grid_monitor/sim-01/status",
                "value_template": "{{ 'offline' if value_json.online is defined and not value_json.online else 'online' }}",
            }]),
            "the device's last will alone: its readings do not pass through the server"
        );
        assert_eq!(
            alert["expire_after"], 10,
            "no stale \"no alert\" from a frozen server"
        );
        let power = parse(&dev[3].1);
        assert_eq!(
            (
                power["device_class"].as_str(),
                power["unit_of_measurement"].as_str()
            ),
            (Some("power"), Some("W"))
        );
        assert!(d.device(&id).is_empty(), "announced once");
    }
}
