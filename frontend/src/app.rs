//! The page's runtime: the glue between the MQTT link, the HTTP API, the pure stores and the
//! Leptos views. Browser only.
//!
//! Data flow: [`MqttWs`] → [`DeviceStore::ingest_message`] (plain Rust, no signals) → the
//! insight, the log buffer and the open device or insight page take what concerns them → once
//! per animation frame, and only if something changed, the changed devices' snapshots are copied
//! into their own signals and the charts are redrawn from the series. So a burst of messages
//! costs one DOM update and at most one redraw per chart.
//!
//! History joins live data through [`Series::fill`]: every chart starts filled from
//! `/api/history`, and after the broker link comes back, the hole it left is fetched again.
//!
//! The [`Runtime`] lives in a thread-local (the page has one thread); views reach it with
//! [`with_rt`] and never hold it across an `await`. Views register their canvases and pages on
//! mount and remove them on cleanup, so nothing outlives the view that needed it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use ogm_grid::{
    Bands, EventRules, GridArea, GridEvent, Histogram, Insight, Quality, grid_time_s, spread_mhz,
};
use ogm_protocol::{DeviceId, Payload};
use wasm_bindgen::JsCast;
use web_sys::HtmlCanvasElement;

use crate::api;
use crate::backoff::{Backoff, XorShift};
use crate::chart::{self, ChartSpec, Rule, TraceInput, XLabels};
use crate::config::DashboardConfig;
use crate::devices::{DeviceSnapshot, DeviceStore, Diagnostics, Limits, Liveness};
use crate::logs::{LogBuffer, LogFilter, LogLine};
use crate::mqtt_link::{KEEP_ALIVE_S, LinkConfig, LinkEvent, LinkState};
use crate::mqtt_ws::MqttWs;
use crate::route::{Route, TimeRange};
use crate::series::Series;
use crate::url;
use crate::views;
use crate::wire::{self, Field, HistoryAnswer};

/// What the connection indicator shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Conn {
    LoadingConfig,
    ConfigFailed { error: String, retry_at_ms: f64 },
    Link(LinkState),
}

impl Conn {
    pub fn is_live(&self) -> bool {
        matches!(self, Conn::Link(LinkState::Connected))
    }
}

/// One device in the views: its id and its own signal.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: DeviceId,
    pub snap: RwSignal<DeviceSnapshot>,
}

/// How a history load is going.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum LoadState {
    #[default]
    Loading,
    Retrying {
        error: String,
        retry_at_ms: f64,
    },
    Ready {
        /// Buckets in the answer.
        points: usize,
        interval_us: i64,
    },
    /// The server has nothing for this request (e.g. a device it never stored).
    Unavailable(String),
}

impl LoadState {
    pub fn as_str(&self) -> &'static str {
        match self {
            LoadState::Loading => "loading",
            LoadState::Retrying { .. } => "retrying",
            LoadState::Ready { .. } => "ready",
            LoadState::Unavailable(_) => "unavailable",
        }
    }
}

/// What a chart shows, for the page's data attributes (and the tests that read them).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ChartFacts {
    pub start_us: i64,
    pub stop_us: i64,
    /// Samples in the series.
    pub samples: usize,
    /// Longest hole between samples inside the range, ms, and where it starts, µs.
    pub max_gap_ms: i64,
    pub max_gap_at_us: i64,
    /// Time of the newest data, µs.
    pub newest_us: i64,
}

/// The insight view's figures, recomputed once a second.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figures {
    pub device: Option<DeviceId>,
    pub frequency: Option<f64>,
    pub rocof: Option<f64>,
    pub grid_time_s: Option<f64>,
    pub spread: Option<(f64, usize)>,
    pub quality: Option<Quality>,
    pub histogram: Option<Histogram>,
    /// Every live device's latest reading, for the agreement table.
    pub readings: Vec<(DeviceId, f64)>,
}

/// The signals the views read. All `Copy`.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub route: RwSignal<Route>,
    pub conn: RwSignal<Conn>,
    pub now_ms: RwSignal<f64>,
    /// Local time's offset from UTC, minutes.
    pub tz_offset_min: RwSignal<i32>,
    /// The nominal frequency in force (the URL's, else the server's).
    pub nominal_hz: RwSignal<Option<f64>>,
    /// The synchronous area in force (the URL's, else the server's).
    pub area: RwSignal<GridArea>,
    pub rows: RwSignal<Vec<Row>>,
    pub diagnostics: RwSignal<Diagnostics>,
    pub events: RwSignal<Vec<GridEvent>>,
    pub figures: RwSignal<Figures>,
    pub logs: RwSignal<Vec<LogLine>>,
    pub logs_state: RwSignal<LoadState>,
    /// Why "Load older" has nothing more to give, if it has not.
    pub logs_end: RwSignal<Option<&'static str>>,
    /// Device page: per field.
    pub field_state: RwSignal<BTreeMap<Field, LoadState>>,
    pub field_facts: RwSignal<BTreeMap<Field, ChartFacts>>,
    pub insight_state: RwSignal<LoadState>,
    pub live_facts: RwSignal<ChartFacts>,
    /// What the live charts show: a line per device, or their crowd.
    pub live_shown: RwSignal<chart::LiveShown>,
}

/// The non-reactive side.
pub struct Runtime {
    pub ui: Ui,
    owner: Option<Owner>,
    config: Option<DashboardConfig>,
    store: Option<DeviceStore>,
    insight: Insight,
    logs: LogBuffer,
    rows: BTreeMap<DeviceId, RwSignal<DeviceSnapshot>>,
    /// Devices whose card waits for its next turn (see [`ROW_INTERVAL_MS`]), and when each
    /// card was last updated, ms.
    rows_waiting: BTreeSet<DeviceId>,
    row_shown_ms: BTreeMap<DeviceId, f64>,
    frame_pending: bool,
    chart_dirty: bool,
    chart_drawn_ms: f64,
    /// How long the last redraw of every chart took, ms.
    chart_draw_cost_ms: f64,
    /// The live charts' crowd of many devices, kept between redraws.
    crowd: chart::CrowdCache,
    chart_deferred: bool,
    link: Option<MqttWs>,
    link_up: bool,
    /// When the link came up, µs (live log entries are complete from then on).
    up_since_us: Option<i64>,
    /// When the link went down, µs (for the backfill once it is back).
    down_since_us: Option<i64>,
    fills: VecDeque<FillJob>,
    fill_worker: bool,
    /// Devices whose window was filled from history already.
    filled: BTreeSet<DeviceId>,
    overview_canvas: Option<HtmlCanvasElement>,
    insight_canvas: Option<HtmlCanvasElement>,
    insight_range_canvas: Option<HtmlCanvasElement>,
    field_canvases: BTreeMap<Field, HtmlCanvasElement>,
    device_page: Option<DevicePage>,
    insight_page: Option<InsightPage>,
    /// Bumped whenever a page opens: async loads of an older page stop.
    generation: u64,
    logs_view: Option<LogFilter>,
    logs_generation: u64,
    /// When the logs view last asked for its newest page while the link was down, µs.
    logs_page_at_us: Option<i64>,
    logs_shown: u64,
    events_shown: u64,
    rng: XorShift,
}

