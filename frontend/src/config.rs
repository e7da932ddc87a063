//! [`DashboardConfig`]: what `GET /api/config` tells the page, parsed and checked.

use ogm_protocol::GridArea;
use serde::Deserialize;

/// The server's answer to `GET /api/config`. Unknown fields are ignored so the server can grow.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DashboardConfig {
    /// The broker's MQTT-over-WebSocket URL, `ws://…` or `wss://…`.
    pub mqtt_ws_url: String,
    /// The read-only dashboard user; empty for none.
    #[serde(default)]
    pub mqtt_username: String,
    /// Its password; empty for none.
    #[serde(default)]
    pub mqtt_password: String,
    /// First topic level of every device topic.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Nominal grid frequency, Hz (50 or 60).
    #[serde(default = "default_nominal")]
    pub nominal_hz: f64,
    /// The synchronous area whose bands are drawn: `ce`, `gb` or `nordic` (an area this page
    /// does not know falls back to Continental Europe's, as from an older server).
    #[serde(default)]
    pub grid_area: String,
}

fn default_prefix() -> String {
    ogm_protocol::TOPIC_PREFIX.to_owned()
}

fn default_nominal() -> f64 {
    50.0
}

impl DashboardConfig {
    /// Parses and checks the JSON body; the error is a sentence for the page.
    pub fn from_json(body: &str) -> Result<Self, String> {
        let c: Self =
            serde_json::from_str(body).map_err(|e| format!("bad /api/config answer: {e}"))?;
        if !(c.mqtt_ws_url.starts_with("ws://") || c.mqtt_ws_url.starts_with("wss://")) {
            return Err(format!(
                "mqtt_ws_url must start with ws:// or wss://, not {:?}",
                c.mqtt_ws_url
            ));
        }
        if c.topic_prefix.is_empty()
            || c.topic_prefix.ends_with('/')
            || c.topic_prefix.contains(['+', '#'])
        {
            return Err(format!("bad topic_prefix {:?}", c.topic_prefix));
        }
        if !(c.nominal_hz.is_finite() && (40.0..=70.0).contains(&c.nominal_hz)) {
            return Err(format!(
                "nominal_hz {} is not a grid frequency",
                c.nominal_hz
            ));
        }
        Ok(c)
    }

    /// The synchronous area the server is set to.
    pub fn area(&self) -> GridArea {
        GridArea::parse(&self.grid_area).unwrap_or_default()
    }

    /// The username to send, if any.
    pub fn username(&self) -> Option<String> {
        Some(self.mqtt_username.clone()).filter(|s| !s.is_empty())
    }

    /// The password to send, if any.
    pub fn password(&self) -> Option<String> {
        Some(self.mqtt_password.clone()).filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_server_answer() {
        let c = DashboardConfig::from_json(
            r#"{"mqtt_ws_url":"ws://h:9001","mqtt_username":"ogm.dashboard","mqtt_password":"p","topic_prefix":"open_grid_monitor","nominal_hz":50,"extra":1}"#,
        )
        .unwrap();
        assert_eq!(c.nominal_hz, 50.0);
        assert_eq!(c.area(), GridArea::ContinentalEurope);
        assert_eq!(c.username().as_deref(), Some("ogm.dashboard"));
        let c = DashboardConfig::from_json(r#"{"mqtt_ws_url":"wss://h/mqtt","grid_area":"gb"}"#)
            .unwrap();
        assert_eq!(c.area(), GridArea::GreatBritain);
        assert_eq!(c.topic_prefix, "open_grid_monitor");
        assert_eq!((c.username(), c.password()), (None, None));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "",
            "{}",
            r#"{"mqtt_ws_url":"http://h"}"#,
            r#"{"mqtt_ws_url":"ws://h","topic_prefix":"a/#"}"#,
            r#"{"mqtt_ws_url":"ws://h","nominal_hz":0}"#,
        ] {
            assert!(DashboardConfig::from_json(bad).is_err(), "{bad}");
        }
    }
}
