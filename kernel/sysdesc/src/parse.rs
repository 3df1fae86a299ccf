//! The reader: allocation-free, borrowing the text, first error wins.

use crate::{
    Allow, Kernel, Peer, Ports, Ref, Role, Rt, Scenario, System, Task, HEADER, MAX_ARGS, MAX_NAME, MAX_PARTITIONS,
    MAX_PRIORITY, MAX_TASKS, ROOT, ROOT_MCP, SIGMA0,
};
use cache_color::geometry::{CacheKind, CacheLevel, GeometryError};
use cache_color::partition::{parse_colors, PartitionSpec, SpecError};
use cache_color::MAX_COLORS;
use core::fmt;

/// What is wrong with a compact description, and on which line (counting
/// from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error<'a> {
    /// The line.
    pub line: usize,
    /// What is wrong; text fields quote the input.
    pub kind: ErrorKind<'a>,
}

/// Why a name is not a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameProblem {
    /// It is empty.
    Empty,
    /// It is longer than [`MAX_NAME`] bytes.
    TooLong,
    /// It holds a character other than ASCII letters, digits, `_`, `-`, `.`.
    BadChar(char),
    /// It is [`ROOT`] or [`SIGMA0`], which references reserve.
    Reserved,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Empty => f.write_str("is empty"),
            NameProblem::TooLong => write!(f, "is longer than {MAX_NAME} bytes"),
            NameProblem::BadChar(c) => write!(f, "holds {c:?} (use letters, digits, `_`, `-` and `.`)"),
            NameProblem::Reserved => write!(f, "is reserved (`{ROOT}` and `{SIGMA0}` name the root task and sigma0)"),
        }
    }
}

/// Checks a name of a system, partition, task or binary: 1 to [`MAX_NAME`]
/// bytes of ASCII letters, digits, `_`, `-` and `.`. (Task names must also
/// not be [`ROOT`] or [`SIGMA0`]; see [`check_task_name`].)
pub fn check_name(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(NameProblem::TooLong);
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        Some(c) => Err(NameProblem::BadChar(c)),
        None => Ok(()),
    }
}

/// Checks a task's name: [`check_name`], and not [`ROOT`] or [`SIGMA0`].
pub fn check_task_name(name: &str) -> Result<(), NameProblem> {
    check_name(name)?;
    if name == ROOT || name == SIGMA0 {
        return Err(NameProblem::Reserved);
    }
    Ok(())
}

/// What is wrong with one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind<'a> {
    /// The first line is not [`HEADER`].
    BadHeader,
    /// A line starts with an unknown word.
    UnknownItem {
        /// The word.
        item: &'a str,
    },
    /// A word is not `key=value`.
    NotKeyValue {
        /// The word.
        word: &'a str,
    },
    /// A key the item does not have.
    UnknownKey {
        /// The item (`system`, `task`, ...).
        item: &'static str,
        /// The key.
        key: &'a str,
    },
    /// A key given twice on one line.
    DuplicateKey {
        /// The key.
        key: &'a str,
    },
    /// A required key is missing.
    MissingKey {
        /// The item.
        item: &'static str,
        /// The key.
        key: &'static str,
    },
    /// A value does not parse.
    BadValue {
        /// The key.
        key: &'static str,
        /// The value.
        value: &'a str,
        /// What it should be.
        expected: &'static str,
    },
    /// A number above its maximum.
    OutOfRange {
        /// The key.
        key: &'static str,
        /// The value.
        value: u64,
        /// The largest allowed.
        max: u64,
    },
    /// A ` -- ` argument string on a line other than a task's.
    Arguments {
        /// The item.
        item: &'static str,
    },
    /// A task's arguments are longer than [`MAX_ARGS`] bytes.
    ArgsTooLong {
        /// Their length.
        len: usize,
    },
    /// `system`, `kernel` or `llc` given twice.
    DuplicateItem {
        /// The item.
        item: &'static str,
        /// The line of the first one.
        first: usize,
    },
    /// `system` or `kernel` missing (the line is the last one).
    MissingItem {
        /// The item.
        item: &'static str,
    },
    /// More than [`MAX_PARTITIONS`] partitions or [`MAX_TASKS`] tasks.
    TooMany {
        /// `partitions` or `tasks`.
        item: &'static str,
        /// The capacity.
        max: usize,
    },
    /// A name (of the system, a partition, a task or a binary) is not one.
    BadName {
        /// The key.
        key: &'static str,
        /// The name.
        name: &'a str,
        /// Why.
        problem: NameProblem,
    },
    /// Two partitions, or two tasks, have one name.
    DuplicateName {
        /// The name.
        name: &'a str,
        /// The line of the first.
        first: usize,
    },
    /// A partition's colours are malformed or beyond the `llc` geometry.
    BadColors {
        /// The colour spec.
        colors: &'a str,
        /// Why.
        error: SpecError<'a>,
    },
    /// The `llc` numbers do not describe a cache.
    BadGeometry {
        /// Why.
        error: GeometryError,
    },
    /// A reference names no task, partition or peer.
    Unresolved {
        /// The key (`pager`, `handler`, `partition`, `allow`).
        key: &'static str,
        /// The name.
        name: &'a str,
    },
    /// `pager=` names a task whose role is not `pager`.
    NotAPager {
        /// The name.
        name: &'a str,
    },
    /// A task names itself as its pager or handler.
    SelfReference {
        /// The key.
        key: &'static str,
    },
    /// A key the task's role does not have (`partition` on a non-pager, RT
    /// keys on a non-RT task).
    WrongRole {
        /// The key.
        key: &'static str,
        /// The task's role.
        role: Role,
    },
    /// An allow list names a peer twice.
    DuplicatePeer {
        /// The name.
        name: &'a str,
    },
}

