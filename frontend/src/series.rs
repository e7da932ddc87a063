//! [`Series`]: a bounded, time-ordered ring buffer of `(t_us, value)` points.
//!
//! Bounded twice: by age (only the last [`Series::window_us`] before "now" is kept) and by
//! capacity (the oldest point goes first). Points arrive mostly in order; a late one is inserted
//! at its place so the chart never zigzags back in time.

use std::collections::VecDeque;

/// A bounded, time-ordered series of `(t_us, value)`.
#[derive(Debug, Clone)]
pub struct Series {
    points: VecDeque<(i64, f64)>,
    capacity: usize,
    window_us: i64,
}

impl Series {
    /// An empty series keeping at most `capacity` points from the last `window_us`.
    pub fn new(capacity: usize, window_us: i64) -> Self {
        Self {
            points: VecDeque::new(),
            capacity: capacity.max(1),
            window_us,
        }
    }

    /// How far back points are kept, in µs.
    pub fn window_us(&self) -> i64 {
        self.window_us
    }

    /// Adds a point at `t_us`, then drops what is older than the window before `now_us`.
    /// Returns whether the point was kept.
    pub fn push(&mut self, t_us: i64, value: f64, now_us: i64) -> bool {
        if t_us < now_us.saturating_sub(self.window_us) {
            return false;
        }
        if self.points.len() >= self.capacity {
            match self.points.front() {
                Some(&(oldest, _)) if t_us < oldest => return false,
                _ => {
                    self.points.pop_front();
                }
            }
        }
        match self.points.back() {
            Some(&(last, _)) if t_us < last => {
                let at = self.points.partition_point(|&(t, _)| t <= t_us);
                self.points.insert(at, (t_us, value));
            }
            _ => self.points.push_back((t_us, value)),
        }
        self.prune(now_us);
        true
    }

    /// Drops points older than the window before `now_us`; returns whether any went.
    pub fn prune(&mut self, now_us: i64) -> bool {
        let cutoff = now_us.saturating_sub(self.window_us);
        let before = self.points.len();
        while self.points.front().is_some_and(|&(t, _)| t < cutoff) {
            self.points.pop_front();
        }
        self.points.len() != before
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.points.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn evicts_by_capacity_oldest_first() {
        let mut s = Series::new(3, 300 * S);
        for i in 0..5 {
            assert!(s.push(i * S, i as f64, 10 * S));
        }
        assert_eq!(s.iter().map(|p| p.1).collect::<Vec<_>>(), [2.0, 3.0, 4.0]);
        // A point older than everything in a full buffer is not worth keeping.
        assert!(!s.push(0, 0.0, 10 * S));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn evicts_by_age() {
        let mut s = Series::new(100, 10 * S);
        for i in 0..20 {
            s.push(i * S, 50.0, i * S);
        }
        assert_eq!(s.len(), 11);
        assert_eq!(s.iter().next().map(|p| p.0), Some(9 * S));
        assert!(s.prune(100 * S));
        assert!(s.is_empty());
        assert!(!s.prune(100 * S));
        assert!(!s.push(80 * S, 50.0, 100 * S), "too old for the window");
    }

    #[test]
    fn late_points_are_inserted_in_order() {
        let mut s = Series::new(10, 100 * S);
        for t in [1, 2, 5, 3, 4, 4] {
            s.push(t * S, t as f64, 10 * S);
        }
        let ts: Vec<i64> = s.iter().map(|p| p.0 / S).collect();
        assert_eq!(ts, [1, 2, 3, 4, 4, 5]);
    }

    #[test]
    fn never_exceeds_capacity_under_a_flood() {
        let mut s = Series::new(15_000, 300 * S);
        for i in 0..100_000i64 {
            s.push(i * 1000, 50.0, i * 1000);
            assert!(s.len() <= 15_000);
        }
        assert_eq!(s.len(), 15_000);
    }
}
