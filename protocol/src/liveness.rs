//! Whether a device is online, silent or offline: the one rule the dashboard and the server's
//! `GET /api/devices` share. Pure, no clock of its own: callers pass the time.
//!
//! - **offline**: its last will (a status with `online: false`) is the last word from it, in
//!   arrival order; a measurement or a status without `online: false` after it brings it back;
//! - **silent**: nothing for [`SILENT_INTERVALS`] times its usual interval, but never after less
//!   than [`MIN_SILENCE_US`] ([`silence_limit_us`]);
//! - **online** otherwise.
//!
//! The usual interval is learnt from the device's own timestamps, not from arrival times (which
//! bunch up after a reconnect): [`learn_interval`] moves an estimate a tenth of the way towards
//! each new gap between successive timestamps, ignoring gaps that are not positive or longer
//! than [`MAX_LEARNT_GAP_US`]. The measurement interval counts; without one, the status
//! interval; without either, [`DEFAULT_INTERVAL_US`] ([`usual_interval_us`]). [`Presence`]
//! keeps all of that for one device, fed one message at a time.

/// The usual interval assumed before a device has shown its own: the status interval, µs.
pub const DEFAULT_INTERVAL_US: i64 = 10_000_000;
/// A device is silent after this many usual intervals without a message.
pub const SILENT_INTERVALS: i64 = 3;
/// ... but never after less than this, µs (delivery jitter on fast devices).
pub const MIN_SILENCE_US: i64 = 5_000_000;
/// Gaps between successive timestamps longer than this (µs) are outages, not the interval.
pub const MAX_LEARNT_GAP_US: i64 = 600_000_000;

/// The interval estimate after a message stamped `ts` whose predecessor of the same kind was
/// stamped `prev_ts` (µs): the first gap as it is, then a tenth of the way towards each new gap.
/// Gaps that are not positive or longer than [`MAX_LEARNT_GAP_US`] leave it unchanged.
pub fn learn_interval(current: Option<i64>, prev_ts: Option<i64>, ts: i64) -> Option<i64> {
    let Some(prev) = prev_ts else {
        return current;
    };
    let dt = ts.saturating_sub(prev);
    if dt <= 0 || dt > MAX_LEARNT_GAP_US {
        return current;
    }
    Some(match current {
        None => dt,
        Some(c) => c + (dt - c) / 10,
    })
}

/// The usual interval between a device's messages, µs: its measurement interval, else its
/// status interval, else [`DEFAULT_INTERVAL_US`].
pub fn usual_interval_us(measurement_us: Option<i64>, status_us: Option<i64>) -> i64 {
    measurement_us.or(status_us).unwrap_or(DEFAULT_INTERVAL_US)
}

/// How long a device with this usual interval may be silent before it counts as silent, µs.
pub fn silence_limit_us(interval_us: i64) -> i64 {
    SILENT_INTERVALS
        .saturating_mul(interval_us)
        .max(MIN_SILENCE_US)
}

/// What a device is now. The API spells it `online`, `silent` or `offline` ([`Self::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceState {
    /// Sending as usual.
    Online,
    /// Nothing for [`silence_limit_us`] of its usual interval.
    Silent,
    /// Its last will (or its own status) says it is offline.
    Offline,
}

impl DeviceState {
    /// The rule. `online`: the newest word in arrival order (`Some(false)` after the last will;
    /// `None` when nothing says). `last_seen_us`: when it was last heard from.
    pub fn of(online: Option<bool>, last_seen_us: i64, interval_us: i64, now_us: i64) -> Self {
        if online == Some(false) {
            DeviceState::Offline
        } else if now_us.saturating_sub(last_seen_us) > silence_limit_us(interval_us) {
            DeviceState::Silent
        } else {
            DeviceState::Online
        }
    }

    /// `"online"`, `"silent"` or `"offline"`, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Online => "online",
            DeviceState::Silent => "silent",
            DeviceState::Offline => "offline",
        }
    }

    /// The state [`Self::as_str`] spells `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [
            DeviceState::Online,
            DeviceState::Silent,
            DeviceState::Offline,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

spelled_by_as_str!(DeviceState, "unknown device state");

/// What the rule needs to know about one device, fed one message at a time in arrival order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Presence {
    /// Timestamp of the previous measurement, and the learnt measurement interval, µs.
    pub last_measurement_us: Option<i64>,
    pub measurement_interval_us: Option<i64>,
    /// Timestamp of the previous status, and the learnt status interval, µs.
    pub last_status_us: Option<i64>,
    pub status_interval_us: Option<i64>,
    /// The newest word on whether it is online: a measurement says yes, a status says what its
    /// `online` says (absent: yes).
    pub online: Option<bool>,
}

impl Presence {
    /// A measurement stamped `ts` (µs) arrived.
    pub fn measurement(&mut self, ts: i64) {
        self.measurement_interval_us =
            learn_interval(self.measurement_interval_us, self.last_measurement_us, ts);
        self.last_measurement_us = Some(ts);
        self.online = Some(true);
    }

