//! The host's check of a harness run captured from the console: decoded
//! with the record reader, it must be one complete run with exactly the
//! expected tasks and job counts, job numbers `0..N` per task, timestamps
//! in order (release <= start <= end, each job starting after the one
//! before ended, releases strictly increasing), and PMC fields as the
//! platform allows ("not available" everywhere where it has no PMU).

use record::read::{read, Run};
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

/// What a run must contain.
#[derive(Clone, Debug)]
pub struct Expect<'a> {
    /// Task names and job counts, in the description's order.
    pub tasks: &'a [(&'a str, u32)],
    /// Whether the header must offer PMC counters (`Some(false)`: it must
    /// offer none, as under QEMU TCG; `None`: either).
    pub pmc: Option<bool>,
}

/// One task of a checked run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSummary {
    pub name: String,
    pub jobs: usize,
    /// The largest `end - start`.
    pub max_tsc: u64,
    /// Preemptions over all its jobs.
    pub preemptions: u64,
    pub deadline_misses: usize,
}

/// A checked run, task by task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub tasks: Vec<TaskSummary>,
}

/// Checks the run in `console` against `e`; every problem found, in
/// words, otherwise.
pub fn check_run(console: &str, e: &Expect<'_>) -> Result<Summary, Vec<String>> {
    let stream = read(console);
    let mut bad = Vec::new();
    let run: &Run = match stream.runs.as_slice() {
        [r] => r,
        runs => return Err(std::vec![format!("{} runs of records in the console, expected one", runs.len())]),
    };
    bad.extend(run.problems.iter().map(|p| p.to_string()));
    let Some(h) = &run.header else { return Err(std::vec![String::from("the run has no header")]) };
    if run.trailer.is_none() {
        bad.push(String::from("the run has no trailer"));
    }
    match e.pmc {
        Some(false) if !h.pmc.is_empty() => bad.push(String::from("the header offers PMC counters")),
        Some(true) if h.pmc.is_empty() => bad.push(String::from("the header offers no PMC counters")),
        _ => {}
    }
    let named: Vec<(&str, u32)> = run.tasks.iter().map(|t| (t.name.as_str(), t.jobs)).collect();
    if named != e.tasks {
        bad.push(format!("tasks {named:?}, expected {:?}", e.tasks));
    }
    let mut summary = Summary { tasks: Vec::new() };
    for (i, t) in run.tasks.iter().enumerate() {
        let mut jobs: Vec<_> = run.jobs.iter().filter(|j| usize::from(j.task) == i).collect();
        jobs.sort_by_key(|j| j.job);
        let numbers: Vec<u32> = jobs.iter().map(|j| j.job).collect();
        if numbers != (0..t.jobs).collect::<Vec<_>>() {
            bad.push(format!("task {}: {} records, not jobs 0..{}", t.name, jobs.len(), t.jobs));
        }
        for j in &jobs {
            if !(j.release <= j.start && j.start <= j.end) {
                bad.push(format!("task {} job {}: release <= start <= end fails", t.name, j.job));
            }
            if h.pmc.is_empty() && record::Counter::ALL.iter().any(|&c| j.pmc.get(c).is_some()) {
                bad.push(format!("task {} job {}: a PMC value where none is available", t.name, j.job));
            }
        }
        for p in jobs.windows(2) {
            if p[1].start < p[0].end || p[1].release <= p[0].release {
                bad.push(format!("task {} jobs {} and {}: timestamps out of order", t.name, p[0].job, p[1].job));
            }
        }
        summary.tasks.push(TaskSummary {
            name: t.name.clone(),
            jobs: jobs.len(),
            max_tsc: jobs.iter().map(|j| j.tsc_cycles()).max().unwrap_or(0),
            preemptions: jobs.iter().map(|j| u64::from(j.preemptions)).sum(),
            deadline_misses: jobs.iter().filter(|j| j.deadline_miss).count(),
        });
    }
    if bad.is_empty() {
        Ok(summary)
    } else {
        Err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The console of `workloads/tests/workloads.system` booted under QEMU
    /// 7.2 TCG (its COM1 lines as QEMU wrote them): three RT tasks at
    /// rate-monotonic priorities, 200, 100 and 20 jobs.
    const CAPTURE: &str = include_str!("../../tests/fixtures/workloads-tcg.log");
    const TASKS: [(&str, u32); 3] = [("rt-crc32", 200), ("rt-chase", 100), ("rt-matmul", 20)];

    #[test]
    fn the_guest_run_has_every_record_in_order_and_no_pmc_under_tcg() {
        let s = check_run(CAPTURE, &Expect { tasks: &TASKS, pmc: Some(false) }).unwrap();
        assert_eq!(s.tasks.iter().map(|t| t.jobs).collect::<Vec<_>>(), [200, 100, 20]);
        assert!(s.tasks.iter().all(|t| t.max_tsc > 0));
        // The top-priority task is never preempted; the long low-priority
        // job is, by the others' releases.
        assert_eq!(s.tasks[0].preemptions, 0);
        assert!(s.tasks[2].preemptions > 0);
        // Every workload checked itself in the same boot.
        assert_eq!(CAPTURE.lines().filter(|l| l.starts_with("test ") && l.ends_with(" ... ok")).count(), 48);
        assert!(!CAPTURE.contains("FAILED"));
        assert!(CAPTURE.contains("run complete: 11 task(s) ended, 11 with status 0"));
    }

    #[test]
    fn a_missing_record_a_wrong_count_or_pmc_values_are_reported() {
        let mut lines: Vec<&str> = CAPTURE.lines().collect();
        let j = lines.iter().position(|l| l.starts_with("@prism-rec J 1 5 ")).unwrap();
        lines.remove(j);
        let err = check_run(&lines.join("\n"), &Expect { tasks: &TASKS, pmc: Some(false) }).unwrap_err();
        assert!(err.iter().any(|e| e.contains("rt-chase: 99 records")), "{err:?}");
        let err = check_run(CAPTURE, &Expect { tasks: &TASKS[..2], pmc: Some(false) }).unwrap_err();
        assert!(err.iter().any(|e| e.starts_with("tasks ")), "{err:?}");
        let err = check_run(CAPTURE, &Expect { tasks: &TASKS, pmc: Some(true) }).unwrap_err();
        assert_eq!(err, ["the header offers no PMC counters"]);
        assert!(check_run("no records here", &Expect { tasks: &TASKS, pmc: None }).is_err());
    }
}
