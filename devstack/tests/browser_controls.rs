//! The dashboard's controls in real Chromium, against a real Mosquitto and `ogm-server`: the
//! device page's custom range (inputs → URL → charts → CSV export), the logs' "Load older"
//! under level and device filters, the theme button (and the theme surviving a reload), the
//! kiosk watchdog of `index.html` (a frozen heartbeat reloads a kiosk, and only a kiosk), the
//! live charts of many devices (their crowd, and a stray on its own line), and a figure: page
//! load to a filled 24 h chart.
//!
//! History is published through the broker by outside device users, so the server stores it
//! the way it stores a board's messages. Screenshots land in target/screenshots/
//! (`controls-*.png`). Run with `--nocapture` to see the figure.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ogm_devstack::page::{
    CONNECTED, attr, card, chart, click, count, go, log, measurement, now_us, select, shot, topic,
    wait,
};
use ogm_devstack::{Browser, MqttProbe, Stack, StackOptions, http_get};
use ogm_protocol::{Kind, LogLevel};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::Value;

/// A day of history, one measurement every 10 s: the 24 h figure.
const DAY: &str = "ctl-day";
/// Three hours of history for the custom range, and a third of the log entries.
const RANGE: &str = "ctl-a";
/// Two thirds of the log entries.
const OTHER: &str = "ctl-b";
const PW: &str = "ctl-pw";
/// A device reading 400 mHz high among simulated ones.
const STRAY: &str = "ctl-stray";
const S: i64 = 1_000_000;
/// Log entries published before the page opens (the page fetches 200 at a time).
const LOG_ENTRIES: i64 = 1_200;
const DAY_MESSAGES: i64 = 8_640;

/// Log entry `i` (0 newest): every third of device [`RANGE`], the rest of [`OTHER`]; each
/// device gets every level in turn, so WARN and above are half of each device's entries.
fn log_entry(i: i64, newest_t: i64) -> (String, Vec<u8>) {
    let device = if i % 3 == 0 { RANGE } else { OTHER };
    let level = [
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Debug,
        LogLevel::Error,
    ][((i / 3) % 4) as usize];
    let payload = log(newest_t - i * 10 * S, level, &format!("entry {i}"));
    (topic(device, Kind::Logs), payload)
}

/// Publishes every message at QoS 1 on one connection with up to 100 in flight (not one round
/// trip each), and returns once the broker has acknowledged all of them.
async fn publish_all(
    port: u16,
    user: &str,
    password: &str,
    messages: Vec<(String, Vec<u8>)>,
) -> anyhow::Result<()> {
    let mut o = MqttOptions::new(ogm_devstack::client_id_for(user), "127.0.0.1", port);
    o.set_credentials(user, password)
        .set_inflight(100)
        .set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = AsyncClient::new(o, 1000);
    let total = messages.len();
    let sender = client.clone();
    let publisher = tokio::spawn(async move {
        for (topic, payload) in messages {
            sender
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await?;
        }
        Ok::<_, rumqttc::ClientError>(())
    });
    let mut acked = 0;
    while acked < total {
        let ev = tokio::time::timeout(Duration::from_secs(30), eventloop.poll())
            .await
            .with_context(|| format!("{user}: {acked} of {total} acknowledged"))??;
        match ev {
            Event::Incoming(Packet::PubAck(_)) => acked += 1,
            Event::Incoming(Packet::ConnAck(a)) if a.code != ConnectReturnCode::Success => {
                bail!("{user}: connection refused: {:?}", a.code)
            }
            _ => {}
        }
    }
    publisher.await??;
    client.disconnect().await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await {
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(_)) => {}
        }
    }
    Ok(())
}

