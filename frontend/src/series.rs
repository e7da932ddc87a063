//! [`Series`]: a bounded time series of min/mean/max [`Sample`]s where history and live data
//! meet. Pure.
//!
//! Time is cut into fixed slots (`slot_us`); a slot holds one [`Sample`] that merges every value
//! that fell into it, so a series never holds more than `capacity` samples however fast a device
//! sends, and a spike survives as the slot's min or max. Live points are merged in with
//! [`Series::push`]; history buckets from `/api/history` with [`Series::fill`], which only fills
//! slots that held nothing yet: the initial load, and the backfill of a gap after a reconnect,
//! never count a live point twice and never overwrite what was seen live. A sliding series
//! (a window) drops what falls out of the window; a fixed one (a custom range) keeps its range.

use std::collections::VecDeque;

pub use ogm_grid::Sample;

/// A bounded, slotted time series.
#[derive(Debug, Clone)]
pub struct Series {
    samples: VecDeque<Sample>,
    slot_us: i64,
    /// Sliding window, µs; `None` for a fixed range.
    window_us: Option<i64>,
    capacity: usize,
    /// Counts the changes anywhere but at the newest slot (an insert or a merge into an older
    /// slot, a clear): what a cache of older slots (the chart's crowd) must start over after.
    rewrites: u64,
}

/// Smallest slot, µs.
pub const MIN_SLOT_US: i64 = 1_000;

impl Series {
    /// A sliding series over the last `window_us`, cut into about `slots` slots.
    pub fn sliding(window_us: i64, slots: usize) -> Self {
        let slots = slots.max(1);
        let slot_us = (window_us / slots as i64).max(MIN_SLOT_US);
        Self {
            samples: VecDeque::new(),
            slot_us,
            window_us: Some(window_us.max(1)),
            capacity: slots + 2,
            rewrites: 0,
        }
    }

    /// A fixed series over `[start, stop)`, cut into about `slots` slots.
    pub fn fixed(start_us: i64, stop_us: i64, slots: usize) -> Self {
        let slots = slots.max(1);
        let slot_us = ((stop_us - start_us).max(1) / slots as i64).max(MIN_SLOT_US);
        Self {
            samples: VecDeque::new(),
            slot_us,
            window_us: None,
            capacity: slots + 2,
            rewrites: 0,
        }
    }

    pub fn slot_us(&self) -> i64 {
        self.slot_us
    }

    pub fn window_us(&self) -> Option<i64> {
        self.window_us
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Sample> + '_ {
        self.samples.iter()
    }

    pub fn last(&self) -> Option<&Sample> {
        self.samples.back()
    }

    pub fn clear(&mut self) {
        self.samples.clear();
        self.rewrites += 1;
    }

    /// See the field: unchanged, only the newest slot and what came after it can differ from
    /// when it was last read.
    pub fn rewrites(&self) -> u64 {
        self.rewrites
    }

    fn slot_of(&self, t: i64) -> i64 {
        t.div_euclid(self.slot_us) * self.slot_us
    }

    fn too_old(&self, t: i64, now_us: i64) -> bool {
        self.window_us
            .is_some_and(|w| t < now_us.saturating_sub(w).saturating_sub(self.slot_us))
    }

    /// Merges a live value at `t_us` into its slot, then drops what left the window before
    /// `now_us`. Returns whether it was kept.
    pub fn push(&mut self, t_us: i64, value: f64, now_us: i64) -> bool {
        if !value.is_finite() || self.too_old(t_us, now_us) {
            return false;
        }
        let slot = self.slot_of(t_us);
        let kept = self.merge_into(slot, &Sample::point(t_us, value));
        self.prune(now_us);
        kept
    }

    /// Merges `sample` into slot `slot` (inserting it in order); false if the series is full
    /// and the slot is older than everything in it.
    fn merge_into(&mut self, slot: i64, sample: &Sample) -> bool {
        // Live data nearly always lands in the last slot or after it.
        match self.samples.back_mut() {
            Some(last) if last.t == slot => {
                last.merge(sample);
                return true;
            }
            Some(last) if last.t < slot => {
                self.reserve_one();
                self.samples.push_back(Sample { t: slot, ..*sample });
                self.bound();
                return true;
            }
            None => {
                self.reserve_one();
                self.samples.push_back(Sample { t: slot, ..*sample });
                return true;
            }
            _ => {}
        }
        let at = self.samples.partition_point(|s| s.t < slot);
        if let Some(s) = self.samples.get_mut(at)
            && s.t == slot
        {
            s.merge(sample);
            self.rewrites += 1;
            return true;
        }
        if self.samples.len() >= self.capacity && at == 0 {
            return false;
        }
        self.rewrites += 1;
        self.reserve_one();
        self.samples.insert(at, Sample { t: slot, ..*sample });
        self.bound();
        true
    }

