//! The measurement loop, and start-up.
//!
//! [`run`] sets up the hardware, resets and configures the ADE7953, starts the network tasks and
//! the MQTT link, then loops: the core's [`Schedule`] says what is due (sample, status, drain),
//! and between those the loop sleeps until the next deadline or news from the link.
//!
//! Readings go into the core's [`OfflineBuffer`] with their monotonic time and get their Unix
//! timestamp when they are sent, so readings taken before SNTP answered, or during an outage,
//! are still stamped correctly. The buffer is drained only while the link is up and the clock is
//! set, oldest first, one message per PUBACK.

use alloc::format;
use alloc::string::String;

use embassy_executor::Spawner;
use embassy_futures::select::{Either, select};
use embassy_time::{Duration, Timer, with_timeout};
use log::{error, info, warn};
use ogm_firmware_core::ade7953::{Ade7953, registers};
use ogm_firmware_core::clock::Stamped;
use ogm_firmware_core::meter::{FrequencySource, MeterError};
use ogm_firmware_core::{Action, Message, Meter, OfflineBuffer, Schedule, Topics, messages};
use ogm_protocol::{DeviceId, LogEntry, LogLevel, Measurement};

use crate::board::{self, Board, ChipSpi};
use crate::settings::{self, BUFFER_CAPACITY, DEVICE_ID, FIRMWARE_VERSION};
use crate::shared::{self, CLOCK, DROPPED, LINK_STATE, REQUESTS, RESULTS, Request};
use crate::{link, net, now_us, zx};

/// Log lines kept while offline.
const LOG_CAPACITY: usize = 32;
/// Longest wait for the link to confirm a publish (the link's own timeout is 10 s).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(12);
/// Raw register values go to the serial log this often, for calibration.
const RAW_LOG_EVERY: u32 = 60;

/// Starts everything and measures forever.
pub async fn run(spawner: Spawner) -> ! {
    esp_println::logger::init_logger_from_env();
    let peripherals = esp_hal::init(board::config());
    let Board {
        spi,
        mut chip_reset,
        wifi,
    } = match board::setup(peripherals) {
        Ok(b) => b,
        Err(e) => halt(format!("hardware setup failed: {e:?}")).await,
    };
    let Ok(device_id) = DeviceId::new(DEVICE_ID) else {
        halt(String::from("invalid device id")).await
    };
    info!("ogm-board {FIRMWARE_VERSION}: device {DEVICE_ID}");
    let topics = Topics::new(device_id);
    let mut app = App::new(spi, topics.clone());
    app.log(
        LogLevel::Info,
        "system",
        format!("booted, firmware {FIRMWARE_VERSION}"),
    );

    // The ADE7953: a reset pulse, then the datasheet's wait, then configuration.
    chip_reset.set_low();
    Timer::after(Duration::from_micros(50)).await;
    chip_reset.set_high();
    Timer::after(Duration::from_millis(u64::from(registers::RESET_TIME_MS))).await;
    app.init_chip();

    let rng = esp_hal::rng::Rng::new();
    let seed = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    match net::start(&spawner, wifi, seed) {
        Ok(stack) => match link::link_task(stack, topics) {
            Ok(token) => spawner.spawn(token),
            Err(_) => error!("cannot start the MQTT link"),
        },
        Err(e) => {
            let text = format!("network start failed: {e:?}; measuring offline");
            app.log(LogLevel::Error, "wifi", text);
        }
    }
    app.run().await
}

/// Logs `why` and restarts after a pause (a board in the field should come back by itself).
async fn halt(why: String) -> ! {
    error!("{why}; restarting in 10 s");
    Timer::after(Duration::from_secs(10)).await;
    esp_hal::system::software_reset()
}

struct App {
    meter: Meter<ChipSpi>,
    topics: Topics,
    schedule: Schedule,
    readings: OfflineBuffer<Stamped<Measurement>>,
    logs: OfflineBuffer<Stamped<LogEntry>>,
    source: Option<FrequencySource>,
    warned_full: bool,
    chip_ok: bool,
    samples: u32,
}

impl App {
    fn new(spi: ChipSpi, topics: Topics) -> Self {
        let chip = Ade7953::new(spi, settings::calibration(), settings::chip());
        Self {
            meter: Meter::new(chip, settings::estimator()),
            topics,
            schedule: Schedule::new(settings::schedule(), now_us()),
            readings: OfflineBuffer::new(BUFFER_CAPACITY),
            logs: OfflineBuffer::new(LOG_CAPACITY),
            source: None,
            warned_full: false,
            chip_ok: false,
            samples: 0,
        }
    }

    async fn run(mut self) -> ! {
        loop {
            zx::drain(|t| self.meter.edge(t));
            while let Some(action) = self.schedule.poll(now_us(), self.sendable()) {
                match action {
                    Action::Sample => self.sample(),
                    Action::Status => self.send_status().await,
                    Action::Drain => self.drain_one().await,
                }
                if let Some(up) = LINK_STATE.try_take() {
                    self.link(up);
                }
            }
            let wake = self.schedule.next_wake(self.sendable());
            let sleep = Duration::from_micros(wake.saturating_sub(now_us()));
            if let Either::Second(up) = select(Timer::after(sleep), LINK_STATE.wait()).await {
                self.link(up);
            }
        }
    }

    /// Something to send, and a clock to stamp it with.
    fn sendable(&self) -> bool {
        (!self.readings.is_empty() || !self.logs.is_empty()) && CLOCK.lock(|c| c.borrow().is_set())
    }

