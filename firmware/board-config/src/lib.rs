//! The board's settings file (`firmware/board/cfg.toml`, git-ignored; the committed template is
//! `cfg.toml.example`): parsing, validation, and the Rust constants the board binary compiles in.
//!
//! The board's `build.rs` calls [`load`] and [`BoardConfig::to_rust`]; a file that still holds a
//! placeholder ([`PLACEHOLDER`]), misses a key, has an unknown key, or holds an invalid value
//! (a device id the broker would refuse, a broker URL that is not `mqtt://host[:port]`, a WPA2
//! password of the wrong length, a calibration constant that is not a positive number, …) fails
//! the build with every problem listed. Nothing is checked on the board that can be checked here.

use std::fmt;
use std::path::Path;

use ogm_protocol::DeviceId;
use serde::Deserialize;

/// Marks a value the user must replace.
pub const PLACEHOLDER: &str = "CHANGE_ME";
/// Most readings the offline buffer may hold: it is allocated at boot in one piece, which must
/// fit the board's main heap region (128 kB on the ESP32-C3 build) beside WiFi's.
pub const MAX_BUFFER_CAPACITY: u32 = 2000;

/// The validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardConfig {
    pub wifi_ssid: String,
    /// Empty for an open network.
    pub wifi_password: String,
    pub broker_host: String,
    pub broker_port: u16,
    pub mqtt_password: String,
    pub device_id: DeviceId,
    pub nominal_hz: u32,
    pub sntp_server: String,
    pub volts_per_lsb: f64,
    pub amps_per_lsb: f64,
    pub watts_per_lsb: f64,
    /// PGA gains as multipliers (1, 2, 4, 8, 16; 22 for current only).
    pub voltage_gain: u8,
    pub current_gain: u8,
    pub zx_both_edges: bool,
    pub timer_ppm: f64,
    pub sample_every_ms: u32,
    pub status_every_s: u32,
    pub buffer_capacity: u32,
}

