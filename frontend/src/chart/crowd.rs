//! The crowd: from [`CROWD_FROM`] devices on, a live chart draws their median, the band from
//! the lowest to the highest reading and the devices that stray from it, kept between redraws
//! by a [`CrowdCache`]; [`ChartSpec::add_live`] picks lines or the crowd. Pure.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ogm_protocol::DeviceId;

use super::reduce::{gap_with, usual_step_us};
use super::{
    ChartSpec, Column, Fill, GAP_US, Line, MIN_HALF_SPAN_HZ, MIN_TRACE_COLUMNS, Rule, XLabels,
    centred_range, color_of, columns_per_trace, gap_for, reduce, trace_width,
};
use crate::series::{Sample, Series};

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
