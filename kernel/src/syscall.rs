//! System call dispatch. Every argument is checked; a bad one becomes an
//! error code in `rax`, never a kernel panic.
#![deny(clippy::arithmetic_side_effects)]

use crate::arch::serial;
use crate::arch::trap::TrapFrame;
use crate::dispatch::schedule_and_resume;
use crate::thread::{with_kernel, Kernel, State, MAX_THREADS};
use crate::types::Slot;
use crate::{ipc, irq, timer};
use abi::sys::{self, attr, rights};
use abi::{Error, ThreadId};

fn debug_print(kk: &Kernel, cur: Slot, ptr: u64, len: u64) -> Result<u64, Error> {
    if len > sys::DEBUG_PRINT_MAX {
        return Err(Error::InvalidArgument);
    }
    let mut buf = [0u8; sys::DEBUG_PRINT_MAX as usize];
    let buf = &mut buf[..len as usize];
    let src = crate::umem::USlice::new(ptr, len)?;
    let space = kk.space_of(cur).ok_or(Error::InvalidThread)?;
    crate::umem::copy_in(space, src, buf).map_err(|_| Error::BadAddress)?;
    // Control bytes other than newline and tab are replaced so a task
    // cannot drive the terminal.
    let con = serial::CONSOLE.lock();
    for &b in buf.iter() {
        let ok = b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80;
        con.write_bytes(&[if ok { b } else { b'?' }]);
    }
    Ok(len)
}

/// The caller holds `right` (an `abi::sys::rights` bit).
fn holds(kk: &Kernel, cur: Slot, right: u64) -> Result<(), Error> {
    if kk.tcbs[cur].rights as u64 & right != 0 {
        Ok(())
    } else {
        Err(Error::NoPermission)
    }
}

/// The target of a control call: a thread the caller controls, or the
/// caller itself where `allow_self`. The caller must hold `CONTROL`.
fn controlled(kk: &Kernel, cur: Slot, id: ThreadId, allow_self: bool) -> Result<Slot, Error> {
    holds(kk, cur, rights::CONTROL)?;
    let t = kk.lookup(id)?;
    if (allow_self && t == cur) || kk.controls(cur, t) {
        Ok(t)
    } else {
        Err(Error::NoPermission)
    }
}

/// One checked `THREAD_CONFIG` request (decode, then apply: applying a
/// checked change cannot fail, so nothing is ever half done).
enum Config {
    Pager(ThreadId),
    Handler(ThreadId),
    Priority(u8),
    Timeslice(u64),
    Budget { budget: u64, period: u64 },
    Mcp(u8),
    Rights(u8),
    Allow(crate::access::Change),
    Fastpath(bool),
}

/// Checks a `THREAD_CONFIG` request of `cur` against its own limits.
fn decode_config(kk: &Kernel, cur: Slot, what: u64, v: u64, v2: u64) -> Result<Config, Error> {
    let caller = &kk.tcbs[cur];
    let within_mcp = |p: u64| {
        if p > sys::MAX_PRIORITY {
            Err(Error::InvalidArgument)
        } else if p > caller.mcp as u64 {
            Err(Error::NoPermission)
        } else {
            Ok(p as u8)
        }
    };
    Ok(match what {
        attr::PAGER => Config::Pager(crate::access::may_name(kk, cur, ThreadId(v)).map(|_| ThreadId(v))?),
        attr::EXCEPTION_HANDLER => Config::Handler(crate::access::may_name(kk, cur, ThreadId(v)).map(|_| ThreadId(v))?),
        attr::ALLOW => Config::Allow(crate::access::decode(kk, cur, v, v2)?),
        attr::PRIORITY => Config::Priority(within_mcp(v)?),
        attr::MCP => Config::Mcp(within_mcp(v)?),
        attr::TIMESLICE if v >= sys::MIN_TIMESLICE => Config::Timeslice(v),
        attr::BUDGET if v == 0 || (v >= sys::MIN_TIMESLICE && v2 >= v) => Config::Budget { budget: v, period: v2 },
        attr::RIGHTS if v & !rights::ALL != 0 => return Err(Error::InvalidArgument),
        attr::RIGHTS if v & !(caller.rights as u64) != 0 => return Err(Error::NoPermission),
        attr::RIGHTS => Config::Rights(v as u8),
        attr::FASTPATH if v <= 1 => Config::Fastpath(v == 1),
        _ => return Err(Error::InvalidArgument),
    })
}

