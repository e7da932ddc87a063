//! The Leptos components. Browser only.
//!
//! [`Shell`] holds the header (navigation, connection state, theme), the view the route names
//! and the diagnostics footer. Views read the signals in [`Ui`] and call the runtime
//! (`crate::runtime::commands`) to open and close what they need; they hold no data of their own.
//!
//! The DOM is a contract with the browser tests: ids and `data-*` attributes carry the figures
//! in machine-readable form next to the text a person reads.

mod alerts;
mod device;
mod devices;
mod insight;
mod logs;
mod overview;

use leptos::ev::MouseEvent;
use leptos::prelude::*;

use crate::chart::{self, LiveShown};
use crate::devices::Diagnostics;
use crate::format;
use crate::mqtt_link::LinkState;
use crate::route::{Route, Theme, View};
use crate::runtime::commands::{self, navigate};
use crate::state::{Conn, LoadState, Ui, ui};
use ogm_protocol::DeviceId;

pub(crate) use alerts::AlertHistory;
pub(crate) use device::DevicePage;
pub(crate) use devices::DevicesView;
pub(crate) use insight::InsightView;
pub(crate) use logs::LogsView;
pub(crate) use overview::Overview;

/// The page.
#[component]
pub(crate) fn Shell() -> impl IntoView {
    let ui = ui();
    let view_kind = Memo::new(move |_| ui.route.with(|r| r.view));
    let kiosk = Memo::new(move |_| ui.route.with(|r| r.kiosk));
    view! {
        <header class="app-header">
            <h1>
                <RouteLink to=Signal::derive(move || ui.route.get().with_view(View::Overview))>
                    "Open Grid Monitor"
                </RouteLink>
            </h1>
            <Show when=move || !kiosk.get()>
                <Nav />
            </Show>
            <ConnState conn=ui.conn now_ms=ui.now_ms />
            <span
                id="nominal"
                data-nominal-hz=move || ui.nominal_hz.get().map(|n| n.to_string())
            >
                {move || ui.nominal_hz.get().map(|n| format!("nominal {n} Hz")).unwrap_or_default()}
            </span>
            <Show when=move || !kiosk.get()>
                <ThemeToggle />
            </Show>
        </header>
        <ConfigError conn=ui.conn />
        <alerts::AlertBanner />
        <main id="view" data-view=move || view_kind.get().as_str()>
            {move || match view_kind.get() {
                View::Overview => view! { <Overview /> }.into_any(),
                View::Device => view! { <DevicePage /> }.into_any(),
                View::Insight => view! { <InsightView /> }.into_any(),
                View::Logs => view! { <LogsView /> }.into_any(),
                View::Devices => view! { <DevicesView /> }.into_any(),
            }}
        </main>
        <Show when=move || !kiosk.get()>
            <DiagnosticsPanel diagnostics=ui.diagnostics />
        </Show>
    }
}

/// Whether a click is a plain left click (not one that opens a new tab).
pub(crate) fn plain_click(ev: &MouseEvent) -> bool {
    ev.button() == 0 && !(ev.ctrl_key() || ev.meta_key() || ev.shift_key() || ev.alt_key())
}

/// A link to a route: a real `href` (new tabs and bookmarks work), navigation without a reload.
#[component]
pub(crate) fn RouteLink(
    /// Where it goes.
    #[prop(into)]
    to: Signal<Route>,
    /// The link's content.
    children: Children,
    /// Extra classes.
    #[prop(optional, into)]
    class: String,
) -> impl IntoView {
    view! {
        <a
            href=move || commands::href(&to.get())
            class=class
            on:click=move |ev: MouseEvent| {
                if plain_click(&ev) {
                    ev.prevent_default();
                    navigate(to.get_untracked(), true);
                }
            }
        >
            {children()}
        </a>
    }
}

/// `#nav`: one link per view; `aria-current="page"` on the one shown.
#[component]
fn Nav() -> impl IntoView {
    let ui = ui();
    view! {
        <nav id="nav">
            {View::ALL
                .into_iter()
                .map(|v| {
                    let to = Signal::derive(move || ui.route.get().with_view(v));
                    let current = move || ui.route.with(|r| r.view == v).then_some("page");
                    view! {
                        <a
                            href=move || commands::href(&to.get())
                            data-view=v.as_str()
                            aria-current=current
                            on:click=move |ev: MouseEvent| {
                                if plain_click(&ev) {
                                    ev.prevent_default();
                                    navigate(to.get_untracked(), true);
                                }
                            }
                        >
                            {v.title()}
                        </a>
                    }
                })
                .collect_view()}
        </nav>
    }
}

