//! [`DeviceStore`]: everything the dashboard knows about devices, fed one MQTT message at a time.
//!
//! Pure and bounded: at most [`Limits::max_devices`] devices, each with a [`Series`] of its
//! frequency over the live window. Messages that are not ours or not valid are ignored and
//! counted by reason in [`Diagnostics`]; nothing a publisher sends can make this panic or grow
//! without bound. The store also remembers which devices changed since the view last looked
//! ([`DeviceStore::take_changes`]), so the page updates only what moved.
//!
//! Whether a device is live is [`Liveness::of`]: offline after its last will, silent after
//! nothing for three times its usual interval (learnt from its own timestamps), live otherwise.

use std::collections::{BTreeMap, BTreeSet};

use ogm_protocol::{DeviceId, Measurement, Payload, Status, Topic, payload};

use crate::series::Series;
use crate::wire::DeviceView;

/// Reason counted when a topic is not `{prefix}/{device_id}/{kind}`.
pub const UNKNOWN_TOPIC: &str = "unknown_topic";
/// Reason counted when a new device would exceed [`Limits::max_devices`].
pub const TOO_MANY_DEVICES: &str = "too_many_devices";

// The rule itself (interval learning, silence limit) lives in `ogm_protocol::liveness`, shared
// with the server's `GET /api/devices`.
pub use ogm_protocol::liveness::{
    DEFAULT_INTERVAL_US, MIN_SILENCE_US, SILENT_INTERVALS, silence_limit_us,
};
use ogm_protocol::liveness::{DeviceState, learn_interval, usual_interval_us};

/// The bounds that keep memory flat however long the page runs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Devices tracked at once.
    pub max_devices: usize,
    /// Chart slots kept per device (see [`Series`]).
    pub slots: usize,
    /// How much history the chart keeps, in µs.
    pub window_us: i64,
    /// A device not heard from for this long may be dropped to make room for a new one.
    pub stale_us: i64,
    /// How far ahead of the receive time a device timestamp may be and still be plotted.
    pub max_ahead_us: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_devices: 500,
            slots: 1_200,
            window_us: 5 * 60 * 1_000_000,
            stale_us: 10 * 60 * 1_000_000,
            max_ahead_us: 5 * 1_000_000,
        }
    }
}

/// One device.
#[derive(Debug, Clone)]
pub struct Device {
    pub measurement: Option<Measurement>,
    pub status: Option<Status>,
    /// Newest time of anything it sent, µs: the receive time, or the device's own timestamp
    /// for a retained message (which may be old).
    pub last_seen_us: i64,
    /// From the last status (`online` absent counts as true); a measurement also proves it.
    pub online: Option<bool>,
    /// Frequency over the chart window, on the chart's time axis.
    pub frequency: Series,
    /// Usual time between measurements, and between statuses (device clock), µs.
    pub measurement_interval_us: Option<i64>,
    pub status_interval_us: Option<i64>,
}

impl Device {
    fn new(limits: &Limits, now_us: i64) -> Self {
        Self {
            measurement: None,
            status: None,
            last_seen_us: now_us,
            online: None,
            frequency: Series::sliding(limits.window_us, limits.slots),
            measurement_interval_us: None,
            status_interval_us: None,
        }
    }

    /// The usual interval between messages, µs.
    pub fn interval_us(&self) -> i64 {
        usual_interval_us(self.measurement_interval_us, self.status_interval_us)
    }
}

/// What the views show for one device; cheap to clone and compare.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSnapshot {
    pub id: DeviceId,
    pub frequency: Option<f64>,
    pub voltage: Option<f64>,
    pub current: Option<f64>,
    pub power: Option<f64>,
    pub rssi: Option<i32>,
    pub free_heap: Option<u64>,
    pub battery: Option<f64>,
    pub online: Option<bool>,
    pub last_seen_us: i64,
    /// The usual interval between its messages, µs.
    pub interval_us: i64,
}

