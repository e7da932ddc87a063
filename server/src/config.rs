//! The server's typed configuration: every flag also reads an `OGM_*` environment variable, and
//! the defaults run the local demo. [`Cli`] adds the deployment subcommands (`setup`,
//! `device add|remove`, `influxdb-tokens`, `health`); with none, the binary serves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ogm_protocol::BrokerAddr;

/// The command line: the server's [`Config`], and optionally a deployment subcommand.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ogm-server",
    version,
    about = "Open Grid Monitor server. Without a subcommand it serves: MQTT ingest into the \
             store, the HTTP API and the dashboard."
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The deployment subcommands. None of them starts the server.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Serve (the same as no subcommand).
    Serve,
    /// Prepare the docker-compose deployment: generate the secrets missing from .env, and write
    /// Mosquitto's password file for ogm.server, ogm.dashboard and each device of OGM_DEVICES.
    /// Keeps what exists: run it again after adding devices to OGM_DEVICES.
    Setup(SetupArgs),
    /// A device's broker user.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Make the server's scoped InfluxDB tokens (write for the ingest, read for history and
    /// the Flux proxy) with the admin token, and write them into --dir. The compose stack runs
    /// this as a one-shot service before the server starts.
    InfluxdbTokens(TokensArgs),
    /// Exit 0 when the server on this machine (at --http-addr) answers GET /api/health with
    /// 200: the container healthcheck.
    Health,
}

/// `ogm-server setup`.
#[derive(Debug, Clone, clap::Args)]
pub struct SetupArgs {
    /// The deployment's .env (copy .env.example first).
    #[arg(long, default_value = ".env")]
    pub env_file: PathBuf,
    /// Mosquitto's password file.
    #[arg(long, env = "OGM_PASSWORD_FILE", default_value = "mosquitto/passwd")]
    pub password_file: PathBuf,
    /// Where new devices' firmware settings (`<id>.toml`, with their passwords) are written.
    #[arg(long, default_value = "secrets")]
    pub secrets_dir: PathBuf,
}

/// `ogm-server device ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DeviceCommand {
    /// Create a device's broker user, or give it a new password, and print the settings its
    /// firmware needs (firmware/board/cfg.toml).
    Add(DeviceAddArgs),
    /// Remove a device's broker user.
    Remove(DeviceRemoveArgs),
}

/// `ogm-server device add`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceAddArgs {
    /// The device id (1 to 64 of A-Z a-z 0-9 _ -), which is also its broker username.
    pub id: String,
    /// Mosquitto's password file.
    #[arg(long, env = "OGM_PASSWORD_FILE", default_value = "mosquitto/passwd")]
    pub password_file: PathBuf,
    /// The device's password; 24 random characters when not given.
    #[arg(long)]
    pub password: Option<String>,
    /// The broker as the device reaches it (mqtt://host:port), for the printed settings.
    #[arg(
        long,
        env = "OGM_PUBLIC_MQTT_URL",
        default_value = crate::provision::device::UNKNOWN_BROKER
    )]
    pub broker_url: String,
    /// Send SIGHUP to this process id (a mosquitto on this machine) so it reloads the file.
    #[arg(long)]
    pub reload_pid: Option<u32>,
}

/// `ogm-server device remove`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceRemoveArgs {
    /// The device id.
    pub id: String,
    /// Mosquitto's password file.
    #[arg(long, env = "OGM_PASSWORD_FILE", default_value = "mosquitto/passwd")]
    pub password_file: PathBuf,
    /// Send SIGHUP to this process id (a mosquitto on this machine) so it reloads the file.
    #[arg(long)]
    pub reload_pid: Option<u32>,
}

/// `ogm-server influxdb-tokens`. InfluxDB's URL, organisation and bucket are the server's
/// (`INFLUXDB_URL`, `INFLUXDB_ORG`, `INFLUXDB_BUCKET`).
#[derive(Debug, Clone, clap::Args)]
pub struct TokensArgs {
    /// Where the tokens are written: write-token, read-token, influxdb-tokens.json.
    #[arg(long, env = "OGM_INFLUXDB_TOKENS_DIR", default_value = "/tokens")]
    pub dir: PathBuf,
    /// InfluxDB's admin token (what DOCKER_INFLUXDB_INIT_ADMIN_TOKEN set up).
    #[arg(long, env = "INFLUXDB_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// How long to wait for InfluxDB to come up and finish its initial set-up.
    #[arg(long, default_value = "180s", value_parser = parse_duration)]
    pub wait: Duration,
}

