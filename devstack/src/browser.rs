//! Real headless Chromium driven through chromedriver (WebDriver), for browser tests.
//!
//! Tests read the page with small JavaScript expressions ([`Browser::js`]) and wait for
//! conditions with [`Browser::wait_for`], never with fixed sleeps.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::process::{ChildProcess, free_port, repo_root, wait_for_port};

/// A Chromium session; chromedriver and the browser stop when it is dropped.
pub struct Browser {
    client: fantoccini::Client,
    _chromedriver: ChildProcess,
    /// Removed when the session ends, after its browser.
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// chromedriver, stopped, leaves its Chromium running: a test that panicked (and so never
    /// closed the session) would leave a browser busy with a live page behind it, slowing every
    /// later test on the machine. So every process chromedriver started, and theirs, is killed
    /// by its PID first (chromedriver itself then stops with its `ChildProcess`).
    fn drop(&mut self) {
        let pids = crate::process::descendants(self._chromedriver.pid());
        if !pids.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(pids.iter().map(u32::to_string))
                .status();
        }
    }
}

/// chromedriver's `goog/cdp/execute`: one DevTools protocol command, its result as JSON.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser").finish_non_exhaustive()
    }
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium with a fresh profile.
    pub async fn start(width: u32, height: u32) -> anyhow::Result<Self> {
        let port = free_port();
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"));
        let log = std::env::temp_dir().join(format!("ogm-chromedriver-{port}.log"));
        let chromedriver = ChildProcess::spawn("chromedriver", cmd, Some(&log))
            .context("chromedriver (Debian's chromium-driver; the test command installs it)")?;
        wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(20),
        )?;
        let profile = tempfile::tempdir()?;
        let mut caps = serde_json::Map::new();
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if let Ok(extra) = std::env::var("OGM_CHROMIUM_ARGS") {
            args.extend(extra.split_whitespace().map(str::to_owned));
        }
        let mut chrome = json!({ "args": args });
        if std::path::Path::new("/usr/bin/chromium").exists() {
            chrome["binary"] = json!("/usr/bin/chromium");
        }
        caps.insert("goog:chromeOptions".into(), chrome);
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("starting Chromium through chromedriver")?;
        Ok(Self {
            client,
            _chromedriver: chromedriver,
            _profile: profile,
        })
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client.goto(url).await?;
        Ok(())
    }

    /// Evaluates `expr` (a JavaScript expression) in the page and returns its JSON value.
    pub async fn js(&self, expr: &str) -> anyhow::Result<Value> {
        Ok(self
            .client
            .execute(&format!("return ({expr});"), vec![])
            .await?)
    }

    /// Evaluates `expr` in the page through the DevTools protocol, by value, and returns it
    /// (`null` for `undefined`, `NaN` and the infinities).
    ///
    /// For what a long test reads over and over: every WebDriver script keeps its result
    /// alive in the page while the session lasts (chromedriver leaves it bound as a remote
    /// object, "DevTools console" in a heap snapshot: 300 calls, 300 arrays), which a soak
    /// would measure as a creep of the page's JS heap. This keeps nothing.
    pub async fn probe(&self, expr: &str) -> anyhow::Result<Value> {
        let r = self
            .cdp(
                "Runtime.evaluate",
                json!({ "expression": expr, "returnByValue": true }),
            )
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            bail!("{expr}: {e}");
        }
        Ok(r["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// The page's JS heap in use after a full garbage collection, bytes (the DevTools
    /// protocol's, which needs no browser flags and leaves nothing behind).
    pub async fn js_heap_after_gc(&self) -> anyhow::Result<f64> {
        self.cdp("HeapProfiler.collectGarbage", json!({})).await?;
        let usage = self.cdp("Runtime.getHeapUsage", json!({})).await?;
        usage["usedSize"]
            .as_f64()
            .context("Runtime.getHeapUsage without usedSize")
    }

    /// Sends a DevTools protocol command to the page through chromedriver.
    async fn cdp(&self, cmd: &'static str, params: Value) -> anyhow::Result<Value> {
        Ok(self.client.issue_cmd(Cdp { cmd, params }).await?)
    }

    /// Runs JavaScript statements in the page.
    pub async fn run(&self, script: &str) -> anyhow::Result<Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    /// Polls `expr` until it is truthy (not null, false, 0 or "") and returns it, or fails
    /// after `timeout` with `what` and the last value in the message.
    pub async fn wait_for(
        &self,
        what: &str,
        expr: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.js(expr).await?;
            let truthy = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what}; last value: {v}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Saves a PNG screenshot under `target/screenshots/` and returns its path.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let dir = repo_root().join("target/screenshots");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Waits for the next chart frame to land (charts redraw at most every 200 ms): 300 ms, then
    /// an animation frame.
    pub async fn settle(&self) -> anyhow::Result<()> {
        self.run("return await new Promise(r => setTimeout(() => requestAnimationFrame(() => r(true)), 300));")
            .await?;
        Ok(())
    }

    /// Waits for the next chart frame to land ([`Self::settle`]), then saves a screenshot like
    /// [`Self::screenshot`] and prints its path.
    pub async fn settled_screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        self.settle().await?;
        let path = self.screenshot(name).await?;
        println!("screenshot: {}", path.display());
        Ok(path)
    }

    /// Ends the WebDriver session.
    pub async fn close(self) -> anyhow::Result<()> {
        self.client.clone().close().await?;
        Ok(())
    }
}
