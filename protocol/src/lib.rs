//! The wire contract between Open Grid Monitor devices, the broker, the server and the dashboard.
//!
//! This crate is the only place that knows how topics are spelled, what a device id may contain
//! and what the three payloads (measurement, status, logs) look like. It does no I/O and builds
//! for the host, for `wasm32-unknown-unknown` and without `std` (alloc only) for the firmware.
//!
//! Layout:
//! - [`broker`]: [`BrokerAddr`], where a broker listens, as the server and the simulator are told.
//! - [`device_id`]: the [`DeviceId`] newtype (1 to 64 of `A-Z a-z 0-9 _ -`).
//! - [`topic`]: building and parsing `open_grid_monitor/{device_id}/{kind}` and subscription filters.
//! - [`payload`]: [`Measurement`], [`Status`], [`LogEntry`], decoding with typed errors and
//!   plausibility checks, and encoding.
//! - [`liveness`]: whether a device is online, silent or offline (last will, and silence for
//!   three times its usual interval learnt from its own timestamps), shared by the dashboard
//!   and the server.
//! - [`http`]: the HTTP API's contract: route paths, limits, query parameters, answers and
//!   [`http::Field`], shared by the server and the dashboard.
//! - [`fixtures`]: golden JSON (the seed's examples and bad variants) shared by every crate's tests.
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

/// Serde for a fieldless enum through its one spelling, `as_str` and `parse`, rather than a
/// derive: the API spells it as the code does, and the page carries less code. Read from an
/// owned string: a `serde_json::Value` lends none.
macro_rules! spelled_by_as_str {
    ($ty:ty, $unknown:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <alloc::string::String as serde::Deserialize>::deserialize(d)?;
                <$ty>::parse(&s).ok_or_else(|| serde::de::Error::custom($unknown))
            }
        }
    };
}

pub mod broker;
pub mod device_id;
pub mod fixtures;
pub mod grid;
pub mod http;
pub mod liveness;
pub mod payload;
pub mod topic;

pub use broker::{BrokerAddr, BrokerAddrError};
pub use device_id::{DeviceId, DeviceIdError};
pub use grid::GridArea;
pub use liveness::{DeviceState, Presence};
pub use payload::{
    Decoded, LogEntry, LogLevel, Measurement, Payload, PayloadError, Status, TimestampFix,
};
pub use topic::{Kind, TOPIC_PREFIX, Topic, TopicError};
