//! [`LogBuffer`]: the device logs the page holds, live from MQTT and older from `/api/logs`.
//! Pure and bounded.
//!
//! Entries are kept in time order, at most [`LogBuffer::capacity`] of them (the oldest go
//! first); an entry seen both live and in history is kept once (same device, time and message).

use std::collections::VecDeque;

use ogm_protocol::{DeviceId, LogEntry, LogLevel};

use crate::wire::LogRow;

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
    /// Bumped on every change.
    pub version: u64,
}

impl LogBuffer {
    pub fn new(capacity: usize) -> Self {
        Self {
            lines: VecDeque::new(),
            capacity: capacity.max(1),
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
            return false;
        }
        self.lines.insert(at, line);
        while self.lines.len() > self.capacity {
            self.lines.pop_front();
        }
        self.version += 1;
        true
    }

    /// The oldest entry's time.
    pub fn oldest(&self) -> Option<i64> {
        self.lines.front().map(|l| l.t)
    }

    /// Up to `limit` entries that pass `filter`, newest first.
    pub fn newest(&self, filter: &LogFilter, limit: usize) -> Vec<LogLine> {
        self.lines
            .iter()
            .rev()
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
}
