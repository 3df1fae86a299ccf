//! The fuzz task's work (issue 16): the hardware-free generator and oracle
//! of the `fuzz` crate drive an unprivileged and a privileged fuzzing
//! thread, each in an address space of its own (paged with this task's own
//! pages); the task's main thread is their checker and exception handler.
//! With `keep` it goes on after a failure, to count the distinct ones.
//!
//! Calls are numbered from 0 across both threads, in batches. After each
//! batch the checker has the kernel check its own invariants (the test
//! kernel's `KTEST` call), pings a sentinel thread in a space of its own,
//! and prints a progress line. A wrong result, an unexpected exception,
//! FPU registers that change across a call or a new thread that sees
//! another's FPU state fail the run with the seed and the call number; a
//! kernel crash or hang the host reads off the progress word (the number
//! of the call being made, in a frame whose physical address is printed
//! at the start).

use abi::ipc::{label, map_item, rights, Fpage, Tag, Timeout};
use abi::sys::ktest;
use abi::syscall::{self as sc, receive, send, Msg};
use abi::{Error, ThreadId};
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use fuzz::exceptions::{KINDS, NONE};
use fuzz::model::{self, Key, Model, Op, Outcome};
use fuzz::{Call, Case, Fuzzer, Layout};
use suite::rt::{self, same_page, spawn};
use user_rt::println;
use user_rt::thread::NewThread;

fn me() -> ThreadId {
    sc::myself().0
}

/// Calls per batch of one fuzzing thread.
const BATCH: u64 = 500;
/// The fuzzing threads: 0 unprivileged, 1 privileged (with the rights to
/// control threads and route interrupts, and this MCP).
const P_MCP: u64 = 50;
/// The privileged fuzzer's rights: what the fuzz task holds (its
/// description's `control` and `irq`; the PMC right is not one a
/// description gives), so the most it may pass on.
const P_RIGHTS: u64 = abi::sys::rights::CONTROL | abi::sys::rights::IRQ;
const FUZZERS: usize = 2;

/// Where the progress frame is mapped in the fuzzing threads' spaces.
const PROGRESS_VA: u64 = 0x0000_0f00_0000_0000;
/// Never mapped: their pager refuses faults here.
const REFUSED: u64 = 0x0000_2000_0000_0000;
const CHILD_UTCBS: u64 = 0x0000_3000_0000_0000;
const PROBE_UTCB: u64 = 0x0000_3800_0000_0000;
/// UTCBs of the threads made to exhaust the kernel's tables and pool, each
/// in a top-level slot of its own (so each costs three page tables).
const EXHAUST_UTCBS: u64 = 0x0000_4000_0000_0000;

// Messages between the checker and the fuzzing threads (labels).
const GO: u64 = 0xf0; // MR1 first call number, MR2 count
const DONE: u64 = 0xf1;
const FAIL: u64 = 0xf2; // MR1 call number

static SEED: AtomicU64 = AtomicU64::new(0);
static TRACE: AtomicU64 = AtomicU64::new(u64::MAX);
/// Keep going after a failure (to count the distinct ones).
static KEEP: AtomicU64 = AtomicU64::new(0);
static CHECKER: AtomicU64 = AtomicU64::new(0);
static STALE: AtomicU64 = AtomicU64::new(0);
static PROGRESS_FRAME: AtomicU64 = AtomicU64::new(0);
static PAGER: AtomicU64 = AtomicU64::new(0);

/// Per fuzzing thread: the exception it announced (kind + 1, 0 = none),
/// where to resume after it, and what the checker saw (vector + 1, with
/// [`MISMATCH`] when it was not an acceptable one).
static EXPECT: [AtomicU64; FUZZERS] = [const { AtomicU64::new(0) }; FUZZERS];
static RESUME_IP: [AtomicU64; FUZZERS] = [const { AtomicU64::new(0) }; FUZZERS];
static RESUME_SP: [AtomicU64; FUZZERS] = [const { AtomicU64::new(0) }; FUZZERS];
static SEEN: [AtomicU64; FUZZERS] = [const { AtomicU64::new(0) }; FUZZERS];
const MISMATCH: u64 = 1 << 32;

/// A buffer of the fuzzing threads' (part of this image, so faults in it
/// are resolved; read-only, so what a string copy reads stays the same).
#[repr(C, align(4096))]
struct Buf([u8; BUF_LEN as usize]);
const BUF_LEN: u64 = 80 * 1024;
static BUF: Buf = Buf(buf_bytes());

const fn buf_bytes() -> [u8; BUF_LEN as usize] {
    let mut b = [0u8; BUF_LEN as usize];
    let mut i = 0;
    while i < b.len() {
        b[i] = (i as u8).wrapping_mul(31) ^ (i >> 8) as u8;
        i += 1;
    }
    b
}

/// The partner's string buffer (written by the kernel's string copies).
#[repr(C, align(4096))]
struct PeerBuf([u8; PEER_BUF_LEN as usize]);
const PEER_BUF_LEN: u64 = 72 * 1024;
static mut PEER_BUF: PeerBuf = PeerBuf([0; PEER_BUF_LEN as usize]);
/// Where the partner's map windows are (16 MiB; nothing else of it is
/// there). It flushes them every [`PEER_FLUSH`] messages: what an
/// unprivileged sender maps there takes nodes of the mapping database, one
/// pool for all tasks (filling it makes everyone's page faults fail).
const PEER_WINDOW: u64 = 0x0000_6800_0000_0000;
const PEER_FLUSH: u64 = 8;
static PEER: AtomicU64 = AtomicU64::new(0);
/// The partner's account of what it received: result, tag, MR1..MR6,
/// and a hash of the first string item's bytes where they landed.
static PEER_REPORT: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];
// Partner commands (labels).
const P_SETUP: u64 = 0xb1; // MR1..3 br[0..3], MR4 flush the string buffer first
const P_READY: u64 = 0xb2;
const P_DONE: u64 = 0xb3;

fn checker() -> ThreadId {
    ThreadId(CHECKER.load(SeqCst))
}

// ---- the fuzzing threads' pager ----

fn image() -> core::ops::Range<u64> {
    extern "C" {
        static __ehdr_start: u8;
        static _end: u8;
    }
    (&raw const __ehdr_start) as u64..((&raw const _end) as u64).next_multiple_of(4096)
}

