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
/// Top of the root task's initial stack (grows down).
pub const ROOT_STACK_TOP: u64 = 0x0000_7fff_fff0_0000;
/// Size of the root task's initial stack.
pub const ROOT_STACK_SIZE: u64 = 64 * 1024;
/// The root thread's UTCB (right above its stack).
pub const ROOT_UTCB: u64 = ROOT_STACK_TOP;
/// Priority of the root thread.
pub const ROOT_PRIORITY: u64 = 32;
