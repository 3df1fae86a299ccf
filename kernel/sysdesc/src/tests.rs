use super::*;
use cache_color::partition::SpecError;
use cache_color::GeometryError;
use proptest::prelude::*;

const HEAD: &str =
    "prism-system 1\nsystem name=t scenario=shared shared_colors=1\nkernel kmem=16777216 timeslice=10000000\n";
const PAGER: &str = "task name=pg bin=rt-pager role=pager partition=rt pager=root prio=50 mcp=49 control=1 handler=root timeslice=0 budget=0 period=0 heap=0 stack=65536";
const RT: &str = "task name=mm bin=matmul role=rt pager=pg prio=40 mcp=0 control=0 handler=root timeslice=0 budget=2000000 period=5000000 heap=65536 stack=65536 rt_period=5000000 deadline=5000000 jobs=200";

fn good() -> String {
    format!(
        "{HEAD}llc level=2 size=1048576 ways=16 line=64  # the L2\n\n# partitions\npartition name=rt colors=0-7 memory=4194304\n{PAGER}\n{RT} allow=pg,root,sigma0 -- n=64  seed=1 # not a comment\n"
    )
}

#[test]
fn parses_every_field() {
    let text = good();
    let s = parse(&text).unwrap();
    assert_eq!((s.name(), s.scenario(), s.shared_colors()), ("t", Scenario::Shared, true));
    assert_eq!(s.sharing(), cache_color::Sharing::Allowed);
    assert_eq!(s.kernel(), Kernel { kmem: 16 << 20, timeslice: 10_000_000 });
    let llc = s.llc().unwrap();
    assert_eq!((llc.level, llc.size, llc.ways, llc.line_size, llc.colors()), (2, 1 << 20, 16, 64, 16));
    assert_eq!(s.partitions(), &[PartitionSpec { name: "rt", colors: "0-7", memory: 4 << 20 }]);
    assert_eq!(s.partition_index("rt"), Some(0));
    let pg = s.task("pg").unwrap();
    assert_eq!(
        (pg.role, pg.partition, pg.pager, pg.prio, pg.mcp, pg.control),
        (Role::Pager, Some(0), Ref::Root, 50, 49, true)
    );
    assert_eq!(pg.allow, None);
    assert_eq!(s.task_index("mm"), Some(1));
    let mm = s.task("mm").unwrap();
    assert_eq!(mm.pager, Ref::Task(0));
    assert_eq!(mm.handler, Ref::Root);
    assert_eq!((mm.budget, mm.period, mm.heap, mm.stack), (2_000_000, 5_000_000, 65536, 65536));
    assert_eq!(mm.rt, Some(Rt { period: 5_000_000, deadline: 5_000_000, jobs: 200 }));
    let allow = mm.allow.unwrap();
    assert_eq!(allow.iter().collect::<Vec<_>>(), [Peer::Task(0), Peer::Root, Peer::Sigma0]);
    assert!(!allow.contains(Peer::Task(1)));
    assert_eq!(mm.args, "n=64  seed=1 # not a comment");
    assert_eq!(mm.args().collect::<Vec<_>>(), ["n=64", "seed=1", "#", "not", "a", "comment"]);
    assert_eq!(s.pagers().map(|(i, _)| i).collect::<Vec<_>>(), [0]);
    assert_eq!(s.clients(Ref::Task(0)).map(|(_, t)| t.name).collect::<Vec<_>>(), ["mm"]);
    assert_eq!(s.clients(Ref::Root).map(|(_, t)| t.name).collect::<Vec<_>>(), ["pg"]);
    assert!(s.task("root").is_none());
}

