//! The device page: frequency, voltage, current and power over a range, each drawn as a
//! min/max envelope with its mean line; a range picker; zoom by dragging across a chart; the
//! CSV export of the range on screen.

use leptos::ev::PointerEvent;
use leptos::html::{Canvas, Input};
use leptos::prelude::*;
use ogm_protocol::DeviceId;

use super::{RouteLink, load_text};
use crate::chart;
use crate::devices::Liveness;
use crate::format;
use crate::route::{Span, TimeRange, View};
use crate::runtime::commands::{
    CanvasKind, close_device_page, navigate, open_device_page, set_canvas,
};
use crate::state::{LoadState, ui};
use crate::wire::{ExportParams, Field};

/// `#device-page`.
#[component]
pub(crate) fn DevicePage() -> impl IntoView {
    let ui = ui();
    let device = Memo::new(move |_| ui.route.with(|r| r.device.clone()));
    let range = Memo::new(move |_| ui.route.with(|r| r.range()));
    Effect::new(move |_| match device.get() {
        Some(d) => open_device_page(d, range.get()),
        None => close_device_page(),
    });
    on_cleanup(close_device_page);
    view! {
        <section id="device-page" data-device-id=move || device.get().map(|d| d.to_string())>
            {move || match device.get() {
                Some(d) => view! { <DeviceDetail device=d /> }.into_any(),
                None => view! { <DevicePicker /> }.into_any(),
            }}
        </section>
    }
}

/// A list of devices to choose from.
#[component]
fn DevicePicker() -> impl IntoView {
    let ui = ui();
    view! {
        <h2>"Choose a device"</h2>
        <Show when=move || ui.rows.with(|r| r.is_empty())>
            <p class="empty">"Waiting for devices…"</p>
        </Show>
        <ul class="device-picker">
            <For
                each=move || ui.rows.get()
                key=|row| row.id.clone()
                children=move |row| {
                    let id = row.id.clone();
                    let to = Signal::derive(move || {
                        let mut r = ui.route.get().with_view(View::Device);
                        r.device = Some(id.clone());
                        r
                    });
                    view! {
                        <li>
                            <RouteLink to=to>{row.id.to_string()}</RouteLink>
                        </li>
                    }
                }
            />
        </ul>
    }
}

#[component]
fn DeviceDetail(device: DeviceId) -> impl IntoView {
    let ui = ui();
    let range = Memo::new(move |_| ui.route.with(|r| r.range()));
    let snap = {
        let device = device.clone();
        Memo::new(move |_| {
            ui.rows
                .with(|rows| rows.iter().find(|r| r.id == device).map(|r| r.snap.get()))
        })
    };
    let liveness = Memo::new(move |_| {
        snap.get()
            .map(|s| Liveness::of(&s, (ui.now_ms.get() * 1000.0) as i64))
    });
    let export = {
        let device = device.clone();
        move || {
            let (a, b) = range.get().resolve((ui.now_ms.get() * 1000.0) as i64);
            ExportParams::url(&device, a, b)
        }
    };
    let export_name = {
        let device = device.clone();
        move || format!("{device}.csv")
    };
    let value = move |f: fn(&crate::devices::DeviceSnapshot) -> String| {
        move || snap.get().map(|s| f(&s)).unwrap_or_else(|| "—".into())
    };
    view! {
        <div class="device-head">
            <h2>{device.to_string()}</h2>
            <span
                class="liveness"
                data-state=move || liveness.get().map(|l| l.as_str()).unwrap_or("unknown")
            >
                {move || liveness.get().map(|l| l.as_str()).unwrap_or("unknown")}
            </span>
            <span
                class="latest"
                class:stale=move || !super::link_live(&ui) || liveness.get() != Some(Liveness::Live)
            >
                {value(|s| s.frequency.map_or_else(|| "—".into(), format::frequency))} " · "
                {value(|s| format::voltage(s.voltage))} " · "
                {value(|s| format::current(s.current))} " · "
                {value(|s| format::power(s.power))}
            </span>
        </div>
        <div class="toolbar">
            <RangePicker />
            <a
                id="export-csv"
                class="button"
                href=export
                download=export_name
                title="The raw measurements of the range on screen, as CSV"
            >
                "Export CSV"
            </a>
        </div>
        <p class="hint">"Drag across a chart to zoom in."</p>
        <div class="field-charts">
            {Field::MEASURED.into_iter().map(|f| view! { <FieldChart field=f /> }).collect_view()}
        </div>
    }
}

