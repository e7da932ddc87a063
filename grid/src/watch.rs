//! The server's watch over every device's readings: events found in each device's own time
//! order, whatever order the readings arrive in, so that late and redelivered readings give the
//! same events as a clean live stream.
//!
//! Readings wait [`HOLD_US`] of the device's time (or as long in quiet) for stragglers, then go
//! through the device's RoCoF estimator and [`EventDetector`] in time order. A reading at or
//! before what was already analysed (a board's offline buffer, a QoS 1 redelivery, the first
//! reading after a restart) asks for a [`Task::Rewind`]: the owner reads the device's stored
//! readings back from a time when no event of it was open, and [`Watch::rewound`] analyses them
//! afresh; the events it returns replace the stored ones from that time on. Stored events are
//! keyed by (device, start), so saving one twice is harmless.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use ogm_protocol::DeviceId;

use crate::events::{DeviceEvent, EventDetector, EventRules, MAX_DEVICES};
use crate::rocof::RocofEstimator;

/// How long (of a device's own time, or of quiet) readings wait for stragglers, µs.
pub const HOLD_US: i64 = 5_000_000;

/// What the watch asks of its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// Store this device event (opened, grown or closed), keyed by (device, start).
    Save(DeviceEvent),
    /// Readings of `device` came in at or before what was analysed, the earliest at `late_us`:
    /// read its stored readings up to `upto_us` and hand them to [`Watch::rewound`].
    Rewind {
        device: DeviceId,
        late_us: i64,
        upto_us: i64,
    },
}

#[derive(Debug, Clone)]
struct Stream {
    rocof: RocofEstimator,
    detector: EventDetector,
    /// Readings not yet analysed, by time (a redelivered one lands on itself).
    pending: BTreeMap<i64, f64>,
    /// The last reading analysed; None until the first rewind (after a start) is done.
    cursor: Option<i64>,
    /// The newest reading seen.
    newest: i64,
    /// Quiet since the last reading, µs of the owner's clock.
    quiet_us: i64,
    /// The earliest reading at or before the cursor since the last rewind.
    late: Option<i64>,
    /// A rewind is out: nothing is analysed until it comes back.
    rewinding: bool,
    /// The open event as last saved.
    saved: Option<DeviceEvent>,
}

impl Stream {
    /// A device first heard of (or rechecked) at `t_us`: analysed from the store first.
    fn new(device: &DeviceId, rocof_window_us: i64, t_us: i64) -> Self {
        Self {
            rocof: RocofEstimator::new(rocof_window_us),
            detector: EventDetector::new(device.clone()),
            pending: BTreeMap::new(),
            cursor: None,
            newest: t_us,
            quiet_us: 0,
            late: Some(t_us),
            rewinding: false,
            saved: None,
        }
    }
}

/// Every device's stream and the rules that make an event.
#[derive(Debug, Clone)]
pub struct Watch {
    rules: EventRules,
    rocof_window_us: i64,
    streams: BTreeMap<DeviceId, Stream>,
}

impl Watch {
    pub fn new(rules: EventRules, rocof_window_us: i64) -> Self {
        Self {
            rules,
            rocof_window_us,
            streams: BTreeMap::new(),
        }
    }

    pub fn rules(&self) -> &EventRules {
        &self.rules
    }

    /// How far before a rewind's start its readings must reach, for the RoCoF, µs.
    pub fn rocof_window_us(&self) -> i64 {
        self.rocof_window_us
    }

    /// Devices followed.
    pub fn devices(&self) -> usize {
        self.streams.len()
    }

    /// Readings waiting for analysis, all devices.
    pub fn pending(&self) -> usize {
        self.streams.values().map(|s| s.pending.len()).sum()
    }

    /// A stored reading of `device`. The first of a device asks for a rewind (what came before
    /// it is in the store, and an event may have been open when the last run stopped).
    pub fn push(&mut self, device: &DeviceId, t_us: i64, f_hz: f64) {
        if !f_hz.is_finite() {
            return;
        }
        if !self.streams.contains_key(device) {
            if self.streams.len() >= MAX_DEVICES {
                return;
            }
            let stream = Stream::new(device, self.rocof_window_us, t_us);
            self.streams.insert(device.clone(), stream);
        }
        let Some(s) = self.streams.get_mut(device) else {
            return;
        };
        s.quiet_us = 0;
        s.newest = s.newest.max(t_us);
        match s.cursor {
            Some(c) if t_us <= c => s.late = Some(s.late.map_or(t_us, |l| l.min(t_us))),
            _ => {
                s.pending.insert(t_us, f_hz);
            }
        }
    }