/// Pages of this image (the same page of this task's space) and the progress
/// frame; every other fault is refused, so it reaches the exception handler.
extern "C" fn fuzz_pager() -> ! {
    rt::serve_loop(|_, m| {
        (m.tag().label() == label::PAGE_FAULT).then(|| {
            let addr = m.mr[0] & !0xfff;
            if image().contains(&addr) {
                same_page(addr)
            } else if addr == PROGRESS_VA {
                let f = PROGRESS_FRAME.load(SeqCst);
                Msg::new(
                    Tag::new(0, 0, 2),
                    &map_item(PROGRESS_VA, Fpage::new(f, 12, rights::READ | rights::WRITE), false),
                )
            } else {
                Msg::default()
            }
        })
    })
}

/// Answers every message with its first word plus one, from a space of
/// its own: proof that the kernel still schedules and delivers.
extern "C" fn sentinel() -> ! {
    rt::serve_loop(|_, m| Some(Msg::new(Tag::new(0, 1, 0), &[m.mr[0] + 1])))
}

// ---- the fuzzing threads ----

/// Makes `c` with the RFLAGS bits of `c.flags` set for the `syscall`
/// alone; returns `rax`.
fn raw_call(c: &Call) -> u64 {
    let rax: u64;
    // SAFETY: a system call with arbitrary arguments: the kernel checks
    // them; every register it may change is an output here, and the
    // caller's RFLAGS are restored right after (DF, AC, NT included).
    unsafe {
        core::arch::asm!(
            "pushfq",
            "push qword ptr [rsp]",
            "or [rsp], {flags}",
            "popfq",
            "syscall",
            "popfq",
            flags = in(reg) c.flags,
            inlateout("rax") c.nr => rax,
            inlateout("rdi") c.rdi => _,
            inlateout("rsi") c.rsi => _,
            inlateout("rdx") c.rdx => _,
            inlateout("r10") c.r10 => _,
            inlateout("r8") c.mr[0] => _,
            inlateout("r9") c.mr[1] => _,
            inlateout("r12") c.mr[2] => _,
            inlateout("r13") c.mr[3] => _,
            inlateout("r14") c.mr[4] => _,
            inlateout("r15") c.mr[5] => _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    rax
}

fn pattern(i: usize) -> u64 {
    0x0123_4567_0000_0000 ^ ((i as u64 + 1) << 56)
}

/// Loads XMM0-15 with this thread's pattern.
fn load_pattern(i: usize) {
    // SAFETY: SSE registers are this thread's (the kernel switches them).
    unsafe {
        core::arch::asm!(
            "movq xmm0, {p}", "inc {p}", "movq xmm1, {p}", "inc {p}", "movq xmm2, {p}", "inc {p}",
            "movq xmm3, {p}", "inc {p}", "movq xmm4, {p}", "inc {p}", "movq xmm5, {p}", "inc {p}",
            "movq xmm6, {p}", "inc {p}", "movq xmm7, {p}", "inc {p}", "movq xmm8, {p}", "inc {p}",
            "movq xmm9, {p}", "inc {p}", "movq xmm10, {p}", "inc {p}", "movq xmm11, {p}", "inc {p}",
            "movq xmm12, {p}", "inc {p}", "movq xmm13, {p}", "inc {p}", "movq xmm14, {p}", "inc {p}",
            "movq xmm15, {p}",
            p = inout(reg) pattern(i) => _, options(nostack),
        )
    }
}

/// Do XMM0-15 still hold this thread's pattern?
fn pattern_intact(i: usize) -> bool {
    let diff: u64;
    // SAFETY: reads SSE registers only.
    unsafe {
        core::arch::asm!(
            "xor {d}, {d}",
            "movq {t}, xmm0", "xor {t}, {p}", "or {d}, {t}", "inc {p}",
            "movq {t}, xmm1", "xor {t}, {p}", "or {d}, {t}", "inc {p}",
            "movq {t}, xmm2", "xor {t}, {p}", "or {d}, {t}", "inc {p}",
            "movq {t}, xmm3", "xor {t}, {p}", "or {d}, {t}", "inc {p}",
            "movq {t}, xmm4", "xor {t}, {p}", "or {d}, {t}", "inc {p}",
            "movq {t}, xmm5", "xor {t}, {p}", "or {d}, {t}", "inc {p}",
            "movq {t}, xmm6", "xor {t}, {p}", "or {d}, {t}", "inc {p}",
            "movq {t}, xmm7", "xor {t}, {p}", "or {d}, {t}", "inc {p}",
            "movq {t}, xmm8", "xor {t}, {p}", "or {d}, {t}", "inc {p}",
            "movq {t}, xmm9", "xor {t}, {p}", "or {d}, {t}", "inc {p}",
            "movq {t}, xmm10", "xor {t}, {p}", "or {d}, {t}", "inc {p}",
            "movq {t}, xmm11", "xor {t}, {p}", "or {d}, {t}", "inc {p}",
            "movq {t}, xmm12", "xor {t}, {p}", "or {d}, {t}", "inc {p}",
            "movq {t}, xmm13", "xor {t}, {p}", "or {d}, {t}", "inc {p}",
            "movq {t}, xmm14", "xor {t}, {p}", "or {d}, {t}", "inc {p}",
            "movq {t}, xmm15", "xor {t}, {p}", "or {d}, {t}",
            p = inout(reg) pattern(i) => _, t = out(reg) _, d = out(reg) diff, options(nostack),
        )
    }
    diff == 0
}

/// Runs instructions that must fault; resumes at the end (the checker
/// replies with the recorded IP and SP).
macro_rules! raise {
    ($i:expr, [$($insn:literal),*] $(, [$($after:literal),*])?) => {
        // SAFETY: each sequence faults (or, where allowed, does nothing);
        // the checker resumes the thread at label 2 with the stack pointer
        // recorded first; every register the sequence changes is declared.
        unsafe {
            core::arch::asm!(
                "lea {t}, [rip + 2f]",
                "mov [{ip}], {t}",
                "mov [{sp}], rsp",
                $($insn,)*
                "2:",
                $($($after,)*)?
                t = out(reg) _,
                ip = in(reg) RESUME_IP[$i].as_ptr(),
                sp = in(reg) RESUME_SP[$i].as_ptr(),
                out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            )
        }
    };
}

/// Raises exception kind `k` (`fuzz::exceptions::KINDS` order).
fn raise(i: usize, k: usize) {
    match k {
        0 => raise!(i, ["xor edx, edx", "xor ecx, ecx", "div ecx"]),
        1 => raise!(i, ["mov eax, 0x80000000", "cdq", "mov ecx, -1", "idiv ecx"]),
        2 => raise!(i, [".byte 0xf1"]),
        3 => raise!(i, ["int3"]),
        4 => raise!(i, [".byte 0xcd, 0x03"]),
        5 => raise!(i, [".byte 0xcd, 0x04"]),
        6 => raise!(i, [".byte 0xce"]),
        7 => raise!(i, ["ud2"]),
        8 => raise!(i, [".byte 0x0f, 0xb9, 0xc0"]),
        9 => raise!(i, [".byte 0xf0, 0x90"]),
        10 => raise!(i, [".byte 0xc5, 0xf8, 0x77"]),
        11 => raise!(i, ["xor ecx, ecx", "xor eax, eax", "xor edx, edx", ".byte 0x0f, 0x01, 0xd1"]),
        12 => raise!(i, [".byte 0x06"]),
        13 => raise!(i, ["hlt"]),
        14 => raise!(i, ["cli"]),
        15 => raise!(i, ["in al, 0x80"]),
        16 => raise!(i, ["out 0x80, al"]),
        17 => raise!(i, ["mov rax, cr0"]),
        18 => raise!(i, ["xor eax, eax", "mov cr3, rax"]),
        19 => raise!(i, ["xor ecx, ecx", "rdmsr"]),
        20 => raise!(i, ["xor ecx, ecx", "wrmsr"]),
        21 => raise!(i, ["lgdt [rsp]"]),
        22 => raise!(i, ["lidt [rsp]"]),
        23 => raise!(i, ["clts"]),
        24 => raise!(i, ["invlpg [rsp]"]),
        25 => raise!(i, ["wbinvd"]),
        26 => raise!(i, ["sysretq"]),
        27 => raise!(i, ["swapgs"]),
        28 => raise!(i, ["xor ecx, ecx", "rdpmc"]),
        29 => raise!(i, ["int 0x80"]),
        30 => raise!(i, [".byte 0xcd, 0x0e"]),
        31 => raise!(i, ["int 0x20"]),
        32 => raise!(i, ["int 0xff"]),
        33 => raise!(i, ["movabs rax, 0x8000000000000000", "mov rax, [rax]"]),
        34 => raise!(i, ["mov eax, 0x10", "mov ss, ax"]),
        35 => raise!(i, ["push 0", "push 0", "push 0", "push 0", "push 0", "iretq"]),
        36 => raise!(i, ["movabs rsp, 0x8000000000001000", "push rax"]),
        37 => raise!(i, ["movabs rax, 0xffffffff80100000", "mov rax, [rax]"]),
        38 => raise!(i, ["movabs rax, 0x7fffffffe000", "mov [rax], rax"]),
        39 => raise!(i, ["movabs rax, 0x7fffffffe000", "jmp rax"]),
        40 => raise!(i, ["lea rax, [rip]", "mov byte ptr [rax], 0x90"]),
        41 => raise!(
            i,
            ["fninit", "push 0x37b", "fldcw [rsp]", "add rsp, 8", "fldz", "fld1", "fdiv st(0), st(1)", "fwait"],
            ["fnclex", "fninit"]
        ),
        42 => raise!(
            i,
            [
                "push 0x1d80",
                "ldmxcsr [rsp]",
                "add rsp, 8",
                "xorps xmm0, xmm0",
                "mov eax, 0x3f800000",
                "movd xmm1, eax",
                "divss xmm1, xmm0"
            ],
            ["push 0x1f80", "ldmxcsr [rsp]", "add rsp, 8"]
        ),
        _ => raise!(
            i,
            ["pushfq", "or qword ptr [rsp], 0x40000", "popfq", "mov rax, [rsp + 1]"],
            ["pushfq", "and qword ptr [rsp], -0x40001", "popfq"]
        ),
    }
}

static PROBE_RESULT: AtomicU64 = AtomicU64::new(0);
/// The probe's stack (one probe at a time).
#[repr(C, align(16))]
struct Stack([u8; 8192]);
static mut PROBE_STACK: Stack = Stack([0; 8192]);

/// A new thread's first FPU instruction saves the state it was given;
/// records what differs from the power-on state (1 control/status/tags,
/// 2 MXCSR, 4 x87 registers, 8 XMM registers) and waits to be deleted.
extern "C" fn probe() -> ! {
    #[repr(C, align(16))]
    struct Fx([u8; 512]);
    let mut a = Fx([0; 512]);
    // SAFETY: fxsave64 writes 512 bytes to a 16-byte aligned buffer.
    unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) a.0.as_mut_ptr(), options(nostack)) };
    let w16 = |o: usize| u16::from_le_bytes([a.0[o], a.0[o + 1]]);
    let mut dirty = 0;
    if w16(0) != 0x037f || w16(2) != 0 || a.0[4] != 0 {
        dirty |= 1;
    }
    if u32::from_le_bytes([a.0[24], a.0[25], a.0[26], a.0[27]]) != 0x1f80 {
        dirty |= 2;
    }
    if a.0[32..160].iter().any(|&b| b != 0) {
        dirty |= 4;
    }
    if a.0[160..416].iter().any(|&b| b != 0) {
        dirty |= 8;
    }
    PROBE_RESULT.store(dirty | 0x100, SeqCst);
    loop {
        let _ = receive(me(), Timeout::NEVER);
    }
}

