//! Helpers for the browser tests: payloads an outside device publishes, JavaScript expressions
//! that read the dashboard, and in-page navigation, waiting and screenshots on a [`Browser`].
//!
//! Everything here is for tests: a helper that fails panics with the error.

use std::time::Duration;

use serde_json::Value;

use crate::browser::Browser;
pub use crate::fixtures::{log, measurement, now_us, topic};

/// True while the page's MQTT link is up.
pub const CONNECTED: &str =
    r#"document.querySelector('#conn-state')?.dataset.state === 'connected'"#;
/// True while the page's MQTT link is down.
pub const NOT_CONNECTED: &str =
    r#"document.querySelector('#conn-state')?.dataset.state !== 'connected'"#;

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
