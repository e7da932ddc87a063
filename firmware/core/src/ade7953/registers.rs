//! The ADE7953 register map (datasheet Rev. C, "ADE7953 Registers", Tables 13 to 16) and the
//! bits of CONFIG this firmware sets.
//!
//! Registers are 8, 16, 24 or 32 bits wide, and the address says which: `0x0xx` (and `0x702`,
//! `0x800`) are 8-bit, `0x1xx` 16-bit, `0x2xx` 24-bit and `0x3xx` 32-bit. Every 24-bit register
//! can also be reached as a 32-bit register at its address + `0x100`; both paths reach the same
//! 24 bits, and the 32-bit path sign-extends signed registers and zero-pads unsigned ones.
//!
//! This driver reads measurements through the **32-bit paths** (`VRMS` `0x31C`, `IRMSA` `0x31A`,
//! `AWATT` `0x312`): a 4-byte read costs one byte more than the 24-bit path and gives a value that
//! is already a two's-complement `i32`, so there is no sign extension to get wrong.

/// How many bits a register holds on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Width {
    Bits8,
    Bits16,
    Bits24,
    Bits32,
}

impl Width {
    /// Bytes on the wire.
    pub const fn bytes(self) -> usize {
        match self {
            Self::Bits8 => 1,
            Self::Bits16 => 2,
            Self::Bits24 => 3,
            Self::Bits32 => 4,
        }
    }

    /// The largest value that fits.
    pub const fn max(self) -> u32 {
        match self {
            Self::Bits8 => 0xFF,
            Self::Bits16 => 0xFFFF,
            Self::Bits24 => 0x00FF_FFFF,
            Self::Bits32 => u32::MAX,
        }
    }

    /// The width of the register at `address`, from the datasheet's address ranges.
    pub const fn of_address(address: u16) -> Option<Width> {
        match address {
            0x000..=0x0FF | 0x702 | 0x800 => Some(Self::Bits8),
            0x100..=0x1FF => Some(Self::Bits16),
            0x200..=0x2FF => Some(Self::Bits24),
            0x300..=0x3FF => Some(Self::Bits32),
            _ => None,
        }
    }
}

/// Whether a register may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    ReadWrite,
    /// Writable only right after [`UNLOCK`] was written with [`UNLOCK_KEY`].
    Locked,
}

/// One register: its name (for errors and logs), address, width, signedness and access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Register {
    pub name: &'static str,
    pub address: u16,
    pub width: Width,
    /// Two's complement (sign-extended on the 32-bit path).
    pub signed: bool,
    pub access: Access,
}

const fn reg(
    name: &'static str,
    address: u16,
    width: Width,
    signed: bool,
    access: Access,
) -> Register {
    Register {
        name,
        address,
        width,
        signed,
        access,
    }
}

use Access::{Locked, Read as R, ReadWrite as RW};
use Width::{Bits8 as W8, Bits16 as W16, Bits32 as W32};

// 8-bit registers (Table 13).
/// Sag line cycles.
pub const SAGCYC: Register = reg("SAGCYC", 0x000, W8, false, RW);
/// No-load detection disable.
pub const DISNOLOAD: Register = reg("DISNOLOAD", 0x001, W8, false, RW);
/// Line cycle accumulation mode configuration (reset 0x40).
pub const LCYCMODE: Register = reg("LCYCMODE", 0x004, W8, false, RW);
/// Voltage channel PGA gain, bits 2 to 0.
pub const PGA_V: Register = reg("PGA_V", 0x007, W8, false, RW);
/// Current channel A PGA gain, bits 2 to 0.
pub const PGA_IA: Register = reg("PGA_IA", 0x008, W8, false, RW);
/// Current channel B PGA gain, bits 2 to 0.
pub const PGA_IB: Register = reg("PGA_IB", 0x009, W8, false, RW);
/// Write protection: bit 0 the 8-bit, bit 1 the 16-bit, bit 2 the 24/32-bit registers.
pub const WRITE_PROTECT: Register = reg("WRITE_PROTECT", 0x040, W8, false, RW);
/// Type of the last successful access: [`LAST_OP_READ`] or [`LAST_OP_WRITE`].
pub const LAST_OP: Register = reg("LAST_OP", 0x0FD, W8, false, R);
/// The unnamed key register that unlocks [`OPTIMUM`] (write [`UNLOCK_KEY`]).
pub const UNLOCK: Register = reg("UNLOCK", 0x0FE, W8, false, RW);
/// Data of the last successful 8-bit access.
pub const LAST_RWDATA_8: Register = reg("LAST_RWDATA_8", 0x0FF, W8, false, R);
/// Silicon version.
pub const VERSION: Register = reg("VERSION", 0x702, W8, false, R);
/// Reference: 0 internal, 1 external.
pub const EX_REF: Register = reg("EX_REF", 0x800, W8, false, RW);

