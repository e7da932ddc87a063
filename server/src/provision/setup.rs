//! `ogm-server setup`: everything the docker-compose deployment needs before `docker compose up`,
//! generated once and kept on later runs (re-running it only adds what is missing):
//!
//! - secrets in `.env`: the broker passwords of the server and the dashboard, InfluxDB's admin
//!   password and admin token (its init creates the org, the bucket and that token on first
//!   start), Grafana's admin password;
//! - Mosquitto's password file with `ogm.server`, `ogm.dashboard` and every device listed in
//!   `OGM_DEVICES`; a new device's firmware settings go to `<secrets>/<id>.toml`.
//!
//! The scoped InfluxDB tokens (write for the ingest, read for history and the Flux proxy) are
//! not made here: InfluxDB must be running for that, so the compose stack's one-shot
//! `influxdb-tokens` service makes them (`ogm-server influxdb-tokens`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ogm_protocol::DeviceId;

use super::device::{DEVICE_PASSWORD_LEN, DeviceSettings, UNKNOWN_BROKER};
use super::env_file::EnvFile;
use super::passwd;

/// The secrets set-up generates, with their lengths.
pub const SECRETS: [(&str, usize); 5] = [
    ("OGM_MQTT_PASSWORD", 24),
    ("OGM_DASHBOARD_MQTT_PASSWORD", 24),
    ("INFLUXDB_ADMIN_PASSWORD", 24),
    ("INFLUXDB_ADMIN_TOKEN", 64),
    ("GRAFANA_ADMIN_PASSWORD", 24),
];

/// The server's broker user (see `mosquitto/acl`).
pub const SERVER_USER: &str = "ogm.server";
/// The dashboard's read-only broker user.
pub const DASHBOARD_USER: &str = "ogm.dashboard";

