//! [`run`]: the simulator's one clock. Each tick advances the shared grid, samples every device
//! and queues its measurement; status and log messages follow their own schedules; connection
//! news from the links triggers a fresh `online: true` status. On shutdown every connected
//! device publishes `online: false` and disconnects cleanly.

use std::future::Future;
use std::time::Duration;

use ogm_protocol::{LogEntry, LogLevel};
use rand::{RngCore, SeedableRng, rngs::SmallRng};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

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
    let link_options = LinkOptions {
        broker: config.broker.clone(),
        password: config.password.clone(),
        // Measurements plus room for status and log messages.
        queue_capacity: (config.rate_hz * OFFLINE_BUFFER.as_secs_f64()).ceil() as usize + 20,
    };
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let start = Instant::now();
    let mut devices: Vec<SimDevice> = ids
        .into_iter()
        .enumerate()
        .map(|(index, id)| {
            let mut model = DeviceModel::new(nominal, device_seed(seed, index));
            let will = model.status(crate::now_us(), false);
            let link = MqttLink::start(index, id, &link_options, will, events_tx.clone());
            // Spread the routine logs over the minute instead of all at once.
            let stagger = INFO_LOG_EVERY.mul_f64(index as f64 / f64::from(config.devices));
            SimDevice {
                model,
                link,
                connected: false,
                status_due: None,
                next_info: start + stagger + INFO_LOG_EVERY,
                dropped: 0,
                summary: Summary::default(),
            }
        })
        .collect();
    drop(events_tx);

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
                            let now = Instant::now();
                            d.connected = true;
                            d.status_due = Some(now);
                            d.send_status_if_due(now, crate::now_us(), config.status_interval);
                            d.log(LogLevel::Info, "mqtt", "connected to broker".into());
                        }
                    }
                    LinkEvent::Down { device } => {
                        if let Some(d) = devices.get_mut(device) {
                            // No statuses while offline: a queued `online: true` would be stale
                            // by the time it arrives. A fresh one follows the next CONNACK.
                            d.connected = false;
                            d.status_due = None;
                        }
                    }
                }
            }
            now = ticks.tick() => {
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
                    d.tick(frequency, t_us, now, &steps, config.status_interval);
                }
            }
        }
    }

    info!("shutting down: taking devices offline");
    let t_us = crate::now_us();
    let mut closing = Vec::new();
    for mut d in devices {
        if d.connected {
            let mut status = d.model.status(t_us, false);
            status.dropped = Some(d.dropped);
            let _ = d.link.publish_status(&status);
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

/// One simulated device: its physics, its link and its schedules.
struct SimDevice {
    model: DeviceModel,
    link: MqttLink,
    connected: bool,
    /// When the next status is due; `None` until the first CONNACK.
    status_due: Option<Instant>,
    next_info: Instant,
    /// Measurements refused because the offline buffer was full, since start.
    dropped: u64,
    summary: Summary,
}

impl SimDevice {
    fn tick(
        &mut self,
        grid_hz: f64,
        t_us: i64,
        now: Instant,
        steps: &[Step],
        status_interval: Duration,
    ) {
        let m = self.model.sample(grid_hz, t_us);
        self.summary.add(m.frequency, m.voltage, m.power);
        if self.link.publish_measurement(&m).is_err() {
            if self.dropped == 0 {
                warn!(device = %self.link.id(), "offline buffer full; dropping measurements");
            }
            self.dropped += 1;
        }

        for step in steps {
            self.log(
                LogLevel::Warn,
                "grid",
                format!(
                    "frequency step {:+.0} mHz at {:.3} Hz (simulated generator trip)",
                    step.size_hz * 1000.0,
                    m.frequency
                ),
            );
        }

        if now >= self.next_info {
            self.next_info += INFO_LOG_EVERY;
            if let Some(text) = self.summary.take() {
                self.log(LogLevel::Info, "meter", text);
            }
        }

        self.send_status_if_due(now, t_us, status_interval);
    }

    /// Queues a retained `online: true` status if one is due; retries next tick if the queue is
    /// full.
    fn send_status_if_due(&mut self, now: Instant, t_us: i64, status_interval: Duration) {
        let Some(due) = self.status_due else { return };
        if now < due {
            return;
        }
        let mut status = self.model.status(t_us, true);
        status.dropped = Some(self.dropped);
        if self.link.publish_status(&status).is_ok() {
            self.status_due = Some(now + status_interval);
        } else {
            debug!(device = %self.link.id(), "status not queued; retrying next tick");
        }
    }

    fn log(&self, level: LogLevel, module: &str, message: String) {
        let entry = LogEntry {
            timestamp: crate::now_us(),
            level,
            message,
            module: module.to_owned(),
        };
        if self.link.publish_log(&entry).is_err() {
            debug!(device = %self.link.id(), "log line not queued");
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
