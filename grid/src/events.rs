//! Events: [`EventDetector`] finds excursions and RoCoF alarms in one device's readings
//! ([`DeviceEvent`]); those of all devices that start within [`JOIN_US`] of each other are joined
//! into [`GridEvent`]s, live by [`Insight`] and from history buckets by [`history_events`].

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;

use ogm_protocol::DeviceId;

use crate::rocof::RocofEstimator;
use crate::sample::Sample;

/// Where an event was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Live,
    History,
}

/// An excursion or a RoCoF alarm seen by one device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEvent {
    pub device: DeviceId,
    pub start_us: i64,
    /// The first reading back to normal; None while the event lasts.
    pub end_us: Option<i64>,
    /// The latest reading inside the event.
    pub last_us: i64,
    /// The reading farthest from nominal, Hz.
    pub extreme_hz: f64,
    /// Largest |RoCoF| seen, Hz/s (signed).
    pub rocof: Option<f64>,
    /// Whether the frequency left ± the event band (else only RoCoF did).
    pub frequency: bool,
    pub source: Source,
}

/// Events of devices that start within this of each other are one grid event.
pub const JOIN_US: i64 = 10_000_000;

/// One disturbance as the grid saw it: the events of every device whose starts follow each
/// other within [`JOIN_US`], joined. A generator trip seen by a hundred devices is one grid
/// event of a hundred devices, not a hundred events. Joining by start, not by overlap, keeps a
/// device that sits off nominal for hours (a bad calibration, another grid) from swallowing
/// every disturbance that comes along meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub struct GridEvent {
    /// The earliest start of a device's event in it.
    pub start_us: i64,
    /// The latest start of a device's event in it.
    pub last_start_us: i64,
    /// The latest end; None while any device's event lasts.
    pub end_us: Option<i64>,
    /// The latest reading inside it.
    pub last_us: i64,
    /// The reading farthest from nominal, Hz.
    pub extreme_hz: f64,
    /// The device that read [`GridEvent::extreme_hz`].
    pub device: DeviceId,
    /// Largest |RoCoF| seen, Hz/s (signed).
    pub rocof: Option<f64>,
    /// Whether the frequency left ± the event band anywhere (else only RoCoF did).
    pub frequency: bool,
    pub source: Source,
    /// Every device that saw it, in natural order, with the reading farthest from nominal
    /// that it saw, Hz.
    pub devices: Vec<(DeviceId, f64)>,
}

impl GridEvent {
    /// Duration so far (or in all), µs.
    pub fn duration_us(&self) -> i64 {
        self.end_us.unwrap_or(self.last_us) - self.start_us
    }

    pub fn extreme_mhz(&self, nominal_hz: f64) -> f64 {
        (self.extreme_hz - nominal_hz) * 1000.0
    }

    /// Whether it and `other` are one disturbance.
    fn touches(&self, other: &GridEvent) -> bool {
        self.source == other.source
            && other.start_us <= self.last_start_us + JOIN_US
            && self.start_us <= other.last_start_us + JOIN_US
    }

    /// Takes `other` in: the span, the extreme and the devices of both.
    fn join(&mut self, other: GridEvent, nominal_hz: f64) {
        let off = |f: f64| (f - nominal_hz).abs();
        self.start_us = self.start_us.min(other.start_us);
        self.last_start_us = self.last_start_us.max(other.last_start_us);
        self.end_us = self.end_us.zip(other.end_us).map(|(a, b)| a.max(b));
        self.last_us = self.last_us.max(other.last_us);
        if off(other.extreme_hz) > off(self.extreme_hz) {
            self.extreme_hz = other.extreme_hz;
            self.device = other.device;
        }
        if let Some(r) = other.rocof
            && self.rocof.is_none_or(|m| r.abs() > m.abs())
        {
            self.rocof = Some(r);
        }
        self.frequency |= other.frequency;
        for (device, f) in other.devices {
            match self.devices.binary_search_by(|(d, _)| d.cmp(&device)) {
                Ok(i) if off(f) > off(self.devices[i].1) => self.devices[i].1 = f,
                Ok(_) => {}
                Err(i) => self.devices.insert(i, (device, f)),
            }
        }
    }
}

