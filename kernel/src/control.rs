//! Control calls: creating, starting, configuring and deleting threads,
//! attaching interrupt lines, programming the performance counters. Each
//! is decoded first ([`decode`]: every argument and every right checked,
//! nothing changed) into an [`Op`], then carried out ([`invoke`]), which
//! cannot fail half way: so no error path has anything to undo (seL4's
//! `decodeTCBInvocation` / `invokeTCB_*` split). Creating a thread only
//! builds objects, so it lives with them (`thread::Kernel::create_thread`,
//! which builds everything aside and installs nothing until no step can
//! fail); starting and deleting reach into IPC, the mapping database and
//! the I/O bitmaps, a layer up.
#![deny(clippy::arithmetic_side_effects)]

use crate::arch::paging;
use crate::arch::trap::TrapFrame;
use crate::state::POOL;
use crate::thread::{Kernel, KernelIpc, State, USER_RFLAGS};
use crate::types::{Slot, SpaceIdx, SpaceLink};
use crate::{access, irq, timer};
use abi::sys::{self, attr, rights};
use abi::{Error, ThreadId};

/// Where a thread starts: an instruction and a stack pointer, both user
/// addresses (the only constructor checks them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    ip: u64,
    sp: u64,
}

impl Entry {
    /// `InvalidArgument` unless both lie below `abi::USER_END`.
    pub fn new(ip: u64, sp: u64) -> Result<Entry, Error> {
        if ip >= abi::USER_END || sp >= abi::USER_END {
            return Err(Error::InvalidArgument);
        }
        Ok(Entry { ip, sp })
    }
}

/// One checked `THREAD_CONFIG` change.
#[derive(Clone, Copy, Debug)]
pub enum Config {
    Pager(ThreadId),
    Handler(ThreadId),
    Priority(u8),
    Timeslice(u64),
    Budget { budget: u64, period: u64 },
    Mcp(u8),
    Rights(u8),
    Allow(access::Change),
    Fastpath(bool),
}

/// A decoded control call: what it does, to which threads, with checked
/// values. Carrying one out ([`invoke`]) needs no further check.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// `THREAD_CREATE`: a thread in the space of `same` (or a new one).
    Create { same: Option<Slot>, utcb: u64, pager: ThreadId },
    /// `THREAD_DELETE` of a thread the caller controls.
    Delete(Slot),
    /// `THREAD_START` of a thread the caller controls.
    Start(Slot, Entry),
    /// `THREAD_CONFIG` of the caller or a thread it controls.
    Config(Slot, Config),
    /// `IRQ_ATTACH`: route a line (not the cascade) to a live handler, or
    /// detach it (`NIL`).
    Attach { line: u32, handler: ThreadId },
    /// `PMC`: report what the counters count, or program them first.
    Pmc { program: Option<u8> },
}

/// The control calls (the system calls [`decode`] takes).
pub const fn is_control(nr: u64) -> bool {
    matches!(
        nr,
        sys::THREAD_CREATE | sys::THREAD_DELETE | sys::THREAD_START | sys::THREAD_CONFIG | sys::IRQ_ATTACH | sys::PMC
    )
}

/// The caller holds `right` (an `abi::sys::rights` bit).
pub fn holds(kk: &Kernel, cur: Slot, right: u64) -> Result<(), Error> {
    if kk.tcbs[cur].rights as u64 & right != 0 {
        Ok(())
    } else {
        Err(Error::NoPermission)
    }
}

/// The target of a control call: a thread the caller controls, or the
/// caller itself where `allow_self`. The caller must hold `CONTROL`.
fn controlled(kk: &Kernel, cur: Slot, id: ThreadId, allow_self: bool) -> Result<Slot, Error> {
    holds(kk, cur, rights::CONTROL)?;
    let t = kk.lookup(id)?;
    if (allow_self && t == cur) || kk.controls(cur, t) {
        Ok(t)
    } else {
        Err(Error::NoPermission)
    }
}