/// Server configuration.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "ogm-server", version, about = "Open Grid Monitor server")]
pub struct Config {
    /// Address the HTTP API and dashboard listen on.
    #[arg(long, env = "OGM_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// The broker the server itself connects to (mqtt://host:port), checked at start.
    #[arg(long, env = "OGM_MQTT_URL", default_value = "mqtt://127.0.0.1:1883", value_parser = parse_broker)]
    pub mqtt_url: BrokerAddr,

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

    /// The secure WebSocket (wss) port given to dashboards loaded over https (a reverse proxy
    /// says so with `X-Forwarded-Proto: https`), when --mqtt-ws-url is not given.
    #[arg(long, env = "OGM_MQTT_WSS_PORT", default_value_t = 9443)]
    pub mqtt_wss_port: u16,

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
    /// (subscriptions and unacknowledged messages) under it. The broker accepts only the user
    /// name or `<user name>-<suffix>` (e.g. `ogm.server-2` for a second replica).
    #[arg(long, env = "OGM_MQTT_CLIENT_ID", default_value = "ogm.server")]
    pub mqtt_client_id: String,

    /// Share the ingest among several servers: subscribe through `$share/<group>/...`. Each
    /// server needs its own client id.
    #[arg(long, env = "OGM_MQTT_SHARE_GROUP")]
    pub mqtt_share_group: Option<String>,

    /// The ingest's MQTT keep-alive: the broker drops a connection silent for 1.5 times this,
    /// and the ingest notices a silent broker as soon. Units: s, m.
    #[arg(long, env = "OGM_MQTT_KEEP_ALIVE", default_value = "30s", value_parser = parse_duration)]
    pub mqtt_keep_alive: std::time::Duration,

    /// Which store keeps the data: `embedded` (SQLite under --data-dir) or `influxdb`.
    #[arg(long, env = "OGM_STORE", value_enum, default_value_t = StoreChoice::Embedded)]
    pub store: StoreChoice,

    /// How long raw points are kept in the embedded store; older ones become 1 s envelopes
    /// (min, max, mean, count). `0` keeps them forever. Units: s, m, h, d.
    #[arg(long, env = "OGM_RAW_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub raw_retention: std::time::Duration,

    /// How long the embedded store keeps 1 s envelopes (at least as long as raw points);
    /// 1 min envelopes are kept for good. `0` keeps them forever. Units: s, m, h, d.
    #[arg(long, env = "OGM_SECOND_RETENTION", default_value = "365d", value_parser = parse_duration)]
    pub second_retention: std::time::Duration,

    /// How long device log entries are kept in the embedded store. `0` keeps them forever.
    #[arg(long, env = "OGM_LOG_RETENTION", default_value = "90d", value_parser = parse_duration)]
    pub log_retention: std::time::Duration,

    /// The most bytes of device log entries the embedded store keeps; past it the oldest go
    /// first, whatever their age. `0` for no bound.
    #[arg(long, env = "OGM_LOG_RETENTION_MB", default_value_t = 512)]
    pub log_retention_mb: u64,

    /// The most messages one device may store per second of its own timestamps (all kinds
    /// together); past it they are dropped and counted (`over_message_budget`). Spread over
    /// their timestamps, a backlog of hours passes whole. `0` turns the budget off.
    #[arg(long, env = "OGM_DEVICE_MAX_MESSAGES_PER_SEC", default_value_t = 100)]
    pub device_max_messages_per_sec: u32,

    /// The most payload bytes one device may store per second of its own timestamps
    /// (`over_byte_budget` past it). `0` turns the budget off.
    #[arg(long, env = "OGM_DEVICE_MAX_BYTES_PER_SEC", default_value_t = 64 * 1024)]
    pub device_max_bytes_per_sec: u64,

    /// `/api/health` turns `degraded` when the data directory has less free space than this,
    /// in MiB: a warning before writes fail.
    #[arg(long, env = "OGM_MIN_FREE_MB", default_value_t = 256)]
    pub min_free_mb: u64,

    /// The longest the server takes to stop after SIGTERM or Ctrl-C. Whatever it has not
    /// committed by then stays unacknowledged, and the broker redelivers it.
    #[arg(long, env = "OGM_SHUTDOWN_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub shutdown_timeout: std::time::Duration,

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

