//! How numbers look on the page: frequency bands and the texts of cards and table cells.

use ogm_grid::Bands;

/// How far the frequency is from nominal, in the bands of the area's grid code ([`Bands`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// Inside the primary-control dead band (Continental Europe: |Δf| ≤ 20 mHz).
    Deadband,
    /// Inside the standard frequency range (Continental Europe: ≤ 50 mHz).
    Normal,
    /// Within the limits of normal operation, reserves being deployed (≤ 200 mHz).
    Alert,
    /// Beyond the limits.
    Emergency,
}

impl Band {
    pub fn of(frequency_hz: f64, bands: &Bands) -> Self {
        // Rounded to 0.1 mHz so that 50.020 (which is 50.0199999… or 50.0200001… in binary)
        // lands in the band its digits say.
        let mhz = ((frequency_hz - bands.nominal_hz).abs() * 10_000.0).round() / 10.0;
        if mhz <= bands.deadband_mhz {
            Self::Deadband
        } else if mhz <= bands.normal_mhz {
            Self::Normal
        } else if mhz <= bands.limit_mhz {
            Self::Alert
        } else {
            Self::Emergency
        }
    }

    /// The CSS class on the device card.
    pub fn css_class(self) -> &'static str {
        match self {
            Self::Deadband => "band-deadband",
            Self::Normal => "band-normal",
            Self::Alert => "band-alert",
            Self::Emergency => "band-emergency",
        }
    }
}

/// `50.012 Hz`.
pub fn frequency(hz: f64) -> String {
    format!("{hz:.3} Hz")
}

/// `+12.3 mHz` / `−4.0 mHz`.
pub fn deviation(hz: f64, nominal_hz: f64) -> String {
    let mhz = (hz - nominal_hz) * 1000.0;
    let sign = if mhz < -0.05 { "−" } else { "+" };
    format!("{sign}{:.1} mHz", mhz.abs())
}

/// `3 s ago`, `4 min ago`, `2 h ago`, `5 d ago`.
pub fn ago(age_ms: f64) -> String {
    let s = (age_ms.max(0.0) / 1000.0).floor() as u64;
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7_199 => format!("{} min ago", s / 60),
        7_200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// Seconds until `at_ms`, rounded up, never negative.
pub fn seconds_until(at_ms: f64, now_ms: f64) -> u64 {
    ((at_ms - now_ms) / 1000.0).ceil().max(0.0) as u64
}

pub fn rssi(dbm: Option<i32>) -> String {
    dbm.map_or_else(dash, |v| format!("{v} dBm"))
}

pub fn heap(bytes: Option<u64>) -> String {
    bytes.map_or_else(dash, |b| format!("{:.1} KiB", b as f64 / 1024.0))
}

pub fn voltage(v: Option<f64>) -> String {
    v.map_or_else(dash, |v| format!("{v:.1} V"))
}

pub fn current(a: Option<f64>) -> String {
    a.map_or_else(dash, |a| format!("{a:.2} A"))
}

pub fn power(w: Option<f64>) -> String {
    w.map_or_else(dash, |w| format!("{w:.0} W"))
}

/// An x-axis label of a live chart: `now`, `−30 s`, `−1:40`, `−1:05:00`.
pub fn relative_seconds(x: f64) -> String {
    let s = (-x).round() as i64;
    if s < 1 {
        "now".to_owned()
    } else if s < 60 {
        format!("−{s} s")
    } else if s < 3_600 {
        format!("−{}:{:02}", s / 60, s % 60)
    } else {
        format!("−{}:{:02}:{:02}", s / 3_600, s / 60 % 60, s % 60)
    }
}

/// Civil date `(year, month, day)` of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Local `(year, month, day, hour, minute, second)` of `t_us` at a UTC offset in minutes.
pub fn local_parts(t_us: i64, tz_offset_min: i32) -> (i64, u32, u32, u32, u32, u32) {
    let s = t_us.div_euclid(1_000_000) + i64::from(tz_offset_min) * 60;
    let (days, secs) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    let (y, mo, d) = civil(days);
    (
        y,
        mo,
        d,
        (secs / 3_600) as u32,
        (secs / 60 % 60) as u32,
        (secs % 60) as u32,
    )
}

/// `14:05:09`.
pub fn clock(t_us: i64, tz_offset_min: i32) -> String {
    let (_, _, _, h, m, s) = local_parts(t_us, tz_offset_min);
    format!("{h:02}:{m:02}:{s:02}")
}

/// `2024-11-27 14:05:09`.
pub fn date_time(t_us: i64, tz_offset_min: i32) -> String {
    let (y, mo, d, h, m, s) = local_parts(t_us, tz_offset_min);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02}")
}

