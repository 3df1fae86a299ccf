//! `prism fuzz`: boots the fuzz image (`kernel/tests/images/fuzz/system`:
//! sigma0, the root task and the fuzz task, `kernel/tests/fuzzer`, driven
//! by the `fuzz` crate) on the test kernel and watches it.
//!
//! The guest prints a progress line per round of batches and a `FAILED`
//! line with the seed and call number on a wrong result. A kernel crash or
//! hang cannot print that, so the host reads the guest's progress word
//! (the number of the call being made, at a physical address the guest
//! prints first) through the QEMU monitor. Runs use TCG with `-icount`,
//! which makes them deterministic: the same seed fails at the same call,
//! and `--replay SEED` reproduces it (with `--trace-from N`, every call
//! from N on is printed before it is made).

use crate::qemu::{Accel, Boot};
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// Stop after this many calls (0: run until `seconds`).
    pub calls: u64,
    pub seconds: u64,
    /// Print every call from this one on.
    pub trace_from: Option<u64>,
    /// Echo the guest console.
    pub verbose: bool,
    /// Go on after a wrong result (the guest reports each and continues):
    /// to count the distinct failures a kernel has.
    pub keep_going: bool,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No failure: all calls made, or the time was up.
    Clean,
    /// The guest found a wrong result, an unexpected exception or a broken
    /// invariant (its own report says which call).
    Failed { call: Option<u64>, why: String },
    /// The kernel stopped (crash) or stopped making progress (hang).
    KernelStopped { call: Option<u64>, why: String },
    /// `at`: where the CPU was (a kernel spin shows a ring-0 RIP).
    Hung { call: Option<u64>, at: String },
}

#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub calls: u64,
    /// Wall-clock time of the whole run, and of the fuzzing in it (from
    /// the guest's first fuzz line to its last progress line).
    pub elapsed: Duration,
    pub fuzzing: Duration,
    pub verdict: Verdict,
    /// The last console lines (for a failure).
    pub tail: Vec<String>,
    /// With `keep_going`: each distinct failure (the guest's report after
    /// the call number), with its first call and how often it came.
    pub distinct: Vec<(String, u64, u64)>,
}

impl Report {
    pub fn calls_per_second(&self) -> f64 {
        self.calls as f64 / self.fuzzing.as_secs_f64().max(1e-9)
    }

    /// One line: calls, rate, where, and the verdict.
    pub fn summary(&self) -> String {
        let head = format!(
            "fuzz: seed {}: {} calls in {:.1} s of fuzzing ({:.0} calls/s wall clock, QEMU TCG+icount on this host)",
            self.seed,
            self.calls,
            self.fuzzing.as_secs_f64(),
            self.calls_per_second()
        );
        let at = |c: &Option<u64>| c.map_or("an unknown call".into(), |c| format!("call {c}"));
        match &self.verdict {
            Verdict::Clean => format!("{head}: no failure"),
            Verdict::Failed { call, why } => format!("{head}: FAILED at {}: {why}", at(call)),
            Verdict::KernelStopped { call, why } => format!("{head}: KERNEL STOPPED at {}: {why}", at(call)),
            Verdict::Hung { call, at: cpu } => format!("{head}: HUNG at {} ({cpu})", at(call)),
        }
    }
}

/// Time without a progress line after which the guest counts as hung (a
/// round takes well under a second on this VM).
const STALL: Duration = Duration::from_secs(20);

/// Reads the 64-bit word at guest-physical `addr` through the monitor.
fn read_phys(sock: &Path, addr: u64) -> Option<u64> {
    let text = monitor(sock, &format!("xp /1gx {addr:#x}"))?;
    let line = text.lines().find(|l| l.contains(": 0x"))?;
    u64::from_str_radix(line.rsplit("0x").next()?.trim(), 16).ok()
}

/// Where the CPU is (RIP, and its privilege level), from the monitor.
fn cpu_at(sock: &Path) -> Option<String> {
    let text = monitor(sock, "info registers")?;
    let rip = parse_after(&text, "RIP=")?;
    let cpl = parse_after(&text, "CPL=").unwrap_or("?");
    Some(format!("rip {rip} cpl {cpl}"))
}

/// One monitor command's output.
fn monitor(sock: &Path, command: &str) -> Option<String> {
    let mut s = UnixStream::connect(sock).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut got = Vec::new();
    let until_prompt = |s: &mut UnixStream, got: &mut Vec<u8>| -> Option<()> {
        let mut b = [0u8; 4096];
        while !String::from_utf8_lossy(got).ends_with("(qemu) ") {
            let n = s.read(&mut b).ok()?;
            if n == 0 {
                return None;
            }
            got.extend_from_slice(&b[..n]);
        }
        Some(())
    };
    until_prompt(&mut s, &mut got)?;
    got.clear();
    s.write_all(format!("{command}\n").as_bytes()).ok()?;
    until_prompt(&mut s, &mut got)?;
    Some(String::from_utf8_lossy(&got).into_owned())
}

