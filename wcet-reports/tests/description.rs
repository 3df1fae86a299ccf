//! System descriptions: malformed ones each give their specific error (key,
//! problem, line), every error is reported at once, and the compact form
//! of a valid one reads back equal.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use sysdesc::{Ref, Role, Scenario};
use wcet_reports::description::{self, check, check_every, Diagnostic, Options, Severity, Source};

/// A valid description; every case below changes it a little.
const BASE: &str = r#"[system]
name = "t"

[kernel]
kmem = "16MiB"
timeslice = "10ms"

[cache]
size = "1MiB"
ways = 16

[[partition]]
name = "rt"
colors = "0-7"
memory = "4MiB"

[[partition]]
name = "ts"
colors = "8-15"
memory = "16MiB"

[[pager]]
name = "rt-pager"
partition = "rt"
priority = 50

[[pager]]
name = "ts-pager"
partition = "ts"
priority = 30

[[task]]
name = "matmul"
role = "rt"
pager = "rt-pager"
priority = 40
budget = "2ms"
period = "5ms"
jobs = 10

[[task]]
name = "bw"
role = "ts"
pager = "ts-pager"
priority = 10
"#;

fn source(text: &str) -> Source {
    Source { path: PathBuf::from("test.toml"), text: text.to_string() }
}

fn errors(src: &Source, scenario: Scenario, opts: &Options) -> Vec<Diagnostic> {
    check(src, scenario, opts).diagnostics.into_iter().filter(|d| d.severity == Severity::Error).collect()
}

/// `BASE` with `from` (which must occur once) replaced by `to`.
fn edit(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "`{from}` must occur once in BASE");
    BASE.replacen(from, to, 1)
}

#[test]
fn the_base_is_valid_and_compacts() {
    let src = source(BASE);
    let c = check(&src, Scenario::Base, &Options::default());
    assert_eq!(c.errors(), 0, "{:?}", c.diagnostics);
    let d = c.description.unwrap();
    let text = d.compact().unwrap();
    let sys = sysdesc::parse(&text).unwrap();
    assert_eq!(sys, d.system().unwrap());
    let mm = sys.task("matmul").unwrap();
    assert_eq!((mm.role, mm.prio, mm.budget, mm.period), (Role::Rt, 40, 2_000_000, 5_000_000));
    let rt = mm.rt.unwrap();
    assert_eq!((rt.period, rt.deadline, rt.jobs), (5_000_000, 5_000_000, 10), "deadline defaults to the period");
    assert_eq!(mm.pager, Ref::Task(sys.task_index("rt-pager").unwrap()));
    assert_eq!(mm.stack, 64 << 10, "stack defaults to 64 KiB");
    assert_eq!(sys.task("rt-pager").unwrap().partition, Some(0));
    assert_eq!(sys.kernel(), sysdesc::Kernel { kmem: 16 << 20, timeslice: 10_000_000 });
    let llc = sys.llc().unwrap();
    assert_eq!(
        (llc.level, llc.size, llc.ways, llc.line_size),
        (3, 1 << 20, 16, 64),
        "level and line default to 3 and 64"
    );
}

/// The line `needle` (which must occur once) is on.
fn line_of(text: &str, needle: &str) -> usize {
    assert_eq!(text.matches(needle).count(), 1, "`{needle}`");
    text[..text.find(needle).unwrap()].matches('\n').count() + 1
}

