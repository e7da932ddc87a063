//! [`FrequencyEstimator`]: the line frequency from zero-crossing timestamps.
//!
//! The ADE7953's ZX pin is a square wave at the line frequency: it rises at each positive-going
//! zero crossing of the (low-pass filtered) voltage and falls at each negative-going one. A timer
//! timestamps the edges in µs; the board passes them to [`FrequencyEstimator::push`] as `u32`
//! ticks, which may wrap (every 71.6 minutes): only differences of ticks are ever used.
//!
//! ## Which edges
//! [`Edges::Rising`] (the default) captures one edge per period. [`Edges::Both`] captures both
//! and gives √2 less noise for the same timer jitter, but the two half-periods are only equal if
//! the voltage has no DC offset and the comparator no hysteresis asymmetry; the fit therefore
//! gives rising and falling edges separate intercepts and one common slope, so an asymmetric
//! duty cycle costs nothing. Rising is the default because it halves the interrupt load and the
//! 1 mHz goal is met without the second edge (see `benches/accuracy.rs`).
//!
//! ## The fit
//! Over the edges of the last window (1 s: 50 edges at 50 Hz), [`FrequencyEstimator::estimate`]:
//! 1. estimates the edge spacing robustly (the median of spans between same-kind edges);
//! 2. numbers the edges: each edge's index is the previous accepted edge's plus the rounded
//!    number of spacings between them, so a missed edge leaves a gap in the numbering and an
//!    extra edge (a glitch, off the grid by more than 30 % of a spacing, or a duplicate) is
//!    rejected;
//! 3. fits `t = a + b·k + c·k²` (time of edge vs its number) by least squares: `b` is the
//!    period and `c` its drift, so a ramping frequency is followed without bias;
//! 4. rejects edges whose residual exceeds 4 robust standard deviations (1.4826 × the median
//!    absolute residual, at least 3 µs) and fits again, up to four times;
//! 5. evaluates the fitted period at the window's centre, where the mean frequency over the
//!    window equals the instantaneous one for a linear ramp, and corrects for the timer's
//!    frequency error ([`EstimatorConfig::clock_ppm`]). A linear frequency ramp makes time vs
//!    edge number slightly cubic, which would bias the slope by 1.5 mHz at 1 Hz/s; the fitted
//!    curvature gives that term, and it is taken out.
//!
//! With N edges over the window and timer jitter σ, the period's standard error is about
//! σ·√12 / N^1.5; at 50 Hz, N = 50 and σ = 20 µs that is 0.5 mHz.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::num::{abs, median, round};

/// Which ZX edges the timer captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Edges {
    /// Rising edges only: one per period.
    #[default]
    Rising,
    /// Rising and falling: two per period.
    Both,
}

impl Edges {
    pub const fn per_cycle(self) -> usize {
        match self {
            Self::Rising => 1,
            Self::Both => 2,
        }
    }
}

/// Settings of a [`FrequencyEstimator`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimatorConfig {
    /// 50 or 60 Hz: sets the expected edge count and the plausible range (half to twice this).
    pub nominal_hz: f64,
    pub edges: Edges,
    /// The fit window, µs (1 s).
    pub window_us: u32,
    /// Fewest edges a fit needs; with fewer, [`EstimateError::TooFewEdges`].
    pub min_edges: usize,
    /// How fast the timer runs, in parts per million (+10 if it counts 1 000 010 µs in a true
    /// second). Measured frequencies are corrected by it.
    pub clock_ppm: f64,
}

impl EstimatorConfig {
    /// One-second windows, at least half the expected edges, no clock correction.
    pub fn new(nominal_hz: f64, edges: Edges) -> Self {
        let mut c = Self {
            nominal_hz,
            edges,
            window_us: 1_000_000,
            min_edges: 0,
            clock_ppm: 0.0,
        };
        c.min_edges = (c.expected_edges() / 2).max(MIN_EDGES);
        c
    }

    /// Edges a full window holds at nominal frequency.
    pub fn expected_edges(&self) -> usize {
        let n = self.nominal_hz * self.edges.per_cycle() as f64 * f64::from(self.window_us) / 1e6;
        if n.is_finite() && n > 0.0 {
            round(n) as usize
        } else {
            0
        }
    }
}

/// No fit with fewer edges than this, whatever the configuration says.
pub const MIN_EDGES: usize = 4;
/// An edge further than this fraction of a spacing from the grid of its neighbours is rejected.
const GRID_TOLERANCE: f64 = 0.3;
/// Residuals above this many robust standard deviations are rejected.
const REJECT_SIGMAS: f64 = 4.0;
/// ... but never below this, µs: the timer's 1 µs quantization alone gives ±0.5 µs.
const MIN_REJECT_US: f64 = 3.0;
const MAX_ITERATIONS: usize = 4;

