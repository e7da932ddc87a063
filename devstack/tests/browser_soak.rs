//! Soak: 100 simulated devices at 10 Hz (1,000 messages/s) into the dashboard in real Chromium,
//! measuring main-thread busy time, frame time, and whether the JS and WebAssembly heaps stay
//! flat. Ignored by default (it takes minutes and a whole machine):
//!
//! ```sh
//! # a shortened soak (3 minutes, a 1-minute live window; the JS heap at the end within 10 % of
//! # the heap once the window is full, from 90 s; the WebAssembly memory not growing in both
//! # halves of that span; each reading the median of three):
//! cargo test -p ogm-devstack --test browser_soak -- --ignored --nocapture
//! # the full hour (baseline after 5 minutes):
//! OGM_SOAK_SECS=3600 cargo test -p ogm-devstack --test browser_soak -- --ignored --nocapture
//! # another view under the same stream: device, insight, logs or devices
//! OGM_SOAK_VIEW=insight cargo test -p ogm-devstack --test browser_soak -- --ignored --nocapture
//! # also: OGM_SOAK_WINDOW_SECS (the live window), OGM_SOAK_BASELINE_SECS (when the heaps are
//! # first read), OGM_SOAK_SAMPLE_SECS (the sampling period, 10 s), OGM_SOAK_DEVICES (100)
//! ```
//!
//! How the page is measured, from inside it:
//! - frame time: from the start of each animation frame to a message posted in it, which is
//!   handled after the frame's callbacks, style, layout and paint;
//! - busy time: one second minus the idle time `requestIdleCallback` offers in it;
//! - heaps: the JS heap in use after a full GC (the DevTools protocol's `Runtime.getHeapUsage`),
//!   and the WebAssembly memory's size (`window.__ogm_wasm_bytes`, written by the page).
//!
//! Every reading goes through the DevTools protocol by value (`Browser::probe`), never a
//! WebDriver script: chromedriver keeps each script's result alive in the page, which crept
//! the JS heap by ~0.15 MB an hour of probing, on a page that itself kept nothing.
//!
//! Figures depend on the machine (here the broker, the server, the simulator and Chromium share
//! it); the heap bound is asserted, the timings are printed, and `OGM_SOAK_ASSERT_FRAMES=1`
//! also asserts the frame-time p95 of 8 ms.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::{Duration, Instant};

use ogm_devstack::page::{click, count, shot, wait};
use ogm_devstack::{Browser, Stack, StackOptions};

const PROBE: &str = r#"
window.__soak = { frames: [], idle: 0, idleSince: performance.now() };
(() => {
  const s = window.__soak;
  const ch = new MessageChannel();
  let start = 0;
  ch.port1.onmessage = () => { s.frames.push(performance.now() - start); if (s.frames.length > 20000) s.frames.shift(); };
  const frame = () => { start = performance.now(); ch.port2.postMessage(0); requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
  const idle = (d) => { s.idle += d.timeRemaining(); requestIdleCallback(idle); };
  requestIdleCallback(idle);
})();
"#;

/// Takes and resets the probe's figures: [busy fraction, frame p50, p95, max, frames].
const TAKE: &str = r#"(() => {
  const s = window.__soak;
  const now = performance.now();
  const span = now - s.idleSince;
  const busy = Math.max(0, 1 - s.idle / span);
  const f = s.frames.slice().sort((a, b) => a - b);
  const q = (p) => f.length ? f[Math.min(f.length - 1, Math.floor(p * f.length))] : 0;
  s.frames = []; s.idle = 0; s.idleSince = now;
  return [busy, q(0.5), q(0.95), f.length ? f[f.length - 1] : 0, f.length];
})()"#;

