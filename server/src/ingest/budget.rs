//! Per-device budgets: how much one device may store, measured on the device's own timeline.
//!
//! A device is allowed what a real board could send: at most `messages_per_sec` messages and
//! `bytes_per_sec` payload bytes whose timestamps fall in the same second. The budget follows
//! the timestamps, not the receive time, on purpose: after a server outage the broker delivers
//! a device's backlog of hours within seconds, and a board's offline buffer arrives late; both
//! carry timestamps spread over the time they were measured, so both pass, while a flood
//! (thousands of messages stamped within a second, or with no timestamp, which the ingest then
//! stamps with its receive clock) is cut at the budget.
//!
//! Seconds are remembered for the last [`SECONDS_KEPT`] of them, minutes (at 60 times the
//! budget) for the last [`MINUTES_KEPT`], per device: a stretch that arrives out of order, a
//! board's offline buffer replayed among live data, is still counted by its minute. What is
//! older than every minute remembered, once as many are, cannot be counted and is refused: a
//! backlog arrives in order, oldest first, so it never is. Pure: no clock, no I/O.

use std::collections::{BTreeMap, HashMap};

use ogm_protocol::DeviceId;

/// Seconds remembered per device.
const SECONDS_KEPT: usize = 120;
/// Minutes remembered per device: six hours of out-of-order arrivals.
const MINUTES_KEPT: usize = 360;
/// Devices remembered; past it the least recently seen is forgotten.
const DEVICES_KEPT: usize = 10_000;

/// The limits; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetLimits {
    /// Messages (of all kinds) per device per second of its timestamps.
    pub messages_per_sec: u32,
    /// Payload bytes (of all kinds) per device per second of its timestamps.
    pub bytes_per_sec: u64,
}

/// Why a message is over its device's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverBudget {
    Messages,
    Bytes,
}

impl OverBudget {
    /// The reason counted in `/metrics` and shown in `/api/ingest/rejected`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Messages => "over_message_budget",
            Self::Bytes => "over_byte_budget",
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Spent {
    messages: u32,
    bytes: u64,
}

#[derive(Debug, Default)]
struct Device {
    /// Second (of the device's timestamps) → what was admitted in it.
    seconds: BTreeMap<i64, Spent>,
    /// Minute → what was admitted in it.
    minutes: BTreeMap<i64, Spent>,
    /// When this device was last seen, in admissions (for forgetting the idlest device).
    last_seen: u64,
}

/// The budgets of every device seen recently.
#[derive(Debug)]
pub struct Budgets {
    limits: BudgetLimits,
    devices: HashMap<DeviceId, Device>,
    tick: u64,
}

impl Budgets {
    pub fn new(limits: BudgetLimits) -> Self {
        Self {
            limits,
            devices: HashMap::new(),
            tick: 0,
        }
    }

    /// Admits a message of `bytes` stamped `timestamp_us` from `device`, spending its budget,
    /// or says why not (and spends nothing).
    pub fn admit(
        &mut self,
        device: &DeviceId,
        timestamp_us: i64,
        bytes: usize,
    ) -> Result<(), OverBudget> {
        let BudgetLimits {
            messages_per_sec,
            bytes_per_sec,
        } = self.limits;
        if messages_per_sec == 0 && bytes_per_sec == 0 {
            return Ok(());
        }
        self.tick += 1;
        if !self.devices.contains_key(device) && self.devices.len() >= DEVICES_KEPT {
            self.forget_idlest();
        }
        let d = self.devices.entry(device.clone()).or_default();
        d.last_seen = self.tick;
        let second = timestamp_us.div_euclid(1_000_000);
        let minute = second.div_euclid(60);
        let bytes = bytes as u64;
        // Older than every minute remembered: it cannot be counted, so it is not admitted.
        if forgotten(&d.minutes, minute, MINUTES_KEPT) {
            return Err(OverBudget::Messages);
        }
        let per_minute = (
            messages_per_sec.saturating_mul(60),
            bytes_per_sec.saturating_mul(60),
        );
        check(&d.minutes, minute, per_minute, bytes)?;
        // A second older than those remembered is counted by its minute alone.
        let by_second = !forgotten(&d.seconds, second, SECONDS_KEPT);
        if by_second {
            check(&d.seconds, second, (messages_per_sec, bytes_per_sec), bytes)?;
            spend(&mut d.seconds, second, bytes, SECONDS_KEPT);
        }
        spend(&mut d.minutes, minute, bytes, MINUTES_KEPT);
        Ok(())
    }

    #[cfg(test)]
    fn devices(&self) -> usize {
        self.devices.len()
    }

