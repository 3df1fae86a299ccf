//! The tasks of the pagers' in-guest test image (`pager-tests/images/pagers/system`),
//! one binary chosen by `mode=`. The image runs both pagers at once under
//! the test kernel (it has `DEBUG_TRANSLATE`, which these checks need):
//!
//! - `rt` (an RT task of the RT pager): walks its own page tables and
//!   checks that every page of its image, stack and heap is mapped to a
//!   frame of the RT colours and that its pages use every one of them;
//!   tells the collector its run starts, says `RUN_START` to its pager,
//!   and runs periodic jobs over its heap until the collector stops it;
//!   checks that no job missed its deadline and that its pager saw no
//!   fault of it during the run.
//! - `rt-fault` (paged by the RT pager): after `RUN_START` it flushes one
//!   of its own pages and touches it; the RT pager must report and refuse
//!   the fault (the root task then removes the task).
//! - `driver` (a TS task of the TS pager): heap growth and shrink, maps,
//!   its frames' colours, spawn/exit/wait, a crashing child, the pipe
//!   producer/consumer pair (`ts-load`), the page-fault storm, a child
//!   that exhausts the TS partition (`hog`) and is killed, a storm after
//!   that, the same for a TS task of the description; then reports to the
//!   collector.
//! - `collect` (a test task of the root task): waits for the RT task's
//!   start and the driver's report, stops the RT task, and checks the
//!   run as a whole: both sides made progress, the RT task met every
//!   deadline while the TS side ran out of memory, the RT side's frames
//!   did not change, the only RT fault during a run was `rt-fault`'s.
//! - Children of the driver: `hog`, `segv`, `walk`, `exit status=N`,
//!   `sleep ms=N`; and `hog-on-word from=driver`, a TS task of the
//!   description that exhausts the partition when the driver says so (the
//!   TS pager refuses its fault, the root task removes it).
//!
//! Every check prints `test NAME ... ok` or `test NAME ... FAILED: why`;
//! each task ends with its number of failures as its status.
#![cfg_attr(target_os = "none", no_std, no_main)]

/// A page's colour with `n` colours of 4 KiB pages: its frame number
/// modulo `n` (what `cache_color::ColorMap` computes for a 4 KiB page
/// size).
pub fn colour_of(phys: u64, n: u64) -> u64 {
    (phys >> 12) % n.max(1)
}

#[cfg(target_os = "none")]
mod tests {
    use crate::colour_of;
    use abi::ipc::root::TaskInfo;
    use abi::ipc::Tag;
    use abi::syscall::{self as sc, call, receive, send, Msg};
    use abi::{layout, ThreadId, Timeout};
    use cache_color::ColorSet;
    use core::ops::Range;
    use user_rt::test::{check, report, Check};
    use user_rt::ts::{self, Ended, Fd};
    use user_rt::{info, println};

    user_rt::entry!(main);

    /// Messages between the test tasks.
    const RT_STARTED: u64 = 0x7e60;
    const RT_DONE: u64 = 0x7e61;
    const STOP: u64 = 0x7e62;
    const TS_DONE: u64 = 0x7e63;
    const GO: u64 = 0x7e64;

    fn me() -> ThreadId {
        sc::myself().0
    }

    fn now() -> u64 {
        sc::myself().1
    }

    fn hz() -> u64 {
        sc::myself().2
    }

    fn num(i: &TaskInfo, key: &str, default: u64) -> u64 {
        i.arg(key).and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    fn peer(i: &TaskInfo, key: &str) -> Option<ThreadId> {
        i.arg(key).and_then(user_rt::lookup)
    }

    /// The partition's colours as the test's arguments state them
    /// (`colors=` in the description's syntax, `ncolors=`).
    struct Colours {
        set: ColorSet,
        n: u64,
    }

    fn colours(i: &TaskInfo) -> Result<Colours, &'static str> {
        let n = num(i, "ncolors", 0);
        let spec = i.arg("colors").ok_or("no colors= argument")?;
        let set = cache_color::partition::parse_colors(spec, n as u32).map_err(|_| "bad colors=/ncolors=")?;
        Ok(Colours { set, n })
    }

