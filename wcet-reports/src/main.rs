//! `prism`: run, test and debug the kernel under QEMU.

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use sysdesc::Scenario;
use wcet_reports::qemu::{self, Accel, Boot};
use wcet_reports::{description, guest};

#[derive(Parser)]
#[command(version, about = "Run, test and debug the Prism microkernel under QEMU")]
struct Cli {
    /// Where `just build` put kernel.elf, kernel-test.elf and modules/.
    #[arg(long, default_value = "build", global = true)]
    build_dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot a system image (sigma0, the root task and the tasks its description
    /// names) and show the serial console (Ctrl-A X quits).
    Run {
        /// A system description (`.toml`): its `--scenario` is validated, written
        /// to `build/images/wcet/<name>/<scenario>/system` and booted. (To capture
        /// every job of every scenario and write the report: `prism wcet`.)
        #[arg(conflicts_with = "system")]
        description: Option<PathBuf>,
        /// The scenario of DESCRIPTION to boot.
        #[arg(long, default_value = "partitioned", value_parser = scenario_name, requires = "description")]
        scenario: Scenario,
        /// The compact system description (a file called `system`).
        #[arg(long, default_value = DEFAULT_SYSTEM)]
        system: PathBuf,
        /// Extra words for the kernel command line.
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Quit once this many seconds have passed (0: run until Ctrl-A X).
        #[arg(long, default_value_t = 0)]
        seconds: u64,
    },
    /// Run the in-guest test suite under TCG; ends with `N passed, N failed`.
    Test {
        /// Seconds before a hung guest is killed and counted as failed.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Only boots whose name or test contains this string.
        #[arg(long)]
        filter: Option<String>,
        /// Also boot this GRUB ISO (from `just iso`) and check it.
        #[arg(long)]
        iso: Option<PathBuf>,
        /// Also run the cache-model tests and the complete boot under this
        /// qemu-system-x86_64 (repeatable; `just test` passes the one `just setup` fetched).
        #[arg(long)]
        also_qemu: Vec<PathBuf>,
    },
    /// Boot a GRUB ISO under TCG and check that the kernel and sigma0 come up.
    BootIso { iso: PathBuf },
    /// Write a bootable GRUB ISO (BIOS and UEFI) of a system image.
    Iso {
        /// The compact system description (a file called `system`).
        system: PathBuf,
        /// The ISO to write.
        #[arg(short, long, default_value = "build/prism.iso")]
        out: PathBuf,
    },
    /// Start QEMU halted with a GDB stub on :1234 and print the gdb command.
    Debug,
    /// Print which accelerator `run` would use, and why.
    Accel,
    /// Kernel primitives beside the same work on Linux under the same QEMU (guest
    /// instructions under TCG+icount, TSC cycles under TCG); writes
    /// target/bench/<timestamp>/bench.{json,md}; then the cache-model plugin's speed.
    Bench {
        /// Also measure the cache-model plugin under this qemu-system-x86_64 (repeatable).
        #[arg(long)]
        also_qemu: Vec<PathBuf>,
        /// Only Prism's side (no Linux boot).
        #[arg(long)]
        no_linux: bool,
        /// Skip the cache-model speed runs.
        #[arg(long)]
        no_model_speed: bool,
        /// Where the run folders go.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
        /// Instead: where the instructions of one iteration of this benchmark
        /// go, by function (kernel and bench task), under TCG+icount.
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// Instead: Prism's side alone under TCG+icount with N idle threads
        /// beside the benchmarks' own (each blocked in a receive), to show
        /// which figures grow with the number of threads.
        #[arg(long, value_name = "N", conflicts_with = "profile")]
        idle_threads: Option<usize>,
    },
    /// Check a system description: every error at once, each with file, line, column, key and problem.
    Validate {
        /// The TOML description (e.g. workloads/configs/default.toml).
        description: PathBuf,
        /// Check only this scenario (default: the description as written and every scenario it declares).
        #[arg(long, value_parser = scenario_name)]
        scenario: Option<Scenario>,
        #[command(flatten)]
        checks: Checks,
    },
    /// Check one scenario of a system description and write its compact form (the `system` boot module).
    System {
        /// The TOML description.
        description: PathBuf,
        /// The scenario to write (`base`: the description as written).
        #[arg(long, value_parser = scenario_name, default_value = "base")]
        scenario: Scenario,
        /// Where to write the compact form.
        #[arg(short, long)]
        out: PathBuf,
        #[command(flatten)]
        checks: Checks,
    },
    /// Decode the kernel's defmt log (COM2) of the last `run`.
    Defmt {
        /// The captured COM2 bytes.
        #[arg(default_value = "build/defmt.bin")]
        file: PathBuf,
    },
    /// Run the WCET scenarios (alone, shared, partitioned) and write the report.
    ///
    /// Under QEMU (mode model, kvm or tcg); with `--synthetic N` or
    /// `--replay DIR` on synthetic or earlier captured data.
    Wcet(report_cli::WcetArgs),
    /// Rebuild the report of a capture or report folder (no QEMU), in a new folder.
    Report(report_cli::ReportArgs),
    /// Read job records from a serial device or a file (hardware booted from the ISO).
    Capture(report_cli::CaptureArgs),
    /// Two reports side by side.
    Compare(report_cli::CompareArgs),
    /// Fuzz the kernel from ring 3: random system calls with boundary values
    /// from an unprivileged and a privileged task, ring-3 exceptions, FPU
    /// checks, the kernel's invariants after every batch (TCG+icount, so a
    /// seed replays exactly).
    Fuzz {
        /// How long to fuzz (default 60 s; 3600 s for --replay).
        seconds: Option<u64>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Run this seed again: the same calls in the same order, up to its failure.
        #[arg(long, value_name = "SEED", conflicts_with = "seed")]
        replay: Option<u64>,
        /// Stop after this many calls (0: when the time is up).
        #[arg(long, default_value_t = 0)]
        calls: u64,
        /// Print every call from this number on, before it is made.
        #[arg(long, value_name = "CALL")]
        trace_from: Option<u64>,
        /// Show the guest console.
        #[arg(long)]
        verbose: bool,
        /// Go on after wrong results and list the distinct failures at the end
        /// (until the time is up, or the kernel stops or hangs).
        #[arg(long)]
        keep_going: bool,
    },
}

mod report_cli;

/// The image `run`, `debug` and `wcet` boot unless told otherwise.
const DEFAULT_SYSTEM: &str = "build/images/default/system";

/// The boot modules and kernel command line of a system image.
fn image(build: &std::path::Path, system: &std::path::Path) -> Result<(Vec<String>, String)> {
    let img = wcet_reports::image::of(build, system)?;
    Ok((img.module_args(), img.cmdline))
}

/// What `validate` and `system` check beyond the file.
#[derive(clap::Args)]
struct Checks {
    /// Directory the binaries must be in (e.g. build/modules); without it they are not checked.
    #[arg(long)]
    modules: Option<PathBuf>,
    /// Report a binary missing from --modules as a warning instead of an error.
    #[arg(long)]
    allow_missing_binaries: bool,
    /// Guest RAM the partitions' memory is checked against (MiB).
    #[arg(long, default_value_t = 128)]
    ram_mib: u64,
}

impl Checks {
    fn options(self) -> description::Options {
        description::Options {
            modules: self.modules,
            allow_missing_binaries: self.allow_missing_binaries,
            ram: self.ram_mib << 20,
        }
    }
}

fn scenario_name(s: &str) -> Result<Scenario, String> {
    Scenario::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.as_str()).collect();
        format!("`{s}` is not a scenario ({})", names.join(", "))
    })
}