impl From<DeviceEvent> for GridEvent {
    fn from(e: DeviceEvent) -> Self {
        Self {
            start_us: e.start_us,
            last_start_us: e.start_us,
            end_us: e.end_us,
            last_us: e.last_us,
            extreme_hz: e.extreme_hz,
            devices: vec![(e.device.clone(), e.extreme_hz)],
            device: e.device,
            rocof: e.rocof,
            frequency: e.frequency,
            source: e.source,
        }
    }
}

/// Adds `e` to `events` (kept in order of start), joined with every event it touches.
/// Joining two may make one that touches a third, hence the loop.
fn gather(events: &mut VecDeque<GridEvent>, mut e: GridEvent, nominal_hz: f64) {
    while let Some(i) = events.iter().position(|o| o.touches(&e)) {
        if let Some(o) = events.remove(i) {
            e.join(o, nominal_hz);
        }
    }
    let at = events.partition_point(|o| o.start_us <= e.start_us);
    events.insert(at, e);
}

/// What makes an event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventRules {
    pub nominal_hz: f64,
    /// ± this from nominal, mHz.
    pub threshold_mhz: f64,
    /// |RoCoF| beyond this, Hz/s.
    pub rocof_limit: f64,
    /// Silence that ends an event, µs.
    pub max_gap_us: i64,
}

/// |RoCoF| beyond this is an event unless told otherwise, Hz/s.
pub const DEFAULT_ROCOF_LIMIT: f64 = 0.5;
/// The RoCoF window unless told otherwise, µs.
pub const DEFAULT_ROCOF_WINDOW_US: i64 = 500_000;
/// Silence that ends an event unless told otherwise, µs.
pub const DEFAULT_MAX_GAP_US: i64 = 5_000_000;

impl EventRules {
    /// The area's event band around `nominal_hz`, the default RoCoF limit and gap.
    pub fn of(area: ogm_protocol::GridArea, nominal_hz: f64) -> Self {
        Self {
            nominal_hz,
            threshold_mhz: crate::Bands::of(area, nominal_hz).event_mhz,
            rocof_limit: DEFAULT_ROCOF_LIMIT,
            max_gap_us: DEFAULT_MAX_GAP_US,
        }
    }
}

/// Finds events in one device's readings. An event lasts from the first abnormal reading
/// (|Δf| beyond the threshold or |RoCoF| beyond the limit) to the first reading at which both
/// are normal again; since RoCoF looks back over its window, the end can lag a step back to
/// normal by up to that window.
#[derive(Debug, Clone)]
pub struct EventDetector {
    device: DeviceId,
    open: Option<DeviceEvent>,
}

impl EventDetector {
    pub fn new(device: DeviceId) -> Self {
        Self { device, open: None }
    }

    pub fn open_event(&self) -> Option<&DeviceEvent> {
        self.open.as_ref()
    }

    /// A live reading with the RoCoF at it. Returns the event it closes, if any.
    pub fn push(
        &mut self,
        t_us: i64,
        f_hz: f64,
        rocof: Option<f64>,
        rules: &EventRules,
    ) -> Option<DeviceEvent> {
        self.step(t_us, f_hz, f_hz, rocof, rules, Source::Live)
    }

    /// A history bucket (its min and max). Returns the event it closes, if any.
    pub fn push_bucket(&mut self, s: &Sample, rules: &EventRules) -> Option<DeviceEvent> {
        self.step(s.t, s.min, s.max, None, rules, Source::History)
    }

    /// Closes what is open if the device has been silent since; returns it.
    pub fn flush(&mut self, now_us: i64, rules: &EventRules) -> Option<DeviceEvent> {
        if self
            .open
            .as_ref()
            .is_some_and(|e| now_us - e.last_us > rules.max_gap_us)
        {
            let mut e = self.open.take()?;
            e.end_us = Some(e.last_us);
            return Some(e);
        }
        None
    }

