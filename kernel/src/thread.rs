//! Threads: the TCB table, unique versioned ids, address spaces, the
//! scheduler's view of threads, and switching the CPU to a thread.
//!
//! Invariants:
//! - A TCB slot is `Free` exactly when no valid id names it; deleting a
//!   thread bumps the slot's version, so old ids fail the version check.
//! - A thread's user state lives in `Tcb::frame`, which is also where the
//!   CPU saves it on every entry (RSP0 points at its end). There are no
//!   per-thread kernel stacks: the kernel never blocks inside a call.
//! - `Ready` threads are in the ready queues (blocked threads may linger
//!   there and are dropped lazily when the scheduler meets them), except
//!   the current thread after an IPC fast-path switch (`crate::fastpath`),
//!   which joins its queue when the scheduler next runs.
//! - A thread blocked in a send is in exactly one receiver's sender queue.

use crate::arch::cpu;
use crate::arch::paging::{self, AddressSpace, MapError, Rights};
use crate::arch::trap::TrapFrame;
use crate::init::POOL;
use crate::sched::ReadyQueues;
use abi::ipc::{Timeout, Utcb};
use abi::{Error, ThreadId};

pub const MAX_THREADS: usize = 128;
pub const MAX_SPACES: usize = 32;
/// Priority of threads that were not given one.
pub const DEFAULT_PRIORITY: u8 = 16;
/// Default time slice (TSC ticks); the timer code rescales it at boot.
pub const DEFAULT_TIMESLICE: u64 = 10_000_000;
const NONE: u16 = u16::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Free,
    /// Created, never started.
    Inactive,
    Ready,
    /// Waiting to deliver a message to `send_to`.
    SendBlocked,
    /// Waiting for a message from `recv_from`.
    RecvBlocked,
    /// Stopped by an exception nobody handles (or a refused fix-up).
    Stopped,
    /// Budget exhausted; runs again at `next_replenish`.
    BudgetWait,
}

/// A message the kernel sends on a thread's behalf; the reply is consumed
/// by the kernel, not written to the thread's registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelIpc {
    None,
    /// `resolved` is set when the pager's reply was one map item that
    /// installed the page with the access that faulted (no re-walk then).
    PageFault {
        addr: u64,
        write: bool,
        exec: bool,
        resolved: bool,
    },
    /// `resume` is set when the handler's reply fixed the thread up.
    Exception {
        resume: bool,
    },
}

/// FXSAVE area for the lazily switched FPU/SSE state.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
pub struct FxArea(pub [u8; 512]);

#[repr(C, align(64))]
pub struct Tcb {
    /// Saved user registers; must stay first (its end is RSP0 and must be
    /// 16-byte aligned).
    pub frame: TrapFrame,
    pub fpu: FxArea,
    pub fpu_used: bool,
    pub version: u32,
    pub state: State,
    pub space: u16,
    pub prio: u8,
    /// Maximum controlled priority: the highest priority or MCP this thread
    /// may give a thread it controls (see `abi::sys::attr`).
    pub mcp: u8,
    /// `abi::sys::rights` mask.
    pub rights: u8,
    /// The thread that created this one (it and its chiefs control it);
    /// `None` for the threads the kernel starts.
    pub chief: Option<u16>,
    pub timeslice: u64,
    pub slice_left: u64,
    /// Budget per period (0: unlimited) and its accounting.
    pub budget: u64,
    pub period: u64,
    pub budget_left: u64,
    pub next_replenish: u64,
    pub pager: ThreadId,
    pub exc_handler: ThreadId,
    pub utcb_vaddr: u64,
    pub utcb_phys: u64,
    /// IPC: where a blocked send goes, what a receive accepts, the receive
    /// phase still to come after a send, and the timeout deadline (TSC, 0 =
    /// none).
    pub send_to: ThreadId,
    pub recv_from: ThreadId,
    pub recv_timeout: Timeout,
    pub wake_at: u64,
    /// Queue of threads blocked sending to this one (slot indices).
    pub senders_head: u16,
    pub senders_tail: u16,
    pub next_sender: u16,
    pub kipc: KernelIpc,
    pub kmsg: [u64; 24],
    /// The thread's IPC was rewound for a page fault after its send phase
    /// had completed: when it re-enters, only the receive phase runs.
    pub restart_recv_only: bool,
    /// Pending kernel messages for this receiver: interrupt lines, budget
    /// notifications (bit = sender slot).
    pub pending_irq: u32,
    pub pending_budget: u128,
    /// Times the thread was taken off the CPU while it could still run
    /// (`abi::sys::attr::PREEMPTIONS`).
    pub preemptions: u64,
    /// Its IPCs may take the fast path (`crate::fastpath`), and how many
    /// did (`abi::sys::attr::FASTPATH`).
    pub fastpath: bool,
    pub fastpath_ipcs: u64,
}

