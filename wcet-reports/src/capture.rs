//! Captured data: what a WCET run (or `prism capture`) keeps, and the
//! only input of a report.
//!
//! A capture folder holds
//!
//! * `run.json`: [`RunInfo`] (description name and file, start time,
//!   platform, and per scenario: its console file, cache-model CSV, how the
//!   run ended, the colour layout);
//! * `description.toml`: the exact description text;
//! * per scenario `<name>.console.log` (every COM1 line as received) and,
//!   in model mode, `<name>.cache-model.csv` (the plugin's rows).
//!
//! [`load`] validates every file and names the file and place of what is
//! wrong; [`ScenarioData::read`] turns one scenario into jobs joined with
//! their cache-model rows, keeping every problem as a diagnostic instead of
//! failing, so a damaged capture still gives a (partial) report.

use anyhow::{bail, Context, Result};
use record::read::{Problem, Run, TaskInfo};
use record::Job;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version tag of `run.json`.
pub const SCHEMA: &str = "prism-wcet-capture/1";
/// The scenarios a WCET run has, in report order.
pub const SCENARIOS: [&str; 3] = ["alone", "shared", "partitioned"];

/// Where and how the figures were measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platform {
    /// The machine (host name or the user's label for hardware).
    pub machine: String,
    /// CPU model name.
    pub cpu: String,
    pub cores: usize,
    /// `model`, `kvm`, `tcg`, `hardware` or `synthetic`.
    pub mode: String,
    /// The QEMU accelerator (`TCG+icount`, `KVM`, `TCG`) or `none`.
    pub accel: String,
    /// `qemu-system-x86_64 --version`, first line (`None`: no QEMU involved).
    pub qemu: Option<String>,
}

/// One partition of a colour layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutPartition {
    pub name: String,
    /// Xen `llc-colors` syntax (`"0-7,12"`).
    pub colors: String,
    /// Bytes the partition must hold, where the description says.
    pub memory: Option<u64>,
}

/// Which colours each partition owns in a scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Number of page colours of the coloured cache level.
    pub colors: u32,
    pub partitions: Vec<LayoutPartition>,
}

/// How one scenario's run went and where its files are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioRun {
    pub name: String,
    /// Console file (relative to the capture folder).
    pub console: String,
    /// Cache-model CSV (relative), in model mode.
    pub cache_model: Option<String>,
    /// The run was stopped at its timeout.
    pub timed_out: bool,
    /// Wall time of the run in seconds.
    pub elapsed_s: f64,
    /// Anything the runner noted (QEMU exit status, errors).
    pub notes: Vec<String>,
    pub layout: Option<Layout>,
}

/// `run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInfo {
    pub schema: String,
    /// Description name (the file stem), the report's folder name.
    pub description: String,
    /// The description file as given.
    pub description_file: String,
    /// UTC start time, RFC 3339.
    pub started: String,
    pub platform: Platform,
    pub scenarios: Vec<ScenarioRun>,
    /// The whole serial stream as received (`prism capture`), kept beside
    /// the per-scenario consoles cut from it.
    #[serde(default)]
    pub raw: Option<String>,
}

/// A loaded capture folder.
#[derive(Clone, Debug)]
pub struct Capture {
    pub dir: PathBuf,
    pub info: RunInfo,
    pub description_text: String,
}

/// Safe file name for a capture file (no path separators, no `..`).
fn check_name(name: &str, file: &Path) -> Result<()> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("{}: file name {name:?} must be a plain name inside the capture folder", file.display());
    }
    Ok(())
}

/// Reads and validates the capture folder `dir` (or the `capture/` folder
/// inside a report folder).
pub fn load(dir: &Path) -> Result<Capture> {
    let dir = if dir.join("capture/run.json").is_file() { dir.join("capture") } else { dir.to_path_buf() };
    let file = dir.join("run.json");
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!("{}: cannot read (is {} a capture or report folder?)", file.display(), dir.display())
    })?;
    let info: RunInfo = serde_json::from_str(&text).with_context(|| format!("{}: invalid run.json", file.display()))?;
    if info.schema != SCHEMA {
        bail!("{}: schema {:?}, this prism reads {SCHEMA:?}", file.display(), info.schema);
    }
    let mut seen = Vec::new();
    for s in &info.scenarios {
        if !SCENARIOS.contains(&s.name.as_str()) {
            bail!("{}: unknown scenario {:?} (expected one of {SCENARIOS:?})", file.display(), s.name);
        }
        if seen.contains(&s.name) {
            bail!("{}: scenario {:?} listed twice", file.display(), s.name);
        }
        seen.push(s.name.clone());
        check_name(&s.console, &file)?;
        if let Some(c) = &s.cache_model {
            check_name(c, &file)?;
        }
        if !s.elapsed_s.is_finite() || s.elapsed_s < 0.0 {
            bail!("{}: scenario {:?}: elapsed_s {} is not a duration", file.display(), s.name, s.elapsed_s);
        }
    }
    if let Some(r) = &info.raw {
        check_name(r, &file)?;
    }
    let dfile = dir.join("description.toml");
    let description_text =
        std::fs::read_to_string(&dfile).with_context(|| format!("{}: cannot read", dfile.display()))?;
    Ok(Capture { dir, info, description_text })
}

