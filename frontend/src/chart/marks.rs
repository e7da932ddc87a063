//! What a chart shows around its data: the bands of the area's grid code on a deviation chart,
//! and each device-page field's y range. Pure.

use ogm_grid::Bands;

use super::{ChartSpec, Fill, MIN_HALF_SPAN_HZ, Rule, centred_range, padded_range};
use crate::wire::Field;

const GREEN: (u8, u8, u8) = (60, 180, 110);
const AMBER: (u8, u8, u8) = (230, 160, 40);
const RED: (u8, u8, u8) = (220, 60, 70);

/// A deviation chart's y range (at least ±250 mHz, the same in every area, so that wider
/// limits such as Great Britain's ±500 mHz do not flatten an ordinary day) and its bands.
pub fn finish_deviation_chart(spec: &mut ChartSpec, values: Vec<f64>, bands: &Bands) {
    let min_half = bands.normal_mhz.max(200.0) * 1.25;
    let (lo, hi) = centred_range(values.into_iter(), 0.0, min_half);
    spec.y_min = lo;
    spec.y_max = hi;
    spec.y_decimals = 0;
    add_band_marks(spec, bands);
}

/// What a span mark stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    /// A grid event (excursion or RoCoF alarm).
    Event,
    /// An alert of the server's rules.
    Alert,
}

/// Shades each span (µs) that falls in the chart, events amber and alerts red, behind the
/// data, at least 0.3 % of the chart wide so a short one still shows. Call it once the y range
/// is set. Returns how many it shaded.
pub fn add_span_marks(spec: &mut ChartSpec, spans: &[(i64, i64, MarkKind)]) -> usize {
    let (lo, hi) = (spec.y_min, spec.y_max);
    let t0 = spec.end_us - (spec.span_s * 1e6) as i64;
    let mut shown = 0;
    for &(start, end, kind) in spans {
        let end = end.max(start);
        if end < t0 || start > spec.end_us {
            continue;
        }
        let x0 = spec.x(start.max(t0));
        let x1 = spec.x(end.min(spec.end_us)).max(x0 + spec.span_s * 0.003);
        let (color, alpha) = match kind {
            MarkKind::Event => (AMBER, 0.22),
            MarkKind::Alert => (RED, 0.16),
        };
        spec.fills.insert(
            0,
            Fill {
                color,
                alpha,
                polygon: vec![(x0, hi), (x1, hi), (x1, lo), (x0, lo)],
            },
        );
        shown += 1;
    }
    shown
}

/// The dead band shaded, the band limits as labelled rules.
pub fn add_band_marks(spec: &mut ChartSpec, b: &Bands) {
    let (x0, x1) = (-spec.span_s, 0.0);
    let db = b.deadband_mhz;
    spec.fills.insert(
        0,
        Fill {
            color: GREEN,
            alpha: 0.12,
            polygon: vec![(x0, db), (x1, db), (x1, -db), (x0, -db)],
        },
    );
    let n = b.nominal_hz;
    let hz = |mhz: f64| n + mhz / 1000.0;
    for (mhz, color, label) in [
        (b.normal_mhz, GREEN, format!("±{:.0} mHz", b.normal_mhz)),
        (b.limit_mhz, AMBER, format!("{:.1} Hz", hz(b.limit_mhz))),
        (-b.normal_mhz, GREEN, String::new()),
        (-b.limit_mhz, AMBER, format!("{:.1} Hz", hz(-b.limit_mhz))),
        (
            -b.shedding_mhz,
            RED,
            format!("{:.1} Hz load shedding", hz(-b.shedding_mhz)),
        ),
    ] {
        spec.rules.push(Rule {
            y: mhz,
            color: Some(color),
            label,
        });
    }
    spec.rules.push(Rule {
        y: 0.0,
        color: None,
        label: String::new(),
    });
}

/// A device-page chart's y range for `values` of `field` and the decimals of its labels:
/// frequency centred on nominal (at least ± [`MIN_HALF_SPAN_HZ`]), the others around the data
/// with a least span that keeps noise from filling the chart.
pub fn field_axis(field: Field, values: impl Iterator<Item = f64>, nominal: f64) -> AxisRange {
    let ((lo, hi), decimals) = match field {
        Field::Frequency => (centred_range(values, nominal, MIN_HALF_SPAN_HZ), 3),
        Field::Voltage => (padded_range(values, 2.0), 1),
        Field::Current => (padded_range(values, 0.2), 2),
        Field::Power => (padded_range(values, 20.0), 0),
        Field::Rssi => (padded_range(values, 10.0), 0),
        Field::FreeHeap => (padded_range(values, 1_000.0), 0),
    };
    AxisRange { lo, hi, decimals }
}

