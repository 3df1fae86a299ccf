//! Refused control calls change nothing: every control call is checked in
//! full before the kernel changes any state (`kernel/src/control.rs`:
//! decode, then invoke), so a request with one bad value among good ones,
//! or a good value for a target it may not have, leaves every attribute
//! as it was (read back with `THREAD_INFO`).

use crate::tests::{check, me, ms, report, Test, TestResult};
use abi::ipc::Timeout;
use abi::sys::{self, allow, attr, rights};
use abi::syscall::{self as sc, send, Msg};
use abi::{Error, ThreadId};
use suite::rt;
use user_rt::println;

/// Every attribute `THREAD_INFO` reads, with its second word.
const ATTRS: [u64; 12] = [
    attr::PAGER,
    attr::EXCEPTION_HANDLER,
    attr::PRIORITY,
    attr::TIMESLICE,
    attr::BUDGET,
    attr::MCP,
    attr::RIGHTS,
    attr::SPACE,
    attr::PREEMPTIONS,
    attr::ALLOW,
    attr::REFUSED,
    attr::FASTPATH,
];

fn snapshot(t: ThreadId) -> Result<[(u64, u64); ATTRS.len()], &'static str> {
    let mut s = [(0, 0); ATTRS.len()];
    for (v, &a) in s.iter_mut().zip(&ATTRS) {
        *v = sc::thread_info(t, a).map_err(|_| "THREAD_INFO refused")?;
    }
    Ok(s)
}

/// A thread id that named a thread once.
fn stale_id() -> Result<ThreadId, &'static str> {
    let t = sc::thread_create(me(), rt::utcb_addr(), ThreadId::NIL).map_err(|_| "create")?;
    sc::thread_delete(t).map_err(|_| "delete")?;
    Ok(t)
}

/// Runs `call`, which must fail with `want`, and checks that `t`'s
/// attributes are what they were.
fn refused(t: ThreadId, what: &str, want: Error, call: impl FnOnce() -> Result<(), Error>) -> TestResult {
    let before = snapshot(t)?;
    let got = call();
    let after = snapshot(t)?;
    if got != Err(want) {
        println!("test-driver: {what}: {got:?}, not {want:?}");
        return Err("a bad control call was not refused with the right error");
    }
    if before != after {
        println!("test-driver: {what}: refused, but {before:x?} became {after:x?}");
        return Err("a refused control call changed its target");
    }
    Ok(())
}

