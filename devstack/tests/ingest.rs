//! The ingest through the real broker: at-least-once delivery end to end, exactly-once storage,
//! across a server crash (kill -9), a SIGTERM restart and a broker restart, and bad input
//! rejected and reported while good input in the same stream is stored.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::time::Duration;

use ogm_devstack::fixtures::{now_us, topic};
use ogm_devstack::ingest_check::STEP_US;
use ogm_devstack::{MqttProbe, Stack, StackOptions, fixtures, http_get, wait};
use ogm_protocol::{Kind, TOPIC_PREFIX};

const PW: &str = "device-pw";

fn stack(devices: &[&str]) -> (tempfile::TempDir, Stack) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StackOptions::with_devices(dir.path().to_path_buf(), devices, PW);
    options.extra_devices.push(("bad.id".into(), PW.into()));
    let stack = Stack::up(options).unwrap();
    (dir, stack)
}

/// The timestamps the server has stored for `device` (from the CSV export).
fn stored_timestamps(stack: &Stack, device: &str) -> Vec<i64> {
    ogm_devstack::ingest_check::stored_timestamps(&stack.http_url(), device)
}

/// Waits until the export of `device` holds `n` rows, or fails with what it holds.
fn wait_for_stored(stack: &Stack, device: &str, n: usize) -> Vec<i64> {
    wait::until(Duration::from_secs(90), || {
        Some(stored_timestamps(stack, device)).filter(|ts| ts.len() >= n)
    })
    .unwrap_or_else(|| stored_timestamps(stack, device))
}

