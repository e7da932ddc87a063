//! From parsed annotated CSV to the store's typed answers. Pure functions; each reads the
//! answer of the matching query in [`crate::flux`].
//!
//! Values are read leniently: numbers as `f64` whatever their `#datatype` (the seed's Telegraf
//! wrote every JSON number as a float, and so does this store, but a bucket may hold integers
//! written by other tools), and rows missing what they need are skipped rather than failing
//! the whole answer.

use std::collections::{BTreeMap, HashMap};

use ogm_protocol::{DeviceId, LogLevel, Measurement, Status};
use ogm_store::{Bucket, DeviceSummary, LogRow, bucket_start};

use crate::annotated_csv::Section;
use crate::line_protocol::{DEVICE_STATUS, GRID_DATA};

fn us(ns: i64) -> i64 {
    ns.div_euclid(1_000)
}

/// The total of `_value` over every row (a `count()` answer).
pub(crate) fn count(sections: &[Section]) -> u64 {
    sections
        .iter()
        .flat_map(Section::rows)
        .filter_map(|r| r.f64("_value"))
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(|v| v as u64)
        .sum()
}

/// Raw points, oldest first, one per timestamp, at most `max_points`.
pub(crate) fn raw_points(sections: &[Section], max_points: usize) -> Vec<Bucket> {
    let mut points: Vec<Bucket> = sections
        .iter()
        .flat_map(Section::rows)
        .filter_map(|r| {
            let t = us(r.time_ns("_time")?);
            let v = r.f64("_value")?;
            Some(Bucket {
                t,
                min: v,
                mean: v,
                max: v,
                count: 1,
            })
        })
        .collect();
    points.sort_by_key(|b| b.t);
    points.dedup_by_key(|b| b.t);
    points.truncate(max_points);
    points
}

/// Buckets from the four results `min`, `mean`, `max` and `count`, keyed by the epoch-aligned
/// start of their window; a bucket missing any of the four, or empty, is left out.
pub(crate) fn aggregated(sections: &[Section], interval_us: i64, max_points: usize) -> Vec<Bucket> {
    #[derive(Default)]
    struct Parts {
        min: Option<f64>,
        mean: Option<f64>,
        max: Option<f64>,
        count: Option<f64>,
    }
    let mut by_start: BTreeMap<i64, Parts> = BTreeMap::new();
    for row in sections.iter().flat_map(Section::rows) {
        let (Some(result), Some(t), Some(v)) =
            (row.get("result"), row.time_ns("_time"), row.f64("_value"))
        else {
            continue;
        };
        let parts = by_start
            .entry(bucket_start(us(t), interval_us.max(1)))
            .or_default();
        match result {
            "min" => parts.min = Some(v),
            "mean" => parts.mean = Some(v),
            "max" => parts.max = Some(v),
            "count" => parts.count = Some(v),
            _ => {}
        }
    }
    by_start
        .into_iter()
        .filter_map(|(t, p)| {
            let count = p.count.filter(|c| c.is_finite() && *c >= 1.0)? as u64;
            Some(Bucket {
                t,
                min: p.min?,
                mean: p.mean?,
                max: p.max?,
                count,
            })
        })
        .take(max_points)
        .collect()
}

/// Log rows, newest first.
pub(crate) fn log_rows(sections: &[Section]) -> Vec<LogRow> {
    let mut rows: Vec<LogRow> = sections
        .iter()
        .flat_map(Section::rows)
        .filter_map(|r| {
            Some(LogRow {
                t: us(r.time_ns("_time")?),
                device_id: DeviceId::new(r.text("device_id")?).ok()?,
                level: LogLevel::parse(r.text("level")?)?,
                message: r.get("message").unwrap_or_default().to_owned(),
                module: r.get("module").unwrap_or_default().to_owned(),
            })
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.t));
    rows
}

/// Stored device events from the pivoted rows of [`crate::flux::events`], newest first.
pub(crate) fn stored_events(sections: &[Section]) -> Vec<ogm_store::StoredEvent> {
    let int = |r: &crate::annotated_csv::Row<'_>, name: &str| {
        r.text(name).and_then(|v| v.parse::<i64>().ok())
    };
    let mut out: Vec<ogm_store::StoredEvent> = sections
        .iter()
        .flat_map(Section::rows)
        .filter_map(|r| {
            Some(ogm_store::StoredEvent {
                device_id: DeviceId::new(r.text("device_id")?).ok()?,
                start_us: us(r.time_ns("_time")?),
                end_us: int(&r, "end_us"),
                last_us: int(&r, "last_us")?,
                extreme_hz: r.f64("extreme_hz").filter(|f| f.is_finite())?,
                rocof: r.f64("rocof").filter(|f| f.is_finite()),
                frequency: r.text("frequency") == Some("true"),
            })
        })
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.start_us));
    out
}

