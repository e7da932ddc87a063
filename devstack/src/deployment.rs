//! The docker-compose deployment's pieces, run here without Docker: `ogm-server setup` in a
//! temporary deployment directory, and the compose stack's Mosquitto main configs
//! (`mosquitto/mosquitto.conf`, and `mosquitto/tls/` for the TLS override) on the real broker
//! with only their container paths, ports and user rewritten.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context as _, bail};

use crate::mosquitto::BrokerPorts;
use crate::process::{cargo_bin, repo_root};

/// Runs the built `ogm-server` with `args` (no `OGM_*` or `INFLUXDB_*` variables from the
/// caller's environment) and returns its output.
pub fn ogm_server(args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Output> {
    let mut cmd = Command::new(cargo_bin("ogm-server")?);
    for (k, _) in std::env::vars() {
        if k.starts_with("OGM_") || k.starts_with("INFLUXDB_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).envs(envs.iter().copied());
    cmd.output().context("running ogm-server")
}

/// `KEY=value` lines of a `.env` (no quotes handling beyond what set-up writes).
pub fn read_env(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

/// The `password = "..."` of a device's firmware settings.
pub fn device_password(cfg_toml: &str) -> anyhow::Result<String> {
    cfg_toml
        .lines()
        .find_map(|l| l.strip_prefix("password = \""))
        .and_then(|l| l.strip_suffix('"'))
        .map(str::to_owned)
        .context("no password in the firmware settings")
}

/// A deployment directory prepared by `ogm-server setup`, as `scripts/setup-production` does.
#[derive(Debug)]
pub struct Deployment {
    pub dir: PathBuf,
    /// The `.env` after set-up.
    pub env: HashMap<String, String>,
    /// Device id → password, from the firmware settings set-up wrote.
    pub devices: HashMap<String, String>,
    /// What `setup` printed.
    pub stdout: String,
}

impl Deployment {
    /// Copies the repository's `.env.example` to `dir/.env`, sets `OGM_DEVICES`, and runs
    /// `ogm-server setup` there.
    pub fn prepare(dir: &Path, devices: &[&str]) -> anyhow::Result<Self> {
        let example = std::fs::read_to_string(repo_root().join(".env.example"))?;
        let mut env = String::new();
        for line in example.lines() {
            if line.starts_with("OGM_DEVICES=") {
                env.push_str(&format!("OGM_DEVICES={}\n", devices.join(",")));
            } else {
                env.push_str(line);
                env.push('\n');
            }
        }
        if !env.contains("OGM_DEVICES=") {
            bail!(".env.example has no OGM_DEVICES line");
        }
        std::fs::write(dir.join(".env"), env)?;
        Self::setup(dir)
    }

    /// Runs `ogm-server setup` in `dir` (again) and reads what it wrote.
    pub fn setup(dir: &Path) -> anyhow::Result<Self> {
        let p = |name: &str| dir.join(name).display().to_string();
        let out = ogm_server(
            &[
                "setup",
                "--env-file",
                &p(".env"),
                "--password-file",
                &p("mosquitto/passwd"),
                "--secrets-dir",
                &p("secrets"),
            ],
            &[],
        )?;
        if !out.status.success() {
            bail!(
                "ogm-server setup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut devices = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(dir.join("secrets")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_suffix(".toml") {
                    let text = std::fs::read_to_string(e.path())?;
                    devices.insert(id.to_owned(), device_password(&text)?);
                }
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            env: read_env(&dir.join(".env"))?,
            devices,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        })
    }

    pub fn password_file(&self) -> PathBuf {
        self.dir.join("mosquitto/passwd")
    }

    /// A `.env` value, or an error naming the key.
    pub fn var(&self, key: &str) -> anyhow::Result<&str> {
        self.env
            .get(key)
            .map(String::as_str)
            .with_context(|| format!(".env has no {key}"))
    }
}

/// Rewrites a compose broker config file for a broker on this machine: each `(from, to)` must
/// occur (so a changed container path or port fails loudly).
pub fn rewrite_config(text: &str, replacements: &[(String, String)]) -> anyhow::Result<String> {
    let mut out = text.to_owned();
    for (from, to) in replacements {
        if !out.contains(from.as_str()) {
            bail!("the config no longer says {from:?}");
        }
        out = out.replace(from.as_str(), to);
    }
    Ok(out)
}

/// What a compose main config needs outside its container: `user root` (see `mosquitto.rs`
/// on why) and the log on stderr (unbuffered, so a test reads each line as it happens).
pub const OUTSIDE_THE_CONTAINER: &str =
    "\n# Added for a broker outside the container:\nuser root\nlog_dest stderr\n";

/// The docker-compose broker's main config (`mosquitto/mosquitto.conf`) with its container paths
/// and ports pointed at this machine: the repository's policy and ACL, `password_file`,
/// persistence in `data_dir`, the optional listeners from `listeners` (the repository's
/// `mosquitto/listeners.d`, or a stand-in for the TLS override's `mosquitto/tls`).
pub fn compose_broker_config(
    ports: BrokerPorts,
    password_file: &Path,
    data_dir: &Path,
    listeners: &Path,
) -> anyhow::Result<String> {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("mosquitto/mosquitto.conf"))?;
    let replacements = vec![
        (
            "listener 1883\n".into(),
            format!("listener {} 127.0.0.1\n", ports.mqtt),
        ),
        ("listener 9001\n".into(), format!("listener {}\n", ports.ws)),
        (
            "/mosquitto/config/passwd".into(),
            password_file.display().to_string(),
        ),
        (
            "/mosquitto/config/acl".into(),
            root.join("mosquitto/acl").display().to_string(),
        ),
        (
            "/mosquitto/data/".into(),
            format!("{}/", data_dir.display()),
        ),
        (
            "/mosquitto/config/conf.d".into(),
            root.join("mosquitto/conf.d").display().to_string(),
        ),
        (
            "/mosquitto/config/listeners.d".into(),
            listeners.display().to_string(),
        ),
    ];
    Ok(rewrite_config(&text, &replacements)? + OUTSIDE_THE_CONTAINER)
}