fn parse_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_once(key).map(|(_, rest)| rest.split_whitespace().next().unwrap_or(""))
}

/// The fuzz image's description with this run's arguments for the fuzz
/// task, written to `build/fuzz-image/system`.
fn image_for(build: &Path, o: &Options) -> Result<PathBuf> {
    let text = std::fs::read_to_string(IMAGE).with_context(|| format!("reading {IMAGE}"))?;
    let trace = o.trace_from.map_or(String::new(), |t| format!(" trace={t}"));
    let keep = if o.keep_going { " keep=1" } else { "" };
    let args = format!("-- seed={} calls={}{trace}{keep}", o.seed, o.calls);
    let text: Vec<String> = text
        .lines()
        .map(|l| match (l.starts_with("task name=fuzz "), l.split_once(" -- ")) {
            (true, Some((head, _))) => format!("{head} {args}"),
            (true, None) => format!("{l} {args}"),
            _ => l.to_string(),
        })
        .collect();
    let dir = build.join("fuzz-image");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("system");
    std::fs::write(&path, text.join("\n") + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The fuzz image's description (its `fuzz` task's arguments are replaced
/// by each run's).
pub const IMAGE: &str = "kernel/tests/images/fuzz/system";

/// Boots the fuzzer and watches it until it ends, fails or the time is up.
pub fn run(build: &Path, o: &Options) -> Result<Report> {
    let build = &std::fs::canonicalize(build).with_context(|| format!("no build directory {}", build.display()))?;
    let sock: PathBuf = build.join(format!("fuzz-monitor-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let image = crate::image::of(build, &image_for(build, o)?)?;
    let mut boot = Boot::new(build.join("kernel-test.elf"), Accel::TcgIcount);
    // The test kernel (for the KTEST call) going on into the image; the
    // image's kernel pool is small, so that exhaustion is reached.
    boot.cmdline = format!("test=system {}", image.cmdline);
    boot.console = "stdio".into();
    boot.modules = image.module_args();
    boot.extra = vec!["-monitor".into(), format!("unix:{},server,nowait", sock.display())];
    let mut cmd = boot.command();
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().context("cannot start qemu-system-x86_64 (run `just setup`)")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim_end_matches('\r').to_string()).is_err() {
                break;
            }
        }
    });
    let deadline = start + Duration::from_secs(o.seconds);
    let (mut calls, mut progress_addr, mut last_progress) = (0u64, None, Instant::now());
    let mut fuzz_start = None;
    let mut tail: Vec<String> = Vec::new();
    let mut verdict = None;
    let mut failed_call = None;
    let mut next_note = Instant::now() + Duration::from_secs(30);
    let mut distinct: Vec<(String, u64, u64)> = Vec::new();
    let stopped_at = |addr: Option<u64>| addr.and_then(|a| read_phys(&sock, a)).map(|w| w & ((1 << 60) - 1));
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if o.verbose {
                    println!("{line}");
                }
                tail.push(line.clone());
                if tail.len() > 60 {
                    tail.remove(0);
                }
                if let Some(a) = parse_after(&line, "progress word at physical 0x") {
                    progress_addr = u64::from_str_radix(a, 16).ok();
                    fuzz_start = Some(Instant::now());
                } else if let Some((n, _)) = line.strip_prefix("fuzz: ").and_then(|r| r.split_once(" calls ok")) {
                    if let Ok(n) = n.parse::<u64>() {
                        calls = n;
                        last_progress = Instant::now();
                    }
                }
                if o.keep_going && line.contains("fuzz: FAILED seed") && line.contains(" call ") {
                    let call = parse_after(&line, " call ").and_then(|c| c.trim_end_matches(':').parse::<u64>().ok());
                    let sig = line
                        .split_once(": ")
                        .and_then(|(_, r)| r.split_once(": "))
                        .map_or(line.clone(), |(_, r)| r.to_string());
                    match distinct.iter_mut().find(|d| d.0 == sig) {
                        Some(d) => d.2 += 1,
                        None => {
                            eprintln!("fuzz: new failure at call {}: {sig}", call.unwrap_or(0));
                            distinct.push((sig, call.unwrap_or(0), 1));
                        }
                    }
                    failed_call = failed_call.or(call);
                    continue;
                }
                if line.contains("fuzz: FAILED seed") && failed_call.is_none() {
                    failed_call = parse_after(&line, " call ").and_then(|c| c.trim_end_matches(':').parse().ok());
                    verdict = Some(Verdict::Failed { call: failed_call, why: line.clone() });
                    // Let the guest print the rest of its report.
                    std::thread::sleep(Duration::from_millis(500));
                    while let Ok(l) = rx.try_recv() {
                        tail.push(l);
                    }
                    break;
                }
                let hung = line.contains("test no_deadlock ... FAILED");
                if hung {
                    verdict = Some(Verdict::Hung {
                        call: stopped_at(progress_addr),
                        at: cpu_at(&sock).unwrap_or_else(|| "CPU state unknown".into()),
                    });
                    break;
                }
                if line.starts_with("*** kernel") || (line.starts_with("*** exception") && line.contains("kernel mode"))
                {
                    std::thread::sleep(Duration::from_millis(300));
                    while let Ok(l) = rx.try_recv() {
                        tail.push(l);
                    }
                    let at = tail.iter().position(|l| l == &line).unwrap_or(0);
                    let regs = tail[at..].iter().find(|l| l.contains("rflags")).map_or("", |l| l.trim());
                    let why = format!("{line} ({regs})");
                    verdict = Some(Verdict::KernelStopped { call: stopped_at(progress_addr), why });
                    break;
                }
                if line.starts_with("roottask: run complete:") {
                    // The fuzz task ended: with status 0 if no failure.
                    verdict = Some(if line.contains(" 1 with status 0") {
                        Verdict::Clean
                    } else {
                        Verdict::Failed { call: failed_call, why: line }
                    });
                    break;
                }
                if line.starts_with("roottask: task fuzz crashed") {
                    verdict = Some(Verdict::Failed { call: stopped_at(progress_addr), why: line });
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        if now.duration_since(last_progress) > STALL {
            verdict = Some(Verdict::Hung {
                call: stopped_at(progress_addr),
                at: cpu_at(&sock).unwrap_or_else(|| "CPU state unknown".into()),
            });
            break;
        }
        if o.seconds > 0 && now >= deadline {
            verdict = Some(match distinct.first() {
                Some((why, call, _)) => Verdict::Failed { call: Some(*call), why: why.clone() },
                None => Verdict::Clean,
            });
            break;
        }
        if !o.verbose && now >= next_note {
            eprintln!("fuzz: {calls} calls after {:.0} s", start.elapsed().as_secs_f64());
            next_note = now + Duration::from_secs(30);
        }
    }
    let elapsed = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let _ = std::fs::remove_file(&sock);
    let verdict = verdict.unwrap_or(Verdict::KernelStopped { call: None, why: "QEMU exited".into() });
    let fuzzing = fuzz_start.map_or(Duration::ZERO, |t| last_progress.saturating_duration_since(t));
    if let Verdict::KernelStopped { call, why } | Verdict::Failed { call, why } = &verdict {
        if !distinct.iter().any(|d| &d.0 == why) {
            distinct.push((why.clone(), call.unwrap_or(0), 1));
        }
    }
    if let Verdict::Hung { call, at } = &verdict {
        distinct.push((format!("hung ({at})"), call.unwrap_or(0), 1));
    }
    Ok(Report { seed: o.seed, calls, elapsed, fuzzing, verdict, tail, distinct })
}

