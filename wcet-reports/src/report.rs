//! The report folder: from a capture to `jobs.csv`, `summary.json`,
//! `histogram.txt`, `plots/`, `report.md` and a self-contained
//! `report.html`.
//!
//! The report is a pure function of the capture (no clock, no host
//! probing), so `prism report DIR` rebuilds it byte for byte. Files are
//! created with `create_new`: a report never overwrites anything, and a
//! folder that holds anything is never written into (except the fresh
//! folder of the run that is being reported, which holds only its
//! `capture/`). [`new_folder`] makes report folders atomically.

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::capture::{self, by_task, Capture, Layout, Platform, ScenarioData, SCENARIOS};
use crate::evt::{self, Pwcet, EXCEEDANCES};
use crate::histogram;
use crate::plot::{self, Series, Tail};
use crate::stats::{MeanMax, Stats};

/// Version tag of `summary.json`.
pub const SCHEMA: &str = "prism-wcet-summary/1";

/// Report options (histogram layout).
#[derive(Clone, Debug)]
pub struct Options {
    /// Bucket width in cycles (`None`: the smallest 1/2/5 step that fits
    /// every job in `buckets`).
    pub hist_width: Option<u64>,
    pub hist_buckets: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { hist_width: None, hist_buckets: 1000 }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PlatformOut {
    /// As the capture's `run.json` says (its fields stand at this level in
    /// `summary.json`).
    #[serde(flatten)]
    pub run: Platform,
    /// From the run headers (`None`: unknown).
    pub tsc_hz: Option<u64>,
    /// Counters the guest offered (empty: none, "not available").
    pub pmc: Vec<String>,
    /// What the guest said it ran on.
    pub guest_mode: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConfigOut {
    pub file: String,
    pub text: String,
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct MetricOut {
    /// `model_cycles` or `tsc_cycles`.
    pub name: String,
    pub unit: String,
    pub why: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct HistogramOut {
    pub bucket_cycles: u64,
    pub buckets: usize,
    pub overflows: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Interference {
    pub total: u64,
    pub mean: f64,
    pub max: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TaskOut {
    pub name: String,
    pub jobs_expected: u32,
    pub jobs: usize,
    /// Statistics of the report metric.
    pub stats: Option<Stats>,
    /// TSC execution time (`end - start`).
    pub tsc: Option<Stats>,
    /// Response time (`end - release`) in TSC cycles.
    pub response: Option<Stats>,
    pub deadline_misses: u64,
    pub preemptions: u64,
    /// Interference evictions per cache-model column (`interference_*`),
    /// empty where there is no cache model.
    pub interference: BTreeMap<String, Interference>,
    /// PMC deltas per counter; `null` = not available.
    pub pmc: BTreeMap<String, Option<MeanMax>>,
    pub pwcet: Option<Pwcet>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioOut {
    /// `complete`, `incomplete` or `no records`.
    pub status: String,
    pub timed_out: bool,
    pub elapsed_s: f64,
    pub problems: Vec<String>,
    pub jobs_expected: u64,
    pub jobs_received: usize,
    pub tasks: Vec<TaskOut>,
    pub layout: Option<Layout>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Scenarios {
    pub alone: Option<ScenarioOut>,
    pub shared: Option<ScenarioOut>,
    pub partitioned: Option<ScenarioOut>,
}

impl Scenarios {
    fn get(&self, name: &str) -> Option<&ScenarioOut> {
        match name {
            "alone" => self.alone.as_ref(),
            "shared" => self.shared.as_ref(),
            "partitioned" => self.partitioned.as_ref(),
            _ => None,
        }
    }

    fn slot(&mut self, name: &str) -> Option<&mut Option<ScenarioOut>> {
        match name {
            "alone" => Some(&mut self.alone),
            "shared" => Some(&mut self.shared),
            "partitioned" => Some(&mut self.partitioned),
            _ => None,
        }
    }

    /// Present scenarios in report order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &ScenarioOut)> {
        SCENARIOS.into_iter().filter_map(|s| self.get(s).map(|o| (s, o)))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct IsolationOut {
    pub alone_max: Option<u64>,
    pub shared_max: Option<u64>,
    pub partitioned_max: Option<u64>,
    pub partitioned_over_alone: Option<f64>,
    pub shared_over_alone: Option<f64>,
}

/// `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub schema: String,
    pub description: String,
    pub started: String,
    pub complete: bool,
    pub platform: PlatformOut,
    pub config: ConfigOut,
    pub metric: MetricOut,
    pub histogram: HistogramOut,
    pub scenarios: Scenarios,
    /// Per task name present in `alone`.
    pub isolation: BTreeMap<String, IsolationOut>,
}

/// Metric values of `jobs` (model cycles or TSC execution time).
fn metric_values(d: &ScenarioData, jobs: &[&capture::JobRow], model: bool) -> Vec<u64> {
    jobs.iter()
        .map(|j| if model { d.model_value(j, "model_cycles").unwrap_or(0) } else { j.job.tsc_cycles() })
        .collect()
}

fn task_out(d: &ScenarioData, t: u16, jobs: &[&capture::JobRow], model: bool) -> TaskOut {
    let info = d.tasks().get(usize::from(t));
    let values = metric_values(d, jobs, model);
    let tsc: Vec<u64> = jobs.iter().map(|j| j.job.tsc_cycles()).collect();
    let response: Vec<u64> = jobs.iter().map(|j| j.job.response()).collect();
    let mut interference = BTreeMap::new();
    if let Some(m) = &d.model {
        for c in m.columns.iter().filter(|c| c.starts_with("interference_")) {
            if let Some(mm) = MeanMax::of(jobs.iter().map(|j| d.model_value(j, c))) {
                let total = jobs.iter().filter_map(|j| d.model_value(j, c)).sum();
                interference
                    .insert(c["interference_".len()..].to_string(), Interference { total, mean: mm.mean, max: mm.max });
            }
        }
    }
    let pmc = record::Counter::ALL
        .into_iter()
        .map(|c| (c.name().to_string(), MeanMax::of(jobs.iter().map(|j| j.job.pmc.get(c)))))
        .collect();
    let xs: Vec<f64> = values.iter().map(|&v| v as f64).collect();
    TaskOut {
        name: d.records.as_ref().map_or_else(|| t.to_string(), |r| r.task_name(t)),
        jobs_expected: info.map_or(0, |i| i.jobs),
        jobs: jobs.len(),
        stats: Stats::of(&values),
        tsc: if model { Stats::of(&tsc) } else { None },
        response: Stats::of(&response),
        deadline_misses: jobs.iter().filter(|j| j.job.deadline_miss).count() as u64,
        preemptions: jobs.iter().map(|j| u64::from(j.job.preemptions)).sum(),
        interference,
        pmc,
        pwcet: (!xs.is_empty()).then(|| evt::analyse(&xs)),
    }
}

fn ratio(a: Option<u64>, b: Option<u64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0 => Some(a as f64 / b as f64),
        _ => None,
    }
}

/// Everything the outputs are made of.
struct Model {
    summary: Summary,
    data: Vec<ScenarioData>,
    model_metric: bool,
}

fn analyse(cap: &Capture, opts: &Options) -> Result<Model> {
    let mut data = Vec::new();
    for name in SCENARIOS {
        if let Some(run) = cap.info.scenarios.iter().find(|s| s.name == name) {
            data.push(ScenarioData::read(cap, run)?);
        }
    }
    let with_jobs: Vec<&ScenarioData> = data.iter().filter(|d| !d.jobs.is_empty()).collect();
    let model_metric = !with_jobs.is_empty()
        && with_jobs.iter().all(|d| d.jobs.iter().all(|j| d.model_value(j, "model_cycles").is_some()));
    let metric = if model_metric {
        MetricOut {
            name: "model_cycles".into(),
            unit: "model cycles".into(),
            why: "every job has a cache-model row: job time is the model's cycles (instructions x CPI + simulated \
                  data-access latency)"
                .into(),
        }
    } else {
        MetricOut {
            name: "tsc_cycles".into(),
            unit: "TSC cycles".into(),
            why: "job time is the guest TSC between the serialized start and end reads (end - start)".into(),
        }
    };
    let mut scenarios = Scenarios::default();
    for d in &data {
        let tasks = by_task(&d.jobs).into_iter().map(|(t, jobs)| task_out(d, t, &jobs, model_metric)).collect();
        let status = if d.records.is_none() {
            "no records"
        } else if d.complete() {
            "complete"
        } else {
            "incomplete"
        };
        let out = ScenarioOut {
            status: status.into(),
            timed_out: d.run.timed_out,
            elapsed_s: d.run.elapsed_s,
            problems: d.problems.clone(),
            jobs_expected: d.jobs_expected(),
            jobs_received: d.jobs.len(),
            tasks,
            layout: d.run.layout.clone(),
        };
        if let Some(slot) = scenarios.slot(&d.run.name) {
            *slot = Some(out);
        }
    }
    let mut isolation = BTreeMap::new();
    if let Some(alone) = &scenarios.alone {
        for t in &alone.tasks {
            let max = |s: &Option<ScenarioOut>| {
                s.as_ref()?.tasks.iter().find(|x| x.name == t.name)?.stats.as_ref().map(|s| s.max)
            };
            let (a, s, p) = (max(&scenarios.alone), max(&scenarios.shared), max(&scenarios.partitioned));
            isolation.insert(
                t.name.clone(),
                IsolationOut {
                    alone_max: a,
                    shared_max: s,
                    partitioned_max: p,
                    partitioned_over_alone: ratio(p, a),
                    shared_over_alone: ratio(s, a),
                },
            );
        }
    }
    let headers: Vec<&record::read::RunHeader> =
        data.iter().filter_map(|d| d.records.as_ref()?.header.as_ref()).collect();
    let tsc_hz = headers.iter().map(|h| h.tsc_hz).find(|&f| f > 0);
    let pmc = headers.first().map(|h| h.pmc.iter().map(|c| c.name().to_string()).collect()).unwrap_or_default();
    let platform = PlatformOut {
        run: cap.info.platform.clone(),
        tsc_hz,
        pmc,
        guest_mode: headers.first().map(|h| h.mode.clone()),
    };
    let all_max = data
        .iter()
        .flat_map(|d| {
            let jobs: Vec<&capture::JobRow> = d.jobs.iter().collect();
            metric_values(d, &jobs, model_metric)
        })
        .max()
        .unwrap_or(0);
    let width = opts.hist_width.unwrap_or_else(|| histogram::auto_width(all_max, opts.hist_buckets)).max(1);
    let buckets = histogram::buckets_for(all_max, width).min(opts.hist_buckets.max(1));
    let overflows = data
        .iter()
        .flat_map(|d| {
            let jobs: Vec<&capture::JobRow> = d.jobs.iter().collect();
            metric_values(d, &jobs, model_metric)
        })
        .filter(|&v| v / width >= buckets as u64)
        .count() as u64;
    // Complete when every scenario the run planned (all three, or those
    // `--scenario` chose) came back whole.
    let complete =
        !data.is_empty() && data.len() == cap.info.scenarios.len() && data.iter().all(ScenarioData::complete);
    let summary = Summary {
        schema: SCHEMA.into(),
        description: cap.info.description.clone(),
        started: cap.info.started.clone(),
        complete,
        platform,
        config: ConfigOut {
            file: cap.info.description_file.clone(),
            text: cap.description_text.clone(),
            sha256: format!("{:x}", Sha256::digest(cap.description_text.as_bytes())),
        },
        metric,
        histogram: HistogramOut { bucket_cycles: width, buckets, overflows },
        scenarios,
        isolation,
    };
    Ok(Model { summary, data, model_metric })
}

/// Creates `path` with `bytes`; fails if it exists.
fn create(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("{}: cannot create (a report never overwrites a file)", path.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", path.display()))
}

/// Copies the capture files into `dst` (a new folder).
fn copy_capture(cap: &Capture, dst: &Path) -> Result<()> {
    std::fs::create_dir(dst).with_context(|| format!("{}: cannot create", dst.display()))?;
    let mut names = vec!["run.json".to_string(), "description.toml".to_string()];
    names.extend(cap.info.raw.clone());
    for s in &cap.info.scenarios {
        names.push(s.console.clone());
        names.extend(s.cache_model.clone());
    }
    for n in names {
        let src = cap.dir.join(&n);
        if src.exists() {
            create(&dst.join(&n), &std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?)?;
        }
    }
    Ok(())
}

fn csv_cell(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn jobs_csv(m: &Model) -> String {
    let mut model_cols: Vec<String> = Vec::new();
    for d in &m.data {
        for c in d.model.iter().flat_map(|x| x.columns.iter()) {
            if !model_cols.contains(c) {
                model_cols.push(c.clone());
            }
        }
    }
    let mut s = String::from(
        "scenario,task,job,release,start,end,tsc_cycles,response,preemptions,deadline_miss,\
pmc_cycles,pmc_instructions,pmc_l2_misses,pmc_llc_misses",
    );
    // Plugin columns keep their names, except those that would read as
    // the record's own (the plugin's job ordinal and window flag).
    const PREFIXED: [&str; 4] = ["job", "complete", "scenario", "task"];
    for c in &model_cols {
        if PREFIXED.contains(&c.as_str()) {
            let _ = write!(s, ",model_{c}");
        } else {
            let _ = write!(s, ",{c}");
        }
    }
    s.push('\n');
    for d in &m.data {
        for j in &d.jobs {
            let r = &j.job;
            let task = d.records.as_ref().map_or_else(|| r.task.to_string(), |x| x.task_name(r.task));
            let _ = write!(
                s,
                "{},{task},{},{},{},{},{},{},{},{}",
                d.run.name,
                r.job,
                r.release,
                r.start,
                r.end,
                r.tsc_cycles(),
                r.response(),
                r.preemptions,
                u8::from(r.deadline_miss)
            );
            for c in record::Counter::ALL {
                let _ = write!(s, ",{}", csv_cell(r.pmc.get(c)));
            }
            for c in &model_cols {
                let _ = write!(s, ",{}", csv_cell(d.model_value(j, c)));
            }
            s.push('\n');
        }
    }
    s
}

/// Histogram columns and plot series: one per (scenario, task).
fn series(m: &Model) -> Vec<(usize, Series)> {
    let mut out = Vec::new();
    for d in &m.data {
        let ci = SCENARIOS.iter().position(|s| *s == d.run.name).unwrap_or(0);
        let s = m.summary.scenarios.get(&d.run.name);
        for (t, jobs) in by_task(&d.jobs) {
            let values = metric_values(d, &jobs, m.model_metric);
            let name = d.records.as_ref().map_or_else(|| t.to_string(), |r| r.task_name(t));
            let task = s.and_then(|s| s.tasks.iter().find(|x| x.name == name));
            let tail = match task.and_then(|t| t.pwcet.as_ref()) {
                None => Tail::Withheld("no jobs".into()),
                Some(p) => match (&p.withheld, &p.mbpta_cv.params, &p.mbpta_cv.withheld) {
                    (Some(why), _, _) => Tail::Withheld(why.clone()),
                    (None, Some(c), _) => {
                        let (c, end) = (c.clone(), c.pwcet(EXCEEDANCES[3]));
                        Tail::Fitted { exceedance: Box::new(move |x| c.exceedance(x)), end }
                    }
                    (None, None, why) => Tail::Withheld(why.clone().unwrap_or_else(|| "no MBPTA-CV fit".into())),
                },
            };
            let label = if m.data.iter().map(|d| d.tasks().len()).max().unwrap_or(0) > 1 {
                format!("{}/{name}", d.run.name)
            } else {
                d.run.name.clone()
            };
            out.push((ci, Series { label, values, tail }));
        }
    }
    out
}

/// Builds the report of `cap` in `out`. `out` must not exist, be empty
/// (e.g. made by [`new_folder`]), or be the folder that holds `cap` as its
/// `capture/` and nothing else.
pub fn build(cap: &Capture, out: &Path, opts: &Options) -> Result<Summary> {
    let own = out.join("capture");
    if !out.exists() {
        std::fs::create_dir_all(out.parent().unwrap_or(Path::new(".")))?;
        std::fs::create_dir(out).with_context(|| format!("{}: cannot create", out.display()))?;
    }
    let entries = std::fs::read_dir(out).with_context(|| format!("{}: cannot read the folder", out.display()))?.count();
    let holds_cap = own.canonicalize().ok() == cap.dir.canonicalize().ok();
    match entries {
        0 => copy_capture(cap, &own)?,
        1 if holds_cap => {}
        _ => bail!(
            "{}: exists and holds files; a report is never written into a folder that holds anything",
            out.display()
        ),
    }
    let m = analyse(cap, opts)?;
    create(&out.join("jobs.csv"), jobs_csv(&m).as_bytes())?;
    create(&out.join("summary.json"), (serde_json::to_string_pretty(&m.summary)? + "\n").as_bytes())?;
    let series = series(&m);
    let cols: Vec<histogram::Column<'_>> =
        series.iter().map(|(_, s)| histogram::Column { label: s.label.clone(), values: &s.values }).collect();
    let comments = vec![
        format!("Prism WCET histogram of {} ({}), {}", m.summary.description, m.summary.metric.unit, m.summary.started),
        format!(
            "One column per scenario; job time in buckets of {} {}",
            m.summary.histogram.bucket_cycles, m.summary.metric.unit
        ),
    ];
    let hist = histogram::render(&cols, m.summary.histogram.bucket_cycles, m.summary.histogram.buckets, &comments);
    create(&out.join("histogram.txt"), hist.as_bytes())?;
    let plots = out.join("plots");
    std::fs::create_dir(&plots)?;
    let mut images: Vec<(String, String, Vec<u8>)> = Vec::new();
    let unit = m.summary.metric.unit.clone();
    for (ci, s) in &series {
        let name = format!("histogram-{}", s.label.replace('/', "-"));
        let h = plot::Histogram {
            title: format!("{}: job times", s.label),
            unit: unit.clone(),
            series: vec![(*ci, s)],
            log: false,
        };
        images.push((name.clone(), format!("Histogram, {}", s.label), plot::render(&h, &plots, &name)?));
    }
    let all: Vec<(usize, &Series)> = series.iter().map(|(c, s)| (*c, s)).collect();
    if !all.is_empty() {
        let o = plot::Histogram {
            title: "All scenarios (log counts)".into(),
            unit: unit.clone(),
            series: all.clone(),
            log: true,
        };
        images.push((
            "overlay".into(),
            "All scenarios overlaid, log counts".into(),
            plot::render(&o, &plots, "overlay")?,
        ));
        let e = plot::Exceedance { unit: unit.clone(), series: all.clone() };
        images.push(("exceedance".into(), e.title(), plot::render(&e, &plots, "exceedance")?));
        let t = plot::TimeSeries { unit: unit.clone(), series: all };
        images.push(("timeseries".into(), "Job time per job".into(), plot::render(&t, &plots, "timeseries")?));
    }
    let rows: Vec<(String, &Layout)> =
        m.summary.scenarios.iter().filter_map(|(n, s)| s.layout.as_ref().map(|l| (n.to_string(), l))).collect();
    let cm = plot::ColorMap { rows };
    images.push(("colormap".into(), "Page colours per partition".into(), plot::render(&cm, &plots, "colormap")?));
    create(&out.join("report.md"), markdown(&m.summary, &images).as_bytes())?;
    create(&out.join("report.html"), html(&m.summary, &images).as_bytes())?;
    Ok(m.summary)
}

/// `1234567.8` -> `1234568`; `None` -> `-`.
fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.0}"))
}

fn ratio_text(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.3}"))
}

/// Rows of the main table: (label, cells...).
fn stats_rows(s: &Summary) -> (Vec<String>, Vec<Vec<String>>) {
    let mut head = vec!["scenario".to_string(), "status".into(), "jobs".into()];
    head.extend(["min", "mean", "median", "p90", "p99", "p99.9", "max", "std dev", "misses"].map(String::from));
    head.push("pWCET 1e-9 (MBPTA-CV)".into());
    let mut rows = Vec::new();
    for (name, sc) in s.scenarios.iter() {
        if sc.tasks.is_empty() {
            let mut r = vec![name.to_string(), sc.status.clone(), "0".into()];
            r.extend(std::iter::repeat_n("-".to_string(), 10));
            rows.push(r);
        }
        for t in &sc.tasks {
            let label = if sc.tasks.len() > 1 { format!("{name}/{}", t.name) } else { name.to_string() };
            let mut r = vec![label, sc.status.clone(), format!("{}/{}", t.jobs, t.jobs_expected)];
            match &t.stats {
                Some(st) => r.extend([
                    st.min.to_string(),
                    format!("{:.0}", st.mean),
                    st.median.to_string(),
                    st.p90.to_string(),
                    st.p99.to_string(),
                    st.p999.to_string(),
                    st.max.to_string(),
                    format!("{:.0}", st.std_dev),
                ]),
                None => r.extend(std::iter::repeat_n("-".to_string(), 8)),
            }
            r.push(t.deadline_misses.to_string());
            r.push(t.pwcet.as_ref().map_or("-".into(), |p| match &p.withheld {
                Some(_) => "withheld".into(),
                None => num(p.mbpta_cv.pwcet[2].value),
            }));
            rows.push(r);
        }
    }
    (head, rows)
}

/// The summary table printed at the end of a run.
pub fn table(s: &Summary) -> String {
    let (head, rows) = stats_rows(s);
    let mut w: Vec<usize> = head.iter().map(String::len).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line =
        |r: &[String]| r.iter().enumerate().map(|(i, c)| format!("{c:>w$}", w = w[i])).collect::<Vec<_>>().join("  ");
    let mut t = format!(
        "{} ({}), {} mode, {} on {} ({}), {}:\n",
        s.description,
        s.metric.unit,
        s.platform.run.mode,
        s.platform.run.accel,
        s.platform.run.machine,
        s.platform.run.cpu,
        s.platform.run.qemu.as_deref().unwrap_or("no QEMU")
    );
    t.push_str(&line(&head));
    t.push('\n');
    for r in &rows {
        t.push_str(&line(r));
        t.push('\n');
    }
    for (task, i) in &s.isolation {
        let _ = writeln!(
            t,
            "isolation ({task}, max): partitioned/alone {}, shared/alone {}",
            ratio_text(i.partitioned_over_alone),
            ratio_text(i.shared_over_alone)
        );
    }
    if !s.complete {
        t.push_str("INCOMPLETE: see the problems in the report\n");
    }
    t
}

fn pwcet_rows(t: &TaskOut) -> Vec<(String, Vec<String>, Option<String>)> {
    let Some(p) = &t.pwcet else { return Vec::new() };
    let vals = |b: &[evt::Bound]| b.iter().map(|b| num(b.value)).collect::<Vec<_>>();
    // A fit held back for the sample's own reason (printed above the table) says so briefly.
    let note = |w: &Option<String>| match w {
        Some(w) if Some(w) == p.withheld.as_ref() => Some("withheld (see above)".to_string()),
        other => other.clone(),
    };
    vec![
        ("MBPTA-CV exponential tail".into(), vals(&p.mbpta_cv.pwcet), note(&p.mbpta_cv.withheld)),
        ("Gumbel, block maxima".into(), vals(&p.gumbel.pwcet), note(&p.gumbel.withheld)),
        ("GEV, block maxima".into(), vals(&p.gev.pwcet), note(&p.gev.withheld)),
        ("GPD, peaks over threshold".into(), vals(&p.gpd.pwcet), note(&p.gpd.withheld)),
    ]
}

fn iid_text(p: &Pwcet) -> String {
    let t = |name: &str, x: &Option<evt::Test>| match x {
        Some(x) => format!("{name} p = {:.3} ({})", x.p_value, if x.pass { "pass" } else { "FAIL" }),
        None => format!("{name}: not applicable"),
    };
    format!(
        "{}; {}; {} (significance 0.05 each)",
        t(&format!("Ljung-Box ({} lags)", p.iid.lags), &p.iid.ljung_box),
        t("Wald-Wolfowitz runs", &p.iid.runs),
        t("KS between halves", &p.iid.ks_halves)
    )
}

fn fit_params(p: &Pwcet) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(c) = &p.mbpta_cv.params {
        v.push(format!(
            "MBPTA-CV: threshold {:.0}, {} exceedances, CV {:.3}, mean exceedance {:.1}",
            c.u, c.k, c.cv, c.beta
        ));
    }
    if let Some(g) = &p.gumbel.params {
        v.push(format!("Gumbel: μ {:.1}, σ {:.2}, blocks of {} ({} blocks)", g.gev.mu, g.gev.sigma, g.block, g.blocks));
    }
    if let Some(g) = &p.gev.params {
        v.push(format!(
            "GEV: μ {:.1}, σ {:.2}, ξ {:.4} (Coles sign; scipy c = {:.4})",
            g.gev.mu, g.gev.sigma, g.gev.xi, -g.gev.xi
        ));
    }
    if let Some(g) = &p.gpd.params {
        v.push(format!(
            "GPD: threshold {:.0}, σ {:.2}, ξ {:.4}, {:.1} % of jobs above",
            g.u,
            g.sigma,
            g.xi,
            100.0 * g.rate
        ));
    }
    v
}

fn markdown(s: &Summary, images: &[(String, String, Vec<u8>)]) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# WCET report: {}\n", s.description);
    if !s.complete {
        m.push_str(
            "**INCOMPLETE RUN**: some data is missing or damaged; see *Problems*. Everything captured is shown.\n\n",
        );
    }
    let (p, run) = (&s.platform, &s.platform.run);
    let _ = writeln!(m, "| run | |\n|---|---|");
    for (k, v) in [
        ("started", s.started.clone()),
        ("machine", run.machine.clone()),
        ("CPU", format!("{} ({} cores)", run.cpu, run.cores)),
        ("mode", run.mode.clone()),
        ("accelerator", run.accel.clone()),
        ("QEMU", run.qemu.clone().unwrap_or_else(|| "none".into())),
        ("TSC", p.tsc_hz.map_or("unknown".into(), |f| format!("{f} Hz"))),
        ("PMC", if p.pmc.is_empty() { "not available".into() } else { p.pmc.join(", ") }),
        ("description", format!("`{}` (sha256 {})", s.config.file, s.config.sha256)),
        ("metric", format!("{}: {}", s.metric.unit, s.metric.why)),
    ] {
        let _ = writeln!(m, "| {k} | {v} |");
    }
    if run.mode == "tcg" {
        m.push_str("\nPlain TCG: these figures prove the pipeline, never the cache effect.\n");
    }
    m.push_str("\n## Summary\n\n");
    let (head, rows) = stats_rows(s);
    let _ = writeln!(m, "| {} |", head.join(" | "));
    let _ = writeln!(m, "|{}|", vec!["---"; head.len()].join("|"));
    for r in rows {
        let _ = writeln!(m, "| {} |", r.join(" | "));
    }
    m.push_str("\n## Isolation\n\n| task | alone max | shared max | partitioned max | partitioned/alone | shared/alone |\n|---|---|---|---|---|---|\n");
    for (t, i) in &s.isolation {
        let f = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
        let _ = writeln!(
            m,
            "| {t} | {} | {} | {} | {} | {} |",
            f(i.alone_max),
            f(i.shared_max),
            f(i.partitioned_max),
            ratio_text(i.partitioned_over_alone),
            ratio_text(i.shared_over_alone)
        );
    }
    m.push_str("\n## pWCET\n\nPer-job exceedance probability; see the README for the method and its caveats.\n");
    for (name, sc) in s.scenarios.iter() {
        for t in &sc.tasks {
            let _ = writeln!(m, "\n### {name}: {}\n", t.name);
            if let Some(p) = &t.pwcet {
                let _ = writeln!(m, "i.i.d. tests: {}.\n", iid_text(p));
                if let Some(w) = &p.withheld {
                    let _ = writeln!(m, "**No pWCET: {w}.**\n");
                }
                let _ = writeln!(m, "| method | 1e-3 | 1e-6 | 1e-9 | 1e-12 | note |\n|---|---|---|---|---|---|");
                for (meth, v, w) in pwcet_rows(t) {
                    let _ = writeln!(m, "| {meth} | {} | {} |", v.join(" | "), w.unwrap_or_default());
                }
                for l in fit_params(p) {
                    let _ = writeln!(m, "\n- {l}");
                }
            }
            let _ = writeln!(
                m,
                "\nTSC execution time: {}; response time: {}; preemptions: {}.",
                t.tsc
                    .as_ref()
                    .or(t.stats.as_ref().filter(|_| s.metric.name == "tsc_cycles"))
                    .map_or("-".into(), |x| format!("min {} max {}", x.min, x.max)),
                t.response.as_ref().map_or("-".into(), |x| format!("min {} max {}", x.min, x.max)),
                t.preemptions
            );
            if !t.interference.is_empty() {
                let v: Vec<String> =
                    t.interference.iter().map(|(k, i)| format!("{k} total {} max {}", i.total, i.max)).collect();
                let _ = writeln!(m, "\nInterference evictions: {}.", v.join("; "));
            }
            let pm: Vec<String> = t
                .pmc
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k} mean {:.0} max {}", v.mean, v.max),
                    None => format!("{k} not available"),
                })
                .collect();
            let _ = writeln!(m, "\nPMC: {}.", pm.join("; "));
        }
    }
    m.push_str("\n## Plots\n\n");
    for (name, title, _) in images {
        let _ = writeln!(m, "![{title}](plots/{name}.svg)\n");
    }
    m.push_str("## Problems\n\n");
    let mut any = false;
    for (name, sc) in s.scenarios.iter() {
        for p in &sc.problems {
            let _ = writeln!(m, "- {name}: {p}");
            any = true;
        }
    }
    for missing in SCENARIOS.iter().filter(|n| s.scenarios.get(n).is_none()) {
        let _ = writeln!(m, "- {missing}: scenario not captured");
        any = true;
    }
    if !any {
        m.push_str("None.\n");
    }
    let _ = writeln!(m, "\n## Description\n\n`{}`:\n\n```toml\n{}\n```", s.config.file, s.config.text.trim_end());
    m
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn html(s: &Summary, images: &[(String, String, Vec<u8>)]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>WCET report: {}</title>\n<style>\n\
body{{font-family:sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;color:#222}}\n\
table{{border-collapse:collapse;margin:1em 0;font-size:90%}}td,th{{border:1px solid #bbb;padding:3px 6px;text-align:right}}\n\
th{{background:#eee}}td:first-child{{text-align:left}}.warn{{background:#fdd;border:1px solid #c00;padding:.6em}}\n\
pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}img{{max-width:100%;border:1px solid #ddd}}\n\
</style>\n</head>\n<body>\n<h1>WCET report: {}</h1>\n",
        esc(&s.description),
        esc(&s.description)
    );
    if !s.complete {
        h.push_str("<p class=\"warn\"><b>INCOMPLETE RUN</b>: some data is missing or damaged; see <i>Problems</i>. Everything captured is shown.</p>\n");
    }
    // The Markdown tables carry the same content; render them as HTML.
    let md = markdown(s, &[]);
    let mut in_table = false;
    let mut in_code = false;
    for line in md.lines() {
        if line.starts_with("```") {
            if in_code {
                h.push_str("</pre>\n");
            } else {
                h.push_str("<pre>");
            }
            in_code = !in_code;
            continue;
        }
        if in_code {
            h.push_str(&esc(line));
            h.push('\n');
            continue;
        }
        if line.starts_with('|') {
            if line.starts_with("|---") || line.starts_with("|---|") {
                continue;
            }
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            if !in_table {
                h.push_str("<table>\n");
                in_table = true;
                let _ = writeln!(
                    h,
                    "<tr>{}</tr>",
                    cells.iter().map(|c| format!("<th>{}</th>", inline(c))).collect::<String>()
                );
            } else {
                let _ = writeln!(
                    h,
                    "<tr>{}</tr>",
                    cells.iter().map(|c| format!("<td>{}</td>", inline(c))).collect::<String>()
                );
            }
            continue;
        }
        if in_table {
            h.push_str("</table>\n");
            in_table = false;
        }
        if line.starts_with("# ") || line.starts_with("**INCOMPLETE") {
            continue; // title and banner are above
        }
        if let Some(t) = line.strip_prefix("### ") {
            let _ = writeln!(h, "<h3>{}</h3>", esc(t));
        } else if let Some(t) = line.strip_prefix("## ") {
            let _ = writeln!(h, "<h2>{}</h2>", esc(t));
            if t == "Plots" {
                for (name, title, png) in images {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
                    let _ = writeln!(
                        h,
                        "<figure id=\"{name}\"><img alt=\"{}\" src=\"data:image/png;base64,{b64}\"><figcaption>{}</figcaption></figure>",
                        esc(title),
                        esc(title)
                    );
                }
            }
        } else if let Some(t) = line.strip_prefix("- ") {
            let _ = writeln!(h, "<p>&bull; {}</p>", inline(t));
        } else if !line.trim().is_empty() {
            let _ = writeln!(h, "<p>{}</p>", inline(line));
        }
    }
    if in_table {
        h.push_str("</table>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// Escapes text and renders `**bold**` and `` `code` `` spans.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut bold = false;
    let mut code = false;
    let e = esc(s);
    let mut rest = e.as_str();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("**") {
            out.push_str(if bold { "</b>" } else { "<b>" });
            bold = !bold;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('`') {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = r;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if code {
        out.push_str("</code>");
    }
    if bold {
        out.push_str("</b>");
    }
    out
}

/// Creates the new folder `parent/name` (suffixed `-2`, `-3` ... while
/// taken, also by a run that started in the same second) and returns it:
/// an earlier report is never written into.
pub fn new_folder(parent: &Path, name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
    let mut n = 1;
    loop {
        let dir = if n == 1 { parent.join(name) } else { parent.join(format!("{name}-{n}")) };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e).with_context(|| format!("{}: cannot create", dir.display())),
        }
    }
}

/// Points `root/<description>/latest` at `dir` (replacing an older link,
/// never a file or folder).
pub fn link_latest(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else { return Ok(()) };
    let latest = parent.join("latest");
    if let Ok(md) = std::fs::symlink_metadata(&latest) {
        if !md.file_type().is_symlink() {
            bail!("{}: exists and is not a link; not replacing it", latest.display());
        }
    }
    let tmp = parent.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let target = dir.file_name().map(PathBuf::from).unwrap_or_else(|| dir.to_path_buf());
    std::os::unix::fs::symlink(&target, &tmp).with_context(|| format!("linking {}", tmp.display()))?;
    std::fs::rename(&tmp, &latest).with_context(|| format!("replacing {}", latest.display()))?;
    Ok(())
}

/// `compare`: two summaries side by side.
pub fn compare(a: &Path, b: &Path) -> Result<String> {
    let load = |d: &Path| -> Result<serde_json::Value> {
        let f = d.join("summary.json");
        let t = std::fs::read_to_string(&f)
            .with_context(|| format!("{}: cannot read (is it a report folder?)", f.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&t).with_context(|| format!("{}: invalid JSON", f.display()))?;
        if v["schema"] != SCHEMA {
            bail!("{}: schema {}, expected {SCHEMA:?}", f.display(), v["schema"]);
        }
        Ok(v)
    };
    let (va, vb) = (load(a)?, load(b)?);
    let mut t = String::new();
    let label = |v: &serde_json::Value, d: &Path| {
        format!(
            "{} [{} {}, {}]",
            d.display(),
            v["platform"]["mode"].as_str().unwrap_or("?"),
            v["platform"]["accel"].as_str().unwrap_or("?"),
            v["metric"]["unit"].as_str().unwrap_or("?")
        )
    };
    let _ = writeln!(t, "A: {}\nB: {}", label(&va, a), label(&vb, b));
    let _ = writeln!(t, "{:<24} {:>8} {:>14} {:>14} {:>14} {:>9}", "scenario/task", "", "A", "B", "B - A", "B / A");
    for sc in SCENARIOS {
        let tasks = |v: &serde_json::Value| v["scenarios"][sc]["tasks"].as_array().cloned().unwrap_or_default();
        let (ta, tb) = (tasks(&va), tasks(&vb));
        for x in &ta {
            let name = x["name"].as_str().unwrap_or("?");
            let y = tb.iter().find(|y| y["name"] == x["name"]).cloned().unwrap_or_default();
            for (k, path) in [
                ("max", &["stats", "max"][..]),
                ("p99", &["stats", "p99"][..]),
                ("median", &["stats", "median"][..]),
                ("misses", &["deadline_misses"][..]),
            ] {
                let get = |v: &serde_json::Value| path.iter().fold(v, |v, p| &v[*p]).as_f64();
                let (fa, fb) = (get(x), get(&y));
                let diff = fa.zip(fb).map(|(p, q)| q - p);
                let rel = fa.zip(fb).filter(|(p, _)| *p != 0.0).map(|(p, q)| q / p);
                let _ = writeln!(
                    t,
                    "{:<24} {:>8} {:>14} {:>14} {:>14} {:>9}",
                    format!("{sc}/{name}"),
                    k,
                    num(fa),
                    num(fb),
                    num(diff),
                    ratio_text(rel)
                );
            }
        }
    }
    for (k, key) in [("partitioned/alone", "partitioned_over_alone"), ("shared/alone", "shared_over_alone")] {
        if let Some(iso) = va["isolation"].as_object() {
            for (task, x) in iso {
                let y = &vb["isolation"][task.as_str()];
                let _ = writeln!(
                    t,
                    "isolation {task} {k}: A {} B {}",
                    ratio_text(x[key].as_f64()),
                    ratio_text(y[key].as_f64())
                );
            }
        }
    }
    Ok(t)
}
