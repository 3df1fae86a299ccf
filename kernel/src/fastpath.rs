//! The IPC fast path: `call` and `reply_wait` between two threads when
//! nothing but the message has to happen, in the manner of seL4's
//! `fastpath_call` / `fastpath_reply_recv` and L4Ka::Pistachio's IPC fast
//! path. The general path (`crate::ipc`) defines the semantics; this file
//! only makes the common case cheap and never grows the general code.
//!
//! [`ipc`] is entered first on every system call (the one hook, in
//! `syscall::syscall_dispatch`). It checks a list of preconditions, each
//! of which falls back to the general path by returning; past the point of
//! no return nothing can fail, and it switches straight to the receiver.
//!
//! # Preconditions (each broken one: the general path runs)
//!
//! 1. The call is `IPC`, from a user RIP the general path may return to
//!    (not the end of the user half, see `syscall_cannot_return`).
//! 2. The message is untyped words only (no map, grant or string item)
//!    and well formed: fewer than [`MAX_MRS`] words.
//! 3. The caller is in no kernel-sent IPC and not restarting after a
//!    string-copy fault, and the fast path is on for it
//!    (`abi::sys::attr::FASTPATH`).
//! 4. A send to a live user thread `d` other than the caller, and then a
//!    receive that blocks forever: from `d` (`call`) or from anyone
//!    (`reply_wait`); receive timeout `NEVER`.
//! 5. The allow list permits the send (`access::permits_send`, the very
//!    check of the general path, which counts a refusal).
//! 6. `d` waits in a receive that accepts the caller, and not for the reply
//!    to a kernel-sent message (a page fault or exception reply is
//!    consumed by the kernel).
//! 7. Nothing is pending for the caller's receive: no queued sender (open
//!    receive), no interrupt, no budget notification.
//! 8. The general scheduler would run `d` next ([`runs_next`]): no ready
//!    thread queued above `d`'s priority, and none at it either if blocked
//!    threads had to be dropped from the queues above (then `pick` runs
//!    the head of `d`'s level, not `d`).
//! 9. The time the caller ran since its dispatch leaves its time slice and
//!    its budget unexhausted (else the general path's accounting rotates
//!    it or blocks it on its budget).
//!
//! # The switch
//!
//! The message words go from the caller's saved registers into the
//! receiver's (MR1..MR6, exactly the `n` sent) and MR7..MRn from UTCB to
//! UTCB, by the general path's own `ipc::copy_untyped`. Neither thread touches a ready
//! queue: the caller is blocked (a stale queue entry of it is dropped
//! lazily, as in the general path) and the receiver runs without being
//! queued; `Kernel::pick` queues it when it leaves the CPU still ready.
//!
//! **Time.** One TSC read per entry: the caller is charged exactly the time
//! since its dispatch (slice and budget, as `timer::account` does), the
//! receiver's charge starts at the same instant, and the timer is
//! reprogrammed only when the receiver's slice or budget ends before the
//! armed deadline (`timer::arm_at`). Running the receiver on the caller's
//! remaining slice would save the read but charge one thread's time to the
//! other's budget, which budgets per thread cannot allow.
//!
//! **State.** `Kernel::switch_from_blocked` (the caller just blocked: no
//! preemption to count) loads only what differs: the address
//! space (CR3) only for another space, the I/O bitmap only for another
//! space's, the FPU trap only when ownership changes; the frame pointer,
//! RSP0 and the FS base (UTCB pointer) are per thread.

use crate::thread::{Kernel, KernelIpc, State};
use crate::timer;
use crate::types::Slot;
use abi::ipc::{Tag, Timeout, MAX_MRS};
use abi::{sys, ThreadId};

/// Would the general scheduler run the woken receiver `d` next (the
/// caller `cur` blocked)? `Kernel::pick` switches to `d` directly when no
/// thread is queued above it; otherwise it drops the blocked threads it
/// meets at the top (lazy dequeue: done here as it would be there) and runs
/// the first ready one, which must then be `d` (queued at its level's tail
/// by the general path, so first only if no ready thread is ahead of it).
#[inline(always)]
fn runs_next(kk: &mut Kernel, cur: Slot, d: Slot) -> bool {
    let prio = kk.tcbs[d].prio;
    kk.ready.highest_level().is_none_or(|p| p <= prio) || first_ready_after_drops(kk, cur, d, prio)
}

/// `pick`'s loop, for [`runs_next`]: is `d` the first ready thread once
/// the blocked ones at the top are dropped?
#[cold]
#[inline(never)]
fn first_ready_after_drops(kk: &mut Kernel, cur: Slot, d: Slot, prio: u8) -> bool {
    while let Some(i) = kk.ready.highest() {
        if i == d || kk.ready.highest_level().is_some_and(|p| p < prio) {
            return true;
        }
        // The caller counts as blocked: it is about to be.
        if kk.tcbs[i].state == State::Ready && i != cur {
            return false;
        }
        kk.ready.remove(i);
    }
    true
}

/// The fast path for the current thread `cur`: false when the general
/// path must handle the call; true when it took it and switched to the
/// receiver, whom the caller resumes once it has left the kernel state.
#[inline]
pub fn ipc(kk: &mut Kernel, cur: Slot) -> bool {
    let f = &kk.tcbs[cur].frame;
    // 1.
    if f.rax != sys::IPC || f.rip >= abi::USER_END {
        return false;
    }
    let (tag, to, from) = (Tag(f.rdx), ThreadId(f.rdi), ThreadId(f.rsi));
    let (_, rt) = Timeout::unpack(f.r10);
    let n = tag.untyped();
    // 2.
    if tag.typed() != 0 || n >= MAX_MRS {
        return false;
    }
    // 3.
    let c = &kk.tcbs[cur];
    if c.kipc != KernelIpc::None || c.restart_recv_only || !c.fastpath {
        return false;
    }
    // 4.
    if rt != Timeout::NEVER || (from != to && from != ThreadId::ANY) {
        return false;
    }
    let Ok(d) = kk.lookup(to) else { return false };
    if d == cur {
        return false;
    }
    // 5.
    if !crate::access::permits_send(kk, cur, d) {
        return false;
    }
    // 6.
    let me = kk.id_of(cur);
    let (c, r) = (&kk.tcbs[cur], &kk.tcbs[d]);
    if !crate::ipc::accepts(kk, d, me) || r.kipc != KernelIpc::None {
        return false;
    }
    // 7.
    if (from == ThreadId::ANY && c.senders_head.is_some()) || c.pending_irq != 0 || c.pending_budget != 0 {
        return false;
    }
    // 8.
    if !runs_next(kk, cur, d) {
        return false;
    }
    // 9.
    let c = &kk.tcbs[cur];
    let now = timer::now();
    let used = timer::used_since_dispatch(now);
    if used >= c.slice_left || (c.budget > 0 && used >= c.budget_left) {
        return false;
    }

    // --- Point of no return: nothing below can fail. ---

    let c = &mut kk.tcbs[cur];
    c.slice_left -= used;
    if c.budget > 0 {
        c.budget_left -= used;
    }
    c.recv_from = from;
    c.state = State::RecvBlocked;
    c.wake_at = 0;
    c.fastpath_ipcs += 1;
    crate::ipc::copy_untyped(kk, cur, d, tag, false);
    let rf = &mut kk.tcbs[d].frame;
    rf.rsi = me.0;
    rf.rax = 0;
    let r = &mut kk.tcbs[d];
    r.state = State::Ready;
    r.wake_at = 0;
    kk.switch_from_blocked(d);
    timer::arm_at(kk, d, now);
    true
}
