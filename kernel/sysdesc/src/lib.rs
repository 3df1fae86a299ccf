//! The compact system description: what runs, in one boot module.
//!
//! The host tool (`prism system`) resolves one scenario of a TOML
//! description (`workloads/configs/*.toml`), validates it, and writes it in
//! this form as the `system` boot module; the root task reads it to load and
//! start every task, and sigma0 reads its partitions and cache geometry. One
//! writer ([`write`]) and one reader ([`parse`]), in this crate, used on both
//! sides.
//!
//! # Format
//!
//! Line based; words separated by spaces; `#` starts a comment (except in a
//! task's arguments). Times are in **nanoseconds**, sizes in **bytes**,
//! flags `0` or `1`. The first line is [`HEADER`]; then, in any order, one
//! `system` line, one `kernel` line, at most one `llc` line, up to
//! [`MAX_PARTITIONS`] `partition` lines and up to [`MAX_TASKS`] `task`
//! lines. Every key of an item is required unless marked optional below.
//!
//! ```text
//! prism-system 1
//! system name=default scenario=partitioned shared_colors=0
//! kernel kmem=16777216 timeslice=10000000
//! llc level=2 size=1048576 ways=16 line=64          # optional
//! partition name=rt colors=0-7 memory=4194304
//! partition name=ts colors=8-15 memory=16777216
//! task name=rt-pager bin=rt-pager role=pager partition=rt pager=root prio=50 mcp=49 control=1 handler=root timeslice=0 budget=0 period=0 heap=0 stack=65536
//! task name=matmul bin=matmul role=rt pager=rt-pager prio=40 mcp=0 control=0 handler=root timeslice=0 budget=2000000 period=5000000 heap=65536 stack=65536 rt_period=5000000 deadline=5000000 jobs=200 -- n=64
//! ```
//!
//! - `system`: `name`, `scenario` ([`Scenario`]), `shared_colors` (the
//!   scenario lets partitions share colours on purpose).
//! - `kernel`: `kmem` (kernel memory pool), `timeslice` (the default).
//! - `llc`: the coloured cache level (`level`, `size`, `ways`, `line`);
//!   without it sigma0 uses the level the kernel detected.
//! - `partition`: `name`, `colors` (Xen `llc-colors` syntax), `memory`
//!   (bytes it must hold, 0: not declared).
//! - `task`: `name`, `bin` (the boot module holding its ELF), `role`
//!   ([`Role`]), `partition` (pagers only, optional: the partition sigma0
//!   binds it to), `pager` and `handler` ([`ROOT`] or a task's name), `prio`,
//!   `mcp` (maximum controlled priority), `control` (the root task delegates
//!   thread control to it), `timeslice` (0: the kernel default), `budget` and
//!   `period` (0 0: no budget), `heap`, `stack`; RT tasks also `rt_period`,
//!   `deadline`, `jobs`; optional `allow` (comma-separated task names, or
//!   [`ROOT`] / [`SIGMA0`], it may send to; `allow=` is the empty list);
//!   optional `irq` (`1`: the root task gives it the right to route
//!   interrupts) and `ports` (I/O port ranges it may ask the root task for,
//!   comma-separated `BASE:COUNT` in hex, each a power-of-two count of
//!   ports aligned to it, like `0x3f8:8,0x40:4`).
//!   Everything after a ` -- ` word is the task's argument string.
//!
//! [`parse`] checks the syntax, the capacities (at most [`MAX_BINARIES`]
//! distinct binaries among them), that names are unique and
//! that every reference (pager, handler, partition, allow entry) resolves;
//! references are stored resolved, as indices ([`Ref`], [`Peer`]). It does
//! not check colours against the machine's memory or the priority rules: the
//! host validates the TOML description before it writes this form, and
//! sigma0 validates the partitions against the memory it owns.
//!
//! ```
//! let text = "prism-system 1\n\
//!     system name=demo scenario=base shared_colors=0\n\
//!     kernel kmem=16777216 timeslice=10000000\n\
//!     partition name=rt colors=0-7 memory=0\n\
//!     task name=pg bin=rt-pager role=pager partition=rt pager=root prio=50 mcp=0 control=0 handler=root timeslice=0 budget=0 period=0 heap=0 stack=65536\n\
//!     task name=job bin=matmul role=rt pager=pg prio=40 mcp=0 control=0 handler=pg timeslice=0 budget=0 period=0 heap=0 stack=65536 rt_period=5000000 deadline=5000000 jobs=10 allow=pg,root -- n=64\n";
//! let sys = sysdesc::parse(text).unwrap();
//! let job = sys.task("job").unwrap();
//! assert_eq!(job.pager, sysdesc::Ref::Task(0));
//! assert_eq!(job.rt.unwrap().jobs, 10);
//! assert!(job.allow.unwrap().contains(sysdesc::Peer::Root));
//! assert_eq!(job.args().collect::<Vec<_>>(), ["n=64"]);
//! let mut out = String::new();
//! sysdesc::write(&sys, &mut out).unwrap();
//! assert_eq!(sysdesc::parse(&out).unwrap(), sys);
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod parse;
#[cfg(test)]
mod tests;
mod write;