/// Where set-up reads and writes.
#[derive(Debug, Clone)]
pub struct SetupPaths {
    /// The deployment's `.env` (copied from `.env.example` by the user or the setup script).
    pub env_file: PathBuf,
    /// Mosquitto's password file (`mosquitto/passwd`).
    pub password_file: PathBuf,
    /// Where new devices' firmware settings are written (`secrets/`).
    pub secrets_dir: PathBuf,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct SetupReport {
    /// `.env` keys that got a generated value.
    pub generated: Vec<&'static str>,
    /// Broker users whose password entry was written.
    pub broker_users_written: Vec<String>,
    /// Devices created in this run, with their passwords.
    pub new_devices: Vec<DeviceSettings>,
    /// Devices of `OGM_DEVICES` that already had a broker user (their passwords are kept).
    pub existing_devices: Vec<DeviceId>,
}

/// The device ids of `OGM_DEVICES` (separated by commas or spaces), or every invalid one.
pub fn parse_devices(list: &str) -> anyhow::Result<Vec<DeviceId>> {
    let mut ids: Vec<DeviceId> = Vec::new();
    let mut bad = Vec::new();
    for item in list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        match DeviceId::new(item) {
            Ok(id) if !ids.contains(&id) => ids.push(id),
            Ok(_) => {}
            Err(e) => bad.push(format!("{item:?}: {e}")),
        }
    }
    anyhow::ensure!(bad.is_empty(), "OGM_DEVICES: {}", bad.join("; "));
    Ok(ids)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> anyhow::Result<()> {
    Ok(())
}

/// Runs set-up; see the module docs.
pub fn run(paths: &SetupPaths) -> anyhow::Result<SetupReport> {
    let mut report = SetupReport::default();
    let text = std::fs::read_to_string(&paths.env_file).with_context(|| {
        format!(
            "reading {} (copy .env.example to .env first)",
            paths.env_file.display()
        )
    })?;
    let mut env = EnvFile::parse(&text);
    for (key, len) in SECRETS {
        if env.real_value(key).is_none() {
            env.set(key, &passwd::random_password(len));
            report.generated.push(key);
        }
    }
    let devices = parse_devices(env.get("OGM_DEVICES").unwrap_or(""))?;
    let broker = env
        .real_value("OGM_PUBLIC_MQTT_URL")
        .unwrap_or(UNKNOWN_BROKER)
        .to_owned();
    if !report.generated.is_empty() {
        std::fs::write(&paths.env_file, env.render())
            .with_context(|| format!("writing {}", paths.env_file.display()))?;
    }
    // It holds every secret of the deployment.
    set_mode(&paths.env_file, 0o600)?;

    let mut file = passwd::load(&paths.password_file)?;
    let mut changed = false;
    for (user, key) in [
        (SERVER_USER, "OGM_MQTT_PASSWORD"),
        (DASHBOARD_USER, "OGM_DASHBOARD_MQTT_PASSWORD"),
    ] {
        let password = env.get(key).unwrap_or_default();
        if file.ensure_password(user, password)? {
            report.broker_users_written.push(user.to_owned());
            changed = true;
        }
    }
    for id in devices {
        if file.get(&id).is_some() {
            report.existing_devices.push(id);
            continue;
        }
        let password = passwd::random_password(DEVICE_PASSWORD_LEN);
        file.set_password(&id, &password)?;
        report.broker_users_written.push(id.to_string());
        report.new_devices.push(DeviceSettings {
            id,
            password,
            broker: broker.clone(),
        });
        changed = true;
    }
    if !report.new_devices.is_empty() {
        std::fs::create_dir_all(&paths.secrets_dir)
            .with_context(|| format!("creating {}", paths.secrets_dir.display()))?;
        set_mode(&paths.secrets_dir, 0o700)?;
        for d in &report.new_devices {
            let path = paths.secrets_dir.join(format!("{}.toml", d.id));
            std::fs::write(&path, d.cfg_toml())
                .with_context(|| format!("writing {}", path.display()))?;
            set_mode(&path, 0o600)?;
        }
    }
    if changed || !paths.password_file.exists() {
        passwd::save(&paths.password_file, &file)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists() {
        let ids = parse_devices(" dev-a,dev-b  dev-c,,dev-a ").unwrap();
        let ids: Vec<&str> = ids.iter().map(|d| d.as_str()).collect();
        assert_eq!(ids, ["dev-a", "dev-b", "dev-c"]);
        assert!(parse_devices("").unwrap().is_empty());
        let e = parse_devices("ok,bad/one,ogm.server")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad/one") && e.contains("ogm.server"), "{e}");
    }

    #[test]
    fn generates_once_and_keeps_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        let paths = SetupPaths {
            env_file: dir.path().join(".env"),
            password_file: dir.path().join("mosquitto/passwd"),
            secrets_dir: dir.path().join("secrets"),
        };
        assert!(run(&paths).is_err(), "no .env yet");
        std::fs::write(
            &paths.env_file,
            "# mine\nOGM_MQTT_PASSWORD=\nOGM_DASHBOARD_MQTT_PASSWORD=chosen-by-me\nOGM_DEVICES=dev-a\n",
        )
        .unwrap();
        let first = run(&paths).unwrap();
        assert_eq!(first.generated.len(), SECRETS.len() - 1);
        assert_eq!(first.new_devices.len(), 1);
        let env = EnvFile::parse(&std::fs::read_to_string(&paths.env_file).unwrap());
        assert_eq!(env.get("OGM_DASHBOARD_MQTT_PASSWORD"), Some("chosen-by-me"));
        assert_eq!(env.get("INFLUXDB_ADMIN_TOKEN").unwrap().len(), 64);
        let file = passwd::load(&paths.password_file).unwrap();
        assert_eq!(file.users(), [SERVER_USER, DASHBOARD_USER, "dev-a"]);
        assert!(passwd::verify(
            env.get("OGM_MQTT_PASSWORD").unwrap(),
            file.get(SERVER_USER).unwrap()
        ));
        let cfg = std::fs::read_to_string(paths.secrets_dir.join("dev-a.toml")).unwrap();
        assert!(cfg.contains(&first.new_devices[0].password));
        assert!(cfg.contains(UNKNOWN_BROKER));

        // Again, with one more device: nothing is regenerated.
        let before = std::fs::read_to_string(&paths.env_file).unwrap();
        let before_hashes = passwd::load(&paths.password_file).unwrap();
        std::fs::write(
            &paths.env_file,
            before.replace("OGM_DEVICES=dev-a", "OGM_DEVICES=dev-a,dev-b"),
        )
        .unwrap();
        let second = run(&paths).unwrap();
        assert!(second.generated.is_empty());
        assert_eq!(second.broker_users_written, ["dev-b"]);
        assert_eq!(second.existing_devices.len(), 1);
        let after = passwd::load(&paths.password_file).unwrap();
        for user in [SERVER_USER, DASHBOARD_USER, "dev-a"] {
            assert_eq!(after.get(user), before_hashes.get(user), "{user} kept");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&paths.env_file), 0o600);
            assert_eq!(mode(&paths.secrets_dir), 0o700);
            assert_eq!(mode(&paths.password_file), 0o644);
        }
    }
}
