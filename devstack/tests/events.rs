//! The server's grid events through the real broker, with no page open: a dip seen by two
//! devices is one grid event with the right extreme, whatever order the readings arrive in
//! (shuffled, a minute late, redelivered), across a server crash (kill -9) in the middle of
//! the event, and after a restart; and a page opened afterwards lists it with the server's
//! figures.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use ogm_devstack::fixtures::{measurement, now_us, topic};
use ogm_devstack::page::{CONNECTED, shot};
use ogm_devstack::{Browser, MqttProbe, Stack, StackOptions, http_get, wait};
use ogm_protocol::Kind;
use ogm_protocol::http::{EventParams, EventsAnswer, GridEventView};

const PW: &str = "device-pw";
const S: i64 = 1_000_000;
/// 10 Hz.
const STEP: i64 = 100_000;

fn stack(devices: &[&str]) -> (tempfile::TempDir, Stack) {
    let dir = tempfile::tempdir().unwrap();
    let options = StackOptions::with_devices(dir.path().to_path_buf(), devices, PW);
    (dir, Stack::up(options).unwrap())
}

/// 10 Hz readings over `secs` seconds from `base`: 50 Hz with a dip to −250 mHz from 20 s to
/// 30 s (ramped over 1 s, below the RoCoF limit).
fn readings(base: i64, secs: i64) -> Vec<(i64, f64)> {
    (0..secs * 10)
        .map(|i| {
            let s = i as f64 / 10.0;
            let depth = ((s - 20.0).min(30.0 - s)).clamp(0.0, 1.0);
            (
                base + i * STEP,
                50.0 + 0.001 * (i % 3) as f64 - 0.25 * depth,
            )
        })
        .collect()
}

async fn publish(probe: &mut MqttProbe, device: &str, readings: &[(i64, f64)]) {
    for (t, f) in readings {
        probe
            .publish(
                &topic(device, Kind::Measurement),
                measurement(*t, *f),
                false,
            )
            .await
            .unwrap();
    }
}

fn events(stack: &Stack, base: i64) -> EventsAnswer {
    let url = EventParams::url(None, base, now_us() + 60 * S, 100);
    let res = http_get(&format!("{}{url}", stack.http_url())).unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    EventsAnswer::from_json(&res.body).unwrap()
}

/// Waits until the server lists exactly one closed event seen by `devices`, and returns it.
fn one_closed_event(stack: &Stack, base: i64, devices: usize) -> GridEventView {
    let found = wait::until(Duration::from_secs(60), || {
        let a = events(stack, base);
        (a.events.len() == 1
            && a.events[0].end_us.is_some()
            && a.events[0].devices.len() == devices)
            .then(|| a.events[0].clone())
    });
    found.unwrap_or_else(|| {
        panic!(
            "not one closed event of {devices} devices: {:?}",
            events(stack, base)
        )
    })
}

/// Waits until the grid watch holds no reading back (quiet for its hold time analyses all).
fn analysed(stack: &Stack) {
    let metric = |name| ogm_devstack::ingest_check::metric(&stack.http_url(), name);
    wait::until(Duration::from_secs(30), || {
        (metric("ogm_event_readings_pending")? == 0.0).then_some(())
    })
    .expect("the grid watch analyses what it holds");
}

