//! The estimator on synthetic edges: exactness without jitter, accuracy bounds with it, and
//! robustness to wraparound, missed and extra edges, duty-cycle asymmetry, ramps and timer drift.

use alloc::vec::Vec;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::synth::ZeroCrossings;

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut SmallRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (core::f64::consts::TAU * u2).cos()
}

/// Runs `seconds` one-second windows of a line at `f(t)` (linear within 10 ms pieces), with
/// `jitter_us` Gaussian timer jitter; `mangle` may drop or add edges. Returns (estimate, truth at
/// the window's centre) per window.
fn run(
    cfg: EstimatorConfig,
    seconds: usize,
    jitter_us: f64,
    start_tick: u32,
    f: impl Fn(f64) -> f64,
    mut mangle: impl FnMut(u32, &mut Vec<u32>),
) -> Vec<(Result<Estimate, EstimateError>, f64)> {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut est = FrequencyEstimator::new(cfg);
    let mut z = ZeroCrossings::new(cfg.edges, start_tick, 0.37);
    let mut out = Vec::new();
    let piece = 10_000.0;
    for s in 0..seconds {
        let mut edges = Vec::new();
        for i in 0..100 {
            let t0 = s as f64 * 1e6 + i as f64 * piece;
            z.advance(
                piece,
                f(t0 / 1e6),
                f((t0 + piece) / 1e6),
                &mut || jitter_us * gaussian(&mut rng),
                &mut |t| edges.push(t),
            );
        }
        let mut mangled = Vec::new();
        for e in edges {
            mangle(e, &mut mangled);
        }
        for e in mangled {
            est.push(e);
        }
        let truth = f(s as f64 + 0.5);
        out.push((est.estimate(z.now_tick()), truth));
    }
    out
}

/// (RMS, max) error in mHz over the windows after the first.
fn errors(results: &[(Result<Estimate, EstimateError>, f64)]) -> (f64, f64) {
    let errs: Vec<f64> = results[1..]
        .iter()
        .map(|(e, truth)| (e.as_ref().expect("an estimate").frequency - truth) * 1000.0)
        .collect();
    let rms = (errs.iter().map(|e| e * e).sum::<f64>() / errs.len() as f64).sqrt();
    let max = errs.iter().fold(0.0f64, |m, e| m.max(e.abs()));
    (rms, max)
}

fn fifty() -> EstimatorConfig {
    EstimatorConfig::new(50.0, Edges::Rising)
}

#[test]
fn exact_without_jitter() {
    for f in [49.8, 50.0, 50.0173, 50.2] {
        let r = run(fifty(), 5, 0.0, 0, |_| f, |e, v| v.push(e));
        let (rms, max) = errors(&r);
        assert!(max < 0.02, "{f}: rms {rms} max {max} mHz");
        let e = r[4].0.unwrap();
        assert_eq!(e.edges_rejected, 0);
        assert!(e.edges_used >= 49, "{e:?}");
        assert!(e.residual_rms_us < 0.6, "1 µs quantization only: {e:?}");
    }
}

#[test]
fn one_millihertz_rms_at_20_us_jitter() {
    let r = run(fifty(), 300, 20.0, 123, |_| 50.0123, |e, v| v.push(e));
    let (rms, max) = errors(&r);
    assert!(rms < 1.0, "rms {rms} mHz");
    assert!(max < 4.0, "max {max} mHz");
    let e = r[10].0.unwrap();
    assert!((10.0..30.0).contains(&e.residual_rms_us), "{e:?}");
}

#[test]
fn both_edges_are_quieter_and_ignore_duty_cycle_asymmetry() {
    let mut both = EstimatorConfig::new(50.0, Edges::Both);
    both.min_edges = 40;
    // Falling edges arrive 300 µs late: a DC offset on the voltage.
    let mut falling = false;
    let r = run(
        both,
        300,
        20.0,
        0,
        |_| 49.95,
        |e, v| {
            v.push(if falling { e + 300 } else { e });
            falling = !falling;
        },
    );
    let (rms_both, max) = errors(&r);
    assert!(max < 3.0, "max {max} mHz");
    let (rms_rising, _) = errors(&run(fifty(), 300, 20.0, 0, |_| 49.95, |e, v| v.push(e)));
    assert!(rms_both < rms_rising * 0.85, "{rms_both} vs {rms_rising}");
}

#[test]
fn ticks_may_wrap() {
    let r = run(
        fifty(),
        10,
        5.0,
        u32::MAX - 3_500_000,
        |_| 50.01,
        |e, v| v.push(e),
    );
    let (_, max) = errors(&r);
    assert!(max < 1.0, "{max}");
}

#[test]
fn missed_edges_leave_gaps_that_do_not_matter() {
    let mut n = 0u32;
    let r = run(
        fifty(),
        30,
        5.0,
        0,
        |_| 50.03,
        |e, v| {
            n += 1;
            if !n.is_multiple_of(7) && !n.is_multiple_of(11) {
                v.push(e);
            }
        },
    );
    let (_, max) = errors(&r);
    assert!(max < 1.0, "{max}");
}