    /// A read-only InfluxDB token for history and the Flux proxy. Without one, history, logs,
    /// devices and export use the write token and the Flux proxy is off (503).
    #[arg(long, env = "INFLUXDB_READ_TOKEN", hide_env_values = true)]
    pub influxdb_read_token: Option<String>,

    /// Read the write token from this file instead (what `ogm-server influxdb-tokens` wrote).
    #[arg(long, env = "INFLUXDB_TOKEN_FILE")]
    pub influxdb_token_file: Option<PathBuf>,

    /// Read the read-only token from this file instead.
    #[arg(long, env = "INFLUXDB_READ_TOKEN_FILE")]
    pub influxdb_read_token_file: Option<PathBuf>,

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

    /// Alert rules (TOML; the commented example is deploy/alerts.example.toml), read and
    /// checked at start: a bad file stops the server with the line and the reason. Without
    /// it, no alerts. Their outbox is `alerts.sqlite` in --data-dir.
    #[arg(long, env = "OGM_ALERTS_FILE")]
    pub alerts_file: Option<PathBuf>,

    /// Run the grid watch (events, alert rules, the Home Assistant summary). In a share group,
    /// a watching replica takes every device's readings from a subscription of its own (each
    /// replica's ingest gets only its share): turn it off on all replicas but one.
    #[arg(long, env = "OGM_GRID_WATCH", default_value_t = true, action = clap::ArgAction::Set)]
    pub grid_watch: bool,

    /// Publish Home Assistant MQTT discovery configs (retained) for the grid and each device,
    /// and the grid summary on `ogm_server/grid` once a second.
    #[arg(long, env = "OGM_HOME_ASSISTANT")]
    pub home_assistant: bool,

    /// Home Assistant's MQTT discovery prefix. The broker ACL lets the server write under
    /// `homeassistant/`; another prefix needs its own ACL line.
    #[arg(
        long,
        env = "OGM_HOME_ASSISTANT_PREFIX",
        default_value = "homeassistant"
    )]
    pub home_assistant_prefix: String,

    /// Serve the Flux proxy (POST /api/flux; InfluxDB mode). Off by default: no allowlist can
    /// bound what a Flux query makes InfluxDB compute, so put the API behind authentication
    /// before turning it on. Off, the route answers 503 without reading the body.
    #[arg(long, env = "OGM_FLUX_PROXY")]
    pub flux_proxy: bool,

    /// The Flux proxy (POST /api/flux): longest a query may take, from the request to the
    /// answer's last byte; then it is stopped in InfluxDB. Units: s, m, h, d.
    #[arg(long, env = "OGM_FLUX_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub flux_timeout: Duration,

    /// The Flux proxy: largest answer passed on, in MiB; a larger one is cut at a row and ends
    /// with an error table.
    #[arg(long, env = "OGM_FLUX_MAX_MB", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub flux_max_mb: u64,

    /// The Flux proxy: longest time span a query may read; each `from()` must be followed by a
    /// `range()` no longer than this. `0`: any span (a `range()` is still required).
    #[arg(long, env = "OGM_FLUX_MAX_RANGE", default_value = "31d", value_parser = parse_duration)]
    pub flux_max_range: Duration,

    /// Nominal grid frequency, 50 or 60 Hz.
    #[arg(long, env = "OGM_NOMINAL_HZ", default_value_t = 50, value_parser = parse_nominal)]
    pub nominal_hz: u32,

    /// The synchronous area whose frequency bands the dashboard draws: `ce` (Continental
    /// Europe), `gb` (Great Britain) or `nordic`. A page's `area=` overrides it.
    #[arg(long, env = "OGM_GRID_AREA", default_value = "ce", value_parser = parse_grid_area)]
    pub grid_area: ogm_protocol::GridArea,

    /// Other sites whose pages may call the API (CORS), comma-separated origins such as
    /// `https://grafana.example.org`, or `*` for any. Default: none, so only pages the server
    /// serves itself can read the API's answers.
    #[arg(
        long,
        env = "OGM_CORS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_parser = parse_origin
    )]
    pub cors_allowed_origins: Vec<String>,

    /// Requests per second one client may make to /api, sustained (a token bucket per IP
    /// address; per /64 for IPv6). 0 turns the limit off.
    #[arg(long, env = "OGM_RATE_LIMIT_PER_SEC", default_value_t = 20)]
    pub rate_limit_per_sec: u32,

    /// Requests one client may make at once above the sustained rate (the bucket's size).
    #[arg(long, env = "OGM_RATE_LIMIT_BURST", default_value_t = 200)]
    pub rate_limit_burst: u32,

    /// Rate-limit by the last address of `X-Forwarded-For` (the one your reverse proxy
    /// appended) instead of the connection's. Only when every request comes through the proxy.
    #[arg(long, env = "OGM_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,

    /// How long a client may take to send a request's line and headers; an idle keep-alive
    /// connection is closed after it too. `0` turns it off.
    #[arg(long, env = "OGM_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http_header_timeout: Duration,

    /// How long a request may take until its answer starts (`503` after it). The CSV export's
    /// and the Flux proxy's answers stream on after they start. `0` turns it off.
    #[arg(long, env = "OGM_HTTP_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub http_request_timeout: Duration,

    /// How long a client may take to send a request's body (`408` after it). Bodies are read
    /// before a data request takes one of the concurrency slots, so a slow one holds none.
    #[arg(long, env = "OGM_HTTP_BODY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http_body_timeout: Duration,

    /// Data requests (devices, history, logs, export, Flux) served at once, from all clients;
    /// more get `503` with `Retry-After` at once.
    #[arg(long, env = "OGM_HTTP_DATA_CONCURRENCY", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_data_concurrency: u32,

    /// On shutdown, how long open connections get to finish before they are dropped.
    #[arg(long, env = "OGM_HTTP_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub http_shutdown_grace: Duration,

    /// Who may show the dashboard in a frame (kiosk views embedded elsewhere): the sources of
    /// the Content-Security-Policy's `frame-ancestors`, space- or comma-separated: `'self'`,
    /// `'none'`, origins such as `https://wall.example.org`, or `*`.
    #[arg(
        long,
        env = "OGM_FRAME_ANCESTORS",
        default_value = "'self'",
        value_parser = crate::http::security::parse_frame_ancestors
    )]
    pub frame_ancestors: String,
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