impl fmt::Display for Error<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)
    }
}

impl fmt::Display for ErrorKind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ErrorKind::BadHeader => write!(f, "not a compact system description (first line must be `{HEADER}`)"),
            ErrorKind::UnknownItem { item } => {
                write!(f, "unknown item `{item}` (expected system, kernel, llc, partition or task)")
            }
            ErrorKind::NotKeyValue { word } => write!(f, "`{word}` is not key=value"),
            ErrorKind::UnknownKey { item, key } => write!(f, "{item} has no key `{key}`"),
            ErrorKind::DuplicateKey { key } => write!(f, "`{key}` given twice"),
            ErrorKind::MissingKey { item, key } => write!(f, "{item} needs `{key}=`"),
            ErrorKind::BadValue { key, value, expected } => write!(f, "{key}=`{value}`: expected {expected}"),
            ErrorKind::OutOfRange { key, value, max } => write!(f, "{key}={value} is above the maximum {max}"),
            ErrorKind::Arguments { item } => write!(f, "only a task takes ` -- ` arguments, not {item}"),
            ErrorKind::ArgsTooLong { len } => write!(f, "arguments are {len} bytes, more than {MAX_ARGS}"),
            ErrorKind::DuplicateItem { item, first } => write!(f, "second `{item}` line (the first is line {first})"),
            ErrorKind::MissingItem { item } => write!(f, "no `{item}` line"),
            ErrorKind::TooMany { item, max } => write!(f, "more than {max} {item}"),
            ErrorKind::BadName { key, name, problem } => write!(f, "{key}=`{name}`: the name {problem}"),
            ErrorKind::DuplicateName { name, first } => {
                write!(f, "name `{name}` is used twice (first on line {first})")
            }
            ErrorKind::BadColors { colors, error } => write!(f, "colors `{colors}`: {error}"),
            ErrorKind::BadGeometry { error } => write!(f, "llc: {error}"),
            ErrorKind::Unresolved { key, name } => write!(f, "{key}=`{name}` names nothing defined"),
            ErrorKind::NotAPager { name } => write!(f, "pager=`{name}` names a task whose role is not pager"),
            ErrorKind::SelfReference { key } => write!(f, "a task cannot be its own {key}"),
            ErrorKind::WrongRole { key, role } => write!(f, "a task of role {role} has no `{key}`"),
            ErrorKind::DuplicatePeer { name } => write!(f, "allow names `{name}` twice"),
        }
    }
}

/// The keys of each item, in the order the writer writes them.
const SYSTEM_KEYS: [&str; 3] = ["name", "scenario", "shared_colors"];
const KERNEL_KEYS: [&str; 2] = ["kmem", "timeslice"];
const LLC_KEYS: [&str; 4] = ["level", "size", "ways", "line"];
const PARTITION_KEYS: [&str; 3] = ["name", "colors", "memory"];
const TASK_KEYS: [&str; 20] = [
    "name",
    "bin",
    "role",
    "partition",
    "pager",
    "prio",
    "mcp",
    "control",
    "handler",
    "timeslice",
    "budget",
    "period",
    "heap",
    "stack",
    "rt_period",
    "deadline",
    "jobs",
    "allow",
    "irq",
    "ports",
];

