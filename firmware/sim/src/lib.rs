//! Open Grid Monitor device simulator: a fleet of virtual meters on one simulated grid, each an
//! MQTT client publishing exactly what a real board publishes.
//!
//! Layout:
//! - [`config`]: flags and environment variables ([`Config`]), with their validation.
//! - [`grid`]: the physics, pure and seeded: the shared grid frequency ([`grid::GridModel`],
//!   with generator-trip [`grid::Step`]s) and each board's readings ([`grid::DeviceModel`]).
//! - [`board`]: [`board::SimBoard`], one board running the firmware core
//!   (`ogm-firmware-core`) on simulated hardware: ZX edges from the grid with an ESP32's timing
//!   jitter through the core's frequency estimator, a simulated ADE7953 read by the core's
//!   driver, the core's offline buffer, schedule and payloads.
//! - [`mqtt`]: one [`mqtt::MqttLink`] per device, the only code that talks to the broker
//!   (connect, last will, reconnect with backoff, publish without blocking).
//! - [`fleet`]: [`run`], the clock that ties them together, and the clean shutdown.
//!
//! Invariants: topics and payloads come only from `ogm-protocol`, through the firmware core, so
//! the simulator sends what a board sends; the physics does no I/O and
//! reads no clock; a device writes only under `open_grid_monitor/<its id>/…`, the topics the
//! broker's ACL grants its username.

pub mod board;
pub mod config;
pub mod fleet;
pub mod grid;
pub mod mqtt;

pub use config::Config;
pub use fleet::{SimError, run};

/// Now, in µs since the Unix epoch (the payloads' timestamp unit).
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
