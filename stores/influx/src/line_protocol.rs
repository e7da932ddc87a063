//! InfluxDB line protocol: a pure encoder from [`Record`]s into a text buffer, in the seed's
//! schema. No I/O here.
//!
//! One line per record:
//!
//! ```text
//! grid_data,device_id=esp-1,host=pi,source=mqtt frequency=50.02,voltage=230.5,current=10.2,power=2351 1703123456789123
//! device_status,device_id=esp-1,host=pi,source=mqtt rssi=-45,free_heap=234567,online=true 1703123456789123
//! device_logs,device_id=esp-1,host=pi,source=mqtt level="INFO",message="done",module="ade7953" 1703123456789123
//! ```
//!
//! Timestamps are µs since the epoch: the body must be written with `precision=us` (InfluxDB
//! 1.x spells it `precision=u`).
//!
//! Escaping (the InfluxDB line protocol reference, "special characters"):
//! - measurement names: `,` and space are backslash-escaped;
//! - tag keys, tag values and field keys: `,`, `=` and space are backslash-escaped. A line
//!   break cannot be escaped in a tag, so `\n` and `\r` become an escaped space; a backslash
//!   that would escape what follows it (a special character or the end) is doubled, so the
//!   line keeps its structure. (Device ids cannot hold any of these, and
//!   [`crate::InfluxConfig`] refuses a `host` with control characters or backslashes, so in
//!   practice tags are only ever comma/equals/space-escaped.) Empty tag values are left out:
//!   InfluxDB refuses them.
//! - string field values: `"` and `\` are backslash-escaped and everything else, line breaks
//!   included, is written as is inside the quotes. The reference says line protocol "does not
//!   support" newlines in field values, but the parser of InfluxDB 1.x and 2.x
//!   (`models.scanLine`) only splits lines on a newline *outside* a quoted field value, and a
//!   `\n` escape would be stored literally as backslash + `n` (the parser unescapes only `\"` and
//!   `\\`). Raw newlines are therefore the only lossless choice; the test
//!   `line_protocol_round_trips_through_real_influxd_1_6` proves the round trip (newlines,
//!   CR LF, NUL, quotes, trailing backslashes, unicode) against a real influxd.
//! - floats: the shortest digits that parse back to the same `f64` (Rust's formatting), as a
//!   plain decimal between 1e-5 and 1e16 and in exponent form (`1e308`, `5e-324`) outside.
//!   A number without the `i` suffix is a float in line protocol, so `1` is written `1`;
//!   `-0.0` is written `-0` and stays negative zero. NaN and infinities cannot be written: such
//!   a field is left out (payload validation rejects them before they get here), and a line
//!   left with no field is skipped.
//! - integers: the `i` suffix (signed 64-bit). Counters above `i64::MAX` are clamped to it.
//! - booleans: `true` / `false`.
//!
//! Idempotency: InfluxDB keeps one point per series (measurement + tag set) and timestamp; a
//! second write of the same point overwrites the first, so a redelivered message is stored
//! once. All replicas of a deployment should therefore use the same `host` tag value, or a
//! message redelivered to another replica lands in another series.

use std::fmt::Write as _;

use ogm_protocol::{LogEntry, Measurement, Payload, Status};
use ogm_store::Record;

/// Measurement of grid readings (`frequency`, `voltage`, `current`, `power`: floats).
pub const GRID_DATA: &str = "grid_data";
/// Measurement of device health (`rssi`, `free_heap`, `battery`: floats, as the seed's Telegraf
/// wrote every JSON number, so that lines land in the buckets of devices already in the field:
/// InfluxDB refuses a field whose type differs from the one it has in the shard; `dropped`,
/// which the seed never had: integer; `online`: boolean).
pub const DEVICE_STATUS: &str = "device_status";
/// Measurement of device logs (`level`, `message`, `module`: strings).
pub const DEVICE_LOGS: &str = "device_logs";
/// Value of the `source` tag.
pub const SOURCE: &str = "mqtt";