type Shared = Rc<RefCell<Runtime>>;

thread_local! {
    static RT: RefCell<Option<Shared>> = const { RefCell::new(None) };
    /// Main-thread time spent taking messages in and in [`frame`], ms since the start: the
    /// page's own share of the work, for soak tests (`window.__ogm_cost`).
    static COST: std::cell::Cell<(f64, f64)> = const { std::cell::Cell::new((0.0, 0.0)) };
}

fn add_cost(ingest_ms: f64, frame_ms: f64) {
    COST.with(|c| {
        let (a, b) = c.get();
        c.set((a + ingest_ms, b + frame_ms));
    });
}

/// Runs `f` on the runtime, unless it is already borrowed (then None).
pub fn with_rt<R>(f: impl FnOnce(&mut Runtime) -> R) -> Option<R> {
    let rt = RT.with(|r| r.borrow().clone())?;
    let mut me = rt.try_borrow_mut().ok()?;
    Some(f(&mut me))
}

/// The page's signals.
pub fn ui() -> Ui {
    expect_context::<Ui>()
}

/// Shows `route`: in the signal and in the address bar (a new history entry when `push`).
pub fn navigate(route: Route, push: bool) {
    if let Some(ui) = use_context::<Ui>() {
        url::write(&route, push);
        ui.route.set(route);
    }
}

/// A queued history load for one device's overview series.
#[derive(Debug, Clone, PartialEq)]
struct FillJob {
    device: DeviceId,
    start_us: i64,
    stop_us: i64,
}

/// The open device page.
struct DevicePage {
    generation: u64,
    device: DeviceId,
    range: TimeRange,
    series: BTreeMap<Field, (Series, i64)>,
}

/// The open insight page.
struct InsightPage {
    generation: u64,
    device: DeviceId,
    range: TimeRange,
    series: Series,
    interval_us: i64,
    /// History events before the page started hearing the device live.
    history_events: Vec<GridEvent>,
    live_since_us: Option<i64>,
}

/// Slots of a page's series: more than any screen has pixel columns.
const PAGE_SLOTS: usize = 2_048;
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
/// Most log entries the page holds, and shows.
const LOG_CAPACITY: usize = 2_000;
/// Log entries per page of `/api/logs`.
const LOG_PAGE: usize = 200;
/// A backfill reaches this far before the link went down, µs.
const BACKFILL_MARGIN_US: i64 = 2_000_000;
/// How long after a load (or a reconnection) the seam between history and live data is
/// fetched again: the server stores what it receives within about a second, ms.
const JUNCTION_DELAY_MS: u64 = 2_500;
/// How far back that seam is fetched, µs.
const JUNCTION_US: i64 = 10_000_000;

fn now_ms() -> f64 {
    js_sys::Date::now()
}

thread_local! {
    /// The page's `performance`, looked up once: it is read twice per message.
    static PERFORMANCE: Option<web_sys::Performance> =
        web_sys::window().and_then(|w| w.performance());
}

/// A monotonic clock for measuring durations, ms.
fn performance_now() -> f64 {
    PERFORMANCE.with(|p| p.as_ref().map_or_else(now_ms, web_sys::Performance::now))
}

fn now_us() -> i64 {
    (now_ms() * 1000.0) as i64
}

fn random_seed() -> u64 {
    (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64
}

impl Ui {
    /// The bands in force (tracked), once the nominal frequency is known.
    pub fn bands(&self) -> Option<Bands> {
        let area = self.area.get();
        self.nominal_hz.get().map(|n| Bands::of(area, n))
    }
}

fn tz_offset_min() -> i32 {
    -(js_sys::Date::new_0().get_timezone_offset() as i32)
}

fn event_rules(route: &Route, nominal_hz: f64) -> EventRules {
    EventRules {
        nominal_hz,
        threshold_mhz: Bands::of(GridArea::default(), nominal_hz).event_mhz,
        rocof_limit: route.rocof_limit,
        max_gap_us: 5_000_000,
    }
}

/// The whole dashboard.
#[component]
pub fn App() -> impl IntoView {
    let route = url::current();
    let ui = Ui {
        route: RwSignal::new(route.clone()),
        conn: RwSignal::new(Conn::LoadingConfig),
        now_ms: RwSignal::new(now_ms()),
        tz_offset_min: RwSignal::new(tz_offset_min()),
        nominal_hz: RwSignal::new(route.nominal_hz),
        area: RwSignal::new(route.area.unwrap_or_default()),
        rows: RwSignal::new(Vec::new()),
        diagnostics: RwSignal::new(Diagnostics::default()),
        events: RwSignal::new(Vec::new()),
        figures: RwSignal::new(Figures::default()),
        logs: RwSignal::new(Vec::new()),
        logs_state: RwSignal::new(LoadState::Loading),
        logs_end: RwSignal::new(None),
        field_state: RwSignal::new(BTreeMap::new()),
        field_facts: RwSignal::new(BTreeMap::new()),
        insight_state: RwSignal::new(LoadState::Loading),
        live_facts: RwSignal::new(ChartFacts::default()),
        live_shown: RwSignal::new(chart::LiveShown::default()),
    };
    provide_context(ui);
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
        logs: LogBuffer::new(LOG_CAPACITY),
        rows: BTreeMap::new(),
        rows_waiting: BTreeSet::new(),
        row_shown_ms: BTreeMap::new(),
        frame_pending: false,
        chart_dirty: false,
        chart_drawn_ms: 0.0,
        chart_draw_cost_ms: 0.0,
        crowd: chart::CrowdCache::default(),
        chart_deferred: false,
        link: None,
        link_up: false,
        up_since_us: None,
        down_since_us: None,
        fills: VecDeque::new(),
        fill_worker: false,
        filled: BTreeSet::new(),
        overview_canvas: None,
        insight_canvas: None,
        insight_range_canvas: None,
        field_canvases: BTreeMap::new(),
        device_page: None,
        insight_page: None,
        generation: 0,
        logs_view: None,
        logs_generation: 0,
        logs_page_at_us: None,
        logs_shown: 0,
        events_shown: u64::MAX,
        rng: XorShift::new(random_seed()),
    }));
    RT.with(|r| *r.borrow_mut() = Some(rt.clone()));

    // The one-second clock: relative times, staleness, retry countdowns, the message rate,
    // insight figures, and sliding the charts even when nothing arrives.
    let tick = set_interval_with_handle(second_tick, Duration::from_secs(1)).ok();
    // Back and Forward.
    let popstate = window_event_listener_untyped("popstate", move |_| {
        ui.route.set(url::current());
    });
    let resize = window_event_listener_untyped("resize", move |_| {
        mark_charts_dirty();
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
        apply_document(&r);
        let server_nominal = with_rt(|rt| rt.config.as_ref().map(|c| c.nominal_hz)).flatten();
        let nominal = r.nominal_hz.or(server_nominal);
        if ui.nominal_hz.get_untracked() != nominal {
            ui.nominal_hz.set(nominal);
        }
        let server_area = with_rt(|rt| rt.config.as_ref().map(DashboardConfig::area)).flatten();
        let area = r.area.or(server_area).unwrap_or_default();
        if ui.area.get_untracked() != area {
            ui.area.set(area);
        }
        let refill = with_rt(|rt| {
            rt.insight.configure(
                event_rules(&r, nominal.unwrap_or(50.0)),
                i64::from(r.rocof_window_ms) * 1000,
            );
            rt.events_shown = u64::MAX;
            let Some(store) = rt.store.as_mut() else {
                return false;
            };
            let changed = store.limits().window_us != r.window_us;
            store.set_window(r.window_us);
            if changed {
                rt.filled.clear();
            }
            rt.chart_dirty = true;
            changed
        })
        .unwrap_or(false);
        if refill {
            queue_window_fills();
        }
        schedule_frame();
    });

    spawn_local(boot());

    view! { <views::Shell /> }
}

