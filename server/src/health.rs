//! What `GET /api/health` says, decided by a pure rule from what the ingest, the store and the
//! disk report, so each degraded state is tested without staging it.

use serde::Serialize;

/// How long a batch may stay uncommitted, or the broker may receive publishes that never reach
/// the ingest, before the ingest counts as stalled. Three of Mosquitto's `$SYS` intervals
/// (10 s by default), so one late report does not flip it.
pub const STALL_US: i64 = 30_000_000;

/// The data directory's free space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Disk {
    pub free_bytes: u64,
    /// Below this, health is degraded: a warning before writes fail.
    pub min_free_bytes: u64,
}

/// Everything the rule looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs {
    pub now_us: i64,
    pub mqtt_connected: bool,
    pub mqtt_subscribed: bool,
    /// The store answers a query.
    pub store_answers: bool,
    /// The last store write failed; the ingest is retrying it.
    pub store_failing: bool,
    /// Since when the ingest holds a batch it has not committed (0: none).
    pub uncommitted_since_us: i64,
    /// When the ingest last received a device message (0: never).
    pub last_received_us: i64,
    /// When the broker's count of received publishes was last seen to grow (0: never).
    pub broker_published_us: i64,
    /// `None` where the free space cannot be read.
    pub disk: Option<Disk>,
}

/// A reason for `degraded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    BrokerDisconnected,
    NotSubscribed,
    StoreFailing,
    /// Messages wait and nothing is stored, or the broker takes publishes the ingest never gets.
    IngestStalled,
    LowDiskSpace,
}

/// The verdict: `ok` when there is no problem.
pub fn assess(i: &Inputs) -> Vec<Problem> {
    let mut p = Vec::new();
    if !i.mqtt_connected {
        p.push(Problem::BrokerDisconnected);
    } else if !i.mqtt_subscribed {
        p.push(Problem::NotSubscribed);
    }
    if !i.store_answers || i.store_failing {
        p.push(Problem::StoreFailing);
    }
    if stalled(i) {
        p.push(Problem::IngestStalled);
    }
    if i.disk.is_some_and(|d| d.free_bytes < d.min_free_bytes) {
        p.push(Problem::LowDiskSpace);
    }
    p
}

/// A batch uncommitted for longer than [`STALL_US`], or publishes the broker took more than
/// [`STALL_US`] after the ingest's last message (every publish a client may make is a device's,
/// so every one is the ingest's).
pub fn stalled(i: &Inputs) -> bool {
    let waiting = i.uncommitted_since_us > 0 && i.now_us - i.uncommitted_since_us > STALL_US;
    let starved =
        i.broker_published_us > 0 && i.broker_published_us - i.last_received_us > STALL_US;
    waiting || starved
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000_000;

    fn fine() -> Inputs {
        Inputs {
            now_us: NOW,
            mqtt_connected: true,
            mqtt_subscribed: true,
            store_answers: true,
            store_failing: false,
            uncommitted_since_us: NOW - 1_000,
            last_received_us: NOW - 1_000,
            broker_published_us: NOW - 5_000_000,
            disk: Some(Disk {
                free_bytes: 10 << 30,
                min_free_bytes: 256 << 20,
            }),
        }
    }

    #[test]
    fn all_well_is_ok() {
        assert_eq!(assess(&fine()), []);
        assert_eq!(
            assess(&Inputs {
                disk: None,
                ..fine()
            }),
            []
        );
    }

    #[test]
    fn each_fault_degrades_with_its_reason() {
        let cases = [
            (
                Inputs {
                    mqtt_connected: false,
                    ..fine()
                },
                Problem::BrokerDisconnected,
            ),
            (
                Inputs {
                    mqtt_subscribed: false,
                    ..fine()
                },
                Problem::NotSubscribed,
            ),
            (
                Inputs {
                    store_failing: true,
                    ..fine()
                },
                Problem::StoreFailing,
            ),
            (
                Inputs {
                    store_answers: false,
                    ..fine()
                },
                Problem::StoreFailing,
            ),
            (
                Inputs {
                    uncommitted_since_us: NOW - STALL_US - 1,
                    ..fine()
                },
                Problem::IngestStalled,
            ),
            (
                Inputs {
                    last_received_us: NOW - 60_000_000,
                    broker_published_us: NOW - 10_000_000,
                    ..fine()
                },
                Problem::IngestStalled,
            ),
            (
                Inputs {
                    disk: Some(Disk {
                        free_bytes: 1 << 20,
                        min_free_bytes: 256 << 20,
                    }),
                    ..fine()
                },
                Problem::LowDiskSpace,
            ),
        ];
        for (inputs, problem) in cases {
            assert_eq!(assess(&inputs), [problem], "{inputs:?}");
        }
    }

    #[test]
    fn a_quiet_grid_is_not_a_stall() {
        // Nothing published anywhere for an hour: nothing is missing.
        let quiet = Inputs {
            uncommitted_since_us: 0,
            last_received_us: NOW - 3_600_000_000,
            broker_published_us: NOW - 3_600_000_000,
            ..fine()
        };
        assert_eq!(assess(&quiet), []);
        // Publishes seen by the broker before the ingest's last message are not missing.
        let caught_up = Inputs {
            last_received_us: NOW - 20_000_000,
            broker_published_us: NOW - 25_000_000,
            ..fine()
        };
        assert_eq!(assess(&caught_up), []);
    }
}
