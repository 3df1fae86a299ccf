//! In-guest tests of the kernel's user-visible mechanisms: IPC, scheduling,
//! budgets, interrupts and exceptions as IPC, argument checks. Each prints
//! one line (`test NAME ... ok` or `... FAILED: why`); the host runner
//! counts them.

use abi::ipc::{label, string_item, Tag, Timeout};
use abi::sys::{self, attr};
use abi::syscall::{self as sc, call, receive, reply_wait, send, Msg};
use abi::{Error, ThreadId};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use suite::rt::{self, spawn, wait_good, PAGER_FAULTS};
use user_rt::println;

pub type TestResult = Result<(), &'static str>;
pub type Test = (&'static str, fn() -> TestResult);

pub fn check(ok: bool, why: &'static str) -> TestResult {
    if ok {
        Ok(())
    } else {
        Err(why)
    }
}

pub fn me() -> ThreadId {
    sc::myself().0
}

pub fn ms(n: u64) -> u64 {
    sc::myself().2 / 1000 * n
}

/// Blocks for `ticks` TSC ticks (a receive nobody can satisfy).
pub fn sleep(ticks: u64) {
    let _ = receive(me(), Timeout::ticks(ticks));
}

/// Sleeps a millisecond at a time until `done` holds or `limit_ms` have
/// passed; says whether it held. For outcomes that other threads reach in
/// their own time: under plain TCG on a loaded host a fixed sleep can end
/// before the guest has run the few instructions the outcome needs.
pub fn settle(limit_ms: u64, done: impl Fn() -> bool) -> bool {
    for _ in 0..limit_ms {
        if done() {
            return true;
        }
        sleep(ms(1));
    }
    done()
}

static PAGER: AtomicU64 = AtomicU64::new(0);
static ECHO: AtomicU64 = AtomicU64::new(0);

fn pager() -> ThreadId {
    ThreadId(PAGER.load(SeqCst))
}

/// Echo server (runs in its own address space, on demand-paged memory):
/// replies with the received register words, the UTCB words plus one, and
/// label + 1.
extern "C" fn echo_server() -> ! {
    let (mut from, mut m) = wait_good();
    loop {
        let t = m.tag();
        let u = sc::utcb();
        for w in u.mr.iter_mut().take(t.untyped() + 1).skip(7) {
            *w += 1;
        }
        let reply = Msg { tag: Tag::new(t.label() + 1, t.untyped(), 0).0, mr: m.mr };
        (from, m) = match reply_wait(from, &reply) {
            Ok(x) => x,
            // A partner's malformed message fails for both sides; wait for
            // the next good one.
            Err(_) => wait_good(),
        };
    }
}

fn echo() -> ThreadId {
    ThreadId(ECHO.load(SeqCst))
}

fn call_register_message() -> TestResult {
    let m = Msg::new(Tag::new(0x42, 6, 0), &[1, 2, 3, 4, 5, 6]);
    let r = call(echo(), &m).map_err(|_| "call failed")?;
    check(r.tag().label() == 0x43 && r.tag().untyped() == 6, "wrong reply tag")?;
    check(r.mr == [1, 2, 3, 4, 5, 6], "register words not echoed")?;
    check(PAGER_FAULTS.load(SeqCst) > 0, "server ran without page faults: not demand paged")
}

fn call_utcb_message() -> TestResult {
    let m = Msg::new(Tag::new(7, 60, 0), &[11, 12, 13, 14, 15, 16]);
    let u = sc::utcb();
    for i in 7..=60 {
        u.mr[i] = 0x1000 + i as u64;
    }
    let r = call(echo(), &m).map_err(|_| "call failed")?;
    check(r.tag().untyped() == 60 && r.mr[5] == 16, "wrong reply")?;
    // The server adds one to every UTCB word it got: both directions seen.
    check((7..=60).all(|i| sc::utcb().mr[i] == 0x1001 + i as u64), "UTCB words not carried both ways")
}

static mut STRING_BUF: [u8; 8192] = [0; 8192];
static STRING_SUM: AtomicU64 = AtomicU64::new(0);

/// Receives one string item into its buffer and replies with a checksum.
extern "C" fn string_receiver() -> ! {
    let buf = (&raw const STRING_BUF) as u64;
    // Touch the buffer so that it is mapped (faults inside the kernel's
    // copy are resolved by the pager issue, kernel core II).
    for p in (0..8192).step_by(4096) {
        // SAFETY: reads our own static.
        unsafe { core::ptr::read_volatile((buf + p) as *const u8) };
    }
    loop {
        let u = sc::utcb();
        u.br[1] = buf + 1000;
        u.br[2] = 4096;
        let Ok((from, m)) = receive(ThreadId::ANY, Timeout::NEVER) else { continue };
        let t = m.tag();
        let (len, at) = (m.mr[t.untyped()] >> 32, m.mr[t.untyped() + 1]);
        let mut sum = 0u64;
        for i in 0..len {
            // SAFETY: the kernel copied `len` bytes to `at`, inside our buffer.
            sum = sum.wrapping_mul(31).wrapping_add(unsafe { *((at + i) as *const u8) } as u64);
        }
        STRING_SUM.store(sum, SeqCst);
        let _ = send(from, &Msg::new(Tag::new(0, 3, 0), &[len, at, sum]), Timeout::ZERO);
    }
}

fn string_item_copy() -> TestResult {
    let recv = spawn(ThreadId::NIL, string_receiver, 40, pager()).map_err(|_| "spawn")?;
    let mut data = [0u8; 4096];
    let mut want = 0u64;
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
        want = want.wrapping_mul(31).wrapping_add(*b as u64);
    }
    let item = string_item(data.as_ptr() as u64, 4096);
    let r = call(recv, &Msg::new(Tag::new(1, 1, 2), &[99, item[0], item[1]])).map_err(|_| "call failed")?;
    check(r.mr[0] == 4096, "wrong length received")?;
    check(r.mr[1] == (&raw const STRING_BUF) as u64 + 1000, "string not placed in the receive buffer")?;
    check(r.mr[2] == want, "string bytes differ")?;
    // Too long for the receiver's buffer: an error for the sender.
    let big = [0u8; 5000];
    let item = string_item(big.as_ptr() as u64, 5000);
    let r = call(recv, &Msg::new(Tag::new(1, 1, 2), &[99, item[0], item[1]]));
    check(r == Err(Error::MessageOverflow), "overlong string accepted")?;
    sc::thread_delete(recv).map_err(|_| "delete")
}

