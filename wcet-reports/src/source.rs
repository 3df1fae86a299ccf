//! Where a scenario's console stream comes from: the one seam between the
//! WCET pipeline and the guest.
//!
//! [`GuestSource`] runs one scenario and hands every console line to a
//! callback as it arrives (the progress bars read the harness's progress
//! lines from it). Implementations: [`QemuSource`] (a QEMU boot through
//! [`crate::qemu::Boot`]; the lead supplies the boot of each scenario),
//! [`ReplaySource`] (the console files of an earlier capture) and
//! [`SyntheticSource`] (seeded synthetic job times in the record format,
//! for the pipeline's tests and for trying the report without a guest).

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use record::{Header, Job, PmcSet, Writer};
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::capture::{self, Layout, LayoutPartition, Platform};
use crate::qemu::Boot;

/// One scenario to run.
#[derive(Clone, Debug)]
pub struct ScenarioPlan {
    pub name: String,
    pub timeout: Duration,
    pub layout: Option<Layout>,
}

/// What one scenario's run produced.
#[derive(Clone, Debug, Default)]
pub struct GuestRun {
    /// Every console line, in order.
    pub console: Vec<String>,
    /// The cache-model plugin's CSV (model mode).
    pub cache_model_csv: Option<String>,
    pub timed_out: bool,
    pub elapsed: Duration,
    /// Exit status and anything else worth keeping.
    pub notes: Vec<String>,
}

/// Runs scenarios and streams their console.
pub trait GuestSource: Sync {
    /// Where and how the runs happen.
    fn platform(&self) -> Platform;
    /// Runs `plan`, calling `on_line` for every console line as it arrives.
    fn run(&self, plan: &ScenarioPlan, on_line: &mut dyn FnMut(&str)) -> Result<GuestRun>;
}

/// The trailer's start: a run's records are complete when it arrives.
const TRAILER: &str = "@prism-rec E ";

/// A QEMU boot per scenario. `boot_for` builds the [`Boot`] of a scenario
/// (kernel, modules from the resolved description, accelerator, and in
/// model mode [`Boot::with_cache_model`]) and says where the plugin writes
/// its CSV.
pub struct QemuSource {
    pub platform: Platform,
    #[allow(clippy::type_complexity)]
    pub boot_for: Box<dyn Fn(&ScenarioPlan) -> Result<(Boot, Option<PathBuf>)> + Sync>,
    /// Stop QEMU as soon as the trailer arrives. Leave off in model mode:
    /// the plugin writes its CSV at QEMU's exit, which a kill skips, so the
    /// guest must exit by itself (isa-debug-exit) after its dump.
    pub stop_at_trailer: bool,
}

impl GuestSource for QemuSource {
    fn platform(&self) -> Platform {
        self.platform.clone()
    }

    fn run(&self, plan: &ScenarioPlan, on_line: &mut dyn FnMut(&str)) -> Result<GuestRun> {
        let (boot, csv) = (self.boot_for)(plan)?;
        let forwarded = Cell::new(0usize);
        let sink = RefCell::new(on_line);
        let stop = |text: &str| {
            // `run_captured` passes the whole console so far, complete lines only.
            let lines: Vec<&str> = text.lines().collect();
            for l in &lines[forwarded.get().min(lines.len())..] {
                (sink.borrow_mut())(l);
            }
            forwarded.set(lines.len());
            self.stop_at_trailer && text.contains(TRAILER)
        };
        let o = boot.run_captured(plan.timeout, Some(&stop))?;
        let console: Vec<String> = o.lines.iter().map(|(_, l)| l.clone()).collect();
        for l in &console[forwarded.get().min(console.len())..] {
            (sink.borrow_mut())(l);
        }
        let finished = console.iter().any(|l| l.contains(TRAILER));
        let mut notes = vec![match o.status {
            Some(s) => format!("qemu exited with status {s}"),
            None if finished => "qemu stopped after the trailer arrived".into(),
            None => format!("qemu killed at the timeout of {} s", plan.timeout.as_secs()),
        }];
        if !o.stderr.trim().is_empty() {
            notes.push(format!("qemu stderr: {}", o.stderr.trim()));
        }
        let cache_model_csv = match csv {
            Some(p) => match std::fs::read_to_string(&p) {
                Ok(t) => Some(t),
                Err(e) => {
                    notes.push(format!("cache-model CSV {} not written ({e})", p.display()));
                    None
                }
            },
            None => None,
        };
        Ok(GuestRun { console, cache_model_csv, timed_out: o.timed_out && !finished, elapsed: o.elapsed, notes })
    }
}

/// Replays the console files (and cache-model CSVs) of a capture folder.
pub struct ReplaySource {
    pub capture: capture::Capture,
    /// Pause between lines (to watch the progress bars).
    pub line_delay: Duration,
}

impl ReplaySource {
    pub fn open(dir: &std::path::Path) -> Result<ReplaySource> {
        Ok(ReplaySource { capture: capture::load(dir)?, line_delay: Duration::ZERO })
    }
}

impl GuestSource for ReplaySource {
    fn platform(&self) -> Platform {
        self.capture.info.platform.clone()
    }

