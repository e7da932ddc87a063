//! The ADE7953 metering chip over an embedded-hal 1.0 [`SpiDevice`].
//!
//! - [`registers`]: the register map, widths, and the CONFIG and interrupt bits.
//! - [`Ade7953`]: the driver: frames, [`Ade7953::init`] (the datasheet's unlock sequence and
//!   configuration, verified by reading back), and [`Ade7953::read`] of PERIOD, VRMS, IRMSA and
//!   AWATT, scaled by a [`Calibration`].
//! - [`bank`]: a simulated chip (a register bank that implements [`SpiDevice`]) for the host
//!   tests and the simulator.
//!
//! ## The SPI frame
//! Every access is one chip-select frame, most significant byte first (SPI mode 3, at most
//! 2 MHz): the 16-bit register address, then [`registers::SPI_READ`] (`0x80`) or
//! [`registers::SPI_WRITE`] (`0x00`), then the register's 1, 2, 3 or 4 data bytes, which the
//! host clocks out (write) or in (read).
//!
//! Nothing here panics: every SPI failure comes back as [`Ade7953Error::Spi`].

pub mod bank;
pub mod registers;

use embedded_hal::spi::{Operation, SpiDevice};

use registers::Register;

/// Converts raw register values to physical units. These depend on the board's voltage divider,
/// current sensor and PGA gains, so each board is calibrated against a reference meter:
/// `volts_per_lsb = V_reference / VRMS_raw`, and likewise for current and power.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Volts RMS per LSB of VRMS.
    pub volts_per_lsb: f64,
    /// Amperes RMS per LSB of IRMSA.
    pub amps_per_lsb: f64,
    /// Watts per LSB of AWATT.
    pub watts_per_lsb: f64,
}

impl Calibration {
    /// A starting point for a Shelly-style front end (1 MΩ : 1 kΩ divider, a 1 mΩ shunt):
    /// 26 000 LSB per volt and 100 000 LSB per ampere, with the power constant that the
    /// datasheet's full-scale figures imply. Calibrate every board before trusting it.
    pub const DEFAULT: Self = Self::from_voltage_and_current(1.0 / 26_000.0, 1.0 / 100_000.0);

    /// The power constant that follows from the voltage and current constants and the datasheet's
    /// full-scale readings (`VRMS_fs · IRMS_fs` volt-amperes at `AWATT_fs`).
    pub const fn from_voltage_and_current(volts_per_lsb: f64, amps_per_lsb: f64) -> Self {
        let fs_rms = registers::full_scale::RMS as f64;
        let fs_watt = registers::full_scale::WATT as f64;
        Self {
            volts_per_lsb,
            amps_per_lsb,
            watts_per_lsb: volts_per_lsb * amps_per_lsb * fs_rms * fs_rms / fs_watt,
        }
    }
}

impl Default for Calibration {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// PGA gain of a channel (register value in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gain {
    #[default]
    X1,
    X2,
    X4,
    X8,
    X16,
    /// ×22, current channel A only.
    X22,
}

impl Gain {
    pub const fn bits(self) -> u8 {
        match self {
            Self::X1 => 0,
            Self::X2 => 1,
            Self::X4 => 2,
            Self::X8 => 3,
            Self::X16 => 4,
            Self::X22 => 5,
        }
    }
}

/// How [`Ade7953::init`] configures the chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChipConfig {
    /// PGA gain of the voltage channel (×22 is not valid there and is written as ×16).
    pub voltage_gain: Gain,
    /// PGA gain of current channel A.
    pub current_gain: Gain,
    /// Enable the digital integrator on channel A (Rogowski coils).
    pub integrator: bool,
}

impl ChipConfig {
    /// The CONFIG value: communication locked to SPI (COMM_LOCK clear), high-pass filter on,
    /// zero-crossing filter on, optionally the integrator.
    pub const fn config_register(&self) -> u16 {
        let mut v = registers::config::HPFEN;
        if self.integrator {
            v |= registers::config::INTENA;
        }
        v
    }
}

