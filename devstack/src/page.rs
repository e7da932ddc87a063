//! Helpers for the browser tests: payloads an outside device publishes, JavaScript expressions
//! that read the dashboard, and in-page navigation, waiting and screenshots on a [`Browser`].
//!
//! Everything here is for tests: a helper that fails panics with the error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ogm_protocol::{DeviceId, Kind, LogEntry, LogLevel, Measurement, Payload, TOPIC_PREFIX, Topic};
use serde_json::Value;

use crate::browser::Browser;

/// One second in µs, the unit of payload timestamps.
const S: i64 = 1_000_000;

/// True while the page's MQTT link is up.
pub const CONNECTED: &str =
    r#"document.querySelector('#conn-state')?.dataset.state === 'connected'"#;
/// True while the page's MQTT link is down.
pub const NOT_CONNECTED: &str =
    r#"document.querySelector('#conn-state')?.dataset.state !== 'connected'"#;

/// The wall clock in µs since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The topic of a device's messages of `kind`; `id` must be a valid device id.
pub fn topic(id: &str, kind: Kind) -> String {
    let id = DeviceId::new(id).unwrap_or_else(|e| panic!("{id}: {e}"));
    Topic::new(id, kind).to_topic(TOPIC_PREFIX)
}

/// A measurement payload at `timestamp` (µs) with `frequency`; voltage, current and power drift
/// slowly with the time (periods of 10, 15 and 20 minutes), so every chart has a shape.
pub fn measurement(timestamp: i64, frequency: f64) -> Vec<u8> {
    Payload::Measurement(Measurement {
        timestamp,
        frequency,
        voltage: 230.0 + (timestamp / S % 600) as f64 * 0.005,
        current: 2.0 + (timestamp / S % 900) as f64 * 0.001,
        power: 460.0 + (timestamp / S % 1200) as f64 * 0.05,
    })
    .to_json()
}

/// A log entry payload of module `test`.
pub fn log(timestamp: i64, level: LogLevel, message: &str) -> Vec<u8> {
    Payload::Logs(LogEntry {
        timestamp,
        level,
        message: message.into(),
        module: "test".into(),
    })
    .to_json()
}

/// JavaScript: the number of elements matching a CSS selector.
pub fn count(selector: &str) -> String {
    format!("document.querySelectorAll('{selector}').length")
}

/// JavaScript: an attribute of the first element matching a CSS selector, or null.
pub fn attr(selector: &str, name: &str) -> String {
    format!(
        "(() => {{ const e = document.querySelector('{selector}'); return e && e.getAttribute('{name}'); }})()"
    )
}

/// CSS selector of a device's card on the overview.
pub fn card(id: &str) -> String {
    format!(".device-card[data-device-id=\"{id}\"]")
}

/// JavaScript: the device page's chart element of `field` (null until it is there).
pub fn chart(field: &str) -> String {
    format!("document.querySelector('.field-chart[data-field=\"{field}\"]')")
}

/// Navigates inside the page (no reload), as a link would: `query` replaces the URL's query.
pub async fn go(browser: &Browser, query: &str) {
    browser
        .run(&format!(
            "history.pushState(null, '', location.pathname + '{query}'); dispatchEvent(new PopStateEvent('popstate'));"
        ))
        .await
        .unwrap_or_else(|e| panic!("navigating to {query}: {e}"));
}

/// [`Browser::wait_for`] that panics on a timeout: polls `expr` until it is truthy, returns it.
pub async fn wait(browser: &Browser, what: &str, expr: &str, timeout: Duration) -> Value {
    browser
        .wait_for(what, expr, timeout)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Sets the `<select>` `#id` to `value` as a user would, once that option is there, firing the
/// `change` event the view listens to.
pub async fn select(browser: &Browser, id: &str, value: &str) {
    wait(
        browser,
        &format!("the option {value:?} of #{id}"),
        &format!("!!document.querySelector('#{id} option[value=\"{value}\"]')"),
        Duration::from_secs(20),
    )
    .await;
    browser
        .run(&format!(
            "const s = document.querySelector('#{id}'); s.value = '{value}'; s.dispatchEvent(new Event('change', {{ bubbles: true }}));"
        ))
        .await
        .unwrap_or_else(|e| panic!("selecting {value:?} in #{id}: {e}"));
}

/// Saves a screenshot once the charts have drawn ([`Browser::settled_screenshot`]).
pub async fn shot(browser: &Browser, name: &str) {
    browser
        .settled_screenshot(name)
        .await
        .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
}

/// Clicks the first element matching a CSS selector.
pub async fn click(browser: &Browser, selector: &str) {
    let quoted = Value::String(selector.to_owned());
    browser
        .run(&format!("document.querySelector({quoted}).click()"))
        .await
        .unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
}

/// Waits until the page's MQTT link is back after an outage (its reconnect backs off, so up to
/// a minute).
pub async fn wait_reconnected(browser: &Browser) {
    wait(
        browser,
        "the reconnection",
        CONNECTED,
        Duration::from_secs(60),
    )
    .await;
}