const WASM: &str = "window.__ogm_wasm_bytes || 0";

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A number the page computes (0 when it is none).
async fn number(browser: &Browser, expr: &str) -> f64 {
    browser.probe(expr).await.unwrap().as_f64().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak: minutes long, and it needs the whole machine"]
async fn soak_100_devices_at_10_hz() {
    let total = env_secs("OGM_SOAK_SECS", 180);
    // The live window fills first (the series grow until then): the heap is compared from
    // when it is full. The full hour uses the default 5-minute window, a short soak 1 minute.
    let window = env_secs(
        "OGM_SOAK_WINDOW_SECS",
        if total >= 3_600 { 300 } else { 60 },
    );
    let baseline_at = env_secs("OGM_SOAK_BASELINE_SECS", window + 30);
    // Every 10 s by default. The probes go through the DevTools protocol, not WebDriver
    // scripts: each of those stays alive in the page (see `Browser::probe`).
    let sample_secs = env_secs("OGM_SOAK_SAMPLE_SECS", 10).max(1);
    let devices = env_secs("OGM_SOAK_DEVICES", 100) as usize;
    let dir = tempfile::tempdir().unwrap();
    let mut options = StackOptions::for_test(dir.path().to_path_buf(), devices);
    options.rate_hz = 10.0;
    let stack = Stack::up(options).unwrap();
    let browser = Browser::start(1920, 1080).await.unwrap();
    let t_load = Instant::now();
    browser
        .goto(&format!("{}/?window={window}s", stack.http_url()))
        .await
        .unwrap();
    wait(
        &browser,
        "every device",
        &format!(
            "{} >= {devices}",
            count(".device-card[data-stale=\"false\"]")
        ),
        Duration::from_secs(120),
    )
    .await;
    println!(
        "FIGURE {devices} live device cards after {:?}",
        t_load.elapsed()
    );
    // Another view under the same stream (OGM_SOAK_VIEW=device|insight|logs|devices), reached
    // as a user would, by its link.
    let view = std::env::var("OGM_SOAK_VIEW").unwrap_or_else(|_| "overview".into());
    let (link, section) = match view.as_str() {
        "overview" => (None, "#overview"),
        "device" => (Some(".device-card .device-name"), "#device-page"),
        "insight" => (Some("nav a[href*='view=insight']"), "#insight"),
        "logs" => (Some("nav a[href*='view=logs']"), "#logs"),
        "devices" => (Some("nav a[href*='view=devices']"), "#device-table"),
        other => panic!("OGM_SOAK_VIEW={other}: not a view"),
    };
    if let Some(link) = link {
        click(&browser, link).await;
    }
    wait(
        &browser,
        &format!("the {view} view"),
        &format!("document.querySelector('{section}') !== null"),
        Duration::from_secs(20),
    )
    .await;
    browser.run(PROBE).await.unwrap();
    // Experiments: e.g. OGM_SOAK_JS="document.querySelector('#live-chart').style.display='none'".
    if let Ok(js) = std::env::var("OGM_SOAK_JS") {
        browser.run(&js).await.unwrap();
    }

    let start = Instant::now();
    // Heap readings (after a forced GC) from the baseline on: the JS heap is small (~1.5 MB)
    // and moves by a few hundred KB with what the last GC caught, so each end is the median of
    // three readings, not one.
    let mut heaps: Vec<(f64, f64)> = Vec::new();
    let mut worst_p95: f64 = 0.0;
    let mut busy_sum = 0.0;
    let mut p95s = Vec::new();
    let mut samples = 0;
    let mut rate_min = f64::MAX;
    let mut last_cost = (0.0, 0.0);
    while start.elapsed() < Duration::from_secs(total) {
        tokio::time::sleep(Duration::from_secs(sample_secs)).await; // the sampling period
        let t = browser.probe(TAKE).await.unwrap();
        let f = |i: usize| t[i].as_f64().unwrap_or(0.0);
        let (busy, p50, p95, max, n) = (f(0), f(1), f(2), f(3), f(4));
        let rate = number(
            &browser,
            "Number(document.querySelector('#diag-rate')?.dataset.rate)",
        )
        .await;
        let draw = number(&browser, "window.__ogm_draw_ms || 0").await;
        let cost = browser.probe("window.__ogm_cost || [0, 0]").await.unwrap();
        let cost = (
            cost[0].as_f64().unwrap_or(0.0),
            cost[1].as_f64().unwrap_or(0.0),
        );
        let (ingest_ms, frame_ms) = (cost.0 - last_cost.0, cost.1 - last_cost.1);
        last_cost = cost;
        let js = browser.js_heap_after_gc().await.unwrap();
        let wasm = number(&browser, WASM).await;
        let secs = start.elapsed().as_secs();
        println!(
            "t={secs:>5}s rate {rate:>6.0} msg/s  busy {:>5.1} %  frames {n:>4} p50 {p50:>5.1} ms p95 {p95:>5.1} ms max {max:>6.1} ms  chart {draw:>5.1} ms  page: ingest {:>4.1} % frame {:>4.1} %  JS heap {:>6.2} MB  wasm {:>5.2} MB",
            busy * 100.0,
            ingest_ms / 100.0,
            frame_ms / 100.0,
            js / 1e6,
            wasm / 1e6
        );
        if secs >= baseline_at {
            heaps.push((js, wasm));
        }
        if secs > 20 {
            busy_sum += busy;
            samples += 1;
            worst_p95 = worst_p95.max(p95);
            p95s.push(p95);
            rate_min = rate_min.min(rate);
        }
    }
    assert!(heaps.len() >= 6, "the soak is too short to compare heaps");
    let median3 = |w: &[(f64, f64)]| {
        let mut js: Vec<f64> = w.iter().map(|h| h.0).collect();
        let mut wasm: Vec<f64> = w.iter().map(|h| h.1).collect();
        js.sort_by(f64::total_cmp);
        wasm.sort_by(f64::total_cmp);
        (js[1], wasm[1])
    };
    let (js0, wasm0) = median3(&heaps[..3]);
    let (js, wasm) = median3(&heaps[heaps.len() - 3..]);
    p95s.sort_by(f64::total_cmp);
    let median_p95 = p95s.get(p95s.len() / 2).copied().unwrap_or(0.0);
    println!(
        "FIGURE soak {devices} devices × 10 Hz for {total} s, {view} view: main thread busy {:.1} % of each second (mean), frame time p95 {median_p95:.1} ms (median of {sample_secs} s windows; worst {worst_p95:.1} ms), lowest message rate {rate_min:.0}/s",
        busy_sum / f64::from(samples.max(1)) * 100.0
    );
    println!(
        "FIGURE heap (median of 3 readings) from {baseline_at} s → at {total} s: JS {:.2} → {:.2} MB ({:+.1} %), wasm {:.2} → {:.2} MB ({:+.1} %)",
        js0 / 1e6,
        js / 1e6,
        (js / js0 - 1.0) * 100.0,
        wasm0 / 1e6,
        wasm / 1e6,
        (wasm / wasm0 - 1.0) * 100.0
    );
    // What a hundred devices look like after the soak: the view's first chart.
    browser
        .run("document.querySelector('canvas')?.scrollIntoView({block: 'center'})")
        .await
        .unwrap();
    shot(&browser, &format!("soak-{view}")).await;
    if view == "insight" {
        // The simulated grid trips every 15 minutes on average: each is one grid event, seen
        // by every device, not a row per device.
        let rows = browser
            .js("[...document.querySelectorAll('#events tbody tr')].map(r => [r.dataset.devices, r.dataset.extremeMhz, r.dataset.deviceId])")
            .await
            .unwrap();
        println!("FIGURE events listed after the soak (devices, extreme mHz, where): {rows}");
        browser
            .run("document.querySelector('#events')?.scrollIntoView({block: 'center'})")
            .await
            .unwrap();
        shot(&browser, "soak-insight-events").await;
    }
    assert!(js <= js0 * 1.10, "the JS heap grew more than 10 %");
    // WebAssembly memory never shrinks and grows in steps: one vector doubling its capacity
    // after the baseline is one step, not a leak (it made 1 run in 5 fail with a 10 % bound). A
    // leak grows in both halves of the span; any growth stays under half again.
    let mid = heaps.len() / 2;
    let (_, wasm_mid) = median3(&heaps[mid - 1..mid + 2]);
    let grew = |from: f64, to: f64| to > from * 1.02;
    println!(
        "FIGURE wasm memory {:.2} → {:.2} → {:.2} MB (baseline, middle, end)",
        wasm0 / 1e6,
        wasm_mid / 1e6,
        wasm / 1e6
    );
    assert!(
        !(grew(wasm0, wasm_mid) && grew(wasm_mid, wasm)),
        "the WebAssembly memory grew in both halves of the soak"
    );
    assert!(
        wasm <= wasm0 * 1.5,
        "the WebAssembly memory grew by more than half"
    );
    if std::env::var("OGM_SOAK_ASSERT_FRAMES").is_ok() {
        assert!(median_p95 <= 8.0, "frame time p95 {median_p95:.1} ms");
    }
    browser.close().await.unwrap();
}