/// Writes a capture folder `dir` (which must not exist): `run.json`,
/// `description.toml` and the given files.
pub fn write(dir: &Path, info: &RunInfo, description: &str, files: &[(String, String)]) -> Result<()> {
    std::fs::create_dir_all(dir.parent().unwrap_or(Path::new(".")))?;
    std::fs::create_dir(dir).with_context(|| format!("{}: cannot create (it must not exist yet)", dir.display()))?;
    let json = serde_json::to_string_pretty(info)? + "\n";
    std::fs::write(dir.join("run.json"), json)?;
    std::fs::write(dir.join("description.toml"), description)?;
    for (name, text) in files {
        check_name(name, &dir.join("run.json"))?;
        std::fs::write(dir.join(name), text).with_context(|| format!("writing {}", dir.join(name).display()))?;
    }
    Ok(())
}

/// Cuts a serial stream with several runs (one per scenario, e.g. three
/// boots of the ISO on hardware) into per-scenario console texts, by the
/// line ranges of the runs the reader finds. A scenario's text runs from
/// the line after the previous run to the end of its own run, so console
/// output between runs stays with the run it precedes. Returns the texts
/// and what could not be assigned.
pub fn split_serial(text: &str) -> (Vec<(String, String)>, Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let stream = record::read::read(text);
    let mut out: Vec<(String, String)> = Vec::new();
    let mut notes = Vec::new();
    let mut from = 0usize;
    for r in &stream.runs {
        let (a, b) = r.lines;
        let end = b.min(lines.len());
        let chunk = lines[from.min(end)..end].join("\n") + "\n";
        from = end;
        match r.scenario() {
            Some(s) if SCENARIOS.contains(&s) => {
                if let Some(prev) = out.iter_mut().find(|(n, _)| n == s) {
                    notes.push(format!("a second run of {s} (lines {a}-{b}) replaces the one before"));
                    prev.1 = chunk;
                } else {
                    out.push((s.to_string(), chunk));
                }
            }
            Some(s) => {
                notes.push(format!("lines {a}-{b}: run of unknown scenario {s:?} (kept in the raw stream only)"))
            }
            None => notes.push(format!(
                "lines {a}-{b}: a run whose header was lost; its scenario is unknown (kept in the raw stream only)"
            )),
        }
    }
    out.sort_by_key(|(n, _)| SCENARIOS.iter().position(|s| s == n));
    (out, notes)
}

/// One cache-model CSV: its column names and rows (cells as text).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelCsv {
    /// The plugin's `# cache-model ...` line: QEMU version, plugin API,
    /// inputs (data accesses only, or instruction fetches too), profile.
    pub meta: Option<String>,
    pub columns: Vec<String>,
    /// Rows by the plugin's job ordinal.
    pub rows: Vec<Vec<String>>,
}

