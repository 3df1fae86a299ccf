//! `prism`: run, test and debug the kernel under QEMU.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use wcet_reports::guest;
use wcet_reports::qemu::{self, Accel, Boot};

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
    /// Boot the kernel with sigma0 and show the serial console (Ctrl-A X quits).
    Run {
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
    },
    /// Boot a GRUB ISO under TCG and check that the kernel and sigma0 come up.
    BootIso { iso: PathBuf },
    /// Start QEMU halted with a GDB stub on :1234 and print the gdb command.
    Debug,
    /// Print which accelerator `run` would use, and why.
    Accel,
    /// IPC benchmarks: TSC cycles under TCG and guest instructions under TCG+icount.
    Bench,
    /// Check a workload config and write its compact form (the `config` boot module).
    Config {
        /// The TOML config.
        file: PathBuf,
        /// Where to write the compact form.
        #[arg(short, long)]
        out: PathBuf,
        /// Guest RAM the partitions are checked against (MiB).
        #[arg(long, default_value_t = 128)]
        ram_mib: u64,
    },
    /// Decode the kernel's defmt log (COM2) of the last `run`.
    Defmt {
        /// The captured COM2 bytes.
        #[arg(default_value = "build/defmt.bin")]
        file: PathBuf,
    },
    /// Run the WCET scenarios (pipeline not built yet: boots and says so).
    Wcet,
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

/// sigma0 (the root task) and, when `just build` made one, the compact
/// boot config.
fn boot_modules(build: &std::path::Path, root: &str) -> Vec<String> {
    let mut m = vec![root.to_string()];
    let cfg = build.join("modules/config");
    if cfg.exists() {
        m.push(cfg.display().to_string());
    }
    m
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

fn main() -> Result<()> {
    let cli = Cli::parse();
    let kernel = cli.build_dir.join("kernel.elf");
    let root = cli.build_dir.join("modules/sigma0").display().to_string();
    let cache = cli.build_dir.join("accel");
    match cli.cmd {
        Cmd::Run { cmdline, seconds } => {
            let (accel, why) = qemu::choose_accel(&kernel, &root, &cache)?;
            eprintln!("prism: accelerator {accel} ({why})");
            let mut b = Boot::new(&kernel, accel);
            b.cmdline = cmdline;
            b.modules = boot_modules(&cli.build_dir, &root);
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
        Cmd::BootIso { iso } => {
            let (results, o) = guest::run_iso(&iso, None, Duration::from_secs(60))?;
            for (t, l) in &o.lines {
                println!("[{:7.3}] {l}", t.as_secs_f64());
            }
            if results.iter().any(|r| !r.ok) {
                bail!("the ISO did not boot the kernel and sigma0 (console above)");
            }
            println!(
                "boot-iso: GRUB loaded the kernel and sigma0 ran ({accel} in {:.1} s)",
                o.elapsed.as_secs_f64(),
                accel = Accel::Tcg
            );
        }
        Cmd::Test { timeout, filter, iso } => {
            let (mut passed, mut failed) = (0, 0);
            let mut boots: Vec<guest::BootRun> = Vec::new();
            for b in guest::BOOTS {
                if filter.as_deref().is_some_and(|f| !b.name.contains(f) && !b.test.contains(f)) {
                    continue;
                }
                let dir = cli.build_dir.clone();
                boots.push(Box::new(move || guest::run_boot(b, &dir, Duration::from_secs(timeout))));
            }
            if filter.as_deref().is_none_or(|f| "model::cache_model".contains(f)) {
                let dir = cli.build_dir.clone();
                boots.push(Box::new(move || guest::run_cache_model(&dir, Duration::from_secs(timeout))));
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
                if let Some(t) = o.time_of("hello from ring 3") {
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
            b.modules = boot_modules(&cli.build_dir, &root);
            b.extra = vec!["-s".into(), "-S".into()];
            eprintln!("prism: QEMU waits for GDB on localhost:1234. In another terminal:");
            eprintln!(
                "  gdb -ex 'set architecture i386:x86-64' -ex 'file {}' -ex 'target remote localhost:1234' -ex 'hbreak kstart' -ex continue",
                kernel.display()
            );
            b.command().status()?;
        }
        Cmd::Config { file, out, ram_mib } => {
            let c = wcet_reports::config::compact(&file, ram_mib << 20)?;
            std::fs::write(&out, &c).with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "config: {} -> {} ({} partition(s))",
                file.display(),
                out.display(),
                c.matches("partition ").count()
            );
        }
        Cmd::Defmt { file } => {
            for l in qemu::decode_defmt(&kernel, &file)? {
                println!("{l}");
            }
        }
        Cmd::Bench => {
            eprintln!("prism bench: run 1/2 under TCG (TSC cycles) ...");
            let cycles = wcet_reports::bench::run(&cli.build_dir, Accel::Tcg)?;
            eprintln!("prism bench: run 2/2 under TCG+icount (TSC = guest instructions) ...");
            let insns = wcet_reports::bench::run(&cli.build_dir, Accel::TcgIcount)?;
            println!(
                "Kernel primitives (IPC: call + reply_wait between two address spaces), QEMU TCG, `-cpu max`, {}:",
                host()
            );
            println!(
                "{:<26} {:>7} | {:>12} {:>12} {:>12} | {:>12} {:>12} {:>12}",
                "benchmark", "rounds", "cyc median", "cyc p99", "cyc max", "insn median", "insn p99", "insn max"
            );
            for c in &cycles {
                let i = insns.iter().find(|i| i.name == c.name);
                let f = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
                println!(
                    "{:<26} {:>7} | {:>12} {:>12} {:>12} | {:>12} {:>12} {:>12}",
                    c.name,
                    c.rounds,
                    c.median,
                    c.p99,
                    c.max,
                    f(i.map(|i| i.median)),
                    f(i.map(|i| i.p99)),
                    f(i.map(|i| i.max))
                );
            }
            println!("cycles: guest TSC under plain TCG (moves between runs); instructions: guest TSC under -icount shift=0 (exact, repeatable).");
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
        Cmd::Wcet => {
            let (accel, why) = qemu::choose_accel(&kernel, &root, &cache)?;
            eprintln!("prism wcet: accelerator {accel} ({why}); booting the kernel with sigma0 ...");
            let mut b = Boot::new(&kernel, accel);
            b.modules = boot_modules(&cli.build_dir, &root);
            let o = b.run_captured(Duration::from_secs(20), Some(&|s: &str| s.contains("all threads ended")))?;
            for (t, l) in &o.lines {
                println!("[{:7.3}] {l}", t.as_secs_f64());
            }
            if o.time_of("hello from ring 3").is_none() {
                bail!("the kernel did not reach the root task; see the console output above");
            }
            println!("prism wcet: the kernel boots and runs sigma0 in ring 3 on {accel}.");
            println!("prism wcet: the WCET pipeline (pagers, workloads, reports) is not built yet; no figures were produced.");
        }
    }
    Ok(())
}
