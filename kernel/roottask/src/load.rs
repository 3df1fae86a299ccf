//! Loading: from the system description to created (and, for the tasks the
//! root task pages itself, started) threads.
//!
//! For every task the description names: find its boot module, create its
//! thread in a new space (UTCB at `abi::layout::utcb(0)`), and give it the
//! pager, exception handler, priority, MCP, rights, time slice and budget
//! the description gives. Tasks the root task pages are loaded eagerly into
//! frames from sigma0 (a pager's of its own partition's colours, so that
//! its code and data sit with what it serves), image, stack and heap, and
//! started; tasks of a user-level pager wait until their pager has loaded
//! them (`abi::ipc::pager`). Pagers are bound to their partitions before
//! they start. Checking everything first and creating threads after keeps
//! a bad description from leaving half a system: the host validated it, and
//! what the root task finds wrong (a missing module, a bad ELF) it reports
//! before it creates anything.

use crate::Pages;
use abi::ipc::root::{set_text, Role, TaskInfo};
use abi::kip::Module;
use abi::layout;
use abi::sys::{allow, attr, rights};
use abi::syscall;
use abi::{Error, ThreadId};
use core::fmt;
use pager::sigma0::{self, Refused};
use sysdesc::{Ref, System, Task, MAX_TASKS};

/// A task the root task started or will start.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    pub thread: ThreadId,
    pub module: Module,
    /// Its description, as the task reads it through `GET_INFO`.
    pub info: TaskInfo,
    pub state: State,
    /// Tasks of a user-level pager: handed to their pager already.
    pub handed: bool,
    /// Sends and control calls the kernel refused it (`attr::REFUSED`),
    /// as last read.
    pub refused: (u64, u64),
    /// Times it ran out of its budget (the kernel's notices to the root
    /// task as its handler).
    pub budget_outs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Created, waiting for its pager.
    Waiting,
    Running,
    /// Reported its end with this status.
    Exited(u64),
    /// Crashed (an exception nobody fixed up), deleted.
    Crashed,
    /// Stopped for good at its exception handler's word (`root::STOP`),
    /// deleted.
    Stopped,
}

#[derive(Clone, Copy, Debug)]
pub enum LoadError {
    NoModule,
    Elf(elfload::ElfError),
    Sigma0(Refused),
    Kernel(Error),
    TableFull,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NoModule => write!(f, "no boot module of that name"),
            LoadError::Elf(e) => write!(f, "bad ELF image: {e:?}"),
            LoadError::Sigma0(r) => write!(f, "sigma0 refused: {r:?}"),
            LoadError::Kernel(e) => write!(f, "kernel refused: {e:?}"),
            LoadError::TableFull => write!(f, "the root task's page table is full"),
        }
    }
}

impl From<Refused> for LoadError {
    fn from(r: Refused) -> Self {
        LoadError::Sigma0(r)
    }
}

impl From<Error> for LoadError {
    fn from(e: Error) -> Self {
        LoadError::Kernel(e)
    }
}

/// Nanoseconds to TSC ticks.
pub fn ticks(ns: u64) -> u64 {
    let hz = user_rt::kip().tsc_hz as u128;
    (ns as u128 * hz / 1_000_000_000).min(u64::MAX as u128) as u64
}

/// Smallest stack a task gets (the description may ask for more).
const MIN_STACK: u64 = 16 * 1024;

fn role(r: sysdesc::Role) -> Role {
    match r {
        sysdesc::Role::Pager => Role::Pager,
        sysdesc::Role::Rt => Role::Rt,
        sysdesc::Role::Ts => Role::Ts,
        sysdesc::Role::Test => Role::Test,
    }
}

/// The thread a reference names, once the tasks before it were created.
fn resolve(r: Ref, me: ThreadId, threads: &[ThreadId]) -> ThreadId {
    match r {
        Ref::Root => me,
        Ref::Task(i) => threads.get(i).copied().unwrap_or(ThreadId::NIL),
    }
}

pub struct Loader<'s> {
    pub sys: &'s System<'s>,
    pub tasks: heapless::Vec<Loaded, MAX_TASKS>,
    pub pages: &'s mut Pages,
}

impl<'s> Loader<'s> {
    /// Checks that every task's module exists and its ELF is sound.
    pub fn check(sys: &System<'_>) -> Result<(), (usize, LoadError)> {
        let kip = user_rt::kip();
        for (i, t) in sys.tasks().iter().enumerate() {
            let (_, m) = kip.module(t.bin).ok_or((i, LoadError::NoModule))?;
            let bytes = sigma0::module_bytes(m).map_err(|e| (i, e.into()))?;
            elfload::parse(bytes, layout::IMAGE_END).map_err(|e| (i, LoadError::Elf(e)))?;
        }
        Ok(())
    }

