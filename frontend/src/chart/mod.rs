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

mod axes;
#[cfg(target_arch = "wasm32")]
mod canvas;
mod crowd;
mod marks;
mod reduce;
mod spec;
#[cfg(test)]
mod tests;

pub use axes::*;
#[cfg(target_arch = "wasm32")]
pub use canvas::{PlotArea, draw};
pub use crowd::*;
pub use marks::*;
pub use reduce::*;
pub use spec::*;

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
