//! The alert rules file (`OGM_ALERTS_FILE`, TOML): rules, the channels they notify and the
//! dashboard's address for links, read and checked once at start. A bad file stops the server
//! with the line and the reason. The commented example is `deploy/alerts.example.toml`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ogm_protocol::{DeviceId, GridArea};
use serde::Deserialize;

/// Notifications of one rule per hour unless the rule says otherwise.
pub const DEFAULT_MAX_PER_HOUR: u32 = 6;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    dashboard_url: Option<String>,
    #[serde(default)]
    channels: BTreeMap<String, ChannelSpec>,
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum ChannelSpec {
    Webhook {
        url: String,
        #[serde(default)]
        format: WebhookFormat,
    },
    Email {
        server: String,
        port: Option<u16>,
        #[serde(default)]
        security: Security,
        username: Option<String>,
        password: Option<String>,
        password_file: Option<String>,
        /// A CA certificate (PEM) to trust besides the public ones, for a relay with a
        /// certificate of an internal CA.
        ca_file: Option<String>,
        from: String,
        to: Vec<String>,
    },
    Mqtt {},
}

/// A rule as written: every kind's settings, checked against its kind in [`kind`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    kind: String,
    #[serde(default)]
    channels: Vec<String>,
    max_per_hour: Option<u32>,
    limit_mhz: Option<f64>,
    limit_hz_per_s: Option<f64>,
    limit_s: Option<f64>,
    hold: Option<String>,
    after: Option<String>,
    devices: Option<Vec<String>>,
}

/// How a webhook's body is shaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// The notice as JSON (`Notice`).
    #[default]
    Json,
    /// ntfy: the text as the body, title, tags, priority and click link as headers.
    Ntfy,
    /// Slack (and Mattermost, Rocket.Chat): `{"text": …}`.
    Slack,
    /// Discord: `{"content": …}`.
    Discord,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the server cannot.
    #[default]
    Starttls,
    /// TLS from the start (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or network.
    None,
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq)]
pub enum Channel {
    Webhook {
        url: String,
        format: WebhookFormat,
    },
    Email {
        server: String,
        port: u16,
        security: Security,
        credentials: Option<(String, String)>,
        /// A CA certificate (PEM) trusted besides the public roots.
        ca_pem: Option<Vec<u8>>,
        from: String,
        to: Vec<String>,
    },
    /// Retained on `ogm_server/alerts/{rule}/{subject}` through the server's broker session.
    Mqtt,
}

/// What a rule watches.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// The grid's frequency (the median of the devices heard in the last 5 s) off nominal by
    /// more than `limit_mhz` for `hold`.
    Frequency { limit_mhz: f64, hold: Duration },
    /// The median of the devices' RoCoF beyond `limit` Hz/s for `hold`.
    Rocof { limit: f64, hold: Duration },
    /// The grid time deviation over the last 24 h beyond ± `limit_s`.
    GridTime { limit_s: f64 },
    /// A device sent no measurement for `after` (silent, or offline by its last will); every
    /// device the server knows when `devices` is empty.
    Silent {
        after: Duration,
        devices: Vec<DeviceId>,
    },
    /// A device's timestamps off the receive time by more than `limit_s` for `hold`.
    Clock { limit_s: f64, hold: Duration },
    /// The ingest disconnected from the broker, or the store failing, for `after`.
    Server { after: Duration },
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Frequency { .. } => "frequency",
            Kind::Rocof { .. } => "rocof",
            Kind::GridTime { .. } => "grid_time",
            Kind::Silent { .. } => "silent",
            Kind::Clock { .. } => "clock",
            Kind::Server { .. } => "server",
        }
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub kind: Kind,
    /// Names of [`Rules::channels`].
    pub channels: Vec<String>,
    /// Alerts of this rule that notify per hour; more are recorded, not sent.
    pub max_per_hour: u32,
}

/// The checked file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rules {
    /// The dashboard's public address, without a trailing `/` (links are relative without it).
    pub dashboard_url: String,
    pub channels: BTreeMap<String, Channel>,
    pub rules: Vec<Rule>,
}

