//! System call dispatch. Every argument is checked; a bad one becomes an
//! error code in `rax`, never a kernel panic.

use crate::arch::paging::AddressSpace;
use crate::arch::serial;
use crate::arch::trap::TrapFrame;
use crate::task;
use abi::{sys, Error};

/// Copies `buf.len()` bytes from user address `uaddr` of `space`, page by
/// page through its page tables, so an unmapped or kernel-only address is
/// an error, not a kernel page fault.
pub fn copy_from_user(space: &AddressSpace, uaddr: u64, buf: &mut [u8]) -> Result<(), Error> {
    let end = uaddr
        .checked_add(buf.len() as u64)
        .ok_or(Error::BadAddress)?;
    if end > abi::USER_END {
        return Err(Error::BadAddress);
    }
    let mut done = 0usize;
    while done < buf.len() {
        let a = uaddr + done as u64;
        let t = space
            .translate(a)
            .filter(|t| t.user)
            .ok_or(Error::BadAddress)?;
        let n = ((4096 - (a & 0xfff)) as usize).min(buf.len() - done);
        let src = crate::arch::paging::phys_to_virt(t.phys).ok_or(Error::BadAddress)?;
        // SAFETY: `src..src+n` lies within one mapped user frame, reached
        // through the kernel's direct map.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, buf[done..].as_mut_ptr(), n) };
        done += n;
    }
    Ok(())
}

fn debug_print(ptr: u64, len: u64) -> Result<u64, Error> {
    if len > sys::DEBUG_PRINT_MAX {
        return Err(Error::InvalidArgument);
    }
    let mut buf = [0u8; sys::DEBUG_PRINT_MAX as usize];
    let buf = &mut buf[..len as usize];
    {
        let cur = task::CURRENT.lock();
        let space = &cur.as_ref().ok_or(Error::InvalidThread)?.space;
        copy_from_user(space, ptr, buf)?;
    }
    // Print what is there: control bytes other than newline and tab are
    // replaced so a task cannot drive the terminal.
    let con = serial::CONSOLE.lock();
    for &b in buf.iter() {
        let ok = b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80;
        con.write_bytes(&[if ok { b } else { b'?' }]);
    }
    Ok(len)
}

/// Entered from `syscall_entry` with the caller's saved frame.
#[no_mangle]
extern "C" fn syscall_dispatch(f: &mut TrapFrame) {
    let r = match f.rax {
        sys::DEBUG_PRINT => debug_print(f.rdi, f.rsi),
        sys::THREAD_EXIT => {
            crate::kprintln!("thread exit, status {}", f.rdi as i64);
            if let Some(hook) = EXIT_HOOK.get() {
                hook(f.rdi);
            }
            task::stop_current("exited");
        }
        _ => Err(Error::NoSuchCall),
    };
    f.rax = match r {
        Ok(v) => v,
        Err(e) => e.encode(),
    };
}

/// Called with the status of a thread that exits; the test kernel checks it.
pub static EXIT_HOOK: spin::Once<fn(u64)> = spin::Once::new();
