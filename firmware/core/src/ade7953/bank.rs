//! [`RegisterBank`]: a simulated ADE7953 behind an [`SpiDevice`], for the host tests and the
//! simulator. It decodes the same frames as the chip (address, read/write byte, data), keeps
//! registers at their reset values, honours widths, signedness, read-only registers, the
//! `0xAD` key that unlocks register `0x120`, and read-with-reset of RSTIRQSTATA; it can fail
//! transfers on demand and play an absent chip.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use embedded_hal::spi::{self, ErrorKind, ErrorType, Operation, SpiDevice};

use super::registers::{self, Access, Register, Width};
use super::{Calibration, period_for_frequency};

/// A failed transfer of the simulated bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BankError;

impl spi::Error for BankError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// One completed write, as the chip saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    pub address: u16,
    pub value: u32,
}

/// The simulated chip.
#[derive(Debug, Clone)]
pub struct RegisterBank {
    /// By canonical address; 24/32-bit registers hold their 24 bits.
    values: BTreeMap<u16, u32>,
    unlocked: bool,
    fail_next: usize,
    absent: bool,
    writes: Vec<Write>,
    transactions: usize,
}

impl Default for RegisterBank {
    fn default() -> Self {
        Self::new()
    }
}

impl RegisterBank {
    /// A chip just out of power-up reset, with no signal on its inputs.
    pub fn new() -> Self {
        let mut bank = Self {
            values: BTreeMap::new(),
            unlocked: false,
            fail_next: 0,
            absent: false,
            writes: Vec::new(),
            transactions: 0,
        };
        bank.power_cycle();
        bank
    }

    /// Back to reset values, with the RESET interrupt flag set, as after a brown-out.
    pub fn power_cycle(&mut self) {
        use registers::*;
        self.values.clear();
        self.unlocked = false;
        for (r, v) in [
            (CONFIG, u32::from(config::RESET_VALUE)),
            (LCYCMODE, 0x40),
            (ZXTOUT, 0xFFFF),
            (CF1DEN, 0x3F),
            (CF2DEN, 0x3F),
            (CFMODE, 0x300),
            (VERSION, 0x02),
            (PERIOD, 0xFFFF),
            (AIGAIN, 0x40_0000),
            (AVGAIN, 0x40_0000),
            (AWGAIN, 0x40_0000),
            (IRQENA, 0x10_0000),
            (IRQSTATA, irq::RESET),
        ] {
            self.values.insert(canonical(r.address), v);
        }
    }

    /// Makes the next `n` transactions fail with [`BankError`] (and have no effect).
    pub fn fail_next(&mut self, n: usize) {
        self.fail_next = n;
    }

    /// An absent or unpowered chip: MISO floats high (every byte reads `0xFF`) and writes vanish.
    pub fn set_absent(&mut self, absent: bool) {
        self.absent = absent;
    }

    /// Every write the chip accepted, in order.
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// Transactions seen (including failed ones).
    pub fn transactions(&self) -> usize {
        self.transactions
    }

    /// The stored value of `register` as its own path would read it.
    pub fn get(&self, register: Register) -> u32 {
        self.read_value(register.address)
    }

    /// Sets a register directly, as the chip's DSP does for measured values. 24/32-bit values are
    /// stored as 24 bits (pass an `i32 as u32` for signed registers).
    pub fn set(&mut self, register: Register, value: u32) {
        let value = match register.width {
            Width::Bits24 | Width::Bits32 => value & 0x00FF_FFFF,
            w => value & w.max(),
        };
        self.values
            .insert(registers::canonical(register.address), value);
    }

    /// What the chip would measure on a line at `voltage` V RMS, `frequency` Hz, feeding a load
    /// of `current` A RMS and `power` W, on a board calibrated by `calibration`.
    pub fn set_signal(
        &mut self,
        calibration: &Calibration,
        voltage: f64,
        current: f64,
        power: f64,
        frequency: f64,
    ) {
        let raw = |value: f64, per_lsb: f64| -> i32 {
            let x = value / per_lsb;
            // 24-bit signed range; NaN becomes 0.
            let x = if x.is_nan() {
                0.0
            } else {
                x.clamp(-8_388_608.0, 8_388_607.0)
            };
            (if x >= 0.0 { x + 0.5 } else { x - 0.5 }) as i32
        };
        self.set(
            registers::VRMS,
            raw(voltage, calibration.volts_per_lsb).max(0) as u32,
        );
        self.set(
            registers::IRMSA,
            raw(current, calibration.amps_per_lsb).max(0) as u32,
        );
        self.set(
            registers::AWATT,
            raw(power, calibration.watts_per_lsb) as u32,
        );
        self.set(
            registers::PERIOD,
            u32::from(period_for_frequency(frequency)),
        );
    }

