//! The simulator's settings: every flag, its environment variable, its default and its
//! validation. The defaults run the demo against a local broker.

use core::fmt;
use core::str::FromStr;
use std::time::Duration;

use ogm_protocol::{BrokerAddr, DeviceId};

use crate::grid::Nominal;

/// Slowest and fastest measurement rate, Hz.
pub const RATE_HZ: (f64, f64) = (0.1, 50.0);
/// Most devices one simulator runs.
pub const MAX_DEVICES: u16 = 999;

/// Settings of one simulator process.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ogm-sim",
    version,
    about = "Simulates Open Grid Monitor devices on one synchronous grid and publishes their \
             measurements, status and logs to an MQTT broker."
)]
pub struct Config {
    /// MQTT broker: `mqtt://host:port`, `tcp://host:port` or `host[:port]` (port 1883 if omitted).
    #[arg(long, env = "OGM_SIM_BROKER", default_value = "mqtt://127.0.0.1:1883")]
    pub broker: BrokerAddr,

    /// Number of devices, each its own MQTT client.
    #[arg(
        long,
        env = "OGM_SIM_DEVICES",
        default_value_t = 3,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_DEVICES))
    )]
    pub devices: u16,

    /// Device ids are this prefix and a two-digit number: `sim-01`, `sim-02`, …
    #[arg(long, env = "OGM_SIM_DEVICE_PREFIX", default_value = "sim-", value_parser = parse_prefix)]
    pub device_prefix: String,

    /// Broker password; each device logs in with its id as username. Without it, anonymous.
    #[arg(long, env = "OGM_SIM_PASSWORD", hide_env_values = true)]
    pub password: Option<Password>,

    /// Measurements per second per device, 0.1 to 50.
    #[arg(long, env = "OGM_SIM_RATE_HZ", default_value = "1", value_parser = parse_rate)]
    pub rate_hz: f64,

    /// Nominal grid frequency, 50 (230 V) or 60 (120 V).
    #[arg(long, env = "OGM_SIM_NOMINAL_HZ", default_value = "50")]
    pub nominal_hz: Nominal,

    /// Time between retained status messages: `10`, `10s`, `500ms`, `2m`.
    #[arg(long, env = "OGM_SIM_STATUS_INTERVAL", default_value = "10s", value_parser = parse_interval)]
    pub status_interval: Duration,

    /// Mean quiet time between random generator trips (−100 to −200 mHz); `0` or `off` disables.
    #[arg(long, env = "OGM_SIM_STEP_EVERY", default_value = "15m", value_parser = parse_duration)]
    pub step_every: Duration,

    /// Generator trips at set times after the start, comma-separated `<after>:<size>` such as
    /// `20s:-250mHz` (or `-0.25Hz`): for demonstrations and tests of alerts.
    #[arg(long, env = "OGM_SIM_STEP_AT", value_delimiter = ',', value_parser = parse_step_at)]
    pub step_at: Vec<ScheduledStep>,

    /// Seed for a reproducible grid and devices; random if omitted.
    #[arg(long, env = "OGM_SIM_SEED")]
    pub seed: Option<u64>,
}

/// Why the settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("device id {id:?} from --device-prefix is invalid: {source}")]
    DeviceId {
        id: String,
        source: ogm_protocol::DeviceIdError,
    },
}

impl Config {
    /// The ids of the simulated devices: the prefix and 01, 02, … (three digits past 99).
    pub fn device_ids(&self) -> Result<Vec<DeviceId>, ConfigError> {
        (1..=self.devices)
            .map(|n| {
                let id = format!("{}{n:02}", self.device_prefix);
                DeviceId::new(&id).map_err(|source| ConfigError::DeviceId { id, source })
            })
            .collect()
    }

    /// Time between two measurements.
    pub fn sample_period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate_hz)
    }

    /// Mean time between random trips in seconds, `None` when they are off.
    pub fn step_every_s(&self) -> Option<f64> {
        Some(self.step_every.as_secs_f64()).filter(|s| *s > 0.0)
    }
}

/// A broker password that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password itself, for the MQTT CONNECT packet only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl FromStr for Password {
    type Err = core::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

/// A measurement rate in Hz within [`RATE_HZ`].
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let hz: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    let (lo, hi) = RATE_HZ;
    if !(lo..=hi).contains(&hz) {
        return Err(format!("rate must be between {lo} and {hi} Hz, not {hz}"));
    }
    Ok(hz)
}

/// A duration: a number of seconds, or a number with `ms`, `s`, `m` or `h`; `off` is zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(Duration::ZERO);
    }
    let (number, unit_s) = [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)]
        .into_iter()
        .find_map(|(suffix, unit)| t.strip_suffix(suffix).map(|n| (n, unit)))
        .unwrap_or((t, 1.0));
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 10, 10s, 500ms, 2m or 1h"))?;
    Duration::try_from_secs_f64(n * unit_s).map_err(|_| format!("{s:?} is not a valid duration"))
}

/// A generator trip at a set time after the start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduledStep {
    pub after: Duration,
    /// Deviation at the nadir, Hz.
    pub size_hz: f64,
}