impl Tcb {
    const fn empty() -> Tcb {
        Tcb {
            frame: TrapFrame::zero(),
            fpu: FxArea([0; 512]),
            fpu_used: false,
            version: 1,
            state: State::Free,
            space: 0,
            prio: 0,
            mcp: 0,
            rights: 0,
            chief: None,
            timeslice: DEFAULT_TIMESLICE,
            slice_left: 0,
            budget: 0,
            period: 0,
            budget_left: 0,
            next_replenish: 0,
            pager: ThreadId::NIL,
            exc_handler: ThreadId::NIL,
            utcb_vaddr: 0,
            utcb_phys: 0,
            send_to: ThreadId::NIL,
            recv_from: ThreadId::NIL,
            recv_timeout: Timeout::NEVER,
            wake_at: 0,
            senders_head: NONE,
            senders_tail: NONE,
            next_sender: NONE,
            kipc: KernelIpc::None,
            kmsg: [0; 24],
            restart_recv_only: false,
            pending_irq: 0,
            pending_budget: 0,
            preemptions: 0,
            fastpath: true,
            fastpath_ipcs: 0,
        }
    }
}

const _: () = assert!(core::mem::offset_of!(Tcb, frame) == 0);
const _: () = assert!(core::mem::size_of::<TrapFrame>().is_multiple_of(16));

pub struct Space {
    pub space: Option<AddressSpace>,
    pub threads: u32,
    /// Physical address of the space's I/O permission bitmap (two
    /// contiguous frames, bit set = port denied); 0 = no ports.
    pub io_bitmap: u64,
    /// Its send allow list and refusal counts (`crate::access`).
    pub access: crate::access::Access,
}

/// All kernel state that threads and IPC share.
pub struct Kernel {
    pub tcbs: [Tcb; MAX_THREADS],
    pub spaces: [Space; MAX_SPACES],
    pub ready: ReadyQueues<MAX_THREADS>,
    /// The thread the CPU runs (or last ran, while idle).
    pub current: Option<usize>,
    pub fpu_owner: Option<usize>,
    /// The receiver an IPC just woke: the scheduler switches to it directly
    /// when nothing of higher priority is ready (the IPC fast path).
    pub direct: Option<usize>,
    /// The mapping database (storage carved from the kernel pool at boot).
    pub mapdb: Option<crate::mapdb::MapDb<'static>>,
    /// sigma0's space: idempotent (virtual = physical) over usable RAM.
    pub sigma0_space: Option<u16>,
    /// Whose I/O bitmap is in the TSS (`u16::MAX`: nobody's, all denied).
    pub loaded_io: u16,
    /// The space whose page tables CR3 holds, to skip redundant switches.
    loaded_space: u16,
}

static mut KERNEL: Kernel = Kernel {
    tcbs: [const { Tcb::empty() }; MAX_THREADS],
    spaces: [const { Space { space: None, threads: 0, io_bitmap: 0, access: crate::access::Access::UNRESTRICTED } };
        MAX_SPACES],
    ready: ReadyQueues::new(),
    current: None,
    fpu_owner: None,
    direct: None,
    mapdb: None,
    sigma0_space: None,
    loaded_io: u16::MAX,
    loaded_space: u16::MAX,
};

