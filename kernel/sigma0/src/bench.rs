//! IPC benchmarks, run by sigma0 when it is started with the argument
//! `bench`: round trips of `call` / `reply_wait` between two address
//! spaces, timed per round trip with serialized TSC reads. Under QEMU with
//! `-icount shift=0` the TSC counts guest instructions, so the same run
//! gives instruction counts there (the host runs it both ways).

use crate::rt::{self, spawn, wait_good};
use abi::ipc::{string_item, Tag};
use abi::syscall::{self as sc, call, reply_wait, Msg};
use abi::ThreadId;
use user_rt::println;

const ROUNDS: usize = 10_000;
static mut SAMPLES: [u64; ROUNDS] = [0; ROUNDS];
static mut STRING_BUF: [u8; 8192] = [0; 8192];
static mut SEND_BUF: [u8; 4096] = [0; 4096];

/// Serialized TSC read at the start of a measured interval.
#[inline(always)]
fn tsc_start() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: lfence and rdtsc only order and read the time stamp counter.
    unsafe { core::arch::asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nostack)) };
    ((hi as u64) << 32) | lo as u64
}

/// Serialized TSC read at the end of a measured interval.
#[inline(always)]
fn tsc_end() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtscp waits for earlier instructions; lfence keeps later
    // ones from starting early. No memory is touched.
    unsafe { core::arch::asm!("rdtscp", "lfence", out("eax") lo, out("edx") hi, out("ecx") _, options(nostack)) };
    ((hi as u64) << 32) | lo as u64
}

/// Replies to every message with its untyped words (UTCB words stay in
/// place and go back as they came); a string lands in its buffer.
extern "C" fn server() -> ! {
    let buf = (&raw const STRING_BUF) as u64;
    for p in (0..8192).step_by(4096) {
        // SAFETY: touching our own static so the pager maps it.
        unsafe { core::ptr::read_volatile((buf + p) as *const u8) };
    }
    let u = sc::utcb();
    u.br[1] = buf;
    u.br[2] = 8192;
    let (mut from, mut m) = wait_good();
    loop {
        let reply = Msg { tag: Tag::new(0, m.tag().untyped(), 0).0, mr: m.mr };
        (from, m) = match reply_wait(from, &reply) {
            Ok(x) => x,
            // A partner's malformed message fails for both sides; wait for
            // the next good one.
            Err(_) => wait_good(),
        };
    }
}

fn run_one(name: &str, server: ThreadId, msg: &Msg) {
    // Warm up: page faults of the server, caches, TLB.
    for _ in 0..100 {
        let _ = call(server, msg);
    }
    let samples = &raw mut SAMPLES;
    // SAFETY: only this thread touches the sample buffer.
    let s = unsafe { &mut *samples };
    for slot in s.iter_mut() {
        let t0 = tsc_start();
        let r = call(server, msg);
        let t1 = tsc_end();
        if r.is_err() {
            println!("bench {name}: call failed: {r:?}");
            return;
        }
        *slot = t1 - t0;
    }
    s.sort_unstable();
    println!(
        "bench {name} rounds={ROUNDS} min={} median={} p99={} max={}",
        s[0],
        s[ROUNDS / 2],
        s[ROUNDS * 99 / 100],
        s[ROUNDS - 1]
    );
}

pub fn run() {
    let me = sc::myself().0;
    let pager = spawn(me, rt::pager, 50, ThreadId::NIL).expect("pager");
    let srv = spawn(ThreadId::NIL, server, 40, pager).expect("server");
    println!("bench: TSC {} Hz; server in its own address space", sc::myself().2);
    run_one("ipc_call_registers", srv, &Msg::new(Tag::new(1, 6, 0), &[1, 2, 3, 4, 5, 6]));
    let u = sc::utcb();
    for (i, w) in u.mr.iter_mut().enumerate().take(61).skip(7) {
        *w = i as u64;
    }
    run_one("ipc_call_utcb_60_words", srv, &Msg::new(Tag::new(1, 60, 0), &[1, 2, 3, 4, 5, 6]));
    let item = string_item((&raw const SEND_BUF) as u64, 4096);
    run_one("ipc_call_string_4k", srv, &Msg::new(Tag::new(1, 0, 2), &item));
    println!("bench done");
}