/// Polls `what` (blocking HTTP, like the other black-box tests) until it returns true.
async fn until(what: &str, timeout: Duration, mut done: impl FnMut() -> anyhow::Result<bool>) {
    let deadline = Instant::now() + timeout;
    loop {
        let r = done();
        if matches!(r, Ok(true)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Measurements the server holds for `device` in `[now − span, now]`.
fn stored_measurements(base: &str, device: &str, span: &str) -> anyhow::Result<u64> {
    let v = http_get(&format!(
        "{base}/api/history?device_id={device}&field=frequency&start=-{span}&max_points=10000"
    ))?
    .json()?;
    Ok(v["points"]
        .as_array()
        .context("no points")?
        .iter()
        .filter_map(|p| p["count"].as_u64())
        .sum())
}

/// `(device, t)` of the log entries of [`RANGE`] and [`OTHER`] the server answers for `query`
/// (newest first).
fn server_logs(base: &str, query: &str) -> Vec<(String, i64)> {
    let answer = http_get(&format!("{base}/api/logs?start=-30d&limit=10000{query}"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer["truncated"], false, "small entries fit one answer");
    answer["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["device_id"].as_str().unwrap().to_owned(),
                r["t"].as_i64().unwrap(),
            )
        })
        .filter(|(d, _)| d == RANGE || d == OTHER)
        .collect()
}

/// `(device, t, level)` of the outside devices' entries the logs view shows, top to bottom.
const SHOWN_LOGS: &str = "[...document.querySelectorAll('#log-list li')].filter(l => l.dataset.deviceId.startsWith('ctl-')).map(l => [l.dataset.deviceId, Number(l.dataset.t), l.dataset.level])";

async fn shown_logs(browser: &Browser) -> Vec<(String, i64, String)> {
    let v = browser.js(SHOWN_LOGS).await.unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap().to_owned(),
                e[1].as_i64().unwrap(),
                e[2].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Waits until every `(device, t)` of `want` is on the list.
async fn wait_for_logs(browser: &Browser, what: &str, want: &[(String, i64)]) {
    let keys: Vec<String> = want.iter().map(|(d, t)| format!("{d}@{t}")).collect();
    let expr = format!(
        "(() => {{ const have = new Set({SHOWN_LOGS}.map(e => e[0] + '@' + e[1])); return {}.every(k => have.has(k)); }})()",
        serde_json::to_string(&keys).unwrap()
    );
    wait(browser, what, &expr, Duration::from_secs(20)).await;
}

/// Waits until the list shows the server's 190 newest entries for `query` (of the outside
/// devices; the page fetches 200 at a time).
async fn wait_for_newest(browser: &Browser, base: &str, query: &str, what: &str) {
    let want: Vec<_> = server_logs(base, query).into_iter().take(190).collect();
    wait_for_logs(browser, what, &want).await;
}

/// What the logs view shows (of the outside devices) against what the server holds for the
/// same filter from the oldest entry shown on: equal when the list has no hole.
async fn logs_against_server(
    browser: &Browser,
    base: &str,
    filter: &str,
) -> (Vec<(String, i64)>, Vec<(String, i64)>) {
    let shown: Vec<(String, i64)> = shown_logs(browser)
        .await
        .into_iter()
        .map(|(d, t, _)| (d, t))
        .collect();
    let oldest = shown.iter().map(|e| e.1).min().unwrap();
    let server: Vec<(String, i64)> = server_logs(base, filter)
        .into_iter()
        .filter(|e| e.1 >= oldest)
        .collect();
    (shown, server)
}

/// Clicks "Load older" and waits until more of the outside devices' entries are shown;
/// returns how many are shown now.
async fn load_older(browser: &Browser, before: usize) -> usize {
    click(browser, "#log-older").await;
    let n = wait(
        browser,
        "older entries",
        &format!("{SHOWN_LOGS}.length > {before} && {SHOWN_LOGS}.length"),
        Duration::from_secs(20),
    )
    .await;
    n.as_u64().unwrap() as usize
}

/// Like [`Browser::wait_for`], for a page that reloads meanwhile: a script that fails because
/// its document went away counts as "not yet".
async fn wait_across_reload(browser: &Browser, what: &str, expr: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match browser.js(expr).await {
            Ok(Value::Bool(true)) => return,
            Ok(v) => v.to_string(),
            Err(e) => format!("error: {e}"),
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A query parameter of the page's URL.
async fn query_param(browser: &Browser, key: &str) -> Option<String> {
    browser
        .js(&format!(
            "new URLSearchParams(location.search).get('{key}')"
        ))
        .await
        .unwrap()
        .as_str()
        .map(str::to_owned)
}

/// `[data-theme of <html>, the theme button's theme, the URL's theme, the body's background]`.
const THEME_STATE: &str = "[document.documentElement.getAttribute('data-theme'), document.querySelector('#theme-toggle').dataset.theme, new URLSearchParams(location.search).get('theme'), getComputedStyle(document.body).backgroundColor]";

/// Clicks the theme button and waits until `<html>` has `theme`; returns [`THEME_STATE`].
async fn next_theme(browser: &Browser, theme: &str) -> Value {
    click(browser, "#theme-toggle").await;
    wait(
        browser,
        &format!("the {theme} theme"),
        &format!("document.documentElement.dataset.theme === '{theme}' && {THEME_STATE}"),
        Duration::from_secs(5),
    )
    .await
}

/// Stack with one simulated device (live cards) and the outside devices' history stored.
struct Fixture {
    stack: Stack,
    base: String,
    sim: String,
    /// The newest log entry's time.
    logs_newest: i64,
}

async fn fixture(dir: &std::path::Path) -> Fixture {
    let mut options = StackOptions::for_test(dir.to_path_buf(), 1);
    options.rate_hz = 2.0;
    options.extra_devices = [DAY, RANGE, OTHER]
        .into_iter()
        .map(|d| (d.to_owned(), PW.to_owned()))
        .collect();
    assert!(
        options.dist_dir.join("index.html").exists(),
        "build the dashboard first: trunk build --release"
    );
    let sim = options.sim_device_ids().remove(0);
    let stack = Stack::up(options).unwrap();
    let base = stack.http_url();
    let port = stack.broker.ports.mqtt;

    // Three hours of a slow wave every 10 s for the custom range, and the log entries (each
    // device's own user publishes its own).
    let now = now_us();
    let range: Vec<_> = (0..1_080i64)
        .map(|i| {
            let t = now - 3 * 3_600 * S + i * 10 * S;
            let x = (t / S) as f64 / 1_800.0 * std::f64::consts::TAU;
            (
                topic(RANGE, Kind::Measurement),
                measurement(t, 50.0 + 0.04 * x.sin()),
            )
        })
        .collect();
    let logs_newest = now - 3_600 * S;
    let (logs_a, logs_b): (Vec<_>, Vec<_>) = (0..LOG_ENTRIES)
        .map(|i| log_entry(i, logs_newest))
        .partition(|(t, _)| t.contains(&format!("/{RANGE}/")));
    let (a, b) = tokio::join!(
        publish_all(port, RANGE, PW, range.into_iter().chain(logs_a).collect()),
        publish_all(port, OTHER, PW, logs_b),
    );
    a.unwrap();
    b.unwrap();
    until(
        "the range device's history",
        Duration::from_secs(60),
        || Ok(stored_measurements(&base, RANGE, "4h")? >= 1_080),
    )
    .await;
    until("the log entries", Duration::from_secs(60), || {
        Ok(server_logs(&base, "").len() as i64 >= LOG_ENTRIES)
    })
    .await;
    Fixture {
        stack,
        base,
        sim,
        logs_newest,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_range_load_older_theme_watchdog_and_a_day_of_history() {
    let t_test = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let Fixture {
        stack,
        base,
        sim,
        logs_newest,
    } = fixture(dir.path()).await;
    let port = stack.broker.ports.mqtt;
    let long = Duration::from_secs(30);

    // A day of history, published in the background while the browser works on the rest.
    let day_start = now_us() - 24 * 3_600 * S;
    let day_last = day_start + (DAY_MESSAGES - 1) * 10 * S;
    let day: Vec<_> = (0..DAY_MESSAGES)
        .map(|i| {
            let t = day_start + i * 10 * S;
            let x = i as f64 / DAY_MESSAGES as f64 * std::f64::consts::TAU;
            (
                topic(DAY, Kind::Measurement),
                measurement(t, 50.0 + 0.05 * (2.0 * x).sin() + 0.015 * (29.0 * x).sin()),
            )
        })
        .collect();
    let t_publish = Instant::now();
    let day_publisher = tokio::spawn(async move {
        publish_all(port, DAY, PW, day).await?;
        Ok::<_, anyhow::Error>(t_publish.elapsed())
    });

    let browser = Browser::start(1400, 1000).await.unwrap();
    println!(
        "stack, history and browser ready after {:?}",
        t_test.elapsed()
    );

    // 1. The device page's custom range, typed into its inputs.
    let t0 = Instant::now();
    browser
        .goto(&format!("{base}/?view=device&device={RANGE}&range=1h"))
        .await
        .unwrap();
    wait(
        &browser,
        "the 1 h charts",
        &format!("{}?.dataset.state === 'ready'", chart("frequency")),
        long,
    )
    .await;
    assert_eq!(
        browser
            .js("!!document.querySelector('#custom-range')")
            .await
            .unwrap(),
        false,
        "the custom inputs are closed until asked for"
    );
    click(&browser, "#range-picker button[data-range=\"custom\"]").await;
    // The inputs open on the range on screen (the last hour), in local time.
    let prefilled = wait(
        &browser,
        "the custom inputs",
        "(() => { const a = document.querySelector('#range-start'), b = document.querySelector('#range-stop'); return a && b && a.value && b.value && [a.value, b.value, (new Date(b.value) - new Date(a.value)) / 60000]; })()",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        prefilled[2], 60.0,
        "prefilled with the last hour: {prefilled}"
    );
    // From 100 to 40 minutes ago, whole minutes of local time as a datetime-local input takes
    // them; what they mean in µs is what the page's own clock says.
    let typed = browser
        .run(
            r#"const pad = n => String(n).padStart(2, '0');
            const fmt = d => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
            const a = fmt(new Date(Date.now() - 100 * 60000)), b = fmt(new Date(Date.now() - 40 * 60000));
            const type = (id, v) => {
                const e = document.querySelector(id);
                e.focus();
                e.value = v;
                e.dispatchEvent(new Event('input', { bubbles: true }));
                e.dispatchEvent(new Event('change', { bubbles: true }));
            };
            type('#range-start', a);
            type('#range-stop', b);
            document.querySelector('#range-apply').click();
            return [a, b, String(new Date(a).getTime() * 1000), String(new Date(b).getTime() * 1000)];"#,
        )
        .await
        .unwrap();
    let (start, stop) = (
        typed[2].as_str().unwrap().to_owned(),
        typed[3].as_str().unwrap().to_owned(),
    );
    let (start_us, stop_us): (i64, i64) = (start.parse().unwrap(), stop.parse().unwrap());
    assert_eq!(stop_us - start_us, 3_600 * S);
    wait(
        &browser,
        "the custom range in the URL",
        &format!(
            "location.search === '?view=device&device={RANGE}&range=custom&start={start}&stop={stop}'"
        ),
        Duration::from_secs(5),
    )
    .await;
    // Every chart loads exactly that range: one raw point every 10 s.
    for field in ["frequency", "voltage", "current", "power"] {
        wait(
            &browser,
            &format!("the {field} chart over the custom range"),
            &format!(
                "(() => {{ const e = {}; return e && e.dataset.state === 'ready' && e.dataset.start === '{start}' && e.dataset.stop === '{stop}' && Number(e.dataset.samples) > 0; }})()",
                chart(field)
            ),
            long,
        )
        .await;
        let facts = browser
            .js(&format!(
                "(e => [e.dataset.points, e.dataset.intervalUs, e.dataset.samples, e.dataset.newest, e.dataset.maxGapMs])({})",
                chart(field)
            ))
            .await
            .unwrap();
        let n = |i: usize| facts[i].as_str().unwrap().parse::<i64>().unwrap();
        assert_eq!(n(1), 0, "{field}: raw points, {facts}");
        assert!((359..=361).contains(&n(0)), "{field}: 360 points, {facts}");
        assert_eq!(n(2), n(0), "{field}: every point drawn, {facts}");
        assert!(
            (stop_us - 20 * S..stop_us).contains(&n(3)),
            "{field}: the newest point just before the stop, {facts}"
        );
        assert!(n(4) <= 10_000, "{field}: no hole, {facts}");
    }
    let picker = browser
        .js("[!!document.querySelector('#custom-range'), document.querySelector('#range-picker button[data-range=\"custom\"]').getAttribute('aria-pressed'), document.querySelector('#range-picker button[data-range=\"1h\"]').getAttribute('aria-pressed'), document.querySelector('#range-label')?.textContent]")
        .await
        .unwrap();
    let label = format!(
        "{}:00 – {}:00",
        typed[0].as_str().unwrap().replace('T', " "),
        typed[1].as_str().unwrap().replace('T', " ")
    );
    assert_eq!(
        picker,
        serde_json::json!([false, "true", "false", label]),
        "the inputs close; the picker says custom and shows the range"
    );
    // The export follows the range: exactly the measurements in it.
    let href = browser.js(&attr("#export-csv", "href")).await.unwrap();
    assert_eq!(
        href,
        format!("/api/export.csv?device_id={RANGE}&start={start}&stop={stop}")
    );
    let csv = http_get(&format!("{base}{}", href.as_str().unwrap())).unwrap();
    assert_eq!(csv.status, 200, "{}", csv.body);
    let rows: Vec<i64> = csv
        .body
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!((359..=361).contains(&rows.len()), "{} rows", rows.len());
    assert!(
        rows.iter().all(|t| (start_us..stop_us).contains(t)),
        "every exported row in the range"
    );
    println!("custom range checked after {:?}", t0.elapsed());
    shot(&browser, "controls-custom-range").await;
    // Back leaves the custom range for the hour before it.
    browser.run("history.back()").await.unwrap();
    wait(
        &browser,
        "back to the last hour",
        &format!(
            "location.search === '?view=device&device={RANGE}&range=1h' && {}.dataset.stop !== '{stop}'",
            chart("frequency")
        ),
        Duration::from_secs(5),
    )
    .await;

    // 2. Logs: 1 200 older entries stored, 200 shown at first; "Load older" under filters.
    let t0 = Instant::now();
    browser.goto(&format!("{base}/?view=logs")).await.unwrap();
    let newest_200: Vec<_> = server_logs(&base, "")
        .into_iter()
        .filter(|e| e.1 <= logs_newest)
        .take(190)
        .collect();
    wait_for_logs(&browser, "the newest entries", &newest_200).await;
    let first = shown_logs(&browser).await;
    assert!(
        (190..=200).contains(&first.len()),
        "200 entries at first (some may be the simulator's): {}",
        first.len()
    );
    let oldest_first = first.iter().map(|e| e.1).min().unwrap();
    let n = load_older(&browser, first.len()).await;
    let older = shown_logs(&browser).await;
    let oldest_older = older.iter().map(|e| e.1).min().unwrap();
    assert!(n >= first.len() + 190, "{} then {n}", first.len());
    // A page of 200 further back; its limit may fall between entries of one microsecond, so
    // the page's oldest time is asked again with the next page and shown only then.
    assert_eq!(
        oldest_first - oldest_older,
        199 * 10 * S,
        "a page further back"
    );
    let (shown, server) = logs_against_server(&browser, &base, "").await;
    assert_eq!(shown, server, "no hole after Load older");
    // The bottom of the list, where the older entries arrived.
    browser
        .run("document.querySelector('#log-list li:last-child').scrollIntoView({ block: 'end' })")
        .await
        .unwrap();
    shot(&browser, "controls-logs-older").await;
    browser.run("window.scrollTo(0, 0)").await.unwrap();

    // The level filter: only WARN and above, and "Load older" keeps to it.
    select(&browser, "log-level", "WARN").await;
    wait_for_newest(&browser, &base, "&level=WARN", "the newest warnings").await;
    assert_eq!(
        query_param(&browser, "level").await.as_deref(),
        Some("WARN")
    );
    let warn = shown_logs(&browser).await;
    assert!(
        warn.iter().all(|e| e.2 == "WARN" || e.2 == "ERROR"),
        "only WARN and ERROR"
    );
    let oldest_warn = warn.iter().map(|e| e.1).min().unwrap();
    load_older(&browser, warn.len()).await;
    let warn_older = shown_logs(&browser).await;
    assert!(warn_older.len() >= warn.len() + 100, "{}", warn_older.len());
    assert!(
        warn_older.iter().all(|e| e.2 == "WARN" || e.2 == "ERROR"),
        "older entries filtered too"
    );
    assert!(warn_older.iter().map(|e| e.1).min().unwrap() < oldest_warn);
    let (shown, server) = logs_against_server(&browser, &base, "&level=WARN").await;
    assert_eq!(shown, server, "no hole in the warnings");

    // The device filter on top: only that device's warnings, and older ones of it.
    select(&browser, "log-device", OTHER).await;
    let device_warnings = format!("&level=WARN&device_id={OTHER}");
    wait_for_newest(
        &browser,
        &base,
        &device_warnings,
        "the device's newest warnings",
    )
    .await;
    assert_eq!(
        query_param(&browser, "device").await.as_deref(),
        Some(OTHER)
    );
    assert_eq!(
        query_param(&browser, "level").await.as_deref(),
        Some("WARN")
    );
    let dev = shown_logs(&browser).await;
    assert!(
        !dev.is_empty()
            && dev
                .iter()
                .all(|e| e.0 == OTHER && (e.2 == "WARN" || e.2 == "ERROR")),
        "only {OTHER}'s warnings"
    );
    let sim_rows = browser
        .js(&count(&format!("#log-list li[data-device-id=\"{sim}\"]")))
        .await
        .unwrap();
    assert_eq!(sim_rows, 0, "no other device's entries");
    let oldest_dev = dev.iter().map(|e| e.1).min().unwrap();
    load_older(&browser, dev.len()).await;
    let dev_older = shown_logs(&browser).await;
    assert!(
        dev_older
            .iter()
            .all(|e| e.0 == OTHER && (e.2 == "WARN" || e.2 == "ERROR")),
        "older entries of that device only"
    );
    assert!(dev_older.iter().map(|e| e.1).min().unwrap() < oldest_dev);
    let (shown, server) = logs_against_server(&browser, &base, &device_warnings).await;
    assert_eq!(shown, server, "no hole in the device's warnings");
    println!("logs checked after {:?}", t0.elapsed());

    // 3. The theme button: system → dark → light, in the URL and on <html>; a reload keeps it.
    browser
        .goto(&format!("{base}/?view=overview"))
        .await
        .unwrap();
    wait(&browser, "the link", CONNECTED, long).await;
    let system = browser.js(THEME_STATE).await.unwrap();
    assert_eq!(system[0], Value::Null, "no theme chosen: {system}");
    assert_eq!(system[1], "system");
    assert_eq!(system[2], Value::Null);
    let dark = next_theme(&browser, "dark").await;
    assert_eq!(
        dark,
        serde_json::json!(["dark", "dark", "dark", "rgb(15, 20, 25)"])
    );
    let light = next_theme(&browser, "light").await;
    assert_eq!(
        light.as_array().unwrap()[..3],
        ["light", "light", "light"],
        "{light}"
    );
    assert_ne!(light[3], dark[3], "the light theme has its own background");
    assert_eq!(
        browser.js("location.search").await.unwrap(),
        "?theme=light",
        "the theme is the only thing in the URL"
    );
    browser
        .run("window.__before_reload = 1; location.reload();")
        .await
        .unwrap();
    wait_across_reload(
        &browser,
        "the reloaded page",
        &format!(
            "window.__before_reload === undefined && document.documentElement.dataset.theme === 'light' && document.querySelector('#theme-toggle')?.dataset.theme === 'light' && getComputedStyle(document.body).backgroundColor === {}",
            serde_json::to_string(&light[3]).unwrap()
        ),
        long,
    )
    .await;
    click(&browser, "#theme-toggle").await;
    wait(
        &browser,
        "back to the system theme",
        "!document.documentElement.hasAttribute('data-theme') && document.querySelector('#theme-toggle').dataset.theme === 'system' && location.search === ''",
        Duration::from_secs(5),
    )
    .await;

    // 4. The kiosk watchdog: with the heartbeat frozen and the clock a minute ahead, a page
    //    without `kiosk` stays for more than one watchdog period (10 s)…
    let live_card = format!(
        "document.querySelector('{0}')?.dataset.stale === 'false' && !!document.querySelector('{0} .freq')?.dataset.frequency",
        card(&sim)
    );
    // The heartbeat reads as the value it had; the app's writes only count.
    let freeze = r#"window.__marker = 1;
        window.__beats = 0;
        const frozen = window.__ogm_alive;
        Object.defineProperty(window, '__ogm_alive', {
            get: () => frozen, set: () => { window.__beats += 1; }, configurable: true });
        const realNow = Date.now.bind(Date);
        Date.now = () => realNow() + 61000;"#;
    wait(&browser, "a live card", &live_card, long).await;
    wait(&browser, "a heartbeat", "window.__ogm_alive > 0", long).await;
    let t0 = Instant::now();
    browser.run(freeze).await.unwrap();
    wait(
        &browser,
        "11 heartbeats of the page",
        "window.__marker === 1 && window.__beats >= 11",
        long,
    )
    .await;
    assert_eq!(
        browser
            .js("[window.__marker, performance.getEntriesByType('navigation')[0].type]")
            .await
            .unwrap(),
        serde_json::json!([1, "reload"]),
        "no watchdog reload without kiosk (the last reload was the theme check's)"
    );
    println!("no reload without kiosk over {:?}", t0.elapsed());
    //    … and a kiosk reloads itself within one period and is live again.
    browser.goto(&format!("{base}/?kiosk")).await.unwrap();
    wait(&browser, "a live kiosk card", &live_card, long).await;
    wait(&browser, "a heartbeat", "window.__ogm_alive > 0", long).await;
    assert_eq!(
        browser
            .js("performance.getEntriesByType('navigation')[0].type")
            .await
            .unwrap(),
        "navigate"
    );
    let t0 = Instant::now();
    browser.run(freeze).await.unwrap();
    wait_across_reload(
        &browser,
        "the watchdog's reload",
        "window.__marker === undefined && performance.getEntriesByType('navigation')[0]?.type === 'reload'",
        Duration::from_secs(25),
    )
    .await;
    println!("kiosk reloaded by its watchdog after {:?}", t0.elapsed());
    wait(
        &browser,
        "the reloaded kiosk live",
        &format!(
            "{live_card} && {CONNECTED} && document.documentElement.hasAttribute('data-kiosk') && window.__ogm_alive > Date.now() - 3000"
        ),
        long,
    )
    .await;

    // 5. The figure: page load to a filled 24 h chart, once the server holds the whole day.
    let publish_time = day_publisher.await.unwrap().unwrap();
    let t_wait = Instant::now();
    until("the day of history", Duration::from_secs(120), || {
        Ok(stored_measurements(&base, DAY, "25h")? >= DAY_MESSAGES as u64)
    })
    .await;
    println!(
        "{DAY_MESSAGES} measurements published at QoS 1 in {publish_time:?}; all stored {:?} after that",
        t_wait.elapsed()
    );
    let filled = format!(
        "(() => {{ const e = {}; if (!e || e.dataset.state !== 'ready') return false; const n = k => Number(e.dataset[k]); return n('samples') >= 0.95 * n('points') && n('points') * n('intervalUs') >= 0.97 * 86400e6 && n('newest') >= {} && performance.now(); }})()",
        chart("frequency"),
        day_last - 600 * S
    );
    let t0 = Instant::now();
    browser
        .goto(&format!("{base}/?view=device&device={DAY}&range=24h"))
        .await
        .unwrap();
    let in_page_ms = wait(&browser, "the filled 24 h chart", &filled, long).await;
    let wall = t0.elapsed();
    println!(
        "FIGURE page load → filled 24 h chart: {:.0} ms from navigation start (performance.now), {wall:?} from the WebDriver navigation",
        in_page_ms.as_f64().unwrap()
    );
    let facts = browser
        .js(&format!(
            "(e => ({{ start: Number(e.dataset.start), stop: Number(e.dataset.stop), points: Number(e.dataset.points), interval: Number(e.dataset.intervalUs), samples: Number(e.dataset.samples), newest: Number(e.dataset.newest), gap: Number(e.dataset.maxGapMs), width: document.querySelector('#chart-frequency').clientWidth }}))({})",
            chart("frequency")
        ))
        .await
        .unwrap();
    println!("24 h chart: {facts}");
    let f = |k: &str| facts[k].as_f64().unwrap();
    assert_eq!(f("stop") - f("start"), 86_400e6, "the range is 24 h");
    assert!(
        f("points") * f("interval") >= 0.97 * 86_400e6,
        "buckets cover the day: {facts}"
    );
    assert!(
        f("points") <= f("width"),
        "at most one bucket a pixel: {facts}"
    );
    assert!(f("samples") >= 0.95 * f("points"), "{facts}");
    assert!(
        f("gap") <= 2.0 * f("interval") / 1e3,
        "no hole in the day: {facts}"
    );
    assert!(f("newest") >= (day_last - 600 * S) as f64, "{facts}");
    shot(&browser, "controls-24h").await;

    browser.close().await.unwrap();
    println!("browser_controls took {:?}", t_test.elapsed());
}

/// Requests for `/api/logs` the page has made and finished.
const LOGS_FETCHES: &str = "performance.getEntriesByType('resource').filter(e => e.name.includes('/api/logs') && e.responseEnd > 0).length";

/// Clicks "Load older" and waits until its request is answered and the list has had a frame
/// to show the answer (it may show nothing new).
async fn load_older_answered(browser: &Browser) {
    let before = browser.js(LOGS_FETCHES).await.unwrap();
    click(browser, "#log-older").await;
    wait(
        browser,
        "the Load older answer",
        &format!("{LOGS_FETCHES} > {before}"),
        Duration::from_secs(20),
    )
    .await;
    browser.settle().await.unwrap();
}

/// The logs view stays a complete, newest-first slice of the server's logs: every click of
/// "Load older" reaches a page further back (past the 500 entries an earlier version stopped
/// showing at), and widening a filter never shows the narrower filter's older entries with
/// the wider filter's entries between them missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_older_keeps_the_logs_complete() {
    let dir = tempfile::tempdir().unwrap();
    let Fixture { stack, base, .. } = fixture(dir.path()).await;
    let browser = Browser::start(1400, 1000).await.unwrap();
    let mut problems = Vec::new();

    // a. Every click reaches a page further back: 200, 400, 600, 800 entries. (A page's
    //    oldest time is asked again with the next page, in case the page's limit fell between
    //    entries of the same microsecond: so a click moves back 199 entries of 10 s.)
    browser.goto(&format!("{base}/?view=logs")).await.unwrap();
    wait_for_newest(&browser, &base, "", "the newest entries").await;
    let mut oldest = shown_logs(&browser)
        .await
        .iter()
        .map(|e| e.1)
        .min()
        .unwrap();
    for click in 1..=3 {
        load_older_answered(&browser).await;
        let shown = shown_logs(&browser).await;
        let now_oldest = shown.iter().map(|e| e.1).min().unwrap();
        println!(
            "click {click}: {} shown, oldest {} s further back",
            shown.len(),
            (oldest - now_oldest) / S
        );
        if now_oldest > oldest - 199 * 10 * S {
            problems.push(format!(
                "Load older click {click}: the oldest entry shown moved back {} s, not 1990 s ({} entries shown)",
                (oldest - now_oldest) / S,
                shown.len()
            ));
        }
        oldest = now_oldest;
    }
    let (shown, server) = logs_against_server(&browser, &base, "").await;
    if shown != server {
        problems.push(format!(
            "after three clicks {} entries are shown, the server has {} in the same span",
            shown.len(),
            server.len()
        ));
    }

    // b. A narrow filter first (ERROR, reaching far back), then all levels: the list must not
    //    show the old errors without the entries between them.
    browser
        .goto(&format!("{base}/?view=logs&level=ERROR"))
        .await
        .unwrap();
    wait_for_newest(&browser, &base, "&level=ERROR", "the newest errors").await;
    select(&browser, "log-level", "").await;
    wait_for_newest(&browser, &base, "", "the newest entries of every level").await;
    let (shown, server) = logs_against_server(&browser, &base, "").await;
    println!(
        "all levels after ERROR: {} shown, the server has {} in the same span",
        shown.len(),
        server.len()
    );
    if shown != server {
        let missing = server.iter().filter(|e| !shown.contains(e)).count();
        problems.push(format!(
            "after widening the level filter from ERROR to all, {} entries are shown down to the oldest error, but {missing} of the server's entries in that span are missing",
            shown.len()
        ));
    }
    browser.close().await.unwrap();
    drop(stack);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_devices_draw_as_a_crowd_with_the_stray_on_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StackOptions::for_test(dir.path().to_path_buf(), 14);
    options.rate_hz = 2.0;
    options.extra_devices = vec![(STRAY.to_owned(), PW.to_owned())];
    let stack = Stack::up(options).unwrap();
    let base = stack.http_url();
    let mut probe = MqttProbe::connect(stack.broker.ports.mqtt, STRAY, PW)
        .await
        .unwrap();
    // The stray reads 50.4 Hz twice a second while the test runs, far from the simulated
    // grid (50 Hz and tens of mHz).
    let publisher = tokio::spawn(async move {
        loop {
            let sent = probe
                .publish(
                    &topic(STRAY, Kind::Measurement),
                    measurement(now_us(), 50.4),
                    false,
                )
                .await;
            sent.expect("the stray's publish");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let browser = Browser::start(1400, 1300).await.unwrap();
    let long = Duration::from_secs(30);
    let legend_is = |id: &str| {
        format!(
            "(() => {{ const l = document.querySelector('#{id}'); return l?.dataset.crowd === '15' && l.dataset.strays === '{STRAY}' && l.textContent.includes('median of 15 devices'); }})()"
        )
    };

    browser.goto(&base).await.unwrap();
    wait(&browser, "the MQTT connection", CONNECTED, long).await;
    wait(
        &browser,
        "15 cards",
        &format!("{} === 15", count(".device-card")),
        long,
    )
    .await;
    wait(
        &browser,
        "the overview's legend: the crowd of 15 and the stray",
        &legend_is("chart-legend"),
        long,
    )
    .await;
    // One legend entry per device shown on its own: the stray only.
    assert_eq!(
        browser
            .js(&count("#chart-legend li[data-device-id]"))
            .await
            .unwrap(),
        1
    );
    // Twenty seconds of the 15 devices on the chart, for the screenshot.
    wait(
        &browser,
        "20 s of data on the live chart",
        "Number(document.querySelector('#live-chart')?.dataset.samples) > 600",
        Duration::from_secs(60),
    )
    .await;
    browser
        .run("document.querySelector('#live-chart').scrollIntoView({block: 'end'})")
        .await
        .unwrap();
    shot(&browser, "controls-crowd").await;

    go(&browser, "?view=insight").await;
    wait(
        &browser,
        "the insight legend: the crowd of 15 and the stray",
        &legend_is("deviation-legend"),
        long,
    )
    .await;
    browser
        .run("document.querySelector('#deviation-legend').scrollIntoView({block: 'end'})")
        .await
        .unwrap();
    shot(&browser, "controls-crowd-insight").await;
    publisher.abort();
}