use cache_color::geometry::CacheLevel;
use cache_color::partition::{PartitionSpec, Sharing};
use core::fmt;

pub use parse::{check_name, check_task_name, parse, Error, ErrorKind, NameProblem};
pub use write::write;

/// The first line of every compact description.
pub const HEADER: &str = "prism-system 1";
/// Most partitions one description declares.
pub const MAX_PARTITIONS: usize = 8;
/// Most tasks (pagers included) one description declares.
pub const MAX_TASKS: usize = 24;
/// Boot modules before the tasks' binaries: sigma0, the root task and
/// `system` (this description).
pub const BOOT_MODULES: usize = 3;
/// Most distinct binaries the tasks may name: what the KIP's module table
/// (`abi::kip::MAX_MODULES`) holds beside the [`BOOT_MODULES`].
pub const MAX_BINARIES: usize = abi::kip::MAX_MODULES - BOOT_MODULES;
/// Longest name (of the system, a partition, a task or a binary), in bytes.
pub const MAX_NAME: usize = 32;
/// Longest argument string of a task, in bytes.
pub const MAX_ARGS: usize = 256;
/// Highest thread priority.
pub const MAX_PRIORITY: u8 = abi::sys::MAX_PRIORITY as u8;
/// The root task's maximum controlled priority: no task's `prio` or `mcp`
/// may exceed it.
pub const ROOT_MCP: u8 = MAX_PRIORITY;
/// The name that means the root task in `pager`, `handler` and `allow`.
pub const ROOT: &str = "root";
/// The name that means sigma0 in `allow`.
pub const SIGMA0: &str = "sigma0";

const _: () = assert!(MAX_TASKS <= 32, "Allow keeps its tasks in a u32");

/// What a task is, which decides how the root task starts it and which keys
/// it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A user-level pager (stacked on sigma0, bound to a partition).
    Pager,
    /// A real-time task: released periodically, `rt_period`/`deadline`/`jobs`.
    Rt,
    /// A time-sharing task.
    Ts,
    /// A task of a test image.
    Test,
}

impl Role {
    /// Every role, in the order written in documentation.
    pub const ALL: [Role; 4] = [Role::Pager, Role::Rt, Role::Ts, Role::Test];

    /// The word the compact form (and the TOML) uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Pager => "pager",
            Role::Rt => "rt",
            Role::Ts => "ts",
            Role::Test => "test",
        }
    }

    /// The role a word names.
    pub fn from_name(word: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == word)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which scenario of a description this compact form is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// The description as written, no scenario applied.
    Base,
    /// The RT side alone (no TS load).
    Alone,
    /// RT and TS share the same colours.
    Shared,
    /// RT and TS on disjoint colours.
    Partitioned,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 4] = [Scenario::Base, Scenario::Alone, Scenario::Shared, Scenario::Partitioned];

    /// The word the compact form (and the TOML) uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scenario::Base => "base",
            Scenario::Alone => "alone",
            Scenario::Shared => "shared",
            Scenario::Partitioned => "partitioned",
        }
    }

    /// The scenario a word names.
    pub fn from_name(word: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.as_str() == word)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kernel settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// Bytes of the kernel memory pool (page tables, mapping database,
    /// UTCBs).
    pub kmem: u64,
    /// Default time slice in nanoseconds.
    pub timeslice: u64,
}

