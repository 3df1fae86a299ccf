//! The WCET-report subcommands of `prism`: `wcet` (on synthetic or
//! replayed data), `report`, `capture` and `compare`.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wcet_reports::capture::{self, Platform, RunInfo, ScenarioRun};
use wcet_reports::qemu::{self, Boot};
use wcet_reports::report::{self, Options};
use wcet_reports::source::{QemuSource, ReplaySource, ScenarioPlan, SyntheticSource};
use wcet_reports::wcet::{self, Plan};
use wcet_reports::{description, image};

#[derive(Args, Clone)]
pub struct HistArgs {
    /// Histogram bucket width in cycles (default: the smallest 1/2/5 step that fits every job).
    #[arg(long)]
    hist_width: Option<u64>,
    /// Most histogram buckets (rows of histogram.txt); jobs beyond the last are overflows.
    #[arg(long, default_value_t = 1000)]
    hist_buckets: usize,
}

impl HistArgs {
    fn options(&self) -> Options {
        Options { hist_width: self.hist_width, hist_buckets: self.hist_buckets }
    }
}

#[derive(Args)]
pub struct WcetArgs {
    /// The system description.
    #[arg(default_value = "workloads/configs/default.toml")]
    description: PathBuf,
    /// Run on synthetic job times: this many jobs per scenario (no guest needed).
    #[arg(long, value_name = "JOBS", conflicts_with = "replay")]
    pub synthetic: Option<u32>,
    /// Seed of the synthetic job times.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Replay the console files of an earlier capture or report folder.
    #[arg(long, value_name = "DIR")]
    pub replay: Option<PathBuf>,
    /// Run only this scenario (repeatable; default: alone, shared and partitioned).
    #[arg(long = "scenario", value_name = "SCENARIO", value_parser = ["alone", "shared", "partitioned"])]
    scenarios: Vec<String>,
    /// Seconds before a scenario's run is stopped and marked incomplete.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Pause between replayed console lines, in milliseconds (to watch the progress).
    #[arg(long, default_value_t = 0)]
    line_delay_ms: u64,
    /// Where report folders go (`<root>/<description>/<timestamp>/`).
    #[arg(long, default_value = "target/wcet")]
    out_root: PathBuf,
    /// How to run: `model` (TCG + icount + the cache-model plugin:
    /// deterministic, the default without hardware virtualization), `kvm`
    /// (real caches and TSC; the default where KVM works), `tcg` (plain TCG:
    /// checks the pipeline, never the cache effect).
    #[arg(long, value_parser = ["model", "kvm", "tcg"])]
    mode: Option<String>,
    /// Where `just build` put the kernel, the modules and the plugin.
    #[arg(long, default_value = "build")]
    build_dir: PathBuf,
    #[command(flatten)]
    hist: HistArgs,
}

impl WcetArgs {
    /// Whether `--scenario` asks for this scenario (all of them without it).
    fn wanted(&self, scenario: &str) -> bool {
        self.scenarios.is_empty() || self.scenarios.iter().any(|s| s == scenario)
    }

    fn only(&self, plans: Vec<ScenarioPlan>) -> Vec<ScenarioPlan> {
        plans.into_iter().filter(|p| self.wanted(&p.name)).collect()
    }
}

#[derive(Args)]
pub struct ReportArgs {
    /// A capture folder, or a report folder (its `capture/` is used).
    dir: PathBuf,
    /// The new report folder (must not exist, or be empty; default: `<DIR>-rebuilt-<timestamp>` beside DIR).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    hist: HistArgs,
}

#[derive(Args)]
pub struct CaptureArgs {
    /// A serial device (e.g. /dev/ttyUSB0) or a file captured from it.
    #[arg(long, value_name = "DEV|FILE")]
    serial: PathBuf,
    /// The description the machine booted (its text, hash and colour layout go into the report).
    #[arg(long)]
    description: Option<PathBuf>,
    /// A name for the machine (the report's `platform.machine`).
    #[arg(long, default_value = "hardware")]
    machine: String,
    /// Its CPU model.
    #[arg(long, default_value = "unknown")]
    cpu: String,
    /// Device only: baud rate (set with `stty`).
    #[arg(long, default_value_t = 115_200)]
    baud: u32,
    /// Device only: stop reading after this many seconds (or once three runs ended).
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// Where report folders go.
    #[arg(long, default_value = "target/wcet")]
    out_root: PathBuf,
    #[command(flatten)]
    hist: HistArgs,
}