    fn step(
        &mut self,
        t: i64,
        lo: f64,
        hi: f64,
        rocof: Option<f64>,
        rules: &EventRules,
        source: Source,
    ) -> Option<DeviceEvent> {
        if !(lo.is_finite() && hi.is_finite()) {
            return None;
        }
        let mut closed = None;
        if let Some(e) = &self.open
            && t - e.last_us > rules.max_gap_us
        {
            let mut e = self.open.take()?;
            e.end_us = Some(e.last_us);
            closed = Some(e);
        }
        let n = rules.nominal_hz;
        let extreme = if (lo - n).abs() >= (hi - n).abs() {
            lo
        } else {
            hi
        };
        let off = (extreme - n).abs() * 1000.0 > rules.threshold_mhz;
        let fast = rocof.is_some_and(|r| r.abs() > rules.rocof_limit);
        match (&mut self.open, off || fast) {
            (Some(e), true) => {
                if (extreme - n).abs() > (e.extreme_hz - n).abs() {
                    e.extreme_hz = extreme;
                }
                if let Some(r) = rocof
                    && e.rocof.is_none_or(|m| r.abs() > m.abs())
                {
                    e.rocof = Some(r);
                }
                e.frequency |= off;
                e.last_us = t;
            }
            (Some(_), false) => {
                let mut e = self.open.take()?;
                e.end_us = Some(t);
                return closed.or(Some(e));
            }
            (None, true) => {
                self.open = Some(DeviceEvent {
                    device: self.device.clone(),
                    start_us: t,
                    end_us: None,
                    last_us: t,
                    extreme_hz: extreme,
                    rocof,
                    frequency: off,
                    source,
                });
            }
            (None, false) => {}
        }
        closed
    }
}

/// Most events kept.
pub const MAX_EVENTS: usize = 200;
/// Most devices followed.
pub const MAX_DEVICES: usize = 500;

/// Live insight for every device: RoCoF and events, bounded.
#[derive(Debug, Clone)]
pub struct Insight {
    rules: EventRules,
    rocof_window_us: i64,
    devices: BTreeMap<DeviceId, (RocofEstimator, EventDetector)>,
    /// Grid events of closed device events, oldest first.
    events: VecDeque<GridEvent>,
    /// Bumped whenever the events change.
    pub version: u64,
}

impl Insight {
    pub fn new(rules: EventRules, rocof_window_us: i64) -> Self {
        Self {
            rules,
            rocof_window_us,
            devices: BTreeMap::new(),
            events: VecDeque::new(),
            version: 0,
        }
    }

    pub fn rules(&self) -> &EventRules {
        &self.rules
    }

    /// New rules or window: estimators start over, events found so far stay.
    pub fn configure(&mut self, rules: EventRules, rocof_window_us: i64) {
        if rules != self.rules || rocof_window_us != self.rocof_window_us {
            self.rules = rules;
            self.rocof_window_us = rocof_window_us;
            self.devices.clear();
            self.version += 1;
        }
    }

    /// A live reading of `device`.
    pub fn push(&mut self, device: &DeviceId, t_us: i64, f_hz: f64) {
        if !self.devices.contains_key(device) {
            if self.devices.len() >= MAX_DEVICES {
                return;
            }
            self.devices.insert(
                device.clone(),
                (
                    RocofEstimator::new(self.rocof_window_us),
                    EventDetector::new(device.clone()),
                ),
            );
        }
        let Some((est, det)) = self.devices.get_mut(device) else {
            return;
        };
        let was_open = det.open_event().is_some();
        let rocof = est.push(t_us, f_hz);
        let closed = det.push(t_us, f_hz, rocof, &self.rules);
        let changed = closed.is_some() || was_open || det.open_event().is_some();
        if let Some(e) = closed {
            self.record(e);
        }
        if changed {
            self.version += 1;
        }
    }

    /// Closes events of devices that fell silent, and forgets devices not in `keep`.
    pub fn tick(&mut self, now_us: i64) {
        let rules = self.rules;
        let closed: Vec<DeviceEvent> = self
            .devices
            .values_mut()
            .filter_map(|(_, det)| det.flush(now_us, &rules))
            .collect();
        for e in closed {
            self.record(e);
            self.version += 1;
        }
    }