// 16-bit registers (Table 14).
/// Zero-crossing timeout, 1 LSB = 1/14 kHz (reset 0xFFFF).
pub const ZXTOUT: Register = reg("ZXTOUT", 0x100, W16, false, RW);
/// Half line cycles for line cycle accumulation.
pub const LINECYC: Register = reg("LINECYC", 0x101, W16, false, RW);
/// Configuration (reset 0x8004); see [`config`].
pub const CONFIG: Register = reg("CONFIG", 0x102, W16, false, RW);
/// CF1 frequency divider.
pub const CF1DEN: Register = reg("CF1DEN", 0x103, W16, false, RW);
/// CF2 frequency divider.
pub const CF2DEN: Register = reg("CF2DEN", 0x104, W16, false, RW);
/// CF output selection.
pub const CFMODE: Register = reg("CFMODE", 0x107, W16, false, RW);
/// Phase calibration, channel A (sign-magnitude).
pub const PHCALA: Register = reg("PHCALA", 0x108, W16, false, RW);
/// Power factor, channel A.
pub const PFA: Register = reg("PFA", 0x10A, W16, true, R);
/// Angle between voltage and current A.
pub const ANGLE_A: Register = reg("ANGLE_A", 0x10C, W16, true, R);
/// Period of the voltage channel, in ticks of [`PERIOD_CLOCK_HZ`]: `f = 223.75 kHz / (PERIOD + 1)`.
pub const PERIOD: Register = reg("PERIOD", 0x10E, W16, false, R);
/// Alternative output functions for the ZX, ZX_I and REVP pins.
pub const ALT_OUTPUT: Register = reg("ALT_OUTPUT", 0x110, W16, false, RW);
/// The register the datasheet asks to set to [`OPTIMUM_VALUE`] after unlocking it.
pub const OPTIMUM: Register = reg("OPTIMUM", 0x120, W16, false, Locked);
/// Address of the last successful access.
pub const LAST_ADD: Register = reg("LAST_ADD", 0x1FE, W16, false, R);
/// Data of the last successful 16-bit access.
pub const LAST_RWDATA_16: Register = reg("LAST_RWDATA_16", 0x1FF, W16, false, R);

