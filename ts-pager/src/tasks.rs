//! The TS pager's tasks: those the description gives it and those it
//! spawned, with their address-space bookkeeping, descriptors, the
//! request each may have waiting, and, after a spawned task's end, its
//! exit record until its parent waits for it.

use crate::pipe::Fds;
use crate::space::Space;
use abi::ipc::pager::Stats;
use abi::ipc::root::TaskInfo;
use abi::ipc::ts::{Ended, IO_MAX};
use abi::ThreadId;

/// Tasks one TS pager holds (running or ended and not yet waited for).
pub const MAX_TASKS: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    /// Killed for want of memory, its frames taken back; its exception
    /// handler (the root task) removes it.
    Killed,
    /// Ended (how, status); kept for its parent's WAIT.
    Ended(Ended, u64),
}

/// A request answered later. A write keeps its bytes here (the pager has
/// no allocator; one waiting request per task).
#[derive(Clone, Copy, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Pending {
    Read {
        fd: u64,
        max: usize,
    },
    Write {
        fd: u64,
        n: usize,
        data: [u8; IO_MAX],
    },
    /// For child `child` (`NIL`: any).
    Wait {
        child: ThreadId,
    },
}

pub struct Task {
    pub thread: ThreadId,
    /// Its description (for spawned tasks the pager's, served by
    /// `GET_INFO`; for the description's the pager keeps what it needs:
    /// name, priority, heap and stack sizes).
    pub info: TaskInfo,
    /// The pager created it: it answers its `GET_INFO` and `EXIT`, and
    /// deletes it at its end.
    pub spawned: bool,
    /// Who spawned it (`NIL`: the root task, or a parent that is gone).
    pub parent: ThreadId,
    pub state: State,
    pub space: Space,
    pub fds: Fds,
    pub pending: Option<Pending>,
    pub stats: Stats,
}

impl Task {
    pub fn new(thread: ThreadId, info: TaskInfo, spawned: bool, parent: ThreadId) -> Task {
        Task {
            thread,
            space: Space::new(info.heap_size, info.stack_size),
            info,
            spawned,
            parent,
            state: State::Running,
            fds: Fds::default(),
            pending: None,
            stats: Stats::default(),
        }
    }

    pub fn name(&self) -> &str {
        self.info.name()
    }
}

/// What a WAIT finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// This slot's task ended: its record answers the wait.
    Ended(usize),
    /// A matching child still runs.
    Block,
    /// No child matches.
    NoChild,
}

pub struct Tasks {
    slots: [Option<Task>; MAX_TASKS],
}

impl Default for Tasks {
    fn default() -> Self {
        Self::new()
    }
}

impl Tasks {
    pub const fn new() -> Tasks {
        Tasks { slots: [const { None }; MAX_TASKS] }
    }

    /// Adds a task; returns its slot (the fault table's client number).
    pub fn insert(&mut self, t: Task) -> Option<usize> {
        let i = self.slots.iter().position(|s| s.is_none())?;
        self.slots[i] = Some(t);
        Some(i)
    }

    pub fn has_room(&self) -> bool {
        self.slots.iter().any(|s| s.is_none())
    }

    /// The slot of the task with thread `t` (not one that ended).
    pub fn slot_of(&self, t: ThreadId) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|x| x.thread == t && !matches!(x.state, State::Ended(..))))
    }

    pub fn get(&self, i: usize) -> Option<&Task> {
        self.slots.get(i)?.as_ref()
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut Task> {
        self.slots.get_mut(i)?.as_mut()
    }

    pub fn remove(&mut self, i: usize) -> Option<Task> {
        self.slots.get_mut(i)?.take()
    }

    /// Every slot in use.
    #[cfg(test)]
    pub fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots.iter().enumerate().filter(|(_, s)| s.is_some()).map(|(i, _)| i)
    }

    /// What a WAIT of `parent` for `child` (`NIL`: any) finds.
    pub fn wait(&self, parent: ThreadId, child: ThreadId) -> WaitFor {
        let mut any = false;
        for (i, t) in self.slots.iter().enumerate() {
            let Some(t) = t else { continue };
            if t.parent != parent || parent.is_nil() || (!child.is_nil() && t.thread != child) {
                continue;
            }
            if matches!(t.state, State::Ended(..)) {
                return WaitFor::Ended(i);
            }
            any = true;
        }
        if any {
            WaitFor::Block
        } else {
            WaitFor::NoChild
        }
    }

    /// `parent` is gone: its children have no parent any more, and the
    /// records of those that ended go (nobody will wait for them).
    pub fn orphan(&mut self, parent: ThreadId) {
        for s in self.slots.iter_mut() {
            let Some(t) = s else { continue };
            if t.parent != parent || parent.is_nil() {
                continue;
            }
            t.parent = ThreadId::NIL;
            if matches!(t.state, State::Ended(..)) {
                *s = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64, parent: u64) -> Task {
        let mut i = TaskInfo::empty();
        abi::ipc::root::set_text(&mut i.name, "t");
        (i.heap_size, i.stack_size) = (4096, 4096);
        Task::new(ThreadId(id), i, true, ThreadId(parent))
    }

    #[test]
    fn wait_finds_ended_children_blocks_on_living_ones_and_knows_strangers() {
        let mut ts = Tasks::new();
        let p = ThreadId(1);
        let a = ts.insert(task(10, 1)).unwrap();
        let _b = ts.insert(task(11, 1)).unwrap();
        ts.insert(task(12, 2)).unwrap();
        assert_eq!(ts.wait(p, ThreadId::NIL), WaitFor::Block);
        assert_eq!(ts.wait(p, ThreadId(12)), WaitFor::NoChild, "not its child");
        assert_eq!(ts.wait(ThreadId(3), ThreadId::NIL), WaitFor::NoChild);
        ts.get_mut(a).unwrap().state = State::Ended(Ended::Exited, 0);
        assert_eq!(ts.wait(p, ThreadId::NIL), WaitFor::Ended(a));
        assert_eq!(ts.wait(p, ThreadId(11)), WaitFor::Block);
        assert_eq!(ts.slot_of(ThreadId(10)), None, "an ended task takes no requests");
        ts.remove(a);
        assert_eq!(ts.wait(p, ThreadId(10)), WaitFor::NoChild);
        assert_eq!(ts.wait(ThreadId::NIL, ThreadId::NIL), WaitFor::NoChild, "nobody is NIL's parent");
    }

    #[test]
    fn orphans_lose_their_parent_and_their_exit_records() {
        let mut ts = Tasks::new();
        let a = ts.insert(task(10, 1)).unwrap();
        let b = ts.insert(task(11, 1)).unwrap();
        ts.get_mut(a).unwrap().state = State::Ended(Ended::OutOfMemory, 0);
        ts.orphan(ThreadId(1));
        assert!(ts.get(a).is_none());
        assert_eq!(ts.get(b).unwrap().parent, ThreadId::NIL);
        assert_eq!(ts.slots().collect::<Vec<_>>(), vec![b]);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut ts = Tasks::new();
        for i in 0..MAX_TASKS {
            assert!(ts.insert(task(100 + i as u64, 1)).is_some());
        }
        assert!(!ts.has_room());
        assert!(ts.insert(task(1000, 1)).is_none());
    }
}
