//! The in-guest test suite: which boots to make, what each must print.
//!
//! Each boot runs the test kernel with `test=NAME`. The guest prints one
//! line per test (`test X ... ok` / `test X ... FAILED: why`) and a
//! `N passed, N failed` line, and leaves through `isa-debug-exit`. The host
//! adds checks only it can make (the console text of the banner and fault
//! reports, timing) and counts everything into one closing line.

use crate::qemu::{Accel, Boot, Outcome, EXIT_FAIL, EXIT_PASS};
use anyhow::Result;
use std::path::Path;
use std::time::Duration;

/// A host-side check of a boot's console output.
pub struct Expect {
    pub name: &'static str,
    /// Every needle must appear in the output.
    pub needles: &'static [&'static str],
}

pub struct GuestBoot {
    pub name: &'static str,
    pub test: &'static str,
    /// Root task arguments (`None`: root task without arguments).
    pub root_args: Option<&'static str>,
    pub expect: &'static [Expect],
}

pub const BOOTS: &[GuestBoot] = &[
    GuestBoot {
        name: "boot",
        test: "suite",
        root_args: None,
        expect: &[Expect {
            name: "banner_names_kernel_cpu_and_loader",
            needles: &[
                "Prism microkernel v",
                "cpu: ",
                "boot: Multiboot v1 by \"qemu\"",
                "memory: ",
            ],
        }],
    },
    GuestBoot {
        name: "fault",
        test: "page_fault",
        root_args: None,
        expect: &[Expect {
            name: "page_fault_report_text",
            needles: &[
                "exception #PF (page fault, vector 14) in kernel mode",
                "cr2 0xffffffff00000000",
                "write access, page not present",
            ],
        }],
    },
    GuestBoot {
        name: "fault",
        test: "general_protection",
        root_args: None,
        expect: &[Expect {
            name: "general_protection_report_text",
            needles: &[
                "exception #GP (general protection, vector 13) in kernel mode",
                "error code 0x0",
            ],
        }],
    },
    GuestBoot {
        name: "user",
        test: "user",
        root_args: Some("test"),
        expect: &[Expect {
            name: "root_task_output_on_console",
            needles: &[
                "starting root task \"sigma0\"",
                "sigma0: hello from ring 3",
                "exception #GP (general protection, vector 13) in user mode",
                "cs 0x23",
            ],
        }],
    },
];

/// Boots the GRUB ISO and checks that GRUB loads the kernel and its module.
pub fn run_iso(iso: &Path, timeout: Duration) -> Result<(Vec<TestResult>, Outcome)> {
    let mut boot = Boot::new(iso, Accel::Tcg);
    boot.cdrom = Some(iso.to_path_buf());
    let done = |s: &str| s.contains("no runnable task left");
    let o = boot.run_captured(timeout, Some(&done))?;
    let text = o.text();
    let checks = [
        ("grub_loads_kernel", "boot: Multiboot v1 by \"GRUB"),
        ("root_task_runs_from_iso", "sigma0: hello from ring 3"),
        ("root_task_exits_cleanly", "task sigma0: exited"),
    ];
    let results = checks
        .iter()
        .map(|(name, needle)| TestResult {
            name: format!("iso::{name}"),
            ok: text.contains(needle),
            detail: format!("{needle:?} not on the console"),
        })
        .collect();
    Ok((results, o))
}

/// A boot to make: returns its results and the console it produced.
pub type BootRun = Box<dyn Fn() -> Result<(Vec<TestResult>, Outcome)>>;

/// One result line.
pub struct TestResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Parses the guest's own test lines.
pub fn parse_guest_lines(prefix: &str, o: &Outcome) -> Vec<TestResult> {
    o.lines
        .iter()
        .filter_map(|(_, l)| {
            let rest = l.strip_prefix("test ")?;
            let (name, verdict) = rest.split_once(" ... ")?;
            Some(TestResult {
                name: format!("{prefix}::{name}"),
                ok: verdict == "ok",
                detail: verdict.strip_prefix("FAILED: ").unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// Runs one boot and returns its results (guest lines, host checks, exit).
pub fn run_boot(
    b: &GuestBoot,
    build: &Path,
    timeout: Duration,
) -> Result<(Vec<TestResult>, Outcome)> {
    let mut boot = Boot::new(build.join("kernel-test.elf"), Accel::Tcg);
    boot.cmdline = format!("test={}", b.test);
    let root = build.join("modules/sigma0").display().to_string();
    boot.modules.push(match b.root_args {
        Some(a) => format!("{root} {a}"),
        None => root,
    });
    let o = boot.run_captured(timeout, None)?;
    let prefix = format!("{}::{}", b.name, b.test);
    let mut results = parse_guest_lines(&prefix, &o);
    let text = o.text();
    for e in b.expect {
        let missing: Vec<_> = e.needles.iter().filter(|n| !text.contains(**n)).collect();
        results.push(TestResult {
            name: format!("{prefix}::{}", e.name),
            ok: missing.is_empty(),
            detail: format!("missing from console: {missing:?}"),
        });
    }
    let exit_ok = o.status == Some(EXIT_PASS);
    let detail = if o.timed_out {
        format!("guest hung: killed after {} s", timeout.as_secs())
    } else if o.status == Some(EXIT_FAIL) {
        "guest reported failure".to_string()
    } else {
        format!(
            "unexpected QEMU exit status {:?} {}",
            o.status,
            o.stderr.trim()
        )
    };
    results.push(TestResult {
        name: format!("{prefix}::exit_status"),
        ok: exit_ok,
        detail,
    });
    Ok((results, o))
}
