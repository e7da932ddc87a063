//! A real InfluxDB 1.x (`influxd` from Debian's `influxdb` package) on free ports with its data
//! in a given directory: InfluxDB 2 cannot be installed here, and 1.x's `/write` takes the same
//! line protocol. Used by the history benchmark for its side-by-side figures and by
//! `ogm-store-influx`'s test of its line protocol against a real parser.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::http::http_get;
use crate::process::{ChildProcess, free_port};

/// A running influxd; stopped when dropped.
#[derive(Debug)]
pub struct Influxd {
    pub http_port: u16,
    _process: ChildProcess,
}

impl Influxd {
    /// Writes a config into `dir` (no reporting, no monitor store, no pprof, HTTP on a free
    /// loopback port, data below `dir`), starts influxd and waits until `/ping` answers 204.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(dir, "")
    }

    /// As [`Influxd::start`], with more `[data]` settings (e.g. cold durations that make it
    /// snapshot its cache and fully compact soon after the writes stop).
    pub fn start_with(dir: &Path, data_settings: &str) -> anyhow::Result<Self> {
        if Command::new("influxd").arg("version").output().is_err() {
            bail!("influxd is not installed: apt-get install -y influxdb");
        }
        std::fs::create_dir_all(dir)?;
        let (http_port, rpc_port) = (free_port(), free_port());
        let d = dir.display();
        let conf = format!(
            "reporting-enabled = false\nbind-address = \"127.0.0.1:{rpc_port}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n  logging-enabled = false\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n{data_settings}\n\
             [monitor]\n  store-enabled = false\n[continuous_queries]\n  enabled = false\n\
             [subscriber]\n  enabled = false\n\
             [http]\n  enabled = true\n  bind-address = \"127.0.0.1:{http_port}\"\n  auth-enabled = false\n  log-enabled = false\n  pprof-enabled = false\n"
        );
        std::fs::write(dir.join("influxdb.conf"), conf)?;
        let mut cmd = Command::new("influxd");
        cmd.arg("-config").arg(dir.join("influxdb.conf"));
        let mut process = ChildProcess::spawn("influxd", cmd, Some(&dir.join("influxd.log")))?;
        let ping = format!("http://127.0.0.1:{http_port}/ping");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if http_get(&ping).is_ok_and(|r| r.status == 204) {
                return Ok(Self {
                    http_port,
                    _process: process,
                });
            }
            if !process.is_running() {
                bail!(
                    "influxd exited before answering /ping:\n{}",
                    process.log_text()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "influxd did not answer /ping within 60 s:\n{}",
                    process.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
}