#[test]
fn writes_the_canonical_form_and_reads_it_back() {
    let text = good();
    let s = parse(&text).unwrap();
    let mut out = String::new();
    write(&s, &mut out).unwrap();
    assert_eq!(
        out,
        format!(
            "{HEAD}llc level=2 size=1048576 ways=16 line=64\npartition name=rt colors=0-7 memory=4194304\n{PAGER}\n{RT} allow=pg,root,sigma0 -- n=64  seed=1 # not a comment\n"
        )
    );
    assert_eq!(parse(&out).unwrap(), s);
}

#[test]
fn empty_allow_list_is_not_no_list() {
    let text = format!("{HEAD}partition name=rt colors=0-7 memory=0\n{PAGER} allow=\n");
    let s = parse(&text).unwrap();
    assert_eq!(s.tasks()[0].allow, Some(Allow::NONE));
    let mut out = String::new();
    write(&s, &mut out).unwrap();
    assert!(out.contains(" allow=\n"), "{out}");
    assert_eq!(parse(&out).unwrap(), s);
}

#[test]
fn order_of_items_is_free_and_references_may_point_forward() {
    let text = format!(
        "prism-system 1\n{}\npartition name=rt colors=0-7 memory=0\nkernel kmem=1048576 timeslice=1\nsystem name=x scenario=base shared_colors=0\n{PAGER}\n",
        RT.replace("handler=root", "handler=pg")
    );
    let s = parse(&text).unwrap();
    assert_eq!(s.tasks()[0].pager, Ref::Task(1));
    assert_eq!(s.tasks()[0].handler, Ref::Task(1));
}

fn err(text: &str) -> Error<'_> {
    parse(text).unwrap_err()
}

