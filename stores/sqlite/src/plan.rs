//! Pure history planning: which source (raw rows, per-second or per-minute rollups) serves
//! which part of a range, which bucket interval to use, and folding rows into buckets.
//! No SQL and no I/O here.
//!
//! A range `[lo, hi)` is split so that the coarsest source serves its aligned middle and finer
//! sources serve the partial rollup cells at the edges, down to raw rows for partial seconds:
//!
//! ```text
//!  lo                                                                    hi
//!  |raw|--- seconds ---|============ minutes ============|-- seconds --|raw|
//! ```
//!
//! So answers are exact (the same buckets a scan of raw rows would give), while the rows read
//! grow with the minutes in the range plus at most ~2 × (59 second rows + one second of raw
//! rows) at the edges. Where a finer source has been pruned at an edge, the coarse cell that
//! holds the edge is taken whole instead (the edge is rounded outward to the cell): its data may
//! then reach up to one cell before `lo`, but it lands in the first bucket, which starts at or
//! before that cell anyway, and it is better than showing nothing.

use ogm_store::{Bucket, bucket_interval_us, bucket_start};

pub(crate) const SECOND_US: i64 = 1_000_000;
pub(crate) const MINUTE_US: i64 = 60 * SECOND_US;
const MILLI_US: i64 = 1_000;

/// Queries are clamped to ±2^60 µs (±36,000 years) so no arithmetic here can overflow.
pub(crate) const TIME_LIMIT_US: i64 = 1 << 60;
/// No interval is wider than this (four times the clamped range).
const MAX_INTERVAL_US: i64 = 1 << 62;

/// A kind of row source, finest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Tier {
    /// Raw rows: one per measurement or status message.
    Raw,
    /// Per-second rollups (measurements only).
    Second,
    /// Per-minute rollups.
    Minute,
}

impl Tier {
    /// The width of one row's cell; raw rows are points (1 µs).
    pub(crate) fn width_us(self) -> i64 {
        match self {
            Tier::Raw => 1,
            Tier::Second => SECOND_US,
            Tier::Minute => MINUTE_US,
        }
    }
}

/// A source a field can be read from, and from when on its rows are complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source {
    pub tier: Tier,
    /// Rows starting before this were (or may have been) pruned; `i64::MIN` when never pruned.
    pub kept_from: i64,
}

/// One part of a range served by one tier: rows whose (cell) start lies in `[lo, hi)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub tier: Tier,
    pub lo: i64,
    pub hi: i64,
}

fn floor_to(t: i64, w: i64) -> i64 {
    bucket_start(t, w)
}

fn ceil_to(t: i64, w: i64) -> i64 {
    let f = floor_to(t, w);
    if f == t { t } else { f + w }
}

/// Clamps a query range into `±TIME_LIMIT_US`.
pub(crate) fn clamp_range(start: i64, stop: i64) -> (i64, i64) {
    (
        start.clamp(-TIME_LIMIT_US, TIME_LIMIT_US),
        stop.clamp(-TIME_LIMIT_US, TIME_LIMIT_US),
    )
}

/// Splits `[lo, hi)` into segments in time order. `sources` is finest first and non-empty;
/// the last (coarsest) source serves the aligned middle. `lo` and `hi` must be within
/// [`TIME_LIMIT_US`].
pub(crate) fn plan(lo: i64, hi: i64, sources: &[Source]) -> Vec<Segment> {
    let mut out = Vec::with_capacity(2 * sources.len() + 1);
    plan_into(lo, hi, sources, &mut out);
    out
}

fn plan_into(lo: i64, hi: i64, sources: &[Source], out: &mut Vec<Segment>) {
    if lo >= hi {
        return;
    }
    let Some((coarse, finer)) = sources.split_last() else {
        return;
    };
    let Some(next) = finer.last() else {
        out.push(Segment {
            tier: coarse.tier,
            lo,
            hi,
        });
        return;
    };
    let w = coarse.tier.width_us();
    // Edges go to the finer sources where those are complete, else the cell is taken whole.
    let a = if lo >= next.kept_from {
        ceil_to(lo, w)
    } else {
        floor_to(lo, w)
    };
    let b = if floor_to(hi, w) >= next.kept_from {
        floor_to(hi, w)
    } else {
        ceil_to(hi, w)
    };
    if a >= b {
        // No whole cell inside: the finer sources serve everything (rounding happens there).
        plan_into(lo, hi, finer, out);
        return;
    }
    plan_into(lo, a.max(lo), finer, out);
    out.push(Segment {
        tier: coarse.tier,
        lo: a,
        hi: b,
    });
    plan_into(b.min(hi), hi, finer, out);
}