/// Source and destination of the faulting string copy: pages that neither
/// side has touched before the IPC (mapped by the pager during the copy).
#[repr(C, align(4096))]
struct Pages([u8; 3 * 4096]);
static mut FAULT_SRC: Pages = Pages([0; 3 * 4096]);
static mut FAULT_DST: Pages = Pages([0; 3 * 4096]);
static FAULT_SUM: AtomicU64 = AtomicU64::new(0);

/// Receives one string into FAULT_DST (never touched by this space).
extern "C" fn faulting_receiver() -> ! {
    let u = sc::utcb();
    u.br[1] = (&raw const FAULT_DST) as u64 + 100;
    u.br[2] = 8192;
    let (from, m) = wait_good();
    let t = m.tag();
    let (len, at) = (m.mr[t.untyped()] >> 32, m.mr[t.untyped() + 1]);
    let mut sum = 0u64;
    for i in 0..len {
        // SAFETY: the kernel copied `len` bytes to `at`.
        sum = sum.wrapping_mul(31).wrapping_add(unsafe { *((at + i) as *const u8) } as u64);
    }
    let _ = send(from, &Msg::new(Tag::new(0, 2, 0), &[len, sum]), Timeout::ZERO);
    sc::thread_exit(0)
}

/// Sends FAULT_SRC (never touched by this space) as a string item.
extern "C" fn faulting_sender() -> ! {
    let to = ThreadId(FAULT_SUM.load(SeqCst));
    let item = string_item((&raw const FAULT_SRC) as u64 + 50, 8000);
    let r = call(to, &Msg::new(Tag::new(1, 0, 2), &item));
    let report = match r {
        Ok(m) if m.mr[0] == 8000 => m.mr[1],
        _ => 0,
    };
    let _ = send(ThreadId(ORDER.load(SeqCst)), &Msg::new(Tag::new(0, 1, 0), &[report]), Timeout::NEVER);
    sc::thread_exit(0)
}