/// `20s:-250mHz`, `1m:-0.3Hz`, `90s:-0.2`.
fn parse_step_at(s: &str) -> Result<ScheduledStep, String> {
    let (after, size) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not <after>:<size>, such as 20s:-250mHz"))?;
    let size = size.trim();
    let size_hz = if let Some(m) = size.strip_suffix("mHz") {
        m.trim().parse::<f64>().map(|v| v / 1000.0)
    } else {
        size.strip_suffix("Hz")
            .unwrap_or(size)
            .trim()
            .parse::<f64>()
    }
    .ok()
    .filter(|v| v.is_finite() && v.abs() <= 5.0)
    .ok_or_else(|| format!("{size:?} is not a step size such as -250mHz (at most 5 Hz)"))?;
    Ok(ScheduledStep {
        after: parse_duration(after)?,
        size_hz,
    })
}

/// A duration that must be at least 100 ms.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(100) {
        return Err(format!("{s:?} is too short; the minimum is 100ms"));
    }
    Ok(d)
}

/// A device id prefix: with a number appended it must be a valid [`DeviceId`].
fn parse_prefix(s: &str) -> Result<String, String> {
    let longest = format!("{s}{MAX_DEVICES}");
    DeviceId::new(&longest)
        .map_err(|e| format!("device ids such as {longest:?} would be invalid: {e}"))?;
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("ogm-sim").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_run_the_demo() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.broker, "127.0.0.1:1883".parse().unwrap());
        assert_eq!(c.devices, 3);
        assert_eq!(c.rate_hz, 1.0);
        assert_eq!(c.nominal_hz, Nominal::Hz50);
        assert_eq!(c.status_interval, Duration::from_secs(10));
        assert_eq!(c.step_every_s(), Some(900.0));
        assert_eq!(c.seed, None);
        assert!(c.password.is_none());
        let ids = c.device_ids().unwrap();
        let ids: Vec<&str> = ids.iter().map(|d| d.as_str()).collect();
        assert_eq!(ids, ["sim-01", "sim-02", "sim-03"]);
    }

    #[test]
    fn sixty_hertz_flag() {
        let c = parse(&["--nominal-hz", "60"]).unwrap();
        assert_eq!(c.nominal_hz, Nominal::Hz60);
        assert_eq!(c.nominal_hz.volts(), 120.0);
        assert!(parse(&["--nominal-hz", "55"]).is_err());
    }

    #[test]
    fn rate_must_be_between_a_tenth_and_fifty_hertz() {
        for bad in ["0", "51", "0.09", "-1", "NaN", "fast"] {
            assert!(parse(&["--rate-hz", bad]).is_err(), "{bad}");
        }
        for (ok, hz) in [("0.1", 0.1), ("50", 50.0), ("10", 10.0)] {
            assert_eq!(parse(&["--rate-hz", ok]).unwrap().rate_hz, hz);
        }
        let c = parse(&["--rate-hz", "50"]).unwrap();
        assert_eq!(c.sample_period(), Duration::from_millis(20));
    }

    #[test]
    fn all_the_other_flags() {
        let c = parse(&[
            "--broker",
            "tcp://broker.local:18999",
            "--devices",
            "12",
            "--device-prefix",
            "lab_",
            "--password",
            "s3cret",
            "--status-interval",
            "2m",
            "--step-every",
            "off",
            "--seed",
            "42",
        ])
        .unwrap();
        assert_eq!(c.broker.to_string(), "mqtt://broker.local:18999");
        assert_eq!(c.device_ids().unwrap()[11].as_str(), "lab_12");
        assert_eq!(c.password.as_ref().map(Password::expose), Some("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(c.status_interval, Duration::from_secs(120));
        assert_eq!(c.step_every_s(), None);
        assert_eq!(c.seed, Some(42));
        assert_eq!(
            parse(&["--devices", "100"]).unwrap().device_ids().unwrap()[99].as_str(),
            "sim-100"
        );
    }

    #[test]
    fn bad_flags_are_rejected() {
        for args in [
            &["--devices", "0"][..],
            &["--devices", "1000"],
            &["--device-prefix", "a/b"],
            &["--device-prefix", "sim."],
            &["--device-prefix", &"x".repeat(62)],
            &["--status-interval", "0"],
            &["--broker", "mqtts://example.org"],
            &["--broker", "host:notaport"],
            &["--seed", "-1"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn scheduled_steps() {
        let s = parse_step_at("20s:-250mHz").unwrap();
        assert_eq!((s.after, s.size_hz), (Duration::from_secs(20), -0.25));
        assert_eq!(parse_step_at("1m:-0.3Hz").unwrap().size_hz, -0.3);
        assert!(parse_step_at("20s").is_err());
        assert!(parse_step_at("20s:-9Hz").is_err());
    }

    #[test]
    fn durations() {
        let ok = [
            ("10", 10_000),
            ("10s", 10_000),
            ("1.5s", 1_500),
            ("500ms", 500),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("off", 0),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for bad in ["", "s", "ten", "-1s", "1d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
