//! Job records: the one wire format between the in-guest measurement harness
//! (the writer, `no_std`, no allocation) and the host (the reader, feature
//! `std`).
//!
//! The harness keeps its records in memory during the run and dumps them
//! after it on the COM1 text console, one record per line, so the dump
//! survives a serial console and mixes with other console output. Every
//! record line starts with [`PREFIX`] (anywhere in the console line: text
//! that another writer put before it on the same line is skipped) and ends
//! with ` *` and the CRC-32 (IEEE, as in zlib) of the bytes from the prefix
//! up to that space, as 8 lowercase hex digits.
//!
//! # Lines (format version [`VERSION`])
//!
//! Fields are separated by one space; numbers are decimal; `-` is "not
//! available" (never zero).
//!
//! ```text
//! @prism-rec H <version> <scenario> <mode> <tsc_hz> <pmc> <tasks> *crc
//! @prism-rec T <index> <name> <jobs> *crc
//! @prism-rec J <task> <job> <release> <start> <end> <preemptions> <miss> <cycles> <instructions> <l2_misses> <llc_misses> *crc
//! @prism-rec E <records> <checksum> *crc
//! @prism-rec P <task> <done> <total> *crc
//! ```
//!
//! * `H` (header) opens a run: the scenario name, a mode hint (what the
//!   guest saw, e.g. `tcg`, `kvm`, `bare`, or `-`), the TSC frequency in Hz
//!   (0: unknown), the PMC counters the CPU offers (comma separated names
//!   of [`Counter`], or `-` for none) and the number of tasks.
//! * `T` (one per task, in index order, right after `H`): the task's name
//!   and the number of jobs it was to run (job numbers `0..jobs`).
//! * `J` (one per job): TSC values of the release, the start and the end of
//!   the job, the number of preemptions, the deadline-miss flag (`0`/`1`)
//!   and the PMC deltas, each `-` where the header does not offer it.
//! * `E` (trailer) closes the run: the number of `J` lines and the CRC-32
//!   over the line checksums of every `H`, `T` and `J` line in order (each
//!   as 4 little-endian bytes), so a lost, repeated or reordered line shows
//!   even where every remaining line is intact.
//! * `P` (progress) is written *during* the run, every few jobs of a task:
//!   jobs done and jobs to do. It belongs to no run and is not counted.
//!
//! Names (scenario, mode, task) are 1 to [`MAX_NAME`] bytes of
//! `A-Z a-z 0-9 _ . : + -`.
//!
//! The writer is [`Writer`] (and [`progress`]); the reader is
//! `read::read` (feature `std`), which returns every run it found with
//! precise diagnostics instead of failing.

#![no_std]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
pub mod read;

use core::fmt::{self, Write};

/// Every record line starts with this.
pub const PREFIX: &str = "@prism-rec";
/// The format version written in the header.
pub const VERSION: u32 = 1;
/// Longest scenario, mode or task name.
pub const MAX_NAME: usize = 64;

/// A performance counter the harness may read per job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    /// Unhalted core cycles.
    Cycles,
    /// Instructions retired.
    Instructions,
    /// L2 misses.
    L2Misses,
    /// Last-level cache misses.
    LlcMisses,
}

impl Counter {
    /// Every counter, in field order.
    pub const ALL: [Counter; 4] = [Counter::Cycles, Counter::Instructions, Counter::L2Misses, Counter::LlcMisses];

    /// The name used in the header's PMC list (and in host outputs).
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Cycles => "cycles",
            Counter::Instructions => "instructions",
            Counter::L2Misses => "l2_misses",
            Counter::LlcMisses => "llc_misses",
        }
    }

    /// The counter of `name`.
    pub fn from_name(name: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| c.name() == name)
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The set of counters the CPU offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PmcSet(u8);

impl PmcSet {
    /// No performance counters (QEMU TCG, most nested VMs).
    pub const NONE: PmcSet = PmcSet(0);
    /// Every counter.
    pub const ALL: PmcSet = PmcSet(0b1111);

    /// The set with `c` added.
    pub const fn with(self, c: Counter) -> PmcSet {
        PmcSet(self.0 | c.bit())
    }

