//! System descriptions: the TOML a user writes (`workloads/configs/*.toml`),
//! checked on the host and turned into the compact form the root task and
//! sigma0 read (`sysdesc`).
//!
//! A description names the system, the kernel settings, the coloured cache
//! level, the partitions, the pagers, the tasks, and the scenarios as
//! patches of all that (`[scenario.alone]`, `[scenario.shared]`,
//! `[scenario.partitioned]`). [`check`] resolves one scenario and runs every
//! check, reporting every problem at once as a [`Diagnostic`] (file, line,
//! column, key, problem); [`check_every`] does so for the description as
//! written and each scenario it declares. A description without errors
//! becomes a [`Description`], whose [`Description::compact`] is the
//! `system` boot module (and is read back, to be sure it says the same).
//! The README's "System description" section documents every key.

mod read;

use anyhow::{anyhow, Context, Result};
use cache_color::geometry::{CacheKind, CacheLevel};
use cache_color::partition::{self, MemRegion, PartitionError, PartitionSpec, Sharing};
use cache_color::{ColorMap, ColorSet, MAX_COLORS};
use read::{closest, name_of, table, tables, Diags, Size, Sp, Table, Time, Words};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use sysdesc::{
    Allow, Kernel, Peer, Ref, Role, Rt, Scenario, System, Task, MAX_ARGS, MAX_BINARIES, MAX_PARTITIONS, MAX_TASKS,
};
use toml::de::{DeTable, DeValue};

pub use read::{parse_size, parse_time};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const PAGE: u64 = 4096;
/// The kernel takes `kmem=` in whole MiB, 1 to this many.
const KMEM_MAX_MIB: u64 = 1024;
/// Defaults of keys a description may leave out.
const DEFAULT_KMEM: u64 = 16 * MIB;
const DEFAULT_TIMESLICE: u64 = 10_000_000;
const DEFAULT_STACK: u64 = 64 * KIB;
const DEFAULT_LINE: u32 = 64;
const DEFAULT_LEVEL: u8 = 3;

/// A description's file and text.
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    /// Reads a description; text that is not UTF-8 is an error naming
    /// the line and column of the first bad byte.
    pub fn read(path: &Path) -> Result<Source> {
        let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let (good, bad) = e.as_bytes().split_at(e.utf8_error().valid_up_to());
            let before = Source { path: PathBuf::new(), text: String::from_utf8_lossy(good).into_owned() };
            let (line, col) = before.line_col(good.len());
            anyhow!(
                "{}:{line}:{col}: error: byte 0x{:02x} is not UTF-8 (a description is UTF-8 TOML)",
                path.display(),
                bad.first().copied().unwrap_or_default()
            )
        })?;
        Ok(Source { path: path.to_path_buf(), text })
    }

    /// Line and column (both from 1, the column in characters) of a byte
    /// offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
    Note,
}

/// One problem with a description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Bytes of the file it is about (`0..0` for the file as a whole).
    pub span: Range<usize>,
    /// The key, as a path: `task.matmul.priority`, `partition.rt.colors`.
    pub key: String,
    pub message: String,
    /// The scenarios it occurs in; empty: the description as written (and
    /// so every scenario).
    pub scenarios: Vec<Scenario>,
}

impl Diagnostic {
    /// The line it is on (1 for the file as a whole).
    pub fn line(&self, src: &Source) -> usize {
        src.line_col(self.span.start).0
    }

    /// `file:line:col: error: key: message (scenario ...)`, then the line
    /// with a caret under the span.
    pub fn render(&self, src: &Source) -> String {
        self.render_with(src, true)
    }

    /// The first line of [`Diagnostic::render`] only.
    pub fn render_line(&self, src: &Source) -> String {
        self.render_with(src, false)
    }

    fn render_with(&self, src: &Source, excerpt: bool) -> String {
        let what = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        let scen = match self.scenarios.as_slice() {
            [] => String::new(),
            [s] => format!(" (scenario {s})"),
            many => format!(" (scenarios {})", many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")),
        };
        if self.severity == Severity::Note {
            return format!("{}: note: {}{scen}", src.path.display(), self.message);
        }
        let (line, col) = src.line_col(self.span.start);
        let key = if self.key.is_empty() { String::new() } else { format!("{}: ", self.key) };
        let mut s = format!("{}:{line}:{col}: {what}: {key}{}{scen}", src.path.display(), self.message);
        if let Some(text) = src.text.lines().nth(line - 1).filter(|_| excerpt && !self.span.is_empty()) {
            let width = self.span.len().min(text.len().saturating_sub(col - 1)).max(1);
            let _ = write!(s, "\n{line:>5} | {text}\n      | {}{}", " ".repeat(col - 1), "^".repeat(width));
        }
        s
    }
}

/// What the checks may look at beyond the file.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where the binaries are (`build/modules`); `None`: not checked.
    pub modules: Option<PathBuf>,
    /// A missing binary is a warning instead of an error.
    pub allow_missing_binaries: bool,
    /// Guest RAM the partitions' memory is checked against.
    pub ram: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { modules: None, allow_missing_binaries: false, ram: 128 * MIB }
    }
}

/// A partition of a checked description.
#[derive(Clone, Debug)]
pub struct PartitionDesc {
    pub name: Sp<String>,
    pub colors: Sp<String>,
    pub memory: Sp<u64>,
    /// The colours in canonical form (`0-7,12`).
    pub canonical: String,
}

/// RT parameters of a task.
#[derive(Clone, Debug)]
pub struct RtDesc {
    pub period: Sp<u64>,
    pub deadline: Sp<u64>,
    pub jobs: Sp<u32>,
}

/// A pager (`role` = [`Role::Pager`]) or a task.
#[derive(Clone, Debug)]
pub struct TaskDesc {
    /// Its `[[pager]]` or `[[task]]` header.
    pub span: Range<usize>,
    pub name: Sp<String>,
    pub binary: Sp<String>,
    pub role: Sp<Role>,
    /// Pagers only.
    pub partition: Option<Sp<String>>,
    pub pager: Sp<String>,
    pub priority: Sp<u8>,
    pub mcp: Sp<u8>,
    pub control: Sp<bool>,
    pub handler: Sp<String>,
    pub timeslice: Option<Sp<u64>>,
    pub budget: Option<Sp<u64>>,
    pub budget_period: Option<Sp<u64>>,
    pub heap: Sp<u64>,
    pub stack: Sp<u64>,
    pub args: Vec<Sp<String>>,
    /// The arguments as one string (what the compact form carries).
    pub args_line: String,
    pub allow: Option<Vec<Sp<String>>>,
    /// May route interrupts.
    pub irq: Sp<bool>,
    /// I/O port ranges it may ask the root task for (`"0x3f8:8"`).
    pub ports: Vec<Sp<String>>,
    /// Pagers only: binaries it may spawn tasks from at run time.
    pub spawns: Vec<Sp<String>>,
    pub rt: Option<RtDesc>,
}