    fn forget_idlest(&mut self) {
        if let Some(id) = self
            .devices
            .iter()
            .min_by_key(|(_, d)| d.last_seen)
            .map(|(id, _)| id.clone())
        {
            self.devices.remove(&id);
        }
    }
}

/// Whether `key` is older than every one of `kept` entries remembered (so it was forgotten).
fn forgotten(spent: &BTreeMap<i64, Spent>, key: i64, kept: usize) -> bool {
    spent.len() >= kept
        && spent
            .first_key_value()
            .is_some_and(|(first, _)| key < *first)
}

/// Whether one more message of `bytes` fits in `key`'s period under `(messages, bytes)` (0: no
/// limit).
fn check(
    spent: &BTreeMap<i64, Spent>,
    key: i64,
    (max_messages, max_bytes): (u32, u64),
    bytes: u64,
) -> Result<(), OverBudget> {
    let s = spent.get(&key).copied().unwrap_or_default();
    if max_messages > 0 && s.messages >= max_messages {
        return Err(OverBudget::Messages);
    }
    if max_bytes > 0 && s.bytes.saturating_add(bytes) > max_bytes {
        return Err(OverBudget::Bytes);
    }
    Ok(())
}

/// Spends one message of `bytes` in `key`'s period, forgetting the oldest past `kept`.
fn spend(spent: &mut BTreeMap<i64, Spent>, key: i64, bytes: u64, kept: usize) {
    let s = spent.entry(key).or_default();
    s.messages += 1;
    s.bytes = s.bytes.saturating_add(bytes);
    if spent.len() > kept {
        spent.pop_first();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_780_000_000_000_000;

    fn dev(id: &str) -> DeviceId {
        DeviceId::new(id).unwrap()
    }

    fn budgets() -> Budgets {
        Budgets::new(BudgetLimits {
            messages_per_sec: 100,
            bytes_per_sec: 64 * 1024,
        })
    }

    #[test]
    fn a_flood_stamped_within_a_second_is_cut_at_the_budget() {
        let mut b = budgets();
        let d = dev("flood");
        let admitted = (0..10_000)
            .filter(|i| b.admit(&d, T0 + i * 50, 150).is_ok())
            .count();
        assert_eq!(admitted, 100);
        assert_eq!(b.admit(&d, T0 + 1, 150), Err(OverBudget::Messages));
        // Another device is not affected.
        assert_eq!(b.admit(&dev("calm"), T0, 150), Ok(()));
    }

    #[test]
    fn a_backlog_of_hours_delivered_at_once_passes_whole() {
        // Two hours at 50 Hz, delivered as fast as the broker can: the timestamps spread it.
        let mut b = budgets();
        let d = dev("backlog");
        let n = 2 * 3600 * 50;
        let admitted = (0..n)
            .filter(|i| b.admit(&d, T0 + i * 20_000, 200).is_ok())
            .count();
        assert_eq!(admitted, n as usize);
    }

    #[test]
    fn big_log_lines_are_cut_by_bytes_and_other_seconds_still_pass() {
        let mut b = budgets();
        let d = dev("chatty");
        let admitted = (0..5_000)
            .filter(|i| b.admit(&d, T0 + i, 4096).is_ok())
            .count();
        assert_eq!(admitted, 16, "64 KiB of 4 KiB lines");
        assert_eq!(b.admit(&d, T0 + 5, 4096), Err(OverBudget::Bytes));
        assert_eq!(b.admit(&d, T0 + 1_000_000, 4096), Ok(()));
    }

    #[test]
    fn zero_turns_the_budget_off() {
        let mut b = Budgets::new(BudgetLimits {
            messages_per_sec: 0,
            bytes_per_sec: 0,
        });
        let d = dev("any");
        assert!((0..10_000).all(|_| b.admit(&d, T0, 16_000).is_ok()));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut b = budgets();
        for i in 0..(DEVICES_KEPT as i64 + 50) {
            let d = dev(&format!("d{i}"));
            for s in 0..3 {
                b.admit(&d, T0 + s * 1_000_000, 100).unwrap();
            }
        }
        assert_eq!(b.devices(), DEVICES_KEPT);
        let d = dev("long");
        for s in 0..(MINUTES_KEPT as i64 + 10) * 60 {
            b.admit(&d, T0 + s * 1_000_000, 100).unwrap();
        }
        assert_eq!(b.devices[&d].seconds.len(), SECONDS_KEPT);
        assert_eq!(b.devices[&d].minutes.len(), MINUTES_KEPT);
    }

    #[test]
    fn old_seconds_are_still_counted_by_their_minute() {
        // A flood into a second ten minutes back: while fewer than 120 seconds are
        // remembered, that second is remembered too and cut at 100; once 120 are, it is older
        // than all of them and cut by its minute's budget of 6 000.
        let mut b = budgets();
        let d = dev("sly");
        for s in 0..60 {
            b.admit(&d, T0 + 600_000_000 + s * 1_000_000, 100).unwrap();
        }
        let t = T0 - (T0 % 60_000_000);
        let admitted = (0..10_000)
            .filter(|i| b.admit(&d, t + i, 10).is_ok())
            .count();
        assert_eq!(
            admitted, 100,
            "the second is new: it is remembered and counted"
        );
        let mut b = budgets();
        for s in 0..200 {
            b.admit(&d, T0 + 3_600_000_000 + s * 1_000_000, 100)
                .unwrap();
        }
        let admitted = (0..10_000)
            .filter(|i| b.admit(&d, t + i * 1_000, 10).is_ok())
            .count();
        assert_eq!(admitted, 6_000, "an old second: counted by its minute");
    }

    #[test]
    fn an_offline_buffer_replayed_among_live_data_passes_and_older_than_remembered_does_not() {
        let mut b = budgets();
        let d = dev("board");
        // Two hours live at 10 Hz, with the buffered hour before it replayed interleaved.
        let live = T0 + 3_600_000_000;
        for i in 0..36_000 {
            b.admit(&d, live + i * 100_000, 200).unwrap();
            b.admit(&d, T0 + i * 100_000, 200).unwrap();
        }
        // Once six hours of minutes are remembered, what is older still cannot be counted.
        for m in 0..MINUTES_KEPT as i64 {
            b.admit(&d, live + 7_200_000_000 + m * 60_000_000, 200)
                .unwrap();
        }
        assert_eq!(b.admit(&d, T0, 200), Err(OverBudget::Messages));
    }
}