/// The kernel state.
///
/// Sound because there is one CPU, the kernel runs with interrupts off, and
/// entries never nest except for fatal kernel faults (which only report):
/// at any time at most one chain of kernel code uses this reference.
#[allow(clippy::mut_from_ref)]
pub fn k() -> &'static mut Kernel {
    let p = &raw mut KERNEL;
    // SAFETY: see the function doc.
    unsafe { &mut *p }
}

impl Kernel {
    pub fn id_of(&self, i: usize) -> ThreadId {
        ThreadId::new(i as u32, self.tcbs[i].version)
    }

    /// The slot of a valid, live thread id.
    pub fn lookup(&self, t: ThreadId) -> Result<usize, Error> {
        let i = t.index() as usize;
        if i == 0 || i >= MAX_THREADS || t.as_irq().is_some() {
            return Err(Error::InvalidThread);
        }
        let tcb = &self.tcbs[i];
        if tcb.state == State::Free || tcb.version != t.version() {
            return Err(Error::InvalidThread);
        }
        Ok(i)
    }

    /// Does `caller` control thread `t`: is it `t`'s chief, or its chief's
    /// chief, and so on? (Chief links never form a cycle: a thread's chief
    /// existed before it, and deletion reparents.)
    pub fn controls(&self, caller: usize, t: usize) -> bool {
        let mut c = self.tcbs[t].chief;
        for _ in 0..MAX_THREADS {
            match c {
                Some(x) if x as usize == caller => return true,
                Some(x) => c = self.tcbs[x as usize].chief,
                None => return false,
            }
        }
        false
    }

    pub fn space_of(&self, i: usize) -> &AddressSpace {
        self.spaces[self.tcbs[i].space as usize].space.as_ref().expect("thread in a live space")
    }

