//! System call dispatch. Every argument is checked; a bad one becomes an
//! error code in `rax`, never a kernel panic.

use crate::arch::paging::{self, AddressSpace};
use crate::arch::serial;
use crate::arch::trap::TrapFrame;
use crate::thread::{k, schedule_and_resume, Kernel, State, MAX_THREADS};
use crate::{ipc, irq, timer};
use abi::sys::{self, attr};
use abi::{Error, ThreadId};

/// Copies `buf.len()` bytes from user address `uaddr` of `space`, page by
/// page through its page tables, so an unmapped or kernel-only address is
/// an error, not a kernel page fault.
pub fn copy_from_user(space: &AddressSpace, uaddr: u64, buf: &mut [u8]) -> Result<(), Error> {
    let end = uaddr.checked_add(buf.len() as u64).ok_or(Error::BadAddress)?;
    if end > abi::USER_END {
        return Err(Error::BadAddress);
    }
    let mut done = 0usize;
    while done < buf.len() {
        let a = uaddr + done as u64;
        let t = space.translate(a).filter(|t| t.user).ok_or(Error::BadAddress)?;
        let n = ((4096 - (a & 0xfff)) as usize).min(buf.len() - done);
        let src = paging::phys_to_virt(t.phys).ok_or(Error::BadAddress)?;
        // SAFETY: `src..src+n` lies within one mapped user frame, reached
        // through the kernel's direct map.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, buf[done..].as_mut_ptr(), n) };
        done += n;
    }
    Ok(())
}

fn debug_print(kk: &Kernel, cur: usize, ptr: u64, len: u64) -> Result<u64, Error> {
    if len > sys::DEBUG_PRINT_MAX {
        return Err(Error::InvalidArgument);
    }
    let mut buf = [0u8; sys::DEBUG_PRINT_MAX as usize];
    let buf = &mut buf[..len as usize];
    copy_from_user(kk.space_of(cur), ptr, buf)?;
    // Control bytes other than newline and tab are replaced so a task
    // cannot drive the terminal.
    let con = serial::CONSOLE.lock();
    for &b in buf.iter() {
        let ok = b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80;
        con.write_bytes(&[if ok { b } else { b'?' }]);
    }
    Ok(len)
}

fn privileged(kk: &Kernel, cur: usize) -> Result<(), Error> {
    if kk.tcbs[cur].privileged {
        Ok(())
    } else {
        Err(Error::NoPermission)
    }
}

fn thread_config(kk: &mut Kernel, t: usize, what: u64, v: u64, v2: u64) -> Result<u64, Error> {
    match what {
        attr::PAGER => kk.tcbs[t].pager = ThreadId(v),
        attr::EXCEPTION_HANDLER => kk.tcbs[t].exc_handler = ThreadId(v),
        attr::PRIORITY => {
            if v > sys::MAX_PRIORITY {
                return Err(Error::InvalidArgument);
            }
            kk.tcbs[t].prio = v as u8;
            if kk.ready.is_queued(t) {
                kk.ready.remove(t);
                if kk.tcbs[t].state == State::Ready {
                    kk.ready.enqueue(t, v as u8);
                }
            }
        }
        attr::TIMESLICE => {
            if v < sys::MIN_TIMESLICE {
                return Err(Error::InvalidArgument);
            }
            kk.tcbs[t].timeslice = v;
            kk.tcbs[t].slice_left = v;
        }
        attr::BUDGET => {
            if v != 0 && (v < sys::MIN_TIMESLICE || v2 < v) {
                return Err(Error::InvalidArgument);
            }
            let now = timer::now();
            let tc = &mut kk.tcbs[t];
            tc.budget = v;
            tc.period = if v == 0 { 0 } else { v2 };
            tc.budget_left = v;
            // Saturating: a period up to u64::MAX is accepted, and the
            // first replenishment must not wrap into the past.
            tc.next_replenish = if v == 0 { 0 } else { now.saturating_add(v2) };
            timer::note_deadline(tc.next_replenish);
            if v == 0 && tc.state == State::BudgetWait {
                kk.make_ready(t);
            }
        }
        attr::PRIVILEGED => {
            if v > 1 {
                return Err(Error::InvalidArgument);
            }
            kk.tcbs[t].privileged = v == 1;
        }
        _ => return Err(Error::InvalidArgument),
    }
    Ok(0)
}

fn dispatch(kk: &mut Kernel, cur: usize) -> Option<Result<u64, Error>> {
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
            if let Some(hook) = EXIT_HOOK.get() {
                hook(kk.id_of(cur), f.rdi);
            }
            kk.delete_thread(cur);
            return None;
        }
        sys::THREAD_CREATE => privileged(kk, cur).and_then(|_| {
            let same = if f.rdi == 0 { None } else { Some(kk.lookup(ThreadId(f.rdi))?) };
            let t = kk.create_thread(same, f.rsi, ThreadId(f.rdx))?;
            Ok(kk.id_of(t).0)
        }),
        sys::THREAD_DELETE => privileged(kk, cur).and_then(|_| {
            let t = kk.lookup(ThreadId(f.rdi))?;
            kk.delete_thread(t);
            Ok(0)
        }),
        sys::THREAD_START => privileged(kk, cur).and_then(|_| {
            let t = kk.lookup(ThreadId(f.rdi))?;
            kk.start_thread(t, f.rsi, f.rdx).map(|_| 0)
        }),
        sys::THREAD_CONFIG => privileged(kk, cur).and_then(|_| {
            let t = kk.lookup(ThreadId(f.rdi))?;
            thread_config(kk, t, f.rsi, f.rdx, f.r10)
        }),
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
        sys::IRQ_ATTACH => privileged(kk, cur).and_then(|_| irq::attach(kk, f.rdi, ThreadId(f.rsi)).map(|_| 0)),
        #[cfg(feature = "ktest")]
        sys::KTEST => privileged(kk, cur).and_then(|_| crate::invariants::debug_call(kk, f.rdi, f.rsi, f.rdx)),
        _ => Err(Error::NoSuchCall),
    };
    Some(r)
}

/// Entered from `syscall_entry`; the caller's registers are already saved
/// in its TCB (`_frame` points there).
#[no_mangle]
extern "C" fn syscall_dispatch(_frame: *mut TrapFrame) -> ! {
    let kk = k();
    let Some(cur) = kk.current else { schedule_and_resume() };
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
    schedule_and_resume()
}

/// A `syscall` in the last two bytes of the user half: its return address
/// is the first non-canonical one, and no return there is safe (see
/// `exit_to_user`). The instruction faults instead, before it does
/// anything: #GP (error code 0) at the `syscall`, to the exception handler.
fn syscall_cannot_return(kk: &mut Kernel, cur: usize) {
    // `syscall` is two bytes (0f 05), as in `ipc::restart_after_fault`.
    kk.tcbs[cur].frame.rip -= 2;
    ipc::exception(kk, cur, crate::fault::GENERAL_PROTECTION, 0, 0);
}

/// Called with the id and status of a thread that exits; the test kernel
/// checks the root thread's.
pub static EXIT_HOOK: spin::Once<fn(ThreadId, u64)> = spin::Once::new();

const _: () = assert!(MAX_THREADS <= 128, "pending_budget is a u128 bitmask");