/// One set of readings, scaled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// V RMS.
    pub voltage: f64,
    /// A RMS.
    pub current: f64,
    /// W; negative when the load exports.
    pub power: f64,
    /// Frequency from the PERIOD register (about 11 mHz steps at 50 Hz); `None` without a signal.
    pub period_frequency: Option<f64>,
    /// The raw register values behind it, for calibration and logs.
    pub raw: RawReading,
}

/// Raw register values of a [`Reading`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawReading {
    pub period: u16,
    pub vrms: u32,
    pub irms: u32,
    pub awatt: i32,
}

/// Why the chip could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ade7953Error<E> {
    /// The SPI bus or chip select failed.
    #[error("SPI transfer failed: {0:?}")]
    Spi(E),
    /// A register did not hold what was just written: the chip is absent, unpowered, in reset,
    /// or on another interface (its COMM_LOCK is held by I2C or UART).
    #[error("{register} holds {read:#x} after writing {wrote:#x}: is the ADE7953 connected?")]
    Verify {
        register: &'static str,
        wrote: u32,
        read: u32,
    },
    /// A value wider than its register.
    #[error("{value:#x} does not fit the register {register}")]
    TooWide { register: &'static str, value: u32 },
    /// A write to a read-only register.
    #[error("{register} is read-only")]
    ReadOnly { register: &'static str },
}

/// The ADE7953 on an SPI device (which owns chip select).
#[derive(Debug)]
pub struct Ade7953<SPI> {
    spi: SPI,
    calibration: Calibration,
    config: ChipConfig,
}

impl<SPI: SpiDevice> Ade7953<SPI> {
    /// Wraps `spi`. Call [`Ade7953::init`] before reading, at least
    /// [`registers::RESET_TIME_MS`] after power-up.
    pub fn new(spi: SPI, calibration: Calibration, config: ChipConfig) -> Self {
        Self {
            spi,
            calibration,
            config,
        }
    }

    pub fn calibration(&self) -> Calibration {
        self.calibration
    }

    pub fn set_calibration(&mut self, calibration: Calibration) {
        self.calibration = calibration;
    }

    /// The SPI device, e.g. to reach a simulated chip.
    pub fn spi_mut(&mut self) -> &mut SPI {
        &mut self.spi
    }

    /// Gives the SPI device back.
    pub fn release(self) -> SPI {
        self.spi
    }

    /// Configures the chip and checks that it took the configuration:
    /// 1. reads RSTIRQSTATA, which clears the power-up RESET flag (so a later RESET flag means
    ///    the chip reset itself, see [`Ade7953::was_reset`]);
    /// 2. writes CONFIG (locks the interface to SPI, high-pass filter on) and reads it back;
    /// 3. writes `0xAD` to register `0x0FE`, then `0x0030` to register `0x120`, the datasheet's
    ///    sequence "for optimum performance";
    /// 4. sets the PGA gains.
    ///
    /// Returns the silicon version.
    pub fn init(&mut self) -> Result<u8, Ade7953Error<SPI::Error>> {
        self.read_register(registers::RSTIRQSTATA)?;
        let config = u32::from(self.config.config_register());
        self.write_register(registers::CONFIG, config)?;
        self.verify(registers::CONFIG, config)?;
        self.write_register(registers::UNLOCK, u32::from(registers::UNLOCK_KEY))?;
        self.write_register(registers::OPTIMUM, u32::from(registers::OPTIMUM_VALUE))?;
        let voltage_gain = match self.config.voltage_gain {
            Gain::X22 => Gain::X16,
            g => g,
        };
        self.write_register(registers::PGA_V, u32::from(voltage_gain.bits()))?;
        self.write_register(
            registers::PGA_IA,
            u32::from(self.config.current_gain.bits()),
        )?;
        self.verify(
            registers::PGA_IA,
            u32::from(self.config.current_gain.bits()),
        )?;
        let version = self.read_register(registers::VERSION)?;
        Ok(version as u8)
    }

    /// Whether the chip has reset since [`Ade7953::init`] (a brown-out), or lost its
    /// configuration: if so, call `init` again.
    pub fn was_reset(&mut self) -> Result<bool, Ade7953Error<SPI::Error>> {
        let status = self.read_register(registers::IRQSTATA)?;
        let config = self.read_register(registers::CONFIG)?;
        Ok(status & registers::irq::RESET != 0
            || config != u32::from(self.config.config_register()))
    }

    /// Reads PERIOD, VRMS, IRMSA and AWATT and scales them.
    pub fn read(&mut self) -> Result<Reading, Ade7953Error<SPI::Error>> {
        let period = self.read_register(registers::PERIOD)? as u16;
        let vrms = self.read_register(registers::VRMS)?;
        let irms = self.read_register(registers::IRMSA)?;
        let awatt = self.read_register(registers::AWATT)? as i32;
        let c = self.calibration;
        Ok(Reading {
            voltage: f64::from(vrms) * c.volts_per_lsb,
            current: f64::from(irms) * c.amps_per_lsb,
            power: f64::from(awatt) * c.watts_per_lsb,
            period_frequency: frequency_from_period(period),
            raw: RawReading {
                period,
                vrms,
                irms,
                awatt,
            },
        })
    }

    /// The line frequency from the PERIOD register alone; `None` without a signal.
    pub fn period_frequency(&mut self) -> Result<Option<f64>, Ade7953Error<SPI::Error>> {
        let period = self.read_register(registers::PERIOD)? as u16;
        Ok(frequency_from_period(period))
    }

    /// Reads `register`. A 32-bit path to a signed register returns the sign-extended value's
    /// bits (cast to `i32` to use it).
    pub fn read_register(&mut self, register: Register) -> Result<u32, Ade7953Error<SPI::Error>> {
        let n = register.width.bytes();
        let mut data = [0u8; 4];
        let header = header(register.address, registers::SPI_READ);
        self.spi
            .transaction(&mut [Operation::Write(&header), Operation::Read(&mut data[..n])])
            .map_err(Ade7953Error::Spi)?;
        Ok(data[..n]
            .iter()
            .fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
    }

    /// Writes `value` to `register`.
    pub fn write_register(
        &mut self,
        register: Register,
        value: u32,
    ) -> Result<(), Ade7953Error<SPI::Error>> {
        if register.access == registers::Access::Read {
            return Err(Ade7953Error::ReadOnly {
                register: register.name,
            });
        }
        if value > register.width.max() {
            return Err(Ade7953Error::TooWide {
                register: register.name,
                value,
            });
        }
        let mut frame = [0u8; 7];
        let [hi, lo] = register.address.to_be_bytes();
        frame[..3].copy_from_slice(&[hi, lo, registers::SPI_WRITE]);
        let n = register.width.bytes();
        frame[3..3 + n].copy_from_slice(&value.to_be_bytes()[4 - n..]);
        self.spi.write(&frame[..3 + n]).map_err(Ade7953Error::Spi)
    }

    fn verify(&mut self, register: Register, wrote: u32) -> Result<(), Ade7953Error<SPI::Error>> {
        let read = self.read_register(register)?;
        if read == wrote {
            Ok(())
        } else {
            Err(Ade7953Error::Verify {
                register: register.name,
                wrote,
                read,
            })
        }
    }
}

fn header(address: u16, rw: u8) -> [u8; 3] {
    let [hi, lo] = address.to_be_bytes();
    [hi, lo, rw]
}

/// `f = 223.75 kHz / (PERIOD + 1)`; `None` for 0 and `0xFFFF` (no signal) and for values outside
/// 10 to 1000 Hz.
pub fn frequency_from_period(period: u16) -> Option<f64> {
    if period == 0 || period == u16::MAX {
        return None;
    }
    let f = registers::PERIOD_CLOCK_HZ / (f64::from(period) + 1.0);
    (10.0..=1000.0).contains(&f).then_some(f)
}

/// The PERIOD value the chip shows at `frequency_hz` (what [`bank`] simulates).
pub fn period_for_frequency(frequency_hz: f64) -> u16 {
    if !(frequency_hz.is_finite() && frequency_hz > 0.0) {
        return u16::MAX;
    }
    let p = registers::PERIOD_CLOCK_HZ / frequency_hz - 1.0 + 0.5;
    if p >= f64::from(u16::MAX) {
        u16::MAX
    } else if p <= 0.0 {
        0
    } else {
        p as u16
    }
}

#[cfg(test)]
mod tests;