/// Who pages a task, or handles its exceptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ref {
    /// The root task.
    Root,
    /// The task at this index of [`System::tasks`].
    Task(usize),
}

/// A thread a task may send to (an entry of its [`Allow`] list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// sigma0.
    Sigma0,
    /// The root task.
    Root,
    /// The task at this index of [`System::tasks`].
    Task(usize),
}

/// The threads a task may send to: a set of [`Peer`]s (the list the
/// kernel enforces is [`System::send_list`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Allow {
    tasks: u32,
    root: bool,
    sigma0: bool,
}

impl Allow {
    /// The empty list: the task may send to nobody.
    pub const NONE: Allow = Allow { tasks: 0, root: false, sigma0: false };

    /// Whether `peer` is on the list.
    pub fn contains(&self, peer: Peer) -> bool {
        match peer {
            Peer::Sigma0 => self.sigma0,
            Peer::Root => self.root,
            Peer::Task(i) => i < MAX_TASKS && self.tasks & (1 << i) != 0,
        }
    }

    /// Adds `peer`; `false` (and no change) for a task index at or beyond
    /// [`MAX_TASKS`].
    pub fn insert(&mut self, peer: Peer) -> bool {
        match peer {
            Peer::Sigma0 => self.sigma0 = true,
            Peer::Root => self.root = true,
            Peer::Task(i) if i < MAX_TASKS => self.tasks |= 1 << i,
            Peer::Task(_) => return false,
        }
        true
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        *self == Allow::NONE
    }

    /// The peers: tasks by index, then the root task, then sigma0.
    pub fn iter(&self) -> impl Iterator<Item = Peer> + '_ {
        (0..MAX_TASKS)
            .filter(|&i| self.tasks & (1 << i) != 0)
            .map(Peer::Task)
            .chain(self.root.then_some(Peer::Root))
            .chain(self.sigma0.then_some(Peer::Sigma0))
    }
}

/// Most I/O port ranges one task may hold.
pub const MAX_PORT_RANGES: usize = 4;

/// The I/O port ranges a task may ask for: each `2^log2` ports from a base
/// aligned to that size (an I/O flexpage).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ports {
    ranges: [(u16, u8); MAX_PORT_RANGES],
    count: usize,
}

impl Ports {
    /// No ports.
    pub const NONE: Ports = Ports { ranges: [(0, 0); MAX_PORT_RANGES], count: 0 };

    /// Adds `2^log2` ports from `base`; `false` (and no change) when the
    /// range is not aligned, leaves the port space, or the list is full.
    pub fn insert(&mut self, base: u16, log2: u8) -> bool {
        let aligned =
            log2 <= 16 && (base as u32).is_multiple_of(1u32 << log2) && base as u32 + (1u32 << log2) <= 0x1_0000;
        if !aligned || self.count == MAX_PORT_RANGES {
            return false;
        }
        self.ranges[self.count] = (base, log2);
        self.count += 1;
        true
    }

    /// The ranges, as (base, log2 of the count).
    pub fn iter(&self) -> impl Iterator<Item = (u16, u8)> + '_ {
        self.ranges[..self.count].iter().copied()
    }

    /// Whether every port of `2^log2` ports from `base` is in one range.
    pub fn covers(&self, base: u32, log2: u32) -> bool {
        let end = base as u64 + (1u64 << log2.min(16));
        self.iter().any(|(b, l)| b as u64 <= base as u64 && end <= b as u64 + (1u64 << l))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Most binaries one pager may spawn.
pub const MAX_SPAWNS: usize = 4;

/// The binaries a pager may spawn tasks from at run time (besides the
/// tasks the description gives it): boot modules of the image, which the
/// root task hands only to a pager that lists them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Spawns<'a> {
    bins: [&'a str; MAX_SPAWNS],
    count: usize,
}

impl<'a> Spawns<'a> {
    /// None.
    pub const NONE: Spawns<'static> = Spawns { bins: [""; MAX_SPAWNS], count: 0 };

    /// Adds `bin`; `false` (and no change) when the list is full.
    pub fn insert(&mut self, bin: &'a str) -> bool {
        if self.count == MAX_SPAWNS {
            return false;
        }
        self.bins[self.count] = bin;
        self.count += 1;
        true
    }

    /// The binaries, in the order written.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.bins[..self.count].iter().copied()
    }

    /// Whether `bin` is on the list.
    pub fn contains(&self, bin: &str) -> bool {
        self.iter().any(|b| b == bin)
    }
}

