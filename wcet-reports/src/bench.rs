//! `prism bench`: Prism's kernel primitives beside the same work on Linux,
//! both under the same QEMU binary, CPU model and flags.
//!
//! Prism's side is the `bench` task of `kernel/tests/driver` (image
//! `kernel/tests/images/bench/system`), Linux's is `bench-linux` as the
//! `/init` of Debian's stock kernel ([`crate::linux`]). Each boots twice:
//! under TCG with `-icount shift=0` (the guest TSC counts instructions:
//! exact, and two runs are identical) and under plain TCG (TSC cycles:
//! noisy). Both print [`abi::bench::Line`]s; [`PAIRS`] says which figure of
//! one side is the same work as which of the other (the two benchmark
//! sources say what each measures and why the pair is fair). The host
//! prints one table ([`render_text`]) and writes `bench.json` and
//! `bench.md` into a new folder `target/bench/<timestamp>/`
//! ([`write_report`]), then says whether the instruction counts equal
//! those of the last earlier run with the same inputs ([`compare`]).

use crate::qemu::{Accel, Boot, Qemu};
use abi::bench::Summary;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The benchmark image: the `bench` task alone (`kernel/tests/images/bench`).
pub const IMAGE: &str = "kernel/tests/images/bench/system";
/// Guest RAM of every benchmark boot, Prism's and Linux's: room for the
/// 10,100 fresh frames of the page-fault benchmark and a kernel pool
/// (`kmem=` of the image) whose mapping database holds their nodes.
pub const MEMORY_MIB: u32 = 256;

/// One pair of the table: a Prism benchmark and the Linux benchmarks that
/// do the same work.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Pair {
    /// What both sides do.
    pub work: &'static str,
    pub prism: &'static str,
    pub linux: &'static [&'static str],
    /// Why Prism's side is not measured yet, if it is not.
    pub pending: Option<&'static str>,
}

/// Every pair, in table order.
pub const PAIRS: &[Pair] = &[
    Pair {
        work: "the two TSC reads alone (fixed cost in every figure)",
        prism: "empty",
        linux: &["empty"],
        pending: None,
    },
    Pair { work: "cheapest system call", prism: "null_syscall", linux: &["getppid"], pending: None },
    Pair {
        work: "round trip to another address space, 48 bytes each way (Prism: registers)",
        prism: "ipc_call_registers",
        linux: &["pipe_48", "eventfd_pingpong", "futex_pingpong"],
        pending: None,
    },
    Pair {
        work: "round trip, 480 bytes each way (Prism: 60 UTCB words)",
        prism: "ipc_call_utcb_60_words",
        linux: &["pipe_480"],
        pending: None,
    },
    Pair {
        work: "4 KiB to another address space, minimal answer (Prism: string item)",
        prism: "ipc_call_string_4k",
        linux: &["pipe_4k"],
        pending: None,
    },
    Pair {
        work: "write fault on a page whose frame exists (Linux anon: also zeroes one)",
        prism: "page_fault_user_pager",
        linux: &["fault_shmem", "fault_anon"],
        pending: None,
    },
    Pair {
        work: "one 4 KiB page made present in an address space (Prism: map item by IPC)",
        prism: "ipc_call_map_one_page",
        linux: &["mmap_touch_shmem", "mmap_touch_anon"],
        pending: None,
    },
    Pair {
        work: "unmap 2 MiB of 512 present 4 KiB mappings",
        prism: "unmap_2m_512_derived",
        linux: &["munmap_2m"],
        pending: None,
    },
    Pair {
        work: "yield to a thread of the same space and back",
        prism: "yield_one_space",
        linux: &["sched_yield_threads"],
        pending: None,
    },
    Pair {
        work: "yield to a thread of another space and back",
        prism: "yield_two_spaces",
        linux: &["sched_yield_processes"],
        pending: None,
    },
    Pair {
        work: "4 MiB of fresh frames made present (Prism: the RT pager loading a task, per 4 MiB; one load)",
        prism: "rt_pager_frames_4m",
        linux: &["mmap_populate_4m"],
        pending: None,
    },
];