impl ModelCsv {
    /// Parses the plugin CSV; extra columns are kept, a damaged row is a
    /// diagnostic (`file:line: ...`) and is skipped.
    pub fn parse(text: &str, file: &str, problems: &mut Vec<String>) -> ModelCsv {
        let mut lines = text.lines().enumerate().peekable();
        // Comment lines first: the plugin's metadata line.
        let mut meta = None;
        while let Some((_, l)) = lines.peek() {
            let Some(c) = l.strip_prefix('#') else { break };
            if meta.is_none() {
                meta = Some(c.trim().to_string());
            }
            lines.next();
        }
        let Some((hl, header)) = lines.next() else {
            problems.push(format!("{file}: empty (no header)"));
            return ModelCsv { meta, ..ModelCsv::default() };
        };
        let columns: Vec<String> = header.split(',').map(|s| s.trim().to_string()).collect();
        if columns.first().map(String::as_str) != Some("job") {
            problems.push(format!("{file}:{}: header does not start with `job`: {header:?}", hl + 1));
            return ModelCsv { meta, ..ModelCsv::default() };
        }
        let mut rows = Vec::new();
        for (i, l) in lines {
            if l.trim().is_empty() {
                continue;
            }
            let cells: Vec<String> = l.split(',').map(|s| s.trim().to_string()).collect();
            if cells.len() != columns.len() {
                problems.push(format!(
                    "{file}:{}: {} fields, the header has {} (row skipped)",
                    i + 1,
                    cells.len(),
                    columns.len()
                ));
                continue;
            }
            if let Some((c, v)) = columns.iter().zip(&cells).find(|(_, v)| !v.is_empty() && v.parse::<u64>().is_err()) {
                problems.push(format!("{file}:{}: column {c}: {v:?} is not an integer (row skipped)", i + 1));
                continue;
            }
            match cells[0].parse::<usize>() {
                Ok(n) if n == rows.len() => rows.push(cells),
                _ => problems.push(format!(
                    "{file}:{}: job {:?} out of sequence, expected {} (row skipped)",
                    i + 1,
                    cells[0],
                    rows.len()
                )),
            }
        }
        ModelCsv { meta, columns, rows }
    }

    /// The integer in column `name` of row `row` (`None`: empty or no such column).
    pub fn value(&self, row: usize, name: &str) -> Option<u64> {
        let c = self.columns.iter().position(|n| n == name)?;
        self.rows.get(row)?.get(c)?.parse().ok()
    }
}

/// One job with its cache-model row (if any).
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    pub job: Job,
    /// Index into the scenario's [`ModelCsv::rows`].
    pub model_row: Option<usize>,
}

/// Joins job records with cache-model rows. The plugin numbers job
/// windows from 0 in the order they open, and the harness opens one window
/// per recorded job right after its start read (the contract with the
/// harness). With one task, window `k` is job `k`, so the join holds even
/// where records are missing. With several tasks, window order is start
/// order across tasks, which identifies the rows only while no record is
/// missing; otherwise the rows are not joined and the report says so.
fn join(jobs: &mut [JobRow], records: Option<&Run>, m: &ModelCsv, file: &str, problems: &mut Vec<String>) {
    let tasks = records.map_or(0, |r| r.tasks.len());
    let missing = records.is_some_and(|r| r.problems.iter().any(|p| matches!(p, Problem::MissingJobs { .. })));
    if m.rows.len() != jobs.len() {
        problems.push(format!("{file}: {} cache-model row(s) for {} job record(s)", m.rows.len(), jobs.len()));
    }
    if tasks == 1 {
        for j in jobs.iter_mut() {
            j.model_row = usize::try_from(j.job.job).ok().filter(|&k| k < m.rows.len());
        }
    } else if !missing {
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by_key(|&i| (jobs[i].job.start, jobs[i].job.task, jobs[i].job.job));
        for (k, &i) in order.iter().enumerate().take(m.rows.len()) {
            jobs[i].model_row = Some(k);
        }
    } else {
        problems.push(format!(
            "{file}: not joined: with {tasks} tasks and records missing, rows cannot be matched to jobs"
        ));
    }
}

/// What a report needs of one scenario.
#[derive(Clone, Debug)]
pub struct ScenarioData {
    pub run: ScenarioRun,
    /// The run read from the console (`None`: no records at all).
    pub records: Option<Run>,
    pub jobs: Vec<JobRow>,
    pub model: Option<ModelCsv>,
    /// Everything wrong, in words (record problems, CSV problems, join).
    pub problems: Vec<String>,
}

