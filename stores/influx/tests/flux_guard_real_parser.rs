//! The Flux proxy's guard (`flux_guard::check`) on syntax trees from the real Flux parser
//! (influxdata's libflux, as WebAssembly under Node: `support/flux_parser.rs`), not on trees
//! written by hand: every way around the old token-based guard is refused, and the queries
//! people and dashboards write are accepted. End to end through the store:
//! `influxdb2_stand_in.rs`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use ogm_protocol::{DeviceId, LogLevel};
use ogm_store::{Field, HistoryQuery, LogQuery};
use ogm_store_influx::flux;
use ogm_store_influx::flux_guard::{Policy, check};
use support::flux_parser;

const B: &str = "open_grid_monitor";
const DAY_NS: i128 = 86_400 * 1_000_000_000;
/// 2024-01-15T00:00:00Z: "now" for the checks.
const NOW_NS: i128 = 1_705_276_800 * 1_000_000_000;
const NOW_US: i64 = 1_705_276_800 * 1_000_000;

fn policy() -> Policy<'static> {
    Policy {
        bucket: B,
        max_range_ns: Some(31 * DAY_NS),
        now_ns: NOW_NS,
    }
}

fn verdict(query: &str) -> Result<(), String> {
    let ast = flux_parser::parse(query)
        .unwrap_or_else(|e| panic!("the real parser refused a test query ({e}):\n{query}"));
    check(&ast, &policy())
}

fn accepted(query: &str) {
    if let Err(e) = verdict(query) {
        panic!("should be accepted: {e}\n{query}");
    }
}

fn refused(query: &str, because: &str) {
    match verdict(query) {
        Ok(()) => panic!("should be refused ({because}):\n{query}"),
        Err(e) => assert!(
            e.starts_with("Flux query refused: ") && e.contains(because),
            "{e:?} should mention {because:?}\n{query}"
        ),
    }
}

#[test]
fn shorthand_arguments_cannot_name_another_bucket_or_server() {
    // `from(bucket)` is `from(bucket: bucket)`, whatever `bucket` was bound to.
    refused(
        "bucket = \"_monitoring\"\nfrom(bucket) |> range(start: -1h)",
        "`from(bucket)`: write the bucket as a string",
    );
    refused(
        "bucket=\"_monitoring\" from(bucket)",
        "piped straight into `range(start: ...)`",
    );
    refused(
        "bucket = \"open_grid_monitor\" host = \"http://elsewhere:8086\" token = \"t\" org = \"o\"\n\
         from(bucket, host, token, org) |> range(start: -1h)",
        "`from(bucket)`",
    );
    refused(
        "from(bucket: \"open_grid_monitor\", host, token, org) |> range(start: -1h)",
        "`host:` is not allowed",
    );
    // A shorthand argument elsewhere is a reference and checked as one.
    refused(
        "from(bucket: \"open_grid_monitor\") |> range(start: -1h) |> to(bucket: \"x\")",
        "`to` is neither",
    );
    refused("x = {buckets}", "`buckets` is neither");
}

#[test]
fn default_parameter_values_cannot_name_another_bucket() {
    refused(
        "f = (bucket=\"_tasks\") => from(bucket) |> range(start: -1h)\nf()",
        "`from(bucket)`",
    );
    refused(
        "f = (b=\"_tasks\") => from(bucket: b) |> range(start: -1h)\nf()",
        "must be the string \"open_grid_monitor\" itself, not an expression",
    );
    refused(
        "f = (t=from(bucket: \"_tasks\") |> range(start: -1h)) => t\nf()",
        "bucket \"_tasks\" cannot be read here",
    );
    refused(
        "f = (s=-10y) => from(bucket: \"open_grid_monitor\") |> range(start: s)\nf()",
        "a `range()` bound must be a time",
    );
}