    /// What the page tables say about some pages of thread `t`.
    #[derive(Default)]
    struct Walk {
        pages: u64,
        mapped: u64,
        foreign: u64,
        /// The first page of a foreign colour: (vaddr, phys).
        first_foreign: Option<(u64, u64)>,
        seen: ColorSet,
        no_call: bool,
    }

    fn walk(t: ThreadId, ranges: impl Iterator<Item = Range<u64>>, c: &Colours) -> Walk {
        let mut w = Walk { seen: ColorSet::EMPTY, ..Walk::default() };
        for r in ranges {
            for v in ((r.start & !0xfff)..r.end).step_by(4096) {
                w.pages += 1;
                match sc::debug_translate(t, v) {
                    Ok((phys, _, _)) => {
                        w.mapped += 1;
                        let col = colour_of(phys, c.n);
                        let _ = w.seen.insert(col as u32);
                        if !c.set.contains(col as u32) {
                            w.foreign += 1;
                            w.first_foreign.get_or_insert((v, phys));
                        }
                    }
                    Err(abi::Error::NoSuchCall) => w.no_call = true,
                    Err(_) => {}
                }
            }
        }
        w
    }

    fn colour_check(w: &Walk) -> Check {
        check(!w.no_call, "no DEBUG_TRANSLATE: boot the test kernel (--features ktest)")?;
        if let Some((v, p)) = w.first_foreign {
            println!("  page {v:#x} is frame {p:#x}, of a foreign colour");
        }
        check(w.mapped > 0, "no page is mapped")?;
        check(w.foreign == 0, "a frame of a foreign colour is mapped")
    }

    // ---- RT side -------------------------------------------------------

    /// One job: reads and writes `pages` heap pages and folds them into a
    /// checksum that must come out as computed here.
    fn job(heap: u64, pages: u64, k: u64) -> bool {
        let mut sum = 0u64;
        for p in 0..pages {
            let a = (heap + p * 4096) as *mut u64;
            for w in (0..512).step_by(64) {
                // SAFETY: a word of the task's own heap (declared, backed
                // and prefaulted before main).
                unsafe {
                    let x = a.add(w).read_volatile();
                    a.add(w).write_volatile(x.wrapping_add(k));
                    sum = sum.wrapping_add(x);
                }
            }
        }
        // Word w of page p was raised by 0+1+..+(k-1) before this job.
        sum == (k * k.saturating_sub(1) / 2).wrapping_mul(pages * 8)
    }

