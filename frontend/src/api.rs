//! The server's HTTP API as the page calls it: `fetch` with a timeout, and retrying with
//! backoff for as long as the caller still wants the answer. Browser only; the URLs and the
//! answers' shapes are in [`crate::wire`].

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, RequestInit, Response};

use crate::backoff::Backoff;
use crate::mqtt_ws::js_text;
use crate::wire::{self, ConfigAnswer, ErrorAnswer, path};

/// A request that takes longer than this is abandoned, ms.
pub(crate) const TIMEOUT_MS: u64 = 15_000;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FetchError {
    /// A sentence for the page.
    pub message: String,
    /// The server refused the request itself (4xx, or 501): asking again will not help.
    pub permanent: bool,
}

impl From<String> for FetchError {
    fn from(message: String) -> Self {
        Self {
            message,
            permanent: false,
        }
    }
}

impl From<&str> for FetchError {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

/// `GET url` and its body as text.
pub(crate) async fn get_text(url: &str) -> Result<String, FetchError> {
    let window = web_sys::window().ok_or("no window")?;
    let init = RequestInit::new();
    let abort = AbortController::new().ok();
    if let Some(a) = &abort {
        init.set_signal(Some(&a.signal()));
        let a = a.clone();
        leptos::prelude::set_timeout(
            move || a.abort(),
            std::time::Duration::from_millis(TIMEOUT_MS),
        );
    }
    let response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(|e| format!("GET {url}: {}", js_text(&e)))?;
    let response: Response = response
        .dyn_into()
        .map_err(|_| format!("GET {url}: not a response"))?;
    let text = response
        .text()
        .map_err(|e| format!("GET {url}: {}", js_text(&e)))?;
    let text = JsFuture::from(text)
        .await
        .map_err(|e| format!("GET {url}: {}", js_text(&e)))?
        .as_string()
        .ok_or_else(|| format!("GET {url}: body is not text"))?;
    if !response.ok() {
        let detail = serde_json::from_str::<ErrorAnswer>(&text)
            .map(|e| e.error)
            .unwrap_or_default();
        return Err(FetchError {
            message: format!("GET {url}: HTTP {} {detail}", response.status()),
            // 501: this server's store cannot answer it (the events need the embedded store).
            permanent: (400..500).contains(&response.status()) || response.status() == 501,
        });
    }
    Ok(text)
}

/// Fetches and checks the dashboard configuration.
pub(crate) async fn fetch_config() -> Result<ConfigAnswer, String> {
    let url = wire::api_url(path::CONFIG);
    ConfigAnswer::from_json(&get_text(&url).await.map_err(|e| e.message)?)
}

/// `GET url`, parsed by `parse`, retried with backoff until it works, the server refuses the
/// request (4xx), or `wanted()` turns false (the view that asked is gone). `on_error` hears each
/// failure and when the next try is due.
pub(crate) async fn get_retrying<T>(
    url: &str,
    parse: impl Fn(&str) -> Result<T, String>,
    wanted: impl Fn() -> bool,
    on_error: impl Fn(&str, f64),
    seed: u64,
) -> Option<T> {
    let mut parsed = None;
    let mut take = |text: &str| parse(text).map(|v| parsed = Some(v));
    get_until_taken(url, &mut take, &wanted, &on_error, seed).await;
    parsed
}

/// [`get_retrying`]'s loop, not generic: one copy in the binary whatever the answers' types.
/// True once `take` accepted an answer.
async fn get_until_taken(
    url: &str,
    take: &mut dyn FnMut(&str) -> Result<(), String>,
    wanted: &dyn Fn() -> bool,
    on_error: &dyn Fn(&str, f64),
    seed: u64,
) -> bool {
    let mut backoff = Backoff::new(seed);
    loop {
        if !wanted() {
            return false;
        }
        let result = match get_text(url).await {
            Ok(t) => take(&t).map_err(FetchError::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return true,
            Err(e) if e.permanent => return false,
            Err(e) => {
                let delay = backoff.next_delay_ms();
                on_error(&e.message, js_sys::Date::now() + delay as f64);
                sleep_ms(delay).await;
            }
        }
    }
}

/// Resolves after `ms` milliseconds.
pub(crate) async fn sleep_ms(ms: u64) {
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