/// `data-theme` and `data-kiosk` on `<html>`, and the title.
fn apply_document(route: &Route) {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if let Some(html) = doc.document_element() {
        let _ = match route.theme {
            crate::route::Theme::System => html.remove_attribute("data-theme"),
            t => html.set_attribute("data-theme", t.as_str()),
        };
        let _ = if route.kiosk {
            html.set_attribute("data-kiosk", "")
        } else {
            html.remove_attribute("data-kiosk")
        };
    }
    let title = match &route.device {
        Some(d) => format!("{d} · {} · Open Grid Monitor", route.view.title()),
        None => format!("{} · Open Grid Monitor", route.view.title()),
    };
    doc.set_title(&title);
}

/// Fetches the configuration (retrying with backoff until it works), then starts the link and
/// loads the device list.
async fn boot() {
    let Some(ui) = with_rt(|rt| rt.ui) else {
        return;
    };
    let mut backoff = Backoff::new(random_seed());
    let config = loop {
        match api::fetch_config().await {
            Ok(c) => break c,
            Err(error) => {
                let delay = backoff.next_delay_ms();
                ui.conn.set(Conn::ConfigFailed {
                    error,
                    retry_at_ms: now_ms() + delay as f64,
                });
                api::sleep_ms(delay).await;
            }
        }
    };
    start_link(config);
    spawn_local(load_devices());
}

fn start_link(config: DashboardConfig) {
    let Some((ui, mut rng, route)) = with_rt(|rt| {
        (
            rt.ui,
            XorShift::new(rt.rng.next_u64()),
            rt.ui.route.get_untracked(),
        )
    }) else {
        return;
    };
    let link_config = LinkConfig {
        // The broker lets a service user connect only as its name or `<user name>-<suffix>`
        // (mosquitto/conf.d/policy.conf); a random suffix that other holders of the public
        // password cannot guess, so none of them can take this connection over.
        client_id: format!(
            "{}-{:016x}",
            config.username().unwrap_or_default(),
            rng.next_u64()
        ),
        username: config.username(),
        password: config.password(),
        filter: ogm_protocol::topic::filter_all(&config.topic_prefix),
        keep_alive_s: KEEP_ALIVE_S,
    };
    let nominal = route.nominal_hz.unwrap_or(config.nominal_hz);
    with_rt(|rt| {
        let limits = Limits {
            window_us: route.window_us,
            ..Limits::default()
        };
        rt.store = Some(DeviceStore::new(&config.topic_prefix, limits));
        rt.insight.configure(
            event_rules(&route, nominal),
            i64::from(route.rocof_window_ms) * 1000,
        );
        rt.config = Some(config.clone());
    });
    ui.nominal_hz.set(Some(nominal));
    ui.area.set(route.area.unwrap_or_else(|| config.area()));
    ui.conn.set(Conn::Link(LinkState::Connecting));

    let on_event: Rc<dyn Fn(LinkEvent)> = Rc::new(on_link_event);
    match MqttWs::start(config.mqtt_ws_url, link_config, rng.next_u64(), on_event) {
        Ok(link) => {
            with_rt(|rt| rt.link = Some(link));
        }
        Err(e) => ui.conn.set(Conn::Link(LinkState::Offline {
            retry_at_ms: u64::MAX,
            reason: e,
        })),
    }
}

/// `GET /api/devices`: devices the page has not heard yet (silent or offline ones too).
async fn load_devices() {
    let seed = random_seed();
    let views = api::get_retrying(
        "/api/devices",
        wire::devices_from_json,
        || true,
        |_, _| {},
        seed,
    )
    .await;
    if let Some(views) = views {
        with_rt(|rt| {
            if let Some(store) = rt.store.as_mut() {
                store.seed(&views, now_us());
            }
        });
        schedule_frame();
    }
}