/// Reads an I/O port range `BASE:COUNT` (hex or decimal, a power-of-two
/// count, the base aligned to it) into `ports`; the problem otherwise.
pub fn port_range(text: &str, ports: &mut sysdesc::Ports) -> Result<(), String> {
    let num = |t: &str| match t.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => t.parse::<u32>().ok(),
    };
    let bad =
        || format!("`{text}` is not a port range like \"0x3f8:8\" (a power-of-two count, the base aligned to it)");
    let (base, count) = text.split_once(':').ok_or_else(bad)?;
    let (Some(base), Some(count)) = (num(base), num(count)) else { return Err(bad()) };
    if !count.is_power_of_two() || base > u16::MAX as u32 {
        return Err(bad());
    }
    if !base.is_multiple_of(count) {
        return Err(format!("`{text}`: the base is not a multiple of the count {count}"));
    }
    if base + count > 0x1_0000 {
        return Err(format!("`{text}`: runs past port 0xffff"));
    }
    if !ports.insert(base as u16, count.trailing_zeros() as u8) {
        return Err(format!("`{text}`: more than {} ranges", sysdesc::MAX_PORT_RANGES));
    }
    Ok(())
}

impl TaskDesc {
    /// `pager.NAME` or `task.NAME`: how diagnostics name it.
    fn path(&self) -> String {
        format!("{}.{}", section(self.role.get_ref()), self.name.get_ref())
    }

    /// The budget period in force: `budget_period`, or an RT task's period.
    fn budget_period(&self) -> Option<&Sp<u64>> {
        self.budget_period.as_ref().or(self.rt.as_ref().map(|rt| &rt.period))
    }
}

fn section(role: &Role) -> &'static str {
    if *role == Role::Pager {
        "pager"
    } else {
        "task"
    }
}

/// One scenario of a description, checked.
#[derive(Clone, Debug)]
pub struct Description {
    pub scenario: Scenario,
    pub name: String,
    pub shared_colors: bool,
    pub kernel: Kernel,
    /// The coloured level, if the description gives one.
    pub llc: Option<CacheLevel>,
    /// Where the geometry came from (`profile embedded`, `[cache]`, `CPUID at boot`).
    pub cache: String,
    pub partitions: Vec<PartitionDesc>,
    /// Pagers first, then tasks, each in the order written.
    pub tasks: Vec<TaskDesc>,
}

/// What [`check`] found.
pub struct Checked {
    /// Errors, warnings and notes, in the order of the file.
    pub diagnostics: Vec<Diagnostic>,
    /// The description, if there was no error.
    pub description: Option<Description>,
}

impl Checked {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error).count()
    }
}

/// The scenarios a description declares (`[scenario.NAME]`), in the order
/// alone, shared, partitioned.
pub fn scenarios(src: &Source) -> Vec<Scenario> {
    let Ok(root) = DeTable::parse(&src.text) else { return Vec::new() };
    let Some(DeValue::Table(t)) = root.get_ref().get("scenario").map(|v| v.get_ref()) else { return Vec::new() };
    Scenario::ALL.into_iter().filter(|s| t.contains_key(s.as_str())).collect()
}

/// Checks the description as written and every scenario it declares;
/// a problem of the description as written is reported once, one that only
/// some scenarios have names them.
pub fn check_every(src: &Source, opts: &Options) -> (Vec<Diagnostic>, Vec<Description>) {
    let base = check(src, Scenario::Base, opts);
    let mut all = base.diagnostics;
    let mut descs: Vec<Description> = base.description.into_iter().collect();
    for s in scenarios(src) {
        let c = check(src, s, opts);
        for d in c.diagnostics {
            if let Some(known) = all
                .iter_mut()
                .find(|k| k.severity == d.severity && k.span == d.span && k.key == d.key && k.message == d.message)
            {
                if !known.scenarios.is_empty() {
                    known.scenarios.push(s);
                }
            } else {
                all.push(Diagnostic { scenarios: vec![s], ..d });
            }
        }
        descs.extend(c.description);
    }
    sort(&mut all);
    (all, descs)
}

fn sort(diags: &mut [Diagnostic]) {
    // Notes (file-wide) last; the rest in file order.
    diags.sort_by_key(|d| (d.severity == Severity::Note, d.span.start, d.severity));
}

/// Resolves `scenario` and checks it.
pub fn check(src: &Source, scenario: Scenario, opts: &Options) -> Checked {
    let mut d = Diags::default();
    let description = resolve(&mut d, src, scenario, opts);
    let mut diagnostics = d.0;
    sort(&mut diagnostics);
    let description = description.filter(|_| diagnostics.iter().all(|d| d.severity != Severity::Error));
    Checked { diagnostics, description }
}

const SECTIONS: [&str; 7] = ["system", "kernel", "cache", "partition", "pager", "task", "scenario"];

fn resolve(d: &mut Diags, src: &Source, scenario: Scenario, opts: &Options) -> Option<Description> {
    let (root, errors) = DeTable::parse_recoverable(&src.text);
    if !errors.is_empty() {
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            // The text it is about, where that is a short word (`duplicate key` names no key).
            let at = src.text.get(span.clone()).filter(|t| !t.is_empty() && t.len() <= 40 && !t.contains('\n'));
            let at = at.map_or(String::new(), |t| format!(" (`{t}`)"));
            d.error(span, "", format!("TOML: {}{at}", e.message()));
        }
        return None;
    }
    let mut root = root.into_inner();
    let scenario_tables = root.remove("scenario");
    if let Some(v) = &scenario_tables {
        match v.get_ref() {
            DeValue::Table(t) => {
                for (k, _) in t.iter() {
                    let name: &str = k.get_ref();
                    if Scenario::from_name(name).is_none_or(|s| s == Scenario::Base) {
                        d.error(
                            k.span(),
                            format!("scenario.{name}"),
                            format!("unknown scenario `{name}` (a description declares alone, shared and partitioned; the description as written is `base`)"),
                        );
                    }
                }
            }
            _ => d.error(v.span(), "scenario", "`scenario` must hold tables: [scenario.alone], ..."),
        }
    }
    if scenario != Scenario::Base {
        let patch = scenario_tables.as_ref().and_then(|v| match v.get_ref() {
            DeValue::Table(t) => t.get(scenario.as_str()),
            _ => None,
        });
        match patch.map(|p| (p.span(), p.get_ref())) {
            Some((_, DeValue::Table(p))) => read::patch(d, &mut root, &format!("scenario.{scenario}"), p),
            Some((span, _)) => d.error(span, format!("scenario.{scenario}"), "a scenario must be a table"),
            None => {
                d.error(
                    0..0,
                    "",
                    format!(
                        "the description has no [scenario.{scenario}] (it has: base{})",
                        scenarios(src).iter().map(|s| format!(", {s}")).collect::<String>()
                    ),
                );
                return None;
            }
        }
    }
    for (k, _) in root.iter() {
        let name: &str = k.get_ref();
        if !SECTIONS.contains(&name) {
            let hint = closest(name, &SECTIONS).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default();
            d.error(k.span(), name, format!("unknown section `{name}`{hint} (known: {})", SECTIONS.join(", ")));
        }
    }
    Parts::read(d, &root).finish(d, src, scenario, opts)
}