    /// The thread's UTCB, through the kernel's direct map.
    pub fn utcb(&self, i: usize) -> &'static mut Utcb {
        let v = paging::phys_to_virt(self.tcbs[i].utcb_phys).expect("UTCB frame mapped");
        // SAFETY: the UTCB frame belongs to this thread for its lifetime;
        // the kernel touches it only from the single kernel context.
        unsafe { &mut *(v as *mut Utcb) }
    }

    /// Creates a thread in the space of `same_space_as` (or a new space),
    /// with its UTCB mapped at `utcb`. It stays `Inactive` until started.
    pub fn create_thread(&mut self, same_space_as: Option<usize>, utcb: u64, pager: ThreadId) -> Result<usize, Error> {
        if utcb == 0 || !utcb.is_multiple_of(4096) || utcb >= abi::USER_END || utcb == abi::KIP_VADDR {
            return Err(Error::InvalidArgument);
        }
        let slot = (1..MAX_THREADS).find(|&i| self.tcbs[i].state == State::Free).ok_or(Error::NoResources)?;
        let mut pool = POOL.lock();
        let (sp, fresh) = match same_space_as {
            Some(t) => (self.tcbs[t].space as usize, false),
            None => {
                let sp = (0..MAX_SPACES).find(|&s| self.spaces[s].space.is_none()).ok_or(Error::NoResources)?;
                let mut space = AddressSpace::with_pcid(&mut pool, sp as u16 + 1).map_err(|_| Error::OutOfMemory)?;
                let kip = paging::image_phys(&raw const crate::init::KIP as u64);
                if let Err(e) = space.map(abi::KIP_VADDR, kip, Rights { write: false, exec: false }, &mut pool) {
                    // The pool ran out: the new space's tables go back.
                    space.destroy(&mut pool);
                    return Err(map_err(e));
                }
                self.spaces[sp].space = Some(space);
                (sp, true)
            }
        };
        let space = self.spaces[sp].space.as_mut().expect("space just checked");
        if space.translate(utcb).is_some() {
            drop(pool);
            if fresh {
                self.release_space(sp);
            }
            return Err(Error::InvalidArgument);
        }
        let frame = match space.map_fresh(utcb, Rights { write: true, exec: false }, &mut pool) {
            Ok(f) => f,
            Err(e) => {
                drop(pool);
                if fresh {
                    self.release_space(sp);
                }
                return Err(map_err(e));
            }
        };
        drop(pool);
        self.spaces[sp].threads += 1;
        let version = self.tcbs[slot].version;
        self.tcbs[slot] = Tcb::empty();
        let t = &mut self.tcbs[slot];
        t.version = version;
        t.state = State::Inactive;
        t.space = sp as u16;
        t.prio = DEFAULT_PRIORITY;
        t.pager = pager;
        t.utcb_vaddr = utcb;
        t.utcb_phys = frame;
        let id = self.id_of(slot);
        let u = self.utcb(slot);
        u.self_ptr = utcb;
        u.my_id = id.0;
        Ok(slot)
    }

    /// Tears a space down: every mapping it has (and everything derived
    /// from them, in any space) is flushed, its page tables and I/O bitmap go
    /// back to the pool.
    fn release_space(&mut self, sp: usize) {
        crate::mapping::remove_space(self, sp as u16);
        if self.sigma0_space == Some(sp as u16) {
            // The slot may be reused: a new space must not inherit sigma0's
            // idempotent access to all of RAM.
            self.sigma0_space = None;
        }
        let mut pool = POOL.lock();
        if let Some(space) = self.spaces[sp].space.take() {
            if self.loaded_space == sp as u16 {
                // Never free the live tables: fall back to the kernel's.
                paging::activate_kernel();
                self.loaded_space = u16::MAX;
            }
            space.destroy(&mut pool);
        }
        if self.spaces[sp].io_bitmap != 0 {
            let _ = pool.free(self.spaces[sp].io_bitmap);
            let _ = pool.free(self.spaces[sp].io_bitmap + 4096);
            self.spaces[sp].io_bitmap = 0;
            crate::io::invalidate(self);
        }
        crate::access::released_space(self, sp as u16);
        self.spaces[sp].threads = 0;
    }

    /// Sets the user-visible start state and makes the thread ready.
    pub fn start_thread(&mut self, i: usize, ip: u64, sp: u64) -> Result<(), Error> {
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
    pub fn delete_thread(&mut self, i: usize) {
        // Whoever `i` controlled is controlled by `i`'s chief from now on.
        let chief = self.tcbs[i].chief;
        for j in 1..MAX_THREADS {
            if self.tcbs[j].chief == Some(i as u16) {
                self.tcbs[j].chief = chief;
            }
        }
        crate::ipc::cancel(self, i);
        crate::ipc::abort_waiters(self, i);
        self.ready.remove(i);
        if self.fpu_owner == Some(i) {
            self.fpu_owner = None;
        }
        let sp = self.tcbs[i].space as usize;
        let (utcb, utcb_phys) = (self.tcbs[i].utcb_vaddr, self.tcbs[i].utcb_phys);
        if let Some(space) = self.spaces[sp].space.as_mut() {
            space.unmap(utcb);
        }
        let _ = POOL.lock().free(utcb_phys);
        self.spaces[sp].threads -= 1;
        if self.spaces[sp].threads == 0 {
            self.release_space(sp);
        }
        let t = &mut self.tcbs[i];
        t.state = State::Free;
        // Versions stay below 2^31 so that an id returned in rax never
        // reads as an error code.
        t.version = if t.version >= 0x7fff_ffff { 1 } else { t.version + 1 };
        if self.current == Some(i) {
            self.current = None;
        }
        if (1..MAX_THREADS).all(|j| self.tcbs[j].state == State::Free) {
            crate::kprintln!("all threads ended; idling.");
        }
    }

    pub fn make_ready(&mut self, i: usize) {
        let t = &mut self.tcbs[i];
        t.state = State::Ready;
        t.wake_at = 0;
        let prio = t.prio;
        self.ready.enqueue(i, prio);
    }

    /// Blocks thread `i` in `state` until `wake_at` (0: no timeout).
    pub fn block(&mut self, i: usize, state: State, wake_at: u64) {
        let t = &mut self.tcbs[i];
        t.state = state;
        t.wake_at = wake_at;
        crate::timer::note_deadline(wake_at);
        // Lazy dequeue: the scheduler drops it when it meets it.
    }

    /// Highest-priority ready thread, dropping blocked ones met on the way.
    #[inline]
    pub fn pick(&mut self) -> Option<usize> {
        // A thread the fast path switched to is in no queue: it joins its
        // level's tail before anything is picked (no-op if queued).
        if let Some(c) = self.current.filter(|&c| self.tcbs[c].state == State::Ready) {
            self.ready.enqueue(c, self.tcbs[c].prio);
        }
        if let Some(d) = self.direct.take() {
            let t = &self.tcbs[d];
            if t.state == State::Ready && self.ready.highest_level().is_none_or(|p| t.prio >= p) {
                return Some(d);
            }
        }
        while let Some(i) = self.ready.highest() {
            if self.tcbs[i].state == State::Ready {
                return Some(i);
            }
            self.ready.remove(i);
        }
        None
    }

    /// Loads thread `i`'s context into the CPU (frame pointers, address
    /// space, UTCB pointer, FPU trap) without leaving the kernel.
    #[inline(always)]
    pub fn switch_to(&mut self, i: usize) {
        let prev = self.current.replace(i);
        if let Some(p) = prev.filter(|&p| p != i && self.tcbs[p].state == State::Ready) {
            self.tcbs[p].preemptions += 1;
        }
        let t = &mut self.tcbs[i];
        cpu::set_current_frame(&raw mut t.frame);
        if self.loaded_space != t.space {
            self.loaded_space = t.space;
            self.spaces[t.space as usize].space.as_mut().expect("live space").activate();
        }
        let (sp, utcb) = (t.space, t.utcb_vaddr);
        // On every switch to another thread: a thread can zero its own FS
        // base (by loading FS), and that must not leak into the next one.
        if prev != Some(i) {
            cpu::set_fs_base(utcb);
        }
        if self.loaded_io != sp {
            crate::io::load(self, sp);
        }
        cpu::set_fpu_trap(self.fpu_owner != Some(i));
    }
}