fn on_link_event(event: LinkEvent) {
    match event {
        LinkEvent::State(state) => {
            let connected = state == LinkState::Connected;
            let (backfill, came_up) = with_rt(|rt| {
                rt.ui.conn.set(Conn::Link(state));
                let was_up = rt.link_up;
                rt.link_up = connected;
                rt.chart_dirty = true;
                if was_up && !connected {
                    rt.down_since_us = Some(now_us());
                    rt.up_since_us = None;
                }
                let came_up = connected && !was_up;
                if came_up {
                    rt.up_since_us = Some(now_us());
                }
                let backfill = if connected {
                    rt.down_since_us.take()
                } else {
                    None
                };
                (backfill, came_up)
            })
            .unwrap_or_default();
            if came_up {
                // Log entries sent while the link was down (or since the logs view fetched its
                // newest page without a link) come from history: the newest page again, a
                // moment later, once the server has stored what arrived up to now.
                let hole = with_rt(|rt| backfill.or(rt.logs_page_at_us.take())).flatten();
                set_timeout(
                    move || {
                        let job =
                            with_rt(|rt| rt.logs_view.clone().map(|f| (rt.logs_generation, f)))
                                .flatten();
                        if let Some((generation, filter)) = job {
                            spawn_local(load_logs(generation, filter, None, hole));
                        }
                    },
                    Duration::from_millis(JUNCTION_DELAY_MS),
                );
            }
            if let Some(since) = backfill {
                // A moment later, so the server has stored what arrived up to the reconnection.
                set_timeout(
                    move || backfill_gap(since - BACKFILL_MARGIN_US, now_us()),
                    Duration::from_millis(JUNCTION_DELAY_MS),
                );
            }
            schedule_frame();
        }
        LinkEvent::Message {
            topic,
            payload,
            retained,
        } => {
            let started = performance_now();
            with_rt(|rt| {
                let now = now_us();
                let Some(store) = rt.store.as_mut() else {
                    return;
                };
                let Some(msg) = store.ingest_message(&topic, &payload, now, retained) else {
                    return;
                };
                match &msg.payload {
                    Payload::Measurement(m) => {
                        if !retained {
                            rt.insight.push(&msg.device, msg.t_us, m.frequency);
                        }
                        if let Some(page) = rt.device_page.as_mut()
                            && page.device == msg.device
                            && page.range.is_live()
                        {
                            for (field, (series, _)) in page.series.iter_mut() {
                                series.push(msg.t_us, field.of(m), now);
                            }
                        }
                        if let Some(page) = rt.insight_page.as_mut()
                            && page.device == msg.device
                            && page.range.is_live()
                        {
                            page.series.push(msg.t_us, m.frequency, now);
                            page.live_since_us.get_or_insert(msg.t_us);
                        }
                    }
                    Payload::Logs(entry) => {
                        rt.logs
                            .insert(LogLine::live(msg.device.clone(), entry.clone()));
                    }
                    Payload::Status(_) => {}
                }
            });
            schedule_frame();
            add_cost(performance_now() - started, 0.0);
        }
    }
}

fn mark_charts_dirty() {
    with_rt(|rt| rt.chart_dirty = true);
    schedule_frame();
}

fn second_tick() {
    let now = now_ms();
    let mut draw_cost = 0.0;
    let figures_due = with_rt(|rt| {
        draw_cost = rt.chart_draw_cost_ms;
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
        if let Some(page) = rt.device_page.as_mut() {
            for (series, _) in page.series.values_mut() {
                series.prune(now_us);
            }
        }
        if let Some(page) = rt.insight_page.as_mut() {
            page.series.prune(now_us);
        }
        rt.insight.tick(now_us);
        // Ongoing events' durations move on.
        rt.events_shown = u64::MAX;
        rt.chart_dirty = true;
        rt.insight_page.is_some()
    })
    .unwrap_or(false);
    // A heartbeat for index.html's kiosk watchdog, and the size of the WebAssembly memory for
    // soak tests (it only grows: a leak shows here).
    if let Some(w) = web_sys::window() {
        let _ = js_sys::Reflect::set(&w, &"__ogm_alive".into(), &now.into());
        let _ = js_sys::Reflect::set(&w, &"__ogm_draw_ms".into(), &draw_cost.into());
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
        update_figures();
    }
    schedule_frame();
}

pub fn schedule_frame() {
    let pending = with_rt(|rt| std::mem::replace(&mut rt.frame_pending, true));
    if pending == Some(false) {
        request_animation_frame(frame);
    }
}

/// Once per animation frame at most: push what changed into the signals and redraw the charts.
fn frame() {
    let started = performance_now();
    let (new_devices, drew) = with_rt(|rt| {
        rt.frame_pending = false;
        let drew = rt.chart_dirty && rt.maybe_draw();
        // A frame that redraws the charts leaves the cards to the next one: the two together
        // made the page's slowest frames.
        let new = if drew { Vec::new() } else { rt.sync_rows() };
        rt.sync_logs();
        rt.sync_events();
        (new, drew)
    })
    .unwrap_or_default();
    add_cost(0.0, performance_now() - started);
    if drew || with_rt(|rt| !rt.rows_waiting.is_empty()).unwrap_or(false) {
        schedule_frame();
    }
    for id in new_devices {
        let window = with_rt(|rt| rt.ui.route.get_untracked().window_us).unwrap_or(0);
        let now = now_us();
        queue_fill(FillJob {
            device: id.clone(),
            start_us: now - window,
            stop_us: now,
        });
        set_timeout(
            move || {
                queue_fill(FillJob {
                    device: id,
                    start_us: now - JUNCTION_US,
                    stop_us: now_us(),
                })
            },
            Duration::from_millis(JUNCTION_DELAY_MS),
        );
    }
}

impl Runtime {
    /// Copies changed devices into their signals; returns the devices never filled from
    /// history yet.
    fn sync_rows(&mut self) -> Vec<DeviceId> {
        let Some(store) = self.store.as_mut() else {
            return Vec::new();
        };
        let changes = store.take_changes();
        let mut list_changed = false;
        for id in &changes.removed {
            if let Some(sig) = self.rows.remove(id) {
                sig.dispose();
                list_changed = true;
            }
            self.insight.forget(id);
            self.filled.remove(id);
            self.rows_waiting.remove(id);
            self.row_shown_ms.remove(id);
        }
        let mut new = Vec::new();
        let now = now_ms();
        let (min_interval, budget) = if store.diagnostics().rate_per_s > ROW_THROTTLE_RATE {
            (
                ROW_INTERVAL_MS,
                self.rows.len().div_ceil(ROW_FRAMES_PER_INTERVAL).max(1),
            )
        } else {
            (0.0, usize::MAX)
        };
        self.rows_waiting.extend(changes.updated);
        let due = crate::devices::cards_due(
            &self.rows_waiting,
            &self.row_shown_ms,
            now,
            min_interval,
            budget,
        );
        for id in &due {
            self.rows_waiting.remove(id);
            self.row_shown_ms.insert(id.clone(), now);
            let Some(snap) = store.snapshot(id) else {
                continue;
            };
            match self.rows.get(id) {
                Some(sig) => sig.set(snap),
                None => {
                    let sig = match &self.owner {
                        Some(owner) => owner.with(|| RwSignal::new(snap)),
                        None => RwSignal::new(snap),
                    };
                    self.rows.insert(id.clone(), sig);
                    list_changed = true;
                }
            }
            if !self.filled.contains(id) {
                self.filled.insert(id.clone());
                new.push(id.clone());
            }
        }
        if list_changed {
            self.ui.rows.set(
                self.rows
                    .iter()
                    .map(|(id, snap)| Row {
                        id: id.clone(),
                        snap: *snap,
                    })
                    .collect(),
            );
        }
        if changes.diagnostics {
            self.ui.diagnostics.set(store.diagnostics().clone());
        }
        self.chart_dirty |= changes.chart;
        new
    }

