//! The pages and their canvases: the open device page and insight page with the series loaded
//! for them, the canvases the views registered, drawing them, and the insight's figures and
//! event list.

use std::collections::BTreeMap;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use ogm_grid::{GridEvent, Insight};
use ogm_protocol::DeviceId;
use web_sys::HtmlCanvasElement;

use super::frame::{now_us, schedule_frame};
use super::history::{self, JUNCTION_DELAY_MS, JUNCTION_US, Room};
use super::{Runtime, with_rt};
use crate::chart::{self, ChartSpec, Rule, TraceInput, XLabels};
use crate::figures::{self, Reference};
use crate::route::{TimeRange, View};
use crate::series::Series;
use crate::state::{ChartFacts, LoadState, Ui};
use crate::wire::Field;

/// Slots of a page's series: more than any screen has pixel columns.
pub(super) const PAGE_SLOTS: usize = 2_048;

/// The open device page.
#[derive(Debug)]
pub(super) struct DevicePage {
    pub(super) device: DeviceId,
    pub(super) range: TimeRange,
    /// Per field: the series and its history buckets' width, µs.
    pub(super) series: BTreeMap<Field, (Series, i64)>,
    /// The grid events this device saw in the range, as the server recorded them.
    pub(super) events: Vec<(i64, i64)>,
}

/// The open insight page.
#[derive(Debug)]
pub(super) struct InsightPage {
    pub(super) device: DeviceId,
    pub(super) range: TimeRange,
    pub(super) series: Series,
    pub(super) interval_us: i64,
    /// History events before the page started hearing the device live.
    pub(super) history_events: Vec<GridEvent>,
    pub(super) live_since_us: Option<i64>,
}

/// The canvases the views registered, and the live charts' crowd kept between redraws.
#[derive(Debug, Default)]
pub(super) struct Canvases {
    overview: Option<HtmlCanvasElement>,
    insight: Option<HtmlCanvasElement>,
    insight_range: Option<HtmlCanvasElement>,
    pub(super) fields: BTreeMap<Field, HtmlCanvasElement>,
    crowd: chart::CrowdCache,
}

impl Canvases {
    /// Whether a chart of every device is on screen.
    pub(super) fn shows_every_device(&self) -> bool {
        self.overview.is_some() || self.insight.is_some()
    }

    /// How many columns the overview's chart has, if it is on screen.
    pub(super) fn overview_width(&self) -> Option<usize> {
        self.overview
            .as_ref()
            .and_then(|c| usize::try_from(c.client_width()).ok())
            .filter(|w| *w > 0)
    }
}

/// The open pages and canvases.
#[derive(Debug)]
pub(super) struct Pages {
    pub(super) device: Option<DevicePage>,
    pub(super) insight: Option<InsightPage>,
    pub(super) canvases: Canvases,
    /// The insight's version last shown in the event list (`u64::MAX`: show again).
    pub(super) events_shown: u64,
    /// The grid events the server recorded in the live window, as (start, end).
    pub(super) window_events: Vec<(i64, i64)>,
}

impl Default for Pages {
    fn default() -> Self {
        Self {
            device: None,
            insight: None,
            canvases: Canvases::default(),
            events_shown: u64::MAX,
            window_events: Vec::new(),
        }
    }
}

impl Pages {
    /// Takes a measurement of `device` at `t_us`, received at `now`, into the live pages of it.
    pub(super) fn push(
        &mut self,
        device: &DeviceId,
        t_us: i64,
        m: &ogm_protocol::Measurement,
        now: i64,
    ) {
        if let Some(page) = self.device.as_mut()
            && page.device == *device
            && page.range.is_live()
        {
            for (field, (series, _)) in page.series.iter_mut() {
                if let Some(v) = field.of(m) {
                    series.push(t_us, v, now);
                }
            }
        }
        if let Some(page) = self.insight.as_mut()
            && page.device == *device
            && page.range.is_live()
        {
            page.series.push(t_us, m.frequency, now);
            page.live_since_us.get_or_insert(t_us);
        }
    }