/// (what, description, scenario, key, words of the message, line).
type Case = (&'static str, String, Scenario, &'static str, &'static str, usize);

fn cases() -> Vec<Case> {
    use Scenario::*;
    let scen = |patch: &str| format!("{BASE}\n[scenario.shared]\n{patch}\n");
    // The first line of the appended scenario table's body.
    let scen_line = BASE.lines().count() + 3;
    // 2 + 7 partitions on the host profile's 512 colours; 4 + 21 tasks.
    let many_parts = edit("size = \"1MiB\"\nways = 16", "profile = \"host\"")
        .replacen("\"0-7\"", "\"0-127\"", 1)
        .replacen("\"8-15\"", "\"128-255\"", 1)
        + &(0..7).map(|i| format!("[[partition]]\nname = \"p{i}\"\ncolors = \"{}\"\n", 256 + i)).collect::<String>();
    let many_tasks: String = (0..21)
        .map(|i| {
            format!("[[task]]\nname = \"t{i}\"\nbinary = \"bw\"\nrole = \"ts\"\npager = \"ts-pager\"\npriority = 1\n")
        })
        .collect::<Vec<_>>()
        .join("\n");
    // 4 + 10 binaries: one more than the module table holds.
    let many_bins = format!(
        "{BASE}\n{}",
        (0..10)
            .map(|i| format!(
                "[[task]]\nname = \"t{i}\"\nbinary = \"b{i}\"\nrole = \"ts\"\npager = \"ts-pager\"\npriority = 1\n"
            ))
            .collect::<String>()
    );
    vec![
        (
            "too many binaries",
            many_bins.clone(),
            Base,
            "task.t9.binary",
            "more than 13 distinct binaries",
            line_of(&many_bins, "binary = \"b9\""),
        ),
        ("TOML syntax", edit("priority = 10\n", "priority = \n"), Base, "", "TOML:", 45),
        ("unknown section", edit("[kernel]", "[kernal]"), Base, "kernal", "did you mean `kernel`", 4),
        ("no [system]", edit("[system]\nname = \"t\"\n", ""), Base, "system", "missing section [system]", 1),
        (
            "unknown key",
            edit("timeslice = \"10ms\"", "timslice = \"10ms\""),
            Base,
            "kernel.timslice",
            "did you mean `timeslice`",
            6,
        ),
        ("missing system name", edit("name = \"t\"\n", ""), Base, "system.name", "missing key `name`", 1),
        ("bad system name", edit("name = \"t\"", "name = \"a b\""), Base, "system.name", "holds ' '", 2),
        ("kmem not whole MiB", edit("kmem = \"16MiB\"", "kmem = \"1500KiB\""), Base, "kernel.kmem", "whole MiB", 5),
        (
            "decimal unit",
            edit("kmem = \"16MiB\"", "kmem = \"16MB\""),
            Base,
            "kernel.kmem",
            "write the binary unit, MiB",
            5,
        ),
        (
            "time without unit",
            edit("timeslice = \"10ms\"", "timeslice = 10"),
            Base,
            "kernel.timeslice",
            "needs its unit",
            6,
        ),
        (
            "unknown time unit",
            edit("timeslice = \"10ms\"", "timeslice = \"10min\""),
            Base,
            "kernel.timeslice",
            "unknown unit `min`",
            6,
        ),
        (
            "unknown profile",
            edit("size = \"1MiB\"\nways = 16", "profile = \"laptop\""),
            Base,
            "cache.profile",
            "unknown profile `laptop`",
            9,
        ),
        (
            "profile and geometry",
            edit("ways = 16", "ways = 16\nprofile = \"host\""),
            Base,
            "cache.profile",
            "either `profile` or the geometry",
            11,
        ),
        ("not a cache", edit("ways = 16", "ways = 3"), Base, "cache.size", "not a cache", 9),
        (
            "colour beyond geometry",
            edit("colors = \"8-15\"", "colors = \"8-16\""),
            Base,
            "partition.ts.colors",
            "beyond the geometry's 16 colors",
            19,
        ),
        (
            "malformed colours",
            edit("colors = \"8-15\"", "colors = \"8-15,,\""),
            Base,
            "partition.ts.colors",
            "stray comma",
            19,
        ),
        (
            "colours overlap",
            edit("colors = \"8-15\"", "colors = \"7-15\""),
            Base,
            "partition.ts.colors",
            "overlap (both own color 7) (colours are disjoint unless",
            19,
        ),
        (
            "memory beyond colours",
            edit("memory = \"16MiB\"", "memory = \"100MiB\""),
            Base,
            "partition.ts.memory",
            "less than the 104857600 bytes",
            20,
        ),
        (
            "duplicate partition",
            edit("colors = \"8-15\"", "colors = \"8-11\"") + "\n[[partition]]\nname = \"rt\"\ncolors = \"12-15\"\n",
            Base,
            "partition.rt.name",
            "used twice (first on line 13)",
            BASE.lines().count() + 3,
        ),
        (
            "partition as a table",
            // One partition, written as a table; the TS pager binds to none.
            edit("[[partition]]\nname = \"ts\"\ncolors = \"8-15\"\nmemory = \"16MiB\"\n", "")
                .replacen("partition = \"ts\"\n", "", 1)
                .replacen("[[partition]]", "[partition]", 1),
            Base,
            "partition",
            "array of tables",
            12,
        ),
        (
            "unresolved partition",
            edit("partition = \"rt\"", "partition = \"rtt\""),
            Base,
            "pager.rt-pager.partition",
            "no partition is named `rtt`; did you mean `rt`?",
            24,
        ),
        (
            "unresolved pager",
            edit("pager = \"rt-pager\"", "pager = \"rt-pagr\""),
            Base,
            "task.matmul.pager",
            "no pager is named `rt-pagr`; did you mean `rt-pager`?",
            35,
        ),
        (
            "pager is a task",
            edit("pager = \"ts-pager\"", "pager = \"matmul\""),
            Base,
            "task.bw.pager",
            "`matmul` is a task, not a pager",
            44,
        ),
        (
            "client above its pager",
            edit("priority = 40", "priority = 55"),
            Base,
            "task.matmul.priority",
            "55 is not below the priority 50 of its pager `rt-pager`",
            36,
        ),
        (
            "RT not above TS",
            edit("priority = 40", "priority = 5"),
            Base,
            "task.matmul.priority",
            "not above the pager of TS tasks `ts-pager` (priority 30)",
            36,
        ),
        (
            "priority too high",
            edit("priority = 50", "priority = 64"),
            Base,
            "pager.rt-pager.priority",
            "above the highest priority 63",
            25,
        ),
        (
            "priority not a u8",
            edit("priority = 50", "priority = -1"),
            Base,
            "pager.rt-pager.priority",
            "-1 is negative",
            25,
        ),
        (
            "mcp without control",
            edit("priority = 50", "priority = 50\nmcp = 40"),
            Base,
            "pager.rt-pager.mcp",
            "set `control = true`",
            26,
        ),
        (
            "budget above period",
            edit("budget = \"2ms\"", "budget = \"6ms\""),
            Base,
            "task.matmul.budget",
            "budget 6 ms is more than its period 5 ms",
            37,
        ),
        (
            "deadline after period",
            edit("jobs = 10", "jobs = 10\ndeadline = \"5001us\""),
            Base,
            "task.matmul.deadline",
            "deadline 5001 us is after the period 5 ms",
            40,
        ),
        ("no jobs", edit("jobs = 10", "jobs = 0"), Base, "task.matmul.jobs", "at least 1 job", 39),
        ("RT without jobs", edit("jobs = 10\n", ""), Base, "task.matmul.jobs", "missing key `jobs`", 32),
        (
            "jobs on a TS task",
            edit("priority = 10", "priority = 10\njobs = 3"),
            Base,
            "task.bw.jobs",
            "`jobs` is for RT tasks",
            46,
        ),
        (
            "budget without period",
            edit("priority = 10", "priority = 10\nbudget = \"1ms\""),
            Base,
            "task.bw.budget",
            "needs `budget_period`",
            46,
        ),
        (
            "zero time slice",
            edit("priority = 10", "priority = 10\ntimeslice = \"0ms\""),
            Base,
            "task.bw.timeslice",
            "must be above 0",
            46,
        ),
        (
            "pager role in [[task]]",
            edit("role = \"ts\"", "role = \"pager\""),
            Base,
            "task.bw.role",
            "pagers go in [[pager]]",
            43,
        ),
        ("unknown role", edit("role = \"ts\"", "role = \"batch\""), Base, "task.bw.role", "unknown role \"batch\"", 43),
        (
            "duplicate task name",
            edit("name = \"bw\"", "name = \"matmul\""),
            Base,
            "task.matmul.name",
            "already the name of a pager or task (line 33)",
            42,
        ),
        ("reserved task name", edit("name = \"bw\"", "name = \"sigma0\""), Base, "task.sigma0.name", "is reserved", 42),
        (
            "unresolved handler",
            edit("priority = 10", "priority = 10\nhandler = \"matmull\""),
            Base,
            "task.bw.handler",
            "did you mean `matmul`?",
            46,
        ),
        (
            "unresolved allow entry",
            edit("priority = 10", "priority = 10\nallow = [\"ts-pager\", \"rot\"]"),
            Base,
            "task.bw.allow",
            "no pager or task is named `rot`",
            46,
        ),
        (
            "argument with a space",
            edit("priority = 10", "priority = 10\nargs = [\"ws=1 n=2\"]"),
            Base,
            "task.bw.args",
            "each argument is one word",
            46,
        ),
        (
            "heap not in pages",
            edit("priority = 10", "priority = 10\nheap = 5000"),
            Base,
            "task.bw.heap",
            "not a whole number of 4 KiB pages",
            46,
        ),
        (
            "pager key on a pager",
            edit("priority = 30", "priority = 30\npager = \"root\""),
            Base,
            "pager.ts-pager.pager",
            "unknown key `pager`",
            31,
        ),
        (
            "too many partitions",
            many_parts.clone(),
            Base,
            "partition.p6",
            "more than 8 partitions",
            line_of(&many_parts, "name = \"p6\""),
        ),
        (
            "too many tasks",
            format!("{BASE}\n{many_tasks}"),
            Base,
            "task.t20",
            "more than 24 pagers and tasks",
            line_of(&format!("{BASE}\n{many_tasks}"), "name = \"t20\"") - 1,
        ),
        (
            "unknown scenario",
            format!("{BASE}\n[scenario.stress]\n"),
            Base,
            "scenario.stress",
            "unknown scenario `stress`",
            scen_line - 1,
        ),
        ("scenario not declared", BASE.to_string(), Alone, "", "no [scenario.alone]", 1),
        (
            "scenario shares by accident",
            scen("partition.ts.colors = \"0-15\""),
            Shared,
            "partition.ts.colors",
            "overlap",
            scen_line,
        ),
        (
            "scenario patches nothing",
            scen("task.nope.jobs = 3"),
            Shared,
            "scenario.shared.task.nope",
            "no task is named `nope`",
            scen_line,
        ),
        (
            "scenario renames",
            scen("task.bw.name = \"bw2\""),
            Shared,
            "scenario.shared.task.bw.name",
            "cannot rename",
            scen_line,
        ),
        (
            "scenario drops nothing",
            scen("drop = [\"bw\", \"zz\"]"),
            Shared,
            "scenario.shared.drop",
            "drops `zz`",
            scen_line,
        ),
        (
            "scenario patches an unknown section",
            scen("tasks.bw.priority = 3"),
            Shared,
            "scenario.shared.tasks",
            "did you mean `task`?",
            scen_line,
        ),
        (
            "scenario drops a pager still in use",
            scen("drop = [\"ts-pager\"]"),
            Shared,
            "task.bw.pager",
            "no pager is named `ts-pager`",
            44,
        ),
        (
            "scenario value malformed",
            scen("task.matmul.jobs = \"many\""),
            Shared,
            "task.matmul.jobs",
            "expected an integer, found a string",
            scen_line,
        ),
    ]
}

#[test]
fn malformed_descriptions_give_their_specific_error() {
    let cases = cases();
    assert_eq!(cases.len(), 55, "the table above");
    for (what, text, scenario, key, words, line) in &cases {
        let src = source(text);
        let errs = errors(&src, *scenario, &Options::default());
        let shown: Vec<String> = errs.iter().map(|d| d.render_line(&src)).collect();
        assert_eq!(errs.len(), 1, "{what}: expected one error, got {shown:#?}");
        let e = &errs[0];
        assert_eq!(e.key, *key, "{what}: {shown:?}");
        assert!(e.message.contains(words), "{what}: `{}` lacks `{words}`", e.message);
        assert_eq!(e.line(&src), *line, "{what}: {shown:?}");
    }
}

#[test]
fn every_error_is_reported_at_once_with_file_line_and_column() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/descriptions/many-errors.toml");
    let src = Source::read(&path).unwrap();
    let (diags, descs) = check_every(&src, &Options::default());
    assert!(descs.is_empty());
    let errs: Vec<(usize, &str)> =
        diags.iter().filter(|d| d.severity == Severity::Error).map(|d| (d.line(&src), d.key.as_str())).collect();
    assert_eq!(
        errs,
        [
            (5, "kernel.kmem"),
            (6, "kernel.timslice"),
            (16, "partition.ts.colors"),
            (20, "pager.rt-pager.partition"),
            (27, "task.matmul.priority"), // below its pager
            (27, "task.matmul.priority"), // not above the TS task
            (28, "task.matmul.budget"),
            (30, "task.matmul.deadline"),
            (31, "task.matmul.jobs"),
            (36, "task.bw.pager"),
            (38, "task.bw.heap"),
            (42, "partition.rt.colours"),
        ]
    );
    // The scenario's error names its scenario; the others hold everywhere.
    let scoped: Vec<&Diagnostic> =
        diags.iter().filter(|d| d.severity == Severity::Error && !d.scenarios.is_empty()).collect();
    assert_eq!(scoped.len(), 1);
    assert_eq!(scoped[0].scenarios, [Scenario::Shared]);
    let shown = diags.iter().find(|d| d.key == "kernel.kmem").unwrap().render(&src);
    assert_eq!(
        shown,
        format!(
            "{}:5:8: error: kernel.kmem: \"3MB\": write the binary unit, MiB\n    5 | kmem = \"3MB\"\n      |        ^^^^^",
            path.display()
        )
    );
    let scoped = scoped[0].render_line(&src);
    assert!(scoped.ends_with("(scenario shared)"), "{scoped}");
}

