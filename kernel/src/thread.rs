//! Threads: the TCB table, unique versioned ids, address spaces, the
//! scheduler's view of threads, and the one door to them
//! ([`with_kernel`]). Starting and deleting threads is in `control`,
//! switching the CPU to one in `dispatch`, blocking in `timer` (each adds
//! to `impl Kernel` from its own layer).
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
#![deny(clippy::arithmetic_side_effects)]

use crate::arch::paging::{self, AddressSpace, MapError, Rights};
use crate::arch::trap::TrapFrame;
use crate::sched::ReadyQueues;
use crate::state::POOL;
use crate::types::{Link, PerSlot, PerSpace, PhysAddr, Slot, SpaceIdx, SpaceLink, VirtAddr};
pub use crate::types::{MAX_SPACES, MAX_THREADS};
use abi::ipc::{Timeout, Utcb};
use abi::{Error, ThreadId};

/// Priority of threads that were not given one.
pub const DEFAULT_PRIORITY: u8 = 16;
/// Default time slice (TSC ticks); the timer code rescales it at boot.
pub const DEFAULT_TIMESLICE: u64 = 10_000_000;

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
    pub space: SpaceIdx,
    pub prio: u8,
    /// Maximum controlled priority: the highest priority or MCP this thread
    /// may give a thread it controls (see `abi::sys::attr`).
    pub mcp: u8,
    /// `abi::sys::rights` mask.
    pub rights: u8,
    /// The thread that created this one (it and its chiefs control it);
    /// `None` for the threads the kernel starts.
    pub chief: Option<Slot>,
    pub timeslice: u64,
    pub slice_left: u64,
    /// Budget per period (0: unlimited) and its accounting.
    pub budget: u64,
    pub period: u64,
    pub budget_left: u64,
    pub next_replenish: u64,
    pub pager: ThreadId,
    pub exc_handler: ThreadId,
    pub utcb_vaddr: VirtAddr,
    pub utcb_phys: PhysAddr,
    /// IPC: where a blocked send goes, what a receive accepts, the receive
    /// phase still to come after a send, and the timeout deadline (TSC, 0 =
    /// none).
    pub send_to: ThreadId,
    pub recv_from: ThreadId,
    pub recv_timeout: Timeout,
    pub wake_at: u64,
    /// Queue of threads blocked sending to this one.
    pub senders_head: Link,
    pub senders_tail: Link,
    pub next_sender: Link,
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
            space: SpaceIdx::ZERO,
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
            utcb_vaddr: VirtAddr::from_kernel(0),
            utcb_phys: PhysAddr::from_kernel(0),
            send_to: ThreadId::NIL,
            recv_from: ThreadId::NIL,
            recv_timeout: Timeout::NEVER,
            wake_at: 0,
            senders_head: Link::NONE,
            senders_tail: Link::NONE,
            next_sender: Link::NONE,
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
    /// contiguous frames, bit set = port denied), if it has ports.
    pub io_bitmap: Option<PhysAddr>,
    /// Its send allow list and refusal counts (`crate::access`).
    pub access: crate::access::Access,
}

/// All kernel state that threads and IPC share.
pub struct Kernel {
    pub tcbs: PerSlot<Tcb>,
    pub spaces: PerSpace<Space>,
    pub ready: ReadyQueues<MAX_THREADS>,
    /// The thread the CPU runs (or last ran, while idle).
    pub current: Option<Slot>,
    pub fpu_owner: Option<Slot>,
    /// The receiver an IPC just woke: the scheduler switches to it directly
    /// when nothing of higher priority is ready (the IPC fast path).
    pub direct: Option<Slot>,
    /// The mapping database (storage carved from the kernel pool at boot).
    pub mapdb: Option<crate::mapdb::MapDb<'static>>,
    /// sigma0's space: idempotent (virtual = physical) over usable RAM.
    pub sigma0_space: Option<SpaceIdx>,
    /// Whose I/O bitmap is in the TSS (`NONE`: nobody's, all denied, or
    /// not known: reload at the next switch).
    pub loaded_io: SpaceLink,
    /// Whose bitmap's bytes the TSS holds, in effect or not (a space
    /// without ports only switches the bitmap off: coming back to the one
    /// copied last needs no copy). `NONE`: not known.
    pub io_copied: SpaceLink,
    /// The space whose page tables CR3 holds, to skip redundant switches
    /// (`NONE`: the kernel's own).
    pub loaded_space: SpaceLink,
}

