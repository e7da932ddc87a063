//! Grid and meter physics, pure: no I/O, no clock, deterministic for a given seed.
//!
//! - [`GridModel`]: the ONE frequency of a synchronous grid, shared by every simulated device.
//!   A mean-reverting random walk around nominal: the everyday power imbalance is an
//!   Ornstein–Uhlenbeck process, and the frequency follows it through a first-order lag (the
//!   grid's inertia and primary control), so it wanders by a few tens of mHz yet stays smooth
//!   from one second to the next, as real recordings do. Plus occasional [`Step`]s (a generator
//!   trip: the frequency falls within seconds to a nadir, then secondary control restores it
//!   over about a minute).
//! - [`DeviceModel`]: one board on that grid: its own ~1 mHz measurement noise, a mains voltage,
//!   a wandering household load and power factor, so that `P = V · I · pf` holds; and its health
//!   (WiFi RSSI, free heap) for status messages. The fleet publishes its voltage, current and
//!   power through a simulated ADE7953, and takes the frequency from the firmware core's
//!   zero-crossing estimator instead of this model's noisy reading (see [`crate::board`]).
//!
//! Time is whatever the caller says it is: [`GridModel::advance`] takes a step in seconds and
//! [`DeviceModel::sample`] a timestamp in µs, so tests run a simulated day in milliseconds.

use core::fmt;
use core::str::FromStr;

use ogm_protocol::{Measurement, Status};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Standard deviation of the undisturbed frequency around nominal, Hz.
pub const WALK_STD_HZ: f64 = 0.025;
/// Correlation time of the power imbalance, s: how long a deviation typically lasts before
/// control and the load's own randomness pull it back.
pub const WALK_TAU_S: f64 = 30.0;
/// Time constant of the lag through which the imbalance moves the frequency, s (inertia and
/// governor response). It makes second-to-second changes a few mHz, not a random jitter.
pub const INERTIA_TAU_S: f64 = 5.0;
/// Longest internal integration step, s.
const SUBSTEP_S: f64 = 0.1;
/// Most internal steps per [`GridModel::advance`]; a longer jump is integrated more coarsely.
const MAX_SUBSTEPS: f64 = 100_000.0;
/// Deepest deviation of a random generator trip, Hz (drawn uniformly in this range).
pub const TRIP_SIZE_HZ: (f64, f64) = (-0.200, -0.100);
/// Time constant of the fall to the nadir, s (inertia, then primary control arrests it).
pub const TRIP_FALL_TAU_S: (f64, f64) = (1.0, 2.0);
/// Time constant of the recovery, s (secondary control); about 3 of these restore nominal.
pub const TRIP_RECOVER_TAU_S: (f64, f64) = (10.0, 20.0);
/// Standard deviation of each device's own frequency measurement noise, Hz.
pub const METER_NOISE_HZ: f64 = 0.001;
/// Smallest and largest load current, A (a 16 A socket circuit).
pub const CURRENT_A: (f64, f64) = (0.1, 16.0);
/// Smallest and largest power factor.
pub const POWER_FACTOR: (f64, f64) = (0.9, 1.0);

/// The grid's nominal frequency, which also fixes the nominal mains voltage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Nominal {
    /// 50 Hz, 230 V (Continental Europe, GB, Nordic).
    Hz50,
    /// 60 Hz, 120 V (North America).
    Hz60,
}

impl Nominal {
    pub fn hz(self) -> f64 {
        match self {
            Self::Hz50 => 50.0,
            Self::Hz60 => 60.0,
        }
    }

    /// Nominal RMS voltage of a socket, V.
    pub fn volts(self) -> f64 {
        match self {
            Self::Hz50 => 230.0,
            Self::Hz60 => 120.0,
        }
    }
}

impl fmt::Display for Nominal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Hz", self.hz())
    }
}

/// Why a string is not a nominal frequency.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nominal frequency must be 50 or 60 (Hz), not {0:?}")]
pub struct NominalError(String);