impl Rules {
    /// Reads and checks the file at `path` for the grid `area` (whose normal limits are the
    /// frequency rule's default).
    pub fn load(path: &Path, area: GridArea, nominal_hz: f64) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        Self::parse(&text, area, nominal_hz, path.parent())
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks a rules file; `dir` resolves relative `password_file`s.
    pub fn parse(
        text: &str,
        area: GridArea,
        nominal_hz: f64,
        dir: Option<&Path>,
    ) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| {
            // A tagged table's errors point at the table; an unknown field is on its own line.
            let field = e
                .message()
                .split_once("unknown field `")
                .and_then(|(_, rest)| rest.split_once('`'))
                .map(|(name, _)| name);
            let field_line = field.and_then(|name| {
                text.lines()
                    .position(|l| {
                        l.trim_start()
                            .strip_prefix(name)
                            .is_some_and(|r| r.trim_start().starts_with('='))
                    })
                    .map(|i| i + 1)
            });
            let line = field_line.or_else(|| {
                e.span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            });
            match line {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_owned(),
            }
        })?;
        let line_of = |needle: &str| {
            text.lines()
                .position(|l| l.contains(needle))
                .map_or(String::new(), |i| format!("line {}: ", i + 1))
        };
        let mut channels = BTreeMap::new();
        for (name, spec) in file.channels {
            let at = line_of(&format!("[channels.{name}]"));
            let channel = channel(spec, dir).map_err(|e| format!("{at}channel {name:?}: {e}"))?;
            channels.insert(name, channel);
        }
        let mut rules: Vec<Rule> = Vec::new();
        for spec in file.rules {
            let at = line_of(&format!("name = \"{}\"", spec.name));
            let fail = |e: String| format!("{at}rule {:?}: {e}", spec.name);
            if !valid_name(&spec.name) {
                return Err(fail("a name is 1 to 64 of a-z, 0-9, _ and -".into()));
            }
            if rules.iter().any(|r| r.name == spec.name) {
                return Err(fail("a second rule of this name".into()));
            }
            for c in &spec.channels {
                if !channels.contains_key(c) {
                    return Err(fail(format!("no channel {c:?} (define [channels.{c}])")));
                }
            }
            let kind = kind(&spec, area, nominal_hz).map_err(fail)?;
            rules.push(Rule {
                name: spec.name,
                kind,
                channels: spec.channels,
                max_per_hour: spec.max_per_hour.unwrap_or(DEFAULT_MAX_PER_HOUR),
            });
        }
        let dashboard_url = file.dashboard_url.unwrap_or_default();
        let dashboard_url = dashboard_url.trim_end_matches('/').to_owned();
        if !(dashboard_url.is_empty()
            || dashboard_url.starts_with("http://")
            || dashboard_url.starts_with("https://"))
        {
            return Err(format!(
                "{}dashboard_url must start with http:// or https://",
                line_of("dashboard_url")
            ));
        }
        Ok(Self {
            dashboard_url,
            channels,
            rules,
        })
    }
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn channel(spec: ChannelSpec, dir: Option<&Path>) -> Result<Channel, String> {
    Ok(match spec {
        ChannelSpec::Webhook { url, format } => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("url {url:?} must start with http:// or https://"));
            }
            Channel::Webhook { url, format }
        }
        ChannelSpec::Email {
            server,
            port,
            security,
            username,
            password,
            password_file,
            ca_file,
            from,
            to,
        } => {
            if server.is_empty() || server.contains(['/', ' ', ':']) {
                return Err(format!(
                    "server {server:?} must be a host name (port apart)"
                ));
            }
            let mailbox = |s: &str| {
                s.parse::<lettre::message::Mailbox>()
                    .map(|_| ())
                    .map_err(|e| format!("address {s:?}: {e}"))
            };
            mailbox(&from)?;
            if to.is_empty() {
                return Err("to must name at least one address".into());
            }
            for t in &to {
                mailbox(t)?;
            }
            let password = match (password, password_file) {
                (Some(_), Some(_)) => return Err("password or password_file, not both".into()),
                (Some(p), None) => Some(p),
                (None, Some(f)) => {
                    let path = dir.map_or_else(|| f.clone().into(), |d| d.join(&f));
                    let p = std::fs::read_to_string(&path)
                        .map_err(|e| format!("password_file {}: {e}", path.display()))?;
                    Some(p.trim_end_matches(['\n', '\r']).to_owned())
                }
                (None, None) => None,
            };
            let credentials = match (username, password) {
                (Some(u), Some(p)) => Some((u, p)),
                (None, None) => None,
                _ => return Err("username and a password go together".into()),
            };
            let ca_pem = match ca_file {
                None => None,
                Some(f) => {
                    let path = dir.map_or_else(|| f.clone().into(), |d| d.join(&f));
                    let pem = std::fs::read(&path)
                        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                    lettre::transport::smtp::client::Certificate::from_pem(&pem)
                        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                    if security == Security::None {
                        return Err("ca_file needs security = \"starttls\" or \"tls\"".into());
                    }
                    Some(pem)
                }
            };
            let port = port.unwrap_or(match security {
                Security::Starttls => 587,
                Security::Tls => 465,
                Security::None => 25,
            });
            Channel::Email {
                server,
                port,
                security,
                credentials,
                ca_pem,
                from,
                to,
            }
        }
        ChannelSpec::Mqtt {} => Channel::Mqtt,
    })
}

