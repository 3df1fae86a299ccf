//! The harness's main program (see the crate doc): the periodic run, the
//! hand-over of the records to the leader, the leader's dump, and the
//! self-test.

use crate::measure::{counter, mode_hint, Probe};
use crate::schedule::Schedule;
use crate::wire::{self, FETCH, JOB_WORDS, PER_MESSAGE};
use crate::{check, Args, Heap, Mismatch, Workload};
use abi::ipc::root::{Role, TaskInfo, NAME_MAX};
use abi::ipc::{Tag, REG_MRS};
use abi::pmc::Event;
use abi::syscall::{self, Msg};
use abi::Timeout;
use core::fmt::{self, Write};
use record::{Header, Job, Writer};
use user_rt::println;

/// Most RT tasks one run records (the description's task limit).
const MAX_RT: usize = 24;

/// Runs the task's workload `W` as its description says, then ends it.
pub fn run<W: Workload>() -> ! {
    let Some(info) = user_rt::info() else {
        println!("harness: started without a description entry");
        user_rt::exit(1)
    };
    let status = match Args::new(info.args()).get("mode") {
        None | Some("run") => periodic::<W>(info),
        Some("selftest") => selftest::<W>(info),
        Some(m) => {
            println!("harness {}: unknown mode `{m}` (expected run or selftest)", info.name());
            1
        }
    };
    user_rt::exit(status)
}

/// A console line buffer: record lines go out whole, one kernel call each,
/// so lines of other tasks never split them.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    const fn new() -> Line {
        Line { buf: [0; 512], len: 0 }
    }

    fn flush(&mut self) {
        let text = core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?");
        let _ = syscall::debug_print(text);
        self.len = 0;
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

/// An RT task of the run: its name and job count, in the order of the
/// description (its position is its task index in the records).
#[derive(Clone, Copy)]
struct RtTask {
    name: [u8; NAME_MAX],
    jobs: u64,
}

impl RtTask {
    fn of(i: &TaskInfo) -> RtTask {
        RtTask { name: i.name, jobs: i.jobs }
    }

    fn name(&self) -> &str {
        let end = self.name.iter().position(|&c| c == 0).unwrap_or(NAME_MAX);
        core::str::from_utf8(&self.name[..end]).unwrap_or("?")
    }
}

/// The system's RT tasks and this task's place among them.
struct Peers {
    system: Option<user_rt::SystemInfo>,
    rt: heapless::Vec<RtTask, MAX_RT>,
    /// This task's index in `rt`.
    me: usize,
}

impl Peers {
    /// Asks the root task. Without its answer (an older root task) the run
    /// has this task alone, in scenario `-`.
    fn find(info: &TaskInfo) -> Peers {
        let mut rt = heapless::Vec::new();
        let mut me = None;
        let system = user_rt::system();
        if let Some(s) = &system {
            for i in 0..s.tasks {
                let Some(t) = user_rt::task_info(i) else { continue };
                if t.role == Role::Rt {
                    if t.index == info.index {
                        me = Some(rt.len());
                    }
                    let _ = rt.push(RtTask::of(&t));
                }
            }
        }
        match (system, me) {
            (Some(s), Some(me)) => Peers { system: Some(s), rt, me },
            _ => {
                rt.clear();
                let _ = rt.push(RtTask::of(info));
                Peers { system: None, rt, me: 0 }
            }
        }
    }

    fn scenario(&self) -> &str {
        match self.system.as_ref().map(|s| s.scenario()) {
            None | Some("") => "-",
            Some(s) => s,
        }
    }
}

/// How a sequence of measured jobs ended.
struct Outcome {
    /// Jobs measured (records written).
    ran: usize,
    failure: Option<Mismatch>,
}

/// Measures `records.len()` jobs of `w` on `sched`, checking each against
/// `expected`; stops at the first wrong result.
fn measure<W: Workload>(
    probe: &Probe,
    w: &mut W,
    expected: u64,
    sched: &Schedule,
    task: u16,
    records: &mut [Job],
) -> Outcome {
    let total = records.len() as u32;
    let step = (total / 20).max(1);
    for (k, rec) in records.iter_mut().enumerate() {
        let release = sched.release(k as u64);
        probe.sleep_until(release);
        let s = probe.job(w);
        *rec = Job {
            task,
            job: k as u32,
            release,
            start: s.start,
            end: s.end,
            preemptions: s.preemptions,
            deadline_miss: sched.missed(k as u64, s.end),
            pmc: s.pmc,
        };
        if let Err(m) = check(Some(k as u64), w.result(), expected) {
            return Outcome { ran: k + 1, failure: Some(m) };
        }
        let done = k as u32 + 1;
        if done.is_multiple_of(step) || done == total {
            let _ = record::progress(&mut Line::new(), task, done, total);
        }
    }
    Outcome { ran: records.len(), failure: None }
}

/// The periodic run of an RT task; returns its exit status.
fn periodic<W: Workload>(info: &TaskInfo) -> u64 {
    let name = info.name();
    let peers = Peers::find(info);
    let probe = Probe::new();
    let mut records: &mut [Job] = &mut [];
    let outcome = (|| -> Result<Outcome, &'static str> {
        if info.role != Role::Rt || info.rt_period == 0 {
            println!("harness {name}: not an RT task with a period (role {:?})", info.role);
            return Err("no period");
        }
        // SAFETY: the task's heap as the description declares it: mapped
        // (prefaulted by user-rt), writable, used by nothing else.
        let mut heap = unsafe { Heap::new(info.heap_base as usize, info.heap_size as usize) };
        let jobs = usize::try_from(info.jobs).unwrap_or(usize::MAX);
        let rec_align = 64;
        records = heap.take(jobs, Job::default(), rec_align).map_err(|e| {
            println!("harness {name}: the records of {jobs} jobs: {e}");
            "records"
        })?;
        let args = Args::new(info.args());
        let mut w = W::setup(&args, &mut heap).map_err(|e| {
            println!("harness {name}: {} setup: {e}", W::NAME);
            "setup"
        })?;
        let expected = match args.number("expect", w.expected()) {
            Ok(v) => v,
            Err(e) => {
                println!("harness {name}: {e}");
                return Err("args");
            }
        };
        // Warm-up: caches and TLB as every later job finds them, and a
        // wrong result stops the run before it starts.
        w.job();
        if let Err(m) = check(None, w.result(), expected) {
            println!("harness {name}: {}: {m}", W::NAME);
            return Err("warm-up");
        }
        // From here on a page fault is an error: a user-level pager (the RT
        // pager) reports and refuses it instead of mapping silently.
        if info.pager != user_rt::root_task() {
            if let Err(e) = user_rt::run_start() {
                println!("harness {name}: the pager refused the run start ({e:?})");
                return Err("run start");
            }
        }
        let sched = Schedule::after(Probe::now(), info.rt_period, info.deadline);
        Ok(measure(&probe, &mut w, expected, &sched, peers.me as u16, records))
    })();
    let (ran, ok) = match outcome {
        Ok(Outcome { ran, failure: None }) => (ran, true),
        Ok(Outcome { ran, failure: Some(m) }) => {
            println!("harness {name}: {}: {m}; the run stops here", W::NAME);
            (ran, false)
        }
        Err(_) => (0, false),
    };
    let mine = &records[..ran];
    if peers.me == 0 {
        dump(&peers, &probe, mine);
    } else {
        hand_over(&peers, mine);
    }
    if ok {
        0
    } else {
        1
    }
}

