//! Real receivers for notifications: an SMTP server (Debian's `python3-aiosmtpd`, writing each
//! mail it accepts into a maildir) and an HTTP server that records every POST (hyper, in this
//! process), which a test can start late, to stand for a receiver that was down.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::process::{ChildProcess, free_port, wait_for_port};

/// Debian's aiosmtpd (package `python3-aiosmtpd`), run by Debian's Python.
const SMTP_PYTHON: &str = "/usr/bin/python3";

/// aiosmtpd requiring STARTTLS and then AUTH (PLAIN or LOGIN) with one user name and password,
/// which its command line cannot set up: `port maildir cert key user password`.
const SMTP_AUTH_SERVER: &str = r#"
import signal, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword
port, maildir, cert, key, user, password = sys.argv[1:7]
tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)
def check(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == user.encode() and data.password == password.encode()
    return AuthResult(success=ok, handled=False)
c = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port), tls_context=tls,
               require_starttls=True, authenticator=check, auth_required=True)
c.start()
print("ready", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
c.stop()
"#;

/// An SMTP server on 127.0.0.1 that keeps every mail in a maildir.
#[derive(Debug)]
pub struct SmtpServer {
    pub port: u16,
    maildir: PathBuf,
    _process: ChildProcess,
}

impl SmtpServer {
    /// Starts it with its maildir and log under `dir`.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(dir, None)
    }

    /// Starts it requiring STARTTLS with `cert` and `key` (PEM files) before any mail.
    pub fn start_tls(dir: &Path, cert: &Path, key: &Path) -> anyhow::Result<Self> {
        Self::start_with(dir, Some((cert, key)))
    }

    /// Starts it requiring STARTTLS with `cert` and `key`, then a login as `user` with
    /// `password`, before any mail.
    pub fn start_tls_auth(
        dir: &Path,
        cert: &Path,
        key: &Path,
        user: &str,
        password: &str,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port();
        let maildir = dir.join("maildir");
        let mut cmd = Command::new(SMTP_PYTHON);
        cmd.args(["-c", SMTP_AUTH_SERVER])
            .arg(port.to_string())
            .arg(&maildir)
            .args([cert, key])
            .args([user, password]);
        Self::spawned(dir, port, maildir, cmd)
    }

    fn start_with(dir: &Path, tls: Option<(&Path, &Path)>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port();
        let maildir = dir.join("maildir");
        let mut cmd = Command::new(SMTP_PYTHON);
        cmd.args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"]);
        if let Some((cert, key)) = tls {
            cmd.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
        }
        cmd.arg(&maildir);
        Self::spawned(dir, port, maildir, cmd)
    }

    fn spawned(dir: &Path, port: u16, maildir: PathBuf, cmd: Command) -> anyhow::Result<Self> {
        let process = ChildProcess::spawn("aiosmtpd", cmd, Some(&dir.join("smtp.log")))?;
        wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(20),
        )
        .map_err(|e| anyhow::anyhow!("aiosmtpd did not come up: {e}\n{}", process.log_text()))?;
        Ok(Self {
            port,
            maildir,
            _process: process,
        })
    }

    /// Every mail received so far, as text, oldest first.
    pub fn mails(&self) -> Vec<String> {
        let mut files: Vec<(std::time::SystemTime, String)> = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let modified = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                if let Ok(text) = std::fs::read_to_string(e.path()) {
                    files.push((modified, text));
                }
            }
        }
        files.sort();
        files.into_iter().map(|(_, t)| t).collect()
    }
}

/// One request an [`HttpReceiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP server that answers 200 to everything and records it.
#[derive(Debug)]
pub struct HttpReceiver {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpReceiver {
    /// Listens on `port` (pick it with [`free_port`] before, to start it late).
    pub async fn start(port: u16) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let log = log.clone();
                            async move {
                                use http_body_util::BodyExt as _;
                                let path = req.uri().path().to_owned();
                                let headers = req
                                    .headers()
                                    .iter()
                                    .map(|(n, v)| {
                                        (n.to_string(), v.to_str().unwrap_or("").to_owned())
                                    })
                                    .collect();
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                                    .unwrap_or_default();
                                log.lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .push(Received {
                                        path,
                                        headers,
                                        body,
                                    });
                                Ok::<_, Infallible>(hyper::Response::new(
                                    http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                                ))
                            }
                        },
                    );
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Ok(Self {
            port,
            received,
            task,
        })
    }

    /// Starts on a free port.
    pub async fn start_any() -> anyhow::Result<Self> {
        Self::start(free_port()).await
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
