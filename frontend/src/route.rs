//! [`Route`]: what is on screen, as it is written in the URL's query string. Pure.
//!
//! Everything a link or a kiosk bookmark must reproduce lives here: the view, the device, the
//! history range, the theme, kiosk mode, the live window and the insight settings. Parsing is
//! lenient (a bad or unknown parameter falls back to its default, so an old bookmark still
//! opens), and [`Route::to_query`] writes only what differs from the defaults, in a fixed order,
//! so equal routes give equal URLs.
//!
//! ```text
//! ?view=device&device=sim-01&range=6h
//! ?view=device&device=sim-01&range=custom&start=1700000000000000&stop=1700003600000000
//! ?kiosk&device=sim-01&view=insight&theme=dark&window=10m
//! ?view=logs&device=sim-02&level=WARN
//! ```

use ogm_protocol::{DeviceId, GridArea, LogLevel};

/// The pages of the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum View {
    /// Device cards and the live chart.
    #[default]
    Overview,
    /// One device: frequency, voltage, current and power over a range.
    Device,
    /// Grid insight: deviation and bands, RoCoF, grid time, histogram, events, agreement.
    Insight,
    /// The log stream.
    Logs,
    /// The devices table.
    Devices,
}

impl View {
    pub const ALL: [View; 5] = [
        View::Overview,
        View::Device,
        View::Insight,
        View::Logs,
        View::Devices,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            View::Overview => "overview",
            View::Device => "device",
            View::Insight => "insight",
            View::Logs => "logs",
            View::Devices => "devices",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The navigation label.
    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Device => "Device",
            View::Insight => "Grid insight",
            View::Logs => "Logs",
            View::Devices => "Devices",
        }
    }
}

/// The preset ranges of the range picker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Span {
    M5,
    H1,
    H6,
    H24,
    D7,
    D30,
}

impl Span {
    pub const ALL: [Span; 6] = [Span::M5, Span::H1, Span::H6, Span::H24, Span::D7, Span::D30];

    pub fn as_str(self) -> &'static str {
        match self {
            Span::M5 => "5m",
            Span::H1 => "1h",
            Span::H6 => "6h",
            Span::H24 => "24h",
            Span::D7 => "7d",
            Span::D30 => "30d",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn micros(self) -> i64 {
        const M: i64 = 60_000_000;
        match self {
            Span::M5 => 5 * M,
            Span::H1 => 60 * M,
            Span::H6 => 360 * M,
            Span::H24 => 1_440 * M,
            Span::D7 => 7 * 1_440 * M,
            Span::D30 => 30 * 1_440 * M,
        }
    }
}

/// The time range of the device page and of the insight view's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeRange {
    /// The last span up to now, sliding: live data continues it.
    Last(Span),
    /// A fixed range, µs since the Unix epoch, `start < stop`.
    Custom { start_us: i64, stop_us: i64 },
}

impl TimeRange {
    /// `[start, stop)` in µs, relative ranges resolved against `now_us`.
    pub fn resolve(self, now_us: i64) -> (i64, i64) {
        match self {
            TimeRange::Last(span) => (now_us - span.micros(), now_us),
            TimeRange::Custom { start_us, stop_us } => (start_us, stop_us),
        }
    }

    /// Whether live data extends the range.
    pub fn is_live(self) -> bool {
        matches!(self, TimeRange::Last(_))
    }

    /// A custom range, if `start < stop`.
    pub fn custom(start_us: i64, stop_us: i64) -> Option<Self> {
        (start_us < stop_us).then_some(TimeRange::Custom { start_us, stop_us })
    }
}

/// Light, dark, or whatever the system prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Theme {
    #[default]
    System,
    Dark,
    Light,
}

impl Theme {
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::System => "system",
            Theme::Dark => "dark",
            Theme::Light => "light",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Theme::System, Theme::Dark, Theme::Light]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// Default live window of the overview chart, µs.