impl FromStr for Nominal {
    type Err = NominalError;
    /// Accepts `50`, `60`, optionally followed by `Hz` in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t
            .strip_suffix("Hz")
            .or_else(|| t.strip_suffix("hz"))
            .or_else(|| t.strip_suffix("HZ"))
            .unwrap_or(t)
            .trim();
        match t {
            "50" => Ok(Self::Hz50),
            "60" => Ok(Self::Hz60),
            _ => Err(NominalError(s.to_owned())),
        }
    }
}

/// A sudden loss of generation: the frequency falls to `size_hz` below its course within a few
/// seconds, then recovers exponentially.
///
/// The deviation `t` seconds after onset is `size · (e^(−t/τr) − e^(−t/τf)) / peak`, a
/// difference of exponentials normalised so that its extreme (the nadir) is exactly `size_hz`.
/// The initial rate of change is about `size / τf`, e.g. −0.1 Hz/s for −150 mHz: a clear RoCoF
/// event, well short of the ±0.5 Hz/s that counts as severe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Deviation at the nadir, Hz; negative when generation is lost.
    pub size_hz: f64,
    /// Time constant of the fall, s.
    pub fall_tau_s: f64,
    /// Time constant of the recovery, s; must exceed `fall_tau_s`.
    pub recover_tau_s: f64,
}

impl Step {
    /// A step of `size_hz` with mid-range time constants (fall 1.5 s, recovery 15 s).
    pub fn new(size_hz: f64) -> Self {
        Self {
            size_hz,
            fall_tau_s: 1.5,
            recover_tau_s: 15.0,
        }
    }

    /// Seconds from onset to the nadir.
    pub fn nadir_s(&self) -> f64 {
        let (f, r) = self.taus();
        f * r / (r - f) * (r / f).ln()
    }

    /// Deviation from the undisturbed course `t_s` seconds after onset, Hz.
    pub fn offset(&self, t_s: f64) -> f64 {
        if t_s <= 0.0 {
            return 0.0;
        }
        self.size_hz * self.shape(t_s) / self.shape(self.nadir_s())
    }

    /// Seconds after onset when the deviation is back within 0.1 % of its size.
    pub fn settled_s(&self) -> f64 {
        let (f, r) = self.taus();
        // After the nadir the fall term has faded and the deviation is `size · e^(−(t−nadir)/τr)
        // / (1 − τf/τr)`.
        self.nadir_s() + r * (1000.0 / (1.0 - f / r)).ln()
    }

    fn shape(&self, t_s: f64) -> f64 {
        let (f, r) = self.taus();
        (-t_s / r).exp() - (-t_s / f).exp()
    }

    /// The time constants, forced into a valid order (fall strictly faster than recovery).
    fn taus(&self) -> (f64, f64) {
        let f = self.fall_tau_s.max(0.01);
        (f, self.recover_tau_s.max(f * 1.5))
    }
}

/// The frequency of one synchronous grid.
#[derive(Debug, Clone)]
pub struct GridModel {
    nominal: Nominal,
    /// Drives the walk only, so injecting a step never changes the walk's course.
    walk_rng: SmallRng,
    /// Drives random trips only.
    trip_rng: SmallRng,
    walk_std_hz: f64,
    /// The power imbalance, expressed as the frequency deviation it would settle at, Hz.
    imbalance_hz: f64,
    /// Deviation of the walk from nominal, Hz.
    walk_hz: f64,
    /// Mean quiet time between random trips, s; `None` disables them.
    trip_every_s: Option<f64>,
    /// Steps in progress and their age, s.
    active: Vec<(Step, f64)>,
    /// Steps started since the last [`GridModel::take_new_steps`].
    started: Vec<Step>,
    frequency_hz: f64,
}

