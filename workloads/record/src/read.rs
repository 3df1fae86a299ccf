//! The host reader: every run in a console capture, with what went wrong.
//!
//! [`read`] never fails and never panics: it keeps every record line whose
//! checksum holds and says precisely what is missing or wrong (a bad
//! checksum and its line, jobs missing per task, duplicates, a stream cut
//! before its trailer, a header that does not match what follows). Lines
//! without [`PREFIX`] are other console output and are skipped.
//!
//! A run starts at an `H` line. Record lines outside a run (after a header
//! that failed its checksum, or after a trailer) start a run without a
//! header, so their jobs are still kept.

use std::collections::BTreeMap;
use std::fmt;
use std::string::{String, ToString};
use std::vec::Vec;

use crate::{valid_name, Counter, Job, PmcSet, PREFIX, VERSION};

/// The header of a run, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunHeader {
    pub version: u32,
    pub scenario: String,
    pub mode: String,
    pub tsc_hz: u64,
    pub pmc: PmcSet,
    /// Number of tasks the header announces.
    pub tasks: u16,
    /// Line of the header (1-based).
    pub line: usize,
}

/// A task line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    pub name: String,
    /// Jobs the task was to run.
    pub jobs: u32,
}

/// The trailer of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    pub records: u32,
    pub checksum: u32,
    pub line: usize,
}

/// A progress line (written during a run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub task: u16,
    pub done: u32,
    pub total: u32,
}

/// What is wrong with a run; line numbers are 1-based lines of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A record line whose checksum does not hold (or that has none): dropped.
    BadChecksum { line: usize },
    /// A record line with a valid checksum that does not parse: dropped.
    Malformed { line: usize, reason: String },
    /// A header of a format version this reader does not know; its run is skipped.
    UnsupportedVersion { line: usize, version: u32 },
    /// Record lines without a header before them (the header was lost).
    MissingHeader { line: usize },
    /// The task lines do not match the header, or a job came before them;
    /// or the run is not of the scenario the host booted.
    HeaderMismatch { line: usize, reason: String },
    /// A job of a task index that no task line names: dropped.
    UnknownTask { line: usize, task: u16 },
    /// A job number at or beyond the task's job count: dropped.
    JobOutOfRange { line: usize, task: String, job: u32, jobs: u32 },
    /// A second record of the same job: dropped (the first is kept).
    Duplicate { line: usize, first: usize, task: String, job: u32 },
    /// TSC values out of order (release <= start <= end does not hold): kept.
    TscOrder { line: usize, task: String, job: u32 },
    /// Jobs of a task that never arrived.
    MissingJobs { task: String, count: u32, ranges: Vec<(u32, u32)> },
    /// The stream ended (or a new header came) before the run's trailer.
    Truncated { last_line: usize },
    /// The trailer counts a different number of job lines than arrived.
    CountMismatch { line: usize, trailer: u32, received: u32 },
    /// Every line's checksum holds but the trailer's checksum over them
    /// does not: lines were lost, repeated or reordered.
    StreamChecksum { line: usize },
}

fn ranges_text(r: &[(u32, u32)], count: u32) -> String {
    let mut s = String::new();
    for (i, (a, b)) in r.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        if a == b {
            s.push_str(&a.to_string());
        } else {
            s.push_str(&std::format!("{a}-{b}"));
        }
    }
    let shown: u32 = r.iter().map(|(a, b)| b - a + 1).sum();
    if shown < count {
        s.push_str(", ...");
    }
    s
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::BadChecksum { line } => write!(f, "line {line}: record fails its checksum (dropped)"),
            Problem::Malformed { line, reason } => write!(f, "line {line}: malformed record: {reason} (dropped)"),
            Problem::UnsupportedVersion { line, version } => {
                write!(f, "line {line}: record format version {version}, this reader knows {VERSION} (run skipped)")
            }
            Problem::MissingHeader { line } => write!(f, "line {line}: records without a run header (header lost)"),
            Problem::HeaderMismatch { line, reason } => write!(f, "line {line}: header mismatch: {reason}"),
            Problem::UnknownTask { line, task } => write!(f, "line {line}: job of unknown task {task} (dropped)"),
            Problem::JobOutOfRange { line, task, job, jobs } => {
                write!(f, "line {line}: job {job} of task {task}, which has jobs 0..{jobs} (dropped)")
            }
            Problem::Duplicate { line, first, task, job } => {
                write!(f, "line {line}: duplicate of job {job} of task {task} (first on line {first}; dropped)")
            }
            Problem::TscOrder { line, task, job } => {
                write!(f, "line {line}: job {job} of task {task}: TSC not monotone (release <= start <= end fails)")
            }
            Problem::MissingJobs { task, count, ranges } => {
                write!(f, "task {task}: {count} job(s) missing: {}", ranges_text(ranges, *count))
            }
            Problem::Truncated { last_line } => {
                write!(f, "stream truncated: no trailer after the last record (line {last_line})")
            }
            Problem::CountMismatch { line, trailer, received } => {
                write!(f, "line {line}: trailer counts {trailer} job record(s), {received} arrived")
            }
            Problem::StreamChecksum { line } => {
                write!(
                    f,
                    "line {line}: trailer checksum does not match the records (lines lost, repeated or reordered)"
                )
            }
        }
    }
}

