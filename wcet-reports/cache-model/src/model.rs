//! Per-job accounting on top of the simulator, and the CSV it writes.
//!
//! A *job window* opens at a `JobBegin` marker and closes at the next
//! `JobEnd`. Job sequence numbers are the ordinals of the `JobBegin` markers,
//! from 0. A `JobBegin` while a window is open closes that job as incomplete
//! (`complete=0`) and opens the next; a `JobEnd` outside a window is counted
//! in [`Model::stray_ends`] and otherwise ignored; a window still open at exit
//! is written as incomplete, counted up to the exit.
//!
//! Instructions: the caller keeps a running count of executed instructions
//! that excludes the marker instructions themselves, and passes it to
//! [`Model::job_begin`]/[`Model::job_end`]; a job's count is the difference,
//! i.e. exactly the instructions strictly between its two markers.
//!
//! Interference evictions: every cache line remembers the last job window
//! that filled or used it (its owner). When an access made *outside* every
//! job window evicts a line that has an owner, the owner job's interference
//! counter for that level and for the access's [`Source`] goes up: kernel
//! code (whose memory is not coloured) or user code (other tasks). Evictions
//! caused by an access inside a job window are not interference (they are
//! the measured work's own, or the next job's, conflicts). A line's owner is
//! cleared only by eviction, or by a refill from outside a window.

use std::fmt::Write as _;

use crate::config::Config;
use crate::sim::{Hierarchy, MAX_LEVELS, NO_OWNER};

/// Who made an access: told by the virtual address of the instruction that
/// made it (x86_64 kernel half or not), so the model needs no knowledge of
/// privilege levels or of the guest's memory layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// An instruction at or above [`Source::KERNEL_HALF`].
    Kernel,
    /// An instruction below it.
    User,
}

impl Source {
    /// First address of the canonical upper half, where x86_64 kernels
    /// (Prism's included) live.
    pub const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

    /// The source of an access made by the instruction at `insn_vaddr`.
    pub fn of_insn(insn_vaddr: u64) -> Source {
        if insn_vaddr >= Source::KERNEL_HALF {
            Source::Kernel
        } else {
            Source::User
        }
    }
}

/// Counters of one job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobStats {
    /// Instructions executed strictly between the markers.
    pub instructions: u64,
    /// Guest memory accesses (loads and stores) inside the window.
    pub mem_accesses: u64,
    /// Per level (hierarchy order): line lookups that hit.
    pub hits: [u64; MAX_LEVELS],
    /// Per level: line lookups that missed.
    pub misses: [u64; MAX_LEVELS],
    /// Sum of access latencies (hit latency of the level that hit, or the
    /// memory latency).
    pub mem_cycles: u64,
    /// Per level: this job's lines evicted by kernel-code accesses outside
    /// any window.
    pub interference_kernel: [u64; MAX_LEVELS],
    /// Per level: this job's lines evicted by user-code accesses outside any
    /// window.
    pub interference_user: [u64; MAX_LEVELS],
    /// Whether the window was closed by a `JobEnd`.
    pub complete: bool,
}

impl JobStats {
    /// Per level: all of this job's lines evicted from outside any window.
    pub fn interference(&self, level: usize) -> u64 {
        self.interference_kernel[level] + self.interference_user[level]
    }
}

/// Counters outside any job window (for summaries).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutsideStats {
    /// Accesses simulated outside any window, made by kernel code.
    pub kernel_accesses: u64,
    /// Accesses simulated outside any window, made by user code.
    pub user_accesses: u64,
    /// Of all those, accesses that went to memory.
    pub mem_misses: u64,
}

/// The model: hierarchy, job state and per-job results.
#[derive(Clone, Debug)]
pub struct Model {
    config: Config,
    hier: Hierarchy,
    line: u64,
    jobs: Vec<JobStats>,
    /// Open window: (job index, instruction count at its begin).
    open: Option<(u32, u64)>,
    /// `JobEnd` markers seen outside any window.
    pub stray_ends: u64,
    /// Activity outside job windows.
    pub outside: OutsideStats,
    /// Accesses that could not be simulated (no physical address, I/O).
    pub skipped: u64,
}

