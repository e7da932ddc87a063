//! ZX edge capture. The ADE7953's ZX pin is a square wave at the line frequency; a GPIO interrupt
//! on its rising edges (or both, see `meter.zx_edges`) reads the µs system timer and queues the
//! low 32 bits. The app drains the queue into the frequency estimator before every sample.
//!
//! The timestamp is taken first thing in the handler; what remains is the
//! interrupt latency, a few µs, more while the radio driver holds the CPU (the estimator's
//! benchmark assumes up to 50 µs, and its outlier rejection handles rarer, longer delays). On the
//! ESP32-S3 the MCPWM capture unit could stamp edges in hardware; this code keeps to what both
//! chips have.

use core::cell::RefCell;

use critical_section::Mutex;
use esp_hal::gpio::{Event, Input, Io};
use esp_hal::handler;
use heapless::Deque;

/// Edges held between drains: five seconds at 50 Hz with both edges.
const QUEUE: usize = 512;

static PIN: Mutex<RefCell<Option<Input<'static>>>> = Mutex::new(RefCell::new(None));
static EDGES: Mutex<RefCell<Deque<u32, QUEUE>>> = Mutex::new(RefCell::new(Deque::new()));
static OVERFLOWS: Mutex<RefCell<u32>> = Mutex::new(RefCell::new(0));

/// Starts capturing edges of `pin` (rising only, or both).
pub fn start(io: &mut Io<'_>, mut pin: Input<'static>, both_edges: bool) {
    io.set_interrupt_handler(on_edge);
    critical_section::with(|cs| {
        pin.listen(if both_edges {
            Event::AnyEdge
        } else {
            Event::RisingEdge
        });
        PIN.borrow_ref_mut(cs).replace(pin);
    });
}

#[handler]
fn on_edge() {
    let tick = crate::now_us() as u32;
    critical_section::with(|cs| {
        if let Some(pin) = PIN.borrow_ref_mut(cs).as_mut() {
            if !pin.is_interrupt_set() {
                return;
            }
            pin.clear_interrupt();
        }
        let mut edges = EDGES.borrow_ref_mut(cs);
        if edges.is_full() {
            edges.pop_front();
            *OVERFLOWS.borrow_ref_mut(cs) += 1;
        }
        let _ = edges.push_back(tick);
    });
}

/// Hands every queued edge, oldest first, to `f`; returns how many were lost to a full queue
/// since the last drain.
pub fn drain(mut f: impl FnMut(u32)) -> u32 {
    loop {
        let next = critical_section::with(|cs| EDGES.borrow_ref_mut(cs).pop_front());
        match next {
            Some(t) => f(t),
            None => break,
        }
    }
    critical_section::with(|cs| core::mem::take(&mut *OVERFLOWS.borrow_ref_mut(cs)))
}
