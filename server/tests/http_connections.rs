//! The server on real sockets (`127.0.0.1:0`): clients that send slowly or hang are
//! disconnected, the per-client limit sees the peer's address, and shutdown is bounded whatever
//! the clients do, in the library (`serve`) and in the binary (SIGTERM).
//!
//! No sleeps stand in for synchronisation: each step waits for what it needs (an answer's
//! first bytes, a request held in the store); the only time bounds are generous ones on what
//! must end.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ogm_server::{AppState, Config};
use support::{GateStore, trunk_dist};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Far longer than anything here should take.
const GENEROUS: Duration = Duration::from_secs(30);

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn start(state: AppState) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(ogm_server::serve(listener, state, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            stop: Some(tx),
            task,
        }
    }

    /// Asks for shutdown and waits (boundedly) for `serve` to return; how long it took.
    async fn shut_down(mut self) -> Duration {
        let t = Instant::now();
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(GENEROUS, self.task)
            .await
            .expect("serve did not return")
            .unwrap()
            .unwrap();
        t.elapsed()
    }
}

fn config(f: impl FnOnce(&mut Config)) -> (tempfile::TempDir, Config) {
    let dist = trunk_dist();
    let mut c = Config::defaults();
    c.dist_dir = dist.path().to_path_buf();
    f(&mut c);
    (dist, c)
}