/// One run as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Run {
    pub header: Option<RunHeader>,
    pub tasks: Vec<TaskInfo>,
    /// Accepted jobs, in stream order.
    pub jobs: Vec<Job>,
    pub trailer: Option<Trailer>,
    pub problems: Vec<Problem>,
    /// First and last input line of the run.
    pub lines: (usize, usize),
}

impl Run {
    /// A header and a trailer, and nothing wrong in between.
    pub fn is_complete(&self) -> bool {
        self.header.is_some() && self.trailer.is_some() && self.problems.is_empty()
    }

    pub fn scenario(&self) -> Option<&str> {
        self.header.as_ref().map(|h| h.scenario.as_str())
    }

    /// Records a mismatch if the run is not of `scenario`.
    pub fn expect_scenario(&mut self, scenario: &str) {
        if let Some(h) = &self.header {
            if h.scenario != scenario {
                let reason = std::format!("run of scenario {:?}, expected {scenario:?}", h.scenario);
                self.problems.push(Problem::HeaderMismatch { line: h.line, reason });
            }
        }
    }

    /// The task name of index `t` (or its index as text).
    pub fn task_name(&self, t: u16) -> String {
        self.tasks.get(usize::from(t)).map(|t| t.name.clone()).unwrap_or_else(|| t.to_string())
    }
}

/// Everything [`read`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stream {
    pub runs: Vec<Run>,
    /// Progress lines, in order.
    pub progress: Vec<Progress>,
}

/// How a progress line starts.
const PROGRESS: &str = "@prism-rec P ";

/// A checked record line: kind and fields.
struct Line<'a> {
    kind: &'a str,
    fields: Vec<&'a str>,
    crc: u32,
}

/// `None`: not a record line. `Some(Err)`: a record line whose checksum fails.
fn record_line(text: &str) -> Option<Result<Line<'_>, ()>> {
    let at = text.find(PREFIX)?;
    let rec = text[at..].trim_end_matches(['\r', '\n']);
    let Some((body, crc)) = rec.rsplit_once(" *") else { return Some(Err(())) };
    if crc.len() != 8 || !crc.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(Err(()));
    }
    let crc = u32::from_str_radix(crc, 16).map_err(|_| ());
    let Ok(crc) = crc else { return Some(Err(())) };
    if crc32fast::hash(body.as_bytes()) != crc {
        return Some(Err(()));
    }
    let mut words = body[PREFIX.len()..].split(' ');
    // The body after the prefix starts with a space.
    if words.next() != Some("") {
        return Some(Err(()));
    }
    let kind = words.next().unwrap_or("");
    Some(Ok(Line { kind, fields: words.collect(), crc }))
}

/// Parses a progress line, if `text` is one with a valid checksum.
pub fn progress_of(text: &str) -> Option<Progress> {
    let l = record_line(text)?.ok()?;
    if l.kind != "P" || l.fields.len() != 3 {
        return None;
    }
    Some(Progress {
        task: l.fields[0].parse().ok()?,
        done: l.fields[1].parse().ok()?,
        total: l.fields[2].parse().ok()?,
    })
}

