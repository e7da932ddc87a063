//! What the server does with a bad setting: it stops at once, before binding or connecting,
//! and says which setting and why.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ogm_devstack::wait;

/// Starts the server with `var` set to `value` (and its data in `data`); it must exit with an
/// error within ten seconds (a server that took the setting would run until stopped). Returns
/// what it said on stderr.
fn refused_at_start(data: &Path, var: &str, value: &std::ffi::OsStr, what: &str) -> String {
    refused_with(data, &[(var, value)], what)
}

fn refused_with(data: &Path, vars: &[(&str, &std::ffi::OsStr)], what: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ogm-server"))
        .envs(vars.iter().copied())
        .env("OGM_HTTP_ADDR", "127.0.0.1:0")
        .env("OGM_DATA_DIR", data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait::until(Duration::from_secs(10), || child.try_wait().unwrap());
    let Some(status) = status else {
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("the server ran with {what}");
    };
    let out = child.wait_with_output().unwrap();
    assert!(!status.success(), "{what}: {status}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bad_broker_url_stops_the_server_at_once() {
    let data = tempfile::tempdir().unwrap();
    for bad in ["not a url", "http://broker:1883", "mqtt://broker:99999"] {
        let stderr = refused_at_start(
            data.path(),
            "OGM_MQTT_URL",
            bad.as_ref(),
            &format!("OGM_MQTT_URL={bad:?}"),
        );
        assert!(
            stderr.contains("--mqtt-url") && stderr.contains(&format!("{bad:?}")),
            "{bad:?}: {stderr}"
        );
    }
}

#[test]
fn a_bad_alerts_file_stops_the_server_with_the_line_and_the_reason() {
    let data = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[rules]]\nname = \"f\"\nkind = \"frequency\"\nlimit_mhz = -5\n",
            "line 2: rule \"f\": limit_mhz must be a positive number",
        ),
        (
            "[channels.hook]\nkind = \"webhook\"\nurl = \"http://x\"\nsurprise = true\n",
            "line 4: unknown field `surprise`",
        ),
        (
            "[[rules]]\nname = \"s\"\nkind = \"silent\"\nafter = \"5m\"\nchannels = [\"nowhere\"]\n",
            "no channel \"nowhere\"",
        ),
    ];
    for (text, want) in cases {
        let file = data.path().join("alerts.toml");
        std::fs::write(&file, text).unwrap();
        let stderr = refused_at_start(data.path(), "OGM_ALERTS_FILE", file.as_os_str(), text);
        assert!(
            stderr.contains("alerts.toml") && stderr.contains(want),
            "{text:?}: {stderr}"
        );
    }
}

#[test]
fn alerts_and_home_assistant_are_refused_without_the_grid_watch() {
    let data = tempfile::tempdir().unwrap();
    let rules = data.path().join("alerts.toml");
    std::fs::write(&rules, "").unwrap();
    for (var, value) in [
        ("OGM_HOME_ASSISTANT", std::ffi::OsStr::new("true")),
        ("OGM_ALERTS_FILE", rules.as_os_str()),
    ] {
        let stderr = refused_with(
            data.path(),
            &[("OGM_GRID_WATCH", "false".as_ref()), (var, value)],
            var,
        );
        assert!(
            stderr.contains(&format!("{var} needs the grid watch")),
            "{var}: {stderr}"
        );
    }
}