pub const DEFAULT_WINDOW_US: i64 = 5 * 60_000_000;
/// Shortest and longest live window, µs.
pub const WINDOW_LIMITS_US: (i64, i64) = (10_000_000, 60 * 60_000_000);
/// Default RoCoF window, ms.
pub const DEFAULT_ROCOF_WINDOW_MS: u32 = 500;
/// Accepted RoCoF windows, ms.
pub const ROCOF_WINDOW_LIMITS_MS: (u32, u32) = (100, 5_000);
/// Default |RoCoF| that makes an event, Hz/s (above 0.5 Hz/s is severe).
pub const DEFAULT_ROCOF_LIMIT: f64 = 0.5;

/// What is on screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub view: View,
    /// The device of the device page, the reference of the insight view, the focus of the
    /// overview in kiosk mode, the device filter of the logs.
    pub device: Option<DeviceId>,
    /// Device page and insight history range; None: the view's default ([`Route::range`]).
    pub range: Option<TimeRange>,
    pub theme: Theme,
    /// No navigation, large type, no input needed.
    pub kiosk: bool,
    /// The live chart's window, µs.
    pub window_us: i64,
    /// Logs: the least severe level shown.
    pub level: Option<LogLevel>,
    /// Overrides the server's nominal frequency (50 or 60).
    pub nominal_hz: Option<f64>,
    /// Overrides the server's synchronous area (whose bands are drawn).
    pub area: Option<GridArea>,
    /// RoCoF estimation window, ms.
    pub rocof_window_ms: u32,
    /// |RoCoF| beyond which an event starts, Hz/s.
    pub rocof_limit: f64,
}

impl Default for Route {
    fn default() -> Self {
        Self {
            view: View::Overview,
            device: None,
            range: None,
            theme: Theme::System,
            kiosk: false,
            window_us: DEFAULT_WINDOW_US,
            level: None,
            nominal_hz: None,
            area: None,
            rocof_window_ms: DEFAULT_ROCOF_WINDOW_MS,
            rocof_limit: DEFAULT_ROCOF_LIMIT,
        }
    }
}

