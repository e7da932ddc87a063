//! The page's runtime: the glue between the MQTT link, the HTTP API, the pure stores and the
//! reactive state. Browser only.
//!
//! Data flow: the link ([`link`]) → [`DeviceStore::ingest_message`] (plain Rust, no signals) →
//! the insight, the log buffer ([`logs`]) and the open pages ([`pages`]) take what concerns
//! them → once per animation frame ([`frame`]), and only if something changed, the changed
//! devices' snapshots are copied into their own signals (at most every half second each when
//! many devices report fast: the card throttle) and the charts are redrawn from the series. So
//! a burst of messages costs one DOM update and at most one redraw per chart.
//!
//! History joins live data through [`crate::series::Series::fill`] ([`history`]): every chart
//! starts filled from `/api/history`, and after the broker link comes back, the hole it left
//! is fetched again. A load carries a [`history::Ticket`] for what asked for it (a page, the
//! logs view); once that closed or reopened, the ticket is stale and the answer is dropped.
//!
//! Views call [`commands`] and nothing else here. The [`Runtime`] lives in a thread-local (the
//! page has one thread); the rooms reach it with [`with_rt`] and never hold it across an
//! `await`. Views register their canvases and pages on mount and remove them on cleanup, so
//! nothing outlives the view that needed it.

mod alerts;
pub(crate) mod commands;
mod frame;
mod history;
mod link;
mod logs;
mod pages;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use ogm_grid::{Bands, Insight};

use crate::backoff::XorShift;
use crate::devices::DeviceStore;
use crate::figures::event_rules;
use crate::state::Ui;
use crate::url;
use crate::wire::ConfigAnswer;

/// The non-reactive side: one room per concern.
struct Runtime {
    ui: Ui,
    owner: Option<Owner>,
    config: Option<ConfigAnswer>,
    store: Option<DeviceStore>,
    insight: Insight,
    rng: XorShift,
    link: link::Link,
    frame: frame::Frames,
    cards: frame::Cards,
    fills: history::Fills,
    tickets: history::Tickets,
    pages: pages::Pages,
    logs: logs::Logs,
}

impl Runtime {
    fn nominal(&self) -> f64 {
        self.ui
            .nominal_hz
            .get_untracked()
            .or(self.config.as_ref().map(|c| f64::from(c.nominal_hz)))
            .unwrap_or(50.0)
    }

    /// The bands in force: the area's, around the nominal frequency.
    fn bands(&self) -> Bands {
        Bands::of(self.ui.area.get_untracked(), self.nominal())
    }
}

type Shared = Rc<RefCell<Runtime>>;

thread_local! {
    static RT: RefCell<Option<Shared>> = const { RefCell::new(None) };
    /// Calls of [`with_rt`] that found the runtime borrowed (a bug: it is shown in the console
    /// and counted in `window.__ogm_rt_busy`).
    static BUSY: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f` on the runtime. None when there is no runtime (the dashboard is unmounted: there is
/// nothing to do) or when it is already borrowed: a re-entrant call is a bug, so it is not
/// skipped silently but reported on the console and counted.
fn with_rt<R>(f: impl FnOnce(&mut Runtime) -> R) -> Option<R> {
    let rt = shared()?;
    let Ok(mut me) = rt.try_borrow_mut() else {
        report_busy();
        return None;
    };
    Some(f(&mut me))
}

/// The runtime, if mounted. Out of line: one copy in the binary, not one per caller.
#[inline(never)]
fn shared() -> Option<Shared> {
    RT.with(|r| r.borrow().clone())
}

/// Out of line and not generic: one copy in the binary, not one per caller.
#[cold]
#[inline(never)]
fn report_busy() {
    BUSY.with(|b| b.set(b.get().saturating_add(1)));
    web_sys::console::error_1(&"ogm: the runtime is busy; work skipped (a re-entrant call)".into());
}

/// Starts the runtime for `ui`: the clock, the window's listeners, the route's settings and the
/// boot (configuration, then the link). Everything ends when the calling owner is cleaned up.
pub(crate) fn start(ui: Ui) {
    let route = ui.route.get_untracked();
    let nominal = route.nominal_hz.unwrap_or(50.0);
    let rt: Shared = Rc::new(RefCell::new(Runtime {
        ui,
        owner: Owner::current(),
        config: None,
        store: None,
        insight: Insight::new(
            event_rules(&route, nominal),
            i64::from(route.rocof_window_ms) * 1000,
        ),
        rng: XorShift::new(frame::random_seed()),
        link: link::Link::default(),
        frame: frame::Frames::default(),
        cards: frame::Cards::default(),
        fills: history::Fills::default(),
        tickets: history::Tickets::default(),
        pages: pages::Pages::default(),
        logs: logs::Logs::default(),
    }));
    RT.with(|r| *r.borrow_mut() = Some(rt));

    // The one-second clock: relative times, staleness, retry countdowns, the message rate,
    // insight figures, and sliding the charts even when nothing arrives.
    let tick = set_interval_with_handle(frame::second_tick, Duration::from_secs(1)).ok();
    // Back and Forward.
    let popstate = window_event_listener_untyped("popstate", move |_| {
        ui.route.set(url::current());
    });
    let resize = window_event_listener_untyped("resize", move |_| {
        frame::mark_charts_dirty();
    });
    on_cleanup(move || {
        if let Some(t) = tick {
            t.clear();
        }
        popstate.remove();
        resize.remove();
        RT.with(|r| r.borrow_mut().take());
    });

    // Settings from the URL: theme and kiosk on <html>, nominal and event rules in the runtime,
    // the live window in the store.
    Effect::new(move |_| {
        let r = ui.route.get();
        url::apply_document(&r);
        let server_nominal =
            with_rt(|rt| rt.config.as_ref().map(|c| f64::from(c.nominal_hz))).flatten();
        let nominal = r.nominal_hz.or(server_nominal);
        if ui.nominal_hz.get_untracked() != nominal {
            ui.nominal_hz.set(nominal);
        }
        let server_area = with_rt(|rt| rt.config.as_ref().map(ConfigAnswer::area)).flatten();
        let area = r.area.or(server_area).unwrap_or_default();
        if ui.area.get_untracked() != area {
            ui.area.set(area);
        }
        let refill = with_rt(|rt| {
            rt.insight.configure(
                event_rules(&r, nominal.unwrap_or(50.0)),
                i64::from(r.rocof_window_ms) * 1000,
            );
            rt.pages.events_shown = u64::MAX;
            let Some(store) = rt.store.as_mut() else {
                return false;
            };
            let changed = store.limits().window_us != r.window_us;
            store.set_window(r.window_us);
            if changed {
                rt.fills.filled.clear();
            }
            rt.frame.chart_dirty = true;
            changed
        })
        .unwrap_or(false);
        if refill {
            history::queue_window_fills();
        }
        frame::schedule_frame();
    });

    spawn_local(link::boot());
}

pub(crate) use frame::{now_ms, tz_offset_min};