    pub const fn contains(self, c: Counter) -> bool {
        self.0 & c.bit() != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The counters in the set, in field order.
    pub fn iter(self) -> impl Iterator<Item = Counter> {
        Counter::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

/// PMC deltas of one job; `None` is "not available", never zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pmc {
    pub cycles: Option<u64>,
    pub instructions: Option<u64>,
    pub l2_misses: Option<u64>,
    pub llc_misses: Option<u64>,
}

impl Pmc {
    /// The value of counter `c`.
    pub const fn get(&self, c: Counter) -> Option<u64> {
        match c {
            Counter::Cycles => self.cycles,
            Counter::Instructions => self.instructions,
            Counter::L2Misses => self.l2_misses,
            Counter::LlcMisses => self.llc_misses,
        }
    }

    /// Sets counter `c`.
    pub fn set(&mut self, c: Counter, v: Option<u64>) {
        match c {
            Counter::Cycles => self.cycles = v,
            Counter::Instructions => self.instructions = v,
            Counter::L2Misses => self.l2_misses = v,
            Counter::LlcMisses => self.llc_misses = v,
        }
    }
}

/// One measured job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Job {
    /// Index of the task in the header's task list.
    pub task: u16,
    /// Job number within the task, from 0.
    pub job: u32,
    /// TSC at the job's release.
    pub release: u64,
    /// TSC right before the job (serialized read).
    pub start: u64,
    /// TSC right after the job (serialized read).
    pub end: u64,
    /// Times the job was preempted.
    pub preemptions: u32,
    /// The job ended after its deadline.
    pub deadline_miss: bool,
    pub pmc: Pmc,
}

impl Job {
    /// Execution time in TSC ticks (`end - start`; 0 if the TSC went back).
    pub const fn tsc_cycles(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Response time in TSC ticks (`end - release`).
    pub const fn response(&self) -> u64 {
        self.end.saturating_sub(self.release)
    }
}

/// What the header says about a run (the writer's view; the reader returns
/// an owned `read::RunHeader`).
#[derive(Clone, Copy, Debug)]
pub struct Header<'a> {
    pub scenario: &'a str,
    /// What the guest saw (`tcg`, `kvm`, `bare`, ...; `-` if unknown).
    pub mode: &'a str,
    /// TSC frequency in Hz (0: unknown).
    pub tsc_hz: u64,
    pub pmc: PmcSet,
    /// Number of `T` lines that follow.
    pub tasks: u16,
}

/// Why the writer refused to write a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The output refused the text.
    Fmt,
    /// A name is empty, too long or has a character outside the allowed set.
    BadName,
    /// A `T` line beyond the header's task count, or a `J` line before every
    /// task was named.
    TaskOrder,
    /// A job of a task the header does not have.
    UnknownTask,
    /// A PMC value for a counter the header does not offer.
    PmcNotOffered,
}

impl From<fmt::Error> for WriteError {
    fn from(_: fmt::Error) -> Self {
        WriteError::Fmt
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteError::Fmt => "the output refused the text",
            WriteError::BadName => "a name is empty, longer than 64 bytes or has a character outside A-Za-z0-9_.:+-",
            WriteError::TaskOrder => "task lines must follow the header, one per task, before any job",
            WriteError::UnknownTask => "a job names a task index the header does not have",
            WriteError::PmcNotOffered => "a job has a PMC value for a counter the header does not offer",
        })
    }
}

/// Whether `s` may be a scenario, mode or task name.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'+' | b'-'))
}

/// Forwards text to `out` and checksums it.
struct Checksummed<'a, W: Write> {
    out: &'a mut W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Checksummed<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.crc.update(s.as_bytes());
        self.out.write_str(s)
    }
}

/// Writes one record line: prefix, `kind`, the fields `body` writes, then
/// the line checksum. Returns the checksum.
fn line<W: Write>(
    out: &mut W,
    kind: char,
    body: impl FnOnce(&mut dyn Write) -> fmt::Result,
) -> Result<u32, WriteError> {
    let mut c = Checksummed { out, crc: crc32fast::Hasher::new() };
    write!(c, "{PREFIX} {kind}")?;
    body(&mut c)?;
    let crc = c.crc.finalize();
    writeln!(out, " *{crc:08x}")?;
    Ok(crc)
}

/// Writes `v`, or `-` for "not available".
fn opt(out: &mut dyn Write, v: Option<u64>) -> fmt::Result {
    match v {
        Some(v) => write!(out, " {v}"),
        None => out.write_str(" -"),
    }
}

/// Writes one run: [`Writer::begin`] (header), [`Writer::task`] once per
/// task, [`Writer::job`] per job, then [`Writer::finish`] (trailer). It
/// does not own the output, so other console text may come in between.
#[derive(Clone, Debug)]
pub struct Writer {
    tasks: u16,
    named: u16,
    pmc: PmcSet,
    records: u32,
    sum: crc32fast::Hasher,
}

impl Writer {
    /// Writes the header line.
    pub fn begin<W: Write>(out: &mut W, h: &Header<'_>) -> Result<Writer, WriteError> {
        if !valid_name(h.scenario) || !valid_name(h.mode) {
            return Err(WriteError::BadName);
        }
        let mut w = Writer { tasks: h.tasks, named: 0, pmc: h.pmc, records: 0, sum: crc32fast::Hasher::new() };
        let crc = line(out, 'H', |o| {
            write!(o, " {VERSION} {} {} {} ", h.scenario, h.mode, h.tsc_hz)?;
            write_pmc_set(o, h.pmc)?;
            write!(o, " {}", h.tasks)
        })?;
        w.sum.update(&crc.to_le_bytes());
        Ok(w)
    }

    /// Writes the next task line (indices count from 0).
    pub fn task<W: Write>(&mut self, out: &mut W, name: &str, jobs: u32) -> Result<(), WriteError> {
        if !valid_name(name) {
            return Err(WriteError::BadName);
        }
        if self.named >= self.tasks {
            return Err(WriteError::TaskOrder);
        }
        let index = self.named;
        let crc = line(out, 'T', |o| write!(o, " {index} {name} {jobs}"))?;
        self.sum.update(&crc.to_le_bytes());
        self.named += 1;
        Ok(())
    }

