//! The store's size on disk and how fast it grows: sampled every [`EVERY`] for the last day,
//! for `/metrics` and `/api/health` (with the days until the disk is full at that pace).

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How often the size is sampled.
pub const EVERY: Duration = Duration::from_secs(300);
/// The growth is told once the samples span at least this, µs (one hour).
pub const MIN_SPAN_US: i64 = 3_600_000_000;
/// Samples older than this are dropped, µs (one day).
pub const KEEP_US: i64 = 86_400_000_000;

/// (µs, bytes) samples of the last day.
#[derive(Debug, Default)]
pub struct StoreSize {
    samples: Mutex<VecDeque<(i64, u64)>>,
}

impl StoreSize {
    pub fn record(&self, now_us: i64, bytes: u64) {
        let mut s = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        s.push_back((now_us, bytes));
        while s.front().is_some_and(|(t, _)| now_us - t > KEEP_US) {
            s.pop_front();
        }
    }

    /// The newest size.
    pub fn bytes(&self) -> Option<u64> {
        let s = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        s.back().map(|(_, b)| *b)
    }

    /// Bytes a day, from the oldest and the newest sample of the last day (negative when
    /// pruning freed more than was written); None before the samples span an hour.
    pub fn growth_per_day(&self) -> Option<f64> {
        let s = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let (&(t0, b0), &(t1, b1)) = (s.front()?, s.back()?);
        (t1 - t0 >= MIN_SPAN_US)
            .then(|| (b1 as f64 - b0 as f64) * KEEP_US as f64 / (t1 - t0) as f64)
    }
}

/// Days until `free_bytes` are used up at `growth_per_day`; None when not growing.
pub fn days_until_full(free_bytes: u64, growth_per_day: Option<f64>) -> Option<f64> {
    growth_per_day
        .filter(|g| *g > 0.0)
        .map(|g| (free_bytes as f64 / g * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

    #[test]
    fn growth_is_told_after_an_hour_over_the_last_day() {
        let s = StoreSize::default();
        assert_eq!(s.growth_per_day(), None);
        // 1 MB an hour for two days.
        for h in 0..=48 {
            s.record(h * H, 1_000_000 * h as u64);
            if h == 0 {
                assert_eq!(s.growth_per_day(), None, "one sample");
            }
        }
        assert_eq!(s.bytes(), Some(48_000_000));
        assert_eq!(s.growth_per_day(), Some(24_000_000.0));
        // Pruning freed most of it in the last hour.
        s.record(49 * H, 10_000_000);
        assert!(s.growth_per_day().unwrap() < 0.0);
        assert_eq!(days_until_full(1_000, s.growth_per_day()), None);
        assert_eq!(days_until_full(48_000_000, Some(24_000_000.0)), Some(2.0));
    }
}
