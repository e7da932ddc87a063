//! The overview: a card per device (frequency, large, coloured by band; greyed and labelled
//! "stale" when it is not current) and the live chart of every device.

use leptos::html::Canvas;
use leptos::prelude::*;

use super::{LiveLegend, RouteLink, link_live};
use crate::devices::{DeviceSnapshot, Liveness};
use crate::format::{self, Band};
use crate::route::View;
use crate::runtime::commands::{CanvasKind, set_canvas};
use crate::state::{Row, Ui, ui};

/// `#overview`.
#[component]
pub(crate) fn Overview() -> impl IntoView {
    let ui = ui();
    // In kiosk mode, `device=` focuses the overview on one device.
    let focus = Memo::new(move |_| {
        ui.route
            .with(|r| if r.kiosk { r.device.clone() } else { None })
    });
    let rows = move || {
        let f = focus.get();
        ui.rows.with(|rows| {
            rows.iter()
                .filter(|r| f.as_ref().is_none_or(|f| *f == r.id))
                .cloned()
                .collect::<Vec<Row>>()
        })
    };
    let canvas = NodeRef::<Canvas>::new();
    canvas.on_load(|c| set_canvas(CanvasKind::Overview, Some(c)));
    on_cleanup(|| set_canvas(CanvasKind::Overview, None));
    let facts = ui.live_facts;
    view! {
        <section id="overview" class:focused=move || focus.get().is_some()>
            <h2>"Overview"</h2>
            <Show when=move || ui.rows.with(|r| r.is_empty())>
                <p class="empty">"Waiting for devices…"</p>
            </Show>
            <div id="device-cards">
                <For
                    each=rows
                    key=|row| row.id.clone()
                    children=move |row| view! { <DeviceCard snap=row.snap ui=ui /> }
                />
            </div>
            <div class="chart-box">
                <canvas
                    id="live-chart"
                    node_ref=canvas
                    data-max-gap-ms=move || facts.get().max_gap_ms.to_string()
                    data-max-gap-at=move || facts.get().max_gap_at_us.to_string()
                    data-newest=move || facts.get().newest_us.to_string()
                    data-samples=move || facts.get().samples.to_string()
                    data-window-s=move || (ui.route.with(|r| r.window_us) / 1_000_000).to_string()
                    aria-label="Frequency of every device over the live window"
                ></canvas>
            </div>
            <LiveLegend id="chart-legend" devices=Signal::derive(move || rows().into_iter().map(|r| r.id).collect()) />
        </section>
    }
}

/// Whether what a snapshot shows is current: the link is up and the device is live.
pub(crate) fn is_stale(ui: &Ui, s: &DeviceSnapshot) -> bool {
    !link_live(ui) || Liveness::of(s, (ui.now_ms.get() * 1000.0) as i64) != Liveness::Live
}

/// `.device-card`: the frequency, large, and its deviation, coloured by band.
#[component]
fn DeviceCard(
    /// The device.
    snap: RwSignal<DeviceSnapshot>,
    /// The page's signals.
    ui: Ui,
) -> impl IntoView {
    let id = snap.with_untracked(|s| s.id.clone());
    let nominal_hz = ui.nominal_hz;
    let stale = Memo::new(move |_| snap.with(|s| is_stale(&ui, s)));
    let class = move || {
        let s = snap.get();
        let band = match (s.frequency, ui.bands()) {
            (Some(f), Some(b)) if !stale.get() => Band::of(f, &b).css_class(),
            _ => "band-unknown",
        };
        let offline = if s.online == Some(false) {
            " offline"
        } else {
            ""
        };
        let stale = if stale.get() { " stale" } else { "" };
        format!("device-card {band}{offline}{stale}")
    };
    let freq = move || snap.with(|s| s.frequency);
    let deviation = move || match (freq(), nominal_hz.get()) {
        (Some(f), Some(n)) => Some(((f - n) * 1000.0, format::deviation(f, n))),
        _ => None,
    };
    let to = {
        let id = id.clone();
        Signal::derive(move || {
            let mut r = ui.route.get().with_view(View::Device);
            r.device = Some(id.clone());
            r
        })
    };
    let seen = move || {
        let now = ui.now_ms.get();
        format::ago(now - snap.with(|s| s.last_seen_us) as f64 / 1000.0)
    };
    let id_attr = id.to_string();
    let id_text = id.to_string();
    view! {
        <div
            class=class
            data-device-id=id_attr
            data-stale=move || stale.get().to_string()
        >
            <div class="card-head">
                <RouteLink to=to class="device-name">
                    {id_text}
                </RouteLink>
                <Show when=move || stale.get()>
                    <span class="stale-label">
                        "stale · "
                        {move || if link_live(&ui) { seen() } else { "no broker link".to_owned() }}
                    </span>
                </Show>
            </div>
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
