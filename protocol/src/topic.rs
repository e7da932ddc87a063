//! Topics: `open_grid_monitor/{device_id}/{measurement|status|logs}`.
//!
//! Building and parsing live only here, so no other crate spells a topic by hand.

use alloc::format;
use alloc::string::String;

use crate::device_id::{DeviceId, DeviceIdError};

/// The first topic level of everything Open Grid Monitor publishes.
pub const TOPIC_PREFIX: &str = "open_grid_monitor";

/// The server's own topics, outside the devices' tree (no device id can be `ogm_server/...`'s
/// first level, and no device may publish there): `ogm_server/status` (`online`, or
/// `offline` by its last will), `ogm_server/grid` (the grid summary, once a second) and
/// `ogm_server/alerts/{rule}/{subject}` (each alert's state, retained).
pub const SERVER_PREFIX: &str = "ogm_server";

/// `ogm_server/status`.
pub fn server_status() -> String {
    format!("{SERVER_PREFIX}/status")
}

/// `ogm_server/grid`.
pub fn server_grid() -> String {
    format!("{SERVER_PREFIX}/grid")
}

/// `ogm_server/alerts/{rule}/{subject}`.
pub fn server_alert(rule: &str, subject: &str) -> String {
    format!("{SERVER_PREFIX}/alerts/{rule}/{subject}")
}

/// What a message on a device topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Measurement,
    Status,
    Logs,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Measurement, Kind::Status, Kind::Logs];

    /// The last topic level for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Measurement => "measurement",
            Kind::Status => "status",
            Kind::Logs => "logs",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A parsed device topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic {
    pub device_id: DeviceId,
    pub kind: Kind,
}

/// Why a topic is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic does not start with {0:?}")]
    WrongPrefix(String),
    #[error("topic must have three levels: prefix/device_id/kind")]
    WrongLevels,
    #[error("bad device id in topic: {0}")]
    DeviceId(#[from] DeviceIdError),
    #[error("unknown topic kind {0:?}; expected measurement, status or logs")]
    UnknownKind(String),
}

impl Topic {
    pub fn new(device_id: DeviceId, kind: Kind) -> Self {
        Self { device_id, kind }
    }

    /// Parses `topic`, which must be `{prefix}/{device_id}/{kind}`.
    pub fn parse(prefix: &str, topic: &str) -> Result<Self, TopicError> {
        let rest = topic
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| TopicError::WrongPrefix(String::from(prefix)))?;
        let mut levels = rest.split('/');
        let (Some(device), Some(kind), None) = (levels.next(), levels.next(), levels.next()) else {
            return Err(TopicError::WrongLevels);
        };
        let device_id = DeviceId::new(device)?;
        let kind = Kind::parse(kind).ok_or_else(|| TopicError::UnknownKind(String::from(kind)))?;
        Ok(Self { device_id, kind })
    }

    /// The topic string under `prefix`.
    pub fn to_topic(&self, prefix: &str) -> String {
        format!("{prefix}/{}/{}", self.device_id, self.kind.as_str())
    }
}

/// The filter for one kind from every device: `{prefix}/+/{kind}`.
pub fn filter(prefix: &str, kind: Kind) -> String {
    format!("{prefix}/+/{}", kind.as_str())
}

/// The filter for everything under `prefix`: `{prefix}/#`.
pub fn filter_all(prefix: &str) -> String {
    format!("{prefix}/#")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for kind in Kind::ALL {
            let t = Topic::new(DeviceId::new("dev-1").unwrap(), kind);
            let s = t.to_topic(TOPIC_PREFIX);
            assert_eq!(Topic::parse(TOPIC_PREFIX, &s), Ok(t));
        }
        assert_eq!(
            Topic::new(DeviceId::new("a").unwrap(), Kind::Logs).to_topic(TOPIC_PREFIX),
            "open_grid_monitor/a/logs"
        );
    }

    #[test]
    fn rejects_foreign_topics() {
        let p = TOPIC_PREFIX;
        assert!(matches!(
            Topic::parse(p, "other/a/measurement"),
            Err(TopicError::WrongPrefix(_))
        ));
        assert!(matches!(
            Topic::parse(p, "open_grid_monitorx/a/measurement"),
            Err(TopicError::WrongPrefix(_))
        ));
        assert_eq!(
            Topic::parse(p, "open_grid_monitor/a"),
            Err(TopicError::WrongLevels)
        );
        assert_eq!(
            Topic::parse(p, "open_grid_monitor/a/measurement/x"),
            Err(TopicError::WrongLevels)
        );
        assert!(matches!(
            Topic::parse(p, "open_grid_monitor//measurement"),
            Err(TopicError::DeviceId(_))
        ));
        assert!(matches!(
            Topic::parse(p, "open_grid_monitor/ogm.dashboard/status"),
            Err(TopicError::DeviceId(_))
        ));
        assert_eq!(
            Topic::parse(p, "open_grid_monitor/a/weather"),
            Err(TopicError::UnknownKind("weather".into()))
        );
    }

    #[test]
    fn filters() {
        assert_eq!(
            filter(TOPIC_PREFIX, Kind::Status),
            "open_grid_monitor/+/status"
        );
        assert_eq!(filter_all(TOPIC_PREFIX), "open_grid_monitor/#");
    }
}
