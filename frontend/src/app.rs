//! The page: Leptos components, and the glue that feeds them from the MQTT link. Browser only.
//!
//! Data flow: [`MqttWs`] → [`DeviceStore::ingest`] (plain Rust, no signals) → once per animation
//! frame, and only if something changed, the changed devices' snapshots are copied into their
//! own signals and the chart is redrawn from the ring buffers. So a burst of messages costs one
//! DOM update and one redraw, and a row only re-renders when its own device changed.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use leptos::html::Canvas;
use leptos::prelude::*;
use leptos::task::spawn_local;
use ogm_protocol::DeviceId;

use crate::api;
use crate::backoff::{Backoff, XorShift};
use crate::chart;
use crate::config::DashboardConfig;
use crate::devices::{DeviceSnapshot, DeviceStore, Diagnostics, Limits};
use crate::format::{self, Band};
use crate::mqtt_link::{KEEP_ALIVE_S, LinkConfig, LinkEvent, LinkState};
use crate::mqtt_ws::MqttWs;

/// What the connection indicator shows.
#[derive(Debug, Clone, PartialEq)]
enum Conn {
    LoadingConfig,
    ConfigFailed { error: String, retry_at_ms: f64 },
    Link(LinkState),
}

/// One device in the views: its id and its own signal.
#[derive(Debug, Clone)]
struct Row {
    id: DeviceId,
    snap: RwSignal<DeviceSnapshot>,
}

/// The signals the views read. All `Copy`.
#[derive(Debug, Clone, Copy)]
struct Ui {
    conn: RwSignal<Conn>,
    now_ms: RwSignal<f64>,
    nominal_hz: RwSignal<Option<f64>>,
    rows: RwSignal<Vec<Row>>,
    diagnostics: RwSignal<Diagnostics>,
    canvas: NodeRef<Canvas>,
}

/// The non-reactive side: the store, the link, and the per-device signals.
struct Runtime {
    ui: Ui,
    owner: Option<Owner>,
    store: Option<DeviceStore>,
    nominal_hz: f64,
    rows: BTreeMap<DeviceId, RwSignal<DeviceSnapshot>>,
    frame_pending: bool,
    chart_dirty: bool,
    /// When the chart was last drawn, ms.
    chart_drawn_ms: f64,
    /// A frame is already scheduled for when the chart may be drawn again.
    chart_deferred: bool,
    link: Option<MqttWs>,
}

type Shared = Rc<RefCell<Runtime>>;

