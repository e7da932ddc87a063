//! [`Schedule`]: when a device samples, sends its status and drains its offline buffer. A pure
//! state machine over monotonic µs: the caller reports what happened (the link came up or went
//! down, a drain stalled) and asks [`Schedule::poll`] what is due now; [`Schedule::next_wake`]
//! says how long it may sleep.
//!
//! - Samples follow a fixed grid (one per `sample_every_us`), whatever the link does: a board
//!   keeps measuring through outages. A late sample is taken late; samples missed entirely (the
//!   device stalled for more than a period) are skipped and counted, never bunched.
//! - A status goes out as soon as the link is up (the retained `online: true` a dashboard sees),
//!   then every `status_every_us` while it stays up; none while it is down.
//! - While the link is up and the buffer holds something, draining is due; after a stalled
//!   publish it waits [`STALL_RETRY_US`] before trying again.
//!
//! Priority when several are due: sample, status, drain.

/// Wait after a publish could not be queued before draining again, µs.
pub const STALL_RETRY_US: u64 = 100_000;

/// Intervals of a [`Schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleConfig {
    pub sample_every_us: u64,
    pub status_every_us: u64,
}

impl Default for ScheduleConfig {
    /// One sample a second, a status every ten.
    fn default() -> Self {
        Self {
            sample_every_us: 1_000_000,
            status_every_us: 10_000_000,
        }
    }
}

/// What is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read the meter and buffer the measurement.
    Sample,
    /// Publish a retained status (`online: true`, the drop count).
    Status,
    /// Publish from the front of the offline buffer.
    Drain,
}

/// The device's timetable.
#[derive(Debug, Clone)]
pub struct Schedule {
    config: ScheduleConfig,
    next_sample: u64,
    next_status: Option<u64>,
    link_up: bool,
    drain_after: u64,
    missed: u64,
}

impl Schedule {
    /// Starts at `now_us`; the first sample is due one period later (a full window of edges).
    pub fn new(config: ScheduleConfig, now_us: u64) -> Self {
        let config = ScheduleConfig {
            sample_every_us: config.sample_every_us.max(1),
            status_every_us: config.status_every_us.max(1),
        };
        Self {
            next_sample: now_us.saturating_add(config.sample_every_us),
            config,
            next_status: None,
            link_up: false,
            drain_after: 0,
            missed: 0,
        }
    }

    pub fn config(&self) -> ScheduleConfig {
        self.config
    }

    pub fn is_link_up(&self) -> bool {
        self.link_up
    }

    /// Samples skipped because the device was stalled for more than a period.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// The broker accepted the connection: a status is due now, then draining.
    pub fn link_up(&mut self, now_us: u64) {
        self.link_up = true;
        self.next_status = Some(now_us);
        self.drain_after = now_us;
    }

    /// The connection is gone: no statuses or draining until [`Schedule::link_up`].
    pub fn link_down(&mut self) {
        self.link_up = false;
        self.next_status = None;
    }

    /// A publish could not be queued; retry draining a little later.
    pub fn stalled(&mut self, now_us: u64) {
        self.drain_after = now_us.saturating_add(STALL_RETRY_US);
    }

    /// What is due at `now_us`; call again until `None`. `buffered`: the offline buffer holds
    /// something that can be sent (for a board: and the wall clock is set).
    pub fn poll(&mut self, now_us: u64, buffered: bool) -> Option<Action> {
        if now_us >= self.next_sample {
            let period = self.config.sample_every_us;
            let behind = (now_us - self.next_sample) / period;
            self.missed = self.missed.saturating_add(behind);
            self.next_sample = self
                .next_sample
                .saturating_add(behind.saturating_add(1).saturating_mul(period));
            return Some(Action::Sample);
        }
        if let Some(due) = self.next_status.filter(|due| now_us >= *due) {
            let period = self.config.status_every_us;
            let next = due.saturating_add(period);
            // Keep the grid unless far behind; never send two statuses back to back.
            self.next_status = Some(if next > now_us {
                next
            } else {
                now_us.saturating_add(period)
            });
            return Some(Action::Status);
        }
        if self.link_up && buffered && now_us >= self.drain_after {
            return Some(Action::Drain);
        }
        None
    }

