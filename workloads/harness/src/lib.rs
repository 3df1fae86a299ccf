//! The in-guest measurement harness: every RT workload runs under it.
//!
//! A workload is a type implementing [`Workload`] (setup, one job, the
//! job's result and the value it must have); its binary is one line,
//! `harness::main!(MyWorkload);` (or [`c_workload!`] for freestanding C).
//! The harness then, for the task's entry in the system description:
//!
//! 1. finds the RT tasks of the system (`root::SYSTEM`, `root::TASK_INFO`;
//!    the first is the *leader*, which writes the records of all of them),
//!    takes room for `jobs` records from the task's heap, and calls
//!    [`Workload::setup`] with the task's arguments and the rest of the
//!    heap;
//! 2. runs one unmeasured warm-up job and checks it;
//! 3. releases job `k` at `first + k * period` (the first release is the
//!    next multiple of the period, so harmonic tasks meet at common
//!    instants), sleeping in a closed IPC receive with a timeout up to the
//!    release (the kernel's one-shot APIC timer wakes it);
//! 4. per job: reads the preemption count (`THREAD_INFO` `PREEMPTIONS`) and
//!    the live performance counters, then in one `asm!` block `lfence;
//!    rdtsc` and the cache-model `JobBegin` marker; the job; then in one
//!    block the `JobEnd` marker and `rdtscp; lfence`; the counters and the
//!    preemption count again. The record (release, start, end, preemptions,
//!    deadline miss, PMC deltas or "not available") goes to memory;
//! 5. checks every job's result against the host-computed value *after*
//!    its end timestamp: a wrong result ends the run as a failure (the
//!    task exits with status 1), never as a fast job;
//! 6. writes a progress line (`record::progress`) every twentieth of the
//!    run, between jobs, and after the last job hands its records to the
//!    leader, which writes the whole run (`record::Writer`: header, one
//!    line per task, every job, trailer with checksums) on the console;
//! 7. ends the task (`user_rt::exit`); the root task ends the run when
//!    every RT task has ended.
//!
//! With the argument `mode=selftest` (role `test`) the harness instead
//! checks the workload and itself: the result matches the host value, jobs
//! repeat, a deliberately wrong expected value stops a measured run at its
//! first job, measured timestamps are ordered, the task may not program the
//! counters, and a record has a PMC value exactly for the live counters
//! (`test NAME ... ok` lines, as the in-guest suite prints).
//! `expect=VALUE` replaces the expected value of a run (to see a failing
//! check end it).
//!
//! Everything that needs no hardware (arguments, heap, schedule, the
//! record transfer between tasks) is tested on the host; [`verify`]
//! (feature `std`) checks a captured run on the host with the record
//! reader.
#![cfg_attr(not(test), no_std)]

#[cfg(feature = "std")]
extern crate std;

pub mod args;
pub mod heap;
pub mod schedule;
#[cfg(any(test, feature = "std"))]
pub mod verify;
pub mod wire;

#[cfg(target_os = "none")]
mod measure;
#[cfg(target_os = "none")]
mod run;

pub use args::Args;
pub use heap::Heap;
#[cfg(target_os = "none")]
pub use run::run;
pub use user_rt;

use core::fmt;

/// An RT workload: what one job does, and how its result is checked.
///
/// The harness calls [`setup`](Workload::setup) once, then
/// [`job`](Workload::job) once per release between the TSC reads and the
/// cache-model markers, and after each job (outside the measurement)
/// compares [`result`](Workload::result) with
/// [`expected`](Workload::expected). A job must redo its whole work from
/// the same inputs every time (restore what it changes), so that every
/// job has the same result; `expected` must come from outside the guest's
/// computation (computed on the host by `build.rs`, or a published test
/// vector), so that neither the compiler nor a bug can fold the work away.
pub trait Workload: Sized {
    /// The workload's name in messages and test names.
    const NAME: &'static str;

