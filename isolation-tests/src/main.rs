//! The tasks of the isolation test images (`isolation-tests/images/*/system`),
//! one binary chosen by `mode=`. Each image runs RT tasks of the harness
//! (their job records show whether every deadline was met) beside TS tasks
//! that misbehave, and a collector that waits for the checks:
//!
//! - `probe` (a TS task of the TS pager): sends to the root task, sigma0,
//!   the RT pager and an RT task, each refused with `NoPermission`; the
//!   control calls (create, configure, start, delete, interrupt routing,
//!   counters) refused too; what it may do still works (its pager, a TS
//!   peer, a reply to a caller); the kernel's refusal counts match; a child
//!   it spawns is held to its pager alone.
//! - `narrow` (a TS task with an explicit `allow` list naming only the
//!   collector): answers calls (a reply needs no list entry), may not send
//!   to the TS peer the default list would allow.
//! - `child` (spawned by `probe`): tries the root task, sigma0 and its
//!   parent; exits with the number of sends that were not refused.
//! - `crash kind=ud2|wild|div0|gp|int3` and `crashloop n=N` (TS tasks):
//!   crash at once, or spawn `N` children that crash one after another and
//!   check each was reported to the parent as crashed.
//! - `spin` (a TS task at the top TS priority): computes forever (or makes
//!   system calls forever, `syscalls=1`); reports once it has been
//!   preempted `preempted=N` times (by the RT releases above it).
//! - `storm divisor=D n=N` (a TS task with `irq` and the PIT's ports):
//!   drives PIT channel 0 at 1193182 / D Hz and takes every interrupt as
//!   IPC, forever; reports after `N`.
//! - `work units=N` (a TS task): does `N` units of work (after the
//!   collector's word with `go=1`) and reports.
//! - `toucher` (a TS task of the `pager` below): touches its heap page by
//!   page, forever, so it keeps faulting.
//! - `pager crash_after=N` / `hang_after=N` (a pager of TS tasks):
//!   demand-pages its clients (frames from sigma0, of its partition), and
//!   after `N` faults crashes (`ud2`) or stops answering anyone.
//! - `overrun spin_at=J` (an RT task with a budget): one short job per
//!   period until job `J`, which never ends; the kernel holds it to its
//!   budget and tells its handler.
//! - `watchdog task=NAME` (a test task, the handler of `overrun`): checks
//!   the kernel's notices of the overrun (the task's budget and period,
//!   one per period), then has the root task stop the task for good
//!   (`root::STOP`).
//! - `collect` (a test task): waits until the tasks named by `gone=` are
//!   gone, checks that the one named by `silent=` answers nobody, sends the
//!   word to `go=`, then waits for `reports=N` reports (all within
//!   `ms=T`).
//!
//! Every check prints `test NAME ... ok` or `test NAME ... FAILED: why`;
//! a task that reports sends the collector its number of failures.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pager;
#[cfg(target_os = "none")]
mod tasks;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("isolation-test is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