    /// The device of the page open in `room`, if that page shows the live range.
    pub(super) fn live_device(&self, room: Room) -> Option<DeviceId> {
        match room {
            Room::DevicePage => self
                .device
                .as_ref()
                .filter(|p| p.range.is_live())
                .map(|p| p.device.clone()),
            Room::InsightPage => self
                .insight
                .as_ref()
                .filter(|p| p.range.is_live())
                .map(|p| p.device.clone()),
            Room::Logs => None,
        }
    }

    pub(super) fn prune(&mut self, now_us: i64) {
        if let Some(page) = self.device.as_mut() {
            for (series, _) in page.series.values_mut() {
                series.prune(now_us);
            }
        }
        if let Some(page) = self.insight.as_mut() {
            page.series.prune(now_us);
        }
    }

    /// The event list into its signal, if the insight changed.
    pub(super) fn sync_events(&mut self, insight: &Insight, ui: Ui) {
        let version = insight.version;
        if version == self.events_shown {
            return;
        }
        self.events_shown = version;
        let live = insight.events();
        let events = match &self.insight {
            Some(page) => figures::merge_events(live, &page.history_events),
            None => live,
        };
        if ui.events.with_untracked(|e| *e != events) {
            ui.events.set(events);
        }
    }
}

fn new_series(range: TimeRange, now: i64) -> Series {
    let (t0, t1) = range.resolve(now);
    match range {
        TimeRange::Last(span) => Series::sliding(span.micros(), PAGE_SLOTS),
        TimeRange::Custom { .. } => Series::fixed(t0, t1, PAGE_SLOTS),
    }
}