impl GridModel {
    /// A grid at `nominal` whose course is fixed by `seed`. Random trips are off until
    /// [`GridModel::with_trips_every`].
    pub fn new(nominal: Nominal, seed: u64) -> Self {
        let mut walk_rng = SmallRng::seed_from_u64(seed);
        let trip_rng = SmallRng::seed_from_u64(mix(seed, 0x7472_6970));
        // Start in the walk's stationary distribution rather than exactly on nominal.
        let walk_hz = WALK_STD_HZ * gaussian(&mut walk_rng);
        Self {
            nominal,
            walk_rng,
            trip_rng,
            walk_std_hz: WALK_STD_HZ,
            imbalance_hz: walk_hz,
            walk_hz,
            trip_every_s: None,
            active: Vec::new(),
            started: Vec::new(),
            frequency_hz: nominal.hz() + walk_hz,
        }
    }

    /// Random generator trips with a mean quiet time of `mean_s` seconds between them (a Poisson
    /// process that pauses while a trip is still being restored); `None` or `≤ 0` disables them.
    pub fn with_trips_every(mut self, mean_s: Option<f64>) -> Self {
        self.trip_every_s = mean_s.filter(|s| *s > 0.0 && s.is_finite());
        self
    }

    /// Overrides the walk's standard deviation (Hz); 0 gives a perfectly steady grid.
    pub fn with_walk_std(mut self, std_hz: f64) -> Self {
        self.walk_std_hz = std_hz.max(0.0);
        self.walk_hz = self.walk_hz.signum() * self.walk_hz.abs().min(3.0 * self.walk_std_hz);
        self.imbalance_hz = self.walk_hz;
        self.frequency_hz = self.nominal.hz() + self.walk_hz;
        self
    }

    pub fn nominal(&self) -> Nominal {
        self.nominal
    }

    /// The frequency after the last [`GridModel::advance`], Hz.
    pub fn frequency(&self) -> f64 {
        self.frequency_hz
    }

    /// Starts a step of `size_hz` (e.g. `-0.150`) now, with mid-range time constants.
    pub fn inject_step(&mut self, size_hz: f64) {
        self.inject(Step::new(size_hz));
    }

    /// Starts `step` now; it shows from the next [`GridModel::advance`] on.
    pub fn inject(&mut self, step: Step) {
        self.active.push((step, 0.0));
        self.started.push(step);
    }

    /// Steps started (randomly or injected) since the last call.
    pub fn take_new_steps(&mut self) -> Vec<Step> {
        core::mem::take(&mut self.started)
    }

    /// Moves the grid `dt_s` seconds on and returns its frequency, Hz.
    pub fn advance(&mut self, dt_s: f64) -> f64 {
        let dt = if dt_s.is_finite() { dt_s.max(0.0) } else { 0.0 };

        self.walk(dt);

        for (_, age) in &mut self.active {
            *age += dt;
        }
        self.active.retain(|(step, age)| *age < step.settled_s());

        // Draw every time, used or not, so the trip sequence depends only on the seed and the
        // ticks, not on what was injected.
        let u: f64 = self.trip_rng.random();
        if let Some(mean) = self.trip_every_s
            && self.active.is_empty()
            && u < 1.0 - (-dt / mean).exp()
        {
            let step = Step {
                size_hz: self.trip_rng.random_range(TRIP_SIZE_HZ.0..=TRIP_SIZE_HZ.1),
                fall_tau_s: self
                    .trip_rng
                    .random_range(TRIP_FALL_TAU_S.0..=TRIP_FALL_TAU_S.1),
                recover_tau_s: self
                    .trip_rng
                    .random_range(TRIP_RECOVER_TAU_S.0..=TRIP_RECOVER_TAU_S.1),
            };
            self.inject(step);
        }

        let disturbance: f64 = self.active.iter().map(|(s, age)| s.offset(*age)).sum();
        self.frequency_hz = self.nominal.hz() + self.walk_hz + disturbance;
        self.frequency_hz
    }

