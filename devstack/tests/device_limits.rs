//! One device cannot flood everyone: its budget (messages and bytes per second of its own
//! timestamps) cuts a flood while another device's stream is stored whole, the cut is counted
//! by device and reason, and a retained message whose timestamp had to be replaced is stored
//! once, not again at every reconnect of the server. Real broker, real server, the device's own
//! credential (what a hostile or broken board holds).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use ogm_devstack::ingest_check::{DEVICE_PASSWORD, Stream, metric, wait_exactly_once};
use ogm_devstack::page::{log, measurement, now_us, topic};
use ogm_devstack::{MqttProbe, Stack, StackOptions, http_get};
use ogm_protocol::{Kind, LogLevel};

fn stack(devices: &[&str]) -> (tempfile::TempDir, Stack) {
    let dir = tempfile::tempdir().unwrap();
    let options = StackOptions::with_devices(dir.path().to_path_buf(), devices, DEVICE_PASSWORD);
    let stack = Stack::up(options).unwrap();
    (dir, stack)
}

/// Waits until `f` holds, or fails saying what did not happen.
fn wait_for(what: &str, f: impl FnMut() -> bool) {
    ogm_devstack::wait::expect(what, Duration::from_secs(60), f);
}

fn rejected_by_device(url: &str) -> serde_json::Value {
    http_get(&format!("{url}/api/ingest/rejected/devices"))
        .unwrap()
        .json()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_device_is_cut_at_its_budget_and_its_neighbour_is_not() {
    let (_dir, stack) = stack(&["flood", "calm"]);
    let url = stack.http_url();
    let port = stack.broker.ports.mqtt;

    // The neighbour: an honest 50 Hz stream, published meanwhile.
    let calm = Stream::new(port, &["calm".to_owned()], 1000, now_us() - 600_000_000);
    let neighbour = {
        let s = calm.clone();
        tokio::spawn(async move { s.publish(0, s.count).await })
    };

    // 3 000 measurements stamped within one second, then 1 000 log lines of 4 KB in another.
    let mut flood = MqttProbe::connect(port, "flood", DEVICE_PASSWORD)
        .await
        .unwrap();
    // On a second's boundary, so each flood falls within one second of timestamps.
    let t0 = (now_us() - 120_000_000) / 1_000_000 * 1_000_000;
    for i in 0..3000 {
        flood
            .publish(
                &topic("flood", Kind::Measurement),
                measurement(t0 + i * 100, 50.0),
                false,
            )
            .await
            .unwrap();
    }
    let line = "x".repeat(4000);
    for i in 0..1000 {
        flood
            .publish(
                &topic("flood", Kind::Logs),
                log(t0 + 5_000_000 + i, LogLevel::Info, &line),
                false,
            )
            .await
            .unwrap();
    }
    neighbour.await.unwrap().unwrap();

    let sent = 3000 + 1000;
    wait_for("every flood message counted", || {
        metric(&url, "ogm_messages_received_total").unwrap_or(0.0) >= f64::from(sent + 1000)
    });
    let by_device = rejected_by_device(&url);
    let flood_row = by_device
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == "flood")
        .unwrap_or_else(|| panic!("no rejections counted for the flood: {by_device}"));
    let over_messages = flood_row["reasons"]["over_message_budget"]
        .as_u64()
        .unwrap_or(0);
    let over_bytes = flood_row["reasons"]["over_byte_budget"]
        .as_u64()
        .unwrap_or(0);
    // 100 measurements in their second; 16 log lines of 4 KB in 64 KiB.
    assert_eq!(over_messages, 2900, "{flood_row}");
    assert_eq!(over_bytes, 1000 - 16, "{flood_row}");
    assert!(
        by_device
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["device_id"] != "calm"),
        "the neighbour lost messages: {by_device}"
    );
    let stored = tokio::task::block_in_place(|| {
        wait_exactly_once(
            &url,
            &calm.devices,
            calm.count,
            calm.base,
            Duration::from_secs(60),
        )
    });
    assert!(stored.exactly_once(), "the neighbour's stream: {stored:?}");
    let ring = http_get(&format!("{url}/api/ingest/rejected"))
        .unwrap()
        .body;
    assert!(
        ring.contains("over_message_budget") || ring.contains("over_byte_budget"),
        "{ring}"
    );
    assert_eq!(
        metric(
            &url,
            "ogm_messages_rejected_total{reason=\"over_message_budget\"}"
        ),
        Some(2900.0)
    );
    println!(
        "FIGURE flood: {} measurements stamped in one second → 100 stored, {over_messages} cut; 1000 log lines of 4 KB → 16 stored, {over_bytes} cut; the neighbour's {} all stored",
        3000, calm.count
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_status_stamped_anew_is_stored_once_not_at_every_reconnect() {
    let (_dir, mut stack) = stack(&["future"]);
    let url = stack.http_url();
    let mut dev = MqttProbe::connect(stack.broker.ports.mqtt, "future", DEVICE_PASSWORD)
        .await
        .unwrap();
    // A status stamped in 2100: the ingest replaces the timestamp with its receive time.
    let status = br#"{"timestamp": 4102444800000000, "rssi": -60, "free_heap": 120000}"#;
    dev.publish(&topic("future", Kind::Status), status.to_vec(), true)
        .await
        .unwrap();
    wait_for("the status stored", || {
        metric(&url, "ogm_messages_stored_total") == Some(1.0)
    });
    assert_eq!(
        metric(&url, "ogm_timestamps_replaced_total{cause=\"in_future\"}"),
        Some(1.0)
    );
    // Each restart subscribes again, and the broker sends the retained status again.
    for _ in 0..2 {
        stack.restart_server().unwrap();
        wait_for("the retained status seen again", || {
            metric(
                &url,
                "ogm_messages_rejected_total{reason=\"stale_retained\"}",
            ) == Some(1.0)
        });
        assert_eq!(metric(&url, "ogm_messages_stored_total"), Some(0.0));
    }
    let devices = http_get(&format!("{url}/api/devices"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(devices[0]["device_id"], "future", "{devices}");
}
