//! Kernel logs with `defmt`: compact binary frames on COM2, decoded on the
//! host against the kernel ELF (`prism` does it after every run).
//!
//! Formatting happens on the host, so a log call in the kernel costs a few
//! bytes written to a UART instead of a `core::fmt` pass; the banner, fault
//! reports and panics stay on the plain-text console (COM1), which must work
//! even when nobody decodes. Frames are rzcobs-encoded, so the host
//! resynchronises after a lost byte. Timestamps are raw TSC values.

use crate::arch::serial::{Uart, COM2};
use core::sync::atomic::{AtomicBool, Ordering};

static COM2_UART: Uart = Uart::new(COM2);
static TAKEN: AtomicBool = AtomicBool::new(false);
static mut ENCODER: defmt::Encoder = defmt::Encoder::new();

fn write(bytes: &[u8]) {
    for &b in bytes {
        COM2_UART.write_byte(b);
    }
}

pub fn init() {
    COM2_UART.init();
}

defmt::timestamp!("tsc={=u64}", {
    // SAFETY: rdtsc has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
});

#[defmt::global_logger]
struct Logger;

// SAFETY: `acquire` takes the TAKEN flag, so only one frame is encoded at a
// time; the kernel runs with interrupts off, so nothing re-enters in between.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        if TAKEN.swap(true, Ordering::Acquire) {
            // A log call from a fault inside a log call: drop it.
            return;
        }
        let enc = &raw mut ENCODER;
        // SAFETY: exclusive through TAKEN.
        unsafe { (*enc).start_frame(write) }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        let enc = &raw mut ENCODER;
        // SAFETY: the caller holds the logger (acquire came first).
        unsafe { (*enc).end_frame(write) };
        TAKEN.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        let enc = &raw mut ENCODER;
        // SAFETY: the caller holds the logger (acquire came first).
        unsafe { (*enc).write(bytes, write) }
    }
}