#[derive(Args)]
pub struct CompareArgs {
    /// First report folder.
    a: PathBuf,
    /// Second report folder.
    b: PathBuf,
}

fn read_description(file: &Path) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("{}: cannot read the description", file.display()))
}

fn finish(dir: &Path, summary: &report::Summary) {
    print!("{}", report::table(summary));
    println!("report: {}", dir.display());
}

/// One scenario's image: its compact description written to
/// `build/images/wcet/<description>/<scenario>/system`, and its colours.
pub fn scenario_image(
    build_dir: &Path,
    src: &description::Source,
    scenario: sysdesc::Scenario,
) -> Result<(PathBuf, capture::Layout, description::Description)> {
    let opts = description::Options { modules: Some(build_dir.join("modules")), ..Default::default() };
    let c = description::check(src, scenario, &opts);
    for d in &c.diagnostics {
        if d.severity == description::Severity::Error {
            eprintln!("{}", d.render(src));
        }
    }
    let Some(desc) = c.description else {
        bail!("{}: {} error(s) in scenario {scenario}; nothing was run", src.path.display(), c.errors());
    };
    let dir = build_dir.join("images/wcet").join(wcet::description_name(&src.path)).join(scenario.as_str());
    std::fs::create_dir_all(&dir)?;
    let system = dir.join("system");
    std::fs::write(&system, desc.compact()?).with_context(|| format!("writing {}", system.display()))?;
    Ok((system, desc.layout(), desc))
}

/// How long a scenario may run: the longest RT task's jobs in guest time,
/// times what the mode costs per guest second, plus boot time. (Under the
/// cache model a guest second takes minutes of host time.)
fn run_timeout(desc: &description::Description, mode: &str, cap: Duration) -> Duration {
    let guest_ns = desc
        .tasks
        .iter()
        .filter_map(|t| t.rt.as_ref())
        .map(|r| *r.period.get_ref() * u64::from(*r.jobs.get_ref()))
        .max();
    let per_guest_s = match mode {
        "model" => 2000.0,
        _ => 200.0,
    };
    let t = Duration::from_secs(120) + Duration::from_secs_f64(guest_ns.unwrap_or(0) as f64 / 1e9 * per_guest_s);
    t.min(cap)
}

