//! HTTP limits benchmark: what a running `ogm-server` costs under heavy API answers, and what
//! the dashboard costs on the wire.
//!
//! 1. `--entries` log entries of `--message-bytes` each go into an embedded store; the server
//!    starts on it and `--parallel` clients ask `GET /api/logs?limit=10000` at once. Printed:
//!    the answers' statuses and sizes, and the server's resident memory (`VmRSS` idle,
//!    `VmHWM` after: the peak) from `/proc/<pid>/status`.
//! 2. The dashboard as a browser fetches it: a first visit (`index.html`, then every file it
//!    names, with `Accept-Encoding: br, gzip` by default) and a repeat visit (what `Cache-Control` lets the
//!    browser keep is not asked for; the rest is revalidated with `If-Modified-Since`). Printed:
//!    bytes on the wire (headers and bodies) of each.
//!
//! The server's own environment passes through (e.g. `OGM_HTTP_DATA_CONCURRENCY=40`), so the
//! same run measures another build (`--server path/to/ogm-server`) or setting.
//!
//! `cargo build -p ogm-server -p ogm-devstack --bin ogm-bench-http && target/debug/ogm-bench-http`

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use ogm_devstack::{ChildProcess, cargo_bin, free_port, repo_root, wait_for_port};
use ogm_protocol::{DeviceId, LogEntry, LogLevel, Payload};
use ogm_store::{Record, Store};
use ogm_store_sqlite::{SqliteOptions, SqliteStore};

#[derive(Parser)]
struct Args {
    /// The server binary (default: this target directory's `ogm-server`).
    #[arg(long)]
    server: Option<PathBuf>,
    /// The built dashboard to serve (default: the repository's `dist/`).
    #[arg(long)]
    dist: Option<PathBuf>,
    /// Log entries in the store.
    #[arg(long, default_value_t = 12_000)]
    entries: usize,
    /// Bytes of each entry's message (the protocol's limit is 4096).
    #[arg(long, default_value_t = 4000)]
    message_bytes: usize,
    /// Clients asking `/api/logs?limit=10000` at once.
    #[arg(long, default_value_t = 40)]
    parallel: usize,
    /// What the dashboard's visits accept.
    #[arg(long, default_value = "br, gzip")]
    accept_encoding: String,
}

/// One exchange as it crossed the wire.
struct Exchange {
    /// From connecting to the last byte.
    took: Duration,
    status: u16,
    head: String,
    body: Vec<u8>,
    wire_bytes: usize,
}

impl Exchange {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `GET path` with `headers`, `Connection: close`; the whole answer as it came.
fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Exchange> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no header end")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    let mut body = raw[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Ok(Exchange {
        took: started.elapsed(),
        status,
        head,
        body,
        wire_bytes: raw.len(),
    })
}

fn dechunk(mut s: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = s
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk")?;
        let size = std::str::from_utf8(&s[..line_end])?;
        let n = usize::from_str_radix(size.trim(), 16)?;
        if n == 0 {
            return Ok(out);
        }
        let rest = &s[line_end + 2..];
        if rest.len() < n + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&rest[..n]);
        s = &rest[n + 2..];
    }
}

