//! Every view of the dashboard in real Chromium, with the simulator and with messages from an
//! outside client: overview, device page (history joined with live, zoom, CSV export), a long
//! history range, grid insight (figures checked against known input), logs and devices.
//!
//! Screenshots land in target/screenshots/ (`view-*.png`). Figures are printed; run with
//! `--nocapture` to see them.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::{Duration, Instant};

use ogm_devstack::page::{
    CONNECTED, attr, card, chart, count, go, log, measurement, now_us, select, shot, topic, wait,
};
use ogm_devstack::{Browser, MqttProbe, Stack, StackOptions, http_get};
use ogm_protocol::{Kind, LogLevel, Payload, Status};

/// Ten minutes at +10 mHz in its history; steps live.
const FLAT: &str = "outside-1";
/// Six hours of a wandering frequency in its history, silent since ten minutes.
const WAVY: &str = "outside-2";
const PW: &str = "outside-pw";
const S: i64 = 1_000_000;

/// Waits up to 30 s until the number of elements matching `selector` passes `test` (`">= 1"`).
async fn wait_count(browser: &Browser, what: &str, selector: &str, test: &str) {
    let expr = format!("{} {test}", count(selector));
    wait(browser, what, &expr, Duration::from_secs(30)).await;
}

/// An attribute holding a number, of the first element matching `selector`.
async fn attr_number(browser: &Browser, selector: &str, name: &str) -> f64 {
    let v = browser.js(&attr(selector, name)).await.unwrap();
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_with_the_simulator_and_an_outside_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StackOptions::for_test(dir.path().to_path_buf(), 3);
    options.rate_hz = 5.0;
    // The step below must be the only event: a random trip of the simulated grid at the same
    // time would be one grid event with it.
    options.sim_trips = false;
    options.extra_devices = vec![(FLAT.into(), PW.into()), (WAVY.into(), PW.into())];
    assert!(
        options.dist_dir.join("index.html").exists(),
        "build the dashboard first: trunk build --release"
    );
    let sim_ids = options.sim_device_ids();
    let stack = Stack::up(options).unwrap();
    let mqtt_port = stack.broker.ports.mqtt;
    let base = stack.http_url();
    let long = Duration::from_secs(30);

    // History written by outside clients before the page opens.
    let now = now_us();
    let mut flat = MqttProbe::connect(mqtt_port, FLAT, PW).await.unwrap();
    let t_flat = now - 600 * S;
    for i in 0..=600 {
        flat.publish(
            &topic(FLAT, Kind::Measurement),
            measurement(t_flat + i * S, 50.010),
            false,
        )
        .await
        .unwrap();
    }
    flat.publish(
        &topic(FLAT, Kind::Logs),
        log(now - 300 * S, LogLevel::Warn, "an older warning"),
        false,
    )
    .await
    .unwrap();
    let mut wavy = MqttProbe::connect(mqtt_port, WAVY, PW).await.unwrap();
    let t_wavy = now - 6 * 3_600 * S;
    for i in 0..=2_100i64 {
        let t = t_wavy + i * 10 * S;
        let x = i as f64 / 2_100.0 * std::f64::consts::TAU;
        let mut f = 50.0 + 0.045 * (3.0 * x).sin() + 0.02 * (11.0 * x).sin();
        if (1_200..1_215).contains(&i) {
            f -= 0.12; // a dip: an event in history
        }
        wavy.publish(&topic(WAVY, Kind::Measurement), measurement(t, f), false)
            .await
            .unwrap();
    }
    wavy.disconnect().await;
    // Wait until the server has stored them all.
    let deadline = Instant::now() + long;
    loop {
        let r = http_get(&format!(
            "{base}/api/history?device_id={FLAT}&start=-15m&max_points=10000"
        ))
        .unwrap();
        let n = r
            .json()
            .ok()
            .and_then(|v| v["points"].as_array().map(Vec::len))
            .unwrap_or(0);
        if n >= 601 {
            break;
        }
        assert!(Instant::now() < deadline, "history not stored: {n} points");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let browser = Browser::start(1400, 1000).await.unwrap();

    // 1. Overview.
    let t0 = Instant::now();
    browser.goto(&base).await.unwrap();
    wait(&browser, "the MQTT connection", CONNECTED, long).await;
    for id in &sim_ids {
        wait(
            &browser,
            &format!("{id}'s card"),
            &attr(&format!("{} .freq", card(id)), "data-frequency"),
            long,
        )
        .await;
    }
    println!(
        "FIGURE page load to the first live values of 3 devices: {:?}",
        t0.elapsed()
    );
    // The server's devices appear too, the silent one as stale.
    wait(
        &browser,
        "the silent device, stale",
        &attr(&card(WAVY), "data-stale"),
        long,
    )
    .await;
    assert_eq!(
        browser.js(&attr(&card(WAVY), "data-stale")).await.unwrap(),
        "true"
    );
    wait(
        &browser,
        "the live chart filled from history",
        "Number(document.querySelector('#live-chart')?.dataset.samples) > 100",
        long,
    )
    .await;
    wait(
        &browser,
        "the message rate of three devices at 5 Hz",
        "Number(document.querySelector('#diag-rate')?.dataset.rate) >= 10",
        long,
    )
    .await;
    shot(&browser, "view-overview").await;

    // 2. The device page: history joined with live, all four fields.
    let t0 = Instant::now();
    go(
        &browser,
        &format!("?view=device&device={}&range=5m", sim_ids[0]),
    )
    .await;
    for field in ["frequency", "voltage", "current", "power"] {
        wait(
            &browser,
            &format!("the {field} chart"),
            &format!(
                "(() => {{ const e = {}; return e && e.dataset.state === 'ready' && Number(e.dataset.samples) > 5; }})()",
                chart(field)
            ),
            long,
        )
        .await;
    }
    println!(
        "FIGURE device page (4 charts, 5 m) ready after {:?}",
        t0.elapsed()
    );
    let samples = format!("Number({}.dataset.samples)", chart("frequency"));
    let before = browser.js(&samples).await.unwrap().as_f64().unwrap();
    wait(
        &browser,
        "live points to continue the history",
        &format!("{samples} > {before}"),
        long,
    )
    .await;
    // The CSV export of the range on screen.
    let href = browser
        .js(&attr("#export-csv", "href"))
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        href.contains(&format!("device_id={}", sim_ids[0])),
        "{href}"
    );
    let csv = http_get(&format!("{base}{href}")).unwrap();
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(
        csv.body
            .starts_with("timestamp,frequency,voltage,current,power\n")
    );
    assert!(
        csv.body.lines().count() > 10,
        "{}",
        csv.body.lines().count()
    );
    shot(&browser, "view-device").await;

    // Zoom by dragging across the frequency chart: the URL gets the custom range, the charts
    // load it.
    browser
        .run(
            r#"const c = document.querySelector('#chart-frequency');
            const r = c.getBoundingClientRect();
            const ev = (type, x) => c.dispatchEvent(new PointerEvent(type, {
                bubbles: true, pointerId: 1, button: 0, buttons: 1, isPrimary: true,
                clientX: r.left + x, clientY: r.top + r.height / 2 }));
            ev('pointerdown', r.width * 0.8); ev('pointermove', r.width * 0.9); ev('pointerup', r.width - 1);"#,
        )
        .await
        .unwrap();
    wait(
        &browser,
        "the zoomed range in the URL",
        "location.search.includes('range=custom')",
        Duration::from_secs(5),
    )
    .await;
    let (start, stop) = {
        let q = browser.js("location.search").await.unwrap();
        let q = q.as_str().unwrap().to_owned();
        let get = |k: &str| -> i64 {
            q.split(['?', '&'])
                .find_map(|p| p.strip_prefix(&format!("{k}=")))
                .unwrap()
                .parse()
                .unwrap()
        };
        (get("start"), get("stop"))
    };
    let span_s = (stop - start) as f64 / 1e6;
    assert!(
        (40.0..=80.0).contains(&span_s),
        "zoomed to {span_s} s of 300"
    );
    wait(
        &browser,
        "the zoomed charts",
        &format!(
            "(() => {{ const e = {}; return e.dataset.state === 'ready' && e.dataset.start === '{start}' && e.dataset.stop === '{stop}'; }})()",
            chart("frequency")
        ),
        long,
    )
    .await;
    assert!(
        browser
            .js(&attr("#export-csv", "href"))
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .ends_with(&format!("start={start}&stop={stop}")),
        "the export follows the zoom"
    );
    shot(&browser, "view-device-zoomed").await;
    // Back returns to the range before the zoom.
    browser.run("history.back()").await.unwrap();
    wait(
        &browser,
        "back to 5 m",
        "document.querySelector('#range-picker button[data-range=\"5m\"]')?.getAttribute('aria-pressed') === 'true'",
        Duration::from_secs(5),
    )
    .await;

    // 3. A long range: six hours of history as a min/max envelope.
    let t0 = Instant::now();
    go(&browser, &format!("?view=device&device={WAVY}&range=6h")).await;
    let points = wait(
        &browser,
        "six hours of history",
        &format!(
            "(() => {{ const e = {}; return e && e.dataset.state === 'ready' && e.dataset.points; }})()",
            chart("frequency")
        ),
        long,
    )
    .await;
    println!(
        "FIGURE 6 h chart filled after {:?} ({points} buckets)",
        t0.elapsed()
    );
    let max_points: f64 = browser
        .js("document.querySelector('#chart-frequency').clientWidth")
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    let points: f64 = points.as_str().unwrap().parse().unwrap();
    assert!(
        points <= max_points && points > 100.0,
        "{points} buckets for {max_points} px"
    );
    shot(&browser, "view-history").await;

    // 4. Grid insight, against known input: ten minutes at +10 mHz is +0.120 s of grid time.
    go(&browser, &format!("?view=insight&device={FLAT}&range=1h")).await;
    let grid_time = wait(
        &browser,
        "the grid time deviation",
        &attr("#fig-grid-time", "data-seconds"),
        long,
    )
    .await;
    assert_eq!(grid_time, "0.120", "grid time of 10 min at +10 mHz");
    assert_eq!(
        browser
            .js(&attr(
                "#bands li[data-band=\"load-shedding\"]",
                "data-low-hz"
            ))
            .await
            .unwrap(),
        "49.000"
    );
    assert_eq!(
        browser
            .js(&attr("#bands li[data-band=\"deadband\"]", "data-high-hz"))
            .await
            .unwrap(),
        "50.020"
    );
    let quality = browser
        .js(&attr("#fig-quality", "data-std-mhz"))
        .await
        .unwrap();
    assert_eq!(quality, "0.00", "a constant offset has no spread");
    wait(
        &browser,
        "agreement between the simulated devices",
        "Number(document.querySelector('#fig-spread')?.dataset.devices) >= 3",
        long,
    )
    .await;
    let spread = attr_number(&browser, "#fig-spread", "data-mhz").await;
    println!("FIGURE spread between the live devices: {spread} mHz");
    assert!(
        spread < 100.0,
        "devices on one grid (the outside one, 10 mHz off, may count too): {spread} mHz"
    );

    // A step of −150 mHz, live from the outside client at 10 Hz: exactly one event, its
    // extreme −150 mHz.
    for f in [50.0; 20].into_iter().chain([49.85; 20]).chain([50.0; 25]) {
        flat.publish(
            &topic(FLAT, Kind::Measurement),
            measurement(now_us(), f),
            false,
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await; // pacing the stream: 10 Hz
    }
    let sel = format!("#events tbody tr[data-device-id=\"{FLAT}\"][data-source=\"live\"]");
    wait(
        &browser,
        "the step's event, closed",
        &format!(
            "(() => {{ const r = document.querySelectorAll('{sel}'); return r.length === 1 && r[0].dataset.ongoing === 'false'; }})()"
        ),
        long,
    )
    .await;
    assert_eq!(
        browser.js(&attr(&sel, "data-extreme-mhz")).await.unwrap(),
        "-150.0"
    );
    assert_eq!(
        browser.js(&attr(&sel, "data-kind")).await.unwrap(),
        "frequency"
    );
    let duration = attr_number(&browser, &sel, "data-duration-s").await;
    assert!(
        (1.8..=3.0).contains(&duration),
        "a 2 s step lasted {duration} s"
    );
    // The histogram of the range shows the +10 mHz offset.
    let bin = attr_number(
        &browser,
        "#histogram .bin[data-bin-mhz=\"10\"]",
        "data-share",
    )
    .await;
    assert!(bin > 0.8, "most readings at +10 mHz: {bin}");
    // Two devices that see a dip together (−150 and −200 mHz, half a second apart) make one
    // grid event, its extreme the deeper one. 12 s of normal readings first keep it apart from
    // the step above.
    let mut wavy = MqttProbe::connect(mqtt_port, WAVY, PW).await.unwrap();
    for k in 0..160 {
        let t = now_us();
        let (f_flat, f_wavy) = match k {
            120..125 => (50.0, 49.8),
            125..140 => (49.85, 49.8),
            _ => (50.0, 50.0),
        };
        for (probe, id, f) in [(&mut flat, FLAT, f_flat), (&mut wavy, WAVY, f_wavy)] {
            probe
                .publish(&topic(id, Kind::Measurement), measurement(t, f), false)
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // pacing the stream: 10 Hz
    }
    wavy.disconnect().await;
    let joint = "#events tbody tr[data-source=\"live\"][data-devices=\"2\"]";
    wait(
        &browser,
        "the dip of two devices, one grid event, closed",
        &format!(
            "(() => {{ const r = document.querySelectorAll('{joint}'); return r.length === 1 && r[0].dataset.ongoing === 'false'; }})()"
        ),
        long,
    )
    .await;
    assert_eq!(
        browser.js(&attr(joint, "data-device-id")).await.unwrap(),
        WAVY
    );
    assert_eq!(
        browser.js(&attr(joint, "data-extreme-mhz")).await.unwrap(),
        "-200.0"
    );
    let duration = attr_number(&browser, joint, "data-duration-s").await;
    assert!(
        (1.8..=3.0).contains(&duration),
        "a 2 s dip lasted {duration} s"
    );
    assert_eq!(
        browser
            .js("document.querySelectorAll('#events tbody tr[data-source=\"live\"]').length")
            .await
            .unwrap(),
        2,
        "the step and the joint dip, nothing else"
    );
    shot(&browser, "view-insight").await;
    browser
        .run("document.querySelector('#events').scrollIntoView({ block: 'end' })")
        .await
        .unwrap();
    shot(&browser, "view-insight-events").await;

    // The bands follow the nominal frequency.
    go(
        &browser,
        &format!("?view=insight&device={FLAT}&range=1h&nominal=60"),
    )
    .await;
    wait(
        &browser,
        "the 60 Hz bands",
        &format!(
            "{} === '59.000'",
            attr("#bands li[data-band=\"load-shedding\"]", "data-low-hz")
        ),
        Duration::from_secs(5),
    )
    .await;
    // ... and the synchronous area, chosen as a user would: Great Britain's statutory limits
    // (±500 mHz) and demand disconnection from 48.8 Hz, the choice kept in the URL.
    go(&browser, &format!("?view=insight&device={FLAT}&range=1h")).await;
    select(&browser, "area-select", "gb").await;
    wait(
        &browser,
        "Great Britain's bands",
        &format!(
            "{} === '49.500' && {} === '48.800' && location.search.includes('area=gb')",
            attr("#bands li[data-band=\"limits\"]", "data-low-hz"),
            attr("#bands li[data-band=\"load-shedding\"]", "data-low-hz")
        ),
        Duration::from_secs(5),
    )
    .await;
    browser.run("window.scrollTo(0, 0)").await.unwrap();
    shot(&browser, "view-insight-gb").await;
    // History events of the six-hour device (its dip).
    go(&browser, &format!("?view=insight&device={WAVY}&range=6h")).await;
    wait_count(
        &browser,
        "the dip in the history",
        &format!("#events tbody tr[data-device-id=\"{WAVY}\"][data-source=\"history\"]"),
        ">= 1",
    )
    .await;
    shot(&browser, "view-insight-history").await;

    // 5. Logs: older entries from /api/logs, new ones live, filters.
    go(&browser, "?view=logs").await;
    wait_count(
        &browser,
        "the older warning from the server",
        &format!("#log-list li[data-device-id=\"{FLAT}\"][data-origin=\"history\"]"),
        ">= 1",
    )
    .await;
    flat.publish(
        &topic(FLAT, Kind::Logs),
        log(now_us(), LogLevel::Error, "a live error"),
        false,
    )
    .await
    .unwrap();
    wait_count(
        &browser,
        "the live error",
        &format!(
            "#log-list li[data-device-id=\"{FLAT}\"][data-origin=\"live\"][data-level=\"ERROR\"]"
        ),
        "=== 1",
    )
    .await;
    shot(&browser, "view-logs").await;
    select(&browser, "log-level", "ERROR").await;
    wait(
        &browser,
        "only errors",
        "location.search.includes('level=ERROR') && [...document.querySelectorAll('#log-list li')].every(l => l.dataset.level === 'ERROR') && document.querySelectorAll('#log-list li').length >= 1",
        Duration::from_secs(5),
    )
    .await;

    // 6. Devices: online, silent, and offline by last will.
    go(&browser, "?view=devices").await;
    wait_count(
        &browser,
        "the simulated devices online",
        "#devices td.online[data-state=\"online\"]",
        "=== 3",
    )
    .await;
    assert_eq!(
        browser
            .js(&attr(
                &format!("#devices tr[data-device-id=\"{WAVY}\"] td.online"),
                "data-state"
            ))
            .await
            .unwrap(),
        "silent"
    );
    flat.publish(
        &topic(FLAT, Kind::Status),
        Payload::Status(Status {
            timestamp: now_us(),
            rssi: -71,
            free_heap: 123_456,
            online: Some(false),
            battery: None,
            dropped: None,
        })
        .to_json(),
        false,
    )
    .await
    .unwrap();
    wait(
        &browser,
        "the last will",
        &format!(
            "{} === 'offline'",
            attr(
                &format!("#devices tr[data-device-id=\"{FLAT}\"] td.online"),
                "data-state"
            )
        ),
        long,
    )
    .await;
    let rssi = browser
        .js(&format!(
            "document.querySelector('#devices tr[data-device-id=\"{FLAT}\"] td.rssi').textContent"
        ))
        .await
        .unwrap();
    assert_eq!(rssi, "-71 dBm");
    shot(&browser, "view-devices").await;

    // Navigation links carry the route: from the devices table to a device page.
    browser
        .run(&format!(
            "document.querySelector('#devices tr[data-device-id=\"{}\"] td.device a').click()",
            sim_ids[1]
        ))
        .await
        .unwrap();
    wait(
        &browser,
        "the device page by link",
        &format!(
            "location.search.includes('view=device') && location.search.includes('device={}') && document.querySelector('#device-page')?.dataset.deviceId === '{}'",
            sim_ids[1], sim_ids[1]
        ),
        Duration::from_secs(5),
    )
    .await;

    flat.disconnect().await;
    browser.close().await.unwrap();
}