    /// Integrates the walk over `dt` seconds in sub-steps of at most [`SUBSTEP_S`]: the imbalance
    /// with the exact Ornstein–Uhlenbeck update, the frequency relaxing towards it.
    fn walk(&mut self, dt: f64) {
        let n = (dt / SUBSTEP_S).ceil().clamp(1.0, MAX_SUBSTEPS);
        let h = dt / n;
        // The lag removes part of the imbalance's variance (τp / (τp + τf) of it remains);
        // scale up so the frequency itself has `walk_std_hz`.
        let imbalance_std = self.walk_std_hz * ((WALK_TAU_S + INERTIA_TAU_S) / WALK_TAU_S).sqrt();
        let keep_imbalance = (-h / WALK_TAU_S).exp();
        let spread = imbalance_std * (1.0 - keep_imbalance * keep_imbalance).sqrt();
        let keep_frequency = (-h / INERTIA_TAU_S).exp();
        for _ in 0..n as u32 {
            self.imbalance_hz =
                self.imbalance_hz * keep_imbalance + spread * gaussian(&mut self.walk_rng);
            self.walk_hz = self.imbalance_hz + (self.walk_hz - self.imbalance_hz) * keep_frequency;
        }
    }
}

/// One simulated board: what its meter reads and how healthy it is.
#[derive(Debug, Clone)]
pub struct DeviceModel {
    nominal: Nominal,
    /// Drives the readings only.
    rng: SmallRng,
    /// Drives the health only, so when statuses are sent never changes the readings.
    health_rng: SmallRng,
    last_t_us: Option<i64>,
    /// This socket's steady voltage, V (the local transformer tap and distance to it).
    base_voltage: f64,
    /// Slow wander of the voltage around `base_voltage`, V.
    voltage_walk: f64,
    current: f64,
    target_current: f64,
    power_factor: f64,
    target_power_factor: f64,
    rssi: f64,
    base_rssi: f64,
    free_heap: f64,
}

/// Resistance between the socket and the transformer, Ω: a 16 A load drops the voltage ~4 V.
const LINE_OHMS: f64 = 0.25;
/// Mean time between load changes (an appliance switching), s.
const LOAD_CHANGE_EVERY_S: f64 = 90.0;
/// How quickly the current and power factor settle on a new load, s.
const LOAD_TAU_S: f64 = 3.0;
/// The voltage's slow wander: standard deviation as a fraction of nominal, and time constant.
const VOLTAGE_WALK: (f64, f64) = (0.006, 120.0);

impl DeviceModel {
    /// A board on a `nominal` grid whose readings are fixed by `seed`. Give each device its own
    /// seed, e.g. with [`device_seed`].
    pub fn new(nominal: Nominal, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut health_rng = SmallRng::seed_from_u64(mix(seed, 0x6865_616c_7468));
        let v = nominal.volts();
        let base_voltage = v * (1.0 + rng.random_range(-0.015..=0.015));
        let target_current = log_uniform(&mut rng, CURRENT_A);
        let target_power_factor = rng.random_range(POWER_FACTOR.0..=POWER_FACTOR.1);
        let base_rssi = health_rng.random_range(-72.0..=-45.0);
        let free_heap = health_rng.random_range(170_000.0..=230_000.0);
        Self {
            nominal,
            rng,
            health_rng,
            last_t_us: None,
            base_voltage,
            voltage_walk: 0.0,
            current: target_current,
            target_current,
            power_factor: target_power_factor,
            target_power_factor,
            rssi: base_rssi,
            base_rssi,
            free_heap,
        }
    }

    pub fn nominal(&self) -> Nominal {
        self.nominal
    }

    /// The power factor of the last sample.
    pub fn power_factor(&self) -> f64 {
        self.power_factor
    }

