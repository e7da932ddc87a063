//! Charts: reducing [`Series`] to pixel columns and describing what to draw (pure), and drawing
//! that description on a `<canvas>` with plotters (browser only).
//!
//! Every chart is a [`ChartSpec`]: an x range in seconds before its right edge, a y range,
//! filled bands (min/max envelopes, the dead band), lines (means, device traces) and labelled
//! horizontal rules (nominal, band limits). Series are reduced to one min/mean/max [`Column`]
//! per pixel column first, so a chart costs the same to draw whatever the data rate, and a spike
//! survives as a column's min or max instead of being averaged away. Traces break where data is
//! missing for longer than the gap limit instead of bridging the hole.
//!
//! From [`CROWD_FROM`] devices on, a live chart draws their [`Crowd`] instead of a line each:
//! the median, the band from the lowest to the highest reading, and the devices that stray from
//! it on lines of their own. A [`CrowdCache`] keeps it between redraws, so a redraw reads only
//! what arrived since the last one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ogm_protocol::DeviceId;

use crate::series::{Sample, Series};

/// Silence longer than this breaks a live trace, µs.
pub const GAP_US: i64 = 10_000_000;
/// The y axis of a frequency chart shows at least nominal ± this, Hz.
pub const MIN_HALF_SPAN_HZ: f64 = 0.050;

/// Line colours, told apart on dark and light backgrounds alike.
pub const PALETTE: [(u8, u8, u8); 10] = [
    (31, 144, 255),
    (255, 127, 14),
    (44, 190, 90),
    (230, 60, 80),
    (160, 110, 230),
    (23, 190, 207),
    (230, 200, 40),
    (227, 119, 194),
    (140, 160, 60),
    (170, 120, 90),
];

/// Where the plotting area starts inside a canvas, CSS px from its left edge (margin and y
/// labels), for labels `font_px` tall: wider for the large type of a wall screen.
pub fn plot_left_px(font_px: f64) -> f64 {
    8.0 + (4.6 * font_px).max(64.0)
}
/// Where it ends, CSS px from the canvas' right edge.
pub const PLOT_RIGHT_PX: f64 = 24.0;

/// The size of axis labels for a page whose root font is `root_px`, px.
pub fn label_px(root_px: f64) -> f64 {
    (root_px * 0.8).clamp(11.0, 26.0)
}

/// The time under `x_px` (from the canvas' left edge) on a chart of `[t0, t1]` drawn
/// `width_px` wide with labels `font_px` tall; clamped to the range.
pub fn x_to_time(x_px: f64, width_px: f64, font_px: f64, t0: i64, t1: i64) -> i64 {
    let left = plot_left_px(font_px);
    let plot = (width_px - left - PLOT_RIGHT_PX).max(1.0);
    let f = ((x_px - left) / plot).clamp(0.0, 1.0);
    t0 + (f * (t1 - t0) as f64) as i64
}

/// Pixel columns all the traces of one chart may use together: each column is at most two
/// points, so a hundred devices cost a chart what a few do.
pub const TRACE_COLUMN_BUDGET: usize = 4_000;
/// Fewest columns a trace gets however many there are.
pub const MIN_TRACE_COLUMNS: usize = 40;

/// Line width of each trace, px: thinner when many overlap (and cheaper to paint).
pub fn trace_width(traces: usize) -> f64 {
    if traces > 10 { 1.0 } else { 2.0 }
}

/// Columns per trace for `traces` traces on a chart `width` px wide.
pub fn columns_per_trace(width: usize, traces: usize) -> usize {
    (TRACE_COLUMN_BUDGET / traces.max(1))
        .max(MIN_TRACE_COLUMNS)
        .min(width.max(1))
}

/// Shortest and longest time between two redraws of the charts, ms.
pub const REDRAW_MS: (f64, f64) = (200.0, 1_000.0);

/// How long to leave between redraws: about the time the live window takes to move by one
/// pixel of a wide chart, plus 2 ms per trace (a chart of a hundred devices costs more to
/// paint), within [`REDRAW_MS`]; and never less than three times what the last redraw cost
/// (so drawing takes at most a quarter of the main thread).
pub fn redraw_interval_ms(window_us: i64, traces: usize, last_cost_ms: f64) -> f64 {
    let per_pixel = window_us as f64 / 1_000.0 / 1_800.0;
    (per_pixel.max(REDRAW_MS.0) + 2.0 * traces as f64)
        .min(REDRAW_MS.1)
        .max(3.0 * last_cost_ms)
}

/// A device's colour: stable for its id, whatever other devices come and go.
pub fn color_of(id: &str) -> (u8, u8, u8) {
    // FNV-1a.
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    PALETTE[(h % PALETTE.len() as u32) as usize]
}

/// `rgb(r, g, b)` for CSS.
pub fn css_color((r, g, b): (u8, u8, u8)) -> String {
    format!("rgb({r}, {g}, {b})")
}

/// One pixel column of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Column {
    /// Mean time of the samples in the column, µs.
    pub t: i64,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
}

