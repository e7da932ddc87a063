//! A real Mosquitto with the project's policy and ACL, on chosen ports.
//!
//! The policy (`mosquitto/conf.d/`) and the ACL (`mosquitto/acl`) are the very files the
//! docker-compose stack mounts; only the main config (listeners and paths) is generated here, or
//! is the compose stack's own with its container paths rewritten ([`MainConfig`]).
//!
//! The policy loads the broker plugin by its file name, `libogm_mosquitto_plugin.so`, which the
//! dynamic linker looks up on `LD_LIBRARY_PATH`: every broker started here gets the cargo target
//! directory this executable was built into ([`plugin_dir`]), so `cargo build -p
//! ogm-mosquitto-plugin` (the test command does it) must have built the plugin there.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::credentials::set_private;
use crate::deployment::compose_broker_config;
use crate::process::{ChildProcess, repo_root, target_profile_dir, wait_for_port};

/// The broker plugin's file, as `mosquitto/conf.d/policy.conf` names it.
pub const PLUGIN_FILE: &str = "libogm_mosquitto_plugin.so";

/// The directory holding the broker plugin built with this executable (the cargo target
/// directory's profile directory, `CARGO_TARGET_DIR` included); an error that says how to
/// build it when it is not there.
pub fn plugin_dir() -> anyhow::Result<PathBuf> {
    let dir = target_profile_dir()?;
    if !dir.join(PLUGIN_FILE).exists() {
        bail!(
            "{} is not built; run `cargo build -p ogm-mosquitto-plugin` with the same profile \
             (the test command does)",
            dir.join(PLUGIN_FILE).display()
        );
    }
    Ok(dir)
}

/// Which main config a broker runs. The policy and the ACL are the same for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MainConfig {
    /// Generated here: the local stack's and most tests'.
    Local,
    /// The docker-compose broker's `mosquitto/mosquitto.conf`, with only its container paths,
    /// ports and user rewritten (`deployment::compose_broker_config`).
    Compose,
}

/// The broker's two listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerPorts {
    /// MQTT over TCP (devices, the server).
    pub mqtt: u16,
    /// MQTT over WebSocket (browsers).
    pub ws: u16,
}

impl BrokerPorts {
    /// The standard ports: 1883 and 9001.
    pub const STANDARD: Self = Self {
        mqtt: 1883,
        ws: 9001,
    };

    /// Two currently free ports.
    pub fn free() -> Self {
        Self {
            mqtt: crate::free_port(),
            ws: crate::free_port(),
        }
    }
}

/// A running `mosquitto`; stopped when dropped.
#[derive(Debug)]
pub struct Mosquitto {
    dir: PathBuf,
    password_file: PathBuf,
    pub ports: BrokerPorts,
    process: Option<ChildProcess>,
}

impl Mosquitto {
    /// Writes the password file for `users` and the main config into `dir`, starts the broker
    /// and waits until both listeners accept connections.
    pub fn start(dir: &Path, ports: BrokerPorts, users: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_main(MainConfig::Local, dir, ports, users)
    }

    /// Like [`Self::start`], with `extra` lines after the policy, which override it (a test
    /// of Debian's default in-flight window, say).
    pub fn start_with_extra(
        dir: &Path,
        ports: BrokerPorts,
        users: &[(&str, &str)],
        extra: &str,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let passwd = dir.join("passwd");
        write_password_file(&passwd, users)?;
        let conf = local_config(ports, &passwd, dir, extra);
        Self::start_with_config(dir, ports, &passwd, &conf)
    }

    /// Like [`Self::start`], with the main config of `main`.
    pub fn start_main(
        main: MainConfig,
        dir: &Path,
        ports: BrokerPorts,
        users: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        match main {
            MainConfig::Local => Self::start_with_extra(dir, ports, users, ""),
            MainConfig::Compose => {
                std::fs::create_dir_all(dir)?;
                let passwd = dir.join("passwd");
                write_password_file(&passwd, users)?;
                let conf = compose_broker_config(
                    ports,
                    &passwd,
                    &dir.join("data"),
                    &repo_root().join("mosquitto/listeners.d"),
                )?;
                Self::start_with_config(dir, ports, &passwd, &conf)
            }
        }
    }

    /// Like [`Self::start`], with a password file written by someone else (`ogm-server setup`
    /// or `device add`), used where it is: edit it and [`Self::reload`].
    pub fn start_with_password_file(
        dir: &Path,
        ports: BrokerPorts,
        password_file: &Path,
    ) -> anyhow::Result<Self> {
        let conf = local_config(ports, password_file, dir, "");
        Self::start_with_config(dir, ports, password_file, &conf)
    }

