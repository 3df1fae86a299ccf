//! The root task's server loop, once everything is loaded: it pages the
//! tasks it loaded itself, hands the other tasks to their pagers and starts
//! them when loaded, answers every task's `GET_INFO` / `LOOKUP` / `EXIT`,
//! and, as the exception handler of last resort, reports a task that
//! crashes (task name, thread, vector, address, IP) and removes it while
//! everything else keeps running.
//!
//! The run is complete when every RT and test task has ended (reported its
//! exit or crashed); the root task then says so on the console and, under
//! QEMU, leaves through the `isa-debug-exit` port with the verdict.

use crate::load::{Loader, State};
use abi::ipc::root::{self as proto, Role, INFO_WORDS};
use abi::ipc::{label, map_item, pager, Fpage, Tag};
use abi::layout;
use abi::sys::attr;
use abi::syscall::{self, reply_wait, utcb, Msg};
use abi::ThreadId;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
use user_rt::println;

/// Boot modules no task of the description names that the root task
/// mapped for a pager's `GET_MODULE` (bit = KIP module index; the named
/// ones it mapped at load time).
static MODULES_MAPPED: AtomicU32 = AtomicU32::new(0);
const _: () = assert!(abi::kip::MAX_MODULES <= 32);

pub struct Supervisor<'s> {
    pub loader: Loader<'s>,
    /// The `isa-debug-exit` port was granted by sigma0.
    pub exit_port: bool,
    /// I/O ports the root task holds already (one bit each).
    pub ports_held: [u64; 1024],
}

fn refused() -> Msg {
    Msg::new(Tag::new(proto::REFUSED, 0, 0), &[])
}

/// The names of the CPU exceptions, for the crash report.
fn vector_name(v: u64) -> &'static str {
    match v {
        0 => "#DE divide error",
        1 => "#DB debug",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        11 => "#NP segment not present",
        12 => "#SS stack fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating point",
        17 => "#AC alignment check",
        19 => "#XM SIMD floating point",
        _ => "exception",
    }
}