    fn sync_logs(&mut self) {
        let Some(filter) = &self.logs_view else {
            return;
        };
        if self.logs.version == self.logs_shown {
            return;
        }
        self.logs_shown = self.logs.version;
        self.ui.logs.set(self.logs.shown(filter, LOG_CAPACITY));
        let end = if self.logs.exhausted() {
            Some("nothing older in the last 30 days")
        } else if self.logs.full() {
            Some("the page holds 2 000 entries at most: narrow the filter to go further back")
        } else {
            None
        };
        if self.ui.logs_end.get_untracked() != end {
            self.ui.logs_end.set(end);
        }
    }

    fn sync_events(&mut self) {
        let version = self.insight.version;
        if version == self.events_shown {
            return;
        }
        self.events_shown = version;
        let mut events = self.insight.events();
        if let Some(page) = &self.insight_page {
            events.extend(page.history_events.iter().cloned());
            events.sort_by_key(|e| std::cmp::Reverse(e.start_us));
        }
        if self.ui.events.with_untracked(|e| *e != events) {
            self.ui.events.set(events);
        }
    }

    /// Redraws the charts if the last draw is old enough (true), else once it is.
    fn maybe_draw(&mut self) -> bool {
        let now = now_ms();
        let window = self.ui.route.with_untracked(|r| r.window_us);
        let traces = if self.overview_canvas.is_some() || self.insight_canvas.is_some() {
            self.store.as_ref().map_or(0, |s| s.devices().len())
        } else {
            1
        };
        let interval = chart::redraw_interval_ms(window, traces, self.chart_draw_cost_ms);
        let wait = interval - (now - self.chart_drawn_ms);
        if wait > 0.0 {
            if !self.chart_deferred {
                self.chart_deferred = true;
                set_timeout(
                    || {
                        with_rt(|rt| rt.chart_deferred = false);
                        schedule_frame();
                    },
                    Duration::from_millis(wait.ceil() as u64),
                );
            }
            return false;
        }
        self.chart_dirty = false;
        self.chart_drawn_ms = now;
        let now_us = (now * 1000.0) as i64;
        let started = performance_now();
        self.draw_overview(now_us);
        self.draw_device_page(now_us);
        self.draw_insight(now_us);
        self.chart_draw_cost_ms = performance_now() - started;
        true
    }

    fn nominal(&self) -> f64 {
        self.ui
            .nominal_hz
            .get_untracked()
            .or(self.config.as_ref().map(|c| c.nominal_hz))
            .unwrap_or(50.0)
    }

    /// The bands in force: the area's, around the nominal frequency.
    fn bands(&self) -> Bands {
        Bands::of(self.ui.area.get_untracked(), self.nominal())
    }

    /// The devices the overview shows: all, or the kiosk's one.
    fn overview_traces(&self) -> Vec<TraceInput<'_>> {
        let focus = self.ui.route.with_untracked(|r| {
            if r.kiosk && r.view == crate::route::View::Overview {
                r.device.clone()
            } else {
                None
            }
        });
        let Some(store) = &self.store else {
            return Vec::new();
        };
        store
            .devices()
            .iter()
            .filter(|(id, _)| focus.as_ref().is_none_or(|f| f == *id))
            .map(|(id, d)| TraceInput {
                id,
                series: &d.frequency,
            })
            .collect()
    }

    fn draw_overview(&mut self, now_us: i64) {
        let Some(canvas) = self.overview_canvas.clone() else {
            return;
        };
        let window = self.ui.route.with_untracked(|r| r.window_us);
        let nominal = self.nominal();
        let width = usize::try_from(canvas.client_width()).unwrap_or(0).max(1);
        let mut crowd = std::mem::take(&mut self.crowd);
        let traces = self.overview_traces();
        let (spec, shown) =
            chart::live_frequency(&traces, now_us, window, nominal, width, &mut crowd);
        let t0 = now_us - window;
        let facts = ChartFacts {
            start_us: t0,
            stop_us: now_us,
            samples: traces.iter().map(|t| t.series.len()).sum(),
            max_gap_ms: 0,
            max_gap_at_us: 0,
            newest_us: 0,
        };
        let (gap, at) = traces
            .iter()
            .map(|t| t.series.max_inner_gap(t0, now_us))
            .max()
            .unwrap_or((0, 0));
        let facts = ChartFacts {
            max_gap_ms: gap / 1000,
            max_gap_at_us: at,
            newest_us: traces
                .iter()
                .filter_map(|t| t.series.last().map(|s| s.last.max(s.t)))
                .max()
                .unwrap_or(0),
            ..facts
        };
        self.crowd = crowd;
        chart::draw(&canvas, &spec);
        if self.ui.live_facts.get_untracked() != facts {
            self.ui.live_facts.set(facts);
        }
        if self.ui.live_shown.with_untracked(|s| *s != shown) {
            self.ui.live_shown.set(shown);
        }
    }

    fn draw_device_page(&mut self, now_us: i64) {
        let nominal = self.nominal();
        let tz = self.ui.tz_offset_min.get_untracked();
        let Some(page) = &self.device_page else {
            return;
        };
        let (t0, t1) = page.range.resolve(now_us);
        let mut all_facts = BTreeMap::new();
        for (field, (series, interval)) in &page.series {
            let (gap, at) = series.max_inner_gap(t0, t1);
            let facts = ChartFacts {
                start_us: t0,
                stop_us: t1,
                samples: series.len(),
                max_gap_ms: gap / 1000,
                max_gap_at_us: at,
                newest_us: series.last().map_or(0, |s| s.last.max(s.t)),
            };
            all_facts.insert(*field, facts);
            let Some(canvas) = self.field_canvases.get(field) else {
                continue;
            };
            let columns = usize::try_from(canvas.client_width()).unwrap_or(0).max(1);
            let segs = chart::reduce(
                series.iter(),
                t0,
                t1,
                columns,
                chart::gap_for(series, *interval),
            );
            let mut spec = ChartSpec::new(t0, t1, XLabels::Clock { tz_offset_min: tz });
            let values = segs.iter().flatten().flat_map(|c| [c.min, c.max]);
            let ((lo, hi), decimals) = match field {
                Field::Frequency => (
                    chart::centred_range(values, nominal, chart::MIN_HALF_SPAN_HZ),
                    3,
                ),
                Field::Voltage => (chart::padded_range(values, 2.0), 1),
                Field::Current => (chart::padded_range(values, 0.2), 2),
                Field::Power => (chart::padded_range(values, 20.0), 0),
            };
            spec.y_min = lo;
            spec.y_max = hi;
            spec.y_decimals = decimals;
            if *field == Field::Frequency {
                spec.rules.push(Rule {
                    y: nominal,
                    color: None,
                    label: String::new(),
                });
            }
            spec.add_envelope(&segs, chart::PALETTE[0], |v| v);
            chart::draw(canvas, &spec);
        }
        if self.ui.field_facts.with_untracked(|f| *f != all_facts) {
            self.ui.field_facts.set(all_facts);
        }
    }

    fn draw_insight(&mut self, now_us: i64) {
        let bands = self.bands();
        let to_mhz = |c: chart::Column| chart::Column {
            t: c.t,
            min: bands.deviation_mhz(c.min),
            mean: bands.deviation_mhz(c.mean),
            max: bands.deviation_mhz(c.max),
        };
        if let Some(canvas) = self.insight_canvas.clone() {
            let window = self.ui.route.with_untracked(|r| r.window_us);
            let width = usize::try_from(canvas.client_width()).unwrap_or(0).max(1);
            let mut crowd = std::mem::take(&mut self.crowd);
            let traces = self.overview_traces();
            let mut spec = ChartSpec::new(now_us - window, now_us, XLabels::Relative);
            let (values, shown) =
                spec.add_live(&traces, width, &mut crowd, |f| bands.deviation_mhz(f));
            drop(traces);
            self.crowd = crowd;
            finish_deviation_chart(&mut spec, values, &bands);
            chart::draw(&canvas, &spec);
            if self.ui.live_shown.with_untracked(|s| *s != shown) {
                self.ui.live_shown.set(shown);
            }
        }
        if let (Some(canvas), Some(page)) = (self.insight_range_canvas.clone(), &self.insight_page)
        {
            let tz = self.ui.tz_offset_min.get_untracked();
            let (t0, t1) = page.range.resolve(now_us);
            let columns = usize::try_from(canvas.client_width()).unwrap_or(0).max(1);
            let segs: Vec<Vec<chart::Column>> = chart::reduce(
                page.series.iter(),
                t0,
                t1,
                columns,
                chart::gap_for(&page.series, page.interval_us),
            )
            .into_iter()
            .map(|s| s.into_iter().map(to_mhz).collect())
            .collect();
            let mut spec = ChartSpec::new(t0, t1, XLabels::Clock { tz_offset_min: tz });
            let values: Vec<f64> = segs.iter().flatten().flat_map(|c| [c.min, c.max]).collect();
            spec.add_envelope(&segs, chart::color_of(&page.device), |v| v);
            finish_deviation_chart(&mut spec, values, &bands);
            chart::draw(&canvas, &spec);
        }
    }
}

