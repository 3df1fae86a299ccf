//! The TS pager's server: loading its tasks, their page faults, and the
//! requests of `abi::ipc::ts`, answered one at a time; requests that must
//! wait (an empty pipe, a full one, a living child) are answered when a
//! later request or a task's end lets them complete.

use crate::pipe::{End, Pipes, Read, Write};
use crate::space::Region;
use crate::tasks::{Pending, State, Task, Tasks, WaitFor, MAX_TASKS};
use abi::ipc::pager::{self as pproto, Stats};
use abi::ipc::root::{self as rproto, Role, TaskInfo, ARGS_MAX};
use abi::ipc::ts::{self, Ended, Error, ARGS_WORDS, IO_MAX, MAX_FDS};
use abi::ipc::{label, rights, MAX_MRS};
use abi::layout;
use abi::sys::attr;
use abi::syscall::{self, Msg};
use abi::{Fpage, ThreadId};
use pager::free::FreeList;
use pager::load::{self, DATA};
use pager::msg::{self, Fault, Words};
use pager::root::{self, Client, Module};
use pager::sigma0;
use pager::table::Pages;
use user_rt::println;

/// Pages the pager backs in all (128 MiB of TS memory).
pub const TABLE: usize = 32768;

/// Frames: the pager's own free list first, then sigma0 (of the TS
/// partition's colours: the pager is bound to it).
pub struct Frames {
    pub free: &'static mut FreeList<TABLE>,
}

impl Frames {
    /// A zeroed frame, or `None` when the partition has none left.
    fn alloc(&mut self) -> Option<u64> {
        if let Some(f) = self.free.pop() {
            sigma0::page(f).fill(0);
            return Some(f);
        }
        sigma0::frame(None).ok()
    }

    /// Takes frame `f` back from every client it is mapped to and keeps it.
    fn give_back(&mut self, f: u64) {
        let _ = syscall::unmap(Fpage::new(layout::phys(f), 12, rights::ALL), false);
        // The list holds as many frames as the table has entries.
        let _ = self.free.push(f);
    }
}

pub struct Ts {
    pub me: ThreadId,
    /// The pager's MCP: the highest priority it gives a task it spawns.
    pub mcp: u64,
    /// The time slice its spawned tasks get (its own).
    pub timeslice: u64,
    pub tasks: &'static mut Tasks,
    pub pipes: &'static mut Pipes,
    pub pages: &'static mut Pages<TABLE>,
    pub frames: Frames,
    /// Counters over all tasks, those gone included.
    pub stats: Stats,
    /// The untyped words of the message being handled.
    words: [u64; MAX_MRS - 1],
}

type Reply = Result<Words, Error>;

fn err(e: Error) -> Words {
    Words::new(e as u64)
}

impl Ts {
    pub fn new(
        me: ThreadId,
        mcp: u64,
        timeslice: u64,
        tasks: &'static mut Tasks,
        pipes: &'static mut Pipes,
        pages: &'static mut Pages<TABLE>,
        free: &'static mut FreeList<TABLE>,
    ) -> Ts {
        Ts {
            me,
            mcp,
            timeslice,
            tasks,
            pipes,
            pages,
            frames: Frames { free },
            stats: Stats::default(),
            words: [0; MAX_MRS - 1],
        }
    }

    /// Copies `img`'s pages into frames for slot `slot`'s task.
    fn load_image(&mut self, slot: usize, bytes: &[u8], img: &elfload::Image) -> Result<u64, Error> {
        let (pages, frames) = (&mut *self.pages, &mut self.frames);
        let r = load::eager(bytes, img, &[], |v, r, fill| {
            let f = frames.alloc().ok_or(Error::NoMemory)?;
            fill(sigma0::page(f));
            pages.insert(slot, v, f, r).map(|_| ()).map_err(|_| {
                frames.give_back(f);
                Error::NoMemory
            })
        });
        if r.is_err() {
            self.reclaim(slot);
        }
        r
    }