/// `just test`'s fixed-seed run: seed 1, 10,000 calls (and a check that the
/// production kernel carries none of the test kernel's debug hooks).
pub fn suite_run(build: &Path) -> Result<(Vec<crate::guest::TestResult>, crate::qemu::Outcome)> {
    use crate::guest::TestResult;
    const CALLS: u64 = 10_000;
    let o = Options { seed: 1, calls: CALLS, seconds: 600, trace_from: None, verbose: false, keep_going: false };
    let r = run(build, &o)?;
    println!("note: fuzz seed 1: {}", r.summary());
    let mut results = vec![TestResult {
        name: format!("fuzz::seed_1_{CALLS}_calls_clean"),
        ok: r.verdict == Verdict::Clean && r.calls >= CALLS,
        detail: r.summary(),
    }];
    results.push(no_test_hooks_in_production(build));
    let outcome = crate::qemu::Outcome {
        status: None,
        timed_out: false,
        lines: r.tail.iter().map(|l| (r.elapsed, l.clone())).collect(),
        stderr: String::new(),
        elapsed: r.elapsed,
    };
    Ok((results, outcome))
}

/// The test kernel's debug call and checks (`kernel/src/invariants.rs`,
/// `ktest.rs`) are compiled only with the `ktest` feature: the production
/// ELF holds none of their names or files, the test kernel's does. (The
/// user-side wrapper `abi::syscall::ktest` is in both: the kernel links
/// all of `abi`; it is a `syscall` instruction, not a hook.)
fn no_test_hooks_in_production(build: &Path) -> crate::guest::TestResult {
    const NEEDLES: [&str; 4] = ["ktest.rs", "invariants.rs", "debug_call", "invariant broken"];
    let has = |elf: &str, n: &str| {
        std::fs::read(build.join(elf)).is_ok_and(|b| b.windows(n.len()).any(|w| w == n.as_bytes()))
    };
    let leaked: Vec<_> = NEEDLES.iter().filter(|n| has("kernel.elf", n)).collect();
    let missing: Vec<_> = NEEDLES.iter().filter(|n| !has("kernel-test.elf", n)).collect();
    crate::guest::TestResult {
        name: "fuzz::production_kernel_has_no_test_hooks".into(),
        ok: leaked.is_empty() && missing.is_empty(),
        detail: format!(
            "in kernel.elf: {leaked:?}; missing from kernel-test.elf (the check would prove nothing): {missing:?}"
        ),
    }
}