fn refused_config_changes_nothing() -> TestResult {
    let kaddr = 0xffff_ffff_8010_0000u64;
    // A thread of a space of its own, never started, with attributes
    // away from their defaults so that a partial change would show.
    let t = sc::thread_create(ThreadId::NIL, rt::utcb_addr(), ThreadId::NIL).map_err(|_| "create")?;
    sc::thread_config(t, attr::PRIORITY, 20, 0).map_err(|_| "prio")?;
    sc::thread_config(t, attr::TIMESLICE, ms(1), 0).map_err(|_| "timeslice")?;
    sc::thread_config(t, attr::BUDGET, ms(2), ms(10)).map_err(|_| "budget")?;
    let stale = stale_id()?;
    let mcp = sc::thread_info(me(), attr::MCP).map_err(|_| "own MCP")?.0;
    let mine = sc::thread_info(me(), attr::RIGHTS).map_err(|_| "own rights")?.0;
    let cfg = |what, v, v2| move || sc::thread_config(t, what, v, v2);
    let inval = Error::InvalidArgument;
    refused(t, "budget with a period below it", inval, cfg(attr::BUDGET, ms(3), 1))?;
    refused(t, "budget below the minimum", inval, cfg(attr::BUDGET, 5, ms(10)))?;
    refused(t, "priority 64", inval, cfg(attr::PRIORITY, sys::MAX_PRIORITY + 1, 0))?;
    refused(t, "MCP 64", inval, cfg(attr::MCP, sys::MAX_PRIORITY + 1, 0))?;
    if mcp < sys::MAX_PRIORITY {
        refused(t, "priority above the caller's MCP", Error::NoPermission, cfg(attr::PRIORITY, mcp + 1, 0))?;
        refused(t, "MCP above the caller's", Error::NoPermission, cfg(attr::MCP, mcp + 1, 0))?;
    }
    refused(t, "time slice below the minimum", inval, cfg(attr::TIMESLICE, sys::MIN_TIMESLICE - 1, 0))?;
    refused(t, "an unknown right", inval, cfg(attr::RIGHTS, rights::ALL | 0x80, 0))?;
    if mine != rights::ALL {
        refused(t, "a right the caller lacks", Error::NoPermission, cfg(attr::RIGHTS, rights::ALL, 0))?;
    }
    refused(t, "fast path 2", inval, cfg(attr::FASTPATH, 2, 0))?;
    refused(t, "allow-list op 7", inval, cfg(attr::ALLOW, me().0, 7))?;
    refused(t, "allow a stale thread", Error::InvalidThread, cfg(attr::ALLOW, stale.0, allow::ADD))?;
    refused(t, "attribute 99", inval, cfg(99, 1, 1))?;
    refused(t, "a good change for a stale target", Error::InvalidThread, || {
        sc::thread_config(stale, attr::PRIORITY, 5, 0)
    })?;
    refused(t, "start at a kernel address", inval, || sc::thread_start(t, kaddr, rt::stack()))?;
    refused(t, "start with a kernel stack", inval, || sc::thread_start(t, 0x40_0000, kaddr))?;
    // The snapshot sees a change when there is one.
    let before = snapshot(t)?;
    sc::thread_config(t, attr::BUDGET, ms(3), ms(9)).map_err(|_| "good budget refused")?;
    check(snapshot(t)? != before, "a good change did not show in THREAD_INFO")?;
    check(sc::thread_info(t, attr::BUDGET) == Ok((ms(3), ms(9))), "budget not as set")?;
    sc::thread_delete(t).map_err(|_| "delete")
}

/// A refused `IRQ_ATTACH` leaves the line with its handler: a reply to
/// the line's pseudo-thread (which acknowledges it) is the handler's
/// alone.
fn refused_irq_attach_keeps_the_line() -> TestResult {
    const LINE: u64 = 5;
    let stale = stale_id()?;
    let line = ThreadId::irq(LINE as u32);
    let ack = || send(line, &Msg::default(), Timeout::ZERO);
    sc::irq_attach(LINE, me()).map_err(|_| "attach")?;
    check(sc::irq_attach(LINE, stale) == Err(Error::InvalidThread), "stale handler accepted")?;
    check(sc::irq_attach(2, me()) == Err(Error::InvalidArgument), "the cascade line accepted")?;
    check(sc::irq_attach(16, me()) == Err(Error::InvalidArgument), "line 16 accepted")?;
    check(ack() == Ok(()), "the line lost its handler to a refused attach")?;
    sc::irq_attach(LINE, ThreadId::NIL).map_err(|_| "detach")?;
    check(ack() == Err(Error::NoPermission), "a detached line took an acknowledgement")
}

/// Refused creations take no thread slot and no space: many more of them
/// than there are slots, then a creation still succeeds.
fn refused_create_leaks_nothing() -> TestResult {
    let (stale, utcb) = (stale_id()?, rt::utcb_addr());
    for _ in 0..300 {
        check(
            sc::thread_create(ThreadId::NIL, abi::KIP_VADDR, ThreadId::NIL) == Err(Error::InvalidArgument),
            "UTCB at the KIP accepted",
        )?;
        check(
            sc::thread_create(stale, utcb, ThreadId::NIL) == Err(Error::InvalidThread),
            "stale space donor accepted",
        )?;
    }
    let t =
        sc::thread_create(ThreadId::NIL, rt::utcb_addr(), ThreadId::NIL).map_err(|_| "refusals used up a resource")?;
    sc::thread_delete(t).map_err(|_| "delete")
}

pub fn run() -> u32 {
    let tests: [Test; 3] = [
        ("control_refused_config_changes_nothing", refused_config_changes_nothing),
        ("control_refused_irq_attach_keeps_the_line", refused_irq_attach_keeps_the_line),
        ("control_refused_create_leaks_nothing", refused_create_leaks_nothing),
    ];
    report(&tests)
}