/// Appends one line per record to `out`, each ending in `\n`, tagged with `host`.
pub fn encode(records: &[Record], host: &str, out: &mut String) {
    for record in records {
        let start = out.len();
        let measurement = match &record.payload {
            Payload::Measurement(_) => GRID_DATA,
            Payload::Status(_) => DEVICE_STATUS,
            Payload::Logs(_) => DEVICE_LOGS,
        };
        series(
            measurement,
            &[
                ("device_id", record.device_id.as_str()),
                ("host", host),
                ("source", SOURCE),
            ],
            out,
        );
        let fields = match &record.payload {
            Payload::Measurement(m) => measurement_fields(m, out),
            Payload::Status(s) => status_fields(s, out),
            Payload::Logs(l) => log_fields(l, out),
        };
        if fields == 0 {
            out.truncate(start);
            continue;
        }
        let _ = writeln!(out, " {}", record.payload.timestamp());
    }
}

/// The measurement of the server's device events (issue 15), in the seed's tag conventions.
pub const GRID_EVENTS: &str = "grid_events";

/// Appends one line per device event to `out`: measurement `grid_events`, tags `device_id` and
/// `host`, fields `last_us`, `extreme_hz`, `frequency`, and `end_us` and `rocof` when known,
/// at the event's start (µs). The same event saved again (grown, closed) lands on the same
/// point and overwrites its fields.
pub fn encode_events(events: &[ogm_store::StoredEvent], host: &str, out: &mut String) {
    for e in events.iter().filter(|e| e.extreme_hz.is_finite()) {
        series(
            GRID_EVENTS,
            &[("device_id", e.device_id.as_str()), ("host", host)],
            out,
        );
        let mut f = Fields { out, n: 0 };
        f.int("last_us", e.last_us);
        f.float("extreme_hz", e.extreme_hz);
        f.bool("frequency", e.frequency);
        if let Some(end) = e.end_us {
            f.int("end_us", end);
        }
        if let Some(r) = e.rocof {
            f.float("rocof", r);
        }
        let _ = writeln!(out, " {}", e.start_us);
    }
}

/// A line's measurement and tags (empty values left out), and the space before its fields.
fn series(measurement: &str, tags: &[(&str, &str)], out: &mut String) {
    escape_measurement(measurement, out);
    for (key, value) in tags.iter().filter(|(_, v)| !v.is_empty()) {
        out.push(',');
        escape_key(key, out);
        out.push('=');
        escape_key(value, out);
    }
    out.push(' ');
}

/// Writes `key=value` pairs separated by commas; counts them.
struct Fields<'a> {
    out: &'a mut String,
    n: usize,
}

impl Fields<'_> {
    fn key(&mut self, key: &str) {
        if self.n > 0 {
            self.out.push(',');
        }
        self.n += 1;
        escape_key(key, self.out);
        self.out.push('=');
    }

    fn float(&mut self, key: &str, v: f64) {
        if v.is_finite() {
            self.key(key);
            write_float(v, self.out);
        }
    }

    fn int(&mut self, key: &str, v: i64) {
        self.key(key);
        let _ = write!(self.out, "{v}i");
    }

    fn uint(&mut self, key: &str, v: u64) {
        self.int(key, i64::try_from(v).unwrap_or(i64::MAX));
    }

    fn bool(&mut self, key: &str, v: bool) {
        self.key(key);
        self.out.push_str(if v { "true" } else { "false" });
    }

    fn string(&mut self, key: &str, v: &str) {
        self.key(key);
        escape_string(v, self.out);
    }
}

fn measurement_fields(m: &Measurement, out: &mut String) -> usize {
    let mut f = Fields { out, n: 0 };
    f.float("frequency", m.frequency);
    f.float("voltage", m.voltage);
    f.float("current", m.current);
    f.float("power", m.power);
    f.n
}

fn status_fields(s: &Status, out: &mut String) -> usize {
    let mut f = Fields { out, n: 0 };
    // Floats, as the seed wrote them (see [`DEVICE_STATUS`]); exact below 2^53.
    f.float("rssi", f64::from(s.rssi));
    f.float("free_heap", s.free_heap as f64);
    if let Some(online) = s.online {
        f.bool("online", online);
    }
    if let Some(battery) = s.battery {
        f.float("battery", battery);
    }
    if let Some(dropped) = s.dropped {
        f.uint("dropped", dropped);
    }
    f.n
}