/// Every kind of error, each on the line it names.
#[test]
fn malformed_lines_give_their_error_and_line() {
    let p = |t: &str| format!("{HEAD}partition name=rt colors=0-7 memory=0\n{t}\n");
    let cases: Vec<(String, usize, ErrorKind<'static>)> = vec![
        ("".into(), 1, ErrorKind::BadHeader),
        ("prism-system 2\n".into(), 1, ErrorKind::BadHeader),
        (p("colour x=1"), 5, ErrorKind::UnknownItem { item: "colour" }),
        (p("partition name=ts colors"), 5, ErrorKind::NotKeyValue { word: "colors" }),
        (p("partition name=ts colours=1 memory=0"), 5, ErrorKind::UnknownKey { item: "partition", key: "colours" }),
        (p("partition name=ts name=tt colors=1 memory=0"), 5, ErrorKind::DuplicateKey { key: "name" }),
        (p("partition name=ts colors=8"), 5, ErrorKind::MissingKey { item: "partition", key: "memory" }),
        (
            p("partition name=ts colors=8 memory=4M"),
            5,
            ErrorKind::BadValue { key: "memory", value: "4M", expected: "a decimal number" },
        ),
        (
            p("partition name=ts colors=8 memory=+4"),
            5,
            ErrorKind::BadValue { key: "memory", value: "+4", expected: "a decimal number" },
        ),
        (
            p("partition name=ts colors=8 memory=99999999999999999999"),
            5,
            ErrorKind::BadValue { key: "memory", value: "99999999999999999999", expected: "a decimal number" },
        ),
        (p("partition name=ts colors=8 memory=0 -- x"), 5, ErrorKind::Arguments { item: "partition" }),
        (p("kernel kmem=1 timeslice=1"), 5, ErrorKind::DuplicateItem { item: "kernel", first: 3 }),
        (p("partition name=rt colors=8 memory=0"), 5, ErrorKind::DuplicateName { name: "rt", first: 4 }),
        (
            p("partition name=r/t colors=8 memory=0"),
            5,
            ErrorKind::BadName { key: "name", name: "r/t", problem: NameProblem::BadChar('/') },
        ),
        (
            p("partition name=ts colors=8-7 memory=0"),
            5,
            ErrorKind::BadColors { colors: "8-7", error: SpecError::DescendingRange { token: "8-7" } },
        ),
        (
            p("llc level=2 size=1000 ways=3 line=64"),
            5,
            ErrorKind::BadGeometry {
                error: GeometryError::Inconsistent { level: 2, size: 1000, ways: 3, sets: 5, line_size: 64 },
            },
        ),
        (p("system name=x scenario=later shared_colors=0"), 5, ErrorKind::DuplicateItem { item: "system", first: 2 }),
        (p(&PAGER.replace("prio=50", "prio=64")), 5, ErrorKind::OutOfRange { key: "prio", value: 64, max: 63 }),
        (
            p(&PAGER.replace("control=1", "control=yes")),
            5,
            ErrorKind::BadValue { key: "control", value: "yes", expected: "0 or 1" },
        ),
        (
            p(&PAGER.replace("role=pager", "role=driver")),
            5,
            ErrorKind::BadValue { key: "role", value: "driver", expected: "pager, rt, ts or test" },
        ),
        (
            p(&PAGER.replace("name=pg", "name=root")),
            5,
            ErrorKind::BadName { key: "name", name: "root", problem: NameProblem::Reserved },
        ),
        (p(&PAGER.replace("partition=rt", "partition=ts")), 5, ErrorKind::Unresolved { key: "partition", name: "ts" }),
        (p(&PAGER.replace("pager=root", "pager=pg")), 5, ErrorKind::SelfReference { key: "pager" }),
        (
            p(&PAGER.replace("handler=root", "handler=nobody")),
            5,
            ErrorKind::Unresolved { key: "handler", name: "nobody" },
        ),
        (p(&PAGER.replace("role=pager", "role=ts")), 5, ErrorKind::WrongRole { key: "partition", role: Role::Ts }),
        (p(&format!("{PAGER} jobs=3")), 5, ErrorKind::WrongRole { key: "jobs", role: Role::Pager }),
        (p(&RT.replace(" jobs=200", "")), 5, ErrorKind::MissingKey { item: "task", key: "jobs" }),
        (
            p(&format!("{PAGER}\n{}", RT.replace("pager=pg", "pager=mm2"))),
            6,
            ErrorKind::Unresolved { key: "pager", name: "mm2" },
        ),
        (
            p(&format!("{PAGER}\n{RT}\n{}", RT.replace("name=mm", "name=mm2").replace("pager=pg", "pager=mm"))),
            7,
            ErrorKind::NotAPager { name: "mm" },
        ),
        (p(&format!("{PAGER}\n{RT} allow=pg,nobody")), 6, ErrorKind::Unresolved { key: "allow", name: "nobody" }),
        (p(&format!("{PAGER}\n{RT} allow=pg,root,pg")), 6, ErrorKind::DuplicatePeer { name: "pg" }),
        (
            p(&format!("{PAGER}\n{RT} allow=pg,,root")),
            6,
            ErrorKind::BadValue { key: "allow", value: "pg,,root", expected: "names separated by commas" },
        ),
        (p(&format!("{PAGER}\n{PAGER}")), 6, ErrorKind::DuplicateName { name: "pg", first: 5 }),
        (p(&format!("{PAGER} -- {}", "x".repeat(MAX_ARGS + 1))), 5, ErrorKind::ArgsTooLong { len: MAX_ARGS + 1 }),
        (
            "prism-system 1\nsystem name=t scenario=base shared_colors=0\n".into(),
            2,
            ErrorKind::MissingItem { item: "kernel" },
        ),
    ];
    for (text, line, kind) in &cases {
        assert_eq!(err(text), Error { line: *line, kind: *kind }, "input:\n{text}");
        assert!(err(text).to_string().starts_with(&format!("line {line}: ")));
    }
}