/// One frequency estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Hz: the mean over the window (the fitted frequency at its centre).
    pub frequency: f64,
    /// Rate of change of frequency, Hz/s (noisy: ±0.05 Hz/s at 20 µs jitter).
    pub rocof: f64,
    /// Edges the fit used.
    pub edges_used: usize,
    /// Edges in the window that were rejected as glitches or outliers.
    pub edges_rejected: usize,
    /// RMS residual of the used edges, µs: the timer jitter as seen.
    pub residual_rms_us: f64,
}

/// Why there is no estimate.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum EstimateError {
    #[error("{got} usable zero crossings in the window; need {need}")]
    TooFewEdges { got: usize, need: usize },
    #[error("fitted frequency {frequency} Hz is implausible")]
    OutOfRange { frequency: f64 },
    #[error("zero crossings do not determine a fit")]
    Degenerate,
}

#[derive(Debug, Clone, Copy)]
struct Point {
    /// µs relative to the estimate's `now` (negative: in the past).
    y: f64,
    /// Edge number.
    k: i64,
    keep: bool,
}

/// Fits the line frequency over a sliding window of ZX edge timestamps.
#[derive(Debug, Clone)]
pub struct FrequencyEstimator {
    config: EstimatorConfig,
    ticks: VecDeque<u32>,
    capacity: usize,
    points: Vec<Point>,
    scratch: Vec<f64>,
}

impl FrequencyEstimator {
    pub fn new(config: EstimatorConfig) -> Self {
        // Room for a window at twice nominal frequency, plus glitches.
        let capacity = (config.expected_edges() * 4).max(64);
        Self {
            config,
            ticks: VecDeque::with_capacity(capacity),
            capacity,
            points: Vec::with_capacity(capacity),
            scratch: Vec::with_capacity(capacity),
        }
    }

    pub fn config(&self) -> &EstimatorConfig {
        &self.config
    }

    /// Sets the timer's frequency error, ppm (e.g. from [`crate::clock::WallClock::timer_ppm`]).
    pub fn set_clock_ppm(&mut self, ppm: f64) {
        if ppm.is_finite() {
            self.config.clock_ppm = ppm;
        }
    }

    /// Records an edge at `tick` µs. Edges must come in time order; a repeat of the last tick, or
    /// one that is earlier, is ignored. The oldest edges go first when the store is full.
    pub fn push(&mut self, tick: u32) {
        if let Some(&last) = self.ticks.back() {
            let d = tick.wrapping_sub(last);
            if d == 0 || d > HALF_RANGE {
                return;
            }
        }
        if self.ticks.len() == self.capacity {
            self.ticks.pop_front();
        }
        self.ticks.push_back(tick);
    }

    /// Forgets every edge (after a signal loss, say).
    pub fn clear(&mut self) {
        self.ticks.clear();
    }

    /// Edges currently held.
    pub fn len(&self) -> usize {
        self.ticks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ticks.is_empty()
    }