fn num<T: std::str::FromStr>(fields: &[&str], i: usize, what: &str) -> Result<T, String> {
    let s = fields.get(i).ok_or_else(|| std::format!("no {what}"))?;
    s.parse().map_err(|_| std::format!("{what} {s:?} is not a number"))
}

fn opt_num(fields: &[&str], i: usize, what: &str) -> Result<Option<u64>, String> {
    match fields.get(i) {
        Some(&"-") => Ok(None),
        _ => num(fields, i, what).map(Some),
    }
}

fn parse_pmc_set(s: &str) -> Result<PmcSet, String> {
    if s == "-" {
        return Ok(PmcSet::NONE);
    }
    let mut set = PmcSet::NONE;
    for name in s.split(',') {
        set = set.with(Counter::from_name(name).ok_or_else(|| std::format!("unknown counter {name:?}"))?);
    }
    Ok(set)
}

fn parse_header(f: &[&str], line: usize) -> Result<RunHeader, String> {
    if f.len() != 6 {
        return Err(std::format!("header has {} fields, expected 6", f.len()));
    }
    let name = |i: usize, what: &str| -> Result<String, String> {
        if valid_name(f[i]) {
            Ok(f[i].to_string())
        } else {
            Err(std::format!("{what} {:?} is not a valid name", f[i]))
        }
    };
    Ok(RunHeader {
        version: num(f, 0, "version")?,
        scenario: name(1, "scenario")?,
        mode: name(2, "mode")?,
        tsc_hz: num(f, 3, "tsc_hz")?,
        pmc: parse_pmc_set(f[4])?,
        tasks: num(f, 5, "task count")?,
        line,
    })
}

fn parse_job(f: &[&str]) -> Result<Job, String> {
    if f.len() != 11 {
        return Err(std::format!("job record has {} fields, expected 11", f.len()));
    }
    let mut j = Job {
        task: num(f, 0, "task")?,
        job: num(f, 1, "job")?,
        release: num(f, 2, "release")?,
        start: num(f, 3, "start")?,
        end: num(f, 4, "end")?,
        preemptions: num(f, 5, "preemptions")?,
        deadline_miss: match f[6] {
            "0" => false,
            "1" => true,
            other => return Err(std::format!("deadline-miss flag {other:?} is not 0 or 1")),
        },
        ..Job::default()
    };
    for (i, c) in Counter::ALL.into_iter().enumerate() {
        j.pmc.set(c, opt_num(f, 7 + i, c.name())?);
    }
    Ok(j)
}

/// The run being read.
struct Open {
    run: Run,
    /// Line of each accepted job, by (task, job).
    seen: BTreeMap<(u16, u32), usize>,
    /// Job lines with a valid checksum (what the trailer counts).
    received: u32,
    sum: crc32fast::Hasher,
    /// Lines dropped as damaged (bad checksum or malformed).
    bad_lines: u32,
    /// A header of an unknown version: skip until the next header.
    skip: bool,
}

impl Open {
    fn new(line: usize) -> Open {
        Open {
            run: Run { lines: (line, line), ..Run::default() },
            seen: BTreeMap::new(),
            received: 0,
            sum: crc32fast::Hasher::new(),
            bad_lines: 0,
            skip: false,
        }
    }

    fn problem(&mut self, p: Problem) {
        if matches!(p, Problem::BadChecksum { .. } | Problem::Malformed { .. }) {
            self.bad_lines += 1;
        }
        self.run.problems.push(p);
    }

    fn task(&mut self, l: &Line<'_>, line: usize) {
        let index: Result<usize, _> = num(&l.fields, 0, "task index");
        let parsed = (|| -> Result<TaskInfo, String> {
            if l.fields.len() != 3 {
                return Err(std::format!("task record has {} fields, expected 3", l.fields.len()));
            }
            if !valid_name(l.fields[1]) {
                return Err(std::format!("task name {:?} is not a valid name", l.fields[1]));
            }
            Ok(TaskInfo { name: l.fields[1].to_string(), jobs: num(&l.fields, 2, "job count")? })
        })();
        match (index, parsed) {
            (Ok(i), Ok(t)) => {
                let announced = self.run.header.as_ref().map(|h| usize::from(h.tasks));
                if i != self.run.tasks.len() {
                    let reason = std::format!("task line of index {i}, expected index {}", self.run.tasks.len());
                    self.problem(Problem::HeaderMismatch { line, reason });
                } else if announced.is_some_and(|n| i >= n) {
                    let reason =
                        std::format!("task {i} beyond the {} task(s) the header announces", announced.unwrap_or(0));
                    self.problem(Problem::HeaderMismatch { line, reason });
                } else if !self.seen.is_empty() {
                    self.problem(Problem::HeaderMismatch { line, reason: "task line after job records".into() });
                } else {
                    self.run.tasks.push(t);
                }
            }
            (Err(reason), _) | (_, Err(reason)) => self.problem(Problem::Malformed { line, reason }),
        }
    }