#[test]
fn capacities_are_enforced_on_the_line_that_exceeds_them() {
    let parts: String = (0..=MAX_PARTITIONS).map(|i| format!("partition name=p{i} colors={i} memory=0\n")).collect();
    let e = err(Box::leak(format!("{HEAD}{parts}").into_boxed_str()));
    assert_eq!(
        e,
        Error { line: 4 + MAX_PARTITIONS, kind: ErrorKind::TooMany { item: "partitions", max: MAX_PARTITIONS } }
    );
    let tasks: String = (0..=MAX_TASKS)
        .map(|i| PAGER.replace("name=pg", &format!("name=t{i}")).replace(" partition=rt", "") + "\n")
        .collect();
    let e = err(Box::leak(format!("{HEAD}{tasks}").into_boxed_str()));
    assert_eq!(e, Error { line: 4 + MAX_TASKS, kind: ErrorKind::TooMany { item: "tasks", max: MAX_TASKS } });
    let bins: String = (0..=MAX_BINARIES)
        .map(|i| {
            PAGER
                .replace("name=pg", &format!("name=t{i}"))
                .replace("bin=rt-pager", &format!("bin=b{i}"))
                .replace(" partition=rt", "")
                + "\n"
        })
        .collect();
    let e = err(Box::leak(format!("{HEAD}{bins}").into_boxed_str()));
    assert_eq!(e, Error { line: 4 + MAX_BINARIES, kind: ErrorKind::TooMany { item: "binaries", max: MAX_BINARIES } });
    let s = parse(Box::leak(format!("{HEAD}{}", &bins[..bins.rfind("task ").unwrap()]).into_boxed_str())).unwrap();
    assert_eq!(s.binaries().count(), MAX_BINARIES);
    let long = "n".repeat(MAX_NAME + 1);
    let t = format!("{HEAD}{}\n", PAGER.replace("bin=rt-pager", &format!("bin={long}")).replace(" partition=rt", ""));
    assert!(matches!(err(&t).kind, ErrorKind::BadName { key: "bin", problem: NameProblem::TooLong, .. }));
}

#[test]
fn colours_are_checked_against_the_llc_when_there_is_one() {
    let t = format!("{HEAD}partition name=rt colors=0-31 memory=0\n");
    assert!(parse(&t).is_ok(), "without an llc line any colour below MAX_COLORS is fine");
    let t = format!("{HEAD}partition name=rt colors=0-31 memory=0\nllc level=2 size=1048576 ways=16 line=64\n");
    assert!(matches!(
        err(&t),
        Error { line: 4, kind: ErrorKind::BadColors { error: SpecError::BeyondGeometry { .. }, .. } }
    ));
}

#[test]
fn names_and_allow_sets() {
    assert_eq!(check_name("rt-pager.v2_1"), Ok(()));
    assert_eq!(check_name(""), Err(NameProblem::Empty));
    assert_eq!(check_name("a b"), Err(NameProblem::BadChar(' ')));
    assert_eq!(check_task_name("sigma0"), Err(NameProblem::Reserved));
    assert_eq!(check_name("sigma0"), Ok(()));
    let mut a = Allow::NONE;
    assert!(a.is_empty());
    assert!(a.insert(Peer::Task(MAX_TASKS - 1)));
    assert!(!a.insert(Peer::Task(MAX_TASKS)));
    assert!(a.contains(Peer::Task(MAX_TASKS - 1)) && !a.contains(Peer::Task(MAX_TASKS)) && !a.contains(Peer::Root));
    assert_eq!(Role::from_name("ts"), Some(Role::Ts));
    assert_eq!(Scenario::from_name("partitioned"), Some(Scenario::Partitioned));
    assert_eq!(Scenario::from_name("Partitioned"), None);
}

/// An owned system for the property test (the `System` borrows from it).
#[derive(Debug, Clone)]
struct Owned {
    name: String,
    scenario: Scenario,
    shared: bool,
    kernel: Kernel,
    llc: Option<CacheLevel>,
    partitions: Vec<(String, String, u64)>,
    tasks: Vec<OwnedTask>,
}