static mut KERNEL: Kernel = Kernel {
    tcbs: PerSlot([const { Tcb::empty() }; MAX_THREADS]),
    spaces: PerSpace(
        [const { Space { space: None, threads: 0, io_bitmap: None, access: crate::access::Access::UNRESTRICTED } };
            MAX_SPACES],
    ),
    ready: ReadyQueues::new(),
    current: None,
    fpu_owner: None,
    direct: None,
    mapdb: None,
    sigma0_space: None,
    loaded_io: SpaceLink::NONE,
    io_copied: SpaceLink::NONE,
    loaded_space: SpaceLink::NONE,
};

/// The reentrancy check of [`with_kernel`].
static DOOR: crate::door::Door = crate::door::Door::new();

/// The one door to the thread table (after Hubris' `with_task_table`):
/// runs `f` with it. The reference cannot outlive `f`, so no caller keeps
/// one; the entry points (system call, trap, dispatcher, boot) each open
/// the door once, and the dispatcher leaves before it resumes a thread.
/// A second entry while one is open would be two live `&mut` to the same
/// TCBs: the overflow-checked kernel stops with a panic there
/// ([`crate::door`], whose host test shows the check firing).
#[inline(always)]
pub fn with_kernel<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    DOOR.pass(|| {
        let p = &raw mut KERNEL;
        // SAFETY: one CPU, interrupts off in the kernel, and entries open
        // the door only at their top (checked by `DOOR` where debug
        // assertions are on): no other reference to KERNEL is live while
        // `f` runs.
        f(unsafe { &mut *p })
    })
}

impl Kernel {
    pub fn id_of(&self, i: Slot) -> ThreadId {
        ThreadId::new(i.index() as u32, self.tcbs[i].version)
    }