fn string_item_copy_with_page_faults() -> TestResult {
    // Fill the source in our own space; the sender's space gets the same
    // frames from the pager, but only when the kernel's copy faults there.
    // SAFETY: only this thread writes the source, before the sender runs.
    let p = &raw mut FAULT_SRC;
    // SAFETY: as above.
    let src = unsafe { &mut *p };
    let mut want = 0u64;
    for (i, b) in src.0.iter_mut().enumerate() {
        *b = (i * 13 + 1) as u8;
    }
    for &b in &src.0[50..8050] {
        want = want.wrapping_mul(31).wrapping_add(b as u64);
    }
    let recv = spawn(ThreadId::NIL, faulting_receiver, 40, pager()).map_err(|_| "spawn receiver")?;
    FAULT_SUM.store(recv.0, SeqCst);
    sleep(ms(2));
    let sender = spawn(ThreadId::NIL, faulting_sender, 40, pager()).map_err(|_| "spawn sender")?;
    let (from, m) = receive(sender, Timeout::ticks(ms(2000))).map_err(|_| "no report from the sender")?;
    check(from == sender, "report from the wrong thread")?;
    check(m.mr[0] == want, "string arrived wrong or the IPC failed")?;
    // Neither thread touched its buffer before the IPC: faults there came
    // from the kernel's copy, in both spaces.
    let (s, d) = ((&raw const FAULT_SRC) as u64, (&raw const FAULT_DST) as u64);
    check(rt::faulted_in(s, s + 3 * 4096), "the copy did not fault on the sender's side")?;
    check(rt::faulted_in(d, d + 3 * 4096), "the copy did not fault on the receiver's side")
}

static ORDER: AtomicU64 = AtomicU64::new(0);

extern "C" fn sender_a() -> ! {
    let _ = send(ThreadId(ORDER.load(SeqCst)), &Msg::new(Tag::new(0xa, 0, 0), &[]), Timeout::NEVER);
    sc::thread_exit(0)
}

extern "C" fn sender_b() -> ! {
    let _ = send(ThreadId(ORDER.load(SeqCst)), &Msg::new(Tag::new(0xb, 0, 0), &[]), Timeout::NEVER);
    sc::thread_exit(0)
}

fn open_and_closed_receive() -> TestResult {
    ORDER.store(me().0, SeqCst);
    // Lower priority than us: they block sending while we sleep.
    let a = spawn(me(), sender_a, 20, ThreadId::NIL).map_err(|_| "spawn a")?;
    let b = spawn(me(), sender_b, 20, ThreadId::NIL).map_err(|_| "spawn b")?;
    sleep(ms(5));
    // A sent first, but a closed receive from B takes B's message.
    let (from, m) = receive(b, Timeout::ZERO).map_err(|_| "closed receive found nothing")?;
    check(from == b && m.tag().label() == 0xb, "closed receive took the wrong sender")?;
    let (from, m) = receive(ThreadId::ANY, Timeout::ZERO).map_err(|_| "open receive found nothing")?;
    check(from == a && m.tag().label() == 0xa, "open receive took the wrong sender")
}

fn timeouts() -> TestResult {
    // Zero: fails at once when no partner is ready.
    check(receive(ThreadId::ANY, Timeout::ZERO).map(|_| ()) == Err(Error::Timeout), "zero receive timeout")?;
    // Relative: returns Timeout, and not before the time has passed.
    let d = ms(2);
    let t0 = sc::myself().1;
    let r = receive(ThreadId::ANY, Timeout::ticks(d));
    let t1 = sc::myself().1;
    check(r.map(|_| ()) == Err(Error::Timeout), "relative receive timeout did not expire")?;
    check(t1 - t0 >= d, "relative timeout returned early")?;
    // Zero and relative send to a thread that never receives.
    let sleeper = spawn(me(), sleeper, 20, ThreadId::NIL).map_err(|_| "spawn")?;
    sleep(ms(1));
    check(send(sleeper, &Msg::default(), Timeout::ZERO) == Err(Error::Timeout), "zero send timeout")?;
    let r = send(sleeper, &Msg::default(), Timeout::ticks(d));
    check(r == Err(Error::Timeout), "relative send timeout did not expire")?;
    // Never: a receive that a later message completes (see the call tests)
    // and one that a deletion aborts.
    sc::thread_delete(sleeper).map_err(|_| "delete")
}

extern "C" fn sleeper() -> ! {
    loop {
        let _ = receive(me(), Timeout::NEVER);
    }
}

