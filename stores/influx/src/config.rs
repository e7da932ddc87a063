//! [`InfluxConfig`]: where InfluxDB is, what to write into, and where to spool; [`FluxLimits`]:
//! what one proxied Flux query may cost.

use std::path::PathBuf;
use std::time::Duration;

/// The bucket the seed's token step names.
pub const DEFAULT_BUCKET: &str = "open_grid_monitor";

/// How the InfluxDB store connects and spools.
#[derive(Clone, PartialEq, Eq)]
pub struct InfluxConfig {
    /// Base URL of InfluxDB 2, e.g. `http://127.0.0.1:8086`. No path: the client puts its
    /// own (`/api/v2/...`) in place of any. `https://` needs the crate's `rustls` feature.
    pub url: String,
    /// Token with write access to the bucket (empty for an InfluxDB without auth).
    pub token: String,
    /// A read-only token for queries (history, logs, devices, export, the Flux proxy). When
    /// `None` (or the same as `token`), the store's own queries use the write token and the
    /// Flux proxy is off: it never runs users' queries with a token that can write.
    pub read_token: Option<String>,
    /// Organisation name.
    pub org: String,
    /// Bucket name; default `open_grid_monitor`.
    pub bucket: String,
    /// Value of the `host` tag on every point; default the machine's hostname. Replicas of one
    /// deployment should share it, so a redelivery to another replica overwrites the same
    /// point instead of adding one in another series. No control characters or backslashes.
    pub host: String,
    /// Folder of the on-disk spool used while InfluxDB is unreachable.
    pub spool_dir: PathBuf,
    /// Largest spool, in bytes; beyond it `write` fails with `Unavailable`.
    pub spool_max_bytes: u64,
    /// What one proxied Flux query may cost.
    pub flux: FluxLimits,
}

/// What one query of the Flux proxy may cost. A query past a limit is stopped and InfluxDB's
/// request cancelled; once the answer has started, it ends with an annotated-CSV error table
/// (`error,reference`), the way InfluxDB reports errors in the middle of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FluxLimits {
    /// From the request to the answer's last byte (parsing the query included).
    pub timeout: Duration,
    /// Largest answer passed on, in bytes; it is cut at the end of a CSV row.
    pub max_bytes: u64,
    /// Longest span a `range()` after `from()` may cover; `None`: any, as long as the query
    /// gives one.
    pub max_range: Option<Duration>,
}

impl Default for FluxLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_bytes: 8 * 1024 * 1024,
            max_range: Some(Duration::from_secs(31 * 86_400)),
        }
    }
}

impl InfluxConfig {
    /// A config with the defaults for everything but where InfluxDB is and how to get in.
    pub fn new(url: impl Into<String>, token: impl Into<String>, org: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            org: org.into(),
            ..Self::default()
        }
    }

    /// Checks what [`crate::InfluxStore::open`] cannot work with.
    pub(crate) fn validate(&self) -> Result<reqwest::Url, String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("InfluxDB URL {:?} is not a URL: {e}", self.url))?;
        match url.scheme() {
            "http" => {}
            "https" if cfg!(feature = "rustls") => {}
            "https" => {
                return Err(format!(
                    "InfluxDB URL {:?}: https needs ogm-store-influx's `rustls` feature",
                    self.url
                ));
            }
            other => return Err(format!("InfluxDB URL scheme {other:?} is not http(s)")),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("InfluxDB URL {:?} has no host", self.url));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "InfluxDB URL {:?} must not have a path or query: the client replaces the path",
                self.url
            ));
        }
        if self.org.is_empty() {
            return Err("InfluxDB organisation is empty".into());
        }
        if self.bucket.is_empty() {
            return Err("InfluxDB bucket is empty".into());
        }
        if self.host.is_empty() || self.host.chars().any(|c| c.is_control() || c == '\\') {
            return Err(format!(
                "host tag {:?} must be non-empty, without control characters or backslashes",
                self.host
            ));
        }
        if self.spool_max_bytes == 0 {
            return Err("spool_max_bytes is 0".into());
        }
        if self.flux.timeout.is_zero() || self.flux.max_bytes == 0 {
            return Err("the Flux proxy's timeout and answer size limit must be above 0".into());
        }
        Ok(url)
    }
}

impl Default for InfluxConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8086".into(),
            token: String::new(),
            read_token: None,
            org: "open_grid_monitor".into(),
            bucket: DEFAULT_BUCKET.into(),
            host: default_host(),
            spool_dir: PathBuf::from("data/influx-spool"),
            spool_max_bytes: 1024 * 1024 * 1024,
            flux: FluxLimits::default(),
        }
    }
}

impl std::fmt::Debug for InfluxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &str| if s.is_empty() { "" } else { "<set>" };
        f.debug_struct("InfluxConfig")
            .field("url", &self.url)
            .field("token", &secret(&self.token))
            .field("read_token", &self.read_token.as_deref().map(secret))
            .field("org", &self.org)
            .field("bucket", &self.bucket)
            .field("host", &self.host)
            .field("spool_dir", &self.spool_dir)
            .field("spool_max_bytes", &self.spool_max_bytes)
            .field("flux", &self.flux)
            .finish()
    }
}

/// The machine's hostname (Linux's `/proc`, `/etc/hostname`, then `$HOSTNAME`), or
/// `"localhost"`; characters a `host` tag may not hold are removed.
pub fn default_host() -> String {
    let candidates = [
        std::fs::read_to_string("/proc/sys/kernel/hostname").ok(),
        std::fs::read_to_string("/etc/hostname").ok(),
        std::env::var("HOSTNAME").ok(),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| !c.is_control() && *c != '\\')
                .collect::<String>()
        })
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let c = InfluxConfig::new("http://influx:8086", "t", "org");
        assert_eq!(c.bucket, "open_grid_monitor");
        assert!(!c.host.is_empty());
        assert!(c.validate().is_ok());
        assert!(
            !format!("{c:?}").contains("\"t\""),
            "tokens stay out of logs"
        );
        for (bad, why) in [
            (
                InfluxConfig {
                    url: "influx:8086".into(),
                    ..c.clone()
                },
                "scheme",
            ),
            (
                InfluxConfig {
                    url: "not a url".into(),
                    ..c.clone()
                },
                "not a URL",
            ),
            (
                InfluxConfig {
                    url: "http://influx:8086/prefix".into(),
                    ..c.clone()
                },
                "path",
            ),
            (
                InfluxConfig {
                    host: "a\nb".into(),
                    ..c.clone()
                },
                "host tag",
            ),
            (
                InfluxConfig {
                    bucket: String::new(),
                    ..c.clone()
                },
                "bucket",
            ),
        ] {
            let e = bad.validate().unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        assert!(
            InfluxConfig {
                url: "http://influx:8086/".into(),
                ..c
            }
            .validate()
            .is_ok()
        );
    }
}
