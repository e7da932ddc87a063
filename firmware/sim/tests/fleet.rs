//! Black-box tests of `ogm_sim::run` against a minimal in-process MQTT 3.1.1 broker on
//! `127.0.0.1:0`: what the devices send on connect, while running, after a dropped connection
//! and on shutdown.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers and the fake broker: a panic is a test failure"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use ogm_protocol::{Kind, LogLevel, Payload, TOPIC_PREFIX, Topic, payload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// What the fake broker saw, in order, tagged with the connection number and client id.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Connect {
        conn: usize,
        client_id: String,
        clean_session: bool,
        keep_alive: u16,
        will: Option<(String, Vec<u8>, u8, bool)>,
        username: Option<String>,
        password: Option<String>,
    },
    Publish {
        conn: usize,
        client_id: String,
        topic: String,
        qos: u8,
        retain: bool,
        payload: Vec<u8>,
    },
    Disconnect {
        conn: usize,
        client_id: String,
    },
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Accepts connections forever; connection number `drop_conn` (if any) is closed 300 ms after
/// its CONNACK, as if the network failed.
async fn fake_broker(listener: TcpListener, log: Log, drop_conn: Option<usize>) {
    let counter = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let conn = counter.fetch_add(1, Ordering::SeqCst);
        let log = log.clone();
        let drop_after = (drop_conn == Some(conn)).then_some(Duration::from_millis(300));
        tokio::spawn(async move {
            match drop_after {
                Some(d) => {
                    let _ = tokio::time::timeout(d, serve(stream, conn, log)).await;
                }
                None => serve(stream, conn, log).await,
            }
        });
    }
}

