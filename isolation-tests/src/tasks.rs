//! Every mode but `pager` (see the crate doc).

use abi::ipc::root::TaskInfo;
use abi::ipc::{pager as pproto, Tag};
use abi::sys::{allow, attr};
use abi::syscall::{self as sc, call, receive, send, Msg};
use abi::{layout, Error, ThreadId, Timeout};
use user_rt::test::{check, report, Check};
use user_rt::ts::{self, Ended};
use user_rt::{info, println};

user_rt::entry!(main);

/// A task's report to the collector: MR1 = its failed checks.
const REPORT: u64 = 0x7f00;
/// The collector's word to a `work` task.
const GO: u64 = 0x7f01;
/// What `echo` and `narrow` answer with: the label plus one.
const PING: u64 = 0x7f02;

fn me() -> ThreadId {
    sc::myself().0
}

fn now() -> u64 {
    sc::myself().1
}

/// TSC ticks in `n` milliseconds.
fn ms(n: u64) -> u64 {
    sc::myself().2 / 1000 * n
}

fn sleep(ticks: u64) {
    let _ = receive(me(), Timeout::ticks(ticks));
}

fn num(i: &TaskInfo, key: &str, default: u64) -> u64 {
    i.arg(key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peer(i: &TaskInfo, key: &str) -> Result<ThreadId, &'static str> {
    i.arg(key).and_then(user_rt::lookup).ok_or("a peer named in the arguments is unknown")
}

/// Sends the collector (`collector=` argument) this task's failures.
fn tell_collector(i: &TaskInfo, failed: u64) {
    let Ok(c) = peer(i, "collector") else {
        println!("isolation-test {}: no collector to report to", i.name());
        return;
    };
    if let Err(e) = send(c, &Msg::new(Tag::new(REPORT, 1, 0), &[failed]), Timeout::NEVER) {
        println!("isolation-test {}: the report to the collector failed ({e:?})", i.name());
    }
}

/// A send of an empty message to `to` that must not wait.
fn poke(to: ThreadId) -> Result<(), Error> {
    send(to, &Msg::new(Tag::new(PING, 0, 0), &[]), Timeout::ZERO)
}

fn refused(r: Result<(), Error>) -> bool {
    r == Err(Error::NoPermission)
}

/// What the kernel refused this task's space so far: (sends, control calls).
fn refusals() -> (u64, u64) {
    sc::thread_info(me(), attr::REFUSED).unwrap_or((u64::MAX, u64::MAX))
}

/// `probe`: the access control as a TS task meets it.
fn mode_probe(i: &TaskInfo) -> u64 {
    let root = user_rt::root_task();
    let sigma0 = ThreadId(user_rt::kip().sigma0_id);
    let mut failed = 0;
    let before = refusals();
    failed += report("ts_task_starts_with_no_refusals", check(before == (0, 0), "refusals counted before it ran"));
    let list = sc::thread_info(me(), attr::ALLOW);
    failed += report(
        "ts_task_has_an_allow_list",
        check(matches!(list, Ok((_, 0))), "its space has no list (it may send anywhere)"),
    );
    // A call, not just a send: the receive phase must not run either.
    let stats = Msg::new(Tag::new(pproto::STATS, 1, 0), &[0]);
    failed += report("ts_task_may_not_send_to_the_root_task", check(refused(poke(root)), "sent to the root task"));
    failed += report(
        "ts_task_may_not_call_the_root_task",
        check(call(root, &stats).err() == Some(Error::NoPermission), "called the root task"),
    );
    failed += report("ts_task_may_not_send_to_sigma0", check(refused(poke(sigma0)), "sent to sigma0"));
    let rt_pager = peer(i, "rtpager");
    failed += report(
        "ts_task_may_not_call_the_rt_pager",
        rt_pager.and_then(|p| check(call(p, &stats).err() == Some(Error::NoPermission), "called the RT pager")),
    );
    let rt = peer(i, "rt");
    failed +=
        report("ts_task_may_not_send_to_an_rt_task", rt.and_then(|t| check(refused(poke(t)), "sent to an RT task")));
    // With a long timeout: the refusal comes at once, never a wait.
    let t0 = now();
    let r = rt.map(|t| send(t, &Msg::default(), Timeout::NEVER));
    failed += report(
        "refusal_returns_at_once_even_with_a_timeout",
        check(r == Ok(Err(Error::NoPermission)) && now() - t0 < ms(5), "the send blocked or went through"),
    );
    let sends = 6;
    let np = |r: Result<(), Error>| r == Err(Error::NoPermission);
    let r = (|| -> Check {
        let created = sc::thread_create(ThreadId::NIL, layout::utcb(1), ThreadId::NIL);
        check(created.err() == Some(Error::NoPermission), "created a thread")?;
        check(np(sc::thread_config(me(), attr::PRIORITY, 39, 0)), "raised its own priority")?;
        check(np(sc::thread_config(me(), attr::ALLOW, ThreadId::ANY.0, allow::ADD)), "lifted its own list")?;
        check(np(sc::thread_config(root, attr::PRIORITY, 1, 0)), "configured the root task")?;
        check(np(sc::thread_start(root, 0x1000, 0x2000)), "restarted the root task")?;
        check(np(sc::thread_delete(sigma0)), "deleted sigma0")?;
        check(np(sc::irq_attach(0, me())), "routed an interrupt")?;
        check(sc::pmc_program(abi::pmc::ALL_EVENTS).err() == Some(Error::NoPermission), "programmed the counters")
    })();
    let calls = 8;
    failed += report("ts_task_control_calls_refused", r);
    // What it may do: its pager (a call, answered), a TS peer, and the
    // kernel's messages for it (its page faults: it is demand paged).
    let pager = info().map_or(ThreadId::NIL, |i| i.pager);
    failed += report(
        "ts_task_may_call_its_pager",
        check(call(pager, &stats).is_ok_and(|m| m.tag().label() == 0), "its pager's answer did not arrive"),
    );
    let echo = peer(i, "peer");
    let ping = Msg::new(Tag::new(PING, 1, 0), &[41]);
    failed += report(
        "ts_task_may_call_a_ts_peer",
        echo.and_then(|e| {
            check(call(e, &ping).is_ok_and(|m| m.tag().label() == PING + 1 && m.mr[0] == 42), "no answer")
        }),
    );
    // A TS peer with a list that names only the collector still answers a
    // call: a reply needs no list entry.
    let narrow = peer(i, "narrow");
    failed += report(
        "reply_to_a_caller_needs_no_list_entry",
        narrow.and_then(|n| check(call(n, &ping).is_ok_and(|m| m.tag().label() == PING + 1), "no answer")),
    );
    failed += report(
        "refusals_counted_exactly",
        check(refusals() == (sends, calls), "the kernel's counts differ from the refusals made"),
    );
    // A child the TS pager spawns is held to its pager: its own refusals
    // are its exit status.
    let r = ts::spawn("isolation-test", "mode=child", &[])
        .map_err(|_| "spawn")
        .and_then(|c| ts::wait(Some(c)).map_err(|_| "wait"))
        .and_then(|e| {
            check(e.how == Ended::Exited && e.status == 0, "the child reached the root task, sigma0 or its parent")
        });
    failed += report("spawned_ts_child_is_held_to_its_pager", r);
    tell_collector(i, failed);
    failed
}

/// `child`: a task the TS pager spawned (from no description entry). Its
/// space's list holds the TS pager's space alone; its status counts what
/// went wrong.
fn mode_child() -> u64 {
    let root = user_rt::root_task();
    let sigma0 = ThreadId(user_rt::kip().sigma0_id);
    // Its description came from the TS pager (named after its parent).
    let mut wrong = !info().is_some_and(|i| i.name().ends_with("/isolation-test")) as u64;
    for t in [root, sigma0] {
        wrong += !refused(poke(t)) as u64;
    }
    wrong += (refusals() != (2, 0)) as u64;
    wrong += !matches!(sc::thread_info(me(), attr::ALLOW), Ok((_, 0))) as u64;
    wrong
}

/// `echo` and `narrow`: answers every call with the label plus one and
/// the first word plus one; `narrow` (with `peer=`) first checks that its
/// explicit list keeps it from that TS peer.
fn mode_echo(i: &TaskInfo) -> u64 {
    let mut failed = 0;
    if let Some(p) = i.arg("peer") {
        let r = user_rt::lookup(p).ok_or("peer unknown").and_then(|t| {
            check(refused(poke(t)), "sent to a TS peer that its own list does not name")?;
            check(refusals() == (1, 0), "the refusal was not counted")
        });
        failed += report("explicit_allow_list_replaces_the_default", r);
        tell_collector(i, failed);
    }
    let (mut from, mut m) = loop {
        if let Ok(x) = receive(ThreadId::ANY, Timeout::NEVER) {
            break x;
        }
    };
    loop {
        let reply = Msg::new(Tag::new(m.tag().label() + 1, 1, 0), &[m.mr[0] + 1]);
        (from, m) = match sc::reply_wait(from, &reply) {
            Ok(x) => x,
            Err(_) => loop {
                if let Ok(x) = receive(ThreadId::ANY, Timeout::NEVER) {
                    break x;
                }
            },
        };
    }
}

/// Crashes the way `kind` says.
/// Each instruction raises the exception it is there for in ring 3; the
/// kernel reports it to the task's handler, which removes the task.
fn crash(kind: &str) -> ! {
    match kind {
        // SAFETY: a write to an address no pager backs: a page fault.
        "wild" => unsafe { core::ptr::write_volatile(0xdead_b000 as *mut u64, 1) },
        // SAFETY: a division by zero: #DE.
        "div0" => unsafe {
            core::arch::asm!("xor edx, edx", "xor eax, eax", "div eax", out("eax") _, out("edx") _, options(nostack))
        },
        // SAFETY: `cli` in ring 3 (IOPL 0): #GP.
        "gp" => unsafe { core::arch::asm!("cli", options(nostack, nomem)) },
        // SAFETY: a breakpoint: #BP.
        "int3" => unsafe { core::arch::asm!("int3", options(nostack, nomem)) },
        // SAFETY: an undefined instruction: #UD.
        _ => unsafe { core::arch::asm!("ud2", options(nostack, nomem)) },
    }
    // SAFETY: as the last arm (should the handler ever resume it).
    unsafe { core::arch::asm!("ud2", options(noreturn, nostack, nomem)) }
}

/// `crashloop`: spawns `n` children that crash, one after another.
fn mode_crashloop(i: &TaskInfo) -> u64 {
    let n = num(i, "n", 8);
    let kinds = ["ud2", "wild", "div0", "gp", "int3"];
    let mut crashed = 0;
    for k in 0..n {
        let mut args = heapless::String::<32>::new();
        let _ = core::fmt::write(&mut args, format_args!("mode=crash kind={}", kinds[k as usize % kinds.len()]));
        let e = ts::spawn("isolation-test", &args, &[]).ok().and_then(|c| ts::wait(Some(c)).ok());
        crashed += e.is_some_and(|e| e.how == Ended::Crashed) as u64;
    }
    let failed =
        report("crashing_ts_children_are_reported_to_their_parent", check(crashed == n, "a child did not crash"));
    tell_collector(i, failed);
    failed
}

/// One unit of work: a little arithmetic the compiler cannot drop.
fn unit(x: u64) -> u64 {
    let mut v = x;
    for k in 0..1000u64 {
        v = core::hint::black_box(v.wrapping_mul(6364136223846793005).wrapping_add(k));
    }
    v
}

/// `work`: `units=N` units of work (after the collector's word, `go=1`).
fn mode_work(i: &TaskInfo) -> u64 {
    if i.arg("go") == Some("1") {
        // Working meanwhile: the word comes when the TS side was hit.
        let mut v = 1;
        while !matches!(receive(ThreadId::ANY, Timeout::ZERO), Ok((_, m)) if m.tag().label() == GO) {
            v = unit(v);
        }
    }
    let n = num(i, "units", 1000);
    let (t0, mut v) = (now(), 0);
    for k in 0..n {
        v = unit(v ^ k);
    }
    core::hint::black_box(v);
    let failed = report("ts_side_makes_progress", Ok(()));
    println!("isolation-test {}: {n} units of work in {} ticks", i.name(), now() - t0);
    tell_collector(i, failed);
    failed
}

/// `spin`: never blocks; reports once the RT side preempted it enough.
fn mode_spin(i: &TaskInfo) -> ! {
    let want = num(i, "preempted", 20);
    let syscalls = i.arg("syscalls") == Some("1");
    let mut told = false;
    let mut v = 1u64;
    loop {
        if syscalls {
            // A stream of the cheapest calls: the clock, and an IPC that
            // cannot wait (to itself, refused at once).
            for _ in 0..64 {
                v = v.wrapping_add(sc::myself().1);
                let _ = receive(me(), Timeout::ZERO);
            }
        } else {
            v = unit(v);
        }
        if !told && sc::thread_info(me(), attr::PREEMPTIONS).is_ok_and(|(p, _)| p >= want) {
            told = true;
            let failed = report("ts_spinner_preempted_by_the_rt_side", Ok(()));
            tell_collector(i, failed);
        }
        core::hint::black_box(v);
    }
}

fn outb(port: u16, v: u8) {
    // SAFETY: PIT programming through ports the root task granted this
    // task (the description's `ports`); nothing else uses the PIT.
    unsafe { core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nostack, nomem)) };
}

