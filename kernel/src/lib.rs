//! Prism: a real-time partitioned L4-style microkernel for x86_64.
//!
//! Design principles:
//! - **Minimal.** The kernel provides address spaces, threads with IPC, and
//!   unique ids; paging policy, cache-color policy, drivers and the
//!   Linux-like personality live at user level.
//! - **IPC is the hot path.** Page faults, exceptions and interrupts reach
//!   user-level servers as IPC; memory is built recursively by user-level
//!   pagers with map, grant and flush.
//! - **Never trust user level.** Every syscall argument is checked; a bad
//!   one is an error code to the caller, never a kernel panic.
//! - **Bounded kernel work.** The kernel is not preemptible inside a call, so
//!   every path is short and bounded; kernel memory comes from a fixed pool
//!   and running out is an error, not a crash.
//! - **Logic apart from hardware.** Memory map, pools, ELF checks and (later)
//!   the mapping database, scheduler queues and IPC state machine compile on
//!   the host and are unit-tested there; `arch` holds the x86_64 mechanisms
//!   and exists only in the bare-metal build, whose behaviour the in-guest
//!   suite (`just test`) checks under QEMU.
#![cfg_attr(target_os = "none", no_std)]

pub mod access;
pub mod boot;
pub mod kip;
pub mod mapdb;
pub mod memmap;
pub mod pmc;
pub mod pool;
pub mod sched;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod fastpath;
#[cfg(target_os = "none")]
pub mod fault;
#[cfg(target_os = "none")]
pub mod init;
#[cfg(all(target_os = "none", feature = "ktest"))]
pub mod invariants;
#[cfg(target_os = "none")]
pub mod io;
#[cfg(target_os = "none")]
pub mod ipc;
#[cfg(target_os = "none")]
pub mod irq;
#[cfg(all(target_os = "none", feature = "ktest"))]
pub mod ktest;
#[cfg(target_os = "none")]
pub mod log;
#[cfg(target_os = "none")]
pub mod mapping;
#[cfg(target_os = "none")]
pub mod syscall;
#[cfg(target_os = "none")]
pub mod task;
#[cfg(target_os = "none")]
pub mod thread;
#[cfg(target_os = "none")]
pub mod timer;