/// Starts an FPU probe and waits for its verdict (it runs at once: its
/// priority is above ours). `Err` with the dirty mask if it saw another
/// thread's state; Ok if it is clean or could not be created (tables full).
fn fpu_probe() -> Result<(), u64> {
    PROBE_RESULT.store(0, SeqCst);
    let Ok(t) = NewThread::new(ThreadId::NIL, PROBE_UTCB, ThreadId(PAGER.load(SeqCst)), 45)
        .handler(checker())
        .start_fn(probe, (&raw const PROBE_STACK) as u64 + 8192 - 8)
    else {
        return Ok(());
    };
    let r = PROBE_RESULT.load(SeqCst);
    let _ = sc::thread_delete(t);
    match r {
        0x100 => Ok(()),
        // 0: the probe did not get to its end.
        r => Err(r),
    }
}

/// Creates threads, in new spaces and then in those, until the kernel
/// refuses (tables full or pool empty), deletes them all, and checks that
/// the pool and the object counts are back where they were.
fn exhaust() -> Result<(), &'static str> {
    const MAX: usize = 160;
    let level = || (sc::ktest(ktest::POOL_FREE, 0, 0), sc::ktest(ktest::OBJECTS, 0, 0));
    let before = level();
    let mut made = [ThreadId::NIL; MAX];
    let mut n = 0;
    let mut refusals = 0;
    let utcb = |k: usize| EXHAUST_UTCBS + ((k as u64 % 128) << 39) + ((k as u64 / 128) << 12);
    while n < MAX && refusals < 2 {
        // New spaces until refused, then threads in the first one.
        let space = if refusals == 0 { ThreadId::NIL } else { made[0] };
        match sc::thread_create(space, utcb(n), ThreadId::NIL) {
            Ok(t) => {
                made[n] = t;
                n += 1;
            }
            Err(Error::NoResources | Error::OutOfMemory) if n > 0 => refusals += 1,
            Err(_) => return Err("creating threads failed with the wrong error"),
        }
    }
    for &t in &made[..n] {
        sc::thread_delete(t).map_err(|_| "deleting a thread failed")?;
    }
    if refusals < 2 {
        return Err("the kernel never refused a thread");
    }
    if level() != before {
        println!("fuzz: pool and objects {before:?} before, {:?} after {n} threads", level());
        return Err("the pool or the object count did not come back");
    }
    Ok(())
}

