//! The live chart: turning ring buffers into drawable traces (pure), and drawing them on a
//! `<canvas>` with plotters (browser only).
//!
//! Traces are reduced to a min/max envelope per pixel column, so a device sending 50 Hz for five
//! minutes costs as much to draw as one sending 1 Hz, and spikes survive the reduction. A trace
//! breaks where a device was silent for more than [`GAP_US`] instead of bridging the hole.

use std::collections::BTreeMap;

use ogm_protocol::DeviceId;

use crate::devices::Device;

/// Silence longer than this breaks a trace, µs.
pub const GAP_US: i64 = 10_000_000;
/// The y axis shows at least nominal ± this, Hz.
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

/// One device's line: `(seconds before now, Hz)` points, split at gaps.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub id: DeviceId,
    pub color: (u8, u8, u8),
    pub segments: Vec<Vec<(f64, f64)>>,
}

/// Everything the canvas needs for one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartData {
    /// x from `-window_s` to 0.
    pub window_s: f64,
    pub nominal_hz: f64,
    pub y_min: f64,
    pub y_max: f64,
    pub traces: Vec<Trace>,
}

/// Prepares a frame: the last `window_us` before `now_us`, reduced to `columns` pixel columns.
pub fn prepare(
    devices: &BTreeMap<DeviceId, Device>,
    now_us: i64,
    window_us: i64,
    nominal_hz: f64,
    columns: usize,
) -> ChartData {
    let t0 = now_us - window_us;
    let traces: Vec<Trace> = devices
        .iter()
        .map(|(id, d)| Trace {
            id: id.clone(),
            color: color_of(id),
            segments: envelope(d.frequency.iter(), t0, now_us, columns.max(1))
                .into_iter()
                .map(|seg| {
                    seg.into_iter()
                        .map(|(t, f)| ((t - now_us) as f64 / 1e6, f))
                        .collect()
                })
                .collect(),
        })
        .filter(|t: &Trace| !t.segments.is_empty())
        .collect();
    let values = traces
        .iter()
        .flat_map(|t| t.segments.iter().flatten().map(|p| p.1));
    let (y_min, y_max) = y_range(values, nominal_hz);
    ChartData {
        window_s: window_us as f64 / 1e6,
        nominal_hz,
        y_min,
        y_max,
        traces,
    }
}

/// A y range centred on nominal: at least ±[`MIN_HALF_SPAN_HZ`], else the largest deviation
/// plus a tenth.
pub fn y_range(values: impl Iterator<Item = f64>, nominal_hz: f64) -> (f64, f64) {
    let max_dev = values
        .filter(|v| v.is_finite())
        .map(|v| (v - nominal_hz).abs())
        .fold(0.0, f64::max);
    let half = (max_dev * 1.1).max(MIN_HALF_SPAN_HZ);
    (nominal_hz - half, nominal_hz + half)
}