    /// A client the description gives the pager: its image now, the rest
    /// on demand.
    pub fn add_client(&mut self, c: &Client) -> Result<(), &'static str> {
        // Its description, which the pager answers its GET_INFO with (a TS
        // task may not ask the root task itself).
        let info = root::client_info(c.thread).map_err(|_| "the root task gave no description entry")?;
        let slot = self.tasks.insert(Task::new(c.thread, info, false, ThreadId::NIL)).ok_or("too many tasks")?;
        let r = self.load_module(slot, &c.module);
        c.module.release();
        let entry = match r {
            Ok(e) => e,
            Err(e) => {
                self.tasks.remove(slot);
                return Err(e);
            }
        };
        root::client_ready(c.thread, entry, layout::STACK_TOP).map_err(|_| "the root task did not start it")
    }

    /// Parses and copies the image of `m` for `slot`; returns its entry.
    fn load_module(&mut self, slot: usize, m: &Module) -> Result<u64, &'static str> {
        let bytes = m.bytes();
        let img = elfload::parse(bytes, layout::IMAGE_END).map_err(|_| "not a loadable ELF image")?;
        let n = self.load_image(slot, bytes, &img).map_err(|_| "no frames for its image")?;
        let t = self.tasks.get(slot).map_or("?", |t| t.name());
        println!("ts-pager: loaded {t}: {n} image page(s) copied; stack and heap on demand");
        Ok(img.entry)
    }

    /// Frees every frame of slot `slot`'s task.
    fn reclaim(&mut self, slot: usize) -> u64 {
        let frames = &mut self.frames;
        let mut n = 0;
        self.pages.retain(|c, _, f, _| {
            if c != slot {
                return true;
            }
            frames.give_back(f);
            n += 1;
            false
        });
        n
    }

    /// Frees the frames behind `r` in slot `slot`'s task.
    fn free_range(&mut self, slot: usize, r: Region) -> u64 {
        let mut n = 0;
        if r.pages() <= TABLE as u64 / 8 {
            for v in (r.start..r.end).step_by(4096) {
                if let Some((f, _)) = self.pages.remove(slot, v) {
                    self.frames.give_back(f);
                    n += 1;
                }
            }
        } else {
            let frames = &mut self.frames;
            self.pages.retain(|c, v, f, _| {
                if c != slot || !r.contains(v) {
                    return true;
                }
                frames.give_back(f);
                n += 1;
                false
            });
        }
        n
    }

    /// Everything the task in `slot` holds goes: frames, descriptors, a
    /// waiting request; its children lose their parent.
    fn retire(&mut self, slot: usize) {
        self.reclaim(slot);
        let Some(t) = self.tasks.get_mut(slot) else { return };
        t.pending = None;
        let thread = t.thread;
        let mut ends: heapless::Vec<End, MAX_FDS> = t.fds.drain().collect();
        for e in ends.drain(..) {
            self.pipes.close(e);
        }
        self.tasks.orphan(thread);
    }

    /// A spawned task ended: it goes, its record stays for its parent.
    fn end(&mut self, slot: usize, how: Ended, status: u64) {
        let Some(t) = self.tasks.get(slot) else { return };
        let thread = t.thread;
        let _ = syscall::thread_delete(thread);
        self.retire(slot);
        let Some(t) = self.tasks.get_mut(slot) else { return };
        if t.parent.is_nil() {
            self.tasks.remove(slot);
        } else {
            t.state = State::Ended(how, status);
        }
    }

    /// Takes back what tasks that are gone held (the description's tasks
    /// end through the root task, which the pager hears nothing of).
    /// Returns the frames freed.
    fn collect(&mut self) -> u64 {
        let mut freed = 0;
        for slot in 0..MAX_TASKS {
            let Some(t) = self.tasks.get(slot) else { continue };
            if matches!(t.state, State::Ended(..)) {
                continue;
            }
            // A stale id reads as an invalid thread before any other check.
            if syscall::thread_info(t.thread, attr::PRIORITY) != Err(abi::Error::InvalidThread) {
                continue;
            }
            let spawned = t.spawned;
            let before = self.frames.free.len();
            if spawned {
                self.end(slot, Ended::Exited, u64::MAX);
            } else {
                self.retire(slot);
                self.tasks.remove(slot);
            }
            freed += (self.frames.free.len() - before) as u64;
        }
        freed
    }

    fn frame_for_fault(&mut self) -> Option<u64> {
        self.frames.alloc().or_else(|| if self.collect() > 0 { self.frames.alloc() } else { None })
    }

    fn fault(&mut self, slot: usize, f: Fault) -> Option<Words> {
        let t = self.tasks.get(slot)?;
        if t.state == State::Killed {
            return Some(msg::refusal());
        }
        let page = f.page();
        let why = match self.pages.lookup(slot, page) {
            Some((frame, r)) if f.allowed_by(r) => return Some(self.mapped(slot, page, frame, r)),
            Some(_) => "against the page's rights",
            None if t.space.demand_zero(page) => {
                let Some(frame) = self.frame_for_fault() else { return self.out_of_memory(slot, f) };
                if self.pages.insert(slot, page, frame, DATA).is_err() {
                    self.frames.give_back(frame);
                    return self.out_of_memory(slot, f);
                }
                return Some(self.mapped(slot, page, frame, DATA));
            }
            None => "outside its memory",
        };
        self.stats.faults_refused += 1;
        let t = self.tasks.get_mut(slot)?;
        t.stats.faults_refused += 1;
        println!(
            "ts-pager: task {} (thread {:#x}) faulted {why}: {} at {:#x}, ip {:#x}; refused",
            t.name(),
            t.thread.0,
            f.access(),
            f.addr,
            f.ip
        );
        Some(msg::refusal())
    }

    fn mapped(&mut self, slot: usize, page: u64, frame: u64, r: pager::table::Rights) -> Words {
        self.stats.faults_mapped += 1;
        if let Some(t) = self.tasks.get_mut(slot) {
            t.stats.faults_mapped += 1;
        }
        msg::map_reply(page, frame, r)
    }

    /// The partition has no frame for `slot`'s fault: the task is killed.
    fn out_of_memory(&mut self, slot: usize, f: Fault) -> Option<Words> {
        self.stats.oom_kills += 1;
        self.stats.faults_refused += 1;
        let t = self.tasks.get(slot)?;
        let spawned = t.spawned;
        println!(
            "ts-pager: out of memory: task {} (thread {:#x}) faulted at {:#x} (ip {:#x}), and the TS partition has no frame left ({} in use); killed",
            t.name(),
            t.thread.0,
            f.addr,
            f.ip,
            self.pages.used()
        );
        if spawned {
            self.end(slot, Ended::OutOfMemory, 0);
            return None;
        }
        // The root task, its exception handler, removes it on the refusal.
        self.retire(slot);
        self.tasks.get_mut(slot)?.state = State::Killed;
        Some(msg::refusal())
    }

    fn spawn(&mut self, slot: usize) -> Reply {
        let w = self.words;
        let name_b = rproto::words_name(&w[..4]);
        let end = name_b.iter().position(|&c| c == 0).unwrap_or(name_b.len());
        let name = core::str::from_utf8(&name_b[..end]).map_err(|_| Error::NoModule)?;
        let (mask, prio) = (w[4], w[5].min(self.mcp));
        let mut args = [0u8; ARGS_MAX];
        ts::words_to_bytes(&w[6..6 + ARGS_WORDS], &mut args);
        if !self.tasks.has_room() {
            self.collect();
        }
        if !self.tasks.has_room() {
            return Err(Error::NoResources);
        }
        let parent = self.tasks.get(slot).ok_or(Error::Refused)?;
        let (parent_id, heap, stack) = (parent.thread, parent.info.heap_size, parent.info.stack_size);
        let module = root::module(name).map_err(|_| Error::NoModule)?;
        let r = self.start_child(name, &module, prio, heap, stack, &args, parent_id, slot, mask);
        module.release();
        r.map(|t| Words::ok(&[t.0]))
    }

    #[allow(clippy::too_many_arguments)]
    fn start_child(
        &mut self,
        name: &str,
        module: &Module,
        prio: u64,
        heap: u64,
        stack: u64,
        args: &[u8; ARGS_MAX],
        parent: ThreadId,
        parent_slot: usize,
        mask: u64,
    ) -> Result<ThreadId, Error> {
        let bytes = module.bytes();
        let img = elfload::parse(bytes, layout::IMAGE_END).map_err(|_| Error::NoModule)?;
        let thread = syscall::thread_create(ThreadId::NIL, layout::utcb(0), self.me).map_err(|_| Error::NoResources)?;
        let slice = self.timeslice;
        let configured = syscall::thread_config(thread, attr::PRIORITY, prio, 0)
            .and_then(|_| syscall::thread_config(thread, attr::EXCEPTION_HANDLER, self.me.0, 0))
            .and_then(|_| {
                if slice >= abi::sys::MIN_TIMESLICE {
                    syscall::thread_config(thread, attr::TIMESLICE, slice, 0)
                } else {
                    Ok(())
                }
            });
        if configured.is_err() {
            let _ = syscall::thread_delete(thread);
            return Err(Error::NoResources);
        }
        let mut info = TaskInfo::empty();
        info.index = u64::MAX;
        (info.role, info.priority, info.pager, info.handler) = (Role::Ts, prio, self.me, self.me);
        info.timeslice = self.timeslice;
        (info.heap_base, info.heap_size, info.stack_top, info.stack_size) =
            (layout::HEAP_BASE, heap, layout::STACK_TOP, stack);
        // Named after its parent and its module, for the reports.
        let mut full = heapless::String::<64>::new();
        let parent_name = self.tasks.get(parent_slot).map_or("?", |p| p.name());
        let _ = core::fmt::write(&mut full, format_args!("{parent_name}/{name}"));
        rproto::set_text(&mut info.name, &full);
        info.args = *args;
        let Some(child) = self.tasks.insert(Task::new(thread, info, true, parent)) else {
            let _ = syscall::thread_delete(thread);
            return Err(Error::NoResources);
        };
        let mut loaded = self.load_image(child, bytes, &img);
        if loaded.is_err() && self.collect() > 0 {
            loaded = self.load_image(child, bytes, &img);
        }
        if loaded.is_err() || syscall::thread_start(thread, img.entry, layout::STACK_TOP).is_err() {
            let _ = syscall::thread_delete(thread);
            self.retire(child);
            self.tasks.remove(child);
            return Err(Error::NoMemory);
        }
        for fd in (0..MAX_FDS).filter(|fd| mask & (1 << fd) != 0) {
            let Some(e) = self.tasks.get(parent_slot).and_then(|p| p.fds.get(fd as u64)) else { continue };
            self.pipes.dup(e);
            if let Some(c) = self.tasks.get_mut(child) {
                c.fds.set(fd, e);
            }
        }
        Ok(thread)
    }

    /// A WAIT of `slot`'s task for `child`: `None` while it must wait.
    fn try_wait(&mut self, slot: usize, child: ThreadId, nohang: bool) -> Option<Words> {
        let me = self.tasks.get(slot)?.thread;
        match self.tasks.wait(me, child) {
            WaitFor::Ended(i) => {
                let t = self.tasks.remove(i)?;
                let State::Ended(how, status) = t.state else { return Some(err(Error::NoChild)) };
                Some(Words::ok(&[t.thread.0, how as u64, status]))
            }
            WaitFor::Block if nohang => Some(Words::ok(&[0, 0, 0])),
            WaitFor::Block => None,
            WaitFor::NoChild => Some(err(Error::NoChild)),
        }
    }

    fn end_of(&self, slot: usize, fd: u64, write: bool) -> Result<End, Error> {
        let e = self.tasks.get(slot).and_then(|t| t.fds.get(fd)).ok_or(Error::BadFd)?;
        if e.write == write {
            Ok(e)
        } else {
            Err(Error::BadFd)
        }
    }

    fn try_read(&mut self, slot: usize, fd: u64, max: usize) -> Option<Words> {
        let e = match self.end_of(slot, fd, false) {
            Ok(e) => e,
            Err(x) => return Some(err(x)),
        };
        let mut buf = [0u8; IO_MAX];
        match self.pipes.read(e, &mut buf[..max]) {
            Read::Data(n) => {
                let mut w = Words::ok(&[n as u64]);
                let words = w.words_mut(1 + n.div_ceil(8));
                ts::bytes_to_words(&buf[..n], &mut words[1..]);
                Some(w)
            }
            Read::Eof => Some(Words::ok(&[0])),
            Read::Block => None,
        }
    }

    fn try_write(&mut self, slot: usize, fd: u64, data: &[u8]) -> Option<Words> {
        let e = match self.end_of(slot, fd, true) {
            Ok(e) => e,
            Err(x) => return Some(err(x)),
        };
        match self.pipes.write(e, data) {
            Write::Took(n) => Some(Words::ok(&[n as u64])),
            Write::Broken => Some(err(Error::BrokenPipe)),
            Write::Block => None,
        }
    }

    /// Answers the waiting requests that can complete now, until none can.
    fn kick(&mut self) {
        loop {
            let mut progress = false;
            for slot in 0..MAX_TASKS {
                let Some(t) = self.tasks.get(slot) else { continue };
                let (Some(p), thread) = (t.pending, t.thread) else { continue };
                let done = match p {
                    Pending::Read { fd, max } => self.try_read(slot, fd, max),
                    Pending::Write { fd, n, data } => self.try_write(slot, fd, &data[..n]),
                    Pending::Wait { child } => self.try_wait(slot, child, false),
                };
                if let Some(w) = done {
                    if let Some(t) = self.tasks.get_mut(slot) {
                        t.pending = None;
                    }
                    let _ = w.send_now(thread);
                    progress = true;
                }
            }
            if !progress {
                return;
            }
        }
    }

    /// Leaves `p` waiting for `slot`'s task (no reply now).
    fn wait_with(&mut self, slot: usize, p: Pending) -> Option<Words> {
        if let Some(t) = self.tasks.get_mut(slot) {
            t.pending = Some(p);
        }
        None
    }

    fn stats_of(&self, of: ThreadId) -> Words {
        let mut s = self.stats;
        if let Some(slot) = self.tasks.slot_of(of) {
            s = self.tasks.get(slot).map_or(s, |t| t.stats);
            s.frames = self.pages.of(slot).count() as u64;
        } else {
            s.frames = self.pages.used() as u64;
        }
        s.frames_free = self.frames.free.len() as u64;
        Words::ok(&s.to_words())
    }

    /// A request of the task in `slot`.
    fn request(&mut self, slot: usize, label: u64) -> Option<Words> {
        let w = self.words;
        let t = self.tasks.get_mut(slot)?;
        let r: Reply = match label {
            rproto::GET_INFO => Ok(Words::ok(&t.info.to_words())),
            rproto::EXIT if t.spawned => {
                self.end(slot, Ended::Exited, w[0]);
                return None;
            }
            // A task of the description: its end goes to the root task (its
            // frames come back once its thread is gone, see `collect`).
            rproto::EXIT => match root::client_exit(t.thread, w[0]) {
                Ok(()) => Ok(Words::ok(&[])),
                Err(_) => return Some(Words::new(rproto::REFUSED)),
            },
            rproto::LOOKUP => match root::lookup(&w[..4]) {
                Ok(id) => Ok(Words::ok(&[id.0])),
                Err(_) => return Some(Words::new(rproto::REFUSED)),
            },
            ts::BRK if w[0] == 0 => Ok(Words::ok(&[t.space.brk()])),
            ts::BRK => t.space.set_brk(w[0]).map(|freed| {
                self.free_range(slot, freed);
                Words::ok(&[w[0]])
            }),
            ts::MAP => t.space.map(w[0]).map(|a| Words::ok(&[a])),
            ts::UNMAP => t.space.unmap(w[0], w[1]).map(|cut| {
                self.free_range(slot, cut);
                Words::ok(&[])
            }),
            ts::PIPE => match self.pipes.create() {
                None => Err(Error::NoResources),
                Some((r, wr)) => match (t.fds.open(r), t.fds.open(wr)) {
                    (Some(a), Some(b)) => Ok(Words::ok(&[a as u64, b as u64])),
                    (a, _) => {
                        if let Some(a) = a {
                            t.fds.take(a as u64);
                        }
                        self.pipes.close(r);
                        self.pipes.close(wr);
                        Err(Error::NoResources)
                    }
                },
            },
            ts::CLOSE => t.fds.take(w[0]).map(|e| self.pipes.close(e)).map(|_| Words::ok(&[])).ok_or(Error::BadFd),
            ts::READ => {
                let max = w[1] as usize;
                if max == 0 || max > IO_MAX {
                    Err(Error::Invalid)
                } else {
                    return self
                        .try_read(slot, w[0], max)
                        .or_else(|| self.wait_with(slot, Pending::Read { fd: w[0], max }));
                }
            }
            ts::WRITE => {
                let n = w[1] as usize;
                if n == 0 || n > IO_MAX {
                    Err(Error::Invalid)
                } else {
                    let mut data = [0u8; IO_MAX];
                    ts::words_to_bytes(&w[2..2 + n.div_ceil(8)], &mut data[..n]);
                    return self
                        .try_write(slot, w[0], &data[..n])
                        .or_else(|| self.wait_with(slot, Pending::Write { fd: w[0], n, data }));
                }
            }
            ts::SPAWN => self.spawn(slot),
            ts::WAIT => {
                let child = ThreadId(w[0]);
                return self
                    .try_wait(slot, child, w[1] & ts::NOHANG != 0)
                    .or_else(|| self.wait_with(slot, Pending::Wait { child }));
            }
            _ => Err(Error::Refused),
        };
        Some(r.unwrap_or_else(err))
    }

    fn dispatch(&mut self, from: ThreadId, m: &Msg) -> Option<Words> {
        let slot = self.tasks.slot_of(from);
        if let Some(f) = Fault::of(m) {
            let Some(slot) = slot else {
                println!("ts-pager: a page fault from thread {:#x}, not a task of its: refused", from.0);
                return Some(msg::refusal());
            };
            return self.fault(slot, f);
        }
        match (m.tag().label(), slot) {
            (label::EXCEPTION, Some(slot)) => {
                // Only the tasks it spawned have the pager as their handler.
                let t = self.tasks.get(slot)?;
                let (vector, ip, cr2) = (m.mr[0], m.mr[2], m.mr[5]);
                println!(
                    "ts-pager: task {} (thread {:#x}) crashed: vector {vector}, address {cr2:#x}, ip {ip:#x}; removed",
                    t.name(),
                    t.thread.0
                );
                if t.spawned {
                    self.end(slot, Ended::Crashed, vector);
                }
                None
            }
            (label::EXCEPTION | label::BUDGET, _) => None,
            (pproto::STATS, _) => Some(self.stats_of(ThreadId(m.mr[0]))),
            // Its tasks are demand paged: there is no run to start.
            (pproto::RUN_START, _) => Some(Words::new(pproto::REFUSED)),
            (_, None) => Some(err(Error::Refused)),
            (l, Some(slot)) => self.request(slot, l),
        }
    }

    /// Answers one message, then whatever it let complete.
    pub fn handle(&mut self, from: ThreadId, m: &Msg) -> Option<Words> {
        m.words(&mut self.words);
        let r = self.dispatch(from, m);
        self.kick();
        r
    }
}