fn stale_thread_id() -> TestResult {
    let t = spawn(me(), sleeper, 20, ThreadId::NIL).map_err(|_| "spawn")?;
    sc::thread_delete(t).map_err(|_| "delete")?;
    check(send(t, &Msg::default(), Timeout::ZERO) == Err(Error::InvalidThread), "IPC to a deleted thread")?;
    check(sc::thread_delete(t) == Err(Error::InvalidThread), "delete of a deleted thread")?;
    // The slot is reused with a new version; the old id stays invalid.
    let t2 = spawn(me(), sleeper, 20, ThreadId::NIL).map_err(|_| "spawn 2")?;
    check(t2.index() == t.index() && t2 != t, "slot not reused with a new version")?;
    check(sc::thread_config(t, attr::PRIORITY, 5, 0) == Err(Error::InvalidThread), "stale id reached the new thread")?;
    sc::thread_delete(t2).map_err(|_| "delete 2")
}

static HIGH_RAN: AtomicBool = AtomicBool::new(false);
static LOW_RAN: AtomicBool = AtomicBool::new(false);

extern "C" fn high_prio() -> ! {
    loop {
        if receive(ThreadId::ANY, Timeout::NEVER).is_ok() {
            HIGH_RAN.store(true, SeqCst);
        }
    }
}

extern "C" fn low_prio() -> ! {
    loop {
        if receive(ThreadId::ANY, Timeout::NEVER).is_ok() {
            LOW_RAN.store(true, SeqCst);
        }
    }
}

fn priority_preemption() -> TestResult {
    let high = spawn(me(), high_prio, 40, ThreadId::NIL).map_err(|_| "spawn high")?;
    let low = spawn(me(), low_prio, 20, ThreadId::NIL).map_err(|_| "spawn low")?;
    // Let both reach their receive.
    sleep(ms(2));
    send(low, &Msg::default(), Timeout::ZERO).map_err(|_| "send low")?;
    check(!LOW_RAN.load(SeqCst), "a lower-priority thread ran before the sender continued")?;
    send(high, &Msg::default(), Timeout::ZERO).map_err(|_| "send high")?;
    check(HIGH_RAN.load(SeqCst), "the higher-priority receiver did not run first")?;
    sleep(ms(2));
    check(LOW_RAN.load(SeqCst), "the lower-priority thread never ran")?;
    sc::thread_delete(high).map_err(|_| "delete")?;
    sc::thread_delete(low).map_err(|_| "delete")
}

static SPIN: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

extern "C" fn spinner0() -> ! {
    loop {
        SPIN[0].fetch_add(1, SeqCst);
    }
}

extern "C" fn spinner1() -> ! {
    loop {
        SPIN[1].fetch_add(1, SeqCst);
    }
}

fn round_robin() -> TestResult {
    let a = spawn(me(), spinner0, 10, ThreadId::NIL).map_err(|_| "spawn")?;
    let b = spawn(me(), spinner1, 10, ThreadId::NIL).map_err(|_| "spawn")?;
    for t in [a, b] {
        sc::thread_config(t, attr::TIMESLICE, ms(1), 0).map_err(|_| "timeslice")?;
    }
    sleep(ms(30));
    let (x, y) = (SPIN[0].load(SeqCst), SPIN[1].load(SeqCst));
    sc::thread_delete(a).map_err(|_| "delete")?;
    sc::thread_delete(b).map_err(|_| "delete")?;
    check(x > 0 && y > 0, "one of two equal-priority spinners never ran")
}

/// Counts while it runs (the budget tests watch whether it does).
pub static BUDGET_SPIN: AtomicU64 = AtomicU64::new(0);

pub extern "C" fn budget_spinner() -> ! {
    loop {
        BUDGET_SPIN.fetch_add(1, SeqCst);
    }
}

fn budget_exhaustion() -> TestResult {
    let t = spawn(me(), budget_spinner, 20, ThreadId::NIL).map_err(|_| "spawn")?;
    sc::thread_config(t, attr::EXCEPTION_HANDLER, me().0, 0).map_err(|_| "handler")?;
    sc::thread_config(t, attr::BUDGET, ms(2), ms(10)).map_err(|_| "budget")?;
    let (from, m) = receive(t, Timeout::ticks(ms(200))).map_err(|_| "no budget notification")?;
    check(from == t && m.tag().label() == label::BUDGET, "wrong notification")?;
    check(m.mr[0] == ms(2) && m.mr[1] == ms(10), "notification carries wrong budget/period")?;
    let at_note = BUDGET_SPIN.load(SeqCst);
    // While exhausted it must not run; after replenishment it must.
    let (from, _) = receive(t, Timeout::ticks(ms(200))).map_err(|_| "no second notification")?;
    check(from == t, "second notification from the wrong thread")?;
    let later = BUDGET_SPIN.load(SeqCst);
    sc::thread_delete(t).map_err(|_| "delete")?;
    check(later > at_note, "thread did not resume in its next period")
}