/// Checks control call `f.rax` of `cur` (arguments in `f`) without
/// changing anything.
pub fn decode(kk: &Kernel, cur: Slot, f: &TrapFrame) -> Result<Op, Error> {
    Ok(match f.rax {
        sys::THREAD_CREATE => {
            let (same_space_as, utcb, pager) = (ThreadId(f.rdi), f.rsi, ThreadId(f.rdx));
            holds(kk, cur, rights::CONTROL)?;
            access::may_name(kk, cur, pager)?;
            let same = if same_space_as.is_nil() {
                None
            } else {
                let s = kk.lookup(same_space_as)?;
                // Only into the caller's own space or one of a thread it controls.
                if kk.tcbs[s].space != kk.tcbs[cur].space && !kk.controls(cur, s) {
                    return Err(Error::NoPermission);
                }
                Some(s)
            };
            Op::Create { same, utcb, pager }
        }
        sys::THREAD_DELETE => Op::Delete(controlled(kk, cur, ThreadId(f.rdi), false)?),
        sys::THREAD_START => {
            let t = controlled(kk, cur, ThreadId(f.rdi), false)?;
            Op::Start(t, Entry::new(f.rsi, f.rdx)?)
        }
        sys::THREAD_CONFIG => {
            let t = controlled(kk, cur, ThreadId(f.rdi), true)?;
            Op::Config(t, decode_config(kk, cur, f.rsi, f.rdx, f.r10)?)
        }
        sys::IRQ_ATTACH => {
            let handler = ThreadId(f.rsi);
            holds(kk, cur, rights::IRQ)?;
            access::may_name(kk, cur, handler)?;
            let line = irq::line(f.rdi)?;
            if !handler.is_nil() {
                kk.lookup(handler)?;
            }
            Op::Attach { line, handler }
        }
        sys::PMC => match (f.rdi, f.rsi) {
            (abi::pmc::INFO, _) => Op::Pmc { program: None },
            (abi::pmc::PROGRAM, mask) if mask & !abi::pmc::ALL_EVENTS != 0 => return Err(Error::InvalidArgument),
            (abi::pmc::PROGRAM, mask) => {
                holds(kk, cur, rights::PMC)?;
                Op::Pmc { program: Some(mask as u8) }
            }
            _ => return Err(Error::InvalidArgument),
        },
        _ => return Err(Error::NoSuchCall),
    })
}

/// Checks a `THREAD_CONFIG` request of `cur` against its own limits.
fn decode_config(kk: &Kernel, cur: Slot, what: u64, v: u64, v2: u64) -> Result<Config, Error> {
    let caller = &kk.tcbs[cur];
    let within_mcp = |p: u64| {
        if p > sys::MAX_PRIORITY {
            Err(Error::InvalidArgument)
        } else if p > caller.mcp as u64 {
            Err(Error::NoPermission)
        } else {
            Ok(p as u8)
        }
    };
    Ok(match what {
        attr::PAGER => Config::Pager(access::may_name(kk, cur, ThreadId(v)).map(|_| ThreadId(v))?),
        attr::EXCEPTION_HANDLER => Config::Handler(access::may_name(kk, cur, ThreadId(v)).map(|_| ThreadId(v))?),
        attr::ALLOW => Config::Allow(access::decode(kk, cur, v, v2)?),
        attr::PRIORITY => Config::Priority(within_mcp(v)?),
        attr::MCP => Config::Mcp(within_mcp(v)?),
        attr::TIMESLICE if v >= sys::MIN_TIMESLICE => Config::Timeslice(v),
        attr::BUDGET if v == 0 || (v >= sys::MIN_TIMESLICE && v2 >= v) => Config::Budget { budget: v, period: v2 },
        attr::RIGHTS if v & !rights::ALL != 0 => return Err(Error::InvalidArgument),
        attr::RIGHTS if v & !(caller.rights as u64) != 0 => return Err(Error::NoPermission),
        attr::RIGHTS => Config::Rights(v as u8),
        attr::FASTPATH if v <= 1 => Config::Fastpath(v == 1),
        _ => return Err(Error::InvalidArgument),
    })
}

/// Carries out decoded control call `op` of `cur`; returns what goes to
/// its `rax` (`PMC` writes `rsi` and `rdx` too). Only `Create` can fail
/// (the thread table, the spaces or the kernel pool ran out), and then
/// nothing was changed.
pub fn invoke(kk: &mut Kernel, cur: Slot, op: Op) -> Result<u64, Error> {
    match op {
        Op::Create { same, utcb, pager } => {
            let t = kk.create_thread(same, utcb, pager)?;
            if same.is_none() {
                access::created_space(kk, cur, t);
            }
            let prio = kk.tcbs[cur].mcp.min(crate::thread::DEFAULT_PRIORITY);
            let tc = &mut kk.tcbs[t];
            tc.chief = Some(cur);
            tc.prio = prio;
            return Ok(kk.id_of(t).0);
        }
        Op::Delete(t) => kk.delete_thread(t),
        Op::Start(t, entry) => kk.start_thread(t, entry),
        Op::Config(t, c) => apply_config(kk, t, c),
        Op::Attach { line, handler } => irq::attach(line, handler),
        Op::Pmc { program } => {
            let info = match program {
                None => crate::pmc::hw::info(),
                Some(mask) => crate::pmc::hw::program(mask),
            };
            let [a, b, c] = info.to_words();
            kk.tcbs[cur].frame.rsi = b;
            kk.tcbs[cur].frame.rdx = c;
            return Ok(a);
        }
    }
    Ok(0)
}