/// The real-time parameters of an RT task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rt {
    /// Release period of its jobs, ns.
    pub period: u64,
    /// Relative deadline of each job, ns.
    pub deadline: u64,
    /// How many jobs to run.
    pub jobs: u32,
}

/// One task (pagers included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Task<'a> {
    /// Unique name.
    pub name: &'a str,
    /// The boot module holding its ELF.
    pub bin: &'a str,
    /// What it is.
    pub role: Role,
    /// Pagers only: the partition (index into [`System::partitions`]) sigma0
    /// binds it to.
    pub partition: Option<usize>,
    /// Who pages it.
    pub pager: Ref,
    /// Priority, 0 (lowest) to [`MAX_PRIORITY`].
    pub prio: u8,
    /// Maximum controlled priority.
    pub mcp: u8,
    /// Whether the root task delegates thread control to it.
    pub control: bool,
    /// Who handles its exceptions.
    pub handler: Ref,
    /// Time slice in ns (0: the kernel default).
    pub timeslice: u64,
    /// CPU budget per `period`, ns (0 with period 0: no budget).
    pub budget: u64,
    /// Budget replenishment period, ns.
    pub period: u64,
    /// Heap bytes its pager backs.
    pub heap: u64,
    /// Stack bytes its pager backs.
    pub stack: u64,
    /// RT tasks only: release period, deadline, jobs.
    pub rt: Option<Rt>,
    /// Whom it may send to (`None`: the description says nothing).
    pub allow: Option<Allow>,
    /// Whether it may route interrupts.
    pub irq: bool,
    /// The I/O ports it may ask the root task for.
    pub ports: Ports,
    /// Pagers only: the binaries it may spawn tasks from.
    pub spawns: Spawns<'a>,
    /// Its argument string (free words, at most [`MAX_ARGS`] bytes).
    pub args: &'a str,
}

impl<'a> Task<'a> {
    /// A task with every number zero, paged and handled by the root task,
    /// without arguments: a starting point to fill in.
    pub const fn new(name: &'a str, bin: &'a str, role: Role) -> Self {
        Task {
            name,
            bin,
            role,
            partition: None,
            pager: Ref::Root,
            prio: 0,
            mcp: 0,
            control: false,
            handler: Ref::Root,
            timeslice: 0,
            budget: 0,
            period: 0,
            heap: 0,
            stack: 0,
            rt: None,
            allow: None,
            irq: false,
            ports: Ports::NONE,
            spawns: Spawns::NONE,
            args: "",
        }
    }

    /// Its arguments, word by word.
    pub fn args(&self) -> impl Iterator<Item = &'a str> {
        self.args.split_ascii_whitespace()
    }
}

/// A full list ([`System::add_partition`], [`System::add_task`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    /// What is full: `"partitions"` or `"tasks"`.
    pub what: &'static str,
    /// Its capacity.
    pub max: usize,
}

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "more than {} {}", self.max, self.what)
    }
}

const NO_PARTITION: PartitionSpec<'static> = PartitionSpec::new("", "");
const NO_TASK: Task<'static> = Task::new("", "", Role::Test);

/// A parsed (or assembled) compact description. Text fields borrow from
/// the description's text.
#[derive(Clone, Debug)]
pub struct System<'a> {
    name: &'a str,
    scenario: Scenario,
    shared_colors: bool,
    kernel: Kernel,
    llc: Option<CacheLevel>,
    partitions: [PartitionSpec<'a>; MAX_PARTITIONS],
    partition_count: usize,
    tasks: [Task<'a>; MAX_TASKS],
    task_count: usize,
}

impl PartialEq for System<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.scenario == o.scenario
            && self.shared_colors == o.shared_colors
            && self.kernel == o.kernel
            && self.llc == o.llc
            && self.partitions() == o.partitions()
            && self.tasks() == o.tasks()
    }
}