fn metric(stack: &Stack, name: &str) -> f64 {
    ogm_devstack::ingest_check::metric(&stack.http_url(), name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn measurement(t: i64, i: usize) -> Vec<u8> {
    fixtures::measurement(t, 50.0 + (i % 100) as f64 * 0.001)
}

/// Publishes `count` measurements per device at QoS 1 (each acknowledged by the broker), calling
/// `midway` after each third of them.
async fn publish_stream(
    port: u16,
    devices: &[&str],
    count: usize,
    base: i64,
    mut midway: impl FnMut(usize),
) {
    let mut probes = Vec::new();
    for d in devices {
        probes.push(MqttProbe::connect(port, d, PW).await.unwrap());
    }
    for i in 0..count {
        for (d, p) in devices.iter().zip(probes.iter_mut()) {
            p.publish(
                &topic(d, Kind::Measurement),
                measurement(base + i as i64 * STEP_US, i),
                false,
            )
            .await
            .unwrap();
        }
        if (i + 1) % (count / 3) == 0 && i + 1 < count {
            midway((i + 1) / (count / 3));
        }
    }
}

fn assert_exactly_once(stack: &Stack, devices: &[&str], count: usize, base: i64) {
    for d in devices {
        let ts = wait_for_stored(stack, d, count);
        let unique: BTreeSet<i64> = ts.iter().copied().collect();
        let expected: BTreeSet<i64> = (0..count).map(|i| base + i as i64 * STEP_US).collect();
        assert_eq!(ts.len(), unique.len(), "{d}: a timestamp stored twice");
        let missing: Vec<i64> = expected
            .difference(&unique)
            .map(|t| (t - base) / STEP_US)
            .collect();
        let extra = unique.difference(&expected).count();
        assert!(
            missing.is_empty() && extra == 0,
            "{d}: stored {} of {count}; missing indexes {missing:?}; {extra} unexpected",
            unique.len()
        );
        // The rollups must agree: redeliveries may not be counted twice.
        let h = http_get(&format!(
            "{}/api/history?device_id={d}&field=frequency&start={}&stop={}&max_points=10",
            stack.http_url(),
            base,
            base + count as i64 * STEP_US
        ))
        .unwrap()
        .json()
        .unwrap();
        let total: u64 = h["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["count"].as_u64().unwrap())
            .sum();
        assert_eq!(total, count as u64, "{d}: history counts {total}: {h}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_stored_once_across_a_crash_and_a_sigterm_restart() {
    let devices = ["crash-a", "crash-b"];
    let (_dir, mut stack) = stack(&devices);
    let port = stack.broker.ports.mqtt;
    let base = now_us() - 600_000_000;
    let count = 1500;
    let stack_ref = &mut stack;
    publish_stream(port, &devices, count, base, |third| {
        if third == 1 {
            stack_ref.crash_and_restart_server().unwrap();
        } else {
            stack_ref.restart_server().unwrap();
        }
    })
    .await;
    assert_exactly_once(&stack, &devices, count, base);
    println!(
        "FIGURE after kill -9 and SIGTERM: stored {} new, {} redelivered duplicates ignored (this run of the server)",
        metric(&stack, "ogm_messages_stored_total"),
        metric(&stack, "ogm_messages_duplicate_total")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_stored_once_across_a_broker_restart() {
    let devices = ["broker-a"];
    let (_dir, mut stack) = stack(&devices);
    let port = stack.broker.ports.mqtt;
    let base = now_us() - 600_000_000;
    let half = 1500;
    publish_stream(port, &devices, half, base, |_| {}).await;
    stack.broker.restart().unwrap();
    publish_stream(port, &devices, half, base + half as i64 * STEP_US, |_| {}).await;
    assert_exactly_once(&stack, &devices, half * 2, base);
    assert!(metric(&stack, "ogm_mqtt_reconnects_total") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_and_reported_while_good_input_is_stored() {
    let (_dir, stack) = stack(&["mixed"]);
    let port = stack.broker.ports.mqtt;
    let mut dev = MqttProbe::connect(port, "mixed", PW).await.unwrap();
    let m = topic("mixed", Kind::Measurement);
    let base = now_us() - 60_000_000;
    let bad: Vec<(String, Vec<u8>, &str)> = vec![
        (m.clone(), b"{not json".to_vec(), "malformed_json"),
        (
            m.clone(),
            br#"{"timestamp":1,"frequency":"50","voltage":1,"current":1,"power":1}"#.to_vec(),
            "wrong_schema",
        ),
        (
            m.clone(),
            br#"{"timestamp":1703123456789123,"frequency":1e6,"voltage":1,"current":1,"power":1}"#
                .to_vec(),
            "out_of_range",
        ),
        (
            topic("mixed", Kind::Logs),
            // Above the protocol's 16 KiB, within the broker's packet limit (policy.conf).
            format!(
                r#"{{"level":"INFO","module":"m","message":"{}"}}"#,
                "x".repeat(ogm_protocol::payload::MAX_PAYLOAD_BYTES)
            )
            .into_bytes(),
            "too_large",
        ),
        (
            topic("mixed", Kind::Status),
            b"\xff\xfe".to_vec(),
            "malformed_json",
        ),
    ];
    for (i, (t, payload, _)) in bad.iter().enumerate() {
        dev.publish(&m, measurement(base + i as i64 * 10, i), false)
            .await
            .unwrap();
        dev.publish(t, payload.clone(), false).await.unwrap();
    }
    let mut bad_dev = MqttProbe::connect(port, "bad.id", PW).await.unwrap();
    bad_dev
        .publish(
            &format!("{TOPIC_PREFIX}/bad.id/measurement"),
            measurement(base, 0),
            false,
        )
        .await
        .unwrap();
    // A missing and a future timestamp are stored at the receive time, and counted.
    dev.publish(
        &m,
        br#"{"frequency":50.01,"voltage":230,"current":1,"power":230}"#.to_vec(),
        false,
    )
    .await
    .unwrap();
    dev.publish(&m, br#"{"timestamp":9999999999999999,"frequency":50.02,"voltage":230,"current":1,"power":230}"#.to_vec(), false).await.unwrap();
    let ts = wait_for_stored(&stack, "mixed", bad.len() + 2);
    assert_eq!(ts.len(), bad.len() + 2, "good messages stored: {ts:?}");
    for t in &ts[bad.len()..] {
        assert!(
            (now_us() - t).abs() < 60_000_000,
            "replaced timestamps are receive times: {t}"
        );
    }
    let rejected = http_get(&format!("{}/api/ingest/rejected", stack.http_url()))
        .unwrap()
        .json()
        .unwrap();
    let reasons: BTreeSet<&str> = rejected
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = bad.iter().map(|b| b.2).chain(["unknown_topic"]).collect();
    assert_eq!(reasons, expected, "{rejected}");
    let too_large = rejected
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["reason"] == "too_large")
        .unwrap();
    assert!(
        too_large["payload"].as_str().unwrap().len() <= 200,
        "payloads are truncated in the ring"
    );
    assert_eq!(
        metric(
            &stack,
            "ogm_messages_rejected_total{reason=\"malformed_json\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &stack,
            "ogm_messages_rejected_total{reason=\"unknown_topic\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&stack, "ogm_timestamps_replaced_total{cause=\"missing\"}"),
        1.0
    );
    assert_eq!(
        metric(&stack, "ogm_timestamps_replaced_total{cause=\"in_future\"}"),
        1.0
    );
    let health = http_get(&format!("{}/api/health", stack.http_url()))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    // The embedded store's size on disk, as /metrics tells it too; its growth only after an
    // hour of samples.
    let bytes = health["store"]["bytes"].as_u64().unwrap_or(0);
    assert!(bytes > 4096, "{health}");
    assert_eq!(metric(&stack, "ogm_store_bytes"), bytes as f64, "{health}");
    assert!(
        health["store"]["growth_bytes_per_day"].is_null(),
        "{health}"
    );
    assert!(
        health["disk"]["free_bytes"].as_u64().unwrap_or(0) > 0,
        "{health}"
    );
}

/// `device`'s entry of `GET /api/devices`, if listed.
fn device_view(stack: &Stack, device: &str) -> Option<serde_json::Value> {
    let v = http_get(&format!("{}/api/devices", stack.http_url()))
        .unwrap()
        .json()
        .unwrap();
    v.as_array()?
        .iter()
        .find(|d| d["device_id"] == device)
        .cloned()
}

/// Polls `GET /api/devices` until `device`'s entry satisfies `done`; returns it and when.
fn await_device(
    stack: &Stack,
    device: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> (serde_json::Value, i64) {
    let mut seen = None;
    let found = wait::until(Duration::from_secs(60), || {
        seen = device_view(stack, device);
        let at = now_us();
        seen.clone().filter(|v| done(v)).map(|v| (v, at))
    });
    found.unwrap_or_else(|| panic!("{device} never {what}: {seen:?}"))
}

/// `GET /api/devices` follows the dashboard's rule (`ogm_protocol::liveness`): a device
/// publishing at 1 Hz is silent after three of its intervals (here the rule's 5 s floor), not
/// after the flat 30 s of old; the interval survives a restart (read back from the store); and a
/// real last will, stamped when the device connected and so older than its measurements, makes
/// it offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_silent_after_three_intervals_and_offline_after_their_last_will() {
    use ogm_protocol::liveness::{MIN_SILENCE_US, silence_limit_us};
    let (_dir, mut stack) = stack(&["beat"]);
    let port = stack.broker.ports.mqtt;
    let will = ogm_protocol::Status {
        timestamp: now_us(),
        rssi: -60,
        free_heap: 1,
        online: Some(false),
        battery: None,
        dropped: None,
    };
    let mut dev = MqttProbe::connect_with_will(
        port,
        "beat",
        PW,
        &topic("beat", Kind::Status),
        will.to_json(),
    )
    .await
    .unwrap();
    // The device's own cadence (not a synchronisation): one measurement a second.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last = 0;
    for i in 0..4 {
        tick.tick().await;
        last = now_us();
        dev.publish(
            &topic("beat", Kind::Measurement),
            measurement(last, i),
            false,
        )
        .await
        .unwrap();
    }
    let limit = silence_limit_us(1_000_000);
    assert_eq!(
        limit, MIN_SILENCE_US,
        "3 s of a 1 Hz device, raised to the floor"
    );
    // Once all four are stored (the ingest may still be writing the last when the interval is
    // already learnt from the first ones).
    let learnt = |v: &serde_json::Value| {
        v["interval_ms"]
            .as_i64()
            .is_some_and(|ms| (900..=1100).contains(&ms))
            && v["last_measurement"]["timestamp"] == last
    };
    await_device(&stack, "beat", "learnt its interval from all four", learnt);
    let (v, silent_at) = await_device(&stack, "beat", "fell silent", |v| v["state"] == "silent");
    assert_eq!(v["online"], false, "{v}");
    let after = silent_at - last;
    assert!(
        (limit..15_000_000).contains(&after),
        "silent {after} µs after the last measurement; the rule says {limit} µs, not 30 s"
    );

    // A restart forgets what the ingest learnt; the store's recent measurements tell it again.
    stack.restart_server().unwrap();
    let (v, _) = await_device(&stack, "beat", "relearnt its interval", learnt);
    assert_eq!(v["state"], "silent", "{v}");

    // Back, then gone without a DISCONNECT: the broker publishes its last will.
    let t = now_us();
    dev.publish(&topic("beat", Kind::Measurement), measurement(t, 9), false)
        .await
        .unwrap();
    await_device(&stack, "beat", "came back", |v| {
        v["state"] == "online" && v["last_measurement"]["timestamp"] == t
    });
    dev.drop_connection();
    let (v, _) = await_device(&stack, "beat", "went offline", |v| v["state"] == "offline");
    assert_eq!(v["online"], false, "{v}");
    assert_eq!(
        v["last_measurement"]["timestamp"], t,
        "the will is older: {v}"
    );
}