/// Runs the PIT on line 0 at 1 kHz (rate generator), through the ports the
/// description grants the driver; the line stays masked until a handler
/// attaches.
fn start_pit_1khz() -> TestResult {
    check(user_rt::request_ports(0x40, 2), "the root task did not grant the PIT ports")?;
    let divisor: u16 = 1193;
    for (port, v) in [(0x43u16, 0x34u8), (0x40, divisor as u8), (0x40, (divisor >> 8) as u8)] {
        // SAFETY: PIT channel 0 programming through ports this task holds;
        // nothing else uses the PIT.
        unsafe { core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nostack, nomem)) };
    }
    Ok(())
}

fn irq_as_ipc() -> TestResult {
    start_pit_1khz()?;
    let line = 0;
    sc::irq_attach(line, me()).map_err(|_| "attach")?;
    let src = ThreadId::irq(line as u32);
    let (from, m) = receive(src, Timeout::ticks(ms(100))).map_err(|_| "no interrupt IPC")?;
    check(from == src && m.tag().label() == label::IRQ && m.mr[0] == line, "wrong interrupt message")?;
    // Not acknowledged: the line stays masked.
    check(receive(src, Timeout::ticks(ms(10))).map(|_| ()) == Err(Error::Timeout), "line not masked before the reply")?;
    // Replying unmasks it; the next tick arrives.
    send(src, &Msg::default(), Timeout::ZERO).map_err(|_| "ack")?;
    receive(src, Timeout::ticks(ms(100))).map_err(|_| "no interrupt after the reply")?;
    sc::irq_attach(line, ThreadId::NIL).map_err(|_| "detach")?;
    check(sc::irq_attach(99, me()) == Err(Error::InvalidArgument), "bad line accepted")
}

static FIXED_UP: AtomicBool = AtomicBool::new(false);

extern "C" fn faulter() -> ! {
    // SAFETY: ud2 raises #UD; the exception handler skips it.
    unsafe { core::arch::asm!("ud2") };
    FIXED_UP.store(true, SeqCst);
    sc::thread_exit(0)
}

fn exception_ipc_fixup() -> TestResult {
    let t = sc::thread_create(me(), rt::utcb_addr(), ThreadId::NIL).map_err(|_| "create")?;
    sc::thread_config(t, attr::EXCEPTION_HANDLER, me().0, 0).map_err(|_| "handler")?;
    sc::thread_config(t, attr::PRIORITY, 40, 0).map_err(|_| "prio")?;
    sc::thread_start(t, faulter as *const () as u64, rt::stack()).map_err(|_| "start")?;
    let (from, m) = receive(t, Timeout::ticks(ms(100))).map_err(|_| "no exception IPC")?;
    let t0 = m.tag();
    check(from == t && t0.label() == label::EXCEPTION && m.mr[0] == 6, "not a #UD exception message")?;
    check(t0.untyped() == 21, "exception message lacks the registers")?;
    let (ip, sp, fl) = (m.mr[2], m.mr[3], m.mr[4]);
    send(t, &Msg::new(Tag::new(0, 3, 0), &[ip + 2, sp, fl]), Timeout::ZERO).map_err(|_| "reply")?;
    check(FIXED_UP.load(SeqCst), "thread did not resume after the fix-up")
}

