//! [`ZeroCrossings`]: synthetic ZX edges for a known frequency course, as a board's timer would
//! stamp them: true crossing times plus timer jitter, quantized to 1 µs, as wrapping `u32` ticks.
//! The simulator, the accuracy benchmark and the tests use it; a board never does.
//!
//! The course is given piece by piece ([`ZeroCrossings::advance`]): over each piece the
//! frequency moves linearly, and the phase is its exact integral, so ramps and steps are
//! modelled without discretisation error. Jitter comes from the caller (any distribution), so
//! this module needs no random number generator.

use crate::estimator::Edges;
use crate::num::{abs, floor};

/// Generates the ZX edges of a line whose frequency the caller describes.
#[derive(Debug, Clone)]
pub struct ZeroCrossings {
    edges: Edges,
    /// Phase, cycles, at `t_us`.
    phase: f64,
    /// True time since the start, µs.
    t_us: f64,
    /// Timer reading at the start (to exercise wraparound).
    start_tick: u32,
    /// How fast the timer runs, ppm.
    clock_ppm: f64,
}

impl ZeroCrossings {
    /// Starts at true time 0 with the timer reading `start_tick`, at phase `phase` (cycles, so
    /// `0.25` starts a quarter period past a rising edge).
    pub fn new(edges: Edges, start_tick: u32, phase: f64) -> Self {
        Self {
            edges,
            phase,
            t_us: 0.0,
            start_tick,
            clock_ppm: 0.0,
        }
    }

    /// A timer that runs `ppm` parts per million fast.
    pub fn with_clock_ppm(mut self, ppm: f64) -> Self {
        self.clock_ppm = ppm;
        self
    }

    /// True time since the start, µs.
    pub fn time_us(&self) -> f64 {
        self.t_us
    }

    /// What the timer reads at true time `t_us`.
    pub fn tick_at(&self, t_us: f64) -> u32 {
        let t = t_us * (1.0 + self.clock_ppm * 1e-6);
        self.start_tick.wrapping_add(floor(t) as u32)
    }

    /// The timer now.
    pub fn now_tick(&self) -> u32 {
        self.tick_at(self.t_us)
    }

    /// Moves `dt_us` on while the frequency goes linearly from `f0_hz` to `f1_hz`, and calls
    /// `edge` with the timer tick of every ZX edge in that time; each edge's time is shifted by
    /// `jitter()` µs before it is quantized. Edges come out in time order unless the jitter
    /// exceeds half the spacing.
    pub fn advance(
        &mut self,
        dt_us: f64,
        f0_hz: f64,
        f1_hz: f64,
        jitter: &mut impl FnMut() -> f64,
        edge: &mut impl FnMut(u32),
    ) {
        if !(dt_us.is_finite() && dt_us > 0.0 && f0_hz.is_finite() && f1_hz.is_finite()) {
            return;
        }
        let per_cycle = self.edges.per_cycle() as f64;
        // Phase over the piece, τ in µs: φ(τ) = φ0 + f0·τ·1e-6 + (f1 − f0)·τ²/(2·dt)·1e-6.
        let b = f0_hz * 1e-6;
        let a = (f1_hz - f0_hz) / (2.0 * dt_us) * 1e-6;
        let end_phase = self.phase + b * dt_us + a * dt_us * dt_us;
        // The next edge: the next multiple of 1/per_cycle cycles after the current phase.
        let mut n = floor(self.phase * per_cycle) + 1;
        loop {
            let target = n as f64 / per_cycle;
            if target > end_phase {
                break;
            }
            let delta = target - self.phase;
            // Newton's method from the constant-frequency answer.
            let mut tau = if b > 0.0 { delta / b } else { 0.0 };
            for _ in 0..6 {
                let slope = b + 2.0 * a * tau;
                if slope <= 0.0 {
                    break;
                }
                let step = (a * tau * tau + b * tau - delta) / slope;
                tau -= step;
                if abs(step) < 1e-9 {
                    break;
                }
            }
            let t = self.t_us + tau.clamp(0.0, dt_us);
            edge(self.tick_at(t + jitter()));
            n += 1;
        }
        self.phase = end_phase;
        self.t_us += dt_us;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn collect(z: &mut ZeroCrossings, dt: f64, f0: f64, f1: f64) -> Vec<u32> {
        let mut out = Vec::new();
        z.advance(dt, f0, f1, &mut || 0.0, &mut |t| out.push(t));
        out
    }

    #[test]
    fn a_constant_fifty_hertz_gives_an_edge_every_20_ms() {
        let mut z = ZeroCrossings::new(Edges::Rising, 1000, 0.5);
        let ticks = collect(&mut z, 1e6, 50.0, 50.0);
        assert_eq!(ticks.len(), 50);
        assert_eq!(ticks[0], 1000 + 10_000);
        assert!(ticks.windows(2).all(|w| w[1] - w[0] == 20_000), "{ticks:?}");
        let both = collect(
            &mut ZeroCrossings::new(Edges::Both, 0, 0.1),
            1e6,
            50.0,
            50.0,
        );
        assert_eq!(both.len(), 100);
        assert_eq!(both[1] - both[0], 10_000);
    }

    #[test]
    fn pieces_join_without_losing_phase_and_ticks_wrap() {
        let mut z = ZeroCrossings::new(Edges::Rising, u32::MAX - 30_000, 0.0);
        let mut all = Vec::new();
        for _ in 0..10 {
            all.extend(collect(&mut z, 100_000.0, 50.0, 50.0));
        }
        assert_eq!(all.len(), 50);
        assert!(all.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 20_000));
        assert!(all.iter().any(|t| *t < 1_000_000), "wrapped");
    }

    #[test]
    fn a_ramp_counts_the_integral_of_frequency() {
        // 50 → 52 Hz over one second: 51 cycles.
        let mut z = ZeroCrossings::new(Edges::Rising, 0, 0.5);
        let ticks = collect(&mut z, 1e6, 50.0, 52.0);
        assert_eq!(ticks.len(), 51);
        let first = ticks[1] - ticks[0];
        let last = ticks[50] - ticks[49];
        assert!(first > last, "periods shorten: {first} {last}");
    }

    #[test]
    fn a_fast_timer_stretches_the_ticks() {
        let mut z = ZeroCrossings::new(Edges::Rising, 0, 0.5).with_clock_ppm(100.0);
        let ticks = collect(&mut z, 1e6, 50.0, 50.0);
        assert_eq!(ticks[49] - ticks[0], 980_098);
    }
}
