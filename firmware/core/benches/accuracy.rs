//! Accuracy of the zero-crossing frequency estimator, printed as a table.
//!
//! Run: `cargo bench -p ogm-firmware-core --bench accuracy` (about ten seconds).
//!
//! Synthetic lines with a known frequency course (constant; linear ramps of 0.1 and 1 Hz/s;
//! steps of ±100 mHz) are turned into ZX edge timestamps by `ogm_firmware_core::synth` exactly as
//! a board's timer would stamp them: 1 µs quantization, wrapping `u32` ticks, Gaussian timing
//! jitter of 5, 20 and 50 µs. The estimator gives one estimate per second (non-overlapping 1 s
//! windows, as a board publishes them); each is compared with the true mean frequency over its
//! window (the integral of the course). Trials differ in seed, start phase and timer offset.
//!
//! Columns: RMS and maximum error in mHz; for steps, the error of windows that do not contain
//! the step, and the response time: from the step to the end of the first window from which on
//! every estimate is within 10 % of the step of the new frequency. For comparison, the last
//! column is the RMS error of what the PERIOD register alone gives for constant frequencies
//! (223.75 kHz / (PERIOD + 1): steps of about 11 mHz at 50 Hz).

use ogm_firmware_core::ade7953::{frequency_from_period, period_for_frequency};
use ogm_firmware_core::estimator::{Edges, EstimatorConfig, FrequencyEstimator};
use ogm_firmware_core::synth::ZeroCrossings;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Length of the linear pieces the course is described by, µs.
const PIECE_US: f64 = 1_000.0;
const TRIALS: usize = 30;
const SECONDS: usize = 20;

#[derive(Clone, Copy)]
enum Course {
    Constant,
    Ramp { hz_per_s: f64 },
    Step { size_hz: f64 },
}

impl Course {
    fn name(self) -> String {
        match self {
            Course::Constant => "constant (49.95–50.05 Hz)".into(),
            Course::Ramp { hz_per_s } => format!("ramp {hz_per_s} Hz/s"),
            Course::Step { size_hz } => format!("step ±{:.0} mHz", size_hz * 1000.0),
        }
    }
}

/// One trial's frequency course: `f(t)` for `t` in seconds, and the step time if any.
struct Trial {
    course: Course,
    start_hz: f64,
    step_at_s: f64,
    sign: f64,
}

impl Trial {
    fn new(course: Course, rng: &mut SmallRng, index: usize) -> Self {
        let sign = if index.is_multiple_of(2) { 1.0 } else { -1.0 };
        let (start_hz, step_at_s) = match course {
            // A different frequency each trial, so PERIOD's quantization error varies too.
            Course::Constant => (rng.random_range(49.95..50.05), f64::INFINITY),
            // Centred on 50 Hz over the trial.
            Course::Ramp { hz_per_s } => {
                (50.0 - sign * hz_per_s * SECONDS as f64 / 2.0, f64::INFINITY)
            }
            // Anywhere in the middle of the trial, on a piece boundary.
            Course::Step { .. } => (
                49.98,
                (rng.random_range(8_000..12_000) as f64 * PIECE_US / 1e6).min(SECONDS as f64),
            ),
        };
        Self {
            course,
            start_hz,
            step_at_s,
            sign,
        }
    }

    fn f(&self, t: f64) -> f64 {
        match self.course {
            Course::Constant => self.start_hz,
            Course::Ramp { hz_per_s } => self.start_hz + self.sign * hz_per_s * t,
            Course::Step { size_hz } => {
                self.start_hz
                    + if t >= self.step_at_s {
                        self.sign * size_hz
                    } else {
                        0.0
                    }
            }
        }
    }

    /// Mean frequency over [a, b] s, integrating the pieces exactly.
    fn mean(&self, a: f64, b: f64) -> f64 {
        let n = ((b - a) * 1e6 / PIECE_US).round() as usize;
        let h = (b - a) / n as f64;
        let mut sum = 0.0;
        for i in 0..n {
            let t0 = a + i as f64 * h;
            // Right-continuous at a step: the piece that starts at the step is after it.
            let mid = (self.f(t0) + self.f_end(t0 + h)) / 2.0;
            sum += mid * h;
        }
        sum / (b - a)
    }

    /// The frequency at the end of a piece ending at `t` (left limit, for steps).
    fn f_end(&self, t: f64) -> f64 {
        match self.course {
            Course::Step { .. } if (t - self.step_at_s).abs() < 1e-9 => self.f(t - 1e-6),
            _ => self.f(t),
        }
    }
}

