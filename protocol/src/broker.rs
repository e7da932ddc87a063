//! Where a broker listens, as the server (`OGM_MQTT_URL`) and the simulator (`OGM_SIM_BROKER`)
//! are told: `mqtt://host:port`, `tcp://host:port`, `host:port`, `host`, `[::1]:1883`; port
//! 1883 when omitted. Parsed once at start, so a bad address stops a process at once.

use alloc::borrow::ToOwned;
use alloc::string::String;
use core::fmt;
use core::str::FromStr;

/// The MQTT port when an address names none.
pub const DEFAULT_PORT: u16 = 1883;

/// A broker's plain-TCP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
}

/// Why a string is not a broker address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerAddrError {
    #[error("unsupported scheme {0:?}: only mqtt:// and tcp:// (plain TCP) are supported")]
    Scheme(String),
    #[error("no usable host (empty, or with a space, '/', '@' or a bracket)")]
    NoHost,
    #[error("bad port {0:?} (1 to 65535)")]
    Port(String),
}

impl FromStr for BrokerAddr {
    type Err = BrokerAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let rest = match s.split_once("://") {
            Some(("mqtt" | "tcp", rest)) => rest,
            Some((scheme, _)) => return Err(BrokerAddrError::Scheme(scheme.to_owned())),
            None => s,
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            // `[::1]` or `[::1]:1884`: the colons inside the brackets are the address's.
            let (host, after) = v6.split_once(']').ok_or(BrokerAddrError::NoHost)?;
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').unwrap_or(p))),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.contains(['/', ' ', '@', '[', ']']) {
            return Err(BrokerAddrError::NoHost);
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| BrokerAddrError::Port(p.to_owned()))?,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "mqtt://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "mqtt://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn addresses_in_every_spelling() {
        let cases = [
            ("mqtt://127.0.0.1:1883", "127.0.0.1", 1883),
            ("tcp://mosquitto:1884/", "mosquitto", 1884),
            ("mqtt://broker", "broker", 1883),
            ("localhost", "localhost", 1883),
            ("10.0.0.2:1999", "10.0.0.2", 1999),
            ("mqtt://[::1]:18999", "::1", 18999),
            ("tcp://[::1]:1884", "::1", 1884),
            ("[::1]", "::1", 1883),
        ];
        for (s, host, port) in cases {
            let b: BrokerAddr = s.parse().unwrap();
            assert_eq!((b.host.as_str(), b.port), (host, port), "{s}");
        }
        assert_eq!(
            "tcp://[::1]:1884"
                .parse::<BrokerAddr>()
                .unwrap()
                .to_string(),
            "mqtt://[::1]:1884"
        );
    }

    #[test]
    fn bad_addresses_say_why() {
        let err = |s: &str| s.parse::<BrokerAddr>().unwrap_err();
        assert_eq!(err("ws://x:9001"), BrokerAddrError::Scheme("ws".into()));
        assert_eq!(
            err("http://broker:1883"),
            BrokerAddrError::Scheme("http".into())
        );
        for no_host in ["mqtt://", "mqtt://:1883", "not a url", "user@host", "[::1"] {
            assert_eq!(err(no_host), BrokerAddrError::NoHost, "{no_host}");
        }
        for port in ["x:0", "x:70000", "mqtt://h:99999", "mqtt://h:x", "[::1]x"] {
            assert!(matches!(err(port), BrokerAddrError::Port(_)), "{port}");
        }
    }
}
