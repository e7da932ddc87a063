//! The frame scheduler and the card throttle: at most one animation frame pending, in which
//! what changed reaches the signals and the charts are redrawn (no more often than
//! [`crate::chart::redraw_interval_ms`] allows); the one-second tick; the page's clocks and the
//! figures soak tests read from `window`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use leptos::prelude::*;
use ogm_protocol::DeviceId;
use wasm_bindgen::JsCast;

use super::{BUSY, history, pages, with_rt};
use crate::chart;
use crate::devices::DeviceSnapshot;
use crate::state::Row;

/// Above this many messages per second, a device's card and row change at most every
/// [`ROW_INTERVAL_MS`], twice a second: a hundred numbers changing ten times a second cannot be
/// read anyway, and updating them costs the browser more than everything else together (the
/// chart still draws every sample). Measured with 100 devices at 10 Hz in the soak: at 4 Hz
/// the cards kept the main thread ~33 % busy and the frame time p95 at ~8.5 ms.
const ROW_THROTTLE_RATE: f64 = 200.0;
const ROW_INTERVAL_MS: f64 = 500.0;
/// Throttled cards change over this many frames of each [`ROW_INTERVAL_MS`] (30 at 60 Hz), a
/// share in each, rather than all in one (see [`crate::devices::cards_due`]).
const ROW_FRAMES_PER_INTERVAL: usize = 24;

/// The frame scheduler's state.
#[derive(Debug, Default)]
pub(super) struct Frames {
    pending: bool,
    pub(super) chart_dirty: bool,
    drawn_ms: f64,
    /// How long the last redraw of every chart took, ms.
    draw_cost_ms: f64,
    /// A redraw waits for its turn on a timer.
    deferred: bool,
}

/// The devices' cards: each device's own signal, and the throttle.
#[derive(Debug, Default)]
pub(super) struct Cards {
    pub(super) rows: BTreeMap<DeviceId, RwSignal<DeviceSnapshot>>,
    /// Devices whose card waits for its next turn (see [`ROW_INTERVAL_MS`]), and when each
    /// card was last updated, ms.
    waiting: BTreeSet<DeviceId>,
    shown_ms: BTreeMap<DeviceId, f64>,
}

impl Cards {
    pub(super) fn forget(&mut self, id: &DeviceId) -> bool {
        self.waiting.remove(id);
        self.shown_ms.remove(id);
        match self.rows.remove(id) {
            Some(sig) => {
                sig.dispose();
                true
            }
            None => false,
        }
    }
}

thread_local! {
    /// Main-thread time spent taking messages in and in [`frame`], ms since the start: the
    /// page's own share of the work, for soak tests (`window.__ogm_cost`).
    static COST: std::cell::Cell<(f64, f64)> = const { std::cell::Cell::new((0.0, 0.0)) };
    /// The page's `performance`, looked up once: it is read twice per message.
    static PERFORMANCE: Option<web_sys::Performance> =
        web_sys::window().and_then(|w| w.performance());
}

pub(super) fn add_cost(ingest_ms: f64, frame_ms: f64) {
    COST.with(|c| {
        let (a, b) = c.get();
        c.set((a + ingest_ms, b + frame_ms));
    });
}

pub(crate) fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// A monotonic clock for measuring durations, ms.
pub(super) fn performance_now() -> f64 {
    PERFORMANCE.with(|p| p.as_ref().map_or_else(now_ms, web_sys::Performance::now))
}

pub(super) fn now_us() -> i64 {
    (now_ms() * 1000.0) as i64
}

