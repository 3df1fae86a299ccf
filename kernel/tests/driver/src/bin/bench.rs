//! The kernel benchmarks, a task of their own (`just bench` boots it from
//! `kernel/tests/images/bench/system`). Under QEMU with `-icount shift=0`
//! the TSC counts guest instructions, so the same run gives instruction
//! counts there (the host runs it both ways), and `bench-linux` does the
//! same work on Linux under the same QEMU for the table `prism bench`
//! prints.
//!
//! # Method (the same as `bench-linux`'s)
//!
//! Each iteration is bracketed by [`abi::bench::tsc_start`] and
//! [`abi::bench::tsc_end`]; [`WARMUP`] untimed iterations first (page
//! faults of helpers, the TLB), then [`ROUNDS`] timed ones, or
//! [`BIG_ROUNDS`] for the 2 MiB unmap (each of its iterations first maps
//! 512 pages). One [`abi::bench::Line`] per benchmark. System calls are the
//! inline `abi::syscall` wrappers.
//!
//! With the argument `profile=NAME` (the description's ` -- ` words) the
//! task runs benchmark NAME alone, with the [`abi::marker`] job markers
//! inside the two TSC reads of every iteration, so that `prism bench
//! --profile NAME` (the profile plugin) attributes the instructions of
//! each iteration to functions; without it no marker is executed and the
//! figures are the plain ones.
//!
//! # What each benchmark measures (and its Linux pair, in `bench-linux`)
//!
//! * `empty`: the two TSC reads alone (the fixed cost in every figure).
//! * `null_syscall`: `MYSELF`, the cheapest call (enter, read the caller's
//!   id and the TSC, return) vs `getppid`.
//! * `ipc_call_registers`: `call` + `reply_wait` round trip to a server
//!   in another address space, tag and 6 words in registers each way
//!   (48 bytes) vs a 48-byte pipe round trip between two processes, and
//!   eventfd and futex ping-pong.
//! * `ipc_call_utcb_60_words`: 60 words each way (the server echoes them)
//!   vs a 480-byte pipe round trip.
//! * `ipc_call_string_4k`: a 4 KiB string item into the server's buffer,
//!   an empty reply vs 4 KiB through a pipe and 1 byte back.
//! * `page_fault_user_pager`: a write to an unmapped page: the fault, the
//!   fault IPC to a user-level pager (another thread), its map reply of a
//!   frame taken from sigma0 beforehand (as a pager with a free list),
//!   the resumed write vs a Linux minor fault (a page of a populated memfd;
//!   and anonymous memory, which also zeroes a page).
//! * `ipc_call_map_one_page`: a call with one 4 KiB map item to a receiver
//!   in another space, which has the page mapped when the reply comes (the
//!   kernel installs it at once); the mapping is removed after each timed
//!   iteration (untimed), so every map is fresh vs `mmap` of one page and
//!   its first write, `munmap` untimed.
//! * `unmap_2m_512_derived`: `unmap` of a naturally aligned 2 MiB region
//!   that was mapped to another space as 512 4 KiB mappings (untimed) vs
//!   `munmap` of 2 MiB of populated memfd pages.
//! * `yield_one_space`, `yield_two_spaces`: one `YIELD` that runs another
//!   thread of equal priority (of this space, or of another), which
//!   yields back: two switches and two system calls vs `sched_yield`
//!   between two threads or two processes on one CPU. Every yield is
//!   checked to have run the other side.
//! * (pending) `rt_pager_frames_4m`: the RT pager's coloured frames from
//!   sigma0 for a 4 MiB task vs `mmap(MAP_POPULATE)` of 4 MiB; waits for the
//!   RT pager (issue 18).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod bench {
    use abi::bench::{tsc_end, tsc_start, Line, Summary};
    use abi::ipc::{label, map_item, rights, string_item, Fpage, Tag, Timeout};
    use abi::marker::{self, Marker};
    use abi::syscall::{self as sc, call, receive, reply_wait, Msg};
    use abi::ThreadId;
    use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
    use suite::rt::{self, spawn, wait_good};
    use user_rt::println;

    /// Untimed iterations before the timed ones.
    const WARMUP: usize = 100;
    /// Timed iterations of every benchmark but the 2 MiB unmap.
    const ROUNDS: usize = 10_000;
    /// Timed iterations of the 2 MiB unmap (as `bench-linux`'s `munmap_2m`).
    const BIG_ROUNDS: usize = 200;
    /// The priority of this task's thread (from its description) and of the
    /// yield partners: below sigma0 and the root task (32), so that nothing
    /// of this task runs while the image's RT pager (50) loads its client
    /// (`rt_pager_frames_4m`) with a frame from sigma0 per page; at 32 it
    /// took turns with sigma0 and its benchmarks were timed into the load
    /// (25.1 M guest instructions per 4 MiB instead of 3.8 M) and the load
    /// into their maxima.
    const PRIO: u64 = 31;

    static mut SAMPLES: [u64; ROUNDS] = [0; ROUNDS];
    static mut STRING_BUF: [u8; 8192] = [0; 8192];
    static mut SEND_BUF: [u8; 4096] = [0; 4096];

    /// How an iteration is timed: the TSC reads alone, or with the
    /// profiler's markers just inside them (`profile=NAME`). A type, so
    /// that the plain runs execute no marker and test no flag.
    trait Clock {
        fn start() -> u64;
        fn end() -> u64;
    }

    struct Plain;
    impl Clock for Plain {
        #[inline(always)]
        fn start() -> u64 {
            tsc_start()
        }
        #[inline(always)]
        fn end() -> u64 {
            tsc_end()
        }
    }

    struct Marked;
    impl Clock for Marked {
        #[inline(always)]
        fn start() -> u64 {
            let t = tsc_start();
            marker::emit(Marker::JobBegin);
            t
        }
        #[inline(always)]
        fn end() -> u64 {
            marker::emit(Marker::JobEnd);
            tsc_end()
        }
    }

    fn samples() -> &'static mut [u64; ROUNDS] {
        let s = &raw mut SAMPLES;
        // SAFETY: one benchmark runs at a time, and only the thread that
        // runs it (the main thread, or the faulter while the main thread
        // waits) touches the samples.
        unsafe { &mut *s }
    }

    fn print(name: &str, s: &mut [u64]) {
        if let Some(sum) = Summary::of(s) {
            println!("{}", Line(name, sum));
        }
    }

    /// Runs `one` (which times one iteration, `None` on failure)
    /// [`WARMUP`] times untimed and `rounds` times timed, then prints.
    fn measure(name: &str, rounds: usize, mut one: impl FnMut() -> Option<u64>) {
        for _ in 0..WARMUP {
            if one().is_none() {
                println!("bench {name}: failed in the warm-up");
                return;
            }
        }
        let s = samples();
        for slot in s.iter_mut().take(rounds) {
            match one() {
                Some(t) => *slot = t,
                None => {
                    println!("bench {name}: failed");
                    return;
                }
            }
        }
        print(name, &mut s[..rounds]);
    }

    /// Threads the benchmarks share.
    struct Ctx {
        me: ThreadId,
        /// Pages spaces that run this binary with this task's own pages.
        pager: ThreadId,
        /// The IPC server, in a space of its own.
        server: ThreadId,
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

    fn empty<C: Clock>(_: &Ctx) {
        measure("empty", ROUNDS, || {
            let t0 = C::start();
            Some(C::end() - t0)
        });
    }

    fn null_syscall<C: Clock>(_: &Ctx) {
        measure("null_syscall", ROUNDS, || {
            let t0 = C::start();
            let me = sc::myself().0;
            let t = C::end() - t0;
            (me != ThreadId::NIL).then_some(t)
        });
    }

    fn round_trips<C: Clock>(name: &str, server: ThreadId, msg: &Msg) {
        measure(name, ROUNDS, || {
            let t0 = C::start();
            let r = call(server, msg);
            let t = C::end() - t0;
            r.ok().map(|_| t)
        });
    }

    fn ipc_call_registers<C: Clock>(c: &Ctx) {
        round_trips::<C>("ipc_call_registers", c.server, &Msg::new(Tag::new(1, 6, 0), &[1, 2, 3, 4, 5, 6]));
    }

    fn ipc_call_utcb_60_words<C: Clock>(c: &Ctx) {
        let u = sc::utcb();
        for (i, w) in u.mr.iter_mut().enumerate().take(61).skip(7) {
            *w = i as u64;
        }
        round_trips::<C>("ipc_call_utcb_60_words", c.server, &Msg::new(Tag::new(1, 60, 0), &[1, 2, 3, 4, 5, 6]));
    }

    fn ipc_call_string_4k<C: Clock>(c: &Ctx) {
        let item = string_item((&raw const SEND_BUF) as u64, 4096);
        round_trips::<C>("ipc_call_string_4k", c.server, &Msg::new(Tag::new(1, 0, 2), &item));
    }

    /// Where the faulting thread touches fresh pages.
    const FAULT_AREA: u64 = 0x0000_6100_0000_0000;
    const FAULT_PAGES: usize = WARMUP + ROUNDS;
    static FAULT_DONE: AtomicU64 = AtomicU64::new(0);

    /// Frames the fault pager hands out, taken from sigma0 before the timing.
    static mut FAULT_FRAMES: [u64; FAULT_PAGES] = [0; FAULT_PAGES];
    static NEXT_FRAME: AtomicU64 = AtomicU64::new(0);
    static FRAMES_READY: AtomicU64 = AtomicU64::new(0);

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
        FRAMES_READY.store(1, SeqCst);
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
    /// pager, map, resume) after the warm-up ones.
    extern "C" fn faulter<C: Clock>() -> ! {
        let mut next = 0u64;
        measure("page_fault_user_pager", ROUNDS, || {
            let p = (FAULT_AREA + next * 4096) as *mut u64;
            next += 1;
            let t0 = C::start();
            // SAFETY: FAULT_AREA pages are mapped by the fault pager on
            // access; nothing else of this thread's memory faults (its pager
            // mapped it all before).
            unsafe { core::ptr::write_volatile(p, next) };
            Some(C::end() - t0)
        });
        FAULT_DONE.store(1, SeqCst);
        sc::thread_exit(0)
    }

    fn page_fault_user_pager<C: Clock>(c: &Ctx) {
        let fp = spawn(c.me, fault_pager, 50, ThreadId::NIL).expect("fault pager");
        while FRAMES_READY.load(SeqCst) == 0 {
            let _ = receive(c.me, Timeout::ticks(sc::myself().2 / 1000));
        }
        if NEXT_FRAME.load(SeqCst) != 0 || FAULT_DONE.load(SeqCst) != 0 {
            println!("bench page_fault_user_pager: runs once per boot");
            return;
        }
        let _ = spawn(ThreadId::NIL, faulter::<C>, 40, fp).expect("faulter");
        while FAULT_DONE.load(SeqCst) == 0 {
            let _ = receive(c.me, Timeout::ticks(sc::myself().2 / 1000));
        }
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

    /// What the map and unmap benchmarks map: 2 MiB, naturally aligned, all
    /// backed before `main` (as every page of this task is).
    #[repr(C, align(2097152))]
    struct Big([u8; 2 << 20]);
    static mut BIG: Big = Big([0; 2 << 20]);

    fn map_receiver_thread(c: &Ctx) -> ThreadId {
        spawn(ThreadId::NIL, map_receiver, 40, c.pager).expect("map receiver")
    }

    fn ipc_call_map_one_page<C: Clock>(c: &Ctx) {
        let r = map_receiver_thread(c);
        let base = (&raw const BIG) as u64;
        let page = Fpage::new(base, 12, rights::ALL);
        let one = Msg::new(Tag::new(0, 0, 2), &map_item(base, page, false));
        measure("ipc_call_map_one_page", ROUNDS, || {
            let t0 = C::start();
            let ok = call(r, &one).is_ok();
            let t = C::end() - t0;
            // Untimed: take the mapping back, so that the next map is fresh.
            (ok && sc::unmap(page, false) == Ok(1)).then_some(t)
        });
    }

    fn unmap_2m_512_derived<C: Clock>(c: &Ctx) {
        let r = map_receiver_thread(c);
        let base = (&raw const BIG) as u64;
        let big = Fpage::new(base, 21, rights::ALL);
        let all = Msg::new(Tag::new(0, 0, 2), &map_item(base, big, false));
        measure("unmap_2m_512_derived", BIG_ROUNDS, || {
            call(r, &all).ok()?;
            let t0 = C::start();
            let n = sc::unmap(big, false);
            let t = C::end() - t0;
            if n != Ok(512) {
                println!("bench: unmap changed {n:?} mappings, not 512");
                return None;
            }
            Some(t)
        });
    }

    /// Yields of the partner thread (it adds one before each yield).
    static YIELDS: AtomicU64 = AtomicU64::new(0);

    extern "C" fn yielder() -> ! {
        loop {
            YIELDS.fetch_add(1, SeqCst);
            sc::yield_now();
        }
    }

    /// Times yields to a partner of equal priority (in this space, or with
    /// `space_of = NIL` in one of its own) that yields back.
    fn yields<C: Clock>(name: &str, c: &Ctx, space_of: ThreadId) {
        let pager = if space_of == ThreadId::NIL { c.pager } else { ThreadId::NIL };
        let partner = spawn(space_of, yielder, PRIO, pager).expect("yield partner");
        let mut missed = 0u64;
        measure(name, ROUNDS, || {
            let before = YIELDS.load(SeqCst);
            let t0 = C::start();
            sc::yield_now();
            let t = C::end() - t0;
            if YIELDS.load(SeqCst) == before {
                missed += 1;
            }
            Some(t)
        });
        let _ = sc::thread_delete(partner);
        if missed > 0 {
            println!("bench: {name}: {missed} yields did not run the other thread");
        }
    }

    fn yield_one_space<C: Clock>(c: &Ctx) {
        yields::<C>("yield_one_space", c, c.me);
    }

    fn yield_two_spaces<C: Clock>(c: &Ctx) {
        yields::<C>("yield_two_spaces", c, ThreadId::NIL);
    }

    /// The main thread, which the idle threads wait for (it never sends).
    static MAIN: AtomicU64 = AtomicU64::new(0);

    /// A thread that exists and does nothing: blocked for good in a
    /// receive (`idle_threads=N` starts N of them, so that the figures show
    /// what, if anything, grows with the number of threads).
    extern "C" fn idle_thread() -> ! {
        loop {
            let _ = receive(ThreadId(MAIN.load(SeqCst)), Timeout::NEVER);
        }
    }

    /// Every benchmark: its name, the plain run and the marked (profiled) run.
    type Bench = (&'static str, fn(&Ctx), fn(&Ctx));

    const BENCHES: &[Bench] = &[
        ("empty", empty::<Plain>, empty::<Marked>),
        ("null_syscall", null_syscall::<Plain>, null_syscall::<Marked>),
        ("ipc_call_registers", ipc_call_registers::<Plain>, ipc_call_registers::<Marked>),
        ("ipc_call_utcb_60_words", ipc_call_utcb_60_words::<Plain>, ipc_call_utcb_60_words::<Marked>),
        ("ipc_call_string_4k", ipc_call_string_4k::<Plain>, ipc_call_string_4k::<Marked>),
        ("page_fault_user_pager", page_fault_user_pager::<Plain>, page_fault_user_pager::<Marked>),
        ("ipc_call_map_one_page", ipc_call_map_one_page::<Plain>, ipc_call_map_one_page::<Marked>),
        ("unmap_2m_512_derived", unmap_2m_512_derived::<Plain>, unmap_2m_512_derived::<Marked>),
        ("yield_one_space", yield_one_space::<Plain>, yield_one_space::<Marked>),
        ("yield_two_spaces", yield_two_spaces::<Plain>, yield_two_spaces::<Marked>),
    ];

    user_rt::entry!(run);

    fn run() {
        let me = sc::myself().0;
        if sc::thread_info(me, abi::sys::attr::PRIORITY).map(|(p, _)| p) != Ok(PRIO) {
            println!("bench: this task must run at priority {PRIO} (its yield partners do)");
        }
        MAIN.store(me.0, SeqCst);
        let idle = user_rt::info().and_then(|i| i.arg("idle_threads")).and_then(|v| v.parse::<usize>().ok());
        for _ in 0..idle.unwrap_or(0) {
            spawn(me, idle_thread, 10, ThreadId::NIL).expect("idle thread");
        }
        if let Some(n) = idle {
            println!("bench: {n} idle threads besides the benchmarks' own");
        }
        let pager = spawn(me, rt::pager, 50, ThreadId::NIL).expect("pager");
        let server = spawn(ThreadId::NIL, server, 40, pager).expect("server");
        let ctx = Ctx { me, pager, server };
        println!("bench: TSC {} Hz; server in its own address space", sc::myself().2);
        match user_rt::info().and_then(|i| i.arg("profile")) {
            Some(name) => match BENCHES.iter().find(|b| b.0 == name) {
                Some(b) => {
                    println!("bench: profiling {name} (markers inside the timed interval)");
                    (b.2)(&ctx);
                }
                None => println!("bench: no benchmark {name} to profile"),
            },
            None => {
                for b in BENCHES {
                    (b.1)(&ctx);
                }
            }
        }
        println!("bench done");
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("bench is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