/// A summary as stored in `bench.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub rounds: u64,
    pub min: u64,
    pub median: u64,
    pub p99: u64,
    pub max: u64,
}

impl From<Summary> for Stat {
    fn from(s: Summary) -> Stat {
        Stat { rounds: s.rounds, min: s.min, median: s.median, p99: s.p99, max: s.max }
    }
}

/// One side's figures under both accelerators, by benchmark name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Side {
    /// Guest instructions (TCG with `-icount shift=0`).
    pub instructions: BTreeMap<String, Stat>,
    /// TSC cycles under plain TCG.
    pub cycles: BTreeMap<String, Stat>,
}

/// Everything one `prism bench` measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// UTC, `2026-12-01T12-00-00Z` (also the folder name).
    pub timestamp: String,
    /// The machine (`host CPU, N cores`).
    pub machine: String,
    /// The QEMU that ran both sides (version and binary).
    pub qemu: String,
    /// The CPU model and accelerator flags.
    pub accel: String,
    /// SHA-256 of every input that decides the instruction counts.
    pub inputs: BTreeMap<String, String>,
    pub prism: Side,
    /// `None` when Linux was not run ([`Report::linux_missing`] says why).
    pub linux: Option<Side>,
    pub linux_missing: Option<String>,
    /// What the Linux benchmark said of its kernel (version, mitigations,
    /// scheduling policy).
    pub linux_info: Vec<String>,
}

/// Boots the benchmark image under `accel` and returns its figures; with
/// `profile`, the image runs that benchmark alone with markers
/// (`profile=NAME`), and `extra` adds QEMU arguments (the plugin).
pub fn run_prism(
    build: &Path,
    accel: Accel,
    qemu: &Qemu,
    profile: Option<&str>,
    extra: &[String],
) -> Result<Vec<(String, Summary)>> {
    let system = match profile {
        None => PathBuf::from(IMAGE),
        Some(name) => {
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || name.is_empty() {
                bail!("--profile takes a benchmark name, not {name:?}");
            }
            image_with_args(build, "bench-profile", &format!("profile={name}"))?
        }
    };
    // A profiled run must end by itself (the root task's verdict): the
    // profile plugin writes its file in QEMU's exit handlers, which a
    // killed QEMU never runs.
    boot_image(build, &system, accel, qemu, profile.is_none(), extra)
}

/// The benchmark image with `n` idle threads beside the benchmarks' own
/// (`idle_threads=N`: each blocked in a receive), under TCG+icount: the
/// figures that must not grow with the number of threads (map, fault).
pub fn run_prism_idle(build: &Path, qemu: &Qemu, n: usize) -> Result<Vec<(String, Summary)>> {
    let system = image_with_args(build, "bench-idle", &format!("idle_threads={n}"))?;
    boot_image(build, &system, Accel::TcgIcount, qemu, true, &[])
}

/// Boots `system` (a benchmark image) and parses its figures; `stop_early`:
/// stop QEMU at `bench done` rather than wait for the root task's verdict.
fn boot_image(
    build: &Path,
    system: &Path,
    accel: Accel,
    qemu: &Qemu,
    stop_early: bool,
    extra: &[String],
) -> Result<Vec<(String, Summary)>> {
    let image = crate::image::of(build, system)?;
    let mut boot = Boot::new(build.join("kernel.elf"), accel);
    boot.qemu = qemu.clone();
    boot.memory_mib = MEMORY_MIB;
    boot.cmdline = image.cmdline.clone();
    boot.modules = image.module_args();
    boot.extra = extra.to_vec();
    let done = |s: &str| s.contains("bench done");
    let stop: Option<&dyn Fn(&str) -> bool> = if stop_early { Some(&done) } else { None };
    let o = boot.run_captured(Duration::from_secs(900), stop)?;
    let lines: Vec<String> = o.lines.iter().map(|(_, l)| l.clone()).collect();
    parse_prism_console(&lines).with_context(|| format!("Prism under {accel}"))
}

