//! The Linux side of `prism bench`: Debian's stock kernel booted under the
//! same QEMU binary, CPU model, memory and accelerator flags as Prism (one
//! [`Boot`], so [`crate::qemu`] stays the only place that knows QEMU's
//! flags), with a tiny initramfs whose `/init` is `bench-linux` (the Linux
//! benchmark, a static musl binary). Its console goes to the serial port
//! and carries the same result lines as Prism's task
//! ([`abi::bench::parse_line`]).
//!
//! The kernel comes from `just setup` (`bench-linux/kernel-fetch.sh`:
//! `linux-image-amd64`'s kernel package, pinned by version and SHA-256 in
//! `bench-linux/kernel-fetch.lock`, into `build/linux/`);
//! `PRISM_LINUX_KERNEL=/path/to/bzImage` selects another one.

use crate::qemu::{Accel, Boot, Qemu};
use abi::bench::Summary;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `just setup` puts the kernel (`vmlinuz`, `config`, `.complete`).
pub const KERNEL_DIR: &str = "linux";
/// The benchmark binary `just bench` builds for `x86_64-unknown-linux-musl`.
pub const INIT: &str = "bench-linux";
/// The kernel command line: console on the first serial port, no boot
/// chatter, and a panic ends QEMU (`-no-reboot`) rather than hanging.
pub const CMDLINE: &str = "console=ttyS0 quiet panic=-1";

/// The kernel to boot: `PRISM_LINUX_KERNEL`, else the fetched one.
pub fn kernel(build: &Path) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PRISM_LINUX_KERNEL").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("PRISM_LINUX_KERNEL={} is not a file", p.display());
        }
        return Ok(p);
    }
    let p = build.join(KERNEL_DIR).join("vmlinuz");
    if !p.is_file() {
        bail!(
            "no Linux kernel at {} (`just setup` fetches Debian's on Debian 12; elsewhere set PRISM_LINUX_KERNEL=/path/to/bzImage)",
            p.display()
        );
    }
    Ok(p)
}

/// One entry of a `newc` cpio archive.
struct Entry<'a> {
    name: &'a str,
    mode: u32,
    data: &'a [u8],
    /// Device number of a character device.
    rdev: (u32, u32),
}

const S_IFDIR: u32 = 0o040000;
const S_IFCHR: u32 = 0o020000;
const S_IFREG: u32 = 0o100000;

/// An initramfs (`newc` cpio, uncompressed) holding `/init` and what it
/// needs: `/dev/console` (the kernel opens it for process 1's standard
/// streams; a device node in the archive needs no root on the host),
/// `/proc` and `/sys` to mount.
pub fn initramfs(init: &[u8]) -> Vec<u8> {
    let entries = [
        Entry { name: "dev", mode: S_IFDIR | 0o755, data: &[], rdev: (0, 0) },
        Entry { name: "dev/console", mode: S_IFCHR | 0o600, data: &[], rdev: (5, 1) },
        Entry { name: "proc", mode: S_IFDIR | 0o755, data: &[], rdev: (0, 0) },
        Entry { name: "sys", mode: S_IFDIR | 0o755, data: &[], rdev: (0, 0) },
        Entry { name: "init", mode: S_IFREG | 0o755, data: init, rdev: (0, 0) },
        Entry { name: "TRAILER!!!", mode: 0, data: &[], rdev: (0, 0) },
    ];
    let mut out = Vec::with_capacity(init.len() + 1024);
    let pad = |out: &mut Vec<u8>| out.resize(out.len().next_multiple_of(4), 0);
    for (ino, e) in entries.iter().enumerate() {
        let nlink = if e.mode & S_IFDIR != 0 { 2 } else { 1 };
        let ino = if e.name == "TRAILER!!!" { 0 } else { ino as u32 + 1 };
        let fields =
            [ino, e.mode, 0, 0, nlink, 0, e.data.len() as u32, 0, 0, e.rdev.0, e.rdev.1, e.name.len() as u32 + 1, 0];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(e.name.as_bytes());
        out.push(0);
        pad(&mut out);
        out.extend_from_slice(e.data);
        pad(&mut out);
    }
    out
}

/// What one Linux boot printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxRun {
    pub figures: Vec<(String, Summary)>,
    /// The benchmark's `linux-bench: ...` lines (kernel version,
    /// mitigations, scheduling policy, failures), without the prefix.
    pub info: Vec<String>,
}

