//! The line-protocol encoder against a REAL influxd: Debian's `influxdb` package (1.6), whose
//! `/write` parses the same line protocol as InfluxDB 2 (`models.ParsePointsWithPrecision`).
//! InfluxDB 2 itself is not packaged for Debian, so this is the closest real parser we can run.
//!
//! Needs `influxd` on the PATH (`apt-get install -y influxdb`); without it the test fails and
//! says so. The server runs on free 127.0.0.1 ports with its data in a temp dir, no reporting,
//! no monitor store.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::HashMap;

use ogm_protocol::{DeviceId, LogEntry, LogLevel, Measurement, Payload, Status};
use ogm_store::Record;
use ogm_store_influx::annotated_csv;

/// A real influxd ([`ogm_devstack::Influxd`]) with its data in a temp dir; stopped on drop.
struct Influxd {
    server: ogm_devstack::Influxd,
    _dir: tempfile::TempDir,
}

fn start_influxd() -> Influxd {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ogm_devstack::Influxd::start(dir.path()).unwrap_or_else(|e| {
        panic!(
            "{e:#}\n(the line protocol is checked against a real influxd, InfluxDB 1.x: \
             Debian's package, `apt-get install -y influxdb`)"
        )
    });
    Influxd { server, _dir: dir }
}

impl Influxd {
    async fn query(&self, q: &str) -> String {
        let r = reqwest::Client::new()
            .post(format!("{}/query", self.server.url()))
            .header("Accept", "application/csv")
            .query(&[("db", "ogm"), ("epoch", "u"), ("q", q)])
            .send()
            .await
            .expect("query");
        assert!(r.status().is_success(), "{q}: {}", r.status());
        r.text().await.expect("query body")
    }

    async fn write(&self, body: &str) {
        let r = reqwest::Client::new()
            .post(format!("{}/write", self.server.url()))
            .query(&[("db", "ogm"), ("precision", "u")])
            .body(body.to_owned())
            .send()
            .await
            .expect("write");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(
            status.as_u16(),
            204,
            "influxd refused the body: {text}\n{body}"
        );
    }

