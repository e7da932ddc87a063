//! [`Sample`]: every reading seen in a span of time (min, mean, max, count), the unit the
//! analysis works on: one raw reading, one slot of the dashboard's series, or one bucket of a
//! history answer.

use serde::Deserialize;

/// One slot (or one history bucket): every value seen in `[t, t + slot)`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Sample {
    /// Start of the slot (or bucket, or the raw point's own time), µs.
    pub t: i64,
    /// Time of the first and the last value merged in, µs; 0 until known (a history bucket
    /// before the dashboard's series fills it in spans its interval).
    #[serde(default)]
    pub first: i64,
    #[serde(default)]
    pub last: i64,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    /// Values merged into this sample.
    pub count: u64,
}

impl Sample {
    /// One raw value.
    pub fn point(t: i64, v: f64) -> Self {
        Self {
            t,
            first: t,
            last: t,
            min: v,
            mean: v,
            max: v,
            count: 1,
        }
    }

    /// Merges `other` into `self`: min of mins, max of maxes, mean weighted by count.
    pub fn merge(&mut self, other: &Sample) {
        let n = self.count.max(1) as f64;
        let m = other.count.max(1) as f64;
        self.mean = (self.mean * n + other.mean * m) / (n + m);
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count = self.count.max(1) + other.count.max(1);
    }

    /// The middle of the time the sample covers, µs.
    pub fn mid(&self) -> i64 {
        if self.first == 0 && self.last == 0 {
            self.t
        } else {
            self.first + (self.last - self.first) / 2
        }
    }

    /// Whether min, mean and max are all finite.
    pub fn is_finite(&self) -> bool {
        self.min.is_finite() && self.mean.is_finite() && self.max.is_finite()
    }
}
