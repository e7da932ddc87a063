//! State shared between the tasks, each piece behind a critical-section mutex or an embassy-sync
//! primitive: the wall clock (set by SNTP, read by the app and the link for the last will), the
//! WiFi RSSI, the buffer's drop count, the link state, and the publish hand-off between the app
//! and the link.

use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use ogm_firmware_core::Health;
use ogm_firmware_core::clock::WallClock;
use ogm_protocol::Kind;

/// Unix time from SNTP.
pub static CLOCK: Mutex<CriticalSectionRawMutex, RefCell<WallClock>> =
    Mutex::new(RefCell::new(WallClock::new()));
/// WiFi signal, dBm (0 until connected).
pub static RSSI: Mutex<CriticalSectionRawMutex, Cell<i32>> = Mutex::new(Cell::new(0));
/// Readings dropped from the offline buffer since boot.
pub static DROPPED: Mutex<CriticalSectionRawMutex, Cell<u64>> = Mutex::new(Cell::new(0));

/// The broker connection came up (`true`) or went down (`false`).
pub static LINK_STATE: Signal<CriticalSectionRawMutex, bool> = Signal::new();

/// One message for the link to publish.
#[derive(Debug)]
pub struct Request {
    pub kind: Kind,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// App → link: the next message. One at a time: the app waits for [`RESULTS`].
pub static REQUESTS: Channel<CriticalSectionRawMutex, Request, 1> = Channel::new();
/// Link → app: whether the broker acknowledged the message.
pub static RESULTS: Signal<CriticalSectionRawMutex, bool> = Signal::new();

/// Unix µs now, if SNTP has answered.
pub fn unix_now() -> Option<i64> {
    let now = crate::now_us();
    CLOCK.lock(|c| c.borrow().unix_us(now))
}

/// The board's health for status messages and the last will.
pub fn health() -> Health {
    Health {
        rssi: RSSI.lock(Cell::get),
        free_heap: esp_alloc::HEAP.free() as u64,
        battery: None,
    }
}