fn assert_the_dip(e: &GridEventView, base: i64) {
    assert!((e.extreme_mhz + 250.0).abs() < 2.0, "{e:?}");
    // The dip passes −100 mHz 0.4 s into its ramp, and is back above it 0.4 s before its end.
    let start = (e.start_us - base) as f64 / 1e6;
    let end = (e.end_us.unwrap() - base) as f64 / 1e6;
    assert!((20.3..=20.6).contains(&start), "starts at {start} s: {e:?}");
    assert!((29.5..=29.9).contains(&end), "ends at {end} s: {e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_shuffled_and_redelivered_readings_give_one_event() {
    let devices = ["ev-a", "ev-b"];
    let (_dir, mut stack) = stack(&devices);
    let port = stack.broker.ports.mqtt;
    let base = now_us() - 300 * S;
    let all = readings(base, 60);
    let mut a = MqttProbe::connect(port, "ev-a", PW).await.unwrap();
    let mut b = MqttProbe::connect(port, "ev-b", PW).await.unwrap();
    // ev-a: a clean stream.
    publish(&mut a, "ev-a", &all).await;
    let first = one_closed_event(&stack, base, 1);
    assert_the_dip(&first, base);
    // ev-b: shuffled in fives, the dip's 20 s a minute late in reverse, then 10 s again.
    let (head, rest) = all.split_at(150);
    let (dip, tail) = rest.split_at(200);
    for chunk in head.chunks(5).chain(tail.chunks(5)) {
        let mut c = chunk.to_vec();
        c.reverse();
        publish(&mut b, "ev-b", &c).await;
    }
    // What came so far is analysed (and the dip not seen) before the late readings come.
    analysed(&stack);
    assert_eq!(one_closed_event(&stack, base, 1), first);
    let mut late = dip.to_vec();
    late.reverse();
    publish(&mut b, "ev-b", &late).await;
    analysed(&stack);
    publish(&mut b, "ev-b", &all[180..280]).await;
    let joined = one_closed_event(&stack, base, 2);
    assert_the_dip(&joined, base);
    let ids: Vec<&str> = joined
        .devices
        .iter()
        .map(|d| d.device_id.as_str())
        .collect();
    assert_eq!(ids, ["ev-a", "ev-b"]);
    // A crash and a restart analyse the last minutes again from the store: nothing changes.
    stack.crash_and_restart_server().unwrap();
    let after: Vec<(i64, f64)> = readings(base + 60 * S, 10);
    publish(&mut a, "ev-a", &after).await;
    publish(&mut b, "ev-b", &after).await;
    wait::until(Duration::from_secs(30), || {
        let m = ogm_devstack::ingest_check::metric(&stack.http_url(), "ogm_event_rewinds_total")?;
        (m >= 2.0).then_some(())
    })
    .expect("the restarted server rewinds both devices");
    assert_eq!(one_closed_event(&stack, base, 2), joined);
    println!("FIGURE one grid event: {joined:?}");
}

/// Publishes `device`'s readings into the dip (26 s) and waits until the server has saved the
/// event open; returns it.
async fn into_the_dip(
    stack: &Stack,
    probe: &mut MqttProbe,
    device: &str,
    all: &[(i64, f64)],
    base: i64,
) -> GridEventView {
    publish(probe, device, &all[..260]).await;
    wait::until(Duration::from_secs(30), || {
        let a = events(stack, base);
        (a.events.len() == 1 && a.events[0].end_us.is_none()).then(|| a.events[0].clone())
    })
    .unwrap_or_else(|| panic!("no open event: {:?}", events(stack, base)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_open_when_the_server_is_killed_is_recorded_once() {
    let (_dir, mut stack) = stack(&["ev-c"]);
    let port = stack.broker.ports.mqtt;
    let base = now_us() - 300 * S;
    let all = readings(base, 45);
    let mut c = MqttProbe::connect(port, "ev-c", PW).await.unwrap();
    let open = into_the_dip(&stack, &mut c, "ev-c", &all, base).await;
    stack.crash_and_restart_server().unwrap();
    publish(&mut c, "ev-c", &all[260..]).await;
    let closed = one_closed_event(&stack, base, 1);
    assert_the_dip(&closed, base);
    assert_eq!(closed.start_us, open.start_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_left_open_by_a_device_that_never_returns_is_closed_after_a_restart() {
    let (_dir, mut stack) = stack(&["ev-f"]);
    let port = stack.broker.ports.mqtt;
    let base = now_us() - 300 * S;
    let all = readings(base, 45);
    let mut c = MqttProbe::connect(port, "ev-f", PW).await.unwrap();
    // Then the board dies with the server, and never comes back.
    let open = into_the_dip(&stack, &mut c, "ev-f", &all, base).await;
    drop(c);
    stack.crash_and_restart_server().unwrap();
    let closed = wait::until(Duration::from_secs(30), || {
        let a = events(&stack, base);
        (a.events.len() == 1 && a.events[0].end_us.is_some()).then(|| a.events[0].clone())
    })
    .unwrap_or_else(|| panic!("the event stayed open: {:?}", events(&stack, base)));
    assert_eq!(closed.start_us, open.start_us);
    // 25.9 s: still in the dip.
    assert_eq!(
        closed.end_us,
        Some(all[259].0),
        "closed at its last reading inside, as a silent device's event is"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_opened_after_the_event_lists_it_with_the_servers_figures() {
    let (_dir, stack) = stack(&["ev-d", "ev-e"]);
    let port = stack.broker.ports.mqtt;
    let base = now_us() - 600 * S;
    let all = readings(base, 60);
    for d in ["ev-d", "ev-e"] {
        let mut p = MqttProbe::connect(port, d, PW).await.unwrap();
        publish(&mut p, d, &all).await;
    }
    let event = one_closed_event(&stack, base, 2);
    let browser = Browser::start(1400, 1000).await.unwrap();
    browser
        .goto(&format!(
            "{}/?view=insight&device=ev-d&range=1h",
            stack.http_url()
        ))
        .await
        .unwrap();
    let long = Duration::from_secs(30);
    ogm_devstack::page::wait(&browser, "the MQTT connection", CONNECTED, long).await;
    let row = format!("#events tbody tr[data-start=\"{}\"]", event.start_us);
    let expr = format!(
        "(() => {{ const r = document.querySelector('{row}'); return r && [r.dataset.devices, r.dataset.extremeMhz, r.dataset.deviceId]; }})()"
    );
    let got = ogm_devstack::page::wait(&browser, "the server's event", &expr, long).await;
    assert_eq!(
        got,
        serde_json::json!([
            "2",
            format!("{:.1}", event.extreme_mhz),
            event.device_id.as_str()
        ])
    );
    let rows = browser
        .js("document.querySelectorAll('#events tbody tr').length")
        .await
        .unwrap();
    assert_eq!(rows, 1, "one grid event, not one per device or per source");
    ogm_devstack::page::wait(
        &browser,
        "the event shaded on the range chart",
        "document.querySelector('#deviation-range-chart')?.dataset.marks === '1'",
        long,
    )
    .await;
    browser
        .run("document.querySelector('#deviation-range-chart')?.scrollIntoView({block: 'start'})")
        .await
        .unwrap();
    shot(&browser, "events-from-the-server").await;
    // The overview's live chart over the last 30 minutes marks it too, though the page was
    // not open when it happened.
    ogm_devstack::page::go(&browser, "?window=30m").await;
    ogm_devstack::page::wait(
        &browser,
        "the event shaded on the live chart",
        "document.querySelector('#live-chart')?.dataset.marks === '1'",
        long,
    )
    .await;
    // The device page marks it on the frequency chart too.
    ogm_devstack::page::go(&browser, "?view=device&device=ev-e&range=1h").await;
    ogm_devstack::page::wait(
        &browser,
        "the event shaded on ev-e's frequency chart",
        "document.querySelector('#chart-frequency')?.dataset.marks === '1'",
        long,
    )
    .await;
    browser.close().await.unwrap();
}