// 24-bit registers, reached through their 32-bit paths (Tables 15 and 16).
/// Active energy accumulation mode.
pub const ACCMODE: Register = reg("ACCMODE", 0x301, W32, false, RW);
/// Instantaneous active power, channel A (signed).
pub const AWATT: Register = reg("AWATT", 0x312, W32, true, R);
/// Instantaneous current waveform, channel A (signed).
pub const IA: Register = reg("IA", 0x316, W32, true, R);
/// Instantaneous voltage waveform (signed).
pub const V: Register = reg("V", 0x318, W32, true, R);
/// Current RMS, channel A (unsigned).
pub const IRMSA: Register = reg("IRMSA", 0x31A, W32, false, R);
/// Voltage RMS (unsigned).
pub const VRMS: Register = reg("VRMS", 0x31C, W32, false, R);
/// Active energy, channel A (signed, read-with-reset by default).
pub const AENERGYA: Register = reg("AENERGYA", 0x31E, W32, true, R);
/// Interrupt enable, voltage channel and channel A.
pub const IRQENA: Register = reg("IRQENA", 0x32C, W32, false, RW);
/// Interrupt status, voltage channel and channel A.
pub const IRQSTATA: Register = reg("IRQSTATA", 0x32D, W32, false, R);
/// Interrupt status with reset on read.
pub const RSTIRQSTATA: Register = reg("RSTIRQSTATA", 0x32E, W32, false, R);
/// Current gain, channel A (reset 0x400000).
pub const AIGAIN: Register = reg("AIGAIN", 0x380, W32, false, RW);
/// Voltage gain (reset 0x400000).
pub const AVGAIN: Register = reg("AVGAIN", 0x381, W32, false, RW);
/// Active power gain, channel A (reset 0x400000).
pub const AWGAIN: Register = reg("AWGAIN", 0x382, W32, false, RW);
/// Current RMS offset, channel A (signed).
pub const AIRMSOS: Register = reg("AIRMSOS", 0x386, W32, true, RW);
/// Voltage RMS offset (signed).
pub const VRMSOS: Register = reg("VRMSOS", 0x388, W32, true, RW);
/// Active power offset, channel A (signed).
pub const AWATTOS: Register = reg("AWATTOS", 0x389, W32, true, RW);

/// Every register this crate names, for the simulated register bank and for lookups.
pub const ALL: &[Register] = &[
    SAGCYC,
    DISNOLOAD,
    LCYCMODE,
    PGA_V,
    PGA_IA,
    PGA_IB,
    WRITE_PROTECT,
    LAST_OP,
    UNLOCK,
    LAST_RWDATA_8,
    VERSION,
    EX_REF,
    ZXTOUT,
    LINECYC,
    CONFIG,
    CF1DEN,
    CF2DEN,
    CFMODE,
    PHCALA,
    PFA,
    ANGLE_A,
    PERIOD,
    ALT_OUTPUT,
    OPTIMUM,
    LAST_ADD,
    LAST_RWDATA_16,
    ACCMODE,
    AWATT,
    IA,
    V,
    IRMSA,
    VRMS,
    AENERGYA,
    IRQENA,
    IRQSTATA,
    RSTIRQSTATA,
    AIGAIN,
    AVGAIN,
    AWGAIN,
    AIRMSOS,
    VRMSOS,
    AWATTOS,
];

/// The register named at `address` (either path of a 24/32-bit register), if this crate knows it.
pub fn by_address(address: u16) -> Option<Register> {
    let wanted = canonical(address);
    ALL.iter().copied().find(|r| canonical(r.address) == wanted)
}

/// A 24-bit address and its 32-bit alias map to the same location: the 32-bit one.
pub const fn canonical(address: u16) -> u16 {
    match address {
        0x200..=0x2FF => address + 0x100,
        _ => address,
    }
}

/// The second byte of every SPI frame after the 16-bit address: read or write.
pub const SPI_READ: u8 = 0x80;
/// See [`SPI_READ`].
pub const SPI_WRITE: u8 = 0x00;

/// Written to [`UNLOCK`] to make [`OPTIMUM`] writable for the next write.
pub const UNLOCK_KEY: u8 = 0xAD;
/// The value the datasheet asks for in [`OPTIMUM`] ("for optimum performance").
pub const OPTIMUM_VALUE: u16 = 0x0030;
/// [`LAST_OP`] after a read.
pub const LAST_OP_READ: u8 = 0x35;
/// [`LAST_OP`] after a write.
pub const LAST_OP_WRITE: u8 = 0xCA;

/// The clock that [`PERIOD`] counts: CLKIN / 16 = 3.58 MHz / 16.
pub const PERIOD_CLOCK_HZ: f64 = 223_750.0;
/// Time the chip needs after power-up or reset before it answers, ms.
pub const RESET_TIME_MS: u32 = 100;

