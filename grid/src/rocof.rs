//! Rate of change of frequency: [`slope_hz_per_s`] and the trailing-window [`RocofEstimator`].

use alloc::collections::VecDeque;

/// Least-squares slope of `(t µs, f Hz)` points, Hz/s; None for fewer than two distinct times.
pub fn slope_hz_per_s(points: impl Iterator<Item = (i64, f64)> + Clone) -> Option<f64> {
    let (n, t_sum, f_sum) = points.clone().fold((0.0, 0.0, 0.0), |(n, ts, fs), (t, f)| {
        (n + 1.0, ts + t as f64, fs + f)
    });
    if n < 2.0 {
        return None;
    }
    let (t_bar, f_bar) = (t_sum / n, f_sum / n);
    let (num, den) = points.fold((0.0, 0.0), |(num, den), (t, f)| {
        let dt = (t as f64 - t_bar) / 1e6;
        (num + dt * (f - f_bar), den + dt * dt)
    });
    (den > 0.0).then(|| num / den)
}

/// RoCoF over a trailing window: the least-squares slope of the points in the last `window`,
/// reaching back to the point before the window when the window alone holds fewer than two
/// (a 1 Hz device with a 500 ms window), but never across more than [`RocofEstimator::MAX_GAP_US`]
/// of silence.
#[derive(Debug, Clone)]
pub struct RocofEstimator {
    window_us: i64,
    points: VecDeque<(i64, f64)>,
}

impl RocofEstimator {
    /// Longest silence the estimate reaches across, µs.
    pub const MAX_GAP_US: i64 = 5_000_000;
    /// Most points kept (a 500 Hz device over 1 s).
    pub const MAX_POINTS: usize = 512;

    pub fn new(window_us: i64) -> Self {
        Self {
            window_us: window_us.max(1),
            points: VecDeque::new(),
        }
    }

    /// Adds a reading and returns the RoCoF at it, if there is enough data.
    pub fn push(&mut self, t_us: i64, f_hz: f64) -> Option<f64> {
        if !f_hz.is_finite() {
            return self.current();
        }
        match self.points.back() {
            Some(&(last, _)) if t_us <= last => return self.current(), // late or duplicate
            Some(&(last, _)) if t_us - last > Self::MAX_GAP_US => self.points.clear(),
            _ => {}
        }
        self.points.push_back((t_us, f_hz));
        // Keep the window plus one point before it.
        let cutoff = t_us - self.window_us;
        while self.points.len() > 2 && self.points.get(1).is_some_and(|p| p.0 < cutoff) {
            self.points.pop_front();
        }
        while self.points.len() > Self::MAX_POINTS {
            self.points.pop_front();
        }
        self.current()
    }

    /// The RoCoF at the latest reading, Hz/s.
    pub fn current(&self) -> Option<f64> {
        let &(last, _) = self.points.back()?;
        let cutoff = last - self.window_us;
        let inside = self.points.iter().filter(|p| p.0 >= cutoff).count();
        let skip = if inside >= 2 {
            self.points.len() - inside
        } else {
            self.points.len().saturating_sub(2)
        };
        slope_hz_per_s(self.points.iter().skip(skip).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;
    const MS: i64 = 1_000;

    #[test]
    fn rocof_of_a_ramp_and_sparse_data() {
        let mut e = RocofEstimator::new(500 * MS);
        let mut last = None;
        for i in 0..50 {
            last = e.push(i * 100 * MS, 50.0 + 0.1 * (i as f64 / 10.0));
        }
        assert!((last.unwrap() - 0.1).abs() < 1e-9);
        // 1 Hz data with a 500 ms window: the difference to the previous reading.
        let mut e = RocofEstimator::new(500 * MS);
        assert_eq!(e.push(0, 50.0), None);
        let r = e.push(S, 49.9).unwrap();
        assert!((r + 0.1).abs() < 1e-9);
        // Not across a long silence, and not from late points.
        assert_eq!(e.push(10 * S, 50.0), None);
        assert_eq!(e.push(9 * S, 51.0), None);
        assert_eq!(slope_hz_per_s([(1, 2.0), (1, 3.0)].into_iter()), None);
    }
}
