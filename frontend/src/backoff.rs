//! Reconnect delays: exponential backoff with jitter, and the small PRNG that draws the jitter.
//!
//! Pure: the caller owns the clock. The schedule starts at [`BASE_MS`], doubles per failed
//! attempt up to [`MAX_MS`], and each delay is shortened by up to [`JITTER`] of itself at random
//! so that a room full of kiosk screens does not reconnect in lockstep after a broker restart.

/// First reconnect delay, in milliseconds.
pub const BASE_MS: u64 = 500;
/// Longest reconnect delay, in milliseconds.
pub const MAX_MS: u64 = 30_000;
/// Largest share of a delay that jitter may remove.
pub const JITTER: f64 = 0.25;

/// The reconnect schedule of one link.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    rng: XorShift,
}

impl Backoff {
    /// A schedule whose jitter is drawn from a generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            attempt: 0,
            rng: XorShift::new(seed),
        }
    }

    /// The delay before attempt `attempt` (0-based) without jitter: 0.5 s, 1 s, 2 s … 30 s.
    pub fn nominal_ms(attempt: u32) -> u64 {
        BASE_MS
            .checked_shl(attempt.min(16))
            .unwrap_or(MAX_MS)
            .min(MAX_MS)
    }

    /// The delay before the next attempt, jittered into `(nominal × (1 − JITTER), nominal]`,
    /// and advances the schedule.
    pub fn next_delay_ms(&mut self) -> u64 {
        let nominal = Self::nominal_ms(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let cut = (nominal as f64 * JITTER * self.rng.next_f64()) as u64;
        nominal - cut
    }

    /// Failed attempts since the last [`reset`](Self::reset).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Starts over at [`BASE_MS`]; called once a connection is fully up.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// xorshift64*: tiny, deterministic under test, good enough for jitter and client ids.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // Zero is a fixed point of xorshift; any other constant will do.
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nominal_schedule_doubles_from_half_a_second_to_thirty() {
        let s: Vec<u64> = (0..10).map(Backoff::nominal_ms).collect();
        assert_eq!(
            s,
            [
                500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000
            ]
        );
        assert_eq!(Backoff::nominal_ms(u32::MAX), MAX_MS);
    }

    #[test]
    fn jitter_stays_within_a_quarter_below_nominal() {
        for seed in 1..50 {
            let mut b = Backoff::new(seed);
            for attempt in 0..12 {
                let nominal = Backoff::nominal_ms(attempt);
                let d = b.next_delay_ms();
                assert!(
                    d <= nominal && d as f64 >= nominal as f64 * (1.0 - JITTER),
                    "{d}"
                );
            }
        }
    }

    #[test]
    fn jitter_differs_between_seeds() {
        let a: Vec<u64> = {
            let mut b = Backoff::new(1);
            (0..8).map(|_| b.next_delay_ms()).collect()
        };
        let c: Vec<u64> = {
            let mut b = Backoff::new(2);
            (0..8).map(|_| b.next_delay_ms()).collect()
        };
        assert_ne!(a, c);
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(7);
        for _ in 0..5 {
            b.next_delay_ms();
        }
        assert_eq!(b.attempt(), 5);
        b.reset();
        assert!(b.next_delay_ms() <= BASE_MS);
    }

    #[test]
    fn random_numbers_are_in_the_unit_interval() {
        let mut r = XorShift::new(0);
        for _ in 0..1000 {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