/// `VmRSS` and `VmHWM` of `pid`, MB.
fn memory_mb(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name}"))?;
        let kb: f64 = line
            .split_whitespace()
            .nth(1)
            .context("no value")?
            .parse()?;
        Ok(kb / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

use ogm_devstack::fixtures::now_us;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = match args.server {
        Some(p) => p,
        None => cargo_bin("ogm-server")?,
    };
    let dist = args.dist.unwrap_or_else(|| repo_root().join("dist"));
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");

    // The store: one device's entries, a millisecond apart, ending now.
    {
        let store = SqliteStore::open(&data, SqliteOptions::default())?;
        let device = DeviceId::new("bench-1").map_err(|e| anyhow::anyhow!("{e}"))?;
        let message = "x".repeat(args.message_bytes);
        let now = now_us();
        for chunk in (0..args.entries).collect::<Vec<_>>().chunks(1000) {
            let batch = chunk
                .iter()
                .map(|i| Record {
                    device_id: device.clone(),
                    payload: Payload::Logs(LogEntry {
                        timestamp: now - *i as i64 * 1000,
                        level: LogLevel::Info,
                        message: message.clone(),
                        module: "bench".into(),
                    }),
                })
                .collect();
            store.write(batch).await?;
        }
    }

    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut cmd = Command::new(&server);
    cmd.env("OGM_HTTP_ADDR", addr.to_string())
        .env("OGM_DATA_DIR", &data)
        .env("OGM_DIST_DIR", &dist)
        // Nothing listens there: the ingest retries quietly, the HTTP side is what is measured.
        .env("OGM_MQTT_URL", format!("mqtt://127.0.0.1:{}", free_port()))
        .env("OGM_RATE_LIMIT_BURST", "10000")
        .env("RUST_LOG", "warn");
    let log = dir.path().join("server.log");
    let mut child = ChildProcess::spawn("ogm-server", cmd, Some(&log))?;
    wait_for_port(addr, Duration::from_secs(30))?;
    let pid = child.pid();
    println!("server: {}", server.display());
    println!(
        "store: {} log entries of {} bytes",
        args.entries, args.message_bytes
    );

    // 1. Heavy log answers in parallel.
    let (rss_idle, _) = memory_mb(pid)?;
    let started = Instant::now();
    let clients: Vec<_> = (0..args.parallel)
        .map(|_| {
            std::thread::spawn(move || {
                get(addr, "/api/logs?limit=10000&start=-30d", &[]).map(|e| (e.status, e.body.len()))
            })
        })
        .collect();
    let mut by_status = std::collections::BTreeMap::<u16, (usize, usize)>::new();
    for c in clients {
        let (status, bytes) = c.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
        let e = by_status.entry(status).or_default();
        e.0 += 1;
        e.1 = e.1.max(bytes);
    }
    let elapsed = started.elapsed();
    let (rss_after, hwm) = memory_mb(pid)?;
    println!(
        "{} parallel GET /api/logs?limit=10000 in {:.1} s:",
        args.parallel,
        elapsed.as_secs_f64()
    );
    for (status, (n, largest)) in &by_status {
        println!("  {n} x {status}, largest answer {largest} bytes");
    }
    println!(
        "  server memory: {rss_idle:.0} MB idle, peak (VmHWM) {hwm:.0} MB, {rss_after:.0} MB after"
    );

    // 2. The dashboard on the wire.
    let encodings = [("Accept-Encoding", args.accept_encoding.as_str())];
    let index = get(addr, "/", &encodings)?;
    if index.status != 200 {
        bail!("GET / answered {}", index.status);
    }
    // The file names, from a plain copy (the one counted may be compressed).
    let plain = get(addr, "/", &[])?;
    let html = String::from_utf8_lossy(&plain.body).into_owned();
    let mut files: Vec<String> = html
        .split(['"', '\''])
        .filter(|s| {
            s.starts_with('/') && [".js", ".wasm", ".css"].iter().any(|ext| s.ends_with(ext))
        })
        .map(str::to_owned)
        .collect();
    files.sort();
    files.dedup();
    let mut first = vec![("/".to_owned(), index)];
    for f in &files {
        first.push((f.clone(), get(addr, f, &encodings)?));
    }
    let mut repeat_bytes = 0;
    println!(
        "dashboard, first visit (Accept-Encoding: {}):",
        args.accept_encoding
    );
    let mut first_bytes = 0;
    for (path, e) in &first {
        first_bytes += e.wire_bytes;
        println!(
            "  {path}: {} bytes on the wire in {:.0} ms ({}, {})",
            e.wire_bytes,
            e.took.as_secs_f64() * 1000.0,
            e.header("content-encoding").unwrap_or("identity"),
            e.header("cache-control").unwrap_or("no cache-control")
        );
    }
    println!("  total {first_bytes} bytes");
    println!("dashboard, repeat visit:");
    for (path, e) in &first {
        let cache = e.header("cache-control").unwrap_or("");
        let fresh = !cache.contains("no-cache")
            && (cache.contains("immutable")
                || (cache.contains("max-age=") && !cache.contains("max-age=0")));
        if fresh {
            println!("  {path}: from the browser's cache, 0 bytes");
            continue;
        }
        let mut headers = encodings.to_vec();
        if let Some(lm) = e.header("last-modified") {
            headers.push(("If-Modified-Since", lm));
        }
        if let Some(etag) = e.header("etag") {
            headers.push(("If-None-Match", etag));
        }
        let again = get(addr, path, &headers)?;
        repeat_bytes += again.wire_bytes;
        println!(
            "  {path}: revalidated, {} {} bytes on the wire",
            again.status, again.wire_bytes
        );
    }
    println!("  total {repeat_bytes} bytes");
    child.stop();
    Ok(())
}
