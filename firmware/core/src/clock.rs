//! [`WallClock`]: Unix time from the board's monotonic µs timer and SNTP answers, and the timer's
//! frequency error.
//!
//! Readings are taken (and buffered) with monotonic timestamps and stamped with Unix time only
//! when they are published, so readings taken before the first SNTP answer, or during an outage,
//! still get correct timestamps.
//!
//! The timer's own crystal is typically within ±10 to ±20 ppm, and every ppm is 0.05 mHz at
//! 50 Hz. SNTP answers an hour or more apart measure it to well under a ppm (a 10 ms SNTP error
//! over an hour is 2.8 ppm, over a day 0.1 ppm): [`WallClock::timer_ppm`] gives the figure the
//! frequency estimator corrects by.

/// A value taken at a monotonic time, to be stamped with Unix time when it is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stamped<T> {
    pub monotonic_us: u64,
    pub value: T,
}

/// Shortest span between SNTP answers that [`WallClock::timer_ppm`] trusts, µs.
pub const MIN_DRIFT_SPAN_US: u64 = 3_600_000_000;

/// Maps monotonic µs to Unix µs.
#[derive(Debug, Clone, Default)]
pub struct WallClock {
    /// Unix µs minus monotonic µs, from the latest answer.
    offset: Option<i64>,
    /// The first answer, (monotonic, unix).
    first: Option<(u64, i64)>,
    /// The latest answer.
    latest: Option<(u64, i64)>,
}

impl WallClock {
    pub const fn new() -> Self {
        Self {
            offset: None,
            first: None,
            latest: None,
        }
    }

    /// An SNTP answer: at monotonic time `monotonic_us` it was `unix_us`.
    pub fn sync(&mut self, monotonic_us: u64, unix_us: i64) {
        let Ok(m) = i64::try_from(monotonic_us) else {
            return;
        };
        self.offset = Some(unix_us.saturating_sub(m));
        self.first.get_or_insert((monotonic_us, unix_us));
        self.latest = Some((monotonic_us, unix_us));
    }

    pub fn is_set(&self) -> bool {
        self.offset.is_some()
    }

    /// Unix µs at monotonic `monotonic_us`; `None` before the first answer.
    pub fn unix_us(&self, monotonic_us: u64) -> Option<i64> {
        let m = i64::try_from(monotonic_us).ok()?;
        self.offset.map(|o| m.saturating_add(o))
    }

    /// How fast the monotonic timer runs against SNTP, ppm (positive: fast), once the answers
    /// span at least [`MIN_DRIFT_SPAN_US`].
    pub fn timer_ppm(&self) -> Option<f64> {
        let ((m0, u0), (m1, u1)) = (self.first?, self.latest?);
        let local = m1.checked_sub(m0)?;
        let true_span = u1.checked_sub(u0)?;
        if local < MIN_DRIFT_SPAN_US || true_span <= 0 {
            return None;
        }
        Some((local as f64 / true_span as f64 - 1.0) * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIX: i64 = 1_750_000_000_000_000;

    #[test]
    fn unset_until_the_first_answer_then_maps_both_ways_of_it() {
        let mut c = WallClock::new();
        assert_eq!(c.unix_us(5), None);
        c.sync(10_000_000, UNIX);
        assert_eq!(c.unix_us(4_000_000), Some(UNIX - 6_000_000));
        assert_eq!(c.unix_us(10_000_001), Some(UNIX + 1));
        assert!(c.is_set());
    }

    #[test]
    fn drift_needs_an_hour_of_answers() {
        let mut c = WallClock::new();
        c.sync(0, UNIX);
        // The timer counted 3600.036 s in a true hour: 10 ppm fast.
        c.sync(1_800_018_000, UNIX + 1_800_000_000);
        assert_eq!(c.timer_ppm(), None);
        c.sync(3_600_036_000, UNIX + 3_600_000_000);
        let ppm = c.timer_ppm().unwrap();
        assert!((ppm - 10.0).abs() < 1e-6, "{ppm}");
        // Later answers use the latest offset.
        assert_eq!(c.unix_us(3_600_036_000), Some(UNIX + 3_600_000_000));
    }
}
