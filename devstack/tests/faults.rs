//! Faults are normal: the ingest against a real broker and a real server under each fault,
//! black-box. Every scenario asserts that every message the broker acknowledged to a device is
//! stored exactly once, with no restart of the server unless the fault is one, and prints a
//! line of the recovery table (`FAULT scenario | sent | stored | duplicates | recovered in`).
//!
//! The disk scenarios mount a small tmpfs as the server's data directory, so they need root
//! (as CI and this project's machines have); without it they say so and pass as skipped.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::{Duration, Instant};

use ogm_devstack::disk::{FrozenDisk, Tmpfs};
use ogm_devstack::ingest_check::{DEVICE_PASSWORD, Stored, Stream, metric, wait_exactly_once};
use ogm_devstack::page::now_us;
use ogm_devstack::{Stack, StackOptions, http_get};

const RECOVERY: Duration = Duration::from_secs(120);

struct Scenario {
    // Fields drop in this order. A frozen disk thaws first: a process blocked on it could not
    // be ended, and ending the stack would wait for it for ever.
    frozen: Option<FrozenDisk>,
    stack: Stack,
    devices: Vec<String>,
    // After the stack: the server's files live there.
    tmpfs: Option<Tmpfs>,
    _dir: tempfile::TempDir,
}

/// What the server's data directory is.
enum Disk {
    /// The temporary directory's own file system.
    Plain,
    /// A tmpfs of this many KiB, to fill.
    Tmpfs(u64),
    /// An ext4 image of this many MiB, to freeze.
    Freezable(u64),
}

/// A stack with `devices` outside devices, the broker's in-flight window `window` (None: the
/// policy's), `disk` as the server's data directory, and `env` for the server.
fn scenario(
    name: &str,
    devices: usize,
    window: Option<u32>,
    disk: Disk,
    env: &[(&str, &str)],
) -> Scenario {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (tmpfs, frozen) = match disk {
        Disk::Plain => (None, None),
        Disk::Tmpfs(kib) => (Some(Tmpfs::mount(&data, kib).unwrap()), None),
        Disk::Freezable(mib) => (None, Some(FrozenDisk::mount(&data, mib).unwrap())),
    };
    let mut options = StackOptions::for_test(dir.path().to_path_buf(), 0);
    let ids: Vec<String> = (1..=devices).map(|i| format!("{name}-{i}")).collect();
    options.extra_devices = ids
        .iter()
        .map(|d| (d.clone(), DEVICE_PASSWORD.to_owned()))
        .collect();
    if let Some(w) = window {
        options.broker_extra_config = format!("max_inflight_messages {w}\n");
    }
    options.server_env = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let stack = Stack::up(options).unwrap();
    Scenario {
        stack,
        devices: ids,
        tmpfs,
        frozen,
        _dir: dir,
    }
}

impl Scenario {
    /// `count` measurements per device, an hour old, to publish at QoS 1.
    fn stream(&self, count: usize) -> Stream {
        Stream::new(
            self.stack.broker.ports.mqtt,
            &self.devices,
            count,
            now_us() - 3_600_000_000,
        )
    }

    /// Starts the server again and reports, under `name`, how the stream came through: the
    /// next run gets from the broker what the last one never acknowledged.
    fn restart_and_report(&mut self, name: &str, stream: &Stream, count: usize) {
        let started = Instant::now();
        self.stack.server = Stack::start_server(&self.stack.options, &self.stack.broker).unwrap();
        let stored = tokio::task::block_in_place(|| {
            wait_exactly_once(&self.url(), &self.devices, count, stream.base, RECOVERY)
        });
        report(name, stored, started.elapsed(), (0, 1));
    }

    fn url(&self) -> String {
        self.stack.http_url()
    }

    fn metric(&self, name: &str) -> f64 {
        metric(&self.url(), name).unwrap_or(f64::NAN)
    }

    fn health(&self) -> serde_json::Value {
        http_get(&format!("{}/api/health", self.url()))
            .and_then(|r| r.json())
            .unwrap_or_default()
    }

