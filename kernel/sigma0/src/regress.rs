//! Regression tests for the ways hostile user code crashed, hung or spied
//! on the kernel (issue 16), one per case, each reproducing the case as it
//! was found. Run by the in-guest suite after the IPC and memory tests.

use crate::rt::{self, spawn};
use crate::tests::{check, me, ms, report, sleep, Test, TestResult};
use abi::ipc::{label, Tag, Timeout};
use abi::sys::attr;
use abi::syscall::{self as sc, receive, send, Msg};
use abi::{Error, ThreadId};
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

static TESTER: AtomicU64 = AtomicU64::new(0);
static PAGER: AtomicU64 = AtomicU64::new(0);

fn tester() -> ThreadId {
    ThreadId(TESTER.load(SeqCst))
}

/// Reports `words` to the test thread (blocking until it takes them).
fn tell(words: &[u64]) {
    let _ = send(tester(), &Msg::new(Tag::new(0, words.len(), 0), words), Timeout::NEVER);
}

// ---- RFLAGS.NT from ring 3 ----

/// RFLAGS.NT (nested task): ring 3 may set it with `popfq`.
const NT: u64 = 0x4000;

fn set_nt() {
    // SAFETY: flips NT in our own RFLAGS; user code never runs `iretq`,
    // the only instruction NT changes in long mode.
    unsafe { core::arch::asm!("pushfq", "or qword ptr [rsp], {nt}", "popfq", nt = const NT) };
}

fn clear_nt() {
    // SAFETY: as for `set_nt`.
    unsafe { core::arch::asm!("pushfq", "and qword ptr [rsp], {mask}", "popfq", mask = const !NT as i32) };
}

static NT_FRESH_RAN: AtomicU64 = AtomicU64::new(0);
static NT_STEPS: AtomicU64 = AtomicU64::new(0);
static NT_SEEN_FLAGS: AtomicU64 = AtomicU64::new(0);

/// Runs for the first time after an NT-flagged thread entered the kernel:
/// the kernel resumes it with `iretq` (its frame is not a syscall's).
extern "C" fn nt_fresh() -> ! {
    NT_FRESH_RAN.fetch_add(1, SeqCst);
    sc::thread_exit(0)
}

extern "C" fn nt_yield() -> ! {
    set_nt();
    sc::yield_now();
    clear_nt();
    NT_STEPS.fetch_add(1, SeqCst);
    sc::thread_exit(0)
}

extern "C" fn nt_receive() -> ! {
    set_nt();
    let r = receive(me(), Timeout::ticks(ms(1)));
    clear_nt();
    NT_STEPS.fetch_add((r.map(|_| ()) == Err(Error::Timeout)) as u64, SeqCst);
    sc::thread_exit(0)
}

extern "C" fn nt_spin() -> ! {
    set_nt();
    while NT_FRESH_RAN.load(SeqCst) < 3 {
        core::hint::spin_loop();
    }
    clear_nt();
    NT_STEPS.fetch_add(1, SeqCst);
    sc::thread_exit(0)
}

extern "C" fn nt_fault() -> ! {
    set_nt();
    // SAFETY: `ud2` raises #UD; the exception handler skips it.
    unsafe { core::arch::asm!("ud2") };
    NT_STEPS.fetch_add(1, SeqCst);
    sc::thread_exit(0)
}

/// The exception handler of `nt_fault`, started but never run when the
/// fault arrives: the kernel resumes it with `iretq`.
extern "C" fn nt_handler() -> ! {
    if let Ok((from, m)) = receive(ThreadId::ANY, Timeout::NEVER) {
        NT_SEEN_FLAGS.store(m.mr[4], SeqCst);
        let _ = send(from, &Msg::new(Tag::new(0, 3, 0), &[m.mr[2] + 2, m.mr[3], m.mr[4]]), Timeout::ZERO);
    }
    sc::thread_exit(0)
}

/// Equal-priority pair: `first` runs, sets NT and enters the kernel;
/// `fresh` has never run and is next.
fn nt_pair(first: extern "C" fn() -> !) -> Result<ThreadId, &'static str> {
    let a = spawn(me(), first, 20, ThreadId::NIL).map_err(|_| "spawn")?;
    spawn(me(), nt_fresh, 20, ThreadId::NIL).map_err(|_| "spawn fresh")?;
    Ok(a)
}

fn nt_flag_from_ring3() -> TestResult {
    NT_FRESH_RAN.store(0, SeqCst);
    NT_STEPS.store(0, SeqCst);
    // YIELD to a thread of the same priority that has never run.
    nt_pair(nt_yield)?;
    sleep(ms(5));
    check(NT_FRESH_RAN.load(SeqCst) == 1 && NT_STEPS.load(SeqCst) == 1, "yield with NT set")?;
    // A receive with a short timeout while a fresh thread is ready.
    nt_pair(nt_receive)?;
    sleep(ms(5));
    check(NT_FRESH_RAN.load(SeqCst) == 2 && NT_STEPS.load(SeqCst) == 2, "receive with NT set")?;
    // The other entries: a timer interrupt (time slice end) and an
    // exception from ring 3 with NT set.
    let s = nt_pair(nt_spin)?;
    sc::thread_config(s, attr::TIMESLICE, ms(1), 0).map_err(|_| "timeslice")?;
    sleep(ms(10));
    check(NT_FRESH_RAN.load(SeqCst) == 3 && NT_STEPS.load(SeqCst) == 3, "preemption with NT set")?;
    let f = spawn(me(), nt_fault, 20, ThreadId::NIL).map_err(|_| "spawn faulter")?;
    let h = spawn(me(), nt_handler, 20, ThreadId::NIL).map_err(|_| "spawn handler")?;
    sc::thread_config(f, attr::EXCEPTION_HANDLER, h.0, 0).map_err(|_| "handler")?;
    sleep(ms(5));
    check(NT_SEEN_FLAGS.load(SeqCst) & NT != 0, "the exception message lost the thread's NT flag")?;
    check(NT_STEPS.load(SeqCst) == 4, "exception with NT set")
}