    /// Time passes (`elapsed_us` of the owner's clock): analyses what has waited long enough,
    /// closes events of devices silent for longer than the rules' gap, and says what to do.
    pub fn tick(&mut self, elapsed_us: i64) -> Vec<Task> {
        let rules = self.rules;
        let mut tasks = Vec::new();
        for (device, s) in &mut self.streams {
            if s.rewinding {
                continue;
            }
            s.quiet_us = s.quiet_us.saturating_add(elapsed_us);
            if let Some(late_us) = s.late.take() {
                let upto_us = match s.cursor {
                    Some(c) => c,
                    None => s.pending.keys().next().map_or(late_us, |t| t - 1),
                };
                s.rewinding = true;
                tasks.push(Task::Rewind {
                    device: device.clone(),
                    late_us,
                    upto_us,
                });
                continue;
            }
            let watermark = if s.quiet_us >= HOLD_US {
                i64::MAX
            } else {
                s.newest - HOLD_US
            };
            while let Some(entry) = s.pending.first_entry() {
                if *entry.key() > watermark {
                    break;
                }
                let (t, f) = entry.remove_entry();
                let rocof = s.rocof.push(t, f);
                if let Some(closed) = s.detector.push(t, f, rocof, &rules) {
                    tasks.push(Task::Save(closed));
                }
                s.cursor = Some(t);
            }
            if s.quiet_us > rules.max_gap_us
                && let Some(open) = s.detector.open_event()
            {
                let now = open.last_us.saturating_add(rules.max_gap_us + 1);
                if let Some(closed) = s.detector.flush(now, &rules) {
                    tasks.push(Task::Save(closed));
                }
            }
            let open = s.detector.open_event();
            if open.is_some() && open != s.saved.as_ref() {
                tasks.push(Task::Save(open.cloned().expect("checked")));
            }
            s.saved = open.cloned();
        }
        tasks
    }

    /// A rewind's readings: every stored reading of `device` from the RoCoF window before
    /// `from_us` to `upto_us`, in time order, where `from_us` is a time at which no event of the
    /// device was open. Returns the device's events from `from_us` on (the last maybe open),
    /// which replace the stored ones from `from_us` on.
    pub fn rewound(
        &mut self,
        device: &DeviceId,
        from_us: i64,
        upto_us: i64,
        readings: impl IntoIterator<Item = (i64, f64)>,
    ) -> Vec<DeviceEvent> {
        let rules = self.rules;
        let mut rocof = RocofEstimator::new(self.rocof_window_us);
        let mut detector = EventDetector::new(device.clone());
        let mut events = Vec::new();
        let mut last = None;
        for (t, f) in readings {
            if t > upto_us || last.is_some_and(|l| t <= l) || !f.is_finite() {
                continue;
            }
            last = Some(t);
            let r = rocof.push(t, f);
            if t < from_us {
                continue;
            }
            if let Some(closed) = detector.push(t, f, r, &rules) {
                events.push(closed);
            }
        }
        if let Some(open) = detector.open_event() {
            events.push(open.clone());
        }
        if let Some(s) = self.streams.get_mut(device) {
            s.saved = detector.open_event().cloned();
            s.rocof = rocof;
            s.detector = detector;
            s.cursor = Some(s.cursor.map_or(upto_us, |c| c.max(upto_us)));
            s.pending.retain(|t, _| *t > upto_us);
            s.rewinding = false;
        }
        events
    }

    /// Whether the watch itself follows the stored event of `device` that started at
    /// `start_us`: it has it open, or is about to analyse the device again. Otherwise an event
    /// stored as open was left by a run that ended, and its device has been silent since:
    /// [`Watch::recheck`] it.
    pub fn follows(&self, device: &DeviceId, start_us: i64) -> bool {
        self.streams.get(device).is_some_and(|s| {
            s.rewinding
                || s.late.is_some()
                || s.detector
                    .open_event()
                    .is_some_and(|e| e.start_us == start_us)
        })
    }

