//! Open Grid Monitor's browser dashboard (Leptos, client-side rendered, built by Trunk).
//!
//! The page fetches `GET /api/config`, connects straight to the broker over MQTT/WebSocket,
//! subscribes to `{prefix}/#` and shows every device live; charts start filled from
//! `GET /api/history` and holes left by a lost link are backfilled from it. Live data never
//! passes through the server.
//!
//! Layout (pure modules build and test on the host; the rest is `wasm32` only):
//! - [`config`]: [`config::DashboardConfig`], the `/api/config` answer, parsed and checked.
//! - [`route`]: [`route::Route`], what is on screen as the URL's query string (view, device,
//!   range, theme, kiosk, live window, insight settings).
//! - [`mqtt_link`]: the MQTT 3.1.1 session and reconnect loop as a pure state machine
//!   (bytes, socket events and clock ticks in; packets and actions out).
//! - [`backoff`]: the retry delays (0.5 s doubling to 30 s, with jitter).
//! - [`devices`]: [`devices::DeviceStore`], bounded per-device state, liveness (last will,
//!   silence) and the counters of ignored messages, fed through `ogm_protocol`'s decoding.
//! - [`series`]: [`series::Series`], bounded min/mean/max time slots where history and live
//!   data meet.
//! - The grid figures (bands, RoCoF, grid time, histogram, quality, events, spread) come from
//!   `ogm_grid`, which the server can run too; the page only draws and formats them.
//! - [`logs`]: the bounded, de-duplicated log buffer.
//! - [`wire`]: the HTTP API's URLs and answers (history, logs, devices, export).
//! - [`chart`]: reducing series to pixel columns, describing charts, and (browser) drawing them
//!   with plotters.
//! - [`format`](mod@format): frequency bands, local times and the texts the page shows.
//! - `mqtt_ws` (browser): the only owner of the WebSocket and the link's timer.
//! - `api` (browser): `fetch` with a timeout, retried with backoff.
//! - `url` (browser): the address bar (`location`, `pushState`/`replaceState`).
//! - `app` (browser): the runtime: glue between link, API, stores and views; the one animation
//!   frame loop that updates the signals and draws the charts.
//! - `views` (browser): the Leptos components, one module per view.
//!
//! Invariants: nothing received from the network can panic the page (bad input is counted in
//! [`devices::Diagnostics`]); memory is bounded (devices, slots per series, log entries,
//! events, MQTT packet size); topics and payloads are only ever parsed by `ogm_protocol`;
//! charts are drawn at most once per animation frame, from the frame loop only; views hold no
//! data and release what they registered (canvases, pages) when they unmount.

pub mod backoff;
pub mod chart;
pub mod config;
pub mod devices;
pub mod format;
pub mod logs;
pub mod mqtt_link;
pub mod route;
pub mod series;
pub mod wire;

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
pub mod mqtt_ws;
#[cfg(target_arch = "wasm32")]
mod url;
#[cfg(target_arch = "wasm32")]
mod views;

/// Mounts the dashboard on `<body>`.
#[cfg(target_arch = "wasm32")]
pub fn mount() {
    leptos::mount::mount_to_body(app::App);
}
