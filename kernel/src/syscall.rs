//! System call dispatch. Every argument is checked; a bad one becomes an
//! error code in `rax`, never a kernel panic.
#![deny(clippy::arithmetic_side_effects)]

use crate::arch::serial;
use crate::arch::trap::TrapFrame;
use crate::dispatch::schedule_and_resume;
use crate::thread::{with_kernel, Kernel, State, MAX_THREADS};
use crate::types::Slot;
use crate::{control, ipc, timer};
use abi::sys::{self, attr};
use abi::{Error, ThreadId};

fn debug_print(kk: &Kernel, cur: Slot, ptr: u64, len: u64) -> Result<u64, Error> {
    if len > sys::DEBUG_PRINT_MAX {
        return Err(Error::InvalidArgument);
    }
    let mut buf = [0u8; sys::DEBUG_PRINT_MAX as usize];
    let buf = &mut buf[..len as usize];
    let src = crate::umem::USlice::new(ptr, len)?;
    let space = kk.space_of(cur).ok_or(Error::InvalidThread)?;
    crate::umem::copy_in(space, src, buf)?;
    // Control bytes other than newline and tab are replaced so a task
    // cannot drive the terminal.
    let con = serial::CONSOLE.lock();
    for &b in buf.iter() {
        let ok = b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80;
        con.write_bytes(&[if ok { b } else { b'?' }]);
    }
    Ok(len)
}

/// `THREAD_INFO`: an attribute of the caller or of a thread it controls.
fn thread_info(kk: &mut Kernel, cur: Slot, id: ThreadId, what: u64) -> Result<u64, Error> {
    let t = kk.lookup(id)?;
    if t != cur && !kk.controls(cur, t) {
        return Err(Error::NoPermission);
    }
    let tc = &kk.tcbs[t];
    let v = match what {
        attr::PAGER => tc.pager.0,
        attr::EXCEPTION_HANDLER => tc.exc_handler.0,
        attr::PRIORITY => tc.prio as u64,
        attr::TIMESLICE => tc.timeslice,
        attr::BUDGET => {
            let (b, p) = (tc.budget, tc.period);
            kk.tcbs[cur].frame.rdx = p;
            b
        }
        attr::MCP => tc.mcp as u64,
        attr::RIGHTS => tc.rights as u64,
        attr::SPACE => tc.space.index() as u64,
        attr::PREEMPTIONS => tc.preemptions,
        attr::FASTPATH => tc.fastpath_ipcs,
        attr::ALLOW | attr::REFUSED => {
            let a = kk.spaces[tc.space].access;
            let (v, second) = match what {
                attr::ALLOW => (a.mask() as u64, a.is_unrestricted() as u64),
                _ => (a.refused_sends, a.refused_calls),
            };
            kk.tcbs[cur].frame.rdx = second;
            v
        }
        _ => return Err(Error::InvalidArgument),
    };
    Ok(v)
}