/// `#range-picker`: the preset spans, a custom range, and a way back from a zoom.
#[component]
pub(crate) fn RangePicker() -> impl IntoView {
    let ui = ui();
    let range = Memo::new(move |_| ui.route.with(|r| r.range()));
    let set = move |r: TimeRange| {
        let mut route = ui.route.get_untracked();
        route.range = Some(r);
        navigate(route, true);
    };
    let custom_open = RwSignal::new(false);
    let start = NodeRef::<Input>::new();
    let stop = NodeRef::<Input>::new();
    let tz = ui.tz_offset_min;
    let bounds = move || {
        range
            .get()
            .resolve((ui.now_ms.get_untracked() * 1000.0) as i64)
    };
    let apply = move |_| {
        let tz = tz.get_untracked();
        let parse = |n: NodeRef<Input>| {
            n.get_untracked()
                .and_then(|i| format::parse_datetime_local(&i.value(), tz))
        };
        if let (Some(a), Some(b)) = (parse(start), parse(stop))
            && let Some(r) = TimeRange::custom(a, b)
        {
            custom_open.set(false);
            set(r);
        }
    };
    view! {
        <div id="range-picker" role="group" aria-label="Range">
            {Span::ALL
                .into_iter()
                .map(|span| {
                    view! {
                        <button
                            type="button"
                            data-range=span.as_str()
                            aria-pressed=move || (range.get() == TimeRange::Last(span)).to_string()
                            on:click=move |_| set(TimeRange::Last(span))
                        >
                            {span.as_str()}
                        </button>
                    }
                })
                .collect_view()}
            <button
                type="button"
                data-range="custom"
                aria-pressed=move || (!range.get().is_live()).to_string()
                on:click=move |_| custom_open.update(|o| *o = !*o)
            >
                "custom"
            </button>
            <Show when=move || !range.get().is_live()>
                <button
                    type="button"
                    id="zoom-reset"
                    on:click=move |_| {
                        let mut route = ui.route.get_untracked();
                        route.range = None;
                        navigate(route, true);
                    }
                >
                    "reset"
                </button>
                <span id="range-label">
                    {move || {
                        let (a, b) = bounds();
                        let tz = tz.get();
                        format!("{} – {}", format::date_time(a, tz), format::date_time(b, tz))
                    }}
                </span>
            </Show>
        </div>
        <Show when=move || custom_open.get()>
            <div id="custom-range">
                <label>
                    "from "
                    <input
                        type="datetime-local"
                        id="range-start"
                        node_ref=start
                        prop:value=move || format::datetime_local(bounds().0, tz.get())
                    />
                </label>
                <label>
                    "to "
                    <input
                        type="datetime-local"
                        id="range-stop"
                        node_ref=stop
                        prop:value=move || format::datetime_local(bounds().1, tz.get())
                    />
                </label>
                <button type="button" id="range-apply" on:click=apply>
                    "apply"
                </button>
            </div>
        </Show>
    }
}