/// The `datetime-local` input value: `2024-11-27T14:05`.
pub fn datetime_local(t_us: i64, tz_offset_min: i32) -> String {
    let (y, mo, d, h, m, _) = local_parts(t_us, tz_offset_min);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}")
}

/// Parses a `datetime-local` value (`2024-11-27T14:05`, seconds optional) at a UTC offset.
pub fn parse_datetime_local(s: &str, tz_offset_min: i32) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|p| p.parse::<f64>().ok());
    let (h, mi) = (t.next()??, t.next()??);
    let sec = t.next().flatten().unwrap_or(0.0);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h >= 24.0 || mi >= 60.0 {
        return None;
    }
    // Days from civil (inverse of `civil`).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs =
        days as f64 * 86_400.0 + h * 3_600.0 + mi * 60.0 + sec - f64::from(tz_offset_min) * 60.0;
    Some((secs * 1e6) as i64)
}

/// An axis label for clock time: `14:05:09` under 5 minutes, `14:05` under two days,
/// `27.11 14:05` under a week, `27.11` beyond.
pub fn axis_time(t_us: i64, tz_offset_min: i32, span_s: f64) -> String {
    let (_, mo, d, h, m, s) = local_parts(t_us, tz_offset_min);
    if span_s <= 300.0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else if span_s <= 2.0 * 86_400.0 {
        format!("{h:02}:{m:02}")
    } else if span_s <= 7.0 * 86_400.0 {
        format!("{d:02}.{mo:02} {h:02}:{m:02}")
    } else {
        format!("{d:02}.{mo:02}")
    }
}

/// A duration: `0.4 s`, `12.0 s`, `4 min 05 s`, `2 h 03 min`.
pub fn duration(us: i64) -> String {
    let s = us.max(0) as f64 / 1e6;
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3_600.0 {
        format!("{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{} h {:02} min",
            (s / 3_600.0) as u64,
            (s / 60.0 % 60.0) as u64
        )
    }
}

/// A signed value with a real minus sign: `+12.3`, `−4.0`.
pub fn signed(v: f64, decimals: usize) -> String {
    let text = format!("{:.decimals$}", v.abs());
    let zero = text.chars().all(|c| c == '0' || c == '.');
    let sign = if v < 0.0 && !zero { "−" } else { "+" };
    format!("{sign}{text}")
}

