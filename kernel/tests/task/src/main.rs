//! A task of the in-guest test images. What it does is chosen by its
//! `mode=` argument in the test description:
//!
//! - `self`: reads its own entry of the description (`GET_INFO`) and checks
//!   from inside, through `THREAD_INFO`, that the kernel runs it with the
//!   priority, MCP, rights, pager, exception handler and budget given there;
//!   then reports its address space to the task named by `report=`.
//! - `collect`: receives `n=` such reports and checks that every reporter
//!   passed and that no two share an address space.
//! - `ud2` / `wild`: crashes (invalid opcode; a write to an address nobody
//!   backs), for the root task to report.
//! - `survive`: works for a while after the crashes and ends normally.
//! - `control`: a task without rights; every control call must be refused.
//! - `mcp`: a task with thread control and MCP p (its description's);
//!   checks that it cannot give itself or a thread it creates a priority or
//!   MCP above p, nor rights it lacks, nor touch threads it did not create.
//! - `s0-owner` / `s0-thief`: the owner takes a frame from sigma0 and hands
//!   its address to the thief on request; the thief makes a thread paged by
//!   sigma0 fault on it and checks that sigma0 refused.
//! - `s0-color`: a pager bound to a partition faults, paged by sigma0, on a
//!   frame `offset=` bytes from one of its own colours (a foreign colour)
//!   and checks that sigma0 refused it for its colour.
//! - `s0-frames`: a pager bound to partition number `part=` (colours `lo=`
//!   to `hi=` of `ncolors=`, page colour = page number mod `ncolors`) asks
//!   for `n=` frames: each must be of its colours, a request for a frame of
//!   another colour is refused, and sigma0's usage count grows by `n`.
//!
//! Every check prints `test NAME ... ok` or `test NAME ... FAILED: why`;
//! the host runner counts them. The task ends with the number of failures
//! as its status.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use abi::ipc::root::TaskInfo;
    use abi::ipc::{label, sigma0, Tag};
    use abi::sys::{attr, rights};
    use abi::syscall::{self as sc, call, receive, reply_wait, Msg};
    use abi::{layout, Error, ThreadId, Timeout};
    use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
    use user_rt::{info, println};

    user_rt::entry!(main);

    type Check = Result<(), &'static str>;

    fn check(ok: bool, why: &'static str) -> Check {
        if ok {
            Ok(())
        } else {
            Err(why)
        }
    }

    fn report(name: &str, r: Check) -> u64 {
        match r {
            Ok(()) => {
                println!("test {name} ... ok");
                0
            }
            Err(why) => {
                println!("test {name} ... FAILED: {why}");
                1
            }
        }
    }

    fn me() -> ThreadId {
        sc::myself().0
    }

    fn get(what: u64) -> Result<u64, Error> {
        sc::thread_info(me(), what).map(|(v, _)| v)
    }

    /// Message labels between test tasks.
    const SPACE_REPORT: u64 = 0x7e57;
    const GIVE_FRAME: u64 = 0x7e58;

    fn self_check(i: &TaskInfo) -> Check {
        check(get(attr::PRIORITY) == Ok(i.priority), "priority differs from the description")?;
        check(get(attr::MCP) == Ok(i.mcp), "MCP differs from the description")?;
        check(get(attr::RIGHTS) == Ok(i.rights), "rights differ from the description")?;
        check(get(attr::PAGER) == Ok(i.pager.0), "pager differs from the description")?;
        check(get(attr::EXCEPTION_HANDLER) == Ok(i.handler.0), "exception handler differs from the description")?;
        check(sc::thread_info(me(), attr::BUDGET) == Ok((i.budget, i.period)), "budget differs from the description")?;
        if i.budget > 0 {
            check(i.budget < i.period, "budget not below its period")?;
        }
        check(!i.pager.is_nil(), "no pager")
    }

    fn mode_self(i: &TaskInfo) -> u64 {
        let r = self_check(i);
        let failed = report(&name("self_check_", i.name()), r);
        let space = get(attr::SPACE).unwrap_or(u64::MAX);
        if let Some(to) = i.arg("report").and_then(user_rt::lookup) {
            let _ = call(to, &Msg::new(Tag::new(SPACE_REPORT, 2, 0), &[space, failed]));
        }
        failed
    }

    fn mode_collect(i: &TaskInfo) -> u64 {
        let n: usize = i.arg("n").and_then(|n| n.parse().ok()).unwrap_or(0);
        let mut spaces = [u64::MAX; 16];
        let mut bad = 0;
        let mut got = 0;
        while got < n.min(spaces.len()) {
            let Ok((from, m)) = receive(ThreadId::ANY, Timeout::NEVER) else { continue };
            if m.tag().label() != SPACE_REPORT {
                continue;
            }
            spaces[got] = m.mr[0];
            bad += m.mr[1];
            got += 1;
            let _ = sc::send(from, &Msg::default(), Timeout::ZERO);
        }
        let distinct = (0..got).all(|a| (0..a).all(|b| spaces[a] != spaces[b]));
        let r = check(got >= 3, "fewer than three tasks reported")
            .and_then(|_| check(bad == 0, "a task runs with other settings than its description's"))
            .and_then(|_| check(distinct, "two tasks share an address space"));
        report("root_task_loads_tasks_into_their_own_spaces", r)
    }

    fn mode_crash(kind: &str) -> u64 {
        println!("test-task: about to crash on purpose ({kind})");
        if kind == "ud2" {
            // SAFETY: raises #UD on purpose: the root task must report it.
            unsafe { core::arch::asm!("ud2") };
        } else {
            // SAFETY: a write to an address nobody backs, on purpose: the
            // root task refuses the fault and reports the crash.
            unsafe { core::ptr::write_volatile(0xdead_b000 as *mut u64, 1) };
        }
        report("crash_was_not_stopped", Err("the task kept running after its crash"))
    }

    fn mode_survive(i: &TaskInfo) -> u64 {
        // Spin for `ms=` milliseconds of TSC time, yielding, then end.
        let ms: u64 = i.arg("ms").and_then(|n| n.parse().ok()).unwrap_or(50);
        let (_, t0, hz) = sc::myself();
        let mut rounds = 0u64;
        loop {
            let (_, t, _) = sc::myself();
            if t - t0 > hz / 1000 * ms {
                break;
            }
            sc::yield_now();
            rounds += 1;
        }
        report("task_runs_on_while_others_crash", check(rounds > 0, "never ran"))
    }

    fn mode_control() -> u64 {
        let root = user_rt::root_task();
        let np = |r: Result<ThreadId, Error>| r.err() == Some(Error::NoPermission);
        let npu = |r: Result<(), Error>| r.err() == Some(Error::NoPermission);
        let r = check(np(sc::thread_create(ThreadId::NIL, layout::utcb(1), ThreadId::NIL)), "create allowed")
            .and_then(|_| check(npu(sc::thread_config(me(), attr::PRIORITY, 1, 0)), "own priority change allowed"))
            .and_then(|_| check(npu(sc::thread_config(root, attr::PRIORITY, 1, 0)), "root priority change allowed"))
            .and_then(|_| check(npu(sc::thread_start(root, 0x1000, 0x2000)), "restart of the root task allowed"))
            .and_then(|_| check(npu(sc::thread_delete(root)), "delete of the root task allowed"))
            .and_then(|_| check(npu(sc::irq_attach(3, me())), "interrupt attach allowed"))
            .and_then(|_| {
                check(
                    sc::thread_info(root, attr::PRIORITY).err() == Some(Error::NoPermission),
                    "spied on the root task",
                )
            });
        report("unprivileged_control_calls_refused", r)
    }

    extern "C" fn parked() -> ! {
        loop {
            let _ = receive(me(), Timeout::NEVER);
        }
    }

    #[repr(C, align(16))]
    struct Stack([u8; 8192]);
    static mut STACK: Stack = Stack([0; 8192]);

    fn stack_top() -> u64 {
        (&raw const STACK) as u64 + 8192 - 8
    }

    fn mode_mcp(i: &TaskInfo) -> u64 {
        let p = i.mcp;
        let r = (|| -> Check {
            check(p < abi::sys::MAX_PRIORITY, "the test needs an MCP below the maximum")?;
            let t =
                sc::thread_create(me(), layout::utcb(1), ThreadId::NIL).map_err(|_| "create in own space refused")?;
            let (prio, _) = sc::thread_info(t, attr::PRIORITY).map_err(|_| "cannot read the new thread")?;
            check(prio <= p, "a new thread got a priority above the creator's MCP")?;
            let np = Err(Error::NoPermission);
            check(sc::thread_config(t, attr::PRIORITY, p + 1, 0) == np, "raised a thread above its MCP")?;
            check(sc::thread_config(t, attr::MCP, p + 1, 0) == np, "gave an MCP above its own")?;
            check(sc::thread_config(me(), attr::PRIORITY, p + 1, 0) == np, "raised itself above its MCP")?;
            check(sc::thread_config(me(), attr::MCP, p + 1, 0) == np, "raised its own MCP")?;
            check(sc::thread_config(t, attr::RIGHTS, rights::IRQ, 0) == np, "gave a right it lacks")?;
            check(sc::thread_config(t, attr::PRIORITY, p, 0) == Ok(()), "could not set priority p")?;
            check(sc::thread_config(t, attr::MCP, p, 0) == Ok(()), "could not set MCP p")?;
            check(sc::thread_config(t, attr::RIGHTS, rights::CONTROL, 0) == Ok(()), "could not pass on its right")?;
            sc::thread_start(t, parked as *const () as u64, stack_top()).map_err(|_| "start refused")?;
            let root = user_rt::root_task();
            check(sc::thread_config(root, attr::PRIORITY, 1, 0) == np, "configured a thread it did not create")?;
            check(sc::thread_delete(t) == Ok(()), "could not delete its own thread")
        })();
        report("mcp_bounds_created_and_raised_threads", r)
    }

    /// The frame the owner took (0: none).
    static OWNED: AtomicU64 = AtomicU64::new(0);

    fn get_frame() -> Option<u64> {
        sc::utcb().br[0] = layout::phys_window().0;
        let s0 = ThreadId(user_rt::kip().sigma0_id);
        let m = call(s0, &Msg::new(Tag::new(sigma0::GET_ANY, 1, 0), &[0])).ok()?;
        (m.tag().label() == 0).then_some(m.mr[0])
    }

    fn stats() -> sigma0::Stats {
        let s0 = ThreadId(user_rt::kip().sigma0_id);
        let m = call(s0, &Msg::new(Tag::new(sigma0::STATS, 0, 0), &[])).unwrap_or_default();
        sigma0::Stats::from_words(&m.mr)
    }

    fn mode_owner() -> u64 {
        let Some(f) = get_frame() else { return report("sigma0_gives_a_frame", Err("GET_ANY refused")) };
        OWNED.store(f, SeqCst);
        // SAFETY: the frame sigma0 just mapped into the phys window.
        unsafe { core::ptr::write_volatile(layout::phys(f) as *mut u64, 0x5eed) };
        let mut failed = report("sigma0_gives_a_frame", Ok(()));
        // Serve the thief once, then end.
        let Ok((from, m)) = receive(ThreadId::ANY, Timeout::NEVER) else { return failed + 1 };
        if m.tag().label() == GIVE_FRAME {
            let _ = sc::send(from, &Msg::new(Tag::new(0, 1, 0), &[f]), Timeout::ZERO);
        }
        // The thief's fault must not have touched the owner's frame.
        // SAFETY: as above.
        let v = unsafe { core::ptr::read_volatile(layout::phys(f) as *const u64) };
        failed += report("refused_fault_leaves_owner_frame_intact", check(v == 0x5eed, "frame changed"));
        failed
    }

    /// The address a probing thread touches.
    static PROBE: AtomicU64 = AtomicU64::new(0);

    extern "C" fn prober() -> ! {
        // SAFETY: a read the pager (sigma0) must refuse: the fault becomes an
        // exception IPC to this thread's handler, which never resumes it.
        unsafe { core::ptr::read_volatile(PROBE.load(SeqCst) as *const u64) };
        parked()
    }

    /// Runs `prober` on `addr` in a new thread of this space paged by
    /// sigma0 and handled by the caller; returns the exception it raised.
    fn probe(addr: u64) -> Result<Msg, &'static str> {
        PROBE.store(addr, SeqCst);
        let s0 = ThreadId(user_rt::kip().sigma0_id);
        let t = sc::thread_create(me(), layout::utcb(1), s0).map_err(|_| "cannot create the probing thread")?;
        sc::thread_config(t, attr::EXCEPTION_HANDLER, me().0, 0).map_err(|_| "handler")?;
        sc::thread_config(t, attr::PRIORITY, get(attr::PRIORITY).unwrap_or(1), 0).map_err(|_| "priority")?;
        sc::thread_start(t, prober as *const () as u64, stack_top()).map_err(|_| "start")?;
        let r = receive(t, Timeout::ticks(sc::myself().2));
        let _ = sc::thread_delete(t);
        let (_, m) = r.map_err(|_| "no exception from the probing thread")?;
        check(m.tag().label() == label::EXCEPTION, "not an exception message")?;
        Ok(m)
    }

    fn mode_thief(i: &TaskInfo) -> u64 {
        let r = (|| -> Check {
            let owner = i.arg("owner").and_then(user_rt::lookup).ok_or("no owner task")?;
            let m = call(owner, &Msg::new(Tag::new(GIVE_FRAME, 0, 0), &[])).map_err(|_| "owner did not answer")?;
            let f = m.mr[0];
            check(f != 0, "owner has no frame")?;
            let before = stats();
            let e = probe(layout::phys(f))?;
            check(e.mr[0] == 14, "not a page fault")?;
            check(e.mr[5] == layout::phys(f), "fault address differs")?;
            let after = stats();
            check(after.refused_owner == before.refused_owner + 1, "sigma0 did not count an ownership refusal")?;
            check(after.faults_mapped == before.faults_mapped, "sigma0 mapped something")
        })();
        report("sigma0_refuses_a_fault_on_another_clients_frame", r)
    }

    fn mode_color(i: &TaskInfo) -> u64 {
        let r = (|| -> Check {
            let offset: u64 = i.arg("offset").and_then(|n| n.parse().ok()).ok_or("no offset= argument")?;
            let own = get_frame().ok_or("sigma0 gave its bound pager no frame")?;
            // Returns only if the probe went wrong; else the test goes on in
            // `resumed`.
            Err(probe_self(layout::phys(own + offset)))
        })();
        report("sigma0_refuses_a_fault_on_a_foreign_colour", r)
    }

    fn usage(part: usize) -> u64 {
        let s0 = ThreadId(user_rt::kip().sigma0_id);
        let m = call(s0, &Msg::new(Tag::new(sigma0::USAGE, 0, 0), &[])).unwrap_or_default();
        m.mr.get(part).copied().unwrap_or(u64::MAX)
    }

    fn mode_frames(i: &TaskInfo) -> u64 {
        let num = |k| i.arg(k).and_then(|v| v.parse::<u64>().ok());
        let r = (|| -> Check {
            let (Some(part), Some(lo), Some(hi), Some(nc), Some(n)) =
                (num("part"), num("lo"), num("hi"), num("ncolors"), num("n"))
            else {
                return Err("needs part= lo= hi= ncolors= n= arguments");
            };
            let color = |f: u64| (f >> 12) % nc;
            let before = usage(part as usize);
            let mut first = 0;
            for k in 0..n {
                let f = get_frame().ok_or("a bound pager got no frame")?;
                check((lo..=hi).contains(&color(f)), "a frame of a foreign colour was handed out")?;
                // The frame is mapped where sigma0 said, and writable.
                // SAFETY: the frame sigma0 just mapped into the phys window.
                unsafe { core::ptr::write_volatile(layout::phys(f) as *mut u64, f) };
                if k == 0 {
                    first = f;
                }
            }
            // A frame of a colour outside the partition, by request.
            let mut foreign = first + 4096 * 1000;
            while (lo..=hi).contains(&color(foreign)) {
                foreign += 4096;
            }
            let s0 = ThreadId(user_rt::kip().sigma0_id);
            sc::utcb().br[0] = layout::phys_window().0;
            let m = call(s0, &Msg::new(Tag::new(sigma0::GET_FRAME, 1, 0), &[foreign])).map_err(|_| "GET_FRAME")?;
            check(m.tag().label() == sigma0::REFUSED_COLOR, "a request for a foreign colour was not refused")?;
            check(usage(part as usize) == before + n, "sigma0's usage count for the partition is wrong")
        })();
        report(&name("bound_pager_gets_only_its_colours_", i.name()), r)
    }

    /// The exception the handler thread saw, and where the faulting main
    /// thread resumes.
    static SEEN: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

    extern "C" fn handler() -> ! {
        let main = ThreadId(SEEN[0].load(SeqCst));
        let Ok((_, m)) = receive(main, Timeout::NEVER) else { parked() };
        for (slot, w) in SEEN[1..].iter().zip([m.tag().label(), m.mr[0], m.mr[5]]) {
            slot.store(w, SeqCst);
        }
        // Resume the main thread in `resumed`, on a stack of its own.
        let resume = [resumed as *const () as u64, (&raw const MAIN_STACK) as u64 + 8192 - 8, 0];
        let _ = reply_wait(main, &Msg::new(Tag::new(0, 3, 0), &resume));
        parked()
    }

    static mut MAIN_STACK: Stack = Stack([0; 8192]);

    /// sigma0's colour refusals before the probe.
    static COLOR_BEFORE: AtomicU64 = AtomicU64::new(0);

    /// Where the bound pager resumes after its refused fault: checks what
    /// its handler saw, then ends the task.
    extern "C" fn resumed() -> ! {
        let (lbl, vector, cr2) = (SEEN[1].load(SeqCst), SEEN[2].load(SeqCst), SEEN[3].load(SeqCst));
        let after = stats();
        let r = check(lbl == label::EXCEPTION && vector == 14, "no page-fault exception reached the handler")
            .and_then(|_| check(cr2 == SEEN[5].load(SeqCst), "fault address differs"))
            .and_then(|_| {
                check(after.refused_color == COLOR_BEFORE.load(SeqCst) + 1, "sigma0 did not refuse for the colour")
            })
            .and_then(|_| check(after.faults_mapped == SEEN[4].load(SeqCst), "sigma0 mapped something"));
        user_rt::exit(report("sigma0_refuses_a_fault_on_a_foreign_colour", r))
    }

    /// Faults on `addr` with this (bound) thread itself, paged by sigma0
    /// for the probe; on success it does not return: a helper thread, its
    /// exception handler, resumes it in [`resumed`]. Returns what went
    /// wrong otherwise.
    fn probe_self(addr: u64) -> &'static str {
        let s = stats();
        COLOR_BEFORE.store(s.refused_color, SeqCst);
        SEEN[0].store(me().0, SeqCst);
        SEEN[4].store(s.faults_mapped, SeqCst);
        SEEN[5].store(addr, SeqCst);
        let Ok(h) = sc::thread_create(me(), layout::utcb(1), ThreadId::NIL) else { return "cannot create the handler" };
        let prio = get(attr::PRIORITY).unwrap_or(1);
        if sc::thread_config(h, attr::PRIORITY, prio, 0).is_err()
            || sc::thread_start(h, handler as *const () as u64, stack_top()).is_err()
        {
            return "cannot start the handler";
        }
        let s0 = user_rt::kip().sigma0_id;
        if sc::thread_config(me(), attr::EXCEPTION_HANDLER, h.0, 0).is_err()
            || sc::thread_config(me(), attr::PAGER, s0, 0).is_err()
        {
            return "cannot make sigma0 its pager";
        }
        // SAFETY: a read sigma0 must refuse; the handler resumes this
        // thread in `resumed`, on a stack of its own.
        unsafe { core::ptr::read_volatile(addr as *const u64) };
        "the fault on a foreign colour was mapped"
    }

    fn name(prefix: &str, n: &str) -> heapless_name::Name {
        heapless_name::Name::new(prefix, n)
    }

    /// A short owned string for test names.
    mod heapless_name {
        pub struct Name {
            buf: [u8; 64],
            len: usize,
        }
        impl Name {
            pub fn new(a: &str, b: &str) -> Name {
                let mut n = Name { buf: [0; 64], len: 0 };
                for c in a.bytes().chain(b.bytes().map(|c| if c == b'-' { b'_' } else { c })) {
                    if n.len < n.buf.len() {
                        n.buf[n.len] = c;
                        n.len += 1;
                    }
                }
                n
            }
        }
        impl core::ops::Deref for Name {
            type Target = str;
            fn deref(&self) -> &str {
                core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
            }
        }
    }

    fn main() {
        let Some(i) = info() else {
            println!("test-task: started without a description entry");
            user_rt::exit(1)
        };
        let failed = match i.arg("mode").unwrap_or("") {
            "self" => mode_self(i),
            "collect" => mode_collect(i),
            m @ ("ud2" | "wild") => mode_crash(m),
            "survive" => mode_survive(i),
            "control" => mode_control(),
            "mcp" => mode_mcp(i),
            "s0-owner" => mode_owner(),
            "s0-thief" => mode_thief(i),
            "s0-color" => mode_color(i),
            "s0-frames" => mode_frames(i),
            other => {
                println!("test-task {}: unknown mode `{other}`", i.name());
                1
            }
        };
        user_rt::exit(failed)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("test-task is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