impl Supervisor<'_> {
    fn task_of(&self, t: ThreadId) -> Option<usize> {
        self.loader.tasks.iter().position(|l| l.thread == t)
    }

    fn name(&self, i: usize) -> &str {
        self.loader.sys.tasks()[i].name
    }

    /// A page fault of a task the root task pages: answered from its table.
    fn page_fault(&self, from: ThreadId, addr: u64, ip: u64) -> Option<Msg> {
        let i = self.task_of(from)?;
        if self.loader.sys.tasks()[i].pager != sysdesc::Ref::Root {
            return None;
        }
        let page = addr & !0xfff;
        match self.loader.pages.lookup(i, page) {
            Some((f, r)) => Some(::pager::msg::map_reply(page, f, r).msg()),
            None => {
                println!("roottask: task {} faulted at {addr:#x} (ip {ip:#x}) outside its memory", self.name(i));
                // No mapping: the kernel hands it to the exception handler.
                Some(refused())
            }
        }
    }

    /// An exception nobody below fixed up: report, remove the task.
    fn crashed(&mut self, from: ThreadId, m: &Msg) {
        let (vector, error, ip, cr2) = (m.mr[0], m.mr[1], m.mr[2], m.mr[5]);
        let name = self.task_of(from).map_or("(unknown)", |i| self.name(i));
        println!(
            "roottask: task {name} crashed: thread {:#x}, vector {vector} ({}), error {error:#x}, address {cr2:#x}, ip {ip:#x}",
            from.0,
            vector_name(vector)
        );
        if let Some(i) = self.task_of(from) {
            self.remove(i, State::Crashed);
        }
    }

    /// Reads what the kernel refused task `i` so far (while it lives).
    fn note_refusals(&mut self, i: usize) {
        if let Ok(r) = syscall::thread_info(self.loader.tasks[i].thread, attr::REFUSED) {
            self.loader.tasks[i].refused = r;
        }
    }

    /// Task `i` goes, in state `why` (its refusals read first).
    fn remove(&mut self, i: usize, why: State) {
        self.note_refusals(i);
        let _ = syscall::thread_delete(self.loader.tasks[i].thread);
        self.loader.tasks[i].state = why;
    }

    /// Thread `from` ran out of its budget: the kernel holds it until its
    /// next period. Said once per task (a task held every period would
    /// flood the console), counted always.
    fn budget(&mut self, from: ThreadId, m: &Msg) {
        let (budget, period) = (m.mr[0], m.mr[1]);
        let Some(i) = self.task_of(from) else { return };
        self.loader.tasks[i].budget_outs += 1;
        if self.loader.tasks[i].budget_outs == 1 {
            println!(
                "roottask: task {} (thread {:#x}) ran out of its budget of {budget} ticks per {period}; held until its next period",
                self.name(i),
                from.0
            );
        }
    }

    /// `STOP`: the exception handler of task `of` (as the description
    /// names it) stops it for good, e.g. for an overrun it was told of.
    fn stop(&mut self, from: ThreadId, of: u64) -> Option<Msg> {
        let i = self.task_of(ThreadId(of))?;
        let handler = self.loader.tasks[i].info.handler;
        if from != handler || !matches!(self.loader.tasks[i].state, State::Running | State::Waiting) {
            return None;
        }
        let by = self.task_of(from).map_or("?", |h| self.name(h));
        println!("roottask: task {} stopped for good at the word of its handler {by}", self.name(i));
        self.remove(i, State::Stopped);
        Some(Msg::default())
    }

    fn info(&self, from: ThreadId) -> Option<Msg> {
        let i = self.task_of(from)?;
        let w = self.loader.tasks[i].info.to_words();
        let u = utcb();
        u.mr[1..=INFO_WORDS].copy_from_slice(&w);
        Some(Msg::new(Tag::new(0, INFO_WORDS, 0), &w))
    }

    /// `SYSTEM`: the system's name, its scenario and the number of tasks.
    fn system(&self) -> Msg {
        let sys = &self.loader.sys;
        let mut w = [0u64; 9];
        w[..4].copy_from_slice(&proto::name_words(sys.name()));
        w[4..8].copy_from_slice(&proto::name_words(sys.scenario().as_str()));
        w[8] = sys.tasks().len() as u64;
        utcb().mr[1..=w.len()].copy_from_slice(&w);
        Msg::new(Tag::new(0, w.len(), 0), &w)
    }

    /// `TASK_INFO`: the description entry of task `i`.
    fn task_info(&self, i: u64) -> Option<Msg> {
        let w = self.loader.tasks.get(usize::try_from(i).ok()?)?.info.to_words();
        utcb().mr[1..=INFO_WORDS].copy_from_slice(&w);
        Some(Msg::new(Tag::new(0, INFO_WORDS, 0), &w))
    }

    fn lookup(&self, words: &[u64]) -> Msg {
        let b = proto::words_name(words);
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        let name = core::str::from_utf8(&b[..end]).unwrap_or("");
        match self.loader.sys.task_index(name) {
            Some(i) => Msg::new(Tag::new(0, 1, 0), &[self.loader.tasks[i].thread.0]),
            None if name == sysdesc::ROOT => Msg::new(Tag::new(0, 1, 0), &[syscall::myself().0 .0]),
            None if name == sysdesc::SIGMA0 => Msg::new(Tag::new(0, 1, 0), &[user_rt::kip().sigma0_id]),
            None => refused(),
        }
    }

    fn exited(&mut self, from: ThreadId, status: u64) -> Option<Msg> {
        let i = self.task_of(from)?;
        println!("roottask: task {} ended with status {}", self.name(i), status as i64);
        self.note_refusals(i);
        self.loader.tasks[i].state = State::Exited(status);
        Some(Msg::default())
    }

    /// A request of pager `from` about its client `client`: the client's
    /// task index, if it is the pager's.
    fn client_of(&self, from: ThreadId, client: u64) -> Option<usize> {
        let p = self.task_of(from)?;
        let i = self.task_of(ThreadId(client))?;
        (self.loader.sys.tasks()[i].pager == sysdesc::Ref::Task(p)).then_some(i)
    }

    /// A reply with the untyped `words`, then map items of module `m`'s
    /// pages (read-only, as naturally aligned blocks, to land at the same
    /// place of the receiver's phys window); `None` if they do not fit.
    fn with_module(words: &[u64], m: &abi::kip::Module) -> Option<Msg> {
        let u = utcb();
        let mut n = words.len();
        let mut a = layout::phys(m.phys_base);
        let end = layout::phys(m.phys_base + m.size).next_multiple_of(4096);
        while a < end {
            let mut log2 = a.trailing_zeros().min(24);
            while a + (1 << log2) > end {
                log2 -= 1;
            }
            if n + 2 > abi::ipc::MAX_MRS - 1 {
                println!("roottask: module {} is too scattered to hand to a pager", m.name());
                return None;
            }
            let it = map_item(a - layout::PHYS_WINDOW, Fpage::new(a, log2, abi::ipc::rights::READ), false);
            u.mr[n + 1] = it[0];
            u.mr[n + 2] = it[1];
            n += 2;
            a += 1 << log2;
        }
        u.mr[1..=words.len()].copy_from_slice(words);
        // MR1..MR6 travel in registers: items that start there (after
        // fewer than six words) must go there too.
        Some(Msg::new(Tag::new(0, words.len(), n - words.len()), &u.mr[1..=abi::ipc::REG_MRS]))
    }

    /// The next client of pager `from`, with its module's pages.
    fn next_client(&mut self, from: ThreadId) -> Option<Msg> {
        let p = self.task_of(from)?;
        let Some(i) = (0..self.loader.tasks.len())
            .find(|&i| self.loader.sys.tasks()[i].pager == sysdesc::Ref::Task(p) && !self.loader.tasks[i].handed)
        else {
            return Some(Msg::new(Tag::new(pager::NO_MORE, 0, 0), &[]));
        };
        let l = self.loader.tasks[i];
        let n = proto::name_words(self.name(i));
        let words = [
            l.thread.0,
            l.module.phys_base,
            l.module.size,
            l.info.heap_size,
            l.info.stack_size,
            l.info.role as u64,
            n[0],
            n[1],
            n[2],
            n[3],
        ];
        let reply = Self::with_module(&words, &l.module)?;
        self.loader.tasks[i].handed = true;
        Some(reply)
    }

    /// A boot module by name, for a pager that spawns a task from it (one
    /// its description lists in `spawns`).
    fn module(&self, from: ThreadId, words: &[u64]) -> Option<Msg> {
        let i = self.task_of(from)?;
        let b = proto::words_name(words);
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        let name = core::str::from_utf8(&b[..end]).ok()?;
        if !self.loader.sys.tasks()[i].spawns.contains(name) {
            println!("roottask: task {} may not spawn from `{name}` (not in its spawns)", self.name(i));
            return None;
        }
        let (idx, m) = user_rt::kip().module(name)?;
        // The root task maps its own view of the module onwards. It maps it
        // once: mapping it again would flush every view derived from the
        // first (a pager's, while it loads from it).
        let named = self.loader.tasks.iter().any(|l| l.module.phys_base == m.phys_base);
        if !named && MODULES_MAPPED.load(Relaxed) & (1 << idx) == 0 {
            ::pager::sigma0::module_bytes(m).ok()?;
            MODULES_MAPPED.fetch_or(1 << idx, Relaxed);
        }
        Self::with_module(&[m.phys_base, m.size], m)
    }

    /// Pager `from` loaded its client `m.mr[0]`: start it.
    fn client_ready(&mut self, from: ThreadId, m: &Msg) -> Option<Msg> {
        let p = self.task_of(from)?;
        let Some(i) = self.task_of(ThreadId(m.mr[0])) else { return Some(refused()) };
        let l = &self.loader.tasks[i];
        if self.loader.sys.tasks()[i].pager != sysdesc::Ref::Task(p) || !l.handed || l.state != State::Waiting {
            return Some(refused());
        }
        match self.loader.start(i, m.mr[1], m.mr[2]) {
            Ok(()) => Some(Msg::default()),
            Err(e) => {
                println!("roottask: cannot start {}: {e:?}", self.name(i));
                Some(refused())
            }
        }
    }

    /// The I/O ports of flexpage `fp`, for a task the description grants
    /// them; the root task takes them from sigma0 the first time.
    fn ports(&mut self, from: ThreadId, fp: Fpage) -> Option<Msg> {
        let i = self.task_of(from)?;
        let (base, n) = fp.io_range()?;
        if !self.loader.sys.tasks()[i].ports.covers(base, n.trailing_zeros()) {
            println!("roottask: task {} asked for ports {base:#x}..{:#x} it was not given", self.name(i), base + n);
            return None;
        }
        let held = |p: u32, h: &[u64; 1024]| h[p as usize / 64] & (1 << (p % 64)) != 0;
        if !(base..base + n).all(|p| held(p, &self.ports_held)) {
            ::pager::sigma0::ports(fp).ok()?;
            for p in base..base + n {
                self.ports_held[p as usize / 64] |= 1 << (p % 64);
            }
        }
        Some(Msg::new(Tag::new(0, 0, 2), &map_item(0, fp, false)))
    }

    /// Every RT and test task has ended: the number that failed. A task
    /// fails when it ends with a status other than 0, or, for an RT task,
    /// when it crashes. (Test images crash test tasks on purpose; what a
    /// test task checks it reports itself, line by line.)
    fn run_complete(&self) -> Option<usize> {
        let mut any = false;
        let mut failed = 0;
        for l in self.loader.tasks.iter() {
            match (l.info.role, l.state) {
                (Role::Pager | Role::Ts, _) => continue,
                (_, State::Waiting | State::Running) => return None,
                (_, State::Exited(0)) => {}
                (_, State::Exited(_)) | (Role::Rt, State::Crashed | State::Stopped) => failed += 1,
                (_, State::Crashed | State::Stopped) => {}
            }
            any = true;
        }
        any.then_some(failed)
    }

    fn finish(&mut self, failed: usize) {
        let ended = |s: fn(&State) -> bool| {
            self.loader.tasks.iter().filter(|l| matches!(l.info.role, Role::Rt | Role::Test) && s(&l.state)).count()
        };
        let (ok, crashed) = (ended(|s| *s == State::Exited(0)), ended(|s| *s == State::Crashed));
        let stopped = ended(|s| *s == State::Stopped);
        println!(
            "roottask: run complete: {} task(s) ended, {ok} with status 0, {crashed} crashed, {stopped} stopped by their handler; {failed} failed",
            ok + crashed + stopped + ended(|s| matches!(s, State::Exited(x) if *x != 0))
        );
        for (i, l) in self.loader.tasks.iter().enumerate().filter(|(_, l)| l.budget_outs > 0) {
            println!("roottask: task {} ran out of its budget {} time(s)", self.name(i), l.budget_outs);
        }
        self.report_refusals();
        if self.exit_port {
            let code = if failed == 0 { abi::debug_exit::PASS } else { abi::debug_exit::FAIL };
            // SAFETY: the root task holds the isa-debug-exit port (sigma0
            // mapped it); writing it ends the QEMU run and touches nothing
            // else (on hardware the port is unused).
            unsafe { core::arch::asm!("out dx, al", in("dx") abi::debug_exit::PORT, in("al") code) };
        }
    }

    /// The access control's refusals, per task that had any and in all
    /// (read for the tasks still running now).
    fn report_refusals(&mut self) {
        let (mut sends, mut calls) = (0, 0);
        for i in 0..self.loader.tasks.len() {
            if matches!(self.loader.tasks[i].state, State::Waiting | State::Running) {
                self.note_refusals(i);
            }
            let (s, c) = self.loader.tasks[i].refused;
            (sends, calls) = (sends + s, calls + c);
            if s + c > 0 {
                println!(
                    "roottask: access control: task {} ({}): {s} send(s) refused, {c} control call(s) refused",
                    self.name(i),
                    self.loader.sys.tasks()[i].role
                );
            }
        }
        println!("roottask: access control: {sends} send(s) and {calls} control call(s) refused in all");
    }

    /// Answers one message; `None`: no reply.
    fn serve(&mut self, from: ThreadId, m: &Msg) -> Option<Msg> {
        match m.tag().label() {
            label::PAGE_FAULT => self.page_fault(from, m.mr[0], m.mr[1]),
            label::EXCEPTION => {
                self.crashed(from, m);
                None
            }
            label::BUDGET => {
                self.budget(from, m);
                None
            }
            proto::GET_INFO => self.info(from).or(Some(refused())),
            proto::LOOKUP => Some(self.lookup(&m.mr[..4])),
            proto::SYSTEM => Some(self.system()),
            proto::TASK_INFO => self.task_info(m.mr[0]).or(Some(refused())),
            proto::EXIT => self.exited(from, m.mr[0]).or(Some(refused())),
            proto::STOP => self.stop(from, m.mr[0]).or(Some(refused())),
            proto::GET_PORTS => self.ports(from, Fpage(m.mr[0])).or(Some(refused())),
            proto::GET_MODULE => self.module(from, &m.mr[..4]).or(Some(refused())),
            pager::NEXT_CLIENT => self.next_client(from).or(Some(refused())),
            pager::CLIENT_READY => self.client_ready(from, m).or(Some(refused())),
            pager::CLIENT_INFO => {
                self.client_of(from, m.mr[0]).and_then(|i| self.info(self.loader.tasks[i].thread)).or(Some(refused()))
            }
            pager::CLIENT_EXIT => {
                let i = self.client_of(from, m.mr[0]);
                i.and_then(|i| self.exited(self.loader.tasks[i].thread, m.mr[1])).or(Some(refused()))
            }
            _ => Some(refused()),
        }
    }

    /// Serves forever.
    pub fn run(&mut self) -> ! {
        let mut reply_to = ThreadId::NIL;
        let mut reply = Msg::default();
        let mut done = false;
        loop {
            match reply_wait(reply_to, &reply) {
                Ok((from, m)) => match self.serve(from, &m) {
                    Some(r) => (reply_to, reply) = (from, r),
                    None => reply_to = ThreadId::NIL,
                },
                Err(_) => reply_to = ThreadId::NIL,
            }
            if !done {
                if let Some(failed) = self.run_complete() {
                    done = true;
                    // The last task hears its answer before the run ends.
                    if !reply_to.is_nil() {
                        let _ = syscall::send(reply_to, &reply, abi::Timeout::ZERO);
                        reply_to = ThreadId::NIL;
                    }
                    self.finish(failed);
                }
            }
        }
    }
}