/// `storm`: PIT channel 0 as fast as `divisor=` says, every interrupt
/// taken and acknowledged, forever.
fn mode_storm(i: &TaskInfo) -> u64 {
    let divisor = num(i, "divisor", 60).clamp(2, 0xffff) as u16;
    let n = num(i, "n", 1000);
    let line = 0u32;
    let src = ThreadId::irq(line);
    let r = (|| -> Check {
        check(user_rt::request_ports(0x40, 2), "the root task did not grant the PIT ports")?;
        sc::irq_attach(line as u64, me()).map_err(|_| "the kernel refused the interrupt line")?;
        for (port, v) in [(0x43u16, 0x34u8), (0x40, divisor as u8), (0x40, (divisor >> 8) as u8)] {
            outb(port, v);
        }
        Ok(())
    })();
    if report("ts_task_drives_an_interrupt_storm", r) != 0 {
        tell_collector(i, 1);
        return 1;
    }
    let (t0, mut got) = (now(), 0u64);
    loop {
        if receive(src, Timeout::NEVER).is_ok() {
            got += 1;
            // The reply unmasks the line: the next interrupt may come.
            let _ = send(src, &Msg::default(), Timeout::ZERO);
        }
        if got == n {
            // Every interrupt is taken: the rate is the PIT's (the kernel
            // delivers a line at once, not at its next timer event).
            let t = (now() - t0).max(1);
            let (rate, want) = (n * sc::myself().2 / t, 1_193_182 / divisor as u64);
            println!("isolation-test {}: {n} interrupts taken in {t} ticks ({rate} per second)", i.name());
            let failed = report(
                "interrupt_storm_at_the_pit_rate",
                check(rate >= want * 9 / 10, "fewer interrupts than the PIT raised"),
            );
            tell_collector(i, failed);
        }
    }
}