#[test]
fn an_incomplete_entry_still_has_its_other_keys_checked() {
    let src = source(&edit("role = \"ts\"\n", "").replacen("priority = 10", "priority = 10\nprio = 3", 1));
    let errs = errors(&src, Scenario::Base, &Options::default());
    let got: Vec<(&str, usize)> = errs.iter().map(|e| (e.key.as_str(), e.line(&src))).collect();
    assert_eq!(got, [("task.bw.role", 41), ("task.bw.prio", 45)], "{errs:?}");
    assert!(errs[1].message.contains("did you mean `priority`?"));
}

#[test]
fn binaries_are_checked_against_the_modules_directory() {
    let dir = std::env::temp_dir().join(format!("prism-modules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for b in ["rt-pager", "ts-pager", "matmul"] {
        std::fs::write(dir.join(b), b"\x7fELF").unwrap();
    }
    let src = source(&edit("name = \"bw\"", "name = \"bw\"\nbinary = \"bandwidth\""));
    let opts = Options { modules: Some(dir.clone()), ..Options::default() };
    let errs = errors(&src, Scenario::Base, &opts);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].key.as_str(), errs[0].line(&src)), ("task.bw.binary", 43));
    assert!(errs[0].message.contains("binary `bandwidth` is not in"));
    // Allowed missing: a warning, and the description is still written.
    let lenient = Options { allow_missing_binaries: true, ..opts };
    let c = check(&src, Scenario::Base, &lenient);
    assert!(c.description.is_some());
    assert!(c.diagnostics.iter().any(|d| d.severity == Severity::Warning && d.key == "task.bw.binary"));
    // No such directory: the check is skipped, and says so.
    let gone = Options { modules: Some(dir.join("nope")), ..Options::default() };
    let c = check(&src, Scenario::Base, &gone);
    assert!(c.description.is_some());
    assert!(c.diagnostics.iter().any(|d| d.severity == Severity::Note && d.message.contains("binaries not checked")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn warnings_do_not_stop_a_description() {
    let text = edit("priority = 10", "priority = 10\nallow = [\"ts-pager\", \"bw2\"]")
        + "\n[[task]]\nname = \"bw2\"\nrole = \"ts\"\npager = \"ts-pager\"\npriority = 10\n";
    let src = source(&text);
    let c = check(&src, Scenario::Base, &Options::default());
    assert_eq!(c.errors(), 0, "{:?}", c.diagnostics);
    let w: Vec<&Diagnostic> = c.diagnostics.iter().filter(|d| d.severity == Severity::Warning).collect();
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("priority inversion"), "{}", w[0].message);
    let sys_text = c.description.unwrap().compact().unwrap();
    let sys = sysdesc::parse(&sys_text).unwrap();
    let bw = sys.task("bw").unwrap();
    let peers: Vec<&str> = bw.allow.unwrap().iter().map(|p| sys.peer_name(p)).collect();
    assert_eq!(peers, ["ts-pager", "bw2"]);
}

fn default_toml() -> Source {
    Source::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/configs/default.toml")).unwrap()
}

#[test]
fn the_default_description_is_valid_in_every_scenario() {
    let src = default_toml();
    assert_eq!(description::scenarios(&src), [Scenario::Alone, Scenario::Shared, Scenario::Partitioned]);
    let (diags, descs) = check_every(&src, &Options::default());
    assert!(diags.iter().all(|d| d.severity == Severity::Note), "{diags:?}");
    assert_eq!(descs.len(), 4, "base and three scenarios");
    for d in &descs {
        let text = d.compact().unwrap();
        assert_eq!(sysdesc::parse(&text).unwrap(), d.system().unwrap(), "{}", d.scenario);
    }
    let get = |s| sysdesc_of(&descs, s);
    let part = get(Scenario::Partitioned);
    let parts: Vec<(&str, &str, u64)> = part.partitions().iter().map(|p| (p.name, p.colors, p.memory)).collect();
    assert_eq!(parts, [("rt", "0,2,4,6,8,10,12,14", 4 << 20), ("ts", "1,3,5,7,9,11,13,15", 16 << 20)]);
    assert_eq!(part.llc().map(|l| (l.level, l.size, l.ways)), Some((2, 1 << 20, 16)), "the embedded profile's L2");
    let mm = part.task("matmul").unwrap();
    assert_eq!(mm.rt.map(|r| (r.period, r.deadline, r.jobs)), Some((250_000, 250_000, 1000)));
    assert_eq!(part.task("bandwidth").unwrap().role, Role::Ts);
    let alone = get(Scenario::Alone);
    assert!(alone.task("bandwidth").is_none() && alone.task("ts-pager").is_none());
    assert!(alone.task("matmul").is_some());
    let shared = get(Scenario::Shared);
    assert!(shared.shared_colors());
    assert!(shared.partitions().iter().all(|p| p.colors == "0-15"));
    assert!(!part.shared_colors());
}

/// The compact form of scenario `s`, owned (by leaking: tests only).
fn sysdesc_of(descs: &[description::Description], s: Scenario) -> sysdesc::System<'static> {
    let d = descs.iter().find(|d| d.scenario == s).unwrap();
    sysdesc::parse(Box::leak(d.compact().unwrap().into_boxed_str())).unwrap()
}

