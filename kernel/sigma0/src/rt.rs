//! Small helpers for starting threads inside sigma0's own binary: stacks,
//! UTCB addresses, and a user-level pager that backs other address spaces
//! with sigma0's own pages (the same virtual addresses), so code of this
//! binary can run in spaces that start out empty.

use abi::ipc::{label, map_item, rights, Fpage, Tag};
use abi::sys::attr;
use abi::syscall::{self, reply_wait, Msg};
use abi::{Error, ThreadId};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub const STACK_SIZE: usize = 16 * 1024;
const STACKS: usize = 24;

#[repr(C, align(4096))]
struct Stacks([[u8; STACK_SIZE]; STACKS]);
static mut STACK_AREA: Stacks = Stacks([[0; STACK_SIZE]; STACKS]);
static NEXT_STACK: AtomicUsize = AtomicUsize::new(0);
/// UTCBs of started threads live from here on, one page each.
const UTCB_AREA: u64 = 0x0000_5000_0000_0000;
static NEXT_UTCB: AtomicU64 = AtomicU64::new(0);
/// Faults the pager resolved.
pub static PAGER_FAULTS: AtomicU64 = AtomicU64::new(0);

/// A fresh stack (top address, 16-byte aligned minus the return slot).
pub fn stack() -> u64 {
    let i = NEXT_STACK.fetch_add(1, Ordering::Relaxed) % STACKS;
    let base = (&raw const STACK_AREA) as u64 + (i * STACK_SIZE) as u64;
    base + STACK_SIZE as u64 - 8
}

pub fn utcb_addr() -> u64 {
    UTCB_AREA + NEXT_UTCB.fetch_add(1, Ordering::Relaxed) * 4096
}

/// Starts `entry` as a new thread in the space of `space_of` (`NIL`: a new
/// space) with priority `prio` and pager `pager`.
pub fn spawn(space_of: ThreadId, entry: extern "C" fn() -> !, prio: u64, pager: ThreadId) -> Result<ThreadId, Error> {
    let t = syscall::thread_create(space_of, utcb_addr(), pager)?;
    syscall::thread_config(t, attr::PRIORITY, prio, 0)?;
    syscall::thread_start(t, entry as *const () as u64, stack())?;
    Ok(t)
}

/// Receives from anyone until a message arrives intact.
pub fn wait_good() -> (ThreadId, Msg) {
    loop {
        if let Ok(x) = syscall::receive(ThreadId::ANY, abi::Timeout::NEVER) {
            return x;
        }
    }
}

/// The pager loop: answers every page fault with a mapping of the same
/// page of sigma0's own space.
pub extern "C" fn pager() -> ! {
    let mut reply_to = ThreadId::NIL;
    let mut reply = Msg::default();
    loop {
        match reply_wait(reply_to, &reply) {
            Ok((from, m)) if m.tag().label() == label::PAGE_FAULT => {
                let page = m.mr[0] & !0xfff;
                reply = Msg::new(Tag::new(0, 0, 2), &map_item(page, Fpage::new(page, 12, rights::ALL), false));
                reply_to = from;
                PAGER_FAULTS.fetch_add(1, Ordering::Relaxed);
            }
            _ => reply_to = ThreadId::NIL,
        }
    }
}