    fn has_problem(&self, problem: &str) -> bool {
        self.health()["problems"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x == problem))
    }

    /// Waits for `what` to hold, or fails with the server's log.
    fn wait(&mut self, what: &str, timeout: Duration, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within {timeout:?}; health {}\nserver log:\n{}",
                self.health(),
                tail(&self.stack.server.log_text())
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Prints a line of the recovery table and appends it to `faults.txt` in cargo's temporary
/// directory, which `scripts/test` shows at the end (cargo test hides a passing test's output).
fn table_line(line: &str) {
    use std::io::Write as _;
    println!("{line}");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// One line of the recovery table, and the assertions every scenario shares.
fn report(name: &str, s: Stored, recovered: Duration, server_pid: (u32, u32)) {
    table_line(&format!(
        "FAULT {name} | sent {} | stored {} | duplicates {} | missing {} | recovered in {:.1} s | server restarted: {}",
        s.sent,
        s.stored,
        s.duplicates,
        s.missing,
        recovered.as_secs_f64(),
        server_pid.0 != server_pid.1
    ));
    assert!(s.exactly_once(), "{name}: {s:?}");
}

/// The disk fills in the middle of a stream, the broker keeps what follows, then the disk
/// grows: everything is stored exactly once without a restart, at the broker's in-flight
/// window `window`.
async fn disk_full_then_grown(window: u32) {
    if !Tmpfs::available() {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let name = format!("full{window}");
    let mut sc = scenario(
        &name,
        4,
        Some(window),
        Disk::Tmpfs(1024),
        &[("OGM_MIN_FREE_MB", "1")],
    );
    let pid = sc.stack.server.pid();
    let count = 2500;
    let stream = sc.stream(count);
    let publisher = stream.publish_in_background(count);
    sc.wait("the disk filling", Duration::from_secs(120), |sc| {
        sc.metric("ogm_store_errors_total") > 0.0
    });
    sc.wait(
        "health saying the store fails",
        Duration::from_secs(10),
        |sc| sc.has_problem("store_failing") && sc.health()["status"] == "degraded",
    );
    // The rest of the stream goes to the broker, which keeps it for the server.
    publisher.await.unwrap().unwrap();
    let stored_while_full = sc.metric("ogm_messages_stored_total");
    let grown = Instant::now();
    sc.tmpfs.as_ref().unwrap().resize(128 * 1024).unwrap();
    let stored = tokio::task::block_in_place(|| {
        wait_exactly_once(&sc.url(), &sc.devices, count, stream.base, RECOVERY)
    });
    let recovered = grown.elapsed();
    sc.wait("health ok again", Duration::from_secs(30), |sc| {
        sc.health()["status"] == "ok"
    });
    table_line(&format!(
        "FAULT disk full at window {window}: {stored_while_full} stored before the disk grew, {} store errors",
        sc.metric("ogm_store_errors_total")
    ));
    assert!(sc.stack.server.is_running());
    report(
        &format!("disk full, grown (in-flight window {window})"),
        stored,
        recovered,
        (pid, sc.stack.server.pid()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_then_grown_at_debians_window_of_20() {
    disk_full_then_grown(20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_then_grown_at_the_projects_window_of_1000() {
    disk_full_then_grown(1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_then_grown_at_a_window_of_1() {
    disk_full_then_grown(1).await;
}

/// A scenario on a freezable disk whose first `before` measurements per device are stored,
/// then the disk frozen and the rest of `count` published (the broker keeps them).
async fn frozen_with_backlog(
    name: &str,
    window: Option<u32>,
    count: usize,
    before: usize,
) -> (Scenario, Stream) {
    let mut sc = scenario(
        name,
        2,
        window,
        Disk::Freezable(64),
        &[("OGM_MIN_FREE_MB", "1")],
    );
    let stream = sc.stream(count);
    stream.publish(0, before).await.unwrap();
    let stored = (before * sc.devices.len()) as f64;
    sc.wait("the first messages stored", Duration::from_secs(30), |sc| {
        sc.metric("ogm_messages_stored_total") >= stored
    });
    sc.frozen.as_ref().unwrap().freeze(true).unwrap();
    stream.publish(before, count).await.unwrap();
    (sc, stream)
}

/// The store's disk stops answering (frozen: writes hang, as on a stuck SD card) for longer
/// than the stall limit, then comes back. (A read-only remount is what the issue asked for, but
/// Linux refuses to remount a file system read-only while a file is open for writing, so a
/// running server can only meet a hung or a full disk, both tested here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_disk_hung_for_a_while() {
    if !Tmpfs::available() {
        eprintln!("SKIPPED: mounting a disk image needs root");
        return;
    }
    let (mut sc, stream) = frozen_with_backlog("hung", None, 1500, 300).await;
    let count = stream.count;
    let pid = sc.stack.server.pid();
    sc.wait(
        "health saying the ingest is stalled",
        Duration::from_secs(60),
        |sc| sc.has_problem("ingest_stalled") && sc.health()["status"] == "degraded",
    );
    let back = Instant::now();
    sc.frozen.as_ref().unwrap().freeze(false).unwrap();
    let stored = tokio::task::block_in_place(|| {
        wait_exactly_once(&sc.url(), &sc.devices, count, stream.base, RECOVERY)
    });
    report(
        "store's disk hung (frozen), then back",
        stored,
        back.elapsed(),
        (pid, sc.stack.server.pid()),
    );
    sc.wait("health ok again", Duration::from_secs(30), |sc| {
        sc.health()["status"] == "ok"
    });
}

/// Half a stream stored, then the broker interrupted by `fault` until the ingest notices, then
/// `recover`ed; the other half is published once the ingest has subscribed again.
async fn broker_outage(
    label: &str,
    name: &str,
    env: &[(&str, &str)],
    fault: fn(&mut Stack),
    recover: fn(&mut Stack),
) {
    let mut sc = scenario(name, 2, None, Disk::Plain, env);
    let pid = sc.stack.server.pid();
    let count = 1000;
    let stream = sc.stream(count);
    stream.publish(0, 500).await.unwrap();
    sc.wait("the first half stored", Duration::from_secs(30), |sc| {
        sc.metric("ogm_messages_stored_total") >= 1000.0
    });
    fault(&mut sc.stack);
    sc.wait(
        "health saying the broker is gone",
        Duration::from_secs(30),
        |sc| sc.has_problem("broker_disconnected"),
    );
    let back = Instant::now();
    recover(&mut sc.stack);
    sc.wait(
        "the ingest subscribed again",
        Duration::from_secs(60),
        |sc| sc.health()["mqtt"]["subscribed"] == true,
    );
    let reconnected = back.elapsed();
    stream.publish(500, count).await.unwrap();
    let stored = tokio::task::block_in_place(|| {
        wait_exactly_once(&sc.url(), &sc.devices, count, stream.base, RECOVERY)
    });
    report(label, stored, reconnected, (pid, sc.stack.server.pid()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_and_restarted() {
    broker_outage(
        "broker kill -9, restarted",
        "bkill",
        &[],
        |stack| stack.broker.kill(),
        |stack| stack.broker.restart().unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_paused_past_the_keep_alive() {
    // A keep-alive of 2 s: the ingest notices a silent broker after 3 s.
    broker_outage(
        "broker paused (SIGSTOP) past the keep-alive",
        "bstop",
        &[("OGM_MQTT_KEEP_ALIVE", "2s")],
        |stack| stack.broker.signal("STOP").unwrap(),
        |stack| stack.broker.signal("CONT").unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_paused_under_load() {
    let mut sc = scenario(
        "sstop",
        2,
        None,
        Disk::Plain,
        &[("OGM_MQTT_KEEP_ALIVE", "2s")],
    );
    let pid = sc.stack.server.pid();
    let count = 3000;
    let stream = sc.stream(count);
    let publisher = stream.publish_in_background(count);
    sc.wait("some stored", Duration::from_secs(30), |sc| {
        sc.metric("ogm_messages_stored_total") >= 500.0
    });
    sc.stack.server.signal("STOP").unwrap();
    // Paused for 60 s, far past the broker's 1.5 × keep-alive: the broker drops the session's
    // connection and queues the stream for it.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let resumed = Instant::now();
    sc.stack.server.signal("CONT").unwrap();
    publisher.await.unwrap().unwrap();
    let stored = tokio::task::block_in_place(|| {
        wait_exactly_once(&sc.url(), &sc.devices, count, stream.base, RECOVERY)
    });
    report(
        "server paused (SIGSTOP) 60 s under load",
        stored,
        resumed.elapsed(),
        (pid, sc.stack.server.pid()),
    );
}

/// SIGTERM, and how long the server takes to exit (bounded by `OGM_SHUTDOWN_TIMEOUT`, 15 s).
fn sigterm(sc: &mut Scenario, state: &str) -> Duration {
    let sent = Instant::now();
    sc.stack.server.signal("TERM").unwrap();
    let exited = sc.stack.server.wait_timeout(Duration::from_secs(30));
    let took = sent.elapsed();
    table_line(&format!(
        "FAULT SIGTERM while {state}: exited in {:.2} s",
        took.as_secs_f64()
    ));
    assert!(
        exited,
        "still running 30 s after SIGTERM while {state}:\n{}",
        tail(&sc.stack.server.log_text())
    );
    assert!(
        took < Duration::from_secs(20),
        "SIGTERM while {state} took {took:?}"
    );
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_server_while_the_store_fails_and_nothing_uncommitted_is_lost() {
    if !Tmpfs::available() {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let mut sc = scenario(
        "termfull",
        2,
        None,
        Disk::Tmpfs(1024),
        &[("OGM_MIN_FREE_MB", "1")],
    );
    let count = 3000;
    let stream = sc.stream(count);
    stream.publish(0, count).await.unwrap();
    sc.wait("the disk filling", Duration::from_secs(120), |sc| {
        sc.metric("ogm_store_errors_total") > 0.0
    });
    sigterm(&mut sc, "the store fails (writer retrying)");
    // What was not committed was not acknowledged: the next run gets it from the broker.
    sc.tmpfs.as_ref().unwrap().resize(128 * 1024).unwrap();
    sc.restart_and_report(
        "SIGTERM while the disk is full, restarted on a grown disk",
        &stream,
        count,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_server_while_the_broker_is_gone_or_paused() {
    let mut sc = scenario("termbroker", 1, None, Disk::Plain, &[]);
    sc.stack.broker.kill();
    sc.wait(
        "health saying the broker is gone",
        Duration::from_secs(30),
        |sc| sc.has_problem("broker_disconnected"),
    );
    sigterm(&mut sc, "the broker is gone");

    sc.stack.broker.restart().unwrap();
    sc.stack.server = Stack::start_server(&sc.stack.options, &sc.stack.broker).unwrap();
    sc.stack.broker.signal("STOP").unwrap();
    sigterm(&mut sc, "the broker is paused (SIGSTOP)");
    sc.stack.broker.signal("CONT").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_server_while_a_store_write_hangs_and_the_handoff_is_full() {
    if !Tmpfs::available() {
        eprintln!("SKIPPED: mounting a disk image needs root");
        return;
    }
    // No in-flight limit: the broker sends all it has, and the hand-off channel fills.
    let (mut sc, stream) = frozen_with_backlog("termhung", Some(0), 3000, 50).await;
    let count = stream.count;
    sc.wait(
        "a batch waiting on the hung disk, and the hand-off channel full behind it",
        Duration::from_secs(30),
        |sc| {
            sc.health()["ingest"]["uncommitted_for_s"]
                .as_f64()
                .is_some_and(|s| s > 1.0)
                && sc.metric("ogm_ingest_handoff_queued") >= 4064.0
        },
    );
    // A thread blocked in the kernel on a frozen (or dead) disk cannot be ended by anything,
    // SIGKILL included, until the disk answers. What the server can do, it does in time: it
    // gives up on the write (its batch stays unacknowledged), stops everything else and
    // returns from main (or the deadline thread exits); the process is gone as soon as the
    // disk lets the blocked thread go.
    let sent = Instant::now();
    sc.stack.server.signal("TERM").unwrap();
    sc.wait(
        "the server done with all it can end",
        Duration::from_secs(30),
        |sc| {
            let log = sc.stack.server.log_text();
            log.contains("ingest stopped") || log.contains("shutdown took too long; exiting now")
        },
    );
    let deadline = sent.elapsed();
    assert!(
        deadline < Duration::from_secs(20),
        "the server took {deadline:?} to stop"
    );
    sc.frozen.as_ref().unwrap().freeze(false).unwrap();
    let thawed = Instant::now();
    assert!(
        sc.stack.server.wait_timeout(Duration::from_secs(10)),
        "still running 10 s after the disk came back"
    );
    table_line(&format!(
        "FAULT SIGTERM while a store write hangs on a frozen disk (hand-off channel full): done in {:.2} s but for the blocked thread, exited {:.2} s after the disk came back",
        deadline.as_secs_f64(),
        thawed.elapsed().as_secs_f64()
    ));
    sc.restart_and_report(
        "SIGTERM while a write hangs, restarted on the thawed disk",
        &stream,
        count,
    );
}

/// Compaction on a full disk: sealing fails, each window's transaction is rolled back, and
/// every reading still answers exactly as before; once the disk grows the next pass seals them
/// all and the file shrinks. (The store, not a server: the seal pass is what is under test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealing_on_a_full_disk_loses_nothing_and_finishes_once_it_grows() {
    use std::io::Write as _;

    use ogm_protocol::{DeviceId, Measurement, Payload};
    use ogm_store::{Field, HistoryQuery, Record, Store};
    use ogm_store_sqlite::{SqliteOptions, SqliteStore};

    if !Tmpfs::available() {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let disk = Tmpfs::mount(&data, 16 * 1024).unwrap();
    let store = SqliteStore::open(&data, SqliteOptions::default()).unwrap();
    let id = DeviceId::new("sealed-1").unwrap();
    // Two hours of 10 Hz readings, a day old: two windows ready to seal.
    let t0 = (now_us() / 3_600_000_000 - 26) * 3_600_000_000;
    let readings: Vec<Record> = (0..72_000i64)
        .map(|k| Record {
            device_id: id.clone(),
            payload: Payload::Measurement(Measurement {
                timestamp: t0 + k * 100_000,
                frequency: 50.0 + (k % 977) as f64 * 1e-4,
                voltage: 230.0 + (k % 13) as f64 * 0.01,
                current: 4.0,
                power: k as f64 * 0.1,
            }),
        })
        .collect();
    for chunk in readings.chunks(5_000) {
        store.write(chunk.to_vec()).await.unwrap();
    }
    let queries: Vec<HistoryQuery> = [(0, 7_200, 1_000), (0, 600, 10_000), (1_234, 4_321, 500)]
        .iter()
        .map(|&(a, b, max)| {
            HistoryQuery::new(
                id.clone(),
                Field::Power,
                t0 + a * 1_000_000,
                t0 + b * 1_000_000,
                max,
            )
            .unwrap()
        })
        .collect();
    let mut before = Vec::new();
    for q in &queries {
        before.push(store.history(q.clone()).await.unwrap());
    }
    assert_eq!(before[1].interval_us, 0, "6000 readings");

    // Fill what is left of the disk.
    let mut filler = std::fs::File::create(data.join("filler")).unwrap();
    let block = vec![0u8; 64 * 1024];
    while filler.write_all(&block).is_ok() {}
    drop(filler);
    let full = store.seal(now_us()).await;
    assert!(full.is_err(), "sealing on a full disk: {full:?}");
    // (A window may have been sealed before the disk ran out: the same answers, up to the
    // rounding of a mean summed per second.)
    let same = |a: &ogm_store::History, b: &ogm_store::History| {
        a.interval_us == b.interval_us
            && a.points.len() == b.points.len()
            && a.points.iter().zip(&b.points).all(|(x, y)| {
                (x.t, x.min, x.max, x.count) == (y.t, y.min, y.max, y.count)
                    && (x.mean - y.mean).abs() <= 1e-9 * y.mean.abs().max(1.0)
            })
    };
    for (q, b) in queries.iter().zip(&before) {
        assert!(same(&store.history(q.clone()).await.unwrap(), b), "{q:?}");
    }

    disk.resize(64 * 1024).unwrap();
    let bytes_before = store.disk_bytes().unwrap();
    let sealed = store.seal(now_us()).await.unwrap();
    assert!(sealed.windows > 0, "{sealed:?}");
    for (q, b) in queries.iter().zip(&before) {
        assert!(same(&store.history(q.clone()).await.unwrap(), b), "{q:?}");
    }
    let bytes_after = store.disk_bytes().unwrap();
    table_line(&format!(
        "FAULT sealing on a full disk: failed, every reading kept; once grown {bytes_before} B -> {bytes_after} B"
    ));
    assert!(
        bytes_after * 4 < bytes_before,
        "{bytes_before} B -> {bytes_after} B"
    );
}
