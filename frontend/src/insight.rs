//! Grid insight computed from the stream and the history. Pure: values in, figures out.
//!
//! - [`Bands`]: the frequency bands of a synchronous area ([`GridArea`]: Continental Europe,
//!   Great Britain, the Nordic area), relative to the nominal frequency.
//! - [`RocofEstimator`]: rate of change of frequency, Hz/s, as the least-squares slope over a
//!   trailing window (robust to a noisy single reading, unlike a two-point difference).
//! - [`grid_time_s`]: grid time deviation, the integral of (f − nominal)/nominal dt.
//! - [`Histogram`] and [`Quality`]: the distribution of the deviation over a range.
//! - [`EventDetector`]: excursions beyond ±100 mHz, or |RoCoF| beyond a limit, with start,
//!   extreme and duration; [`Insight`] runs one per device over the live stream and keeps a
//!   bounded list of [`GridEvent`]s: the events of all devices that start together, joined.
//! - [`spread_mhz`]: how far apart the devices' latest readings are.

use std::collections::{BTreeMap, VecDeque};

use ogm_protocol::DeviceId;

use crate::series::Sample;

pub use ogm_protocol::GridArea;

/// Frequency bands around nominal, mHz, of one synchronous area.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    pub area: GridArea,
    pub nominal_hz: f64,
    /// Primary control dead band: ± this.
    pub deadband_mhz: f64,
    /// The standard frequency range (the quality indicator: share of time outside ± this).
    pub normal_mhz: f64,
    /// The limits of normal operation: containment reserves fully active at ± this.
    pub limit_mhz: f64,
    /// Under-frequency load shedding starts this far below nominal.
    pub shedding_mhz: f64,
    /// An excursion beyond ± this is an event (the same in every area).
    pub event_mhz: f64,
}

impl Bands {
    /// The bands of `area` around `nominal_hz`:
    /// - Continental Europe: dead band ±20 mHz, standard range ±50 mHz, FCR fully active and
    ///   the maximum steady-state deviation at ±200 mHz, load shedding from 49.0 Hz.
    /// - Great Britain: Dynamic Containment's dead band ±15 mHz, operational limits ±200 mHz,
    ///   statutory limits ±500 mHz, low-frequency demand disconnection from 48.8 Hz.
    /// - Nordic: FCR-N's ±10 mHz, the standard range 49.9–50.1 Hz (±100 mHz), FCR-D fully
    ///   active at ±500 mHz, load shedding from 48.8 Hz.
    pub fn of(area: GridArea, nominal_hz: f64) -> Self {
        let (deadband_mhz, normal_mhz, limit_mhz, shedding_mhz) = match area {
            GridArea::ContinentalEurope => (20.0, 50.0, 200.0, 1_000.0),
            GridArea::GreatBritain => (15.0, 200.0, 500.0, 1_200.0),
            GridArea::Nordic => (10.0, 100.0, 500.0, 1_200.0),
        };
        Self {
            area,
            nominal_hz,
            deadband_mhz,
            normal_mhz,
            limit_mhz,
            shedding_mhz,
            event_mhz: 100.0,
        }
    }

    /// Continental Europe's bands around `nominal_hz` (49.0 Hz load shedding at 50 Hz).
    pub fn continental_europe(nominal_hz: f64) -> Self {
        Self::of(GridArea::ContinentalEurope, nominal_hz)
    }

    /// Deviation from nominal, mHz.
    pub fn deviation_mhz(&self, f_hz: f64) -> f64 {
        (f_hz - self.nominal_hz) * 1000.0
    }