#[derive(Debug, Clone)]
struct OwnedTask {
    name: String,
    bin: String,
    role: Role,
    /// Index into the partitions, or an arbitrary pick (only pagers keep it).
    partition: Option<usize>,
    pager: Option<usize>,
    handler: Option<usize>,
    numbers: [u64; 5],
    prio: u8,
    mcp: u8,
    control: bool,
    rt: Rt,
    allow: Option<(u32, bool, bool)>,
    args: String,
}

impl Owned {
    fn system(&self) -> System<'_> {
        let mut s = System::new(&self.name, self.scenario, self.shared, self.kernel, self.llc);
        for (name, colors, memory) in &self.partitions {
            s.add_partition(PartitionSpec { name, colors, memory: *memory }).unwrap();
        }
        let n = self.tasks.len();
        let pagers: Vec<usize> = (0..n).filter(|&i| self.tasks[i].role == Role::Pager).collect();
        for (i, t) in self.tasks.iter().enumerate() {
            // References must resolve: a pager is a pager other than the task,
            // a handler any other task.
            let pick = |k: Option<usize>, among: &[usize]| {
                let among: Vec<usize> = among.iter().copied().filter(|&j| j != i).collect();
                match k {
                    Some(k) if !among.is_empty() => Ref::Task(among[k % among.len()]),
                    _ => Ref::Root,
                }
            };
            let all: Vec<usize> = (0..n).collect();
            let allow = t.allow.map(|(mask, root, sigma0)| {
                let mut a = Allow::NONE;
                (0..n).filter(|j| mask & (1 << j) != 0).for_each(|j| assert!(a.insert(Peer::Task(j))));
                if root {
                    a.insert(Peer::Root);
                }
                if sigma0 {
                    a.insert(Peer::Sigma0);
                }
                a
            });
            let [timeslice, budget, period, heap, stack] = t.numbers;
            s.add_task(Task {
                name: &t.name,
                bin: &t.bin,
                role: t.role,
                partition: t
                    .partition
                    .filter(|_| t.role == Role::Pager && !self.partitions.is_empty())
                    .map(|p| p % self.partitions.len()),
                pager: pick(t.pager, &pagers),
                prio: t.prio,
                mcp: t.mcp,
                control: t.control,
                handler: pick(t.handler, &all),
                timeslice,
                budget,
                period,
                heap,
                stack,
                rt: (t.role == Role::Rt).then_some(t.rt),
                allow,
                irq: t.prio % 3 == 0,
                ports: {
                    let mut p = Ports::NONE;
                    for (base, log2) in [(0x3f8, 3), (0x40, 2), (0xf4, 0)].into_iter().take(t.mcp as usize % 4) {
                        assert!(p.insert(base, log2));
                    }
                    p
                },
                spawns: {
                    let mut sp = Spawns::NONE;
                    if t.role == Role::Pager && t.prio % 2 == 0 {
                        assert!(sp.insert(&t.bin));
                    }
                    sp
                },
                args: &t.args,
            })
            .unwrap();
        }
        s
    }
}

fn word() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,12}"
}

fn colors(n: u32) -> impl Strategy<Value = String> {
    proptest::collection::btree_set(0..n, 1..6).prop_map(|set| {
        let mut cs = cache_color::ColorSet::EMPTY;
        for c in set {
            cs.insert(c).unwrap();
        }
        cs.to_string()
    })
}