    /// Stops following a device (it was dropped from the store).
    pub fn forget(&mut self, device: &DeviceId) {
        self.devices.remove(device);
    }

    fn record(&mut self, e: DeviceEvent) {
        gather(&mut self.events, e.into(), self.rules.nominal_hz);
        while self.events.len() > MAX_EVENTS {
            self.events.pop_front();
        }
    }

    /// The current RoCoF of a device, Hz/s.
    pub fn rocof(&self, device: &DeviceId) -> Option<f64> {
        self.devices.get(device).and_then(|(e, _)| e.current())
    }

    /// Every grid event, with the device events still open, newest first.
    pub fn events(&self) -> Vec<GridEvent> {
        let mut all = self.events.clone();
        for open in self.devices.values().filter_map(|(_, d)| d.open_event()) {
            gather(&mut all, open.clone().into(), self.rules.nominal_hz);
        }
        all.into_iter().rev().collect()
    }
}

/// Device events (any order, any devices) joined into grid events, oldest first: those that
/// start within [`JOIN_US`] of each other are one. The server joins its stored device events
/// with this, so the join never depends on the order in which they were found.
pub fn join_events(
    events: impl IntoIterator<Item = DeviceEvent>,
    nominal_hz: f64,
) -> Vec<GridEvent> {
    let mut out: VecDeque<GridEvent> = VecDeque::new();
    for e in events {
        gather(&mut out, e.into(), nominal_hz);
    }
    out.into()
}