/// Device summaries, by device id, from the newest point of each field of each series.
pub(crate) fn device_summaries(sections: &[Section]) -> Vec<DeviceSummary> {
    /// The newest (time ns, value) per (measurement, field).
    type Newest<'a> = HashMap<(&'a str, &'a str), (i64, &'a str)>;
    let mut devices: BTreeMap<DeviceId, Newest> = BTreeMap::new();
    for row in sections.iter().flat_map(Section::rows) {
        let (Some(id), Some(m), Some(f), Some(t)) = (
            row.text("device_id"),
            row.text("_measurement"),
            row.text("_field"),
            row.time_ns("_time"),
        ) else {
            continue;
        };
        let Ok(id) = DeviceId::new(id) else { continue };
        let value = row.get("_value").unwrap_or_default();
        let newest = devices.entry(id).or_default();
        let slot = newest.entry((m, f)).or_insert((t, value));
        if t > slot.0 {
            *slot = (t, value);
        }
    }
    devices
        .into_iter()
        .filter_map(|(device_id, newest)| {
            let last_seen = us(newest.values().map(|(t, _)| *t).max()?);
            Some(DeviceSummary {
                device_id,
                last_seen,
                last_measurement: last_measurement(&newest),
                last_status: last_status(&newest),
            })
        })
        .collect()
}

fn last_measurement(newest: &HashMap<(&str, &str), (i64, &str)>) -> Option<Measurement> {
    let get = |f: &str| {
        let (t, v) = newest.get(&(GRID_DATA, f))?;
        Some((*t, v.parse::<f64>().ok()?))
    };
    let [fr, vo, cu, po] = ["frequency", "voltage", "current", "power"].map(get);
    let (fr, vo, cu, po) = (fr?, vo?, cu?, po?);
    let t = fr.0.max(vo.0).max(cu.0).max(po.0);
    Some(Measurement {
        timestamp: us(t),
        frequency: fr.1,
        voltage: vo.1,
        current: cu.1,
        power: po.1,
    })
}

fn last_status(newest: &HashMap<(&str, &str), (i64, &str)>) -> Option<Status> {
    let get = |f: &str| newest.get(&(DEVICE_STATUS, f)).copied();
    let (t_rssi, rssi) = get("rssi")?;
    let (t_heap, heap) = get("free_heap")?;
    let t = t_rssi.max(t_heap);
    // Optional fields belong to this status only if they came with it.
    let same = |f: &str| get(f).filter(|(ft, _)| *ft == t).map(|(_, v)| v);
    Some(Status {
        timestamp: us(t),
        rssi: i32::try_from(parse_integer(rssi)?).ok()?,
        free_heap: u64::try_from(parse_integer(heap)?).ok()?,
        online: same("online").and_then(|v| v.parse().ok()),
        battery: same("battery").and_then(|v| v.parse().ok()),
        dropped: same("dropped")
            .and_then(parse_integer)
            .and_then(|v| u64::try_from(v).ok()),
    })
}

/// An integer written as `long`, `unsignedLong` or a whole `double`.
fn parse_integer(s: &str) -> Option<i128> {
    if let Ok(v) = s.parse::<i128>() {
        return Some(v);
    }
    let f: f64 = s.parse().ok()?;
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30).then_some(f as i128)
}