/// A deviation chart's y range (at least ±250 mHz, the same in every area, so that wider
/// limits such as Great Britain's ±500 mHz do not flatten an ordinary day) and its bands.
fn finish_deviation_chart(spec: &mut ChartSpec, values: Vec<f64>, bands: &Bands) {
    let min_half = bands.normal_mhz.max(200.0) * 1.25;
    let (lo, hi) = chart::centred_range(values.into_iter(), 0.0, min_half);
    spec.y_min = lo;
    spec.y_max = hi;
    spec.y_decimals = 0;
    add_band_marks(spec, bands);
}

/// The dead band shaded, the band limits as labelled rules.
fn add_band_marks(spec: &mut ChartSpec, b: &Bands) {
    let (x0, x1) = (-spec.span_s, 0.0);
    let db = b.deadband_mhz;
    let green = (60, 180, 110);
    let amber = (230, 160, 40);
    let red = (220, 60, 70);
    spec.fills.insert(
        0,
        chart::Fill {
            color: green,
            alpha: 0.12,
            polygon: vec![(x0, db), (x1, db), (x1, -db), (x0, -db)],
        },
    );
    let n = b.nominal_hz;
    let hz = |mhz: f64| n + mhz / 1000.0;
    for (mhz, color, label) in [
        (b.normal_mhz, green, format!("±{:.0} mHz", b.normal_mhz)),
        (b.limit_mhz, amber, format!("{:.1} Hz", hz(b.limit_mhz))),
        (-b.normal_mhz, green, String::new()),
        (-b.limit_mhz, amber, format!("{:.1} Hz", hz(-b.limit_mhz))),
        (
            -b.shedding_mhz,
            red,
            format!("{:.1} Hz load shedding", hz(-b.shedding_mhz)),
        ),
    ] {
        spec.rules.push(Rule {
            y: mhz,
            color: Some(color),
            label,
        });
    }
    spec.rules.push(Rule {
        y: 0.0,
        color: None,
        label: String::new(),
    });
}

