//! Figures over a range of samples: [`grid_time_s`], [`Histogram`], [`Quality`], and
//! [`spread_mhz`] across devices.

use alloc::vec;
use alloc::vec::Vec;

use crate::bands::Bands;
use crate::sample::Sample;

/// Grid time deviation over the samples, s: the integral of (f − nominal)/nominal dt. Inside a
/// sample, its mean over the time it covers; between samples, the trapezoid; nothing across
/// gaps longer than `max_gap_us`.
pub fn grid_time_s<'a>(
    samples: impl Iterator<Item = &'a Sample>,
    nominal_hz: f64,
    max_gap_us: i64,
) -> f64 {
    let dev = |f: f64| (f - nominal_hz) / nominal_hz;
    let mut total = 0.0;
    let mut prev: Option<(i64, f64)> = None;
    for s in samples.filter(|s| s.mean.is_finite()) {
        let (first, last) = if s.first == 0 && s.last == 0 {
            (s.t, s.t)
        } else {
            (s.first, s.last)
        };
        total += dev(s.mean) * (last - first).max(0) as f64 / 1e6;
        if let Some((t0, f0)) = prev {
            let dt = first - t0;
            if dt > 0 && dt <= max_gap_us {
                total += dev((f0 + s.mean) / 2.0) * dt as f64 / 1e6;
            }
        }
        prev = Some((last, s.mean));
    }
    total
}

/// The distribution of the deviation from nominal, weighted by how many readings each sample
/// holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Lower edge of the first bin, mHz.
    pub lo_mhz: f64,
    pub bin_mhz: f64,
    pub bins: Vec<u64>,
    /// Readings below the first and above the last bin.
    pub under: u64,
    pub over: u64,
    pub total: u64,
}

impl Histogram {
    /// Bins of `bin_mhz` from `-half_mhz` to `+half_mhz`.
    pub fn of<'a>(
        samples: impl Iterator<Item = &'a Sample>,
        nominal_hz: f64,
        half_mhz: f64,
        bin_mhz: f64,
    ) -> Self {
        let n = (libm::round(2.0 * half_mhz / bin_mhz) as usize).max(1);
        let mut h = Self {
            lo_mhz: -half_mhz,
            bin_mhz,
            bins: vec![0; n],
            under: 0,
            over: 0,
            total: 0,
        };
        for s in samples.filter(|s| s.mean.is_finite()) {
            // To the µHz, so that 50.010 Hz (50.00999… in binary) lands in the bin its digits say.
            let d = libm::round((s.mean - nominal_hz) * 1e6) / 1e3;
            let w = s.count.max(1);
            h.total += w;
            let i = libm::floor((d - h.lo_mhz) / bin_mhz);
            if i < 0.0 {
                h.under += w;
            } else if i as usize >= n {
                h.over += w;
            } else {
                h.bins[i as usize] += w;
            }
        }
        h
    }

    /// `(lower edge mHz, share 0..1)` per bin.
    pub fn shares(&self) -> Vec<(f64, f64)> {
        let total = self.total.max(1) as f64;
        self.bins
            .iter()
            .enumerate()
            .map(|(i, &n)| (self.lo_mhz + i as f64 * self.bin_mhz, n as f64 / total))
            .collect()
    }
}

/// Quality indicators over a range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Share of readings outside ± the normal band (50 mHz), 0..1.
    pub outside_normal: f64,
    /// Standard deviation of the deviation, mHz.
    pub std_mhz: f64,
    /// Mean deviation, mHz.
    pub mean_mhz: f64,
    /// Lowest and highest frequency, Hz.
    pub min_hz: f64,
    pub max_hz: f64,
}

impl Quality {
    pub fn of<'a>(samples: impl Iterator<Item = &'a Sample>, bands: &Bands) -> Option<Self> {
        let (mut n, mut sum, mut sq, mut outside) = (0.0, 0.0, 0.0, 0.0);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for s in samples.filter(|s| s.mean.is_finite()) {
            let w = s.count.max(1) as f64;
            let d = bands.deviation_mhz(s.mean);
            n += w;
            sum += d * w;
            sq += d * d * w;
            if d.abs() > bands.normal_mhz {
                outside += w;
            }
            lo = lo.min(s.min);
            hi = hi.max(s.max);
        }
        if n == 0.0 {
            return None;
        }
        let mean = sum / n;
        Some(Self {
            outside_normal: outside / n,
            std_mhz: libm::sqrt((sq / n - mean * mean).max(0.0)),
            mean_mhz: mean,
            min_hz: lo,
            max_hz: hi,
        })
    }
}

/// Spread between devices: (max − min of the readings, mHz; how many), when at least two.
pub fn spread_mhz(readings: impl Iterator<Item = f64>) -> Option<(f64, usize)> {
    let (lo, hi, n) = readings
        .filter(|f| f.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY, 0), |(lo, hi, n), f| {
            (lo.min(f), hi.max(f), n + 1)
        });
    (n >= 2).then_some(((hi - lo) * 1000.0, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn ten_mhz_for_ten_minutes_is_a_grid_time_deviation_of_0_12_s() {
        let raw: Vec<Sample> = (0..=600).map(|i| Sample::point(i * S, 50.010)).collect();
        let gt = grid_time_s(raw.iter(), 50.0, 10 * S);
        assert!((gt - 0.12).abs() < 1e-9, "{gt}");
        // The dashboard's series merges them into slots: frontend/src/series.rs checks those.
        // Gaps are not integrated; below nominal is negative; 60 Hz grids too.
        let gappy = [Sample::point(0, 50.01), Sample::point(60 * S, 50.01)];
        assert_eq!(grid_time_s(gappy.iter(), 50.0, 10 * S), 0.0);
        let low: Vec<Sample> = (0..=100).map(|i| Sample::point(i * S, 59.94)).collect();
        assert!((grid_time_s(low.iter(), 60.0, 2 * S) + 0.1).abs() < 1e-9);
    }

    #[test]
    fn histogram_and_quality() {
        let samples = [
            Sample::point(0, 50.0),
            Sample {
                count: 3,
                ..Sample::point(1, 50.06)
            },
            Sample::point(2, 49.5),
            Sample::point(3, 50.5),
        ];
        let h = Histogram::of(samples.iter(), 50.0, 200.0, 10.0);
        assert_eq!(h.bins.len(), 40);
        assert_eq!((h.total, h.under, h.over), (6, 1, 1));
        assert_eq!(h.bins[20], 1);
        assert_eq!(h.bins[26], 3);
        let shares = h.shares();
        assert_eq!(shares[26], (60.0, 0.5));
        let edge = [Sample::point(0, 50.010)];
        assert_eq!(
            Histogram::of(edge.iter(), 50.0, 200.0, 10.0).bins[21],
            1,
            "[10, 20) mHz"
        );
        let b = Bands::continental_europe(50.0);
        let q = Quality::of(samples.iter(), &b).unwrap();
        assert!((q.outside_normal - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!((q.min_hz, q.max_hz), (49.5, 50.5));
        assert!(Quality::of(core::iter::empty(), &b).is_none());
    }

    #[test]
    fn spread_between_devices() {
        assert_eq!(spread_mhz([50.0].into_iter()), None);
        let (s, n) = spread_mhz([50.001, 49.998, 50.0, f64::NAN].into_iter()).unwrap();
        assert!((s - 3.0).abs() < 1e-6);
        assert_eq!(n, 3);
    }
}