impl Eq for System<'_> {}

impl<'a> System<'a> {
    /// A system without partitions or tasks (the host fills it in with
    /// [`System::add_partition`] and [`System::add_task`], then writes it).
    pub const fn new(
        name: &'a str,
        scenario: Scenario,
        shared_colors: bool,
        kernel: Kernel,
        llc: Option<CacheLevel>,
    ) -> Self {
        System {
            name,
            scenario,
            shared_colors,
            kernel,
            llc,
            partitions: [NO_PARTITION; MAX_PARTITIONS],
            partition_count: 0,
            tasks: [NO_TASK; MAX_TASKS],
            task_count: 0,
        }
    }

    /// Appends a partition; returns its index.
    pub fn add_partition(&mut self, p: PartitionSpec<'a>) -> Result<usize, Full> {
        if self.partition_count == MAX_PARTITIONS {
            return Err(Full { what: "partitions", max: MAX_PARTITIONS });
        }
        self.partitions[self.partition_count] = p;
        self.partition_count += 1;
        Ok(self.partition_count - 1)
    }

    /// Appends a task; returns its index (what [`Ref::Task`] and
    /// [`Peer::Task`] hold).
    pub fn add_task(&mut self, t: Task<'a>) -> Result<usize, Full> {
        if self.task_count == MAX_TASKS {
            return Err(Full { what: "tasks", max: MAX_TASKS });
        }
        self.tasks[self.task_count] = t;
        self.task_count += 1;
        Ok(self.task_count - 1)
    }

    /// The system's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Which scenario of its description this is.
    pub fn scenario(&self) -> Scenario {
        self.scenario
    }

    /// Whether partitions may share colours (the scenario shares them on
    /// purpose); sigma0 then validates them allowing overlap.
    pub fn shared_colors(&self) -> bool {
        self.shared_colors
    }

    /// How sigma0 validates the partitions
    /// (`cache_color::partition::validate_into_with`): allowing shared
    /// colours exactly when the scenario shares them on purpose.
    pub fn sharing(&self) -> Sharing {
        if self.shared_colors {
            Sharing::Allowed
        } else {
            Sharing::Disjoint
        }
    }

    /// Kernel settings.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The coloured cache level, if the description gives one.
    pub fn llc(&self) -> Option<CacheLevel> {
        self.llc
    }

    /// The partitions in the order written, as specs for
    /// `cache_color::partition::validate_into`.
    pub fn partitions(&self) -> &[PartitionSpec<'a>] {
        &self.partitions[..self.partition_count]
    }

    /// The distinct binaries the tasks name, in order of first use.
    pub fn binaries(&self) -> impl Iterator<Item = &'a str> + '_ {
        // Each task's binary, then the binaries pagers spawn from.
        let tasks = self.tasks();
        let all = tasks
            .iter()
            .map(|t| t.bin)
            .chain(tasks.iter().flat_map(|t| t.spawns.bins[..t.spawns.count].iter().copied()));
        all.clone().enumerate().filter(move |(i, b)| all.clone().take(*i).all(|u| u != *b)).map(|(_, b)| b)
    }

