//! The kernel's global state, declared in one place (after seL4's
//! `statedata.c`): the kernel pool, the KIP, what boot found, and the
//! timer's bookkeeping. The threads, spaces and ready queues are the
//! [`crate::thread::Kernel`] table, reached through its one accessor.
//!
//! Every item here is written at boot or only from kernel context on the
//! one CPU (the kernel runs with interrupts off and never nests entries),
//! which is what makes the `static mut`s sound; each is touched by one
//! module only (named on it).

use crate::boot::multiboot::BootInfo;
use crate::kip::KipPage;
use crate::memmap::{MemMap, Region};
use crate::pool::FramePool;
use abi::kip::Kip;
use spin::Mutex;

/// The kernel memory pool (page tables, mapping-database nodes, I/O
/// bitmaps, UTCBs). A spin lock although there is one CPU and no
/// preemption: it makes each use a scoped borrow the compiler checks
/// (two live `&mut` to the pool cannot exist), at the cost of an
/// uncontended atomic.
pub static POOL: Mutex<FramePool> = Mutex::new(FramePool::empty());
/// The kernel interface page (filled by `init`, read-only afterwards).
pub static mut KIP: KipPage = KipPage(Kip::new());
/// The memory map and boot information, kept for the in-guest tests.
pub static MEMMAP: spin::Once<MemMap> = spin::Once::new();
pub static BOOTINFO: spin::Once<BootInfo> = spin::Once::new();
pub static POOL_RANGE: spin::Once<Region> = spin::Once::new();
/// The root task's first thread (sigma0's where no root task runs).
pub static ROOT_THREAD: spin::Once<abi::ThreadId> = spin::Once::new();

/// The KIP, once boot has filled it (it is never written afterwards).
pub fn kip() -> &'static Kip {
    let p = &raw const KIP;
    // SAFETY: written only in `init::kstart` before any caller can run.
    unsafe { &(*p).0 }
}

/// `timer`: the clock's bookkeeping. Atomics rather than `static mut`s or
/// fields of the thread table: the IPC fast path and the timer interrupt
/// read and write them beside the table, and on one CPU a relaxed load or
/// store is the plain `mov` a `static mut` would be, with no `unsafe` and
/// no `&mut` to hand out.
pub mod clock {
    use core::sync::atomic::AtomicU64;
    /// TSC ticks per second (written once at boot).
    pub static TSC_HZ: AtomicU64 = AtomicU64::new(0);
    /// A lower bound of the earliest IPC timeout or replenishment.
    pub static EARLIEST: AtomicU64 = AtomicU64::new(u64::MAX);
    /// The deadline the APIC timer is armed for.
    pub static ARMED: AtomicU64 = AtomicU64::new(u64::MAX);
    /// When the running thread was dispatched (TSC).
    pub static DISPATCHED_AT: AtomicU64 = AtomicU64::new(0);
}