/// `*`, or `scheme://host[:port]` without a path; a trailing `/` is dropped. Empty stays
/// empty and means nothing (an unset variable passed on by docker-compose).
pub fn parse_origin(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    if s == "*" || s.is_empty() {
        return Ok(s.to_owned());
    }
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("CORS origin {s:?} must start with http:// or https://"))?;
    let ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !ok {
        return Err(format!(
            "CORS origin {s:?} must be scheme://host[:port], without a path"
        ));
    }
    Ok(s.to_ascii_lowercase())
}

fn parse_grid_area(s: &str) -> Result<ogm_protocol::GridArea, String> {
    ogm_protocol::GridArea::parse(s)
        .ok_or_else(|| format!("grid area must be ce, gb or nordic, not {s:?}"))
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

/// `OGM_MQTT_URL` as clap reports it: the value, quoted, and why it is refused.
fn parse_broker(s: &str) -> Result<BrokerAddr, String> {
    s.parse().map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn origins_are_checked() {
        assert_eq!(
            parse_origin("https://Grid.Example/").unwrap(),
            "https://grid.example"
        );
        assert_eq!(
            parse_origin("http://10.0.0.5:3000").unwrap(),
            "http://10.0.0.5:3000"
        );
        assert_eq!(parse_origin("*").unwrap(), "*");
        assert_eq!(parse_origin("").unwrap(), "");
        for bad in [
            "grid.example",
            "https://",
            "https://a/b",
            "ftp://a",
            "https://a b",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_subcommand_serves_and_subcommands_parse() {
        let cli = Cli::try_parse_from(["ogm-server", "--http-addr", "127.0.0.1:1"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.config.http_addr.port(), 1);
        let cli = Cli::try_parse_from([
            "ogm-server",
            "device",
            "add",
            "dev-a",
            "--password-file",
            "/tmp/p",
            "--reload-pid",
            "42",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Device(DeviceCommand::Add(a))) => {
                assert_eq!((a.id.as_str(), a.reload_pid), ("dev-a", Some(42)));
                assert_eq!(a.password_file, PathBuf::from("/tmp/p"));
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from([
            "ogm-server",
            "--cors-allowed-origins",
            "https://a.example,http://b.example:8080",
            "health",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Health)));
        assert_eq!(
            cli.config.cors_allowed_origins,
            ["https://a.example", "http://b.example:8080"]
        );
    }
}