/// The finest width whose source is complete from `start` on; the answer's interval must be a
/// multiple of it. `sources` finest first; the coarsest is treated as always complete.
pub(crate) fn finest_complete_width(start: i64, sources: &[Source]) -> i64 {
    sources
        .iter()
        .find(|s| start >= s.kept_from)
        .or(sources.last())
        .map_or(1, |s| s.tier.width_us())
}

/// How many epoch-aligned buckets of `interval` the range `[start, stop)` touches.
pub(crate) fn bucket_count(start: i64, stop: i64, interval: i64) -> i64 {
    if stop <= start || interval <= 0 {
        return 0;
    }
    (bucket_start(stop - 1, interval) - bucket_start(start, interval)) / interval + 1
}

/// The bucket interval for an answer: [`bucket_interval_us`], raised to a multiple of
/// `finest_width` (when finer data has been pruned), and widened further if epoch alignment
/// would still give more than `max_points` buckets (possible with very small `max_points`).
pub(crate) fn choose_interval(
    start: i64,
    stop: i64,
    max_points: u32,
    raw_count: u64,
    finest_width: i64,
) -> i64 {
    let max_points = max_points.max(1);
    let mut interval = bucket_interval_us(start, stop, max_points, raw_count);
    if interval == 0 && finest_width <= 1 {
        return 0;
    }
    if finest_width > 1 {
        interval = ceil_to(interval.max(finest_width), finest_width);
    }
    let step = |i: i64| {
        let nice = if i < SECOND_US {
            MILLI_US
        } else if i < MINUTE_US {
            SECOND_US
        } else {
            MINUTE_US
        };
        nice.max(finest_width)
    };
    // Small nice steps first; then doubling, which passes the whole (clamped) range within
    // a few dozen rounds. A range that straddles the epoch can need two buckets whatever the
    // interval; no stored timestamp is near it.
    for round in 0..256 {
        if bucket_count(start, stop, interval) <= i64::from(max_points) {
            break;
        }
        let wider = if round < 64 {
            interval + 1
        } else {
            interval.saturating_mul(2).min(MAX_INTERVAL_US)
        };
        interval = ceil_to(wider, step(interval));
    }
    interval
}

/// Folds rows (in time order) into buckets of `interval` (0: each row is its own point).
#[derive(Debug)]
pub(crate) struct Folder {
    interval: i64,
    current: Option<Acc>,
    out: Vec<Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Acc {
    t: i64,
    min: f64,
    max: f64,
    sum: f64,
    count: u64,
}

impl Acc {
    fn bucket(self) -> Bucket {
        Bucket {
            t: self.t,
            min: self.min,
            mean: self.sum / self.count as f64,
            max: self.max,
            count: self.count,
        }
    }
}

impl Folder {
    pub(crate) fn new(interval: i64) -> Self {
        Self {
            interval,
            current: None,
            out: Vec::new(),
        }
    }

    /// Adds one raw value at `t`.
    #[cfg(test)]
    pub(crate) fn point(&mut self, t: i64, v: f64) {
        self.cell(t, v, v, v, 1);
    }

    /// Adds a rollup cell starting at `t` (or a raw point with `count` 1). Rows with a count
    /// of 0 or non-finite values are ignored.
    pub(crate) fn cell(&mut self, t: i64, min: f64, max: f64, sum: f64, count: u64) {
        if count == 0 || !(min.is_finite() && max.is_finite() && sum.is_finite()) {
            return;
        }
        let key = if self.interval > 0 {
            bucket_start(t, self.interval)
        } else {
            t
        };
        match &mut self.current {
            Some(acc) if acc.t == key => {
                acc.min = acc.min.min(min);
                acc.max = acc.max.max(max);
                acc.sum += sum;
                acc.count += count;
            }
            current => {
                if let Some(done) = current.take() {
                    self.out.push(done.bucket());
                }
                *current = Some(Acc {
                    t: key,
                    min,
                    max,
                    sum,
                    count,
                });
            }
        }
    }

    /// Buckets so far plus the one being filled.
    pub(crate) fn len(&self) -> usize {
        self.out.len() + usize::from(self.current.is_some())
    }

