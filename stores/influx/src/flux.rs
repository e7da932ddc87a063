//! The Flux the store sends: pure functions from typed queries to query text. No I/O here.
//!
//! InfluxDB OSS 2 does not support the `params` field of `/api/v2/query` (parameterized
//! queries are an InfluxDB Cloud feature), so values are written into the text as literals,
//! each of a kind that cannot carry code: device ids are validated by `DeviceId` (`A-Z a-z 0-9
//! _ -`), fields come from the `Field` enum, measurement names are constants, times are
//! RFC 3339 literals built from integers, counts and durations are integers, and the one
//! free-form value, the configured bucket name, goes through [`string_literal`], which escapes
//! `\`, `"`, `$` and control characters.

use std::fmt::Write as _;

use ogm_protocol::{DeviceId, LogLevel};
use ogm_store::{Field, HistoryQuery, LogQuery};

use crate::line_protocol::{DEVICE_LOGS, DEVICE_STATUS, GRID_DATA};

/// The four fields of `grid_data`, as an export reads them.
pub const GRID_FIELDS: [&str; 4] = ["frequency", "voltage", "current", "power"];

/// A Flux string literal holding exactly `s`.
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                // Flux has no \u escape; a control character in a bucket name is not
                // meaningful, so it is dropped rather than written raw.
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Flux time literal for `ns` since the epoch (every i64 is inside Flux's time range).
pub fn time_literal_ns(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = u32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0);
    match chrono::DateTime::from_timestamp(secs, nanos) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        // Unreachable for an i64 of ns; the epoch is a harmless fallback.
        None => "1970-01-01T00:00:00Z".to_owned(),
    }
}

/// A Flux time literal for `us` since the epoch, clamped to Flux's time range.
pub fn time_literal_us(us: i64) -> String {
    time_literal_ns(us.saturating_mul(1_000))
}

fn measurement_of(field: Field) -> &'static str {
    if field.is_measurement() {
        GRID_DATA
    } else {
        DEVICE_STATUS
    }
}

/// `from |> range |> filter` for one field of one device, merged into one table. `toFloat()`
/// first: this store and the seed's Telegraf write `rssi` and `free_heap` as floats, but a
/// bucket may hold integers from other writers, and `group()` refuses to merge columns of
/// different types.
fn history_source(bucket: &str, q: &HistoryQuery) -> String {
    format!(
        "from(bucket: {bucket})\n  \
         |> range(start: {start}, stop: {stop})\n  \
         |> filter(fn: (r) => r._measurement == {m} and r._field == {f} and r.device_id == {d})\n  \
         |> toFloat()\n  \
         |> group()",
        bucket = string_literal(bucket),
        start = time_literal_us(q.start_us()),
        stop = time_literal_us(q.stop_us()),
        m = string_literal(measurement_of(q.field())),
        f = string_literal(q.field().as_str()),
        d = string_literal(q.device_id().as_str()),
    )
}

/// How many raw points a history request covers.
pub fn history_count(bucket: &str, q: &HistoryQuery) -> String {
    format!("{}\n  |> count()\n", history_source(bucket, q))
}

/// The raw points of a history request, oldest first, at most `max_points`.
pub fn history_raw(bucket: &str, q: &HistoryQuery) -> String {
    format!(
        "{}\n  |> sort(columns: [\"_time\"])\n  |> limit(n: {})\n  |> keep(columns: [\"_time\", \"_value\"])\n",
        history_source(bucket, q),
        q.max_points()
    )
}

/// Min, mean, max and count per epoch-aligned window of `interval_us`, as four results named
/// `min`, `mean`, `max` and `count`; `_time` is the window start.
pub fn history_aggregated(bucket: &str, q: &HistoryQuery, interval_us: i64) -> String {
    let mut out = format!("data = {}\n", history_source(bucket, q));
    for f in ["min", "mean", "max", "count"] {
        let _ = write!(
            out,
            "data\n  \
             |> aggregateWindow(every: {interval_us}us, fn: {f}, createEmpty: false, timeSrc: \"_start\")\n  \
             |> keep(columns: [\"_time\", \"_value\"])\n  \
             |> yield(name: \"{f}\")\n"
        );
    }
    out
}