    /// The frequency over the window that ends at `now` (µs ticks, the same timer as the edges).
    pub fn estimate(&mut self, now: u32) -> Result<Estimate, EstimateError> {
        let window = self.config.window_us;
        while let Some(&t) = self.ticks.front() {
            let age = now.wrapping_sub(t);
            if age > window && age <= HALF_RANGE {
                self.ticks.pop_front();
            } else {
                break;
            }
        }
        self.points.clear();
        for &t in &self.ticks {
            let age = now.wrapping_sub(t);
            if age <= window {
                self.points.push(Point {
                    y: -f64::from(age),
                    k: 0,
                    keep: false,
                });
            }
        }
        let need = self.config.min_edges.max(MIN_EDGES);
        let total = self.points.len();
        if total < need {
            return Err(EstimateError::TooFewEdges { got: total, need });
        }

        let m = self.config.edges.per_cycle();
        let spacing = self.spacing()?;
        self.number_edges(spacing);
        let mut used = self.points.iter().filter(|p| p.keep).count();
        if used < need {
            return Err(EstimateError::TooFewEdges { got: used, need });
        }

        let mut fit = Fit::solve(&self.points, m)?;
        for _ in 0..MAX_ITERATIONS {
            self.scratch.clear();
            self.scratch.extend(
                self.points
                    .iter()
                    .filter(|p| p.keep)
                    .map(|p| abs(p.y - fit.at(p.k))),
            );
            let sigma = 1.4826 * median(&mut self.scratch).unwrap_or(0.0);
            let limit = (REJECT_SIGMAS * sigma).max(MIN_REJECT_US);
            let mut rejected = 0;
            for p in self.points.iter_mut().filter(|p| p.keep) {
                if abs(p.y - fit.at(p.k)) > limit {
                    p.keep = false;
                    rejected += 1;
                }
            }
            if rejected == 0 {
                break;
            }
            used -= rejected;
            if used < need {
                return Err(EstimateError::TooFewEdges { got: used, need });
            }
            fit = Fit::solve(&self.points, m)?;
        }

        let kept = self.points.iter().filter(|p| p.keep);
        let (first, last) = kept
            .clone()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.y), b.max(p.y))
            });
        let sum_sq: f64 = kept
            .map(|p| (p.y - fit.at(p.k)) * (p.y - fit.at(p.k)))
            .sum();
        let centre = (-f64::from(window) / 2.0).clamp(first, last);
        let (period_us, drift) = fit.period_at(centre, m);
        let correction = 1.0 + self.config.clock_ppm * 1e-6;
        let frequency = 1e6 / period_us * correction;
        let rocof = -1e12 * drift / (period_us * period_us * period_us) * correction;
        let nominal = self.config.nominal_hz;
        if !(frequency.is_finite() && frequency > nominal / 2.0 && frequency < nominal * 2.0) {
            return Err(EstimateError::OutOfRange { frequency });
        }
        Ok(Estimate {
            frequency,
            rocof,
            edges_used: used,
            edges_rejected: total - used,
            residual_rms_us: sqrt(sum_sq / used as f64),
        })
    }

    /// The median span between same-kind edges, per edge, µs.
    fn spacing(&mut self) -> Result<f64, EstimateError> {
        let m = self.config.edges.per_cycle();
        self.scratch.clear();
        self.scratch.extend(
            self.points
                .windows(m + 1)
                .map(|w| (w[m].y - w[0].y) / m as f64),
        );
        let spacing = median(&mut self.scratch).ok_or(EstimateError::Degenerate)?;
        let nominal = 1e6 / (self.config.nominal_hz * m as f64);
        if !(spacing > nominal / 2.0 && spacing < nominal * 2.0) {
            return Err(EstimateError::OutOfRange {
                frequency: 1e6 / (spacing * m as f64),
            });
        }
        Ok(spacing)
    }

    /// Numbers the edges on a grid of `spacing`, starting from one of the first few edges (in
    /// case the very first is a glitch), and keeps the numbering that accepts the most.
    fn number_edges(&mut self, spacing: f64) {
        let n = self.points.len();
        let mut best: Option<(usize, usize)> = None;
        for start in 0..n.min(4) {
            let accepted = self.number_from(start, spacing);
            if best.is_none_or(|(_, a)| accepted > a) {
                best = Some((start, accepted));
            }
            if accepted * 10 >= (n - start) * 9 {
                break;
            }
        }
        if let Some((start, _)) = best {
            self.number_from(start, spacing);
        }
    }

    fn number_from(&mut self, start: usize, spacing: f64) -> usize {
        for p in &mut self.points {
            p.keep = false;
        }
        let Some(first) = self.points.get_mut(start) else {
            return 0;
        };
        first.k = 0;
        first.keep = true;
        let (mut prev_y, mut prev_k) = (first.y, 0i64);
        let mut accepted = 1;
        for p in self.points.iter_mut().skip(start + 1) {
            let q = (p.y - prev_y) / spacing;
            let steps = round(q);
            if steps >= 1 && abs(q - steps as f64) <= GRID_TOLERANCE {
                p.k = prev_k + steps;
                p.keep = true;
                (prev_y, prev_k) = (p.y, p.k);
                accepted += 1;
            }
        }
        accepted
    }
}

/// Differences of ticks above this are taken as negative (out of order).
const HALF_RANGE: u32 = 1 << 31;

/// `t = a_g + b·u + c·u²` with `u = (k − k_mid) / scale` and `g` the edge kind (rising or
/// falling, by the parity of `k` when both edges are used).
#[derive(Debug, Clone, Copy)]
struct Fit {
    intercepts: [f64; 2],
    groups: usize,
    b: f64,
    c: f64,
    k_mid: f64,
    scale: f64,
    /// Σu⁴ / Σu² over the fitted edges.
    m4: f64,
}

