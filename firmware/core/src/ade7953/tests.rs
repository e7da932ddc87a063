//! The driver against the simulated register bank, and its frames byte for byte.

use alloc::vec::Vec;

use embedded_hal::spi::{ErrorType, Operation, SpiDevice};

use super::bank::{BankError, RegisterBank, Write};
use super::registers::{self, config};
use super::*;

fn chip() -> Ade7953<RegisterBank> {
    Ade7953::new(
        RegisterBank::new(),
        Calibration::DEFAULT,
        ChipConfig::default(),
    )
}

/// Records what the host clocks out in each transaction and answers `miso` bytes.
#[derive(Default)]
struct Recorder {
    frames: Vec<Vec<u8>>,
    miso: Vec<u8>,
}

impl ErrorType for Recorder {
    type Error = BankError;
}

impl SpiDevice for Recorder {
    fn transaction(&mut self, ops: &mut [Operation<'_, u8>]) -> Result<(), BankError> {
        let mut frame = Vec::new();
        let mut miso = self.miso.iter().copied();
        for op in ops.iter_mut() {
            match op {
                Operation::Write(w) => frame.extend_from_slice(w),
                Operation::Read(r) => {
                    for b in r.iter_mut() {
                        frame.push(0);
                        *b = miso.next().unwrap_or(0);
                    }
                }
                _ => unreachable!("the driver only writes and reads"),
            }
        }
        self.frames.push(frame);
        Ok(())
    }
}

#[test]
fn frames_are_address_then_read_write_byte_then_data_msb_first() {
    let mut c = Ade7953::new(
        Recorder {
            miso: alloc::vec![0x00, 0x12, 0x34, 0x56],
            ..Default::default()
        },
        Calibration::DEFAULT,
        ChipConfig::default(),
    );
    assert_eq!(c.read_register(registers::VRMS).unwrap(), 0x0012_3456);
    assert_eq!(c.read_register(registers::PERIOD).unwrap(), 0x0012);
    c.write_register(registers::CONFIG, 0x0004).unwrap();
    c.write_register(registers::UNLOCK, 0xAD).unwrap();
    c.write_register(registers::AVGAIN, 0x40_0000).unwrap();
    let frames = c.release().frames;
    assert_eq!(frames[0], [0x03, 0x1C, 0x80, 0, 0, 0, 0]);
    assert_eq!(frames[1], [0x01, 0x0E, 0x80, 0, 0]);
    assert_eq!(frames[2], [0x01, 0x02, 0x00, 0x00, 0x04]);
    assert_eq!(frames[3], [0x00, 0xFE, 0x00, 0xAD]);
    assert_eq!(frames[4], [0x03, 0x81, 0x00, 0x00, 0x40, 0x00, 0x00]);
}

#[test]
fn init_runs_the_datasheet_sequence_and_the_chip_takes_it() {
    let mut c = chip();
    let version = c.init().unwrap();
    assert_eq!(version, 0x02);
    let bank = c.release();
    let writes: Vec<(u16, u32)> = bank.writes().iter().map(|w| (w.address, w.value)).collect();
    assert_eq!(
        writes,
        [
            (0x102, u32::from(config::HPFEN)),
            (0x0FE, 0xAD),
            (0x120, 0x30),
            (0x007, 0),
            (0x008, 0),
        ]
    );
    // The 0x120 write landed because 0xAD came right before it.
    assert_eq!(bank.get(registers::OPTIMUM), 0x30);
    // The power-up RESET flag was cleared by reading RSTIRQSTATA.
    assert_eq!(bank.get(registers::IRQSTATA) & registers::irq::RESET, 0);
    // COMM_LOCK is cleared: the interface is locked to SPI.
    assert_eq!(
        bank.get(registers::CONFIG) & u32::from(config::COMM_LOCK),
        0
    );
}

#[test]
fn gains_and_integrator_are_written() {
    let cfg = ChipConfig {
        voltage_gain: Gain::X22,
        current_gain: Gain::X16,
        integrator: true,
    };
    let mut c = Ade7953::new(RegisterBank::new(), Calibration::DEFAULT, cfg);
    c.init().unwrap();
    let bank = c.release();
    assert_eq!(
        bank.get(registers::PGA_V),
        4,
        "x22 is not valid on the voltage channel"
    );
    assert_eq!(bank.get(registers::PGA_IA), 4);
    assert_eq!(
        bank.get(registers::CONFIG),
        u32::from(config::HPFEN | config::INTENA)
    );
}

#[test]
fn the_optimum_register_ignores_writes_without_the_key() {
    let mut c = chip();
    c.write_register(registers::OPTIMUM, 0x30).unwrap();
    assert_eq!(c.read_register(registers::OPTIMUM).unwrap(), 0);
    // The key is good for one write only.
    c.write_register(registers::UNLOCK, 0xAD).unwrap();
    c.write_register(registers::OPTIMUM, 0x30).unwrap();
    c.write_register(registers::OPTIMUM, 0x31).unwrap();
    assert_eq!(c.read_register(registers::OPTIMUM).unwrap(), 0x30);
}

#[test]
fn readings_are_scaled_by_the_calibration() {
    let cal = Calibration {
        volts_per_lsb: 1e-4,
        amps_per_lsb: 1e-6,
        watts_per_lsb: 1e-3,
    };
    let mut bank = RegisterBank::new();
    bank.set(registers::VRMS, 2_305_000);
    bank.set(registers::IRMSA, 4_321_000);
    bank.set(registers::AWATT, (-996_000i32) as u32);
    bank.set(registers::PERIOD, 4474);
    let mut c = Ade7953::new(bank, cal, ChipConfig::default());
    c.init().unwrap();
    let r = c.read().unwrap();
    assert!((r.voltage - 230.5).abs() < 1e-9, "{r:?}");
    assert!((r.current - 4.321).abs() < 1e-9, "{r:?}");
    // Exporting: AWATT is negative and sign-extended on the 32-bit path.
    assert!((r.power + 996.0).abs() < 1e-9, "{r:?}");
    assert_eq!(r.raw.awatt, -996_000);
    assert_eq!(r.period_frequency, Some(50.0));
}

#[test]
fn the_24_bit_path_and_the_32_bit_path_are_one_register() {
    let mut bank = RegisterBank::new();
    bank.set(registers::AWATT, (-2i32) as u32);
    let mut c = Ade7953::new(bank, Calibration::DEFAULT, ChipConfig::default());
    let awatt_24 = Register {
        address: 0x212,
        width: registers::Width::Bits24,
        ..registers::AWATT
    };
    assert_eq!(c.read_register(awatt_24).unwrap(), 0x00FF_FFFE);
    assert_eq!(c.read_register(registers::AWATT).unwrap() as i32, -2);
    assert_eq!(
        c.read_register(registers::VRMS).unwrap(),
        0,
        "unsigned: zero-padded"
    );
}

#[test]
fn period_gives_frequency_to_about_eleven_millihertz() {
    assert_eq!(frequency_from_period(4474), Some(50.0));
    let step = frequency_from_period(4474).unwrap() - frequency_from_period(4475).unwrap();
    assert!((0.011..0.0112).contains(&step), "{step}");
    assert_eq!(frequency_from_period(0), None);
    assert_eq!(frequency_from_period(0xFFFF), None);
    for f in [45.0, 50.0, 59.97, 60.0, 65.0] {
        let back = frequency_from_period(period_for_frequency(f)).unwrap();
        assert!((back - f).abs() < 0.008, "{f} {back}");
    }
    assert_eq!(period_for_frequency(0.0), u16::MAX);
    assert_eq!(period_for_frequency(f64::NAN), u16::MAX);
}

#[test]
fn spi_errors_come_back_typed_and_do_not_stick() {
    let mut c = chip();
    c.spi_mut().fail_next(1);
    assert_eq!(c.init(), Err(Ade7953Error::Spi(BankError)));
    // A failure in the middle of init (the CONFIG write).
    c.spi_mut().fail_next(0);
    let mut c = chip();
    c.read_register(registers::VERSION).unwrap();
    c.spi_mut().fail_next(0);
    c.spi_mut().fail_next(1);
    assert!(matches!(c.read(), Err(Ade7953Error::Spi(_))));
    assert!(matches!(c.period_frequency(), Ok(None)));
    assert!(c.init().is_ok());
    c.spi_mut().fail_next(3);
    assert!(matches!(c.was_reset(), Err(Ade7953Error::Spi(_))));
    assert!(
        matches!(
            c.write_register(registers::CONFIG, 4),
            Err(Ade7953Error::Spi(_))
        ),
        "every kind of access reports the bus error"
    );
}

#[test]
fn an_absent_chip_fails_verification() {
    let mut c = chip();
    c.spi_mut().set_absent(true);
    let err = c.init().unwrap_err();
    assert_eq!(
        err,
        Ade7953Error::Verify {
            register: "CONFIG",
            wrote: 0x0004,
            read: 0xFFFF
        }
    );
    assert!(alloc::format!("{err}").contains("is the ADE7953 connected?"));
}

#[test]
fn bad_writes_are_refused_before_the_bus() {
    let mut c = chip();
    assert_eq!(
        c.write_register(registers::PERIOD, 1),
        Err(Ade7953Error::ReadOnly { register: "PERIOD" })
    );
    assert_eq!(
        c.write_register(registers::PGA_V, 0x100),
        Err(Ade7953Error::TooWide {
            register: "PGA_V",
            value: 0x100
        })
    );
    assert_eq!(c.release().transactions(), 0);
}

#[test]
fn a_brown_out_is_detected_and_init_recovers() {
    let mut c = chip();
    c.init().unwrap();
    assert!(!c.was_reset().unwrap());
    c.spi_mut().power_cycle();
    assert!(c.was_reset().unwrap());
    c.init().unwrap();
    assert!(!c.was_reset().unwrap());
    let writes = c.release().writes().to_vec();
    assert_eq!(
        writes
            .iter()
            .filter(|w| **w
                == Write {
                    address: 0x120,
                    value: 0x30
                })
            .count(),
        2
    );
}