/// One line's `key=value` words, by the index of the key in the item's key
/// list.
struct Fields<'a, const N: usize> {
    line: usize,
    item: &'static str,
    keys: &'static [&'static str; N],
    values: [Option<&'a str>; N],
}

impl<'a, const N: usize> Fields<'a, N> {
    fn read(
        line: usize,
        item: &'static str,
        keys: &'static [&'static str; N],
        words: impl Iterator<Item = &'a str>,
    ) -> Result<Self, Error<'a>> {
        let mut values = [None; N];
        for word in words {
            let err = |kind| Error { line, kind };
            let (key, value) = word.split_once('=').ok_or(err(ErrorKind::NotKeyValue { word }))?;
            let i = keys.iter().position(|k| *k == key).ok_or(err(ErrorKind::UnknownKey { item, key }))?;
            if values[i].replace(value).is_some() {
                return Err(err(ErrorKind::DuplicateKey { key }));
            }
        }
        Ok(Fields { line, item, keys, values })
    }

    fn error(&self, kind: ErrorKind<'a>) -> Error<'a> {
        Error { line: self.line, kind }
    }

    fn index(&self, key: &'static str) -> usize {
        // Callers pass keys of the item's own list.
        self.keys.iter().position(|k| *k == key).unwrap_or(0)
    }

    fn opt(&self, key: &'static str) -> Option<&'a str> {
        self.values[self.index(key)]
    }

    fn req(&self, key: &'static str) -> Result<&'a str, Error<'a>> {
        self.opt(key).ok_or(self.error(ErrorKind::MissingKey { item: self.item, key }))
    }

    fn name(&self, key: &'static str, check: fn(&str) -> Result<(), NameProblem>) -> Result<&'a str, Error<'a>> {
        let name = self.req(key)?;
        check(name).map_err(|problem| self.error(ErrorKind::BadName { key, name, problem }))?;
        Ok(name)
    }

    fn number_of(&self, key: &'static str, value: &'a str) -> Result<u64, Error<'a>> {
        let bad = self.error(ErrorKind::BadValue { key, value, expected: "a decimal number" });
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad);
        }
        value.parse().map_err(|_| bad)
    }

    fn number(&self, key: &'static str) -> Result<u64, Error<'a>> {
        self.number_of(key, self.req(key)?)
    }

    fn bounded(&self, key: &'static str, max: u64) -> Result<u64, Error<'a>> {
        let value = self.number(key)?;
        if value > max {
            return Err(self.error(ErrorKind::OutOfRange { key, value, max }));
        }
        Ok(value)
    }

    fn flag(&self, key: &'static str) -> Result<bool, Error<'a>> {
        match self.req(key)? {
            "0" => Ok(false),
            "1" => Ok(true),
            value => Err(self.error(ErrorKind::BadValue { key, value, expected: "0 or 1" })),
        }
    }
}

/// Splits a line into its words and its argument string: a word starting
/// with `#` ends the line, a word `--` starts the arguments (the rest of
/// the line, trimmed).
fn split(line: &str) -> (&str, Option<&str>) {
    for word in line.split_ascii_whitespace() {
        // Words are subslices of `line`.
        let at = word.as_ptr() as usize - line.as_ptr() as usize;
        if word.starts_with('#') {
            return (&line[..at], None);
        }
        if word == "--" {
            return (&line[..at], Some(line[at + 2..].trim()));
        }
    }
    (line, None)
}

/// The names a task refers to, kept until every task is known.
#[derive(Clone, Copy)]
struct Refs<'a> {
    line: usize,
    partition: Option<&'a str>,
    pager: &'a str,
    handler: &'a str,
    allow: Option<&'a str>,
}

const NO_REFS: Refs<'static> = Refs { line: 0, partition: None, pager: "", handler: "", allow: None };

/// Parses a compact description (see the crate documentation for what is
/// checked).
pub fn parse(text: &str) -> Result<System<'_>, Error<'_>> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    if lines.next().map(|(_, l)| l.trim_end()) != Some(HEADER) {
        return Err(Error { line: 1, kind: ErrorKind::BadHeader });
    }
    let mut sys = System::new("", Scenario::Base, false, Kernel { kmem: 0, timeslice: 0 }, None);
    let (mut system_line, mut kernel_line, mut llc_line) = (None, None, None);
    let mut partition_lines = [0; MAX_PARTITIONS];
    let mut refs = [NO_REFS; MAX_TASKS];
    let mut last = 1;
    for (line, raw) in lines {
        last = line;
        let (body, args) = split(raw);
        let mut words = body.split_ascii_whitespace();
        let Some(item) = words.next() else {
            if args.is_some() {
                return Err(Error { line, kind: ErrorKind::NotKeyValue { word: "--" } });
            }
            continue;
        };
        let err = |kind| Error { line, kind };
        let item: &'static str = match item {
            "system" => "system",
            "kernel" => "kernel",
            "llc" => "llc",
            "partition" => "partition",
            "task" => "task",
            item => return Err(err(ErrorKind::UnknownItem { item })),
        };
        if args.is_some() && item != "task" {
            return Err(err(ErrorKind::Arguments { item }));
        }
        let once = |seen: &mut Option<usize>| match seen.replace(line) {
            Some(first) => Err(err(ErrorKind::DuplicateItem { item, first })),
            None => Ok(()),
        };
        match item {
            "system" => {
                once(&mut system_line)?;
                let f = Fields::read(line, item, &SYSTEM_KEYS, words)?;
                sys.name = f.name("name", check_name)?;
                let scenario = f.req("scenario")?;
                sys.scenario = Scenario::from_name(scenario).ok_or(f.error(ErrorKind::BadValue {
                    key: "scenario",
                    value: scenario,
                    expected: "base, alone, shared or partitioned",
                }))?;
                sys.shared_colors = f.flag("shared_colors")?;
            }
            "kernel" => {
                once(&mut kernel_line)?;
                let f = Fields::read(line, item, &KERNEL_KEYS, words)?;
                sys.kernel = Kernel { kmem: f.number("kmem")?, timeslice: f.number("timeslice")? };
            }
            "llc" => {
                once(&mut llc_line)?;
                let f = Fields::read(line, item, &LLC_KEYS, words)?;
                let level = CacheLevel::new(
                    f.bounded("level", u8::MAX.into())? as u8,
                    CacheKind::Unified,
                    f.number("size")?,
                    f.bounded("ways", u32::MAX.into())? as u32,
                    f.bounded("line", u32::MAX.into())? as u32,
                );
                level.validate().map_err(|error| err(ErrorKind::BadGeometry { error }))?;
                sys.llc = Some(level);
            }
            "partition" => {
                let f = Fields::read(line, item, &PARTITION_KEYS, words)?;
                let name = f.name("name", check_name)?;
                if let Some(i) = sys.partition_index(name) {
                    return Err(err(ErrorKind::DuplicateName { name, first: partition_lines[i] }));
                }
                let spec = PartitionSpec { name, colors: f.req("colors")?, memory: f.number("memory")? };
                let i = sys
                    .add_partition(spec)
                    .map_err(|_| err(ErrorKind::TooMany { item: "partitions", max: MAX_PARTITIONS }))?;
                partition_lines[i] = line;
            }
            _ => {
                let f = Fields::read(line, item, &TASK_KEYS, words)?;
                let (task, r) = task(&f, args.unwrap_or(""))?;
                if let Some(i) = sys.task_index(task.name) {
                    return Err(err(ErrorKind::DuplicateName { name: task.name, first: refs[i].line }));
                }
                let i = sys.add_task(task).map_err(|_| err(ErrorKind::TooMany { item: "tasks", max: MAX_TASKS }))?;
                refs[i] = r;
            }
        }
    }
    let missing = |item| Error { line: last, kind: ErrorKind::MissingItem { item } };
    system_line.ok_or(missing("system"))?;
    kernel_line.ok_or(missing("kernel"))?;
    let colors = sys.llc.map_or(MAX_COLORS as u32, |l| l.colors().min(MAX_COLORS as u64) as u32);
    for (p, &line) in sys.partitions().iter().zip(&partition_lines) {
        parse_colors(p.colors, colors)
            .map_err(|error| Error { line, kind: ErrorKind::BadColors { colors: p.colors, error } })?;
    }
    for (i, r) in refs.iter().enumerate().take(sys.task_count) {
        resolve(&mut sys, i, r)?;
    }
    Ok(sys)
}