/// Every syscall with out-of-range or garbage arguments returns an error
/// code and the kernel keeps running.
fn garbage_arguments() -> TestResult {
    let e = |r: u64| Error::decode(r).err();
    let kaddr = 0xffff_ffff_8010_0000u64;
    // A thread the driver controls, for the control calls' argument checks.
    let child = sc::thread_create(me(), rt::utcb_addr(), ThreadId::NIL).map_err(|_| "create")?;
    let cases: [(u64, [u64; 4], Error); 18] = [
        (sys::DEBUG_PRINT, [kaddr, 8, 0, 0], Error::BadAddress),
        (sys::DEBUG_PRINT, [0x10, 1 << 40, 0, 0], Error::InvalidArgument),
        (sys::DEBUG_PRINT, [u64::MAX - 2, 8, 0, 0], Error::BadAddress),
        (sys::IPC, [0xdead_beef_0000_0005, 0, 0, 0], Error::InvalidThread),
        (sys::THREAD_CREATE, [0, 0x1234, 0, 0], Error::InvalidArgument),
        (sys::THREAD_CREATE, [0, kaddr, 0, 0], Error::InvalidArgument),
        (sys::THREAD_CREATE, [0x77_0000_0003, 0x6000_0000_0000, 0, 0], Error::InvalidThread),
        (sys::THREAD_CREATE, [me().0, abi::ROOT_UTCB, 0, 0], Error::InvalidArgument),
        (sys::THREAD_START, [child.0, kaddr, 0x1000, 0], Error::InvalidArgument),
        (sys::THREAD_START, [me().0, 0x1000, 0x1000, 0], Error::NoPermission),
        (sys::THREAD_INFO, [child.0, 99, 0, 0], Error::InvalidArgument),
        (sys::THREAD_START, [12345, 0x1000, 0x1000, 0], Error::InvalidThread),
        (sys::THREAD_CONFIG, [me().0, 99, 0, 0], Error::InvalidArgument),
        (sys::THREAD_CONFIG, [me().0, attr::PRIORITY, 64, 0], Error::InvalidArgument),
        (sys::THREAD_CONFIG, [me().0, attr::BUDGET, 5, 1], Error::InvalidArgument),
        (sys::THREAD_DELETE, [u64::MAX, 0, 0, 0], Error::InvalidThread),
        (sys::IRQ_ATTACH, [2, me().0, 0, 0], Error::InvalidArgument),
        (sys::COUNT + 7, [1, 2, 3, 4], Error::NoSuchCall),
    ];
    for (nr, a, want) in cases {
        if e(sc::syscall4(nr, a[0], a[1], a[2], a[3]).0) != Some(want) {
            println!("test-driver: syscall {nr} with {a:#x?} did not return {want:?}");
            return Err("a bad argument was not rejected with the right error");
        }
    }
    sc::thread_delete(child).map_err(|_| "delete")?;
    // IPC with a malformed tag and a bad map item.
    let bad_tag = Msg { tag: Tag::new(0, 63, 2).0, mr: [0; 6] };
    check(call(echo(), &bad_tag) == Err(Error::MessageOverflow), "oversized tag accepted")?;
    let bad_item = Msg::new(Tag::new(0, 0, 2), &[abi::ipc::item::MAP, 0x1234]);
    check(call(echo(), &bad_item) == Err(Error::InvalidArgument), "malformed map item accepted")?;
    // An unprivileged thread may not use the control calls.
    let t = spawn(me(), unprivileged, 40, ThreadId::NIL).map_err(|_| "spawn")?;
    let (_, m) = receive(t, Timeout::ticks(ms(100))).map_err(|_| "no report from the unprivileged thread")?;
    check(m.mr[0] == 1, "unprivileged thread was allowed a privileged call")
}

extern "C" fn unprivileged() -> ! {
    let denied = [sys::THREAD_CREATE, sys::THREAD_DELETE, sys::THREAD_START, sys::THREAD_CONFIG, sys::IRQ_ATTACH]
        .iter()
        .all(|&nr| Error::decode(sc::syscall4(nr, me().0, 0x5555_0000_0000, 0, 0).0) == Err(Error::NoPermission));
    let _ = send(ThreadId(ORDER.load(SeqCst)), &Msg::new(Tag::new(0, 1, 0), &[denied as u64]), Timeout::NEVER);
    sc::thread_exit(0)
}

static FUZZ_DONE: AtomicU64 = AtomicU64::new(0);

/// Random system calls from an unprivileged thread in a space of its own:
/// every one must come back (IPC timeouts are forced to zero so nothing
/// blocks; THREAD_EXIT is skipped so the thread lives to report).
extern "C" fn fuzzer() -> ! {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut errors = 0u64;
    for _ in 0..FUZZ_CALLS {
        let nr = next() % (sys::COUNT + 4);
        if nr == sys::THREAD_EXIT || nr == sys::DEBUG_PRINT {
            continue;
        }
        let (a, b, c) = (next(), next(), next());
        let timeouts = if nr == sys::IPC { 0 } else { next() };
        if Error::decode(sc::syscall4(nr, a, b, c, timeouts).0).is_err() {
            errors += 1;
        }
    }
    FUZZ_DONE.store(errors + 1, SeqCst);
    let _ = send(ThreadId(ORDER.load(SeqCst)), &Msg::new(Tag::new(0, 1, 0), &[errors]), Timeout::NEVER);
    sc::thread_exit(0)
}