    /// Rows of `SELECT * FROM measurement`, keyed by (time µs, device_id), as column → value.
    async fn rows(&self, measurement: &str) -> HashMap<(i64, String), HashMap<String, String>> {
        let csv = self
            .query(&format!("SELECT * FROM \"{measurement}\""))
            .await;
        let sections = annotated_csv::parse(&csv).expect("influxd's CSV");
        let mut out = HashMap::new();
        for section in &sections {
            for row in section.rows() {
                let t: i64 = row.get("time").expect("time").parse().expect("µs time");
                let id = row.get("device_id").expect("device_id").to_owned();
                let cells = section
                    .columns
                    .iter()
                    .map(|c| {
                        (
                            c.name.clone(),
                            row.get(&c.name).unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
                assert!(out.insert((t, id), cells).is_none(), "one row per point");
            }
        }
        out
    }
}

const T: i64 = 1_703_123_456_789_123;
const HOST: &str = "test host,rack=1";

fn id(s: &str) -> DeviceId {
    DeviceId::new(s).expect("device id")
}

fn measurements() -> Vec<(DeviceId, Measurement)> {
    let m = |t, frequency, voltage, current, power| Measurement {
        timestamp: T + t,
        frequency,
        voltage,
        current,
        power,
    };
    vec![
        (id("esp32-s3_01"), m(0, 1e308, 5e-324, -0.0, f64::MAX)),
        (
            id("esp32-s3_01"),
            m(
                1,
                f64::MIN_POSITIVE,
                0.1 + 0.2,
                -1e-300,
                123_456_789.123_456_79,
            ),
        ),
        (id("esp32-s3_01"), m(2, 50.02, 230.5, 10.2, 2351.0)),
        (
            id("Z-9"),
            m(2, 1.0, 0.0, -f64::MAX, 9_007_199_254_740_993.0),
        ),
        (id("Z-9"), m(3, 1e-5, 9.9e-6, 1e16, 1.5e-7)),
    ]
}

fn statuses() -> Vec<(DeviceId, Status)> {
    vec![
        (
            id("esp32-s3_01"),
            Status {
                timestamp: T,
                rssi: i32::MIN,
                free_heap: i64::MAX as u64,
                online: Some(true),
                battery: Some(1e-310),
                dropped: Some(u64::MAX),
            },
        ),
        (
            id("esp32-s3_01"),
            Status {
                timestamp: T + 1,
                rssi: -45,
                free_heap: 0,
                online: Some(false),
                battery: None,
                dropped: None,
            },
        ),
        (
            id("Z-9"),
            Status {
                timestamp: T,
                rssi: i32::MAX,
                free_heap: 234_567,
                online: None,
                battery: Some(100.0),
                dropped: Some(0),
            },
        ),
    ]
}

fn logs() -> Vec<(DeviceId, LogEntry)> {
    let messages = [
        r#"say "hi" \ and \\ and \""#.to_owned(),
        "line1\nline2\r\nline3\n".to_owned(),
        "\nstarts with a newline".to_owned(),
        "commas, spaces and = equals,=, ".to_owned(),
        "unicode: grüße, 日本語, 🦀, e\u{301}, \u{2028}".to_owned(),
        "ends with a backslash \\".to_owned(),
        "\"".to_owned(),
        "tab\tnul\0ctrl\u{1}\u{7f}".to_owned(),
        "${not_flux} #not-a-comment 'single'".to_owned(),
        "x\"\\".repeat(1365),
        "device_logs,device_id=evil message=\"injected\" 1\nsecond line i=1i".to_owned(),
    ];
    messages
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            (
                id("esp32-s3_01"),
                LogEntry {
                    timestamp: T + i as i64,
                    level: LogLevel::ALL[i % 5],
                    message,
                    module: format!("mod,ule =\"{i}\"\\"),
                },
            )
        })
        .collect()
}

fn records() -> Vec<Record> {
    let mut out = Vec::new();
    out.extend(measurements().into_iter().map(|(device_id, m)| Record {
        device_id,
        payload: Payload::Measurement(m),
    }));
    out.extend(statuses().into_iter().map(|(device_id, s)| Record {
        device_id,
        payload: Payload::Status(s),
    }));
    out.extend(logs().into_iter().map(|(device_id, l)| Record {
        device_id,
        payload: Payload::Logs(l),
    }));
    out
}

fn float(cells: &HashMap<String, String>, name: &str) -> f64 {
    cells[name]
        .parse()
        .unwrap_or_else(|e| panic!("{name}={:?}: {e}", cells[name]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_protocol_round_trips_through_real_influxd_1_6() {
    let influxd = start_influxd();
    influxd.query("CREATE DATABASE ogm").await;

    // A status as the seed's Telegraf wrote it (every JSON number a float) is already in the
    // shard: influxd refuses a line whose field type differs from the shard's.
    let seed_line = format!(
        "device_status,device_id=seed-1,host=telegraf,source=mqtt rssi=-60,free_heap=123456 {}\n",
        T - 10
    );
    influxd.write(&seed_line).await;

    let records = records();
    let mut body = String::new();
    ogm_store_influx::encode(&records, HOST, &mut body);
    influxd.write(&body).await;
    // The same batch again (a redelivery): InfluxDB overwrites, nothing doubles.
    influxd.write(&body).await;

    let grid = influxd.rows("grid_data").await;
    assert_eq!(
        grid.len(),
        measurements().len(),
        "one point per measurement"
    );
    for (device, m) in measurements() {
        let cells = &grid[&(m.timestamp, device.to_string())];
        for (name, want) in [
            ("frequency", m.frequency),
            ("voltage", m.voltage),
            ("current", m.current),
            ("power", m.power),
        ] {
            let got = float(cells, name);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{device} {name}: wrote {want:e}, read {got:e}"
            );
        }
        assert_eq!(
            cells["host"], HOST,
            "the host tag round-trips through escaping"
        );
        assert_eq!(cells["source"], "mqtt");
    }

    let status = influxd.rows("device_status").await;
    assert_eq!(status.len(), statuses().len() + 1, "ours and the seed's");
    for (device, s) in statuses() {
        let cells = &status[&(s.timestamp, device.to_string())];
        assert_eq!(float(cells, "rssi"), f64::from(s.rssi));
        assert_eq!(float(cells, "free_heap"), s.free_heap as f64);
        let dropped = s.dropped.map(|d| d.min(i64::MAX as u64).to_string());
        assert_eq!(
            cells["dropped"],
            dropped.unwrap_or_default(),
            "clamped to i64::MAX"
        );
        let online = s.online.map(|o| o.to_string());
        assert_eq!(cells["online"], online.unwrap_or_default());
        match s.battery {
            Some(b) => assert_eq!(float(cells, "battery").to_bits(), b.to_bits()),
            None => assert_eq!(cells["battery"], ""),
        }
    }

    let log_rows = influxd.rows("device_logs").await;
    assert_eq!(
        log_rows.len(),
        logs().len(),
        "every message is one point: newlines and line-protocol look-alikes stay inside it"
    );
    for (device, l) in logs() {
        let cells = &log_rows[&(l.timestamp, device.to_string())];
        assert_eq!(
            cells["message"],
            l.message,
            "message at +{}",
            l.timestamp - T
        );
        assert_eq!(cells["module"], l.module);
        assert_eq!(cells["level"], l.level.as_str());
    }
    assert!(
        !log_rows.keys().any(|(_, d)| d == "evil"),
        "a message cannot inject a point"
    );

    // The server's device events: a point at the start, saved open, then again closed.
    let open = ogm_store::StoredEvent {
        device_id: id("esp32-a"),
        start_us: T + 5,
        end_us: None,
        last_us: T + 2_000_005,
        extreme_hz: 49.75,
        rocof: Some(-0.3),
        frequency: true,
    };
    let closed = ogm_store::StoredEvent {
        end_us: Some(T + 3_000_005),
        ..open.clone()
    };
    for e in [open, closed] {
        let mut body = String::new();
        ogm_store_influx::encode_events(&[e], HOST, &mut body);
        influxd.write(&body).await;
    }
    let events = influxd.rows("grid_events").await;
    assert_eq!(events.len(), 1, "saved twice, one point");
    let cells = &events[&(T + 5, "esp32-a".to_owned())];
    assert_eq!(cells["end_us"], (T + 3_000_005).to_string());
    assert_eq!(cells["last_us"], (T + 2_000_005).to_string());
    assert_eq!(float(cells, "extreme_hz"), 49.75);
    assert_eq!(float(cells, "rocof"), -0.3);
    assert_eq!(cells["frequency"], "true");

    // Field types as the seed's schema has them: floats, integers, booleans, strings.
    let types = influxd.query("SHOW FIELD KEYS").await;
    for expected in [
        "frequency,float",
        "rssi,float",
        "free_heap,float",
        "dropped,integer",
        "online,boolean",
        "battery,float",
        "message,string",
        "end_us,integer",
        "extreme_hz,float",
    ] {
        assert!(types.contains(expected), "{expected} in:\n{types}");
    }
}