/// The figures of a Prism benchmark console; an error if the task did not
/// finish or a benchmark failed.
pub fn parse_prism_console(lines: &[String]) -> Result<Vec<(String, Summary)>> {
    let figures: Vec<(String, Summary)> = lines
        .iter()
        .filter_map(|l| abi::bench::parse_line(l.trim_end_matches('\r')))
        .map(|(n, s)| (n.into(), s))
        .collect();
    let tail = || lines[lines.len().saturating_sub(30)..].join("\n");
    if let Some(bad) = lines.iter().find(|l| l.starts_with("bench ") && l.contains(": failed")) {
        bail!("a benchmark failed: {bad}; console:\n{}", tail());
    }
    if !lines.iter().any(|l| l.trim_end() == "bench done") {
        bail!("the benchmark did not finish; console:\n{}", tail());
    }
    Ok(figures)
}

/// A copy of the benchmark image whose bench task gets the arguments
/// `args` (`build/<dir>/system`).
fn image_with_args(build: &Path, dir: &str, args: &str) -> Result<PathBuf> {
    let text = std::fs::read_to_string(IMAGE).with_context(|| format!("reading {IMAGE}"))?;
    let out = with_bench_args(&text, args).context(IMAGE)?;
    let dir = build.join(dir);
    std::fs::create_dir_all(&dir)?;
    let p = dir.join("system");
    std::fs::write(&p, out)?;
    Ok(p)
}