    /// The partition called `name`.
    pub fn partition(&self, name: &str) -> Option<&PartitionSpec<'a>> {
        self.partitions().iter().find(|p| p.name == name)
    }

    /// The index of the partition called `name`.
    pub fn partition_index(&self, name: &str) -> Option<usize> {
        self.partitions().iter().position(|p| p.name == name)
    }

    /// The tasks (pagers included) in the order written.
    pub fn tasks(&self) -> &[Task<'a>] {
        &self.tasks[..self.task_count]
    }

    /// The task called `name`.
    pub fn task(&self, name: &str) -> Option<&Task<'a>> {
        self.tasks().iter().find(|t| t.name == name)
    }

    /// The index of the task called `name`.
    pub fn task_index(&self, name: &str) -> Option<usize> {
        self.tasks().iter().position(|t| t.name == name)
    }

    /// The pagers, with their indices.
    pub fn pagers(&self) -> impl Iterator<Item = (usize, &Task<'a>)> {
        self.tasks().iter().enumerate().filter(|(_, t)| t.role == Role::Pager)
    }

    /// The tasks paged by `pager`, with their indices.
    pub fn clients(&self, pager: Ref) -> impl Iterator<Item = (usize, &Task<'a>)> {
        self.tasks().iter().enumerate().filter(move |(_, t)| t.pager == pager)
    }

    /// The name a reference stands for ([`ROOT`] or the task's name).
    pub fn ref_name(&self, r: Ref) -> &'a str {
        match r {
            Ref::Root => ROOT,
            Ref::Task(i) => self.tasks().get(i).map_or("", |t| t.name),
        }
    }

    /// Whether task `i` is on the TS side: a TS task, or a pager that pages
    /// at least one task and only TS tasks.
    pub fn ts_side(&self, i: usize) -> bool {
        match self.tasks().get(i).map(|t| t.role) {
            Some(Role::Ts) => true,
            Some(Role::Pager) => {
                let clients = || self.clients(Ref::Task(i)).filter(|(_, c)| c.role != Role::Pager);
                clients().next().is_some() && clients().all(|(_, c)| c.role == Role::Ts)
            }
            _ => false,
        }
    }

    /// Whether TS-side task `i` may send to `p`: only to the TS side and
    /// to test tasks; a pager on the TS side also to the root task and
    /// sigma0 (its clients and its frames). Never to an RT task or a pager
    /// of RT tasks.
    pub fn ts_may_send(&self, i: usize, p: Peer) -> bool {
        match p {
            Peer::Root | Peer::Sigma0 => self.tasks().get(i).is_some_and(|t| t.role == Role::Pager),
            Peer::Task(j) => self.ts_side(j) || self.tasks().get(j).is_some_and(|t| t.role == Role::Test),
        }
    }

    /// The send allow list the root task gives task `i`'s address space
    /// (`None`: no list, it may send to every space; the kernel enforces
    /// it, see `abi::sys::allow`):
    ///
    /// - a task on the TS side ([`System::ts_side`]): its `allow` list, or
    ///   without one every TS-side task and test task, in either case
    ///   only what [`System::ts_may_send`] permits; a TS-side pager always
    ///   has the root task and sigma0 as well;
    /// - any other task: its `allow` list plus the root task (whose
    ///   services, `GET_INFO`, `EXIT`, `LOOKUP`, every such task may use),
    ///   or no list without one.
    ///
    /// Whatever the list, the kernel lets a task send within its own space,
    /// to its pager and to a thread waiting for its reply; so a TS task
    /// reaches the root task only when the root task is its pager, and
    /// otherwise asks its pager for its description and its end.
    pub fn send_list(&self, i: usize) -> Option<Allow> {
        let t = self.tasks().get(i)?;
        let mut list = Allow::NONE;
        if self.ts_side(i) {
            let peers = (0..self.tasks().len()).map(Peer::Task).chain([Peer::Root, Peer::Sigma0]);
            let wanted = |p: &Peer| match t.allow {
                Some(a) => a.contains(*p),
                None => matches!(p, Peer::Task(_)),
            };
            for p in peers.filter(|p| *p != Peer::Task(i) && wanted(p) && self.ts_may_send(i, *p)) {
                list.insert(p);
            }
            if t.role == Role::Pager {
                list.insert(Peer::Root);
                list.insert(Peer::Sigma0);
            }
            return Some(list);
        }
        let mut list = t.allow?;
        list.insert(Peer::Root);
        Some(list)
    }

    /// The name an allow entry stands for.
    pub fn peer_name(&self, p: Peer) -> &'a str {
        match p {
            Peer::Sigma0 => SIGMA0,
            Peer::Root => ROOT,
            Peer::Task(i) => self.ref_name(Ref::Task(i)),
        }
    }
}