    /// A status stamped `ts` (µs) with this `online` field arrived.
    pub fn status(&mut self, ts: i64, online: Option<bool>) {
        self.status_interval_us = learn_interval(self.status_interval_us, self.last_status_us, ts);
        self.last_status_us = Some(ts);
        self.online = Some(online.unwrap_or(true));
    }

    /// The interval learnt so far, if any (measurements first, then statuses), µs.
    pub fn learnt_interval_us(&self) -> Option<i64> {
        self.measurement_interval_us.or(self.status_interval_us)
    }

    /// The usual interval ([`usual_interval_us`]), µs.
    pub fn interval_us(&self) -> i64 {
        usual_interval_us(self.measurement_interval_us, self.status_interval_us)
    }

    /// The rule for this device, last heard from at `last_seen_us`.
    pub fn state(&self, last_seen_us: i64, now_us: i64) -> DeviceState {
        DeviceState::of(self.online, last_seen_us, self.interval_us(), now_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_703_123_456_789_123;

    #[test]
    fn the_interval_is_learnt_from_successive_timestamps() {
        assert_eq!(
            learn_interval(None, None, T),
            None,
            "one timestamp says nothing"
        );
        assert_eq!(
            learn_interval(None, Some(T), T + 1_000_000),
            Some(1_000_000)
        );
        // A tenth of the way towards each new gap.
        assert_eq!(
            learn_interval(Some(1_000_000), Some(T), T + 2_000_000),
            Some(1_100_000)
        );
        // Repeats, reordering and outages leave it alone.
        for prev in [T, T + 1, T - MAX_LEARNT_GAP_US - 1] {
            assert_eq!(learn_interval(Some(7), Some(prev), T), Some(7), "{prev}");
        }
        assert_eq!(learn_interval(None, Some(i64::MIN), i64::MAX), None);
        // Steady 10 Hz converges to 100 ms whatever the first estimate.
        let mut c = Some(900_000);
        for i in 1..200 {
            c = learn_interval(c, Some(T + (i - 1) * 100_000), T + i * 100_000);
        }
        assert!((c.unwrap() - 100_000).abs() < 100, "{c:?}");
    }

    #[test]
    fn silence_is_three_usual_intervals_with_a_floor() {
        assert_eq!(silence_limit_us(10_000_000), 30_000_000);
        assert_eq!(silence_limit_us(60_000_000), 180_000_000);
        assert_eq!(silence_limit_us(1_000_000), MIN_SILENCE_US);
        assert_eq!(silence_limit_us(100_000), MIN_SILENCE_US);
        assert_eq!(silence_limit_us(i64::MAX), i64::MAX);
        assert_eq!(usual_interval_us(Some(1), Some(2)), 1);
        assert_eq!(usual_interval_us(None, Some(2)), 2);
        assert_eq!(usual_interval_us(None, None), DEFAULT_INTERVAL_US);
    }

    #[test]
    fn state_follows_the_last_will_and_silence() {
        let limit = silence_limit_us(2_000_000);
        assert_eq!(
            DeviceState::of(None, T, 2_000_000, T + limit),
            DeviceState::Online
        );
        assert_eq!(
            DeviceState::of(Some(true), T, 2_000_000, T + limit + 1),
            DeviceState::Silent
        );
        assert_eq!(
            DeviceState::of(Some(false), T, 2_000_000, T),
            DeviceState::Offline
        );
        assert_eq!(
            DeviceState::of(None, i64::MIN, 1, i64::MAX),
            DeviceState::Silent
        );
        let names = [
            DeviceState::Online,
            DeviceState::Silent,
            DeviceState::Offline,
        ]
        .map(DeviceState::as_str);
        assert_eq!(names, ["online", "silent", "offline"]);
    }

    #[test]
    fn presence_learns_from_measurements_first_and_follows_the_last_will_in_arrival_order() {
        let mut p = Presence::default();
        assert_eq!(
            (p.learnt_interval_us(), p.interval_us()),
            (None, DEFAULT_INTERVAL_US)
        );
        p.status(T, Some(true));
        p.status(T + 10_000_000, None);
        assert_eq!(p.learnt_interval_us(), Some(10_000_000));
        for i in 0..5 {
            p.measurement(T + i * 1_000_000);
        }
        assert_eq!(p.interval_us(), 1_000_000, "measurements first");
        let last = T + 4_000_000;
        assert_eq!(p.state(last, last + MIN_SILENCE_US), DeviceState::Online);
        assert_eq!(
            p.state(last, last + MIN_SILENCE_US + 1),
            DeviceState::Silent
        );
        // The will is stamped when the device connected, before its measurements: it still wins,
        // because it arrived last.
        p.status(T, Some(false));
        assert_eq!(p.state(last, last), DeviceState::Offline);
        p.measurement(last + 1_000_000);
        assert_eq!(
            p.state(last + 1_000_000, last + 1_000_000),
            DeviceState::Online
        );
    }
}
