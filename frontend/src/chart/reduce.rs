//! Reducing a series to pixel columns: one min/mean/max [`Column`] per column, segments broken
//! where the data stops for longer than the gap limit. Pure.

use super::GAP_US;
use crate::series::{Sample, Series};

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
pub(crate) fn gap_with(series: &Series, history_interval_us: i64, usual_step_us: i64) -> i64 {
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

/// The usual time between a series' samples, µs (the median of its newest 64 steps; 0 with
/// fewer than two samples).
pub(crate) fn usual_step_us(series: &Series) -> i64 {
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
