//! Grid insight: the deviation from nominal with the bands of the chosen synchronous area,
//! RoCoF, grid time deviation, a histogram and quality figures over the range, the event list,
//! and how far apart the devices are. Everything is computed in the page (`crate::insight`).

use leptos::html::Canvas;
use leptos::prelude::*;
use ogm_grid::{Bands, GridArea, GridEvent, Source};

use super::{LiveLegend, RouteLink, link_live, load_text};
use crate::format::{self, Band};
use crate::route::{ROCOF_WINDOW_LIMITS_MS, Span, TimeRange, View};
use crate::runtime::commands::{
    CanvasKind, close_insight_page, navigate, open_insight_page, set_canvas,
};
use crate::state::ui;

/// `#insight`.
#[component]
pub(crate) fn InsightView() -> impl IntoView {
    let ui = ui();
    // The reference device: the URL's, else the first one heard.
    let device = Memo::new(move |_| {
        ui.route.with(|r| r.device.clone()).or_else(|| {
            ui.rows.with(|rows| {
                rows.iter()
                    .find(|r| r.snap.with_untracked(|s| s.frequency.is_some()))
                    .map(|r| r.id.clone())
            })
        })
    });
    let range = Memo::new(move |_| ui.route.with(|r| r.range()));
    Effect::new(move |_| match device.get() {
        Some(d) => open_insight_page(d, range.get()),
        None => close_insight_page(),
    });
    on_cleanup(close_insight_page);
    let canvas = NodeRef::<Canvas>::new();
    canvas.on_load(|c| set_canvas(CanvasKind::InsightLive, Some(c)));
    on_cleanup(|| set_canvas(CanvasKind::InsightLive, None));
    let range_canvas = NodeRef::<Canvas>::new();
    range_canvas.on_load(|c| set_canvas(CanvasKind::InsightRange, Some(c)));
    on_cleanup(|| set_canvas(CanvasKind::InsightRange, None));

    let nominal = move || ui.nominal_hz.get().unwrap_or(50.0);
    let bands = move || Bands::of(ui.area.get(), nominal());
    let fig = ui.figures;
    let live = move || link_live(&ui);
    let deviation = move || {
        fig.with(|f| f.frequency)
            .filter(|_| live())
            .map(|f| (f - nominal()) * 1000.0)
    };
    let band_class = move || {
        fig.with(|f| f.frequency)
            .filter(|_| live())
            .map_or("band-unknown", |f| Band::of(f, &bands()).css_class())
    };
    let range_text = move || match range.get() {
        TimeRange::Last(s) => format!("last {}", s.as_str()),
        TimeRange::Custom { .. } => "custom range".to_owned(),
    };
    view! {
        <section id="insight" data-device-id=move || device.get().map(|d| d.to_string())>
            <h2>
                "Grid insight "
                <span class="muted">
                    {move || device.get().map(|d| format!("· {d}")).unwrap_or_default()}
                </span>
            </h2>
            <InsightSettings />
            <div id="insight-figures" class="figures">
                <div id="fig-deviation" class=move || format!("figure {}", band_class())
                    data-mhz=move || deviation().map(|d| format!("{d:.1}"))>
                    <span class="label">"Deviation"</span>
                    <span class="value">
                        {move || deviation().map_or_else(|| "—".into(), |d| format!("{} mHz", format::signed(d, 1)))}
                    </span>
                </div>
                <div id="fig-rocof" class="figure"
                    data-hz-per-s=move || fig.with(|f| f.rocof).filter(|_| live()).map(|r| format!("{r:.4}"))>
                    <span class="label">"RoCoF"</span>
                    <span class="value">
                        {move || fig.with(|f| f.rocof).filter(|_| live())
                            .map_or_else(|| "—".into(), |r| format!("{} Hz/s", format::signed(r, 3)))}
                    </span>
                </div>
                <div id="fig-grid-time" class="figure"
                    data-seconds=move || fig.with(|f| f.grid_time_s).map(|g| format!("{g:.3}"))>
                    <span class="label">"Grid time deviation " <small>{range_text}</small></span>
                    <span class="value">
                        {move || fig.with(|f| f.grid_time_s)
                            .map_or_else(|| "—".into(), |g| format!("{} s", format::signed(g, 3)))}
                    </span>
                </div>
                <div id="fig-spread" class="figure"
                    data-mhz=move || fig.with(|f| f.spread).map(|s| format!("{:.1}", s.0))
                    data-devices=move || fig.with(|f| f.spread).map(|s| s.1.to_string())>
                    <span class="label">"Agreement between devices"</span>
                    <span class="value">
                        {move || fig.with(|f| f.spread).map_or_else(
                            || "needs two live devices".into(),
                            |(mhz, n)| format!("{mhz:.1} mHz spread · {n} devices"))}
                    </span>
                </div>
                <div id="fig-quality" class="figure"
                    title=move || fig.with(|f| f.quality).map(|q| format!("{:.3}–{:.3} Hz", q.min_hz, q.max_hz))
                    data-outside-normal=move || fig.with(|f| f.quality).map(|q| format!("{:.4}", q.outside_normal))
                    data-std-mhz=move || fig.with(|f| f.quality).map(|q| format!("{:.2}", q.std_mhz))>
                    <span class="label">"Quality " <small>{range_text}</small></span>
                    <span class="value small">
                        {move || fig.with(|f| f.quality).map_or_else(|| "—".into(), |q| format!(
                            "{:.1} % beyond ±{:.0} mHz · σ {:.1} mHz",
                            q.outside_normal * 100.0, bands().normal_mhz, q.std_mhz))}
                    </span>
                </div>
            </div>
            <p class="load-state">{move || load_text(&ui.insight_state.get(), ui.now_ms.get())}</p>
            <div class="chart-box live-deviation">
                <h3>
                    "Deviation from nominal, mHz "
                    <small class="muted">
                        {move || format!("(live window · {} bands)", ui.area.get().label())}
                    </small>
                </h3>
                <div class="canvas-wrap">
                    <canvas id="deviation-chart" node_ref=canvas></canvas>
                </div>
                <div class="legends">
                    <LiveLegend
                        id="deviation-legend"
                        devices=Signal::derive(move || ui.rows.with(|r| r.iter().map(|r| r.id.clone()).collect()))
                    />
                    <ul id="bands">
                        {move || {
                            let b = bands();
                            b.table()
                                .into_iter()
                                .map(|(name, lo, hi)| {
                                    let text = match name {
                                        "deadband" => format!("dead band {lo:.3}–{hi:.3} Hz"),
                                        "normal" => format!("±{:.0} mHz {lo:.2}–{hi:.2} Hz", b.normal_mhz),
                                        "limits" => format!("{} {lo:.1}–{hi:.1} Hz", b.area.limits_name()),
                                        _ => format!("load shedding from {lo:.1} Hz"),
                                    };
                                    view! {
                                        <li
                                            class=format!("band-mark band-{name}")
                                            data-band=name
                                            data-low-hz=format!("{lo:.3}")
                                            data-high-hz=hi.is_finite().then(|| format!("{hi:.3}"))
                                        >
                                            {text}
                                        </li>
                                    }
                                })
                                .collect_view()
                        }}
                    </ul>
                </div>
            </div>
            <div class="chart-box range-chart">
                <h3>
                    "Deviation over the range, mHz "
                    <small class="muted">
                        {move || device.get().map(|d| d.to_string()).unwrap_or_default()} " · "
                        {range_text} " · min/max and mean"
                    </small>
                </h3>
                <canvas id="deviation-range-chart" node_ref=range_canvas></canvas>
            </div>
            <div class="insight-columns">
                <div class="chart-box">
                    <h3>"Histogram " <small class="muted">{range_text}</small></h3>
                    <Histogram />
                </div>
                <div class="chart-box">
                    <h3>"Devices"</h3>
                    <table id="agreement">
                        <tbody>
                            // A row per device, kept while the device reports: only its
                            // numbers change (rows made anew every second cost the page
                            // memory and time).
                            <For
                                each=move || fig.with(|f| f.readings.iter().map(|r| r.0.clone()).collect::<Vec<_>>())
                                key=|id| id.clone()
                                children=move |id| {
                                    let (attr, text) = (id.to_string(), id.to_string());
                                    let reading = Memo::new(move |_| {
                                        fig.with(|f| f.readings.iter().find(|r| r.0 == id).map(|r| r.1))
                                    });
                                    view! {
                                        <tr data-device-id=attr>
                                            <td>{text}</td>
                                            <td class="num">{move || reading.get().map(format::frequency)}</td>
                                            <td class="num">
                                                {move || reading.get().map(|f| format!("{} mHz", format::signed((f - nominal()) * 1000.0, 1)))}
                                            </td>
                                        </tr>
                                    }
                                }
                            />
                        </tbody>
                    </table>
                </div>
            </div>
            <Events />
            <super::AlertHistory />
        </section>
    }
}