/// The sections read, before the checks across them.
struct Parts {
    name: Option<Sp<String>>,
    shared_colors: Sp<bool>,
    kmem: Sp<Size>,
    timeslice: Sp<Time>,
    /// `None`: no `[cache]`; `Some(None)`: a broken one.
    cache: Option<Option<(Range<usize>, CacheLevel, String)>>,
    partitions: Vec<PartitionDesc>,
    tasks: Vec<TaskDesc>,
    /// Names of every pager, task and partition written, readable or not
    /// (a reference to a broken one is not reported again).
    written_tasks: Vec<String>,
    written_partitions: Vec<String>,
}

impl Parts {
    fn read(d: &mut Diags, root: &DeTable<'_>) -> Parts {
        let empty = DeTable::new();
        let (span, sys) = table(d, root, "system").unwrap_or((0..0, &empty));
        let mut t = Table::new("system", span, sys);
        let name = if root.contains_key("system") {
            t.req::<String>(d, "name")
        } else {
            d.error(0..0, "system", "missing section [system] (with at least `name`)");
            None
        };
        let shared_colors = t.or(d, "shared_colors", false);
        t.finish(d);

        let (span, k) = table(d, root, "kernel").unwrap_or((0..0, &empty));
        let mut t = Table::new("kernel", span, k);
        let kmem = t.or(d, "kmem", Size(DEFAULT_KMEM));
        let timeslice = t.or(d, "timeslice", Time(DEFAULT_TIMESLICE));
        t.finish(d);

        let cache = table(d, root, "cache").map(|(span, c)| read_cache(d, span, c));

        let mut partitions = Vec::new();
        let entries = tables(d, root, "partition");
        let written_partitions = entries.iter().filter_map(|(_, t)| name_of(t).map(String::from)).collect();
        for (i, (span, p)) in entries.into_iter().enumerate() {
            let mut t = Table::new(entity_path("partition", p, i), span, p);
            let name = t.req::<String>(d, "name");
            let colors = t.req::<String>(d, "colors");
            let memory = t.or(d, "memory", Size(0));
            if let (true, Some(name), Some(colors)) = (t.finish(d), name, colors) {
                let memory = Sp::new(memory.span(), memory.get_ref().0);
                partitions.push(PartitionDesc { name, colors, memory, canonical: String::new() });
            }
        }

        let mut tasks = Vec::new();
        let mut written_tasks = Vec::new();
        for section in ["pager", "task"] {
            let entries = tables(d, root, section);
            written_tasks.extend(entries.iter().filter_map(|(_, t)| name_of(t).map(String::from)));
            for (i, (span, table)) in entries.into_iter().enumerate() {
                let t = Table::new(entity_path(section, table, i), span, table);
                tasks.extend(read_task(d, t, section == "pager"));
            }
        }
        Parts { name, shared_colors, kmem, timeslice, cache, partitions, tasks, written_tasks, written_partitions }
    }
}

/// `task.NAME`, or `task[INDEX]` for one without a readable name.
fn entity_path(section: &str, t: &DeTable<'_>, index: usize) -> String {
    match name_of(t) {
        Some(n) => format!("{section}.{n}"),
        None => format!("{section}[{index}]"),
    }
}

/// `[cache]`: a profile of the cache-model plugin, or a geometry.
fn read_cache(d: &mut Diags, span: Range<usize>, c: &DeTable<'_>) -> Option<(Range<usize>, CacheLevel, String)> {
    let mut t = Table::new("cache", span.clone(), c);
    let profile = t.opt::<String>(d, "profile");
    let level = t.opt::<u8>(d, "level");
    let size = t.opt::<Size>(d, "size");
    let ways = t.opt::<u32>(d, "ways");
    let line = t.opt::<u32>(d, "line");
    if !t.finish(d) {
        return None;
    }
    if let Some(p) = profile {
        if let Some(k) = ["level", "size", "ways", "line"].into_iter().find(|k| c.contains_key(*k)) {
            d.error(
                p.span(),
                "cache.profile",
                format!("give either `profile` or the geometry (`{k}` and the rest), not both"),
            );
            return None;
        }
        // The coloured level is the profile's last, as the compact form
        // carries it (level, size, ways, line).
        let last = cache_color::profile(p.get_ref()).and_then(|g| g.last_level().copied());
        let Some(llc) = last.map(|l| CacheLevel::new(l.level, CacheKind::Unified, l.size, l.ways, l.line_size)) else {
            let names: Vec<String> = cache_color::PROFILES.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            d.error(
                p.span(),
                "cache.profile",
                format!("unknown profile `{}` (expected {})", p.get_ref(), names.join(" or ")),
            );
            return None;
        };
        return Some((p.span(), llc, format!("profile {}", p.get_ref())));
    }
    let (Some(size), Some(ways)) = (size, ways) else {
        d.error(
            span,
            "cache",
            "give `profile` (\"embedded\" or \"host\") or the geometry: `size` and `ways` (`line`, `level` optional)",
        );
        return None;
    };
    let llc = CacheLevel::new(
        level.map_or(DEFAULT_LEVEL, |l| *l.get_ref()),
        CacheKind::Unified,
        size.get_ref().0,
        *ways.get_ref(),
        line.map_or(DEFAULT_LINE, |l| *l.get_ref()),
    );
    if let Err(e) = llc.validate() {
        d.error(size.span(), "cache.size", format!("not a cache: {e}"));
        return None;
    }
    Some((size.span(), llc, "[cache]".into()))
}