fn dispatch(kk: &mut Kernel, cur: Slot) -> Option<Result<u64, Error>> {
    // IPC, the hot path, reads its registers where they are.
    if kk.tcbs[cur].frame.rax == sys::IPC {
        ipc::sys_ipc(kk, cur);
        return None;
    }
    let f = kk.tcbs[cur].frame;
    let r = match f.rax {
        sys::DEBUG_PRINT => debug_print(kk, cur, f.rdi, f.rsi),
        sys::THREAD_EXIT => {
            crate::kprintln!("thread {:#x} exited, status {}", kk.id_of(cur).0, f.rdi as i64);
            kk.delete_thread(cur);
            return None;
        }
        nr if control::is_control(nr) => match control::decode(kk, cur, &f) {
            Ok(op) => control::invoke(kk, cur, op),
            Err(e) => {
                // Refused before anything changed: the caller is alive.
                if e == Error::NoPermission {
                    crate::access::refused_call(kk, cur);
                }
                Err(e)
            }
        },
        sys::THREAD_INFO => thread_info(kk, cur, ThreadId(f.rdi), f.rsi),
        sys::YIELD => {
            kk.tcbs[cur].slice_left = kk.tcbs[cur].timeslice;
            kk.ready.rotate(cur);
            Ok(0)
        }
        sys::MYSELF => {
            kk.tcbs[cur].frame.rdx = timer::now();
            kk.tcbs[cur].frame.rsi = timer::tsc_hz();
            Ok(kk.id_of(cur).0)
        }
        sys::UNMAP => crate::mapping::unmap(kk, cur, abi::Fpage(f.rdi), f.rsi & sys::UNMAP_SELF != 0),
        #[cfg(feature = "ktest")]
        sys::DEBUG_TRANSLATE => debug_translate(kk, cur, ThreadId(f.rdi), f.rsi),
        #[cfg(feature = "ktest")]
        sys::KTEST => control::holds(kk, cur, sys::rights::CONTROL)
            .and_then(|_| crate::invariants::debug_call(kk, f.rdi, f.rsi, f.rdx)),
        _ => Err(Error::NoSuchCall),
    };
    Some(r)
}

/// Entered from `syscall_entry`; the caller's registers are already saved
/// in its TCB (`_frame` points there).
#[no_mangle]
extern "C" fn syscall_dispatch(_frame: *mut TrapFrame) -> ! {
    if with_kernel(|kk| kk.current.is_some_and(|cur| crate::fastpath::ipc(kk, cur))) {
        // SAFETY: the fast path switched to a thread blocked in an IPC
        // system call: its frame holds user selectors, a user RIP and
        // sanitized RFLAGS, and `switch_to` loaded its space.
        unsafe { crate::arch::trap::resume_user() }
    }
    with_kernel(syscall_of_current);
    schedule_and_resume()
}

/// The system call of the current thread; its result lands in its saved
/// registers.
#[inline(always)]
fn syscall_of_current(kk: &mut Kernel) {
    let Some(cur) = kk.current else { return };
    if kk.tcbs[cur].frame.rip >= abi::USER_END {
        syscall_cannot_return(kk, cur);
    } else if let Some(r) = dispatch(kk, cur) {
        kk.tcbs[cur].frame.rax = match r {
            Ok(v) => v,
            Err(e) => e.encode(),
        };
    }
    if kk.tcbs[cur].state != State::Free {
        timer::account(kk, cur);
    }
}

/// `DEBUG_TRANSLATE` (test kernel only): the physical address behind user
/// address `vaddr` of `id`'s space, flags in `rdx`.
#[cfg(feature = "ktest")]
fn debug_translate(kk: &mut Kernel, cur: Slot, id: ThreadId, vaddr: u64) -> Result<u64, Error> {
    let t = kk.lookup(id)?;
    let v = crate::types::VirtAddr::user(vaddr).ok_or(Error::BadAddress)?;
    let m = kk.space_of(t).and_then(|s| s.translate(v)).filter(|m| m.user).ok_or(Error::BadAddress)?;
    kk.tcbs[cur].frame.rdx = m.writable as u64 | (m.executable as u64) << 1;
    Ok(m.phys.as_u64())
}

/// A `syscall` in the last two bytes of the user half: its return address
/// is the first non-canonical one, and no return there is safe (see
/// `exit_to_user`). The instruction faults instead, before it does
/// anything: #GP (error code 0) at the `syscall`, to the exception handler.
fn syscall_cannot_return(kk: &mut Kernel, cur: Slot) {
    // `syscall` is two bytes (0f 05), as in `ipc::restart_after_fault`.
    kk.tcbs[cur].frame.rip = kk.tcbs[cur].frame.rip.saturating_sub(2);
    ipc::exception(kk, cur, crate::crash::GENERAL_PROTECTION, 0, 0);
}

const _: () = assert!(MAX_THREADS <= 128, "pending_budget is a u128 bitmask");