/// Whether a device's data is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Sending as usual.
    Live,
    /// Nothing for [`SILENT_INTERVALS`] usual intervals.
    Silent,
    /// Its last will (or its own status) says it is offline.
    Offline,
}

impl Liveness {
    pub fn of(s: &DeviceSnapshot, now_us: i64) -> Self {
        match DeviceState::of(s.online, s.last_seen_us, s.interval_us, now_us) {
            DeviceState::Offline => Liveness::Offline,
            DeviceState::Silent => Liveness::Silent,
            DeviceState::Online => Liveness::Live,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Live => "online",
            Liveness::Silent => "silent",
            Liveness::Offline => "offline",
        }
    }
}

/// Counters of what arrived and what was ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagnostics {
    /// Every message handed to [`DeviceStore::ingest`].
    pub received: u64,
    /// Ignored messages by reason (`unknown_topic`, a [`payload::PayloadError::reason`], …).
    pub ignored: BTreeMap<&'static str, u64>,
    /// Sum of [`Self::ignored`].
    pub ignored_total: u64,
    /// Messages per second over the last [`DeviceStore::sample_rate`] interval.
    pub rate_per_s: f64,
}

/// What changed since the last [`DeviceStore::take_changes`].
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub updated: Vec<DeviceId>,
    pub removed: Vec<DeviceId>,
    /// A chart series gained or lost points.
    pub chart: bool,
    /// The diagnostics changed.
    pub diagnostics: bool,
}

/// A message the store took, for whoever else wants it (insight, logs, the device page).
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    pub device: DeviceId,
    pub payload: Payload,
    /// Where a measurement goes on the time axis (see [`chart_time`]), µs.
    pub t_us: i64,
}

/// All devices and the diagnostics, for one topic prefix.
#[derive(Debug)]
pub struct DeviceStore {
    prefix: String,
    limits: Limits,
    devices: BTreeMap<DeviceId, Device>,
    diagnostics: Diagnostics,
    dirty: BTreeSet<DeviceId>,
    removed: Vec<DeviceId>,
    chart_dirty: bool,
    diagnostics_dirty: bool,
    rate_mark: Option<(i64, u64)>,
}

impl DeviceStore {
    pub fn new(prefix: &str, limits: Limits) -> Self {
        Self {
            prefix: prefix.to_owned(),
            limits,
            devices: BTreeMap::new(),
            diagnostics: Diagnostics::default(),
            dirty: BTreeSet::new(),
            removed: Vec::new(),
            chart_dirty: false,
            diagnostics_dirty: false,
            rate_mark: None,
        }
    }