    /// One reading at `t_us` (µs since the Unix epoch) on a grid at `grid_hz`. The load evolves
    /// by the time since the previous sample.
    pub fn sample(&mut self, grid_hz: f64, t_us: i64) -> Measurement {
        let dt = self.elapsed_s(t_us);
        let rng = &mut self.rng;

        // The load: now and then an appliance switches and the current heads for a new level.
        if rng.random::<f64>() < 1.0 - (-dt / LOAD_CHANGE_EVERY_S).exp() {
            self.target_current = log_uniform(rng, CURRENT_A);
            // Big loads (heaters, kettles) are resistive; small ones (electronics) less so.
            let resistive = (self.target_current / CURRENT_A.1).sqrt();
            self.target_power_factor = (POWER_FACTOR.0 + 0.1 * resistive + 0.01 * gaussian(rng))
                .clamp(POWER_FACTOR.0, POWER_FACTOR.1);
        }
        let settle = 1.0 - (-dt / LOAD_TAU_S).exp();
        self.current += (self.target_current - self.current) * settle;
        self.current =
            (self.current * (1.0 + 0.003 * gaussian(rng))).clamp(CURRENT_A.0, CURRENT_A.1);
        self.power_factor += (self.target_power_factor - self.power_factor) * settle;
        self.power_factor = self.power_factor.clamp(POWER_FACTOR.0, POWER_FACTOR.1);

        let (std_frac, tau) = VOLTAGE_WALK;
        let decay = (-dt / tau).exp();
        self.voltage_walk = self.voltage_walk * decay
            + std_frac * self.nominal.volts() * (1.0 - decay * decay).sqrt() * gaussian(rng);

        let frequency = round_to(grid_hz + METER_NOISE_HZ * gaussian(rng), 4);
        let voltage = round_to(
            self.base_voltage + self.voltage_walk - LINE_OHMS * self.current + 0.05 * gaussian(rng),
            2,
        );
        let current = round_to(self.current, 3);
        let power = round_to(voltage * current * self.power_factor, 1);
        Measurement {
            timestamp: t_us,
            frequency,
            voltage,
            current,
            power,
        }
    }

    /// The board's health at `t_us`: RSSI and free heap wander a little; `online` as given.
    pub fn status(&mut self, t_us: i64, online: bool) -> Status {
        let rng = &mut self.health_rng;
        self.rssi = 0.8 * self.rssi + 0.2 * self.base_rssi + 1.5 * gaussian(rng);
        self.free_heap = (self.free_heap + 2_000.0 * gaussian(rng)).clamp(120_000.0, 260_000.0);
        Status {
            timestamp: t_us,
            rssi: self.rssi.round() as i32,
            free_heap: self.free_heap.round() as u64,
            online: Some(online),
            battery: None,
            dropped: None,
        }
    }

    fn elapsed_s(&mut self, t_us: i64) -> f64 {
        let dt = match self.last_t_us {
            Some(last) => (t_us.saturating_sub(last)).max(0) as f64 / 1e6,
            None => 0.0,
        };
        self.last_t_us = Some(t_us);
        dt
    }
}

/// The seed for device number `index` of a fleet seeded with `seed`: distinct and well mixed.
pub fn device_seed(seed: u64, index: usize) -> u64 {
    mix(seed, index as u64 + 1)
}

/// SplitMix64 of `a` combined with `b`.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut SmallRng) -> f64 {
    // 1 − [0, 1) is (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (core::f64::consts::TAU * u2).cos()
}

