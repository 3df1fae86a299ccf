//! `prism bench --profile NAME`: where the guest instructions of one
//! iteration of benchmark NAME go, by function.
//!
//! The benchmark task runs NAME alone with markers just inside the two TSC
//! reads of each iteration (argument `profile=NAME`), under TCG with
//! `-icount shift=0` and the profile plugin (`wcet-reports/profile-plugin`),
//! which counts executed instructions per guest address in every marker
//! window and writes those of the median window (one real iteration). Here
//! the addresses become functions: kernel-half addresses by the symbols of
//! `build/kernel.elf`, the others by those of the bench task's ELF (every
//! user thread of the benchmark, in whichever of its spaces, runs that
//! binary). The kernel is built with inlining, so a function here is the
//! symbol the code was inlined into.

use crate::bench;
use crate::qemu::{Accel, Qemu};
use anyhow::{bail, Context, Result};
use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};
use std::collections::BTreeMap;
use std::path::Path;

/// The plugin `just build` copies next to the kernel.
pub const PLUGIN: &str = "libprofile_plugin.so";

/// What the plugin wrote.
#[derive(Debug, PartialEq, Eq)]
pub struct Raw {
    pub windows: usize,
    pub kept: Vec<u64>,
    pub median_total: u64,
    /// (address, count) of the median window.
    pub insns: Vec<(u64, u64)>,
}

/// Reads the plugin's file ([`profile_plugin::Profile::write`]).
pub fn parse_raw(text: &str) -> Result<Raw> {
    let mut raw = Raw { windows: 0, kept: Vec::new(), median_total: 0, insns: Vec::new() };
    let mut median = false;
    for (n, l) in text.lines().enumerate() {
        let w: Vec<&str> = l.split_whitespace().collect();
        let bad = || anyhow::anyhow!("profile line {}: {l:?}", n + 1);
        match w.as_slice() {
            ["#", "prism-profile", rest @ ..] => {
                raw.windows = rest
                    .iter()
                    .find_map(|kv| kv.strip_prefix("windows="))
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(bad)?;
            }
            ["window", t] => raw.kept.push(t.parse().map_err(|_| bad())?),
            ["median", _, t] => {
                raw.median_total = t.parse().map_err(|_| bad())?;
                median = true;
            }
            ["insn", a, c] => {
                raw.insns.push((u64::from_str_radix(a, 16).map_err(|_| bad())?, c.parse().map_err(|_| bad())?))
            }
            _ => bail!("profile line {}: {l:?} is not a profile line", n + 1),
        }
    }
    if !median {
        bail!("the profile has no window (did the benchmark run with markers?)");
    }
    Ok(raw)
}

/// The function symbols of an ELF: (start, end, demangled name), sorted.
pub fn symbols(elf: &Path) -> Result<Vec<(u64, u64, String)>> {
    let data = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let file = object::File::parse(&*data).with_context(|| format!("parsing {}", elf.display()))?;
    let mut v: Vec<(u64, u64, String)> = file
        .symbols()
        .filter(|s| {
            // Functions, and the untyped labels of assembler stubs in code.
            let in_code = s
                .section_index()
                .and_then(|i| file.section_by_index(i).ok())
                .is_some_and(|sec| sec.kind() == SectionKind::Text);
            s.address() != 0 && in_code && matches!(s.kind(), SymbolKind::Text | SymbolKind::Unknown)
        })
        .filter_map(|s| {
            let name = s.name().ok()?;
            Some((s.address(), s.address() + s.size(), format!("{:#}", rustc_demangle::demangle(name))))
        })
        .collect();
    v.sort();
    v.dedup_by_key(|s| s.0);
    // Labels of assembler stubs have no size: each runs to the next symbol.
    for i in 0..v.len() {
        if v[i].1 == v[i].0 {
            v[i].1 = v.get(i + 1).map_or(v[i].0 + 1, |n| n.0);
        }
    }
    Ok(v)
}

/// The function of `addr` in `syms`, if any.
pub fn function_of(syms: &[(u64, u64, String)], addr: u64) -> Option<&str> {
    let i = syms.partition_point(|s| s.0 <= addr);
    let s = syms.get(i.checked_sub(1)?)?;
    (addr < s.1).then_some(s.2.as_str())
}

/// One line of a profile: a function, its side, its instructions.
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    pub side: &'static str,
    pub function: String,
    pub instructions: u64,
}

