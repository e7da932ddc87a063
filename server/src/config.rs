//! The server's typed configuration: every flag also reads an `OGM_*` environment variable, and
//! the defaults run the local demo.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Server configuration.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "ogm-server", version, about = "Open Grid Monitor server")]
pub struct Config {
    /// Address the HTTP API and dashboard listen on.
    #[arg(long, env = "OGM_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// The broker the server itself connects to (mqtt://host:port).
    #[arg(long, env = "OGM_MQTT_URL", default_value = "mqtt://127.0.0.1:1883")]
    pub mqtt_url: String,

    /// The server's broker user (reads every device topic).
    #[arg(long, env = "OGM_MQTT_USERNAME", default_value = "ogm.server")]
    pub mqtt_username: String,

    /// The server's broker password.
    #[arg(
        long,
        env = "OGM_MQTT_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub mqtt_password: String,

    /// The WebSocket URL the dashboard connects to. Default: the host the page was loaded from,
    /// on --mqtt-ws-port.
    #[arg(long, env = "OGM_MQTT_WS_URL")]
    pub mqtt_ws_url: Option<String>,

    /// The broker's WebSocket port, used when --mqtt-ws-url is not given.
    #[arg(long, env = "OGM_MQTT_WS_PORT", default_value_t = 9001)]
    pub mqtt_ws_port: u16,

    /// The read-only broker user given to dashboards.
    #[arg(
        long,
        env = "OGM_DASHBOARD_MQTT_USERNAME",
        default_value = "ogm.dashboard"
    )]
    pub dashboard_mqtt_username: String,

    /// Its password. Every browser that loads the dashboard sees it: give this user read access only.
    #[arg(
        long,
        env = "OGM_DASHBOARD_MQTT_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub dashboard_mqtt_password: String,

    /// The built dashboard (Trunk's dist/).
    #[arg(long, env = "OGM_DIST_DIR", default_value = "dist")]
    pub dist_dir: PathBuf,

    /// Where the embedded store keeps its files.
    #[arg(long, env = "OGM_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// The server's MQTT client id. Stable, because the broker keeps the persistent session
    /// (subscriptions and unacknowledged messages) under it.
    #[arg(long, env = "OGM_MQTT_CLIENT_ID", default_value = "ogm-server")]
    pub mqtt_client_id: String,

    /// Share the ingest among several servers: subscribe through `$share/<group>/...`. Each
    /// server needs its own client id.
    #[arg(long, env = "OGM_MQTT_SHARE_GROUP")]
    pub mqtt_share_group: Option<String>,

    /// Which store keeps the data: `embedded` (SQLite under --data-dir) or `influxdb`.
    #[arg(long, env = "OGM_STORE", value_enum, default_value_t = StoreChoice::Embedded)]
    pub store: StoreChoice,

    /// How long raw points are kept in the embedded store (rollups are kept). `0` keeps them
    /// forever. Units: s, m, h, d.
    #[arg(long, env = "OGM_RAW_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub raw_retention: std::time::Duration,

    /// InfluxDB 2 URL (with --store influxdb).
    #[arg(long, env = "INFLUXDB_URL", default_value = "http://127.0.0.1:8086")]
    pub influxdb_url: String,

    /// InfluxDB token with write access to the bucket.
    #[arg(
        long,
        env = "INFLUXDB_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    pub influxdb_token: String,

    /// A read-only InfluxDB token for history and the Flux proxy; the write token if not given.
    #[arg(long, env = "INFLUXDB_READ_TOKEN", hide_env_values = true)]
    pub influxdb_read_token: Option<String>,

    /// InfluxDB organisation.
    #[arg(long, env = "INFLUXDB_ORG", default_value = "open_grid_monitor")]
    pub influxdb_org: String,

    /// InfluxDB bucket.
    #[arg(long, env = "INFLUXDB_BUCKET", default_value = "open_grid_monitor")]
    pub influxdb_bucket: String,

    /// The `host` tag written with every point. Replicas that share the ingest must use the
    /// same value, so a message redelivered to another replica overwrites instead of doubling.
    /// Default: this machine's hostname.
    #[arg(long, env = "OGM_INFLUXDB_HOST_TAG")]
    pub influxdb_host_tag: Option<String>,

    /// Largest on-disk spool kept while InfluxDB is unreachable, in MiB.
    #[arg(long, env = "OGM_SPOOL_MAX_MB", default_value_t = 1024)]
    pub spool_max_mb: u64,

    /// Nominal grid frequency, 50 or 60 Hz.
    #[arg(long, env = "OGM_NOMINAL_HZ", default_value_t = 50, value_parser = parse_nominal)]
    pub nominal_hz: u32,
}

/// Where the data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreChoice {
    /// SQLite under --data-dir: nothing to install.
    Embedded,
    /// InfluxDB 2, the production store.
    Influxdb,
}

/// `90s`, `15m`, `24h`, `30d`, or `0`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}: expected e.g. 30d, 24h, 15m, 90s"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("bad duration unit in {s:?}: use s, m, h or d")),
    };
    n.checked_mul(secs)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("duration {s:?} is too long"))
}

fn parse_nominal(s: &str) -> Result<u32, String> {
    match s {
        "50" => Ok(50),
        "60" => Ok(60),
        _ => Err(format!("nominal frequency must be 50 or 60, not {s:?}")),
    }
}

impl Config {
    /// The defaults, as if no flag or variable were given (for tests).
    pub fn defaults() -> Self {
        <Self as clap::Parser>::parse_from(["ogm-server"])
    }
}
