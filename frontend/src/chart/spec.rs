//! [`ChartSpec`]: everything one canvas needs for one frame, built from columns. Pure.

use super::{Column, XLabels, zigzag};

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