/// Reduces samples to at most one [`Column`] per pixel column of `[t0, t1]`, split into
/// segments where the data stops for more than `gap_us`: from the last value of one sample to
/// the first of the next, their real times (a slot's start is rounded, and would make a
/// steady interval look uneven).
pub fn reduce<'a>(
    samples: impl Iterator<Item = &'a Sample>,
    t0: i64,
    t1: i64,
    columns: usize,
    gap_us: i64,
) -> Vec<Vec<Column>> {
    let columns = columns.max(1);
    let span = (t1 - t0).max(1) as f64;
    let mut segments: Vec<Vec<Column>> = Vec::new();
    let mut current: Vec<Column> = Vec::new();
    let mut acc: Option<(usize, Acc)> = None;
    let mut prev_end: Option<i64> = None;
    for s in samples.filter(|s| s.t >= t0 && s.t <= t1) {
        let col = (((s.t - t0) as f64 / span) * columns as f64) as usize;
        let (start, end) = if s.first == 0 && s.last == 0 {
            (s.t, s.t)
        } else {
            (s.first, s.last.max(s.first))
        };
        let gap = prev_end.is_some_and(|p| start - p > gap_us);
        prev_end = Some(prev_end.map_or(end, |p| p.max(end)));
        match &mut acc {
            Some((c, a)) if *c == col && !gap => a.add(s),
            _ => {
                if let Some((_, a)) = acc.take() {
                    current.push(a.column());
                }
                if gap && !current.is_empty() {
                    segments.push(std::mem::take(&mut current));
                }
                acc = Some((col, Acc::new(s)));
            }
        }
    }
    if let Some((_, a)) = acc {
        current.push(a.column());
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

struct Acc {
    t_sum: f64,
    n: f64,
    min: f64,
    max: f64,
    weighted: f64,
    weight: f64,
}

impl Acc {
    fn new(s: &Sample) -> Self {
        let w = s.count.max(1) as f64;
        Self {
            t_sum: s.mid() as f64,
            n: 1.0,
            min: s.min,
            max: s.max,
            weighted: s.mean * w,
            weight: w,
        }
    }

    fn add(&mut self, s: &Sample) {
        let w = s.count.max(1) as f64;
        self.t_sum += s.mid() as f64;
        self.n += 1.0;
        self.min = self.min.min(s.min);
        self.max = self.max.max(s.max);
        self.weighted += s.mean * w;
        self.weight += w;
    }

    fn column(&self) -> Column {
        Column {
            t: (self.t_sum / self.n) as i64,
            min: self.min,
            mean: self.weighted / self.weight,
            max: self.max,
        }
    }
}

/// The gap limit for a series: [`GAP_US`], or three slots, history buckets or of the data's
/// own usual spacing (the median between successive samples, newest first), whichever is
/// longest. So a device
/// that reports every 10 s draws a line, and only a real outage breaks it.
pub fn gap_for(series: &Series, history_interval_us: i64) -> i64 {
    gap_with(series, history_interval_us, usual_step_us(series))
}

/// [`gap_for`] with the usual step known.
fn gap_with(series: &Series, history_interval_us: i64, usual_step_us: i64) -> i64 {
    GAP_US.max(3 * series.slot_us().max(history_interval_us).max(usual_step_us))
}

/// A polyline through each column's extremes: a live trace on which spikes stay visible.
pub fn zigzag(columns: &[Column]) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(columns.len() * 2);
    let mut last: Option<f64> = None;
    for c in columns {
        if c.min == c.max {
            out.push((c.t, c.mean));
            last = Some(c.mean);
            continue;
        }
        // Visit the extreme nearer to where the line is first.
        let low_first = last.is_some_and(|l| (l - c.min).abs() < (l - c.max).abs());
        let (a, b) = if low_first {
            (c.min, c.max)
        } else {
            (c.max, c.min)
        };
        out.push((c.t, a));
        out.push((c.t, b));
        last = Some(b);
    }
    out
}

/// A y range centred on `centre`: at least ± `min_half`, else the largest distance plus a
/// tenth.
pub fn centred_range(values: impl Iterator<Item = f64>, centre: f64, min_half: f64) -> (f64, f64) {
    let max_dev = values
        .filter(|v| v.is_finite())
        .map(|v| (v - centre).abs())
        .fold(0.0, f64::max);
    let half = (max_dev * 1.1).max(min_half);
    (centre - half, centre + half)
}

/// A y range around the data with 5 % padding and at least `min_span`.
pub fn padded_range(values: impl Iterator<Item = f64>, min_span: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        return (0.0, min_span);
    }
    let mid = (lo + hi) / 2.0;
    let half = ((hi - lo) * 1.1 / 2.0).max(min_span / 2.0);
    (mid - half, mid + half)
}

/// How the x axis is labelled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum XLabels {
    /// `−30 s`, `−4 min`, `now`.
    Relative,
    /// Local clock time (`14:05`, or `27.11 14:05` over days), at this UTC offset in minutes.
    Clock { tz_offset_min: i32 },
}

/// Tick positions and labels for the x axis of `[t0, t1]`: at most about `max` of them, on
/// round steps (relative: multiples of the step before the right edge; clock: round local
/// times).
pub fn time_ticks(t0: i64, t1: i64, labels: XLabels, max: usize) -> Vec<(i64, String)> {
    const S: i64 = 1_000_000;
    const STEPS: [i64; 20] = [
        S,
        2 * S,
        5 * S,
        10 * S,
        15 * S,
        30 * S,
        60 * S,
        120 * S,
        300 * S,
        600 * S,
        900 * S,
        1_800 * S,
        3_600 * S,
        7_200 * S,
        10_800 * S,
        21_600 * S,
        43_200 * S,
        86_400 * S,
        2 * 86_400 * S,
        7 * 86_400 * S,
    ];
    let span = (t1 - t0).max(1);
    let max = max.max(2) as i64;
    let step = STEPS
        .into_iter()
        .find(|s| span / s < max)
        .unwrap_or(STEPS[STEPS.len() - 1]);
    let span_s = span as f64 / 1e6;
    let mut out = Vec::new();
    match labels {
        XLabels::Relative => {
            let mut t = t1;
            while t >= t0 {
                out.push((t, crate::format::relative_seconds((t - t1) as f64 / 1e6)));
                t -= step;
            }
            out.reverse();
        }
        XLabels::Clock { tz_offset_min } => {
            let tz = i64::from(tz_offset_min) * 60 * S;
            let mut t = (t0 + tz).div_euclid(step) * step - tz;
            if t < t0 {
                t += step;
            }
            // Seconds only when the ticks are less than a minute apart.
            let label_span = if step >= 60 * S {
                span_s.max(301.0)
            } else {
                span_s
            };
            while t <= t1 {
                out.push((t, crate::format::axis_time(t, tz_offset_min, label_span)));
                t += step;
            }
        }
    }
    out
}

/// A filled band: between two y values, or a min/max envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Fill {
    pub color: (u8, u8, u8),
    pub alpha: f64,
    /// Upper edge left to right, then lower edge right to left: `(x, y)`.
    pub polygon: Vec<(f64, f64)>,
}

/// A polyline.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub color: (u8, u8, u8),
    pub width: f64,
    pub points: Vec<(f64, f64)>,
}

/// A labelled horizontal rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub y: f64,
    /// None: the axis colour.
    pub color: Option<(u8, u8, u8)>,
    pub label: String,
}

/// Everything one canvas needs for one frame. x is in seconds relative to the right edge
/// (`-span_s ..= 0`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSpec {
    pub span_s: f64,
    /// The right edge, µs since the epoch (for clock labels).
    pub end_us: i64,
    pub x_labels: XLabels,
    pub y_min: f64,
    pub y_max: f64,
    /// Decimals of the y labels.
    pub y_decimals: usize,
    pub fills: Vec<Fill>,
    pub lines: Vec<Line>,
    pub rules: Vec<Rule>,
}

impl ChartSpec {
    /// An empty chart over `[t0, t1]`.
    pub fn new(t0: i64, t1: i64, x_labels: XLabels) -> Self {
        Self {
            span_s: ((t1 - t0).max(1)) as f64 / 1e6,
            end_us: t1,
            x_labels,
            y_min: 0.0,
            y_max: 1.0,
            y_decimals: 1,
            fills: Vec::new(),
            lines: Vec::new(),
            rules: Vec::new(),
        }
    }

    /// x of a time.
    pub fn x(&self, t_us: i64) -> f64 {
        (t_us - self.end_us) as f64 / 1e6
    }

    /// Adds a min/max envelope and its mean line for each segment, with `map` applied to the
    /// values (e.g. Hz to mHz).
    pub fn add_envelope(
        &mut self,
        segments: &[Vec<Column>],
        color: (u8, u8, u8),
        map: impl Fn(f64) -> f64,
    ) {
        for seg in segments {
            let mut poly: Vec<(f64, f64)> = seg.iter().map(|c| (self.x(c.t), map(c.max))).collect();
            poly.extend(seg.iter().rev().map(|c| (self.x(c.t), map(c.min))));
            if seg.iter().any(|c| c.min != c.max) {
                self.fills.push(Fill {
                    color,
                    alpha: 0.28,
                    polygon: poly,
                });
            }
            self.lines.push(Line {
                color,
                width: 1.5,
                points: seg.iter().map(|c| (self.x(c.t), map(c.mean))).collect(),
            });
        }
    }

