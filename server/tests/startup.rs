//! What the server does with a bad setting: it stops at once, before binding or connecting,
//! and says which setting and why.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::process::{Command, Stdio};
use std::time::Duration;

use ogm_devstack::wait;

#[test]
fn a_bad_broker_url_stops_the_server_at_once() {
    let data = tempfile::tempdir().unwrap();
    for bad in ["not a url", "http://broker:1883", "mqtt://broker:99999"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ogm-server"))
            .env("OGM_MQTT_URL", bad)
            .env("OGM_HTTP_ADDR", "127.0.0.1:0")
            .env("OGM_DATA_DIR", data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A server that took the setting would run until stopped: give it ten seconds.
        let status = wait::until(Duration::from_secs(10), || child.try_wait().unwrap());
        let Some(status) = status else {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the server ran with OGM_MQTT_URL={bad:?}");
        };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!status.success(), "{bad:?}: {status}");
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_ogm-server"))
            .env("OGM_ALERTS_FILE", &file)
            .env("OGM_HTTP_ADDR", "127.0.0.1:0")
            .env("OGM_DATA_DIR", data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait::until(Duration::from_secs(10), || child.try_wait().unwrap());
        let Some(status) = status else {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the server ran with {text:?}");
        };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!status.success(), "{text:?}: {status}");
        assert!(
            stderr.contains("alerts.toml") && stderr.contains(want),
            "{text:?}: {stderr}"
        );
    }
}