/// `toucher`: writes its heap page by page, round and round.
fn mode_toucher(i: &TaskInfo) -> ! {
    let (base, pages) = (i.heap_base, (i.heap_size / 4096).max(1));
    let (mut n, mut v) = (0u64, 1u64);
    loop {
        let p = base + (n % pages) * 4096;
        // SAFETY: a page of the task's own heap, as its description
        // declares it; its pager backs it on first touch.
        unsafe { core::ptr::write_volatile(p as *mut u64, v) };
        v = unit(v);
        n += 1;
    }
}

/// `overrun`: an RT task whose job `spin_at` never ends.
fn mode_overrun(i: &TaskInfo) -> u64 {
    let spin_at = num(i, "spin_at", 10);
    let period = i.rt_period.max(1);
    let first = now().next_multiple_of(period) + period;
    let mut k = 0;
    loop {
        let release = first + k * period;
        let t = now();
        if release > t {
            sleep(release - t);
        }
        if k == spin_at {
            println!("isolation-test {}: job {k} loops forever now", i.name());
            let mut v = 1u64;
            loop {
                v = core::hint::black_box(unit(v));
            }
        }
        core::hint::black_box(unit(k));
        k += 1;
    }
}

/// `watchdog`: the exception handler of the RT task `task=`, which
/// overruns its budget: the kernel's notice of it must come, again one
/// period later (held at its budget meanwhile), and then the watchdog has
/// the root task stop it for good.
fn mode_watchdog(i: &TaskInfo) -> u64 {
    use abi::ipc::{label, root};
    let mut failed = 0;
    let Ok(t) = peer(i, "task") else {
        return report("overrun_reported_to_its_handler", Err("no task= to watch"));
    };
    let described = user_rt::system()
        .and_then(|s| (0..s.tasks).filter_map(user_rt::task_info).find(|d| Some(d.name()) == i.arg("task")));
    let notice = || receive(t, Timeout::ticks(ms(5000))).ok().filter(|(_, m)| m.tag().label() == label::BUDGET);
    let first = notice().map(|(_, m)| (now(), m.mr[0], m.mr[1], m.mr[2]));
    failed += report(
        "overrun_reported_to_its_handler",
        check(
            first.is_some_and(|(_, b, p, _)| described.is_some_and(|d| b == d.budget && p == d.period && b > 0)),
            "no budget notice, or not with the task's budget and period",
        ),
    );
    // One period later by the kernel's clock: the notices' replenishment
    // times (MR3) are a period apart, within half a budget. The arrival
    // times differ by the watchdog's own scheduling delay as well, so
    // they are only checked to be about a period apart (half to one and a
    // half).
    let second = notice().map(|(_, m)| (now(), m.mr[2]));
    failed += report(
        "overrun_held_at_its_budget_every_period",
        check(
            matches!((first, second), (Some((t1, b, p, r1)), Some((t2, r2)))
                if r2.wrapping_sub(r1).abs_diff(p) < b / 2 && (p / 2..p + p / 2).contains(&(t2 - t1))),
            "the next notice did not come one period later",
        ),
    );
    let stop = call(user_rt::root_task(), &Msg::new(Tag::new(root::STOP, 1, 0), &[t.0]));
    failed += report(
        "overrunning_task_stopped_at_its_handlers_word",
        check(
            stop.is_ok_and(|m| m.tag().label() == 0)
                && sc::thread_info(t, attr::PRIORITY).err() == Some(Error::InvalidThread),
            "the root task did not remove it",
        ),
    );
    failed
}

