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

    /// Nominal grid frequency, 50 or 60 Hz.
    #[arg(long, env = "OGM_NOMINAL_HZ", default_value_t = 50, value_parser = parse_nominal)]
    pub nominal_hz: u32,
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