    fn mode_rt(i: &TaskInfo) -> u64 {
        let mut failed = 0;
        let Some(collector) = peer(i, "collector") else { return report("rt_probe_setup", Err("no collector")) };
        let c = match colours(i) {
            Ok(c) => c,
            Err(e) => return report("rt_probe_setup", Err(e)),
        };
        let w = walk(me(), user_rt::memory(), &c);
        println!(
            "rt probe: {} of {} pages mapped, {} of a foreign colour, {} colour(s) used of {}",
            w.mapped,
            w.pages,
            w.foreign,
            w.seen.len(),
            c.set.len()
        );
        failed += report(
            "rt_frames_have_rt_colours",
            colour_check(&w).and_then(|_| check(w.mapped == w.pages, "a page of its memory is not mapped")),
        );
        failed += report(
            "rt_pages_spread_over_all_rt_colours",
            check(w.pages < c.set.len() as u64 || w.seen == c.set, "its pages miss some of the RT colours"),
        );
        let _ = call(collector, &Msg::new(Tag::new(RT_STARTED, 0, 0), &[]));
        let prefaulted = match user_rt::run_start() {
            Ok(n) => n,
            Err(_) => return failed + report("rt_run_starts", Err("its pager refused RUN_START")),
        };
        let (period, deadline) = (i.rt_period.max(hz() / 1000), i.deadline.max(1));
        let pages = num(i, "work", 16).min(i.heap_size / 4096);
        // Two periods on, so that the budget the setup used is replenished.
        let t0 = now() + 2 * period;
        let (mut done, mut misses, mut worst, mut wrong) = (0u64, 0u64, 0u64, 0u64);
        let mut last_end = t0;
        'jobs: for k in 0..i.jobs.max(1) {
            let release = t0 + k * period;
            loop {
                let t = now();
                if t >= release {
                    break;
                }
                if let Ok((_, m)) = receive(collector, Timeout::ticks(release - t)) {
                    if m.tag().label() == STOP {
                        break 'jobs;
                    }
                }
            }
            wrong += !job(layout::HEAP_BASE, pages, k) as u64;
            last_end = now();
            worst = worst.max(last_end - release);
            misses += (last_end > release + deadline) as u64;
            done += 1;
        }
        let s = user_rt::pager_stats(i.pager, me()).unwrap_or_default();
        let us = |t: u64| t as u128 * 1_000_000 / hz() as u128;
        println!(
            "rt probe: {done} jobs over {pages} heap pages, {misses} missed, worst response {} us (deadline {} us); pager: {} faults before the run ({prefaulted} at its start), {} during it",
            us(worst),
            us(deadline),
            s.faults_mapped,
            s.run_faults
        );
        failed += report(
            "rt_jobs_take_no_page_fault",
            check(s.faults_mapped == prefaulted && prefaulted > 0, "the pager mapped something after RUN_START")
                .and_then(|_| check(s.run_faults == 0, "the pager saw a fault during the run")),
        );
        failed += report(
            "rt_task_meets_its_deadlines",
            check(done >= 10, "fewer than 10 jobs ran")
                .and_then(|_| check(wrong == 0, "a job computed a wrong checksum"))
                .and_then(|_| check(misses == 0, "a job missed its deadline")),
        );
        let words = [done, misses, worst, t0, last_end, failed];
        let _ = send(collector, &Msg::new(Tag::new(RT_DONE, words.len(), 0), &words), Timeout::NEVER);
        failed
    }

    fn mode_rt_fault(i: &TaskInfo) -> u64 {
        if user_rt::run_start().is_err() {
            return report("rt_fault_during_run_is_refused", Err("its pager refused RUN_START"));
        }
        let page = i.heap_base;
        // Flush its own (prefaulted, backed) heap page: the next touch
        // faults, during the run.
        let _ = sc::unmap(abi::Fpage::new(page, 12, abi::ipc::rights::ALL), true);
        println!("rt-fault: touching a flushed page during its run, on purpose");
        // SAFETY: a write to the task's own heap page; the pager must refuse
        // the fault and the root task remove the task, so it never returns.
        unsafe { core::ptr::write_volatile(page as *mut u64, 1) };
        report("rt_fault_during_run_is_refused", Err("the fault was mapped"))
    }

    // ---- TS side -------------------------------------------------------

    fn fill(base: u64, pages: u64, tag: u64) -> u64 {
        let mut nonzero = 0;
        for p in 0..pages {
            let a = (base + p * 4096) as *mut u64;
            // SAFETY: a page of the task's own heap or mapping, backed on
            // this touch by the TS pager.
            unsafe {
                nonzero += (a.read_volatile() != 0) as u64;
                a.write_volatile(tag + p);
            }
        }
        nonzero
    }

    fn stats() -> abi::ipc::pager::Stats {
        ts::stats().unwrap_or_default()
    }

    fn heap_check() -> Check {
        const PAGES: u64 = 64;
        let len = (PAGES * 4096) as i64;
        let base = ts::sbrk(len).map_err(|_| "sbrk refused to grow")?;
        check(fill(base, PAGES, 0x1000) == 0, "fresh heap pages did not read zero")?;
        let grown = stats();
        check(ts::sbrk(-len) == Ok(base + PAGES * 4096), "sbrk refused to shrink")?;
        let shrunk = stats();
        check(grown.frames >= shrunk.frames + PAGES, "shrinking did not take the frames back")?;
        check(shrunk.frames_free >= PAGES, "the frames are not on the pager's free list")?;
        check(ts::sbrk(len) == Ok(base), "sbrk refused to grow again")?;
        check(fill(base, PAGES, 0x2000) == 0, "regrown pages kept old contents")?;
        check(ts::sbrk(-len).is_ok(), "sbrk refused to shrink again")?;
        check(ts::brk(layout::HEAP_BASE - 4096) == Err(ts::Error::Invalid), "a break below the heap was taken")
    }

    fn map_check() -> Check {
        let a = ts::map(8 * 4096).map_err(|_| "map refused")?;
        let b = ts::map(4096).map_err(|_| "second map refused")?;
        check(b >= a + 8 * 4096, "mappings overlap")?;
        check(fill(a, 8, 0x3000) + fill(b, 1, 0x4000) == 0, "fresh mapped pages did not read zero")?;
        let before = stats();
        ts::unmap(a, 8 * 4096).map_err(|_| "unmap refused")?;
        check(stats().frames + 8 <= before.frames, "unmap did not take the frames back")?;
        check(ts::unmap(a + 1, 4096) == Err(ts::Error::Invalid), "a misaligned unmap was taken")?;
        ts::unmap(b, 4096).map_err(|_| "second unmap refused")
    }

    fn expect_end(child: ThreadId, how: Ended, status: u64) -> Check {
        let e = ts::wait(Some(child)).map_err(|_| "wait failed")?;
        if e.how != how || e.status != status {
            println!("  child {:#x} ended {:?} with {}", child.0, e.how, e.status);
        }
        check(e.child == child, "wait named another child")?;
        check(e.how == how, "the child ended otherwise")?;
        check(e.status == status, "the child ended with another status")
    }

    fn spawn(args: &str, fds: &[Fd]) -> Result<ThreadId, &'static str> {
        ts::spawn("pager-test", args, fds).map_err(|e| {
            println!("  spawn of pager-test {args}: {e:?}");
            "spawn refused"
        })
    }

    fn spawn_check() -> Check {
        check(ts::wait(None) == Err(ts::Error::NoChild), "wait without children did not fail")?;
        check(ts::spawn("no-such-module", "", &[]) == Err(ts::Error::NoModule), "a missing module was spawned")?;
        let a = spawn("mode=exit status=7", &[])?;
        expect_end(a, Ended::Exited, 7)?;
        check(ts::wait(Some(a)) == Err(ts::Error::NoChild), "a child was waited for twice")?;
        let b = spawn("mode=sleep ms=200", &[])?;
        check(ts::try_wait(Some(b)) == Ok(None), "a sleeping child looked ended")?;
        let e = ts::wait(None).map_err(|_| "wait for any child failed")?;
        check(e.child == b && e.how == Ended::Exited && e.status == 0, "the sleeping child did not end well")
    }

    fn crash_check() -> Check {
        let c = spawn("mode=segv", &[])?;
        expect_end(c, Ended::Crashed, 14)
    }

    fn pipe_check(bytes: u64) -> Check {
        let (r, w) = ts::pipe().map_err(|_| "pipe refused")?;
        let args = |m: &str, fd: Fd| {
            let mut s = heapless::String::<96>::new();
            let _ = core::fmt::write(&mut s, format_args!("mode={m} fd={} bytes={bytes} seed=5", fd.0));
            s
        };
        let p = ts::spawn("ts-load", &args("produce", w), &[w]).map_err(|_| "spawning the producer failed")?;
        let c = ts::spawn("ts-load", &args("consume", r), &[r]).map_err(|_| "spawning the consumer failed")?;
        // Only the children hold the ends now: the consumer sees end of
        // file when the producer closes.
        ts::close(r).and(ts::close(w)).map_err(|_| "close failed")?;
        check(ts::close(r) == Err(ts::Error::BadFd), "a closed descriptor closed twice")?;
        expect_end(p, Ended::Exited, 0)?;
        expect_end(c, Ended::Exited, 0)
    }

    fn pipe_ends_check() -> Check {
        let (r, w) = ts::pipe().map_err(|_| "pipe refused")?;
        check(ts::write(r, b"x") == Err(ts::Error::BadFd), "wrote to a read end")?;
        check(ts::write(w, b"hello") == Ok(5), "a write was not taken")?;
        ts::close(w).map_err(|_| "close failed")?;
        let mut b = [0u8; 16];
        check(ts::read(r, &mut b) == Ok(5) && &b[..5] == b"hello", "the bytes did not come through")?;
        check(ts::read(r, &mut b) == Ok(0), "no end of file after the writer closed")?;
        ts::close(r).map_err(|_| "close failed")?;
        let (r, w) = ts::pipe().map_err(|_| "pipe refused")?;
        ts::close(r).map_err(|_| "close failed")?;
        check(ts::write(w, b"x") == Err(ts::Error::BrokenPipe), "a write without readers did not fail")?;
        ts::close(w).map_err(|_| "close failed")
    }

    fn storm(rounds: u64, pages: u64) -> Check {
        let mut s = heapless::String::<64>::new();
        let _ = core::fmt::write(&mut s, format_args!("mode=storm rounds={rounds} pages={pages}"));
        let c = ts::spawn("ts-load", &s, &[]).map_err(|_| "spawning the storm failed")?;
        expect_end(c, Ended::Exited, 0)
    }

    fn walk_child_check(i: &TaskInfo) -> Check {
        let mut s = heapless::String::<96>::new();
        let _ = core::fmt::write(
            &mut s,
            format_args!(
                "mode=walk colors={} ncolors={}",
                i.arg("colors").unwrap_or(""),
                i.arg("ncolors").unwrap_or("")
            ),
        );
        let c = spawn(&s, &[])?;
        expect_end(c, Ended::Exited, 0)
    }

    fn mode_driver(i: &TaskInfo) -> u64 {
        let Some(collector) = peer(i, "collector") else { return report("ts_driver_setup", Err("no collector")) };
        let c = match colours(i) {
            Ok(c) => c,
            Err(e) => return report("ts_driver_setup", Err(e)),
        };
        let mut failed = 0;
        failed += report("ts_heap_grows_and_shrinks", heap_check());
        failed += report("ts_maps_and_unmaps", map_check());
        failed += report("ts_frames_have_ts_colours", colour_check(&walk(me(), user_rt::memory(), &c)));
        failed += report("ts_child_frames_have_ts_colours", walk_child_check(i));
        failed += report("ts_spawn_exit_wait", spawn_check());
        failed += report("ts_crashing_child_is_reported_to_its_parent", crash_check());
        failed += report("ts_pipe_ends_eof_and_broken_pipe", pipe_ends_check());
        failed += report("ts_pipe_producer_consumer", pipe_check(num(i, "pipe_bytes", 65536)));
        let (rounds, pages) = (num(i, "storm_rounds", 16), num(i, "storm_pages", 64));
        failed += report("ts_page_fault_storm", storm(rounds, pages));
        let before = stats_all(i.pager);
        let hog_start = now();
        let hog = spawn("mode=hog", &[]).and_then(|h| expect_end(h, Ended::OutOfMemory, 0));
        let hog_end = now();
        let after = stats_all(i.pager);
        failed += report(
            "ts_task_exhausting_its_partition_is_killed",
            hog.and_then(|_| check(after.oom_kills == before.oom_kills + 1, "the pager counted no kill"))
                .and_then(|_| check(after.frames <= before.frames + 16, "the hog's frames were not taken back")),
        );
        println!(
            "ts driver: the hog took {} us to exhaust the partition; {} frame(s) on the TS pager's free list after",
            (hog_end - hog_start) as u128 * 1_000_000 / hz() as u128,
            after.frames_free
        );
        failed += report("ts_runs_on_after_an_oom_kill", storm(2, pages));
        if let Some(hog) = peer(i, "hog") {
            failed += report("ts_description_task_exhausting_its_partition_is_removed", hog_check(i.pager, hog, pages));
        }
        let words = [failed, hog_start, hog_end];
        let _ = call(collector, &Msg::new(Tag::new(TS_DONE, words.len(), 0), &words));
        failed
    }

    /// Lets `hog` (a task of the description, waiting for the word) eat
    /// the partition: the pager refuses the fault it cannot back, the root
    /// task (its handler) removes it, and its frames come back.
    fn hog_check(pager: ThreadId, hog: ThreadId, pages: u64) -> Check {
        let before = stats_all(pager);
        call(hog, &Msg::new(Tag::new(GO, 0, 0), &[])).map_err(|_| "the hog did not take the word")?;
        let gone = |t| sc::thread_info(t, abi::sys::attr::PRIORITY) == Err(abi::Error::InvalidThread);
        let until = now() + 60 * hz();
        while !(gone(hog) && stats_all(pager).oom_kills > before.oom_kills) && now() < until {
            let _ = receive(me(), Timeout::ticks(hz() / 100));
        }
        let after = stats_all(pager);
        check(after.oom_kills == before.oom_kills + 1, "the pager counted no kill")?;
        check(gone(hog), "the root task did not remove the hog")?;
        check(after.frames <= before.frames + 16, "the hog's frames were not taken back")?;
        storm(2, pages)
    }

    fn stats_all(pager: ThreadId) -> abi::ipc::pager::Stats {
        user_rt::pager_stats(pager, ThreadId::NIL).unwrap_or_default()
    }

    fn mode_hog() -> u64 {
        const STEP: i64 = 4 << 20;
        loop {
            let Ok(base) = ts::sbrk(STEP) else {
                println!("hog: the heap stopped growing before the partition was exhausted");
                return 1;
            };
            fill(base, STEP as u64 / 4096, 0);
        }
    }

    /// A task of the description that hogs the partition once the task
    /// named by `from=` says so.
    fn mode_hog_on_word(i: &TaskInfo) -> u64 {
        let Some(from) = peer(i, "from") else { return 1 };
        loop {
            if let Ok((_, m)) = receive(from, Timeout::NEVER) {
                if m.tag().label() == GO {
                    let _ = send(from, &Msg::default(), Timeout::ZERO);
                    return mode_hog();
                }
            }
        }
    }

    fn mode_segv() -> u64 {
        let Ok(a) = ts::map(4096) else { return 1 };
        fill(a, 1, 0);
        if ts::unmap(a, 4096).is_err() {
            return 1;
        }
        // SAFETY: a write to a page it gave back, on purpose: the pager
        // refuses the fault and ends the task as crashed.
        unsafe { core::ptr::write_volatile(a as *mut u64, 1) };
        1
    }

    fn mode_walk(i: &TaskInfo) -> u64 {
        let Ok(c) = colours(i) else { return 1 };
        let heap_pages = (i.heap_size / 4096).min(16);
        fill(layout::HEAP_BASE, heap_pages, 0x5000);
        let Ok(m) = ts::map(4 * 4096) else { return 1 };
        fill(m, 4, 0x6000);
        let w = walk(me(), user_rt::memory().chain(core::iter::once(m..m + 4 * 4096)), &c);
        match colour_check(&w) {
            Ok(()) if w.mapped >= heap_pages + 4 => 0,
            Ok(()) => {
                println!("walk: only {} page(s) mapped", w.mapped);
                1
            }
            Err(e) => {
                println!("walk: {e}");
                1
            }
        }
    }

    fn mode_sleep(i: &TaskInfo) -> u64 {
        let until = now() + num(i, "ms", 100) * hz() / 1000;
        while now() < until {
            let _ = receive(me(), Timeout::ticks(until - now()));
        }
        0
    }

    // ---- the collector ---------------------------------------------------

    /// Frames sigma0 handed to partition `p`.
    fn usage(p: usize) -> u64 {
        let s0 = ThreadId(user_rt::kip().sigma0_id);
        let m = call(s0, &Msg::new(Tag::new(abi::ipc::sigma0::USAGE, 0, 0), &[])).unwrap_or_default();
        m.mr.get(p).copied().unwrap_or(u64::MAX)
    }

    fn mode_collect(i: &TaskInfo) -> u64 {
        let names = ["rt", "fault", "driver", "rtpager", "tspager"];
        let mut ids = [ThreadId::NIL; 5];
        for (id, n) in ids.iter_mut().zip(names) {
            match peer(i, n) {
                Some(t) => *id = t,
                None => return report("collector_setup", Err("a task named in its arguments is unknown")),
            }
        }
        let [rt, fault, driver, rtp, tsp] = ids;
        let rtpart = num(i, "rtpart", 0) as usize;
        let secs = |s: u64| Timeout::ticks(s * hz());
        let mut failed = 0;
        let started = receive(rt, secs(120)).is_ok_and(|(_, m)| m.tag().label() == RT_STARTED);
        let _ = send(rt, &Msg::default(), Timeout::ZERO);
        let (usage0, rt0) = (usage(rtpart), user_rt::pager_stats(rtp, ThreadId::NIL).unwrap_or_default());
        let ts_done = receive(driver, secs(600)).ok().filter(|(_, m)| m.tag().label() == TS_DONE).map(|(_, m)| m);
        let _ = send(driver, &Msg::default(), Timeout::ZERO);
        // Let the RT task run on a while after the TS side finished, then
        // stop it and take its report (it may come first).
        let settle = num(i, "settle_ms", 50) * hz() / 1000;
        let _ = receive(me(), Timeout::ticks(settle));
        let mut rt_done = None;
        for _ in 0..10_000 {
            if let Ok((_, m)) = receive(rt, Timeout::ZERO) {
                if m.tag().label() == RT_DONE {
                    rt_done = Some(m);
                    break;
                }
            }
            let _ = send(rt, &Msg::new(Tag::new(STOP, 0, 0), &[]), Timeout::ticks(hz() / 1000));
        }
        let (usage1, rt1, ts1) = (
            usage(rtpart),
            user_rt::pager_stats(rtp, ThreadId::NIL).unwrap_or_default(),
            user_rt::pager_stats(tsp, ThreadId::NIL).unwrap_or_default(),
        );
        let faulter = user_rt::pager_stats(rtp, fault).unwrap_or_default();
        let (Some(ts_done), Some(rt_done), true) = (ts_done, rt_done, started) else {
            return report(
                "both_pagers_serve_their_tasks_in_one_run",
                Err("the RT task or the TS driver did not report"),
            );
        };
        let [ts_failed, hog_start, hog_end, ..] = ts_done.mr;
        let [jobs, misses, _worst, first_release, last_end, _] = rt_done.mr;
        println!(
            "collector: RT {jobs} jobs, {misses} missed; TS driver {ts_failed} failure(s); RT pager {} frames, {} faults mapped, {} during runs; TS pager {} faults mapped, {} refused, {} OOM kill(s); sigma0 RT partition frames {usage0} -> {usage1}",
            rt1.frames, rt1.faults_mapped, rt1.run_faults, ts1.faults_mapped, ts1.faults_refused, ts1.oom_kills
        );
        failed += report(
            "both_pagers_serve_their_tasks_in_one_run",
            check(jobs >= 10, "the RT task ran fewer than 10 jobs")
                .and_then(|_| check(ts_failed == 0, "a TS check failed"))
                .and_then(|_| check(rt1.faults_mapped > 0 && ts1.faults_mapped > 0, "a pager mapped nothing")),
        );
        failed += report(
            "rt_meets_deadlines_while_ts_exhausts_its_partition",
            check(misses == 0, "an RT job missed its deadline")
                .and_then(|_| check(ts1.oom_kills >= 1, "the TS side never ran out of memory"))
                .and_then(|_| {
                    check(first_release < hog_start && hog_end < last_end, "the RT run did not span the OOM")
                }),
        );
        failed += report(
            "rt_side_untouched_by_ts_memory_exhaustion",
            check(usage1 == usage0, "sigma0 handed the RT partition frames during the run")
                .and_then(|_| check(rt1.frames == rt0.frames, "the RT pager's frames changed during the run")),
        );
        failed += report(
            "rt_fault_during_run_is_reported_and_refused",
            check(faulter.run_faults == 1, "the RT pager did not refuse rt-fault's fault during its run")
                .and_then(|_| check(rt1.run_faults == 1, "another RT task faulted during its run")),
        );
        failed
    }

    fn main() {
        let Some(i) = info() else {
            println!("pager-test: started without a description");
            user_rt::exit(1)
        };
        let failed = match i.arg("mode").unwrap_or("") {
            "rt" => mode_rt(i),
            "rt-fault" => mode_rt_fault(i),
            "driver" => mode_driver(i),
            "collect" => mode_collect(i),
            "hog" => mode_hog(),
            "hog-on-word" => mode_hog_on_word(i),
            "segv" => mode_segv(),
            "walk" => mode_walk(i),
            "exit" => num(i, "status", 0),
            "sleep" => mode_sleep(i),
            other => {
                println!("pager-test {}: unknown mode `{other}`", i.name());
                1
            }
        };
        user_rt::exit(failed)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("pager-test is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