    /// Writes one job line.
    pub fn job<W: Write>(&mut self, out: &mut W, j: &Job) -> Result<(), WriteError> {
        if self.named != self.tasks {
            return Err(WriteError::TaskOrder);
        }
        if j.task >= self.tasks {
            return Err(WriteError::UnknownTask);
        }
        if Counter::ALL.into_iter().any(|c| j.pmc.get(c).is_some() && !self.pmc.contains(c)) {
            return Err(WriteError::PmcNotOffered);
        }
        let crc = line(out, 'J', |o| {
            write!(
                o,
                " {} {} {} {} {} {} {}",
                j.task,
                j.job,
                j.release,
                j.start,
                j.end,
                j.preemptions,
                u8::from(j.deadline_miss)
            )?;
            for c in Counter::ALL {
                opt(o, j.pmc.get(c))?;
            }
            Ok(())
        })?;
        self.sum.update(&crc.to_le_bytes());
        self.records += 1;
        Ok(())
    }

    /// Writes the trailer; returns the number of job records written.
    pub fn finish<W: Write>(self, out: &mut W) -> Result<u32, WriteError> {
        let records = self.records;
        let sum = self.sum.finalize();
        line(out, 'E', |o| write!(o, " {records} {sum:08x}"))?;
        Ok(records)
    }
}

fn write_pmc_set(out: &mut dyn Write, set: PmcSet) -> fmt::Result {
    if set.is_empty() {
        return out.write_str("-");
    }
    for (i, c) in set.iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        out.write_str(c.name())?;
    }
    Ok(())
}

/// Writes a progress line for task `task`: `done` of `total` jobs.
pub fn progress<W: Write>(out: &mut W, task: u16, done: u32, total: u32) -> Result<(), WriteError> {
    line(out, 'P', |o| write!(o, " {task} {done} {total}")).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed-capacity text buffer (the writer needs no allocation).
    struct Buf {
        b: [u8; 512],
        n: usize,
    }

    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.n + s.len();
            if end > self.b.len() {
                return Err(fmt::Error);
            }
            self.b[self.n..end].copy_from_slice(s.as_bytes());
            self.n = end;
            Ok(())
        }
    }

    impl Buf {
        fn text(&self) -> &str {
            core::str::from_utf8(&self.b[..self.n]).unwrap()
        }
    }

    #[test]
    fn lines_have_the_documented_shape() {
        let mut b = Buf { b: [0; 512], n: 0 };
        let h =
            Header { scenario: "alone", mode: "tcg", tsc_hz: 1000, pmc: PmcSet::NONE.with(Counter::Cycles), tasks: 1 };
        let mut w = Writer::begin(&mut b, &h).unwrap();
        w.task(&mut b, "matmul", 2).unwrap();
        let mut j = Job { task: 0, job: 0, release: 1, start: 2, end: 9, preemptions: 0, ..Job::default() };
        j.pmc.cycles = Some(7);
        w.job(&mut b, &j).unwrap();
        assert_eq!(w.finish(&mut b).unwrap(), 1);
        let lines: [&str; 4] = {
            let mut it = b.text().lines();
            core::array::from_fn(|_| it.next().unwrap())
        };
        fn body(l: &str) -> &str {
            l.rsplit_once(" *").unwrap().0
        }
        assert_eq!(body(lines[0]), "@prism-rec H 1 alone tcg 1000 cycles 1");
        assert_eq!(body(lines[1]), "@prism-rec T 0 matmul 2");
        assert_eq!(body(lines[2]), "@prism-rec J 0 0 1 2 9 0 0 7 - - -");
        assert!(lines[3].starts_with("@prism-rec E 1 "));
        for l in lines {
            let (body, crc) = l.rsplit_once(" *").unwrap();
            assert_eq!(u32::from_str_radix(crc, 16).unwrap(), crc32fast::hash(body.as_bytes()));
        }
    }

    #[test]
    fn writer_refuses_bad_order_names_and_pmc() {
        let mut b = Buf { b: [0; 512], n: 0 };
        let h = Header { scenario: "a b", mode: "-", tsc_hz: 0, pmc: PmcSet::NONE, tasks: 1 };
        assert_eq!(Writer::begin(&mut b, &h).unwrap_err(), WriteError::BadName);
        let h = Header { scenario: "alone", ..h };
        let mut w = Writer::begin(&mut b, &h).unwrap();
        assert_eq!(w.job(&mut b, &Job::default()), Err(WriteError::TaskOrder));
        assert_eq!(w.task(&mut b, "", 1), Err(WriteError::BadName));
        w.task(&mut b, "t", 1).unwrap();
        assert_eq!(w.task(&mut b, "u", 1), Err(WriteError::TaskOrder));
        assert_eq!(w.job(&mut b, &Job { task: 1, ..Job::default() }), Err(WriteError::UnknownTask));
        let mut j = Job::default();
        j.pmc.llc_misses = Some(0);
        assert_eq!(w.job(&mut b, &j), Err(WriteError::PmcNotOffered));
    }
}