    fn read_value(&self, address: u16) -> u32 {
        let stored = self
            .values
            .get(&registers::canonical(address))
            .copied()
            .unwrap_or(0);
        match Width::of_address(address) {
            Some(Width::Bits32) => {
                let signed = registers::by_address(address).is_some_and(|r| r.signed);
                if signed && stored & 0x0080_0000 != 0 {
                    stored | 0xFF00_0000
                } else {
                    stored
                }
            }
            Some(w) => stored & w.max(),
            None => 0,
        }
    }

    /// Reading some registers has side effects.
    fn after_read(&mut self, address: u16) {
        if registers::canonical(address) == registers::RSTIRQSTATA.address {
            self.values.insert(registers::IRQSTATA.address, 0);
        }
        self.values.insert(
            registers::LAST_OP.address,
            u32::from(registers::LAST_OP_READ),
        );
        self.values
            .insert(registers::LAST_ADD.address, u32::from(address));
    }

    fn write_value(&mut self, address: u16, value: u32) {
        let known = registers::by_address(address);
        let access = known.map_or(Access::ReadWrite, |r| r.access);
        let was_unlocked = core::mem::take(&mut self.unlocked);
        match access {
            Access::Read => return,
            Access::Locked if !was_unlocked => return,
            _ => {}
        }
        if address == registers::UNLOCK.address && value == u32::from(registers::UNLOCK_KEY) {
            self.unlocked = true;
        }
        if address == registers::CONFIG.address && value & u32::from(registers::config::SWRST) != 0
        {
            self.power_cycle();
            return;
        }
        let stored = match Width::of_address(address) {
            Some(Width::Bits24 | Width::Bits32) => value & 0x00FF_FFFF,
            Some(w) => value & w.max(),
            None => return,
        };
        self.values.insert(registers::canonical(address), stored);
        self.values.insert(
            registers::LAST_OP.address,
            u32::from(registers::LAST_OP_WRITE),
        );
        self.values
            .insert(registers::LAST_ADD.address, u32::from(address));
        self.writes.push(Write {
            address,
            value: stored,
        });
    }
}

impl ErrorType for RegisterBank {
    type Error = BankError;
}

/// One frame in flight: the header bytes, then data out or in.
struct Frame {
    header: [u8; 3],
    position: usize,
    data_in: Vec<u8>,
    value: u32,
    width: usize,
}

impl Frame {
    fn address(&self) -> u16 {
        u16::from_be_bytes([self.header[0], self.header[1]])
    }

    fn is_read(&self) -> bool {
        self.header[2] == registers::SPI_READ
    }

    /// Clocks one byte: `mosi` from the host; returns the chip's MISO byte.
    fn clock(&mut self, bank: &RegisterBank, mosi: u8) -> u8 {
        let p = self.position;
        self.position += 1;
        if p < 3 {
            self.header[p] = mosi;
            if p == 2 {
                let address = self.address();
                self.width = Width::of_address(address).map_or(0, Width::bytes);
                self.value = bank.read_value(address);
            }
            return 0;
        }
        let i = p - 3;
        if self.is_read() {
            if i < self.width {
                (self.value >> (8 * (self.width - 1 - i))) as u8
            } else {
                0
            }
        } else {
            self.data_in.push(mosi);
            0
        }
    }
}

impl SpiDevice for RegisterBank {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), BankError> {
        self.transactions += 1;
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Err(BankError);
        }
        let mut frame = Frame {
            header: [0; 3],
            position: 0,
            data_in: Vec::new(),
            value: 0,
            width: 0,
        };
        let absent = self.absent;
        let miso = |b: u8| if absent { 0xFF } else { b };
        for op in operations.iter_mut() {
            match op {
                Operation::Write(out) => {
                    for &b in out.iter() {
                        frame.clock(self, b);
                    }
                }
                Operation::Read(into) => {
                    for b in into.iter_mut() {
                        *b = miso(frame.clock(self, 0));
                    }
                }
                Operation::Transfer(into, out) => {
                    for i in 0..into.len().max(out.len()) {
                        let m = frame.clock(self, out.get(i).copied().unwrap_or(0));
                        if let Some(slot) = into.get_mut(i) {
                            *slot = miso(m);
                        }
                    }
                }
                Operation::TransferInPlace(buf) => {
                    for b in buf.iter_mut() {
                        *b = miso(frame.clock(self, *b));
                    }
                }
                Operation::DelayNs(_) => {}
            }
        }
        if absent || frame.position < 3 || frame.width == 0 {
            return Ok(());
        }
        let address = frame.address();
        if frame.is_read() {
            self.after_read(address);
        } else if frame.header[2] == registers::SPI_WRITE && frame.data_in.len() == frame.width {
            let value = frame
                .data_in
                .iter()
                .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
            self.write_value(address, value);
        }
        Ok(())
    }
}