/// One fuzzing thread: waits for a batch, runs it, reports.
fn fuzz_main(i: usize) -> ! {
    let me = me();
    let layout = Layout {
        buf: (&raw const BUF) as u64,
        utcb: sc::utcb().self_ptr,
        refused: REFUSED,
        child_utcbs: CHILD_UTCBS,
        readable: BUF_LEN,
        peer_buf: (&raw const PEER_BUF) as u64,
        peer_buf_len: PEER_BUF_LEN,
        peer_window: PEER_WINDOW,
    };
    let seed = SEED.load(SeqCst);
    let (held, mcp) = if i == 1 { (P_RIGHTS, P_MCP) } else { (0, 0) };
    let mut f = Fuzzer::new(seed, i as u64, me, held, mcp, layout, checker(), ThreadId(STALE.load(SeqCst)));
    let progress = PROGRESS_VA as *mut u64;
    loop {
        let Ok((_, go)) = receive(checker(), Timeout::NEVER) else { continue };
        let (first, count) = (go.mr[0], go.mr[1]);
        load_pattern(i);
        let mut failed = None;
        // Every fourth batch of the privileged thread starts by running
        // the kernel out of threads, spaces and pool.
        if i == 1 && (first / (FUZZERS as u64 * BATCH)).is_multiple_of(4) {
            if let Err(why) = exhaust() {
                println!("fuzz: FAILED seed {seed} call {first}: exhaustion: {why}");
                if KEEP.load(SeqCst) == 0 {
                    failed = Some(first);
                }
            }
        }
        for n in (first..first + count).take_while(|_| failed.is_none()) {
            // SAFETY: the pager maps the progress frame here (again, should
            // a flush have taken it).
            unsafe { core::ptr::write_volatile(progress, n | (i as u64) << 60) };
            let case = f.next_case();
            if n >= TRACE.load(SeqCst) {
                println!("fuzz: call {n}: {case:x?}");
            }
            let failed_here = match case {
                Case::Syscall { call, expect } => {
                    let rax = raw_call(&call);
                    f.record(rax);
                    if n >= TRACE.load(SeqCst) {
                        println!("fuzz: call {n} returned {rax:#x}");
                    }
                    let name = fuzz::calls::name(call.nr);
                    if !expect.admits(rax) {
                        println!("fuzz: call {n}: {call:x?} returned {rax:#x}");
                        let got = match Error::decode(rax) {
                            Ok(_) => Ok(()),
                            Err(e) => Err(e),
                        };
                        println!("fuzz: FAILED seed {seed} call {n}: wrong result: {name} returned {got:?}, expected {expect}");
                        true
                    } else if !pattern_intact(i) {
                        println!("fuzz: FAILED seed {seed} call {n}: XMM registers changed across {name}");
                        load_pattern(i);
                        true
                    } else {
                        false
                    }
                }
                Case::Exception(k) => {
                    SEEN[i].store(0, SeqCst);
                    EXPECT[i].store(k as u64 + 1, SeqCst);
                    raise(i, k);
                    EXPECT[i].store(0, SeqCst);
                    load_pattern(i);
                    let seen = SEEN[i].load(SeqCst);
                    let kind = &KINDS[k];
                    if seen & MISMATCH != 0 {
                        let (v, e) = (seen as u8 as i64 - 1, seen >> 40);
                        println!(
                            "fuzz: FAILED seed {seed} call {n}: wrong exception: {} raised vector {v} error {e:#x}",
                            kind.name
                        );
                        true
                    } else if seen == 0 && !kind.vectors.contains(&NONE) {
                        println!("fuzz: FAILED seed {seed} call {n}: no exception: {}", kind.name);
                        true
                    } else {
                        false
                    }
                }
                Case::Transfer(t) => match transfer(&t, 0) {
                    None => {
                        let intact = pattern_intact(i);
                        if !intact {
                            println!("fuzz: FAILED seed {seed} call {n}: XMM registers changed across a message");
                            load_pattern(i);
                        }
                        !intact
                    }
                    Some(why) => {
                        println!("fuzz: FAILED seed {seed} call {n}: {}", why.as_str());
                        true
                    }
                },
                Case::FpuProbe => {
                    match fpu_probe() {
                        Ok(()) => false,
                        Err(mask) => {
                            println!("fuzz: FAILED seed {seed} call {n}: FPU state leaked into a new thread (mask {mask:#x})");
                            true
                        }
                    }
                }
            };
            if failed_here && KEEP.load(SeqCst) == 0 {
                failed = Some(n);
                break;
            }
        }
        let m = match failed {
            Some(n) => Msg::new(Tag::new(FAIL, 1, 0), &[n]),
            None => Msg::new(Tag::new(DONE, 0, 0), &[]),
        };
        let _ = send(checker(), &m, Timeout::NEVER);
    }
}

