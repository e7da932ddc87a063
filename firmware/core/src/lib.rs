//! The Open Grid Monitor firmware core: everything a measuring board does that is not hardware
//! or network. `no_std` + `alloc`, no I/O: hardware is reached only through embedded-hal traits,
//! time only through the values callers pass in. The ESP32 board binary (`firmware/board`) and
//! the simulator (`ogm-sim`) both run it, so what the dashboard sees from the simulator is what
//! a board sends.
//!
//! Layout:
//! - [`ade7953`]: the ADE7953 driver over an embedded-hal 1.0 `SpiDevice` (register map, SPI
//!   frames, the unlock sequence, calibration), and [`ade7953::bank`], a simulated chip.
//! - [`estimator`]: the line frequency from the ADE7953's ZX edges, timestamped by a µs timer:
//!   a robust least-squares fit over a one-second window.
//! - [`meter`]: [`meter::Meter`], the chip and the estimator together, giving one
//!   [`ogm_protocol::Measurement`] per sample.
//! - [`messages`]: topics and payload bytes, built only through `ogm-protocol`.
//! - [`buffer`]: [`buffer::OfflineBuffer`], bounded; the oldest reading goes when it is full,
//!   and the drops are counted for the status message.
//! - [`schedule`]: [`schedule::Schedule`], the state machine that says when to sample, send a
//!   status and drain the buffer.
//! - [`clock`]: [`clock::WallClock`], monotonic µs to Unix µs from SNTP, and the timer's drift.
//! - [`sntp`]: SNTP request and answer packets (the board sends them over UDP).
//! - [`synth`]: synthetic ZX edges for a known frequency course (the simulator, the accuracy
//!   benchmark and the tests; a board never uses it).
//!
//! Invariants: nothing here panics on input from the chip, the timer or the network; topics and
//! payloads come only from `ogm-protocol`.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod ade7953;
pub mod buffer;
pub mod clock;
pub mod estimator;
pub mod messages;
pub mod meter;
pub mod schedule;
pub mod sntp;
pub mod synth;

mod num;

pub use buffer::OfflineBuffer;
pub use estimator::{Edges, Estimate, EstimateError, EstimatorConfig, FrequencyEstimator};
pub use messages::{Health, Message, Topics};
pub use meter::{Meter, MeterError, Sample};
pub use schedule::{Action, Schedule, ScheduleConfig};