/// RFLAGS every user thread runs with: interrupts on, reserved bit 1.
pub const USER_RFLAGS: u64 = 0x202;
/// Status flags a user (or an exception handler) may set: CF PF AF ZF SF
/// DF OF; never IF, IOPL, TF or anything else.
pub const USER_FLAGS_MASK: u64 = 0xCD5;

pub fn map_err(e: MapError) -> Error {
    match e {
        MapError::OutOfMemory => Error::OutOfMemory,
        MapError::AlreadyMapped | MapError::BadAddress => Error::InvalidArgument,
    }
}

/// Prints every live thread's scheduling and IPC state (the test kernel
/// calls it when the system has been idle for long: a deadlock report).
pub fn dump_threads(kk: &Kernel) {
    for i in 1..MAX_THREADS {
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

/// Picks the next thread and resumes it; idles with interrupts on while
/// nothing is ready. Never returns.
pub fn schedule_and_resume() -> ! {
    #[cfg(feature = "ktest")]
    let idle_since = crate::timer::now();
    loop {
        let kk = k();
        if let Some(i) = kk.pick() {
            kk.switch_to(i);
            crate::timer::arm(kk, i);
            // SAFETY: `i`'s frame holds user selectors and a user RIP
            // (written only by start_thread, the entry path and sanitized
            // exception replies), and its space is loaded.
            unsafe { crate::arch::trap::resume_user() }
        }
        crate::timer::arm_idle(kk);
        #[cfg(feature = "ktest")]
        if crate::timer::now() - idle_since > 5 * crate::timer::tsc_hz() {
            crate::kprintln!("*** idle for 5 s; threads:");
            dump_threads(kk);
            crate::ktest::idle_too_long();
        }
        cpu::wait_for_interrupt();
        crate::timer::tick(k());
    }
}
