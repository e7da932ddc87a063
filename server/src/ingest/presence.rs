//! [`Presences`]: what the ingest has learnt about each device for the online/silent/offline
//! rule of `GET /api/devices` ([`ogm_protocol::liveness`], the same rule the dashboard uses).
//!
//! In memory only. The ingest feeds it every record it has committed, in arrival order
//! ([`Presences::observe`]): each device's usual interval is learnt from the timestamps of its
//! measurements (else of its statuses), and a status with `online: false` (its last will)
//! counts as its last word until something newer arrives, even though a will is stamped when
//! the device connected, before the measurements that followed.
//!
//! After a restart, until a device has sent two measurements again:
//! - [`seed_from_store`] (run once at start-up, in the background) learns the interval of each
//!   device heard from in the last 30 minutes (the longest silence limit the rule can learn)
//!   from its stored measurements of the 10 minutes before its newest: one history query per
//!   such device;
//! - whatever is still unknown falls back to the rule's default interval (10 s: silent after
//!   30 s), and whether the last will is the last word falls back to the store: its newest status
//!   (by timestamp) says `online: false` and no measurement is newer. The broker resends a
//!   device's retained will to the server when it subscribes, so a device that died while the
//!   server was down is usually known to be offline again at once.
//!
//! Behind a shared subscription each replica sees only its share of a device's messages and so
//! learns a longer interval (two replicas: about twice): it then calls a device silent later,
//! never sooner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use ogm_protocol::liveness::{MAX_LEARNT_GAP_US, SILENT_INTERVALS};
use ogm_protocol::{DeviceId, Payload, Presence};
use ogm_store::{Field, HistoryQuery, Record, Store};

/// Most devices tracked; beyond, new devices get the fallback rule.
pub const MAX_DEVICES: usize = 100_000;
/// How far back from a device's newest measurement [`seed_from_store`] reads, µs.
pub const SEED_WINDOW_US: i64 = MAX_LEARNT_GAP_US;
/// Most points one seeding query returns (beyond: buckets, from which the rate is estimated).
const SEED_MAX_POINTS: u32 = 1_000;

/// Per-device [`Presence`], shared by the ingest (writes) and the HTTP API (reads).
#[derive(Debug, Default)]
pub struct Presences {
    devices: Mutex<HashMap<DeviceId, Presence>>,
}

impl Presences {
    /// Takes committed records, in the order they arrived.
    pub fn observe(&self, records: &[Record]) {
        let mut devices = self.devices.lock().unwrap_or_else(PoisonError::into_inner);
        for r in records {
            if let Some(p) = devices.get_mut(&r.device_id) {
                apply(p, &r.payload);
            } else if devices.len() < MAX_DEVICES {
                apply(devices.entry(r.device_id.clone()).or_default(), &r.payload);
            }
        }
    }

    /// What is known about `id`.
    pub fn get(&self, id: &DeviceId) -> Option<Presence> {
        self.devices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .copied()
    }

    /// What is known about each of `ids`, under one lock.
    pub fn get_all<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a DeviceId>,
    ) -> Vec<Option<Presence>> {
        let devices = self.devices.lock().unwrap_or_else(PoisonError::into_inner);
        ids.into_iter().map(|id| devices.get(id).copied()).collect()
    }

    /// Sets `id`'s measurement interval unless one was learnt meanwhile.
    fn seed_interval(&self, id: &DeviceId, interval_us: i64) -> bool {
        let mut devices = self.devices.lock().unwrap_or_else(PoisonError::into_inner);
        if !devices.contains_key(id) && devices.len() >= MAX_DEVICES {
            return false;
        }
        let p = devices.entry(id.clone()).or_default();
        if p.measurement_interval_us.is_some() {
            return false;
        }
        p.measurement_interval_us = Some(interval_us);
        true
    }
}

fn apply(p: &mut Presence, payload: &Payload) {
    match payload {
        Payload::Measurement(m) => p.measurement(m.timestamp),
        Payload::Status(s) => p.status(s.timestamp, s.online),
        Payload::Logs(_) => {}
    }
}

/// The measurement interval that `points` (a history answer of the frequency, oldest first)
/// show, µs: raw points go through the rule's own learning; buckets give their mean spacing.
fn interval_from_history(history: &ogm_store::History, newest_us: i64) -> Option<i64> {
    if history.interval_us == 0 {
        let mut p = Presence::default();
        for b in &history.points {
            p.measurement(b.t);
        }
        return p.measurement_interval_us;
    }
    let first = history.points.first()?.t;
    let count: u64 = history.points.iter().map(|b| b.count).sum();
    let gaps = i64::try_from(count.checked_sub(1)?)
        .ok()
        .filter(|g| *g > 0)?;
    let span = newest_us.saturating_sub(first);
    (span > 0).then(|| (span / gaps).max(1))
}