extern "C" fn unprivileged() -> ! {
    fuzz_main(0)
}

extern "C" fn privileged() -> ! {
    fuzz_main(1)
}

// ---- IPC transfers to a partner in another space ----

/// A short line of text, formatted without allocating.
struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Line {
    fn of(args: core::fmt::Arguments) -> Line {
        let mut l = Line { buf: [0; 160], len: 0 };
        let _ = core::fmt::write(&mut l, args);
        l
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// FNV-1a of the `len` bytes `byte(i)`.
fn hash(len: u64, byte: impl Fn(u64) -> u8) -> u64 {
    (0..len).fold(0xcbf2_9ce4_8422_2325u64, |h, i| (h ^ byte(i) as u64).wrapping_mul(0x100_0000_01b3))
}

fn read_byte(addr: u64) -> u8 {
    // SAFETY: the caller's readable memory (faults resolved by its pager).
    unsafe { core::ptr::read_volatile(addr as *const u8) }
}

/// Waits for a setup, then for one message from the unprivileged fuzzing
/// thread with those buffers, and reports what arrived.
extern "C" fn partner() -> ! {
    let mut n = 0u64;
    loop {
        let Ok((from, m)) = receive(ThreadId::ANY, Timeout::NEVER) else { continue };
        if m.tag().label() != P_SETUP {
            continue;
        }
        let u = sc::utcb();
        u.br[0] = m.mr[0];
        u.br[1] = m.mr[1];
        u.br[2] = m.mr[2];
        n += 1;
        if n.is_multiple_of(PEER_FLUSH) {
            let _ = sc::unmap(Fpage::new(PEER_WINDOW, 24, rights::ALL), true);
            let _ = sc::unmap(Fpage::new(0, 16, rights::ALL), true);
        }
        if m.mr[3] != 0 {
            let base = (&raw const PEER_BUF) as u64;
            let _ = sc::unmap(Fpage::new(base, 12, rights::ALL), true);
            let _ = sc::unmap(Fpage::new(base + 0x1_0000, 12, rights::ALL), true);
        }
        // Ready (the sender waits for this), then its message.
        let (rax, got) =
            match sc::ipc(from, from, Timeout::ZERO, Timeout::NEVER, &Msg::new(Tag::new(P_READY, 0, 0), &[])) {
                Ok((_, got)) => (0, got),
                Err(e) => (e.encode(), Msg::default()),
            };
        let t = got.tag();
        let string = (t.untyped() + 1..=t.words().min(6))
            .step_by(2)
            .map(|i| (got.mr[i - 1], got.mr[i]))
            .find(|(w0, _)| w0 & abi::ipc::item::KIND_MASK == abi::ipc::item::STRING);
        let h = string.map_or(0, |(w0, at)| hash(w0 >> 32, |i| read_byte(at + i)));
        let report = [rax, got.tag, got.mr[0], got.mr[1], got.mr[2], got.mr[3], got.mr[4], got.mr[5], h];
        for (slot, w) in PEER_REPORT.iter().zip(report) {
            slot.store(w, SeqCst);
        }
        let _ = send(from, &Msg::new(Tag::new(P_DONE, 0, 0), &[]), Timeout::NEVER);
    }
}

/// Does `h` (the partner's hash of its buffer, for the first string's
/// length) match the strings sent? Each string overwrites the buffer from
/// its start.
fn strings_landed(t: &fuzz::calls::Transfer, h: u64) -> bool {
    let s = &t.strings[..t.nstrings];
    let Some(&(_, first)) = s.first() else { return h == 0 };
    let byte = |j: u64| s.iter().rev().find(|&&(_, len)| len > j).map_or(0, |&(src, _)| read_byte(src + j));
    h == hash(first, byte)
}

/// Sends `t`'s message to the partner; what went wrong, if anything (a
/// line for the failure report).
fn transfer(t: &fuzz::calls::Transfer, flags: u64) -> Option<Line> {
    let peer = ThreadId(PEER.load(SeqCst));
    let setup = Msg::new(Tag::new(P_SETUP, 4, 0), &[t.br[0], t.br[1], t.br[2], t.flush_receiver as u64]);
    if !sc::call(peer, &setup).is_ok_and(|r| r.tag().label() == P_READY) {
        return Some(Line::of(format_args!("the partner did not get ready")));
    }
    if t.flush_sender {
        let _ = sc::unmap(Fpage::new((&raw const BUF) as u64, 12, rights::ALL), true);
    }
    let call = Call {
        nr: abi::sys::IPC,
        rdi: peer.0,
        rsi: ThreadId::NIL.0,
        rdx: t.tag,
        r10: Timeout::pack(t.timeout, Timeout::ZERO),
        mr: t.mr,
        flags,
    };
    let rax = raw_call(&call);
    // The partner reports whatever became of the message (it waits for
    // nothing else); a bounded wait, should the message not have reached it.
    let reported = receive(peer, Timeout::ticks(sc::myself().2)).is_ok_and(|(_, m)| m.tag().label() == P_DONE);
    if !t.expect.admits(rax) {
        println!("fuzz: transfer {t:x?} returned {rax:#x}");
        let got = Error::decode(rax).map(|_| ());
        return Some(Line::of(format_args!(
            "wrong result of a message to the partner: {got:?}, expected {}",
            t.expect
        )));
    }
    if !reported {
        return Some(Line::of(format_args!("the partner did not report")));
    }
    let got: [u64; 9] = core::array::from_fn(|i| PEER_REPORT[i].load(SeqCst));
    let n = Tag(t.tag).words().min(6);
    let ok =
        got[0] == rax && (rax != 0 || (got[1] == t.tag && got[2..2 + n] == t.words[..n] && strings_landed(t, got[8])));
    if !ok {
        println!("fuzz: transfer {t:x?}: sender {rax:#x}, partner got {got:x?}");
        return Some(Line::of(format_args!("the partner received something else than was sent")));
    }
    None
}

// ---- the map/grant/flush model ----

/// The actors' model pages, at `WINDOW + page * 4096` (their pager
/// refuses faults here, so an access to a page they lack reaches the
/// checker as an exception).
const WINDOW: u64 = 0x0000_6000_0000_0000;
const ACTOR_UTCB: u64 = 0x0000_5800_0000_0000;
const ACTORS: usize = model::SPACES - 1;
/// Model operations per round.
const MODEL_OPS: u64 = 40;
/// Frame `k` of the model holds `MARK + k`.
const MARK: u64 = 0x6d6f_6465_6c00_0000;
/// A touch that faulted (the checker resumed the actor after it).
const FAULTED: u64 = u64::MAX - 1;

// Actor commands (labels); every reply carries a result in MR1.
const A_RECV: u64 = 0xa1; // MR1 window, MR2 sender: receive one map item, report the result
const A_SEND: u64 = 0xa2; // MR1 receiver, MR2 fpage, MR3 grant: send one map item
const A_UNMAP: u64 = 0xa3; // MR1 fpage, MR2 flags
const A_TOUCH: u64 = 0xa4; // MR1 address, MR2 write: read (and write back) a word

static ACTOR_RESUME_IP: AtomicU64 = AtomicU64::new(0);
static ACTOR_RESUME_SP: AtomicU64 = AtomicU64::new(0);
/// Set by the checker when it resumes an actor after a fault.
static ACTOR_FAULTED: AtomicU64 = AtomicU64::new(0);
static mut ACTOR_STACKS: [Stack; ACTORS] = [const { Stack([0; 8192]) }; ACTORS];

/// Reads (and with `write` stores back) the word at `addr`; [`FAULTED`]
/// if either access faulted (the checker then resumes at the end).
fn touch(addr: u64, write: bool) -> u64 {
    let v: u64;
    ACTOR_FAULTED.store(0, SeqCst);
    // SAFETY: an access to a model page, which may fault: the checker
    // resumes at label 2 with the recorded stack pointer.
    unsafe {
        core::arch::asm!(
            "lea {t}, [rip + 2f]",
            "mov [{ip}], {t}",
            "mov [{sp}], rsp",
            "mov rax, [{a}]",
            "test {w}, {w}",
            "jz 2f",
            "mov [{a}], rax",
            "2:",
            t = out(reg) _,
            ip = in(reg) ACTOR_RESUME_IP.as_ptr(),
            sp = in(reg) ACTOR_RESUME_SP.as_ptr(),
            a = in(reg) addr,
            w = in(reg) write as u64,
            out("rax") v,
        )
    }
    if ACTOR_FAULTED.load(SeqCst) != 0 {
        FAULTED
    } else {
        v
    }
}

/// An actor of the model: one address space, driven by the checker.
extern "C" fn actor() -> ! {
    let raw = |r: Result<u64, Error>| r.unwrap_or_else(|e| e.encode());
    loop {
        let Ok((_, m)) = receive(checker(), Timeout::NEVER) else { continue };
        let a = m.mr;
        let r = match m.tag().label() {
            A_RECV => {
                sc::utcb().br[0] = a[0];
                raw(receive(ThreadId(a[1]), Timeout::NEVER).map(|_| 0))
            }
            A_SEND => {
                let it = map_item(0, Fpage(a[1]), a[2] != 0);
                raw(send(ThreadId(a[0]), &Msg::new(Tag::new(0, 0, 2), &it), Timeout::NEVER).map(|_| 0))
            }
            A_UNMAP => raw(sc::unmap(Fpage(a[0]), a[1] != 0)),
            A_TOUCH => touch(a[0], a[1] != 0),
            _ => u64::MAX,
        };
        let _ = send(checker(), &Msg::new(Tag::new(0, 1, 0), &[r]), Timeout::NEVER);
    }
}

fn start_actor(k: usize) -> Result<ThreadId, Error> {
    let stack = (&raw const ACTOR_STACKS) as u64 + (k as u64 + 1) * 8192 - 8;
    NewThread::new(ThreadId::NIL, ACTOR_UTCB, ThreadId(PAGER.load(SeqCst)), 35).handler(me()).start_fn(actor, stack)
}

/// The model's root pages: eight of this task's own (it is their root in
/// the model: nobody above flushes them), aligned for 2- and 4-page items.
#[repr(C, align(32768))]
struct RootPages([u8; model::PAGES * 4096]);
static mut ROOT_PAGES: RootPages = RootPages([0; model::PAGES * 4096]);

/// The model's universe in the kernel: the actors and the root's pages
/// (`frames`, where this task has them; `phys`, the frames' addresses).
struct Universe {
    model: Model,
    actors: [ThreadId; ACTORS],
    frames: u64,
    phys: [u64; model::PAGES],
    rng: fuzz::Rng,
    ops: u64,
}

fn fpage_of(base: u64, page: u8, pages: u8, rights: u64) -> Fpage {
    Fpage::new(base + page as u64 * 4096, 12 + pages.trailing_zeros(), rights)
}

impl Universe {
    fn new(seed: u64) -> Option<Universe> {
        let frames = (&raw const ROOT_PAGES) as u64;
        let mut phys = [0; model::PAGES];
        let mut root_rights = rights::ALL;
        for k in 0..model::PAGES as u64 {
            // SAFETY: this task's own page (mapped before `main`).
            unsafe { core::ptr::write_volatile((frames + k * 4096) as *mut u64, MARK + k) };
            let t = sc::ktest(ktest::TRANSLATE, me().0, frames + k * 4096).ok()?;
            phys[k as usize] = t & !0xfff;
            root_rights &= t & rights::ALL;
        }
        let mut actors = [ThreadId::NIL; ACTORS];
        for (k, a) in actors.iter_mut().enumerate() {
            *a = start_actor(k).ok()?;
        }
        let model = Model::with_root_rights(root_rights as u8);
        Some(Universe { model, actors, frames, phys, rng: fuzz::Rng::stream(seed, 2), ops: 0 })
    }

    fn actor(&self, space: u8) -> ThreadId {
        self.actors[space as usize - 1]
    }

    /// A command to an actor and its result; an exception it raises on
    /// the way (a touch of a page it lacks) is resumed and noted.
    fn command(&self, space: u8, label: u64, args: &[u64]) -> Result<u64, &'static str> {
        let t = self.actor(space);
        let mut r = sc::call(t, &Msg::new(Tag::new(label, args.len(), 0), args)).map_err(|_| "actor command failed")?;
        if r.tag().label() == label::EXCEPTION {
            if label != A_TOUCH || r.mr[0] != 14 {
                return Err("an actor raised an exception outside a touch");
            }
            let (ip, sp) = (ACTOR_RESUME_IP.load(SeqCst), ACTOR_RESUME_SP.load(SeqCst));
            ACTOR_FAULTED.store(1, SeqCst);
            let fix = Msg::new(Tag::new(0, 3, 0), &[ip, sp, r.mr[4]]);
            r = sc::ipc(t, t, Timeout::ZERO, Timeout::NEVER, &fix).map_err(|_| "resuming the actor failed")?.1;
        }
        Ok(r.mr[0])
    }

    /// Carries out `op` in the kernel; what the kernel answered.
    fn execute(&mut self, op: Op) -> Result<Outcome, &'static str> {
        let bad = |r: u64| Error::decode(r).is_err() && r != Error::InvalidArgument.encode();
        Ok(match op {
            Op::Map { from, to, pages, rights, grant } => {
                let window = fpage_of(WINDOW, to.page, pages, rights::ALL);
                let (sender, receiver) =
                    (if from.space == 0 { me() } else { self.actor(from.space) }, self.actor(to.space));
                send(receiver, &Msg::new(Tag::new(A_RECV, 2, 0), &[window.0, sender.0]), Timeout::NEVER)
                    .map_err(|_| "actor command failed")?;
                let sent = if from.space == 0 {
                    let it = map_item(0, fpage_of(self.frames, from.page, pages, rights as u64), false);
                    let r = send(receiver, &Msg::new(Tag::new(0, 0, 2), &it), Timeout::NEVER);
                    r.map_or_else(|e| e.encode(), |_| 0)
                } else {
                    let fp = fpage_of(WINDOW, from.page, pages, rights as u64);
                    self.command(from.space, A_SEND, &[receiver.0, fp.0, grant as u64])?
                };
                let got = receive(receiver, Timeout::NEVER).map_err(|_| "no report from the receiver")?.1.mr[0];
                if sent != got || bad(sent) {
                    println!("fuzz: model: map item sent {sent:#x}, received {got:#x}");
                    return Err("a map item failed unexpectedly");
                }
                Outcome::Map { cycle: sent != 0 }
            }
            Op::Flush { at, pages, revoke, include_self } => {
                let r = if at.space == 0 {
                    sc::unmap(fpage_of(self.frames, at.page, pages, revoke as u64), false).unwrap_or(u64::MAX)
                } else {
                    let fp = fpage_of(WINDOW, at.page, pages, revoke as u64);
                    self.command(at.space, A_UNMAP, &[fp.0, include_self as u64])?
                };
                Outcome::Flushed(r as usize)
            }
            Op::Renew { space } => {
                sc::thread_delete(self.actor(space)).map_err(|_| "deleting an actor failed")?;
                self.actors[space as usize - 1] =
                    start_actor(space as usize - 1).map_err(|_| "starting an actor failed")?;
                Outcome::Renewed
            }
            Op::Touch { at, write } => {
                let v = self.command(at.space, A_TOUCH, &[WINDOW + at.page as u64 * 4096, write as u64])?;
                Outcome::Touch((v != FAULTED).then(|| v.wrapping_sub(MARK) as u8))
            }
        })
    }

    /// Every page of the universe maps what the model says, in the page
    /// tables and in the mapping database.
    fn verify(&self) -> Result<(), &'static str> {
        for space in 0..model::SPACES as u8 {
            for page in 0..model::PAGES as u8 {
                let (t, v) = if space == 0 {
                    (me(), self.frames + page as u64 * 4096)
                } else {
                    (self.actor(space), WINDOW + page as u64 * 4096)
                };
                let got = sc::ktest(ktest::TRANSLATE, t.0, v).map_err(|_| "TRANSLATE failed")?;
                let want = self
                    .model
                    .lookup(Key::new(space, page))
                    .map_or(0, |(f, r)| self.phys[f as usize] | r as u64 | ktest::IN_MAPDB);
                if got != want {
                    println!("fuzz: model: page {page} of space {space}: kernel {got:#x}, model {want:#x}");
                    return Err("a mapping differs from the model");
                }
            }
        }
        Ok(())
    }

    /// `n` random operations, each checked against the model.
    fn round(&mut self, n: u64) -> Result<(), &'static str> {
        for _ in 0..n {
            let op = self.model.random_op(&mut self.rng);
            let want = self.model.apply(op);
            let got = self.execute(op)?;
            self.ops += 1;
            if got != want {
                println!("fuzz: model op {}: {op:?}: kernel {got:?}, model {want:?}", self.ops);
                return Err("an operation's result differs from the model");
            }
            self.verify()?;
        }
        Ok(())
    }
}