/// Every spelling [`LogLevel::parse`] accepts for `level`, upper case.
fn level_spellings(level: LogLevel) -> &'static [&'static str] {
    match level {
        LogLevel::Trace => &["TRACE", "VERBOSE"],
        LogLevel::Debug => &["DEBUG"],
        LogLevel::Info => &["INFO"],
        LogLevel::Warn => &["WARN", "WARNING"],
        LogLevel::Error => &["ERROR", "ERR"],
    }
}

/// Log entries, newest first.
pub fn logs(bucket: &str, q: &LogQuery) -> String {
    let device = q
        .device_id
        .as_ref()
        .map(|d| format!(" and r.device_id == {}", string_literal(d.as_str())))
        .unwrap_or_default();
    let mut out = format!(
        "import \"strings\"\n\
         from(bucket: {bucket})\n  \
         |> range(start: {start}, stop: {stop})\n  \
         |> filter(fn: (r) => r._measurement == {m}{device})\n  \
         |> filter(fn: (r) => r._field == \"level\" or r._field == \"message\" or r._field == \"module\")\n  \
         |> pivot(rowKey: [\"_time\"], columnKey: [\"_field\"], valueColumn: \"_value\")\n  \
         |> group()\n",
        bucket = string_literal(bucket),
        start = time_literal_us(q.start_us),
        stop = time_literal_us(q.stop_us),
        m = string_literal(DEVICE_LOGS),
    );
    if let Some(min) = q.min_level {
        let set: Vec<String> = LogLevel::ALL
            .into_iter()
            .filter(|l| *l >= min)
            .flat_map(|l| level_spellings(l).iter().map(|s| string_literal(s)))
            .collect();
        let _ = writeln!(
            out,
            "  |> filter(fn: (r) => exists r.level and contains(value: strings.toUpper(v: r.level), set: [{}]))",
            set.join(", ")
        );
    }
    let _ = write!(
        out,
        "  |> sort(columns: [\"_time\"], desc: true)\n  \
         |> limit(n: {})\n  \
         |> keep(columns: [\"_time\", \"device_id\", \"level\", \"message\", \"module\"])\n",
        q.limit
    );
    out
}

/// The longest device event [`events`] finds when it began before the range.
pub const MAX_EVENT_SPAN_US: i64 = 86_400_000_000;

/// Device events overlapping the range (begun before `stop`, not ended before `start`),
/// newest start first.
pub fn events(bucket: &str, q: &ogm_store::EventQuery) -> String {
    let device = q
        .device_id
        .as_ref()
        .map(|d| format!(" and r.device_id == {}", string_literal(d.as_str())))
        .unwrap_or_default();
    format!(
        "from(bucket: {bucket})\n  \
         |> range(start: {start}, stop: {stop})\n  \
         |> filter(fn: (r) => r._measurement == {m}{device})\n  \
         |> pivot(rowKey: [\"_time\"], columnKey: [\"_field\"], valueColumn: \"_value\")\n  \
         |> filter(fn: (r) => not exists r.end_us or r.end_us >= {from})\n  \
         |> group()\n  \
         |> sort(columns: [\"_time\"], desc: true)\n  \
         |> limit(n: {limit})\n",
        bucket = string_literal(bucket),
        start = time_literal_us(q.start_us.saturating_sub(MAX_EVENT_SPAN_US)),
        stop = time_literal_us(q.stop_us),
        m = string_literal(crate::line_protocol::GRID_EVENTS),
        from = q.start_us,
        limit = q.limit,
    )
}

/// How far back [`devices`] looks.
pub const DEVICES_RANGE: &str = "-30d";

/// The newest point of every field of every series of the three measurements in the last 30
/// days (`last()` per series is pushed down to storage; the newest per device is picked by the
/// caller, since one device may have several series, one per `host`).
pub fn devices(bucket: &str) -> String {
    format!(
        "from(bucket: {bucket})\n  \
         |> range(start: {DEVICES_RANGE})\n  \
         |> filter(fn: (r) => r._measurement == {grid} or r._measurement == {status} or (r._measurement == {logs} and r._field == \"level\"))\n  \
         |> last()\n",
        bucket = string_literal(bucket),
        grid = string_literal(GRID_DATA),
        status = string_literal(DEVICE_STATUS),
        logs = string_literal(DEVICE_LOGS),
    )
}