/// `#theme-toggle`: system → dark → light → system.
#[component]
fn ThemeToggle() -> impl IntoView {
    let ui = ui();
    let theme = move || ui.route.with(|r| r.theme);
    let label = move || match theme() {
        Theme::System => "◐ auto",
        Theme::Dark => "● dark",
        Theme::Light => "○ light",
    };
    view! {
        <button
            id="theme-toggle"
            type="button"
            data-theme=move || theme().as_str()
            title="Theme"
            on:click=move |_| {
                let mut r = ui.route.get_untracked();
                r.theme = match r.theme {
                    Theme::System => Theme::Dark,
                    Theme::Dark => Theme::Light,
                    Theme::Light => Theme::System,
                };
                navigate(r, false);
            }
        >
            {label}
        </button>
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
        <span id="conn-state" data-state=state title=title role="status">
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

/// A history load's state as a short text (empty when ready).
pub(crate) fn load_text(state: &LoadState, now_ms: f64) -> String {
    match state {
        LoadState::Loading => "loading history…".to_owned(),
        LoadState::Retrying { error, retry_at_ms } => {
            format!(
                "history unavailable ({error}) — retrying in {} s",
                format::seconds_until(*retry_at_ms, now_ms)
            )
        }
        LoadState::Ready { .. } => String::new(),
        LoadState::Unavailable(why) => why.clone(),
    }
}

/// Whether the page's data is current: the broker link is up.
pub(crate) fn link_live(ui: &Ui) -> bool {
    ui.conn.with(Conn::is_live)
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
    let reason_ids = move || diagnostics.with(|d| d.ignored.keys().copied().collect::<Vec<_>>());
    view! {
        <footer id="diagnostics">
            <span id="diag-rate" data-rate=move || format!("{:.1}", rate())>
                {move || format!("{:.1} msg/s", rate())}
            </span>
            <span>
                "ignored "
                <span id="diag-ignored" data-count=move || ignored().to_string()>
                    {move || ignored().to_string()}
                </span>
            </span>
            // A counter per reason, changing in place.
            <For
                each=reason_ids
                key=|reason| *reason
                children=move |reason| {
                    let n = move || {
                        reasons().into_iter().find(|r| r.0 == reason).map_or(0, |r| r.1).to_string()
                    };
                    view! {
                        <span class="diag-reason">
                            {reason} " " <span data-counter=reason>{n}</span>
                        </span>
                    }
                }
            />
        </footer>
    }
}

/// The legend of a live chart: a swatch per device in `devices`, or, when the chart draws the
/// crowd of many devices, its median and band and the strays drawn on their own.
#[component]
pub(crate) fn LiveLegend(
    /// The element id.
    id: &'static str,
    /// The devices on the chart.
    devices: Signal<Vec<DeviceId>>,
) -> impl IntoView {
    let shown = ui().live_shown;
    let item = |id: &DeviceId, note: &str| {
        let color = chart::css_color(chart::color_of(id));
        view! {
            <li data-device-id=id.to_string()>
                <span class="swatch" style=format!("background-color: {color}")></span>
                {format!("{id}{note}")}
            </li>
        }
    };
    let crowd = chart::css_color(chart::CROWD_COLOR);
    view! {
        <ul
            id=id
            class="chart-legend"
            data-crowd=move || match shown.get() {
                LiveShown::Crowd { devices, .. } => devices.to_string(),
                LiveShown::Devices => "0".to_owned(),
            }
            data-strays=move || match shown.get() {
                LiveShown::Crowd { strays, .. } => {
                    strays.iter().map(DeviceId::to_string).collect::<Vec<_>>().join(",")
                }
                LiveShown::Devices => String::new(),
            }
        >
            {move || match shown.get() {
                LiveShown::Devices => {
                    devices.get().iter().map(|d| item(d, "")).collect_view().into_any()
                }
                LiveShown::Crowd { devices, strays } => {
                    let crowd = crowd.clone();
                    view! {
                        <li class="crowd-median">
                            <span class="swatch" style=format!("background-color: {crowd}")></span>
                            {format!("median of {devices} devices")}
                        </li>
                        <li class="crowd-band">
                            <span
                                class="swatch band"
                                style=format!("background-color: {crowd}")
                            ></span>
                            {if strays.is_empty() {
                                "lowest to highest"
                            } else {
                                "lowest to highest of the rest"
                            }}
                        </li>
                        {strays.iter().map(|d| item(d, " (off the median)")).collect_view()}
                    }
                        .into_any()
                }
            }}
        </ul>
    }
}
