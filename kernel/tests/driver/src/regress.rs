//! Regression tests for the ways hostile user code crashed, hung or spied
//! on the kernel (issue 16), one per case, each reproducing the case as it
//! was found. Run by the in-guest suite after the IPC and memory tests.

use crate::tests::{budget_spinner, check, me, ms, report, settle, sleep, Test, TestResult, BUDGET_SPIN};
use abi::ipc::{label, map_item, rights, Fpage, Tag, Timeout};
use abi::sys::{self, attr};
use abi::syscall::{self as sc, receive, send, Msg};
use abi::{Error, ThreadId};
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use suite::rt::{self, same_page, spawn};
use user_rt::thread::NewThread;

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
    let nt_done = |n| settle(1000, || NT_FRESH_RAN.load(SeqCst) == n && NT_STEPS.load(SeqCst) == n);
    check(nt_done(1), "yield with NT set")?;
    // A receive with a short timeout while a fresh thread is ready.
    nt_pair(nt_receive)?;
    check(nt_done(2), "receive with NT set")?;
    // The other entries: a timer interrupt (time slice end) and an
    // exception from ring 3 with NT set.
    let s = nt_pair(nt_spin)?;
    sc::thread_config(s, attr::TIMESLICE, ms(1), 0).map_err(|_| "timeslice")?;
    check(nt_done(3), "preemption with NT set")?;
    let f = spawn(me(), nt_fault, 20, ThreadId::NIL).map_err(|_| "spawn faulter")?;
    let h = spawn(me(), nt_handler, 20, ThreadId::NIL).map_err(|_| "spawn handler")?;
    sc::thread_config(f, attr::EXCEPTION_HANDLER, h.0, 0).map_err(|_| "handler")?;
    check(settle(1000, || NT_STEPS.load(SeqCst) == 4), "exception with NT set")?;
    check(NT_SEEN_FLAGS.load(SeqCst) & NT != 0, "the exception message lost the thread's NT flag")
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
    NewThread::new(ThreadId::NIL, rt::utcb_addr(), pager, 40)
        .handler(handler)
        .start(0x1000_0000, 0x1000_0000)
        .map_err(|_| "start the faulting thread")
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

// ---- FPU/SSE state of a new owner ----

#[repr(C, align(16))]
struct FxArea([u8; 512]);

fn fxsave(a: &mut FxArea) {
    // SAFETY: fxsave64 writes 512 bytes to a 16-byte aligned buffer.
    unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) a.0.as_mut_ptr(), options(nostack)) };
}

const XMM_MARK: u64 = 0x5a5a_0000_1234_5678;
const DIRTY_MXCSR: u32 = 0x7f80;

/// Fills every FPU/SSE register with its own value, then blocks.
extern "C" fn fpu_dirtier() -> ! {
    let mxcsr = DIRTY_MXCSR;
    let fcw: u16 = 0x027f;
    // SAFETY: loads our own FPU/SSE registers; the kernel switches them.
    unsafe {
        core::arch::asm!(
            "movq xmm0, {v}", "add {v}, 1", "movq xmm1, {v}", "add {v}, 1", "movq xmm2, {v}", "add {v}, 1",
            "movq xmm3, {v}", "add {v}, 1", "movq xmm4, {v}", "add {v}, 1", "movq xmm5, {v}", "add {v}, 1",
            "movq xmm6, {v}", "add {v}, 1", "movq xmm7, {v}", "add {v}, 1", "movq xmm8, {v}", "add {v}, 1",
            "movq xmm9, {v}", "add {v}, 1", "movq xmm10, {v}", "add {v}, 1", "movq xmm11, {v}", "add {v}, 1",
            "movq xmm12, {v}", "add {v}, 1", "movq xmm13, {v}", "add {v}, 1", "movq xmm14, {v}", "add {v}, 1",
            "movq xmm15, {v}",
            "fninit", "fld1", "fldpi", "fldl2t", "fldl2e", "fldlg2", "fldln2", "fld1", "fldpi",
            "ldmxcsr [{m}]", "fldcw [{c}]",
            v = inout(reg) XMM_MARK => _, m = in(reg) &mxcsr, c = in(reg) &fcw, options(nostack),
        )
    };
    let _ = receive(tester(), Timeout::NEVER);
    let mut a = FxArea([0; 512]);
    fxsave(&mut a);
    let xmm = |i: usize| u64::from_le_bytes(a.0[160 + 16 * i..168 + 16 * i].try_into().unwrap());
    let kept = xmm(3) == XMM_MARK + 3 && xmm(7) == XMM_MARK + 7 && mxcsr_of(&a) == DIRTY_MXCSR;
    tell(&[kept as u64]);
    sc::thread_exit(0)
}

fn mxcsr_of(a: &FxArea) -> u32 {
    u32::from_le_bytes(a.0[24..28].try_into().unwrap())
}