/// One page of an export: at most `limit` points per series (one series per field and `host`)
/// from `start_ns` on, each series in time order.
pub fn export_page(
    bucket: &str,
    device: &DeviceId,
    start_ns: i64,
    stop_ns: i64,
    limit: usize,
) -> String {
    let fields: Vec<String> = GRID_FIELDS
        .iter()
        .map(|f| format!("r._field == {}", string_literal(f)))
        .collect();
    format!(
        "from(bucket: {bucket})\n  \
         |> range(start: {start}, stop: {stop})\n  \
         |> filter(fn: (r) => r._measurement == {m} and r.device_id == {d})\n  \
         |> filter(fn: (r) => {fields})\n  \
         |> limit(n: {limit})\n  \
         |> drop(columns: [\"_start\", \"_stop\"])\n",
        bucket = string_literal(bucket),
        start = time_literal_ns(start_ns),
        stop = time_literal_ns(stop_ns),
        m = string_literal(GRID_DATA),
        d = string_literal(device.as_str()),
        fields = fields.join(" or "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hq(field: Field) -> HistoryQuery {
        HistoryQuery::new(
            DeviceId::new("esp-1").unwrap(),
            field,
            1_703_123_456_789_123,
            1_703_127_056_789_123,
            1000,
        )
        .expect("a valid history query")
    }

    #[test]
    fn string_literals_cannot_break_out() {
        assert_eq!(string_literal("open_grid_monitor"), "\"open_grid_monitor\"");
        assert_eq!(
            string_literal("a\"b\\c${d}\n\u{1}"),
            "\"a\\\"b\\\\c\\${d}\\n\""
        );
    }

    #[test]
    fn time_literals() {
        assert_eq!(time_literal_us(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            time_literal_us(1_703_123_456_789_123),
            "2023-12-21T01:50:56.789123000Z"
        );
        assert_eq!(time_literal_ns(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(time_literal_us(i64::MAX), "2262-04-11T23:47:16.854775807Z");
        assert_eq!(time_literal_us(i64::MIN), "1677-09-21T00:12:43.145224192Z");
    }

    #[test]
    fn history_queries_name_the_right_measurement_and_window() {
        let q = hq(Field::Frequency);
        let count = history_count("open_grid_monitor", &q);
        assert!(count.starts_with("from(bucket: \"open_grid_monitor\")"));
        assert!(count.contains(
            "range(start: 2023-12-21T01:50:56.789123000Z, stop: 2023-12-21T02:50:56.789123000Z)"
        ));
        assert!(count.contains(
            "r._measurement == \"grid_data\" and r._field == \"frequency\" and r.device_id == \"esp-1\""
        ));
        assert!(count.ends_with("|> count()\n"));
        let q = hq(Field::FreeHeap);
        let agg = history_aggregated("b", &q, 4_000_000);
        assert!(agg.contains("r._measurement == \"device_status\" and r._field == \"free_heap\""));
        for f in ["min", "mean", "max", "count"] {
            assert!(agg.contains(&format!(
                "aggregateWindow(every: 4000000us, fn: {f}, createEmpty: false, timeSrc: \"_start\")"
            )));
            assert!(agg.contains(&format!("yield(name: \"{f}\")")));
        }
        assert!(history_raw("b", &q).contains("limit(n: 1000)"));
    }

    #[test]
    fn log_queries_filter_by_device_and_level() {
        let q = LogQuery {
            device_id: Some(DeviceId::new("esp-1").unwrap()),
            min_level: Some(LogLevel::Warn),
            start_us: 0,
            stop_us: 1,
            limit: 50,
            max_bytes: usize::MAX,
        };
        let text = logs("b", &q);
        assert!(text.contains("r._measurement == \"device_logs\" and r.device_id == \"esp-1\""));
        assert!(text.contains("set: [\"WARN\", \"WARNING\", \"ERROR\", \"ERR\"]"));
        assert!(text.contains("sort(columns: [\"_time\"], desc: true)"));
        assert!(text.contains("limit(n: 50)"));
        let all = logs(
            "b",
            &LogQuery {
                device_id: None,
                min_level: None,
                ..q
            },
        );
        assert!(!all.contains("device_id ==") && !all.contains("contains("));
    }

    #[test]
    fn export_pages_limit_per_series() {
        let d = DeviceId::new("esp-1").unwrap();
        let text = export_page("b", &d, 5, 10, 5000);
        assert!(text.contains("range(start: 1970-01-01T00:00:00.000000005Z"));
        assert!(text.contains("limit(n: 5000)"));
        assert!(text.contains("r._field == \"power\""));
    }
}
