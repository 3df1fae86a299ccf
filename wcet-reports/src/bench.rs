//! `prism bench`: the kernel's benchmarks (the `bench` task of
//! `kernel/tests/driver`), run under TCG (TSC cycles) and under TCG with
//! `-icount shift=0` (where the guest TSC counts instructions), printed side
//! by side.

use crate::qemu::{Accel, Boot};
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// One benchmark line of the guest: `bench NAME rounds=N min=.. median=.. p99=.. max=..`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Figure {
    pub name: String,
    pub rounds: u64,
    pub min: u64,
    pub median: u64,
    pub p99: u64,
    pub max: u64,
}

pub fn parse_line(line: &str) -> Option<Figure> {
    let mut words = line.strip_prefix("bench ")?.split_whitespace();
    let name = words.next()?.to_string();
    let mut kv = BTreeMap::new();
    for w in words {
        let (k, v) = w.split_once('=')?;
        kv.insert(k, v.parse::<u64>().ok()?);
    }
    Some(Figure {
        name,
        rounds: *kv.get("rounds")?,
        min: *kv.get("min")?,
        median: *kv.get("median")?,
        p99: *kv.get("p99")?,
        max: *kv.get("max")?,
    })
}

/// The benchmark image: the `bench` task alone (`kernel/tests/images/bench`).
pub const IMAGE: &str = "kernel/tests/images/bench/system";

/// Boots the benchmark image under `accel` and returns its figures.
pub fn run(build: &Path, accel: Accel) -> Result<Vec<Figure>> {
    let image = crate::image::of(build, Path::new(IMAGE))?;
    let mut boot = Boot::new(build.join("kernel.elf"), accel);
    boot.cmdline = image.cmdline.clone();
    boot.modules = image.module_args();
    let o = boot.run_captured(Duration::from_secs(600), Some(&|s: &str| s.contains("bench done")))?;
    let figures: Vec<Figure> = o.lines.iter().filter_map(|(_, l)| parse_line(l)).collect();
    if figures.is_empty() || o.time_of("bench done").is_none() {
        bail!("the benchmark did not finish under {accel}; console:\n{}", o.tail(30));
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_guest_lines() {
        let f = parse_line("bench ipc_call_registers rounds=10000 min=1 median=2 p99=3 max=4").unwrap();
        assert_eq!(f, Figure { name: "ipc_call_registers".into(), rounds: 10000, min: 1, median: 2, p99: 3, max: 4 });
        assert_eq!(parse_line("bench x rounds=1 min=1 median=x p99=3 max=4"), None);
        assert_eq!(parse_line("bench: TSC 1 Hz"), None);
    }
}
