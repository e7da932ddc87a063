//! The live path in real Chromium: Mosquitto, ogm-server and ogm-sim on free ports, the built
//! dashboard (dist/) loaded from the server, MQTT over WebSocket straight to the broker.
//!
//! Screenshots land in target/screenshots/. Figures (publish-to-screen latency) are printed;
//! run with `--nocapture` to see them.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use ogm_devstack::page::{
    CONNECTED, NOT_CONNECTED, attr, card, measurement, now_us, shot, topic, wait, wait_reconnected,
};
use ogm_devstack::{Browser, MqttProbe, Stack, StackOptions, mosquitto_pub};
use ogm_protocol::{Kind, TOPIC_PREFIX};

const OUTSIDE: &str = "outside-1";
const OUTSIDE_PW: &str = "outside-pw";
/// A user whose name is no valid device id: what it publishes has an unknown topic.
const BAD_ID: &str = "bad.id";

/// `data-frequency` of a device's card, or null.
fn freq_expr(id: &str) -> String {
    attr(&format!("{} .freq", card(id)), "data-frequency")
}

/// Waits until `id`'s card shows another frequency than it shows now.
async fn frequency_changes(browser: &Browser, what: &str, id: &str, timeout: Duration) {
    let now = browser.js(&freq_expr(id)).await.unwrap();
    let changed = format!("{} !== {now}", freq_expr(id));
    wait(browser, what, &changed, timeout).await;
}

/// Publishes a measurement of `frequency` for the outside device and waits up to 30 s until
/// its card shows it.
async fn publish_and_show(browser: &Browser, probe: &mut MqttProbe, what: &str, frequency: f64) {
    probe
        .publish(
            &topic(OUTSIDE, Kind::Measurement),
            measurement(now_us(), frequency),
            false,
        )
        .await
        .unwrap();
    let shown = format!("{} === '{frequency}'", freq_expr(OUTSIDE));
    wait(browser, what, &shown, Duration::from_secs(30)).await;
}