    /// Room for one more sample: doubling as a `VecDeque` does, but never past the capacity
    /// (plus the one a push holds before [`Self::bound`]), where doubling would reserve up to
    /// twice the memory the series can ever use: a hundred live series of 1 202 slots fill
    /// 6.7 MB, and would reserve 11.5 MB.
    fn reserve_one(&mut self) {
        let len = self.samples.len();
        if len == self.samples.capacity() {
            let want = (len * 2).max(16).min(self.capacity + 1).max(len + 1);
            self.samples.reserve_exact(want - len);
        }
    }

    fn bound(&mut self) {
        while self.samples.len() > self.capacity {
            self.samples.pop_front();
        }
    }

    /// Fills in history buckets of `interval_us` (0 for raw points; any order): a bucket goes
    /// into its slot unless the slot already holds data from the time the bucket covers (seen
    /// live, or filled before). So the seams between history and live data close, and nothing
    /// is counted twice. Returns how many buckets were used.
    pub fn fill(&mut self, buckets: &[Sample], interval_us: i64, now_us: i64) -> usize {
        let mut sorted: Vec<Sample> = buckets
            .iter()
            .filter(|b| b.is_finite() && b.count > 0 && !self.too_old(b.t, now_us))
            .map(|b| Sample {
                first: if b.first == 0 { b.t } else { b.first },
                // A bucket spans its interval, but not into the future (the newest one).
                last: if b.last == 0 {
                    (b.t + (interval_us - 1).max(0)).min(now_us.max(b.t))
                } else {
                    b.last
                },
                ..*b
            })
            .collect();
        sorted.sort_by_key(|b| b.t);
        let mut used = 0;
        for b in &sorted {
            let slot = self.slot_of(b.t);
            let at = self.samples.partition_point(|s| s.t < slot);
            if let Some(s) = self.samples.get(at)
                && s.t == slot
            {
                let (first, last) = if s.first == 0 && s.last == 0 {
                    (s.t, s.t)
                } else {
                    (s.first, s.last)
                };
                if b.last >= first && b.first <= last {
                    continue; // that time is already there
                }
            }
            if self.merge_into(slot, b) {
                used += 1;
            }
        }
        self.prune(now_us);
        used
    }

    /// Drops samples that left the window before `now_us` (sliding series only); returns whether
    /// any went.
    pub fn prune(&mut self, now_us: i64) -> bool {
        let Some(w) = self.window_us else {
            return false;
        };
        let cutoff = now_us.saturating_sub(w).saturating_sub(self.slot_us);
        let before = self.samples.len();
        while self.samples.front().is_some_and(|s| s.t < cutoff) {
            self.samples.pop_front();
        }
        self.samples.len() != before
    }

    /// The longest stretch without data between two samples inside `[from, to]`, µs (the edges
    /// not counted: a device that started late has no hole).
    pub fn max_inner_gap_us(&self, from_us: i64, to_us: i64) -> i64 {
        self.max_inner_gap(from_us, to_us).0
    }

    /// [`Self::max_inner_gap_us`] and where that hole starts, µs.
    pub fn max_inner_gap(&self, from_us: i64, to_us: i64) -> (i64, i64) {
        let mut prev: Option<i64> = None;
        let mut gap = (0, 0);
        for s in self
            .samples
            .iter()
            .filter(|s| s.t >= from_us && s.t <= to_us)
        {
            let (first, last) = if s.first == 0 && s.last == 0 {
                (s.t, s.t)
            } else {
                (s.first, s.last)
            };
            if let Some(p) = prev
                && first - p > gap.0
            {
                gap = (first - p, p);
            }
            prev = Some(last.max(prev.unwrap_or(i64::MIN)));
        }
        gap
    }

