//! [`LogBuffer`]: the device logs the page holds, live from MQTT and older from `/api/logs`.
//! Pure and bounded.
//!
//! Entries are kept in time order, at most [`LogBuffer::capacity`] of them (the oldest go
//! first); an entry seen both live and in history is kept once (same device, time and message).
//!
//! What is shown is never a list with holes in it. The buffer holds entries of several filters
//! (live ones of every device and level, pages of history fetched under whichever filter was on
//! screen), so for the filter on screen it knows how far back it is complete
//! ([`LogBuffer::complete_from`]): from the time the live link came up, extended back by each
//! page of history fetched under that filter, and cut by what was evicted. Only entries from
//! there on are shown ([`LogBuffer::shown`]), and "Load older" continues from there.

use std::collections::VecDeque;

use ogm_protocol::{DeviceId, LogEntry, LogLevel};

use crate::wire::LogRow;

/// Most log entries the page holds, and shows (the text of [`LogBuffer::end_note`] says so).
pub const CAPACITY: usize = 2_000;
/// Log entries per page of `/api/logs`.
pub const PAGE: usize = 200;

/// Where an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Live,
    History,
}

/// One log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// µs since the epoch.
    pub t: i64,
    pub device: DeviceId,
    pub level: LogLevel,
    pub module: String,
    pub message: String,
    pub origin: Origin,
}

impl LogLine {
    pub fn live(device: DeviceId, e: LogEntry) -> Self {
        Self {
            t: e.timestamp,
            device,
            level: e.level,
            module: e.module,
            message: e.message,
            origin: Origin::Live,
        }
    }

    pub fn history(r: LogRow) -> Self {
        Self {
            t: r.t,
            device: r.device_id,
            level: r.level,
            module: r.module,
            message: r.message,
            origin: Origin::History,
        }
    }

    fn same(&self, other: &LogLine) -> bool {
        self.t == other.t && self.device == other.device && self.message == other.message
    }
}

/// Which entries to show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    /// The least severe level shown.
    pub level: Option<LogLevel>,
    pub device: Option<DeviceId>,
}

impl LogFilter {
    pub fn accepts(&self, l: &LogLine) -> bool {
        self.level.is_none_or(|min| l.level >= min)
            && self.device.as_ref().is_none_or(|d| *d == l.device)
    }
}

/// A bounded, time-ordered, de-duplicated log.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    lines: VecDeque<LogLine>,
    capacity: usize,
    /// For the filter on screen: every entry at or after this time (µs) is held. `i64::MAX`:
    /// nothing known yet; `i64::MIN`: complete as far back as the server answers.
    complete_from: i64,
    /// The newest time of an entry evicted (or refused) for lack of room.
    evicted_through: i64,
    /// Bumped on every change.
    pub version: u64,
}