fn log_fields(l: &LogEntry, out: &mut String) -> usize {
    let mut f = Fields { out, n: 0 };
    f.string("level", l.level.as_str());
    f.string("message", &l.message);
    f.string("module", &l.module);
    f.n
}

/// Shortest round-trip digits; exponent form for very large and very small magnitudes.
fn write_float(v: f64, out: &mut String) {
    let a = v.abs();
    if a == 0.0 || (1e-5..1e16).contains(&a) {
        let _ = write!(out, "{v}");
    } else {
        let _ = write!(out, "{v:e}");
    }
}

fn escape_measurement(s: &str, out: &mut String) {
    escape_name(s, &[',', ' '], out);
}

/// Tag keys, tag values and field keys.
fn escape_key(s: &str, out: &mut String) {
    escape_name(s, &[',', '=', ' '], out);
}

/// Backslash-escapes `special`; a line break becomes an escaped space; a backslash that would
/// escape what follows it (a special character, a line break or the end) is doubled.
fn escape_name(s: &str, special: &[char], out: &mut String) {
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                if chars
                    .peek()
                    .is_none_or(|n| special.contains(n) || *n == '\n' || *n == '\r')
                {
                    out.push('\\');
                }
            }
            '\n' | '\r' => out.push_str("\\ "),
            c if special.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

