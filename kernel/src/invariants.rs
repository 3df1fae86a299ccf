//! The test kernel's debug call (`abi::sys::KTEST`, feature `ktest` only):
//! the in-guest fuzzer's checker asks the kernel to check its own
//! invariants, reads the pool level and looks up single mappings. None of
//! this is compiled into the production kernel (`just test` checks its ELF).

use crate::mapdb::Rights;
use crate::state::POOL;
use crate::thread::{Kernel, State, MAX_SPACES};
use crate::types::{Slot, SpaceIdx, VirtAddr};
use abi::sys::ktest;
use abi::{Error, ThreadId};

/// The `KTEST` call: operation `op` with arguments `a`, `b`.
pub fn debug_call(kk: &Kernel, op: u64, a: u64, b: u64) -> Result<u64, Error> {
    match op {
        ktest::CHECK => Ok(check_all(kk)),
        ktest::POOL_FREE => Ok(POOL.lock().free_frames() as u64),
        ktest::TRANSLATE => translate(kk, ThreadId(a), b),
        ktest::OBJECTS => {
            let threads = Slot::threads().filter(|&i| kk.tcbs[i].state != State::Free).count() as u64;
            let spaces = kk.spaces.iter().filter(|s| s.space.is_some()).count() as u64;
            Ok(threads | spaces << 32)
        }
        _ => Err(Error::InvalidArgument),
    }
}

/// One check: a name, and the check (`Err` says what is broken).
type Check = (&'static str, fn(&Kernel) -> Result<(), &'static str>);

/// Runs every check; 0 if all hold, else the number of the first that
/// fails (its name and reason go to the console).
fn check_all(kk: &Kernel) -> u64 {
    let checks: [Check; 6] = [
        ("pool accounting", |_| POOL.lock().check()),
        ("mapping database", |kk| kk.mapdb.as_ref().map_or(Ok(()), |db| db.check())),
        ("page tables agree with the mapping database", page_tables),
        ("sender queues", crate::ipc::check_sender_queues),
        ("ready queues", |kk| kk.ready.check()),
        ("threads and spaces", threads_and_spaces),
    ];
    for (n, (name, check)) in checks.iter().enumerate() {
        if let Err(why) = check(kk) {
            crate::kprintln!("ktest: invariant broken: {name}: {why}");
            return n as u64 + 1;
        }
    }
    0
}

/// Every mapping in the database is in its space's page table with the
/// same frame and rights.
fn page_tables(kk: &Kernel) -> Result<(), &'static str> {
    let Some(db) = kk.mapdb.as_ref() else { return Ok(()) };
    for (sp, vpage, frame, rights) in db.mappings() {
        let space = SpaceIdx::new(sp as usize)
            .and_then(|sp| kk.spaces[sp].space.as_ref())
            .ok_or("a mapping of a dead space")?;
        let t = space.translate(VirtAddr::from_kernel(vpage << 12)).ok_or("a mapping missing from its page table")?;
        if !t.user || t.phys.as_u64() != frame {
            return Err("a page table maps another frame than the database");
        }
        if t.writable != rights.contains(Rights::WRITE) || t.executable != rights.contains(Rights::EXEC) {
            return Err("a page table has other rights than the database");
        }
    }
    Ok(())
}

/// Thread and space bookkeeping: every live thread is in a live space and
/// counted there, a space lives exactly while it has threads, `Ready`
/// threads are queued, timeouts and kernel messages belong to threads
/// blocked in IPC, chiefs are alive, and the current and FPU-owning
/// threads are alive.
fn threads_and_spaces(kk: &Kernel) -> Result<(), &'static str> {
    let mut count = [0u32; MAX_SPACES];
    for i in Slot::threads() {
        let t = &kk.tcbs[i];
        if t.state == State::Free {
            continue;
        }
        let sp = t.space;
        if kk.spaces[sp].space.is_none() {
            return Err("a live thread in a dead space");
        }
        count[sp.index()] += 1;
        // The current thread may be in no queue after a fast-path switch.
        if t.state == State::Ready && !kk.ready.is_queued(i) && kk.current != Some(i) {
            return Err("a ready thread is in no ready queue");
        }
        let in_ipc = matches!(t.state, State::SendBlocked | State::RecvBlocked);
        if t.wake_at != 0 && !in_ipc {
            return Err("a timeout on a thread not blocked in IPC");
        }
        if t.kipc != crate::thread::KernelIpc::None && !in_ipc {
            return Err("a kernel message of a thread not blocked in IPC");
        }
        if Slot::all().any(|s| t.pending_budget & s.bit() != 0 && kk.tcbs[s].state == State::Free) {
            return Err("a budget notification pending for a deleted thread");
        }
        if t.chief.is_some_and(|c| kk.tcbs[c].state == State::Free) {
            return Err("a thread's chief is deleted");
        }
    }
    for (sp, s) in kk.spaces.iter().enumerate() {
        if s.threads != count[sp] {
            return Err("a space's thread count is wrong");
        }
        if s.space.is_some() != (count[sp] > 0) {
            return Err("a space lives without threads, or threads without it");
        }
    }
    let dead = |t: Option<Slot>| t.is_some_and(|i| kk.tcbs[i].state == State::Free);
    if dead(kk.current) || dead(kk.fpu_owner) {
        return Err("the current or FPU-owning thread is deleted");
    }
    Ok(())
}

/// The `TRANSLATE` operation (see `abi::sys::ktest::TRANSLATE`).
fn translate(kk: &Kernel, t: ThreadId, v: u64) -> Result<u64, Error> {
    let i = kk.lookup(t)?;
    let v = v & !0xfff;
    let va = VirtAddr::user(v);
    let Some(m) = kk.space_of(i).zip(va).and_then(|(s, v)| s.translate(v)).filter(|m| m.user) else { return Ok(0) };
    let phys = m.phys.as_u64();
    let rights = Rights(Rights::READ.0 | if m.writable { 2 } else { 0 } | if m.executable { 1 } else { 0 });
    let db = kk.mapdb.as_ref().and_then(|db| db.lookup(kk.tcbs[i].space.number(), v >> 12));
    let agrees = db == Some((phys, rights));
    Ok(phys | rights.0 as u64 | if agrees { ktest::IN_MAPDB } else { 0 })
}