fn read_task(d: &mut Diags, mut t: Table<'_, '_>, pager: bool) -> Option<TaskDesc> {
    let name = t.req::<String>(d, "name");
    let binary = t.opt::<String>(d, "binary");
    let role = if pager { Some(Sp::new(t.span.clone(), Role::Pager)) } else { t.req::<Role>(d, "role") };
    let partition = if pager { t.opt::<String>(d, "partition") } else { None };
    let pager_of =
        if pager { Some(Sp::new(t.span.clone(), sysdesc::ROOT.to_string())) } else { t.req::<String>(d, "pager") };
    let priority = t.req::<u8>(d, "priority");
    let mcp = t.or(d, "mcp", 0u8);
    let control = t.or(d, "control", false);
    let handler = t.or(d, "handler", sysdesc::ROOT.to_string());
    let timeslice = t.opt::<Time>(d, "timeslice");
    let budget = t.opt::<Time>(d, "budget");
    let budget_period = t.opt::<Time>(d, "budget_period");
    let heap = t.or(d, "heap", Size(0));
    let stack = t.or(d, "stack", Size(DEFAULT_STACK));
    let args = t.opt::<Words>(d, "args");
    let allow = t.opt::<Words>(d, "allow");
    let irq = t.or(d, "irq", false);
    let ports = t.opt::<Words>(d, "ports");
    let spawns = if pager { t.opt::<Words>(d, "spawns") } else { None };
    let (period, deadline, jobs) = if pager {
        (None, None, None)
    } else {
        (t.opt::<Time>(d, "period"), t.opt::<Time>(d, "deadline"), t.opt::<u32>(d, "jobs"))
    };
    let rt = match role.as_ref().map(|r| *r.get_ref()) {
        // An unreadable role was reported; its RT keys are not judged.
        None => None,
        Some(Role::Rt) => {
            // Required for RT tasks: missing is reported here, malformed was.
            for (k, v) in [("period", period.is_some()), ("jobs", jobs.is_some())] {
                if !v && t.raw(k).is_none() {
                    d.error(
                        t.span.clone(),
                        t.key(k),
                        format!("missing key `{k}` (an RT task needs `period` and `jobs`)"),
                    );
                }
                t.failed |= !v;
            }
            let ns = |v: Sp<Time>| Sp::new(v.span(), v.get_ref().0);
            match (period, jobs) {
                (Some(p), Some(j)) => {
                    Some(RtDesc { deadline: deadline.map_or_else(|| ns(p.clone()), ns), period: ns(p), jobs: j })
                }
                _ => None,
            }
        }
        Some(_) => {
            for (k, v) in [("period", period.is_some()), ("deadline", deadline.is_some()), ("jobs", jobs.is_some())] {
                if v {
                    let span = t.raw(k).map_or(t.span.clone(), |v| v.span());
                    let hint = if k == "period" { " (a budget's period is `budget_period`)" } else { "" };
                    d.error(span, t.key(k), format!("`{k}` is for RT tasks (role = \"rt\"){hint}"));
                }
            }
            None
        }
    };
    let span = t.span.clone();
    if !t.finish(d) {
        return None;
    }
    let (name, role) = (name?, role?);
    let ns = |v: Option<Sp<Time>>| v.map(|v| Sp::new(v.span(), v.get_ref().0));
    let bytes = |v: Sp<Size>| Sp::new(v.span(), v.get_ref().0);
    Some(TaskDesc {
        span,
        binary: binary.unwrap_or_else(|| name.clone()),
        name,
        role,
        partition,
        pager: pager_of?,
        priority: priority?,
        mcp,
        control,
        handler,
        timeslice: ns(timeslice),
        budget: ns(budget),
        budget_period: ns(budget_period),
        heap: bytes(heap),
        stack: bytes(stack),
        args_line: args.as_ref().map_or_else(String::new, |a| {
            a.get_ref().0.iter().map(|w| w.get_ref().as_str()).collect::<Vec<_>>().join(" ")
        }),
        args: args.map_or_else(Vec::new, |a| a.into_inner().0),
        allow: allow.map(|a| a.into_inner().0),
        irq,
        ports: ports.map_or_else(Vec::new, |a| a.into_inner().0),
        spawns: spawns.map_or_else(Vec::new, |a| a.into_inner().0),
        rt,
    })
}

/// Where `name` was first used, if it was before (else it is now).
fn first_use<'n>(seen: &mut HashMap<&'n str, Range<usize>>, name: &'n str, span: Range<usize>) -> Option<Range<usize>> {
    match seen.get(name) {
        Some(first) => Some(first.clone()),
        None => {
            seen.insert(name, span);
            None
        }
    }
}

/// `4 MiB`, `64 KiB`, `1000 B`.
fn show_size(b: u64) -> String {
    match b {
        0 => "0 B".into(),
        b if b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} B"),
    }
}