/// Events in history buckets of one device before `until_us` (frequency excursions only: a
/// bucket's min and max show them, RoCoF needs raw readings), oldest first; those that start
/// within [`JOIN_US`] of each other are one. Bounded by [`MAX_EVENTS`].
pub fn history_events<'a>(
    device: &DeviceId,
    samples: impl Iterator<Item = &'a Sample>,
    until_us: i64,
    rules: &EventRules,
) -> Vec<GridEvent> {
    let mut det = EventDetector::new(device.clone());
    let mut out: VecDeque<GridEvent> = VecDeque::new();
    for s in samples.take_while(|s| s.t < until_us) {
        if let Some(e) = det.push_bucket(s, rules) {
            gather(&mut out, e.into(), rules.nominal_hz);
            if out.len() > MAX_EVENTS {
                out.pop_front();
            }
        }
    }
    if let Some(mut e) = det.open.take() {
        e.end_us = Some(e.last_us);
        gather(&mut out, e.into(), rules.nominal_hz);
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use alloc::format;

    use super::*;

    const S: i64 = 1_000_000;
    const MS: i64 = 1_000;

    /// xorshift64*, as the dashboard's, for noise that is the same on every run.
    struct XorShift(u64);

    impl XorShift {
        fn new(seed: u64) -> Self {
            Self(seed.max(1))
        }

        /// Uniform in `[0, 1)`.
        fn next_f64(&mut self) -> f64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn rules() -> EventRules {
        EventRules {
            nominal_hz: 50.0,
            threshold_mhz: 100.0,
            rocof_limit: 0.5,
            max_gap_us: 5 * S,
        }
    }

    fn dev(s: &str) -> DeviceId {
        DeviceId::new(s).unwrap()
    }

    /// ±1 mHz of measurement noise.
    fn noise(rng: &mut XorShift) -> f64 {
        (rng.next_f64() - 0.5) * 0.002
    }

    #[test]
    fn a_step_of_minus_150_mhz_is_exactly_one_event_with_its_extreme() {
        for rate_hz in [1, 10, 50] {
            let mut insight = Insight::new(rules(), 500 * MS);
            let mut rng = XorShift::new(rate_hz);
            let d = dev("d");
            let dt = S / rate_hz as i64;
            let mut t = 1_700_000_000 * S;
            let mut feed = |insight: &mut Insight, secs: i64, f: f64, t: &mut i64| {
                for _ in 0..secs * rate_hz as i64 {
                    insight.push(&d, *t, f + noise(&mut rng));
                    *t += dt;
                }
            };
            feed(&mut insight, 60, 50.0, &mut t);
            let step_at = t;
            feed(&mut insight, 10, 49.85, &mut t);
            let back_at = t;
            feed(&mut insight, 60, 50.0, &mut t);
            let events = insight.events();
            assert_eq!(events.len(), 1, "{rate_hz} Hz: {events:?}");
            let e = &events[0];
            assert_eq!(e.start_us, step_at);
            assert!((e.extreme_mhz(50.0) - -150.0).abs() <= 1.0, "{e:?}");
            assert!(e.frequency);
            let end = e.end_us.unwrap();
            assert!(
                end >= back_at && end <= back_at + 500 * MS + dt,
                "{rate_hz} Hz: {e:?}"
            );
            assert!(e.rocof.unwrap() < 0.0);
        }
    }

    #[test]
    fn noise_and_slow_wander_make_no_event() {
        let mut insight = Insight::new(rules(), 500 * MS);
        let mut rng = XorShift::new(3);
        let d = dev("d");
        // ±60 mHz over minutes with ±5 mHz noise at 10 Hz.
        for i in 0..36_000i64 {
            let t = i * 100 * MS;
            let wander = 0.06 * ((t as f64 / 1e6) / 60.0).sin();
            insight.push(&d, t, 50.0 + wander + 5.0 * noise(&mut rng));
            let r = insight.rocof(&d).unwrap_or(0.0);
            assert!(r.abs() < 0.2, "{r}");
        }
        assert!(insight.events().is_empty());
    }

    #[test]
    fn a_fast_ramp_is_a_rocof_event() {
        let mut insight = Insight::new(rules(), 100 * MS);
        let d = dev("d");
        let mut t = 0;
        for _ in 0..100 {
            insight.push(&d, t, 50.0);
            t += 20 * MS;
        }
        // −0.8 Hz/s for 100 ms (−80 mHz: not beyond the band), then flat.
        for i in 1..=5 {
            insight.push(&d, t, 50.0 - 0.016 * f64::from(i));
            t += 20 * MS;
        }
        for _ in 0..100 {
            insight.push(&d, t, 49.92);
            t += 20 * MS;
        }
        let ev = insight.events();
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert!(!ev[0].frequency);
        assert!(ev[0].rocof.unwrap() < -0.5);
    }

    #[test]
    fn history_buckets_show_excursions_by_their_extremes() {
        let mk = |t: i64, min: f64, max: f64| Sample {
            t,
            first: 0,
            last: 0,
            min,
            mean: (min + max) / 2.0,
            max,
            count: 10,
        };
        let b = [
            mk(0, 49.99, 50.01),
            mk(S, 49.80, 50.0),
            mk(2 * S, 49.85, 49.95),
            mk(3 * S, 49.98, 50.02),
            mk(14 * S, 49.99, 50.15),
            mk(15 * S, 49.99, 50.01),
            mk(16 * S, 49.99, 50.11),
        ];
        let ev = history_events(&dev("x"), b.iter(), 16 * S, &rules());
        assert_eq!(ev.len(), 2);
        assert_eq!(
            (ev[0].start_us, ev[0].end_us, ev[0].extreme_hz),
            (S, Some(3 * S), 49.80)
        );
        assert_eq!((ev[1].start_us, ev[1].extreme_hz), (14 * S, 50.15));
        assert_eq!(ev[1].source, Source::History);
        // A second excursion within 10 s of the first is part of it.
        let ev = history_events(&dev("x"), b.iter(), 17 * S, &rules());
        assert_eq!(ev.len(), 2);
        assert_eq!((ev[1].start_us, ev[1].last_start_us), (14 * S, 16 * S));
    }

    #[test]
    fn silence_closes_an_event_and_memory_is_bounded() {
        let mut i = Insight::new(rules(), 500 * MS);
        let d = dev("d");
        i.push(&d, 0, 49.8);
        assert_eq!(i.events()[0].end_us, None);
        i.tick(10 * S);
        assert_eq!(i.events()[0].end_us, Some(0));
        for k in 0..1_000 {
            let t = 100 * S + k * 20 * S;
            i.push(&d, t, 49.8);
            i.push(&d, t + S, 50.0);
        }
        assert!(i.events().len() <= MAX_EVENTS + 1);
    }

    #[test]
    fn a_trip_seen_by_a_hundred_devices_is_one_grid_event() {
        let mut i = Insight::new(rules(), 500 * MS);
        let mut rng = XorShift::new(7);
        let devices: Vec<DeviceId> = (1..=100).map(|k| dev(&format!("sim-{k}"))).collect();
        let stray = dev("stray");
        // A trip at 600 s to a nadir of −150 mHz (−160 at sim-37), back after 20 s; a second
        // at 1 500 s. The devices read it at 10 Hz, each a little late or early, with noise.
        // The stray reads +150 mHz all along: an event of its own, ongoing.
        let trip = |t: i64, at: i64| (at..at + 20 * S).contains(&t);
        for step in 0..20_000i64 {
            let t = step * 100 * MS;
            for (k, d) in devices.iter().enumerate() {
                let late = (k as i64 % 7) * 100 * MS;
                let deep = if k == 36 { 0.160 } else { 0.150 };
                let f = if trip(t - late, 600 * S) || trip(t - late, 1_500 * S) {
                    50.0 - deep
                } else {
                    50.0
                };
                i.push(d, t, f + noise(&mut rng));
            }
            i.push(&stray, t, 50.150 + noise(&mut rng));
        }
        let events = i.events();
        assert_eq!(
            events.len(),
            3,
            "{:?}",
            events
                .iter()
                .map(|e| (e.start_us, e.devices.len()))
                .collect::<Vec<_>>()
        );
        let [second, first] = [&events[0], &events[1]];
        for (e, at) in [(first, 600 * S), (second, 1_500 * S)] {
            assert_eq!(e.start_us, at);
            assert_eq!(e.devices.len(), 100);
            assert_eq!(e.device, dev("sim-37"));
            assert!((e.extreme_mhz(50.0) - -160.0).abs() <= 1.0, "{e:?}");
            assert!(e.end_us.is_some());
            assert!((20 * S..=22 * S).contains(&e.duration_us()), "{e:?}");
            assert!(
                e.devices.windows(2).all(|w| w[0].0 < w[1].0),
                "natural order"
            );
            assert!(
                e.devices
                    .iter()
                    .all(|(d, f)| (f - 50.0) * 1000.0 < -140.0 || *d == stray)
            );
        }
        let own = &events[2];
        assert_eq!((own.start_us, own.end_us), (0, None));
        assert_eq!(own.devices.len(), 1);
        assert_eq!(own.device, stray);
        assert_eq!(i.events, i.events.iter().cloned().collect::<VecDeque<_>>());
    }

    #[test]
    fn events_that_start_apart_stay_apart_and_a_late_one_can_join_two() {
        let n = 50.0;
        let ev = |d: &str, start: i64, end: i64, f: f64| -> GridEvent {
            DeviceEvent {
                device: dev(d),
                start_us: start,
                end_us: Some(end),
                last_us: end,
                extreme_hz: f,
                rocof: None,
                frequency: true,
                source: Source::Live,
            }
            .into()
        };
        let mut list = VecDeque::new();
        gather(&mut list, ev("a", 0, 5 * S, 49.8), n);
        gather(&mut list, ev("b", 15 * S, 20 * S, 49.85), n);
        assert_eq!(list.len(), 2, "15 s apart");
        // A third device whose event starts between them joins both into one.
        gather(&mut list, ev("c", 8 * S, 30 * S, 50.3), n);
        assert_eq!(list.len(), 1);
        let e = &list[0];
        assert_eq!(
            (e.start_us, e.last_start_us, e.end_us),
            (0, 15 * S, Some(30 * S))
        );
        assert_eq!(e.device, dev("c"));
        assert_eq!(e.devices.len(), 3);
        // A second event of a device that is in it keeps that device's farthest reading.
        gather(&mut list, ev("a", 25 * S, 26 * S, 49.9), n);
        assert_eq!(list[0].devices[0], (dev("a"), 49.8));
        // Live and history never join.
        let mut h = ev("a", S, 2 * S, 49.8);
        h.source = Source::History;
        gather(&mut list, h, n);
        assert_eq!(list.len(), 2);
    }
}