    /// The longest stretch without data inside `[from, to]`, µs, counting the edges: how big
    /// the hole is that a backfill should close.
    pub fn max_gap_us(&self, from_us: i64, to_us: i64) -> i64 {
        let mut prev = from_us;
        let mut gap = 0;
        for s in self
            .samples
            .iter()
            .filter(|s| s.t >= from_us && s.t <= to_us)
        {
            gap = gap.max(s.t - prev);
            prev = s.t + self.slot_us;
        }
        gap.max(to_us - prev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn bucket(t: i64, min: f64, mean: f64, max: f64, count: u64) -> Sample {
        Sample {
            t,
            first: 0,
            last: 0,
            min,
            mean,
            max,
            count,
        }
    }

    #[test]
    fn values_in_one_slot_merge_into_min_mean_max() {
        let mut s = Series::sliding(100 * S, 100); // 1 s slots
        for (i, v) in [50.0, 50.3, 49.9, 50.0].into_iter().enumerate() {
            assert!(s.push(10 * S + i as i64 * 200_000, v, 11 * S));
        }
        assert_eq!(s.len(), 1);
        let x = s.last().unwrap();
        assert_eq!((x.t, x.min, x.max, x.count), (10 * S, 49.9, 50.3, 4));
        assert!((x.mean - 50.05).abs() < 1e-12);
    }

    #[test]
    fn never_exceeds_capacity_under_a_flood() {
        let mut s = Series::sliding(300 * S, 1_200);
        for i in 0..100_000i64 {
            s.push(i * 1000, 50.0, i * 1000); // 1 kHz for 100 s
            assert!(s.len() <= s.capacity());
            // Nor does the memory it reserves (a `VecDeque` doubling would reach 2 048).
            assert!(s.samples.capacity() <= s.capacity() + 1);
        }
        // A fixed series with late, out-of-order points stays bounded too.
        let mut f = Series::fixed(0, 1_000 * S, 100);
        for i in (0..10_000i64).rev() {
            f.push(i * 100_000, 1.0, 0);
        }
        assert!(f.len() <= f.capacity());
        assert!(f.samples.capacity() <= f.capacity() + 1);
    }

    #[test]
    fn the_window_slides() {
        let mut s = Series::sliding(10 * S, 10);
        for i in 0..20 {
            s.push(i * S, 50.0, i * S);
        }
        assert!(s.iter().next().unwrap().t >= 8 * S);
        assert!(s.prune(100 * S));
        assert!(s.is_empty());
        assert!(!s.push(80 * S, 50.0, 100 * S), "too old for the window");
        assert!(!s.push(0, f64::NAN, 0));
    }

    #[test]
    fn late_points_go_in_order() {
        let mut s = Series::sliding(100 * S, 100);
        for t in [1, 2, 5, 3, 4, 4] {
            s.push(t * S, t as f64, 10 * S);
        }
        let ts: Vec<i64> = s.iter().map(|p| p.t / S).collect();
        assert_eq!(ts, [1, 2, 3, 4, 5]);
        assert_eq!(s.iter().nth(3).unwrap().count, 2);
    }

    #[test]
    fn history_fills_what_live_data_did_not_see() {
        let mut s = Series::sliding(100 * S, 100); // 1 s slots
        // Live data at 50 s and 51 s.
        s.push(50 * S, 50.5, 60 * S);
        s.push(51 * S + 500_000, 50.6, 60 * S);
        // History with 0.5 s buckets from 48 s to 53 s, some overlapping the live slots.
        let h: Vec<Sample> = (96..106)
            .map(|i| bucket(i * S / 2, 49.0, 49.5, 50.0, 5))
            .collect();
        let used = s.fill(&h, S / 2, 60 * S);
        assert_eq!(
            used, 8,
            "all but the two buckets that cover the live points"
        );
        let got: Vec<(i64, u64)> = s.iter().map(|x| (x.t / S, x.count)).collect();
        assert_eq!(got, [(48, 10), (49, 10), (50, 6), (51, 6), (52, 10)]);
        // Filling again changes nothing.
        assert_eq!(s.fill(&h, S / 2, 60 * S), 0);
        // Coarse buckets (10 s) land in their start's slot, with their extremes.
        let mut c = Series::sliding(3_600 * S, 3_600);
        c.fill(
            &[
                bucket(0, 49.8, 50.0, 50.3, 100),
                bucket(10 * S, 49.9, 50.0, 50.1, 100),
            ],
            10 * S,
            20 * S,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c.iter().map(|x| x.max).fold(0.0, f64::max), 50.3);
        let first = c.iter().next().unwrap();
        assert_eq!(
            (first.first, first.last),
            (0, 10 * S - 1),
            "the bucket's span"
        );
        // Garbage in history is skipped.
        let mut g = Series::sliding(100 * S, 100);
        assert_eq!(
            g.fill(
                &[
                    bucket(S, f64::NAN, 1.0, 1.0, 1),
                    bucket(2 * S, 1.0, 1.0, 1.0, 0)
                ],
                0,
                3 * S
            ),
            0
        );
    }

    #[test]
    fn gaps_are_measured() {
        let mut s = Series::sliding(100 * S, 100);
        for t in [10, 11, 12, 20, 21] {
            s.push(t * S, 50.0, 22 * S);
        }
        assert_eq!(s.max_gap_us(10 * S, 22 * S), 7 * S);
        assert_eq!(s.max_gap_us(0, 22 * S), 10 * S);
        s.fill(
            &(13..20)
                .map(|t| Sample::point(t * S, 50.0))
                .collect::<Vec<_>>(),
            0,
            22 * S,
        );
        assert_eq!(s.max_gap_us(10 * S, 22 * S), 0);
        let mut r = Series::sliding(100 * S, 100_000); // 1 ms slots: one point each
        for t in [10, 11, 12, 20, 21] {
            r.push(t * S, 50.0, 22 * S);
        }
        assert_eq!(r.max_inner_gap_us(0, 22 * S), 8 * S);
    }

    #[test]
    fn ten_minutes_at_10_mhz_merged_into_a_day_s_slots_is_a_grid_time_deviation_of_0_12_s() {
        let now = 1_700_000_000 * S;
        let mut s = Series::sliding(86_400 * S, 2_048);
        for i in 0..=6_000 {
            s.push(now - 600 * S + i * 100_000, 50.010, now);
        }
        let gt = ogm_grid::grid_time_s(s.iter(), 50.0, 3 * s.slot_us());
        assert!((gt - 0.12).abs() < 1e-9, "{gt}");
    }
}
