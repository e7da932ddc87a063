//! [`SimBoard`]: one simulated board running the firmware core, pure (no I/O, no clock).
//!
//! What a real board does, with only the hardware simulated:
//! - the ADE7953 is a [`RegisterBank`] whose VRMS, IRMSA, AWATT and PERIOD registers follow this
//!   board's [`DeviceModel`], read through the core's driver and calibration;
//! - its ZX edges come from the shared grid frequency ([`ZeroCrossings`], the frequency moving
//!   linearly between ticks), timestamped by a simulated µs timer with the timing noise of an
//!   ESP32 GPIO interrupt ([`ZX_JITTER_US`] Gaussian, plus an occasional late edge when the
//!   radio holds the CPU), and the frequency is the core's zero-crossing fit;
//! - measurements go into the core's [`OfflineBuffer`], statuses carry its drop count, and the
//!   core's [`Schedule`] says when to sample, send a status and drain;
//! - payloads and topics come from the core's [`Topics`].
//!
//! Time is simulated: [`SimBoard::advance`] moves it by a tick.

use ogm_firmware_core::ade7953::bank::RegisterBank;
use ogm_firmware_core::ade7953::{Ade7953, Calibration, ChipConfig};
use ogm_firmware_core::meter::{FrequencySource, Meter};
use ogm_firmware_core::synth::ZeroCrossings;
use ogm_firmware_core::{
    Action, Edges, EstimatorConfig, Health, OfflineBuffer, Schedule, ScheduleConfig, Topics,
};
use ogm_protocol::{DeviceId, Measurement, Status};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::grid::DeviceModel;

/// Standard deviation of the simulated ZX timestamp jitter, µs: GPIO interrupt latency on an
/// ESP32 with WiFi active.
pub const ZX_JITTER_US: f64 = 20.0;
/// Share of ZX edges delayed further because the radio held the CPU.
pub const LATE_EDGE_SHARE: f64 = 0.01;
/// Mean extra delay of such a late edge, µs.
pub const LATE_EDGE_US: f64 = 300.0;
/// The calibration of every simulated board (the core's starting point).
pub const CALIBRATION: Calibration = Calibration::DEFAULT;

/// One simulated board.
#[derive(Debug)]
pub struct SimBoard {
    model: DeviceModel,
    meter: Meter<RegisterBank>,
    zx: ZeroCrossings,
    jitter: SmallRng,
    buffer: OfflineBuffer<Measurement>,
    schedule: Schedule,
    topics: Topics,
    /// The grid frequency at the end of the last tick, Hz.
    grid_hz: f64,
    /// Simulated monotonic time, µs.
    now_us: u64,
    last_source: Option<FrequencySource>,
}

/// The settings a [`SimBoard`] needs.
#[derive(Debug, Clone, Copy)]
pub struct BoardOptions {
    pub nominal_hz: f64,
    pub schedule: ScheduleConfig,
    /// Measurements the offline buffer holds.
    pub buffer_capacity: usize,
}

impl SimBoard {
    /// A board that has been on the grid, at `grid_hz`, for a while: its first sample already
    /// has a full window of edges behind it.
    pub fn new(
        id: DeviceId,
        model: DeviceModel,
        seed: u64,
        options: BoardOptions,
        grid_hz: f64,
    ) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let chip = Ade7953::new(RegisterBank::new(), CALIBRATION, ChipConfig::default());
        let estimator = EstimatorConfig::new(options.nominal_hz, Edges::Rising);
        let window_us = f64::from(estimator.window_us);
        let mut meter = Meter::new(chip, estimator);
        // The simulated chip takes the same configuration as a real one; it cannot fail.
        let _ = meter.chip().init();
        let zx = ZeroCrossings::new(Edges::Rising, rng.random(), rng.random());
        let mut board = Self {
            model,
            meter,
            zx,
            jitter: SmallRng::seed_from_u64(rng.random()),
            buffer: OfflineBuffer::new(options.buffer_capacity),
            schedule: Schedule::new(options.schedule, 0),
            topics: Topics::new(id),
            grid_hz,
            now_us: 0,
            last_source: None,
        };
        board.feed_edges(window_us, grid_hz, grid_hz);
        board
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    pub fn id(&self) -> &DeviceId {
        self.topics.device_id()
    }

