//! Open Grid Monitor's grid analysis: the figures the dashboard shows about the grid, computed
//! from readings and history buckets. Pure: values in, figures out; it does no I/O, keeps no
//! clock of its own (times are passed in) and builds without `std` (alloc only), for the host
//! and for `wasm32-unknown-unknown`, so that the page and the server compute the same figures.
//!
//! Layout:
//! - [`sample`]: [`Sample`], every reading seen in a span of time (min, mean, max, count).
//! - [`bands`]: [`Bands`], the frequency bands of a synchronous area ([`GridArea`]: Continental
//!   Europe, Great Britain, the Nordic area), relative to the nominal frequency.
//! - [`rocof`]: rate of change of frequency, Hz/s: [`slope_hz_per_s`] and
//!   [`RocofEstimator`], the least-squares slope over a trailing window (robust to a noisy
//!   single reading, unlike a two-point difference).
//! - [`stats`]: [`grid_time_s`] (grid time deviation, the integral of (f − nominal)/nominal dt),
//!   [`Histogram`] and [`Quality`] (the distribution of the deviation over a range), and
//!   [`spread_mhz`] (how far apart the devices' latest readings are).
//! - [`events`]: [`EventDetector`] finds excursions beyond ±100 mHz, or |RoCoF| beyond a limit
//!   ([`EventRules`]), with start, extreme and duration ([`DeviceEvent`]); [`Insight`] runs one
//!   per device over the live stream and keeps a bounded list of [`GridEvent`]s: the events of
//!   all devices that start within [`JOIN_US`] of each other, joined; [`history_events`] does
//!   the same over history buckets; [`join_events`] joins device events found in any order.
//! - [`watch`]: [`Watch`], the server's events: each device's readings analysed in its own time
//!   order whatever order they arrive in; late ones ask for a [`Task::Rewind`] from the store.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod bands;
pub mod events;
pub mod rocof;
pub mod sample;
pub mod stats;
pub mod watch;

pub use bands::Bands;
pub use events::{
    DEFAULT_MAX_GAP_US, DEFAULT_ROCOF_LIMIT, DEFAULT_ROCOF_WINDOW_US, DeviceEvent, EventDetector,
    EventRules, GridEvent, Insight, JOIN_US, MAX_DEVICES, MAX_EVENTS, Source, history_events,
    join_events,
};
pub use ogm_protocol::GridArea;
pub use rocof::{RocofEstimator, slope_hz_per_s};
pub use sample::Sample;
pub use stats::{Histogram, Quality, grid_time_s, spread_mhz};
pub use watch::{HOLD_US, Task, Watch, rewind_start};