/// A peer's side: serves the leader's `FETCH` requests from `mine` until
/// it asks past the end.
fn hand_over(peers: &Peers, mine: &[Job]) {
    let leader_name = peers.rt[0].name();
    let Some(leader) = user_rt::lookup(leader_name) else {
        println!("harness: the leader task {leader_name} is gone; {} record(s) lost", mine.len());
        return;
    };
    loop {
        let Ok((_, m)) = syscall::receive(leader, Timeout::NEVER) else { return };
        if m.tag().label() != FETCH {
            continue;
        }
        let from = (m.mr[0] as usize).min(mine.len());
        let chunk = &mine[from..(from + PER_MESSAGE).min(mine.len())];
        let mut words = [0u64; PER_MESSAGE * JOB_WORDS];
        for (i, j) in chunk.iter().enumerate() {
            words[i * JOB_WORDS..(i + 1) * JOB_WORDS].copy_from_slice(&wire::encode(j));
        }
        let n = chunk.len() * JOB_WORDS;
        let u = syscall::utcb();
        u.mr[1..=n].copy_from_slice(&words[..n]);
        let _ = syscall::send(leader, &Msg::new(Tag::new(0, n, 0), &words[..n.min(REG_MRS)]), Timeout::ZERO);
        if chunk.is_empty() {
            return;
        }
    }
}

/// Fetches the records of the peer named `name` (task index `task`) into
/// the writer; returns how many arrived.
fn fetch(name: &str, task: u16, mut each: impl FnMut(&Job)) -> usize {
    let Some(peer) = user_rt::lookup(name) else { return 0 };
    let mut got = 0usize;
    loop {
        let Ok(m) = syscall::call(peer, &Msg::new(Tag::new(FETCH, 1, 0), &[got as u64])) else { return got };
        let n = m.tag().untyped() / JOB_WORDS;
        if m.tag().label() != 0 || n == 0 {
            return got;
        }
        let u = syscall::utcb();
        for i in 0..n {
            let w: [u64; JOB_WORDS] = core::array::from_fn(|k| {
                let mr = i * JOB_WORDS + k;
                if mr < REG_MRS {
                    m.mr[mr]
                } else {
                    u.mr[mr + 1]
                }
            });
            each(&wire::decode(task, &w));
        }
        got += n;
    }
}