async fn serve(mut s: TcpStream, conn: usize, log: Log) {
    let mut client_id = String::new();
    loop {
        let Ok(header) = s.read_u8().await else {
            return;
        };
        let mut len = 0usize;
        for shift in (0..28).step_by(7) {
            let Ok(b) = s.read_u8().await else { return };
            len |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        if s.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut r = Reader(&body);
        match header >> 4 {
            1 => {
                assert_eq!(r.string(), "MQTT");
                assert_eq!(r.u8(), 4, "MQTT 3.1.1");
                let flags = r.u8();
                let keep_alive = r.u16();
                client_id = r.string();
                let will = (flags & 0x04 != 0).then(|| {
                    let topic = r.string();
                    let payload = r.bytes().to_vec();
                    (topic, payload, (flags >> 3) & 3, flags & 0x20 != 0)
                });
                let username = (flags & 0x80 != 0).then(|| r.string());
                let password = (flags & 0x40 != 0).then(|| r.string());
                log.lock().unwrap().push(Seen::Connect {
                    conn,
                    client_id: client_id.clone(),
                    clean_session: flags & 0x02 != 0,
                    keep_alive,
                    will,
                    username,
                    password,
                });
                if s.write_all(&[0x20, 2, 0, 0]).await.is_err() {
                    return;
                }
            }
            3 => {
                let qos = (header >> 1) & 3;
                let topic = r.string();
                let pkid = if qos > 0 { r.u16() } else { 0 };
                log.lock().unwrap().push(Seen::Publish {
                    conn,
                    client_id: client_id.clone(),
                    topic,
                    qos,
                    retain: header & 1 != 0,
                    payload: r.0.to_vec(),
                });
                if qos == 1 {
                    let [hi, lo] = pkid.to_be_bytes();
                    if s.write_all(&[0x40, 2, hi, lo]).await.is_err() {
                        return;
                    }
                }
            }
            12 => {
                if s.write_all(&[0xd0, 0]).await.is_err() {
                    return;
                }
            }
            14 => {
                log.lock()
                    .unwrap()
                    .push(Seen::Disconnect { conn, client_id });
                return;
            }
            other => panic!("unexpected packet type {other}"),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().unwrap();
        self.0 = rest;
        *b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b
    }
    fn string(&mut self) -> String {
        String::from_utf8(self.bytes().to_vec()).unwrap()
    }
}

/// Starts a fake broker, runs the simulator with `args` for `run_for`, shuts it down and returns
/// what the broker saw.
async fn simulate(args: &[&str], run_for: Duration, drop_conn: Option<usize>) -> Vec<Seen> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker = format!("mqtt://{}", listener.local_addr().unwrap());
    let log = Log::default();
    let server = tokio::spawn(fake_broker(listener, log.clone(), drop_conn));

    let mut argv = vec!["ogm-sim", "--broker", &broker];
    argv.extend_from_slice(args);
    let config = ogm_sim::Config::try_parse_from(argv).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let sim = tokio::spawn(ogm_sim::run(config, async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(run_for).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), sim)
        .await
        .expect("shuts down within the grace period")
        .unwrap()
        .unwrap();
    // Let the broker tasks record the last packets.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.abort();
    log.lock().unwrap().clone()
}

fn decode(topic: &str, bytes: &[u8]) -> (Topic, Payload) {
    let topic = Topic::parse(TOPIC_PREFIX, topic).unwrap();
    let now = ogm_sim::now_us();
    let p = payload::decode(topic.kind, bytes, now).unwrap();
    assert_eq!(p.timestamp_fix, payload::TimestampFix::Kept);
    (topic, p.payload)
}

fn publishes<'a>(seen: &'a [Seen], id: &str) -> Vec<(usize, &'a str, bool, Payload)> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Publish {
                conn,
                client_id,
                topic,
                qos,
                retain,
                payload,
            } if client_id == id => {
                assert_eq!(*qos, 1, "{topic}");
                let (t, p) = decode(topic, payload);
                // The broker's ACL: a device writes only under its own id.
                assert_eq!(t.device_id.as_str(), id);
                Some((*conn, topic.as_str(), *retain, p))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_publish_like_boards_and_go_offline_cleanly() {
    let seen = simulate(
        &[
            "--devices",
            "2",
            "--rate-hz",
            "20",
            "--status-interval",
            "500ms",
            "--password",
            "pw",
            "--seed",
            "1",
            "--step-every",
            "off",
        ],
        Duration::from_millis(2_000),
        None,
    )
    .await;

    let mut measurements = Vec::new();
    for id in ["sim-01", "sim-02"] {
        // Connect: own client id and username, persistent session, 30 s keep-alive, and a
        // retained QoS 1 will saying offline on the status topic.
        let connects: Vec<_> = seen
            .iter()
            .filter(|s| matches!(s, Seen::Connect { client_id, .. } if client_id == id))
            .collect();
        assert_eq!(connects.len(), 1, "{id}: {connects:?}");
        let Seen::Connect {
            clean_session,
            keep_alive,
            will: Some((will_topic, will_payload, will_qos, will_retain)),
            username,
            password,
            ..
        } = connects[0]
        else {
            panic!("{id}: no will in {:?}", connects[0]);
        };
        assert!(!clean_session);
        assert_eq!(*keep_alive, 30);
        assert_eq!(username.as_deref(), Some(id));
        assert_eq!(password.as_deref(), Some("pw"));
        assert_eq!(will_topic, &format!("open_grid_monitor/{id}/status"));
        assert_eq!((*will_qos, *will_retain), (1, true));
        let (_, will) = decode(will_topic, will_payload);
        let Payload::Status(will) = will else {
            unreachable!()
        };
        assert_eq!(will.online, Some(false));

        let pubs = publishes(&seen, id);
        // Retained statuses: online while running (about every 500 ms), offline last.
        let statuses: Vec<_> = pubs
            .iter()
            .filter_map(|(_, _, retain, p)| match p {
                Payload::Status(s) => {
                    assert!(retain);
                    Some(s.online)
                }
                _ => None,
            })
            .collect();
        assert!(statuses.len() >= 3, "{id}: {statuses:?}");
        assert_eq!(statuses.last(), Some(&Some(false)), "{id}");
        assert!(
            statuses[..statuses.len() - 1]
                .iter()
                .all(|o| *o == Some(true))
        );
        let Some((_, _, _, Payload::Status(_))) = pubs.last() else {
            panic!("{id}: the offline status is the last message")
        };
        // The offline status is followed by a clean DISCONNECT.
        assert!(
            seen.iter()
                .any(|s| matches!(s, Seen::Disconnect { client_id, .. } if client_id == id)),
            "{id} disconnects: {:?}",
            &seen[seen.len().saturating_sub(4)..]
        );

        let ms: Vec<_> = pubs
            .iter()
            .filter_map(|(_, _, retain, p)| match p {
                Payload::Measurement(m) => {
                    assert!(!retain);
                    Some(*m)
                }
                _ => None,
            })
            .collect();
        assert!(
            (25..=50).contains(&ms.len()),
            "{id}: {} measurements",
            ms.len()
        );
        assert!(ms.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
        measurements.push(ms);

        let logs: Vec<_> = pubs
            .iter()
            .filter_map(|(_, _, _, p)| match p {
                Payload::Logs(l) => Some(l),
                _ => None,
            })
            .collect();
        assert!(
            logs.iter()
                .any(|l| l.level == LogLevel::Info && l.module == "mqtt"),
            "{id}: {logs:?}"
        );
    }

    // One grid: the two meters read the same frequency to within their noise.
    let n = measurements[0].len().min(measurements[1].len());
    for (a, b) in measurements[0][..n].iter().zip(&measurements[1][..n]) {
        assert!((a.frequency - b.frequency).abs() < 0.01, "{a:?} {b:?}");
        assert!((a.frequency - 50.0).abs() < 0.5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_reestablished_and_announced() {
    let seen = simulate(
        &[
            "--devices",
            "1",
            "--rate-hz",
            "10",
            "--status-interval",
            "10s",
        ],
        Duration::from_millis(2_500),
        Some(0),
    )
    .await;
    let connects = seen
        .iter()
        .filter(|s| matches!(s, Seen::Connect { .. }))
        .count();
    assert_eq!(connects, 2, "{seen:?}");
    let pubs = publishes(&seen, "sim-01");
    // After the reconnect: a fresh retained online status (not waiting 10 s), and measurements.
    let second: Vec<_> = pubs.iter().filter(|(conn, ..)| *conn == 1).collect();
    assert!(
        second.iter().any(|(_, _, retain, p)| *retain
            && matches!(p, Payload::Status(s) if s.online == Some(true)))
    );
    assert!(
        second
            .iter()
            .filter(|(.., p)| p.kind() == Kind::Measurement)
            .count()
            > 5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_down_it_retries_and_still_stops_promptly() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let broker = format!("127.0.0.1:{port}");
    let config =
        ogm_sim::Config::try_parse_from(["ogm-sim", "--broker", &broker, "--rate-hz", "50"])
            .unwrap();
    let started = std::time::Instant::now();
    tokio::time::timeout(
        Duration::from_secs(5),
        ogm_sim::run(config, tokio::time::sleep(Duration::from_millis(1_500))),
    )
    .await
    .expect("stops without waiting for a broker")
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
}