impl Route {
    /// Parses `?a=b&c` (the leading `?` is optional). Never fails: what does not parse is left
    /// at its default.
    pub fn parse(query: &str) -> Self {
        let mut r = Route::default();
        let mut range: Option<String> = None;
        let (mut start, mut stop) = (None, None);
        for (key, value) in pairs(query) {
            match key.as_str() {
                "view" => r.view = View::parse(&value).unwrap_or(r.view),
                "device" => r.device = DeviceId::new(&value).ok(),
                "range" => range = Some(value),
                "start" => start = value.parse::<i64>().ok(),
                "stop" => stop = value.parse::<i64>().ok(),
                "theme" => r.theme = Theme::parse(&value).unwrap_or(r.theme),
                "kiosk" => r.kiosk = !matches!(value.as_str(), "0" | "false" | "no"),
                "window" => {
                    if let Some(us) = parse_duration_us(&value) {
                        r.window_us = us.clamp(WINDOW_LIMITS_US.0, WINDOW_LIMITS_US.1);
                    }
                }
                "level" => r.level = LogLevel::parse(&value.to_ascii_uppercase()),
                "nominal" => {
                    r.nominal_hz = value
                        .parse::<f64>()
                        .ok()
                        .filter(|n| *n == 50.0 || *n == 60.0)
                }
                "area" => r.area = GridArea::parse(&value),
                "rocof_window" => {
                    if let Some(us) = parse_duration_us(&value) {
                        let ms = u32::try_from(us / 1000).unwrap_or(u32::MAX);
                        r.rocof_window_ms =
                            ms.clamp(ROCOF_WINDOW_LIMITS_MS.0, ROCOF_WINDOW_LIMITS_MS.1);
                    }
                }
                "rocof_limit" => {
                    if let Some(v) = value
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && *v > 0.0)
                    {
                        r.rocof_limit = v.min(100.0);
                    }
                }
                _ => {}
            }
        }
        r.range = match range.as_deref() {
            Some("custom") => start.zip(stop).and_then(|(a, b)| TimeRange::custom(a, b)),
            Some(s) => Span::parse(s).map(TimeRange::Last),
            None => None,
        };
        r
    }

    /// The link to this route from a page at `path` (its pathname, so the dashboard works
    /// behind a prefix): `path` and [`Self::to_query`]. A path that starts with `//` (or `/\`,
    /// which browsers read alike) would make it a link to another host
    /// (`//evil.example/?view=logs`): the server redirects such paths, and the link falls back
    /// to `/` for one all the same.
    pub fn link_from(&self, path: &str) -> String {
        let own = path.starts_with('/') && !path.starts_with("//") && !path.starts_with("/\\");
        format!("{}{}", if own { path } else { "/" }, self.to_query())
    }

    /// The query string, `?`-prefixed, or empty for the default route.
    pub fn to_query(&self) -> String {
        let d = Route::default();
        let mut out: Vec<String> = Vec::new();
        if self.kiosk {
            out.push("kiosk".into());
        }
        if self.view != d.view {
            out.push(format!("view={}", self.view.as_str()));
        }
        if let Some(dev) = &self.device {
            out.push(format!("device={dev}"));
        }
        match self.range {
            None => {}
            Some(TimeRange::Last(span)) => out.push(format!("range={}", span.as_str())),
            Some(TimeRange::Custom { start_us, stop_us }) => {
                out.push(format!("range=custom&start={start_us}&stop={stop_us}"));
            }
        }
        if self.theme != d.theme {
            out.push(format!("theme={}", self.theme.as_str()));
        }
        if self.window_us != d.window_us {
            out.push(format!("window={}", format_duration_us(self.window_us)));
        }
        if let Some(level) = self.level {
            out.push(format!("level={}", level.as_str()));
        }
        if let Some(n) = self.nominal_hz {
            out.push(format!("nominal={n}"));
        }
        if let Some(a) = self.area {
            out.push(format!("area={}", a.as_str()));
        }
        if self.rocof_window_ms != d.rocof_window_ms {
            out.push(format!("rocof_window={}ms", self.rocof_window_ms));
        }
        if self.rocof_limit != d.rocof_limit {
            out.push(format!("rocof_limit={}", self.rocof_limit));
        }
        if out.is_empty() {
            String::new()
        } else {
            format!("?{}", out.join("&"))
        }
    }

    /// The range on screen: the one chosen, or the view's default (24 h for the insight view's
    /// histogram, 1 h for the device page).
    pub fn range(&self) -> TimeRange {
        self.range.unwrap_or(match self.view {
            View::Insight => TimeRange::Last(Span::H24),
            _ => TimeRange::Last(Span::H1),
        })
    }

    /// This route on another view (the device and settings stay).
    pub fn with_view(&self, view: View) -> Self {
        Self {
            view,
            ..self.clone()
        }
    }
}

/// `key=value` pairs of a query string, percent- and `+`-decoded.
fn pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
}

/// Percent-decoding; malformed escapes are kept as they are.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `500ms`, `30s`, `10m`, `1h`, `7d`, or bare seconds, in µs.
pub fn parse_duration_us(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = if split == 0 {
        return None;
    } else {
        s.split_at(split)
    };
    let n: f64 = num.parse().ok()?;
    let unit_us = match unit {
        "ms" => 1e3,
        "s" => 1e6,
        "m" | "min" => 60e6,
        "h" => 3_600e6,
        "d" => 86_400e6,
        _ => return None,
    };
    let us = n * unit_us;
    (us.is_finite() && (1.0..1e15).contains(&us)).then_some(us as i64)
}

