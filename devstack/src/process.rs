//! Ports, built binaries and child processes.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// The workspace root (where `mosquitto/`, `dist/` and `Cargo.toml` are).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A port that was free on every interface a moment ago.
///
/// Binds `0.0.0.0` because Mosquitto's WebSocket listener binds every interface.
pub fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Waits until something accepts TCP connections on `addr`, or fails after `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    crate::wait::until(timeout, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
    })
    .map(drop)
    .ok_or_else(|| anyhow::anyhow!("nothing listens on {addr} after {timeout:?}"))
}

/// Every process below `pid` (its children, theirs, …), from `/proc`: to end what a child
/// started by the PIDs, not by a name that other processes may share.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // `pid (comm) state ppid …`: the command may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((p, ppid));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Where cargo put the running executable's siblings: `target/<profile>` (or
/// `$CARGO_TARGET_DIR/<profile>`), for a test binary in its `deps/` as for `ogm-dev` itself.
/// Binaries and the broker plugin of this workspace are found there.
pub fn target_profile_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("executable has no directory")?;
    if dir.ends_with("deps") {
        dir = dir.parent().context("deps has no parent")?;
    }
    Ok(dir.to_path_buf())
}

/// The path of a binary of this workspace, built into the same target directory as the running
/// executable (a test binary in `target/<profile>/deps`, or `ogm-dev` in `target/<profile>`).
pub fn cargo_bin(name: &str) -> anyhow::Result<PathBuf> {
    let path = target_profile_dir()?.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        bail!(
            "{} is not built; run `cargo build --bin {name}` (the test command does)",
            path.display()
        );
    }
    Ok(path)
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    log: Option<PathBuf>,
}

impl ChildProcess {
    /// Spawns `cmd`, with stdout and stderr appended to `log` when given, inherited otherwise.
    pub fn spawn(name: &str, mut cmd: Command, log: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(log) = log {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)?;
            cmd.stdout(Stdio::from(file.try_clone()?))
                .stderr(Stdio::from(file));
        }
        cmd.stdin(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({cmd:?})"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.map(Path::to_path_buf),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (a `kill` name such as `TERM`, `KILL`, `HUP`).
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{signal} {} ({}) failed", self.pid(), self.name);
        }
        Ok(())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for the process to exit; returns whether it did.
    pub fn wait_timeout(&mut self, timeout: Duration) -> bool {
        crate::wait::until(timeout, || (!self.is_running()).then_some(())).is_some()
    }

    /// SIGTERM, up to 5 s for a clean exit, then SIGKILL.
    pub fn stop(&mut self) {
        if !self.is_running() {
            return;
        }
        let _ = self.signal("TERM");
        if !self.wait_timeout(Duration::from_secs(5)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// SIGKILL at once, as a crash or `kill -9` would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The log file's contents, for test failure messages.
    pub fn log_text(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_are_found_by_pid() {
        // A shell that starts a sleeper and waits for it: the sleeper is its child.
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let pid = sh.id();
        let kids = crate::wait::until(Duration::from_secs(10), || {
            Some(descendants(pid)).filter(|d| !d.is_empty())
        })
        .expect("the shell's sleeper");
        assert!(!kids.contains(&pid));
        let status = Command::new("kill")
            .arg("-KILL")
            .args(kids.iter().map(u32::to_string))
            .status()
            .unwrap();
        assert!(status.success());
        // The shell's `wait` returns once its sleeper is dead.
        assert!(crate::wait::until(Duration::from_secs(10), || sh.try_wait().unwrap()).is_some());
        assert!(descendants(pid).is_empty());
    }
}