    /// Simulated monotonic time, µs.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// Moves `dt_us` on while the grid goes (linearly) to `grid_hz`.
    pub fn advance(&mut self, dt_us: u64, grid_hz: f64) {
        self.feed_edges(dt_us as f64, self.grid_hz, grid_hz);
        self.grid_hz = grid_hz;
        self.now_us += dt_us;
    }

    fn feed_edges(&mut self, dt_us: f64, from_hz: f64, to_hz: f64) {
        let Self {
            zx, jitter, meter, ..
        } = self;
        zx.advance(
            dt_us,
            from_hz,
            to_hz,
            &mut || {
                let mut delay = ZX_JITTER_US * gaussian(jitter);
                if jitter.random::<f64>() < LATE_EDGE_SHARE {
                    delay += -LATE_EDGE_US * (1.0 - jitter.random::<f64>()).ln();
                }
                delay
            },
            &mut |tick| meter.edge(tick),
        );
    }

    /// What is due now (see [`Schedule::poll`]).
    pub fn poll(&mut self) -> Option<Action> {
        self.schedule.poll(self.now_us, !self.buffer.is_empty())
    }

    pub fn is_link_up(&self) -> bool {
        self.schedule.is_link_up()
    }

    /// The broker accepted the connection.
    pub fn link_up(&mut self) {
        self.schedule.link_up(self.now_us);
    }

    /// The connection is gone.
    pub fn link_down(&mut self) {
        self.schedule.link_down();
    }

    /// A publish could not be queued.
    pub fn stalled(&mut self) {
        self.schedule.stalled(self.now_us);
    }

    /// Reads the meter and buffers the measurement, stamped `t_us`. Returns it, and whether the
    /// buffer had to drop its oldest reading to make room.
    pub fn sample(&mut self, t_us: i64) -> Option<(Measurement, bool)> {
        let m = self.model.sample(self.grid_hz, t_us);
        self.meter.chip().spi_mut().set_signal(
            &CALIBRATION,
            m.voltage,
            m.current,
            m.power,
            self.grid_hz,
        );
        let sample = self
            .meter
            .sample(self.zx.now_tick(), t_us)
            .inspect(|s| self.last_source = Some(s.source))
            .ok()?;
        let dropped = self.buffer.push(sample.measurement).is_some();
        Some((sample.measurement, dropped))
    }

    /// Where the last sample's frequency came from.
    pub fn frequency_source(&self) -> Option<FrequencySource> {
        self.last_source
    }

    /// The oldest buffered measurement, next to publish; [`SimBoard::sent`] once it is queued.
    pub fn next_buffered(&self) -> Option<&Measurement> {
        self.buffer.front()
    }

    /// The oldest buffered measurement was queued for sending.
    pub fn sent(&mut self) {
        self.buffer.pop();
    }

    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Measurements dropped from the full buffer since start.
    pub fn dropped(&self) -> u64 {
        self.buffer.dropped()
    }

    /// A status at `t_us`, with the board's health and drop count.
    pub fn status(&mut self, t_us: i64, online: bool) -> Status {
        let health = self.model.status(t_us, online);
        ogm_firmware_core::messages::status(
            t_us,
            Health {
                rssi: health.rssi,
                free_heap: health.free_heap,
                battery: health.battery,
            },
            online,
            self.buffer.dropped(),
        )
    }
}

