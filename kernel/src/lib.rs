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
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

// The modules in layer order, lowest first. A module may use its own
// layer and the layers below, never one above (`layers.rs` checks every
// `crate::` path against this list: `cargo test -p kernel layers`). Where
// two modules of one layer use each other, the line says why.

// Library: hardware-free data structures and rules, host-tested; they use
// only each other (`kip` fills a KIP from a `memmap`; `types` holds the
// slot, space and address types every layer passes).
pub mod boot;
pub mod door;
pub mod kip;
pub mod mapdb;
pub mod memmap;
pub mod pool;
pub mod sched;
pub mod types;

// Arch: the x86_64 mechanisms, a leaf: handed what it needs (a frame pool
// for page tables, the clock it calibrates against), it uses nothing of
// the kernel above the library.
#[cfg(target_os = "none")]
pub mod arch;

// State: the kernel's global state in one place, and the console.
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod log;
#[cfg(target_os = "none")]
pub mod state;

// Objects: threads and address spaces (the TCB table, ids, switching),
// user memory, each space's send allow list.
pub mod access;
#[cfg(target_os = "none")]
pub mod thread;
pub mod umem;

// Operations: what the kernel does to objects. IPC and map/grant/flush use
// each other (a map item is part of a message; a string copy's fault
// becomes a page-fault IPC); the timer wakes IPC timeouts and IPC arms
// deadlines; interrupts arrive as IPC.
#[cfg(target_os = "none")]
pub mod control;
#[cfg(target_os = "none")]
pub mod crash;
#[cfg(target_os = "none")]
pub mod io;
#[cfg(target_os = "none")]
pub mod ipc;
#[cfg(target_os = "none")]
pub mod irq;
#[cfg(target_os = "none")]
pub mod mapping;
pub mod pmc;
#[cfg(target_os = "none")]
pub mod timer;

// Entry points: system-call dispatch (and its IPC fast path), trap
// dispatch, the dispatcher every entry ends in, boot (and the root task's
// loader), the test kernel's ring-0 tests and debug calls.
#[cfg(target_os = "none")]
pub mod dispatch;
#[cfg(target_os = "none")]
pub mod fastpath;
#[cfg(target_os = "none")]
pub mod init;
#[cfg(all(target_os = "none", feature = "ktest"))]
pub mod invariants;
#[cfg(all(target_os = "none", feature = "ktest"))]
pub mod ktest;
#[cfg(test)]
mod layers;
#[cfg(target_os = "none")]
pub mod syscall;
#[cfg(target_os = "none")]
pub mod task;
#[cfg(target_os = "none")]
pub mod trap;