/// `collect`: the image's checks that need the whole run.
fn mode_collect(i: &TaskInfo) -> u64 {
    let deadline = now() + ms(num(i, "ms", 10_000));
    let mut failed = 0;
    let names = |key| i.arg(key).into_iter().flat_map(|v| v.split(','));
    // Tasks that must be gone: a stale id reads as an invalid thread
    // before any other check (while it lives, the collector may not ask).
    for n in names("gone") {
        let t = user_rt::lookup(n);
        while t.is_some_and(|t| sc::thread_info(t, attr::PRIORITY).err() != Some(Error::InvalidThread))
            && now() < deadline
        {
            sleep(ms(2));
        }
        let r = t.ok_or("unknown task").and_then(|t| {
            check(sc::thread_info(t, attr::PRIORITY).err() == Some(Error::InvalidThread), "it still runs")
        });
        let mut name = heapless::String::<64>::new();
        for c in n.chars().chain("_was_removed".chars()) {
            let _ = name.push(if c == '-' { '_' } else { c });
        }
        failed += report(&name, r);
    }
    // A pager that stopped answering: a call with a timeout times out (it
    // answered before).
    if let Some(n) = i.arg("silent") {
        let stats = Msg::new(Tag::new(pproto::STATS, 1, 0), &[0]);
        let r = user_rt::lookup(n).ok_or("unknown task").and_then(|p| {
            let mut answered = false;
            loop {
                match sc::ipc(p, p, Timeout::ticks(ms(2)), Timeout::ticks(ms(2)), &stats) {
                    Ok(_) => answered = true,
                    Err(Error::Timeout) if answered => return Ok(()),
                    Err(_) if now() >= deadline => return Err("it kept answering, or never did"),
                    Err(_) => {}
                }
                sleep(ms(2));
            }
        });
        failed += report("hung_ts_pager_answers_nobody", r);
    }
    if let Some(n) = i.arg("go") {
        let r = user_rt::lookup(n).ok_or("unknown task").and_then(|t| {
            send(t, &Msg::new(Tag::new(GO, 0, 0), &[]), Timeout::ticks(deadline.saturating_sub(now())))
                .map_err(|_| "the worker did not take the word")
        });
        failed += report("collector_word_reached_the_ts_side", r);
    }
    let want = num(i, "reports", 0);
    let (mut got, mut bad) = (0, 0);
    while got < want && now() < deadline {
        if let Ok((_, m)) = receive(ThreadId::ANY, Timeout::ticks(deadline - now())) {
            if m.tag().label() == REPORT {
                got += 1;
                bad += m.mr[0];
            }
        }
    }
    println!("isolation-test {}: {got} of {want} report(s), {bad} failed check(s) among them", i.name());
    failed +=
        report("every_ts_check_reported_in_time", check(got == want && bad == 0, "a report is missing or failed"));
    failed
}

fn main() {
    let Some(i) = info() else {
        println!("isolation-test: started without a description entry");
        user_rt::exit(1)
    };
    let failed = match i.arg("mode").unwrap_or("") {
        "probe" => mode_probe(i),
        "child" => mode_child(),
        "echo" => mode_echo(i),
        "crash" => crash(i.arg("kind").unwrap_or("ud2")),
        "crashloop" => mode_crashloop(i),
        "work" => mode_work(i),
        "spin" => mode_spin(i),
        "storm" => mode_storm(i),
        "toucher" => mode_toucher(i),
        "pager" => crate::pager::run(i),
        "overrun" => mode_overrun(i),
        "watchdog" => mode_watchdog(i),
        "collect" => mode_collect(i),
        other => {
            println!("isolation-test {}: unknown mode `{other}`", i.name());
            1
        }
    };
    user_rt::exit(failed)
}