impl ScenarioData {
    /// Reads one scenario of a capture.
    pub fn read(cap: &Capture, run: &ScenarioRun) -> Result<ScenarioData> {
        let cfile = cap.dir.join(&run.console);
        let bytes = std::fs::read(&cfile).with_context(|| format!("{}: cannot read", cfile.display()))?;
        let console = String::from_utf8_lossy(&bytes);
        let mut problems = Vec::new();
        let mut stream = record::read::read(&console);
        let records = match stream.runs.len() {
            0 => {
                problems.push(format!("{}: no job records", run.console));
                None
            }
            n => {
                if n > 1 {
                    problems.push(format!("{}: {n} runs in one console; the last one is used", run.console));
                }
                let mut r = stream.runs.pop();
                if let Some(r) = &mut r {
                    r.expect_scenario(&run.name);
                }
                r
            }
        };
        if let Some(r) = &records {
            problems.extend(r.problems.iter().map(|p| format!("{}: {p}", run.console)));
        }
        if run.timed_out {
            problems.push(format!("the run was stopped at its timeout after {:.1} s", run.elapsed_s));
        }
        let model = match &run.cache_model {
            None => None,
            Some(name) => {
                let f = cap.dir.join(name);
                match std::fs::read_to_string(&f) {
                    Ok(t) => Some(ModelCsv::parse(&t, name, &mut problems)),
                    Err(e) => {
                        problems.push(format!("{name}: cannot read ({e})"));
                        None
                    }
                }
            }
        };
        let mut jobs: Vec<JobRow> = records
            .as_ref()
            .map(|r| r.jobs.iter().map(|&job| JobRow { job, model_row: None }).collect())
            .unwrap_or_default();
        if let Some(m) = &model {
            join(&mut jobs, records.as_ref(), m, run.cache_model.as_deref().unwrap_or(""), &mut problems);
        }
        jobs.sort_by_key(|r| (r.job.task, r.job.job));
        Ok(ScenarioData { run: run.clone(), records, jobs, model, problems })
    }

    pub fn tasks(&self) -> &[TaskInfo] {
        self.records.as_ref().map_or(&[], |r| &r.tasks)
    }

    /// Jobs the header's task lines announce.
    pub fn jobs_expected(&self) -> u64 {
        self.tasks().iter().map(|t| u64::from(t.jobs)).sum()
    }

    /// Complete: a full run with no problem at all.
    pub fn complete(&self) -> bool {
        self.problems.is_empty() && self.records.as_ref().is_some_and(Run::is_complete)
    }

    /// The value of a cache-model column for a job.
    pub fn model_value(&self, j: &JobRow, column: &str) -> Option<u64> {
        self.model.as_ref()?.value(j.model_row?, column)
    }
}

/// The colour layout of a description's `partitioned` scenario (or, for
/// a description without scenarios, of the description as written); `None`
/// when it does not check out. Only for the colour-map plot of a capture
/// from hardware: a WCET run records the layout of every scenario it booted.
pub fn layout_from_toml(text: &str) -> Option<Layout> {
    use crate::description::{self, Options, Source};
    let src = Source { path: "description.toml".into(), text: text.to_string() };
    let opts = Options::default();
    let d = description::check(&src, sysdesc::Scenario::Partitioned, &opts)
        .description
        .or_else(|| description::check(&src, sysdesc::Scenario::Base, &opts).description)?;
    Some(d.layout())
}

/// Per task index: the jobs of that task (sorted by job number).
pub fn by_task(jobs: &[JobRow]) -> BTreeMap<u16, Vec<&JobRow>> {
    let mut m: BTreeMap<u16, Vec<&JobRow>> = BTreeMap::new();
    for j in jobs {
        m.entry(j.job.task).or_default().push(j);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_csv_keeps_extra_columns_and_reports_bad_rows() {
        let t = "job,complete,model_cycles,interference_llc,interference_llc_kernel\n0,1,100,0,3\n1,1,x,0,0\n1,1,200,,\n3,1,5,5\n";
        let mut p = Vec::new();
        let m = ModelCsv::parse(t, "a.csv", &mut p);
        assert_eq!(m.rows.len(), 2);
        assert_eq!(m.value(0, "interference_llc_kernel"), Some(3));
        assert_eq!(m.value(1, "model_cycles"), Some(200));
        assert_eq!(m.value(1, "interference_llc"), None);
        assert_eq!(
            p,
            vec![
                "a.csv:3: column model_cycles: \"x\" is not an integer (row skipped)".to_string(),
                "a.csv:5: 4 fields, the header has 5 (row skipped)".to_string()
            ]
        );
        let mut p = Vec::new();
        ModelCsv::parse("", "e.csv", &mut p);
        assert_eq!(p, vec!["e.csv: empty (no header)".to_string()]);
    }

    #[test]
    fn layout_from_the_default_description() {
        let t =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../workloads/configs/default.toml")).unwrap();
        let l = layout_from_toml(&t).unwrap();
        assert_eq!(l.colors, 16);
        assert_eq!(
            l.partitions[0],
            LayoutPartition { name: "rt".into(), colors: "0,2,4,6,8,10,12,14".into(), memory: Some(4 << 20) }
        );
        assert_eq!(layout_from_toml("x = 1"), None);
    }
}