/// `.field-chart`: one field's chart; a drag across it zooms to the range dragged over.
#[component]
fn FieldChart(field: Field) -> impl IntoView {
    let ui = ui();
    let canvas = NodeRef::<Canvas>::new();
    canvas.on_load(move |c| set_canvas(CanvasKind::Field(field), Some(c)));
    on_cleanup(move || set_canvas(CanvasKind::Field(field), None));
    let state = move || {
        ui.field_state
            .with(|m| m.get(&field).cloned())
            .unwrap_or_default()
    };
    let facts = move || {
        ui.field_facts
            .with(|m| m.get(&field).copied())
            .unwrap_or_default()
    };
    // A drag: (start x, current x), CSS px from the canvas' left edge.
    let drag = RwSignal::new(None::<(f64, f64)>);
    let on_down = move |ev: PointerEvent| {
        if ev.button() != 0 {
            return;
        }
        if let Some(c) = canvas.get_untracked() {
            let _ = c.set_pointer_capture(ev.pointer_id());
        }
        let x = f64::from(ev.offset_x());
        drag.set(Some((x, x)));
    };
    let on_move = move |ev: PointerEvent| {
        if drag.get_untracked().is_some() {
            let x = f64::from(ev.offset_x());
            drag.update(|d| {
                if let Some(d) = d {
                    d.1 = x;
                }
            });
        }
    };
    let on_up = move |ev: PointerEvent| {
        let Some((a, _)) = drag.get_untracked() else {
            return;
        };
        let b = f64::from(ev.offset_x());
        drag.set(None);
        let Some(c) = canvas.get_untracked() else {
            return;
        };
        if (a - b).abs() < 8.0 {
            return;
        }
        let width = f64::from(c.client_width());
        let font_px = web_sys::window()
            .and_then(|w| w.get_computed_style(&c).ok().flatten())
            .and_then(|s| s.get_property_value("font-size").ok())
            .and_then(|f| f.trim_end_matches("px").parse::<f64>().ok())
            .map_or(13.0, chart::label_px);
        let now_us = (js_sys::Date::now() * 1000.0) as i64;
        let (t0, t1) = ui.route.with_untracked(|r| r.range()).resolve(now_us);
        let (x0, x1) = (a.min(b), a.max(b));
        let start = chart::x_to_time(x0, width, font_px, t0, t1);
        let stop = chart::x_to_time(x1, width, font_px, t0, t1);
        if let Some(r) = TimeRange::custom(start, stop.max(start + 1_000)) {
            let mut route = ui.route.get_untracked();
            route.range = Some(r);
            navigate(route, true);
        }
    };
    let selection_style = move || match drag.get() {
        Some((a, b)) if (a - b).abs() >= 2.0 => {
            format!(
                "display:block;left:{}px;width:{}px",
                a.min(b),
                (a - b).abs()
            )
        }
        _ => "display:none".to_owned(),
    };
    let (points, interval) = (
        move || match state() {
            LoadState::Ready { points, .. } => Some(points.to_string()),
            _ => None,
        },
        move || match state() {
            LoadState::Ready { interval_us, .. } => Some(interval_us.to_string()),
            _ => None,
        },
    );
    view! {
        <figure
            class="field-chart chart-box"
            data-field=field.as_str()
            data-state=move || state().as_str()
            data-points=points
            data-interval-us=interval
            data-start=move || facts().start_us.to_string()
            data-stop=move || facts().stop_us.to_string()
            data-samples=move || facts().samples.to_string()
            data-max-gap-ms=move || facts().max_gap_ms.to_string()
            data-max-gap-at=move || facts().max_gap_at_us.to_string()
                    data-newest=move || facts().newest_us.to_string()
        >
            <figcaption>
                <span class="field-title">{field.title()}</span>
                <span class="unit">{field.unit()}</span>
                <span class="load-state">{move || load_text(&state(), ui.now_ms.get())}</span>
            </figcaption>
            <div class="canvas-wrap">
                <canvas
                    id=format!("chart-{}", field.as_str())
                    node_ref=canvas
                    on:pointerdown=on_down
                    on:pointermove=on_move
                    on:pointerup=on_up
                    on:pointercancel=move |_| drag.set(None)
                ></canvas>
                <div class="zoom-selection" style=selection_style></div>
            </div>
        </figure>
    }
}