/// One export page (at most `limit` rows per Flux table): the complete measurements that are
/// safe to emit, oldest first, and where the next page starts (ns), if there is one.
///
/// A table that came back with `limit` rows may have more; every row up to the earliest last
/// time among such tables is complete, the rest is read again by the next page.
pub(crate) fn export_page(sections: &[Section], limit: usize) -> (Vec<Measurement>, Option<i64>) {
    // Rows per table and the last time of each, keyed by section and `table` id.
    let mut tables: HashMap<(usize, &str), (usize, i64)> = HashMap::new();
    for (i, s) in sections.iter().enumerate() {
        for row in s.rows() {
            let Some(t) = row.time_ns("_time") else {
                continue;
            };
            let e = tables
                .entry((i, row.get("table").unwrap_or_default()))
                .or_insert((0, t));
            e.0 += 1;
            e.1 = e.1.max(t);
        }
    }
    let boundary = tables
        .values()
        .filter(|(n, _)| *n >= limit)
        .map(|(_, t)| *t)
        .min();
    #[derive(Default)]
    struct Parts([Option<f64>; 4]);
    let mut by_time: BTreeMap<i64, Parts> = BTreeMap::new();
    for row in sections.iter().flat_map(Section::rows) {
        let (Some(t), Some(f), Some(v)) =
            (row.time_ns("_time"), row.text("_field"), row.f64("_value"))
        else {
            continue;
        };
        if boundary.is_some_and(|b| t > b) {
            continue;
        }
        let Some(i) = crate::flux::GRID_FIELDS.iter().position(|g| *g == f) else {
            continue;
        };
        by_time.entry(t).or_default().0[i] = Some(v);
    }
    let measurements = by_time
        .into_iter()
        .filter_map(|(t, Parts([fr, vo, cu, po]))| {
            Some(Measurement {
                timestamp: us(t),
                frequency: fr?,
                voltage: vo?,
                current: cu?,
                power: po?,
            })
        })
        .collect();
    (measurements, boundary.map(|b| b.saturating_add(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotated_csv::parse;

    const T0: &str = "2023-12-21T01:50:56.789123Z";

    #[test]
    fn counts_and_raw_points() {
        let csv = "#datatype,string,long,long\r\n#group,false,false,false\r\n#default,_result,,\r\n\
                   ,result,table,_value\r\n,,0,36000\r\n\r\n";
        assert_eq!(count(&parse(csv).unwrap()), 36_000);
        assert_eq!(count(&[]), 0);
        let csv = format!(
            "#datatype,string,long,dateTime:RFC3339,double\r\n#group,false,false,false,false\r\n#default,_result,,,\r\n\
             ,result,table,_time,_value\r\n,,0,2023-12-21T01:50:57Z,50.01\r\n,,0,{T0},49.99\r\n,,0,{T0},49.99\r\n,,0,bad,1\r\n,,0,{T0},\r\n"
        );
        let points = raw_points(&parse(&csv).unwrap(), 10);
        assert_eq!(points.len(), 2, "sorted, deduplicated, bad rows skipped");
        assert_eq!(points[0].t, 1_703_123_456_789_123);
        assert_eq!(
            (
                points[0].min,
                points[0].mean,
                points[0].max,
                points[0].count
            ),
            (49.99, 49.99, 49.99, 1)
        );
        assert_eq!(raw_points(&parse(&csv).unwrap(), 1).len(), 1);
    }

    #[test]
    fn aggregated_buckets_join_four_results_on_the_aligned_start() {
        // aggregateWindow clips the first window's start to the range start: 01:50:56.789123
        // belongs to the bucket starting at 01:50:56 (interval 4 s).
        let mut csv = String::new();
        for (name, ty, a, b) in [
            ("min", "double", "49.9", "49.95"),
            ("mean", "double", "50", "50.01"),
            ("max", "double", "50.1", "50.2"),
            ("count", "long", "3", "4"),
        ] {
            csv.push_str(&format!(
                "#datatype,string,long,dateTime:RFC3339,{ty}\r\n#group,false,false,false,false\r\n#default,{name},,,\r\n\
                 ,result,table,_time,_value\r\n,,0,{T0},{a}\r\n,,0,2023-12-21T01:51:00Z,{b}\r\n\r\n"
            ));
        }
        csv.push_str(
            "#datatype,string,long,dateTime:RFC3339,double\r\n#group,false,false,false,false\r\n#default,min,,,\r\n\
             ,result,table,_time,_value\r\n,,0,2023-12-21T01:51:04Z,1\r\n\r\n",
        );
        let b = aggregated(&parse(&csv).unwrap(), 4_000_000, 10);
        assert_eq!(b.len(), 2, "a bucket with only a min is left out");
        assert_eq!(b[0].t, 1_703_123_456_000_000);
        assert_eq!(
            (b[0].min, b[0].mean, b[0].max, b[0].count),
            (49.9, 50.0, 50.1, 3)
        );
        assert_eq!(b[1].t, 1_703_123_460_000_000);
        assert_eq!(b[1].count, 4);
        assert_eq!(aggregated(&parse(&csv).unwrap(), 4_000_000, 1).len(), 1);
    }

    #[test]
    fn logs_and_devices() {
        let csv = format!(
            "#datatype,string,long,dateTime:RFC3339,string,string,string,string\r\n#group,false,false,false,false,false,false,false\r\n#default,_result,,,,,,\r\n\
             ,result,table,_time,device_id,level,message,module\r\n\
             ,,0,2023-12-21T01:50:00Z,esp-1,warning,\"a, \"\"b\"\"\nc\",ade\r\n\
             ,,0,{T0},esp-2,INFO,,\r\n\
             ,,0,{T0},esp-2,LOUD,x,y\r\n\
             ,,0,{T0},bad id,INFO,x,y\r\n"
        );
        let rows = log_rows(&parse(&csv).unwrap());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].device_id.as_str(), "esp-2");
        assert_eq!(rows[0].message, "");
        assert_eq!(rows[1].level, LogLevel::Warn);
        assert_eq!(rows[1].message, "a, \"b\"\nc");

        let head = "#datatype,string,long,dateTime:RFC3339,double,string,string,string\r\n#group,false,false,false,false,true,true,true\r\n#default,_result,,,,,,\r\n\
                    ,result,table,_time,_value,_field,_measurement,device_id\r\n";
        let mut csv = String::from(head);
        for (t, f, v) in [
            ("01:00:00", "frequency", "50.01"),
            ("01:00:00", "voltage", "230"),
            ("01:00:00", "current", "1.5"),
            ("01:00:00", "power", "345"),
            ("00:59:00", "frequency", "49"),
            ("01:00:05", "rssi", "-45"),
            ("01:00:04", "free_heap", "234567"),
            ("01:00:05", "battery", "88.5"),
            ("00:30:00", "online", "false"),
        ] {
            let m = if ["rssi", "free_heap", "battery", "online"].contains(&f) {
                "device_status"
            } else {
                "grid_data"
            };
            csv.push_str(&format!(",,0,2023-12-21T{t}Z,{v},{f},{m},esp-1\r\n"));
        }
        csv.push_str(&format!("\r\n{}", head.replace(",double,", ",string,")));
        csv.push_str(",,0,2023-12-21T02:00:00Z,INFO,level,device_logs,esp-1\r\n");
        csv.push_str(",,0,2023-12-21T00:00:00Z,INFO,level,device_logs,esp-2\r\n");
        let d = device_summaries(&parse(&csv).unwrap());
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].device_id.as_str(), "esp-1");
        assert_eq!(d[0].last_seen, 1_703_124_000_000_000, "logs count as seen");
        let m = d[0].last_measurement.unwrap();
        assert_eq!(
            (m.timestamp, m.frequency, m.power),
            (1_703_120_400_000_000, 50.01, 345.0)
        );
        let s = d[0].last_status.as_ref().unwrap();
        assert_eq!((s.rssi, s.free_heap, s.battery), (-45, 234_567, Some(88.5)));
        assert_eq!(s.online, None, "an older online flag is not this status's");
        assert!(d[1].last_measurement.is_none() && d[1].last_status.is_none());
        assert_eq!(parse_integer("234567.0"), Some(234_567));
        assert_eq!(parse_integer("1.5"), None);
    }

    #[test]
    fn export_pages_stop_at_the_earliest_truncated_table() {
        let head = "#datatype,string,long,dateTime:RFC3339,double,string,string\r\n#group,false,false,false,false,true,true\r\n#default,_result,,,,,\r\n\
                    ,result,table,_time,_value,_field,host\r\n";
        let mut csv = String::from(head);
        // Host a: 3 rows per field (the limit): truncated at 00:00:03. Host b: 2 rows, complete.
        for (table, f) in GRID.iter().enumerate() {
            for s in 1..=3 {
                csv.push_str(&format!(",,{table},2023-12-21T00:00:0{s}Z,{s},{f},a\r\n"));
            }
        }
        for (table, f) in GRID.iter().enumerate() {
            for s in [2, 9] {
                csv.push_str(&format!(
                    ",,{},2023-12-21T00:00:0{s}Z,{s},{f},b\r\n",
                    table + 4
                ));
            }
        }
        let (rows, next) = export_page(&parse(&csv).unwrap(), 3);
        let times: Vec<i64> = rows.iter().map(|m| m.timestamp % 10_000_000).collect();
        assert_eq!(times, [1_000_000, 2_000_000, 3_000_000]);
        assert_eq!(next, Some(1_703_116_803_000_000_001));
        let (rows, next) = export_page(&parse(&csv).unwrap(), 4);
        assert_eq!(
            rows.len(),
            4,
            "no table truncated: everything, 00:00:09 included"
        );
        assert_eq!(next, None);
        assert_eq!(export_page(&[], 10), (vec![], None));
    }

    const GRID: [&str; 4] = crate::flux::GRID_FIELDS;
}
