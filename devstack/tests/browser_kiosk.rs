//! The kiosk in real Chromium: `?kiosk` with its options, dark and light, on a 1080p wall
//! screen, a 1280×720 screen (a kiosk TV) and a 375 px phone; and that it recovers by itself from a broker outage, from a lost
//! network link (the page's WebSocket cut while the devices keep publishing: the hole is
//! backfilled from history) and from a server outage (history fetches retry with backoff).
//!
//! Screenshots land in target/screenshots/ (`kiosk-*.png`, `phone-*.png`).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::{Duration, Instant};

use ogm_devstack::page::{
    CONNECTED, NOT_CONNECTED, chart, count, go, shot, wait, wait_reconnected,
};
use ogm_devstack::{Browser, Stack, StackOptions};

/// Every WebSocket the page opens goes through this wrapper, so the test can cut the page's
/// network link (and keep it cut) while the broker and the devices carry on.
const CUTTABLE_WEBSOCKET: &str = r#"
if (!window.__cut) {
  const Orig = window.WebSocket;
  window.__sockets = [];
  window.__cut = { on: false };
  const Wrapped = function (url, protocols) {
    const ws = new Orig(window.__cut.on ? 'ws://127.0.0.1:9/' : url, protocols);
    window.__sockets.push(ws);
    return ws;
  };
  Wrapped.prototype = Orig.prototype;
  Object.assign(Wrapped, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Wrapped;
}
"#;

/// Cuts the page's network link (through [`CUTTABLE_WEBSOCKET`]) or restores it.
async fn cut_network(browser: &Browser, cut: bool) {
    browser
        .run(&format!(
            "window.__cut.on = {cut}; if ({cut}) window.__sockets.forEach(s => s.close());"
        ))
        .await
        .unwrap();
}

/// Cuts the page's network link and waits until the page says so.
async fn cut_link(browser: &Browser) {
    cut_network(browser, true).await;
    wait(browser, "the cut", NOT_CONNECTED, Duration::from_secs(30)).await;
}

/// Restores the page's network link and waits for the reconnection.
async fn restore_link(browser: &Browser) {
    cut_network(browser, false).await;
    wait_reconnected(browser).await;
}

/// JavaScript: once `chart` (an expression for a chart element) shows live data again after a
/// hole, its longest gap in ms.
fn live_after_hole(chart: &str) -> String {
    format!(
        "(() => {{ const c = {chart}; return Number(c.dataset.newest) > (Date.now() - 500) * 1000 && Number(c.dataset.maxGapMs); }})()"
    )
}

fn all_cards(stale: bool) -> String {
    format!(
        "(() => {{ const c = [...document.querySelectorAll('.device-card')]; return c.length >= 2 && c.every(e => e.dataset.stale === '{stale}'); }})()"
    )
}

/// Waits up to 2 s (at once, to a person) until every card says stale.
async fn all_stale_at_once(browser: &Browser, what: &str) {
    wait(browser, what, &all_cards(true), Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiosk_recovers_by_itself_in_both_themes_on_every_screen() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StackOptions::for_test(dir.path().to_path_buf(), 2);
    options.rate_hz = 5.0;
    assert!(
        options.dist_dir.join("index.html").exists(),
        "build the dashboard first: trunk build --release"
    );
    let sim = options.sim_device_ids();
    let mut stack = Stack::up(options).unwrap();
    let base = stack.http_url();
    let long = Duration::from_secs(30);
    let browser = Browser::start(1920, 1080).await.unwrap();

    // 1. The kiosk bookmark: dark, no navigation, a ten-minute window, no input.
    browser
        .goto(&format!("{base}/?kiosk&theme=dark&window=10m"))
        .await
        .unwrap();
    wait(&browser, "the link", CONNECTED, long).await;
    wait(&browser, "live cards", &all_cards(false), long).await;
    let shell = browser
        .js("[document.documentElement.dataset.theme, document.documentElement.hasAttribute('data-kiosk'), !!document.querySelector('#nav'), !!document.querySelector('#theme-toggle'), !!document.querySelector('#diagnostics'), document.querySelector('#live-chart').dataset.windowS]")
        .await
        .unwrap();
    assert_eq!(
        shell,
        serde_json::json!(["dark", true, false, false, false, "600"])
    );
    let bg = browser
        .js("getComputedStyle(document.body).backgroundColor")
        .await
        .unwrap();
    assert_eq!(bg, "rgb(15, 20, 25)", "the dark theme");
    wait(
        &browser,
        "the chart",
        "Number(document.querySelector('#live-chart').dataset.samples) > 10",
        long,
    )
    .await;
    shot(&browser, "kiosk-dark").await;

    // 2. The page's own network link drops for a while; the devices keep publishing to the
    //    broker and the server stores it. Once back, the hole is backfilled from history.
    //    (From here on the page's sockets go through a wrapper the test can cut.)
    browser.run(CUTTABLE_WEBSOCKET).await.unwrap();
    stack.broker.kill();
    wait(&browser, "the outage", NOT_CONNECTED, long).await;
    stack.broker.restart().unwrap();
    wait_reconnected(&browser).await;
    // The broker outage itself may leave a real hole (nothing was stored either); the window is
    // ten minutes, so look at the overview's hole only from here on, on a fresh window (long
    // enough to still hold the cut below when the reconnection's backoff has grown).
    go(&browser, "?kiosk&theme=dark&window=40s").await;
    let gap_ok = "document.querySelector('#live-chart')?.dataset.windowS === '40' && Number(document.querySelector('#live-chart').dataset.samples) > 20 && Number(document.querySelector('#live-chart').dataset.maxGapMs) < 800";
    wait(
        &browser,
        "a gap-free chart before the cut",
        gap_ok,
        Duration::from_secs(60),
    )
    .await;
    let t_cut = Instant::now();
    cut_link(&browser).await;
    all_stale_at_once(&browser, "stale cards while the link is cut").await;
    tokio::time::sleep(Duration::from_secs(6)).await; // the length of the outage
    restore_link(&browser).await;
    let t0 = Instant::now();
    // Live data after the hole: the hole shows until the backfill closes it.
    let hole = wait(
        &browser,
        "live data after the hole",
        &live_after_hole("document.querySelector('#live-chart')"),
        long,
    )
    .await;
    // Usually the hole shows until the backfill closes it; on a busy machine the backfill can
    // land before the first live value, and then no hole ever shows. Either way the proof is
    // below: the cut's six seconds filled in (live data cannot: the page's session is clean).
    println!("the hole before the backfill: {hole} ms");
    wait(&browser, "the hole backfilled", gap_ok, long).await;
    assert!(
        t_cut.elapsed() < Duration::from_secs(38),
        "the cut slid out of the 40 s window before it was checked"
    );
    println!(
        "FIGURE overview hole of 6 s backfilled {:?} after the reconnection",
        t0.elapsed()
    );
    wait(&browser, "live cards again", &all_cards(false), long).await;

    // 3. A kiosk on one device's page (reached in the page, so the socket stays cuttable): the
    //    same on the device page's charts.
    go(
        &browser,
        &format!("?kiosk&theme=dark&view=device&device={}&range=5m", sim[0]),
    )
    .await;
    let freq_chart = chart("frequency");
    let chart_ready = format!(
        "(() => {{ const e = {freq_chart}; return e && e.dataset.state === 'ready' && Number(e.dataset.samples) > 5; }})()"
    );
    wait(&browser, "the device charts", &chart_ready, long).await;
    let gap_before: f64 = browser
        .js(&format!("Number({freq_chart}.dataset.maxGapMs)"))
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    cut_link(&browser).await;
    tokio::time::sleep(Duration::from_secs(6)).await; // the length of the outage
    restore_link(&browser).await;
    let hole = wait(
        &browser,
        "live data after the hole",
        &live_after_hole(&freq_chart),
        long,
    )
    .await;
    println!("the device page's hole before the backfill: {hole} ms");
    assert!(
        hole.as_f64().unwrap() > 3_000.0,
        "the cut left a hole: {hole} ms"
    );
    // No hole longer than what there was before the cut.
    wait(
        &browser,
        "the device chart's hole backfilled",
        &format!(
            "Number({freq_chart}.dataset.maxGapMs) <= {}",
            gap_before.max(800.0)
        ),
        long,
    )
    .await;
    shot(&browser, "kiosk-dark-device").await;

    // 4. The broker dies: every card says stale at once; it comes back by itself.
    go(&browser, "?kiosk&theme=dark&window=10m").await;
    wait(&browser, "live cards", &all_cards(false), long).await;
    stack.broker.kill();
    wait(&browser, "the outage", NOT_CONNECTED, long).await;
    all_stale_at_once(&browser, "stale cards while the broker is down").await;
    shot(&browser, "kiosk-dark-broker-down").await;
    stack.broker.restart().unwrap();
    wait_reconnected(&browser).await;
    wait(&browser, "live cards again", &all_cards(false), long).await;

    // 5. The server dies while the kiosk needs history: it says so and retries until it is back.
    stack.server.kill();
    go(
        &browser,
        &format!("?kiosk&theme=dark&view=device&device={}&range=1h", sim[0]),
    )
    .await;
    wait(
        &browser,
        "history retrying while the server is down",
        &format!("{freq_chart}?.dataset.state === 'retrying'"),
        long,
    )
    .await;
    stack.server = Stack::start_server(&stack.options, &stack.broker).unwrap();
    wait(
        &browser,
        "history once the server is back",
        &format!("{freq_chart}?.dataset.state === 'ready'"),
        Duration::from_secs(60),
    )
    .await;

    // 6. Insight in the kiosk, and the light theme focused on one device.
    browser
        .goto(&format!(
            "{base}/?kiosk&theme=dark&view=insight&device={}",
            sim[0]
        ))
        .await
        .unwrap();
    wait(&browser, "the link", CONNECTED, long).await;
    wait(
        &browser,
        "the insight figures",
        "document.querySelector('#fig-rocof')?.dataset.hzPerS && document.querySelector('#fig-grid-time')?.dataset.seconds",
        long,
    )
    .await;
    shot(&browser, "kiosk-dark-insight").await;
    browser
        .goto(&format!("{base}/?kiosk&theme=light&device={}", sim[1]))
        .await
        .unwrap();
    wait(&browser, "the link", CONNECTED, long).await;
    wait(
        &browser,
        "one card",
        &format!(
            "{} === 1 && document.querySelector('.device-card').dataset.deviceId === '{}' && document.querySelector('.device-card').dataset.stale === 'false'",
            count(".device-card"),
            sim[1]
        ),
        long,
    )
    .await;
    shot(&browser, "kiosk-light-device").await;

    // 7. A phone and a laptop: the dashboard in a 375 px wide frame (headless Chromium's
    //    windows are at least 500 px wide) and the kiosk in a 1366×768 one, the frame's
    //    document read through the same origin.
    browser.goto(&format!("{base}/api/health")).await.unwrap();
    let phone = (375, 812);
    let laptop = (1280, 720);
    for (name, (width, height), query) in [
        ("phone-overview", phone, String::new()),
        (
            "phone-device",
            phone,
            format!("?view=device&device={}&range=5m", sim[0]),
        ),
        (
            "phone-insight",
            phone,
            format!("?view=insight&device={}&theme=dark", sim[0]),
        ),
        ("phone-logs", phone, "?view=logs".to_owned()),
        ("phone-devices", phone, "?view=devices".to_owned()),
        ("laptop-kiosk-overview", laptop, "?kiosk".to_owned()),
        (
            "laptop-kiosk-device",
            laptop,
            format!("?kiosk&view=device&device={}&theme=dark", sim[0]),
        ),
        (
            "laptop-kiosk-insight",
            laptop,
            format!("?kiosk&view=insight&device={}", sim[1]),
        ),
    ] {
        browser
            .run(&format!(
                "document.body.style.margin = '0'; document.body.innerHTML = '<iframe id=\"phone\" src=\"/{query}\" style=\"width:{width}px;height:{height}px;border:0\"></iframe>';"
            ))
            .await
            .unwrap();
        let in_phone = |expr: &str| {
            format!(
                "(() => {{ const f = document.querySelector('#phone'); const d = f && f.contentDocument; if (!d || !d.body) return null; return ((document, window) => ({expr}))(d, f.contentWindow); }})()"
            )
        };
        wait(&browser, "the link", &in_phone(CONNECTED), long).await;
        wait(
            &browser,
            "content",
            &in_phone("document.querySelectorAll('.device-card, .field-chart[data-state=\"ready\"], #fig-rocof[data-hz-per-s], #log-list li, #devices tbody tr').length > 0"),
            long,
        )
        .await;
        shot(&browser, name).await;
        // Nothing may be wider than the phone (wide tables scroll inside their own box).
        let v = browser
            .js(&in_phone(
                "[document.documentElement.scrollWidth, window.innerWidth, document.documentElement.scrollHeight, window.innerHeight]",
            ))
            .await
            .unwrap();
        let f = |i: usize| v[i].as_f64().unwrap();
        let (scroll, inner, scroll_h, inner_h) = (f(0), f(1), f(2), f(3));
        assert!(
            inner <= f64::from(width) + 1.0,
            "{name}: the frame is {inner} px wide"
        );
        assert!(
            scroll <= inner,
            "{name}: the page is {scroll} px wide on a {inner} px screen"
        );
        println!("{name}: {scroll}×{scroll_h} px on a {inner}×{inner_h} px screen");
        // A kiosk is never scrolled: what it shows must fit the screen.
        if query.starts_with("?kiosk") {
            assert!(
                scroll_h <= inner_h + 1.0,
                "{name}: the kiosk is {scroll_h} px tall on a {inner_h} px screen"
            );
        }
    }
    browser.close().await.unwrap();
}
