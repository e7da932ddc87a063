//! The server's clock ([`now_us`]) and the API's time parameters: integer µs since the Unix
//! epoch, RFC 3339, or relative to now (`now`, `-15m`, `-24h`, `-30d`, `-90s`, `-2w`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, µs since the Unix epoch (0 if the system clock is before it).
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Parses `s` into µs since the Unix epoch; `now_us` anchors relative times.
pub fn parse_time_us(s: &str, now_us: i64) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty time".into());
    }
    if s == "now" {
        return Ok(now_us);
    }
    if let Some(d) = s.strip_prefix('-').and_then(parse_relative) {
        return d.map(|d| now_us.saturating_sub(d));
    }
    if s.bytes().all(|b| b.is_ascii_digit())
        || (s.starts_with('-') && s[1..].bytes().all(|b| b.is_ascii_digit()))
    {
        return s
            .parse::<i64>()
            .map_err(|_| format!("time {s:?} is out of range"));
    }
    parse_rfc3339(s).ok_or_else(|| {
        format!("cannot read time {s:?}: use µs since the Unix epoch, RFC 3339 (2026-01-02T03:04:05Z), or a relative time (now, -15m, -24h, -30d)")
    })
}

/// `15m` → Some(Ok(µs)); `abc` → None (not a relative time).
fn parse_relative(s: &str) -> Option<Result<i64, String>> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let mult: i64 = match unit {
        "us" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        "w" => 604_800_000_000,
        _ => return None,
    };
    let n: i64 = match num.parse() {
        Ok(n) => n,
        Err(_) => return Some(Err(format!("bad relative time -{s}"))),
    };
    Some(
        n.checked_mul(mult)
            .ok_or_else(|| format!("relative time -{s} is too long")),
    )
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` → µs since the Unix epoch.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..6 {
            micros *= 10;
        }
    }
    let offset_s = match &s[i..] {
        "Z" | "z" => 0,
        tz if tz.len() == 6
            && (tz.starts_with('+') || tz.starts_with('-'))
            && tz.as_bytes()[3] == b':' =>
        {
            let h = num(i + 1..i + 3)?;
            let m = num(i + 4..i + 6)?;
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_s;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_703_123_456_789_123;

    #[test]
    fn all_three_forms() {
        assert_eq!(
            parse_time_us("1703123456789123", NOW),
            Ok(1_703_123_456_789_123)
        );
        assert_eq!(parse_time_us("now", NOW), Ok(NOW));
        assert_eq!(parse_time_us("-15m", NOW), Ok(NOW - 900_000_000));
        assert_eq!(parse_time_us("-30d", NOW), Ok(NOW - 30 * 86_400_000_000));
        assert_eq!(parse_time_us("1970-01-01T00:00:00Z", NOW), Ok(0));
        assert_eq!(
            parse_time_us("2023-12-21T01:50:56.789123Z", NOW),
            Ok(1_703_123_456_789_123)
        );
        assert_eq!(
            parse_time_us("2023-12-21T02:50:56.789123456+01:00", NOW),
            Ok(1_703_123_456_789_123)
        );
        assert_eq!(
            parse_time_us("2024-02-29T00:00:00Z", NOW),
            Ok(1_709_164_800_000_000)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "",
            "yesterday",
            "-15x",
            "2023-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2023-01-01",
            "99999999999999999999",
            "-99999999999999d",
            "2023-01-01T00:00:00.Z",
            "2023-01-01T00:00:00+1:00",
            "２０２３-01-01T00:00:00Z",
        ] {
            assert!(parse_time_us(bad, NOW).is_err(), "{bad}");
        }
    }
}