/// `5 ms`, `250 us`, `7 ns`.
fn show_time(ns: u64) -> String {
    match ns {
        0 => "0".into(),
        n if n % 1_000_000_000 == 0 => format!("{} s", n / 1_000_000_000),
        n if n % 1_000_000 == 0 => format!("{} ms", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{} us", n / 1_000),
        n => format!("{n} ns"),
    }
}

impl Parts {
    /// The checks across sections, then the [`Description`] if none failed.
    fn finish(self, d: &mut Diags, src: &Source, scenario: Scenario, opts: &Options) -> Option<Description> {
        let line = |span: &Range<usize>| src.line_col(span.start).0;
        if let Some(n) = &self.name {
            if let Err(p) = sysdesc::check_name(n.get_ref()) {
                d.error(n.span(), "system.name", format!("`{}`: the name {p}", n.get_ref()));
            }
        }
        let kmem = self.kmem.get_ref().0;
        if kmem == 0 || !kmem.is_multiple_of(MIB) || kmem > KMEM_MAX_MIB * MIB {
            d.error(
                self.kmem.span(),
                "kernel.kmem",
                format!("{}: the kernel pool is whole MiB, from 1MiB to {KMEM_MAX_MIB}MiB", show_size(kmem)),
            );
        }
        if self.timeslice.get_ref().0 == 0 {
            d.error(self.timeslice.span(), "kernel.timeslice", "the default time slice must be above 0");
        }

        // Names, capacities.
        let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
        for p in &self.partitions {
            let n = p.name.get_ref();
            if let Err(problem) = sysdesc::check_name(n) {
                d.error(p.name.span(), format!("partition.{n}.name"), format!("`{n}`: the name {problem}"));
            } else if let Some(first) = first_use(&mut seen, n, p.name.span()) {
                d.error(
                    p.name.span(),
                    format!("partition.{n}.name"),
                    format!("partition name `{n}` is used twice (first on line {})", line(&first)),
                );
            }
        }
        if let Some(p) = self.partitions.get(MAX_PARTITIONS) {
            d.error(
                p.name.span(),
                format!("partition.{}", p.name.get_ref()),
                format!("more than {MAX_PARTITIONS} partitions (what the compact form holds)"),
            );
        }
        let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
        for t in &self.tasks {
            let n = t.name.get_ref();
            if let Err(problem) = sysdesc::check_task_name(n) {
                d.error(t.name.span(), format!("{}.name", t.path()), format!("`{n}`: the name {problem}"));
            } else if let Some(first) = first_use(&mut seen, n, t.name.span()) {
                d.error(
                    t.name.span(),
                    format!("{}.name", t.path()),
                    format!("`{n}` is already the name of a pager or task (line {})", line(&first)),
                );
            }
            if let Err(problem) = sysdesc::check_name(t.binary.get_ref()) {
                d.error(
                    t.binary.span(),
                    format!("{}.binary", t.path()),
                    format!("`{}`: the name {problem}", t.binary.get_ref()),
                );
            }
        }
        let mut binaries: Vec<&str> = Vec::new();
        let every = self.tasks.iter().map(|t| (t, &t.binary, "binary"));
        let spawned = self.tasks.iter().flat_map(|t| t.spawns.iter().map(move |b| (t, b, "spawns")));
        for (t, b, key) in every.chain(spawned) {
            let bin = b.get_ref().as_str();
            if key == "spawns" {
                if let Err(problem) = sysdesc::check_name(bin) {
                    d.error(b.span(), format!("{}.spawns", t.path()), format!("`{bin}`: the name {problem}"));
                }
            }
            if !binaries.contains(&bin) {
                binaries.push(bin);
                if binaries.len() == MAX_BINARIES + 1 {
                    d.error(
                        b.span(),
                        format!("{}.{key}", t.path()),
                        format!("more than {MAX_BINARIES} distinct binaries (what the boot image's module table holds beside sigma0, the root task and `system`)"),
                    );
                }
            }
        }
        if let Some(t) = self.tasks.get(MAX_TASKS) {
            d.error(
                t.span.clone(),
                t.path(),
                format!("more than {MAX_TASKS} pagers and tasks (what the compact form holds)"),
            );
        }

        // Each task on its own.
        for t in &self.tasks {
            task_checks(d, t);
        }

        // References.
        let by_name: HashMap<&str, &TaskDesc> = self.tasks.iter().map(|t| (t.name.get_ref().as_str(), t)).collect();
        let pagers: Vec<&str> =
            self.tasks.iter().filter(|t| *t.role.get_ref() == Role::Pager).map(|t| t.name.get_ref().as_str()).collect();
        let tasks: Vec<&str> = by_name.keys().copied().collect();
        let written = |n: &str| self.written_tasks.iter().any(|w| w == n);
        let hint =
            |n: &str, among: &[&str]| closest(n, among).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default();
        for t in &self.tasks {
            let path = t.path();
            let me = t.name.get_ref();
            if *t.role.get_ref() != Role::Pager {
                let p = t.pager.get_ref();
                match by_name.get(p.as_str()) {
                    _ if p == sysdesc::ROOT => {}
                    Some(_) if p == me => {
                        d.error(t.pager.span(), format!("{path}.pager"), "a task cannot be its own pager")
                    }
                    Some(x) if *x.role.get_ref() != Role::Pager => d.error(
                        t.pager.span(),
                        format!("{path}.pager"),
                        format!("`{p}` is a task, not a pager (pagers are the [[pager]] entries, or \"root\")"),
                    ),
                    Some(_) => {}
                    None if written(p) => {}
                    None => d.error(
                        t.pager.span(),
                        format!("{path}.pager"),
                        format!("no pager is named `{p}`{}", hint(p, &pagers)),
                    ),
                }
            }
            let h = t.handler.get_ref();
            match by_name.get(h.as_str()) {
                _ if h == sysdesc::ROOT => {}
                Some(_) if h == me => {
                    d.error(t.handler.span(), format!("{path}.handler"), "a task cannot handle its own exceptions")
                }
                Some(_) => {}
                None if written(h) => {}
                None => d.error(
                    t.handler.span(),
                    format!("{path}.handler"),
                    format!("no pager or task is named `{h}`{}", hint(h, &tasks)),
                ),
            }
            if let Some(p) = &t.partition {
                let n = p.get_ref();
                if !self.written_partitions.iter().any(|w| w == n) {
                    let parts: Vec<&str> = self.written_partitions.iter().map(String::as_str).collect();
                    d.error(
                        p.span(),
                        format!("{path}.partition"),
                        format!("no partition is named `{n}`{}", hint(n, &parts)),
                    );
                }
            }
            if let Some(extra) = t.spawns.get(sysdesc::MAX_SPAWNS) {
                d.error(
                    extra.span(),
                    format!("{path}.spawns"),
                    format!("more than {} binaries to spawn from", sysdesc::MAX_SPAWNS),
                );
            }
            let mut ports = sysdesc::Ports::NONE;
            for p in &t.ports {
                if let Err(m) = port_range(p.get_ref(), &mut ports) {
                    d.error(p.span(), format!("{path}.ports"), m);
                }
            }
            let mut listed: Vec<&str> = Vec::new();
            for a in t.allow.iter().flatten() {
                let n = a.get_ref().as_str();
                if listed.contains(&n) {
                    d.error(a.span(), format!("{path}.allow"), format!("`{n}` is listed twice"));
                } else if n == me {
                    d.error(a.span(), format!("{path}.allow"), "a task cannot send to itself");
                } else if n != sysdesc::ROOT && n != sysdesc::SIGMA0 && !by_name.contains_key(n) && !written(n) {
                    d.error(
                        a.span(),
                        format!("{path}.allow"),
                        format!(
                            "no pager or task is named `{n}` (allow also takes \"root\" and \"sigma0\"){}",
                            hint(n, &tasks)
                        ),
                    );
                }
                listed.push(n);
                if let Some(peer) = by_name.get(n).filter(|p| p.priority.get_ref() <= t.priority.get_ref()) {
                    d.warn(
                        a.span(),
                        format!("{path}.allow"),
                        format!(
                            "`{me}` (priority {}) may send to `{n}` (priority {}), which is not above it: a priority inversion (send only uphill)",
                            t.priority.get_ref(),
                            peer.priority.get_ref()
                        ),
                    );
                }
            }
        }

        // Priorities.
        for t in &self.tasks {
            let path = t.path();
            let prio = *t.priority.get_ref();
            for (what, r) in [("pager", &t.pager), ("handler", &t.handler)] {
                let serves = |x: &&&TaskDesc| {
                    x.name.get_ref() != t.name.get_ref() && (what == "handler" || *x.role.get_ref() == Role::Pager)
                };
                if let Some(x) = by_name.get(r.get_ref().as_str()).filter(serves) {
                    if *x.priority.get_ref() <= prio {
                        d.error(
                            t.priority.span(),
                            format!("{path}.priority"),
                            format!(
                                "{prio} is not below the priority {} of its {what} `{}`: a {what} must run above every thread it serves",
                                x.priority.get_ref(),
                                x.name.get_ref()
                            ),
                        );
                    }
                }
            }
        }
        let all = &self.tasks;
        let clients = |p: &TaskDesc| {
            let name = p.name.get_ref().clone();
            all.iter().filter(move |t| *t.pager.get_ref() == name && *t.role.get_ref() != Role::Pager)
        };
        let ts_side = self.tasks.iter().filter(|t| match t.role.get_ref() {
            Role::Ts => true,
            Role::Pager => clients(t).next().is_some() && clients(t).all(|c| *c.role.get_ref() == Role::Ts),
            _ => false,
        });
        if let Some(top) = ts_side.max_by_key(|t| *t.priority.get_ref()) {
            let top_prio = *top.priority.get_ref();
            let what = if *top.role.get_ref() == Role::Pager { "the pager of TS tasks" } else { "TS task" };
            for t in self.tasks.iter().filter(|t| *t.role.get_ref() == Role::Rt && *t.priority.get_ref() <= top_prio) {
                d.error(
                    t.priority.span(),
                    format!("{}.priority", t.path()),
                    format!(
                        "RT task priority {} is not above {what} `{}` (priority {top_prio}): every RT task runs above the TS side",
                        t.priority.get_ref(),
                        top.name.get_ref()
                    ),
                );
            }
        }
        for p in self.tasks.iter().filter(|t| *t.role.get_ref() == Role::Pager && clients(t).next().is_none()) {
            d.warn(p.name.span(), p.path(), format!("pager `{}` has no clients", p.name.get_ref()));
        }

        // Partitions: colours and memory.
        let (llc, cache) = match &self.cache {
            Some(Some((_, l, from))) => (Some(*l), from.clone()),
            _ => (None, "CPUID at boot".into()),
        };
        let mut partitions = self.partitions;
        let shared = *self.shared_colors.get_ref();
        partition_checks(
            d,
            &mut partitions,
            llc.as_ref().zip(self.cache.as_ref().and_then(|c| c.as_ref()).map(|c| c.0.clone())),
            shared,
            kmem,
            opts.ram,
        );
        if self.cache.is_none() && !partitions.is_empty() {
            d.note("no [cache]: the partitions' memory is not checked here (sigma0 checks it against the colours of the level it detects)");
        }
        if shared && !partitions_share(&partitions) {
            d.warn(
                self.shared_colors.span(),
                "system.shared_colors",
                "shared_colors is set but no two partitions share a colour",
            );
        }

        // Binaries.
        match &opts.modules {
            None => d.note("binaries not checked (give --modules DIR)"),
            Some(dir) if !dir.is_dir() => {
                d.note(format!("binaries not checked: {} does not exist (run `just build`)", dir.display()))
            }
            Some(dir) => {
                let severity = if opts.allow_missing_binaries { Severity::Warning } else { Severity::Error };
                for t in &self.tasks {
                    let bin = t.binary.get_ref();
                    if !dir.join(bin).is_file() {
                        let defaulted =
                            if t.binary.span() == t.name.span() { " (`binary` defaults to the name)" } else { "" };
                        d.push(
                            severity,
                            t.binary.span(),
                            format!("{}.binary", t.path()),
                            format!("binary `{bin}` is not in {}{defaulted}", dir.display()),
                        );
                    }
                    for b in &t.spawns {
                        if !dir.join(b.get_ref()).is_file() {
                            d.push(
                                severity,
                                b.span(),
                                format!("{}.spawns", t.path()),
                                format!("binary `{}` is not in {}", b.get_ref(), dir.display()),
                            );
                        }
                    }
                }
            }
        }

        if d.errors() > 0 {
            return None;
        }
        Some(Description {
            scenario,
            name: self.name?.into_inner(),
            shared_colors: shared,
            kernel: Kernel { kmem, timeslice: self.timeslice.get_ref().0 },
            llc,
            cache,
            partitions,
            tasks: self.tasks,
        })
    }
}

/// The checks of one task's own keys.
fn task_checks(d: &mut Diags, t: &TaskDesc) {
    let path = t.path();
    let key = |k: &str| format!("{path}.{k}");
    for a in &t.args {
        if a.get_ref().is_empty() || a.get_ref().contains(char::is_whitespace) {
            d.error(
                a.span(),
                key("args"),
                format!("{:?}: each argument is one word (split it into entries)", a.get_ref()),
            );
        }
    }
    if t.args_line.len() > MAX_ARGS {
        d.error(
            t.args[0].span(),
            key("args"),
            format!("the arguments are {} bytes together, more than {MAX_ARGS}", t.args_line.len()),
        );
    }
    if *t.mcp.get_ref() > sysdesc::ROOT_MCP {
        d.error(
            t.mcp.span(),
            key("mcp"),
            format!("{} is above the root task's {}", t.mcp.get_ref(), sysdesc::ROOT_MCP),
        );
    }
    if *t.mcp.get_ref() > 0 && !*t.control.get_ref() {
        d.error(
            t.mcp.span(),
            key("mcp"),
            "mcp limits threads the task controls; set `control = true` or leave mcp out",
        );
    }
    if *t.priority.get_ref() > sysdesc::MAX_PRIORITY {
        d.error(
            t.priority.span(),
            key("priority"),
            format!("{} is above the highest priority {}", t.priority.get_ref(), sysdesc::MAX_PRIORITY),
        );
    }
    if let Some(ts) = t.timeslice.as_ref().filter(|v| *v.get_ref() == 0) {
        d.error(ts.span(), key("timeslice"), "a time slice must be above 0 (leave it out for the kernel's default)");
    }
    match (&t.budget, t.budget_period()) {
        (Some(b), _) if *b.get_ref() == 0 => {
            d.error(b.span(), key("budget"), "a budget must be above 0 (leave it out for none)")
        }
        (Some(b), None) => {
            d.error(b.span(), key("budget"), "a budget needs `budget_period` (RT tasks default it to their period)")
        }
        (Some(b), Some(p)) if b.get_ref() > p.get_ref() => d.error(
            b.span(),
            key("budget"),
            format!("budget {} is more than its period {}", show_time(*b.get_ref()), show_time(*p.get_ref())),
        ),
        (None, _) => {
            if let Some(p) = &t.budget_period {
                d.error(p.span(), key("budget_period"), "`budget_period` without `budget`");
            }
        }
        _ => {}
    }
    if let Some(p) = t.budget_period.as_ref().filter(|p| *p.get_ref() == 0) {
        d.error(p.span(), key("budget_period"), "a budget period must be above 0");
    }
    if let Some(rt) = &t.rt {
        if *rt.period.get_ref() == 0 {
            d.error(rt.period.span(), key("period"), "an RT period must be above 0");
        }
        if *rt.deadline.get_ref() == 0 {
            d.error(rt.deadline.span(), key("deadline"), "a deadline must be above 0");
        } else if rt.deadline.get_ref() > rt.period.get_ref() {
            d.error(
                rt.deadline.span(),
                key("deadline"),
                format!(
                    "deadline {} is after the period {} (deadline <= period)",
                    show_time(*rt.deadline.get_ref()),
                    show_time(*rt.period.get_ref())
                ),
            );
        }
        if *rt.jobs.get_ref() == 0 {
            d.error(rt.jobs.span(), key("jobs"), "an RT task runs at least 1 job");
        }
    }
    for (k, v) in [("heap", &t.heap), ("stack", &t.stack)] {
        if !v.get_ref().is_multiple_of(PAGE) {
            d.error(v.span(), key(k), format!("{}: not a whole number of 4 KiB pages", show_size(*v.get_ref())));
        }
    }
    if *t.stack.get_ref() == 0 {
        d.error(t.stack.span(), key("stack"), "a task needs a stack");
    }
}

/// Colours (syntax, beyond the geometry, overlap unless shared) and memory
/// (each partition fits its colours, sharing partitions fit together),
/// through `cache_color::partition::check_each`; fills in the canonical
/// colours.
fn partition_checks(
    d: &mut Diags,
    partitions: &mut [PartitionDesc],
    llc: Option<(&CacheLevel, Range<usize>)>,
    shared: bool,
    kmem: u64,
    ram: u64,
) {
    // Without a geometry: the syntax against the most colours, no memory.
    let any = CacheLevel::new(DEFAULT_LEVEL, CacheKind::Unified, MAX_COLORS as u64 * 16 * PAGE, 16, DEFAULT_LINE);
    let map = match llc.map(|(l, span)| (ColorMap::new(l, PAGE), span)) {
        Some((Ok(m), _)) => Some(m),
        Some((Err(e), span)) => {
            d.error(span, "cache", format!("cannot colour this level: {e}"));
            None
        }
        None => None,
    };
    let check_memory = map.is_some();
    let map = map.unwrap_or_else(|| ColorMap::new(&any, PAGE).expect("a 4096-colour level"));
    // What sigma0 hands out: the guest RAM above 1 MiB less the kernel pool.
    let start = MIB + kmem;
    let memory = [MemRegion::new(start, ram.saturating_sub(start))];
    let specs: Vec<PartitionSpec> = partitions
        .iter()
        .map(|p| PartitionSpec { name: p.name.get_ref(), colors: p.colors.get_ref(), memory: *p.memory.get_ref() })
        .collect();
    let sharing = if shared { Sharing::Allowed } else { Sharing::Disjoint };
    let mut found = Vec::new();
    partition::check_each(&specs, &map, &memory, sharing, |i, e| found.push((i, e)));
    for (i, e) in found {
        let p = &partitions[i];
        let (span, key, hint) = match e {
            // Names are checked with the other names.
            PartitionError::EmptyName { .. }
            | PartitionError::DuplicateName { .. }
            | PartitionError::TooManyPartitions { .. } => continue,
            PartitionError::InsufficientMemory { .. } | PartitionError::SharedInsufficientMemory { .. } => {
                if !check_memory {
                    continue;
                }
                let room =
                    format!(" in the guest's RAM ({} of guest RAM, {} kernel pool)", show_size(ram), show_size(kmem));
                (p.memory.span(), "memory", room)
            }
            PartitionError::Overlap { .. } => (
                p.colors.span(),
                "colors",
                " (colours are disjoint unless a scenario shares them on purpose: system.shared_colors = true)".into(),
            ),
            PartitionError::Spec { .. } => (p.colors.span(), "colors", String::new()),
        };
        d.error(span, format!("partition.{}.{key}", p.name.get_ref()), format!("{e}{hint}"));
    }
    for p in partitions.iter_mut() {
        if let Ok(set) = partition::parse_colors(p.colors.get_ref(), map.colors()) {
            p.canonical = set.to_string();
        }
    }
}

fn partitions_share(partitions: &[PartitionDesc]) -> bool {
    let sets: Vec<ColorSet> =
        partitions.iter().filter_map(|p| partition::parse_colors(&p.canonical, MAX_COLORS as u32).ok()).collect();
    sets.iter().enumerate().any(|(i, a)| sets[i + 1..].iter().any(|b| !a.is_disjoint(b)))
}

impl Description {
    /// The compact form's view of it (borrowing from it).
    pub fn system(&self) -> Result<System<'_>> {
        let mut sys = System::new(&self.name, self.scenario, self.shared_colors, self.kernel, self.llc);
        for p in &self.partitions {
            sys.add_partition(PartitionSpec {
                name: p.name.get_ref(),
                colors: &p.canonical,
                memory: *p.memory.get_ref(),
            })
            .map_err(|e| anyhow!("{e}"))?;
        }
        let index = |n: &str| {
            self.tasks.iter().position(|t| t.name.get_ref() == n).ok_or_else(|| anyhow!("internal: `{n}` unresolved"))
        };
        let task_ref = |n: &str| if n == sysdesc::ROOT { Ok(Ref::Root) } else { index(n).map(Ref::Task) };
        for t in &self.tasks {
            let mut allow = None;
            if let Some(list) = &t.allow {
                let mut a = Allow::NONE;
                for n in list {
                    a.insert(match n.get_ref().as_str() {
                        sysdesc::ROOT => Peer::Root,
                        sysdesc::SIGMA0 => Peer::Sigma0,
                        n => Peer::Task(index(n)?),
                    });
                }
                allow = Some(a);
            }
            let partition = match &t.partition {
                Some(p) => Some(
                    self.partitions
                        .iter()
                        .position(|x| x.name.get_ref() == p.get_ref())
                        .ok_or_else(|| anyhow!("internal: partition unresolved"))?,
                ),
                None => None,
            };
            let (budget, period) = match (&t.budget, t.budget_period()) {
                (Some(b), Some(p)) => (*b.get_ref(), *p.get_ref()),
                _ => (0, 0),
            };
            sys.add_task(Task {
                name: t.name.get_ref(),
                bin: t.binary.get_ref(),
                role: *t.role.get_ref(),
                partition,
                pager: task_ref(t.pager.get_ref())?,
                prio: *t.priority.get_ref(),
                mcp: *t.mcp.get_ref(),
                control: *t.control.get_ref(),
                handler: task_ref(t.handler.get_ref())?,
                timeslice: t.timeslice.as_ref().map_or(0, |v| *v.get_ref()),
                budget,
                period,
                heap: *t.heap.get_ref(),
                stack: *t.stack.get_ref(),
                rt: t.rt.as_ref().map(|rt| Rt {
                    period: *rt.period.get_ref(),
                    deadline: *rt.deadline.get_ref(),
                    jobs: *rt.jobs.get_ref(),
                }),
                allow,
                irq: *t.irq.get_ref(),
                spawns: {
                    let mut sp = sysdesc::Spawns::NONE;
                    for b in &t.spawns {
                        if !sp.insert(b.get_ref()) {
                            anyhow::bail!("{}.spawns: more than {} binaries", t.path(), sysdesc::MAX_SPAWNS);
                        }
                    }
                    sp
                },
                ports: {
                    let mut p = sysdesc::Ports::NONE;
                    for r in &t.ports {
                        port_range(r.get_ref(), &mut p).map_err(|m| anyhow!("internal: {m}"))?;
                    }
                    p
                },
                args: &t.args_line,
            })
            .map_err(|e| anyhow!("{e}"))?;
        }
        Ok(sys)
    }

    /// The compact form (the `system` boot module), read back and compared
    /// before it is returned.
    pub fn compact(&self) -> Result<String> {
        let sys = self.system()?;
        let mut out = String::new();
        sysdesc::write(&sys, &mut out)?;
        let back =
            sysdesc::parse(&out).map_err(|e| anyhow!("internal: the compact form does not read back: {e}\n{out}"))?;
        if back != sys {
            anyhow::bail!("internal: the compact form reads back different:\n{out}");
        }
        Ok(out)
    }

    /// Which colours each partition owns, for the report's colour map.
    pub fn layout(&self) -> crate::capture::Layout {
        let colors = self.llc.map_or(0, |l| l.colors() as u32);
        let partitions = self
            .partitions
            .iter()
            .map(|p| crate::capture::LayoutPartition {
                name: p.name.get_ref().clone(),
                colors: p.colors.get_ref().clone(),
                memory: Some(*p.memory.get_ref()).filter(|m| *m > 0),
            })
            .collect();
        crate::capture::Layout { colors, partitions }
    }

    /// One paragraph for `prism validate`.
    pub fn summary(&self) -> String {
        let cache = match &self.llc {
            Some(l) => {
                format!("L{} {} {}-way, {} colours ({})", l.level, show_size(l.size), l.ways, l.colors(), self.cache)
            }
            None => self.cache.clone(),
        };
        let parts: Vec<String> = self
            .partitions
            .iter()
            .map(|p| format!("{} {} {}", p.name.get_ref(), p.canonical, show_size(*p.memory.get_ref())))
            .collect();
        let mut by_role: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for t in &self.tasks {
            by_role.entry(t.role.get_ref().as_str()).or_default().push(t.name.get_ref());
        }
        let tasks: Vec<String> = by_role.iter().map(|(r, ns)| format!("{r}: {}", ns.join(", "))).collect();
        format!(
            "{}: {} partition(s) [{}] on {cache}{}; {} task(s) [{}]",
            self.scenario,
            self.partitions.len(),
            parts.join("; "),
            if self.shared_colors { ", colours shared" } else { "" },
            self.tasks.len(),
            tasks.join("; ")
        )
    }
}