fn escape_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogm_protocol::{DeviceId, LogLevel};

    fn rec(payload: Payload) -> Record {
        Record {
            device_id: DeviceId::new("esp32-s3_01").unwrap(),
            payload,
        }
    }

    fn line(payload: Payload, host: &str) -> String {
        let mut out = String::new();
        encode(&[rec(payload)], host, &mut out);
        out
    }

    fn measurement(frequency: f64) -> Payload {
        Payload::Measurement(Measurement {
            timestamp: 1_703_123_456_789_123,
            frequency,
            voltage: 230.5,
            current: 10.2,
            power: 2351.0,
        })
    }

    fn log(message: &str) -> Payload {
        Payload::Logs(LogEntry {
            timestamp: 1_703_123_456_789_123,
            level: LogLevel::Warn,
            message: message.to_owned(),
            module: "ade7953".to_owned(),
        })
    }

    #[test]
    fn seed_measurement_in_the_seed_schema() {
        assert_eq!(
            line(measurement(50.02), "pi"),
            "grid_data,device_id=esp32-s3_01,host=pi,source=mqtt \
             frequency=50.02,voltage=230.5,current=10.2,power=2351 1703123456789123\n"
        );
    }

    #[test]
    fn status_integers_booleans_and_optional_fields() {
        let s = Status {
            timestamp: 1_600_000_000_000_000,
            rssi: -45,
            free_heap: 234_567,
            online: Some(false),
            battery: Some(88.5),
            dropped: Some(u64::MAX),
        };
        assert_eq!(
            line(Payload::Status(s.clone()), "pi"),
            "device_status,device_id=esp32-s3_01,host=pi,source=mqtt \
             rssi=-45,free_heap=234567,online=false,battery=88.5,dropped=9223372036854775807i \
             1600000000000000\n"
        );
        let bare = Status {
            online: None,
            battery: None,
            dropped: None,
            ..s
        };
        assert_eq!(
            line(Payload::Status(bare), "pi"),
            "device_status,device_id=esp32-s3_01,host=pi,source=mqtt \
             rssi=-45,free_heap=234567 1600000000000000\n"
        );
    }

    #[test]
    fn floats_parse_back_as_the_same_float() {
        for (v, text) in [
            (1.0, "1"),
            (-0.0, "-0"),
            (0.0, "0"),
            (0.1, "0.1"),
            (50.02, "50.02"),
            (1e308, "1e308"),
            (f64::MAX, "1.7976931348623157e308"),
            (5e-324, "5e-324"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (1e16, "1e16"),
            (9_999_999_999_999_998.0, "9999999999999998"),
            (1e-5, "0.00001"),
            (9.9e-6, "9.9e-6"),
            (-123_456.789, "-123456.789"),
        ] {
            let mut out = String::new();
            write_float(v, &mut out);
            assert_eq!(out, text);
            let back: f64 = out.parse().unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{text}");
        }
    }

    #[test]
    fn non_finite_fields_are_left_out_and_empty_lines_skipped() {
        let s = Status {
            timestamp: 1,
            rssi: 0,
            free_heap: 0,
            online: None,
            battery: Some(f64::NAN),
            dropped: None,
        };
        assert!(!line(Payload::Status(s), "h").contains("battery"));
        assert_eq!(
            line(measurement(f64::INFINITY), "h")
                .matches("frequency")
                .count(),
            0
        );
        let all_bad = Payload::Measurement(Measurement {
            timestamp: 1,
            frequency: f64::NAN,
            voltage: f64::NAN,
            current: f64::INFINITY,
            power: f64::NEG_INFINITY,
        });
        let mut out = String::new();
        encode(&[rec(all_bad), rec(log("ok"))], "h", &mut out);
        assert!(out.starts_with("device_logs,"), "{out}");
        assert_eq!(out.lines().count(), 1);
    }

    #[test]
    fn device_events_are_points_at_their_start() {
        let e = ogm_store::StoredEvent {
            device_id: ogm_protocol::DeviceId::new("dev-1").unwrap(),
            start_us: 1_700_000_000_000_000,
            end_us: None,
            last_us: 1_700_000_002_000_000,
            extreme_hz: 49.75,
            rocof: Some(-0.25),
            frequency: true,
        };
        let mut out = String::new();
        encode_events(
            &[
                e.clone(),
                ogm_store::StoredEvent {
                    end_us: Some(1_700_000_003_000_000),
                    rocof: None,
                    ..e
                },
            ],
            "h",
            &mut out,
        );
        assert_eq!(
            out,
            "grid_events,device_id=dev-1,host=h last_us=1700000002000000i,extreme_hz=49.75,frequency=true,rocof=-0.25 1700000000000000\n\
             grid_events,device_id=dev-1,host=h last_us=1700000002000000i,extreme_hz=49.75,frequency=true,end_us=1700000003000000i 1700000000000000\n"
        );
    }

    #[test]
    fn string_fields_escape_quotes_and_backslashes_and_keep_newlines() {
        assert_eq!(
            line(log(r#"say "hi" \ bye\"#), "h"),
            "device_logs,device_id=esp32-s3_01,host=h,source=mqtt \
             level=\"WARN\",message=\"say \\\"hi\\\" \\\\ bye\\\\\",module=\"ade7953\" 1703123456789123\n"
        );
        let l = line(log("a\nb\r\nc, d=e ${x} 🦀"), "h");
        assert!(
            l.contains("message=\"a\nb\r\nc, d=e ${x} 🦀\""),
            "newlines stay inside the quotes: {l:?}"
        );
        assert!(l.ends_with(" 1703123456789123\n"));
    }

    #[test]
    fn tags_escape_commas_equals_and_spaces() {
        let l = line(log("m"), "rack 1,row=2");
        assert!(
            l.starts_with("device_logs,device_id=esp32-s3_01,host=rack\\ 1\\,row\\=2,source=mqtt "),
            "{l}"
        );
        let l = line(log("m"), "bad\nhost\\");
        assert!(l.starts_with("device_logs,device_id=esp32-s3_01,host=bad\\ host\\\\,source"));
        assert!(!l[..l.find(' ').unwrap()].contains('\n'));
        let l = line(log("m"), "");
        assert!(
            l.starts_with("device_logs,device_id=esp32-s3_01,source=mqtt "),
            "{l}"
        );
    }

    #[test]
    fn measurement_names_and_field_keys_escape() {
        let mut out = String::new();
        escape_measurement("a b,c=d", &mut out);
        assert_eq!(out, "a\\ b\\,c=d");
        out.clear();
        escape_key("a b,c=d", &mut out);
        assert_eq!(out, "a\\ b\\,c\\=d");
        out.clear();
        escape_key("a\\,b\\c", &mut out);
        assert_eq!(
            out, "a\\\\\\,b\\c",
            "a backslash before an escaped comma is doubled"
        );
    }

    #[test]
    fn negative_and_extreme_timestamps_are_plain_integers() {
        let mut p = measurement(50.0);
        if let Payload::Measurement(m) = &mut p {
            m.timestamp = -1;
        }
        assert!(line(p, "h").ends_with(" -1\n"));
    }
}