    /// Reads the task's arguments, takes memory from `heap` and prepares
    /// the inputs. Runs before any measurement.
    fn setup(args: &Args<'_>, heap: &mut Heap) -> Result<Self, Error>;

    /// One job: the measured work.
    fn job(&mut self);

    /// A digest of the last job's output (computed outside the
    /// measurement).
    fn result(&self) -> u64;

    /// The value [`result`](Workload::result) must have.
    fn expected(&self) -> u64;
}

/// Why a workload or the harness could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// An argument is malformed or out of range.
    BadArg { key: &'static str, why: &'static str },
    /// The heap is too small: `need` bytes asked, `left` bytes left.
    Heap { need: usize, left: usize },
    /// No host-computed expected value exists for this parameter value.
    NoExpected { key: &'static str, value: u64 },
    /// A C workload's `prism_setup` returned this non-zero code.
    C(i32),
    /// Anything else, in words.
    Other(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::BadArg { key, why } => write!(f, "argument `{key}`: {why}"),
            Error::Heap { need, left } => write!(
                f,
                "the heap is too small: {need} more bytes needed, {left} left (raise the task's `heap` in the description)"
            ),
            Error::NoExpected { key, value } => {
                write!(f, "no host-computed expected value for {key}={value} (see the workload's supported values)")
            }
            Error::C(code) => write!(f, "prism_setup returned {code}"),
            Error::Other(why) => f.write_str(why),
        }
    }
}

/// A job whose result differs from the expected value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The job number (`None`: the warm-up job).
    pub job: Option<u64>,
    pub result: u64,
    pub expected: u64,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.job {
            Some(j) => write!(f, "job {j}")?,
            None => f.write_str("the warm-up job")?,
        }
        write!(f, " gave {:#018x}, expected {:#018x}: wrong result", self.result, self.expected)
    }
}

/// Compares a job's result with the expected value.
pub fn check(job: Option<u64>, result: u64, expected: u64) -> Result<(), Mismatch> {
    if result == expected {
        Ok(())
    } else {
        Err(Mismatch { job, result, expected })
    }
}

/// The main function of a workload binary: `harness::main!(MyWorkload);`.
#[macro_export]
macro_rules! main {
    ($w:ty) => {
        #[cfg(target_os = "none")]
        fn __harness_main() {
            $crate::run::<$w>()
        }
        #[cfg(target_os = "none")]
        $crate::user_rt::entry!(__harness_main);
        #[cfg(not(target_os = "none"))]
        fn main() {
            eprintln!("this workload is a boot module: build it with `just build` (target x86_64-unknown-none)");
            std::process::exit(2);
        }
    };
}

/// A workload in freestanding C: the binary's whole source is
/// `harness::c_workload!("name");`, and `build.rs` links the C objects of
/// `c/<binary>/` into this binary. The C side provides (see the README):
///
/// ```c
/// int prism_setup(const char *args, unsigned long args_len,
///                 void *heap, unsigned long heap_size); /* 0: ready */
/// void prism_job(void);                       /* one job, the measured work */
/// unsigned long long prism_result(void);      /* digest of the last job's output */
/// unsigned long long prism_expected(void);    /* what prism_result must be */
/// ```
#[macro_export]
macro_rules! c_workload {
    ($name:literal) => {
        #[cfg(target_os = "none")]
        mod __c_workload {
            extern "C" {
                fn prism_setup(args: *const u8, args_len: usize, heap: *mut u8, heap_size: usize) -> i32;
                fn prism_job();
                fn prism_result() -> u64;
                fn prism_expected() -> u64;
            }

            pub struct C;

            impl $crate::Workload for C {
                const NAME: &'static str = $name;

                fn setup(args: &$crate::Args<'_>, heap: &mut $crate::Heap) -> Result<Self, $crate::Error> {
                    let text = args.text();
                    let mem = heap.take_rest(64);
                    let n = mem.len();
                    // SAFETY: the C side reads `text` (args_len bytes) and
                    // uses `mem` (heap_size bytes, owned by it from now on)
                    // during setup and every later call.
                    let r = unsafe { prism_setup(text.as_ptr(), text.len(), mem.as_mut_ptr(), n) };
                    if r == 0 {
                        Ok(C)
                    } else {
                        Err($crate::Error::C(r))
                    }
                }

                fn job(&mut self) {
                    // SAFETY: setup succeeded; the C workload owns its state.
                    unsafe { prism_job() }
                }

                fn result(&self) -> u64 {
                    // SAFETY: as above.
                    unsafe { prism_result() }
                }

                fn expected(&self) -> u64 {
                    // SAFETY: as above.
                    unsafe { prism_expected() }
                }
            }
        }
        $crate::main!(__c_workload::C);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_compares_exactly() {
        assert_eq!(check(Some(3), 5, 5), Ok(()));
        let m = check(Some(3), 5, 6).unwrap_err();
        assert_eq!(m, Mismatch { job: Some(3), result: 5, expected: 6 });
        assert!(m.to_string().contains("job 3 gave 0x0000000000000005"));
    }
}