/// `prism validate`: prints every diagnostic, then a summary; `Ok(false)`
/// if there were errors.
pub fn validate_command(path: &Path, scenario: Option<Scenario>, opts: &Options) -> Result<bool> {
    let src = Source::read(path)?;
    let (diags, descs) = match scenario {
        Some(s) => {
            let c = check(&src, s, opts);
            (c.diagnostics, c.description.into_iter().collect())
        }
        None => check_every(&src, opts),
    };
    for d in &diags {
        println!("{}", d.render(&src));
    }
    let count = |s| diags.iter().filter(|d| d.severity == s).count();
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    if errors > 0 {
        println!("{}: {errors} error(s), {warnings} warning(s)", path.display());
        return Ok(false);
    }
    let name = descs.first().map_or("", |d| d.name.as_str());
    println!("{}: system `{name}` is valid ({warnings} warning(s))", path.display());
    for d in &descs {
        println!("  {}", d.summary());
    }
    Ok(true)
}

/// `prism system`: checks one scenario and writes its compact form (and,
/// if asked, the old `config` module). Writes nothing if there are errors.
pub fn system_command(path: &Path, scenario: Scenario, out: &Path, opts: &Options) -> Result<bool> {
    let src = Source::read(path)?;
    let c = check(&src, scenario, opts);
    // Errors in full; warnings and notes (e.g. binaries not built yet) one line each.
    for d in &c.diagnostics {
        eprintln!("{}", if d.severity == Severity::Error { d.render(&src) } else { d.render_line(&src) });
    }
    let Some(desc) = c.description else {
        eprintln!("{}: {} error(s); nothing written", path.display(), c.errors());
        return Ok(false);
    };
    let text = desc.compact()?;
    std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "system: {} ({scenario}) -> {}: {} partition(s), {} task(s)",
        path.display(),
        out.display(),
        desc.partitions.len(),
        desc.tasks.len()
    );
    Ok(true)
}