const FUZZ_CALLS: u64 = 5000;

fn random_syscalls_survived() -> TestResult {
    let t = spawn(ThreadId::NIL, fuzzer, 30, pager()).map_err(|_| "spawn")?;
    let (from, m) = receive(t, Timeout::ticks(ms(5000))).map_err(|_| "fuzzing thread never reported")?;
    check(from == t, "report from the wrong thread")?;
    // Almost every random call is refused; some (YIELD, MYSELF) succeed.
    check(m.mr[0] > FUZZ_CALLS / 2, "random calls were accepted")?;
    // The kernel still works: a call round trip.
    call(echo(), &Msg::new(Tag::new(1, 1, 0), &[5])).map(|_| ()).map_err(|_| "kernel broken after fuzzing")
}

static FPU_OK: AtomicU64 = AtomicU64::new(0);

extern "C" fn fpu_user() -> ! {
    let mine = 0x1111_2222_3333_4444u64 ^ me().0;
    // SAFETY: SSE register use in user mode; the kernel switches the state.
    unsafe { core::arch::asm!("movq xmm3, {}", in(reg) mine) };
    sleep(ms(3));
    let back: u64;
    // SAFETY: as above.
    unsafe { core::arch::asm!("movq {}, xmm3", out(reg) back) };
    FPU_OK.fetch_add((back == mine) as u64, SeqCst);
    sc::thread_exit(0)
}

fn fpu_state_per_thread() -> TestResult {
    for _ in 0..2 {
        spawn(me(), fpu_user, 40, ThreadId::NIL).map_err(|_| "spawn")?;
    }
    sleep(ms(20));
    check(FPU_OK.load(SeqCst) == 2, "an SSE register lost its value across a switch")
}

/// Runs the suite; returns the number of failures.
pub fn run() -> u32 {
    ORDER.store(me().0, SeqCst);
    let pager = spawn(me(), rt::pager, 50, ThreadId::NIL).expect("pager thread");
    PAGER.store(pager.0, SeqCst);
    let echo = spawn(ThreadId::NIL, echo_server, 40, pager).expect("echo server");
    ECHO.store(echo.0, SeqCst);
    let tests: [Test; 15] = [
        ("ipc_call_register_message_across_spaces", call_register_message),
        ("ipc_call_utcb_message_60_words", call_utcb_message),
        ("ipc_string_item_copy", string_item_copy),
        ("ipc_string_item_copy_with_page_faults", string_item_copy_with_page_faults),
        ("ipc_open_and_closed_receive", open_and_closed_receive),
        ("ipc_timeouts_zero_relative_never", timeouts),
        ("stale_thread_id_rejected", stale_thread_id),
        ("priority_preemption_on_ipc", priority_preemption),
        ("round_robin_within_a_priority", round_robin),
        ("budget_exhaustion_notifies_and_resumes", budget_exhaustion),
        ("irq_delivered_as_ipc_unmasked_on_reply", irq_as_ipc),
        ("exception_ipc_fixup_resumes_thread", exception_ipc_fixup),
        ("garbage_syscall_arguments_rejected", garbage_arguments),
        ("random_syscalls_from_unprivileged_thread", random_syscalls_survived),
        ("fpu_state_switched_lazily_per_thread", fpu_state_per_thread),
    ];
    let failed = report(&tests)
        + crate::fastpath::run(pager)
        + crate::memtests::run()
        + crate::regress::run(pager)
        + crate::control::run();
    let ran = RAN.load(SeqCst);
    println!("test-driver: {} of {ran} suite tests passed", ran - failed as u64);
    failed
}

static RAN: AtomicU64 = AtomicU64::new(0);

/// Runs `tests`, prints one line each; returns the number that failed.
pub fn report(tests: &[Test]) -> u32 {
    let mut failed = 0;
    for (name, t) in tests {
        RAN.fetch_add(1, SeqCst);
        match t() {
            Ok(()) => println!("test {name} ... ok"),
            Err(why) => {
                println!("test {name} ... FAILED: {why}");
                failed += 1;
            }
        }
    }
    failed
}