// ---- the checker ----

/// The number of the call being made (the progress word, which this
/// space sees at its physical address).
fn progress() -> u64 {
    // SAFETY: the progress frame, in this task's phys window.
    unsafe { core::ptr::read_volatile(PROGRESS_FRAME.load(SeqCst) as *const u64) & ((1 << 60) - 1) }
}

/// An exception message from a fuzzing thread or one of its children;
/// false if a fuzzing thread raised one it had not announced.
fn exception(fuzzers: &[ThreadId; FUZZERS], from: ThreadId, m: &Msg) -> bool {
    let stop = Msg::new(Tag::new(1, 0, 0), &[]);
    let Some(i) = fuzzers.iter().position(|&t| t == from) else {
        // A child of the privileged thread, started at a random address in
        // an empty space: it stays stopped. The partner must not fault.
        let _ = send(from, &stop, Timeout::ZERO);
        if from.0 == PEER.load(SeqCst) {
            println!("fuzz: the partner raised exception {} at {:#x} (address {:#x})", m.mr[0], m.mr[2], m.mr[5]);
            return false;
        }
        return true;
    };
    let (vector, error) = (m.mr[0], m.mr[1]);
    let announced = EXPECT[i].load(SeqCst);
    if announced == 0 {
        println!(
            "fuzz: unexpected exception {vector} (error {error:#x}, address {:#x}) at {:#x} in fuzzing thread {i}",
            m.mr[5], m.mr[2]
        );
        let _ = send(from, &stop, Timeout::ZERO);
        return false;
    }
    let kind = &KINDS[announced as usize - 1];
    let ok = kind.admits(vector, error);
    SEEN[i].store((vector + 1) | if ok { 0 } else { MISMATCH | error << 40 }, SeqCst);
    let (ip, sp) = (RESUME_IP[i].load(SeqCst), RESUME_SP[i].load(SeqCst));
    let _ = send(from, &Msg::new(Tag::new(0, 3, 0), &[ip, sp, m.mr[4]]), Timeout::ZERO);
    true
}

