//! Thread control: starting and deleting threads (with everything that
//! goes with them: their IPC, their mappings, their space when it empties).
//! Creating a thread only builds objects, so it lives with them
//! (`thread::Kernel::create_thread`); these operations reach into IPC,
//! the mapping database and the I/O bitmaps, a layer up.
#![deny(clippy::arithmetic_side_effects)]

use crate::arch::paging;
use crate::arch::trap::TrapFrame;
use crate::state::POOL;
use crate::thread::{Kernel, KernelIpc, State, USER_RFLAGS};
use crate::types::{Slot, SpaceIdx, SpaceLink};
use abi::Error;

impl Kernel {
    /// Sets the user-visible start state and makes the thread ready.
    pub fn start_thread(&mut self, i: Slot, ip: u64, sp: u64) -> Result<(), Error> {
        if ip >= abi::USER_END || sp >= abi::USER_END {
            return Err(Error::InvalidArgument);
        }
        if matches!(self.tcbs[i].state, State::SendBlocked | State::RecvBlocked) {
            crate::ipc::cancel(self, i);
        }
        let sel = crate::arch::gdt::selectors();
        let t = &mut self.tcbs[i];
        t.frame = TrapFrame {
            rip: ip,
            cs: sel.user_code.0 as u64,
            rflags: USER_RFLAGS,
            rsp: sp,
            ss: sel.user_data.0 as u64,
            ..TrapFrame::zero()
        };
        t.kipc = KernelIpc::None;
        t.restart_recv_only = false;
        t.slice_left = t.timeslice;
        t.budget_left = t.budget;
        self.make_ready(i);
        Ok(())
    }

    /// Deletes thread `i`: it leaves every queue, partners waiting on it
    /// get `Aborted`, and its id becomes stale.
    pub fn delete_thread(&mut self, i: Slot) {
        // Whoever `i` controlled is controlled by `i`'s chief from now on.
        let chief = self.tcbs[i].chief;
        for j in Slot::threads() {
            if self.tcbs[j].chief == Some(i) {
                self.tcbs[j].chief = chief;
            }
        }
        crate::ipc::cancel(self, i);
        crate::ipc::abort_waiters(self, i);
        self.ready.remove(i);
        if self.fpu_owner == Some(i) {
            self.fpu_owner = None;
        }
        let sp = self.tcbs[i].space;
        let (utcb, utcb_phys) = (self.tcbs[i].utcb_vaddr, self.tcbs[i].utcb_phys);
        if let Some(space) = self.spaces[sp].space.as_mut() {
            space.unmap(utcb);
        }
        let _ = POOL.lock().free(utcb_phys);
        self.spaces[sp].threads = self.spaces[sp].threads.saturating_sub(1);
        if self.spaces[sp].threads == 0 {
            self.release_space(sp);
        }
        let t = &mut self.tcbs[i];
        t.state = State::Free;
        // Versions stay below 2^31 so that an id returned in rax never
        // reads as an error code.
        t.version = if t.version >= 0x7fff_ffff { 1 } else { t.version.saturating_add(1) };
        if self.current == Some(i) {
            self.current = None;
        }
        if Slot::threads().all(|j| self.tcbs[j].state == State::Free) {
            crate::kprintln!("all threads ended; idling.");
        }
    }

    /// Tears a space down: every mapping it has (and everything derived
    /// from them, in any space) is flushed, its page tables and I/O bitmap go
    /// back to the pool.
    fn release_space(&mut self, sp: SpaceIdx) {
        crate::mapping::remove_space(self, sp);
        if self.sigma0_space == Some(sp) {
            // The slot may be reused: a new space must not inherit sigma0's
            // idempotent access to all of RAM.
            self.sigma0_space = None;
        }
        let mut pool = POOL.lock();
        if let Some(space) = self.spaces[sp].space.take() {
            if self.loaded_space.is(sp) {
                // Never free the live tables: fall back to the kernel's.
                paging::activate_kernel();
                self.loaded_space = SpaceLink::NONE;
            }
            space.destroy(&mut pool);
        }
        if let Some(bitmap) = self.spaces[sp].io_bitmap.take() {
            let _ = pool.free(bitmap);
            // Two contiguous pool frames: the second is in the pool too.
            if let Some(second) = bitmap.checked_add(4096) {
                let _ = pool.free(second);
            }
            crate::io::invalidate(self);
        }
        crate::access::released_space(self, sp);
        self.spaces[sp].threads = 0;
    }
}