fn dash() -> String {
    "—".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_the_grid_code_edges() {
        use ogm_protocol::GridArea;
        let n = &Bands::continental_europe(50.0);
        assert_eq!(Band::of(50.0, n), Band::Deadband);
        assert_eq!(Band::of(50.020, n), Band::Deadband);
        assert_eq!(Band::of(49.980, n), Band::Deadband);
        assert_eq!(Band::of(50.0201, n), Band::Normal);
        assert_eq!(Band::of(49.950, n), Band::Normal);
        assert_eq!(Band::of(50.2, n), Band::Alert);
        assert_eq!(Band::of(49.7999, n), Band::Emergency);
        assert_eq!(
            Band::of(60.03, &Bands::continental_europe(60.0)),
            Band::Normal
        );
        // The same reading is "normal" in Great Britain (±200 mHz) and an alert in the Nordic
        // area (beyond ±100 mHz).
        let (gb, nordic) = (
            Bands::of(GridArea::GreatBritain, 50.0),
            Bands::of(GridArea::Nordic, 50.0),
        );
        assert_eq!(Band::of(49.85, &gb), Band::Normal);
        assert_eq!(Band::of(49.85, &nordic), Band::Alert);
        assert_eq!(Band::of(49.6, &gb), Band::Alert);
        assert_eq!(Band::of(49.45, &nordic), Band::Emergency);
        assert_eq!(Band::Alert.css_class(), "band-alert");
    }

    #[test]
    fn texts() {
        assert_eq!(frequency(50.0123), "50.012 Hz");
        assert_eq!(deviation(50.0123, 50.0), "+12.3 mHz");
        assert_eq!(deviation(49.996, 50.0), "−4.0 mHz");
        assert_eq!(deviation(50.0, 50.0), "+0.0 mHz");
        assert_eq!(ago(3_400.0), "3 s ago");
        assert_eq!(ago(-50.0), "0 s ago");
        assert_eq!(ago(600_000.0), "10 min ago");
        assert_eq!(ago(3.0 * 3_600_000.0), "3 h ago");
        assert_eq!(seconds_until(4_000.0, 500.0), 4);
        assert_eq!(seconds_until(0.0, 500.0), 0);
        assert_eq!(rssi(Some(-45)), "-45 dBm");
        assert_eq!(heap(Some(234_567)), "229.1 KiB");
        assert_eq!(voltage(Some(230.5)), "230.5 V");
        assert_eq!(current(Some(10.2)), "10.20 A");
        assert_eq!(power(Some(2351.0)), "2351 W");
        assert_eq!(power(None), "—");
    }

    #[test]
    fn times_and_durations() {
        // 2023-12-21 01:50:56 UTC.
        let t = 1_703_123_456_789_123;
        assert_eq!(date_time(t, 0), "2023-12-21 01:50:56");
        assert_eq!(clock(t, 60), "02:50:56");
        assert_eq!(date_time(t, -120), "2023-12-20 23:50:56");
        assert_eq!(datetime_local(t, 0), "2023-12-21T01:50");
        assert_eq!(
            parse_datetime_local("2023-12-21T01:50", 0),
            Some(1_703_123_400_000_000)
        );
        assert_eq!(
            parse_datetime_local("2023-12-21T02:50:30", 60),
            Some(1_703_123_430_000_000)
        );
        assert_eq!(
            parse_datetime_local("2024-02-29T00:00", 0),
            Some(1_709_164_800_000_000)
        );
        assert_eq!(parse_datetime_local("2023-13-01T00:00", 0), None);
        assert_eq!(parse_datetime_local("nope", 0), None);
        assert_eq!(date_time(0, 0), "1970-01-01 00:00:00");
        assert_eq!(axis_time(t, 0, 60.0), "01:50:56");
        assert_eq!(axis_time(t, 0, 3_600.0), "01:50");
        assert_eq!(axis_time(t, 0, 86_400.0 * 3.0), "21.12 01:50");
        assert_eq!(axis_time(t, 0, 86_400.0 * 30.0), "21.12");
        assert_eq!(relative_seconds(-0.2), "now");
        assert_eq!(relative_seconds(-30.0), "−30 s");
        assert_eq!(relative_seconds(-100.0), "−1:40");
        assert_eq!(relative_seconds(-3_900.0), "−1:05:00");
        assert_eq!(duration(2_345_000), "2.3 s");
        assert_eq!(duration(245_000_000), "4 min 05 s");
        assert_eq!(duration(7_380_000_000), "2 h 03 min");
        assert_eq!(signed(-150.0, 1), "−150.0");
        assert_eq!(signed(0.12, 3), "+0.120");
        assert_eq!(signed(-0.0001, 3), "+0.000");
    }
}