    fn job(&mut self, l: &Line<'_>, line: usize) {
        self.received += 1;
        let j = match parse_job(&l.fields) {
            Ok(j) => j,
            Err(reason) => return self.problem(Problem::Malformed { line, reason }),
        };
        if let Some(h) = &self.run.header {
            if let Some(c) = Counter::ALL.into_iter().find(|&c| j.pmc.get(c).is_some() && !h.pmc.contains(c)) {
                let reason = std::format!("a {} value, which the header does not offer", c.name());
                return self.problem(Problem::Malformed { line, reason });
            }
            if self.seen.is_empty() && self.run.tasks.len() != usize::from(h.tasks) {
                let reason = std::format!(
                    "header announces {} task(s), {} task line(s) arrived before the first job",
                    h.tasks,
                    self.run.tasks.len()
                );
                self.problem(Problem::HeaderMismatch { line, reason });
            }
        }
        let Some(task) = self.run.tasks.get(usize::from(j.task)) else {
            return self.problem(Problem::UnknownTask { line, task: j.task });
        };
        let name = task.name.clone();
        if j.job >= task.jobs {
            let jobs = task.jobs;
            return self.problem(Problem::JobOutOfRange { line, task: name, job: j.job, jobs });
        }
        if let Some(&first) = self.seen.get(&(j.task, j.job)) {
            return self.problem(Problem::Duplicate { line, first, task: name, job: j.job });
        }
        if !(j.release <= j.start && j.start <= j.end) {
            self.problem(Problem::TscOrder { line, task: name, job: j.job });
        }
        self.seen.insert((j.task, j.job), line);
        self.run.jobs.push(j);
    }

    /// Closes the run at its trailer (`Some`) or where the stream stops.
    fn close(mut self, trailer: Option<Trailer>) -> Run {
        if self.skip {
            return self.run;
        }
        for (t, task) in self.run.tasks.iter().enumerate() {
            let Ok(t) = u16::try_from(t) else { break };
            let mut ranges = Vec::new();
            let mut count = 0u32;
            let mut from = None;
            for job in 0..=task.jobs {
                let missing = job < task.jobs && !self.seen.contains_key(&(t, job));
                match (missing, from) {
                    (true, None) => from = Some(job),
                    (false, Some(a)) => {
                        count += job - a;
                        if ranges.len() < 8 {
                            ranges.push((a, job - 1));
                        }
                        from = None;
                    }
                    _ => {}
                }
            }
            if count > 0 {
                self.run.problems.push(Problem::MissingJobs { task: task.name.clone(), count, ranges });
            }
        }
        match trailer {
            Some(tr) => {
                // Damaged lines explain up to as many missing job lines.
                let explained = self.received..=self.received.saturating_add(self.bad_lines);
                if !explained.contains(&tr.records) {
                    self.run.problems.push(Problem::CountMismatch {
                        line: tr.line,
                        trailer: tr.records,
                        received: self.received,
                    });
                } else if self.bad_lines == 0 && tr.checksum != self.sum.clone().finalize() {
                    self.run.problems.push(Problem::StreamChecksum { line: tr.line });
                }
                self.run.trailer = Some(tr);
            }
            None => self.run.problems.push(Problem::Truncated { last_line: self.run.lines.1 }),
        }
        self.run
    }
}

