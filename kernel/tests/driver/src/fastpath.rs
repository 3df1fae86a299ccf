//! The IPC fast path against the general path: every scenario runs twice,
//! once with the fast path on for the threads it involves and once with
//! it off (`abi::sys::attr::FASTPATH`), and must give the same results; the
//! fast path's counter says whether it was taken (it must be exactly when
//! its preconditions hold: see the kernel's `fastpath` module).

use crate::tests::{check, me, ms, TestResult};
use abi::ipc::{label, string_item, Tag, Timeout};
use abi::sys::{allow, attr};
use abi::syscall::{self as sc, call, receive, reply_wait, send, Msg};
use abi::{Error, ThreadId};
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use suite::rt::{self, spawn, wait_good};

/// What a scenario produced (compared between the two runs).
type Outcome = [u64; 8];

fn count(t: ThreadId) -> u64 {
    sc::thread_info(t, attr::FASTPATH).map_or(u64::MAX, |(v, _)| v)
}

fn set(t: ThreadId, on: bool) -> TestResult {
    sc::thread_config(t, attr::FASTPATH, on as u64, 0).map_err(|_| "cannot switch the fast path")
}

fn code(r: Result<Msg, Error>) -> u64 {
    match r {
        Ok(_) => 0,
        Err(e) => e.encode(),
    }
}

/// Runs `scenario(on)` with the fast path on, then off, for this thread
/// and `threads` (the scenario switches threads it creates itself); the
/// outcomes must agree, and this thread's IPCs must have taken the fast
/// path in the first run exactly when `fast`.
fn both(threads: &[ThreadId], fast: bool, scenario: impl Fn(bool) -> Result<Outcome, &'static str>) -> TestResult {
    let mut out = [[0; 8]; 2];
    for (k, on) in [true, false].into_iter().enumerate() {
        for &t in threads.iter().chain([me()].iter()) {
            set(t, on)?;
        }
        let before = count(me());
        let r = scenario(on);
        let taken = count(me()) - before;
        for &t in threads.iter().chain([me()].iter()) {
            set(t, true)?;
        }
        out[k] = r?;
        match (on, fast, taken > 0) {
            (true, true, false) => return Err("the fast path was not taken though its preconditions hold"),
            (true, false, true) => return Err("the fast path was taken though a precondition is broken"),
            (false, _, true) => return Err("the fast path was taken while switched off"),
            _ => {}
        }
    }
    check(out[0] == out[1], "the fast path and the general path gave different results")
}

/// Replies with label + 1, the register words, and the UTCB words plus one.
extern "C" fn echo() -> ! {
    let (mut from, mut m) = wait_good();
    loop {
        let t = m.tag();
        for w in sc::utcb().mr.iter_mut().take(t.untyped() + 1).skip(7) {
            *w += 1;
        }
        let reply = Msg { tag: Tag::new(t.label() + 1, t.untyped(), 0).0, mr: m.mr };
        (from, m) = match reply_wait(from, &reply) {
            Ok(x) => x,
            Err(_) => wait_good(),
        };
    }
}

/// Times the ready thread above the low-priority partner ran.
static ABOVE_RUNS: AtomicU64 = AtomicU64::new(0);

/// A low-priority echo that also reports how often `above` had run.
extern "C" fn low_echo() -> ! {
    let (mut from, mut m) = wait_good();
    loop {
        let reply = Msg { tag: Tag::new(1, 2, 0).0, mr: [m.mr[0], ABOVE_RUNS.load(SeqCst), 0, 0, 0, 0] };
        (from, m) = match reply_wait(from, &reply) {
            Ok(x) => x,
            Err(_) => wait_good(),
        };
    }
}

extern "C" fn above() -> ! {
    loop {
        if receive(ThreadId::ANY, Timeout::NEVER).is_ok() {
            ABOVE_RUNS.fetch_add(1, SeqCst);
        }
    }
}

/// Waits for a message from itself: never.
extern "C" fn busy() -> ! {
    loop {
        let _ = receive(me(), Timeout::NEVER);
    }
}

static mut STRING_BUF: [u8; 4096] = [0; 4096];