    /// `(name, low Hz, high Hz)` of each band, for labels and the page's data attributes.
    pub fn table(&self) -> [(&'static str, f64, f64); 4] {
        let n = self.nominal_hz;
        let hz = |mhz: f64| mhz / 1000.0;
        [
            (
                "deadband",
                n - hz(self.deadband_mhz),
                n + hz(self.deadband_mhz),
            ),
            ("normal", n - hz(self.normal_mhz), n + hz(self.normal_mhz)),
            ("limits", n - hz(self.limit_mhz), n + hz(self.limit_mhz)),
            ("load-shedding", n - hz(self.shedding_mhz), f64::INFINITY),
        ]
    }
}

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
        let n = ((2.0 * half_mhz / bin_mhz).round() as usize).max(1);
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
            let d = ((s.mean - nominal_hz) * 1e6).round() / 1e3;
            let w = s.count.max(1);
            h.total += w;
            let i = ((d - h.lo_mhz) / bin_mhz).floor();
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
            std_mhz: (sq / n - mean * mean).max(0.0).sqrt(),
            mean_mhz: mean,
            min_hz: lo,
            max_hz: hi,
        })
    }
}

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
    use crate::backoff::XorShift;
    use crate::series::Series;

    const S: i64 = 1_000_000;
    const MS: i64 = 1_000;

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

    #[test]
    fn ten_mhz_for_ten_minutes_is_a_grid_time_deviation_of_0_12_s() {
        let raw: Vec<Sample> = (0..=600).map(|i| Sample::point(i * S, 50.010)).collect();
        let gt = grid_time_s(raw.iter(), 50.0, 10 * S);
        assert!((gt - 0.12).abs() < 1e-9, "{gt}");
        // The same readings at 10 Hz, merged into a day's slots, give the same.
        let now = 1_700_000_000 * S;
        let mut s = Series::sliding(86_400 * S, 2_048);
        for i in 0..=6_000 {
            s.push(now - 600 * S + i * 100 * MS, 50.010, now);
        }
        let gt = grid_time_s(s.iter(), 50.0, 3 * s.slot_us());
        assert!((gt - 0.12).abs() < 1e-9, "{gt}");
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
        assert!(Quality::of(std::iter::empty(), &b).is_none());
    }

    #[test]
    fn bands_follow_the_area() {
        for a in GridArea::ALL {
            assert_eq!(GridArea::parse(a.as_str()), Some(a));
        }
        assert_eq!(GridArea::parse("CE"), None);
        let gb = Bands::of(GridArea::GreatBritain, 50.0).table();
        assert!((gb[1].1 - 49.8).abs() < 1e-9 && (gb[2].2 - 50.5).abs() < 1e-9);
        assert!((gb[3].1 - 48.8).abs() < 1e-9);
        let nordic = Bands::of(GridArea::Nordic, 50.0).table();
        assert!((nordic[1].1 - 49.9).abs() < 1e-9 && (nordic[2].1 - 49.5).abs() < 1e-9);
        // Events are the same everywhere: ±100 mHz.
        assert!(
            GridArea::ALL
                .iter()
                .all(|a| Bands::of(*a, 50.0).event_mhz == 100.0)
        );
    }

    #[test]
    fn bands_follow_the_nominal_frequency() {
        let b = Bands::continental_europe(60.0);
        let t = b.table();
        assert_eq!(t[0].0, "deadband");
        assert!((t[0].1 - 59.98).abs() < 1e-9 && (t[0].2 - 60.02).abs() < 1e-9);
        assert!((t[2].1 - 59.8).abs() < 1e-9);
        assert!((t[3].1 - 59.0).abs() < 1e-9);
        assert!((Bands::continental_europe(50.0).table()[3].1 - 49.0).abs() < 1e-9);
        assert!((b.deviation_mhz(60.1) - 100.0).abs() < 1e-9);
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

    #[test]
    fn spread_between_devices() {
        assert_eq!(spread_mhz([50.0].into_iter()), None);
        let (s, n) = spread_mhz([50.001, 49.998, 50.0, f64::NAN].into_iter()).unwrap();
        assert!((s - 3.0).abs() < 1e-6);
        assert_eq!(n, 3);
    }
}
