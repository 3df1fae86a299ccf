//! `prism bench`: the kernel's benchmarks (the `bench` task of
//! `kernel/tests/driver`), run under TCG (TSC cycles) and under TCG with
//! `-icount shift=0` (where the guest TSC counts instructions), printed side
//! by side.

use crate::qemu::{Accel, Boot, Qemu};
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

/// One cache-model speed figure: a guest loop of `loads` loads, `plugin`
/// says whether the cache-model plugin simulated them.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpeed {
    pub name: String,
    pub loads: u64,
    pub seconds: f64,
    pub plugin: bool,
}

/// Runs the test kernel's `cache_model_speed` loops under `qemu` with
/// TCG+icount, with the cache-model plugin (`host` profile) and without it,
/// and times each loop by its console lines.
pub fn model_speed(build: &Path, qemu: &Qemu) -> Result<Vec<ModelSpeed>> {
    let mut v = Vec::new();
    for plugin in [true, false] {
        let mut boot = Boot::new(build.join("kernel-test.elf"), Accel::TcgIcount);
        boot.qemu = qemu.clone();
        boot.cmdline = "test=cache_model_speed".into();
        if plugin {
            boot.with_cache_model(&build.join("libcache_model.so"), "host", &build.join("cache-model-speed.csv"));
        }
        let o = boot.run_captured(Duration::from_secs(600), None)?;
        for (t0, line) in &o.lines {
            let Some(rest) = line.strip_prefix("speed ") else { continue };
            let Some((name, loads)) = rest.split_once(" begin loads=") else { continue };
            let end = o.lines.iter().find(|(_, l)| *l == format!("speed {name} end")).map(|(t, _)| *t);
            let (Some(t1), Ok(loads)) = (end, loads.parse()) else {
                bail!("the speed loop {name} did not finish under {}; console:\n{}", qemu.describe(), o.tail(20));
            };
            v.push(ModelSpeed { name: name.to_string(), loads, seconds: (t1 - *t0).as_secs_f64(), plugin });
        }
    }
    if v.len() != 4 {
        bail!("the cache-model speed boot printed {} of 4 timings under {}", v.len(), qemu.describe());
    }
    Ok(v)
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
