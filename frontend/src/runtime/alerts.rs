//! The server's alerts for the banner and the alert history: asked every [`POLL_MS`] for as
//! long as the page is open. A failed ask keeps the last answer (the banner must not vanish
//! because the server blinked); a server with no alert rules is asked no more.

use leptos::prelude::*;

use crate::api;
use crate::wire::{AlertsAnswer, api_url, path};

use super::with_rt;

/// How often the page asks for the alerts.
pub(crate) const POLL_MS: u64 = 10_000;

pub(super) async fn poll() {
    let Some(ui) = with_rt(|rt| rt.ui) else {
        return;
    };
    let url = api_url(path::ALERTS);
    loop {
        if let Ok(text) = api::get_text(&url).await
            && let Ok(a) = AlertsAnswer::from_json(&text)
        {
            let enabled = a.enabled;
            if ui.alerts.with_untracked(|old| old.as_ref() != Some(&a)) {
                ui.alerts.set(Some(a));
            }
            if !enabled {
                return;
            }
        }
        api::sleep_ms(POLL_MS).await;
    }
}