pub(super) fn random_seed() -> u64 {
    (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64
}

/// Local time's offset from UTC, minutes.
pub(crate) fn tz_offset_min() -> i32 {
    -(js_sys::Date::new_0().get_timezone_offset() as i32)
}

pub(super) fn mark_charts_dirty() {
    with_rt(|rt| rt.frame.chart_dirty = true);
    schedule_frame();
}

pub(super) fn second_tick() {
    let now = now_ms();
    let mut draw_cost = 0.0;
    let figures_due = with_rt(|rt| {
        draw_cost = rt.frame.draw_cost_ms;
        rt.ui.now_ms.set(now);
        let tz = tz_offset_min();
        if rt.ui.tz_offset_min.get_untracked() != tz {
            rt.ui.tz_offset_min.set(tz);
        }
        let now_us = (now * 1000.0) as i64;
        if let Some(store) = rt.store.as_mut() {
            store.prune(now_us);
            store.sample_rate(now_us);
        }
        rt.pages.prune(now_us);
        rt.insight.tick(now_us);
        // Ongoing events' durations move on.
        rt.pages.events_shown = u64::MAX;
        rt.frame.chart_dirty = true;
        rt.pages.insight.is_some()
    })
    .unwrap_or(false);
    // A heartbeat for index.html's kiosk watchdog, and the size of the WebAssembly memory for
    // soak tests (it only grows: a leak shows here).
    if let Some(w) = web_sys::window() {
        let _ = js_sys::Reflect::set(&w, &"__ogm_alive".into(), &now.into());
        let _ = js_sys::Reflect::set(&w, &"__ogm_draw_ms".into(), &draw_cost.into());
        let busy = BUSY.with(std::cell::Cell::get);
        let _ = js_sys::Reflect::set(&w, &"__ogm_rt_busy".into(), &busy.into());
        let (ingest, frame) = COST.with(|c| c.get());
        let cost = js_sys::Array::of2(&ingest.into(), &frame.into());
        let _ = js_sys::Reflect::set(&w, &"__ogm_cost".into(), &cost);
        if let Ok(mem) = wasm_bindgen::memory().dyn_into::<js_sys::WebAssembly::Memory>()
            && let Ok(buf) = mem.buffer().dyn_into::<js_sys::ArrayBuffer>()
        {
            let _ = js_sys::Reflect::set(
                &w,
                &"__ogm_wasm_bytes".into(),
                &f64::from(buf.byte_length()).into(),
            );
        }
    }
    if figures_due {
        pages::update_figures();
    }
    schedule_frame();
}

/// Asks for an animation frame, unless one is pending.
pub(super) fn schedule_frame() {
    let pending = with_rt(|rt| std::mem::replace(&mut rt.frame.pending, true));
    if pending == Some(false) {
        request_animation_frame(frame);
    }
}

/// Once per animation frame at most: push what changed into the signals and redraw the charts.
fn frame() {
    let started = performance_now();
    let (new_devices, drew) = with_rt(|rt| {
        rt.frame.pending = false;
        let drew = rt.frame.chart_dirty && maybe_draw(rt);
        // A frame that redraws the charts leaves the cards to the next one: the two together
        // made the page's slowest frames.
        let new = if drew { Vec::new() } else { sync_rows(rt) };
        super::logs::sync(rt);
        rt.pages.sync_events(&rt.insight, rt.ui);
        (new, drew)
    })
    .unwrap_or_default();
    add_cost(0.0, performance_now() - started);
    if drew || with_rt(|rt| !rt.cards.waiting.is_empty()).unwrap_or(false) {
        schedule_frame();
    }
    for id in new_devices {
        history::fill_new_device(id);
    }
}

/// Copies changed devices into their signals; returns the devices never filled from history
/// yet.
fn sync_rows(rt: &mut super::Runtime) -> Vec<DeviceId> {
    let Some(store) = rt.store.as_mut() else {
        return Vec::new();
    };
    let changes = store.take_changes();
    let mut list_changed = false;
    for id in &changes.removed {
        list_changed |= rt.cards.forget(id);
        rt.insight.forget(id);
        rt.fills.filled.remove(id);
    }
    let mut new = Vec::new();
    let now = now_ms();
    let cards = &mut rt.cards;
    let (min_interval, budget) = if store.diagnostics().rate_per_s > ROW_THROTTLE_RATE {
        (
            ROW_INTERVAL_MS,
            cards.rows.len().div_ceil(ROW_FRAMES_PER_INTERVAL).max(1),
        )
    } else {
        (0.0, usize::MAX)
    };
    cards.waiting.extend(changes.updated);
    let due = crate::devices::cards_due(&cards.waiting, &cards.shown_ms, now, min_interval, budget);
    for id in &due {
        cards.waiting.remove(id);
        cards.shown_ms.insert(id.clone(), now);
        let Some(snap) = store.snapshot(id) else {
            continue;
        };
        match cards.rows.get(id) {
            Some(sig) => sig.set(snap),
            None => {
                let sig = match &rt.owner {
                    Some(owner) => owner.with(|| RwSignal::new(snap)),
                    None => RwSignal::new(snap),
                };
                cards.rows.insert(id.clone(), sig);
                list_changed = true;
            }
        }
        if !rt.fills.filled.contains(id) {
            rt.fills.filled.insert(id.clone());
            new.push(id.clone());
        }
    }
    if list_changed {
        rt.ui.rows.set(
            cards
                .rows
                .iter()
                .map(|(id, snap)| Row {
                    id: id.clone(),
                    snap: *snap,
                })
                .collect(),
        );
    }
    if changes.diagnostics {
        rt.ui.diagnostics.set(store.diagnostics().clone());
    }
    rt.frame.chart_dirty |= changes.chart;
    new
}

/// Redraws the charts if the last draw is old enough (true), else once it is.
fn maybe_draw(rt: &mut super::Runtime) -> bool {
    let now = now_ms();
    let window = rt.ui.route.with_untracked(|r| r.window_us);
    let traces = if rt.pages.canvases.shows_every_device() {
        rt.store.as_ref().map_or(0, |s| s.devices().len())
    } else {
        1
    };
    let interval = chart::redraw_interval_ms(window, traces, rt.frame.draw_cost_ms);
    let wait = interval - (now - rt.frame.drawn_ms);
    if wait > 0.0 {
        if !rt.frame.deferred {
            rt.frame.deferred = true;
            set_timeout(
                || {
                    with_rt(|rt| rt.frame.deferred = false);
                    schedule_frame();
                },
                Duration::from_millis(wait.ceil() as u64),
            );
        }
        return false;
    }
    rt.frame.chart_dirty = false;
    rt.frame.drawn_ms = now;
    let now_us = (now * 1000.0) as i64;
    let started = performance_now();
    pages::draw(rt, now_us);
    rt.frame.draw_cost_ms = performance_now() - started;
    true
}
