//! What the server watched, asked every [`POLL_MS`] for as long as the page is open: its alerts
//! for the banner and the alert history, and the grid events it recorded in the live window
//! for the live charts' marks (those from before the page opened, too). A failed ask keeps the
//! last answer (the banner must not vanish because the server blinked); a server with no
//! alert rules is asked no more about alerts.

use leptos::prelude::*;

use crate::api;
use crate::wire::{AlertsAnswer, EventParams, EventsAnswer, api_url, path};

use super::frame::{now_us, schedule_frame};
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

/// Most events asked for one live window.
const WINDOW_EVENTS: u32 = 200;

/// The server's events in the live window, for the live charts' marks.
pub(super) async fn poll_window_events() {
    loop {
        let Some(window) = with_rt(|rt| rt.ui.route.with_untracked(|r| r.window_us)) else {
            return;
        };
        let now = now_us();
        let url = EventParams::url(None, now - window, now, WINDOW_EVENTS);
        if let Ok(text) = api::get_text(&url).await
            && let Ok(a) = EventsAnswer::from_json(&text)
        {
            let spans: Vec<(i64, i64)> = a
                .events
                .iter()
                .map(|e| (e.start_us, e.end_us.unwrap_or(e.last_us)))
                .collect();
            with_rt(|rt| {
                if rt.pages.window_events != spans {
                    rt.pages.window_events = spans;
                    rt.frame.chart_dirty = true;
                }
            });
            schedule_frame();
        }
        api::sleep_ms(POLL_MS).await;
    }
}