/// Keeps, per column of `[t0, t1]`, the first, lowest, highest and last points in time order,
/// and splits the result where consecutive points are more than [`GAP_US`] apart.
pub fn envelope(
    points: impl Iterator<Item = (i64, f64)>,
    t0: i64,
    t1: i64,
    columns: usize,
) -> Vec<Vec<(i64, f64)>> {
    let span = (t1 - t0).max(1) as f64;
    let mut segments: Vec<Vec<(i64, f64)>> = Vec::new();
    let mut current: Vec<(i64, f64)> = Vec::new();
    let mut bucket: Vec<(i64, f64)> = Vec::new();
    let mut bucket_col = usize::MAX;
    let mut prev_t: Option<i64> = None;
    for (t, v) in points.filter(|&(t, v)| t >= t0 && t <= t1 && v.is_finite()) {
        let col = (((t - t0) as f64 / span) * columns as f64) as usize;
        let gap = prev_t.is_some_and(|p| t - p > GAP_US);
        if col != bucket_col || gap {
            flush(&mut bucket, &mut current);
            bucket_col = col;
        }
        if gap && !current.is_empty() {
            segments.push(std::mem::take(&mut current));
        }
        bucket.push((t, v));
        prev_t = Some(t);
    }
    flush(&mut bucket, &mut current);
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

fn flush(bucket: &mut Vec<(i64, f64)>, out: &mut Vec<(i64, f64)>) {
    let (Some(&first), Some(&last)) = (bucket.first(), bucket.last()) else {
        return;
    };
    let lo = bucket
        .iter()
        .copied()
        .fold(first, |a, b| if b.1 < a.1 { b } else { a });
    let hi = bucket
        .iter()
        .copied()
        .fold(first, |a, b| if b.1 > a.1 { b } else { a });
    let mut keep = [first, lo, hi, last];
    keep.sort_by_key(|p| p.0);
    let mut prev: Option<(i64, f64)> = None;
    for p in keep {
        if prev != Some(p) {
            out.push(p);
        }
        prev = Some(p);
    }
    bucket.clear();
}

#[cfg(target_arch = "wasm32")]
pub use canvas::draw;

#[cfg(target_arch = "wasm32")]
mod canvas {
    use plotters::prelude::*;
    use plotters_canvas::CanvasBackend;
    use wasm_bindgen::JsCast;
    use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

    use super::ChartData;

    /// Draws `data` on `canvas`, sized to its CSS box at the device pixel ratio, in the text
    /// colour CSS gives the canvas. Errors leave the old frame; the next frame tries again.
    pub fn draw(canvas: &HtmlCanvasElement, data: &ChartData) {
        let _ = try_draw(canvas, data);
    }

    fn try_draw(canvas: &HtmlCanvasElement, data: &ChartData) -> Option<()> {
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
        let fg = window
            .get_computed_style(canvas)
            .ok()??
            .get_property_value("color")
            .ok()
            .and_then(|c| parse_rgb(&c))
            .unwrap_or((128, 128, 128));
        let fg = RGBColor(fg.0, fg.1, fg.2);
        let ctx: CanvasRenderingContext2d = canvas.get_context("2d").ok()??.dyn_into().ok()?;
        ctx.clear_rect(0.0, 0.0, f64::from(pw), f64::from(ph));

        let px = |v: f64| (v * dpr).round() as u32;
        let root = CanvasBackend::with_canvas_object(canvas.clone())?.into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .margin(px(8.0))
            .margin_right(px(24.0))
            .x_label_area_size(px(28.0))
            .y_label_area_size(px(64.0))
            .build_cartesian_2d(-data.window_s..0.0, data.y_min..data.y_max)
            .ok()?;
        let font = ("sans-serif", 13.0 * dpr).into_font().color(&fg);
        chart
            .configure_mesh()
            .label_style(font)
            .axis_style(fg.mix(0.6))
            .bold_line_style(fg.mix(0.15))
            .light_line_style(fg.mix(0.05))
            .x_labels(6)
            .y_labels(7)
            .x_label_formatter(&|x| {
                if *x >= -0.5 {
                    "now".to_owned()
                } else {
                    format!("−{:.0} s", -x)
                }
            })
            .y_label_formatter(&|y| format!("{y:.3}"))
            .draw()
            .ok()?;
        chart
            .draw_series(LineSeries::new(
                [(-data.window_s, data.nominal_hz), (0.0, data.nominal_hz)],
                fg.mix(0.5).stroke_width(px(1.0)),
            ))
            .ok()?;
        for trace in &data.traces {
            let (r, g, b) = trace.color;
            let style = RGBColor(r, g, b).stroke_width(px(2.0).max(1));
            for segment in &trace.segments {
                chart
                    .draw_series(LineSeries::new(segment.iter().copied(), style))
                    .ok()?;
            }
        }
        root.present().ok()
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
    use crate::devices::Limits;
    use crate::series::Series;

    const S: i64 = 1_000_000;

    #[test]
    fn y_range_is_centred_with_a_minimum_span() {
        assert_eq!(y_range([50.01, 49.99].into_iter(), 50.0), (49.95, 50.05));
        assert_eq!(y_range(std::iter::empty(), 60.0), (59.95, 60.05));
        let (lo, hi) = y_range([50.0, 49.8, f64::NAN].into_iter(), 50.0);
        assert!((lo - 49.78).abs() < 1e-9 && (hi - 50.22).abs() < 1e-9);
    }

    #[test]
    fn envelope_keeps_extremes_and_bounds_the_point_count() {
        // 300 s at 50 Hz = 15 000 points into 100 columns.
        let pts: Vec<(i64, f64)> = (0..15_000)
            .map(|i| (i * 20_000, 50.0 + if i == 7_777 { 0.3 } else { 0.0 }))
            .collect();
        let segs = envelope(pts.iter().copied(), 0, 300 * S, 100);
        assert_eq!(segs.len(), 1);
        assert!(segs[0].len() <= 400, "{}", segs[0].len());
        assert!(segs[0].iter().any(|p| p.1 == 50.3), "the spike survives");
        assert!(
            segs[0].windows(2).all(|w| w[0].0 <= w[1].0),
            "in time order"
        );
        // Few points pass through untouched.
        let few = [(0, 1.0), (S, 2.0), (2 * S, 3.0)];
        assert_eq!(envelope(few.into_iter(), 0, 300 * S, 1000), [few.to_vec()]);
    }

    #[test]
    fn envelope_breaks_at_gaps_and_drops_points_outside() {
        let pts = [
            (-S, 9.0),
            (0, 1.0),
            (S, 1.0),
            (30 * S, 2.0),
            (31 * S, 2.0),
            (400 * S, 3.0),
        ];
        let segs = envelope(pts.into_iter(), 0, 300 * S, 1000);
        assert_eq!(
            segs,
            [vec![(0, 1.0), (S, 1.0)], vec![(30 * S, 2.0), (31 * S, 2.0)]]
        );
    }

    #[test]
    fn prepare_places_points_relative_to_now() {
        let limits = Limits::default();
        let mut devices = BTreeMap::new();
        let mut series = Series::new(limits.max_points, limits.window_us);
        let now = 1_000 * S;
        series.push(now - 10 * S, 50.01, now);
        series.push(now, 50.02, now);
        devices.insert(
            DeviceId::new("a").unwrap(),
            Device {
                measurement: None,
                status: None,
                last_seen_us: now,
                online: None,
                frequency: series,
            },
        );
        let c = prepare(&devices, now, limits.window_us, 50.0, 800);
        assert_eq!(c.window_s, 300.0);
        assert_eq!(c.traces.len(), 1);
        assert_eq!(c.traces[0].segments, [vec![(-10.0, 50.01), (0.0, 50.02)]]);
        assert_eq!((c.y_min, c.y_max), (49.95, 50.05));
        assert_eq!(c.traces[0].color, color_of("a"));
    }
}