/// Serves exceptions until fuzzing thread `i` reports; `Err` with the
/// call number on a failure.
fn serve_batch(fuzzers: &[ThreadId; FUZZERS], i: usize) -> Result<(), u64> {
    loop {
        let Ok((from, m)) = receive(ThreadId::ANY, Timeout::NEVER) else { continue };
        match m.tag().label() {
            label::EXCEPTION if !exception(fuzzers, from, &m) => {
                println!("fuzz: FAILED seed {} call {}: unexpected exception", SEED.load(SeqCst), progress());
                return Err(progress());
            }
            DONE if from == fuzzers[i] => return Ok(()),
            FAIL if from == fuzzers[i] => return Err(m.mr[0]),
            // Handled exceptions, budget notifications for children.
            _ => {}
        }
    }
}

/// The partner: in a space of its own, above the fuzzing threads'
/// priority (so it is back in its receive before the sender goes on).
fn start_partner() -> Result<ThreadId, Error> {
    NewThread::new(ThreadId::NIL, rt::utcb_addr(), ThreadId(PAGER.load(SeqCst)), 35)
        .handler(me())
        .start_fn(partner, rt::stack())
}

fn start_fuzzer(entry: extern "C" fn() -> !, privileged: bool) -> Result<ThreadId, Error> {
    let t = NewThread::new(ThreadId::NIL, rt::utcb_addr(), ThreadId(PAGER.load(SeqCst)), 30).handler(me());
    let t = if privileged { t.privileged(P_RIGHTS, P_MCP) } else { t };
    t.start_fn(entry, rt::stack())
}

