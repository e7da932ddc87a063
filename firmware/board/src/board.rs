//! Pins and peripherals.
//!
//! Wiring (ADE7953 in SPI mode, powered at 3.3 V, its ground isolated from the mains side as its
//! reference design shows):
//!
//! | ADE7953 pin | ESP32-S3 | ESP32-C3 |
//! |---|---|---|
//! | SCLK        | GPIO12   | GPIO6    |
//! | MOSI        | GPIO11   | GPIO7    |
//! | MISO        | GPIO13   | GPIO5    |
//! | CS          | GPIO10   | GPIO10   |
//! | ZX          | GPIO4    | GPIO3    |
//! | RESET       | GPIO5    | GPIO4    |
//!
//! SPI runs in mode 3 at 1 MHz (the ADE7953 allows up to 2 MHz).

use embedded_hal_bus::spi::ExclusiveDevice;
use esp_hal::Blocking;
use esp_hal::clock::CpuClock;
use esp_hal::delay::Delay;
use esp_hal::gpio::{Input, InputConfig, Io, Level, Output, OutputConfig, Pull};
use esp_hal::peripherals::{Peripherals, WIFI};
use esp_hal::spi::Mode;
use esp_hal::spi::master::{Config as SpiConfig, ConfigError, Spi};
use esp_hal::time::Rate;
use esp_hal::timer::timg::TimerGroup;

/// The ADE7953 as an embedded-hal `SpiDevice`.
pub type ChipSpi = ExclusiveDevice<Spi<'static, Blocking>, Output<'static>, Delay>;

/// What the app needs from the hardware.
pub struct Board {
    pub spi: ChipSpi,
    /// The ADE7953's RESET pin (active low).
    pub chip_reset: Output<'static>,
    pub wifi: WIFI<'static>,
}

/// Why the hardware could not be set up.
#[derive(Debug)]
pub enum BoardError {
    Spi(ConfigError),
    ChipSelect,
}

/// The esp-hal configuration: full CPU clock.
pub fn config() -> esp_hal::Config {
    esp_hal::Config::default().with_cpu_clock(CpuClock::max())
}

/// Sets up the heap and the scheduler (both needed before WiFi), SPI, the ADE7953's reset pin
/// and ZX capture.
pub fn setup(p: Peripherals) -> Result<Board, BoardError> {
    // WiFi needs about 60 kB; the offline buffer 48 bytes a reading.
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: 64 * 1024);
    #[cfg(feature = "esp32s3")]
    esp_alloc::heap_allocator!(size: 192 * 1024);
    #[cfg(feature = "esp32c3")]
    esp_alloc::heap_allocator!(size: 128 * 1024);

    let timg0 = TimerGroup::new(p.TIMG0);
    esp_rtos::start(timg0.timer0, p.FROM_CPU_INTR0);

    #[cfg(feature = "esp32s3")]
    let (sck, mosi, miso, cs, zx, reset) =
        (p.GPIO12, p.GPIO11, p.GPIO13, p.GPIO10, p.GPIO4, p.GPIO5);
    #[cfg(feature = "esp32c3")]
    let (sck, mosi, miso, cs, zx, reset) = (p.GPIO6, p.GPIO7, p.GPIO5, p.GPIO10, p.GPIO3, p.GPIO4);

    let spi = Spi::new(
        p.SPI2,
        SpiConfig::default()
            .with_frequency(Rate::from_khz(1000))
            .with_mode(Mode::_3),
    )
    .map_err(BoardError::Spi)?
    .with_sck(sck)
    .with_mosi(mosi)
    .with_miso(miso);
    let cs = Output::new(cs, Level::High, OutputConfig::default());
    let spi = ExclusiveDevice::new(spi, cs, Delay::new()).map_err(|_| BoardError::ChipSelect)?;
    let chip_reset = Output::new(reset, Level::High, OutputConfig::default());

    let mut io = Io::new(p.IO_MUX);
    let zx = Input::new(zx, InputConfig::default().with_pull(Pull::None));
    crate::zx::start(&mut io, zx, crate::settings::ZX_BOTH_EDGES);

    Ok(Board {
        spi,
        chip_reset,
        wifi: p.WIFI,
    })
}
