//! [`Meter`]: the ADE7953 and the frequency estimator together, one [`Measurement`] per sample.
//!
//! The frequency comes from the zero-crossing fit when the window holds enough edges; otherwise
//! (the first second after boot, a ZX wire that is not connected, an interrupt storm) from the
//! chip's PERIOD register, which resolves only about 11 mHz at 50 Hz. [`Sample::source`] says
//! which, so a board can log the change.
//!
//! Values are rounded to what the hardware resolves: 0.1 mHz, 10 mV, 1 mA, 0.1 W.

use embedded_hal::spi::SpiDevice;
use ogm_protocol::Measurement;

use crate::ade7953::{Ade7953, Ade7953Error, Reading};
use crate::estimator::{Estimate, EstimateError, EstimatorConfig, FrequencyEstimator};
use crate::num::round_to;

/// Where a sample's frequency came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrequencySource {
    /// The zero-crossing fit.
    ZeroCrossings,
    /// The chip's PERIOD register (the fit had too few edges or failed).
    PeriodRegister,
}

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Timestamped by the caller's `timestamp_us`.
    pub measurement: Measurement,
    pub source: FrequencySource,
    /// The fit, or why there was none.
    pub estimate: Result<Estimate, EstimateError>,
    /// The chip's readings behind it.
    pub reading: Reading,
}

/// Why there is no sample.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MeterError<E> {
    #[error(transparent)]
    Chip(#[from] Ade7953Error<E>),
    /// Neither the fit nor PERIOD gives a frequency: no voltage on the chip's input.
    #[error("no line frequency: no zero crossings ({0}) and no PERIOD reading")]
    NoSignal(EstimateError),
}

/// The chip and the estimator.
#[derive(Debug)]
pub struct Meter<SPI> {
    chip: Ade7953<SPI>,
    estimator: FrequencyEstimator,
}

impl<SPI: SpiDevice> Meter<SPI> {
    pub fn new(chip: Ade7953<SPI>, estimator: EstimatorConfig) -> Self {
        Self {
            chip,
            estimator: FrequencyEstimator::new(estimator),
        }
    }

    pub fn chip(&mut self) -> &mut Ade7953<SPI> {
        &mut self.chip
    }

    pub fn estimator(&mut self) -> &mut FrequencyEstimator {
        &mut self.estimator
    }

    /// A ZX edge at timer tick `tick` µs.
    pub fn edge(&mut self, tick: u32) {
        self.estimator.push(tick);
    }

    /// Reads the chip and fits the window that ends at timer tick `now`; the measurement gets
    /// `timestamp_us`.
    pub fn sample(
        &mut self,
        now: u32,
        timestamp_us: i64,
    ) -> Result<Sample, MeterError<SPI::Error>> {
        let reading = self.chip.read()?;
        let estimate = self.estimator.estimate(now);
        let (frequency, source) = match (&estimate, reading.period_frequency) {
            (Ok(e), _) => (e.frequency, FrequencySource::ZeroCrossings),
            (Err(_), Some(f)) => (f, FrequencySource::PeriodRegister),
            (Err(e), None) => return Err(MeterError::NoSignal(*e)),
        };
        Ok(Sample {
            measurement: Measurement {
                timestamp: timestamp_us,
                frequency: round_to(frequency, 4),
                voltage: round_to(reading.voltage, 2),
                current: round_to(reading.current, 3),
                power: round_to(reading.power, 1),
            },
            source,
            estimate,
            reading,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ade7953::bank::RegisterBank;
    use crate::ade7953::{Calibration, ChipConfig};
    use crate::estimator::Edges;
    use crate::synth::ZeroCrossings;

    const T: i64 = 1_750_000_000_000_000;

    fn meter() -> Meter<RegisterBank> {
        let chip = Ade7953::new(
            RegisterBank::new(),
            Calibration::DEFAULT,
            ChipConfig::default(),
        );
        let mut m = Meter::new(chip, EstimatorConfig::new(50.0, Edges::Rising));
        m.chip().init().unwrap();
        m
    }

    #[test]
    fn frequency_from_zero_crossings_once_a_window_is_full() {
        let mut m = meter();
        m.chip()
            .spi_mut()
            .set_signal(&Calibration::DEFAULT, 231.2, 4.5, 1000.0, 50.0123);
        let mut z = ZeroCrossings::new(Edges::Rising, 7, 0.3);
        let mut edges = alloc::vec::Vec::new();
        z.advance(300_000.0, 50.0123, 50.0123, &mut || 0.0, &mut |t| {
            edges.push(t)
        });
        for t in edges.drain(..) {
            m.edge(t);
        }
        // A third of a window: too few edges, so PERIOD (11 mHz steps) stands in.
        let s = m.sample(z.now_tick(), T).unwrap();
        assert_eq!(s.source, FrequencySource::PeriodRegister);
        assert!((s.measurement.frequency - 50.0123).abs() < 0.006, "{s:?}");
        z.advance(1e6, 50.0123, 50.0123, &mut || 0.0, &mut |t| edges.push(t));
        for t in edges.drain(..) {
            m.edge(t);
        }
        let s = m.sample(z.now_tick(), T).unwrap();
        assert_eq!(s.source, FrequencySource::ZeroCrossings);
        assert_eq!(s.measurement.frequency, 50.0123);
        assert_eq!(s.measurement.timestamp, T);
        assert_eq!(s.measurement.voltage, 231.2);
        assert_eq!(s.measurement.current, 4.5);
        assert!((s.measurement.power - 1000.0).abs() <= 0.2, "{s:?}");
    }

    #[test]
    fn no_signal_and_chip_errors_are_errors() {
        let mut m = meter();
        assert!(matches!(m.sample(0, T), Err(MeterError::NoSignal(_))));
        m.chip().spi_mut().fail_next(1);
        assert!(matches!(m.sample(0, T), Err(MeterError::Chip(_))));
    }
}
