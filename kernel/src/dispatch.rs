//! The dispatcher: picks the next thread, switches the CPU to it (frame,
//! address space, UTCB pointer, I/O bitmap, FPU trap) and resumes it in
//! ring 3; idles while nothing is ready. Every kernel entry ends here.

use crate::arch::{cpu, paging};
use crate::thread::{with_kernel, Kernel, State};
use crate::types::{Slot, SpaceLink};

impl Kernel {
    /// Loads thread `i`'s context into the CPU (frame pointers, address
    /// space, UTCB pointer, FPU trap) without leaving the kernel.
    #[inline(always)]
    pub fn switch_to(&mut self, i: Slot) {
        if let Some(p) = self.current.filter(|&p| p != i && self.tcbs[p].state == State::Ready) {
            self.tcbs[p].preemptions = self.tcbs[p].preemptions.saturating_add(1);
        }
        self.switch_from_blocked(i);
    }

    /// [`Self::switch_to`] from a current thread that is not ready (so no
    /// preemption to count): the IPC fast path's switch.
    #[inline(always)]
    pub fn switch_from_blocked(&mut self, i: Slot) {
        let prev = self.current.replace(i);
        let t = &mut self.tcbs[i];
        cpu::set_current_frame(&raw mut t.frame);
        if !self.loaded_space.is(t.space) {
            self.loaded_space = SpaceLink::to(t.space);
            match self.spaces[t.space].space.as_mut() {
                Some(space) => space.activate(),
                // Never (a live thread's space is live); were it so, the
                // thread would run with no user mappings and fault, rather
                // than in the last thread's space.
                None => paging::activate_kernel(),
            }
        }
        let (sp, utcb) = (t.space, t.utcb_vaddr);
        // On every switch to another thread: a thread can zero its own FS
        // base (by loading FS), and that must not leak into the next one.
        if prev != Some(i) {
            cpu::set_fs_base(utcb.as_u64());
        }
        if !self.loaded_io.is(sp) {
            crate::io::load(self, sp);
        }
        cpu::set_fpu_trap(self.fpu_owner != Some(i));
    }
}

/// Prints every live thread's scheduling and IPC state (the test kernel
/// calls it when the system has been idle for long: a deadlock report).
pub fn dump_threads(kk: &Kernel) {
    for i in Slot::threads() {
        let t = &kk.tcbs[i];
        if t.state == State::Free {
            continue;
        }
        crate::kprintln!(
            "  thread {:#x}: {:?} prio {} space {} send_to {:#x} recv_from {:#x} wake_at {} kipc {:?} {:x?} rip {:#x}",
            kk.id_of(i).0,
            t.state,
            t.prio,
            t.space,
            t.send_to.0,
            t.recv_from.0,
            t.wake_at,
            t.kipc,
            &t.kmsg[1..7],
            t.frame.rip
        );
    }
}

/// Switches to the next thread, if one is ready (and arms the timer for
/// it); false if none is.
#[inline(always)]
fn switch_to_next(kk: &mut Kernel) -> bool {
    let Some(i) = kk.pick() else { return false };
    kk.switch_to(i);
    crate::timer::arm(kk, i);
    true
}

/// Picks the next thread and resumes it; idles with interrupts on while
/// nothing is ready. Never returns.
pub fn schedule_and_resume() -> ! {
    #[cfg(feature = "ktest")]
    let idle_since = crate::timer::now();
    loop {
        if with_kernel(switch_to_next) {
            // SAFETY: the picked thread's frame holds user selectors and a
            // user RIP (written only by start_thread, the entry path and
            // sanitized exception replies), and its space is loaded.
            unsafe { crate::arch::trap::resume_user() }
        }
        with_kernel(|kk| {
            crate::timer::arm_idle(kk);
            #[cfg(feature = "ktest")]
            if crate::timer::now().saturating_sub(idle_since) > crate::timer::tsc_hz().saturating_mul(5) {
                crate::kprintln!("*** idle for 5 s; threads:");
                dump_threads(kk);
                crate::ktest::idle_too_long();
            }
        });
        cpu::wait_for_interrupt();
        with_kernel(crate::timer::tick);
    }
}