/// One thing wrong with the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `section.key`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why the settings cannot be used.
#[derive(Debug)]
pub enum ConfigError {
    /// The file cannot be read.
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Not TOML, or not the expected sections and keys.
    Syntax(String),
    /// Valid TOML with values that cannot be used; every problem is listed.
    Invalid(Vec<Problem>),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => write!(
                f,
                "cannot read {path}: {source}. Copy cfg.toml.example to cfg.toml and fill it in."
            ),
            Self::Syntax(e) => write!(f, "{e}"),
            Self::Invalid(problems) => {
                writeln!(f, "{} setting(s) must be fixed:", problems.len())?;
                for p in problems {
                    writeln!(f, "  - {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    wifi: Wifi,
    mqtt: Mqtt,
    device: Device,
    #[serde(default)]
    time: Time,
    #[serde(default)]
    meter: Meter,
    #[serde(default)]
    schedule: Schedule,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wifi {
    ssid: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mqtt {
    broker: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Device {
    id: String,
    #[serde(default = "default_nominal")]
    nominal_hz: u32,
}

fn default_nominal() -> u32 {
    50
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Time {
    sntp_server: String,
}

impl Default for Time {
    fn default() -> Self {
        Self {
            sntp_server: "pool.ntp.org".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Meter {
    volts_per_lsb: f64,
    amps_per_lsb: f64,
    watts_per_lsb: f64,
    voltage_gain: u8,
    current_gain: u8,
    zx_edges: String,
    timer_ppm: f64,
}

impl Default for Meter {
    /// The firmware core's starting point (`Calibration::DEFAULT`).
    fn default() -> Self {
        Self {
            volts_per_lsb: 1.0 / 26_000.0,
            amps_per_lsb: 1.0 / 100_000.0,
            watts_per_lsb: 6.452_7e-3,
            voltage_gain: 1,
            current_gain: 1,
            zx_edges: "rising".into(),
            timer_ppm: 0.0,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Schedule {
    sample_every_ms: u32,
    status_every_s: u32,
    buffer_capacity: u32,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            sample_every_ms: 1000,
            status_every_s: 10,
            buffer_capacity: 1800,
        }
    }
}

/// Reads and validates the settings file at `path`.
pub fn load(path: &Path) -> Result<BoardConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text)
}

/// Validates settings given as TOML text.
pub fn parse(text: &str) -> Result<BoardConfig, ConfigError> {
    let file: File = toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: String| {
        problems.push(Problem {
            key: key.to_owned(),
            message,
        })
    };

    // Placeholders first: every string setting.
    for (key, value) in [
        ("wifi.ssid", &file.wifi.ssid),
        ("wifi.password", &file.wifi.password),
        ("mqtt.broker", &file.mqtt.broker),
        ("mqtt.password", &file.mqtt.password),
        ("device.id", &file.device.id),
        ("time.sntp_server", &file.time.sntp_server),
    ] {
        if value.to_ascii_uppercase().contains(PLACEHOLDER) {
            problem(key, format!("still holds the placeholder {PLACEHOLDER}"));
        }
    }

    if file.wifi.ssid.is_empty() || file.wifi.ssid.len() > 32 {
        problem("wifi.ssid", "must be 1 to 32 bytes".into());
    }
    let pw = file.wifi.password.len();
    if pw != 0 && !(8..=63).contains(&pw) {
        problem(
            "wifi.password",
            "a WPA2 passphrase is 8 to 63 characters (empty for an open network)".into(),
        );
    }

    let broker = parse_broker(&file.mqtt.broker);
    if let Err(e) = &broker {
        problem("mqtt.broker", e.clone());
    }
    if file.mqtt.password.is_empty() {
        problem(
            "mqtt.password",
            "the broker allows no anonymous devices; give this device's password".into(),
        );
    }

    let device_id = DeviceId::new(&file.device.id);
    if let Err(e) = &device_id {
        problem("device.id", e.to_string());
    }
    if ![50, 60].contains(&file.device.nominal_hz) {
        problem("device.nominal_hz", "must be 50 or 60".into());
    }
    if file.time.sntp_server.trim().is_empty() {
        problem("time.sntp_server", "must name an SNTP server".into());
    }

    let m = &file.meter;
    for (key, v) in [
        ("meter.volts_per_lsb", m.volts_per_lsb),
        ("meter.amps_per_lsb", m.amps_per_lsb),
        ("meter.watts_per_lsb", m.watts_per_lsb),
    ] {
        if !(v.is_finite() && v > 0.0) {
            problem(key, "must be a positive number".into());
        }
    }
    if ![1, 2, 4, 8, 16].contains(&m.voltage_gain) {
        problem("meter.voltage_gain", "must be 1, 2, 4, 8 or 16".into());
    }
    if ![1, 2, 4, 8, 16, 22].contains(&m.current_gain) {
        problem("meter.current_gain", "must be 1, 2, 4, 8, 16 or 22".into());
    }
    let zx_both = match m.zx_edges.as_str() {
        "rising" => false,
        "both" => true,
        _ => {
            problem("meter.zx_edges", "must be \"rising\" or \"both\"".into());
            false
        }
    };
    if !(m.timer_ppm.is_finite() && m.timer_ppm.abs() <= 500.0) {
        problem("meter.timer_ppm", "must be between -500 and 500".into());
    }

    let s = &file.schedule;
    if !(20..=60_000).contains(&s.sample_every_ms) {
        problem(
            "schedule.sample_every_ms",
            "must be 20 to 60000 (50 Hz to one a minute)".into(),
        );
    }
    if !(1..=3600).contains(&s.status_every_s) {
        problem("schedule.status_every_s", "must be 1 to 3600".into());
    }
    if !(1..=MAX_BUFFER_CAPACITY).contains(&s.buffer_capacity) {
        problem(
            "schedule.buffer_capacity",
            format!(
                "must be 1 to {MAX_BUFFER_CAPACITY} readings (48 bytes of heap each; the heap \
                 also holds WiFi's 60 kB)"
            ),
        );
    }

    match (problems.is_empty(), broker, device_id) {
        (true, Ok((broker_host, broker_port)), Ok(device_id)) => Ok(BoardConfig {
            wifi_ssid: file.wifi.ssid,
            wifi_password: file.wifi.password,
            broker_host,
            broker_port,
            mqtt_password: file.mqtt.password,
            device_id,
            nominal_hz: file.device.nominal_hz,
            sntp_server: file.time.sntp_server,
            volts_per_lsb: m.volts_per_lsb,
            amps_per_lsb: m.amps_per_lsb,
            watts_per_lsb: m.watts_per_lsb,
            voltage_gain: m.voltage_gain,
            current_gain: m.current_gain,
            zx_both_edges: zx_both,
            timer_ppm: m.timer_ppm,
            sample_every_ms: s.sample_every_ms,
            status_every_s: s.status_every_s,
            buffer_capacity: s.buffer_capacity,
        }),
        _ => Err(ConfigError::Invalid(problems)),
    }
}

/// `mqtt://host[:port]` or `tcp://host[:port]`, port 1883 if omitted; plain TCP only.
fn parse_broker(url: &str) -> Result<(String, u16), String> {
    let rest = match url.split_once("://") {
        Some(("mqtt" | "tcp", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "scheme {scheme:?} is not supported; use mqtt://host[:port] (plain TCP)"
            ));
        }
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("bad port {port:?}"))?,
        ),
        None => (rest, 1883),
    };
    if host.is_empty() || host.contains(['/', '[', ']', ' ', '@']) {
        return Err(format!(
            "{url:?} is not mqtt://host[:port] (an IPv4 address or a DNS name)"
        ));
    }
    Ok((host.to_owned(), port))
}

impl BoardConfig {
    /// The settings as Rust constants, for `include!` in the board binary.
    pub fn to_rust(&self) -> String {
        let mut out = String::from(
            "// Generated by ogm-board-config from the board's settings file. Do not edit.\n",
        );
        let mut s = |name: &str, value: &str| {
            out.push_str(&format!("pub const {name}: &str = {value:?};\n"));
        };
        s("WIFI_SSID", &self.wifi_ssid);
        s("WIFI_PASSWORD", &self.wifi_password);
        s("BROKER_HOST", &self.broker_host);
        s("MQTT_PASSWORD", &self.mqtt_password);
        s("DEVICE_ID", self.device_id.as_str());
        s("SNTP_SERVER", &self.sntp_server);
        let mut n = |name: &str, ty: &str, value: String| {
            out.push_str(&format!("pub const {name}: {ty} = {value};\n"));
        };
        n("BROKER_PORT", "u16", self.broker_port.to_string());
        n(
            "NOMINAL_HZ",
            "f64",
            format!("{:?}", f64::from(self.nominal_hz)),
        );
        n("VOLTS_PER_LSB", "f64", format!("{:?}", self.volts_per_lsb));
        n("AMPS_PER_LSB", "f64", format!("{:?}", self.amps_per_lsb));
        n("WATTS_PER_LSB", "f64", format!("{:?}", self.watts_per_lsb));
        n("VOLTAGE_GAIN", "u8", self.voltage_gain.to_string());
        n("CURRENT_GAIN", "u8", self.current_gain.to_string());
        n("ZX_BOTH_EDGES", "bool", self.zx_both_edges.to_string());
        n("TIMER_PPM", "f64", format!("{:?}", self.timer_ppm));
        n("SAMPLE_EVERY_MS", "u64", self.sample_every_ms.to_string());
        n("STATUS_EVERY_S", "u64", self.status_every_s.to_string());
        n("BUFFER_CAPACITY", "usize", self.buffer_capacity.to_string());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../board/cfg.toml.example");
    const CI: &str = include_str!("../../board/cfg.ci.toml");

    fn invalid(text: &str) -> Vec<String> {
        match parse(text) {
            Err(ConfigError::Invalid(p)) => p.into_iter().map(|p| p.key).collect(),
            other => panic!("expected invalid settings, got {other:?}"),
        }
    }

    #[test]
    fn the_committed_example_is_refused_for_its_placeholders() {
        let keys = invalid(EXAMPLE);
        for key in [
            "wifi.ssid",
            "wifi.password",
            "mqtt.broker",
            "mqtt.password",
            "device.id",
        ] {
            assert!(keys.contains(&key.to_owned()), "{key} in {keys:?}");
        }
        let message = parse(EXAMPLE).unwrap_err().to_string();
        assert!(message.contains("placeholder CHANGE_ME"), "{message}");
    }

    #[test]
    fn the_example_filled_in_is_accepted_with_its_defaults() {
        let filled = EXAMPLE
            .replace("\"CHANGE_ME\"", "\"filled-in\"")
            .replace("mqtt://CHANGE_ME:1883", "mqtt://192.168.1.10:1883")
            .replace("password = \"filled-in\"", "password = \"long-enough\"");
        let c = parse(&filled).unwrap();
        assert_eq!(
            (c.broker_host.as_str(), c.broker_port),
            ("192.168.1.10", 1883)
        );
        assert_eq!(c.device_id.as_str(), "filled-in");
        assert_eq!(
            (c.nominal_hz, c.sample_every_ms, c.status_every_s),
            (50, 1000, 10)
        );
        assert!(!c.zx_both_edges);
    }

    #[test]
    fn the_ci_settings_are_valid_and_generate_constants() {
        let c = parse(CI).unwrap();
        let rust = c.to_rust();
        assert!(
            rust.contains("pub const DEVICE_ID: &str = \"ci-board\";"),
            "{rust}"
        );
        assert!(
            rust.contains("pub const BROKER_PORT: u16 = 1883;"),
            "{rust}"
        );
        assert!(rust.contains("pub const NOMINAL_HZ: f64 = 50.0;"), "{rust}");
        assert!(
            rust.contains("pub const SAMPLE_EVERY_MS: u64 = 1000;"),
            "{rust}"
        );
    }

    #[test]
    fn strings_are_escaped_in_the_generated_code() {
        let text = CI.replace(
            "password = \"ci-wifi-password\"",
            r#"password = "quote\" back\\slash""#,
        );
        let rust = parse(&text).unwrap().to_rust();
        assert!(
            rust.contains(r#"pub const WIFI_PASSWORD: &str = "quote\" back\\slash";"#),
            "{rust}"
        );
    }

    #[test]
    fn bad_values_are_each_reported() {
        let text = CI
            .replace("id = \"ci-board\"", "id = \"has.dot\"")
            .replace("mqtt://192.0.2.1:1883", "mqtts://x:8883")
            .replace("nominal_hz = 50", "nominal_hz = 55")
            .replace("current_gain = 1", "current_gain = 3")
            .replace("zx_edges = \"rising\"", "zx_edges = \"falling\"")
            .replace("sample_every_ms = 1000", "sample_every_ms = 5");
        let keys = invalid(&text);
        assert_eq!(
            keys,
            [
                "mqtt.broker",
                "device.id",
                "device.nominal_hz",
                "meter.current_gain",
                "meter.zx_edges",
                "schedule.sample_every_ms"
            ]
        );
        assert_eq!(
            invalid(&CI.replace("ci-wifi-password", "short")),
            ["wifi.password"]
        );
        assert_eq!(
            invalid(&CI.replace("volts_per_lsb = 3.8462e-5", "volts_per_lsb = -1.0")),
            ["meter.volts_per_lsb"]
        );
    }

    #[test]
    fn unknown_keys_and_broken_toml_are_syntax_errors() {
        let typo = CI.replace("[schedule]", "[schedule]\nsample_evry_ms = 5");
        assert!(matches!(parse(&typo), Err(ConfigError::Syntax(_))));
        assert!(matches!(parse("[wifi"), Err(ConfigError::Syntax(_))));
        let missing = std::path::Path::new("/nonexistent/cfg.toml");
        let err = load(missing).unwrap_err().to_string();
        assert!(err.contains("Copy cfg.toml.example to cfg.toml"), "{err}");
    }

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker("mqtt://10.0.0.2"),
            Ok(("10.0.0.2".into(), 1883))
        );
        assert_eq!(
            parse_broker("tcp://pi.local:1884/"),
            Ok(("pi.local".into(), 1884))
        );
        assert_eq!(parse_broker("broker"), Ok(("broker".into(), 1883)));
        assert!(parse_broker("mqtt://:1883").is_err());
        assert!(parse_broker("mqtt://h:0").is_err());
        assert!(parse_broker("ws://h:9001").is_err());
        assert!(parse_broker("mqtt://[::1]:1883").is_err());
    }
}
