//! The root task as a client of sigma0: frames (of a partition's colours
//! when it loads a pager), boot-module pages, I/O ports, pager bindings.
//! Everything sigma0 maps arrives in the root task's phys window
//! (`abi::layout::PHYS_WINDOW + physical address`).

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

fn ask(label: u64, words: &[u64]) -> Result<Msg, Refused> {
    // Whatever sigma0 maps lands in the phys window.
    utcb().br[0] = layout::phys_window().0;
    let m = call(sigma0(), &Msg::new(Tag::new(label, words.len(), 0), words)).map_err(Refused::Ipc)?;
    match m.tag().label() {
        0 => Ok(m),
        l => Err(Refused::Label(l)),
    }
}

/// The page at physical address `f`, as the root task sees it.
pub fn page(f: u64) -> &'static mut [u8; 4096] {
    // SAFETY: `f` is a frame sigma0 mapped into the phys window for the
    // root task alone (it hands each frame to one client), page aligned.
    unsafe { &mut *(layout::phys(f & !0xfff) as *mut [u8; 4096]) }
}

/// A zeroed frame, of partition `part`'s colours if given.
pub fn frame(part: Option<usize>) -> Result<u64, Refused> {
    let m = ask(proto::GET_ANY, &[part.map_or(0, |p| p as u64 + 1)])?;
    let f = m.mr[0];
    // Frames come as they are in RAM: clear what a previous boot left.
    page(f).fill(0);
    Ok(f)
}

/// Maps every page of boot module `m` (read-only) and returns its bytes.
pub fn module_bytes(m: &Module) -> Result<&'static [u8], Refused> {
    let pages = m.size.div_ceil(4096);
    for i in 0..pages {
        ask(proto::GET_MODULE, &[m.phys_base + i * 4096])?;
    }
    // SAFETY: every page of the module is now mapped read-only at its phys
    // window address, for the root task's lifetime; nothing writes it.
    Ok(unsafe { core::slice::from_raw_parts(layout::phys(m.phys_base) as *const u8, m.size as usize) })
}

/// Binds pager `t` to partition `part`.
pub fn bind(t: ThreadId, part: usize) -> Result<(), Refused> {
    ask(proto::BIND, &[t.0, part as u64]).map(|_| ())
}

/// Takes the I/O ports of `fp` from sigma0 into the root task's space.
pub fn ports(fp: Fpage) -> Result<(), Refused> {
    ask(proto::GET_PORTS, &[fp.0]).map(|_| ())
}