/// Nominal frequency, range, RoCoF window and limit; all in the URL.
#[component]
fn InsightSettings() -> impl IntoView {
    let ui = ui();
    let update = move |f: &dyn Fn(&mut crate::route::Route)| {
        let mut r = ui.route.get_untracked();
        f(&mut r);
        navigate(r, false);
    };
    let range = Memo::new(move |_| ui.route.with(|r| r.range()));
    view! {
        <div class="settings">
            <label>
                "Range "
                <select
                    id="insight-range"
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        update(&|r| r.range = Span::parse(&v).map(TimeRange::Last));
                    }
                >
                    {Span::ALL
                        .into_iter()
                        .map(|s| {
                            view! {
                                <option
                                    value=s.as_str()
                                    selected=move || range.get() == TimeRange::Last(s)
                                >
                                    {s.as_str()}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </label>
            <label>
                "Nominal "
                <select
                    id="nominal-select"
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        update(&|r| r.nominal_hz = v.parse().ok());
                    }
                >
                    <option value="" selected=move || ui.route.with(|r| r.nominal_hz.is_none())>
                        "server"
                    </option>
                    <option value="50" selected=move || ui.route.with(|r| r.nominal_hz == Some(50.0))>
                        "50 Hz"
                    </option>
                    <option value="60" selected=move || ui.route.with(|r| r.nominal_hz == Some(60.0))>
                        "60 Hz"
                    </option>
                </select>
            </label>
            <label>
                "Area "
                <select
                    id="area-select"
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        update(&|r| r.area = GridArea::parse(&v));
                    }
                >
                    <option value="" selected=move || ui.route.with(|r| r.area.is_none())>
                        "server"
                    </option>
                    {GridArea::ALL
                        .into_iter()
                        .map(|a| {
                            view! {
                                <option
                                    value=a.as_str()
                                    selected=move || ui.route.with(|r| r.area == Some(a))
                                >
                                    {a.label()}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </label>
            <label>
                "RoCoF window "
                <select
                    id="rocof-window"
                    on:change=move |ev| {
                        if let Ok(ms) = event_target_value(&ev).parse::<u32>() {
                            update(&|r| {
                                r.rocof_window_ms = ms.clamp(ROCOF_WINDOW_LIMITS_MS.0, ROCOF_WINDOW_LIMITS_MS.1)
                            });
                        }
                    }
                >
                    {[100u32, 200, 500, 1000, 2000]
                        .into_iter()
                        .map(|ms| {
                            view! {
                                <option
                                    value=ms.to_string()
                                    selected=move || ui.route.with(|r| r.rocof_window_ms == ms)
                                >
                                    {format!("{ms} ms")}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </label>
            <label>
                "RoCoF event above "
                <input
                    id="rocof-limit"
                    type="number"
                    min="0.01"
                    step="0.05"
                    prop:value=move || ui.route.with(|r| r.rocof_limit.to_string())
                    on:change=move |ev| {
                        if let Ok(v) = event_target_value(&ev).parse::<f64>()
                            && v.is_finite() && v > 0.0
                        {
                            update(&|r| r.rocof_limit = v.min(100.0));
                        }
                    }
                />
                " Hz/s"
            </label>
        </div>
    }
}

/// `#histogram`: the share of readings per 10 mHz of deviation. The bars stay while the bins
/// do (they change with the area and the nominal frequency); each second only their heights.
#[component]
fn Histogram() -> impl IntoView {
    let ui = ui();
    let fig = ui.figures;
    // The bins: lower edge and width of the first, how many.
    let layout = Memo::new(move |_| {
        fig.with(|f| {
            f.histogram
                .as_ref()
                .map(|h| (h.lo_mhz.to_bits(), h.bin_mhz.to_bits(), h.bins.len()))
        })
    });
    let shares = Memo::new(move |_| {
        fig.with(|f| f.histogram.as_ref().map(|h| h.shares()).unwrap_or_default())
    });
    let top =
        Memo::new(move |_| shares.with(|s| s.iter().map(|s| s.1).fold(0.0, f64::max).max(1e-9)));
    let share = move |i: usize| shares.with(|s| s.get(i).map_or(0.0, |s| s.1));
    let totals = move || {
        fig.with(|f| {
            f.histogram.as_ref().map(|h| {
                let total = h.total.max(1) as f64;
                (h.under as f64 / total, h.over as f64 / total, h.total)
            })
        })
    };
    view! {
        <div id="histogram" data-total=move || totals().map(|t| t.2.to_string())>
            {move || match layout.get() {
                None => view! { <p class="empty">"No history yet."</p> }.into_any(),
                Some((lo, bin, n)) => {
                    let (lo, bin) = (f64::from_bits(lo), f64::from_bits(bin));
                    let class = move |lo: f64| {
                        let b = ui.bands().unwrap_or_else(|| Bands::continental_europe(50.0));
                        let inside = |edge: f64| lo.abs() < edge && (lo + bin).abs() <= edge;
                        if inside(b.deadband_mhz) {
                            "bin in-deadband"
                        } else if inside(b.normal_mhz) {
                            "bin in-normal"
                        } else {
                            "bin"
                        }
                    };
                    view! {
                        <div class="bars">
                            {(0..n)
                                .map(|i| {
                                    let lo = lo + i as f64 * bin;
                                    view! {
                                        <div
                                            class=move || class(lo)
                                            data-bin-mhz=format!("{lo:.0}")
                                            data-share=move || format!("{:.5}", share(i))
                                            title=move || format!("{lo:+.0}…{:+.0} mHz: {:.2} %", lo + bin, share(i) * 100.0)
                                            style=move || format!("height:{:.1}%", share(i) / top.get() * 100.0)
                                        ></div>
                                    }
                                })
                                .collect_view()}
                        </div>
                        <div class="axis">
                            <span>{format!("{lo:+.0} mHz")}</span>
                            <span>"0"</span>
                            <span>{format!("{:+.0} mHz", -lo)}</span>
                        </div>
                        <p class="muted small">
                            {move || totals().map(|(under, over, total)| format!(
                                "{:.2} % below, {:.2} % above the axis · {total} readings",
                                under * 100.0,
                                over * 100.0,
                            ))}
                        </p>
                    }
                        .into_any()
                }
            }}
        </div>
    }
}

/// What tells one grid event from another in the list: where it was found and its start.
fn event_key(e: &GridEvent) -> (bool, i64) {
    (e.source == Source::Live, e.start_us)
}

/// Who saw a grid event: the device, or how many.
fn seen_by(e: &GridEvent) -> String {
    match e.devices.len() {
        1 => e.device.to_string(),
        n => format!("{n} devices"),
    }
}

/// The devices of a grid event for a tooltip: the first 30 by name.
fn device_list(e: &GridEvent) -> String {
    const SHOWN: usize = 30;
    let mut s = e
        .devices
        .iter()
        .take(SHOWN)
        .map(|(d, _)| d.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if e.devices.len() > SHOWN {
        s.push_str(&format!(" and {} more", e.devices.len() - SHOWN));
    }
    s
}

/// `#events`: excursions beyond ±100 mHz and RoCoF alarms, newest first; what several devices
/// saw together is one grid event.
#[component]
fn Events() -> impl IntoView {
    let ui = ui();
    let nominal = move || ui.nominal_hz.get().unwrap_or(50.0);
    view! {
        <div class="chart-box events-box">
            <h3>
                "Events "
                <small class="muted">
                    {move || format!(
                        "beyond ±100 mHz or |RoCoF| > {} Hz/s",
                        ui.route.with(|r| r.rocof_limit)
                    )}
                </small>
            </h3>
            <Show when=move || ui.events.with(|e| e.is_empty())>
                <p class="empty">"No events."</p>
            </Show>
            <div
                class="table-scroll"
                style:display=move || if ui.events.with(|e| e.is_empty()) { "none" } else { "" }
            >
                <table id="events">
                    <thead>
                        <tr>
                            <th>"Start"</th>
                            <th>"Seen by"</th>
                            <th>"Kind"</th>
                            <th>"Extreme"</th>
                            <th>"RoCoF"</th>
                            <th>"Duration"</th>
                        </tr>
                    </thead>
                    <tbody>
                        // A row per grid event, kept while it is listed: an ongoing event's
                        // devices, extreme and duration change in place.
                        <For
                            each=move || ui.events.with(|es| es.iter().map(event_key).collect::<Vec<_>>())
                            key=|k| *k
                            children=move |key| {
                                let event = Memo::new(move |_| {
                                    ui.events.with(|es| es.iter().find(|e| event_key(e) == key).cloned())
                                });
                                let (_, start_us) = key;
                                let tz = ui.tz_offset_min.get_untracked();
                                let field = move |f: fn(&GridEvent, f64) -> String| {
                                    move || event.with(|e| e.as_ref().map(|e| f(e, nominal())))
                                };
                                // To the device that read the extreme, over the event's span.
                                let to = Signal::derive(move || {
                                    let mut r = ui.route.get().with_view(View::Device);
                                    let (device, end) = event.with(|e| e.as_ref().map(|e| (e.device.clone(), e.end_us.unwrap_or(e.last_us)))).unzip();
                                    r.device = device;
                                    r.range = Some(TimeRange::custom(
                                        start_us - 60_000_000,
                                        end.unwrap_or(start_us) + 60_000_000,
                                    ).unwrap_or(TimeRange::Last(Span::H1)));
                                    r
                                });
                                let kind = |e: &GridEvent, _| if e.frequency { "frequency" } else { "rocof" }.to_owned();
                                let ongoing = move || event.with(|e| e.as_ref().is_some_and(|e| e.end_us.is_none()));
                                view! {
                                    <tr
                                        data-device-id=field(|e, _| e.device.to_string())
                                        data-devices=field(|e, _| e.devices.len().to_string())
                                        data-start=start_us.to_string()
                                        data-extreme-hz=field(|e, _| format!("{:.4}", e.extreme_hz))
                                        data-extreme-mhz=field(|e, n| format!("{:.1}", e.extreme_mhz(n)))
                                        data-duration-s=field(|e, _| format!("{:.2}", e.duration_us() as f64 / 1e6))
                                        data-kind=field(kind)
                                        data-source=field(|e, _| match e.source { Source::Live => "live", Source::History => "history" }.to_owned())
                                        data-ongoing=move || ongoing().to_string()
                                        class:ongoing=ongoing
                                    >
                                        <td>
                                            <RouteLink to=to>{format::date_time(start_us, tz)}</RouteLink>
                                        </td>
                                        <td title=field(|e, _| device_list(e))>{field(|e, _| seen_by(e))}</td>
                                        <td>{field(kind)}</td>
                                        <td class="num">
                                            {field(|e, n| format!("{} mHz ({:.3} Hz)", format::signed(e.extreme_mhz(n), 1), e.extreme_hz))}
                                            <small class="muted">
                                                {field(|e, _| if e.devices.len() > 1 { format!(" at {}", e.device) } else { String::new() })}
                                            </small>
                                        </td>
                                        <td class="num">
                                            {field(|e, _| e.rocof.map_or_else(|| "—".into(), |r| format!("{} Hz/s", format::signed(r, 3))))}
                                        </td>
                                        <td class="num">
                                            {field(|e, _| format!(
                                                "{}{}",
                                                format::duration(e.duration_us()),
                                                if e.end_us.is_none() { " (ongoing)" } else { "" }
                                            ))}
                                        </td>
                                    </tr>
                                }
                            }
                        />
                    </tbody>
                </table>
            </div>
        </div>
    }
}
