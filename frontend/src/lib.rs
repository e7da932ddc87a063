//! Open Grid Monitor's browser dashboard (Leptos, client-side rendered, built by Trunk).
//!
//! The page fetches `GET /api/config`, connects straight to the broker over MQTT/WebSocket,
//! subscribes to `{prefix}/#` and shows every device live; charts start filled from
//! `GET /api/history` and holes left by a lost link are backfilled from it. Live data never
//! passes through the server.
//!
//! Layout. Imports run one way: this root → `views` → `state`, `runtime::commands` and the
//! pure modules; `runtime` → `state`, the browser adapters and the pure modules. Nothing but
//! this root imports `views`.
//!
//! Pure modules (they build and are tested on the host):
//! - [`route`]: [`route::Route`], what is on screen as the URL's query string (view, device,
//!   range, theme, kiosk, live window, insight settings).
//! - [`mqtt_link`]: the MQTT 3.1.1 session and reconnect loop as a state machine (bytes,
//!   socket events and clock ticks in; packets and actions out).
//! - [`backoff`]: the retry delays (0.5 s doubling to 30 s, with jitter).
//! - [`devices`]: [`devices::DeviceStore`], bounded per-device state, liveness (last will,
//!   silence) and the counters of ignored messages, fed through `ogm_protocol`'s decoding.
//! - [`series`]: [`series::Series`], bounded min/mean/max time slots where history and live
//!   data meet.
//! - [`figures`]: the insight view's figures and event list from the stores; the grid analysis
//!   itself (bands, RoCoF, grid time, histogram, quality, events, spread) is `ogm_grid`'s,
//!   which the server can run too.
//! - [`logs`]: the bounded, de-duplicated log buffer.
//! - [`wire`]: the HTTP API as the page reads it: `ogm_protocol::http`'s paths, URLs and
//!   answers (the server answers with the same types), history read into [`series`] samples.
//! - [`chart`]: reducing series to pixel columns, axes, the crowd of many devices, the bands'
//!   marks and field ranges, described as a `ChartSpec`; its `canvas` module (browser) draws
//!   it with plotters.
//! - [`format`](mod@format): frequency bands, local times and the texts the page shows.
//!
//! Browser only:
//! - `state`: the reactive state the views read ([`state::Ui`], given as context).
//! - `runtime`: the runtime in rooms (the link, history fills, logs, the frame scheduler and
//!   card throttle, pages and canvases); `runtime::commands` is all that views call.
//! - `views`: the Leptos components, one module per view.
//! - `mqtt_ws` (the WebSocket), `api` (fetch), `url` (the address bar and `<html>`) and
//!   `chart`'s `canvas`: the only modules besides the runtime and views that touch browser APIs.
//!
//! Invariants: nothing received from the network can panic the page (bad input is counted in
//! [`devices::Diagnostics`]); memory is bounded (devices, slots per series, log entries,
//! events, MQTT packet size); topics and payloads are only ever parsed by `ogm_protocol`;
//! charts are drawn at most once per animation frame, from the frame loop only; views hold no
//! data and release what they registered (canvases, pages) when they unmount.

pub mod backoff;
pub mod chart;
pub mod devices;
pub mod figures;
pub mod format;
pub mod logs;
pub mod mqtt_link;
pub mod route;
pub mod series;
pub mod wire;

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
pub mod mqtt_ws;
#[cfg(target_arch = "wasm32")]
mod runtime;
#[cfg(target_arch = "wasm32")]
mod state;
#[cfg(target_arch = "wasm32")]
mod url;
// Leptos' `#[component]` makes `pub` items beside each component whatever its visibility.
#[cfg(target_arch = "wasm32")]
#[allow(unreachable_pub)]
mod views;

/// Mounts the dashboard on `<body>`: the composition root. Makes the page's state from the
/// address bar, starts the runtime on it and mounts the shell that reads it.
#[cfg(target_arch = "wasm32")]
pub fn mount() {
    use leptos::prelude::*;
    leptos::mount::mount_to_body(|| {
        let ui = state::Ui::new(url::current(), runtime::now_ms(), runtime::tz_offset_min());
        provide_context(ui);
        runtime::start(ui);
        view! { <views::Shell /> }
    });
}