    /// Starts the broker with a main config of the caller's (`ports` are the MQTT and
    /// WebSocket listeners it opens, waited for; `password_file` the file it names). For
    /// tests of the docker-compose main configs, with their paths and ports rewritten.
    pub fn start_with_config(
        dir: &Path,
        ports: BrokerPorts,
        password_file: &Path,
        config: &str,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("data"))?;
        std::fs::write(dir.join("mosquitto.conf"), config)?;
        let mut broker = Self {
            dir: dir.to_path_buf(),
            password_file: password_file.to_path_buf(),
            ports,
            process: None,
        };
        broker.launch()?;
        Ok(broker)
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(mosquitto_binary());
        cmd.arg("-c").arg(self.dir.join("mosquitto.conf"));
        // The policy's `plugin libogm_mosquitto_plugin.so` is looked up here first.
        let mut library_path = std::ffi::OsString::from(plugin_dir()?);
        if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
            library_path.push(":");
            library_path.push(old);
        }
        cmd.env("LD_LIBRARY_PATH", library_path);
        let mut process =
            ChildProcess::spawn("mosquitto", cmd, Some(&self.dir.join("mosquitto.log")))?;
        for port in [self.ports.mqtt, self.ports.ws] {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if let Err(e) = wait_for_port(addr, Duration::from_secs(10)) {
                let exited = !process.is_running();
                bail!(
                    "mosquitto did not come up ({e}; exited: {exited}). Its log:\n{}",
                    process.log_text()
                );
            }
        }
        self.process = Some(process);
        Ok(())
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn mqtt_url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.ports.mqtt)
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.ports.ws)
    }

    /// Adds or updates a user and makes the running broker reload its password file.
    pub fn add_user(&self, user: &str, password: &str) -> anyhow::Result<()> {
        run_passwd(&["-b"], &self.password_file, &[user, password])?;
        self.reload()
    }

    /// Makes the running broker reload its password file and ACL (SIGHUP).
    pub fn reload(&self) -> anyhow::Result<()> {
        if let Some(p) = &self.process {
            p.signal("HUP")?;
        }
        Ok(())
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the running broker: `STOP` pauses it, as a
    /// hung host would.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        match &self.process {
            Some(p) => p.signal(signal),
            None => bail!("the broker is not running"),
        }
    }

    /// The broker's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildProcess::pid)
    }

    /// Kills the broker with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// Stops the broker cleanly (it saves its persistence file).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Starts the broker again on the same ports, config and persistence.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.launch()
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(ChildProcess::is_running)
    }

    /// The broker's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }

    /// Waits until the broker's log holds `needle` (it logs every connection, refusal and
    /// disconnection as it handles it): proof that the broker got that far, where packets on
    /// different connections would not say in which order it handled them. Async, so that the
    /// test's own clients keep running meanwhile (a probe's connection closes on its task).
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let logged = crate::wait::until_async(timeout, || async {
            self.log_text().contains(needle).then_some(())
        })
        .await;
        if logged.is_none() {
            bail!(
                "the broker never logged {needle:?} within {timeout:?}. Its log:\n{}",
                self.log_text()
            );
        }
        Ok(())
    }
}

/// The generated main config: listeners and paths, the repository's policy and ACL, then
/// `extra` (later lines override the policy's).
fn local_config(ports: BrokerPorts, password_file: &Path, dir: &Path, extra: &str) -> String {
    let root = repo_root();
    format!(
        "# Generated by ogm-devstack; policy and ACL are the repository's own files.\n\
             listener {mqtt} 127.0.0.1\n\
             listener {ws}\n\
             protocol websockets\n\
             password_file {passwd}\n\
             acl_file {acl}\n\
             persistence_location {data}/\n\
             # stderr is unbuffered: tests read each line as the broker writes it.\n\
             log_dest stderr\n\
             # Started as root, mosquitto would switch to its own user, which cannot read the\n\
             # private files here. Without root this line has no effect.\n\
             user root\n\
             include_dir {policy}\n\
             {extra}\n",
        mqtt = ports.mqtt,
        ws = ports.ws,
        passwd = password_file.display(),
        acl = root.join("mosquitto/acl").display(),
        data = dir.join("data").display(),
        policy = root.join("mosquitto/conf.d").display(),
    )
}

/// `mosquitto` from PATH, or Debian's `/usr/sbin/mosquitto` (not on a normal user's PATH).
fn mosquitto_binary() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/mosquitto");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("mosquitto")
    }
}

/// Writes `user:password` lines and hashes them in place with `mosquitto_passwd -U`.
fn write_password_file(path: &Path, users: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut text = String::new();
    for (user, password) in users {
        if user.contains(':') || password.contains(['\n', ':']) {
            bail!("user {user:?}: ':' and newlines are not allowed");
        }
        text.push_str(&format!("{user}:{password}\n"));
    }
    std::fs::write(path, text)?;
    set_private(path)?;
    run_passwd(&["-U"], path, &[])
}

fn run_passwd(flags: &[&str], file: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("mosquitto_passwd")
        .args(flags)
        .arg(file)
        .args(args)
        .output()
        .context("running mosquitto_passwd (install Debian's mosquitto package)")?;
    if !out.status.success() {
        bail!(
            "mosquitto_passwd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