/// Its first FPU instruction saves the state it was given; reports what
/// differs from the power-on state: 1 control/status/tags, 2 MXCSR, 4 an
/// x87 register, 8 an XMM register.
extern "C" fn fpu_newcomer() -> ! {
    let mut a = FxArea([0; 512]);
    fxsave(&mut a);
    let fcw = u16::from_le_bytes([a.0[0], a.0[1]]);
    let (fsw, ftw) = (u16::from_le_bytes([a.0[2], a.0[3]]), a.0[4]);
    let mut dirty = 0;
    if fcw != 0x037f || fsw != 0 || ftw != 0 {
        dirty |= 1;
    }
    if mxcsr_of(&a) != 0x1f80 {
        dirty |= 2;
    }
    if a.0[32..160].iter().any(|&b| b != 0) {
        dirty |= 4;
    }
    if a.0[160..416].iter().any(|&b| b != 0) {
        dirty |= 8;
    }
    tell(&[dirty]);
    sc::thread_exit(0)
}

fn fpu_new_owner_gets_clean_state() -> TestResult {
    let s = spawn(me(), fpu_dirtier, 40, ThreadId::NIL).map_err(|_| "spawn")?;
    // S holds the FPU and blocks; Y, in another space, takes it next.
    let y = spawn(ThreadId::NIL, fpu_newcomer, 40, ThreadId(PAGER.load(SeqCst))).map_err(|_| "spawn newcomer")?;
    let (_, m) = receive(y, Timeout::ticks(ms(100))).map_err(|_| "no report from the new FPU owner")?;
    send(s, &Msg::default(), Timeout::NEVER).map_err(|_| "wake")?;
    let (_, k) = receive(s, Timeout::ticks(ms(100))).map_err(|_| "no report from the first owner")?;
    if m.mr[0] != 0 {
        user_rt::println!("sigma0: the new FPU owner saw the previous owner's state (mask {:#x})", m.mr[0]);
        return Err("a new FPU owner was given another space's registers");
    }
    check(k.mr[0] == 1, "the first owner lost its FPU state")
}

// ---- I/O flexpages at the top of the port space ----

extern "C" fn io_receiver() -> ! {
    loop {
        sc::utcb().br[0] = Fpage::COMPLETE.0;
        let _ = receive(ThreadId::ANY, Timeout::NEVER);
    }
}

fn io_fpage_overflow_rejected() -> TestResult {
    let r = spawn(ThreadId::NIL, io_receiver, 40, ThreadId(PAGER.load(SeqCst))).map_err(|_| "spawn")?;
    // Port field 0xFFFF_0000, 2^16 ports: far outside the port space.
    let bad = Fpage((0xffff_0000u64 << 12) | (16 << 4) | 8);
    for grant in [false, true] {
        let m = Msg::new(Tag::new(0, 0, 2), &map_item(0, bad, grant));
        check(send(r, &m, Timeout::ticks(ms(100))) == Err(Error::InvalidArgument), "map item accepted")?;
    }
    check(sc::unmap(bad, false) == Err(Error::InvalidArgument), "UNMAP accepted")?;
    check(sc::unmap(bad, true) == Err(Error::InvalidArgument), "UNMAP of own ports accepted")?;
    // A well-formed one of ports this task holds maps (the top of the
    // port space is checked on the host, `abi::ipc` tests).
    let post = Msg::new(Tag::new(0, 0, 2), &map_item(0, Fpage::io(0x80, 0), false));
    check(send(r, &post, Timeout::ticks(ms(100))).is_ok(), "a port this task holds did not map")?;
    sc::thread_delete(r).map_err(|_| "delete")
}

// ---- Budget and period at their extremes ----

fn budget_with_longest_period() -> TestResult {
    let t = spawn(me(), budget_spinner, 20, ThreadId::NIL).map_err(|_| "spawn")?;
    sc::thread_config(t, attr::EXCEPTION_HANDLER, me().0, 0).map_err(|_| "handler")?;
    let r = sc::thread_config(t, attr::BUDGET, sys::MIN_TIMESLICE, u64::MAX);
    if r.is_err() {
        sc::thread_delete(t).map_err(|_| "delete")?;
        return Err("budget 10,000 with period u64::MAX refused");
    }
    let (from, m) = receive(t, Timeout::ticks(ms(200))).map_err(|_| "no budget notification")?;
    check(from == t && m.tag().label() == label::BUDGET, "wrong notification")?;
    check(m.mr[0] == sys::MIN_TIMESLICE && m.mr[1] == u64::MAX, "notification carries wrong budget/period")?;
    let at_note = BUDGET_SPIN.load(SeqCst);
    sleep(ms(5));
    let later = BUDGET_SPIN.load(SeqCst);
    sc::thread_delete(t).map_err(|_| "delete")?;
    check(m.mr[2] == u64::MAX, "next replenishment wrapped instead of saturating")?;
    check(later == at_note, "the thread ran again before its next period")
}