/// Reads a task line; its references stay names until [`resolve`].
fn task<'a>(f: &Fields<'a, 20>, args: &'a str) -> Result<(Task<'a>, Refs<'a>), Error<'a>> {
    let role = f.req("role")?;
    let role = Role::from_name(role).ok_or(f.error(ErrorKind::BadValue {
        key: "role",
        value: role,
        expected: "pager, rt, ts or test",
    }))?;
    let only_for = |key, wanted: Role| match f.opt(key) {
        Some(_) if role != wanted => Err(f.error(ErrorKind::WrongRole { key, role })),
        v => Ok(v),
    };
    let partition = only_for("partition", Role::Pager)?;
    let rt = match (only_for("rt_period", Role::Rt)?, only_for("deadline", Role::Rt)?, only_for("jobs", Role::Rt)?) {
        (None, None, None) if role != Role::Rt => None,
        _ => Some(Rt {
            period: f.number("rt_period")?,
            deadline: f.number("deadline")?,
            jobs: f.bounded("jobs", u32::MAX.into())? as u32,
        }),
    };
    if args.len() > MAX_ARGS {
        return Err(f.error(ErrorKind::ArgsTooLong { len: args.len() }));
    }
    let task = Task {
        name: f.name("name", check_task_name)?,
        bin: f.name("bin", check_name)?,
        role,
        partition: None,
        pager: Ref::Root,
        prio: f.bounded("prio", MAX_PRIORITY.into())? as u8,
        mcp: f.bounded("mcp", ROOT_MCP.into())? as u8,
        control: f.flag("control")?,
        handler: Ref::Root,
        timeslice: f.number("timeslice")?,
        budget: f.number("budget")?,
        period: f.number("period")?,
        heap: f.number("heap")?,
        stack: f.number("stack")?,
        rt,
        allow: None,
        irq: match f.opt("irq") {
            None => false,
            Some(_) => f.flag("irq")?,
        },
        ports: match f.opt("ports") {
            None => Ports::NONE,
            Some(list) => ports(f, list)?,
        },
        args,
    };
    let refs =
        Refs { line: f.line, partition, pager: f.req("pager")?, handler: f.req("handler")?, allow: f.opt("allow") };
    Ok((task, refs))
}