    pub fn devices(&self) -> &BTreeMap<DeviceId, Device> {
        &self.devices
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn diagnostics(&self) -> &Diagnostics {
        &self.diagnostics
    }

    /// A new live window: every chart series starts over (empty, to be refilled from history).
    pub fn set_window(&mut self, window_us: i64) {
        if window_us == self.limits.window_us {
            return;
        }
        self.limits.window_us = window_us;
        for d in self.devices.values_mut() {
            d.frequency = Series::sliding(window_us, self.limits.slots);
        }
        self.chart_dirty = true;
    }

    /// Fills a device's chart series from history; returns whether anything was used.
    pub fn fill_history(
        &mut self,
        id: &DeviceId,
        buckets: &[crate::series::Sample],
        interval_us: i64,
        now_us: i64,
    ) -> bool {
        let Some(d) = self.devices.get_mut(id) else {
            return false;
        };
        let used = d.frequency.fill(buckets, interval_us, now_us) > 0;
        self.chart_dirty |= used;
        used
    }

    /// Takes one MQTT message received at `now_us`. Returns whether it was used; if not, it was
    /// counted under its reason.
    pub fn ingest(&mut self, topic: &str, bytes: &[u8], now_us: i64) -> bool {
        self.ingest_message(topic, bytes, now_us, false).is_some()
    }

    /// Takes one MQTT message received at `now_us` (`retained`: the broker's stored copy, which
    /// may be old). Returns what it was, if it was used.
    pub fn ingest_message(
        &mut self,
        topic: &str,
        bytes: &[u8],
        now_us: i64,
        retained: bool,
    ) -> Option<Ingested> {
        self.diagnostics.received += 1;
        self.diagnostics_dirty = true;
        let topic = match Topic::parse(&self.prefix, topic) {
            Ok(t) => t,
            Err(_) => return self.ignore(UNKNOWN_TOPIC),
        };
        let decoded = match payload::decode(topic.kind, bytes, now_us) {
            Ok(d) => d,
            Err(e) => return self.ignore(e.reason()),
        };
        if !self.make_room_for(&topic.device_id, now_us) {
            return self.ignore(TOO_MANY_DEVICES);
        }
        let limits = self.limits;
        let is_new = !self.devices.contains_key(&topic.device_id);
        let device = self
            .devices
            .entry(topic.device_id.clone())
            .or_insert_with(|| Device::new(&limits, now_us));
        if retained {
            // The broker's stored copy: as old as its own timestamp says.
            let seen = decoded.payload.timestamp().min(now_us);
            device.last_seen_us = if is_new {
                seen
            } else {
                device.last_seen_us.max(seen)
            };
        } else {
            device.last_seen_us = now_us;
        }
        let mut t_us = now_us;
        match &decoded.payload {
            Payload::Measurement(m) => {
                t_us = chart_time(m.timestamp, now_us, &limits);
                if device.frequency.push(t_us, m.frequency, now_us) {
                    self.chart_dirty = true;
                }
                device.measurement_interval_us = learn_interval(
                    device.measurement_interval_us,
                    device.measurement.map(|p| p.timestamp),
                    m.timestamp,
                );
                device.measurement = Some(*m);
                device.online = Some(true);
            }
            Payload::Status(s) => {
                device.status_interval_us = learn_interval(
                    device.status_interval_us,
                    device.status.as_ref().map(|p| p.timestamp),
                    s.timestamp,
                );
                device.online = Some(s.online.unwrap_or(true));
                device.status = Some(s.clone());
            }
            Payload::Logs(_) => {}
        }
        self.dirty.insert(topic.device_id.clone());
        Some(Ingested {
            device: topic.device_id,
            payload: decoded.payload,
            t_us,
        })
    }

    /// Adds the devices the server knows that the page has not heard of yet (silent or
    /// offline ones included), as the server last saw them.
    pub fn seed(&mut self, views: &[DeviceView], now_us: i64) {
        for v in views {
            if self.devices.contains_key(&v.device_id)
                || self.devices.len() >= self.limits.max_devices
            {
                continue;
            }
            let mut d = Device::new(&self.limits, now_us);
            d.last_seen_us = v.last_seen.min(now_us);
            d.measurement = v.last_measurement;
            d.status = v.last_status.clone();
            let will = v.last_status.as_ref().and_then(|s| s.online) == Some(false);
            d.online = if v.online {
                Some(true)
            } else if will {
                Some(false)
            } else {
                None // silent: the page's own silence rule says so
            };
            self.devices.insert(v.device_id.clone(), d);
            self.dirty.insert(v.device_id.clone());
        }
    }

    /// Drops chart points older than the window; call about once a second.
    pub fn prune(&mut self, now_us: i64) {
        for device in self.devices.values_mut() {
            if device.frequency.prune(now_us) {
                self.chart_dirty = true;
            }
        }
    }

    /// Updates [`Diagnostics::rate_per_s`] from the messages received since the last call.
    pub fn sample_rate(&mut self, now_us: i64) {
        let received = self.diagnostics.received;
        if let Some((t0, n0)) = self.rate_mark {
            let dt = (now_us - t0) as f64 / 1e6;
            if dt > 0.0 {
                let rate = (received - n0) as f64 / dt;
                if rate != self.diagnostics.rate_per_s {
                    self.diagnostics.rate_per_s = rate;
                    self.diagnostics_dirty = true;
                }
            }
        }
        self.rate_mark = Some((now_us, received));
    }

    /// What changed since the last call, and forgets it.
    pub fn take_changes(&mut self) -> Changes {
        Changes {
            updated: std::mem::take(&mut self.dirty).into_iter().collect(),
            removed: std::mem::take(&mut self.removed),
            chart: std::mem::take(&mut self.chart_dirty),
            diagnostics: std::mem::take(&mut self.diagnostics_dirty),
        }
    }

    pub fn snapshot(&self, id: &DeviceId) -> Option<DeviceSnapshot> {
        let d = self.devices.get(id)?;
        let m = d.measurement.as_ref();
        let s = d.status.as_ref();
        Some(DeviceSnapshot {
            id: id.clone(),
            frequency: m.map(|m| m.frequency),
            voltage: m.map(|m| m.voltage),
            current: m.map(|m| m.current),
            power: m.map(|m| m.power),
            rssi: s.map(|s| s.rssi),
            free_heap: s.map(|s| s.free_heap),
            battery: s.and_then(|s| s.battery),
            online: d.online,
            last_seen_us: d.last_seen_us,
            interval_us: d.interval_us(),
        })
    }

    fn ignore(&mut self, reason: &'static str) -> Option<Ingested> {
        *self.diagnostics.ignored.entry(reason).or_default() += 1;
        self.diagnostics.ignored_total += 1;
        None
    }

    /// Whether `id` has (or now has) a slot: a full store gives up its longest-silent device if
    /// that one is stale.
    fn make_room_for(&mut self, id: &DeviceId, now_us: i64) -> bool {
        if self.devices.contains_key(id) || self.devices.len() < self.limits.max_devices {
            return true;
        }
        let Some((oldest, seen)) = self
            .devices
            .iter()
            .min_by_key(|(_, d)| d.last_seen_us)
            .map(|(k, d)| (k.clone(), d.last_seen_us))
        else {
            return false;
        };
        if now_us.saturating_sub(seen) < self.limits.stale_us {
            return false;
        }
        self.devices.remove(&oldest);
        self.dirty.remove(&oldest);
        self.removed.push(oldest);
        self.chart_dirty = true;
        true
    }
}

/// Where a measurement goes on the chart's time axis: the device's own timestamp, unless its
/// clock is far off the receive time (more than `max_ahead_us` ahead, or so far behind that the
/// point would fall out of the window at once), in which case the receive time.
pub fn chart_time(device_us: i64, now_us: i64, limits: &Limits) -> i64 {
    let behind = now_us.saturating_sub(device_us);
    if behind > limits.window_us || -behind > limits.max_ahead_us {
        now_us
    } else {
        device_us
    }
}

/// Which waiting cards to update in this frame, oldest update first.
///
/// Under a heavy stream a card changes at most every `min_interval_ms`, and at most `budget`
/// cards change in one frame: without the budget, a hundred cards throttled at once stay in
/// step and all change in the same frame at each interval, and that frame (a hundred
/// cards' text laid out and painted) is the slowest the page has. With it, the updates spread
/// over the frames between. A card never shown yet goes first.
pub fn cards_due<'a>(
    waiting: impl IntoIterator<Item = &'a DeviceId>,
    shown_ms: &BTreeMap<DeviceId, f64>,
    now_ms: f64,
    min_interval_ms: f64,
    budget: usize,
) -> Vec<DeviceId> {
    let mut due: Vec<(f64, &DeviceId)> = waiting
        .into_iter()
        .filter_map(|id| match shown_ms.get(id) {
            None => Some((f64::NEG_INFINITY, id)),
            Some(&t) if now_ms - t >= min_interval_ms => Some((t, id)),
            Some(_) => None,
        })
        .collect();
    due.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    due.into_iter()
        .take(budget)
        .map(|(_, id)| id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogm_protocol::{Kind, TOPIC_PREFIX, fixtures};

    /// Just after the seed's example timestamp.
    const NOW: i64 = 1_703_123_456_789_123 + 1_000_000;

    fn topic(dev: &str, kind: Kind) -> String {
        Topic::new(DeviceId::new(dev).unwrap(), kind).to_topic(TOPIC_PREFIX)
    }

    fn measurement(t: i64, f: f64) -> Vec<u8> {
        Payload::Measurement(fixtures::measurement(t, f)).to_json()
    }

    #[test]
    fn good_fixtures_are_used_and_bad_ones_counted_by_reason() {
        let mut s = DeviceStore::new(TOPIC_PREFIX, Limits::default());
        for (kind, json) in fixtures::GOOD {
            assert!(
                s.ingest(&topic("dev-1", kind), json.as_bytes(), NOW),
                "{kind:?}"
            );
        }
        let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
        for (kind, name, bytes, reason) in fixtures::BAD {
            assert!(!s.ingest(&topic("dev-1", *kind), bytes, NOW), "{name}");
            *expected.entry(reason).or_default() += 1;
        }
        assert!(!s.ingest("open_grid_monitor/dev-1/weather", b"{}", NOW));
        assert!(!s.ingest("elsewhere/x", b"{}", NOW));
        assert!(!s.ingest("open_grid_monitor/ogm.dashboard/status", b"{}", NOW));
        *expected.entry(UNKNOWN_TOPIC).or_default() += 3;
        let big = vec![b' '; payload::MAX_PAYLOAD_BYTES + 1];
        assert!(!s.ingest(&topic("dev-1", Kind::Logs), &big, NOW));
        *expected.entry("too_large").or_default() += 1;

        let d = s.diagnostics();
        assert_eq!(d.ignored, expected);
        assert_eq!(d.ignored_total, expected.values().sum::<u64>());
        assert_eq!(d.received, 3 + d.ignored_total);

        let snap = s.snapshot(&DeviceId::new("dev-1").unwrap()).unwrap();
        assert_eq!(snap.frequency, Some(50.02));
        assert_eq!((snap.rssi, snap.free_heap), (Some(-45), Some(234_567)));
        assert_eq!(snap.online, Some(true));
        assert_eq!(s.devices().len(), 1);
    }

    #[test]
    fn last_will_marks_offline_and_a_measurement_brings_it_back() {
        let mut s = DeviceStore::new(TOPIC_PREFIX, Limits::default());
        let id = DeviceId::new("d").unwrap();
        let will = br#"{"timestamp":1703123456789123,"rssi":-60,"free_heap":1,"online":false}"#;
        assert!(s.ingest(&topic("d", Kind::Status), will, NOW));
        assert_eq!(s.snapshot(&id).unwrap().online, Some(false));
        assert!(s.ingest(&topic("d", Kind::Measurement), &measurement(NOW, 50.0), NOW));
        assert_eq!(s.snapshot(&id).unwrap().online, Some(true));
    }

    #[test]
    fn device_count_is_capped_and_stale_devices_make_room() {
        let limits = Limits {
            max_devices: 3,
            ..Limits::default()
        };
        let mut s = DeviceStore::new(TOPIC_PREFIX, limits);
        for i in 0..3 {
            assert!(s.ingest(
                &topic(&format!("d{i}"), Kind::Measurement),
                &measurement(NOW, 50.0),
                NOW
            ));
        }
        assert!(!s.ingest(
            &topic("intruder", Kind::Measurement),
            &measurement(NOW, 50.0),
            NOW
        ));
        assert_eq!(s.diagnostics().ignored.get(TOO_MANY_DEVICES), Some(&1));
        assert_eq!(s.devices().len(), 3);

        // d1 and d2 keep talking; d0 falls silent and, once stale, gives up its slot.
        let later = NOW + limits.stale_us + 1;
        for d in ["d1", "d2"] {
            s.ingest(
                &topic(d, Kind::Measurement),
                &measurement(later, 50.0),
                later,
            );
        }
        s.take_changes();
        assert!(s.ingest(
            &topic("new", Kind::Measurement),
            &measurement(later, 50.0),
            later
        ));
        assert_eq!(s.devices().len(), 3);
        let changes = s.take_changes();
        assert_eq!(changes.removed, [DeviceId::new("d0").unwrap()]);
        assert_eq!(changes.updated, [DeviceId::new("new").unwrap()]);
    }

    #[test]
    fn chart_points_use_device_time_unless_the_clock_is_far_off() {
        let l = Limits::default();
        assert_eq!(chart_time(NOW - 1_000, NOW, &l), NOW - 1_000);
        assert_eq!(chart_time(NOW - 60_000_000, NOW, &l), NOW - 60_000_000);
        assert_eq!(chart_time(NOW + 2_000_000, NOW, &l), NOW + 2_000_000);
        assert_eq!(chart_time(NOW + 60_000_000, NOW, &l), NOW, "clock ahead");
        assert_eq!(
            chart_time(NOW - 3_600_000_000, NOW, &l),
            NOW,
            "clock behind"
        );

        let mut s = DeviceStore::new(TOPIC_PREFIX, l);
        s.ingest(
            &topic("d", Kind::Measurement),
            &measurement(NOW - 3_600_000_000, 50.1),
            NOW,
        );
        let d = &s.devices()[&DeviceId::new("d").unwrap()];
        let pts: Vec<(i64, f64)> = d.frequency.iter().map(|x| (x.mid(), x.mean)).collect();
        assert_eq!(pts, [(NOW, 50.1)]);
    }

    #[test]
    fn changes_are_reported_once() {
        let mut s = DeviceStore::new(TOPIC_PREFIX, Limits::default());
        s.ingest(&topic("a", Kind::Measurement), &measurement(NOW, 50.0), NOW);
        s.ingest(&topic("b", Kind::Status), fixtures::STATUS.as_bytes(), NOW);
        let c = s.take_changes();
        assert_eq!(c.updated.len(), 2);
        assert!(c.chart && c.diagnostics);
        assert_eq!(s.take_changes(), Changes::default());
        s.prune(NOW + 2 * Limits::default().window_us);
        assert!(s.take_changes().chart);
    }

    #[test]
    fn message_rate_is_sampled() {
        let mut s = DeviceStore::new(TOPIC_PREFIX, Limits::default());
        s.sample_rate(0);
        for _ in 0..10 {
            s.ingest("x", b"", NOW);
        }
        s.sample_rate(2_000_000);
        assert_eq!(s.diagnostics().rate_per_s, 5.0);
    }

    #[test]
    fn silence_is_three_usual_intervals_and_retained_messages_are_as_old_as_they_say() {
        let mut s = DeviceStore::new(TOPIC_PREFIX, Limits::default());
        let id = DeviceId::new("d").unwrap();
        // 10 Hz by the device's clock, however bursty the delivery.
        for i in 0..50 {
            s.ingest(
                &topic("d", Kind::Measurement),
                &measurement(NOW + i * 100_000, 50.0),
                NOW,
            );
        }
        let snap = s.snapshot(&id).unwrap();
        assert_eq!(snap.interval_us, 100_000);
        assert_eq!(Liveness::of(&snap, NOW + MIN_SILENCE_US), Liveness::Live);
        assert_eq!(
            Liveness::of(&snap, NOW + MIN_SILENCE_US + 1),
            Liveness::Silent
        );
        // A device heard only through its retained status from an hour ago is silent at once.
        let old = NOW - 3_600_000_000;
        let status = format!(r#"{{"timestamp":{old},"rssi":-60,"free_heap":1}}"#);
        s.ingest_message(&topic("r", Kind::Status), status.as_bytes(), NOW, true)
            .unwrap();
        let r = s.snapshot(&DeviceId::new("r").unwrap()).unwrap();
        assert_eq!(r.last_seen_us, old);
        assert_eq!(r.interval_us, DEFAULT_INTERVAL_US);
        assert_eq!(Liveness::of(&r, NOW), Liveness::Silent);
        // Its last will.
        let will = format!(r#"{{"timestamp":{NOW},"rssi":-60,"free_heap":1,"online":false}}"#);
        s.ingest(&topic("d", Kind::Status), will.as_bytes(), NOW);
        assert_eq!(
            Liveness::of(&s.snapshot(&id).unwrap(), NOW),
            Liveness::Offline
        );
        assert_eq!(silence_limit_us(10_000_000), 30_000_000);
    }

    #[test]
    fn the_server_seeds_devices_not_heard_yet() {
        let mut s = DeviceStore::new(TOPIC_PREFIX, Limits::default());
        s.ingest(&topic("a", Kind::Measurement), &measurement(NOW, 50.0), NOW);
        let views = DeviceView::list_from_json(&format!(
            r#"[{{"device_id":"a","last_seen":1,"online":false}},
                {{"device_id":"b","last_seen":{},"online":false,
                  "last_status":{{"timestamp":{NOW},"rssi":-50,"free_heap":1,"online":false}}}},
                {{"device_id":"c","last_seen":{},"online":false}}]"#,
            NOW,
            NOW - 3_600_000_000
        ))
        .unwrap();
        s.take_changes();
        s.seed(&views, NOW);
        let a = s.snapshot(&DeviceId::new("a").unwrap()).unwrap();
        assert_eq!(a.online, Some(true), "what the page heard itself wins");
        let b = s.snapshot(&DeviceId::new("b").unwrap()).unwrap();
        assert_eq!(Liveness::of(&b, NOW), Liveness::Offline);
        assert_eq!(b.rssi, Some(-50));
        let c = s.snapshot(&DeviceId::new("c").unwrap()).unwrap();
        assert_eq!(Liveness::of(&c, NOW), Liveness::Silent);
        assert_eq!(s.take_changes().updated.len(), 2);
    }

    #[test]
    fn cards_due_spreads_a_hundred_throttled_cards_over_frames() {
        let ids: Vec<DeviceId> = (0..100)
            .map(|i| DeviceId::new(&format!("dev{i:03}")).unwrap())
            .collect();
        let mut shown = BTreeMap::new();
        let waiting: BTreeSet<DeviceId> = ids.iter().cloned().collect();
        // All shown at the same moment, all due again 250 ms later: nine per frame, oldest first.
        for id in &ids {
            shown.insert(id.clone(), 0.0);
        }
        shown.insert(ids[42].clone(), -10.0);
        let due = cards_due(&waiting, &shown, 250.0, 250.0, 9);
        assert_eq!(due.len(), 9);
        assert_eq!(due[0], ids[42]);
        // Not due before the interval; never-shown cards first and always due.
        assert!(cards_due(&waiting, &shown, 239.0, 250.0, 9).is_empty());
        let fresh = DeviceId::new("fresh").unwrap();
        let with_new: Vec<&DeviceId> = waiting.iter().chain([&fresh]).collect();
        assert_eq!(cards_due(with_new, &shown, 10.0, 250.0, 9), vec![fresh]);
        // Simulated frames: every card is updated again within 12 frames of becoming due.
        let mut waiting = waiting;
        let mut frames = 0;
        let mut now = 250.0;
        while !waiting.is_empty() {
            for id in cards_due(&waiting, &shown, now, 250.0, 9) {
                waiting.remove(&id);
                shown.insert(id, now);
            }
            frames += 1;
            now += 16.7;
        }
        assert_eq!(frames, 12);
    }
}
