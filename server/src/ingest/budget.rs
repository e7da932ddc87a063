//! Per-device budgets: how much one device may store, measured on the device's own timeline.
//!
//! A device is allowed what a real board could send: at most `messages_per_sec` messages and
//! `bytes_per_sec` payload bytes whose timestamps fall in the same second. The budget follows
//! the timestamps, not the receive time, on purpose: after a server outage the broker delivers
//! a device's backlog of hours within seconds, and a board's offline buffer arrives late; both
//! carry timestamps spread over the time they were measured, so both pass, while a flood
//! (thousands of messages stamped within a second, or with no timestamp, which the ingest then
//! stamps with its receive clock) is cut at the budget. Pure: no clock, no I/O.

use std::collections::{BTreeMap, HashMap};

use ogm_protocol::DeviceId;

/// Seconds remembered per device: enough for the out-of-order arrivals of a backlog.
const SECONDS_KEPT: usize = 120;
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
        let spent = d.seconds.get(&second).copied().unwrap_or_default();
        let bytes = bytes as u64;
        if messages_per_sec > 0 && spent.messages >= messages_per_sec {
            return Err(OverBudget::Messages);
        }
        if bytes_per_sec > 0 && spent.bytes.saturating_add(bytes) > bytes_per_sec {
            return Err(OverBudget::Bytes);
        }
        d.seconds.insert(
            second,
            Spent {
                messages: spent.messages + 1,
                bytes: spent.bytes.saturating_add(bytes),
            },
        );
        if d.seconds.len() > SECONDS_KEPT {
            d.seconds.pop_first();
        }
        Ok(())
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
        assert_eq!(b.devices.len(), DEVICES_KEPT);
        let d = dev("long");
        for s in 0..1000 {
            b.admit(&d, T0 + s * 1_000_000, 100).unwrap();
        }
        assert_eq!(b.devices[&d].seconds.len(), SECONDS_KEPT);
    }
}