/// Reads `BASE:COUNT,...` (hex base, hex or decimal power-of-two count).
fn ports<'a>(f: &Fields<'a, 20>, list: &'a str) -> Result<Ports, Error<'a>> {
    let bad = f.error(ErrorKind::BadValue {
        key: "ports",
        value: list,
        expected: "port ranges like 0x3f8:8,0x40:4 (a power-of-two count, the base aligned to it)",
    });
    let mut p = Ports::NONE;
    for range in list.split(',') {
        let (base, count) = range.split_once(':').ok_or(bad)?;
        let num = |t: &str| match t.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16).ok(),
            None => t.parse::<u32>().ok(),
        };
        let (Some(base), Some(count)) = (num(base), num(count)) else { return Err(bad) };
        if !count.is_power_of_two() || base > u16::MAX as u32 || !p.insert(base as u16, count.trailing_zeros() as u8) {
            return Err(bad);
        }
    }
    Ok(p)
}

/// Resolves task `i`'s references now that every task and partition is
/// known.
fn resolve<'a>(sys: &mut System<'a>, i: usize, r: &Refs<'a>) -> Result<(), Error<'a>> {
    let err = |kind| Error { line: r.line, kind };
    let task_ref = |key, name: &'a str| -> Result<Ref, Error<'a>> {
        if name == ROOT {
            return Ok(Ref::Root);
        }
        match sys.task_index(name) {
            Some(j) if j == i => Err(err(ErrorKind::SelfReference { key })),
            Some(j) => Ok(Ref::Task(j)),
            None => Err(err(ErrorKind::Unresolved { key, name })),
        }
    };
    let pager = task_ref("pager", r.pager)?;
    if let Ref::Task(j) = pager {
        if sys.tasks[j].role != Role::Pager {
            return Err(err(ErrorKind::NotAPager { name: r.pager }));
        }
    }
    let handler = task_ref("handler", r.handler)?;
    let partition = match r.partition {
        Some(name) => Some(sys.partition_index(name).ok_or(err(ErrorKind::Unresolved { key: "partition", name }))?),
        None => None,
    };
    let allow = match r.allow {
        None => None,
        Some(list) => {
            let mut allow = Allow::NONE;
            for name in list.split(',').filter(|_| !list.is_empty()) {
                let peer = match name {
                    ROOT => Peer::Root,
                    SIGMA0 => Peer::Sigma0,
                    "" => {
                        return Err(err(ErrorKind::BadValue {
                            key: "allow",
                            value: list,
                            expected: "names separated by commas",
                        }))
                    }
                    _ => Peer::Task(sys.task_index(name).ok_or(err(ErrorKind::Unresolved { key: "allow", name }))?),
                };
                if allow.contains(peer) {
                    return Err(err(ErrorKind::DuplicatePeer { name }));
                }
                allow.insert(peer);
            }
            Some(allow)
        }
    };
    let t = &mut sys.tasks[i];
    t.pager = pager;
    t.handler = handler;
    t.partition = partition;
    t.allow = allow;
    Ok(())
}
