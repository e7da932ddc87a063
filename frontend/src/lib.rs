//! Open Grid Monitor's browser dashboard (Leptos, client-side rendered, built by Trunk).
//!
//! The page fetches `GET /api/config`, connects straight to the broker over MQTT/WebSocket,
//! subscribes to `{prefix}/#` and shows every device live. Live data never passes through the
//! server.
//!
//! Layout (pure modules build and test on the host; the rest is `wasm32` only):
//! - [`config`]: [`config::DashboardConfig`], the `/api/config` answer, parsed and checked.
//! - [`mqtt_link`]: the MQTT 3.1.1 session and reconnect loop as a pure state machine
//!   (bytes, socket events and clock ticks in; packets and actions out).
//! - [`backoff`]: the reconnect delays (0.5 s doubling to 30 s, with jitter).
//! - [`devices`]: [`devices::DeviceStore`], bounded per-device state and the counters of ignored
//!   messages, fed through `ogm_protocol`'s topic and payload decoding.
//! - [`series`]: the bounded ring buffer behind each device's chart line.
//! - [`chart`]: min/max reduction of the ring buffers for the canvas, and (browser) drawing
//!   them with plotters.
//! - [`format`]: frequency bands and the texts the page shows.
//! - `mqtt_ws` (browser): the only owner of the WebSocket and the link's timer.
//! - `api` (browser): `fetch` of the configuration.
//! - `app` (browser): the Leptos components and the glue between link, store and views.
//!
//! Invariants: nothing received from the network can panic the page (bad input is counted in
//! [`devices::Diagnostics`]); memory is bounded (devices, points per device, MQTT packet size);
//! topics and payloads are only ever parsed by `ogm_protocol`.

pub mod backoff;
pub mod chart;
pub mod config;
pub mod devices;
pub mod format;
pub mod mqtt_link;
pub mod series;

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
pub mod mqtt_ws;

/// Mounts the dashboard on `<body>`.
#[cfg(target_arch = "wasm32")]
pub fn mount() {
    leptos::mount::mount_to_body(app::App);
}
