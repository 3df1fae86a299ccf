//! Time: the TSC as the clock, the local APIC timer as the one-shot event
//! source (TSC-deadline mode where offered), and the accounting that drives
//! time slices, budgets and IPC timeouts.
//!
//! The timer is programmed for the earliest of: the running thread's slice
//! end, its budget end, and the earliest IPC timeout or budget
//! replenishment of any thread (`earliest`, a lower bound kept in O(1) on
//! the IPC path and recomputed exactly on every tick).
#![deny(clippy::arithmetic_side_effects)]

use crate::arch::apic;
use crate::ipc;
use crate::thread::{Kernel, State};
use crate::types::Slot;

use crate::state::clock::{ARMED, DISPATCHED_AT, EARLIEST, TSC_HZ};
use core::sync::atomic::Ordering::Relaxed;

/// The clock: TSC ticks.
#[inline]
pub fn now() -> u64 {
    crate::arch::cpu::tsc()
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Relaxed)
}

/// Measures the TSC frequency and starts the APIC timer.
pub fn init() -> u64 {
    let hz = apic::tsc_frequency();
    TSC_HZ.store(hz, Relaxed);
    apic::init(hz, &mut crate::state::POOL.lock());
    hz
}

/// A thread got a deadline (timeout or replenishment) at `t`.
pub fn note_deadline(t: u64) {
    if t != 0 && t < EARLIEST.load(Relaxed) {
        EARLIEST.store(t, Relaxed);
    }
}

/// Charges the time since the last dispatch to `cur`: time slice and
/// budget. Called on every kernel entry from a thread.
pub fn account(kk: &mut Kernel, cur: Slot) {
    let n = now();
    let used = n.saturating_sub(DISPATCHED_AT.load(Relaxed));
    DISPATCHED_AT.store(n, Relaxed);
    let t = &mut kk.tcbs[cur];
    t.slice_left = t.slice_left.saturating_sub(used);
    if t.slice_left == 0 {
        t.slice_left = t.timeslice;
        kk.ready.rotate(cur);
    }
    let t = &mut kk.tcbs[cur];
    if t.budget > 0 {
        t.budget_left = t.budget_left.saturating_sub(used);
        if t.budget_left == 0 && t.state == State::Ready {
            // Off the CPU while it could run: a preemption.
            t.preemptions = t.preemptions.saturating_add(1);
            kk.block(cur, State::BudgetWait, 0);
            note_deadline(kk.tcbs[cur].next_replenish);
            ipc::notify_budget(kk, cur);
        }
    }
}

/// Handles everything due by now: IPC timeouts and budget replenishments.
pub fn tick(kk: &mut Kernel) {
    let n = now();
    let mut next = u64::MAX;
    for i in Slot::threads() {
        let t = &kk.tcbs[i];
        if t.state == State::Free {
            continue;
        }
        if t.wake_at != 0 && matches!(t.state, State::SendBlocked | State::RecvBlocked) {
            if t.wake_at <= n {
                ipc::timeout(kk, i);
            } else {
                next = next.min(t.wake_at);
            }
        }
        let t = &mut kk.tcbs[i];
        if t.budget > 0 && t.period > 0 {
            if t.next_replenish <= n {
                t.next_replenish = crate::sched::next_replenish(t.next_replenish, t.period, n);
                t.budget_left = t.budget;
                if t.state == State::BudgetWait {
                    kk.make_ready(i);
                }
            }
            next = next.min(kk.tcbs[i].next_replenish);
        }
    }
    EARLIEST.store(next, Relaxed);
}

/// TSC ticks since the running thread was dispatched (what `account`
/// would charge it at `n`).
#[inline]
pub fn used_since_dispatch(n: u64) -> u64 {
    n.saturating_sub(DISPATCHED_AT.load(Relaxed))
}

/// Programs the timer for the thread about to run (`i`).
#[inline]
pub fn arm(kk: &Kernel, i: Slot) {
    arm_at(kk, i, now());
}

/// [`arm`] with the TSC already read (`n`): the IPC fast path reads it
/// once per entry.
#[inline(always)]
pub fn arm_at(kk: &Kernel, i: Slot, n: u64) {
    DISPATCHED_AT.store(n, Relaxed);
    let t = &kk.tcbs[i];
    let mut deadline = EARLIEST.load(Relaxed).min(n.saturating_add(t.slice_left.max(1)));
    if t.budget > 0 {
        deadline = deadline.min(n.saturating_add(t.budget_left.max(1)));
    }
    program(deadline, n);
}

/// Programs the timer while idle: only deadlines matter (and, in the test
/// kernel, a one-second watchdog tick that reports deadlocks).
pub fn arm_idle(_kk: &Kernel) {
    let n = now();
    let deadline = EARLIEST.load(Relaxed);
    #[cfg(feature = "ktest")]
    let deadline = deadline.min(n.saturating_add(tsc_hz()));
    program(deadline, n);
}

/// Makes sure the timer fires no later than `deadline`. An armed deadline
/// that is still ahead and not later than needed stays: firing early only
/// costs a tick that re-arms, while reprogramming on every kernel exit
/// would cost a timer write on the IPC path.
#[inline]
fn program(deadline: u64, now: u64) {
    let armed = ARMED.load(Relaxed);
    if armed <= deadline && armed > now {
        return;
    }
    ARMED.store(deadline, Relaxed);
    apic::set_deadline(deadline, now);
}

/// The timer fired: forget the armed deadline so the next arm programs it.
pub fn fired() {
    ARMED.store(u64::MAX, Relaxed);
}

impl Kernel {
    /// Blocks thread `i` in `state` until `wake_at` (0: no timeout).
    pub fn block(&mut self, i: Slot, state: State, wake_at: u64) {
        let t = &mut self.tcbs[i];
        t.state = state;
        t.wake_at = wake_at;
        note_deadline(wake_at);
        // Lazy dequeue: the scheduler drops it when it meets it.
    }
}