fn gaussian(rng: &mut SmallRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[derive(Default)]
struct Stats {
    errors_mhz: Vec<f64>,
    period_errors_mhz: Vec<f64>,
    response_s: Vec<f64>,
    failures: usize,
}

fn rms(xs: &[f64]) -> f64 {
    (xs.iter().map(|x| x * x).sum::<f64>() / xs.len().max(1) as f64).sqrt()
}

fn max_abs(xs: &[f64]) -> f64 {
    xs.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

fn run(course: Course, edges: Edges, jitter_us: f64, seed: u64) -> Stats {
    let mut stats = Stats::default();
    let mut rng = SmallRng::seed_from_u64(seed);
    for trial_index in 0..TRIALS {
        let trial = Trial::new(course, &mut rng, trial_index);
        let mut est = FrequencyEstimator::new(EstimatorConfig::new(50.0, edges));
        let start_tick: u32 = rng.random();
        let mut z = ZeroCrossings::new(edges, start_tick, rng.random());
        let mut noise = SmallRng::seed_from_u64(rng.random());
        let pieces_per_second = (1e6 / PIECE_US) as usize;
        let mut estimates = Vec::new();
        for s in 0..SECONDS {
            for p in 0..pieces_per_second {
                let t0 = s as f64 + p as f64 * PIECE_US / 1e6;
                let t1 = t0 + PIECE_US / 1e6;
                z.advance(
                    PIECE_US,
                    trial.f(t0),
                    trial.f_end(t1),
                    &mut || jitter_us * gaussian(&mut noise),
                    &mut |tick| est.push(tick),
                );
            }
            let (a, b) = (s as f64, s as f64 + 1.0);
            let truth = trial.mean(a, b);
            match est.estimate(z.now_tick()) {
                Ok(e) => estimates.push((a, b, e.frequency, truth)),
                Err(_) => stats.failures += 1,
            }
            let period = frequency_from_period(period_for_frequency(trial.f(b)));
            if let (Some(p), Course::Constant) = (period, course) {
                stats.period_errors_mhz.push((p - truth) * 1000.0);
            }
        }
        match course {
            Course::Step { size_hz } => {
                let step = trial.step_at_s;
                let after = trial.f(SECONDS as f64);
                for &(a, b, f, truth) in &estimates {
                    if b <= step || a >= step {
                        stats.errors_mhz.push((f - truth) * 1000.0);
                    }
                }
                // The first window end from which on every estimate is settled.
                let settled = |f: f64| (f - after).abs() <= 0.1 * size_hz;
                let mut response = None;
                for (i, &(_, b, _, _)) in estimates.iter().enumerate() {
                    if b > step && estimates[i..].iter().all(|e| settled(e.2)) {
                        response = Some(b - step);
                        break;
                    }
                }
                match response {
                    Some(r) => stats.response_s.push(r),
                    None => stats.failures += 1,
                }
            }
            _ => {
                for &(_, _, f, truth) in &estimates {
                    stats.errors_mhz.push((f - truth) * 1000.0);
                }
            }
        }
    }
    stats
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let courses = [
        Course::Constant,
        Course::Ramp { hz_per_s: 0.1 },
        Course::Ramp { hz_per_s: 1.0 },
        Course::Step { size_hz: 0.1 },
    ];
    println!(
        "Zero-crossing estimator, 50 Hz line, 1 s windows, 1 µs timer, {TRIALS} trials × {SECONDS} s per row\n"
    );
    println!(
        "| course | ZX edges | jitter | estimates | RMS error | max error | step response (mean / max) | PERIOD register alone, RMS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let started = std::time::Instant::now();
    let mut seed = 1;
    let mut goal_met = true;
    for course in courses {
        for edges in [Edges::Rising, Edges::Both] {
            for jitter in [5.0, 20.0, 50.0] {
                seed += 1;
                let s = run(course, edges, jitter, seed);
                let rms_mhz = rms(&s.errors_mhz);
                if jitter == 20.0
                    && edges == Edges::Rising
                    && matches!(course, Course::Constant | Course::Ramp { hz_per_s: 0.1 })
                    && rms_mhz > 1.0
                {
                    goal_met = false;
                }
                let response = if s.response_s.is_empty() {
                    "–".to_string()
                } else {
                    let mean = s.response_s.iter().sum::<f64>() / s.response_s.len() as f64;
                    format!("{mean:.2} s / {:.2} s", max_abs(&s.response_s))
                };
                let period = if s.period_errors_mhz.is_empty() {
                    "–".to_string()
                } else {
                    format!("{:.2} mHz", rms(&s.period_errors_mhz))
                };
                let failures = if s.failures > 0 {
                    format!(" ({} failed)", s.failures)
                } else {
                    String::new()
                };
                println!(
                    "| {} | {} | {jitter:.0} µs | {}{failures} | {rms_mhz:.3} mHz | {:.3} mHz | {response} | {period} |",
                    course.name(),
                    match edges {
                        Edges::Rising => "rising",
                        Edges::Both => "both",
                    },
                    s.errors_mhz.len(),
                    max_abs(&s.errors_mhz),
                );
            }
        }
    }
    println!(
        "\nGoal (≤ 1 mHz RMS at 20 µs jitter, rising edges, constant and 0.1 Hz/s): {}",
        if goal_met { "met" } else { "NOT met" }
    );
    println!("({:.1} s)", started.elapsed().as_secs_f64());
}