/// `prism wcet` on QEMU: the three scenarios of the description, each
/// its own boot, in the mode asked (or the best the machine offers).
fn wcet_qemu(a: &WcetArgs, text: String) -> Result<wcet::Done> {
    let kernel = a.build_dir.join("kernel.elf");
    let sigma0 = a.build_dir.join("modules/sigma0").display().to_string();
    let mode = match a.mode.as_deref() {
        Some(m) => m.to_string(),
        None => match qemu::choose_accel(&kernel, &sigma0, &a.build_dir.join("accel"))? {
            (qemu::Accel::Kvm, why) => {
                eprintln!("prism wcet: KVM works ({why}): mode kvm");
                "kvm".into()
            }
            (_, why) => {
                eprintln!("prism wcet: no hardware virtualization ({why}): mode model (TCG + icount + cache model)");
                "model".into()
            }
        },
    };
    let (accel, label) = match mode.as_str() {
        "model" => (qemu::Accel::TcgIcount, "TCG+icount+cache-model"),
        "kvm" => (qemu::Accel::Kvm, "KVM"),
        _ => (qemu::Accel::Tcg, "TCG"),
    };
    let src = description::Source::read(&a.description)?;
    let mut images = Vec::new();
    for s in [sysdesc::Scenario::Alone, sysdesc::Scenario::Shared, sysdesc::Scenario::Partitioned] {
        if a.wanted(s.as_str()) {
            images.push((s.as_str().to_string(), scenario_image(&a.build_dir, &src, s)?));
        }
    }
    let profile = images
        .first()
        .context("no scenario to run")?
        .1
         .2
        .cache
        .strip_prefix("profile ")
        .unwrap_or("embedded")
        .to_string();
    let q = qemu::Qemu::selected();
    eprintln!(
        "prism wcet: mode {mode} ({label}){}, {}",
        if mode == "model" { format!(", cache-model profile {profile}") } else { String::new() },
        q.describe()
    );
    if mode == "tcg" {
        eprintln!("prism wcet: plain TCG proves the pipeline works; its times are the host's, never the cache effect");
    }
    let timeout = Duration::from_secs(a.timeout);
    let plans: Vec<ScenarioPlan> = images
        .iter()
        .map(|(name, (_, layout, desc))| ScenarioPlan {
            name: name.clone(),
            timeout: run_timeout(desc, &mode, timeout),
            layout: Some(layout.clone()),
        })
        .collect();
    let systems: Vec<(String, PathBuf)> = images.iter().map(|(n, (p, _, _))| (n.clone(), p.clone())).collect();
    let (build, plugin) = (a.build_dir.clone(), a.build_dir.join("libcache_model.so"));
    let model = mode == "model";
    let boot_for = move |plan: &ScenarioPlan| -> Result<(Boot, Option<PathBuf>)> {
        let system = &systems.iter().find(|(n, _)| *n == plan.name).context("no such scenario")?.1;
        let img = image::of(&build, system)?;
        let mut boot = Boot::new(build.join("kernel.elf"), accel);
        boot.cmdline = img.cmdline.clone();
        boot.modules = img.module_args();
        let csv = if model {
            let csv = system.with_file_name("cache-model.csv");
            let _ = std::fs::remove_file(&csv);
            boot.with_cache_model(&plugin, &profile, &csv);
            Some(csv)
        } else {
            None
        };
        Ok((boot, csv))
    };
    let platform = Platform {
        machine: std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default(),
        cpu: host_cpu(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mode: mode.clone(),
        accel: accel.to_string(),
        qemu: q.version_line().ok(),
    };
    let src = QemuSource { platform, boot_for: Box::new(boot_for), stop_at_trailer: !model };
    let plan = Plan {
        description_file: a.description.clone(),
        description_text: text,
        scenarios: plans,
        out_root: a.out_root.clone(),
        options: a.hist.options(),
    };
    wcet::run(&src, &plan)
}

fn host_cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn wcet(a: WcetArgs) -> Result<()> {
    let text = read_description(&a.description)?;
    let timeout = Duration::from_secs(a.timeout);
    let delay = Duration::from_millis(a.line_delay_ms);
    let start = Instant::now();
    let done = if a.synthetic.is_none() && a.replay.is_none() {
        wcet_qemu(&a, text)?
    } else if let Some(jobs) = a.synthetic {
        eprintln!("prism wcet: synthetic job times ({jobs} jobs per scenario, seed {}): this checks the pipeline, it measures nothing", a.seed);
        let src = SyntheticSource { jobs, seed: a.seed, line_delay: delay };
        let plan = Plan {
            description_file: a.description.clone(),
            description_text: text,
            scenarios: a.only(wcet::default_scenarios(timeout, |s| Some(wcet_reports::source::synthetic_layout(s)))),
            out_root: a.out_root.clone(),
            options: a.hist.options(),
        };
        wcet::run(&src, &plan)?
    } else {
        let dir = a.replay.as_deref().unwrap_or(Path::new("."));
        let mut src = ReplaySource::open(dir)?;
        src.line_delay = delay;
        let layouts: Vec<ScenarioRun> = src.capture.info.scenarios.clone();
        eprintln!("prism wcet: replaying {}", src.capture.dir.display());
        let plan = Plan {
            description_file: PathBuf::from(&src.capture.info.description_file),
            description_text: src.capture.description_text.clone(),
            scenarios: a
                .only(wcet::default_scenarios(timeout, |s| layouts.iter().find(|r| r.name == s)?.layout.clone())),
            out_root: a.out_root.clone(),
            options: a.hist.options(),
        };
        wcet::run(&src, &plan)?
    };
    finish(&done.dir, &done.summary);
    println!("wall time: {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

pub fn report(a: ReportArgs) -> Result<()> {
    let start = Instant::now();
    let cap = capture::load(&a.dir)?;
    let out = match a.out {
        Some(o) => o,
        None => {
            let base = a.dir.canonicalize().unwrap_or_else(|_| a.dir.clone());
            let base =
                if base.ends_with("capture") { base.parent().map(Path::to_path_buf).unwrap_or(base) } else { base };
            let name = base.file_name().map_or_else(|| "report".into(), |n| n.to_string_lossy().into_owned());
            let (stamp, _) = wcet::now();
            report::new_folder(base.parent().unwrap_or(Path::new(".")), &format!("{name}-rebuilt-{stamp}"))?
        }
    };
    let summary = report::build(&cap, &out, &a.hist.options())?;
    finish(&out, &summary);
    eprintln!("report: rebuilt in {:.2} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// Reads a device line by line until three runs ended, EOF or the timeout.
fn read_device(dev: &Path, baud: u32, timeout: Duration) -> Result<String> {
    let st = std::process::Command::new("stty")
        .args(["-F", &dev.display().to_string(), &baud.to_string(), "raw", "-echo"])
        .status()
        .context("running stty")?;
    if !st.success() {
        bail!("{}: stty could not set {baud} baud raw mode", dev.display());
    }
    let f = std::fs::File::open(dev).with_context(|| format!("{}: cannot open", dev.display()))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut r = BufReader::new(f);
        let mut buf = Vec::new();
        while let Ok(n) = r.read_until(b'\n', &mut buf) {
            if n == 0 || tx.send(String::from_utf8_lossy(&buf).trim_end_matches(['\r', '\n']).to_string()).is_err() {
                break;
            }
            buf.clear();
        }
    });
    let start = Instant::now();
    let mut text = String::new();
    let mut trailers = 0;
    eprintln!(
        "capture: reading {} at {baud} baud (at most {} s; stops after three runs)",
        dev.display(),
        timeout.as_secs()
    );
    while trailers < 3 {
        let left = timeout.saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok(l) => {
                if l.contains("@prism-rec E ") {
                    trailers += 1;
                    eprintln!("capture: run {trailers} of 3 ended");
                }
                text.push_str(&l);
                text.push('\n');
            }
            Err(_) => break,
        }
    }
    Ok(text)
}

pub fn capture(a: CaptureArgs) -> Result<()> {
    let md = std::fs::metadata(&a.serial).with_context(|| format!("{}: cannot open", a.serial.display()))?;
    let raw = if md.is_file() {
        let b = std::fs::read(&a.serial).with_context(|| format!("{}: cannot read", a.serial.display()))?;
        String::from_utf8_lossy(&b).into_owned()
    } else {
        read_device(&a.serial, a.baud, Duration::from_secs(a.timeout))?
    };
    let (desc_file, desc_text) = match &a.description {
        Some(d) => (d.display().to_string(), read_description(d)?),
        None => ("(not given)".to_string(), String::new()),
    };
    let layout = capture::layout_from_toml(&desc_text);
    let (runs, notes) = capture::split_serial(&raw);
    for n in &notes {
        eprintln!("capture: {n}");
    }
    if runs.is_empty() {
        eprintln!("capture: no run with a scenario header in {}; the report will say so", a.serial.display());
    }
    let mut files = vec![("serial.log".to_string(), raw)];
    let mut scenarios = Vec::new();
    for (name, text) in runs {
        let console = format!("{name}.console.log");
        files.push((console.clone(), text));
        scenarios.push(ScenarioRun {
            name,
            console,
            cache_model: None,
            timed_out: false,
            elapsed_s: 0.0,
            notes: notes.clone(),
            layout: layout.clone(),
        });
    }
    let (stamp, started) = wcet::now();
    let name = a.description.as_deref().map_or_else(|| "capture".into(), wcet::description_name);
    let dir = report::new_folder(&a.out_root.join(&name), &stamp)?;
    let info = RunInfo {
        schema: capture::SCHEMA.into(),
        description: name,
        description_file: desc_file,
        started,
        platform: Platform {
            machine: a.machine,
            cpu: a.cpu,
            cores: 0,
            mode: "hardware".into(),
            accel: "none".into(),
            qemu: None,
        },
        scenarios,
        raw: Some("serial.log".into()),
    };
    capture::write(&dir.join("capture"), &info, &desc_text, &files)?;
    let cap = capture::load(&dir)?;
    let summary = report::build(&cap, &dir, &a.hist.options())?;
    report::link_latest(&dir)?;
    finish(&dir, &summary);
    Ok(())
}

pub fn compare(a: CompareArgs) -> Result<()> {
    print!("{}", report::compare(&a.a, &a.b)?);
    Ok(())
}
