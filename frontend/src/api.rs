//! The server's HTTP API as the page uses it: `GET /api/config`. Browser only.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::Response;

use crate::config::DashboardConfig;
use crate::mqtt_ws::js_text;

/// Where the page finds its configuration (same origin).
pub const CONFIG_PATH: &str = "/api/config";

/// Fetches and checks the dashboard configuration; the error is a sentence for the page.
pub async fn fetch_config() -> Result<DashboardConfig, String> {
    let window = web_sys::window().ok_or("no window")?;
    let response = JsFuture::from(window.fetch_with_str(CONFIG_PATH))
        .await
        .map_err(|e| format!("GET {CONFIG_PATH}: {}", js_text(&e)))?;
    let response: Response = response
        .dyn_into()
        .map_err(|_| format!("GET {CONFIG_PATH}: not a response"))?;
    if !response.ok() {
        return Err(format!("GET {CONFIG_PATH}: HTTP {}", response.status()));
    }
    let text = response
        .text()
        .map_err(|e| format!("GET {CONFIG_PATH}: {}", js_text(&e)))?;
    let text = JsFuture::from(text)
        .await
        .map_err(|e| format!("GET {CONFIG_PATH}: {}", js_text(&e)))?
        .as_string()
        .ok_or_else(|| format!("GET {CONFIG_PATH}: body is not text"))?;
    DashboardConfig::from_json(&text)
}

/// Resolves after `ms` milliseconds.
pub async fn sleep_ms(ms: u64) {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(
                &resolve,
                i32::try_from(ms).unwrap_or(i32::MAX),
            );
        }
    });
    let _ = JsFuture::from(promise).await;
}
