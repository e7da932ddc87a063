//! Axes: y ranges around the data, and round x ticks labelled relative to now or in local
//! time. Pure.

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