/// Reads until the server closes the connection (EOF or reset); panics after [`GENEROUS`].
async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(GENEROUS, s.read(&mut buf)).await {
            Err(_) => panic!(
                "the server kept the connection open; read so far: {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads until `needle` has arrived.
async fn until_seen(s: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&got).contains(needle) {
        let n = tokio::time::timeout(GENEROUS, s.read(&mut buf))
            .await
            .expect("no answer")
            .unwrap();
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

async fn send(addr: SocketAddr, request: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    s
}

fn status_of(answer: &str) -> u16 {
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_client_that_sends_its_request_head_slowly_is_disconnected() {
    let (_dist, c) = config(|c| c.http_header_timeout = Duration::from_secs(1));
    let server = Server::start(AppState::new(c, GateStore::new())).await;
    // Half a head, and then nothing (slowloris sends a header line now and then; the head's
    // whole time is limited, so that makes no difference).
    let mut slow = send(server.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-a: 1\r\n").await;
    let answer = until_closed(&mut slow).await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));

    // An idle keep-alive connection is closed after the same time.
    let mut idle = send(server.addr, "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let answer = until_closed(&mut idle).await;
    assert_eq!(status_of(&String::from_utf8_lossy(&answer)), 200);
    server.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_its_answer_is_disconnected() {
    let (_dist, c) = config(|c| {
        c.http_header_timeout = Duration::ZERO;
        c.http_request_timeout = Duration::ZERO;
    });
    let server = Server::start(AppState::new(c, GateStore::endless())).await;
    let mut s = send(
        server.addr,
        "GET /api/export.csv?device_id=dev-1 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    until_seen(&mut s, "HTTP/1.1 200").await;
    // The client reads no more: the server's writes wait once the sockets' buffers are full.
    // Time is paused and runs ahead whenever nothing else can happen, so this returns after
    // the write-stall timeout has fired.
    tokio::time::sleep(10 * ogm_server::http::accept::WRITE_STALL).await;
    // What the buffers held, then the end: the export itself never ends.
    let mut buf = vec![0u8; 1 << 16];
    let mut read = 0usize;
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
        assert!(read < 256 << 20, "the server kept writing");
    }
    server.shut_down().await;
}

#[tokio::test]
async fn the_rate_limit_sees_each_connections_peer_address() {
    let (_dist, c) = config(|c| {
        c.rate_limit_per_sec = 1;
        c.rate_limit_burst = 1;
    });
    let server = Server::start(AppState::new(c, GateStore::new())).await;
    let request = "GET /api/config HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let first = until_closed(&mut send(server.addr, request).await).await;
    assert_eq!(status_of(&String::from_utf8_lossy(&first)), 200);
    let second =
        String::from_utf8(until_closed(&mut send(server.addr, request).await).await).unwrap();
    assert_eq!(status_of(&second), 429, "{second}");
    assert!(second.contains("\"error\":\"too many requests"), "{second}");
    server.shut_down().await;
}

#[tokio::test]
async fn shutdown_lets_answers_finish_and_drops_hanging_clients_after_the_grace() {
    let (_dist, c) = config(|c| {
        c.http_header_timeout = Duration::from_secs(600);
        c.http_request_timeout = Duration::from_secs(600);
        c.http_shutdown_grace = Duration::from_secs(2);
    });
    let store = GateStore::new();
    let server = Server::start(AppState::new(c, store.clone())).await;
    let addr = server.addr;

    // A slowloris client, a CSV export that never ends, and a request held in the store.
    let mut slow = send(addr, "GET / HTTP/1.1\r\nHost: x\r\n").await;
    let mut export = send(
        addr,
        "GET /api/export.csv?device_id=dev-1 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let started = until_seen(&mut export, "1,50,230,1,230").await;
    assert_eq!(status_of(&started), 200);
    let mut held = send(
        addr,
        "GET /api/history?device_id=dev-1 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    store.wait_inside(1).await;

    let stop = tokio::spawn(server.shut_down());
    // The held request may still finish, and its connection then closes.
    store.open();
    let answer = String::from_utf8(until_closed(&mut held).await).unwrap();
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(answer.contains("\"points\":[]"), "{answer}");

    let took = stop.await.unwrap();
    assert!(took < GENEROUS, "{took:?}");
    // The hanging ones were dropped.
    until_closed(&mut slow).await;
    until_closed(&mut export).await;
    // And nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[test]
fn sigterm_ends_the_server_process_promptly_with_clients_hanging() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let dist = trunk_dist();
    let port = ogm_devstack::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ogm-server"));
    cmd.env("OGM_HTTP_ADDR", addr.to_string())
        .env("OGM_DATA_DIR", dir.path().join("data"))
        .env("OGM_DIST_DIR", dist.path())
        // No broker: the ingest keeps retrying, as in a real outage.
        .env(
            "OGM_MQTT_URL",
            format!("mqtt://127.0.0.1:{}", ogm_devstack::free_port()),
        )
        .env_remove("OGM_HTTP_SHUTDOWN_GRACE")
        .env_remove("OGM_HTTP_HEADER_TIMEOUT");
    let log = dir.path().join("server.log");
    let mut server = ogm_devstack::ChildProcess::spawn("ogm-server", cmd, Some(&log)).unwrap();
    ogm_devstack::wait_for_port(addr, GENEROUS).unwrap();

    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut idle = std::net::TcpStream::connect(addr).unwrap();
    idle.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut first = [0u8; 12];
    std::io::Read::read_exact(&mut idle, &mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    let t = Instant::now();
    server.signal("TERM").unwrap();
    assert!(
        server.wait_timeout(Duration::from_secs(15)),
        "still running 15 s after SIGTERM:\n{}",
        server.log_text()
    );
    eprintln!("exited {:?} after SIGTERM", t.elapsed());
}

#[tokio::test]
async fn slow_request_bodies_hold_no_data_slot_and_get_a_json_408() {
    let (_dist, c) = config(|c| {
        c.flux_proxy = true;
        c.http_body_timeout = Duration::from_secs(2);
    });
    let concurrency = c.http_data_concurrency as usize;
    let store = GateStore::new();
    store.open();
    let server = Server::start(AppState::new(c, store)).await;
    // More slow bodies than there are data slots: each sends its head and one byte of 1000.
    let mut slow = Vec::new();
    for _ in 0..concurrency + 8 {
        let head = "POST /api/flux HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nf";
        slow.push(send(server.addr, head).await);
    }
    let t = Instant::now();
    let answer = String::from_utf8(
        until_closed(
            &mut send(
                server.addr,
                "GET /api/devices HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await,
        )
        .await,
    )
    .unwrap();
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(t.elapsed() < Duration::from_secs(2), "it waited for a slot");
    for s in &mut slow {
        let answer = until_seen(s, "}").await;
        assert_eq!(status_of(&answer), 408, "{answer}");
        assert!(
            answer.contains("\"error\":\"the request body took longer than 2 s"),
            "{answer}"
        );
    }
    server.shut_down().await;
}