/// `text` (a compact description) with `args` given to its `bench` task.
fn with_bench_args(text: &str, args: &str) -> Result<String> {
    let mut out = String::new();
    let mut found = false;
    for l in text.lines() {
        if l.starts_with("task name=bench ") {
            if l.contains(" -- ") {
                bail!("the bench task already has arguments");
            }
            out.push_str(&format!("{l} -- {args}\n"));
            found = true;
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    if !found {
        bail!("no `task name=bench` line");
    }
    Ok(out)
}

/// The figures as a [`Side`] entry.
pub fn to_map(figures: &[(String, Summary)]) -> BTreeMap<String, Stat> {
    figures.iter().map(|(n, s)| (n.clone(), Stat::from(*s))).collect()
}

/// SHA-256 of a file, hex.
pub fn digest(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// One line of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The pair's description on its first line, empty on the others.
    pub work: String,
    pub side: &'static str,
    pub bench: String,
    /// Instructions and cycles, or why there are none.
    pub instructions: std::result::Result<Stat, String>,
    pub cycles: std::result::Result<Stat, String>,
    /// Linux rows: this row's instruction median over Prism's.
    pub ratio: Option<f64>,
}

/// The table's rows, pair by pair: Prism's benchmark, then each Linux one.
pub fn rows(r: &Report) -> Vec<Row> {
    let mut rows = Vec::new();
    let find = |side: Option<&Side>, name: &str, insns: bool| -> std::result::Result<Stat, String> {
        let Some(side) = side else { return Err("not run".into()) };
        let m = if insns { &side.instructions } else { &side.cycles };
        m.get(name).copied().ok_or_else(|| "missing".into())
    };
    for p in PAIRS {
        let (pi, pc) = match p.pending {
            Some(why) => (Err(why.to_string()), Err(why.to_string())),
            None => (find(Some(&r.prism), p.prism, true), find(Some(&r.prism), p.prism, false)),
        };
        let base = pi.as_ref().ok().map(|s| s.median);
        rows.push(Row {
            work: p.work.into(),
            side: "Prism",
            bench: p.prism.into(),
            instructions: pi,
            cycles: pc,
            ratio: None,
        });
        for l in p.linux {
            let li = find(r.linux.as_ref(), l, true);
            let ratio = match (&li, base) {
                (Ok(s), Some(b)) if b > 0 => Some(s.median as f64 / b as f64),
                _ => None,
            };
            rows.push(Row {
                work: String::new(),
                side: "Linux",
                bench: (*l).into(),
                instructions: li,
                cycles: find(r.linux.as_ref(), l, false),
                ratio,
            });
        }
    }
    rows
}

fn cells(s: &std::result::Result<Stat, String>) -> [String; 3] {
    match s {
        Ok(s) => [s.median, s.p99, s.max].map(|v| v.to_string()),
        Err(e) => [e.clone(), String::new(), String::new()],
    }
}

fn rounds(row: &Row) -> String {
    row.instructions.as_ref().or(row.cycles.as_ref()).map(|s| s.rounds.to_string()).unwrap_or_default()
}

fn ratio(row: &Row) -> String {
    row.ratio.map(|r| format!("{r:.1}x")).unwrap_or_default()
}

/// The header lines both renderings start with.
fn preamble(r: &Report) -> Vec<String> {
    let mut v = vec![
        format!("Prism vs Linux under {}, {}; {}.", r.qemu, r.accel, r.machine),
        "Instructions: guest TSC under TCG with -icount shift=0 (exact, repeatable). \
         Cycles: guest TSC under plain TCG (noisy, moves between runs; not hardware cycles)."
            .into(),
    ];
    match (&r.linux, &r.linux_missing) {
        (Some(_), _) => {
            if let Some(k) = r.linux_info.iter().find_map(|i| i.strip_prefix("kernel ")) {
                v.push(format!("Linux: {k}"));
            }
            for i in r.linux_info.iter().filter(|i| !i.starts_with("kernel ")) {
                v.push(format!("Linux: {i}"));
            }
        }
        (None, Some(why)) => v.push(format!("Linux: not run ({why}).")),
        (None, None) => v.push("Linux: not run.".into()),
    }
    v
}

const HEAD: [&str; 11] = [
    "work",
    "side",
    "benchmark",
    "rounds",
    "insn median",
    "insn p99",
    "insn max",
    "cyc median",
    "cyc p99",
    "cyc max",
    "vs Prism",
];

/// The table as text for the terminal: each pair's work on a line of its
/// own, then its rows.
pub fn render_text(r: &Report) -> String {
    let mut out = preamble(r).join("\n");
    out.push_str("\n\n");
    let w = [5, 22, 6, 11, 10, 10, 11, 10, 10, 8];
    let line = |c: &[String]| -> String {
        let mut s = String::from("  ");
        for (i, (cell, w)) in c.iter().zip(w).enumerate() {
            if i < 2 {
                s.push_str(&format!("{cell:<w$} "));
            } else {
                s.push_str(&format!("{cell:>w$} "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    out.push_str(&line(&HEAD[1..].iter().map(|h| h.to_string()).collect::<Vec<_>>()));
    for row in rows(r) {
        if !row.work.is_empty() {
            out.push_str(&format!("{}:\n", row.work));
        }
        let mut c = vec![row.side.to_string(), row.bench.clone()];
        match (&row.instructions, &row.cycles) {
            (Err(e), Err(_)) if e.len() > 11 => {
                let mut l = line(&c);
                l.insert_str(l.len() - 1, &format!("  ({e})"));
                out.push_str(&l);
                continue;
            }
            _ => {}
        }
        c.push(rounds(&row));
        c.extend(cells(&row.instructions));
        c.extend(cells(&row.cycles));
        c.push(ratio(&row));
        out.push_str(&line(&c));
    }
    out
}

/// The table as Markdown (`bench.md`, and the README's performance section).
pub fn render_markdown(r: &Report) -> String {
    let mut out = String::new();
    for l in preamble(r) {
        out.push_str(&format!("{l}\n"));
    }
    out.push('\n');
    out.push_str(&format!("| {} |\n", HEAD.join(" | ")));
    out.push_str(&format!("|{}\n", [" --- |", " --- |", " --- |"].concat() + &" ---: |".repeat(HEAD.len() - 3)));
    for row in rows(r) {
        let [im, ip, ix] = cells(&row.instructions);
        let [cm, cp, cx] = cells(&row.cycles);
        let bench = format!("`{}`", row.bench);
        let c = [row.work.clone(), row.side.into(), bench, rounds(&row), im, ip, ix, cm, cp, cx, ratio(&row)];
        out.push_str(&format!("| {} |\n", c.join(" | ")));
    }
    out
}

/// Writes `bench.json` and `bench.md` into a new folder `dir/<timestamp>`
/// (`-2`, `-3`, ... if that exists: an earlier run is never overwritten).
pub fn write_report(dir: &Path, r: &Report) -> Result<PathBuf> {
    let out = crate::report::new_folder(dir, &r.timestamp)?;
    std::fs::write(out.join("bench.json"), serde_json::to_string_pretty(r)? + "\n")?;
    std::fs::write(out.join("bench.md"), render_markdown(r))?;
    Ok(out)
}

/// What [`compare`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Repeat {
    /// No earlier run with the same inputs and QEMU.
    NoEarlierRun,
    /// The instruction counts of both sides equal those of this run.
    Identical(PathBuf),
    /// These benchmarks' instruction counts differ.
    Differs(PathBuf, Vec<String>),
}

/// Compares the instruction counts of `r` with the newest earlier run in
/// `dir` (other than `this`) that had the same inputs and QEMU.
pub fn compare(dir: &Path, this: &Path, r: &Report) -> Repeat {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p != this && p.join("bench.json").is_file()).collect()
        })
        .unwrap_or_default();
    runs.sort();
    for p in runs.iter().rev() {
        let Ok(text) = std::fs::read_to_string(p.join("bench.json")) else { continue };
        let Ok(old) = serde_json::from_str::<Report>(&text) else { continue };
        if old.inputs != r.inputs
            || old.qemu != r.qemu
            || old.accel != r.accel
            || old.linux.is_some() != r.linux.is_some()
        {
            continue;
        }
        let mut differ = Vec::new();
        let sides = [("Prism", Some(&old.prism), Some(&r.prism)), ("Linux", old.linux.as_ref(), r.linux.as_ref())];
        for (side, a, b) in sides {
            let (Some(a), Some(b)) = (a, b) else { continue };
            let names: std::collections::BTreeSet<&String> =
                a.instructions.keys().chain(b.instructions.keys()).collect();
            for n in names {
                if a.instructions.get(n) != b.instructions.get(n) {
                    differ.push(format!("{side} {n}"));
                }
            }
        }
        return if differ.is_empty() { Repeat::Identical(p.clone()) } else { Repeat::Differs(p.clone(), differ) };
    }
    Repeat::NoEarlierRun
}

/// One cache-model speed figure: a guest loop of `loads` loads, `plugin`
/// says whether the cache-model plugin simulated them.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpeed {
    pub name: String,
    pub loads: u64,
    pub seconds: f64,
    pub plugin: bool,
}

/// Runs the test kernel's `cache_model_speed` loops under `qemu` with
/// TCG+icount, with the cache-model plugin (`host` profile) and without it,
/// and times each loop by its console lines.
pub fn model_speed(build: &Path, qemu: &Qemu) -> Result<Vec<ModelSpeed>> {
    let mut v = Vec::new();
    for plugin in [true, false] {
        let mut boot = Boot::new(build.join("kernel-test.elf"), Accel::TcgIcount);
        boot.qemu = qemu.clone();
        boot.cmdline = "test=cache_model_speed".into();
        if plugin {
            boot.with_cache_model(&build.join("libcache_model.so"), "host", &build.join("cache-model-speed.csv"));
        }
        let o = boot.run_captured(Duration::from_secs(600), None)?;
        for (t0, line) in &o.lines {
            let Some(rest) = line.strip_prefix("speed ") else { continue };
            let Some((name, loads)) = rest.split_once(" begin loads=") else { continue };
            let end = o.lines.iter().find(|(_, l)| *l == format!("speed {name} end")).map(|(t, _)| *t);
            let (Some(t1), Ok(loads)) = (end, loads.parse()) else {
                bail!("the speed loop {name} did not finish under {}; console:\n{}", qemu.describe(), o.tail(20));
            };
            v.push(ModelSpeed { name: name.to_string(), loads, seconds: (t1 - *t0).as_secs_f64(), plugin });
        }
    }
    if v.len() != 4 {
        bail!("the cache-model speed boot printed {} of 4 timings under {}", v.len(), qemu.describe());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_arguments_go_to_the_bench_task_alone() {
        let text = "prism-system 1\ntask name=rtpager bin=rt-pager -- bench\ntask name=bench bin=bench prio=31\n";
        let out = super::with_bench_args(text, "idle_threads=93").unwrap();
        assert_eq!(out, "prism-system 1\ntask name=rtpager bin=rt-pager -- bench\ntask name=bench bin=bench prio=31 -- idle_threads=93\n");
        assert!(super::with_bench_args("task name=bench bin=bench -- x\n", "y").is_err());
        assert!(super::with_bench_args("task name=other bin=bench\n", "y").is_err());
        // The image in the repository takes them.
        let image =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../", "kernel/tests/images/bench/system"))
                .unwrap();
        assert!(super::with_bench_args(&image, "idle_threads=1").unwrap().contains(" -- idle_threads=1\n"));
    }

    use super::*;

    fn stat(median: u64) -> Stat {
        Stat { rounds: 10000, min: median, median, p99: median + 1, max: median + 2 }
    }

    fn side(names: &[(&str, u64)]) -> Side {
        let m: BTreeMap<String, Stat> = names.iter().map(|(n, v)| (n.to_string(), stat(*v))).collect();
        Side { instructions: m.clone(), cycles: m }
    }

    fn report() -> Report {
        Report {
            timestamp: "2026-12-01T12-00-00Z".into(),
            machine: "host Test CPU, 2 cores".into(),
            qemu: "QEMU 7.2.22 (qemu-system-x86_64)".into(),
            accel: "-cpu max".into(),
            inputs: [("kernel.elf".to_string(), "ab".to_string())].into(),
            prism: side(&[("empty", 3), ("null_syscall", 100), ("ipc_call_registers", 1000)]),
            linux: Some(side(&[("empty", 3), ("getppid", 333), ("pipe_48", 12000), ("futex_pingpong", 11000)])),
            linux_missing: None,
            linux_info: vec!["kernel Linux version 6.1.0".into(), "meltdown: Not affected".into()],
        }
    }

    #[test]
    fn rows_follow_the_pairs_with_ratios_and_reasons() {
        let r = report();
        let rows = rows(&r);
        let expected: usize = PAIRS.iter().map(|p| 1 + p.linux.len()).sum();
        assert_eq!(rows.len(), expected);
        assert_eq!((rows[2].side, rows[2].bench.as_str()), ("Prism", "null_syscall"));
        assert_eq!((rows[3].side, rows[3].bench.as_str()), ("Linux", "getppid"));
        assert_eq!(rows[3].ratio, Some(3.33));
        let pipe = rows.iter().find(|r| r.bench == "pipe_48").unwrap();
        assert_eq!(pipe.ratio, Some(12.0));
        assert_eq!(pipe.work, "");
        let eventfd = rows.iter().find(|r| r.bench == "eventfd_pingpong").unwrap();
        assert_eq!(eventfd.instructions, Err("missing".into()));
        let rt = rows.iter().find(|r| r.bench == "rt_pager_frames_4m").unwrap();
        assert_eq!(rt.instructions, Err("missing".into()), "the fixture's guest printed no RT pager line");
        let no_linux = Report { linux: None, linux_missing: Some("no kernel".into()), ..report() };
        assert!(super::rows(&no_linux)
            .iter()
            .filter(|r| r.side == "Linux")
            .all(|r| r.instructions == Err("not run".into())));
    }

    #[test]
    fn renderings_name_machine_qemu_and_every_benchmark() {
        let r = report();
        let text = render_text(&r);
        let md = render_markdown(&r);
        for s in [&text, &md] {
            assert!(s.contains("QEMU 7.2.22") && s.contains("Test CPU") && s.contains("-icount shift=0"), "{s}");
            assert!(s.contains("Linux: Linux version 6.1.0") && s.contains("meltdown: Not affected"), "{s}");
            for p in PAIRS {
                assert!(s.contains(p.prism), "{} missing", p.prism);
            }
        }
        let getppid = text.lines().find(|l| l.contains("getppid")).unwrap();
        assert!(getppid.contains(" 333 ") && getppid.ends_with("3.3x"), "{getppid}");
        let md_row = md.lines().find(|l| l.contains("`null_syscall`")).unwrap();
        assert_eq!(md_row.matches('|').count(), HEAD.len() + 1, "{md_row}");
        let no_linux = Report { linux: None, linux_missing: Some("no kernel at build/linux".into()), ..report() };
        assert!(render_text(&no_linux).contains("Linux: not run (no kernel at build/linux)."));
    }

    #[test]
    fn reports_never_overwrite_and_repeats_are_compared() {
        let dir = std::env::temp_dir().join(format!("prism-bench-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let r = report();
        let a = write_report(&dir, &r).unwrap();
        let b = write_report(&dir, &r).unwrap();
        assert_ne!(a, b);
        assert!(b.ends_with("2026-12-01T12-00-00Z-2"));
        let back: Report = serde_json::from_str(&std::fs::read_to_string(a.join("bench.json")).unwrap()).unwrap();
        assert_eq!(back.prism, r.prism);
        assert!(std::fs::read_to_string(a.join("bench.md")).unwrap().contains("| Linux | `getppid` |"));
        assert_eq!(compare(&dir, &b, &r), Repeat::Identical(a.clone()));
        // Another run with one figure changed differs in exactly that one.
        let mut changed = report();
        changed.linux.as_mut().unwrap().instructions.get_mut("getppid").unwrap().median += 1;
        assert_eq!(compare(&dir, &b, &changed), Repeat::Differs(a.clone(), vec!["Linux getppid".into()]));
        // Different inputs: nothing to compare with.
        let other = Report { inputs: [("kernel.elf".to_string(), "cd".to_string())].into(), ..report() };
        assert_eq!(compare(&dir, &b, &other), Repeat::NoEarlierRun);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn prism_consoles_parse_and_failures_are_errors() {
        let lines: Vec<String> = [
            "bench: TSC 1000000000 Hz; server in its own address space",
            "bench empty rounds=10000 min=3 median=3 p99=3 max=3",
            "thread 0x1 exited, status 0",
            "bench null_syscall rounds=10000 min=90 median=91 p99=91 max=400\r",
            "bench done",
        ]
        .map(String::from)
        .to_vec();
        let f = parse_prism_console(&lines).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].0, "null_syscall");
        assert_eq!(f[1].1.median, 91);
        assert!(parse_prism_console(&lines[..3]).unwrap_err().to_string().contains("did not finish"));
        let mut failed = lines.clone();
        failed.insert(2, "bench ipc_call_registers: failed".into());
        assert!(parse_prism_console(&failed).unwrap_err().to_string().contains("ipc_call_registers: failed"));
    }

    #[test]
    fn every_pair_names_benchmarks_the_sources_print() {
        // The bench task prints most rows; the RT pager prints its own.
        let prism_src = concat!(
            include_str!("../../kernel/tests/driver/src/bin/bench.rs"),
            include_str!("../../rt-pager/src/main.rs")
        );
        let linux_src = include_str!("../../bench-linux/src/main.rs");
        for p in PAIRS {
            if p.pending.is_none() {
                assert!(prism_src.contains(&format!("\"{}\"", p.prism)), "{} not in the bench task", p.prism);
            }
            for l in p.linux {
                assert!(linux_src.contains(&format!("\"{l}\"")), "{l} not in bench-linux");
            }
        }
    }
}