#[test]
fn glitches_are_rejected() {
    let mut rng = SmallRng::seed_from_u64(3);
    let mut n = 0u32;
    let r = run(
        fifty(),
        30,
        5.0,
        0,
        |_| 49.97,
        |e, v| {
            n += 1;
            v.push(e);
            // A spurious edge a random time after one in five real edges (mid-cycle noise), and a
            // bounce 40 µs after one in seven.
            if n.is_multiple_of(5) {
                v.push(e + rng.random_range(1_000..19_000));
            }
            if n.is_multiple_of(7) {
                v.push(e + 40);
            }
        },
    );
    let (_, max) = errors(&r);
    assert!(max < 1.5, "{max}");
    let e = r[20].0.unwrap();
    assert!(e.edges_rejected >= 15, "{e:?}");
    assert!(e.edges_used >= 45, "{e:?}");
}

#[test]
fn a_glitch_first_in_the_window_does_not_shift_the_numbering() {
    let cfg = fifty();
    let mut est = FrequencyEstimator::new(cfg);
    let mut z = ZeroCrossings::new(Edges::Rising, 0, 0.0);
    let mut edges = alloc::vec![5_000u32];
    z.advance(1e6, 50.0, 50.0, &mut || 0.0, &mut |t| edges.push(t));
    edges.sort_unstable();
    for e in edges {
        est.push(e);
    }
    let e = est.estimate(z.now_tick()).unwrap();
    assert!((e.frequency - 50.0).abs() < 1e-5, "{e:?}");
    assert_eq!(e.edges_rejected, 1);
}

#[test]
fn ramps_are_followed_and_measured() {
    // 1 Hz/s for ten seconds: the mean over each window, and the RoCoF.
    let r = run(fifty(), 10, 0.0, 0, |t| 49.5 + 0.1 * t, |e, v| v.push(e));
    let (_, max) = errors(&r);
    assert!(max < 0.05, "0.1 Hz/s: {max} mHz");
    let r = run(fifty(), 10, 0.0, 0, |t| 48.0 + 1.0 * t, |e, v| v.push(e));
    let (_, max) = errors(&r);
    assert!(max < 0.5, "1 Hz/s: {max} mHz");
    let rocof = r[5].0.unwrap().rocof;
    assert!((rocof - 1.0).abs() < 0.01, "{rocof}");
}

#[test]
fn a_fast_timer_is_corrected() {
    let mut cfg = fifty();
    let mut est_raw = FrequencyEstimator::new(cfg);
    cfg.clock_ppm = 50.0;
    let mut est = FrequencyEstimator::new(cfg);
    let mut z = ZeroCrossings::new(Edges::Rising, 0, 0.0).with_clock_ppm(50.0);
    z.advance(1e6, 50.0, 50.0, &mut || 0.0, &mut |t| {
        est.push(t);
        est_raw.push(t);
    });
    let now = z.now_tick();
    let raw = est_raw.estimate(now).unwrap().frequency;
    assert!((raw - 50.0 / 1.000_05).abs() < 1e-5, "uncorrected {raw}");
    assert!((est.estimate(now).unwrap().frequency - 50.0).abs() < 1e-5);
}

#[test]
fn sixty_hertz_grids() {
    let cfg = EstimatorConfig::new(60.0, Edges::Rising);
    assert_eq!((cfg.expected_edges(), cfg.min_edges), (60, 30));
    let r = run(cfg, 20, 20.0, 0, |_| 59.98, |e, v| v.push(e));
    let (rms, _) = errors(&r);
    assert!(rms < 1.0, "{rms}");
}

#[test]
fn too_few_edges_or_an_implausible_signal_give_errors() {
    let mut est = FrequencyEstimator::new(fifty());
    assert_eq!(
        est.estimate(0),
        Err(EstimateError::TooFewEdges { got: 0, need: 25 })
    );
    // Half a second of edges is the least that fits; less is too few.
    let mut z = ZeroCrossings::new(Edges::Rising, 0, 0.0);
    z.advance(400_000.0, 50.0, 50.0, &mut || 0.0, &mut |t| est.push(t));
    assert!(matches!(
        est.estimate(z.now_tick()),
        Err(EstimateError::TooFewEdges { got: 20, .. })
    ));
    z.advance(200_000.0, 50.0, 50.0, &mut || 0.0, &mut |t| est.push(t));
    assert!(est.estimate(z.now_tick()).is_ok());
    // Old edges age out of the window.
    assert!(matches!(
        est.estimate(z.now_tick().wrapping_add(2_000_000)),
        Err(EstimateError::TooFewEdges { got: 0, .. })
    ));
    assert!(est.is_empty());
    // A 120 Hz signal on a 50 Hz configuration.
    let mut z = ZeroCrossings::new(Edges::Rising, 0, 0.0);
    z.advance(1e6, 120.0, 120.0, &mut || 0.0, &mut |t| est.push(t));
    assert!(matches!(
        est.estimate(z.now_tick()),
        Err(EstimateError::OutOfRange { .. })
    ));
}

#[test]
fn repeated_and_backward_ticks_are_ignored() {
    let mut est = FrequencyEstimator::new(fifty());
    est.push(100);
    est.push(100);
    est.push(50);
    est.push(20_100);
    assert_eq!(est.len(), 2);
    est.clear();
    assert!(est.is_empty());
}

#[test]
fn an_interrupt_storm_is_bounded() {
    let mut est = FrequencyEstimator::new(fifty());
    for t in 0..100_000u32 {
        est.push(t * 3);
    }
    assert!(est.len() <= 200);
    assert!(est.estimate(300_000).is_err());
}
