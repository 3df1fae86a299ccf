//! User-side system call wrappers (bare-metal target only).

use crate::ipc::{Tag, Timeout, Utcb, MAX_MRS, REG_MRS};
use crate::{sys, Error, ThreadId};
use core::arch::asm;

/// Raw system call with up to four arguments (`rdi, rsi, rdx, r10`);
/// returns `rax, rsi, rdx` after the call.
#[inline(always)]
pub fn syscall4(nr: u64, a0: u64, a1: u64, a2: u64, a3: u64) -> (u64, u64, u64) {
    let (ret, o1, o2): (u64, u64, u64);
    // SAFETY: `syscall` enters the kernel, which checks every argument and
    // returns with all registers restored except rax (result), rsi/rdx
    // (extra results), and rcx/r11 (taken by the instruction).
    unsafe {
        asm!("syscall", inlateout("rax") nr => ret, in("rdi") a0, inlateout("rsi") a1 => o1,
             inlateout("rdx") a2 => o2, in("r10") a3, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    (ret, o1, o2)
}

/// Raw two-argument system call.
#[inline(always)]
pub fn syscall2(nr: u64, a0: u64, a1: u64) -> u64 {
    syscall4(nr, a0, a1, 0, 0).0
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

/// A message as it travels in registers: tag (MR0) and MR1..MR6. Words
/// MR7.. are in the UTCB ([`utcb`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Msg {
    pub tag: u64,
    pub mr: [u64; REG_MRS],
}

impl Msg {
    pub fn new(tag: Tag, words: &[u64]) -> Msg {
        let mut m = Msg { tag: tag.0, mr: [0; REG_MRS] };
        for (d, s) in m.mr.iter_mut().zip(words) {
            *d = *s;
        }
        m
    }

    pub fn tag(&self) -> Tag {
        Tag(self.tag)
    }

    /// A message of up to 63 `words` (untyped, then typed as `tag` says):
    /// MR1..MR6 travel in registers, the rest is copied into the caller's
    /// UTCB now, so send it before the next IPC.
    pub fn long(tag: Tag, words: &[u64]) -> Msg {
        let n = words.len().min(MAX_MRS - 1);
        if n > REG_MRS {
            utcb().mr[REG_MRS + 1..=n].copy_from_slice(&words[REG_MRS..n]);
        }
        Msg::new(tag, &words[..n.min(REG_MRS)])
    }

    /// Every word of this message as just received (MR1..MR6 from the
    /// registers, the rest from the UTCB, so read them before the next
    /// IPC), into `out`; returns how many.
    pub fn words(&self, out: &mut [u64]) -> usize {
        let n = self.tag().words().min(MAX_MRS - 1).min(out.len());
        out[..n.min(REG_MRS)].copy_from_slice(&self.mr[..n.min(REG_MRS)]);
        if n > REG_MRS {
            out[REG_MRS..n].copy_from_slice(&utcb().mr[REG_MRS + 1..=n]);
        }
        n
    }
}

/// The raw IPC call: send `msg` to `to` (unless NIL), then receive from
/// `from` (unless NIL). Returns the sender and the received message.
#[inline(always)]
pub fn ipc(to: ThreadId, from: ThreadId, send: Timeout, recv: Timeout, msg: &Msg) -> Result<(ThreadId, Msg), Error> {
    let (ret, sender, tag): (u64, u64, u64);
    let mut o = [0u64; REG_MRS];
    // SAFETY: see `syscall4`; the IPC call also returns MR1..MR6 in r8, r9,
    // r12..r15 and leaves every other register as it was.
    unsafe {
        asm!("syscall",
             inlateout("rax") sys::IPC => ret,
             in("rdi") to.0,
             inlateout("rsi") from.0 => sender,
             inlateout("rdx") msg.tag => tag,
             in("r10") Timeout::pack(send, recv),
             inlateout("r8") msg.mr[0] => o[0],
             inlateout("r9") msg.mr[1] => o[1],
             inlateout("r12") msg.mr[2] => o[2],
             inlateout("r13") msg.mr[3] => o[3],
             inlateout("r14") msg.mr[4] => o[4],
             inlateout("r15") msg.mr[5] => o[5],
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    Error::decode(ret)?;
    Ok((ThreadId(sender), Msg { tag, mr: o }))
}

/// Send, then wait for the reply from the same thread.
pub fn call(to: ThreadId, msg: &Msg) -> Result<Msg, Error> {
    ipc(to, to, Timeout::NEVER, Timeout::NEVER, msg).map(|(_, m)| m)
}

/// Reply to `to` (never blocking) and wait for the next message from anyone.
pub fn reply_wait(to: ThreadId, msg: &Msg) -> Result<(ThreadId, Msg), Error> {
    ipc(to, ThreadId::ANY, Timeout::ZERO, Timeout::NEVER, msg)
}

pub fn send(to: ThreadId, msg: &Msg, timeout: Timeout) -> Result<(), Error> {
    ipc(to, ThreadId::NIL, timeout, Timeout::ZERO, msg).map(|_| ())
}

/// Receive from `from` (`ThreadId::ANY` for an open receive).
pub fn receive(from: ThreadId, timeout: Timeout) -> Result<(ThreadId, Msg), Error> {
    ipc(ThreadId::NIL, from, Timeout::ZERO, timeout, &Msg::default())
}

/// This thread's UTCB (found through `fs:0`).
pub fn utcb() -> &'static mut Utcb {
    let p: u64;
    // SAFETY: the kernel sets FS base to the running thread's UTCB, whose
    // first word points at itself.
    unsafe { asm!("mov {}, fs:[0]", out(reg) p, options(nostack, readonly, preserves_flags)) };
    // SAFETY: the UTCB page is mapped for this thread's whole life and only
    // this thread uses it from user level.
    unsafe { &mut *(p as *mut Utcb) }
}

/// The caller's id, the TSC now and the TSC frequency.
pub fn myself() -> (ThreadId, u64, u64) {
    let (id, hz, tsc) = syscall4(sys::MYSELF, 0, 0, 0, 0);
    (ThreadId(id), tsc, hz)
}

pub fn yield_now() {
    syscall2(sys::YIELD, 0, 0);
}

/// Creates a thread in the space of `space_of` (`NIL`: a new space).
pub fn thread_create(space_of: ThreadId, utcb: u64, pager: ThreadId) -> Result<ThreadId, Error> {
    Error::decode(syscall4(sys::THREAD_CREATE, space_of.0, utcb, pager.0, 0).0).map(ThreadId)
}

pub fn thread_start(t: ThreadId, ip: u64, sp: u64) -> Result<(), Error> {
    Error::decode(syscall4(sys::THREAD_START, t.0, ip, sp, 0).0).map(|_| ())
}

pub fn thread_delete(t: ThreadId) -> Result<(), Error> {
    Error::decode(syscall2(sys::THREAD_DELETE, t.0, 0)).map(|_| ())
}

/// Sets attribute `what` (see [`sys::attr`]) of `t`.
pub fn thread_config(t: ThreadId, what: u64, v: u64, v2: u64) -> Result<(), Error> {
    Error::decode(syscall4(sys::THREAD_CONFIG, t.0, what, v, v2).0).map(|_| ())
}

/// Flush (see [`sys::UNMAP`]); returns how many mappings changed.
/// Attribute `what` of thread `t` (itself or one the caller controls);
/// for `attr::BUDGET` the budget and the period.
pub fn thread_info(t: ThreadId, what: u64) -> Result<(u64, u64), Error> {
    let (r, _, rdx) = syscall4(sys::THREAD_INFO, t.0, what, 0, 0);
    Error::decode(r).map(|v| (v, rdx))
}

/// What the performance counters count now (see [`crate::pmc`]).
pub fn pmc_info() -> crate::pmc::PmcInfo {
    let (a, b, c) = syscall4(sys::PMC, crate::pmc::INFO, 0, 0, 0);
    if Error::decode(a).is_err() {
        return crate::pmc::PmcInfo::NONE;
    }
    crate::pmc::PmcInfo::from_words([a, b, c])
}

/// Programs the events of `mask` (needs [`sys::rights::PMC`]); returns
/// what counts now.
pub fn pmc_program(mask: u64) -> Result<crate::pmc::PmcInfo, Error> {
    let (a, b, c) = syscall4(sys::PMC, crate::pmc::PROGRAM, mask, 0, 0);
    Error::decode(a).map(|a| crate::pmc::PmcInfo::from_words([a, b, c]))
}

pub fn unmap(fpage: crate::Fpage, include_self: bool) -> Result<u64, Error> {
    Error::decode(syscall2(sys::UNMAP, fpage.0, if include_self { sys::UNMAP_SELF } else { 0 }))
}

/// The test kernel's debug call (see [`sys::KTEST`]).
pub fn ktest(op: u64, a: u64, b: u64) -> Result<u64, Error> {
    Error::decode(syscall4(sys::KTEST, op, a, b, 0).0)
}

/// Routes interrupt line `line` to `handler` (`NIL` detaches).
pub fn irq_attach(line: u64, handler: ThreadId) -> Result<(), Error> {
    Error::decode(syscall2(sys::IRQ_ATTACH, line, handler.0)).map(|_| ())
}

/// The physical address behind `vaddr` in `t`'s space and whether it is
/// writable and executable ([`sys::DEBUG_TRANSLATE`]: the test kernel
/// only; elsewhere `NoSuchCall`).
pub fn debug_translate(t: ThreadId, vaddr: u64) -> Result<(u64, bool, bool), Error> {
    let (r, _, flags) = syscall4(sys::DEBUG_TRANSLATE, t.0, vaddr, 0, 0);
    Error::decode(r).map(|p| (p, flags & 1 != 0, flags & 2 != 0))
}
