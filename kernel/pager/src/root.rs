//! The root task's services to a pager (`abi::ipc::pager`, and
//! `root::GET_MODULE` for pagers that spawn tasks themselves): the clients
//! the description gives it, with read-only maps of their boot modules'
//! pages, and the word that a client is loaded.

use crate::sigma0::Refused;
use abi::ipc::pager as proto;
use abi::ipc::root::{self, Role, NAME_MAX};
use abi::layout;
use abi::syscall::{self, utcb, Msg};
use abi::{Fpage, ThreadId};
use core::fmt;
use user_rt::println;

/// A boot module's pages as the pager sees them (read-only, at their
/// phys-window addresses) until [`Module::release`].
#[derive(Clone, Copy, Debug)]
pub struct Module {
    pub base: u64,
    pub size: u64,
}

impl Module {
    /// Its bytes. Valid while the root task's map stands: use them right
    /// after the reply that mapped them, before the next request to the
    /// root task (which may map the same module afresh).
    pub fn bytes(&self) -> &'static [u8] {
        // SAFETY: the root task's reply mapped every page of the module
        // read-only at its phys-window address; nothing writes there.
        unsafe { core::slice::from_raw_parts(layout::phys(self.base) as *const u8, self.size as usize) }
    }

    /// Flushes the pager's own view of the module (its mapping-database
    /// nodes go back to the kernel); [`Module::bytes`] is invalid after.
    pub fn release(&self) {
        let mut a = layout::phys(self.base) & !0xfff;
        let end = layout::phys(self.base + self.size).next_multiple_of(4096);
        while a < end {
            // Naturally aligned blocks, at most what one flush may name.
            let mut log2 = a.trailing_zeros().min(24);
            while a + (1 << log2) > end {
                log2 -= 1;
            }
            let _ = syscall::unmap(Fpage::new(a, log2, abi::ipc::rights::ALL), true);
            a += 1 << log2;
        }
    }
}

/// A client the root task hands over.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    pub thread: ThreadId,
    pub module: Module,
    /// Heap and stack bytes its description declares.
    pub heap: u64,
    pub stack: u64,
    pub role: Option<Role>,
    name: [u8; NAME_MAX],
}

impl Client {
    pub fn name(&self) -> &str {
        text(&self.name)
    }
}

fn text(b: &[u8]) -> &str {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    core::str::from_utf8(&b[..end]).unwrap_or("?")
}

fn root_task() -> ThreadId {
    ThreadId(user_rt::kip().root_id)
}

/// Asks the root task, accepting module pages into the phys window.
fn ask(label: u64, words: &[u64]) -> Result<Msg, Refused> {
    crate::sigma0::call_with_window(root_task(), label, words)
}

/// Asks the root task for every client of the calling pager (`me` names
/// the pager in reports) and hands each to `load`; a client it cannot
/// load is reported and never starts. Returns how many it loaded.
pub fn load_clients<E: fmt::Display>(me: &str, mut load: impl FnMut(&Client) -> Result<(), E>) -> usize {
    let mut n = 0;
    loop {
        match next_client() {
            Ok(Some(c)) => match load(&c) {
                Ok(()) => n += 1,
                Err(e) => println!("{me}: cannot load {}: {e}; it does not start", c.name()),
            },
            Ok(None) => return n,
            Err(e) => {
                println!("{me}: the root task refused to hand out clients ({e:?})");
                return n;
            }
        }
    }
}

/// The next client of the calling pager, or `None` when all are handed out.
pub fn next_client() -> Result<Option<Client>, Refused> {
    let m = ask(proto::NEXT_CLIENT, &[])?;
    match m.tag().label() {
        0 => {}
        proto::NO_MORE => return Ok(None),
        l => return Err(Refused::Label(l)),
    }
    let mut name = [0u8; NAME_MAX];
    if m.tag().untyped() >= 10 {
        name = root::words_name(&utcb().mr[7..11]);
    }
    Ok(Some(Client {
        thread: ThreadId(m.mr[0]),
        module: Module { base: m.mr[1], size: m.mr[2] },
        heap: m.mr[3],
        stack: m.mr[4],
        role: Role::from_word(m.mr[5]),
        name,
    }))
}

/// Client `c` is loaded: the root task starts it at `entry` on `sp`.
pub fn client_ready(c: ThreadId, entry: u64, sp: u64) -> Result<(), Refused> {
    let m = ask(proto::CLIENT_READY, &[c.0, entry, sp])?;
    match m.tag().label() {
        0 => Ok(()),
        l => Err(Refused::Label(l)),
    }
}

/// The description entry of client `c` (`pager::CLIENT_INFO`): what the
/// pager answers the client's `GET_INFO` with.
pub fn client_info(c: ThreadId) -> Result<root::TaskInfo, Refused> {
    let m = ask(proto::CLIENT_INFO, &[c.0])?;
    if m.tag().label() != 0 || m.tag().untyped() != root::INFO_WORDS {
        return Err(Refused::Label(m.tag().label()));
    }
    let u = utcb();
    let w: [u64; root::INFO_WORDS] =
        core::array::from_fn(|i| if i < abi::ipc::REG_MRS { m.mr[i] } else { u.mr[i + 1] });
    root::TaskInfo::from_words(&w).ok_or(Refused::Label(0))
}

/// Client `c` ends with `status` (its `EXIT`, passed on to the root task).
pub fn client_exit(c: ThreadId, status: u64) -> Result<(), Refused> {
    let m = ask(proto::CLIENT_EXIT, &[c.0, status])?;
    match m.tag().label() {
        0 => Ok(()),
        l => Err(Refused::Label(l)),
    }
}

/// The root task's answer to `LOOKUP` of the name in `words` (a client's
/// request, passed on): the thread id.
pub fn lookup(words: &[u64]) -> Result<ThreadId, Refused> {
    let m = ask(root::LOOKUP, &words[..4])?;
    match m.tag().label() {
        0 => Ok(ThreadId(m.mr[0])),
        l => Err(Refused::Label(l)),
    }
}

/// The boot module named `name`, mapped read-only (pagers only).
pub fn module(name: &str) -> Result<Module, Refused> {
    let m = ask(root::GET_MODULE, &root::name_words(name))?;
    match m.tag().label() {
        0 => Ok(Module { base: m.mr[0], size: m.mr[1] }),
        l => Err(Refused::Label(l)),
    }
}