/// Receives a string and replies with its length and byte sum.
extern "C" fn string_server() -> ! {
    let buf = (&raw const STRING_BUF) as u64;
    // SAFETY: touching our own static so the pager maps it.
    unsafe { core::ptr::read_volatile(buf as *const u8) };
    let u = sc::utcb();
    u.br[1] = buf;
    u.br[2] = 4096;
    let (mut from, mut m) = wait_good();
    loop {
        let t = m.tag();
        let (len, at) = (m.mr[t.untyped()] >> 32, m.mr[t.untyped() + 1]);
        // SAFETY: the kernel copied `len` bytes to `at`, in our buffer.
        let sum = (0..len).map(|i| unsafe { *((at + i) as *const u8) } as u64).sum();
        let reply = Msg::new(Tag::new(0, 2, 0), &[len, sum]);
        (from, m) = match reply_wait(from, &reply) {
            Ok(x) => x,
            Err(_) => wait_good(),
        };
    }
}

static DRIVER: AtomicU64 = AtomicU64::new(0);
static ECHO: AtomicU64 = AtomicU64::new(0);

/// In a space whose allow list is empty: a call to the echo server (in
/// another space, waiting for anyone: refused), then a call to the driver,
/// which waits for exactly this thread (allowed), with the first result.
extern "C" fn restricted() -> ! {
    let r = call(echo_id(), &Msg::new(Tag::new(5, 1, 0), &[7]));
    let _ = call(ThreadId(DRIVER.load(SeqCst)), &Msg::new(Tag::new(0, 1, 0), &[code(r)]));
    sc::thread_exit(0)
}

/// Calls the echo server until deleted.
extern "C" fn budget_caller() -> ! {
    let e = echo_id();
    loop {
        let _ = call(e, &Msg::new(Tag::new(1, 1, 0), &[3]));
    }
}

fn echo_outcome(r: Result<Msg, Error>) -> Outcome {
    match r {
        Ok(m) => [m.tag, m.mr[0], m.mr[1], m.mr[2], m.mr[3], m.mr[4], m.mr[5], 0],
        Err(e) => [e.encode(), 0, 0, 0, 0, 0, 0, 1],
    }
}

static PAGER: AtomicU64 = AtomicU64::new(0);

fn echo_id() -> ThreadId {
    ThreadId(ECHO.load(SeqCst))
}

fn pager() -> ThreadId {
    ThreadId(PAGER.load(SeqCst))
}

const REGS: Msg = Msg { tag: Tag::new(0x42, 6, 0).0, mr: [1, 2, 3, 4, 5, 6] };

fn registers() -> TestResult {
    let e = echo_id();
    both(&[e], true, |_| Ok(echo_outcome(call(e, &REGS))))
}

fn utcb_words() -> TestResult {
    let e = echo_id();
    both(&[e], true, |_| {
        for i in 7..=60 {
            sc::utcb().mr[i] = 0x1000 + i as u64;
        }
        let mut o = echo_outcome(call(e, &Msg::new(Tag::new(7, 60, 0), &[11, 12, 13, 14, 15, 16])));
        o[7] = (7..=60).map(|i| sc::utcb().mr[i]).sum();
        Ok(o)
    })
}

fn not_waiting() -> TestResult {
    let b = spawn(ThreadId::NIL, busy, 40, pager()).map_err(|_| "spawn")?;
    let r = both(&[b], false, |_| {
        let r = sc::ipc(b, b, Timeout::ZERO, Timeout::NEVER, &REGS).map(|(_, m)| m);
        Ok(echo_outcome(r))
    });
    sc::thread_delete(b).map_err(|_| "delete")?;
    r
}

fn string() -> TestResult {
    let s = spawn(ThreadId::NIL, string_server, 40, pager()).map_err(|_| "spawn")?;
    let data = [9u8; 100];
    let item = string_item(data.as_ptr() as u64, 100);
    let r = both(&[s], false, |_| Ok(echo_outcome(call(s, &Msg::new(Tag::new(1, 0, 2), &item)))));
    sc::thread_delete(s).map_err(|_| "delete")?;
    r
}

fn receive_timeout() -> TestResult {
    let e = echo_id();
    both(&[e], false, |_| {
        let r = sc::ipc(e, e, Timeout::NEVER, Timeout::ticks(ms(1000)), &REGS).map(|(_, m)| m);
        Ok(echo_outcome(r))
    })
}

fn lower_partner() -> TestResult {
    let l = spawn(ThreadId::NIL, low_echo, 20, pager()).map_err(|_| "spawn")?;
    // Below us, it reaches its receive (and is paged in) only when we wait.
    call(l, &Msg::default()).map_err(|_| "warm-up call")?;
    let r = both(&[l], true, |_| Ok(echo_outcome(call(l, &Msg::new(Tag::new(1, 1, 0), &[4])))));
    sc::thread_delete(l).map_err(|_| "delete")?;
    r
}