    /// Adds a trace through each column's extremes.
    pub fn add_trace(&mut self, segments: &[Vec<Column>], color: (u8, u8, u8), width: f64) {
        for seg in segments {
            let points = zigzag(seg)
                .into_iter()
                .map(|(t, v)| (self.x(t), v))
                .collect();
            self.lines.push(Line {
                color,
                width,
                points,
            });
        }
    }
}

/// From this many devices on, a live chart draws their [`Crowd`] instead of a line each: a
/// hundred overlapping lines show no one device, and cost a frame each time they are painted.
pub const CROWD_FROM: usize = 13;
/// Most strays a crowd chart draws on their own, worst first.
pub const MAX_STRAYS: usize = 6;
/// A device strays from the crowd when its readings leave the median by more than this, Hz,
/// and by more than [`STRAY_FACTOR`] times what the typical device's do.
pub const STRAY_MIN_HZ: f64 = 0.010;
/// See [`STRAY_MIN_HZ`].
pub const STRAY_FACTOR: f64 = 3.0;
/// The colour of a crowd's band and median.
pub const CROWD_COLOR: (u8, u8, u8) = (112, 128, 144);

/// Many devices as one: per column, the median of the devices' means, and the band from the
/// lowest to the highest reading of every device not drawn on its own. The devices that stray
/// from the median (a bad sensor, a device on another grid) are drawn on their own, so every
/// reading is either inside the band or on a line of its own: nothing is averaged away.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Crowd {
    /// Columns in segments: `min` and `max` the band, `mean` the median.
    pub segments: Vec<Vec<Column>>,
    /// The strays, worst first: the index of each in the input and its columns.
    pub strays: Vec<(usize, Vec<Vec<Column>>)>,
}

/// The usual time between a series' samples, µs (the median of its newest 64 steps; 0 with
/// fewer than two samples).
fn usual_step_us(series: &Series) -> i64 {
    // The newest 64 steps are enough to know it, and cheap enough for every redraw.
    let mut steps: Vec<i64> = series
        .iter()
        .rev()
        .take(65)
        .map(Sample::mid)
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[0] - w[1])
        .filter(|d| *d > 0)
        .collect();
    if steps.is_empty() {
        return 0;
    }
    let mid = steps.len() / 2;
    *steps.select_nth_unstable(mid).1
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mid = values.len() / 2;
    Some(*values.select_nth_unstable_by(mid, f64::total_cmp).1)
}

/// One device's readings in one column of a crowd: `k` counts columns since the epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cell {
    k: i64,
    min: f64,
    max: f64,
    /// The sum and number of the samples' means.
    sum: f64,
    n: f64,
}

impl Cell {
    fn mean(&self) -> f64 {
        self.sum / self.n
    }
}

/// What a [`CrowdCache`] knows of one device.
#[derive(Debug, Clone, Default)]
struct DeviceCells {
    /// [`Series::rewrites`] when read.
    rewrites: u64,
    /// Start of the newest sample read, µs: only its column and later ones can change.
    newest_t: i64,
    /// Oldest first.
    cells: VecDeque<Cell>,
}

/// Quantises a column width to 1, 2 or 5 times a power of ten, µs, so that it stays the same
/// from one redraw to the next: the smallest such at least `us`, unless that is more than
/// `max_us`, then the largest not more than it (at least 1 ms).
fn nice_us(us: f64, max_us: f64) -> i64 {
    let nice = (3..12)
        .flat_map(|e| [1, 2, 5].map(|m| m * 10i64.pow(e)))
        .collect::<Vec<_>>();
    match nice.iter().find(|&&n| n as f64 >= us) {
        Some(&n) if n as f64 <= max_us => n,
        _ => nice
            .iter()
            .rev()
            .find(|&&n| n as f64 <= max_us)
            .copied()
            .unwrap_or(1_000),
    }
}

/// The [`Crowd`] of the live charts, kept from one redraw to the next: the columns are aligned
/// to the epoch, so a column once computed stays right until its device's series is rewritten
/// (a history fill, a backfill) or new data land in it; a redraw reads only the samples that
/// arrived since the last one. A hundred devices at 10 Hz cost a redraw their newest few
/// hundred samples, not the window's hundred thousand.
#[derive(Debug, Clone, Default)]
pub struct CrowdCache {
    col_us: i64,
    devices: BTreeMap<DeviceId, DeviceCells>,
    /// The median of each column from `medians_k0` on, while it lasts.
    medians: VecDeque<Option<f64>>,
    medians_k0: i64,
}

