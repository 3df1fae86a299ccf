//! sigma0's protocol (`abi::ipc::sigma0`) as its clients use it: frames (of
//! a bound pager's colours, or of a named partition's for the root task),
//! boot-module pages, I/O ports, bindings, counters. Whatever sigma0 maps
//! arrives in the caller's phys window (`abi::layout::PHYS_WINDOW +
//! physical address`).

use abi::ipc::sigma0 as proto;
use abi::ipc::Tag;
use abi::kip::Module;
use abi::layout;
use abi::syscall::{call, utcb, Msg};
use abi::{Error, Fpage, ThreadId};

/// Why sigma0 did not give what was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The IPC itself failed.
    Ipc(Error),
    /// sigma0 answered with this refusal label (`abi::ipc::sigma0`).
    Label(u64),
}

fn sigma0() -> ThreadId {
    ThreadId(user_rt::kip().sigma0_id)
}

/// Calls `to` with `label` and `words`, accepting what its reply maps into
/// the phys window (and nothing at any other time: the window is closed
/// again after the reply, so no one else maps there behind the caller's
/// back).
pub(crate) fn call_with_window(to: ThreadId, label: u64, words: &[u64]) -> Result<Msg, Refused> {
    utcb().br[0] = layout::phys_window().0;
    let m = call(to, &Msg::new(Tag::new(label, words.len(), 0), words)).map_err(Refused::Ipc);
    utcb().br[0] = 0;
    m
}

fn ask(label: u64, words: &[u64]) -> Result<Msg, Refused> {
    let m = call_with_window(sigma0(), label, words)?;
    match m.tag().label() {
        0 => Ok(m),
        l => Err(Refused::Label(l)),
    }
}

/// The page at physical address `f`, as the caller sees it.
pub fn page(f: u64) -> &'static mut [u8; 4096] {
    // SAFETY: `f` is a frame sigma0 mapped into the caller's phys window
    // for the caller alone (it hands each frame to one client), page
    // aligned; the caller's single thread is the only one using it.
    unsafe { &mut *(layout::phys(f & !0xfff) as *mut [u8; 4096]) }
}

/// A zeroed frame: of the caller's colours if it is a bound pager, of
/// partition `part`'s if given (the root task only), else of any colour.
pub fn frame(part: Option<usize>) -> Result<u64, Refused> {
    let m = ask(proto::GET_ANY, &[part.map_or(0, |p| p as u64 + 1)])?;
    let f = m.mr[0];
    // Frames come as they are in RAM: clear what a previous owner left.
    page(f).fill(0);
    Ok(f)
}

/// Maps every page of boot module `m` read-only (the root task only) and
/// returns its bytes.
pub fn module_bytes(m: &Module) -> Result<&'static [u8], Refused> {
    for i in 0..m.size.div_ceil(4096) {
        ask(proto::GET_MODULE, &[m.phys_base + i * 4096])?;
    }
    // SAFETY: every page of the module is now mapped read-only at its phys
    // window address; nothing writes it.
    Ok(unsafe { core::slice::from_raw_parts(layout::phys(m.phys_base) as *const u8, m.size as usize) })
}

/// Binds pager `t` to partition `part` (the root task only).
pub fn bind(t: ThreadId, part: usize) -> Result<(), Refused> {
    ask(proto::BIND, &[t.0, part as u64]).map(|_| ())
}

/// Takes the I/O ports of `fp` into the caller's space (the root task only).
pub fn ports(fp: Fpage) -> Result<(), Refused> {
    ask(proto::GET_PORTS, &[fp.0]).map(|_| ())
}

/// Frames handed out per partition, in description order (up to six).
pub fn usage() -> Result<heapless::Vec<u64, 6>, Refused> {
    let m = ask(proto::USAGE, &[])?;
    Ok(m.mr.iter().take(m.tag().untyped()).copied().collect())
}

/// sigma0's counters.
pub fn stats() -> Result<proto::Stats, Refused> {
    ask(proto::STATS, &[]).map(|m| proto::Stats::from_words(&m.mr))
}
