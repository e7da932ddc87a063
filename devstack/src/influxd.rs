//! A real InfluxDB 1.x (`influxd` from Debian's `influxdb` package) on free ports with its data
//! in a given directory: InfluxDB 2 cannot be installed here, and 1.x's `/write` takes the same
//! line protocol. Used by the history benchmark for its side-by-side figures.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::process::{ChildProcess, free_port, wait_for_port};

/// A running influxd; stopped when dropped.
#[derive(Debug)]
pub struct Influxd {
    pub http_port: u16,
    _process: ChildProcess,
}

impl Influxd {
    /// Writes a config (no reporting, no monitor store, HTTP on a free loopback port), starts
    /// influxd and waits until `/ping` answers.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        if Command::new("influxd").arg("version").output().is_err() {
            bail!("influxd is not installed: apt-get install -y influxdb");
        }
        std::fs::create_dir_all(dir)?;
        let (http_port, rpc_port) = (free_port(), free_port());
        let d = dir.display();
        let conf = format!(
            "reporting-enabled = false\nbind-address = \"127.0.0.1:{rpc_port}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n  logging-enabled = false\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [monitor]\n  store-enabled = false\n[continuous_queries]\n  enabled = false\n\
             [subscriber]\n  enabled = false\n\
             [http]\n  enabled = true\n  bind-address = \"127.0.0.1:{http_port}\"\n  auth-enabled = false\n  log-enabled = false\n"
        );
        std::fs::write(dir.join("influxdb.conf"), conf)?;
        let mut cmd = Command::new("influxd");
        cmd.arg("-config").arg(dir.join("influxdb.conf"));
        let process = ChildProcess::spawn("influxd", cmd, Some(&dir.join("influxd.log")))?;
        wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], http_port)),
            Duration::from_secs(60),
        )
        .with_context(|| format!("influxd did not come up:\n{}", process.log_text()))?;
        Ok(Self {
            http_port,
            _process: process,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
}