    fn run(&self, plan: &ScenarioPlan, on_line: &mut dyn FnMut(&str)) -> Result<GuestRun> {
        let start = Instant::now();
        let run = self.capture.info.scenarios.iter().find(|s| s.name == plan.name);
        let Some(run) = run else {
            return Ok(GuestRun {
                notes: vec![format!("the replayed capture has no scenario {}", plan.name)],
                ..GuestRun::default()
            });
        };
        let file = self.capture.dir.join(&run.console);
        let bytes = std::fs::read(&file).with_context(|| format!("{}: cannot read", file.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        let mut out = GuestRun { notes: vec![format!("replayed from {}", file.display())], ..GuestRun::default() };
        for l in text.lines() {
            if start.elapsed() > plan.timeout {
                out.timed_out = true;
                break;
            }
            on_line(l);
            out.console.push(l.to_string());
            if !self.line_delay.is_zero() {
                std::thread::sleep(self.line_delay);
            }
        }
        if let Some(c) = &run.cache_model {
            out.cache_model_csv = std::fs::read_to_string(self.capture.dir.join(c)).ok();
        }
        out.elapsed = start.elapsed();
        Ok(out)
    }
}

/// Seeded synthetic job times in the record format: the pipeline without
/// a guest. Model-mode-like: a cache-model CSV with model cycles and
/// interference (alone and partitioned: none; shared: many), job times
/// with Gumbel noise, `shared` about 40 % slower, `partitioned` about 1 %.
pub struct SyntheticSource {
    pub jobs: u32,
    pub seed: u64,
    pub line_delay: Duration,
}

/// The colour layout of a scenario in the synthetic (and default) setup.
pub fn synthetic_layout(scenario: &str) -> Layout {
    let p = |name: &str, colors: &str, memory: u64| LayoutPartition {
        name: name.into(),
        colors: colors.into(),
        memory: Some(memory),
    };
    let partitions = match scenario {
        "shared" => vec![p("rt", "0-15", 4 << 20), p("ts", "0-15", 16 << 20)],
        _ => vec![p("rt", "0-7", 4 << 20), p("ts", "8-15", 16 << 20)],
    };
    Layout { colors: 16, partitions }
}

impl SyntheticSource {
    /// The console text and CSV of one scenario (deterministic in `seed`).
    pub fn streams(&self, scenario: &str) -> (Vec<String>, String) {
        let salt = scenario.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let mut rng = StdRng::seed_from_u64(self.seed ^ salt);
        let (scale, noise, evict) = match scenario {
            "shared" => (1.40, 9000.0, 400.0),
            "partitioned" => (1.01, 2000.0, 0.0),
            _ => (1.0, 2000.0, 0.0),
        };
        let mut text = String::new();
        text.push_str("Prism kernel (synthetic console)\nsigma0: hello from ring 3\n");
        let period = 5_000_000u64;
        let mut jobs = Vec::new();
        let mut csv = String::from(
            "job,complete,instructions,mem_accesses,l1d_hits,l1d_misses,l2_hits,l2_misses,llc_hits,llc_misses,model_cycles,\
interference_l1d,interference_l2,interference_llc\n",
        );
        let every = (self.jobs / 20).max(1);
        for k in 0..self.jobs {
            let u: f64 = rng.random_range(f64::EPSILON..1.0);
            let gumbel = -(-u.ln()).ln();
            let cycles = (1_000_000.0 * scale + noise * gumbel).max(1.0) as u64;
            let release = u64::from(k) * period;
            let start = release + 1000 + rng.random_range(0..200);
            let insns = 600_000 + rng.random_range(0..50u64);
            jobs.push(Job {
                task: 0,
                job: k,
                release,
                start,
                end: start + insns,
                preemptions: u32::from(rng.random_range(0..10) == 0),
                deadline_miss: false,
                pmc: Default::default(),
            });
            let e = if evict > 0.0 { (evict * (1.0 + gumbel.max(-1.0) * 0.3)) as u64 } else { 0 };
            csv.push_str(&format!(
                "{k},1,{insns},{},{},{},{},{},{},{},{cycles},{},{},{e}\n",
                insns / 3,
                insns / 4,
                insns / 12,
                insns / 24,
                insns / 24,
                insns / 48,
                insns / 48,
                e / 4,
                e / 2
            ));
            if (k + 1) % every == 0 || k + 1 == self.jobs {
                let _ = record::progress(&mut text, 0, k + 1, self.jobs);
            }
        }
        text.push_str("harness: run over, dumping records\n");
        let h = Header { scenario, mode: "tcg", tsc_hz: 2_000_000_000, pmc: PmcSet::NONE, tasks: 1 };
        if let Ok(mut w) = Writer::begin(&mut text, &h) {
            let _ = w.task(&mut text, "matmul", self.jobs);
            for j in &jobs {
                let _ = w.job(&mut text, j);
            }
            let _ = w.finish(&mut text);
        }
        text.push_str("root: all tasks ended\n");
        (text.lines().map(String::from).collect(), csv)
    }
}

impl GuestSource for SyntheticSource {
    fn platform(&self) -> Platform {
        Platform {
            machine: "synthetic".into(),
            cpu: "none (synthetic job times)".into(),
            cores: 0,
            mode: "synthetic".into(),
            accel: "none".into(),
            qemu: None,
        }
    }

    fn run(&self, plan: &ScenarioPlan, on_line: &mut dyn FnMut(&str)) -> Result<GuestRun> {
        let start = Instant::now();
        let (lines, csv) = self.streams(&plan.name);
        let mut out = GuestRun { cache_model_csv: Some(csv), ..GuestRun::default() };
        for l in lines {
            if start.elapsed() > plan.timeout {
                out.timed_out = true;
                break;
            }
            on_line(&l);
            out.console.push(l);
            if !self.line_delay.is_zero() {
                std::thread::sleep(self.line_delay);
            }
        }
        out.elapsed = start.elapsed();
        Ok(out)
    }
}