    /// When something is next due (absolute µs); `now_us` or earlier means "poll now".
    pub fn next_wake(&self, buffered: bool) -> u64 {
        let mut wake = self.next_sample;
        if let Some(s) = self.next_status {
            wake = wake.min(s);
        }
        if self.link_up && buffered {
            wake = wake.min(self.drain_after);
        }
        wake
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const S: u64 = 1_000_000;

    fn run(s: &mut Schedule, from: u64, to: u64, step: u64, buffered: bool) -> Vec<(u64, Action)> {
        let mut out = Vec::new();
        let mut t = from;
        while t <= to {
            while let Some(a) = s.poll(t, buffered) {
                out.push((t, a));
                if a == Action::Drain {
                    break;
                }
            }
            t += step;
        }
        out
    }

    #[test]
    fn samples_every_second_whatever_the_link() {
        let mut s = Schedule::new(ScheduleConfig::default(), 0);
        let acts = run(&mut s, 0, 30 * S, 100_000, false);
        let samples: Vec<u64> = acts.iter().map(|(t, _)| *t).collect();
        assert_eq!(samples, (1..=30).map(|i| i * S).collect::<Vec<_>>());
        assert!(acts.iter().all(|(_, a)| *a == Action::Sample));
        assert_eq!(s.next_wake(true), 31 * S);
    }

    #[test]
    fn status_on_connect_then_every_ten_seconds_and_none_while_down() {
        let mut s = Schedule::new(ScheduleConfig::default(), 0);
        s.link_up(2_500_000);
        let acts = run(&mut s, 2_500_000, 25 * S, 500_000, false);
        let statuses: Vec<u64> = acts
            .iter()
            .filter(|(_, a)| *a == Action::Status)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(statuses, [2_500_000, 12_500_000, 22_500_000]);
        s.link_down();
        let acts = run(&mut s, 25 * S, 60 * S, 500_000, true);
        assert!(acts.iter().all(|(_, a)| *a == Action::Sample), "{acts:?}");
        // Reconnect: a status at once, then draining.
        s.link_up(60_200_000);
        assert_eq!(s.poll(60_200_000, true), Some(Action::Status));
        assert_eq!(s.poll(60_200_000, true), Some(Action::Drain));
        assert_eq!(s.next_wake(true), 60_200_000);
        assert_eq!(s.poll(60_200_000, false), None);
    }

    #[test]
    fn sampling_comes_first_and_a_stall_pauses_draining() {
        let mut s = Schedule::new(ScheduleConfig::default(), 0);
        s.link_up(S);
        assert_eq!(s.poll(S, true), Some(Action::Sample));
        assert_eq!(s.poll(S, true), Some(Action::Status));
        assert_eq!(s.poll(S, true), Some(Action::Drain));
        s.stalled(S);
        assert_eq!(s.poll(S + 50_000, true), None);
        assert_eq!(s.next_wake(true), S + STALL_RETRY_US);
        assert_eq!(s.poll(S + STALL_RETRY_US, true), Some(Action::Drain));
    }

    #[test]
    fn a_long_stall_skips_samples_instead_of_bunching_them() {
        let mut s = Schedule::new(ScheduleConfig::default(), 0);
        assert_eq!(s.poll(S, false), Some(Action::Sample));
        // Frozen for 5.5 s.
        assert_eq!(s.poll(6_500_000, false), Some(Action::Sample));
        assert_eq!(s.poll(6_500_000, false), None);
        assert_eq!(s.missed(), 4);
        assert_eq!(s.next_wake(false), 7 * S);
    }
}
