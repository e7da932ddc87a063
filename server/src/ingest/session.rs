//! The ingest's broker session as a state machine: what the broker said in, what to do out.
//! No I/O, no clock, no rumqttc: `mqtt.rs` feeds it the event loop's events and carries out
//! its [`Action`]s, as the dashboard's `mqtt_ws.rs` does with `mqtt_link.rs`.
//!
//! The rules: every CONNACK resubscribes (cheap, and right even if the broker lost the
//! session) and resets the backoff; the ingest counts as subscribed once every device filter
//! is granted, and only then asks for the broker's count of received publishes (optional: an
//! ACL may refuse it); a failed connection waits 250 ms, doubling to 10 s, and is logged at the
//! 1st, 2nd, 4th, 8th … failure in a row.

use std::time::Duration;

/// The first wait after a failed connection.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The server's own publishes that may fall on the other side of the broker's count.
pub const OWN_SKEW: u64 = 3;
/// The longest wait between two connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What the connection task must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Connected: health says so, not yet subscribed; `reconnect` from the second time on.
    Connected {
        session_present: bool,
        reconnect: bool,
    },
    /// Subscribe to a device filter at QoS 1.
    Subscribe(String),
    /// The broker refused a device filter: the ACL is wrong.
    Refused,
    /// Every device filter is granted: health says subscribed, and the broker's count of
    /// received publishes is asked for (QoS 0).
    Subscribed,
    /// The connection failed: health says disconnected; wait `delay` before the next attempt.
    Wait {
        delay: Duration,
        /// Failures in a row, this one included.
        failures: u32,
        /// Whether this failure is worth a log line (the 1st, 2nd, 4th, 8th …).
        log: bool,
    },
}

/// The session's state.
#[derive(Debug, Clone)]
pub struct Session {
    filters: Vec<String>,
    connections: u64,
    /// SUBACKs granted since the last CONNACK.
    granted: usize,
    /// The broker's last reported count of received publishes, this connection.
    broker_publishes: Option<(u64, u64)>,
    backoff: Duration,
    failures: u32,
}

impl Session {
    /// A session that subscribes to `filters`.
    pub fn new(filters: Vec<String>) -> Self {
        Self {
            filters,
            connections: 0,
            granted: 0,
            broker_publishes: None,
            backoff: FIRST_BACKOFF,
            failures: 0,
        }
    }

    pub fn filters(&self) -> &[String] {
        &self.filters
    }

    /// The broker accepted the connection.
    pub fn on_connack(&mut self, session_present: bool) -> Vec<Action> {
        self.connections += 1;
        self.granted = 0;
        self.broker_publishes = None;
        self.backoff = FIRST_BACKOFF;
        self.failures = 0;
        let mut actions = vec![Action::Connected {
            session_present,
            reconnect: self.connections > 1,
        }];
        actions.extend(self.filters.iter().cloned().map(Action::Subscribe));
        actions
    }

    /// The broker answered a subscription; `refused` when any of its codes is a failure.
    pub fn on_suback(&mut self, refused: bool) -> Option<Action> {
        if self.granted >= self.filters.len() {
            // The answer to the optional subscription to the broker's count.
            return None;
        }
        if refused {
            return Some(Action::Refused);
        }
        self.granted += 1;
        (self.granted == self.filters.len()).then_some(Action::Subscribed)
    }

    /// The broker's count of received publishes came (`payload`, a decimal number), with
    /// `own`, how many publishes this server made itself so far (grid summary, alerts, Home
    /// Assistant): true when the broker took more than those since the last count, i.e.
    /// devices are publishing. The broker counts at its own moment, so a few of the server's
    /// publishes may fall on either side of it: [`OWN_SKEW`] of them are not taken for a
    /// device's.
    pub fn on_broker_count(&mut self, payload: &[u8], own: u64) -> bool {
        let count = std::str::from_utf8(payload)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        let grew = match (self.broker_publishes, count) {
            (Some((before, own_before)), Some(now)) => {
                let own_grew = own.saturating_sub(own_before);
                let skew = if own_grew > 0 { OWN_SKEW } else { 0 };
                now.saturating_sub(before) > own_grew + skew
            }
            _ => false,
        };
        if let Some(now) = count {
            self.broker_publishes = Some((now, own));
        }
        grew
    }

    /// The connection failed (or could not be made).
    pub fn on_error(&mut self) -> Action {
        self.failures = self.failures.saturating_add(1);
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        Action::Wait {
            delay,
            failures: self.failures,
            log: self.failures == 1 || self.failures.is_power_of_two(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session::new(vec!["a/+/m".into(), "a/+/s".into(), "a/+/l".into()])
    }

    #[test]
    fn a_connack_subscribes_to_every_filter() {
        let mut s = session();
        let actions = s.on_connack(false);
        assert_eq!(
            actions,
            vec![
                Action::Connected {
                    session_present: false,
                    reconnect: false
                },
                Action::Subscribe("a/+/m".into()),
                Action::Subscribe("a/+/s".into()),
                Action::Subscribe("a/+/l".into()),
            ]
        );
        assert_eq!(
            s.on_connack(true)[0],
            Action::Connected {
                session_present: true,
                reconnect: true
            }
        );
    }

    #[test]
    fn subscribed_once_every_filter_is_granted_and_refusals_are_told() {
        let mut s = session();
        s.on_connack(false);
        assert_eq!(s.on_suback(false), None);
        assert_eq!(s.on_suback(true), Some(Action::Refused));
        assert_eq!(s.on_suback(false), None);
        assert_eq!(s.on_suback(false), Some(Action::Subscribed));
        // The broker's count's SUBACK, granted or not, changes nothing.
        assert_eq!(s.on_suback(true), None);
        assert_eq!(s.on_suback(false), None);
        // A new connection starts counting again.
        s.on_connack(true);
        assert_eq!(s.on_suback(false), None);
    }

    #[test]
    fn failures_back_off_doubling_to_ten_seconds_and_a_connack_resets() {
        let mut s = session();
        let waits: Vec<Action> = (0..8).map(|_| s.on_error()).collect();
        let delays: Vec<u64> = waits
            .iter()
            .map(|w| match w {
                Action::Wait { delay, .. } => delay.as_millis() as u64,
                a => panic!("{a:?}"),
            })
            .collect();
        assert_eq!(
            delays,
            [250, 500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000]
        );
        let logged: Vec<u32> = waits
            .iter()
            .filter_map(|w| match w {
                Action::Wait {
                    failures,
                    log: true,
                    ..
                } => Some(*failures),
                _ => None,
            })
            .collect();
        assert_eq!(logged, [1, 2, 4, 8]);
        s.on_connack(false);
        assert_eq!(
            s.on_error(),
            Action::Wait {
                delay: FIRST_BACKOFF,
                failures: 1,
                log: true
            }
        );
    }

    #[test]
    fn the_broker_count_tells_when_devices_publish() {
        let mut s = session();
        s.on_connack(false);
        assert!(
            !s.on_broker_count(b"10", 0),
            "the first count is only a start"
        );
        assert!(s.on_broker_count(b" 12\n", 0));
        assert!(!s.on_broker_count(b"12", 0));
        assert!(
            !s.on_broker_count(b"not a number", 0),
            "kept the last good count"
        );
        assert!(s.on_broker_count(b"13", 0));
        // The server's own ten publishes (and a skew of a few) are not a device's.
        assert!(!s.on_broker_count(b"26", 10));
        assert!(s.on_broker_count(b"40", 20));
        s.on_connack(true);
        assert!(
            !s.on_broker_count(b"50", 20),
            "a new connection starts again"
        );
    }
}