/// Reads every run and progress line in `text` (a console capture).
pub fn read(text: &str) -> Stream {
    let mut out = Stream::default();
    let mut open: Option<Open> = None;
    for (i, text) in text.lines().enumerate() {
        let line = i + 1;
        let Some(rec) = record_line(text) else { continue };
        let l = match rec {
            Ok(l) if l.kind == "P" => {
                if let Some(p) = progress_of(text) {
                    out.progress.push(p);
                }
                continue;
            }
            Ok(l) => l,
            Err(()) if text.contains(PROGRESS) => continue, // progress is advisory
            Err(()) => {
                // A damaged line belongs to the run it is in, or starts one.
                let o = open.get_or_insert_with(|| {
                    let mut o = Open::new(line);
                    o.run.problems.push(Problem::MissingHeader { line });
                    o
                });
                o.run.lines.1 = line;
                o.problem(Problem::BadChecksum { line });
                continue;
            }
        };
        if l.kind == "H" {
            if let Some(o) = open.take() {
                out.runs.push(o.close(None));
            }
            let mut o = Open::new(line);
            match parse_header(&l.fields, line) {
                Ok(h) if h.version != VERSION => {
                    o.problem(Problem::UnsupportedVersion { line, version: h.version });
                    o.skip = true;
                }
                Ok(h) => {
                    o.sum.update(&l.crc.to_le_bytes());
                    o.run.header = Some(h);
                }
                Err(reason) => {
                    o.problem(Problem::Malformed { line, reason });
                }
            }
            open = Some(o);
            continue;
        }
        let o = open.get_or_insert_with(|| {
            let mut o = Open::new(line);
            o.run.problems.push(Problem::MissingHeader { line });
            o
        });
        o.run.lines.1 = line;
        if o.skip {
            if l.kind == "E" {
                if let Some(o) = open.take() {
                    out.runs.push(o.close(None));
                }
            }
            continue;
        }
        match l.kind {
            "T" => {
                o.sum.update(&l.crc.to_le_bytes());
                o.task(&l, line);
            }
            "J" => {
                o.sum.update(&l.crc.to_le_bytes());
                o.job(&l, line);
            }
            "E" => {
                let tr = (|| -> Result<Trailer, String> {
                    if l.fields.len() != 2 {
                        return Err(std::format!("trailer has {} fields, expected 2", l.fields.len()));
                    }
                    let checksum = u32::from_str_radix(l.fields[1], 16)
                        .map_err(|_| std::format!("trailer checksum {:?} is not hex", l.fields[1]))?;
                    Ok(Trailer { records: num(&l.fields, 0, "record count")?, checksum, line })
                })();
                match tr {
                    Ok(tr) => {
                        if let Some(o) = open.take() {
                            out.runs.push(o.close(Some(tr)));
                        }
                    }
                    Err(reason) => o.problem(Problem::Malformed { line, reason }),
                }
            }
            other => {
                let reason = std::format!("unknown record kind {other:?}");
                o.problem(Problem::Malformed { line, reason });
            }
        }
    }
    if let Some(o) = open.take() {
        out.runs.push(o.close(None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{progress, Header, Pmc, Writer};
    use proptest::prelude::*;
    use std::string::String;
    use std::vec;

    fn header(tasks: u16, pmc: PmcSet) -> Header<'static> {
        Header { scenario: "shared", mode: "tcg", tsc_hz: 2_000_000_000, pmc, tasks }
    }

    /// A complete run of `jobs` jobs per task for `names`.
    fn stream(names: &[(&str, u32)], pmc: PmcSet) -> (String, Vec<Job>) {
        let mut s = String::new();
        let mut w = Writer::begin(&mut s, &header(names.len() as u16, pmc)).unwrap();
        for (n, jobs) in names {
            w.task(&mut s, n, *jobs).unwrap();
        }
        let mut jobs = Vec::new();
        for (t, (_, n)) in names.iter().enumerate() {
            for k in 0..*n {
                let base = 1000 * u64::from(k) + 10_000 * t as u64;
                let mut pm = Pmc::default();
                for c in pmc.iter() {
                    pm.set(c, Some(u64::from(k) * 3 + 1));
                }
                let j = Job {
                    task: t as u16,
                    job: k,
                    release: base,
                    start: base + 5,
                    end: base + 500 + u64::from(k % 7),
                    preemptions: k % 3,
                    deadline_miss: k % 11 == 0,
                    pmc: pm,
                };
                w.job(&mut s, &j).unwrap();
                jobs.push(j);
            }
        }
        w.finish(&mut s).unwrap();
        (s, jobs)
    }

    fn one_run(text: &str) -> Run {
        let s = read(text);
        assert_eq!(s.runs.len(), 1, "{:?}", s.runs);
        s.runs.into_iter().next().unwrap()
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn a_clean_run_reads_complete_amid_console_noise() {
        let (s, jobs) = stream(&[("matmul", 5), ("sha", 3)], PmcSet::NONE);
        let mut noisy = String::from("GRUB loading\nsigma0: hello\n");
        for (i, l) in s.lines().enumerate() {
            if i == 3 {
                // Another writer put text before the record on the same line.
                noisy.push_str("[ts] partial line ");
            }
            noisy.push_str(l);
            noisy.push_str("\r\n");
            if i % 2 == 0 {
                noisy.push_str("kernel: some other line\n");
            }
        }
        let r = one_run(&noisy);
        assert!(r.is_complete(), "{:?}", r.problems);
        assert_eq!(r.jobs, jobs);
        assert_eq!(
            r.tasks,
            vec![TaskInfo { name: "matmul".into(), jobs: 5 }, TaskInfo { name: "sha".into(), jobs: 3 }]
        );
        let h = r.header.unwrap();
        assert_eq!((h.scenario.as_str(), h.mode.as_str(), h.tsc_hz, h.tasks), ("shared", "tcg", 2_000_000_000, 2));
    }

    #[test]
    fn a_flipped_character_is_a_bad_checksum_on_its_line() {
        let (s, _) = stream(&[("matmul", 4)], PmcSet::NONE);
        let mut l = lines(&s);
        l[3] = l[3].replacen(" 1005 ", " 1006 ", 1); // job line 2 of the stream (job 1)
        let r = one_run(&l.join("\n"));
        assert_eq!(r.jobs.len(), 3);
        assert_eq!(
            r.problems,
            vec![
                Problem::BadChecksum { line: 4 },
                Problem::MissingJobs { task: "matmul".into(), count: 1, ranges: vec![(1, 1)] }
            ]
        );
    }

    #[test]
    fn a_lost_line_is_a_missing_job_and_a_count_mismatch() {
        let (s, _) = stream(&[("matmul", 10)], PmcSet::NONE);
        let mut l = lines(&s);
        l.remove(5); // job 3
        l.remove(5); // job 4
        let r = one_run(&l.join("\n"));
        assert_eq!(
            r.problems,
            vec![
                Problem::MissingJobs { task: "matmul".into(), count: 2, ranges: vec![(3, 4)] },
                Problem::CountMismatch { line: 11, trailer: 10, received: 8 }
            ]
        );
    }

    #[test]
    fn a_repeated_line_is_a_duplicate() {
        let (s, _) = stream(&[("matmul", 3)], PmcSet::NONE);
        let mut l = lines(&s);
        let dup = l[3].clone();
        l.insert(4, dup);
        let r = one_run(&l.join("\n"));
        assert_eq!(r.jobs.len(), 3);
        assert_eq!(
            r.problems,
            vec![
                Problem::Duplicate { line: 5, first: 4, task: "matmul".into(), job: 1 },
                Problem::CountMismatch { line: 7, trailer: 3, received: 4 }
            ]
        );
    }

    #[test]
    fn a_cut_stream_is_truncated_and_keeps_what_arrived() {
        let (s, jobs) = stream(&[("matmul", 6)], PmcSet::NONE);
        let l = lines(&s);
        let r = one_run(&l[..5].join("\n"));
        assert_eq!(r.jobs, jobs[..3]);
        assert!(!r.is_complete());
        assert_eq!(
            r.problems,
            vec![
                Problem::MissingJobs { task: "matmul".into(), count: 3, ranges: vec![(3, 5)] },
                Problem::Truncated { last_line: 5 }
            ]
        );
    }

    #[test]
    fn header_mismatches_are_named() {
        // Two tasks announced, one task line.
        let (s, _) = stream(&[("a", 1), ("b", 1)], PmcSet::NONE);
        let mut l = lines(&s);
        l.remove(2);
        let r = one_run(&l.join("\n"));
        assert!(
            matches!(&r.problems[0], Problem::HeaderMismatch { line: 3, reason } if reason.contains("announces 2"))
        );
        assert!(r.problems.contains(&Problem::UnknownTask { line: 4, task: 1 }));
        // The wrong scenario.
        let (s, _) = stream(&[("a", 1)], PmcSet::NONE);
        let mut r = one_run(&s);
        r.expect_scenario("alone");
        assert!(
            matches!(&r.problems[..], [Problem::HeaderMismatch { line: 1, reason }] if reason.contains("\"shared\""))
        );
    }

    #[test]
    fn a_lost_header_keeps_the_jobs_in_a_run_without_header() {
        let (s, jobs) = stream(&[("matmul", 2)], PmcSet::NONE);
        let mut l = lines(&s);
        l[0].insert(12, 'X');
        let r = one_run(&l.join("\n"));
        assert_eq!(r.header, None);
        assert_eq!(r.jobs, jobs);
        assert_eq!(r.problems[..2], [Problem::MissingHeader { line: 1 }, Problem::BadChecksum { line: 1 }]);
    }

    #[test]
    fn reordered_lines_fail_the_stream_checksum() {
        let (s, _) = stream(&[("matmul", 3)], PmcSet::NONE);
        let mut l = lines(&s);
        l.swap(2, 3);
        let r = one_run(&l.join("\n"));
        assert_eq!(r.jobs.len(), 3);
        assert_eq!(r.problems, vec![Problem::StreamChecksum { line: 6 }]);
    }

    #[test]
    fn job_beyond_the_count_unknown_version_and_pmc_not_offered() {
        let mut s = String::new();
        let mut w = Writer::begin(&mut s, &header(1, PmcSet::NONE)).unwrap();
        w.task(&mut s, "t", 1).unwrap();
        w.job(&mut s, &Job { job: 1, ..Job::default() }).unwrap();
        let r = one_run(&s);
        assert_eq!(r.problems[0], Problem::JobOutOfRange { line: 3, task: "t".into(), job: 1, jobs: 1 });

        let mut v2 = String::new();
        let _ = crate::line(&mut v2, 'H', |o| o.write_str(" 2 alone tcg 0 - 1"));
        let s = read(&v2);
        assert_eq!(s.runs[0].problems, vec![Problem::UnsupportedVersion { line: 1, version: 2 }]);

        // A job that claims an LLC count the header does not offer.
        let mut s = String::new();
        let mut w = Writer::begin(&mut s, &header(1, PmcSet::NONE)).unwrap();
        w.task(&mut s, "t", 1).unwrap();
        let _ = crate::line(&mut s, 'J', |o| o.write_str(" 0 0 1 2 3 0 0 - - - 4"));
        let r = one_run(&s);
        assert!(matches!(&r.problems[0], Problem::Malformed { line: 3, reason } if reason.contains("llc_misses")));
    }

    #[test]
    fn progress_lines_are_read_and_belong_to_no_run() {
        let mut s = String::new();
        progress(&mut s, 0, 10, 100).unwrap();
        progress(&mut s, 1, 20, 50).unwrap();
        s.push_str("@prism-rec P 0 30 100 *00000000\n");
        let st = read(&s);
        assert!(st.runs.is_empty());
        assert_eq!(
            st.progress,
            vec![Progress { task: 0, done: 10, total: 100 }, Progress { task: 1, done: 20, total: 50 }]
        );
    }

    #[test]
    fn two_runs_in_one_stream() {
        let (a, _) = stream(&[("x", 2)], PmcSet::NONE);
        let (b, _) = stream(&[("y", 3)], PmcSet::ALL);
        let st = read(&std::format!("{a}boot again\n{b}"));
        assert_eq!(st.runs.len(), 2);
        assert!(st.runs.iter().all(Run::is_complete));
        assert_eq!(st.runs[1].lines, (7, 12));
        assert_eq!(st.runs[1].jobs[2].pmc.llc_misses, Some(7));
    }

    /// Job number, two TSC values, preemptions, miss flag, PMC values.
    type RawJob = (u32, u64, u64, u32, bool, [Option<u64>; 4]);

    fn job_strategy() -> impl Strategy<Value = (u16, Vec<RawJob>)> {
        (
            1u16..4,
            proptest::collection::vec(
                (
                    0u32..100,
                    any::<u64>(),
                    any::<u64>(),
                    any::<u32>(),
                    any::<bool>(),
                    proptest::array::uniform4(proptest::option::of(any::<u64>())),
                ),
                0..40,
            ),
        )
    }

    proptest! {
        /// Whatever the writer writes, the reader returns exactly.
        #[test]
        fn write_then_read_round_trips(
            (ntasks, raw) in job_strategy(),
            tsc_hz in any::<u64>(),
            pmc_bits in 0u8..16,
            noise in proptest::collection::vec("[ -~]{0,30}", 0..5),
        ) {
            let mut pmc = PmcSet::NONE;
            for c in Counter::ALL {
                if pmc_bits & (1 << c as u8) != 0 { pmc = pmc.with(c); }
            }
            let mut s = String::new();
            for n in &noise { s.push_str(n); s.push('\n'); }
            let h = Header { scenario: "partitioned", mode: "-", tsc_hz, pmc, tasks: ntasks };
            let mut w = Writer::begin(&mut s, &h).unwrap();
            for t in 0..ntasks {
                w.task(&mut s, &std::format!("task{t}"), 1000).unwrap();
            }
            let mut jobs = Vec::new();
            let mut used = std::collections::BTreeSet::new();
            for (i, (k, a, b, pre, miss, vals)) in raw.into_iter().enumerate() {
                let task = (i as u16) % ntasks;
                if !used.insert((task, k)) { continue; }
                let (start, end) = (a.min(b), a.max(b));
                let mut pm = Pmc::default();
                for (c, v) in Counter::ALL.into_iter().zip(vals) {
                    if pmc.contains(c) { pm.set(c, v); }
                }
                let j = Job { task, job: k, release: start / 2, start, end, preemptions: pre, deadline_miss: miss, pmc: pm };
                w.job(&mut s, &j).unwrap();
                jobs.push(j);
                if i % 5 == 0 { s.push_str("interleaved console line\n"); }
            }
            w.finish(&mut s).unwrap();
            let st = read(&s);
            prop_assert_eq!(st.runs.len(), 1);
            let r = &st.runs[0];
            prop_assert_eq!(&r.jobs, &jobs);
            let h = r.header.as_ref().unwrap();
            prop_assert_eq!((h.tsc_hz, h.pmc, h.tasks), (tsc_hz, pmc, ntasks));
            // Every job not written is reported missing, nothing else.
            for p in &r.problems {
                prop_assert!(matches!(p, Problem::MissingJobs { .. }), "{}", p);
            }
            let missing: u32 = r.problems.iter().map(|p| match p { Problem::MissingJobs { count, .. } => *count, _ => 0 }).sum();
            prop_assert_eq!(missing as usize, 1000 * ntasks as usize - jobs.len());
        }

        /// Random damage never panics, never invents a job, and is reported.
        #[test]
        fn corruption_never_panics_and_is_reported(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..8),
        ) {
            let (s, jobs) = stream(&[("matmul", 20), ("fft", 5)], PmcSet::ALL);
            let mut bytes = s.into_bytes();
            for (pos, b, op) in edits {
                if bytes.is_empty() { break; }
                let p = pos % bytes.len();
                match op {
                    0 => bytes[p] = b,
                    1 => { bytes.remove(p); }
                    2 => bytes.insert(p, b),
                    _ => bytes.truncate(p),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let st = read(&text);
            let mut n = 0;
            for r in &st.runs {
                for j in &r.jobs {
                    // The checksum keeps damaged values out; a job kept is a job written.
                    prop_assert!(jobs.contains(j), "invented job {:?}", j);
                    n += 1;
                }
            }
            // A job lost is a problem reported (or nothing arrived at all).
            if n < jobs.len() {
                prop_assert!(st.runs.is_empty() || st.runs.iter().any(|r| !r.problems.is_empty()));
            }
            for p in st.runs.iter().flat_map(|r| r.problems.iter()) {
                prop_assert!(!p.to_string().is_empty());
            }
        }
    }

    #[test]
    fn names_and_ranges_print_precisely() {
        let p = Problem::MissingJobs { task: "m".into(), count: 12, ranges: vec![(0, 3), (7, 7)] };
        assert_eq!(p.to_string(), "task m: 12 job(s) missing: 0-3, 7, ...");
        let p = Problem::MissingJobs { task: "m".into(), count: 5, ranges: vec![(0, 3), (7, 7)] };
        assert_eq!(p.to_string(), "task m: 5 job(s) missing: 0-3, 7");
    }
}