fn owned() -> impl Strategy<Value = Owned> {
    let llc = prop_oneof![
        Just(None),
        Just(Some(CacheLevel::new(2, cache_color::CacheKind::Unified, 1 << 20, 16, 64))),
        Just(Some(CacheLevel::new(3, cache_color::CacheKind::Unified, 32 << 20, 16, 64))),
    ];
    let task = (
        (
            word(),
            prop::sample::select(vec!["rt-pager", "ts-pager", "matmul", "bandwidth", "sha", "fft"]),
            prop::sample::select(Role::ALL.to_vec()),
        ),
        (any::<Option<usize>>(), any::<Option<usize>>(), any::<Option<usize>>()),
        (prop::array::uniform5(any::<u64>()), 0..=MAX_PRIORITY, 0..=ROOT_MCP, any::<bool>()),
        (any::<u64>(), any::<u64>(), any::<u32>()),
        any::<Option<(u32, bool, bool)>>(),
        proptest::collection::vec("[!-~]{1,8}", 0..4),
    )
        .prop_map(
            |((name, bin, role), (partition, pager, handler), (numbers, prio, mcp, control), rt, allow, args)| {
                OwnedTask {
                    name,
                    bin: bin.to_string(),
                    role,
                    partition,
                    pager,
                    handler,
                    numbers,
                    prio,
                    mcp,
                    control,
                    rt: Rt { period: rt.0, deadline: rt.1, jobs: rt.2 },
                    allow,
                    args: args.join(" "),
                }
            },
        );
    (
        word(),
        prop::sample::select(Scenario::ALL.to_vec()),
        any::<bool>(),
        (any::<u64>(), any::<u64>()),
        llc,
        proptest::collection::vec((word(), any::<u64>()), 0..=MAX_PARTITIONS),
        proptest::collection::vec(task, 0..=MAX_TASKS),
    )
        .prop_flat_map(|(name, scenario, shared, (kmem, timeslice), llc, parts, tasks)| {
            let n = llc.map_or(64, |l: CacheLevel| l.colors() as u32);
            let specs = proptest::collection::vec(colors(n), parts.len());
            (Just((name, scenario, shared, Kernel { kmem, timeslice }, llc, parts, tasks)), specs)
        })
        .prop_map(|((name, scenario, shared, kernel, llc, parts, mut tasks), specs)| {
            // Unique names: a suffix per index.
            let partitions =
                parts.into_iter().zip(specs).enumerate().map(|(i, ((n, m), c))| (format!("{n}{i}"), c, m)).collect();
            for (i, t) in tasks.iter_mut().enumerate() {
                t.name = format!("{}{i}", t.name);
            }
            Owned { name, scenario, shared, kernel, llc, partitions, tasks }
        })
}

proptest! {
    #[test]
    fn written_systems_parse_back_equal(o in owned()) {
        let s = o.system();
        let mut text = String::new();
        write(&s, &mut text).unwrap();
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&back, &s);
        // And the text of a parsed system is what the writer writes.
        let mut again = String::new();
        write(&back, &mut again).unwrap();
        prop_assert_eq!(again, text);
    }
}

#[test]
fn irq_and_ports_round_trip_and_bad_ports_are_refused() {
    let base = "prism-system 1\nsystem name=s scenario=base shared_colors=0\nkernel kmem=1 timeslice=1\n";
    let task = "task name=d bin=b role=test pager=root prio=1 mcp=0 control=0 handler=root timeslice=0 budget=0 period=0 heap=0 stack=0";
    let text = format!("{base}{task} irq=1 ports=0x3f8:8,0x40:4 -- a b\n");
    let sys = parse(&text).unwrap();
    let t = sys.task("d").unwrap();
    assert!(t.irq);
    assert_eq!(t.ports.iter().collect::<Vec<_>>(), [(0x3f8, 3), (0x40, 2)]);
    assert!(
        t.ports.covers(0x3fd, 0) && t.ports.covers(0x3f8, 3) && !t.ports.covers(0x3f0, 4) && !t.ports.covers(0x80, 0)
    );
    let mut out = String::new();
    write(&sys, &mut out).unwrap();
    assert_eq!(parse(&out).unwrap(), sys);
    for bad in ["0x3f9:8", "0x3f8:6", "0x3f8", "zz:1", "0x10000:1", "1:1,2:1,4:1,8:1,16:1"] {
        let text = format!("{base}{task} ports={bad}\n");
        let e = parse(&text).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadValue { key: "ports", .. }), "{bad}: {e:?}");
    }
    let text = format!("{base}{task} irq=2\n");
    let e = parse(&text).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::BadValue { key: "irq", .. }), "{e:?}");
}