impl CrowdCache {
    /// The crowd of `traces` over `[t0, t1]` in at most `max_columns` columns: fewer when the
    /// devices report less often, so each column holds about two readings of every device and
    /// its median is taken over all of them.
    pub fn crowd(
        &mut self,
        traces: &[TraceInput<'_>],
        t0: i64,
        t1: i64,
        max_columns: usize,
    ) -> Crowd {
        let span = (t1 - t0).max(1) as f64;
        let steps: Vec<i64> = traces.iter().map(|t| usual_step_us(t.series)).collect();
        let step = median(&mut steps.iter().map(|&s| s as f64).collect::<Vec<_>>()).unwrap_or(0.0);
        let col_us = nice_us(
            (2.0 * step).max(span / max_columns.max(1) as f64),
            span / MIN_TRACE_COLUMNS as f64,
        );
        if col_us != self.col_us {
            *self = Self {
                col_us,
                ..Self::default()
            };
        }
        let (k0, k1) = (t0.div_euclid(col_us), t1.div_euclid(col_us));
        let dirty_from = self.update_cells(traces, t0, t1);
        self.update_medians(k0, k1, dirty_from, traces.len());
        let strays = self.strays(traces, k1);
        let mut gaps: Vec<f64> = traces
            .iter()
            .zip(&steps)
            .map(|(t, &step)| gap_with(t.series, 0, step) as f64)
            .collect();
        let gap_us = median(&mut gaps).unwrap_or(GAP_US as f64);
        let segments = self.band(traces, &strays, (t0, t1), gap_us);
        let strays = strays
            .into_iter()
            .map(|i| {
                let s = traces[i].series;
                (i, reduce(s.iter(), t0, t1, max_columns, gap_for(s, 0)))
            })
            .collect();
        Crowd { segments, strays }
    }

    /// Brings each device's cells up to date with its series: only from the column of the
    /// newest sample read last time, unless the series was rewritten. Returns the oldest
    /// column that changed.
    fn update_cells(&mut self, traces: &[TraceInput<'_>], t0: i64, t1: i64) -> i64 {
        let col_us = self.col_us;
        let column = |t: i64| t.div_euclid(col_us);
        let k0 = column(t0);
        let mut dirty_from = i64::MAX;
        let before = self.devices.len();
        let shown: BTreeSet<&DeviceId> = traces.iter().map(|t| t.id).collect();
        self.devices.retain(|id, _| shown.contains(id));
        if self.devices.len() != before {
            dirty_from = i64::MIN; // a device left every column it was in
        }
        for tr in traces {
            let cached = self.devices.entry(tr.id.clone()).or_default();
            let s = tr.series;
            let from_k = if cached.rewrites != s.rewrites() || cached.cells.is_empty() {
                if let Some(oldest) = cached.cells.front() {
                    dirty_from = dirty_from.min(oldest.k);
                }
                cached.cells.clear();
                // One cell per column of the window, without a deque's doubling.
                let columns = (column(t1) - k0 + 2).max(0) as usize;
                cached
                    .cells
                    .reserve_exact(columns.saturating_sub(cached.cells.capacity()));
                i64::MIN
            } else {
                column(cached.newest_t)
            };
            cached.rewrites = s.rewrites();
            while cached.cells.back().is_some_and(|c| c.k >= from_k) {
                cached.cells.pop_back();
            }
            let fresh: Vec<&Sample> = s
                .iter()
                .rev()
                .take_while(|r| column(r.t) >= from_k && r.t >= t0 - col_us)
                .collect();
            if let Some(first) = fresh.last() {
                dirty_from = dirty_from.min(column(first.t));
            }
            for r in fresh.into_iter().rev().filter(|r| r.t <= t1) {
                let k = column(r.t);
                match cached.cells.back_mut() {
                    Some(c) if c.k == k => {
                        c.min = c.min.min(r.min);
                        c.max = c.max.max(r.max);
                        c.sum += r.mean;
                        c.n += 1.0;
                    }
                    _ => cached.cells.push_back(Cell {
                        k,
                        min: r.min,
                        max: r.max,
                        sum: r.mean,
                        n: 1.0,
                    }),
                }
                cached.newest_t = r.t;
            }
            while cached.cells.front().is_some_and(|c| c.k < k0) {
                cached.cells.pop_front();
            }
        }
        dirty_from
    }

    /// Keeps the medians of columns `k0..=k1`, computing those from `dirty_from` on again.
    fn update_medians(&mut self, k0: i64, k1: i64, mut dirty_from: i64, devices: usize) {
        if self.medians_k0 > k0 {
            // The window went back in time (the clock did): start over.
            self.medians.clear();
            dirty_from = i64::MIN;
        }
        while self.medians_k0 < k0 && !self.medians.is_empty() {
            self.medians.pop_front();
            self.medians_k0 += 1;
        }
        if self.medians.is_empty() {
            self.medians_k0 = k0;
        }
        self.medians
            .resize((k1 - self.medians_k0 + 1).max(0) as usize, None);
        let mut means: Vec<f64> = Vec::with_capacity(devices);
        for k in dirty_from.max(self.medians_k0)..=k1 {
            means.clear();
            for d in self.devices.values() {
                if let Some(c) = cell_at(&d.cells, k) {
                    means.push(c.mean());
                }
            }
            self.medians[(k - self.medians_k0) as usize] = median(&mut means);
        }
    }

    fn median_at(&self, k: i64) -> Option<f64> {
        self.medians
            .get(usize::try_from(k - self.medians_k0).ok()?)
            .copied()
            .flatten()
    }

    /// The devices (indices into `traces`) whose readings stray furthest from the median, worst
    /// first: further than [`STRAY_MIN_HZ`] and [`STRAY_FACTOR`] times the typical device.
    fn strays(&self, traces: &[TraceInput<'_>], k1: i64) -> Vec<usize> {
        let mut worst: Vec<(usize, f64)> = traces
            .iter()
            .enumerate()
            .map(|(i, tr)| {
                let w = self.devices[tr.id]
                    .cells
                    .iter()
                    .filter(|c| c.k <= k1)
                    .filter_map(|c| self.median_at(c.k).map(|m| (c.max - m).max(m - c.min)))
                    .fold(0.0, f64::max);
                (i, w)
            })
            .collect();
        let mut all: Vec<f64> = worst.iter().map(|w| w.1).collect();
        let typical = median(&mut all).unwrap_or(0.0);
        let limit = STRAY_MIN_HZ.max(STRAY_FACTOR * typical);
        worst.retain(|w| w.1 > limit);
        worst.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        worst.truncate(MAX_STRAYS);
        worst.into_iter().map(|w| w.0).collect()
    }

    /// The band over every device but the strays, with the median, in segments broken where
    /// none of them has data for longer than `gap_us`.
    fn band(
        &self,
        traces: &[TraceInput<'_>],
        strays: &[usize],
        (t0, t1): (i64, i64),
        gap_us: f64,
    ) -> Vec<Vec<Column>> {
        let col_us = self.col_us;
        let (k0, k1) = (t0.div_euclid(col_us), t1.div_euclid(col_us));
        let mut band: Vec<Option<(f64, f64)>> = vec![None; (k1 - k0 + 1).max(0) as usize];
        for (_, tr) in traces
            .iter()
            .enumerate()
            .filter(|(i, _)| !strays.contains(i))
        {
            for c in self.devices[tr.id].cells.iter().filter(|c| c.k <= k1) {
                let b = &mut band[(c.k - k0) as usize];
                *b = Some(b.map_or((c.min, c.max), |(lo, hi)| (lo.min(c.min), hi.max(c.max))));
            }
        }
        let mut segments: Vec<Vec<Column>> = Vec::new();
        let mut current: Vec<Column> = Vec::new();
        for (k, b) in (k0..).zip(&band) {
            let (Some((min, max)), Some(mean)) = (b, self.median_at(k)) else {
                continue;
            };
            let t = (k * col_us + col_us / 2).max(t0).min(t1);
            if current.last().is_some_and(|p| (t - p.t) as f64 > gap_us) {
                segments.push(std::mem::take(&mut current));
            }
            current.push(Column {
                t,
                min: *min,
                mean: mean.max(*min).min(*max),
                max: *max,
            });
        }
        if !current.is_empty() {
            segments.push(current);
        }
        segments
    }
}

/// The cell of column `k` in `cells` (sorted by column).
fn cell_at(cells: &VecDeque<Cell>, k: i64) -> Option<&Cell> {
    let i = cells.partition_point(|c| c.k < k);
    cells.get(i).filter(|c| c.k == k)
}

/// [`CrowdCache::crowd`] with nothing cached.
pub fn crowd(traces: &[TraceInput<'_>], t0: i64, t1: i64, max_columns: usize) -> Crowd {
    CrowdCache::default().crowd(traces, t0, t1, max_columns)
}

/// One device's trace on a live chart.
#[derive(Debug, Clone)]
pub struct TraceInput<'a> {
    pub id: &'a DeviceId,
    pub series: &'a Series,
}

/// What a live chart shows, for its legend and tests.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum LiveShown {
    /// A line per device.
    #[default]
    Devices,
    /// The [`Crowd`] of this many devices, and the strays drawn on their own.
    Crowd {
        devices: usize,
        strays: Vec<DeviceId>,
    },
}

impl ChartSpec {
    /// Adds the live traces over the chart's window, `width_px` wide, with `map` applied to
    /// the values (e.g. Hz to mHz deviation): a line per device, or from [`CROWD_FROM`]
    /// devices on their crowd and its strays. Returns the values drawn (for the y range).
    pub fn add_live(
        &mut self,
        traces: &[TraceInput<'_>],
        width_px: usize,
        cache: &mut CrowdCache,
        map: impl Fn(f64) -> f64,
    ) -> (Vec<f64>, LiveShown) {
        let t1 = self.end_us;
        let t0 = t1 - (self.span_s * 1e6) as i64;
        let mapped = |segs: Vec<Vec<Column>>| -> Vec<Vec<Column>> {
            segs.into_iter()
                .map(|s| {
                    s.into_iter()
                        .map(|c| Column {
                            t: c.t,
                            min: map(c.min),
                            mean: map(c.mean),
                            max: map(c.max),
                        })
                        .collect()
                })
                .collect()
        };
        let mut values: Vec<f64> = Vec::new();
        if traces.len() < CROWD_FROM {
            let columns = columns_per_trace(width_px, traces.len());
            for tr in traces {
                let segs = mapped(reduce(
                    tr.series.iter(),
                    t0,
                    t1,
                    columns,
                    gap_for(tr.series, 0),
                ));
                values.extend(segs.iter().flatten().flat_map(|c| [c.min, c.max]));
                self.add_trace(&segs, color_of(tr.id), trace_width(traces.len()));
            }
            return (values, LiveShown::Devices);
        }
        let crowd = cache.crowd(traces, t0, t1, (width_px / 2).max(MIN_TRACE_COLUMNS));
        let band = mapped(crowd.segments);
        values.extend(band.iter().flatten().flat_map(|c| [c.min, c.max]));
        for seg in &band {
            let mut polygon: Vec<(f64, f64)> = seg.iter().map(|c| (self.x(c.t), c.max)).collect();
            polygon.extend(seg.iter().rev().map(|c| (self.x(c.t), c.min)));
            self.fills.push(Fill {
                color: CROWD_COLOR,
                alpha: 0.35,
                polygon,
            });
            self.lines.push(Line {
                color: CROWD_COLOR,
                width: 2.0,
                points: seg.iter().map(|c| (self.x(c.t), c.mean)).collect(),
            });
        }
        let mut strays = Vec::new();
        for (i, segs) in crowd.strays {
            let segs = mapped(segs);
            values.extend(segs.iter().flatten().flat_map(|c| [c.min, c.max]));
            self.add_trace(&segs, color_of(traces[i].id), 1.5);
            strays.push(traces[i].id.clone());
        }
        let shown = LiveShown::Crowd {
            devices: traces.len(),
            strays,
        };
        (values, shown)
    }
}

/// The overview's live frequency chart over the window before `now_us`, `width_px` wide.
pub fn live_frequency(
    traces: &[TraceInput<'_>],
    now_us: i64,
    window_us: i64,
    nominal_hz: f64,
    width_px: usize,
    cache: &mut CrowdCache,
) -> (ChartSpec, LiveShown) {
    let t0 = now_us - window_us;
    let mut spec = ChartSpec::new(t0, now_us, XLabels::Relative);
    let (values, shown) = spec.add_live(traces, width_px, cache, |v| v);
    let (lo, hi) = centred_range(values.into_iter(), nominal_hz, MIN_HALF_SPAN_HZ);
    spec.y_min = lo;
    spec.y_max = hi;
    spec.y_decimals = 3;
    spec.rules.push(Rule {
        y: nominal_hz,
        color: None,
        label: String::new(),
    });
    (spec, shown)
}

#[cfg(target_arch = "wasm32")]
pub use canvas::{PlotArea, draw};

#[cfg(target_arch = "wasm32")]
mod canvas {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    use plotters_canvas::CanvasBackend;
    use wasm_bindgen::JsCast;
    use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

    use super::ChartSpec;

    /// Where the plotting area lies in the canvas, CSS px from its left edge: what a drag on
    /// the canvas maps to in time.
    #[derive(Debug, Clone, Copy, PartialEq, Default)]
    pub struct PlotArea {
        pub left: f64,
        pub right: f64,
    }

    /// Draws `spec` on `canvas`, sized to its CSS box at the device pixel ratio, in the text
    /// colour CSS gives the canvas. Errors leave the old frame; the next frame tries again.
    pub fn draw(canvas: &HtmlCanvasElement, spec: &ChartSpec) -> Option<PlotArea> {
        try_draw(canvas, spec)
    }

    const MARGIN_PX: f64 = 8.0;
    const MARGIN_RIGHT_PX: f64 = super::PLOT_RIGHT_PX;

    fn try_draw(canvas: &HtmlCanvasElement, spec: &ChartSpec) -> Option<PlotArea> {
        let window = web_sys::window()?;
        let dpr = window.device_pixel_ratio().clamp(1.0, 4.0);
        let (w, h) = (canvas.client_width(), canvas.client_height());
        if w <= 0 || h <= 0 {
            return None;
        }
        let (pw, ph) = ((f64::from(w) * dpr) as u32, (f64::from(h) * dpr) as u32);
        if canvas.width() != pw || canvas.height() != ph {
            canvas.set_width(pw);
            canvas.set_height(ph);
        }
        let (fg, font_px) = text_style(&window, canvas);
        let fg = RGBColor(fg.0, fg.1, fg.2);
        let y_label_px = super::plot_left_px(font_px) - MARGIN_PX;
        let ctx: CanvasRenderingContext2d = canvas.get_context("2d").ok()??.dyn_into().ok()?;
        ctx.clear_rect(0.0, 0.0, f64::from(pw), f64::from(ph));

        let px = |v: f64| (v * dpr).round() as u32;
        let root = CanvasBackend::with_canvas_object(canvas.clone())?.into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .margin(px(MARGIN_PX))
            .margin_right(px(MARGIN_RIGHT_PX))
            .x_label_area_size(px(font_px * 2.2))
            .y_label_area_size(px(y_label_px))
            .build_cartesian_2d(-spec.span_s..0.0, spec.y_min..spec.y_max)
            .ok()?;
        let font = ("sans-serif", font_px * dpr).into_font().color(&fg);
        let decimals = spec.y_decimals;
        chart
            .configure_mesh()
            .label_style(font.clone())
            .axis_style(fg.mix(0.6))
            .bold_line_style(fg.mix(0.15))
            .max_light_lines(1)
            .light_line_style(fg.mix(0.05))
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(7)
            .y_label_formatter(&|y| format!("{y:.decimals$}"))
            .draw()
            .ok()?;
        // Round times on the x axis, drawn by hand: plotters would pick round seconds before
        // the right edge, not round clock times.
        let t1 = spec.end_us;
        let t0 = t1 - (spec.span_s * 1e6) as i64;
        let max_ticks = (f64::from(w) / 90.0).clamp(3.0, 12.0) as usize;
        let label_font = font.clone().pos(Pos::new(HPos::Center, VPos::Top));
        for (t, label) in super::time_ticks(t0, t1, spec.x_labels, max_ticks) {
            let x = spec.x(t);
            chart
                .draw_series(LineSeries::new(
                    [(x, spec.y_min), (x, spec.y_max)],
                    fg.mix(0.15).stroke_width(1),
                ))
                .ok()?;
            let (px_x, px_y) = chart.backend_coord(&(x, spec.y_min));
            root.draw(&Text::new(
                label,
                (px_x, px_y + px(6.0) as i32),
                label_font.clone(),
            ))
            .ok()?;
        }
        for fill in &spec.fills {
            let (r, g, b) = fill.color;
            chart
                .draw_series(std::iter::once(Polygon::new(
                    fill.polygon.clone(),
                    RGBColor(r, g, b).mix(fill.alpha).filled(),
                )))
                .ok()?;
        }
        let in_range = |y: f64| y >= spec.y_min && y <= spec.y_max;
        for rule in spec.rules.iter().filter(|r| in_range(r.y)) {
            let color = rule
                .color
                .map_or(fg.mix(0.5), |(r, g, b)| RGBColor(r, g, b).mix(0.8));
            chart
                .draw_series(LineSeries::new(
                    [(-spec.span_s, rule.y), (0.0, rule.y)],
                    color.stroke_width(px(1.0)),
                ))
                .ok()?;
            if !rule.label.is_empty() {
                let style = font.clone().color(&color);
                chart
                    .draw_series(std::iter::once(Text::new(
                        rule.label.clone(),
                        (-spec.span_s, rule.y),
                        style,
                    )))
                    .ok()?;
            }
        }
        for line in &spec.lines {
            let (r, g, b) = line.color;
            let style = RGBColor(r, g, b).stroke_width(px(line.width).max(1));
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), style))
                .ok()?;
        }
        root.present().ok()?;
        let left = MARGIN_PX + y_label_px;
        Some(PlotArea {
            left,
            right: f64::from(w) - MARGIN_RIGHT_PX,
        })
    }

    thread_local! {
        /// The canvas text colour, the label size and when they were read (ms): reading them
        /// is a style recalc, and they change only with the theme and the window size.
        static STYLE: std::cell::Cell<(f64, (u8, u8, u8), f64)> =
            const { std::cell::Cell::new((f64::MIN, (128, 128, 128), 13.0)) };
    }

    /// The canvas' text colour and the size of its axis labels, px.
    fn text_style(window: &web_sys::Window, canvas: &HtmlCanvasElement) -> ((u8, u8, u8), f64) {
        let now = js_sys::Date::now();
        let (at, colour, font) = STYLE.with(|c| c.get());
        if now - at < 500.0 {
            return (colour, font);
        }
        let style = window.get_computed_style(canvas).ok().flatten();
        let colour = style
            .as_ref()
            .and_then(|s| s.get_property_value("color").ok())
            .and_then(|c| parse_rgb(&c))
            .unwrap_or(colour);
        let font = style
            .as_ref()
            .and_then(|s| s.get_property_value("font-size").ok())
            .and_then(|f| f.trim_end_matches("px").parse::<f64>().ok())
            .map_or(font, super::label_px);
        STYLE.with(|c| c.set((now, colour, font)));
        (colour, font)
    }

    /// `rgb(1, 2, 3)` or `rgba(1, 2, 3, 0.5)` → (1, 2, 3).
    fn parse_rgb(css: &str) -> Option<(u8, u8, u8)> {
        let inner = css.split_once('(')?.1.trim_end_matches(')');
        let mut it = inner.split(',').map(|s| s.trim().parse::<f64>().ok());
        let (r, g, b) = (it.next()??, it.next()??, it.next()??);
        Some((r as u8, g as u8, b as u8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn ranges() {
        assert_eq!(
            centred_range([50.01, 49.99].into_iter(), 50.0, 0.05),
            (49.95, 50.05)
        );
        assert_eq!(
            centred_range(std::iter::empty(), 60.0, 0.05),
            (59.95, 60.05)
        );
        let (lo, hi) = centred_range([50.0, 49.8, f64::NAN].into_iter(), 50.0, 0.05);
        assert!((lo - 49.78).abs() < 1e-9 && (hi - 50.22).abs() < 1e-9);
        assert_eq!(padded_range([1.0, 1.0].into_iter(), 2.0), (0.0, 2.0));
        let (lo, hi) = padded_range([10.0, 20.0].into_iter(), 1.0);
        assert!((lo - 9.5).abs() < 1e-9 && (hi - 20.5).abs() < 1e-9);
        assert_eq!(padded_range(std::iter::empty(), 1.0), (0.0, 1.0));
    }

    #[test]
    fn reduce_keeps_extremes_and_bounds_the_column_count() {
        // 300 s at 50 Hz = 15 000 points into 100 columns.
        let samples: Vec<Sample> = (0..15_000)
            .map(|i| Sample::point(i * 20_000, 50.0 + if i == 7_777 { 0.3 } else { 0.0 }))
            .collect();
        let segs = reduce(samples.iter(), 0, 300 * S, 100, GAP_US);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].len(), 100);
        assert!(segs[0].iter().any(|c| c.max == 50.3), "the spike survives");
        assert!(segs[0].iter().all(|c| c.min == 50.0));
        assert!(segs[0].windows(2).all(|w| w[0].t < w[1].t), "in time order");
        // The zigzag goes through the spike.
        assert!(zigzag(&segs[0]).iter().any(|p| p.1 == 50.3));
    }

    #[test]
    fn reduce_breaks_at_gaps_and_drops_samples_outside() {
        let pts: Vec<Sample> = [
            (-1, 9.0),
            (0, 1.0),
            (1, 1.0),
            (30, 2.0),
            (31, 2.0),
            (400, 3.0),
        ]
        .into_iter()
        .map(|(t, v)| Sample::point(t * S, v))
        .collect();
        let segs = reduce(pts.iter(), 0, 300 * S, 1000, GAP_US);
        let flat: Vec<Vec<(i64, f64)>> = segs
            .iter()
            .map(|s| s.iter().map(|c| (c.t / S, c.mean)).collect())
            .collect();
        assert_eq!(flat, [vec![(0, 1.0), (1, 1.0)], vec![(30, 2.0), (31, 2.0)]]);
    }

    #[test]
    fn a_steady_ten_second_interval_is_one_line_whatever_the_slots() {
        // A device reporting every 10 s, on a page whose slots are 1.76 s wide (an hour over
        // 2 048 slots): the slot starts of successive points are 8.2 to 10.6 s apart.
        let mut series = Series::fixed(0, 3_600 * S, 2_048);
        for i in 0..360 {
            series.push(i * 10 * S + 3 * S / 10, 50.0, 3_600 * S);
        }
        let gap = gap_for(&series, 0);
        assert!(gap >= 30 * S, "three of the data's own intervals: {gap}");
        let segs = reduce(series.iter(), 0, 3_600 * S, 649, GAP_US);
        assert_eq!(
            segs.len(),
            1,
            "real times 10 s apart are not a gap at a 10 s limit"
        );
        // A real outage still breaks it.
        let mut holed = Series::fixed(0, 3_600 * S, 2_048);
        for i in (0..360).filter(|i| !(100..110).contains(i)) {
            holed.push(i * 10 * S, 50.0, 3_600 * S);
        }
        let segs = reduce(holed.iter(), 0, 3_600 * S, 649, gap_for(&holed, 0));
        assert_eq!(segs.len(), 2);
    }

    #[test]
    fn means_are_weighted_by_count() {
        let a = Sample {
            t: 0,
            first: 0,
            last: 0,
            min: 1.0,
            mean: 1.0,
            max: 1.0,
            count: 3,
        };
        let b = Sample {
            t: 1,
            first: 1,
            last: 1,
            min: 5.0,
            mean: 5.0,
            max: 5.0,
            count: 1,
        };
        let segs = reduce([a, b].iter(), 0, 10, 1, GAP_US);
        assert_eq!(segs[0][0].mean, 2.0);
        assert_eq!((segs[0][0].min, segs[0][0].max), (1.0, 5.0));
    }

    #[test]
    fn live_chart_places_traces_relative_to_now() {
        let now = 1_000 * S;
        let mut series = Series::sliding(300 * S, 1200);
        series.push(now - 10 * S, 50.01, now);
        series.push(now, 50.02, now);
        let id = DeviceId::new("a").unwrap();
        let (c, shown) = live_frequency(
            &[TraceInput {
                id: &id,
                series: &series,
            }],
            now,
            300 * S,
            50.0,
            800,
            &mut CrowdCache::default(),
        );
        assert_eq!(shown, LiveShown::Devices);
        assert_eq!(c.span_s, 300.0);
        assert_eq!(c.lines.len(), 1);
        assert_eq!(c.lines[0].points, [(-10.0, 50.01), (0.0, 50.02)]);
        assert_eq!((c.y_min, c.y_max), (49.95, 50.05));
        assert_eq!(c.lines[0].color, color_of("a"));
    }

    /// `n` devices at 10 Hz over the minute before `now` on 50 Hz plus a slow swing, each
    /// with its own small noise, and `f(device, t)` added.
    fn devices(n: usize, now: i64, f: impl Fn(usize, i64) -> f64) -> Vec<Series> {
        (0..n)
            .map(|d| {
                let mut s = Series::sliding(60 * S, 1_200);
                for k in 0..600 {
                    // Each device on its own phase.
                    let t = now - 60 * S + k * 100_000 + (d as i64 * 7_919) % 100_000;
                    let swing = 0.02 * ((t / S) as f64 / 10.0).sin();
                    let noise = 0.002 * (((d * 31 + k as usize * 17) % 7) as f64 - 3.0) / 3.0;
                    s.push(t, 50.0 + swing + noise + f(d, t), now);
                }
                s
            })
            .collect()
    }

    fn ids(n: usize) -> Vec<DeviceId> {
        (0..n)
            .map(|d| DeviceId::new(&format!("dev-{d:02}")).unwrap())
            .collect()
    }

    fn inputs<'a>(ids: &'a [DeviceId], series: &'a [Series]) -> Vec<TraceInput<'a>> {
        ids.iter()
            .zip(series)
            .map(|(id, series)| TraceInput { id, series })
            .collect()
    }

    #[test]
    fn a_crowd_is_its_median_its_band_and_its_strays() {
        let now = 1_000 * S;
        // Device 3 reads 60 mHz high; device 11 has one spike of 80 mHz; device 5 reads 3 mHz
        // low (within what the others scatter).
        let spike = now - 30 * S;
        let all = devices(20, now, |d, t| match d {
            3 => 0.060,
            11 if (t - spike).abs() < 100_000 => 0.080,
            5 => -0.003,
            _ => 0.0,
        });
        let ids = ids(all.len());
        let c = crowd(&inputs(&ids, &all), now - 60 * S, now, 900);
        let strays: Vec<usize> = c.strays.iter().map(|s| s.0).collect();
        assert_eq!(strays, [11, 3], "worst first");
        assert_eq!(c.segments.len(), 1);
        let band = &c.segments[0];
        // Two readings of each device per column: 300 columns for a minute at 10 Hz.
        assert!((295..=300).contains(&band.len()), "{} columns", band.len());
        for col in band {
            assert!(col.min <= col.mean && col.mean <= col.max);
            // The median follows the swing, the strays stay out of the band.
            let swing = 0.02 * ((col.t / S) as f64 / 10.0).sin();
            assert!((col.mean - 50.0 - swing).abs() < 0.004, "{col:?}");
            assert!(col.max - col.min < 0.010, "{col:?}");
        }
        // Nothing is hidden: every reading of every device not drawn on its own is inside
        // the band of its column.
        let col_us = 60 * S / band.len() as i64;
        for (d, s) in all.iter().enumerate().filter(|(d, _)| !strays.contains(d)) {
            for sample in s.iter() {
                let col = band
                    .iter()
                    .find(|c| (c.t - sample.mid()).abs() <= col_us)
                    .expect("a column");
                let near: Vec<&Column> = band
                    .iter()
                    .filter(|c| (c.t - sample.mid()).abs() <= col_us)
                    .collect();
                let lo = near.iter().map(|c| c.min).fold(f64::MAX, f64::min);
                let hi = near.iter().map(|c| c.max).fold(f64::MIN, f64::max);
                assert!(
                    sample.min >= lo - 1e-9 && sample.max <= hi + 1e-9,
                    "device {d}: {sample:?} outside {col:?}"
                );
            }
        }
    }

    #[test]
    fn a_quiet_crowd_has_no_strays_and_breaks_at_an_outage() {
        let now = 1_000 * S;
        // Everyone silent for 20 s in the middle.
        let all: Vec<Series> = devices(15, now, |_, _| 0.0)
            .into_iter()
            .map(|s| {
                let mut out = Series::sliding(60 * S, 1_200);
                for x in s.iter().filter(|x| (x.t - (now - 30 * S)).abs() > 10 * S) {
                    out.push(x.t, x.mean, now);
                }
                out
            })
            .collect();
        let ids = ids(all.len());
        let c = crowd(&inputs(&ids, &all), now - 60 * S, now, 900);
        assert!(c.strays.is_empty());
        assert_eq!(c.segments.len(), 2);
        // Slow devices get fewer columns (at least MIN_TRACE_COLUMNS), never more than asked.
        let slow: Vec<Series> = (0..15)
            .map(|d| {
                let mut s = Series::sliding(60 * S, 1_200);
                for k in 0..60 {
                    s.push(now - 60 * S + k * S + d * 1_000, 50.0, now);
                }
                s
            })
            .collect();
        let c = crowd(&inputs(&ids, &slow), now - 60 * S, now, 900);
        assert_eq!(
            c.segments[0].len(),
            60,
            "1 s columns: 2 s would be fewer than 40"
        );
        assert!(crowd(&[], now - 60 * S, now, 900).segments.is_empty());
    }

    #[test]
    fn a_kept_crowd_is_the_crowd_computed_afresh() {
        // Twenty devices stream for two minutes at 10 Hz, redrawn every 400 ms: the cache
        // gives what a fresh computation gives, through a late sample, a history fill, a
        // device that leaves and one that strays.
        let ids = ids(20);
        let start = 1_000 * S;
        let mut all: Vec<Series> = (0..20).map(|_| Series::sliding(60 * S, 1_200)).collect();
        let mut cache = CrowdCache::default();
        let mut compared = 0;
        for step in 0..1_200i64 {
            let now = start + step * 100_000;
            for (d, s) in all.iter_mut().enumerate() {
                let t = now - (d as i64 * 3_331) % 100_000;
                let wobble = 0.01 * ((t / S) as f64 / 7.0).sin() + 0.001 * (d % 3) as f64;
                let stray = if d == 4 && step > 600 { 0.05 } else { 0.0 };
                s.push(t, 50.0 + wobble + stray, now);
            }
            if step == 300 {
                all[7].push(now - 20 * S, 49.9, now); // late: an older slot
            }
            if step == 700 {
                all[11].clear(); // a device's series started over
            }
            if step == 500 {
                let bucket = Sample {
                    count: 10,
                    ..Sample::point(now - 50 * S, 50.02)
                };
                all[9].fill(&[bucket], 0, now);
            }
            if step % 4 == 3 {
                let n = if step > 900 { 19 } else { 20 };
                let traces = inputs(&ids[..n], &all[..n]);
                let (t0, t1) = (now - 60 * S, now);
                assert_eq!(
                    cache.crowd(&traces, t0, t1, 900),
                    crowd(&traces, t0, t1, 900),
                    "step {step}"
                );
                compared += 1;
            }
        }
        assert_eq!(compared, 300);
        let traces = inputs(&ids[..19], &all[..19]);
        let c = cache.crowd(&traces, start + 60 * S, start + 120 * S, 900);
        assert_eq!(c.strays.iter().map(|s| s.0).collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn many_devices_are_drawn_as_a_crowd() {
        let now = 1_000 * S;
        let all = devices(CROWD_FROM, now, |d, _| if d == 2 { -0.2 } else { 0.0 });
        let ids = ids(all.len());
        let traces = inputs(&ids, &all);
        let cache = &mut CrowdCache::default();
        let (spec, shown) = live_frequency(&traces, now, 60 * S, 50.0, 1_800, cache);
        assert_eq!(
            shown,
            LiveShown::Crowd {
                devices: CROWD_FROM,
                strays: vec![ids[2].clone()]
            }
        );
        // The band, the median and the stray's line.
        assert_eq!(spec.fills.len(), 1);
        assert_eq!(spec.lines.len(), 2);
        assert_eq!(spec.lines[1].color, color_of(&ids[2]));
        assert!(spec.y_min < 49.8, "the stray is in range: {}", spec.y_min);
        // One fewer and each device has its line.
        let (spec, shown) = live_frequency(&traces[1..], now, 60 * S, 50.0, 1_800, cache);
        assert_eq!(shown, LiveShown::Devices);
        assert_eq!(spec.lines.len(), CROWD_FROM - 1);
    }

    #[test]
    fn drawing_is_budgeted() {
        assert_eq!(columns_per_trace(1_800, 2), 1_800);
        assert_eq!(columns_per_trace(1_800, 100), 40);
        assert_eq!(columns_per_trace(1_800, 10), 400);
        assert_eq!(columns_per_trace(1_800, 500), MIN_TRACE_COLUMNS);
        assert_eq!(columns_per_trace(40, 1), 40);
        assert_eq!(redraw_interval_ms(300_000_000, 0, 1.0), 200.0);
        assert_eq!(redraw_interval_ms(300_000_000, 3, 1.0), 206.0);
        assert_eq!(redraw_interval_ms(300_000_000, 100, 1.0), 400.0);
        assert!((redraw_interval_ms(600_000_000, 0, 1.0) - 333.33).abs() < 0.01);
        assert_eq!(redraw_interval_ms(86_400_000_000, 0, 1.0), 1_000.0);
        assert_eq!(redraw_interval_ms(300_000_000, 0, 100.0), 300.0);
    }

    #[test]
    fn ticks_are_round() {
        let t1 = 1_703_123_456 * S; // 01:50:56 UTC
        let rel = time_ticks(t1 - 300 * S, t1, XLabels::Relative, 7);
        let labels: Vec<&str> = rel.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["−5:00", "−4:00", "−3:00", "−2:00", "−1:00", "now"]);
        let clock = time_ticks(t1 - 300 * S, t1, XLabels::Clock { tz_offset_min: 60 }, 7);
        let labels: Vec<&str> = clock.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["02:46", "02:47", "02:48", "02:49", "02:50"]);
        let short = time_ticks(t1 - 60 * S, t1, XLabels::Clock { tz_offset_min: 0 }, 5);
        assert_eq!(short.first().unwrap().1, "01:50:00");
        let day = time_ticks(t1 - 86_400 * S, t1, XLabels::Clock { tz_offset_min: 0 }, 7);
        assert_eq!(day.first().unwrap().1, "06:00");
        assert!(day.len() <= 7);
        let month = time_ticks(
            t1 - 30 * 86_400 * S,
            t1,
            XLabels::Clock { tz_offset_min: 0 },
            7,
        );
        assert!(month.len() <= 7 && month.len() >= 3, "{month:?}");
    }

    #[test]
    fn dragging_maps_pixels_to_time() {
        let left = plot_left_px(13.0);
        assert_eq!(left, 72.0);
        let w = left + 1000.0 + PLOT_RIGHT_PX;
        assert_eq!(x_to_time(left, w, 13.0, 0, 1_000_000), 0);
        assert_eq!(x_to_time(left + 250.0, w, 13.0, 0, 1_000_000), 250_000);
        assert_eq!(x_to_time(0.0, w, 13.0, 0, 1_000_000), 0);
        assert_eq!(x_to_time(w, w, 13.0, 0, 1_000_000), 1_000_000);
        assert!(
            plot_left_px(label_px(36.0)) > 120.0,
            "room for large labels"
        );
    }

    #[test]
    fn envelopes_are_closed_polygons() {
        let cols = vec![
            Column {
                t: 0,
                min: 1.0,
                mean: 2.0,
                max: 3.0,
            },
            Column {
                t: S,
                min: 1.5,
                mean: 2.0,
                max: 2.5,
            },
        ];
        let mut c = ChartSpec::new(0, S, XLabels::Relative);
        c.add_envelope(&[cols], (1, 2, 3), |v| v * 10.0);
        assert_eq!(
            c.fills[0].polygon,
            [(-1.0, 30.0), (0.0, 25.0), (0.0, 15.0), (-1.0, 10.0)]
        );
        assert_eq!(c.lines[0].points, [(-1.0, 20.0), (0.0, 20.0)]);
    }
}
