//! Minimal ring-3 runtime for boot modules: the `_start` entry point, a
//! panic handler, and `print!`/`println!` through the kernel debug console.
//!
//! A module names its main function with [`entry!`]; `_start` aligns the
//! stack, calls it and ends the thread with status 0 when it returns.
#![no_std]

pub use abi;
use core::fmt::{self, Write};

/// Declares the module's main function.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        extern "C" fn __user_main() {
            let f: fn() = $main;
            f()
        }
    };
}

#[cfg(target_os = "none")]
core::arch::global_asm!(
    ".global _start",
    "_start:",
    "xor ebp, ebp",
    "and rsp, -16",
    "call __user_main",
    "xor edi, edi",
    "call {exit}",
    "ud2",
    exit = sym exit,
);

#[cfg(target_os = "none")]
extern "C" fn exit(status: u64) -> ! {
    abi::syscall::thread_exit(status)
}

/// Buffers formatted text and hands it to the kernel in whole chunks.
pub struct Console {
    buf: [u8; 256],
    len: usize,
}

impl Console {
    pub const fn new() -> Self {
        Console { buf: [0; 256], len: 0 }
    }

    pub fn flush(&mut self) {
        if self.len > 0 {
            #[cfg(target_os = "none")]
            let _ = abi::syscall::debug_print(core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?"));
            self.len = 0;
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for ch in s.chars() {
            let mut b = [0; 4];
            let enc = ch.encode_utf8(&mut b).as_bytes();
            if self.len + enc.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + enc.len()].copy_from_slice(enc);
            self.len += enc.len();
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut c = Console::new();
    let _ = c.write_fmt(args);
    c.flush();
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::_print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::print!("{}\n", format_args!($($arg)*)) };
}

/// The KIP, mapped read-only by the kernel at [`abi::KIP_VADDR`].
#[cfg(target_os = "none")]
pub fn kip() -> &'static abi::kip::Kip {
    // SAFETY: the kernel maps the KIP at this address in every address
    // space before the first instruction runs, and never unmaps it.
    unsafe { &*(abi::KIP_VADDR as *const abi::kip::Kip) }
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    _print(format_args!("user panic: {info}\n"));
    abi::syscall::thread_exit(u64::MAX)
}