#[test]
fn pagers_list_what_they_spawn_and_the_image_carries_it() {
    let base = "prism-system 1\nsystem name=s scenario=base shared_colors=0\nkernel kmem=1 timeslice=1\n";
    let fields = "pager=root prio=1 mcp=0 control=1 handler=root timeslice=0 budget=0 period=0 heap=0 stack=0";
    let text = format!("{base}task name=p bin=ts-pager role=pager {fields} spawns=ts-load,other\ntask name=q bin=x role=test {fields}\n");
    let sys = parse(&text).unwrap();
    assert!(sys.task("p").unwrap().spawns.contains("ts-load"));
    assert_eq!(sys.binaries().collect::<Vec<_>>(), ["ts-pager", "x", "ts-load", "other"]);
    let mut out = String::new();
    write(&sys, &mut out).unwrap();
    assert_eq!(parse(&out).unwrap(), sys);
    let text = format!("{base}task name=q bin=x role=test {fields} spawns=y\n");
    let e = parse(&text).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::WrongRole { key: "spawns", .. }), "{e:?}");
}

#[test]
fn send_lists_keep_the_ts_side_off_the_rt_side() {
    let task = |name: &str, role: &str, pager: &str, prio: u8, extra: &str| {
        format!("task name={name} bin=x role={role} pager={pager} prio={prio} mcp=0 control=0 handler=root timeslice=0 budget=0 period=0 heap=0 stack=65536{extra}\n")
    };
    let rt = " rt_period=1000 deadline=1000 jobs=1";
    let text = format!(
        "{HEAD}partition name=rt colors=0-7 memory=0\npartition name=ts colors=8-15 memory=0\n{}{}{}{}{}{}{}{}",
        task("rtp", "pager", "root", 50, " partition=rt"),
        task("tsp", "pager", "root", 30, " partition=ts"),
        task("rt1", "rt", "rtp", 40, rt),
        task("ts1", "ts", "tsp", 10, ""),
        task("ts2", "ts", "tsp", 10, " allow=ts1,rt1,root,sigma0,rtp"),
        task("chk", "test", "root", 35, ""),
        task("rt2", "rt", "rtp", 39, &format!("{rt} allow=rt1")),
        task("ts3", "ts", "root", 10, " allow="),
    );
    let s = parse(&text).unwrap();
    let names = |i: usize| s.send_list(i).map(|l| l.iter().map(|p| s.peer_name(p)).collect::<Vec<_>>());
    let ts: Vec<bool> = (0..s.tasks().len()).map(|i| s.ts_side(i)).collect();
    assert_eq!(ts, [false, true, false, true, true, false, false, true]);
    // No list: every space (the RT pager, RT tasks, test tasks).
    assert_eq!(names(0), None);
    assert_eq!(names(2), None);
    assert_eq!(names(5), None);
    // A TS-side pager: the TS side and test tasks, the root task, sigma0.
    assert_eq!(names(1), Some(vec!["ts1", "ts2", "chk", "ts3", "root", "sigma0"]));
    // A TS task without a list: the TS side and test tasks, nothing else.
    assert_eq!(names(3), Some(vec!["tsp", "ts2", "chk", "ts3"]));
    // With a list: what it names on the TS side only.
    assert_eq!(names(4), Some(vec!["ts1"]));
    assert_eq!(names(7), Some(vec![]));
    // An RT task with a list keeps the root task's services.
    assert_eq!(names(6), Some(vec!["rt1", "root"]));
    assert!(!s.ts_may_send(3, Peer::Root) && !s.ts_may_send(3, Peer::Task(2)) && !s.ts_may_send(3, Peer::Task(0)));
    assert!(s.ts_may_send(1, Peer::Sigma0) && s.ts_may_send(3, Peer::Task(5)));
}
