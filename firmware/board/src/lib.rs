//! Open Grid Monitor firmware for an ESP32 with an ADE7953: the hardware and network edges around
//! the firmware core (`ogm-firmware-core`), which does all the measuring, buffering and
//! scheduling and builds every payload.
//!
//! Layout:
//! - [`settings`]: the settings compiled in from `cfg.toml` (checked by `build.rs`), as the
//!   core's types.
//! - [`board`]: pins and peripherals: SPI to the ADE7953, the ZX input, the heap.
//! - [`zx`]: ZX edge capture: a GPIO interrupt stamps each edge with the µs timer.
//! - [`net`]: WiFi (reconnects forever), the embassy-net stack, SNTP.
//! - [`link`]: the MQTT connection (rust-mqtt, MQTT 5): connect with the retained last will,
//!   publish at QoS 1 and wait for each PUBACK, keep alive, reconnect with backoff. The only
//!   code that talks to the broker.
//! - [`app`]: the measurement loop: the core's schedule says when to sample, send a status and
//!   drain the offline buffer.
//! - [`shared`]: the little state the tasks share (wall clock, RSSI, drop count, link state).
//!
//! Invariants: nothing here builds a topic or a payload (the core does, through `ogm-protocol`);
//! a failure of WiFi, the broker or the chip never stops measuring, and never panics.
#![no_std]

extern crate alloc;

#[cfg(not(any(feature = "esp32s3", feature = "esp32c3")))]
compile_error!("choose a chip: --features esp32s3 (with --no-default-features) or esp32c3");
#[cfg(all(feature = "esp32s3", feature = "esp32c3"))]
compile_error!("choose one chip: add --no-default-features when building for the esp32s3");

pub mod app;
pub mod board;
pub mod link;
pub mod net;
pub mod settings;
pub mod shared;
pub mod zx;

/// Monotonic µs since boot (the system timer): the clock of ZX timestamps, the schedule and
/// SNTP.
pub fn now_us() -> u64 {
    esp_hal::time::Instant::now()
        .duration_since_epoch()
        .as_micros()
}