    /// Creates every task's thread (pagers first in the description's own
    /// order, since a task refers to its pager by a created thread) and
    /// configures it. Nothing is started yet.
    pub fn create_all(&mut self) -> Result<(), (usize, LoadError)> {
        let me = syscall::myself().0;
        let kip = user_rt::kip();
        let mut threads: heapless::Vec<ThreadId, MAX_TASKS> = heapless::Vec::new();
        // Ids first (a pager may come after its clients in the text).
        for (i, _) in self.sys.tasks().iter().enumerate() {
            let t = syscall::thread_create(ThreadId::NIL, layout::utcb(0), ThreadId::NIL).map_err(|e| (i, e.into()))?;
            let _ = threads.push(t);
        }
        for (i, t) in self.sys.tasks().iter().enumerate() {
            let thread = threads[i];
            let pager = resolve(t.pager, me, &threads);
            let handler = resolve(t.handler, me, &threads);
            let info = self.info(i, t, pager, handler);
            configure(thread, t, &info).map_err(|e| (i, e.into()))?;
            if let Some(list) = self.sys.send_list(i) {
                restrict(thread, list, me, &threads).map_err(|e| (i, e.into()))?;
            }
            let (_, m) = kip.module(t.bin).ok_or((i, LoadError::NoModule))?;
            let _ = self.tasks.push(Loaded {
                thread,
                module: *m,
                info,
                state: State::Waiting,
                handed: false,
                refused: (0, 0),
                budget_outs: 0,
            });
        }
        Ok(())
    }

    fn info(&self, i: usize, t: &Task<'_>, pager: ThreadId, handler: ThreadId) -> TaskInfo {
        let mut info = TaskInfo::empty();
        info.index = i as u64;
        info.role = role(t.role);
        info.priority = t.prio as u64;
        info.mcp = t.mcp as u64;
        info.rights = if t.control { rights::CONTROL } else { 0 } | if t.irq { rights::IRQ } else { 0 };
        (info.pager, info.handler) = (pager, handler);
        let slice = if t.timeslice == 0 { self.sys.kernel().timeslice } else { t.timeslice };
        (info.timeslice, info.budget, info.period) = (ticks(slice), ticks(t.budget), ticks(t.period));
        if let Some(rt) = t.rt {
            (info.rt_period, info.deadline, info.jobs) = (ticks(rt.period), ticks(rt.deadline), rt.jobs as u64);
        }
        info.heap_base = layout::HEAP_BASE;
        info.heap_size = t.heap.next_multiple_of(4096);
        info.stack_size = t.stack.max(MIN_STACK).next_multiple_of(4096);
        info.stack_top = layout::STACK_TOP;
        set_text(&mut info.name, t.name);
        set_text(&mut info.args, t.args);
        info
    }

    /// Loads task `i` (paged by the root task) into fresh frames: image,
    /// stack, heap. Returns its entry point.
    pub fn load_own(&mut self, i: usize) -> Result<u64, LoadError> {
        let t = &self.sys.tasks()[i];
        let l = self.tasks[i];
        let bytes = sigma0::module_bytes(&l.module)?;
        let img = elfload::parse(bytes, layout::IMAGE_END).map_err(LoadError::Elf)?;
        // A pager's own memory comes from its partition's colours.
        let part = if t.role == sysdesc::Role::Pager { t.partition } else { None };
        let pages = &mut *self.pages;
        let stack = l.info.stack_top - l.info.stack_size..l.info.stack_top;
        let heap = l.info.heap_base..l.info.heap_base + l.info.heap_size;
        pager::load::eager(bytes, &img, &[stack, heap], |v, r, fill| {
            let f = sigma0::frame(part)?;
            fill(sigma0::page(f));
            pages.insert(i, v, f, r).map(|_| ()).map_err(|_| LoadError::TableFull)
        })?;
        Ok(img.entry)
    }

    /// Binds every pager with a partition to it.
    pub fn bind_pagers(&self) -> Result<(), (usize, LoadError)> {
        for (i, t) in self.sys.pagers() {
            if let Some(p) = t.partition {
                sigma0::bind(self.tasks[i].thread, p).map_err(|e| (i, e.into()))?;
            }
        }
        Ok(())
    }

    /// Starts task `i` at `entry` on its stack.
    pub fn start(&mut self, i: usize, entry: u64, sp: u64) -> Result<(), Error> {
        syscall::thread_start(self.tasks[i].thread, entry, sp)?;
        self.tasks[i].state = State::Running;
        Ok(())
    }
}

/// Gives a created thread's space the send allow list `list` (its peers'
/// threads are `threads`, the root task `me`).
fn restrict(thread: ThreadId, list: sysdesc::Allow, me: ThreadId, threads: &[ThreadId]) -> Result<(), Error> {
    syscall::thread_config(thread, attr::ALLOW, ThreadId::NIL.0, allow::REMOVE)?;
    for p in list.iter() {
        let peer = match p {
            sysdesc::Peer::Root => me,
            sysdesc::Peer::Sigma0 => ThreadId(user_rt::kip().sigma0_id),
            sysdesc::Peer::Task(j) => threads.get(j).copied().unwrap_or(ThreadId::NIL),
        };
        syscall::thread_config(thread, attr::ALLOW, peer.0, allow::ADD)?;
    }
    Ok(())
}

/// Gives a created thread what the description says.
fn configure(thread: ThreadId, t: &Task<'_>, info: &TaskInfo) -> Result<(), Error> {
    syscall::thread_config(thread, attr::PAGER, info.pager.0, 0)?;
    syscall::thread_config(thread, attr::EXCEPTION_HANDLER, info.handler.0, 0)?;
    syscall::thread_config(thread, attr::PRIORITY, t.prio as u64, 0)?;
    syscall::thread_config(thread, attr::MCP, t.mcp as u64, 0)?;
    syscall::thread_config(thread, attr::RIGHTS, info.rights, 0)?;
    if info.timeslice >= abi::sys::MIN_TIMESLICE {
        syscall::thread_config(thread, attr::TIMESLICE, info.timeslice, 0)?;
    }
    if info.budget > 0 {
        syscall::thread_config(thread, attr::BUDGET, info.budget, info.period)?;
    }
    Ok(())
}
