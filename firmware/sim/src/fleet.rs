//! [`run`]: the simulator's one clock. Each tick advances the shared grid and every board (its
//! ZX edges, its simulated chip); each board's firmware-core schedule then says what is due:
//! sample into the offline buffer, send a status, drain the buffer into the MQTT link. Log
//! messages follow their own schedule; connection news from the links reaches the schedules
//! (a fresh `online: true` status and a drain after every CONNACK). On shutdown every connected
//! device sends what it buffered, publishes `online: false` and disconnects cleanly.

use std::future::Future;
use std::time::Duration;

use ogm_firmware_core::{Action, ScheduleConfig};
use ogm_protocol::{LogEntry, LogLevel};
use rand::{RngCore, SeedableRng, rngs::SmallRng};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::board::{BoardOptions, SimBoard};
use crate::config::{Config, ConfigError};
use crate::grid::{DeviceModel, GridModel, Step, device_seed};
use crate::mqtt::{LinkEvent, LinkOptions, MqttLink};

/// How often each device logs a routine INFO summary.
pub const INFO_LOG_EVERY: Duration = Duration::from_secs(60);
/// How long shutdown waits for the devices' last messages and DISCONNECTs.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How much time the offline buffer covers while the broker is unreachable.
pub const OFFLINE_BUFFER: Duration = Duration::from_secs(60);

/// Why the simulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Runs the fleet described by `config` until `shutdown` completes, then takes every device
/// offline cleanly.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), SimError> {
    let ids = config.device_ids()?;
    let seed = config
        .seed
        .unwrap_or_else(|| SmallRng::from_os_rng().next_u64());
    let nominal = config.nominal_hz;
    let period = config.sample_period();
    let dt_s = period.as_secs_f64();
    let dt_us = u64::try_from(period.as_micros()).unwrap_or(u64::MAX).max(1);
    info!(
        broker = %config.broker,
        devices = ids.len(),
        rate_hz = config.rate_hz,
        %nominal,
        step_every_s = config.step_every_s(),
        seed,
        "simulating"
    );

    let mut grid = GridModel::new(nominal, seed).with_trips_every(config.step_every_s());
    let buffer_capacity = (config.rate_hz * OFFLINE_BUFFER.as_secs_f64()).ceil() as usize;
    let board_options = BoardOptions {
        nominal_hz: nominal.hz(),
        schedule: ScheduleConfig {
            sample_every_us: dt_us,
            status_every_us: u64::try_from(config.status_interval.as_micros()).unwrap_or(u64::MAX),
        },
        buffer_capacity,
    };
    let link_options = LinkOptions {
        broker: config.broker.clone(),
        password: config.password.clone(),
        // Room to drain a full offline buffer at once, plus status and log messages.
        queue_capacity: buffer_capacity + 20,
    };
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let start = Instant::now();
    let mut devices: Vec<SimDevice> = ids
        .into_iter()
        .enumerate()
        .map(|(index, id)| {
            let readings_seed = device_seed(seed, index);
            let model = DeviceModel::new(nominal, readings_seed);
            let mut board = SimBoard::new(
                id,
                model,
                // The board's timer and jitter, independent of its readings.
                device_seed(readings_seed, 1),
                board_options,
                grid.frequency(),
            );
            let will = board.status(crate::now_us(), false);
            let link = MqttLink::start(
                index,
                board.topics().clone(),
                &link_options,
                will,
                events_tx.clone(),
            );
            // Spread the routine logs over the minute instead of all at once.
            let stagger = INFO_LOG_EVERY.mul_f64(index as f64 / f64::from(config.devices));
            SimDevice {
                board,
                link,
                next_info: start + stagger + INFO_LOG_EVERY,
                warned_full: false,
                last_frequency: nominal.hz(),
                summary: Summary::default(),
            }
        })
        .collect();
    drop(events_tx);

    let started = tokio::time::Instant::now();
    let mut scheduled = config.step_at.clone();
    let mut ticks = tokio::time::interval(period);
    // A late tick is taken late, not skipped: the grid advances a fixed dt per tick, so the same
    // seed and rate always give the same sequence of frequencies.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(event) = events.recv() => {
                match event {
                    LinkEvent::Up { device, .. } => {
                        if let Some(d) = devices.get_mut(device) {
                            d.board.link_up();
                            d.run_due(crate::now_us());
                            d.log(LogLevel::Info, "mqtt", "connected to broker".into());
                        }
                    }
                    LinkEvent::Down { device } => {
                        if let Some(d) = devices.get_mut(device) {
                            // No statuses while offline: a queued `online: true` would be stale
                            // by the time it arrives. A fresh one follows the next CONNACK;
                            // measurements wait in the board's buffer.
                            d.board.link_down();
                        }
                    }
                }
            }
            now = ticks.tick() => {
                scheduled.retain(|s| {
                    let due = now.saturating_duration_since(started) >= s.after;
                    if due {
                        grid.inject(Step::new(s.size_hz));
                    }
                    !due
                });
                let frequency = grid.advance(dt_s);
                let steps = grid.take_new_steps();
                for step in &steps {
                    info!(
                        size_mhz = (step.size_hz * 1000.0).round(),
                        nadir_s = (step.nadir_s() * 10.0).round() / 10.0,
                        "simulated generator trip"
                    );
                }
                let t_us = crate::now_us();
                for d in &mut devices {
                    d.tick(frequency, dt_us, t_us, now, &steps);
                }
            }
        }
    }

    info!("shutting down: taking devices offline");
    let t_us = crate::now_us();
    let mut closing = Vec::new();
    for mut d in devices {
        if d.board.is_link_up() {
            d.drain();
            let status = d.board.status(t_us, false);
            let _ = d.link.publish(d.board.topics().status(&status));
            closing.push(tokio::spawn(d.link.close(SHUTDOWN_GRACE)));
        } else {
            d.link.abort();
        }
    }
    for c in closing {
        let _ = c.await;
    }
    info!("stopped");
    Ok(())
}