/// Reads a Linux benchmark console: result lines, info lines, and the
/// closing `bench done`; a benchmark that failed, or a console that ends
/// early, is an error naming the last lines.
pub fn parse_console(lines: &[String]) -> Result<LinuxRun> {
    let mut run = LinuxRun { figures: Vec::new(), info: Vec::new() };
    let mut done = false;
    for l in lines {
        let l = l.trim_end_matches('\r');
        if let Some((name, s)) = abi::bench::parse_line(l) {
            run.figures.push((name.to_string(), s));
        } else if let Some(i) = l.strip_prefix("linux-bench: ") {
            run.info.push(i.to_string());
        } else if l == "bench done" {
            done = true;
        }
    }
    let tail = || lines[lines.len().saturating_sub(25)..].join("\n");
    let failed: Vec<&String> = run.info.iter().filter(|i| i.contains(" failed: ")).collect();
    if !failed.is_empty() {
        bail!("the Linux benchmark reported failures: {failed:?}; console:\n{}", tail());
    }
    if !done || run.figures.is_empty() {
        bail!("the Linux benchmark did not finish; console:\n{}", tail());
    }
    Ok(run)
}

/// Boots `kernel` with the benchmark as `/init` under `accel` and `qemu`.
pub fn run(build: &Path, kernel: &Path, accel: Accel, qemu: &Qemu) -> Result<LinuxRun> {
    let init_path = build.join(INIT);
    let init = std::fs::read(&init_path)
        .with_context(|| format!("reading {} (`just bench` builds it)", init_path.display()))?;
    let cpio = build.join("bench-linux.cpio");
    std::fs::write(&cpio, initramfs(&init)).with_context(|| format!("writing {}", cpio.display()))?;
    let mut boot = Boot::new(kernel, accel);
    boot.qemu = qemu.clone();
    boot.memory_mib = crate::bench::MEMORY_MIB;
    boot.cmdline = CMDLINE.into();
    boot.modules = vec![cpio.display().to_string()];
    let o = boot.run_captured(Duration::from_secs(900), Some(&|s: &str| s.contains("bench done")))?;
    let lines: Vec<String> = o.lines.iter().map(|(_, l)| l.clone()).collect();
    parse_console(&lines).with_context(|| format!("Linux ({}) under {accel}", kernel.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A console of a real run (`just bench`, Debian's 6.1.0-50 under QEMU
    /// 7.2 TCG+icount), cut to a few benchmarks.
    const RECORDED: &str = include_str!("../tests/linux-console.txt");

    #[test]
    fn a_recorded_console_parses() {
        let lines: Vec<String> = RECORDED.lines().map(String::from).collect();
        let run = parse_console(&lines).unwrap();
        let names: Vec<&str> = run.figures.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(&names[..3], ["empty", "getppid", "pipe_48"]);
        let getppid = run.figures[1].1;
        assert_eq!(getppid, Summary { rounds: 10000, min: 333, median: 333, p99: 333, max: 4120 });
        assert!(run.info[0].starts_with("kernel Linux version 6.1.0-50-amd64"), "{:?}", run.info);
        assert!(run.info.iter().any(|i| i.contains("policy=\"SCHED_FIFO")));
        // Kernel messages between the lines are skipped; an unfinished or
        // failed run is an error.
        let cut: Vec<String> = lines.iter().take_while(|l| !l.starts_with("bench done")).cloned().collect();
        assert!(parse_console(&cut).unwrap_err().to_string().contains("did not finish"));
        let mut failed = lines.clone();
        failed.insert(5, "linux-bench: futex_pingpong failed: futex: Bad address".into());
        assert!(parse_console(&failed).unwrap_err().to_string().contains("futex_pingpong failed"));
    }

    #[test]
    fn initramfs_is_a_newc_archive_with_init_and_console() {
        let init = b"\x7fELF-not-really";
        let a = initramfs(init);
        // Walk the archive as the kernel's unpacker does.
        let mut at = 0;
        let mut seen = Vec::new();
        loop {
            let h = std::str::from_utf8(&a[at..at + 110]).unwrap();
            assert_eq!(&h[..6], "070701");
            let field = |i: usize| u32::from_str_radix(&h[6 + 8 * i..14 + 8 * i], 16).unwrap();
            let (mode, size, rmaj, rmin, namesize) = (field(1), field(6), field(9), field(10), field(11));
            let name = std::str::from_utf8(&a[at + 110..at + 110 + namesize as usize - 1]).unwrap().to_string();
            assert_eq!(a[at + 110 + namesize as usize - 1], 0);
            at = (at + 110 + namesize as usize).next_multiple_of(4);
            let data = &a[at..at + size as usize];
            at = (at + size as usize).next_multiple_of(4);
            if name == "TRAILER!!!" {
                break;
            }
            seen.push((name, mode, data.to_vec(), (rmaj, rmin)));
        }
        assert_eq!(at, a.len());
        let find = |n: &str| seen.iter().find(|e| e.0 == n).unwrap_or_else(|| panic!("{n} missing"));
        assert_eq!(find("init").1, 0o100755);
        assert_eq!(find("init").2, init);
        assert_eq!((find("dev/console").1, find("dev/console").3), (0o020600, (5, 1)));
        for d in ["dev", "proc", "sys"] {
            assert_eq!(find(d).1, 0o040755);
        }
    }
}