    fn link(&mut self, up: bool) {
        if up {
            self.schedule.link_up(now_us());
        } else {
            self.schedule.link_down();
        }
    }

    fn init_chip(&mut self) {
        match self.meter.chip().init() {
            Ok(version) => {
                self.chip_ok = true;
                let text = format!("ADE7953 configured (silicon version {version})");
                self.log(LogLevel::Info, "ade7953", text);
            }
            Err(e) => {
                self.chip_ok = false;
                self.log(LogLevel::Error, "ade7953", format!("{e}"));
            }
        }
    }

    fn sample(&mut self) {
        let lost = zx::drain(|t| self.meter.edge(t));
        if lost > 0 {
            warn!("zx: {lost} edges lost to a full queue");
        }
        let now = now_us();
        match self.meter.sample(now as u32, 0) {
            Ok(s) => {
                if self.source != Some(s.source) {
                    let (level, text) = match (s.source, &s.estimate) {
                        (FrequencySource::ZeroCrossings, _) => (
                            LogLevel::Info,
                            String::from("frequency from zero crossings"),
                        ),
                        (FrequencySource::PeriodRegister, Err(e)) => (
                            LogLevel::Warn,
                            format!("frequency from the PERIOD register (11 mHz steps): {e}"),
                        ),
                        (FrequencySource::PeriodRegister, Ok(_)) => (
                            LogLevel::Warn,
                            String::from("frequency from the PERIOD register"),
                        ),
                    };
                    self.source = Some(s.source);
                    self.log(level, "ade7953", text);
                }
                self.samples = self.samples.wrapping_add(1);
                if self.samples % RAW_LOG_EVERY == 1 {
                    let r = s.reading.raw;
                    info!(
                        "raw VRMS {} IRMSA {} AWATT {} PERIOD {}; {:?}",
                        r.vrms, r.irms, r.awatt, r.period, s.measurement
                    );
                }
                let evicted = self.readings.push(Stamped {
                    monotonic_us: now,
                    value: s.measurement,
                });
                if evicted.is_some() {
                    DROPPED.lock(|d| d.set(self.readings.dropped()));
                    if !self.warned_full {
                        self.warned_full = true;
                        self.log(
                            LogLevel::Warn,
                            "buffer",
                            String::from("offline buffer full; dropping the oldest readings"),
                        );
                    }
                }
            }
            Err(MeterError::Chip(e)) => {
                if self.chip_ok {
                    self.chip_ok = false;
                    self.log(LogLevel::Error, "ade7953", format!("{e}"));
                }
            }
            Err(MeterError::NoSignal(e)) => warn!("ade7953: {e}"),
        }
    }

    async fn send_status(&mut self) {
        // The chip: configured, and not reset behind our back (a brown-out).
        let reset = self.meter.chip().was_reset();
        if !self.chip_ok || matches!(reset, Ok(true)) {
            if self.chip_ok {
                self.log(
                    LogLevel::Warn,
                    "ade7953",
                    String::from("ADE7953 lost its configuration; configuring again"),
                );
            }
            self.init_chip();
        }
        // The timer's frequency error, once SNTP has measured it.
        if let Some(ppm) = CLOCK.lock(|c| c.borrow().timer_ppm()) {
            self.meter.estimator().set_clock_ppm(ppm);
        }
        let status = messages::status(
            shared::unix_now().unwrap_or(0),
            shared::health(),
            true,
            self.readings.dropped(),
        );
        let message = self.topics.status(&status);
        if !publish(message).await {
            self.schedule.stalled(now_us());
        }
    }

    /// Sends the oldest log line, or else the oldest reading, stamped with Unix time.
    async fn drain_one(&mut self) {
        let unix = |monotonic_us| CLOCK.lock(|c| c.borrow().unix_us(monotonic_us));
        let sent = if let Some(entry) = self.logs.front_mut() {
            let Some(t) = unix(entry.monotonic_us) else {
                return;
            };
            entry.value.timestamp = t;
            let message = self.topics.log(&entry.value);
            publish(message).await && self.logs.pop().is_some()
        } else if let Some(reading) = self.readings.front_mut() {
            let Some(t) = unix(reading.monotonic_us) else {
                return;
            };
            reading.value.timestamp = t;
            let message = self.topics.measurement(&reading.value);
            publish(message).await && self.readings.pop().is_some()
        } else {
            true
        };
        if !sent {
            self.schedule.stalled(now_us());
        }
    }

    /// Queues a log line for the broker (and prints it).
    fn log(&mut self, level: LogLevel, module: &str, message: String) {
        match level {
            LogLevel::Error => error!("{module}: {message}"),
            LogLevel::Warn => warn!("{module}: {message}"),
            _ => info!("{module}: {message}"),
        }
        let entry = messages::log(0, level, module, message);
        self.logs.push(Stamped {
            monotonic_us: now_us(),
            value: entry,
        });
    }
}

/// Hands `message` to the link and waits for the broker's acknowledgement.
async fn publish(message: Message<'_>) -> bool {
    // Anything left from a session that died is stale.
    RESULTS.reset();
    while REQUESTS.try_receive().is_ok() {}
    let request = Request {
        kind: message.kind,
        payload: message.payload,
        retain: message.retain,
    };
    if REQUESTS.try_send(request).is_err() {
        return false;
    }
    matches!(
        with_timeout(PUBLISH_TIMEOUT, RESULTS.wait()).await,
        Ok(true)
    )
}