fn apply_config(kk: &mut Kernel, t: Slot, c: Config) {
    match c {
        Config::Pager(p) => kk.tcbs[t].pager = p,
        Config::Handler(h) => kk.tcbs[t].exc_handler = h,
        Config::Priority(p) => {
            kk.tcbs[t].prio = p;
            if kk.ready.is_queued(t) {
                kk.ready.remove(t);
                if kk.tcbs[t].state == State::Ready {
                    kk.ready.enqueue(t, p);
                }
            }
        }
        Config::Timeslice(v) => {
            kk.tcbs[t].timeslice = v;
            kk.tcbs[t].slice_left = v;
        }
        Config::Budget { budget, period } => {
            let now = timer::now();
            let tc = &mut kk.tcbs[t];
            tc.budget = budget;
            tc.period = if budget == 0 { 0 } else { period };
            tc.budget_left = budget;
            // Saturating: a period up to u64::MAX is accepted, and the
            // first replenishment must not wrap into the past.
            tc.next_replenish = if budget == 0 { 0 } else { now.saturating_add(period) };
            timer::note_deadline(tc.next_replenish);
            if budget == 0 && tc.state == State::BudgetWait {
                kk.make_ready(t);
            }
        }
        Config::Mcp(m) => kk.tcbs[t].mcp = m,
        Config::Rights(r) => kk.tcbs[t].rights = r,
        Config::Allow(c) => access::apply(kk, t, c),
        Config::Fastpath(on) => kk.tcbs[t].fastpath = on,
    }
}

impl Kernel {
    /// Sets the user-visible start state and makes the thread ready.
    pub fn start_thread(&mut self, i: Slot, entry: Entry) {
        if matches!(self.tcbs[i].state, State::SendBlocked | State::RecvBlocked) {
            crate::ipc::cancel(self, i);
        }
        let sel = crate::arch::gdt::selectors();
        let t = &mut self.tcbs[i];
        t.frame = TrapFrame {
            rip: entry.ip,
            cs: sel.user_code.0 as u64,
            rflags: USER_RFLAGS,
            rsp: entry.sp,
            ss: sel.user_data.0 as u64,
            ..TrapFrame::zero()
        };
        t.kipc = KernelIpc::None;
        t.restart_recv_only = false;
        t.slice_left = t.timeslice;
        t.budget_left = t.budget;
        self.make_ready(i);
    }

    /// Deletes thread `i`: it leaves every queue, partners waiting on it
    /// get `Aborted`, and its id becomes stale.
    pub fn delete_thread(&mut self, i: Slot) {
        // Whoever `i` controlled is controlled by `i`'s chief from now on.
        let chief = self.tcbs[i].chief;
        for j in Slot::threads() {
            if self.tcbs[j].chief == Some(i) {
                self.tcbs[j].chief = chief;
            }
        }
        crate::ipc::cancel(self, i);
        crate::ipc::abort_waiters(self, i);
        self.ready.remove(i);
        if self.fpu_owner == Some(i) {
            self.fpu_owner = None;
        }
        let sp = self.tcbs[i].space;
        let (utcb, utcb_phys) = (self.tcbs[i].utcb_vaddr, self.tcbs[i].utcb_phys);
        if let Some(space) = self.spaces[sp].space.as_mut() {
            space.unmap(utcb);
        }
        let _ = POOL.lock().free(utcb_phys);
        self.spaces[sp].threads = self.spaces[sp].threads.saturating_sub(1);
        if self.spaces[sp].threads == 0 {
            self.release_space(sp);
        }
        let t = &mut self.tcbs[i];
        t.state = State::Free;
        // Versions stay below 2^31 so that an id returned in rax never
        // reads as an error code.
        t.version = if t.version >= 0x7fff_ffff { 1 } else { t.version.saturating_add(1) };
        if self.current == Some(i) {
            self.current = None;
        }
        if Slot::threads().all(|j| self.tcbs[j].state == State::Free) {
            crate::kprintln!("all threads ended; idling.");
        }
    }

    /// Tears a space down: every mapping it has (and everything derived
    /// from them, in any space) is flushed, its page tables and I/O bitmap go
    /// back to the pool.
    fn release_space(&mut self, sp: SpaceIdx) {
        crate::mapping::remove_space(self, sp);
        if self.sigma0_space == Some(sp) {
            // The slot may be reused: a new space must not inherit sigma0's
            // idempotent access to all of RAM.
            self.sigma0_space = None;
        }
        let mut pool = POOL.lock();
        if let Some(space) = self.spaces[sp].space.take() {
            if self.loaded_space.is(sp) {
                // Never free the live tables: fall back to the kernel's.
                paging::activate_kernel();
                self.loaded_space = SpaceLink::NONE;
            }
            space.destroy(&mut pool);
        }
        if let Some(bitmap) = self.spaces[sp].io_bitmap.take() {
            let _ = pool.free(bitmap);
            // Two contiguous pool frames: the second is in the pool too.
            if let Some(second) = bitmap.checked_add(4096) {
                let _ = pool.free(second);
            }
            crate::io::invalidate(self);
        }
        crate::access::released_space(self, sp);
        self.spaces[sp].threads = 0;
    }
}