/// The machine the figures came from, for every printed table.
fn host() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("host {cpu}, {cores} cores")
}

/// `prism bench`: both sides under both accelerators, the table, the run folder.
fn bench(build: &std::path::Path, no_linux: bool, out: &std::path::Path) -> Result<()> {
    use wcet_reports::{bench as b, linux};
    let q = qemu::Qemu::selected();
    let steps = if no_linux { 2 } else { 4 };
    eprintln!("prism bench: {}; 1/{steps}: Prism under TCG+icount (guest instructions) ...", q.describe());
    let prism_i = b::run_prism(build, Accel::TcgIcount, &q, None, &[])?;
    eprintln!("prism bench: 2/{steps}: Prism under TCG (TSC cycles) ...");
    let prism_c = b::run_prism(build, Accel::Tcg, &q, None, &[])?;
    let mut inputs = std::collections::BTreeMap::new();
    for f in ["kernel.elf", "modules/sigma0", "modules/roottask", "modules/bench"] {
        inputs.insert(f.to_string(), b::digest(&build.join(f))?);
    }
    inputs.insert(b::IMAGE.to_string(), b::digest(std::path::Path::new(b::IMAGE))?);
    let (mut linux_side, mut linux_missing, mut linux_info) = (None, None, Vec::new());
    match (no_linux, linux::kernel(build)) {
        (true, _) => linux_missing = Some("--no-linux".to_string()),
        (false, Err(e)) => {
            eprintln!("prism bench: Linux side skipped: {e:#}");
            linux_missing = Some(format!("{e:#}"));
        }
        (false, Ok(k)) => {
            eprintln!("prism bench: 3/4: Linux ({}) under TCG+icount ...", k.display());
            let li = linux::run(build, &k, Accel::TcgIcount, &q)?;
            eprintln!("prism bench: 4/4: Linux under TCG ...");
            let lc = linux::run(build, &k, Accel::Tcg, &q)?;
            inputs.insert("linux kernel".into(), b::digest(&k)?);
            inputs.insert(linux::INIT.into(), b::digest(&build.join(linux::INIT))?);
            linux_side = Some(b::Side { instructions: b::to_map(&li.figures), cycles: b::to_map(&lc.figures) });
            linux_info = li.info;
        }
    }
    let accel = format!(
        "1 vCPU, {} MiB; instructions: `{}`; cycles: `{}`",
        b::MEMORY_MIB,
        Accel::TcgIcount.args().join(" "),
        Accel::Tcg.args().join(" ")
    );
    let report = b::Report {
        timestamp: chrono::Utc::now().format("%Y-%m-%dT%H-%M-%SZ").to_string(),
        machine: host(),
        qemu: q.describe(),
        accel,
        inputs,
        prism: b::Side { instructions: b::to_map(&prism_i), cycles: b::to_map(&prism_c) },
        linux: linux_side,
        linux_missing,
        linux_info,
    };
    println!("{}", b::render_text(&report));
    let dir = b::write_report(out, &report)?;
    println!("prism bench: wrote {0}/bench.json and {0}/bench.md", dir.display());
    match b::compare(out, &dir, &report) {
        b::Repeat::NoEarlierRun => println!("prism bench: no earlier run with the same inputs to compare with"),
        b::Repeat::Identical(p) => {
            println!("prism bench: instruction counts identical to the earlier run {} (same inputs)", p.display())
        }
        b::Repeat::Differs(p, names) => println!(
            "prism bench: instruction counts DIFFER from the earlier run {} with the same inputs: {}",
            p.display(),
            names.join(", ")
        ),
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let kernel = cli.build_dir.join("kernel.elf");
    let root = cli.build_dir.join("modules/sigma0").display().to_string();
    let cache = cli.build_dir.join("accel");
    match cli.cmd {
        Cmd::Run { description, scenario, system, cmdline, seconds } => {
            let system = match description {
                Some(d) => {
                    let src = description::Source::read(&d)?;
                    let (system, _, desc) = report_cli::scenario_image(&cli.build_dir, &src, scenario)?;
                    eprintln!(
                        "prism: {} ({scenario}) -> {}: {} partition(s), {} task(s)",
                        d.display(),
                        system.display(),
                        desc.partitions.len(),
                        desc.tasks.len()
                    );
                    system
                }
                None => system,
            };
            let (accel, why) = qemu::choose_accel(&kernel, &root, &cache)?;
            eprintln!(
                "prism: {}, accelerator {accel} ({why}); booting {}",
                qemu::Qemu::selected().describe(),
                system.display()
            );
            let mut b = Boot::new(&kernel, accel);
            let (modules, kcmd) = image(&cli.build_dir, &system)?;
            b.cmdline = format!("{kcmd} {cmdline}").trim().to_string();
            b.modules = modules;
            let defmt_bin = cli.build_dir.join("defmt.bin");
            b.defmt_out = Some(defmt_bin.clone());
            if seconds > 0 {
                let o = b.run_captured(Duration::from_secs(seconds), None)?;
                for (t, l) in &o.lines {
                    println!("[{:7.3}] {l}", t.as_secs_f64());
                }
                println!("---- kernel defmt log (COM2, timestamps in TSC ticks) ----");
                for l in qemu::decode_defmt(&kernel, &defmt_bin)? {
                    println!("{l}");
                }
                return Ok(());
            }
            eprintln!("prism: serial console follows; quit with Ctrl-A X");
            eprintln!("prism: the kernel's defmt log goes to {}; decode it with `prism defmt`", defmt_bin.display());
            let status = b.command().status()?;
            if !status.success() && status.code() != Some(qemu::EXIT_PASS) {
                bail!("qemu exited with {status}");
            }
        }
        Cmd::Iso { system, out } => {
            let img = wcet_reports::image::of(&cli.build_dir, &system)?;
            wcet_reports::image::write_iso(&cli.build_dir, &img, std::path::Path::new("kernel/grub.cfg"), &out)?;
            let size = std::fs::metadata(&out).map(|m| m.len() >> 20).unwrap_or(0);
            eprintln!(
                "iso: {} ({size} MiB) boots {} with {} module(s)",
                out.display(),
                system.display(),
                img.modules.len()
            );
        }
        Cmd::BootIso { iso } => {
            let (results, o) = guest::run_iso(&iso, None, Duration::from_secs(60))?;
            for (t, l) in &o.lines {
                println!("[{:7.3}] {l}", t.as_secs_f64());
            }
            if results.iter().any(|r| !r.ok) {
                bail!("the ISO did not boot the kernel and sigma0 (console above)");
            }
            println!(
                "boot-iso: GRUB loaded the kernel and sigma0 ran ({} {accel} in {:.1} s)",
                qemu::Qemu::selected().describe(),
                o.elapsed.as_secs_f64(),
                accel = Accel::Tcg
            );
        }
        Cmd::Test { timeout, filter, iso, also_qemu } => {
            let (mut passed, mut failed) = (0, 0);
            let mut boots: Vec<guest::BootRun> = Vec::new();
            for b in guest::BOOTS {
                if filter.as_deref().is_some_and(|f| !b.name.contains(f) && !b.test.contains(f)) {
                    continue;
                }
                let dir = cli.build_dir.clone();
                boots.push(Box::new(move || guest::run_boot(b, &dir, Duration::from_secs(timeout))));
            }
            for img in guest::IMAGES {
                if filter.as_deref().is_some_and(|f| !format!("image::{}", img.name).contains(f)) {
                    continue;
                }
                let dir = cli.build_dir.clone();
                boots.push(Box::new(move || guest::run_image(img, &dir, Duration::from_secs(timeout))));
            }
            let qemus: Vec<qemu::Qemu> =
                std::iter::once(qemu::Qemu::selected()).chain(also_qemu.iter().map(qemu::Qemu::at)).collect();
            for (i, q) in qemus.iter().enumerate() {
                println!("note: QEMU {} under test: {}", i + 1, q.describe());
                if filter.as_deref().is_none_or(|f| "model::cache_model".contains(f)) {
                    let (dir, q) = (cli.build_dir.clone(), q.clone());
                    boots.push(Box::new(move || guest::run_cache_model(&dir, Duration::from_secs(timeout), &q)));
                }
                let img = guest::complete_boot();
                if i > 0 && filter.as_deref().is_none_or(|f| format!("image::{}", img.name).contains(f)) {
                    let (dir, q, tag) = (cli.build_dir.clone(), q.clone(), guest::qemu_test_tag(q)?);
                    boots
                        .push(Box::new(move || guest::run_image_on(img, &dir, Duration::from_secs(timeout), &q, &tag)));
                }
            }
            if filter.as_deref().is_none_or(|f| "fuzz".contains(f)) {
                let dir = cli.build_dir.clone();
                boots.push(Box::new(move || wcet_reports::fuzz::suite_run(&dir)));
            }
            if let Some(iso) = iso {
                let iso2 = iso.clone();
                boots.push(Box::new(move || guest::run_iso(&iso, None, Duration::from_secs(timeout))));
                if std::path::Path::new(guest::OVMF).exists() {
                    boots
                        .push(Box::new(move || guest::run_iso(&iso2, Some(guest::OVMF), Duration::from_secs(timeout))));
                } else {
                    println!("note: {} missing (package ovmf): UEFI boot of the ISO not tested", guest::OVMF);
                }
            }
            for run in boots {
                let (results, o) = run()?;
                for r in &results {
                    if r.ok {
                        println!("test {} ... ok", r.name);
                        passed += 1;
                    } else {
                        println!("test {} ... FAILED: {}", r.name, r.detail);
                        failed += 1;
                    }
                }
                if results.iter().any(|r| !r.ok) {
                    println!("---- last serial output ----\n{}\n----", o.tail(25));
                }
                if let Some(t) = o.time_of("sigma0: root pager up") {
                    println!(
                        "note: boot to root task: {:.3} s wall clock under TCG (QEMU start to first root-task line)",
                        t.as_secs_f64()
                    );
                }
            }
            println!("{passed} passed, {failed} failed");
            if failed > 0 || passed == 0 {
                std::process::exit(1);
            }
        }
        Cmd::Debug => {
            let mut b = Boot::new(&kernel, Accel::Tcg);
            (b.modules, b.cmdline) = image(&cli.build_dir, std::path::Path::new(DEFAULT_SYSTEM))?;
            b.extra = vec!["-s".into(), "-S".into()];
            eprintln!("prism: QEMU waits for GDB on localhost:1234. In another terminal:");
            eprintln!(
                "  gdb -ex 'set architecture i386:x86-64' -ex 'file {}' -ex 'target remote localhost:1234' -ex 'hbreak kstart' -ex continue",
                kernel.display()
            );
            b.command().status()?;
        }
        Cmd::Validate { description, scenario, checks } => {
            if !description::validate_command(&description, scenario, &checks.options())? {
                std::process::exit(1);
            }
        }
        Cmd::System { description, scenario, out, checks } => {
            if !description::system_command(&description, scenario, &out, &checks.options())? {
                std::process::exit(1);
            }
        }
        Cmd::Defmt { file } => {
            for l in qemu::decode_defmt(&kernel, &file)? {
                println!("{l}");
            }
        }
        Cmd::Bench { also_qemu, no_linux, no_model_speed, out, profile, idle_threads } => {
            if let Some(n) = idle_threads {
                let q = qemu::Qemu::selected();
                eprintln!("prism bench: Prism with {n} idle threads under TCG+icount, {} ...", q.describe());
                println!("guest instructions, TCG+icount, {}, {n} idle threads, {}:", q.describe(), host());
                for (name, s) in wcet_reports::bench::run_prism_idle(&cli.build_dir, &q, n)? {
                    println!("{name:<28} median {:>8}  p99 {:>8}  max {:>8}", s.median, s.p99, s.max);
                }
                return Ok(());
            }
            if let Some(name) = profile {
                eprintln!("prism bench: profiling {name} under TCG+icount with the profile plugin ...");
                print!("{}", wcet_reports::profile::run(&cli.build_dir, &name, &qemu::Qemu::selected())?);
                return Ok(());
            }
            bench(&cli.build_dir, no_linux, &out)?;
            if no_model_speed {
                return Ok(());
            }
            println!("\nCache-model plugin speed (TCG+icount, `host` profile, one load per line), {}:", host());
            for q in std::iter::once(qemu::Qemu::selected()).chain(also_qemu.iter().map(qemu::Qemu::at)) {
                eprintln!("prism bench: cache-model speed under {} ...", q.describe());
                let figures = wcet_reports::bench::model_speed(&cli.build_dir, &q)?;
                for f in figures.iter().filter(|f| f.plugin) {
                    let bare = figures.iter().find(|b| !b.plugin && b.name == f.name).map_or(0.0, |b| b.seconds);
                    println!(
                        "  {:<22} {:<12} {:>10} loads in {:6.2} s = {:5.1} M simulated loads/s (without the plugin {:5.2} s)",
                        format!("QEMU {}", q.version()?),
                        f.name,
                        f.loads,
                        f.seconds,
                        f.loads as f64 / f.seconds / 1e6,
                        bare
                    );
                }
            }
        }
        Cmd::Fuzz { seconds, seed, replay, calls, trace_from, verbose, keep_going } => {
            let o = wcet_reports::fuzz::Options {
                seed: replay.unwrap_or(seed),
                calls,
                seconds: seconds.unwrap_or(if replay.is_some() { 3600 } else { 60 }),
                trace_from,
                verbose: verbose || trace_from.is_some(),
                keep_going,
            };
            eprintln!(
                "prism fuzz: seed {} for {} s{} under TCG+icount ...",
                o.seed,
                o.seconds,
                if calls > 0 { format!(" or {calls} calls") } else { String::new() }
            );
            let r = wcet_reports::fuzz::run(&cli.build_dir, &o)?;
            if r.verdict != wcet_reports::fuzz::Verdict::Clean {
                println!("---- last guest console lines ----\n{}\n----", r.tail.join("\n"));
            }
            println!("{}", r.summary());
            println!("(machine: {})", host());
            if keep_going {
                println!("{} distinct failure(s):", r.distinct.len());
                for (why, call, n) in &r.distinct {
                    println!("  first at call {call:>8}, {n:>6} time(s): {why}");
                }
            }
            if r.verdict != wcet_reports::fuzz::Verdict::Clean {
                let call = match &r.verdict {
                    wcet_reports::fuzz::Verdict::Failed { call, .. }
                    | wcet_reports::fuzz::Verdict::KernelStopped { call, .. }
                    | wcet_reports::fuzz::Verdict::Hung { call, .. } => *call,
                    wcet_reports::fuzz::Verdict::Clean => None,
                };
                let from = call.map_or(String::new(), |c| format!(" --trace-from {}", c.saturating_sub(20)));
                println!("replay: just fuzz --replay {}{from}", r.seed);
                std::process::exit(1);
            }
        }
        Cmd::Accel => {
            let (accel, why) = qemu::choose_accel(&kernel, &root, &cache)?;
            println!("{accel} ({why})");
        }
        Cmd::Report(a) => report_cli::report(a)?,
        Cmd::Capture(a) => report_cli::capture(a)?,
        Cmd::Compare(a) => report_cli::compare(a)?,
        Cmd::Wcet(a) => report_cli::wcet(a)?,
    }
    Ok(())
}
