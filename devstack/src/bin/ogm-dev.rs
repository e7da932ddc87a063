//! `ogm-dev up`: the local stack (Mosquitto on 1883/9001, the server on 8080, simulated
//! devices) in one terminal, until Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ogm_devstack::{BrokerPorts, Credentials, Stack, StackOptions, repo_root};

#[derive(Parser)]
#[command(about = "Open Grid Monitor local stack")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start Mosquitto, ogm-server and ogm-sim; print the dashboard URL; stop all on Ctrl-C.
    Up {
        /// Simulated devices.
        #[arg(long, env = "OGM_DEV_DEVICES", default_value_t = 3)]
        devices: usize,
        /// Measurements per second per simulated device.
        #[arg(long, env = "OGM_DEV_RATE_HZ", default_value_t = 1.0)]
        rate_hz: f64,
        /// The server's HTTP port on 127.0.0.1.
        #[arg(long, env = "OGM_DEV_HTTP_PORT", default_value_t = 8080)]
        http_port: u16,
        /// The broker's MQTT port.
        #[arg(long, env = "OGM_DEV_MQTT_PORT", default_value_t = BrokerPorts::STANDARD.mqtt)]
        mqtt_port: u16,
        /// The broker's MQTT-over-WebSocket port.
        #[arg(long, env = "OGM_DEV_WS_PORT", default_value_t = BrokerPorts::STANDARD.ws)]
        ws_port: u16,
        /// State directory: credentials, broker config and persistence, server data, logs.
        #[arg(long, env = "OGM_DEV_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let Cmd::Up {
        devices,
        rate_hz,
        http_port,
        mqtt_port,
        ws_port,
        state_dir,
    } = Cli::parse().command;
    let root = repo_root();
    let dir = state_dir.unwrap_or_else(|| root.join(".ogm"));
    let credentials = Credentials::load_or_create(&dir.join("credentials.env"))?;
    for port in [http_port, mqtt_port, ws_port] {
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_err() {
            anyhow::bail!(
                "port {port} is in use (another stack, or a system mosquitto: `systemctl stop mosquitto`); \
                 choose others with --http-port/--mqtt-port/--ws-port"
            );
        }
    }
    let options = StackOptions {
        dir: dir.clone(),
        broker_ports: BrokerPorts {
            mqtt: mqtt_port,
            ws: ws_port,
        },
        http_port,
        dist_dir: root.join("dist"),
        credentials,
        devices,
        rate_hz,
        sim_trips: true,
        extra_devices: Vec::new(),
        log_to_files: false,
        broker_extra_config: String::new(),
        server_env: Vec::new(),
        sim_env: Vec::new(),
    };
    let mut stack = Stack::up(options)?;
    println!();
    println!("  Open Grid Monitor is running.");
    println!("  Dashboard:      {}", stack.http_url());
    println!(
        "  MQTT:           {}  (WebSocket: ws://127.0.0.1:{ws_port})",
        stack.broker.mqtt_url()
    );
    println!(
        "  Devices:        {devices} simulated at {rate_hz} Hz ({})",
        stack.options.sim_device_ids().join(", ")
    );
    println!(
        "  Credentials:    {}",
        dir.join("credentials.env").display()
    );
    println!(
        "  Broker log:     {}",
        dir.join("mosquitto/mosquitto.log").display()
    );
    println!("  Ctrl-C (or SIGTERM) stops everything.");
    println!();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = tick.tick() => {
                if !stack.server.is_running() {
                    anyhow::bail!("ogm-server exited; see its output above");
                }
                if !stack.broker.is_running() {
                    anyhow::bail!("mosquitto exited:\n{}", stack.broker.log_text());
                }
                if stack.sim.as_mut().is_some_and(|s| !s.is_running()) {
                    anyhow::bail!("ogm-sim exited; see its output above");
                }
            }
        }
    }
    println!("\nStopping…");
    drop(stack);
    println!("Stopped.");
    Ok(())
}