#[test]
fn units() {
    assert_eq!(description::parse_size("4MiB"), Ok(4 << 20));
    assert_eq!(description::parse_size("512 KiB"), Ok(512 << 10));
    assert_eq!(description::parse_size("7"), Ok(7));
    assert!(description::parse_size("4 parsecs").unwrap_err().contains("unknown unit `parsecs`"));
    assert!(description::parse_size("MiB").is_err());
    assert!(description::parse_size("99999999999GiB").unwrap_err().contains("too large"));
    assert_eq!(description::parse_time("250us"), Ok(250_000));
    assert_eq!(description::parse_time("250µs"), Ok(250_000));
    assert_eq!(description::parse_time("5ms"), Ok(5_000_000));
    assert_eq!(description::parse_time("2s"), Ok(2_000_000_000));
    assert_eq!(description::parse_time("800ns"), Ok(800));
    assert!(description::parse_time("5").unwrap_err().contains("needs its unit"));
}

/// A generated description: `rt` RT tasks under one pager, `ts` TS tasks
/// under another, priorities in the order the rules want.
fn generated(rt: &[(u64, u64, u32, u64)], ts: &[(u64, u64)], shared: bool) -> String {
    let mut s = String::from("[system]\nname = \"gen\"\n[cache]\nprofile = \"embedded\"\n");
    s += "[[partition]]\nname = \"rt\"\ncolors = \"0-7\"\nmemory = \"1MiB\"\n";
    s += &format!(
        "[[partition]]\nname = \"ts\"\ncolors = \"{}\"\nmemory = \"2MiB\"\n",
        if shared { "0-15" } else { "8-15" }
    );
    s += "[[pager]]\nname = \"rp\"\npartition = \"rt\"\npriority = 60\nmcp = 59\ncontrol = true\n";
    s += "[[pager]]\nname = \"tp\"\npartition = \"ts\"\npriority = 20\n";
    for (i, (period_us, budget_us, jobs, heap_pages)) in rt.iter().enumerate() {
        s += &format!(
            "[[task]]\nname = \"r{i}\"\nbinary = \"matmul\"\nrole = \"rt\"\npager = \"rp\"\npriority = {}\nperiod = \"{period_us}us\"\nbudget = \"{budget_us}us\"\njobs = {jobs}\nheap = {}\nargs = [\"i={i}\", \"n=64\"]\n",
            30 + i,
            heap_pages * 4096
        );
    }
    for (i, (slice_ms, stack_kib)) in ts.iter().enumerate() {
        s += &format!(
            "[[task]]\nname = \"s{i}\"\nrole = \"ts\"\npager = \"tp\"\npriority = {}\ntimeslice = \"{slice_ms}ms\"\nstack = \"{}KiB\"\nallow = [\"tp\"]\n",
            1 + i,
            stack_kib * 4
        );
    }
    if shared {
        s += "[scenario.shared]\nsystem.shared_colors = true\n";
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn valid_descriptions_compact_and_read_back_equal(
        rt in proptest::collection::vec((1u64..100_000, 1u64..100, 1u32..10_000, 0u64..64), 0..8),
        ts in proptest::collection::vec((1u64..100, 1u64..64), 0..8),
        shared in any::<bool>(),
    ) {
        // Budgets within their periods.
        let rt: Vec<_> = rt.into_iter().map(|(p, b, j, h)| (p, b.min(p), j, h)).collect();
        let src = source(&generated(&rt, &ts, shared));
        let scenario = if shared { Scenario::Shared } else { Scenario::Base };
        let c = check(&src, scenario, &Options::default());
        prop_assert_eq!(c.errors(), 0, "{:?}", c.diagnostics);
        let d = c.description.unwrap();
        let text = d.compact().unwrap();
        let sys = sysdesc::parse(&text).unwrap();
        prop_assert_eq!(&sys, &d.system().unwrap());
        prop_assert_eq!(sys.tasks().len(), 2 + rt.len() + ts.len());
        prop_assert_eq!(sys.shared_colors(), shared);
        for (i, (p, b, j, h)) in rt.iter().enumerate() {
            let t = sys.task(&format!("r{i}")).unwrap();
            prop_assert_eq!(t.rt.map(|r| (r.period, r.deadline, r.jobs)), Some((p * 1000, p * 1000, *j)));
            prop_assert_eq!((t.budget, t.period, t.heap, t.bin), (b * 1000, p * 1000, h * 4096, "matmul"));
            let first = format!("i={i}");
            prop_assert_eq!(t.args().collect::<Vec<_>>(), [first.as_str(), "n=64"]);
        }
        for (i, (slice, stack)) in ts.iter().enumerate() {
            let t = sys.task(&format!("s{i}")).unwrap();
            prop_assert_eq!((t.timeslice, t.stack, t.pager), (slice * 1_000_000, stack * 4096, Ref::Task(1)));
            prop_assert_eq!(t.allow.unwrap().iter().collect::<Vec<_>>(), [sysdesc::Peer::Task(1)]);
        }
    }
}
