//! The kernel benchmarks, a task of their own (`just bench` boots it from
//! `kernel/tests/bench.toml`): round trips of `call` / `reply_wait` between
//! two address spaces, a page fault resolved by a user-level pager, map and
//! flush, each timed with serialized TSC reads. Under QEMU with `-icount
//! shift=0` the TSC counts guest instructions, so the same run gives
//! instruction counts there (the host runs it both ways).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod bench {
    use abi::ipc::{label, map_item, rights, string_item, Fpage, Tag, Timeout};
    use abi::syscall::{self as sc, call, receive, reply_wait, Msg};
    use abi::ThreadId;
    use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
    use suite::rt::{self, spawn, wait_good};
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

    fn print(name: &str, s: &mut [u64]) {
        s.sort_unstable();
        let n = s.len();
        println!("bench {name} rounds={n} min={} median={} p99={} max={}", s[0], s[n / 2], s[n * 99 / 100], s[n - 1]);
    }

    /// Where the faulting thread touches fresh pages.
    const FAULT_AREA: u64 = 0x0000_6100_0000_0000;
    const FAULT_PAGES: usize = 2000;
    static FAULT_DONE: AtomicU64 = AtomicU64::new(0);

    /// Frames the fault pager hands out, taken from sigma0 before the timing.
    static mut FAULT_FRAMES: [u64; FAULT_PAGES] = [0; FAULT_PAGES];
    static NEXT_FRAME: AtomicU64 = AtomicU64::new(0);

    /// Pager for the fault benchmark: pages of FAULT_AREA get fresh frames
    /// (taken from sigma0 beforehand, so that a fault costs the fault, one IPC
    /// to this pager and one map, as in a pager with a free list); everything
    /// else the same page of this task's space.
    extern "C" fn fault_pager() -> ! {
        let frames = &raw mut FAULT_FRAMES;
        // SAFETY: only this thread uses the frame list.
        let frames = unsafe { &mut *frames };
        for f in frames.iter_mut() {
            *f = rt::any_frame().unwrap_or(0);
        }
        rt::serve_loop(|_, m| {
            (m.tag().label() == label::PAGE_FAULT).then(|| {
                let addr = m.mr[0] & !0xfff;
                if addr >= FAULT_AREA {
                    let i = NEXT_FRAME.fetch_add(1, SeqCst) as usize;
                    let Some(&f) = frames.get(i).filter(|&&f| f != 0) else { return Msg::default() };
                    Msg::new(Tag::new(0, 0, 2), &map_item(addr, Fpage::new(f, 12, rights::ALL), false))
                } else {
                    rt::same_page(addr)
                }
            })
        })
    }

    /// Touches FAULT_PAGES fresh pages, timing each access (fault, IPC to the
    /// pager, map, resume).
    extern "C" fn faulter() -> ! {
        let samples = &raw mut SAMPLES;
        // SAFETY: this thread is the only one writing the samples now; the
        // pages are mapped from this task's own (its pager mapped them all), so
        // the timed loop faults only on FAULT_AREA.
        let s = unsafe { &mut *samples };
        for v in s.iter_mut() {
            *v = 0;
        }
        for (i, slot) in s.iter_mut().take(FAULT_PAGES).enumerate() {
            let p = (FAULT_AREA + i as u64 * 4096) as *mut u64;
            let t0 = tsc_start();
            // SAFETY: FAULT_AREA pages are mapped by the fault pager on access.
            unsafe { core::ptr::write_volatile(p, i as u64) };
            let t1 = tsc_end();
            *slot = t1 - t0;
        }
        FAULT_DONE.store(1, SeqCst);
        sc::thread_exit(0)
    }

    /// Receives map items into its window and replies at once.
    extern "C" fn map_receiver() -> ! {
        sc::utcb().br[0] = Fpage::new(MAP_WINDOW, 21, rights::ALL).0;
        let (mut from, _) = wait_good();
        loop {
            (from, _) = match reply_wait(from, &Msg::default()) {
                Ok(x) => x,
                Err(_) => wait_good(),
            };
        }
    }

    const MAP_WINDOW: u64 = 0x0000_6200_0000_0000;

    /// What the map and flush benchmarks map: 2 MiB, naturally aligned, all
    /// backed before `main` (as every page of this task is).
    #[repr(C, align(2097152))]
    struct Big([u8; 2 << 20]);
    static mut BIG: Big = Big([0; 2 << 20]);

    fn memory_benchmarks(pager: ThreadId) {
        let me = sc::myself().0;
        // 1. Page fault resolved by a user-level pager.
        let fp = spawn(me, fault_pager, 50, ThreadId::NIL).expect("fault pager");
        let _ = spawn(ThreadId::NIL, faulter, 40, fp).expect("faulter");
        while FAULT_DONE.load(SeqCst) == 0 {
            let _ = receive(me, Timeout::ticks(sc::myself().2 / 1000));
        }
        let samples = &raw mut SAMPLES;
        // SAFETY: the faulter has finished; only this thread uses the samples.
        let s = unsafe { &mut *samples };
        print("page_fault_user_pager", &mut s[..FAULT_PAGES]);

        // 2. Map of one 4 KiB page by IPC (call with one map item; the receiver
        //    replies at once; each call replaces the previous mapping).
        let r = spawn(ThreadId::NIL, map_receiver, 40, pager).expect("map receiver");
        // A naturally aligned 2 MiB region of this task's own memory.
        let base = (&raw const BIG) as u64;
        let one = Msg::new(Tag::new(0, 0, 2), &map_item(base, Fpage::new(base, 12, rights::ALL), false));
        for slot in s.iter_mut().take(2000) {
            let t0 = tsc_start();
            let _ = call(r, &one);
            *slot = tsc_end() - t0;
        }
        print("ipc_call_map_one_page", &mut s[..2000]);

        // 3. Flush of a 2 MiB region with 512 derived mappings.
        let big = Fpage::new(base, 21, rights::ALL);
        let all = Msg::new(Tag::new(0, 0, 2), &map_item(base, big, false));
        for slot in s.iter_mut().take(50) {
            let _ = call(r, &all);
            let t0 = tsc_start();
            let n = sc::unmap(big, false);
            *slot = tsc_end() - t0;
            if n != Ok(512) {
                println!("bench: flush changed {n:?} mappings, not 512");
                return;
            }
        }
        print("unmap_2m_512_derived", &mut s[..50]);
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
        print(name, s);
    }

    user_rt::entry!(run);

    fn run() {
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
        memory_benchmarks(pager);
        println!("bench done");
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("bench is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
