//! What a redraw of the live chart costs with 100 devices at 10 Hz over a 1-minute window,
//! the soak's load: a line per device (what the chart drew before the crowd), the crowd
//! computed afresh, and the crowd kept between redraws (what the page does). Each redraw
//! follows 400 ms of new data, the redraw interval at 100 devices.
//!
//! `cargo bench -p ogm-frontend --bench live_chart`

use std::hint::black_box;
use std::time::{Duration, Instant};

use ogm_frontend::chart::{
    ChartSpec, CrowdCache, TraceInput, XLabels, columns_per_trace, crowd, gap_for, reduce,
};
use ogm_frontend::series::Series;
use ogm_protocol::DeviceId;

const S: i64 = 1_000_000;
const DEVICES: usize = 100;
const WIDTH_PX: usize = 1_800;
const REDRAWS: i64 = 300;

fn main() {
    let ids: Vec<DeviceId> = (1..=DEVICES)
        .map(|d| DeviceId::new(&format!("sim-{d:02}")).expect("an id"))
        .collect();
    let mut series: Vec<Series> = (0..DEVICES)
        .map(|_| Series::sliding(60 * S, 1_200))
        .collect();
    let mut now = 1_700_000_000 * S;
    let push = |series: &mut [Series], now: &mut i64, span: i64| {
        let end = *now + span;
        while *now < end {
            *now += 100_000;
            for (d, s) in series.iter_mut().enumerate() {
                let t = *now - (d as i64 * 997) % 100_000;
                let f = 50.0 + 0.02 * ((t / S) as f64 / 9.0).sin() + 0.001 * (d % 5) as f64;
                s.push(t, f, *now);
            }
        }
    };
    push(&mut series, &mut now, 60 * S);
    let (mut lines, mut fresh, mut kept) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut cache = CrowdCache::default();
    for _ in 0..REDRAWS {
        push(&mut series, &mut now, 400_000);
        let traces: Vec<TraceInput<'_>> = ids
            .iter()
            .zip(&series)
            .map(|(id, series)| TraceInput { id, series })
            .collect();
        let t0 = now - 60 * S;

        let start = Instant::now();
        let mut spec = ChartSpec::new(t0, now, XLabels::Relative);
        let columns = columns_per_trace(WIDTH_PX, DEVICES);
        for tr in &traces {
            let segs = reduce(tr.series.iter(), t0, now, columns, gap_for(tr.series, 0));
            spec.add_trace(&segs, (0, 0, 0), 1.0);
        }
        black_box(&spec);
        lines += start.elapsed();

        let start = Instant::now();
        black_box(crowd(&traces, t0, now, WIDTH_PX / 2));
        fresh += start.elapsed();

        let start = Instant::now();
        black_box(cache.crowd(&traces, t0, now, WIDTH_PX / 2));
        kept += start.elapsed();
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / REDRAWS as f64;
    println!(
        "live chart, {DEVICES} devices × 10 Hz, 1-minute window, {REDRAWS} redraws 400 ms apart (µs per redraw):"
    );
    println!(
        "  a line per device ({} columns each): {:>8.1}",
        columns_per_trace(WIDTH_PX, DEVICES),
        per(lines)
    );
    println!("  crowd, afresh:                      {:>8.1}", per(fresh));
    println!("  crowd, kept between redraws:        {:>8.1}", per(kept));
    println!(
        "FIGURE crowd kept / a line per device: {:.2}",
        per(kept) / per(lines)
    );
}
