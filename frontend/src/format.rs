//! How numbers look on the page: frequency bands and the texts of cards and table cells.

/// How far the frequency is from nominal, in the bands of Continental Europe's grid code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// |Δf| ≤ 20 mHz: inside the primary-control dead band.
    Deadband,
    /// |Δf| ≤ 50 mHz: normal operation.
    Normal,
    /// |Δf| ≤ 200 mHz: primary reserve being deployed.
    Alert,
    /// Beyond 200 mHz.
    Emergency,
}

impl Band {
    pub fn of(frequency_hz: f64, nominal_hz: f64) -> Self {
        // Rounded to 0.1 mHz so that 50.020 (which is 50.0199999… or 50.0200001… in binary)
        // lands in the band its digits say.
        let mhz = ((frequency_hz - nominal_hz).abs() * 10_000.0).round() / 10.0;
        if mhz <= 20.0 {
            Self::Deadband
        } else if mhz <= 50.0 {
            Self::Normal
        } else if mhz <= 200.0 {
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

fn dash() -> String {
    "—".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_the_grid_code_edges() {
        let n = 50.0;
        assert_eq!(Band::of(50.0, n), Band::Deadband);
        assert_eq!(Band::of(50.020, n), Band::Deadband);
        assert_eq!(Band::of(49.980, n), Band::Deadband);
        assert_eq!(Band::of(50.0201, n), Band::Normal);
        assert_eq!(Band::of(49.950, n), Band::Normal);
        assert_eq!(Band::of(50.2, n), Band::Alert);
        assert_eq!(Band::of(49.7999, n), Band::Emergency);
        assert_eq!(Band::of(60.03, 60.0), Band::Normal);
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
}
