//! 16550 UART console on COM1 (the plain-text console: banner, panics,
//! exception reports, debug prints from user level).

use core::fmt;
use spin::Mutex;
use x86_64::instructions::port::Port;

pub const COM1: u16 = 0x3F8;
pub const COM2: u16 = 0x2F8;

pub struct Uart {
    base: u16,
}

impl Uart {
    pub const fn new(base: u16) -> Self {
        Uart { base }
    }

    /// 115200 baud, 8N1, FIFOs on, interrupts off.
    pub fn init(&self) {
        let b = self.base;
        // SAFETY: COM ports are standard PC I/O ports owned by the kernel;
        // this is the documented 16550 initialisation sequence.
        unsafe {
            Port::<u8>::new(b + 1).write(0x00);
            Port::<u8>::new(b + 3).write(0x80);
            Port::<u8>::new(b).write(0x01);
            Port::<u8>::new(b + 1).write(0x00);
            Port::<u8>::new(b + 3).write(0x03);
            Port::<u8>::new(b + 2).write(0xC7);
            Port::<u8>::new(b + 4).write(0x03);
        }
    }

    pub fn write_byte(&self, byte: u8) {
        // SAFETY: reading the line status and writing the data register of
        // a UART the kernel owns has no other effect.
        unsafe {
            let mut lsr = Port::<u8>::new(self.base + 5);
            let mut spins = 0u32;
            while lsr.read() & 0x20 == 0 && spins < 100_000 {
                spins += 1;
            }
            Port::<u8>::new(self.base).write(byte);
        }
    }

    pub fn write_bytes(&self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
    }
}

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

pub static CONSOLE: Mutex<Uart> = Mutex::new(Uart::new(COM1));

pub fn init() {
    CONSOLE.lock().init();
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    use fmt::Write;
    // Interrupts stay off while the kernel runs, so the lock cannot be taken
    // by an interrupt handler on the same CPU.
    let _ = CONSOLE.lock().write_fmt(args);
}

/// Forcibly releases the console lock (used when reporting a fault that
/// may have hit while it was held).
pub fn break_lock() {
    // SAFETY: only called on the fault path, where the interrupted holder
    // will never run again.
    unsafe { CONSOLE.force_unlock() };
}