/// The chart is redrawn at most this often, ms (cards and table follow every frame).
const CHART_MIN_INTERVAL_MS: f64 = 200.0;

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn random_seed() -> u64 {
    (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64
}

/// The whole dashboard.
#[component]
pub fn App() -> impl IntoView {
    let ui = Ui {
        conn: RwSignal::new(Conn::LoadingConfig),
        now_ms: RwSignal::new(now_ms()),
        nominal_hz: RwSignal::new(None),
        rows: RwSignal::new(Vec::new()),
        diagnostics: RwSignal::new(Diagnostics::default()),
        canvas: NodeRef::new(),
    };
    let rt: Shared = Rc::new(RefCell::new(Runtime {
        ui,
        owner: Owner::current(),
        store: None,
        nominal_hz: 50.0,
        rows: BTreeMap::new(),
        frame_pending: false,
        chart_dirty: false,
        chart_drawn_ms: 0.0,
        chart_deferred: false,
        link: None,
    }));

    // The one-second clock: relative times, retry countdowns, the message rate, and sliding the
    // chart window even when nothing arrives.
    {
        let rt = rt.clone();
        let _ = set_interval_with_handle(move || second_tick(&rt), Duration::from_secs(1));
    }
    spawn_local(boot(rt));

    view! {
        <header class="app-header">
            <h1>"Open Grid Monitor"</h1>
            <ConnState conn=ui.conn now_ms=ui.now_ms />
            <span
                id="nominal"
                data-nominal-hz=move || ui.nominal_hz.get().map(|n| n.to_string())
            >
                {move || ui.nominal_hz.get().map(|n| format!("nominal {n} Hz")).unwrap_or_default()}
            </span>
        </header>
        <ConfigError conn=ui.conn />
        <main>
            <Overview ui=ui />
            <DeviceTable rows=ui.rows now_ms=ui.now_ms />
        </main>
        <DiagnosticsPanel diagnostics=ui.diagnostics />
    }
}

/// `#conn-state`: `data-state` is `connected`, `connecting` or `disconnected`.
#[component]
fn ConnState(
    /// What the link is doing.
    conn: RwSignal<Conn>,
    /// The page clock, for retry countdowns.
    now_ms: RwSignal<f64>,
) -> impl IntoView {
    let state = move || match conn.get() {
        Conn::LoadingConfig => "connecting",
        Conn::Link(LinkState::Connecting) => "connecting",
        Conn::Link(LinkState::Connected) => "connected",
        Conn::ConfigFailed { .. } | Conn::Link(LinkState::Offline { .. }) => "disconnected",
    };
    let text = move || {
        let now = now_ms.get();
        match conn.get() {
            Conn::LoadingConfig => "loading configuration…".to_owned(),
            Conn::ConfigFailed { retry_at_ms, .. } => {
                match format::seconds_until(retry_at_ms, now) {
                    0 => "no configuration — retrying now".to_owned(),
                    s => format!("no configuration — retrying in {s} s"),
                }
            }
            Conn::Link(LinkState::Connecting) => "connecting…".to_owned(),
            Conn::Link(LinkState::Connected) => "live".to_owned(),
            Conn::Link(LinkState::Offline { retry_at_ms, .. }) => {
                match format::seconds_until(retry_at_ms as f64, now) {
                    0 => "offline — retrying now".to_owned(),
                    s => format!("offline — retrying in {s} s"),
                }
            }
        }
    };
    let title = move || match conn.get() {
        Conn::Link(LinkState::Offline { reason, .. }) => Some(reason),
        Conn::ConfigFailed { error, .. } => Some(error),
        _ => None,
    };
    view! {
        <span id="conn-state" data-state=state title=title>
            {text}
        </span>
    }
}

/// `#config-error`: why the configuration could not be loaded, while that is the case.
#[component]
fn ConfigError(
    /// What the link is doing.
    conn: RwSignal<Conn>,
) -> impl IntoView {
    move || match conn.get() {
        Conn::ConfigFailed { error, .. } => Some(view! {
            <div id="config-error" role="alert">
                {format!("Cannot load the dashboard configuration: {error}")}
            </div>
        }),
        _ => None,
    }
}

/// Device cards and the live chart.
#[component]
fn Overview(
    /// The page's signals.
    ui: Ui,
) -> impl IntoView {
    let nominal = ui.nominal_hz;
    view! {
        <section id="overview">
            <h2>"Overview"</h2>
            <Show when=move || ui.rows.with(|r| r.is_empty())>
                <p class="empty">"Waiting for devices…"</p>
            </Show>
            <div id="device-cards">
                <For
                    each=move || ui.rows.get()
                    key=|row| row.id.clone()
                    children=move |row| view! { <DeviceCard snap=row.snap nominal_hz=nominal /> }
                />
            </div>
            <div class="chart-box">
                <canvas id="live-chart" node_ref=ui.canvas></canvas>
            </div>
            <ul id="chart-legend">
                <For
                    each=move || ui.rows.get()
                    key=|row| row.id.clone()
                    children=move |row| {
                        let color = chart::css_color(chart::color_of(&row.id));
                        view! {
                            <li data-device-id=row.id.to_string()>
                                <span class="swatch" style=format!("background-color: {color}")></span>
                                {row.id.to_string()}
                            </li>
                        }
                    }
                />
            </ul>
        </section>
    }
}

/// `.device-card`: the frequency, large, and its deviation, coloured by band.
#[component]
fn DeviceCard(
    /// The device.
    snap: RwSignal<DeviceSnapshot>,
    /// Nominal frequency, once known.
    nominal_hz: RwSignal<Option<f64>>,
) -> impl IntoView {
    let id = snap.with_untracked(|s| s.id.to_string());
    let name = id.clone();
    let class = move || {
        let s = snap.get();
        let band = match (s.frequency, nominal_hz.get()) {
            (Some(f), Some(n)) => Band::of(f, n).css_class(),
            _ => "band-unknown",
        };
        let offline = if s.online == Some(false) {
            " offline"
        } else {
            ""
        };
        format!("device-card {band}{offline}")
    };
    let freq = move || snap.with(|s| s.frequency);
    let deviation = move || match (freq(), nominal_hz.get()) {
        (Some(f), Some(n)) => Some(((f - n) * 1000.0, format::deviation(f, n))),
        _ => None,
    };
    view! {
        <div class=class data-device-id=id>
            <div class="device-name">{name}</div>
            <span class="freq" data-frequency=move || freq().map(|f| f.to_string())>
                {move || freq().map_or_else(|| "— Hz".to_owned(), format::frequency)}
            </span>
            <span
                class="deviation"
                data-deviation-mhz=move || deviation().map(|d| format!("{:.1}", d.0))
            >
                {move || deviation().map(|d| d.1).unwrap_or_default()}
            </span>
        </div>
    }
}

/// `#devices`: one row per device.
#[component]
fn DeviceTable(
    /// The devices.
    rows: RwSignal<Vec<Row>>,
    /// The page clock, for "last seen".
    now_ms: RwSignal<f64>,
) -> impl IntoView {
    view! {
        <section id="device-table">
            <h2>"Devices"</h2>
            <table id="devices">
                <thead>
                    <tr>
                        <th>"Device"</th>
                        <th>"State"</th>
                        <th>"Last seen"</th>
                        <th>"RSSI"</th>
                        <th>"Free heap"</th>
                        <th>"Voltage"</th>
                        <th>"Current"</th>
                        <th>"Power"</th>
                    </tr>
                </thead>
                <tbody>
                    <For
                        each=move || rows.get()
                        key=|row| row.id.clone()
                        children=move |row| view! { <DeviceRow snap=row.snap now_ms=now_ms /> }
                    />
                </tbody>
            </table>
        </section>
    }
}

/// One `<tr>` of `#devices`.
#[component]
fn DeviceRow(
    /// The device.
    snap: RwSignal<DeviceSnapshot>,
    /// The page clock, for "last seen".
    now_ms: RwSignal<f64>,
) -> impl IntoView {
    let id = snap.with_untracked(|s| s.id.to_string());
    let name = id.clone();
    let online = move || snap.with(|s| s.online != Some(false));
    let cell = move |f: fn(&DeviceSnapshot) -> String| move || snap.with(f);
    view! {
        <tr data-device-id=id>
            <td class="device">{name}</td>
            <td class="online" data-online=move || online().to_string()>
                {move || if online() { "online" } else { "offline" }}
            </td>
            <td class="last-seen">
                {move || format::ago(now_ms.get() - snap.with(|s| s.last_seen_us) as f64 / 1000.0)}
            </td>
            <td class="rssi">{cell(|s| format::rssi(s.rssi))}</td>
            <td class="heap">{cell(|s| format::heap(s.free_heap))}</td>
            <td class="voltage">{cell(|s| format::voltage(s.voltage))}</td>
            <td class="current">{cell(|s| format::current(s.current))}</td>
            <td class="power">{cell(|s| format::power(s.power))}</td>
        </tr>
    }
}

/// `#diagnostics`: the message rate and ignored messages by reason.
#[component]
fn DiagnosticsPanel(
    /// The counters.
    diagnostics: RwSignal<Diagnostics>,
) -> impl IntoView {
    let rate = move || diagnostics.with(|d| d.rate_per_s);
    let ignored = move || diagnostics.with(|d| d.ignored_total);
    let reasons =
        move || diagnostics.with(|d| d.ignored.iter().map(|(r, n)| (*r, *n)).collect::<Vec<_>>());
    view! {
        <div id="diagnostics">
            <span id="diag-rate" data-rate=move || format!("{:.1}", rate())>
                {move || format!("{:.1} msg/s", rate())}
            </span>
            <span>
                "ignored "
                <span id="diag-ignored" data-count=move || ignored().to_string()>
                    {move || ignored().to_string()}
                </span>
            </span>
            <For
                each=reasons
                key=|(reason, n)| (*reason, *n)
                children=|(reason, n)| {
                    view! {
                        <span class="diag-reason">
                            {reason} " " <span data-counter=reason>{n.to_string()}</span>
                        </span>
                    }
                }
            />
        </div>
    }
}

/// Fetches the configuration (retrying with backoff until it works), then starts the link.
async fn boot(rt: Shared) {
    let ui = rt.borrow().ui;
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
    start_link(&rt, config);
}

fn start_link(rt: &Shared, config: DashboardConfig) {
    let ui = rt.borrow().ui;
    let mut rng = XorShift::new(random_seed());
    let link_config = LinkConfig {
        client_id: format!("ogm-dash-{:08x}", rng.next_u64() as u32),
        username: config.username(),
        password: config.password(),
        filter: ogm_protocol::topic::filter_all(&config.topic_prefix),
        keep_alive_s: KEEP_ALIVE_S,
    };
    {
        let mut me = rt.borrow_mut();
        me.store = Some(DeviceStore::new(&config.topic_prefix, Limits::default()));
        me.nominal_hz = config.nominal_hz;
    }
    ui.nominal_hz.set(Some(config.nominal_hz));
    ui.conn.set(Conn::Link(LinkState::Connecting));

    let weak = Rc::downgrade(rt);
    let on_event: Rc<dyn Fn(LinkEvent)> = Rc::new(move |event| {
        if let Some(rt) = weak.upgrade() {
            on_link_event(&rt, event);
        }
    });
    match MqttWs::start(config.mqtt_ws_url, link_config, rng.next_u64(), on_event) {
        Ok(link) => rt.borrow_mut().link = Some(link),
        Err(e) => ui.conn.set(Conn::Link(LinkState::Offline {
            retry_at_ms: u64::MAX,
            reason: e,
        })),
    }
}

fn on_link_event(rt: &Shared, event: LinkEvent) {
    match event {
        LinkEvent::State(state) => {
            let ui = rt.borrow().ui;
            ui.conn.set(Conn::Link(state));
        }
        LinkEvent::Message { topic, payload } => {
            if let Ok(mut me) = rt.try_borrow_mut()
                && let Some(store) = me.store.as_mut()
            {
                store.ingest(&topic, &payload, (now_ms() * 1000.0) as i64);
            }
            schedule_frame(rt);
        }
    }
}

fn second_tick(rt: &Shared) {
    let now = now_ms();
    {
        let Ok(mut me) = rt.try_borrow_mut() else {
            return;
        };
        me.ui.now_ms.set(now);
        if let Some(store) = me.store.as_mut() {
            let now_us = (now * 1000.0) as i64;
            store.prune(now_us);
            store.sample_rate(now_us);
            me.chart_dirty = true;
        }
    }
    schedule_frame(rt);
}

fn schedule_frame(rt: &Shared) {
    let Ok(mut me) = rt.try_borrow_mut() else {
        return;
    };
    if me.frame_pending {
        return;
    }
    me.frame_pending = true;
    let rt = rt.clone();
    request_animation_frame(move || frame(&rt));
}

/// Once per animation frame at most: push what changed into the signals and redraw the chart.
fn frame(rt: &Shared) {
    let Ok(mut guard) = rt.try_borrow_mut() else {
        return;
    };
    let me = &mut *guard;
    me.frame_pending = false;
    let Some(store) = me.store.as_mut() else {
        return;
    };
    let changes = store.take_changes();
    let mut list_changed = false;
    for id in &changes.removed {
        if let Some(sig) = me.rows.remove(id) {
            sig.dispose();
            list_changed = true;
        }
    }
    for id in &changes.updated {
        let Some(snap) = store.snapshot(id) else {
            continue;
        };
        match me.rows.get(id) {
            Some(sig) => sig.set(snap),
            None => {
                let sig = match &me.owner {
                    Some(owner) => owner.with(|| RwSignal::new(snap)),
                    None => RwSignal::new(snap),
                };
                me.rows.insert(id.clone(), sig);
                list_changed = true;
            }
        }
    }
    if list_changed {
        me.ui.rows.set(
            me.rows
                .iter()
                .map(|(id, snap)| Row {
                    id: id.clone(),
                    snap: *snap,
                })
                .collect(),
        );
    }
    if changes.diagnostics {
        me.ui.diagnostics.set(store.diagnostics().clone());
    }
    me.chart_dirty |= changes.chart;
    if !me.chart_dirty {
        return;
    }
    // The chart is the costly part: at 300 s across a screen, one pixel is a quarter of a
    // second, so drawing more often than CHART_MIN_INTERVAL_MS shows nothing new.
    let now = now_ms();
    let wait = CHART_MIN_INTERVAL_MS - (now - me.chart_drawn_ms);
    if wait > 0.0 {
        if !me.chart_deferred {
            me.chart_deferred = true;
            let rt = rt.clone();
            set_timeout(
                move || {
                    if let Ok(mut me) = rt.try_borrow_mut() {
                        me.chart_deferred = false;
                    }
                    schedule_frame(&rt);
                },
                Duration::from_millis(wait.ceil() as u64),
            );
        }
        return;
    }
    me.chart_dirty = false;
    me.chart_drawn_ms = now;
    if let Some(canvas) = me.ui.canvas.get_untracked() {
        let columns = usize::try_from(canvas.client_width()).unwrap_or(0).max(1);
        let data = chart::prepare(
            store.devices(),
            (now * 1000.0) as i64,
            Limits::default().window_us,
            me.nominal_hz,
            columns,
        );
        chart::draw(&canvas, &data);
    }
}