/// The leader's side: writes the whole run (its own records, then each
/// peer's as it hands them over).
fn dump(peers: &Peers, probe: &Probe, mine: &[Job]) {
    let mut out = Line::new();
    let header = Header {
        scenario: peers.scenario(),
        mode: mode_hint(),
        tsc_hz: user_rt::kip().tsc_hz,
        pmc: probe.pmc_set(),
        tasks: peers.rt.len() as u16,
    };
    let r = (|| -> Result<u32, record::WriteError> {
        let mut w = Writer::begin(&mut out, &header)?;
        for t in &peers.rt {
            w.task(&mut out, t.name(), t.jobs as u32)?;
        }
        for j in mine {
            w.job(&mut out, j)?;
        }
        for (i, t) in peers.rt.iter().enumerate().skip(1) {
            let mut bad = None;
            let got = fetch(t.name(), i as u16, |j| {
                if let Err(e) = w.job(&mut out, j) {
                    bad = Some(e);
                }
            });
            if let Some(e) = bad {
                return Err(e);
            }
            if (got as u64) < t.jobs {
                println!("harness: task {} handed over {got} of {} records", t.name(), t.jobs);
            }
        }
        w.finish(&mut out)
    })();
    if let Err(e) = r {
        println!("harness: writing the records: {e}");
    }
}

/// `mode=selftest`: checks the workload and the harness's failure path.
fn selftest<W: Workload>(info: &TaskInfo) -> u64 {
    let mut failed = 0;
    let mut report = |test: &str, r: Result<(), &str>| match r {
        Ok(()) => println!("test {}_{test} ... ok", W::NAME),
        Err(why) => {
            println!("test {}_{test} ... FAILED: {why}", W::NAME);
            failed += 1;
        }
    };
    // SAFETY: the task's declared heap, as in `periodic`.
    let mut heap = unsafe { Heap::new(info.heap_base as usize, info.heap_size as usize) };
    let records = match heap.take(3, Job::default(), 64) {
        Ok(r) => r,
        Err(_) => {
            report("setup", Err("no heap for three records"));
            return failed;
        }
    };
    let mut w = match W::setup(&Args::new(info.args()), &mut heap) {
        Ok(w) => w,
        Err(e) => {
            println!("selftest {}: setup: {e}", W::NAME);
            report("setup", Err("setup failed"));
            return failed;
        }
    };
    w.job();
    let first = w.result();
    report("result_matches_the_host_value", check(None, first, w.expected()).map_err(|_| "wrong result"));
    let repeats = (0..3).all(|_| {
        w.job();
        w.result() == first
    });
    report("jobs_repeat_their_result", if repeats { Ok(()) } else { Err("a later job gave another result") });
    // A deliberately wrong expected value must stop a measured run at its
    // first job, with the record of that job kept.
    let probe = Probe::new();
    let period = (user_rt::kip().tsc_hz / 1000).max(1);
    let sched = Schedule::after(Probe::now(), period, period);
    let wrong = w.expected() ^ 1;
    let o = measure(&probe, &mut w, wrong, &sched, 0, records);
    let caught = matches!(o.failure, Some(Mismatch { job: Some(0), expected, .. }) if expected == wrong) && o.ran == 1;
    report("wrong_expected_value_is_caught", if caught { Ok(()) } else { Err("the wrong value was not caught") });
    let right = w.expected();
    let o = measure(&probe, &mut w, right, &sched, 0, records);
    let monotone = records.windows(2).all(|p| p[0].end <= p[1].start)
        && records.iter().all(|j| j.release <= j.start && j.start <= j.end);
    report(
        "measured_jobs_have_ordered_timestamps",
        if o.failure.is_none() && o.ran == records.len() && monotone { Ok(()) } else { Err("bad records") },
    );
    // Counters: only the root task may program them; a live counter
    // counts, and a job record has a value exactly for the live ones.
    let refused = syscall::pmc_program(abi::pmc::ALL_EVENTS) == Err(abi::Error::NoPermission);
    report("may_not_program_the_counters", if refused { Ok(()) } else { Err("an RT task programmed the PMU") });
    let pmc = probe.pmc;
    let counts = [Event::Cycles, Event::Instructions].into_iter().filter(|&e| pmc.is_live(e)).all(|e| {
        let a = pmc.read(e).unwrap_or(0);
        core::hint::black_box(w.result());
        pmc.read(e).and_then(|b| pmc.delta(e, a, b)).is_some_and(|d| d > 0)
    });
    let fields =
        records.iter().all(|j| Event::ALL.into_iter().all(|e| j.pmc.get(counter(e)).is_some() == pmc.is_live(e)));
    report(
        "pmc_fields_match_the_live_counters",
        if counts && fields { Ok(()) } else { Err("a counter value where none is live, or none where one is") },
    );
    failed
}