impl LogBuffer {
    pub fn new(capacity: usize) -> Self {
        Self {
            lines: VecDeque::new(),
            capacity: capacity.max(1),
            complete_from: i64::MAX,
            evicted_through: i64::MIN,
            version: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Adds an entry in time order; false if it was there already or too old to keep.
    pub fn insert(&mut self, line: LogLine) -> bool {
        let at = self.lines.partition_point(|l| l.t < line.t);
        if self
            .lines
            .range(at..)
            .take_while(|l| l.t == line.t)
            .any(|l| l.same(&line))
        {
            return false;
        }
        if self.lines.len() >= self.capacity && at == 0 {
            self.evicted_through = self.evicted_through.max(line.t);
            return false;
        }
        self.lines.insert(at, line);
        while self.lines.len() > self.capacity {
            if let Some(old) = self.lines.pop_front() {
                self.evicted_through = self.evicted_through.max(old.t);
            }
        }
        self.version += 1;
        true
    }

    /// The oldest entry's time.
    pub fn oldest(&self) -> Option<i64> {
        self.lines.front().map(|l| l.t)
    }

    /// Up to `limit` entries that pass `filter`, newest first, whether complete or not.
    #[cfg(test)]
    pub fn newest(&self, filter: &LogFilter, limit: usize) -> Vec<LogLine> {
        self.lines
            .iter()
            .rev()
            .filter(|l| filter.accepts(l))
            .take(limit)
            .cloned()
            .collect()
    }

    /// A new filter is on screen (or the live link came back after a hole): it is complete
    /// from `live_since` (when the link came up, µs; None while it is down) until history
    /// says more.
    pub fn reset_view(&mut self, live_since: Option<i64>) {
        self.complete_from = live_since.unwrap_or(i64::MAX);
        self.version += 1;
    }

    /// A page of history fetched for the filter on screen: the newest `limit` entries before
    /// `stop` (µs, exclusive; None: up to now). Fewer than `limit` means there is nothing
    /// older. `hole_from`: for a newest page fetched because the live link came back, when the
    /// hole began (the link went down, or the last newest page was fetched while it was down).
    ///
    /// A page joins what is complete if it reaches it: an older page whose `stop` is where
    /// completeness starts, a newest page that reaches back over the hole. A newest page that
    /// does not (more entries in the hole than a page holds) is all that is complete then; an
    /// older page that does not (a late answer) adds its entries but no completeness.
    pub fn history_page(
        &mut self,
        rows: Vec<LogLine>,
        stop: Option<i64>,
        limit: usize,
        hole_from: Option<i64>,
    ) {
        let n = rows.len();
        let oldest = rows.iter().map(|l| l.t).min();
        for r in rows {
            self.insert(r);
        }
        // The limit may have cut between entries of the oldest time: complete only after it
        // (the next page asks up to and including it).
        let from = match oldest {
            Some(t) if n >= limit => t.saturating_add(1),
            _ => i64::MIN,
        };
        match (stop, hole_from) {
            (Some(s), _) if s >= self.complete_from() => {
                self.complete_from = self.complete_from.min(from);
            }
            (Some(_), _) => {}
            (None, Some(h)) if from > h => self.complete_from = from,
            (None, _) => self.complete_from = self.complete_from.min(from),
        }
        self.version += 1;
    }

    /// For the filter on screen, every entry at or after this time (µs) is held.
    pub fn complete_from(&self) -> i64 {
        if self.evicted_through == i64::MIN {
            self.complete_from
        } else {
            self.complete_from
                .max(self.evicted_through.saturating_add(1))
        }
    }

    /// Whether the filter on screen is complete as far back as the server answers.
    pub fn exhausted(&self) -> bool {
        self.complete_from() == i64::MIN
    }

    /// Whether there is no room for older entries (an older one would be refused).
    pub fn full(&self) -> bool {
        self.lines.len() >= self.capacity
    }

    /// Why "Load older" has nothing more to give, if it has not: the text the page shows.
    pub fn end_note(&self) -> Option<&'static str> {
        if self.exhausted() {
            Some("nothing older in the last 30 days")
        } else if self.full() {
            Some("the page holds 2 000 entries at most: narrow the filter to go further back")
        } else {
            None
        }
    }

    /// Where "Load older" asks up to (exclusive): the start of what is complete; None when
    /// nothing is complete yet (ask for the newest page).
    pub fn older_stop(&self) -> Option<i64> {
        let from = self.complete_from();
        (from != i64::MAX).then_some(from)
    }

    /// What to show for `filter` (the one on screen): entries that pass it from where the
    /// buffer is complete on, newest first, at most `limit`.
    pub fn shown(&self, filter: &LogFilter, limit: usize) -> Vec<LogLine> {
        let from = self.complete_from();
        self.lines
            .iter()
            .rev()
            .take_while(|l| l.t >= from)
            .filter(|l| filter.accepts(l))
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t: i64, dev: &str, level: LogLevel, msg: &str, origin: Origin) -> LogLine {
        LogLine {
            t,
            device: DeviceId::new(dev).unwrap(),
            level,
            module: "m".into(),
            message: msg.into(),
            origin,
        }
    }

    #[test]
    fn keeps_time_order_and_drops_duplicates() {
        let mut b = LogBuffer::new(10);
        assert!(b.insert(line(3, "a", LogLevel::Info, "x", Origin::Live)));
        assert!(b.insert(line(1, "a", LogLevel::Warn, "y", Origin::History)));
        assert!(!b.insert(line(3, "a", LogLevel::Info, "x", Origin::History)));
        assert!(b.insert(line(3, "b", LogLevel::Info, "x", Origin::History)));
        let all = b.newest(&LogFilter::default(), 10);
        let ts: Vec<i64> = all.iter().map(|l| l.t).collect();
        assert_eq!(ts, [3, 3, 1]);
        assert_eq!(b.oldest(), Some(1));
        assert_eq!(b.version, 3);
    }

    #[test]
    fn is_bounded_and_keeps_the_newest() {
        let mut b = LogBuffer::new(100);
        for t in 0..1_000 {
            b.insert(line(t, "a", LogLevel::Info, "x", Origin::Live));
            assert!(b.len() <= 100);
        }
        assert_eq!(b.oldest(), Some(900));
        assert!(!b.insert(line(5, "a", LogLevel::Info, "old", Origin::History)));
    }

    #[test]
    fn shows_only_what_is_complete_for_the_filter_on_screen() {
        let warn = LogFilter {
            level: Some(LogLevel::Warn),
            device: None,
        };
        let mut b = LogBuffer::new(100);
        // Live since t=100: nothing shown before history answers for older times.
        b.reset_view(Some(100));
        b.insert(line(
            90,
            "a",
            LogLevel::Info,
            "before the link",
            Origin::Live,
        ));
        b.insert(line(120, "a", LogLevel::Info, "live", Origin::Live));
        assert_eq!(b.shown(&LogFilter::default(), 10).len(), 1);
        // Under WARN, a page of 3 (the limit): complete from just after its oldest entry.
        b.reset_view(Some(100));
        let page = vec![
            line(50, "a", LogLevel::Warn, "w50", Origin::History),
            line(40, "a", LogLevel::Error, "e40", Origin::History),
            line(30, "a", LogLevel::Warn, "w30", Origin::History),
        ];
        b.history_page(page, None, 3, None);
        assert_eq!(b.complete_from(), 31);
        assert_eq!(b.older_stop(), Some(31));
        let shown: Vec<i64> = b.shown(&warn, 10).iter().map(|l| l.t).collect();
        assert_eq!(shown, [50, 40]);
        // Widened to every level: the WARN pages say nothing about INFO, so the view starts
        // again from the live link; history fills it back.
        b.reset_view(Some(100));
        let all: Vec<i64> = b
            .shown(&LogFilter::default(), 10)
            .iter()
            .map(|l| l.t)
            .collect();
        assert_eq!(all, [120], "no INFO hole between 120 and 30 is shown");
        b.history_page(
            vec![
                line(95, "a", LogLevel::Info, "i95", Origin::History),
                line(90, "a", LogLevel::Info, "before the link", Origin::History),
            ],
            None,
            3,
            None,
        );
        assert!(b.exhausted(), "fewer than the limit: nothing older");
        let all: Vec<i64> = b
            .shown(&LogFilter::default(), 10)
            .iter()
            .map(|l| l.t)
            .collect();
        assert_eq!(all, [120, 95, 90, 50, 40, 30]);
    }

    #[test]
    fn a_late_page_adds_no_completeness_and_eviction_cuts_it() {
        let mut b = LogBuffer::new(3);
        b.reset_view(Some(100));
        b.history_page(
            vec![
                line(99, "a", LogLevel::Info, "1", Origin::History),
                line(98, "a", LogLevel::Info, "2", Origin::History),
            ],
            None,
            2,
            None,
        );
        assert_eq!(b.complete_from(), 99);
        // An answer for a request that stopped at 50 does not reach 99: a hole between.
        b.history_page(
            vec![line(10, "a", LogLevel::Info, "x", Origin::History)],
            Some(50),
            2,
            None,
        );
        assert_eq!(b.complete_from(), 99);
        // Full: the oldest goes, and completeness starts after it.
        b.insert(line(101, "a", LogLevel::Info, "live", Origin::Live));
        b.insert(line(102, "a", LogLevel::Info, "live", Origin::Live));
        assert!(b.full());
        assert!(b.complete_from() > 10);
        assert!(
            b.shown(&LogFilter::default(), 10)
                .iter()
                .all(|l| l.t >= b.complete_from())
        );
    }

    #[test]
    fn a_newest_page_after_an_outage_joins_only_if_it_reaches_over_the_hole() {
        let all = LogFilter::default();
        let mut b = LogBuffer::new(100);
        b.reset_view(Some(100));
        b.insert(line(
            110,
            "a",
            LogLevel::Info,
            "before the outage",
            Origin::Live,
        ));
        // Down at 120, back at 200; the newest page reaches back to 115: the hole is covered.
        b.insert(line(205, "a", LogLevel::Info, "after", Origin::Live));
        let page = vec![
            line(205, "a", LogLevel::Info, "after", Origin::History),
            line(150, "a", LogLevel::Info, "in the hole", Origin::History),
            line(115, "a", LogLevel::Info, "before", Origin::History),
        ];
        b.history_page(page, None, 3, Some(120));
        assert_eq!(b.complete_from(), 100);
        let ts: Vec<i64> = b.shown(&all, 10).iter().map(|l| l.t).collect();
        assert_eq!(ts, [205, 150, 115, 110]);
        // Down again at 300, back at 400; the newest page holds only the last of a busy hole:
        // only it is shown, nothing across the hole.
        b.insert(line(410, "a", LogLevel::Info, "live", Origin::Live));
        let page = vec![
            line(410, "a", LogLevel::Info, "live", Origin::History),
            line(
                390,
                "a",
                LogLevel::Info,
                "late in the hole",
                Origin::History,
            ),
            line(
                380,
                "a",
                LogLevel::Info,
                "late in the hole",
                Origin::History,
            ),
        ];
        b.history_page(page, None, 3, Some(300));
        assert_eq!(b.complete_from(), 381);
        let ts: Vec<i64> = b.shown(&all, 10).iter().map(|l| l.t).collect();
        assert_eq!(ts, [410, 390]);
    }

    #[test]
    fn filters_by_level_and_device() {
        let mut b = LogBuffer::new(10);
        b.insert(line(1, "a", LogLevel::Info, "1", Origin::Live));
        b.insert(line(2, "a", LogLevel::Error, "2", Origin::Live));
        b.insert(line(3, "b", LogLevel::Warn, "3", Origin::Live));
        let f = LogFilter {
            level: Some(LogLevel::Warn),
            device: None,
        };
        assert_eq!(b.newest(&f, 10).len(), 2);
        let f = LogFilter {
            level: Some(LogLevel::Warn),
            device: Some(DeviceId::new("a").unwrap()),
        };
        assert_eq!(b.newest(&f, 10)[0].message, "2");
        assert_eq!(b.newest(&LogFilter::default(), 1)[0].message, "3");
    }

    #[test]
    fn the_end_note_says_why_nothing_older_comes() {
        let mut b = LogBuffer::new(2);
        b.reset_view(Some(100));
        assert_eq!(b.end_note(), None);
        b.insert(line(10, "a", LogLevel::Info, "one", Origin::Live));
        b.insert(line(20, "a", LogLevel::Info, "two", Origin::Live));
        assert!(
            b.end_note()
                .is_some_and(|n| n.contains("narrow the filter"))
        );
        let mut b = LogBuffer::new(CAPACITY);
        b.reset_view(None);
        b.history_page(
            vec![line(5, "a", LogLevel::Info, "x", Origin::History)],
            None,
            PAGE,
            None,
        );
        assert_eq!(b.end_note(), Some("nothing older in the last 30 days"));
        // The text names the capacity as the page writes numbers.
        let full = LogBuffer {
            capacity: 0,
            ..LogBuffer::new(0)
        };
        let said = format!("{} {:03}", CAPACITY / 1000, CAPACITY % 1000);
        assert!(full.end_note().is_some_and(|n| n.contains(&said)), "{said}");
    }
}