fn ready_above_partner() -> TestResult {
    let l = spawn(ThreadId::NIL, low_echo, 20, pager()).map_err(|_| "spawn")?;
    let a = spawn(me(), above, 25, ThreadId::NIL).map_err(|_| "spawn")?;
    let r = both(&[l, a], false, |_| {
        crate::tests::sleep(ms(1));
        let before = ABOVE_RUNS.load(SeqCst);
        // `a` becomes ready but waits (it is below us); the call must let
        // it run before the partner below it.
        send(a, &Msg::default(), Timeout::ZERO).map_err(|_| "send")?;
        let mut o = echo_outcome(call(l, &Msg::new(Tag::new(1, 1, 0), &[4])));
        o[2] -= before;
        check(o[2] == 1, "the partner ran before the ready thread above it")?;
        Ok(o)
    });
    sc::thread_delete(a).map_err(|_| "delete")?;
    sc::thread_delete(l).map_err(|_| "delete")?;
    r
}

fn allow_list() -> TestResult {
    // The driver's own IPCs do not count here (its reply is a send): the
    // restricted thread's do.
    both(&[], false, |on| {
        let t = sc::thread_create(ThreadId::NIL, rt::utcb_addr(), pager()).map_err(|_| "create")?;
        sc::thread_config(t, attr::PRIORITY, 30, 0).map_err(|_| "prio")?;
        sc::thread_config(t, attr::ALLOW, ThreadId::NIL.0, allow::REMOVE).map_err(|_| "allow")?;
        set(t, on)?;
        sc::thread_start(t, restricted as *const () as u64, rt::stack()).map_err(|_| "start")?;
        let (from, m) = receive(t, Timeout::ticks(ms(1000))).map_err(|_| "no report")?;
        let n = count(t);
        let refusals = sc::thread_info(t, attr::REFUSED).map_or(u64::MAX, |(v, _)| v);
        send(t, &Msg::default(), Timeout::ZERO).map_err(|_| "reply")?;
        let _ = sc::thread_delete(t);
        check(from == t, "report from the wrong thread")?;
        check(m.mr[0] == Error::NoPermission.encode(), "a send the allow list forbids was not refused")?;
        check((n > 0) == on, "the allowed call to a thread waiting for it did not take the fast path")?;
        Ok([m.mr[0], refusals, 0, 0, 0, 0, 0, 0])
    })
}

fn budget() -> TestResult {
    both(&[echo_id()], false, |on| {
        let b = spawn(me(), budget_caller, 20, ThreadId::NIL).map_err(|_| "spawn")?;
        set(b, on)?;
        sc::thread_config(b, attr::EXCEPTION_HANDLER, me().0, 0).map_err(|_| "handler")?;
        sc::thread_config(b, attr::BUDGET, ms(2), ms(10)).map_err(|_| "budget")?;
        let r = receive(b, Timeout::ticks(ms(200)));
        let n = count(b);
        let _ = sc::thread_delete(b);
        let (from, m) = r.map_err(|_| "no budget notification")?;
        check(m.tag().label() == label::BUDGET, "not a budget notification")?;
        check((n > 0) == on, "calls of a thread with budget left did not take the fast path")?;
        Ok([(from == b) as u64, m.mr[0], m.mr[1], 0, 0, 0, 0, 0])
    })
}

/// Runs the tests; returns the number of failures.
pub fn run(pager: ThreadId) -> u32 {
    DRIVER.store(me().0, SeqCst);
    PAGER.store(pager.0, SeqCst);
    let Ok(e) = spawn(ThreadId::NIL, echo, 40, pager) else { return 1 };
    ECHO.store(e.0, SeqCst);
    // Demand paging of the server happens here, not in the scenarios.
    let _ = call(e, &Msg::new(Tag::new(0, 60, 0), &[0; 6]));
    let tests: [crate::tests::Test; 9] = [
        ("fastpath_call_registers_same_as_general_path", registers),
        ("fastpath_call_utcb_words_same_as_general_path", utcb_words),
        ("fastpath_not_taken_partner_not_waiting", not_waiting),
        ("fastpath_not_taken_string_item", string),
        ("fastpath_not_taken_receive_timeout", receive_timeout),
        ("fastpath_taken_lower_priority_partner_nothing_between", lower_partner),
        ("fastpath_not_taken_ready_thread_above_partner", ready_above_partner),
        ("fastpath_refuses_what_the_allow_list_refuses", allow_list),
        ("fastpath_budget_charged_and_exhausted_as_general_path", budget),
    ];
    crate::tests::report(&tests)
}