fn kind(spec: &RuleSpec, area: GridArea, nominal_hz: f64) -> Result<Kind, String> {
    let positive = |what: &str, v: Option<f64>| match v {
        Some(v) if v.is_finite() && v > 0.0 => Ok(v),
        Some(v) => Err(format!("{what} must be a positive number, not {v}")),
        None => Err(format!("a {} rule needs {what}", spec.kind)),
    };
    let duration = |s: &Option<String>, default_ms: u64| match s {
        None => Ok(Duration::from_millis(default_ms)),
        Some(s) => parse_duration(s),
    };
    // Which settings each kind takes; any other set is a mistake worth saying.
    let takes: &[&str] = match spec.kind.as_str() {
        "frequency" => &["limit_mhz", "hold"],
        "rocof" => &["limit_hz_per_s", "hold"],
        "grid_time" => &["limit_s"],
        "silent" => &["after", "devices"],
        "clock" => &["limit_s", "hold"],
        "server" => &["after"],
        other => {
            return Err(format!(
                "unknown kind {other:?}: one of frequency, rocof, grid_time, silent, clock, server"
            ));
        }
    };
    let set = [
        ("limit_mhz", spec.limit_mhz.is_some()),
        ("limit_hz_per_s", spec.limit_hz_per_s.is_some()),
        ("limit_s", spec.limit_s.is_some()),
        ("hold", spec.hold.is_some()),
        ("after", spec.after.is_some()),
        ("devices", spec.devices.is_some()),
    ];
    if let Some((name, _)) = set.iter().find(|(n, on)| *on && !takes.contains(n)) {
        return Err(format!(
            "a {} rule takes {}, not {name}",
            spec.kind,
            takes.join(" and ")
        ));
    }
    Ok(match spec.kind.as_str() {
        "frequency" => Kind::Frequency {
            limit_mhz: match spec.limit_mhz {
                Some(_) => positive("limit_mhz", spec.limit_mhz)?,
                None => ogm_grid::Bands::of(area, nominal_hz).limit_mhz,
            },
            hold: duration(&spec.hold, 2_000)?,
        },
        "rocof" => Kind::Rocof {
            limit: positive("limit_hz_per_s", spec.limit_hz_per_s)?,
            hold: duration(&spec.hold, 500)?,
        },
        "grid_time" => Kind::GridTime {
            limit_s: positive("limit_s", spec.limit_s)?,
        },
        "silent" => Kind::Silent {
            after: match &spec.after {
                Some(a) => parse_duration(a)?,
                None => return Err("a silent rule needs after".into()),
            },
            devices: spec
                .devices
                .iter()
                .flatten()
                .map(|d| DeviceId::new(d).map_err(|e| format!("device {d:?}: {e}")))
                .collect::<Result<_, _>>()?,
        },
        "clock" => Kind::Clock {
            limit_s: positive("limit_s", spec.limit_s)?,
            hold: duration(&spec.hold, 10_000)?,
        },
        _ => Kind::Server {
            after: duration(&spec.after, 60_000)?,
        },
    })
}

/// `500ms`, `2s`, `1.5s`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}: expected e.g. 500ms, 2s, 5m, 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("bad duration {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../deploy/alerts.example.toml");

    fn parse(text: &str) -> Result<Rules, String> {
        Rules::parse(text, GridArea::default(), 50.0, None)
    }

    #[test]
    fn the_example_file_is_valid() {
        let rules = parse(EXAMPLE).unwrap();
        assert_eq!(rules.rules.len(), 6);
        assert_eq!(
            rules.rules[0].kind,
            Kind::Frequency {
                limit_mhz: 200.0,
                hold: Duration::from_secs(2)
            }
        );
        assert!(rules.channels.contains_key("ops"));
    }

    #[test]
    fn the_frequency_rule_defaults_to_the_areas_normal_limits() {
        let r = parse("[[rules]]\nname = \"f\"\nkind = \"frequency\"\n").unwrap();
        assert_eq!(
            r.rules[0].kind,
            Kind::Frequency {
                limit_mhz: 200.0,
                hold: Duration::from_secs(2)
            }
        );
        assert_eq!(r.rules[0].max_per_hour, DEFAULT_MAX_PER_HOUR);
    }

    #[test]
    fn a_bad_file_is_refused_with_the_line_and_the_reason() {
        let cases = [
            (
                "[[rules]]\nname = \"f\"\nkind = \"frequncy\"\n",
                "line 2: rule \"f\": unknown kind",
            ),
            (
                "[[rules]]\nname = \"f\"\nkind = \"rocof\"\nafter = \"1s\"\nlimit_hz_per_s = 1\n",
                "takes limit_hz_per_s and hold, not after",
            ),
            (
                "[[rules]]\nname = \"f\"\nkind = \"rocof\"\nlimit_hz_per_s = -1\n",
                "positive",
            ),
            (
                "[[rules]]\nname = \"f\"\nkind = \"frequency\"\nhold = \"2 weeks\"\n",
                "duration",
            ),
            (
                "\n[[rules]]\nname = \"f\"\nkind = \"server\"\nchannels = [\"x\"]\n",
                "line 3: rule \"f\": no channel \"x\"",
            ),
            (
                "[channels.m]\nkind = \"email\"\nserver = \"h\"\nfrom = \"not an address\"\nto = [\"a@b.c\"]\n",
                "line 1: channel \"m\": address",
            ),
            (
                "[channels.w]\nkind = \"webhook\"\nurl = \"ftp://x\"\n",
                "http",
            ),
            ("[[rules]]\nname = \"F F\"\nkind = \"server\"\n", "name"),
            (
                "[[rules]]\nname = \"f\"\nkind = \"server\"\nsurprise = 1\n",
                "unknown field",
            ),
            (
                "dashboard_url = \"grid.example.org\"\n",
                "line 1: dashboard_url",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