fn gaussian(rng: &mut SmallRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (core::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{GridModel, Nominal, device_seed};
    use ogm_protocol::{Kind, payload};

    const T0: i64 = 1_750_000_000_000_000;

    fn options(rate_hz: f64, capacity: usize) -> BoardOptions {
        BoardOptions {
            nominal_hz: 50.0,
            schedule: ScheduleConfig {
                sample_every_us: (1e6 / rate_hz) as u64,
                status_every_us: 10_000_000,
            },
            buffer_capacity: capacity,
        }
    }

    fn board(seed: u64, opts: BoardOptions, grid_hz: f64) -> SimBoard {
        SimBoard::new(
            DeviceId::new("sim-01").unwrap(),
            DeviceModel::new(Nominal::Hz50, device_seed(seed, 0)),
            seed,
            opts,
            grid_hz,
        )
    }

    /// Runs `seconds` at 1 Hz on `grid`, returning (measured, true) frequencies.
    fn run(b: &mut SimBoard, grid: &mut GridModel, seconds: usize) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        for i in 0..seconds {
            let before = grid.frequency();
            let f = grid.advance(1.0);
            b.advance(1_000_000, f);
            while let Some(a) = b.poll() {
                if a == Action::Sample {
                    let (m, _) = b.sample(T0 + i as i64 * 1_000_000).unwrap();
                    out.push((m.frequency, (before + f) / 2.0));
                }
                if a == Action::Drain {
                    while b.next_buffered().is_some() {
                        b.sent();
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_board_measures_the_grid_through_the_estimator_to_about_a_millihertz() {
        let mut grid = GridModel::new(Nominal::Hz50, 3);
        let mut b = board(3, options(1.0, 100), grid.frequency());
        b.link_up();
        let pairs = run(&mut b, &mut grid, 600);
        assert_eq!(pairs.len(), 600);
        let errs: Vec<f64> = pairs.iter().map(|(m, t)| (m - t) * 1000.0).collect();
        let rms = (errs.iter().map(|e| e * e).sum::<f64>() / errs.len() as f64).sqrt();
        assert!(rms < 1.5, "rms {rms} mHz");
        assert_eq!(b.frequency_source(), Some(FrequencySource::ZeroCrossings));
    }

    #[test]
    fn offline_the_buffer_keeps_the_newest_and_the_status_counts_the_rest() {
        let mut grid = GridModel::new(Nominal::Hz50, 4).with_walk_std(0.0);
        let mut b = board(4, options(1.0, 5), grid.frequency());
        run(&mut b, &mut grid, 12);
        assert_eq!((b.buffered(), b.dropped()), (5, 7));
        let newest = b.next_buffered().unwrap().timestamp;
        assert_eq!(newest, T0 + 7_000_000);
        let s = b.status(T0, true);
        assert_eq!(s.dropped, Some(7));
        let topics = b.topics().clone();
        let msg = topics.status(&s);
        let back = payload::decode(Kind::Status, &msg.payload, T0)
            .unwrap()
            .payload;
        assert_eq!(back, payload::Payload::Status(s));
        // Back online: a status, then the five buffered measurements.
        b.link_up();
        assert_eq!(b.poll(), Some(Action::Status));
        assert_eq!(b.poll(), Some(Action::Drain));
    }

    #[test]
    fn measurements_decode_and_keep_p_equal_v_i_pf() {
        let mut grid = GridModel::new(Nominal::Hz50, 5);
        let mut b = board(5, options(10.0, 1000), grid.frequency());
        for i in 0..200 {
            let f = grid.advance(0.1);
            b.advance(100_000, f);
            while let Some(a) = b.poll() {
                if a != Action::Sample {
                    continue;
                }
                let (m, _) = b.sample(T0 + i * 100_000).unwrap();
                let back =
                    payload::decode(Kind::Measurement, &b.topics().measurement(&m).payload, T0)
                        .unwrap()
                        .payload;
                assert_eq!(back, payload::Payload::Measurement(m));
                let pf = m.power / (m.voltage * m.current);
                assert!((0.89..=1.0001).contains(&pf), "{m:?}");
                assert!((m.frequency - f).abs() < 0.02, "{m:?} {f}");
            }
        }
    }
}