    pub(crate) fn finish(mut self) -> Vec<Bucket> {
        if let Some(done) = self.current.take() {
            self.out.push(done.bucket());
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: i64 = i64::MIN;

    fn src(tier: Tier, kept_from: i64) -> Source {
        Source { tier, kept_from }
    }

    fn seg(tier: Tier, lo: i64, hi: i64) -> Segment {
        Segment { tier, lo, hi }
    }

    fn measurement_sources() -> [Source; 3] {
        [
            src(Tier::Raw, ALL),
            src(Tier::Second, ALL),
            src(Tier::Minute, ALL),
        ]
    }

    #[test]
    fn aligned_ranges_use_only_the_coarsest_tier() {
        let m = MINUTE_US;
        assert_eq!(
            plan(10 * m, 20 * m, &measurement_sources()),
            [seg(Tier::Minute, 10 * m, 20 * m)]
        );
    }

    #[test]
    fn unaligned_edges_go_down_to_raw_rows() {
        let (s, m) = (SECOND_US, MINUTE_US);
        let lo = 10 * m + 5 * s + 300;
        let hi = 20 * m + 7 * s + 9;
        assert_eq!(
            plan(lo, hi, &measurement_sources()),
            [
                seg(Tier::Raw, lo, 10 * m + 6 * s),
                seg(Tier::Second, 10 * m + 6 * s, 11 * m),
                seg(Tier::Minute, 11 * m, 20 * m),
                seg(Tier::Second, 20 * m, 20 * m + 7 * s),
                seg(Tier::Raw, 20 * m + 7 * s, hi),
            ]
        );
    }

    #[test]
    fn short_ranges_inside_one_cell_use_finer_tiers() {
        let s = SECOND_US;
        assert_eq!(
            plan(5 * s + 1, 5 * s + 9, &measurement_sources()),
            [seg(Tier::Raw, 5 * s + 1, 5 * s + 9)]
        );
        assert_eq!(
            plan(5 * s + 1, 8 * s, &measurement_sources()),
            [
                seg(Tier::Raw, 5 * s + 1, 6 * s),
                seg(Tier::Second, 6 * s, 8 * s)
            ]
        );
    }

    #[test]
    fn pruned_edges_round_outward_to_the_coarser_cell() {
        let (s, m) = (SECOND_US, MINUTE_US);
        // Raw rows pruned before minute 100; seconds are complete.
        let sources = [
            src(Tier::Raw, 100 * m),
            src(Tier::Second, ALL),
            src(Tier::Minute, ALL),
        ];
        let lo = 10 * m + 5 * s + 300;
        let hi = 20 * m + 7 * s + 9;
        assert_eq!(
            plan(lo, hi, &sources),
            [
                seg(Tier::Second, 10 * m + 5 * s, 11 * m),
                seg(Tier::Minute, 11 * m, 20 * m),
                seg(Tier::Second, 20 * m, 20 * m + 8 * s),
            ]
        );
        // Seconds pruned too: the minute cells at both edges are taken whole.
        let sources = [
            src(Tier::Raw, 100 * m),
            src(Tier::Second, 100 * m),
            src(Tier::Minute, ALL),
        ];
        assert_eq!(plan(lo, hi, &sources), [seg(Tier::Minute, 10 * m, 21 * m)]);
        // The interval must then be a multiple of the finest complete source.
        assert_eq!(finest_complete_width(lo, &sources), MINUTE_US);
        assert_eq!(finest_complete_width(100 * m, &sources), 1);
    }

    #[test]
    fn chosen_intervals_never_exceed_max_points() {
        for (start, span, max, finest) in [
            (59 * SECOND_US - 1, 2, 1, 1),
            (MINUTE_US - 1, 2, 1, MINUTE_US),
            (1_700_000_000_000_000, 3_600_000_000, 1000, 1),
            (1_700_000_000_000_123, 3_600_000_000, 1000, SECOND_US),
            (1_700_000_000_000_123, 7 * 86_400_000_000, 1000, MINUTE_US),
            (1_700_000_000_000_123, 10, 2, 1),
            (
                TIME_LIMIT_US - 5 * MINUTE_US - 1,
                5 * MINUTE_US,
                1,
                SECOND_US,
            ),
            (-3, 2, 1, 1),
        ] {
            let i = choose_interval(start, start + span, max, u64::MAX, finest);
            assert!(i > 0 && i % finest == 0, "{i}");
            assert!(
                bucket_count(start, start + span, i) <= i64::from(max),
                "{start} {span} {max}: {i}"
            );
        }
        assert_eq!(choose_interval(0, 1000, 10, 10, 1), 0, "raw when it fits");
        assert_eq!(
            choose_interval(0, 1000, 10, 10, SECOND_US),
            SECOND_US,
            "never raw where raw rows are pruned"
        );
    }

    #[test]
    fn folder_merges_cells_into_epoch_aligned_buckets() {
        let mut f = Folder::new(10);
        f.point(3, 1.0);
        f.cell(5, -1.0, 4.0, 6.0, 3);
        f.point(12, 7.0);
        f.cell(25, 0.0, 0.0, 0.0, 0);
        f.point(30, f64::NAN);
        assert_eq!(f.len(), 2);
        let b = f.finish();
        assert_eq!(
            b,
            [
                Bucket {
                    t: 0,
                    min: -1.0,
                    mean: 7.0 / 4.0,
                    max: 4.0,
                    count: 4
                },
                Bucket {
                    t: 10,
                    min: 7.0,
                    mean: 7.0,
                    max: 7.0,
                    count: 1
                }
            ]
        );
    }
}
