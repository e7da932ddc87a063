//! Mosquitto, `ogm-server` and `ogm-sim` started together on chosen ports.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::credentials::{Credentials, DASHBOARD_USER, SERVER_USER};
use crate::mosquitto::{BrokerPorts, Mosquitto};
use crate::process::{ChildProcess, cargo_bin, wait_for_port};

/// What to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// State: generated broker config, password file, persistence, logs.
    pub dir: PathBuf,
    pub broker_ports: BrokerPorts,
    /// The server's HTTP port on 127.0.0.1.
    pub http_port: u16,
    /// The built dashboard (Trunk's `dist/`).
    pub dist_dir: PathBuf,
    pub credentials: Credentials,
    /// Simulated devices (`sim-01`, `sim-02`, …); 0 starts no simulator.
    pub devices: usize,
    /// Measurements per second per simulated device.
    pub rate_hz: f64,
    /// Whether the simulated grid has its random generator trips (every 15 minutes on
    /// average); a test that counts events it makes itself turns them off.
    pub sim_trips: bool,
    /// Extra device users (id, password) for outside clients, e.g. `mosquitto_pub` in tests.
    pub extra_devices: Vec<(String, String)>,
    /// Child output goes to `<dir>/<name>.log` when true, to this terminal otherwise.
    pub log_to_files: bool,
    /// Broker config lines after the policy, overriding it (e.g. Debian's default window).
    pub broker_extra_config: String,
    /// More environment for the server (`OGM_*` settings).
    pub server_env: Vec<(String, String)>,
    /// More environment for the simulator (`OGM_SIM_*` settings).
    pub sim_env: Vec<(String, String)>,
}

impl StackOptions {
    /// Free ports, fresh credentials, logs to files: what a test wants.
    pub fn for_test(dir: PathBuf, devices: usize) -> Self {
        Self {
            dir,
            broker_ports: BrokerPorts::free(),
            http_port: crate::free_port(),
            dist_dir: crate::repo_root().join("dist"),
            credentials: Credentials::generate(),
            devices,
            rate_hz: 1.0,
            sim_trips: true,
            extra_devices: Vec::new(),
            log_to_files: true,
            broker_extra_config: String::new(),
            server_env: Vec::new(),
            sim_env: Vec::new(),
        }
    }

    /// [`Self::for_test`] with no simulated devices and broker users for outside `devices`, each
    /// with `password`.
    pub fn with_devices(dir: PathBuf, devices: &[&str], password: &str) -> Self {
        let mut options = Self::for_test(dir, 0);
        options.extra_devices = devices
            .iter()
            .map(|d| ((*d).to_owned(), password.to_owned()))
            .collect();
        options
    }

    /// The simulated device ids.
    pub fn sim_device_ids(&self) -> Vec<String> {
        (1..=self.devices).map(|i| format!("sim-{i:02}")).collect()
    }
}

/// The running stack; everything stops when it is dropped.
#[derive(Debug)]
pub struct Stack {
    pub options: StackOptions,
    pub broker: Mosquitto,
    pub server: ChildProcess,
    pub sim: Option<ChildProcess>,
}

impl Stack {
    /// Starts the broker, then the server, then the simulator, each once the previous is ready.
    pub fn up(options: StackOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&options.dir)?;
        let creds = &options.credentials;
        let sim_ids = options.sim_device_ids();
        let mut users: Vec<(&str, &str)> = creds.service_users().to_vec();
        users.extend(
            sim_ids
                .iter()
                .map(|id| (id.as_str(), creds.device.as_str())),
        );
        users.extend(
            options
                .extra_devices
                .iter()
                .map(|(u, p)| (u.as_str(), p.as_str())),
        );
        let broker = Mosquitto::start_with_extra(
            &options.dir.join("mosquitto"),
            options.broker_ports,
            &users,
            &options.broker_extra_config,
        )?;