/// One simulated device: its board (the firmware core on simulated hardware), its link and its
/// log schedule.
struct SimDevice {
    board: SimBoard,
    link: MqttLink,
    next_info: Instant,
    /// Whether the "buffer full" warning was logged.
    warned_full: bool,
    last_frequency: f64,
    summary: Summary,
}

impl SimDevice {
    fn tick(&mut self, grid_hz: f64, dt_us: u64, t_us: i64, now: Instant, steps: &[Step]) {
        self.board.advance(dt_us, grid_hz);
        self.run_due(t_us);

        for step in steps {
            self.log(
                LogLevel::Warn,
                "grid",
                format!(
                    "frequency step {:+.0} mHz at {:.3} Hz (simulated generator trip)",
                    step.size_hz * 1000.0,
                    self.last_frequency
                ),
            );
        }

        if now >= self.next_info {
            self.next_info += INFO_LOG_EVERY;
            if let Some(text) = self.summary.take() {
                self.log(LogLevel::Info, "meter", text);
            }
        }
    }

    /// Does what the board's schedule says is due.
    fn run_due(&mut self, t_us: i64) {
        while let Some(action) = self.board.poll() {
            match action {
                Action::Sample => match self.board.sample(t_us) {
                    Some((m, dropped)) => {
                        self.summary.add(m.frequency, m.voltage, m.power);
                        self.last_frequency = m.frequency;
                        if dropped && !self.warned_full {
                            self.warned_full = true;
                            warn!(device = %self.board.id(), "offline buffer full; dropping the oldest measurements");
                        }
                    }
                    None => debug!(device = %self.board.id(), "no reading"),
                },
                Action::Status => {
                    let status = self.board.status(t_us, true);
                    if self
                        .link
                        .publish(self.board.topics().status(&status))
                        .is_err()
                    {
                        debug!(device = %self.board.id(), "status not queued");
                    }
                }
                Action::Drain => self.drain(),
            }
        }
    }

    /// Moves buffered measurements, oldest first, into the link until it is empty or the link's
    /// queue is full.
    fn drain(&mut self) {
        while let Some(m) = self.board.next_buffered() {
            let message = self.board.topics().measurement(m);
            if self.link.publish(message).is_err() {
                self.board.stalled();
                return;
            }
            self.board.sent();
        }
    }

    fn log(&self, level: LogLevel, module: &str, message: String) {
        let entry = LogEntry {
            timestamp: crate::now_us(),
            level,
            message,
            module: module.to_owned(),
        };
        if self.link.publish(self.board.topics().log(&entry)).is_err() {
            debug!(device = %self.board.id(), "log line not queued");
        }
    }
}

/// Readings since the last routine log line.
#[derive(Debug, Default)]
struct Summary {
    n: u64,
    f_min: f64,
    f_max: f64,
    v_sum: f64,
    p_sum: f64,
}

impl Summary {
    fn add(&mut self, f: f64, v: f64, p: f64) {
        if self.n == 0 {
            (self.f_min, self.f_max) = (f, f);
        }
        self.n += 1;
        self.f_min = self.f_min.min(f);
        self.f_max = self.f_max.max(f);
        self.v_sum += v;
        self.p_sum += p;
    }

    /// A one-line summary, and a fresh start; `None` if there were no readings.
    fn take(&mut self) -> Option<String> {
        let s = std::mem::take(self);
        (s.n > 0).then(|| {
            let n = s.n as f64;
            format!(
                "{} readings: frequency {:.3}–{:.3} Hz, mean {:.1} V, {:.0} W",
                s.n,
                s.f_min,
                s.f_max,
                s.v_sum / n,
                s.p_sum / n
            )
        })
    }
}