// ---- A timeout whose mantissa << exponent reaches 2^64 ----

extern "C" fn late_sender() -> ! {
    sleep(ms(5));
    tell(&[0x66]);
    sc::thread_exit(0)
}

fn huge_timeout_does_not_wrap() -> TestResult {
    let w = spawn(me(), late_sender, 20, ThreadId::NIL).map_err(|_| "spawn")?;
    // Mantissa 2, exponent 63: 2^64 ticks, i.e. years (not zero).
    let years = Timeout((63 << 26) | 2);
    let r = receive(w, years);
    check(r.is_ok_and(|(from, m)| from == w && m.mr[0] == 0x66), "the timeout expired at once")
}

// ---- `syscall` in the last two bytes of the user half ----

/// `mov rax, IPC; mov rdi, <tester>; xor esi, esi; mov edx, tag 0x77;
/// xor r10d, r10d` (a send with zero timeout), then `syscall`, ending at
/// the first non-canonical address.
const SEND_CODE: [u8; 29] = [
    0x48,
    0xc7,
    0xc0,
    sys::IPC as u8,
    0,
    0,
    0,
    0x48,
    0xbf,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0x31,
    0xf6,
    0xba,
    0,
    0,
    0x77,
    0,
    0x45,
    0x31,
    0xd2,
    0x0f,
    0x05,
];
const LAST_PAGE: u64 = abi::USER_END - 4096;
static CODE_FRAME: AtomicU64 = AtomicU64::new(0);

/// Pages the thread: its code page is the prepared frame, executable.
extern "C" fn last_page_pager() -> ! {
    rt::serve_loop(|_, m| {
        (m.tag().label() == label::PAGE_FAULT).then(|| {
            let addr = m.mr[0];
            if addr >= LAST_PAGE {
                let f = CODE_FRAME.load(SeqCst);
                let fp = Fpage::new(f, 12, rights::READ | rights::EXEC);
                Msg::new(Tag::new(0, 0, 2), &map_item(LAST_PAGE, fp, false))
            } else {
                same_page(addr)
            }
        })
    })
}

fn syscall_at_end_of_user_half() -> TestResult {
    let f = rt::any_frame().ok_or("no frame")?;
    let mut code = SEND_CODE;
    code[9..17].copy_from_slice(&me().0.to_le_bytes());
    let at = 4096 - code.len() as u64;
    for (i, &b) in code.iter().enumerate() {
        // SAFETY: `f` is a free frame sigma0 took for itself; its space maps
        // it at its own address on first touch.
        unsafe { core::ptr::write_volatile((f + at + i as u64) as *mut u8, b) };
    }
    CODE_FRAME.store(f, SeqCst);
    let pager = spawn(me(), last_page_pager, 45, ThreadId::NIL).map_err(|_| "spawn pager")?;
    let x = NewThread::new(ThreadId::NIL, rt::utcb_addr(), pager, 20)
        .handler(me())
        .start(LAST_PAGE + at, 0)
        .map_err(|_| "start the thread on the last page")?;
    let first = receive(x, Timeout::ticks(ms(100)));
    let second = receive(x, Timeout::ticks(ms(2)));
    sc::thread_delete(x).map_err(|_| "delete")?;
    sc::thread_delete(pager).map_err(|_| "delete pager")?;
    let (_, m) = first.map_err(|_| "no message from the thread")?;
    check(m.tag().label() != 0x77, "the syscall ran although it cannot return")?;
    check(m.tag().label() == label::EXCEPTION && m.mr[0] == 13 && m.mr[1] == 0, "not a #GP exception message")?;
    check(m.mr[2] == abi::USER_END - 2, "the exception does not point at the syscall")?;
    check(second.is_err(), "a second message followed the exception")
}

/// Runs the regression tests; returns the number of failures. `pager`
/// serves sigma0's own pages to threads in other spaces.
pub fn run(pager: ThreadId) -> u32 {
    TESTER.store(me().0, SeqCst);
    PAGER.store(pager.0, SeqCst);
    let tests: [Test; 8] = [
        ("regress_nt_flag_from_ring3", nt_flag_from_ring3),
        ("regress_pager_dies_with_fault_queued", pager_dies_with_fault_queued),
        ("regress_pager_dies_after_taking_fault", pager_dies_after_taking_fault),
        ("regress_fpu_new_owner_gets_clean_state", fpu_new_owner_gets_clean_state),
        ("regress_io_fpage_overflow_rejected", io_fpage_overflow_rejected),
        ("regress_budget_with_longest_period", budget_with_longest_period),
        ("regress_huge_timeout_does_not_wrap", huge_timeout_does_not_wrap),
        ("regress_syscall_at_end_of_user_half", syscall_at_end_of_user_half),
    ];
    report(&tests)
}