#[test]
fn escapes_in_names_and_keys_are_read_as_the_parser_decodes_them() {
    refused(
        r#"import "experimental" experimental["t\x6f"](bucket: "x")"#,
        "package \"experimental\" may not be imported",
    );
    refused(
        r#"experimental["t\x6f"](bucket: "x")"#,
        "`experimental` is neither",
    );
    refused(
        r#"from(bucket: "open_grid_monitor", "h\x6fst": "http://elsewhere:8086") |> range(start: -1h)"#,
        "`host:` is not allowed",
    );
    refused(
        r#"from("b\x75cket": "_m\x6fnitoring") |> range(start: -1h)"#,
        "bucket \"_monitoring\" cannot be read here",
    );
    refused(
        r#"import "strings" x = strings["rep\x65at"](v: "x", i: 1000000000)"#,
        "`strings.repeat` is not among the members",
    );
    // The same bucket spelled with an escape is the same bucket.
    accepted(r#"from(bucket: "open_grid_m\x6fnitor") |> range(start: -1h)"#);
}

#[test]
fn code_the_old_lexer_could_mistake_for_a_string_or_regex_is_seen() {
    // Whatever a hand-written lexer makes of `/` and `"`, the parser's tree holds the call.
    refused(
        "from(bucket: \"open_grid_monitor\") |> range(start: -1h)\n  \
         |> filter(fn: (r) => r.a =~ /\"/)\n  |> to(bucket: \"other\") // \"",
        "`to` is neither",
    );
    refused(
        "x = \"${ /\"/ }\"\ny = to(bucket: \"other\") // \"",
        "`to` is neither",
    );
    refused("x = \"${string(v: buckets())}\"", "`buckets` is neither");
    refused(
        "f = () => { return 1 }\n/\"/\nto(bucket: \"x\") // \"",
        "`x` is neither",
    );
}

#[test]
fn writes_listings_and_outside_reach_are_refused() {
    for (query, because) in [
        ("buckets()", "`buckets` is neither"),
        ("write = to", "`to` is neither"),
        ("die(msg: \"x\")", "`die` is neither"),
        (
            "x = linearBins(start: 0.0, width: 1.0, count: 1000000000)",
            "`linearBins` is neither",
        ),
        (
            "from(bucketID: \"0123456789abcdef\") |> range(start: -1h)",
            "`bucketID:` is not allowed",
        ),
        (
            "from(bucket: \"open_grid_monitor\", org: \"other\") |> range(start: -1h)",
            "`org:` is not allowed",
        ),
        (
            "from(bucket: \"_monitoring\") |> range(start: -1h)",
            "\"_monitoring\" cannot be read",
        ),
        (
            "from(bucket: \"open_\" + \"grid_monitor\") |> range(start: -1h)",
            "not an expression",
        ),
        (
            "b = \"open_grid_monitor\"\nfrom(bucket: \"${b}\") |> range(start: -1h)",
            "not an expression",
        ),
        (
            "import \"http\" http.post(url: \"http://x\")",
            "\"http\" may not be imported",
        ),
        (
            "import \"sql\" sql.from(driverName: \"postgres\", dataSourceName: \"\", query: \"\")",
            "\"sql\"",
        ),
        ("import \"csv\" csv.from(file: \"/etc/passwd\")", "\"csv\""),
        (
            "import \"socket\" socket.from(url: \"tcp://x:1\")",
            "\"socket\"",
        ),
        ("import \"array\" array.from(rows: [{a: 1}])", "\"array\""),
        (
            "import \"experimental/http\" http.get(url: \"http://x\")",
            "\"experimental/http\"",
        ),
        (
            "import \"influxdata/influxdb\" influxdb.wideTo(bucket: \"x\")",
            "\"influxdata/influxdb\"",
        ),
        (
            "import \"influxdata/influxdb/v1\" v1.databases()",
            "\"influxdata/influxdb/v1\"",
        ),
        (
            "import \"influxdata/influxdb/secrets\" secrets.get(key: \"k\")",
            "secrets",
        ),
        (
            "import \"experimental/mqtt\" mqtt.to(broker: \"tcp://x\", topic: \"t\")",
            "mqtt",
        ),
        ("import h \"http\" h.post(url: \"http://x\")", "\"http\""),
        (
            "import s \"strings\" s = 1",
            "`s` cannot be defined here: it names the imported package",
        ),
        (
            "import \"strings\" x = strings",
            "package `strings` can only be used as",
        ),
    ] {
        refused(query, because);
    }
}

#[test]
fn the_meaning_of_allowed_names_cannot_be_changed() {
    refused(
        "range = (tables=<-, start) => tables\nfrom(bucket: \"open_grid_monitor\") |> range(start: -1h)",
        "`range` cannot be defined here",
    );
    refused("f = (from) => from", "`from` cannot be defined here");
    refused("true = false", "`true` cannot be defined here");
    refused(
        "option now = () => 2000-01-01T00:00:00Z\nfrom(bucket: \"open_grid_monitor\") |> range(start: -1h)",
        "`option` statements are not allowed",
    );
    refused(
        "f = from\nf(bucket: \"_tasks\") |> range(start: -1h)",
        "`from` must be called directly",
    );
    refused(
        "(from)(bucket: \"_tasks\") |> range(start: -1h)",
        "only named functions may be called",
    );
    refused("@edition(\"2022.1\")\nx = 1", "attributes");
    refused("package main\nx = 1", "`package` clause");
    refused("testcase t { x = 1 }", "TestCaseStatement is not allowed");
    refused("builtin foo : int", "BuiltinStatement is not allowed");
}

#[test]
fn every_from_needs_a_bounded_range() {
    refused("from(bucket: \"open_grid_monitor\")", "piped straight into");
    refused(
        "from(bucket: \"open_grid_monitor\") |> filter(fn: (r) => true) |> range(start: -1h)",
        "piped straight into `range(start: ...)`",
    );
    refused(
        "from(bucket: \"open_grid_monitor\") |> range(stop: -1h)",
        "`range()` needs `start:`",
    );
    refused(
        "from(bucket: \"open_grid_monitor\") |> range(start: 0)",
        "a `range()` bound must be a time",
    );
    refused(
        "from(bucket: \"open_grid_monitor\") |> range(start: -32d)",
        "at most 31d here; this one spans up to 32d",
    );
    refused(
        "from(bucket: \"open_grid_monitor\") |> range(start: -1y)",
        "spans up to 366d",
    );
    refused(
        "from(bucket: \"open_grid_monitor\") |> range(start: 2023-01-01T00:00:00Z, stop: 2024-01-01T00:00:00Z)",
        "spans up to 365d",
    );
    refused(
        "from(bucket: \"open_grid_monitor\") |> range(start: -1h, stop: -2h)",
        "stops before it starts",
    );
    refused(
        "start = -1h\nfrom(bucket: \"open_grid_monitor\") |> range(start)",
        "`range(start)`: write the time itself",
    );
    refused(
        "data = from(bucket: \"open_grid_monitor\") |> range(start: -1h)\n\
         union(tables: [data, from(bucket: \"open_grid_monitor\")])",
        "piped straight into",
    );
}

#[test]
fn queries_people_and_dashboards_write_are_accepted() {
    // README's example.
    accepted(
        r#"from(bucket: "open_grid_monitor")
  |> range(start: -1h)
  |> filter(fn: (r) => r._measurement == "grid_data" and r._field == "frequency")
  |> aggregateWindow(every: 1m, fn: mean, createEmpty: false)
  |> yield(name: "mean")"#,
    );
    // What Grafana's query builder writes, with its time range and window filled in.
    accepted(
        r#"from(bucket: "open_grid_monitor")
  |> range(start: 2024-01-14T00:00:00Z, stop: 2024-01-15T00:00:00Z)
  |> filter(fn: (r) => r["_measurement"] == "grid_data")
  |> filter(fn: (r) => r["_field"] == "frequency" or r["_field"] == "voltage")
  |> filter(fn: (r) => r["device_id"] =~ /^esp/ and r["host"] != "lab")
  |> aggregateWindow(every: 10s, fn: mean, createEmpty: false)
  |> yield(name: "mean")"#,
    );
    accepted(
        r#"import "math"
import s "strings"
// Deviation from nominal, in mHz, per device, for the last week.
nominal = 50.0
p99 = (column="_value", tables=<-) => tables |> quantile(q: 0.99, column)
data = from(bucket: "open_grid_monitor")
  |> range(start: -7d, stop: now())
  |> filter(fn: (r) => r._measurement == "grid_data" and r._field == "frequency")
  |> filter(fn: (r) => exists r.device_id and s.hasPrefix(v: r.device_id, prefix: "esp"))
  |> map(fn: (r) => ({r with _value: math.abs(x: r._value - nominal) * 1000.0}))
data |> aggregateWindow(every: 1h, fn: p99, createEmpty: false) |> yield(name: "p99")
data |> aggregateWindow(every: 1h, fn: max) |> fill(usePrevious: true) |> yield(name: "max")"#,
    );
    accepted(
        r#"a = from(bucket: "open_grid_monitor") |> range(start: -1mo) |> filter(fn: (r) => r._field == "power")
b = from(bucket: "open_grid_monitor") |> range(start: -2d, stop: -1d) |> timeShift(duration: 1d)
union(tables: [a, b])
  |> group(columns: ["device_id"])
  |> sort(columns: ["_time"], desc: true)
  |> limit(n: 100)
  |> difference(nonNegative: false)
  |> derivative(unit: 1s)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> map(fn: (r) => {
      level = if r.power > 1000.0 then "high" else "low"
      return {r with level: level, note: "${level}: ${string(v: r.power)}"}
  })
  |> keep(columns: ["_time", "device_id", "level", "note"])"#,
    );
    accepted(
        r#"latest = from(bucket: "open_grid_monitor")
  |> range(start: 2024-01-14T12:00:00.5+01:00)
  |> filter(fn: (r) => r._measurement == "device_status" and r._field == "rssi")
  |> last()
  |> findRecord(fn: (key) => true, idx: 0)
x = [latest._value, float(v: 1), -1.5]
y = ["a": 1, "b": 2]"#,
    );
}

#[test]
fn the_stores_own_queries_are_accepted() {
    let device = DeviceId::new("esp-1").unwrap();
    let history = HistoryQuery::new(
        device.clone(),
        Field::FreeHeap,
        NOW_US - 86_400_000_000,
        NOW_US,
        1000,
    )
    .expect("a valid history query");
    accepted(&flux::history_count(B, &history));
    accepted(&flux::history_raw(B, &history));
    accepted(&flux::history_aggregated(B, &history, 4_000_000));
    accepted(&flux::logs(
        B,
        &LogQuery {
            device_id: Some(device.clone()),
            min_level: Some(LogLevel::Warn),
            start_us: NOW_US - 7 * 86_400_000_000,
            stop_us: NOW_US,
            limit: 200,
            max_bytes: 1 << 20,
        },
    ));
    accepted(&flux::devices(B));
    accepted(&flux::export_page(
        B,
        &device,
        (NOW_NS - 3_600_000_000_000) as i64,
        NOW_NS as i64,
        5000,
    ));
}
