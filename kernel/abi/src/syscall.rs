//! User-side system call wrappers (bare-metal target only).

use crate::{sys, Error};
use core::arch::asm;

/// Raw two-argument system call.
#[inline(always)]
pub fn syscall2(nr: u64, a0: u64, a1: u64) -> u64 {
    let ret: u64;
    // SAFETY: `syscall` transfers to the kernel, which checks every argument
    // and returns; the instruction clobbers rcx and r11, declared here.
    unsafe {
        asm!("syscall", inlateout("rax") nr => ret, in("rdi") a0, in("rsi") a1,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// Prints `s` on the kernel debug console (longer strings are split).
pub fn debug_print(s: &str) -> Result<(), Error> {
    for chunk in s.as_bytes().chunks(sys::DEBUG_PRINT_MAX as usize) {
        Error::decode(syscall2(sys::DEBUG_PRINT, chunk.as_ptr() as u64, chunk.len() as u64))?;
    }
    Ok(())
}

/// Ends the calling thread with `status`.
pub fn thread_exit(status: u64) -> ! {
    syscall2(sys::THREAD_EXIT, status, 0);
    // The kernel never returns from a successful THREAD_EXIT.
    loop {
        core::hint::spin_loop();
    }
}