fn apply_config(kk: &mut Kernel, t: Slot, c: Config) {
    match c {
        Config::Pager(p) => kk.tcbs[t].pager = p,
        Config::Handler(h) => kk.tcbs[t].exc_handler = h,
        Config::Priority(p) => {
            kk.tcbs[t].prio = p;
            if kk.ready.is_queued(t) {
                kk.ready.remove(t);
                if kk.tcbs[t].state == State::Ready {
                    kk.ready.enqueue(t, p);
                }
            }
        }
        Config::Timeslice(v) => {
            kk.tcbs[t].timeslice = v;
            kk.tcbs[t].slice_left = v;
        }
        Config::Budget { budget, period } => {
            let now = timer::now();
            let tc = &mut kk.tcbs[t];
            tc.budget = budget;
            tc.period = if budget == 0 { 0 } else { period };
            tc.budget_left = budget;
            // Saturating: a period up to u64::MAX is accepted, and the
            // first replenishment must not wrap into the past.
            tc.next_replenish = if budget == 0 { 0 } else { now.saturating_add(period) };
            timer::note_deadline(tc.next_replenish);
            if budget == 0 && tc.state == State::BudgetWait {
                kk.make_ready(t);
            }
        }
        Config::Mcp(m) => kk.tcbs[t].mcp = m,
        Config::Rights(r) => kk.tcbs[t].rights = r,
        Config::Allow(c) => crate::access::apply(kk, t, c),
        Config::Fastpath(on) => kk.tcbs[t].fastpath = on,
    }
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

/// `PMC`: what the counters count, or (with the right) program them; the
/// [`abi::pmc::PmcInfo`] goes back in `rax`, `rsi`, `rdx`.
fn pmc(kk: &mut Kernel, cur: Slot, op: u64, mask: u64) -> Result<u64, Error> {
    let info = match op {
        abi::pmc::INFO => crate::pmc::hw::info(),
        abi::pmc::PROGRAM if mask & !abi::pmc::ALL_EVENTS != 0 => return Err(Error::InvalidArgument),
        abi::pmc::PROGRAM => {
            holds(kk, cur, rights::PMC)?;
            crate::pmc::hw::program(mask as u8)
        }
        _ => return Err(Error::InvalidArgument),
    };
    let [a, b, c] = info.to_words();
    kk.tcbs[cur].frame.rsi = b;
    kk.tcbs[cur].frame.rdx = c;
    Ok(a)
}

fn thread_create(
    kk: &mut Kernel,
    cur: Slot,
    same_space_as: ThreadId,
    utcb: u64,
    pager: ThreadId,
) -> Result<u64, Error> {
    holds(kk, cur, rights::CONTROL)?;
    crate::access::may_name(kk, cur, pager)?;
    let same = if same_space_as.is_nil() {
        None
    } else {
        let s = kk.lookup(same_space_as)?;
        // Only into the caller's own space or one of a thread it controls.
        if kk.tcbs[s].space != kk.tcbs[cur].space && !kk.controls(cur, s) {
            return Err(Error::NoPermission);
        }
        Some(s)
    };
    let t = kk.create_thread(same, utcb, pager)?;
    if same.is_none() {
        crate::access::created_space(kk, cur, t);
    }
    let prio = kk.tcbs[cur].mcp.min(crate::thread::DEFAULT_PRIORITY);
    let tc = &mut kk.tcbs[t];
    tc.chief = Some(cur);
    tc.prio = prio;
    Ok(kk.id_of(t).0)
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
        sys::THREAD_CREATE => thread_create(kk, cur, ThreadId(f.rdi), f.rsi, ThreadId(f.rdx)),
        sys::THREAD_DELETE => controlled(kk, cur, ThreadId(f.rdi), false).map(|t| {
            kk.delete_thread(t);
            0
        }),
        sys::THREAD_START => {
            controlled(kk, cur, ThreadId(f.rdi), false).and_then(|t| kk.start_thread(t, f.rsi, f.rdx).map(|_| 0))
        }
        sys::THREAD_CONFIG => controlled(kk, cur, ThreadId(f.rdi), true).and_then(|t| {
            let c = decode_config(kk, cur, f.rsi, f.rdx, f.r10)?;
            apply_config(kk, t, c);
            Ok(0)
        }),
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
        sys::PMC => pmc(kk, cur, f.rdi, f.rsi),
        sys::UNMAP => crate::mapping::unmap(kk, cur, abi::Fpage(f.rdi), f.rsi & sys::UNMAP_SELF != 0),
        sys::IRQ_ATTACH => holds(kk, cur, rights::IRQ)
            .and_then(|_| crate::access::may_name(kk, cur, ThreadId(f.rsi)))
            .and_then(|_| irq::attach(kk, f.rdi, ThreadId(f.rsi)).map(|_| 0)),
        #[cfg(feature = "ktest")]
        sys::DEBUG_TRANSLATE => debug_translate(kk, cur, ThreadId(f.rdi), f.rsi),
        #[cfg(feature = "ktest")]
        sys::KTEST => {
            holds(kk, cur, rights::CONTROL).and_then(|_| crate::invariants::debug_call(kk, f.rdi, f.rsi, f.rdx))
        }
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
        let control = matches!(
            kk.tcbs[cur].frame.rax,
            sys::THREAD_CREATE
                | sys::THREAD_DELETE
                | sys::THREAD_START
                | sys::THREAD_CONFIG
                | sys::IRQ_ATTACH
                | sys::PMC
        );
        if control && r == Err(Error::NoPermission) && kk.tcbs[cur].state != State::Free {
            crate::access::refused_call(kk, cur);
        }
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