/// Runs the fuzzer for `calls` calls (0: until stopped from outside);
/// returns whether it ran clean.
pub fn run(seed: u64, calls: u64, trace: u64, keep_going: bool) -> bool {
    SEED.store(seed, SeqCst);
    TRACE.store(trace, SeqCst);
    KEEP.store(keep_going as u64, SeqCst);
    CHECKER.store(me().0, SeqCst);
    // A frame of sigma0's, in this task's phys window: the host reads it
    // at its physical address.
    let Some(frame) = rt::any_frame() else {
        println!("fuzz: no frame for the progress word");
        return false;
    };
    PROGRESS_FRAME.store(frame, SeqCst);
    println!("fuzz: seed {seed}, progress word at physical {:#x}", frame - abi::layout::PHYS_WINDOW);
    let pager = spawn(me(), fuzz_pager, 50, ThreadId::NIL).expect("fuzz pager");
    PAGER.store(pager.0, SeqCst);
    let gone = spawn(me(), sentinel, 40, ThreadId::NIL).expect("thread");
    sc::thread_delete(gone).expect("delete");
    STALE.store(gone.0, SeqCst);
    let sentinel = spawn(ThreadId::NIL, sentinel, 40, pager).expect("sentinel");
    let Ok(peer) = start_partner() else {
        println!("fuzz: cannot start the partner");
        return false;
    };
    PEER.store(peer.0, SeqCst);
    let fuzzers = [start_fuzzer(unprivileged, false), start_fuzzer(privileged, true)];
    let [Ok(u), Ok(p)] = fuzzers else {
        println!("fuzz: cannot start the fuzzing threads");
        return false;
    };
    let fuzzers = [u, p];
    let Some(mut universe) = Universe::new(seed) else {
        println!("fuzz: cannot set up the model's actors");
        return false;
    };
    let mut model_ok = true;
    let t0 = sc::myself().1;
    let mut next = 0u64;
    let mut round = 0u64;
    let result = loop {
        let mut failed = None;
        for (i, &t) in fuzzers.iter().enumerate() {
            if send(t, &Msg::new(Tag::new(GO, 2, 0), &[next, BATCH]), Timeout::NEVER).is_err() {
                failed = Some(next);
                break;
            }
            if let Err(n) = serve_batch(&fuzzers, i) {
                failed = Some(n.min(next + BATCH));
                break;
            }
            next += BATCH;
        }
        if let Some(n) = failed {
            break Err(n);
        }
        if model_ok {
            if let Err(why) = universe.round(MODEL_OPS) {
                println!("fuzz: FAILED seed {seed} call {next}: model op {}: {why}", universe.ops);
                if !keep_going {
                    break Err(next);
                }
                // The kernel and the model part ways here: no more rounds.
                model_ok = false;
            }
        }
        let broken = sc::ktest(ktest::CHECK, 0, 0);
        if broken != Ok(0) {
            println!("fuzz: FAILED seed {seed} call {next}: kernel invariant check {broken:?} broken");
            if !keep_going {
                break Err(next);
            }
        }
        let ping = sc::call(sentinel, &Msg::new(Tag::new(0, 1, 0), &[next]));
        if !ping.is_ok_and(|r| r.mr[0] == next + 1) {
            println!("fuzz: FAILED seed {seed} call {next}: the sentinel did not answer ({ping:?})");
            break Err(next);
        }
        round += 1;
        println!(
            "fuzz: {next} calls ok ({round} rounds, {} model ops, guest TSC {})",
            universe.ops,
            sc::myself().1 - t0
        );
        if calls != 0 && next >= calls {
            break Ok(());
        }
    };
    match result {
        Ok(()) => {
            println!("fuzz: done, seed {seed}: {next} calls, no failure");
            true
        }
        Err(n) => {
            println!("fuzz: FAILED seed {seed} at call {n} (replay: just fuzz --replay {seed})");
            false
        }
    }
}