/// The shortest of `10m`, `90s`, `1h`, `500ms` that is exact.
pub fn format_duration_us(us: i64) -> String {
    for (unit, name) in [
        (86_400_000_000, "d"),
        (3_600_000_000, "h"),
        (60_000_000, "m"),
        (1_000_000, "s"),
        (1_000, "ms"),
    ] {
        if us % unit == 0 {
            return format!("{}{name}", us / unit);
        }
    }
    format!("{}ms", us / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_stay_on_this_site() {
        let logs = Route {
            view: View::Logs,
            ..Route::default()
        };
        assert_eq!(logs.link_from("/"), "/?view=logs");
        assert_eq!(logs.link_from("/grid/"), "/grid/?view=logs");
        assert_eq!(Route::default().link_from("/grid/"), "/grid/");
        for elsewhere in ["//evil.example/", "/\\evil.example/", "evil.example", ""] {
            assert_eq!(logs.link_from(elsewhere), "/?view=logs", "{elsewhere}");
        }
    }

    #[test]
    fn the_default_route_is_the_bare_page() {
        assert_eq!(Route::parse(""), Route::default());
        assert_eq!(Route::parse("?"), Route::default());
        assert_eq!(Route::default().to_query(), "");
    }

    #[test]
    fn kiosk_bookmarks_parse() {
        let r = Route::parse("?kiosk&device=sim-01&view=insight&theme=dark&window=10m");
        assert!(r.kiosk);
        assert_eq!(r.view, View::Insight);
        assert_eq!(r.device.as_ref().map(|d| d.as_str()), Some("sim-01"));
        assert_eq!(r.theme, Theme::Dark);
        assert_eq!(r.window_us, 600_000_000);
        assert!(!Route::parse("?kiosk=0").kiosk);
        assert!(Route::parse("?kiosk=1").kiosk);
    }

    #[test]
    fn routes_round_trip_through_the_query() {
        let routes = [
            Route::parse("?view=device&device=sim-01&range=6h"),
            Route::parse("?view=device&device=a_b-9&range=custom&start=1000&stop=2000"),
            Route::parse("?kiosk&view=overview&theme=light&window=90s"),
            Route::parse("?view=logs&level=warn&device=x"),
            Route::parse("?view=insight&nominal=60&rocof_window=1s&rocof_limit=0.2&range=24h"),
            Route::parse("?view=insight&area=nordic"),
        ];
        for r in routes {
            let q = r.to_query();
            assert_eq!(Route::parse(&q), r, "{q}");
        }
        assert_eq!(
            Route::parse("?range=custom&start=1000&stop=2000&view=device").to_query(),
            "?view=device&range=custom&start=1000&stop=2000"
        );
        assert_eq!(
            Route::parse("?view=insight&rocof_window=1s").to_query(),
            "?view=insight&rocof_window=1000ms"
        );
    }

    #[test]
    fn nonsense_falls_back_to_defaults() {
        let r = Route::parse(
            "?view=nope&device=bad.id&range=3y&theme=pink&window=x&level=LOUD&nominal=55&area=mars&rocof_limit=-1&%zz=1",
        );
        assert_eq!(r, Route::default());
        // A custom range needs both ends, in order.
        assert_eq!(Route::parse("?range=custom&start=5&stop=1").range, None);
        assert_eq!(
            Route::parse("?view=insight").range(),
            TimeRange::Last(Span::H24)
        );
        assert_eq!(
            Route::parse("?view=device").range(),
            TimeRange::Last(Span::H1)
        );
        assert_eq!(Route::parse("?window=1s").window_us, WINDOW_LIMITS_US.0);
        assert_eq!(Route::parse("?window=5d").window_us, WINDOW_LIMITS_US.1);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(decode("a%2Db+c"), "a-b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%zz"), "%zz");
        let r = Route::parse("?device=sim%2D01");
        assert_eq!(r.device.as_ref().map(|d| d.as_str()), Some("sim-01"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_us("500ms"), Some(500_000));
        assert_eq!(parse_duration_us("10m"), Some(600_000_000));
        assert_eq!(parse_duration_us("1.5h"), Some(5_400_000_000));
        assert_eq!(parse_duration_us("7d"), Some(604_800_000_000));
        assert_eq!(parse_duration_us("10"), None);
        assert_eq!(parse_duration_us("m"), None);
        assert_eq!(parse_duration_us("0s"), None);
        assert_eq!(format_duration_us(600_000_000), "10m");
        assert_eq!(format_duration_us(90_000_000), "90s");
        assert_eq!(format_duration_us(3_600_000_000), "1h");
        assert_eq!(format_duration_us(1_500), "1ms");
    }

    #[test]
    fn ranges_resolve() {
        assert_eq!(
            TimeRange::Last(Span::M5).resolve(1_000_000_000),
            (700_000_000, 1_000_000_000)
        );
        let c = TimeRange::custom(1, 2).unwrap();
        assert_eq!(c.resolve(99), (1, 2));
        assert!(!c.is_live());
        assert!(TimeRange::custom(2, 2).is_none());
    }
}