/// Full-scale readings for a full-scale input (±500 mV peak on both channels, PGA gain 1), from
/// the datasheet: a starting point for calibration constants, not a substitute for calibrating.
pub mod full_scale {
    /// `VRMS` and `IRMSA` at full-scale sine input.
    pub const RMS: u32 = 9_032_007;
    /// `AWATT` at full-scale voltage and current in phase.
    pub const WATT: u32 = 4_862_401;
}

/// Bits of [`CONFIG`].
pub mod config {
    /// Integrator on current channel A (for di/dt sensors).
    pub const INTENA: u16 = 1 << 0;
    /// Integrator on current channel B.
    pub const INTENB: u16 = 1 << 1;
    /// High-pass filter on all channels (set at reset).
    pub const HPFEN: u16 = 1 << 2;
    /// Power factor calculation mode.
    pub const PFMODE: u16 = 1 << 3;
    /// Reverse power on CF.
    pub const REVP_CF: u16 = 1 << 4;
    /// Reverse power pulse mode.
    pub const REVP_PULSE: u16 = 1 << 5;
    /// Disables the zero-crossing low-pass filter (leave clear: ZX timing is filtered by LPF1).
    pub const ZXLPF: u16 = 1 << 6;
    /// Software reset.
    pub const SWRST: u16 = 1 << 7;
    /// Register checksum.
    pub const CRC_ENABLE: u16 = 1 << 8;
    /// ZX_I pin mode.
    pub const ZX_I: u16 = 1 << 11;
    /// Which voltage zero crossings raise the ZXV *interrupt*, bits 13 and 12: 00 and 11 both,
    /// 01 negative-going, 10 positive-going. The ZX *pin* is a square wave whatever this says.
    pub const ZX_EDGE_MASK: u16 = 0b11 << 12;
    /// Set at reset; cleared by this driver, which locks the chip to the SPI interface.
    pub const COMM_LOCK: u16 = 1 << 15;
    /// What the chip holds after reset.
    pub const RESET_VALUE: u16 = COMM_LOCK | HPFEN;
}

/// Bits of [`IRQSTATA`] / [`RSTIRQSTATA`].
pub mod irq {
    /// The chip finished a reset (set at power-up; a later one means it browned out).
    pub const RESET: u32 = 1 << 20;
    /// Voltage zero crossing.
    pub const ZXV: u32 = 1 << 15;
    /// No voltage zero crossing for ZXTOUT.
    pub const ZXTO: u32 = 1 << 14;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_follow_the_address_ranges() {
        for r in ALL {
            assert_eq!(Width::of_address(r.address), Some(r.width), "{}", r.name);
        }
        assert_eq!(Width::of_address(0x212), Some(Width::Bits24));
        assert_eq!(Width::of_address(0x900), None);
    }

    #[test]
    fn the_brief_s_registers_are_where_the_datasheet_puts_them() {
        assert_eq!((PERIOD.address, PERIOD.width), (0x10E, Width::Bits16));
        assert_eq!((VRMS.address, VRMS.width), (0x31C, Width::Bits32));
        assert_eq!((IRMSA.address, IRMSA.width), (0x31A, Width::Bits32));
        assert_eq!((AWATT.address, AWATT.signed), (0x312, true));
        assert_eq!((UNLOCK.address, OPTIMUM.address), (0x0FE, 0x120));
        assert_eq!(CONFIG.address, 0x102);
        assert_eq!(config::RESET_VALUE, 0x8004);
    }

    #[test]
    fn both_paths_of_a_24_bit_register_are_one_location() {
        assert_eq!(by_address(0x212), Some(AWATT));
        assert_eq!(by_address(0x312), Some(AWATT));
        assert_eq!(canonical(0x21C), 0x31C);
        assert_eq!(canonical(0x10E), 0x10E);
        assert_eq!(by_address(0x3FE), None);
    }
}