/// Learns, from the store, the interval of every device heard from recently whose interval is
/// not known yet (see the module docs). Returns how many were learnt. Store errors for one
/// device are logged and skipped.
pub async fn seed_from_store(
    store: Arc<dyn Store>,
    presences: Arc<Presences>,
    now_us: i64,
) -> usize {
    let devices = match store.devices().await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "could not list devices to learn their intervals");
            return 0;
        }
    };
    let recent = now_us.saturating_sub(SILENT_INTERVALS.saturating_mul(MAX_LEARNT_GAP_US));
    let mut learnt = 0;
    for d in devices {
        let Some(newest) = d.last_measurement.map(|m| m.timestamp) else {
            continue;
        };
        if newest < recent
            || presences
                .get(&d.device_id)
                .is_some_and(|p| p.measurement_interval_us.is_some())
        {
            continue;
        }
        let query = HistoryQuery::new(
            d.device_id.clone(),
            Field::Frequency,
            newest.saturating_sub(SEED_WINDOW_US),
            newest.saturating_add(1),
            SEED_MAX_POINTS,
        );
        let answer = match query {
            Ok(q) => store.history(q).await,
            Err(e) => {
                tracing::warn!(device = %d.device_id, error = %e, "no query for recent measurements");
                continue;
            }
        };
        match answer {
            Ok(h) => {
                if let Some(i) = interval_from_history(&h, newest)
                    && presences.seed_interval(&d.device_id, i)
                {
                    learnt += 1;
                }
            }
            Err(e) => {
                tracing::warn!(device = %d.device_id, error = %e, "could not read recent measurements");
            }
        }
    }
    tracing::info!(devices = learnt, "learnt device intervals from the store");
    learnt
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogm_protocol::{DeviceState, fixtures};
    use ogm_store::{Bucket, History};

    const T: i64 = 1_703_123_456_000_000;

    fn id(s: &str) -> DeviceId {
        DeviceId::new(s).unwrap()
    }

    fn m(dev: &str, t: i64) -> Record {
        Record {
            device_id: id(dev),
            payload: Payload::Measurement(fixtures::measurement(t, 50.0)),
        }
    }

    fn status(dev: &str, t: i64, online: Option<bool>) -> Record {
        Record {
            device_id: id(dev),
            payload: Payload::Status(fixtures::status(t, online)),
        }
    }

    #[test]
    fn observed_records_teach_each_device_its_interval_and_its_last_will() {
        let p = Presences::default();
        assert_eq!(p.get(&id("a")), None);
        // Two devices interleaved in one batch: 1 Hz and 0.5 Hz.
        let batch: Vec<Record> = (0..6)
            .flat_map(|i| [m("a", T + i * 1_000_000), m("b", T + i * 2_000_000)])
            .collect();
        p.observe(&batch);
        let a = p.get(&id("a")).unwrap();
        assert_eq!(a.learnt_interval_us(), Some(1_000_000));
        assert_eq!(p.get(&id("b")).unwrap().interval_us(), 2_000_000);
        let last = T + 5_000_000;
        assert_eq!(a.state(last, last + 5_000_000), DeviceState::Online);
        assert_eq!(a.state(last, last + 5_000_001), DeviceState::Silent);
        // The will, stamped when it connected, arrives last: offline.
        p.observe(&[status("a", T - 1, Some(false))]);
        assert_eq!(
            p.get(&id("a")).unwrap().state(last, last),
            DeviceState::Offline
        );
        p.observe(&[m("a", last + 1_000_000)]);
        let a = p.get(&id("a")).unwrap();
        assert_eq!(a.state(last, last), DeviceState::Online);
        assert_eq!(
            p.get_all([&id("b"), &id("zz")])
                .iter()
                .map(|p| p.is_some())
                .collect::<Vec<_>>(),
            [true, false]
        );
    }

    #[test]
    fn seeding_never_overrides_what_was_learnt_live() {
        let p = Presences::default();
        assert!(p.seed_interval(&id("a"), 3_000_000));
        assert_eq!(p.get(&id("a")).unwrap().interval_us(), 3_000_000);
        p.observe(&[m("b", T), m("b", T + 1_000_000)]);
        assert!(!p.seed_interval(&id("b"), 3_000_000));
        assert_eq!(p.get(&id("b")).unwrap().interval_us(), 1_000_000);
    }

    /// `n` buckets `step_us` apart from `T`, of `count` readings each.
    fn history(interval_us: i64, n: i64, step_us: i64, count: u64) -> History {
        History {
            interval_us,
            points: (0..n)
                .map(|i| Bucket {
                    t: T + i * step_us,
                    min: 50.0,
                    mean: 50.0,
                    max: 50.0,
                    count,
                })
                .collect(),
        }
    }

    #[test]
    fn the_interval_is_read_from_raw_points_or_buckets() {
        let raw = history(0, 10, 2_000_000, 1);
        assert_eq!(interval_from_history(&raw, T + 18_000_000), Some(2_000_000));
        let one = History {
            interval_us: 0,
            points: raw.points[..1].to_vec(),
        };
        assert_eq!(interval_from_history(&one, T), None);
        // 10 Hz in 1 s buckets over 60 s.
        let buckets = history(1_000_000, 60, 1_000_000, 10);
        let i = interval_from_history(&buckets, T + 59_900_000).unwrap();
        assert!((i - 100_000).abs() < 1_000, "{i}");
    }
}
