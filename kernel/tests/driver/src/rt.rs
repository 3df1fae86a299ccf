//! Small helpers for starting threads of this binary: stacks, UTCB
//! addresses, and a user-level pager that backs other address spaces with
//! this task's own pages (the same virtual addresses), so code of this
//! binary can run in spaces that start out empty.

use abi::ipc::{map_item, rights, Fpage, Tag};
use abi::syscall::{self, reply_wait, Msg};
use abi::{Error, ThreadId};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use user_rt::thread::NewThread;

pub const STACK_SIZE: usize = 8 * 1024;
/// Stacks are never reused (a test run starts fewer threads than this).
const STACKS: usize = 128;

#[repr(C, align(4096))]
struct Stacks([[u8; STACK_SIZE]; STACKS]);
static mut STACK_AREA: Stacks = Stacks([[0; STACK_SIZE]; STACKS]);
static NEXT_STACK: AtomicUsize = AtomicUsize::new(0);
/// UTCBs of started threads live from here on, one page each.
const UTCB_AREA: u64 = 0x0000_5000_0000_0000;
static NEXT_UTCB: AtomicU64 = AtomicU64::new(0);
/// Faults the pager resolved, and the last addresses (a ring).
pub static PAGER_FAULTS: AtomicU64 = AtomicU64::new(0);
static FAULT_LOG: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

/// Did the pager resolve a fault in `[lo, hi)` recently?
pub fn faulted_in(lo: u64, hi: u64) -> bool {
    FAULT_LOG.iter().any(|a| (lo..hi).contains(&a.load(Ordering::Relaxed)))
}

/// A fresh stack (top address, 16-byte aligned minus the return slot).
pub fn stack() -> u64 {
    let i = NEXT_STACK.fetch_add(1, Ordering::Relaxed);
    assert!(i < STACKS, "the task ran out of thread stacks");
    let base = (&raw const STACK_AREA) as u64 + (i * STACK_SIZE) as u64;
    base + STACK_SIZE as u64 - 8
}

pub fn utcb_addr() -> u64 {
    UTCB_AREA + NEXT_UTCB.fetch_add(1, Ordering::Relaxed) * 4096
}

/// Starts `entry` as a new thread in the space of `space_of` (`NIL`: a new
/// space) with priority `prio` and pager `pager`.
pub fn spawn(space_of: ThreadId, entry: extern "C" fn() -> !, prio: u64, pager: ThreadId) -> Result<ThreadId, Error> {
    NewThread::new(space_of, utcb_addr(), pager, prio).start_fn(entry, stack())
}

/// Receives from anyone until a message arrives intact.
pub fn wait_good() -> (ThreadId, Msg) {
    loop {
        if let Ok(x) = syscall::receive(ThreadId::ANY, abi::Timeout::NEVER) {
            return x;
        }
    }
}

/// A fresh frame from sigma0, as this task sees it (in its phys window);
/// `None` when sigma0 has none left.
pub fn any_frame() -> Option<u64> {
    syscall::utcb().br[0] = abi::layout::phys_window().0;
    let m = syscall::call(sigma0(), &Msg::new(Tag::new(abi::ipc::sigma0::GET_ANY, 1, 0), &[0])).ok()?;
    (m.tag().label() == 0).then(|| abi::layout::phys(m.mr[0]))
}

/// sigma0's thread.
pub fn sigma0() -> ThreadId {
    ThreadId(user_rt::kip().sigma0_id)
}

/// A reply that maps the same page of sigma0's own space.
pub fn same_page(addr: u64) -> Msg {
    let page = addr & !0xfff;
    Msg::new(Tag::new(0, 0, 2), &map_item(page, Fpage::new(page, 12, rights::ALL), false))
}

/// A server loop: `handle` answers each message (`None`: no reply).
pub fn serve_loop(handle: impl Fn(ThreadId, &Msg) -> Option<Msg>) -> ! {
    let mut reply_to = ThreadId::NIL;
    let mut reply = Msg::default();
    loop {
        match reply_wait(reply_to, &reply) {
            Ok((from, m)) => match handle(from, &m) {
                Some(r) => {
                    reply = r;
                    reply_to = from;
                }
                None => reply_to = ThreadId::NIL,
            },
            Err(_) => reply_to = ThreadId::NIL,
        }
    }
}

/// A pager for spaces that run this binary: every fault is answered with
/// the same page of this task's own space (all of which its pager mapped
/// before `main`).
pub extern "C" fn pager() -> ! {
    serve_loop(|_, m| {
        (m.tag().label() == abi::ipc::label::PAGE_FAULT).then(|| {
            let n = PAGER_FAULTS.fetch_add(1, Ordering::Relaxed);
            FAULT_LOG[n as usize % FAULT_LOG.len()].store(m.mr[0], Ordering::Relaxed);
            same_page(m.mr[0])
        })
    })
}
