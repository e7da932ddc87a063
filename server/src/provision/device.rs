//! `ogm-server device add|remove`: a device's broker user (its username is its device id; the
//! shared ACL lets it publish only its own three topics) and the settings its firmware needs.

use std::path::Path;

use anyhow::Context as _;
use ogm_protocol::DeviceId;

use super::passwd;

/// Length of generated device passwords.
pub const DEVICE_PASSWORD_LEN: usize = 24;
/// What the firmware settings say when the broker's public address is not known.
pub const UNKNOWN_BROKER: &str = "mqtt://CHANGE_ME:1883";

/// What a board needs to reach the broker: the `[mqtt]` and `[device]` keys of
/// `firmware/board/cfg.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSettings {
    pub id: DeviceId,
    pub password: String,
    /// `mqtt://host:port` as the device reaches the broker.
    pub broker: String,
}

fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl DeviceSettings {
    /// The `cfg.toml` fragment (Wi-Fi and calibration are the board owner's).
    pub fn cfg_toml(&self) -> String {
        format!(
            "# Broker settings for device {id}: merge into firmware/board/cfg.toml\n\
             [mqtt]\n\
             broker = {broker}\n\
             password = {password}\n\
             \n\
             [device]\n\
             id = {id_str}\n",
            id = self.id,
            broker = toml_string(&self.broker),
            password = toml_string(&self.password),
            id_str = toml_string(&self.id),
        )
    }
}

/// Creates or replaces `id`'s broker user in `password_file`; returns the settings with the
/// password (`password`, or a generated one).
pub fn add(
    password_file: &Path,
    id: &str,
    password: Option<String>,
    broker: &str,
) -> anyhow::Result<DeviceSettings> {
    let id = DeviceId::new(id).with_context(|| format!("{id:?} is not a device id"))?;
    let password = password.unwrap_or_else(|| passwd::random_password(DEVICE_PASSWORD_LEN));
    let mut file = passwd::load(password_file)?;
    file.set_password(&id, &password)?;
    passwd::save(password_file, &file)?;
    Ok(DeviceSettings {
        id,
        password,
        broker: broker.to_owned(),
    })
}

/// Removes `id`'s broker user; false if it had none.
pub fn remove(password_file: &Path, id: &str) -> anyhow::Result<bool> {
    let id = DeviceId::new(id).with_context(|| format!("{id:?} is not a device id"))?;
    let mut file = passwd::load(password_file)?;
    let removed = file.remove(&id);
    if removed {
        passwd::save(password_file, &file)?;
    }
    Ok(removed)
}

/// Tells a broker running on this machine to reload its password file (SIGHUP to `pid`).
pub fn reload_broker(pid: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    anyhow::ensure!(status.success(), "kill -HUP {pid} failed");
    Ok(())
}

/// What to tell the user after the password file changed.
pub const RELOAD_HINT: &str = "The broker reads the password file at start and on SIGHUP:\n  \
    docker compose kill -s HUP mosquitto      (the docker-compose stack)\n  \
    kill -HUP <mosquitto's pid>               (a broker on this machine; or pass --reload-pid)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_validates_and_prints_firmware_settings() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("passwd");
        assert!(add(&pw, "bad/id", None, UNKNOWN_BROKER).is_err());
        assert!(
            add(&pw, "ogm.server", None, UNKNOWN_BROKER).is_err(),
            "service users are not devices"
        );
        let s = add(&pw, "dev-a", None, "mqtt://10.0.0.5:1883").unwrap();
        assert_eq!(s.password.len(), DEVICE_PASSWORD_LEN);
        let file = passwd::load(&pw).unwrap();
        assert!(passwd::verify(&s.password, file.get("dev-a").unwrap()));
        assert_eq!(
            s.cfg_toml(),
            format!(
                "# Broker settings for device dev-a: merge into firmware/board/cfg.toml\n[mqtt]\n\
                 broker = \"mqtt://10.0.0.5:1883\"\npassword = \"{}\"\n\n[device]\nid = \"dev-a\"\n",
                s.password
            )
        );
        let again = add(&pw, "dev-a", Some("a\"b\\c".into()), UNKNOWN_BROKER).unwrap();
        assert!(again.cfg_toml().contains(r#"password = "a\"b\\c""#));
        assert_eq!(
            passwd::load(&pw).unwrap().users(),
            ["dev-a"],
            "replaced, not added"
        );
        assert!(remove(&pw, "dev-a").unwrap());
        assert!(!remove(&pw, "dev-a").unwrap());
    }
}