    /// The slot of a valid, live thread id.
    pub fn lookup(&self, t: ThreadId) -> Result<Slot, Error> {
        let i = Slot::new(t.index() as usize).ok_or(Error::InvalidThread)?;
        if i == Slot::ZERO || t.as_irq().is_some() {
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
    pub fn controls(&self, caller: Slot, t: Slot) -> bool {
        let mut c = self.tcbs[t].chief;
        for _ in 0..MAX_THREADS {
            match c {
                Some(x) if x == caller => return true,
                Some(x) => c = self.tcbs[x].chief,
                None => return false,
            }
        }
        false
    }

    /// Thread `i`'s address space (a live thread's space is always live;
    /// `None` only for a free slot).
    pub fn space_of(&self, i: Slot) -> Option<&AddressSpace> {
        self.spaces[self.tcbs[i].space].space.as_ref()
    }

    /// Where thread `i`'s UTCB is in the kernel's direct map. Every
    /// reference to a UTCB is made from this pointer by [`Self::utcb`],
    /// [`Self::utcb_mut`] or [`Self::message_pair`], and borrows the kernel
    /// state as it does: so no function holds two live `&mut` to one UTCB,
    /// nor a `&mut` beside a `&` (each UTCB is a pool frame of its thread's
    /// alone, outside `Kernel`, for the thread's lifetime).
    fn utcb_ptr(&self, i: Slot) -> *mut Utcb {
        paging::pool_frame_virt(self.tcbs[i].utcb_phys).as_mut_ptr::<Utcb>()
    }

    /// Thread `i`'s UTCB, to read.
    pub fn utcb(&self, i: Slot) -> &Utcb {
        // SAFETY: `utcb_ptr` is a live UTCB frame; the shared borrow of
        // `self` excludes every `&mut` to it (see `utcb_ptr`).
        unsafe { &*self.utcb_ptr(i) }
    }

    /// Thread `i`'s UTCB, to write.
    pub fn utcb_mut(&mut self, i: Slot) -> &mut Utcb {
        // SAFETY: as for `utcb`; the `&mut self` borrow makes this the only
        // reference to it while it lives.
        unsafe { &mut *self.utcb_ptr(i) }
    }

    /// Sender `s`'s message registers (its kernel message where `kernel`,
    /// else its UTCB's) and receiver `r`'s UTCB to write them into, at once;
    /// `None` for a thread's own UTCB words to itself (one UTCB: there is
    /// nothing to copy).
    pub fn message_pair(&mut self, s: Slot, r: Slot, kernel: bool) -> Option<(&[u64], &mut Utcb)> {
        if s == r && !kernel {
            return None;
        }
        let dst = self.utcb_ptr(r);
        let src: &[u64] = if kernel {
            &self.tcbs[s].kmsg
        } else {
            // SAFETY: `s`'s live UTCB frame, read only (see `utcb_ptr`).
            unsafe { &(*self.utcb_ptr(s)).mr }
        };
        // SAFETY: `r`'s UTCB is a frame of its own, outside `Kernel`: it
        // aliases neither `src` (a TCB's `kmsg`, or another thread's UTCB as
        // `s != r` there) nor anything `self` holds, and
        // the `&mut self` borrow keeps every other reference to it away.
        Some((src, unsafe { &mut *dst }))
    }

    /// Creates a thread in the space of `same_space_as` (or a new space),
    /// with its UTCB mapped at `utcb`. It stays `Inactive` until started.
    pub fn create_thread(&mut self, same_space_as: Option<Slot>, utcb: u64, pager: ThreadId) -> Result<Slot, Error> {
        let utcb = VirtAddr::user(utcb)
            .filter(|u| u.as_u64() != 0 && u.is_page_aligned() && u.as_u64() != abi::KIP_VADDR)
            .ok_or(Error::InvalidArgument)?;
        let slot = Slot::threads().find(|&i| self.tcbs[i].state == State::Free).ok_or(Error::NoResources)?;
        let rw = Rights { write: true, exec: false };
        let mut pool = POOL.lock();
        // Nothing is installed until every step that can fail is done, so
        // no error path has anything to undo: a new space is built aside.
        let (sp, frame) = match same_space_as {
            Some(t) => {
                let sp = self.tcbs[t].space;
                let space = self.spaces[sp].space.as_mut().ok_or(Error::InvalidThread)?;
                if space.translate(utcb).is_some() {
                    return Err(Error::InvalidArgument);
                }
                (sp, space.map_fresh_kernel_owned(utcb, rw, &mut pool).map_err(map_err)?)
            }
            None => {
                let sp = SpaceIdx::all().find(|&s| self.spaces[s].space.is_none()).ok_or(Error::NoResources)?;
                let mut space = AddressSpace::with_pcid(&mut pool, sp.pcid()).map_err(|_| Error::OutOfMemory)?;
                let kip = paging::image_phys(VirtAddr::from_kernel(&raw const crate::state::KIP as u64));
                let ro = Rights { write: false, exec: false };
                // (The UTCB is not at the KIP's address: checked above.)
                let mapped = space
                    .map_kernel_owned(VirtAddr::from_kernel(abi::KIP_VADDR), kip, ro, &mut pool)
                    .and_then(|_| space.map_fresh_kernel_owned(utcb, rw, &mut pool));
                match mapped {
                    Ok(frame) => {
                        self.spaces[sp].space = Some(space);
                        (sp, frame)
                    }
                    Err(e) => {
                        // The pool ran out: the new space's tables go back.
                        space.destroy(&mut pool);
                        return Err(map_err(e));
                    }
                }
            }
        };
        drop(pool);
        // At most MAX_THREADS threads: no overflow.
        self.spaces[sp].threads = self.spaces[sp].threads.saturating_add(1);
        let version = self.tcbs[slot].version;
        self.tcbs[slot] = Tcb::empty();
        let t = &mut self.tcbs[slot];
        t.version = version;
        t.state = State::Inactive;
        t.space = sp;
        t.prio = DEFAULT_PRIORITY;
        t.pager = pager;
        t.utcb_vaddr = utcb;
        t.utcb_phys = frame;
        let id = self.id_of(slot);
        let u = self.utcb_mut(slot);
        u.self_ptr = utcb.as_u64();
        u.my_id = id.0;
        Ok(slot)
    }

    pub fn make_ready(&mut self, i: Slot) {
        let t = &mut self.tcbs[i];
        t.state = State::Ready;
        t.wake_at = 0;
        let prio = t.prio;
        self.ready.enqueue(i, prio);
    }

    /// Highest-priority ready thread, dropping blocked ones met on the way.
    #[inline]
    pub fn pick(&mut self) -> Option<Slot> {
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