        let server = Self::start_server(&options, &broker)?;
        let sim = if options.devices > 0 {
            Some(Self::start_sim(&options, &broker)?)
        } else {
            None
        };
        Ok(Self {
            options,
            broker,
            server,
            sim,
        })
    }

    /// Starts the simulator for the stack's devices.
    fn start_sim(options: &StackOptions, broker: &Mosquitto) -> anyhow::Result<ChildProcess> {
        let mut cmd = Command::new(cargo_bin("ogm-sim")?);
        cmd.env("OGM_SIM_BROKER", broker.mqtt_url())
            .env("OGM_SIM_DEVICES", options.devices.to_string())
            .env("OGM_SIM_PASSWORD", &options.credentials.device)
            .arg("--rate-hz")
            .arg(options.rate_hz.to_string())
            .envs(options.sim_env.iter().map(|(k, v)| (k, v)));
        if !options.sim_trips {
            cmd.args(["--step-every", "off"]);
        }
        let log = options.log_to_files.then(|| options.dir.join("sim.log"));
        ChildProcess::spawn("ogm-sim", cmd, log.as_deref())
    }

    /// Stops the simulator (SIGTERM: its devices say offline), if it runs.
    pub fn stop_sim(&mut self) {
        if let Some(mut sim) = self.sim.take() {
            sim.stop();
        }
    }

    /// Starts the simulator again (without `sim_env`: scheduled trips happen once).
    pub fn restart_sim(&mut self) -> anyhow::Result<()> {
        self.stop_sim();
        let mut options = self.options.clone();
        options.sim_env.clear();
        self.sim = Some(Self::start_sim(&options, &self.broker)?);
        Ok(())
    }

    /// Starts `ogm-server` with the stack's broker, data directory and client id, and waits for
    /// its HTTP port.
    pub fn start_server(
        options: &StackOptions,
        broker: &Mosquitto,
    ) -> anyhow::Result<ChildProcess> {
        let creds = &options.credentials;
        let mut cmd = Command::new(cargo_bin("ogm-server")?);
        cmd.env("OGM_HTTP_ADDR", format!("127.0.0.1:{}", options.http_port))
            .env("OGM_MQTT_URL", broker.mqtt_url())
            .env("OGM_MQTT_USERNAME", SERVER_USER)
            .env("OGM_MQTT_PASSWORD", &creds.server)
            .env("OGM_DASHBOARD_MQTT_USERNAME", DASHBOARD_USER)
            .env("OGM_DASHBOARD_MQTT_PASSWORD", &creds.dashboard)
            .env("OGM_MQTT_WS_PORT", options.broker_ports.ws.to_string())
            .env("OGM_DIST_DIR", &options.dist_dir)
            .env("OGM_DATA_DIR", options.dir.join("data"))
            .envs(options.server_env.iter().map(|(k, v)| (k, v)));
        let log = options.log_to_files.then(|| options.dir.join("server.log"));
        let mut server = ChildProcess::spawn("ogm-server", cmd, log.as_deref())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], options.http_port));
        if let Err(e) = wait_for_port(addr, Duration::from_secs(20)) {
            let exited = !server.is_running();
            anyhow::bail!(
                "ogm-server did not come up ({e}; exited: {exited}):\n{}",
                server.log_text()
            );
        }
        // Ready means subscribed: on a brand-new session, anything published before the
        // server's SUBSCRIBE is granted is not queued for it.
        let health = format!("http://127.0.0.1:{}/api/health", options.http_port);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let subscribed = crate::http_get(&health)
                .ok()
                .and_then(|r| r.json().ok())
                .is_some_and(|v| v["mqtt"]["subscribed"] == serde_json::Value::Bool(true));
            if subscribed {
                return Ok(server);
            }
            if std::time::Instant::now() > deadline || !server.is_running() {
                anyhow::bail!(
                    "ogm-server never subscribed to the broker:\n{}",
                    server.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server with SIGKILL (a crash) and starts it again on the same data.
    pub fn crash_and_restart_server(&mut self) -> anyhow::Result<()> {
        self.server.kill();
        self.server = Self::start_server(&self.options, &self.broker)?;
        Ok(())
    }

    /// Stops the server with SIGTERM and starts it again.
    pub fn restart_server(&mut self) -> anyhow::Result<()> {
        self.server.stop();
        self.server = Self::start_server(&self.options, &self.broker)?;
        Ok(())
    }

    /// `http://127.0.0.1:<port>`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.options.http_port)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Devices first (they publish offline), then the server, then the broker.
        if let Some(sim) = &mut self.sim {
            sim.stop();
        }
        self.server.stop();
        self.broker.stop();
    }
}