/// Sums the median window's counts by function, most first.
pub fn by_function(raw: &Raw, kernel: &[(u64, u64, String)], user: &[(u64, u64, String)]) -> Vec<Line> {
    let mut sums: BTreeMap<(&'static str, String), u64> = BTreeMap::new();
    for &(a, c) in &raw.insns {
        let (side, syms) = if a >= 0xffff_8000_0000_0000 { ("kernel", kernel) } else { ("user", user) };
        let f = function_of(syms, a).map(str::to_string).unwrap_or_else(|| format!("? ({a:#x})"));
        *sums.entry((side, f)).or_default() += c;
    }
    let mut v: Vec<Line> =
        sums.into_iter().map(|((side, function), instructions)| Line { side, function, instructions }).collect();
    v.sort_by(|a, b| b.instructions.cmp(&a.instructions).then(a.function.cmp(&b.function)));
    v
}

/// The printed profile.
pub fn render(name: &str, qemu: &str, raw: &Raw, lines: &[Line], figure: Option<abi::bench::Summary>) -> String {
    let mut s = format!(
        "Profile of one iteration of `{name}` (the median of {} kept windows of {}), {qemu}, TCG+icount:\n",
        raw.kept.len(),
        raw.windows
    );
    let kernel: u64 = lines.iter().filter(|l| l.side == "kernel").map(|l| l.instructions).sum();
    s.push_str(&format!(
        "{} instructions between the markers: {} in the kernel, {} at user level.\n",
        raw.median_total,
        kernel,
        raw.median_total - kernel
    ));
    if let Some(f) = figure {
        s.push_str(&format!(
            "The benchmark's own figure in this run (TSC reads and the two markers included): median {}.\n",
            f.median
        ));
    }
    s.push_str(&format!("\n{:>8} {:>6}  {:<6}  function\n", "insns", "share", "side"));
    for l in lines {
        let share = 100.0 * l.instructions as f64 / raw.median_total.max(1) as f64;
        s.push_str(&format!("{:>8} {:>5.1}%  {:<6}  {}\n", l.instructions, share, l.side, l.function));
    }
    s
}

/// Runs the profile of benchmark `name` and returns the printed text.
pub fn run(build: &Path, name: &str, qemu: &Qemu) -> Result<String> {
    // QEMU 9 and later abort a run under -icount in which every instruction
    // has an exec callback ("Bad icount read", seen on 10.0.2); 7.2 to 8.2
    // (plugin API 1) run it.
    let major: u32 = qemu.version()?.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    if major >= 9 {
        bail!(
            "the profile needs a QEMU from 7.2 to 8.2: {} aborts -icount runs with a callback on every instruction \
             (\"Bad icount read\"); unset PRISM_QEMU to use the system's QEMU 7.2",
            qemu.describe()
        );
    }
    let plugin = build.join(PLUGIN);
    if !plugin.is_file() {
        bail!("{} missing (run `just build`)", plugin.display());
    }
    let out = build.join(format!("profile-{name}.txt"));
    let _ = std::fs::remove_file(&out);
    // Skip the warm-up windows; keep the timed ones (up to 2000).
    let extra =
        vec!["-plugin".to_string(), format!("file={},out={},skip=100,keep=2000", plugin.display(), out.display())];
    let figures = bench::run_prism(build, Accel::TcgIcount, qemu, Some(name), &extra)?;
    let figure = figures.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
    if figure.is_none() {
        bail!("the benchmark task knows no benchmark `{name}` (or it printed no figure)");
    }
    // QEMU writes the file at exit; the run stops QEMU once `bench done`
    // is printed, which ends it through its exit handlers.
    let text = std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
    let raw = parse_raw(&text)?;
    let kernel = symbols(&build.join("kernel.elf"))?;
    let user = symbols(&build.join("modules/bench"))?;
    Ok(render(name, &qemu.describe(), &raw, &by_function(&raw, &kernel, &user), figure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_file_parses_and_sums_by_function() {
        let text = "# prism-profile api=1 windows=10 skipped=1 kept=3\nwindow 5\nwindow 6\nwindow 13\nmedian 1 6\n\
                    insn 1000 3\ninsn 1004 2\ninsn ffff800000001000 1\ninsn 9000 1\n";
        let raw = parse_raw(text).unwrap();
        assert_eq!(raw.windows, 10);
        assert_eq!(raw.kept, vec![5, 6, 13]);
        assert_eq!(raw.median_total, 6);
        let kernel = vec![(0xffff_8000_0000_0ff0, 0xffff_8000_0000_1010, "kernel::ipc::sys_ipc".to_string())];
        let user = vec![(0x0ff0, 0x1002, "bench::call".to_string()), (0x1002, 0x1010, "bench::measure".to_string())];
        assert_eq!(function_of(&user, 0x1001), Some("bench::call"));
        assert_eq!(function_of(&user, 0x1010), None);
        assert_eq!(function_of(&user, 0x10), None);
        let lines = by_function(&raw, &kernel, &user);
        let got: Vec<(&str, &str, u64)> = lines.iter().map(|l| (l.side, l.function.as_str(), l.instructions)).collect();
        assert_eq!(
            got,
            vec![
                ("user", "bench::call", 3),
                ("user", "bench::measure", 2),
                ("user", "? (0x9000)", 1),
                ("kernel", "kernel::ipc::sys_ipc", 1),
            ]
        );
        let r = render("ipc_call_registers", "QEMU 7.2.22", &raw, &lines, None);
        assert!(r.contains("6 instructions between the markers: 1 in the kernel, 5 at user level."), "{r}");
        assert!(parse_raw("window 5\n").unwrap_err().to_string().contains("no window"));
        assert!(parse_raw("median 1 6\ninsn zz 1\n").is_err());
    }

    #[test]
    fn symbols_of_this_test_binary_resolve() {
        let me = std::env::current_exe().unwrap();
        let syms = symbols(&me).unwrap();
        assert!(syms.windows(2).all(|w| w[0].0 <= w[1].0));
        let named = syms.iter().find(|s| s.2.ends_with("profile::symbols")).expect("profile::symbols in its own ELF");
        assert_eq!(function_of(&syms, named.0), Some(named.2.as_str()));
    }
}