// ---- A pager that dies with faults queued on it ----

static DYING: AtomicU64 = AtomicU64::new(0);

/// A pager that waits for the tester's word and exits without serving.
extern "C" fn dying_pager() -> ! {
    let from = if DYING.load(SeqCst) == 0 { tester() } else { ThreadId::ANY };
    let _ = receive(from, Timeout::NEVER);
    sc::thread_exit(0)
}

/// Exception handler for the queued case: waits for the tester's go, then
/// receives as a server would and reports what it found.
extern "C" fn queued_handler() -> ! {
    let _ = receive(tester(), Timeout::NEVER);
    // A closed receive from someone else walks the sender queue: it must
    // end, with nothing found.
    let r1 = receive(tester(), Timeout::ZERO).map(|_| ()) == Err(Error::Timeout);
    let r2 = receive(ThreadId::ANY, Timeout::ZERO);
    let (from, vector) =
        r2.map(|(f, m)| (f.0, if m.tag().label() == label::EXCEPTION { m.mr[0] } else { 0 })).unwrap_or((0, 0));
    let r3 = receive(ThreadId::ANY, Timeout::ZERO).map(|_| ()) == Err(Error::Timeout);
    tell(&[r1 as u64, from, vector, r3 as u64]);
    sc::thread_exit(0)
}

/// Exception handler for the case where the pager took the fault: counts
/// the exception messages the faulting thread sends, then replies.
extern "C" fn receiving_handler() -> ! {
    let (from, m) = rt::wait_good();
    let first = m.tag().label() == label::EXCEPTION && m.mr[0] == 14;
    let again = receive(ThreadId::ANY, Timeout::ticks(ms(5))).is_ok();
    // Label 1: no fix-up; the thread waits for this reply, so it is taken.
    let replied = send(from, &Msg::new(Tag::new(1, 0, 0), &[]), Timeout::ZERO).is_ok();
    tell(&[first as u64, again as u64, replied as u64, from.0]);
    sc::thread_exit(0)
}

/// A thread in a fresh empty space whose first instruction fetch faults.
fn faulting_thread(pager: ThreadId, handler: ThreadId) -> Result<ThreadId, &'static str> {
    let a = sc::thread_create(ThreadId::NIL, rt::utcb_addr(), pager).map_err(|_| "create")?;
    sc::thread_config(a, attr::EXCEPTION_HANDLER, handler.0, 0).map_err(|_| "handler")?;
    sc::thread_config(a, attr::PRIORITY, 40, 0).map_err(|_| "prio")?;
    sc::thread_start(a, 0x1000_0000, 0x1000_0000).map_err(|_| "start")?;
    Ok(a)
}

fn pager_dies_with_fault_queued() -> TestResult {
    // P and H each wait in a closed receive (from us).
    DYING.store(0, SeqCst);
    let p = spawn(me(), dying_pager, 45, ThreadId::NIL).map_err(|_| "spawn pager")?;
    let h = spawn(me(), queued_handler, 45, ThreadId::NIL).map_err(|_| "spawn handler")?;
    let a = faulting_thread(p, h)?;
    sleep(ms(2));
    // A's page fault waits on P; P exits. A's fault goes to H instead.
    send(p, &Msg::default(), Timeout::NEVER).map_err(|_| "tell pager")?;
    sleep(ms(2));
    send(h, &Msg::default(), Timeout::NEVER).map_err(|_| "tell handler")?;
    let (_, m) = receive(h, Timeout::ticks(ms(100))).map_err(|_| "no report from the handler")?;
    sc::thread_delete(a).map_err(|_| "delete")?;
    check(m.mr[0] == 1, "closed receive on the handler did not end empty")?;
    check(m.mr[1] == a.0 && m.mr[2] == 14, "the handler did not get the page fault as an exception")?;
    check(m.mr[3] == 1, "the exception arrived twice")
}

fn pager_dies_after_taking_fault() -> TestResult {
    // P takes A's page fault (open receive) and exits without replying; H
    // waits in an open receive.
    DYING.store(1, SeqCst);
    let p = spawn(me(), dying_pager, 45, ThreadId::NIL).map_err(|_| "spawn pager")?;
    let h = spawn(me(), receiving_handler, 45, ThreadId::NIL).map_err(|_| "spawn handler")?;
    let a = faulting_thread(p, h)?;
    let (_, m) = receive(h, Timeout::ticks(ms(100))).map_err(|_| "no report from the handler")?;
    sc::thread_delete(a).map_err(|_| "delete")?;
    check(m.mr[0] == 1 && m.mr[3] == a.0, "the handler did not get the page fault as an exception")?;
    check(m.mr[1] == 0, "the exception arrived twice")?;
    check(m.mr[2] == 1, "the thread did not wait for the handler's reply")
}

/// Runs the regression tests; returns the number of failures. `pager`
/// serves sigma0's own pages to threads in other spaces.
pub fn run(pager: ThreadId) -> u32 {
    TESTER.store(me().0, SeqCst);
    PAGER.store(pager.0, SeqCst);
    let tests: [Test; 3] = [
        ("regress_nt_flag_from_ring3", nt_flag_from_ring3),
        ("regress_pager_dies_with_fault_queued", pager_dies_with_fault_queued),
        ("regress_pager_dies_after_taking_fault", pager_dies_after_taking_fault),
    ];
    report(&tests)
}