fn counter_expr(reason: &str) -> String {
    format!(
        r#"(() => {{ const e = document.querySelector('#diagnostics [data-counter="{reason}"]'); return e ? Number(e.textContent) : 0; }})()"#
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_live_data_survives_bad_input_and_broker_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StackOptions::for_test(dir.path().to_path_buf(), 3);
    options.rate_hz = 5.0;
    options.extra_devices = vec![
        (OUTSIDE.into(), OUTSIDE_PW.into()),
        (BAD_ID.into(), OUTSIDE_PW.into()),
    ];
    assert!(
        options.dist_dir.join("index.html").exists(),
        "build the dashboard first: trunk build --release"
    );
    let sim_ids = options.sim_device_ids();
    let mut stack = Stack::up(options).unwrap();
    let mqtt_port = stack.broker.ports.mqtt;

    let browser = Browser::start(1400, 1000).await.unwrap();
    browser.goto(&stack.http_url()).await.unwrap();
    let long = Duration::from_secs(30);
    wait(&browser, "the MQTT connection", CONNECTED, long).await;

    // 1. Every simulated device appears, and its frequency changes.
    for id in &sim_ids {
        let first = wait(&browser, &format!("{id}'s frequency"), &freq_expr(id), long).await;
        let f: f64 = first.as_str().unwrap().parse().unwrap();
        assert!((49.0..51.0).contains(&f), "{id}: {f} Hz");
        let changed = format!("{} !== {first}", freq_expr(id));
        wait(
            &browser,
            &format!("{id}'s frequency to change"),
            &changed,
            long,
        )
        .await;
    }
    shot(&browser, "live-overview").await;

    // 2. An outside client (mosquitto_pub) publishes for a new device id: on screen within 2 s.
    let t0 = std::time::Instant::now();
    let (ok, err) = mosquitto_pub(
        mqtt_port,
        OUTSIDE,
        OUTSIDE_PW,
        &topic(OUTSIDE, Kind::Measurement),
        &measurement(now_us(), 49.987),
    )
    .unwrap();
    assert!(ok, "{err}");
    wait(
        &browser,
        "the outside device",
        &format!("{} === '49.987'", freq_expr(OUTSIDE)),
        Duration::from_secs(2),
    )
    .await;
    println!("outside device visible after {:?}", t0.elapsed());

    // 3. Publish-to-screen latency: the page records, in the animation frame after each change,
    //    the wall-clock time the new value reached the DOM.
    browser
        .run(&format!(
            r#"window.__seen = []; let last = null;
            new MutationObserver(() => {{
              const f = {};
              if (f !== last) {{ last = f; requestAnimationFrame(() => window.__seen.push([f, Date.now()])); }}
            }}).observe(document.body, {{ subtree: true, childList: true, characterData: true, attributes: true }});"#,
            freq_expr(OUTSIDE)
        ))
        .await
        .unwrap();
    let mut probe = MqttProbe::connect(mqtt_port, OUTSIDE, OUTSIDE_PW)
        .await
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..50 {
        let f = f64::from(49_900 + i) / 1000.0;
        let at_ms = now_us() as f64 / 1000.0;
        probe
            .publish(
                &topic(OUTSIDE, Kind::Measurement),
                measurement(now_us(), f),
                false,
            )
            .await
            .unwrap();
        sent.push((f.to_string(), at_ms)); // as the page writes data-frequency
        tokio::time::sleep(Duration::from_millis(100)).await; // pacing the stream, not synchronisation
    }
    wait(
        &browser,
        "the last latency sample",
        "window.__seen.some(s => s[0] === '49.949')",
        long,
    )
    .await;
    let seen = browser.js("window.__seen").await.unwrap();
    let seen: Vec<(String, f64)> = serde_json::from_value(seen).unwrap();
    let mut lat: Vec<f64> = sent
        .iter()
        .filter_map(|(f, at)| seen.iter().find(|(g, _)| g == f).map(|(_, t)| t - at))
        .collect();
    // The page renders the latest value once per animation frame, so a value that arrives in the
    // same frame as the next one is never on screen by itself.
    assert!(
        lat.len() >= 45,
        "most values must be seen individually: {} of 50",
        lat.len()
    );
    lat.sort_by(f64::total_cmp);
    println!(
        "FIGURE publish-to-screen latency over {} messages: median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );

    // 4. Bad input is ignored and counted; good input in the same stream still shows.
    let m_topic = topic(OUTSIDE, Kind::Measurement);
    let bad: Vec<(&str, String, Vec<u8>)> = vec![
        ("malformed_json", m_topic.clone(), b"{not json".to_vec()),
        (
            "wrong_schema",
            m_topic.clone(),
            br#"{"timestamp":1,"frequency":"fast","voltage":1,"current":1,"power":1}"#.to_vec(),
        ),
        (
            "out_of_range",
            m_topic.clone(),
            br#"{"timestamp":1703123456789123,"frequency":-3,"voltage":1,"current":1,"power":1}"#
                .to_vec(),
        ),
        (
            "too_large",
            topic(OUTSIDE, Kind::Logs),
            // Above the protocol's 16 KiB, within the broker's packet limit (policy.conf).
            format!(
                r#"{{"level":"INFO","module":"x","message":"{}"}}"#,
                "x".repeat(ogm_protocol::payload::MAX_PAYLOAD_BYTES)
            )
            .into_bytes(),
        ),
    ];
    for (_, t, payload) in &bad {
        probe.publish(t, payload.clone(), false).await.unwrap();
    }
    let mut bad_dev = MqttProbe::connect(mqtt_port, BAD_ID, OUTSIDE_PW)
        .await
        .unwrap();
    bad_dev
        .publish(
            &format!("{TOPIC_PREFIX}/{BAD_ID}/measurement"),
            measurement(now_us(), 50.0),
            false,
        )
        .await
        .unwrap();
    publish_and_show(&browser, &mut probe, "good data after bad", 50.123).await;
    for reason in [
        "malformed_json",
        "wrong_schema",
        "out_of_range",
        "too_large",
        "unknown_topic",
    ] {
        let n = wait(
            &browser,
            reason,
            &counter_expr(reason),
            Duration::from_secs(5),
        )
        .await;
        assert!(n.as_f64().unwrap() >= 1.0, "{reason}: {n}");
    }
    let ignored = browser
        .js("Number(document.querySelector('#diag-ignored')?.dataset.count)")
        .await
        .unwrap();
    assert!(ignored.as_f64().unwrap() >= 5.0, "total ignored: {ignored}");
    let not_there = browser
        .js(&format!(
            "document.querySelector('{}') === null",
            card(BAD_ID)
        ))
        .await
        .unwrap();
    assert_eq!(
        not_there,
        serde_json::Value::Bool(true),
        "an invalid device id must not get a card"
    );
    frequency_changes(&browser, "the simulator after bad input", &sim_ids[0], long).await;
    shot(&browser, "after-bad-input").await;
    probe.disconnect().await;
    bad_dev.disconnect().await;

    // 5. The broker dies: the page shows the outage, reconnects by itself, live values resume.
    stack.broker.kill();
    wait(&browser, "the outage to show", NOT_CONNECTED, long).await;
    let state_text = browser
        .js("document.querySelector('#conn-state').textContent")
        .await
        .unwrap();
    println!("during the outage #conn-state says {state_text}");
    shot(&browser, "broker-down").await;
    stack.broker.restart().unwrap();
    wait_reconnected(&browser).await;
    let mut probe = MqttProbe::connect(mqtt_port, OUTSIDE, OUTSIDE_PW)
        .await
        .unwrap();
    publish_and_show(
        &browser,
        &mut probe,
        "a value published after the restart (resubscribed)",
        49.876,
    )
    .await;
    frequency_changes(
        &browser,
        "the simulator to resume",
        &sim_ids[0],
        Duration::from_secs(60),
    )
    .await;
    shot(&browser, "after-broker-restart").await;
    browser.close().await.unwrap();
}