/// Uniform in log space between `lo` and `hi`: as many small loads as large ones per decade.
fn log_uniform(rng: &mut SmallRng, (lo, hi): (f64, f64)) -> f64 {
    rng.random_range(lo.ln()..=hi.ln()).exp()
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogm_protocol::{Kind, Payload, payload};

    const T0: i64 = 1_750_000_000_000_000;

    fn stats(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn a_day_of_walk_and_trips_stays_within_half_a_hertz() {
        let mut g = GridModel::new(Nominal::Hz50, 1).with_trips_every(Some(900.0));
        let mut trips = 0;
        for _ in 0..86_400 {
            let f = g.advance(1.0);
            assert!((f - 50.0).abs() < 0.5, "{f}");
            trips += g.take_new_steps().len();
        }
        // Mean quiet time 900 s plus ~110 s of restoration per trip: about 85 a day.
        assert!((50..=130).contains(&trips), "{trips} trips");
    }

    #[test]
    fn the_walk_has_the_expected_spread_and_no_bias() {
        for seed in [2, 3] {
            let mut g = GridModel::new(Nominal::Hz50, seed);
            let fs: Vec<f64> = (0..200_000).map(|_| g.advance(1.0)).collect();
            let (mean, std) = stats(&fs);
            assert!((mean - 50.0).abs() < 0.005, "mean {mean}");
            assert!(
                (0.8 * WALK_STD_HZ..1.2 * WALK_STD_HZ).contains(&std),
                "std {std}"
            );
        }
    }

    #[test]
    fn the_walk_is_smooth_from_second_to_second() {
        // Real recordings move a few mHz per second; an unsmoothed walk of the same spread
        // would jump ~6 mHz each second.
        let mut g = GridModel::new(Nominal::Hz50, 11);
        let fs: Vec<f64> = (0..100_000).map(|_| g.advance(1.0)).collect();
        let diffs: Vec<f64> = fs.windows(2).map(|w| w[1] - w[0]).collect();
        let (_, std) = stats(&diffs);
        assert!((0.000_5..0.004).contains(&std), "{std}");
    }

    #[test]
    fn the_walk_is_the_same_at_any_rate() {
        // The exact discretisation keeps the spread whatever the sample rate.
        let mut g = GridModel::new(Nominal::Hz50, 4);
        let fs: Vec<f64> = (0..500_000).map(|_| g.advance(0.02)).collect();
        let (_, std) = stats(&fs);
        assert!(
            (0.6 * WALK_STD_HZ..1.4 * WALK_STD_HZ).contains(&std),
            "{std}"
        );
    }

    #[test]
    fn same_seed_same_grid_other_seed_other_grid() {
        let run = |seed| {
            let mut g = GridModel::new(Nominal::Hz50, seed).with_trips_every(Some(60.0));
            (0..3_000).map(|_| g.advance(0.5)).collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }

    #[test]
    fn a_step_drops_the_frequency_by_its_size_and_recovers() {
        let size = -0.150;
        let mut calm = GridModel::new(Nominal::Hz50, 5);
        let mut hit = GridModel::new(Nominal::Hz50, 5);
        hit.inject_step(size);
        assert_eq!(hit.take_new_steps(), vec![Step::new(size)]);
        assert!(hit.take_new_steps().is_empty());

        let dt = 0.1;
        let mut deviation = Vec::new();
        for _ in 0..3_000 {
            deviation.push(hit.advance(dt) - calm.advance(dt));
        }
        let (i_min, min) = deviation
            .iter()
            .copied()
            .enumerate()
            .fold((0, 0.0), |a, (i, d)| if d < a.1 { (i, d) } else { a });
        assert!((min - size).abs() < 0.001, "nadir {min}");
        let t_nadir = (i_min + 1) as f64 * dt;
        assert!((2.0..8.0).contains(&t_nadir), "nadir after {t_nadir} s");
        // It falls fast: half the drop within the first two seconds...
        assert!(deviation[19] < size / 2.0, "{}", deviation[19]);
        // ...and is restored within a minute or so.
        assert!(
            deviation[599].abs() < 0.015,
            "after 60 s {}",
            deviation[599]
        );
        assert!(
            deviation[2_999].abs() < 0.000_1,
            "after 300 s {}",
            deviation[2_999]
        );
    }

    #[test]
    fn a_step_is_also_visible_on_a_steady_grid() {
        let mut g = GridModel::new(Nominal::Hz60, 6).with_walk_std(0.0);
        assert_eq!(g.advance(1.0), 60.0);
        g.inject_step(-0.2);
        let nadir = (0..20)
            .map(|_| g.advance(0.25))
            .fold(f64::INFINITY, f64::min);
        assert!((nadir - 59.8).abs() < 0.002, "{nadir}");
    }

    #[test]
    fn step_shape() {
        let s = Step::new(-0.1);
        assert_eq!(s.offset(0.0), 0.0);
        assert_eq!(s.offset(-1.0), 0.0);
        assert!((s.offset(s.nadir_s()) + 0.1).abs() < 1e-12);
        assert!(s.offset(s.settled_s()).abs() < 0.000_1 + 1e-9);
        // Initial RoCoF about size / fall tau: −0.1 Hz / 1.5 s, a bit more after normalising.
        let rocof = s.offset(0.1) / 0.1;
        assert!((-0.2..-0.05).contains(&rocof), "{rocof}");
    }

    #[test]
    fn each_device_adds_about_a_millihertz_of_noise() {
        let mut d = DeviceModel::new(Nominal::Hz50, 7);
        let errs: Vec<f64> = (0..20_000)
            .map(|i| d.sample(50.0, T0 + i * 1_000_000).frequency - 50.0)
            .collect();
        let (mean, std) = stats(&errs);
        assert!(mean.abs() < 0.000_1, "{mean}");
        assert!((0.000_8..0.001_2).contains(&std), "{std}");
    }

    #[test]
    fn voltage_current_and_power_are_consistent() {
        for (nominal, seed) in [(Nominal::Hz50, 8), (Nominal::Hz60, 9)] {
            let mut d = DeviceModel::new(nominal, seed);
            let (mut i_min, mut i_max) = (f64::INFINITY, 0.0f64);
            for i in 0..100_000 {
                let m = d.sample(nominal.hz(), T0 + i * 1_000_000);
                let pf = d.power_factor();
                assert!((POWER_FACTOR.0..=POWER_FACTOR.1).contains(&pf), "{pf}");
                assert!((CURRENT_A.0..=CURRENT_A.1).contains(&m.current), "{m:?}");
                let v_err = (m.voltage / nominal.volts() - 1.0).abs();
                // EN 50160: within ±10 % of nominal.
                assert!(v_err < 0.1, "{m:?}");
                assert!(
                    (m.power - m.voltage * m.current * pf).abs() <= 0.05 + 1e-9,
                    "{m:?}"
                );
                (i_min, i_max) = (i_min.min(m.current), i_max.max(m.current));
            }
            // Over a long run the load really does wander across the range.
            assert!(i_min < 0.5 && i_max > 10.0, "{i_min}..{i_max}");
        }
    }

    #[test]
    fn payloads_decode_back_into_the_same_values() {
        let mut g = GridModel::new(Nominal::Hz50, 10);
        let mut d = DeviceModel::new(Nominal::Hz50, device_seed(10, 0));
        for i in 0..1_000 {
            let t = T0 + i * 1_000_000;
            let m = d.sample(g.advance(1.0), t);
            let back = payload::decode(Kind::Measurement, &m.to_json(), t).unwrap();
            assert_eq!(back.payload, Payload::Measurement(m));
            assert_eq!(back.timestamp_fix, payload::TimestampFix::Kept);
        }
        for online in [true, false] {
            let s = d.status(T0, online);
            let back = payload::decode(Kind::Status, &s.to_json(), T0).unwrap();
            assert_eq!(back.payload, Payload::Status(s.clone()));
            assert_eq!(s.online, Some(online));
        }
    }

    #[test]
    fn statuses_do_not_change_the_readings() {
        let mut quiet = DeviceModel::new(Nominal::Hz50, 12);
        let mut chatty = DeviceModel::new(Nominal::Hz50, 12);
        for i in 0..100 {
            let t = T0 + i * 1_000_000;
            chatty.status(t, true);
            assert_eq!(quiet.sample(50.0, t), chatty.sample(50.0, t));
        }
    }

    #[test]
    fn devices_differ_but_each_is_reproducible() {
        let run = |seed| {
            let mut d = DeviceModel::new(Nominal::Hz50, seed);
            (0..100)
                .map(|i| d.sample(50.0, T0 + i * 100_000))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(device_seed(1, 0)), run(device_seed(1, 0)));
        assert_ne!(run(device_seed(1, 0)), run(device_seed(1, 1)));
    }

    #[test]
    fn nominal_parses_50_and_60_only() {
        assert_eq!("50".parse(), Ok(Nominal::Hz50));
        assert_eq!("60Hz".parse(), Ok(Nominal::Hz60));
        assert_eq!(" 60 hz".parse(), Ok(Nominal::Hz60));
        for bad in ["", "55", "50.0", "fifty"] {
            assert!(bad.parse::<Nominal>().is_err(), "{bad}");
        }
        assert_eq!((Nominal::Hz60.hz(), Nominal::Hz60.volts()), (60.0, 120.0));
    }
}