/// Recomputes the insight view's figures.
fn update_figures() {
    with_rt(|rt| {
        let bands = rt.bands();
        let nominal = bands.nominal_hz;
        let now = now_us();
        let link_up = rt.link_up;
        let Some(store) = &rt.store else {
            return;
        };
        let mut readings = Vec::new();
        for (id, _) in store.devices().iter() {
            let Some(snap) = store.snapshot(id) else {
                continue;
            };
            if link_up
                && Liveness::of(&snap, now) == Liveness::Live
                && let Some(f) = snap.frequency
            {
                readings.push((id.clone(), f));
            }
        }
        let page = rt.insight_page.as_ref();
        let device = page.map(|p| p.device.clone());
        let frequency = device
            .as_ref()
            .and_then(|d| readings.iter().find(|(id, _)| id == d).map(|r| r.1));
        let figures = Figures {
            rocof: device
                .as_ref()
                .and_then(|d| rt.insight.rocof(d))
                .filter(|_| frequency.is_some()),
            frequency,
            grid_time_s: page.filter(|p| !p.series.is_empty()).map(|p| {
                grid_time_s(
                    p.series.iter(),
                    nominal,
                    chart::gap_for(&p.series, p.interval_us),
                )
            }),
            spread: spread_mhz(readings.iter().map(|r| r.1)),
            quality: page.and_then(|p| Quality::of(p.series.iter(), &bands)),
            histogram: page
                .filter(|p| !p.series.is_empty())
                .map(|p| Histogram::of(p.series.iter(), nominal, bands.limit_mhz, 10.0)),
            readings,
            device,
        };
        if rt.ui.figures.with_untracked(|f| *f != figures) {
            rt.ui.figures.set(figures);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// History: the overview's fill queue, pages, backfill.

fn queue_fill(job: FillJob) {
    let start = with_rt(|rt| {
        if rt.fills.contains(&job) || rt.fills.len() > 2 * Limits::default().max_devices {
            return false;
        }
        rt.fills.push_back(job);
        !std::mem::replace(&mut rt.fill_worker, true)
    })
    .unwrap_or(false);
    if start {
        spawn_local(fill_worker());
    }
}

/// Every device's window again (after the window changed).
fn queue_window_fills() {
    let jobs = with_rt(|rt| {
        let now = now_us();
        let window = rt.ui.route.with_untracked(|r| r.window_us);
        rt.store
            .as_ref()
            .map(|s| {
                s.devices()
                    .keys()
                    .map(|id| FillJob {
                        device: id.clone(),
                        start_us: now - window,
                        stop_us: now,
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    })
    .unwrap_or_default();
    for j in jobs {
        queue_fill(j);
    }
}

/// Loads queued overview fills one at a time (the server is not flooded after a reconnect of
/// a page watching a hundred devices).
async fn fill_worker() {
    loop {
        let next = with_rt(|rt| {
            let job = rt.fills.pop_front();
            if job.is_none() {
                rt.fill_worker = false;
            }
            let columns = rt
                .overview_canvas
                .as_ref()
                .and_then(|c| usize::try_from(c.client_width()).ok())
                .filter(|w| *w > 0)
                .unwrap_or(1_200);
            job.map(|j| (j, columns.min(Limits::default().slots), rt.rng.next_u64()))
        })
        .flatten();
        let Some((job, columns, seed)) = next else {
            return;
        };
        let url = wire::history_url(
            &job.device,
            Field::Frequency,
            job.start_us,
            job.stop_us,
            columns,
        );
        let device = job.device.clone();
        let wanted = move || {
            with_rt(|rt| {
                rt.store
                    .as_ref()
                    .is_some_and(|s| s.devices().contains_key(&device))
            })
            .unwrap_or(false)
        };
        let answer =
            api::get_retrying(&url, HistoryAnswer::from_json, wanted, |_, _| {}, seed).await;
        if let Some(a) = answer {
            with_rt(|rt| {
                if let Some(store) = rt.store.as_mut() {
                    store.fill_history(&job.device, &a.points, a.interval_us, now_us());
                }
                rt.chart_dirty = true;
            });
            schedule_frame();
        }
    }
}

/// After the link was down from `start` to `stop`: fetch that stretch for every chart.
fn backfill_gap(start: i64, stop: i64) {
    let devices: Vec<DeviceId> = with_rt(|rt| {
        rt.store
            .as_ref()
            .map(|s| s.devices().keys().cloned().collect())
            .unwrap_or_default()
    })
    .unwrap_or_default();
    for device in devices {
        queue_fill(FillJob {
            device,
            start_us: start,
            stop_us: stop,
        });
    }
    let page = with_rt(|rt| {
        rt.device_page
            .as_ref()
            .filter(|p| p.range.is_live())
            .map(|p| (p.generation, p.device.clone()))
    })
    .flatten();
    if let Some((generation, device)) = page {
        for field in Field::ALL {
            spawn_local(load_device_field(
                generation,
                device.clone(),
                field,
                start,
                stop,
                false,
            ));
        }
    }
    let insight = with_rt(|rt| {
        rt.insight_page
            .as_ref()
            .filter(|p| p.range.is_live())
            .map(|p| (p.generation, p.device.clone()))
    })
    .flatten();
    if let Some((generation, device)) = insight {
        spawn_local(load_insight(generation, device, start, stop, false));
    }
}

fn device_page_alive(generation: u64) -> bool {
    with_rt(|rt| {
        rt.device_page
            .as_ref()
            .is_some_and(|p| p.generation == generation)
    })
    .unwrap_or(false)
}

fn insight_page_alive(generation: u64) -> bool {
    with_rt(|rt| {
        rt.insight_page
            .as_ref()
            .is_some_and(|p| p.generation == generation)
    })
    .unwrap_or(false)
}

fn logs_view_alive(generation: u64) -> bool {
    with_rt(|rt| rt.logs_view.is_some() && rt.logs_generation == generation).unwrap_or(false)
}

fn max_points_for(canvas: Option<&HtmlCanvasElement>) -> usize {
    canvas
        .and_then(|c| usize::try_from(c.client_width()).ok())
        .filter(|w| *w > 0)
        .unwrap_or(1_000)
}

/// Opens the device page for `device` over `range`: fresh series, then the history loads.
pub fn open_device_page(device: DeviceId, range: TimeRange) {
    let Some(generation) = with_rt(|rt| {
        rt.generation += 1;
        let now = now_us();
        let (t0, t1) = range.resolve(now);
        let series = Field::ALL
            .into_iter()
            .map(|f| {
                let s = match range {
                    TimeRange::Last(span) => Series::sliding(span.micros(), PAGE_SLOTS),
                    TimeRange::Custom { .. } => Series::fixed(t0, t1, PAGE_SLOTS),
                };
                (f, (s, 0))
            })
            .collect();
        rt.device_page = Some(DevicePage {
            generation: rt.generation,
            device: device.clone(),
            range,
            series,
        });
        rt.chart_dirty = true;
        rt.ui.field_state.set(
            Field::ALL
                .into_iter()
                .map(|f| (f, LoadState::Loading))
                .collect(),
        );
        rt.generation
    }) else {
        return;
    };
    let (t0, t1) = range.resolve(now_us());
    for field in Field::ALL {
        spawn_local(load_device_field(
            generation,
            device.clone(),
            field,
            t0,
            t1,
            true,
        ));
    }
    if range.is_live() {
        set_timeout(
            move || {
                for field in Field::ALL {
                    spawn_local(load_device_field(
                        generation,
                        device.clone(),
                        field,
                        t1 - JUNCTION_US,
                        now_us(),
                        false,
                    ));
                }
            },
            Duration::from_millis(JUNCTION_DELAY_MS),
        );
    }
    schedule_frame();
}

/// Closes the device page (its view is gone).
pub fn close_device_page() {
    with_rt(|rt| rt.device_page = None);
}

/// Registers (or with None, removes) a device page canvas.
pub fn set_field_canvas(field: Field, canvas: Option<HtmlCanvasElement>) {
    with_rt(|rt| {
        match canvas {
            Some(c) => {
                rt.field_canvases.insert(field, c);
            }
            None => {
                rt.field_canvases.remove(&field);
            }
        }
        rt.chart_dirty = true;
    });
    schedule_frame();
}

async fn load_device_field(
    generation: u64,
    device: DeviceId,
    field: Field,
    start: i64,
    stop: i64,
    report: bool,
) {
    let Some((max_points, seed, ui)) = with_rt(|rt| {
        let canvas = rt.field_canvases.get(&field);
        (max_points_for(canvas), rt.rng.next_u64(), rt.ui)
    }) else {
        return;
    };
    let url = wire::history_url(&device, field, start, stop, max_points);
    let set_state = move |s: LoadState| {
        if report && device_page_alive(generation) {
            ui.field_state.update(|m| {
                m.insert(field, s);
            });
        }
    };
    let answer = api::get_retrying(
        &url,
        HistoryAnswer::from_json,
        move || device_page_alive(generation),
        |error, retry_at_ms| {
            set_state(LoadState::Retrying {
                error: error.to_owned(),
                retry_at_ms,
            })
        },
        seed,
    )
    .await;
    let Some(a) = answer else {
        if device_page_alive(generation) {
            set_state(LoadState::Unavailable(format!("no history for {device}")));
        }
        return;
    };
    let points = a.points.len();
    with_rt(|rt| {
        if let Some(page) = rt.device_page.as_mut()
            && page.generation == generation
            && let Some((series, interval)) = page.series.get_mut(&field)
        {
            series.fill(&a.points, a.interval_us, now_us());
            if report {
                *interval = a.interval_us;
            }
        }
        rt.chart_dirty = true;
    });
    set_state(LoadState::Ready {
        points,
        interval_us: a.interval_us,
    });
    schedule_frame();
}

/// Opens the insight page with `device` as its reference over `range`.
pub fn open_insight_page(device: DeviceId, range: TimeRange) {
    let Some(generation) = with_rt(|rt| {
        rt.generation += 1;
        let (t0, t1) = range.resolve(now_us());
        let series = match range {
            TimeRange::Last(span) => Series::sliding(span.micros(), PAGE_SLOTS),
            TimeRange::Custom { .. } => Series::fixed(t0, t1, PAGE_SLOTS),
        };
        rt.insight_page = Some(InsightPage {
            generation: rt.generation,
            device,
            range,
            series,
            interval_us: 0,
            history_events: Vec::new(),
            live_since_us: None,
        });
        rt.ui.insight_state.set(LoadState::Loading);
        rt.events_shown = u64::MAX;
        rt.generation
    }) else {
        return;
    };
    let (t0, t1) = range.resolve(now_us());
    let device = with_rt(|rt| rt.insight_page.as_ref().map(|p| p.device.clone())).flatten();
    if let Some(device) = device {
        spawn_local(load_insight(generation, device.clone(), t0, t1, true));
        if range.is_live() {
            set_timeout(
                move || {
                    spawn_local(load_insight(
                        generation,
                        device,
                        t1 - JUNCTION_US,
                        now_us(),
                        false,
                    ))
                },
                Duration::from_millis(JUNCTION_DELAY_MS),
            );
        }
    }
    update_figures();
    schedule_frame();
}

pub fn close_insight_page() {
    with_rt(|rt| {
        rt.insight_page = None;
        rt.events_shown = u64::MAX;
    });
}

/// Registers (or with None, removes) the insight view's live chart (`range`: false) or its
/// range chart (true).
pub fn set_insight_canvas(range: bool, canvas: Option<HtmlCanvasElement>) {
    with_rt(|rt| {
        if range {
            rt.insight_range_canvas = canvas;
        } else {
            rt.insight_canvas = canvas;
        }
        rt.chart_dirty = true;
    });
    schedule_frame();
}

pub fn set_overview_canvas(canvas: Option<HtmlCanvasElement>) {
    with_rt(|rt| {
        rt.overview_canvas = canvas;
        rt.chart_dirty = true;
    });
    schedule_frame();
}

async fn load_insight(generation: u64, device: DeviceId, start: i64, stop: i64, report: bool) {
    let Some((seed, ui)) = with_rt(|rt| (rt.rng.next_u64(), rt.ui)) else {
        return;
    };
    let url = wire::history_url(&device, Field::Frequency, start, stop, PAGE_SLOTS);
    let answer = api::get_retrying(
        &url,
        HistoryAnswer::from_json,
        move || insight_page_alive(generation),
        |error, retry_at_ms| {
            if report {
                ui.insight_state.set(LoadState::Retrying {
                    error: error.to_owned(),
                    retry_at_ms,
                });
            }
        },
        seed,
    )
    .await;
    let Some(a) = answer else {
        if report && insight_page_alive(generation) {
            ui.insight_state
                .set(LoadState::Unavailable(format!("no history for {device}")));
        }
        return;
    };
    let points = a.points.len();
    with_rt(|rt| {
        let rules = *rt.insight.rules();
        if let Some(page) = rt.insight_page.as_mut()
            && page.generation == generation
        {
            page.series.fill(&a.points, a.interval_us, now_us());
            if report {
                page.interval_us = a.interval_us;
                let until = page.live_since_us.unwrap_or(i64::MAX);
                page.history_events =
                    ogm_grid::history_events(&device, a.points.iter(), until, &rules);
            }
        }
        rt.events_shown = u64::MAX;
    });
    if report {
        ui.insight_state.set(LoadState::Ready {
            points,
            interval_us: a.interval_us,
        });
    }
    update_figures();
    schedule_frame();
}

/// The logs view is open with `filter` (or closed, with None): older entries are fetched.
pub fn set_logs_view(filter: Option<LogFilter>) {
    let fetch = with_rt(|rt| {
        rt.logs_generation += 1;
        rt.logs_view = filter.clone();
        rt.logs_shown = u64::MAX;
        rt.logs.reset_view(rt.up_since_us);
        rt.logs_page_at_us = (!rt.link_up).then(now_us);
        rt.logs_generation
    });
    schedule_frame();
    if let (Some(generation), Some(filter)) = (fetch, filter) {
        spawn_local(load_logs(generation, filter, None, None));
    }
}

/// Fetches the page before what is complete for the filter on screen.
pub fn load_older_logs() {
    let job = with_rt(|rt| {
        if rt.logs.exhausted() || rt.logs.full() {
            return None;
        }
        rt.logs_view
            .clone()
            .map(|f| (rt.logs_generation, f, rt.logs.older_stop()))
    })
    .flatten();
    if let Some((generation, filter, oldest)) = job {
        spawn_local(load_logs(generation, filter, oldest, None));
    }
}

async fn load_logs(generation: u64, filter: LogFilter, stop: Option<i64>, hole_from: Option<i64>) {
    let Some((seed, ui)) = with_rt(|rt| (rt.rng.next_u64(), rt.ui)) else {
        return;
    };
    ui.logs_state.set(LoadState::Loading);
    let url = wire::logs_url(filter.device.as_ref(), filter.level, stop, LOG_PAGE as u32);
    let rows = api::get_retrying(
        &url,
        wire::logs_from_json,
        move || logs_view_alive(generation),
        |error, retry_at_ms| {
            ui.logs_state.set(LoadState::Retrying {
                error: error.to_owned(),
                retry_at_ms,
            })
        },
        seed,
    )
    .await;
    let Some(answer) = rows else {
        return;
    };
    let n = answer.entries.len();
    // An answer cut at the server's byte budget holds fewer entries than asked for and older
    // ones remain: a full page for what it holds.
    let page = if answer.truncated { n } else { LOG_PAGE };
    with_rt(|rt| {
        let lines = answer.entries.into_iter().map(LogLine::history).collect();
        if rt.logs_generation == generation {
            rt.logs.history_page(lines, stop, page, hole_from);
        } else {
            for l in lines {
                rt.logs.insert(l);
            }
        }
    });
    ui.logs_state.set(LoadState::Ready {
        points: n,
        interval_us: 0,
    });
    schedule_frame();
}