/// CSV header, one fixed set of columns for every profile. For a profile
/// with two levels the `l2_*` columns are empty and its last level is
/// reported under `llc_*`. `interference_X` is the sum of
/// `interference_kernel_X` and `interference_user_X`.
pub const CSV_HEADER: &str = "job,complete,instructions,mem_accesses,\
l1d_hits,l1d_misses,l2_hits,l2_misses,llc_hits,llc_misses,model_cycles,\
interference_l1d,interference_l2,interference_llc,\
interference_kernel_l1d,interference_kernel_l2,interference_kernel_llc,\
interference_user_l1d,interference_user_l2,interference_user_llc";

impl Model {
    /// A cold model for `config` (which must be valid).
    pub fn new(config: Config) -> Model {
        let hier = Hierarchy::new(config.levels.clone(), config.mem_latency);
        let line = config.levels.iter().map(|l| l.line).min().unwrap_or(64);
        Model {
            config,
            hier,
            line,
            jobs: Vec::new(),
            open: None,
            stray_ends: 0,
            outside: OutsideStats::default(),
            skipped: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The simulated hierarchy.
    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hier
    }

    /// Jobs so far.
    pub fn jobs(&self) -> &[JobStats] {
        &self.jobs
    }

    /// Whether a job window is open.
    pub fn in_job(&self) -> bool {
        self.open.is_some()
    }

    /// A `JobBegin` marker executed; `insns` is the running instruction count.
    pub fn job_begin(&mut self, insns: u64) {
        if self.open.is_some() {
            self.close(insns, false);
        }
        let id = u32::try_from(self.jobs.len()).unwrap_or(NO_OWNER - 1).min(NO_OWNER - 1);
        self.jobs.push(JobStats::default());
        self.open = Some((id, insns));
    }

    /// A `JobEnd` marker executed.
    pub fn job_end(&mut self, insns: u64) {
        if self.open.is_some() {
            self.close(insns, true);
        } else {
            self.stray_ends += 1;
        }
    }

    /// Closes an open window at exit (counted as incomplete).
    pub fn finish(&mut self, insns: u64) {
        if self.open.is_some() {
            self.close(insns, false);
        }
    }

    fn close(&mut self, insns: u64, complete: bool) {
        if let Some((id, start)) = self.open.take() {
            let j = &mut self.jobs[id as usize];
            j.instructions = insns.wrapping_sub(start);
            j.complete = complete;
        }
    }

    /// One guest data access of `size` bytes at guest-physical `paddr`,
    /// made by code of `source`. An access that straddles lines looks up
    /// every line it touches (physically contiguous; the plugin splits at
    /// page boundaries).
    #[inline]
    pub fn access(&mut self, paddr: u64, size: u64, source: Source) {
        let first = paddr / self.line;
        let last = (paddr + size.max(1) - 1) / self.line;
        self.count_access(source);
        for l in first..=last {
            self.access_line(l * self.line, source);
        }
    }

    /// Counts one guest access (without a lookup); used with
    /// [`Model::access_line`] when the caller splits an access itself.
    #[inline]
    pub fn count_access(&mut self, source: Source) {
        match (self.open, source) {
            (Some((id, _)), _) => self.jobs[id as usize].mem_accesses += 1,
            (None, Source::Kernel) => self.outside.kernel_accesses += 1,
            (None, Source::User) => self.outside.user_accesses += 1,
        }
    }

    /// One line lookup at guest-physical `paddr` by code of `source`.
    #[inline]
    pub fn access_line(&mut self, paddr: u64, source: Source) {
        let owner = self.open.map_or(NO_OWNER, |(id, _)| id);
        let o = self.hier.access(paddr, owner);
        match self.open {
            Some((id, _)) => {
                let j = &mut self.jobs[id as usize];
                for i in 0..o.probed {
                    if o.hit_level == Some(i) {
                        j.hits[i] += 1;
                    } else {
                        j.misses[i] += 1;
                    }
                }
                j.mem_cycles += o.latency;
            }
            None => {
                if o.hit_level.is_none() {
                    self.outside.mem_misses += 1;
                }
                for (lvl, &victim_owner) in o.evicted_owner.iter().enumerate().take(o.probed) {
                    if victim_owner != NO_OWNER {
                        let j = &mut self.jobs[victim_owner as usize];
                        match source {
                            Source::Kernel => j.interference_kernel[lvl] += 1,
                            Source::User => j.interference_user[lvl] += 1,
                        }
                    }
                }
            }
        }
    }

    /// Model cycles of a job: `instructions * cpi + mem_cycles`.
    pub fn model_cycles(&self, j: &JobStats) -> u64 {
        j.instructions.wrapping_mul(self.config.base_cpi).wrapping_add(j.mem_cycles)
    }

    /// The CSV: header plus one row per job, `\n` line ends, integers only.
    pub fn csv(&self) -> String {
        let mut s = String::with_capacity(64 + 96 * self.jobs.len());
        s.push_str(CSV_HEADER);
        s.push('\n');
        for (n, j) in self.jobs.iter().enumerate() {
            let _ = write!(s, "{n},{},{},{}", u8::from(j.complete), j.instructions, j.mem_accesses);
            for slot in 0..3 {
                match self.config.slot_level(slot) {
                    Some(l) => {
                        let _ = write!(s, ",{},{}", j.hits[l], j.misses[l]);
                    }
                    None => s.push_str(",,"),
                }
            }
            let _ = write!(s, ",{}", self.model_cycles(j));
            let groups: [&dyn Fn(usize) -> u64; 3] =
                [&|l| j.interference(l), &|l| j.interference_kernel[l], &|l| j.interference_user[l]];
            for per_level in groups {
                for slot in 0..3 {
                    match self.config.slot_level(slot) {
                        Some(l) => {
                            let _ = write!(s, ",{}", per_level(l));
                        }
                        None => s.push(','),
                    }
                }
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{LevelConfig, Policy};
    use Source::{Kernel, User};

    fn tiny() -> Config {
        // L1: 2 sets x 2 ways; LLC: 4 sets x 2 ways.
        Config {
            profile: "tiny",
            levels: vec![
                LevelConfig { name: "L1D", size: 256, ways: 2, line: 64, hit_latency: 1, policy: Policy::Lru },
                LevelConfig { name: "LLC", size: 512, ways: 2, line: 64, hit_latency: 10, policy: Policy::Lru },
            ],
            mem_latency: 100,
            base_cpi: 1,
        }
    }

    #[test]
    fn job_counts_and_cycles() {
        let mut m = Model::new(tiny());
        m.access(0, 8, Kernel); // outside: warms line 0
        m.job_begin(10);
        m.access(0, 8, Kernel); // L1 hit: 1
        m.access(64, 4, Kernel); // miss miss: 100
        m.access(64 + 8, 4, Kernel); // L1 hit: 1
        m.access(120, 16, Kernel); // straddles lines 1 and 2: hit (1) + miss/miss (100)
        m.job_end(25);
        let j = &m.jobs()[0];
        assert_eq!(j.instructions, 15);
        assert_eq!(j.mem_accesses, 4);
        assert_eq!(j.hits[0], 3);
        assert_eq!(j.misses[0], 2);
        assert_eq!((j.hits[1], j.misses[1]), (0, 2));
        assert_eq!(j.mem_cycles, 1 + 100 + 1 + 1 + 100);
        assert_eq!(m.model_cycles(j), 15 + 203);
        assert!(j.complete);
        assert_eq!((m.outside.kernel_accesses, m.outside.user_accesses), (1, 0));
        assert_eq!(m.outside.mem_misses, 1);
    }

    #[test]
    fn interference_counts_owner_lines_evicted_from_outside_by_source() {
        let mut m = Model::new(tiny());
        // Job 0 fills lines 0 and 2 (both L1 set 0, LLC sets 0 and 2).
        m.job_begin(0);
        m.access(0, 8, User);
        m.access(128, 8, User);
        m.job_end(2);
        // Outside, by kernel code: lines 4 and 6 map to L1 set 0 and LLC
        // sets 0 and 2: each evicts one of job 0's lines in L1; the LLC
        // still has room.
        m.access(256, 8, Kernel);
        m.access(384, 8, Kernel);
        assert_eq!(m.jobs()[0].interference_kernel, [2, 0, 0, 0]);
        // Outside, by user code: lines 8 and 10 (LLC sets 0, 2) now evict
        // job 0's LLC lines (LRU: lines 0 and 2 are older than 4 and 6), and
        // in L1 evict lines 4 and 6, which nobody owns.
        m.access(512, 8, User);
        m.access(640, 8, User);
        assert_eq!(m.jobs()[0].interference_kernel, [2, 0, 0, 0]);
        assert_eq!(m.jobs()[0].interference_user, [0, 2, 0, 0]);
        assert_eq!((m.jobs()[0].interference(0), m.jobs()[0].interference(1)), (2, 2));
        assert_eq!((m.outside.kernel_accesses, m.outside.user_accesses), (2, 2));
        // Job 1 evicting job 0-owned lines is not interference, whoever runs it.
        m.job_begin(10);
        m.access(768, 8, Kernel);
        m.job_end(11);
        assert_eq!(m.jobs()[0].interference_kernel, [2, 0, 0, 0]);
        assert_eq!(m.jobs()[0].interference_user, [0, 2, 0, 0]);
        let j1 = &m.jobs()[1];
        assert_eq!((j1.instructions, j1.mem_accesses, j1.complete), (1, 1, true));
        assert_eq!(m.jobs()[1].interference(0) + m.jobs()[1].interference(1), 0);
        let csv = m.csv();
        assert_eq!(
            csv,
            format!("{CSV_HEADER}\n0,1,2,2,0,2,,,0,2,202,2,,2,2,,0,0,,2\n1,1,1,1,0,1,,,0,1,101,0,,0,0,,0,0,,0\n")
        );
    }

    #[test]
    fn source_is_the_instruction_half() {
        assert_eq!(Source::of_insn(0xffff_ffff_8000_1234), Kernel);
        assert_eq!(Source::of_insn(0xffff_8000_0000_0000), Kernel);
        assert_eq!(Source::of_insn(0x0000_7fff_ffff_ffff), User);
        assert_eq!(Source::of_insn(0x40_1000), User);
    }

    #[test]
    fn owner_moves_to_last_job_that_used_the_line() {
        let mut m = Model::new(tiny());
        m.job_begin(0);
        m.access(0, 8, Kernel);
        m.job_end(1);
        m.job_begin(2);
        m.access(0, 8, Kernel); // job 1 uses job 0's line: it is job 1's now
        m.job_end(3);
        m.access(128, 8, Kernel);
        m.access(256, 8, Kernel); // evicts line 0 from L1 (LRU)
        assert_eq!(m.jobs()[0].interference(0), 0);
        assert_eq!(m.jobs()[1].interference_kernel[0], 1);
    }

    #[test]
    fn unbalanced_markers() {
        let mut m = Model::new(tiny());
        m.job_end(0);
        assert_eq!(m.stray_ends, 1);
        m.job_begin(5);
        m.job_begin(8); // closes job 0 as incomplete
        m.job_end(9);
        m.job_begin(20);
        m.finish(26);
        let j = m.jobs();
        assert_eq!(j.len(), 3);
        assert_eq!((j[0].complete, j[0].instructions), (false, 3));
        assert_eq!((j[1].complete, j[1].instructions), (true, 1));
        assert_eq!((j[2].complete, j[2].instructions), (false, 6));
        assert!(!m.in_job());
    }

    #[test]
    fn three_level_csv_has_all_columns() {
        let mut m = Model::new(Config::host());
        m.job_begin(0);
        m.access(0x10_0000, 8, Kernel);
        m.job_end(1);
        assert_eq!(m.csv(), format!("{CSV_HEADER}\n0,1,1,1,0,1,0,1,0,1,201,0,0,0,0,0,0,0,0,0\n"));
        assert_eq!(CSV_HEADER.split(',').count(), 20);
    }
}
