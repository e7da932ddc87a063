//! Drawing a [`ChartSpec`] on a `<canvas>` with plotters: the chart's only browser code.
//! Browser only.

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
