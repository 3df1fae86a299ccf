//! The contract between the kernel and everything that runs in ring 3.
//!
//! Syscall numbers, error codes, the Kernel Interface Page (KIP) layout, the
//! fixed user-visible addresses and the magic marker instructions are defined
//! here once; the kernel and every user crate import them, so nothing about
//! the ABI is written twice. The user-side wrappers in [`syscall`] compile
//! only for the bare-metal target.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

pub mod error;
pub mod ipc;
pub mod kip;
pub mod marker;
pub mod sys;
#[cfg(target_os = "none")]
pub mod syscall;
pub mod tid;

pub use error::Error;
pub use ipc::{Fpage, Tag, Timeout};
pub use tid::ThreadId;

/// Size of a base page.
pub const PAGE_SIZE: u64 = 4096;
/// Where the kernel maps the KIP (read-only) into every address space.
pub const KIP_VADDR: u64 = 0x0000_7fff_ffff_e000;
/// First address of the kernel half; user mappings must stay below it.
pub const USER_END: u64 = 0x0000_8000_0000_0000;
/// Top of the initial stack of a module the kernel loads (sigma0 and the
/// root task; grows down).
pub const ROOT_STACK_TOP: u64 = 0x0000_7fff_fff0_0000;
/// Size of that stack.
pub const ROOT_STACK_SIZE: u64 = 64 * 1024;
/// The first thread's UTCB of a kernel-loaded module (right above its stack).
pub const ROOT_UTCB: u64 = ROOT_STACK_TOP;
/// Priority of sigma0 and the root task's threads.
pub const ROOT_PRIORITY: u64 = 32;

/// QEMU's `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4`):
/// writing `v` to the port ends QEMU with exit status `(v << 1) | 1`. The
/// test kernel and the root task end their runs through it.
pub mod debug_exit {
    pub const PORT: u16 = 0xf4;
    /// QEMU then exits with status 33.
    pub const PASS: u8 = 0x10;
    /// QEMU then exits with status 35.
    pub const FAIL: u8 = 0x11;
}

/// The address-space layout of every task the root task or a user-level
/// pager loads (one place, so loaders, pagers and tasks agree).
pub mod layout {
    /// The image sits at its link address, below 2 GiB (kernel code model).
    pub const IMAGE_END: u64 = 0x8000_0000;
    /// The heap the description declares starts here and grows up.
    pub const HEAP_BASE: u64 = 0x0000_0010_0000_0000;
    /// The stack the description declares ends here (grows down).
    pub const STACK_TOP: u64 = 0x0000_7fff_fff0_0000;
    /// UTCBs: the first thread's here, further threads' on the pages above.
    pub const UTCB_BASE: u64 = STACK_TOP;
    /// Most threads one task's UTCB area holds.
    pub const MAX_THREADS: u64 = 64;
    /// Where a sigma0 client receives frames (frame `f` lands at
    /// `PHYS_WINDOW + f`) and a pager receives its clients' module pages
    /// (read-only, same rule): set `br[0]` to [`phys_window`] to accept them.
    pub const PHYS_WINDOW: u64 = 0x0000_1000_0000_0000;
    /// log2 of the window's size (1 TiB of physical addresses).
    pub const PHYS_WINDOW_LOG2: u32 = 40;

    /// The receive window fpage for frames and module pages.
    pub const fn phys_window() -> crate::Fpage {
        crate::Fpage::new(PHYS_WINDOW, PHYS_WINDOW_LOG2, crate::ipc::rights::ALL)
    }

    /// Where physical address `p` appears in a task that accepted it
    /// through the phys window.
    pub const fn phys(p: u64) -> u64 {
        PHYS_WINDOW + p
    }

    /// The UTCB address of a task's thread number `i`.
    pub const fn utcb(i: u64) -> u64 {
        UTCB_BASE + i * crate::PAGE_SIZE
    }
}
