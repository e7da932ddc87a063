use super::*;
use crate::series::{Sample, Series};
use ogm_protocol::DeviceId;

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