    /// Analyse `device` again from its stored readings, from before `start_us` up to `now_us`
    /// (a stored event open since `start_us` that no run follows). The event comes back as the
    /// readings make it, and is closed after the rules' gap of silence like any other.
    pub fn recheck(&mut self, device: &DeviceId, start_us: i64, now_us: i64) {
        if let Some(s) = self.streams.get_mut(device) {
            s.late = Some(s.late.map_or(start_us, |l| l.min(start_us)));
            return;
        }
        if self.streams.len() >= MAX_DEVICES {
            return;
        }
        let mut stream = Stream::new(device, self.rocof_window_us, start_us);
        stream.cursor = Some(now_us);
        self.streams.insert(device.clone(), stream);
    }

    /// The rewind could not be done (the store failed): it is asked for again at the next tick.
    pub fn rewind_failed(&mut self, device: &DeviceId, late_us: i64) {
        if let Some(s) = self.streams.get_mut(device) {
            s.rewinding = false;
            s.late = Some(s.late.map_or(late_us, |l| l.min(late_us)));
        }
    }
}

/// Where a rewind must start so that no event of the device is open there: `late_us` less the
/// RoCoF window and the rules' gap, or earlier, at the start of a stored event still open then
/// (`stored`: the device's stored events as (start, end), end None while open).
pub fn rewind_start(
    late_us: i64,
    rules: &EventRules,
    rocof_window_us: i64,
    stored: impl IntoIterator<Item = (i64, Option<i64>)>,
) -> i64 {
    let from = late_us - rocof_window_us - rules.max_gap_us;
    stored
        .into_iter()
        .filter(|(start, end)| *start < from && end.is_none_or(|e| e >= from))
        .map(|(start, _)| start)
        .fold(from, i64::min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{DEFAULT_ROCOF_WINDOW_US, join_events};
    use ogm_protocol::GridArea;

    const S: i64 = 1_000_000;
    const MS: i64 = 1_000;

    fn id(s: &str) -> DeviceId {
        DeviceId::new(s).unwrap()
    }

    /// 10 Hz for 120 s at 50 Hz: a dip to −250 mHz from 40 s to 50 s, and a rise to +150 mHz
    /// from 90 s to 92.5 s, both ramped at 0.25 to 0.3 Hz/s (below the RoCoF limit).
    fn readings() -> Vec<(i64, f64)> {
        let shape = |s: f64, from: f64, to: f64, ramp: f64, depth: f64| {
            let up = ((s - from) / ramp).clamp(0.0, 1.0);
            let down = ((to - s) / ramp).clamp(0.0, 1.0);
            depth * up.min(down)
        };
        (0..1200)
            .map(|i| {
                let t = 1_000 * S + i * 100 * MS;
                let s = i as f64 / 10.0;
                let f = 50.0
                    + 0.002 * libm::sin(s)
                    + shape(s, 40.0, 50.0, 1.0, -0.25)
                    + shape(s, 90.0, 92.5, 0.5, 0.15);
                (t, f)
            })
            .collect()
    }

    /// A store, as the server keeps one: readings and events keyed by (device, start).
    #[derive(Default)]
    struct Owner {
        readings: BTreeMap<i64, f64>,
        events: BTreeMap<i64, DeviceEvent>,
    }

    impl Owner {
        fn run(&mut self, watch: &mut Watch, device: &DeviceId, elapsed_us: i64) {
            for task in watch.tick(elapsed_us) {
                match task {
                    Task::Save(e) => {
                        self.events.insert(e.start_us, e);
                    }
                    Task::Rewind {
                        device: d,
                        late_us,
                        upto_us,
                    } => {
                        assert_eq!(&d, device);
                        let stored = self.events.values().map(|e| (e.start_us, e.end_us));
                        let from =
                            rewind_start(late_us, watch.rules(), watch.rocof_window_us(), stored);
                        let lo = from - watch.rocof_window_us();
                        let rs = self.readings.range(lo..=upto_us).map(|(t, f)| (*t, *f));
                        let found = watch.rewound(device, from, upto_us, rs.collect::<Vec<_>>());
                        self.events.retain(|start, _| *start < from);
                        for e in found {
                            self.events.insert(e.start_us, e);
                        }
                    }
                }
            }
        }

        /// Stores then hands over each batch, ticking between batches; then quiet until all
        /// is analysed.
        fn feed(&mut self, watch: &mut Watch, device: &DeviceId, batches: &[Vec<(i64, f64)>]) {
            for batch in batches {
                for (t, f) in batch {
                    self.readings.insert(*t, *f);
                    watch.push(device, *t, *f);
                }
                self.run(watch, device, 100 * MS);
            }
            for _ in 0..4 {
                self.run(watch, device, 10 * S);
            }
        }
    }

    fn watch() -> Watch {
        Watch::new(
            EventRules::of(GridArea::default(), 50.0),
            DEFAULT_ROCOF_WINDOW_US,
        )
    }

    fn clean(device: &DeviceId) -> BTreeMap<i64, DeviceEvent> {
        let mut owner = Owner::default();
        let batches: Vec<Vec<_>> = readings().into_iter().map(|r| alloc::vec![r]).collect();
        owner.feed(&mut watch(), device, &batches);
        owner.events
    }

    #[test]
    fn a_clean_stream_gives_each_dip_once() {
        let d = id("a");
        let events = clean(&d);
        let starts: Vec<_> = events
            .values()
            .map(|e| (e.start_us, e.end_us.is_some()))
            .collect();
        assert_eq!(events.len(), 2, "{starts:?}");
        let dip = events.values().next().unwrap();
        assert!((dip.extreme_hz - 49.75).abs() < 0.003, "{dip:?}");
        assert!(
            dip.start_us > 1_040 * S && dip.start_us <= 1_041 * S,
            "{dip:?}"
        );
        assert!(events.values().all(|e| e.end_us.is_some()));
    }

    #[test]
    fn late_shuffled_and_redelivered_readings_give_the_same_events() {
        let d = id("a");
        let want = clean(&d);
        let all = readings();
        // Out of order within the hold, a redelivered stretch, and the dip's minute arriving
        // two minutes late in reverse (a board's offline buffer).
        let mut batches: Vec<Vec<(i64, f64)>> = Vec::new();
        let (before, rest) = all.split_at(350);
        let (buffered, after) = rest.split_at(300);
        for chunk in before.chunks(7) {
            let mut c = chunk.to_vec();
            c.reverse();
            batches.push(c);
        }
        batches.push(before[300..].to_vec());
        for chunk in after.chunks(10) {
            batches.push(chunk.to_vec());
        }
        let mut late = buffered.to_vec();
        late.reverse();
        for chunk in late.chunks(50) {
            batches.push(chunk.to_vec());
        }
        let mut owner = Owner::default();
        owner.feed(&mut watch(), &d, &batches);
        assert_eq!(owner.events, want);
    }

    #[test]
    fn a_restart_mid_event_finds_it_once() {
        let d = id("a");
        let want = clean(&d);
        let all = readings();
        let mut owner = Owner::default();
        let mut first = watch();
        let stop = all.iter().position(|(t, _)| *t >= 1_047 * S).unwrap();
        let batches: Vec<Vec<_>> = all[..stop].iter().map(|r| alloc::vec![*r]).collect();
        for batch in &batches {
            for (t, f) in batch {
                owner.readings.insert(*t, *f);
                first.push(&d, *t, *f);
            }
            owner.run(&mut first, &d, 100 * MS);
        }
        assert!(
            owner.events.values().any(|e| e.end_us.is_none()),
            "open when it stops"
        );
        // A new process: nothing in memory, the rest of the stream (and a redelivered tail).
        let batches: Vec<Vec<_>> = all[stop - 20..].iter().map(|r| alloc::vec![*r]).collect();
        owner.feed(&mut watch(), &d, &batches);
        assert_eq!(owner.events, want);
    }

    #[test]
    fn devices_join_into_one_grid_event() {
        let mut events = Vec::new();
        for (n, lag) in [("a", 0), ("b", 300 * MS), ("c", 2 * S)] {
            let d = id(n);
            let shifted: Vec<Vec<_>> = readings()
                .into_iter()
                .map(|(t, f)| alloc::vec![(t + lag, f)])
                .collect();
            let mut owner = Owner::default();
            owner.feed(&mut watch(), &d, &shifted);
            events.extend(owner.events.into_values());
        }
        let grid = join_events(events, 50.0);
        assert_eq!(grid.len(), 2);
        assert_eq!(grid[0].devices.len(), 3);
    }

    #[test]
    fn a_silent_device_closes_its_event() {
        let d = id("a");
        let all = readings();
        let stop = all.iter().position(|(t, _)| *t >= 1_047 * S).unwrap();
        let batches: Vec<Vec<_>> = all[..stop].iter().map(|r| alloc::vec![*r]).collect();
        let mut owner = Owner::default();
        owner.feed(&mut watch(), &d, &batches);
        let last = owner.events.values().last().unwrap();
        assert_eq!(last.end_us, Some(last.last_us));
    }
}
