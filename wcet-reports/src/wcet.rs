//! `prism wcet`: run the three scenarios in parallel from a
//! [`GuestSource`], with a progress bar per scenario, keep everything in a
//! capture folder, write the report and print its summary table.
//!
//! Progress comes from the harness's progress lines (`@prism-rec P task
//! done total`, see the `record` crate) in the console stream; the bar of a
//! scenario is the sum over its tasks. A scenario that hits its timeout is
//! stopped and marked incomplete; whatever it printed is still kept and
//! reported.

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::capture::{self, RunInfo, ScenarioRun, SCENARIOS};
use crate::report::{self, Options, Summary};
use crate::source::{GuestRun, GuestSource, ScenarioPlan};

/// What to run and where the report goes.
pub struct Plan {
    /// The description file (its stem names the report folder).
    pub description_file: PathBuf,
    pub description_text: String,
    pub scenarios: Vec<ScenarioPlan>,
    /// `target/wcet` by default.
    pub out_root: PathBuf,
    pub options: Options,
}

/// The finished run: its folder and summary.
pub struct Done {
    pub dir: PathBuf,
    pub summary: Summary,
}

/// UTC now as a folder-name stamp and as RFC 3339.
pub fn now() -> (String, String) {
    let t = chrono::Utc::now();
    (t.format("%Y%m%dT%H%M%SZ").to_string(), t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Runs every scenario (at most `available_parallelism` at a time).
fn run_all(source: &dyn GuestSource, plans: &[ScenarioPlan]) -> Vec<(ScenarioPlan, Result<GuestRun>)> {
    let mp = MultiProgress::new();
    let tty = std::io::stderr().is_terminal();
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:40.cyan/blue}] {pos:>6}/{len:6} jobs {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bars: Vec<ProgressBar> = plans
        .iter()
        .map(|p| {
            let b = mp.add(ProgressBar::new(0));
            b.set_style(style.clone());
            b.set_prefix(p.name.clone());
            b.set_message("booting");
            b
        })
        .collect();
    let queue = Mutex::new((0..plans.len()).collect::<Vec<_>>());
    let results: Mutex<Vec<Option<Result<GuestRun>>>> = Mutex::new((0..plans.len()).map(|_| None).collect());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(plans.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let Some(i) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop() else { break };
                let bar = &bars[i];
                let mut tasks: BTreeMap<u16, (u32, u32)> = BTreeMap::new();
                let mut dumping = false;
                let mut on_line = |l: &str| {
                    if let Some(p) = record::read::progress_of(l) {
                        tasks.insert(p.task, (p.done, p.total));
                        let (done, total) =
                            tasks.values().fold((0u64, 0u64), |a, v| (a.0 + u64::from(v.0), a.1 + u64::from(v.1)));
                        bar.set_length(total);
                        bar.set_position(done);
                        bar.set_message("running");
                    } else if !dumping && l.contains("@prism-rec H ") {
                        dumping = true;
                        bar.set_message("reading records");
                    }
                };
                let r = source.run(&plans[i], &mut on_line);
                let msg = match &r {
                    Ok(g) if g.timed_out => format!("TIMED OUT after {:.1} s", g.elapsed.as_secs_f64()),
                    Ok(g) => format!("done in {:.1} s", g.elapsed.as_secs_f64()),
                    Err(e) => format!("FAILED: {e:#}"),
                };
                if !tty {
                    eprintln!(
                        "prism wcet: {}: {} ({}/{} jobs)",
                        plans[i].name,
                        msg,
                        bar.position(),
                        bar.length().unwrap_or(0)
                    );
                }
                bar.finish_with_message(msg);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    plans
        .iter()
        .cloned()
        .zip(results.into_iter().map(|r| r.unwrap_or_else(|| Err(anyhow::anyhow!("not run")))))
        .collect()
}

/// The description's name: its file stem.
pub fn description_name(file: &Path) -> String {
    file.file_stem().map_or_else(|| "description".into(), |s| s.to_string_lossy().into_owned())
}

/// Runs `plan` from `source`, writes capture and report, links `latest`.
pub fn run(source: &dyn GuestSource, plan: &Plan) -> Result<Done> {
    let (stamp, started) = now();
    let name = description_name(&plan.description_file);
    let dir = report::new_folder(&plan.out_root.join(&name), &stamp)?;
    let results = run_all(source, &plan.scenarios);
    let mut files = Vec::new();
    let mut scenarios = Vec::new();
    for (p, r) in results {
        let mut notes = Vec::new();
        let g = r.unwrap_or_else(|e| {
            notes.push(format!("the run failed: {e:#}"));
            GuestRun::default()
        });
        notes.extend(g.notes);
        let console = format!("{}.console.log", p.name);
        let mut text = g.console.join("\n");
        text.push('\n');
        files.push((console.clone(), text));
        let cache_model = g.cache_model_csv.map(|csv| {
            let n = format!("{}.cache-model.csv", p.name);
            files.push((n.clone(), csv));
            n
        });
        scenarios.push(ScenarioRun {
            name: p.name.clone(),
            console,
            cache_model,
            timed_out: g.timed_out,
            elapsed_s: (g.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            notes,
            layout: p.layout.clone(),
        });
    }
    let info = RunInfo {
        schema: capture::SCHEMA.into(),
        description: name,
        description_file: plan.description_file.display().to_string(),
        started,
        platform: source.platform(),
        scenarios,
        raw: None,
    };
    capture::write(&dir.join("capture"), &info, &plan.description_text, &files)?;
    let cap = capture::load(&dir)?;
    let summary = report::build(&cap, &dir, &plan.options).context("writing the report (the capture is kept)")?;
    report::link_latest(&dir)?;
    Ok(Done { dir, summary })
}

/// The default plans: the three scenarios with one timeout each.
pub fn default_scenarios(timeout: Duration, layout: impl Fn(&str) -> Option<capture::Layout>) -> Vec<ScenarioPlan> {
    SCENARIOS.iter().map(|s| ScenarioPlan { name: s.to_string(), timeout, layout: layout(s) }).collect()
}