/// A y axis: its range and the decimals of its labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AxisRange {
    pub lo: f64,
    pub hi: f64,
    pub decimals: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_in_the_chart_are_shaded_and_those_outside_are_not() {
        let s = 1_000_000;
        let mut spec = ChartSpec::new(100 * s, 200 * s, crate::chart::XLabels::Relative);
        spec.y_min = -250.0;
        spec.y_max = 250.0;
        let n = add_span_marks(
            &mut spec,
            &[
                (150 * s, 160 * s, MarkKind::Event),
                (190 * s, 190 * s, MarkKind::Alert),
                (10 * s, 20 * s, MarkKind::Event),
                (195 * s, 400 * s, MarkKind::Alert),
            ],
        );
        assert_eq!(n, 3);
        let event = &spec.fills[2];
        assert_eq!(
            event.polygon,
            vec![
                (-50.0, 250.0),
                (-40.0, 250.0),
                (-40.0, -250.0),
                (-50.0, -250.0)
            ]
        );
        // An instant is still a sliver; one past the right edge is cut there.
        let instant = &spec.fills[1];
        assert!((instant.polygon[1].0 - instant.polygon[0].0 - 0.3).abs() < 1e-9);
        assert_eq!(spec.fills[0].polygon[1].0, 0.0);
    }
    use crate::chart::XLabels;
    use ogm_grid::GridArea;

    fn deviation_chart(area: GridArea, values: Vec<f64>) -> ChartSpec {
        let mut spec = ChartSpec::new(0, 60_000_000, XLabels::Relative);
        finish_deviation_chart(&mut spec, values, &Bands::of(area, 50.0));
        spec
    }

    #[test]
    fn a_deviation_chart_shows_the_bands_of_its_area() {
        let spec = deviation_chart(GridArea::default(), vec![-30.0, 40.0]);
        let b = Bands::of(GridArea::default(), 50.0);
        // At least ±250 mHz in Continental Europe, whatever the data.
        assert_eq!((spec.y_min, spec.y_max), (-250.0, 250.0));
        assert_eq!(spec.y_decimals, 0);
        // The dead band is the first fill, under everything else.
        let db = b.deadband_mhz;
        assert_eq!(
            spec.fills[0].polygon,
            vec![(-60.0, db), (0.0, db), (0.0, -db), (-60.0, -db)]
        );
        let ys: Vec<f64> = spec.rules.iter().map(|r| r.y).collect();
        assert_eq!(
            ys,
            [
                b.normal_mhz,
                b.limit_mhz,
                -b.normal_mhz,
                -b.limit_mhz,
                -b.shedding_mhz,
                0.0
            ]
        );
        let labels: Vec<&str> = spec.rules.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels[0], format!("±{:.0} mHz", b.normal_mhz));
        assert!(labels[4].ends_with("Hz load shedding"), "{}", labels[4]);
        assert_eq!(spec.rules[4].color, Some(RED));
    }

    #[test]
    fn wide_limits_and_large_excursions_widen_the_chart() {
        let gb = deviation_chart(GridArea::GreatBritain, vec![]);
        let b = Bands::of(GridArea::GreatBritain, 50.0);
        assert_eq!(gb.y_max, b.normal_mhz.max(200.0) * 1.25);
        let deep = deviation_chart(GridArea::default(), vec![-900.0]);
        assert!(deep.y_min < -900.0 && deep.y_max > 900.0, "{deep:?}");
    }

    #[test]
    fn field_axes_fit_their_data() {
        let f = field_axis(Field::Frequency, [50.01].into_iter(), 50.0);
        assert_eq!(
            (f.lo, f.hi, f.decimals),
            (50.0 - MIN_HALF_SPAN_HZ, 50.0 + MIN_HALF_SPAN_HZ, 3)
        );
        let v = field_axis(Field::Voltage, [230.0, 230.5].into_iter(), 50.0);
        assert!(v.hi - v.lo >= 2.0 && v.lo < 230.0 && v.hi > 230.5, "{v:?}");
        assert_eq!(v.decimals, 1);
        assert_eq!(
            field_axis(Field::Current, [1.0].into_iter(), 50.0).decimals,
            2
        );
        let p = field_axis(Field::Power, [0.0, 2_000.0].into_iter(), 50.0);
        assert!(p.lo < 0.0 && p.hi > 2_000.0 && p.decimals == 0, "{p:?}");
    }
}
