//! Small helpers for starting threads inside sigma0's own binary: stacks,
//! UTCB addresses, and a user-level pager that backs other address spaces
//! with sigma0's own pages (the same virtual addresses), so code of this
//! binary can run in spaces that start out empty.

use abi::ipc::{label, map_item, rights, Fpage, Tag};
use abi::sys::attr;
use abi::syscall::{self, reply_wait, Msg};
use abi::{Error, ThreadId};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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
    assert!(i < STACKS, "sigma0 ran out of thread stacks");
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

/// Ports handed out (one bit per port).
static mut PORTS_OUT: [u64; 1024] = [0; 1024];

/// Takes `frame` for a requester; false if it is not sigma0's to give or
/// already given.
fn take_frame(frame: u64) -> bool {
    crate::frames::get().take(frame)
}

/// Any frame not yet handed out (of partition `part`'s colors, if given).
fn take_any(part: Option<usize>) -> Option<u64> {
    let fr = crate::frames::get();
    match part.and_then(|p| crate::partitions::get().map(|ps| (ps, p))) {
        Some((ps, p)) => {
            let colors = *ps.colors(p);
            let f = fr.alloc(Some((&colors, &mut ps.cursor[p])))?;
            ps.record(p);
            Some(f)
        }
        None => fr.alloc(None),
    }
}

static ROOT: AtomicU64 = AtomicU64::new(0);

/// Records sigma0's root thread (the only one that may bind pagers).
pub fn set_root(t: ThreadId) {
    ROOT.store(t.0, Ordering::Relaxed);
}

/// A frame for sigma0's own use (it maps it onwards from its 1:1 space).
pub fn any_frame() -> Option<u64> {
    take_any(None)
}

/// The first naturally aligned `2^log2`-byte region of usable RAM whose
/// frames are all still sigma0's; taken as a whole.
pub fn aligned_region(log2: u32) -> Option<u64> {
    let size = 1u64 << log2;
    for r in user_rt::kip().mem_regions().iter().filter(|r| r.kind == abi::kip::MemKind::Usable as u32) {
        let mut b = r.base.next_multiple_of(size);
        while b + size <= r.base + r.size {
            if (b..b + size).step_by(4096).all(|f| crate::frames::get().is_free(f)) {
                (b..b + size).step_by(4096).for_each(|f| {
                    take_frame(f);
                });
                return Some(b);
            }
            b += size;
        }
    }
    None
}

fn take_ports(fp: Fpage) -> bool {
    let Some((first, n)) = fp.io_range() else { return false };
    let p = &raw mut PORTS_OUT;
    // SAFETY: only the pager thread touches the table.
    let t = unsafe { &mut *p };
    if (first..first + n).any(|q| t[q as usize / 64] & (1 << (q % 64)) != 0) {
        return false;
    }
    for q in first..first + n {
        t[q as usize / 64] |= 1 << (q % 64);
    }
    true
}

/// A reply that maps the same page of sigma0's own space.
pub fn same_page(addr: u64) -> Msg {
    let page = addr & !0xfff;
    Msg::new(Tag::new(0, 0, 2), &map_item(page, Fpage::new(page, 12, rights::ALL), false))
}

fn refused(why: u64) -> Msg {
    Msg::new(Tag::new(why, 0, 0), &[])
}

/// Answers one request from `from` to sigma0 (page fault or sigma0
/// protocol). A pager bound to a partition gets only frames of its colors.
pub fn serve(from: ThreadId, m: &Msg) -> Msg {
    use abi::ipc::sigma0;
    let part = crate::partitions::get().and_then(|p| p.partition_of(from));
    match m.tag().label() {
        label::PAGE_FAULT => {
            let n = PAGER_FAULTS.fetch_add(1, Ordering::Relaxed);
            FAULT_LOG[n as usize % FAULT_LOG.len()].store(m.mr[0], Ordering::Relaxed);
            same_page(m.mr[0])
        }
        sigma0::GET_FRAME | sigma0::GET_ANY => {
            let f = if m.tag().label() == sigma0::GET_FRAME {
                let f = m.mr[0] & !0xfff;
                if let (Some(p), Some(ps)) = (part, crate::partitions::get()) {
                    if !ps.colors(p).contains(ps.color_of(f)) {
                        return refused(sigma0::REFUSED_COLOR);
                    }
                }
                let got = take_frame(f);
                if got {
                    if let (Some(p), Some(ps)) = (part, crate::partitions::get()) {
                        ps.record(p);
                    }
                }
                Some(f).filter(|_| got)
            } else {
                take_any(part)
            };
            match f {
                // The frame lives at its own address in sigma0's space.
                Some(f) => {
                    let it = map_item(f, Fpage::new(f, 12, rights::ALL), false);
                    Msg::new(Tag::new(0, 1, 2), &[f, it[0], it[1]])
                }
                None => refused(sigma0::REFUSED_TAKEN),
            }
        }
        sigma0::BIND => {
            let ok = from.0 == ROOT.load(Ordering::Relaxed)
                && crate::partitions::get().is_some_and(|ps| ps.bind(ThreadId(m.mr[0]), m.mr[1] as usize));
            if ok {
                Msg::default()
            } else {
                refused(sigma0::REFUSED_NOT_ALLOWED)
            }
        }
        sigma0::USAGE => match crate::partitions::get() {
            Some(ps) => {
                let mut w = [0u64; 6];
                for (i, slot) in w.iter_mut().enumerate().take(ps.count) {
                    *slot = ps.used[i].load(Ordering::Relaxed);
                }
                Msg::new(Tag::new(0, ps.count.min(6), 0), &w)
            }
            None => refused(sigma0::REFUSED_UNKNOWN),
        },
        sigma0::GET_PORTS => {
            let fp = Fpage(m.mr[0]);
            if take_ports(fp) {
                let it = map_item(0, fp, false);
                Msg::new(Tag::new(0, 0, 2), &it)
            } else {
                refused(sigma0::REFUSED_TAKEN)
            }
        }
        _ => refused(sigma0::REFUSED_UNKNOWN),
    }
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

/// sigma0's server loop: page faults of the threads it pages (answered with
/// the same page of sigma0's own space) and the sigma0 protocol (frames,
/// each to at most one requester; I/O ports).
pub extern "C" fn pager() -> ! {
    serve_loop(|from, m| Some(serve(from, m)))
}