impl Fit {
    fn solve(points: &[Point], m: usize) -> Result<Self, EstimateError> {
        let kept = || points.iter().filter(|p| p.keep);
        let (k_min, k_max) =
            kept().fold((i64::MAX, i64::MIN), |(a, b), p| (a.min(p.k), b.max(p.k)));
        let n = kept().count();
        if n < 3 || k_max <= k_min {
            return Err(EstimateError::Degenerate);
        }
        let k_mid = (k_min + k_max) as f64 / 2.0;
        let scale = ((k_max - k_min) as f64 / 2.0).max(1.0);
        // Separate intercepts for rising and falling edges, when both kinds are present.
        let groups = if m == 2
            && kept().any(|p| p.k.rem_euclid(2) == 0)
            && kept().any(|p| p.k.rem_euclid(2) == 1)
        {
            2
        } else {
            1
        };
        // The curvature term only when there are enough edges over enough cycles to pin it down.
        let quadratic = n >= 8 && (k_max - k_min) as usize >= 6 * m;
        let dim = groups + 1 + usize::from(quadratic);
        let mut a = [[0.0f64; 5]; 4];
        for p in kept() {
            let u = (p.k as f64 - k_mid) / scale;
            let mut row = [0.0f64; 4];
            row[if groups == 2 {
                p.k.rem_euclid(2) as usize
            } else {
                0
            }] = 1.0;
            row[groups] = u;
            if quadratic {
                row[groups + 1] = u * u;
            }
            for i in 0..dim {
                for j in 0..dim {
                    a[i][j] += row[i] * row[j];
                }
                a[i][4] += row[i] * p.y;
            }
        }
        let x = solve(&mut a, dim).ok_or(EstimateError::Degenerate)?;
        let (s2, s4) = kept().fold((0.0, 0.0), |(s2, s4), p| {
            let u = (p.k as f64 - k_mid) / scale;
            let u2 = u * u;
            (s2 + u2, s4 + u2 * u2)
        });
        let intercepts = if groups == 2 {
            [x[0], x[1]]
        } else {
            [x[0], x[0]]
        };
        Ok(Self {
            intercepts,
            groups,
            b: x[groups],
            c: if quadratic { x[groups + 1] } else { 0.0 },
            k_mid,
            scale,
            m4: if s2 > 0.0 { s4 / s2 } else { 0.0 },
        })
    }

    /// The fitted time of edge `k`.
    fn at(&self, k: i64) -> f64 {
        let u = (k as f64 - self.k_mid) / self.scale;
        let g = if self.groups == 2 {
            k.rem_euclid(2) as usize
        } else {
            0
        };
        self.intercepts[g] + self.b * u + self.c * u * u
    }

    /// The period (µs) and its drift (the curvature of time vs cycle number, µs per cycle²) at
    /// time `y`.
    fn period_at(&self, y: f64, m: usize) -> (f64, f64) {
        let a = (self.intercepts[0] + self.intercepts[1]) / 2.0;
        // Solve a + b·u + c·u² = y for u by Newton's method from the straight-line answer.
        let mut u = if self.b != 0.0 { (y - a) / self.b } else { 0.0 };
        for _ in 0..4 {
            let slope = self.b + 2.0 * self.c * u;
            if slope == 0.0 {
                break;
            }
            u -= (a + self.b * u + self.c * u * u - y) / slope;
        }
        // A linearly ramping frequency makes time vs edge number slightly cubic
        // (t''' = 3·t''² / t'), and the cubic leaks into the fitted slope by Σu⁴/Σu² · t'''/6;
        // take that out, using the fitted curvature.
        let leak = if self.b != 0.0 {
            2.0 * self.c * self.c * self.m4 / self.b
        } else {
            0.0
        };
        let per_edge = (self.b - leak + 2.0 * self.c * u) / self.scale;
        let m = m as f64;
        let curvature_per_edge = 2.0 * self.c / (self.scale * self.scale);
        (per_edge * m, curvature_per_edge * m * m)
    }
}

/// Solves the `dim`×`dim` system in `a` (augmented, right-hand side in column 4) by Gaussian
/// elimination with partial pivoting; `None` if it is singular.
fn solve(a: &mut [[f64; 5]; 4], dim: usize) -> Option<[f64; 4]> {
    let scale = (0..dim).map(|i| abs(a[i][i])).fold(0.0, f64::max);
    if scale == 0.0 || !scale.is_finite() {
        return None;
    }
    for col in 0..dim {
        let pivot = (col..dim).max_by(|&i, &j| abs(a[i][col]).total_cmp(&abs(a[j][col])))?;
        if abs(a[pivot][col]) <= scale * 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        let pivot_row = a[col];
        for row in a.iter_mut().take(dim).skip(col + 1) {
            let f = row[col] / pivot_row[col];
            for (x, p) in row.iter_mut().zip(pivot_row).skip(col) {
                *x -= f * p;
            }
        }
    }
    let mut x = [0.0; 4];
    for i in (0..dim).rev() {
        let s: f64 = (i + 1..dim).map(|j| a[i][j] * x[j]).sum();
        x[i] = (a[i][4] - s) / a[i][i];
    }
    x[..dim].iter().all(|v| v.is_finite()).then_some(x)
}

/// Square root by Newton's method (`core` has none without `std`); for the residual RMS only.
fn sqrt(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 || !x.is_finite() {
        return 0.0;
    }
    let mut r = if x > 1.0 { x / 2.0 } else { 1.0 };
    for _ in 0..60 {
        let next = (r + x / r) / 2.0;
        if abs(next - r) <= r * 1e-15 {
            return next;
        }
        r = next;
    }
    r
}

#[cfg(test)]
mod tests;