/// Opens the device page for `device` over `range`: fresh series, then the history loads.
pub(super) fn open_device_page(device: DeviceId, range: TimeRange) {
    let Some(ticket) = with_rt(|rt| {
        let now = now_us();
        let series = Field::MEASURED
            .into_iter()
            .map(|f| (f, (new_series(range, now), 0)))
            .collect();
        rt.pages.device = Some(DevicePage {
            device: device.clone(),
            range,
            series,
            events: Vec::new(),
        });
        rt.frame.chart_dirty = true;
        rt.ui.field_state.set(
            Field::MEASURED
                .into_iter()
                .map(|f| (f, LoadState::Loading))
                .collect(),
        );
        rt.tickets.issue(Room::DevicePage)
    }) else {
        return;
    };
    let (t0, t1) = range.resolve(now_us());
    for field in Field::MEASURED {
        spawn_local(history::load_device_field(
            ticket,
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
                for field in Field::MEASURED {
                    spawn_local(history::load_device_field(
                        ticket,
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

pub(super) fn close_device_page() {
    with_rt(|rt| {
        rt.pages.device = None;
        rt.tickets.close(Room::DevicePage);
    });
}

/// Opens the insight page with `device` as its reference over `range`.
pub(super) fn open_insight_page(device: DeviceId, range: TimeRange) {
    let Some(ticket) = with_rt(|rt| {
        rt.pages.insight = Some(InsightPage {
            device: device.clone(),
            range,
            series: new_series(range, now_us()),
            interval_us: 0,
            history_events: Vec::new(),
            live_since_us: None,
        });
        rt.ui.insight_state.set(LoadState::Loading);
        rt.pages.events_shown = u64::MAX;
        rt.tickets.issue(Room::InsightPage)
    }) else {
        return;
    };
    let (t0, t1) = range.resolve(now_us());
    spawn_local(history::load_insight(ticket, device.clone(), t0, t1, true));
    if range.is_live() {
        set_timeout(
            move || {
                spawn_local(history::load_insight(
                    ticket,
                    device,
                    t1 - JUNCTION_US,
                    now_us(),
                    false,
                ))
            },
            Duration::from_millis(JUNCTION_DELAY_MS),
        );
    }
    update_figures();
    schedule_frame();
}

pub(super) fn close_insight_page() {
    with_rt(|rt| {
        rt.pages.insight = None;
        rt.pages.events_shown = u64::MAX;
        rt.tickets.close(Room::InsightPage);
    });
}

/// Which canvas a view registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CanvasKind {
    /// The overview's live chart.
    Overview,
    /// The insight view's live deviation chart.
    InsightLive,
    /// The insight view's chart of its range.
    InsightRange,
    /// A device page chart.
    Field(Field),
}

/// Registers (or with None, removes) a canvas.
pub(super) fn set_canvas(kind: CanvasKind, canvas: Option<HtmlCanvasElement>) {
    with_rt(|rt| {
        let c = &mut rt.pages.canvases;
        match kind {
            CanvasKind::Overview => c.overview = canvas,
            CanvasKind::InsightLive => c.insight = canvas,
            CanvasKind::InsightRange => c.insight_range = canvas,
            CanvasKind::Field(field) => match canvas {
                Some(canvas) => {
                    c.fields.insert(field, canvas);
                }
                None => {
                    c.fields.remove(&field);
                }
            },
        }
        rt.frame.chart_dirty = true;
    });
    schedule_frame();
}

/// Redraws every chart on screen.
pub(super) fn draw(rt: &mut Runtime, now_us: i64) {
    draw_overview(rt, now_us);
    draw_device_page(rt, now_us);
    draw_insight(rt, now_us);
}

/// The devices the overview shows: all, or the kiosk's one.
fn overview_traces(rt: &Runtime) -> Vec<TraceInput<'_>> {
    let focus = rt.ui.route.with_untracked(|r| {
        if r.kiosk && r.view == View::Overview {
            r.device.clone()
        } else {
            None
        }
    });
    let Some(store) = &rt.store else {
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

fn draw_overview(rt: &mut Runtime, now_us: i64) {
    let Some(canvas) = rt.pages.canvases.overview.clone() else {
        return;
    };
    let window = rt.ui.route.with_untracked(|r| r.window_us);
    let nominal = rt.nominal();
    let width = usize::try_from(canvas.client_width()).unwrap_or(0).max(1);
    let mut crowd = std::mem::take(&mut rt.pages.canvases.crowd);
    let traces = overview_traces(rt);
    let (mut spec, shown) =
        chart::live_frequency(&traces, now_us, window, nominal, width, &mut crowd);
    let t0 = now_us - window;
    let (gap, at) = traces
        .iter()
        .map(|t| t.series.max_inner_gap(t0, now_us))
        .max()
        .unwrap_or((0, 0));
    let facts = ChartFacts {
        start_us: t0,
        stop_us: now_us,
        samples: traces.iter().map(|t| t.series.len()).sum(),
        max_gap_ms: gap / 1000,
        max_gap_at_us: at,
        newest_us: traces
            .iter()
            .filter_map(|t| t.series.last().map(|s| s.last.max(s.t)))
            .max()
            .unwrap_or(0),
    };
    drop(traces);
    rt.pages.canvases.crowd = crowd;
    let marks = chart::add_span_marks(&mut spec, &span_marks(rt, now_us));
    chart::draw(&canvas, &spec);
    let _ = canvas.set_attribute("data-marks", &marks.to_string());
    if rt.ui.live_facts.get_untracked() != facts {
        rt.ui.live_facts.set(facts);
    }
    if rt.ui.live_shown.with_untracked(|s| *s != shown) {
        rt.ui.live_shown.set(shown);
    }
}

fn draw_device_page(rt: &mut Runtime, now_us: i64) {
    let nominal = rt.nominal();
    let tz = rt.ui.tz_offset_min.get_untracked();
    let Some(page) = &rt.pages.device else {
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
        let Some(canvas) = rt.pages.canvases.fields.get(field) else {
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
        let axis = chart::field_axis(*field, values, nominal);
        spec.y_min = axis.lo;
        spec.y_max = axis.hi;
        spec.y_decimals = axis.decimals;
        if *field == Field::Frequency {
            spec.rules.push(Rule {
                y: nominal,
                color: None,
                label: String::new(),
            });
        }
        spec.add_envelope(&segs, chart::PALETTE[0], |v| v);
        if *field == Field::Frequency {
            let mut spans: Vec<(i64, i64, chart::MarkKind)> = page
                .events
                .iter()
                .map(|&(a, b)| (a, b, chart::MarkKind::Event))
                .collect();
            rt.ui.alerts.with_untracked(|a| {
                for alert in a.iter().flat_map(|a| a.active.iter().chain(&a.past)) {
                    if alert.subject == "grid" || alert.subject == page.device.as_str() {
                        let end = alert.resolved_us.unwrap_or(now_us);
                        spans.push((alert.started_us, end, chart::MarkKind::Alert));
                    }
                }
            });
            let marks = chart::add_span_marks(&mut spec, &spans);
            let _ = canvas.set_attribute("data-marks", &marks.to_string());
        }
        chart::draw(canvas, &spec);
    }
    if rt.ui.field_facts.with_untracked(|f| *f != all_facts) {
        rt.ui.field_facts.set(all_facts);
    }
}

/// The grid events on the page, the server's events in the live window that the page did not
/// see itself (from before it opened), and the server's alerts about the grid, as spans to
/// shade.
fn span_marks(rt: &Runtime, now_us: i64) -> Vec<(i64, i64, chart::MarkKind)> {
    let mut spans: Vec<(i64, i64, chart::MarkKind)> = rt.ui.events.with_untracked(|es| {
        es.iter()
            .map(|e| {
                (
                    e.start_us,
                    e.end_us.unwrap_or(e.last_us),
                    chart::MarkKind::Event,
                )
            })
            .collect()
    });
    let unseen: Vec<_> = rt
        .pages
        .window_events
        .iter()
        .filter(|&&(a, b)| !spans.iter().any(|&(s, e, _)| s <= b && a <= e))
        .map(|&(a, b)| (a, b, chart::MarkKind::Event))
        .collect();
    spans.extend(unseen);
    rt.ui.alerts.with_untracked(|a| {
        for alert in a.iter().flat_map(|a| a.active.iter().chain(&a.past)) {
            if alert.subject == "grid" {
                let end = alert.resolved_us.unwrap_or(now_us);
                spans.push((alert.started_us, end, chart::MarkKind::Alert));
            }
        }
    });
    spans
}

fn draw_insight(rt: &mut Runtime, now_us: i64) {
    let bands = rt.bands();
    let spans = span_marks(rt, now_us);
    let to_mhz = |c: chart::Column| chart::Column {
        t: c.t,
        min: bands.deviation_mhz(c.min),
        mean: bands.deviation_mhz(c.mean),
        max: bands.deviation_mhz(c.max),
    };
    if let Some(canvas) = rt.pages.canvases.insight.clone() {
        let window = rt.ui.route.with_untracked(|r| r.window_us);
        let width = usize::try_from(canvas.client_width()).unwrap_or(0).max(1);
        let mut crowd = std::mem::take(&mut rt.pages.canvases.crowd);
        let traces = overview_traces(rt);
        let mut spec = ChartSpec::new(now_us - window, now_us, XLabels::Relative);
        let (values, shown) = spec.add_live(&traces, width, &mut crowd, |f| bands.deviation_mhz(f));
        drop(traces);
        rt.pages.canvases.crowd = crowd;
        chart::finish_deviation_chart(&mut spec, values, &bands);
        let marks = chart::add_span_marks(&mut spec, &spans);
        chart::draw(&canvas, &spec);
        let _ = canvas.set_attribute("data-marks", &marks.to_string());
        if rt.ui.live_shown.with_untracked(|s| *s != shown) {
            rt.ui.live_shown.set(shown);
        }
    }
    if let (Some(canvas), Some(page)) = (&rt.pages.canvases.insight_range, &rt.pages.insight) {
        let tz = rt.ui.tz_offset_min.get_untracked();
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
        chart::finish_deviation_chart(&mut spec, values, &bands);
        let marks = chart::add_span_marks(&mut spec, &spans);
        chart::draw(canvas, &spec);
        let _ = canvas.set_attribute("data-marks", &marks.to_string());
    }
}

/// Recomputes the insight view's figures.
pub(super) fn update_figures() {
    with_rt(|rt| {
        let bands = rt.bands();
        let Some(store) = &rt.store else {
            return;
        };
        let reference = rt.pages.insight.as_ref().map(|p| Reference {
            device: &p.device,
            series: &p.series,
            interval_us: p.interval_us,
        });
        let figures = figures::compute(store, &rt.insight, reference, &bands, rt.link.up, now_us());
        if rt.ui.figures.with_untracked(|f| *f != figures) {
            rt.ui.figures.set(figures);
        }
    });
}
