//! The settings compiled in from `cfg.toml` (see `build.rs`; the file is validated there), and
//! the core's types built from them.

use ogm_firmware_core::ade7953::{Calibration, ChipConfig, Gain};
use ogm_firmware_core::{Edges, EstimatorConfig, ScheduleConfig};

include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// Firmware version, for the boot log line.
pub const FIRMWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn calibration() -> Calibration {
    Calibration {
        volts_per_lsb: VOLTS_PER_LSB,
        amps_per_lsb: AMPS_PER_LSB,
        watts_per_lsb: WATTS_PER_LSB,
    }
}

fn gain(x: u8) -> Gain {
    match x {
        2 => Gain::X2,
        4 => Gain::X4,
        8 => Gain::X8,
        16 => Gain::X16,
        22 => Gain::X22,
        _ => Gain::X1,
    }
}

pub fn chip() -> ChipConfig {
    ChipConfig {
        voltage_gain: gain(VOLTAGE_GAIN),
        current_gain: gain(CURRENT_GAIN),
        integrator: false,
    }
}

pub fn edges() -> Edges {
    if ZX_BOTH_EDGES {
        Edges::Both
    } else {
        Edges::Rising
    }
}

pub fn estimator() -> EstimatorConfig {
    let mut c = EstimatorConfig::new(NOMINAL_HZ, edges());
    c.clock_ppm = TIMER_PPM;
    c
}

pub fn schedule() -> ScheduleConfig {
    ScheduleConfig {
        sample_every_us: SAMPLE_EVERY_MS * 1_000,
        status_every_us: STATUS_EVERY_S * 1_000_000,
    }
}
