//! Workload configs: the TOML a user edits (`workloads/configs/*.toml`),
//! checked with `cache-color` and turned into the compact form that sigma0
//! reads from the `config` boot module (`cache_color::bootcfg`).

use anyhow::{bail, Context, Result};
use cache_color::bootcfg;
use cache_color::geometry::{CacheKind, CacheLevel};
use cache_color::partition::{self, MemRegion, PartitionSpec};
use cache_color::ColorMap;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub cache: Option<Cache>,
    #[serde(default, rename = "partition")]
    pub partitions: Vec<Partition>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    pub size: Size,
    pub ways: u32,
    #[serde(default = "default_line")]
    pub line: u32,
}

fn default_line() -> u32 {
    64
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    pub name: String,
    pub colors: String,
    #[serde(default)]
    pub memory: Option<Size>,
}

/// A byte count: a number or a string with a unit (`"4MiB"`, `"512KiB"`).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(try_from = "toml::Value")]
pub struct Size(pub u64);

impl TryFrom<toml::Value> for Size {
    type Error = String;
    fn try_from(v: toml::Value) -> Result<Self, String> {
        match v {
            toml::Value::Integer(n) if n >= 0 => Ok(Size(n as u64)),
            toml::Value::String(s) => parse_size(&s).map(Size),
            other => Err(format!("expected a size like \"4MiB\", found {other}")),
        }
    }
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size (like \"4MiB\")"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        u => return Err(format!("unknown unit `{u}` in `{s}` (use B, KiB, MiB, GiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{s}` is too large"))
}

/// Reads, validates against a guest of `ram` bytes, and returns the compact form.
pub fn compact(path: &Path, ram: u64) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cfg: Config = toml::from_str(&text).with_context(|| format!("{} is not a valid config", path.display()))?;
    compact_config(&cfg, ram).with_context(|| format!("in {}", path.display()))
}

pub fn compact_config(cfg: &Config, ram: u64) -> Result<String> {
    let llc = cfg.cache.as_ref().map(|c| CacheLevel::new(3, CacheKind::Unified, c.size.0, c.ways, c.line));
    if let Some(l) = &llc {
        if let Err(e) = l.validate() {
            bail!("[cache]: {e}");
        }
    }
    let specs: Vec<PartitionSpec> = cfg
        .partitions
        .iter()
        .map(|p| PartitionSpec { name: &p.name, colors: &p.colors, memory: p.memory.map_or(0, |m| m.0) })
        .collect();
    if specs.len() > bootcfg::MAX_PARTITIONS {
        bail!("{} partitions; at most {}", specs.len(), bootcfg::MAX_PARTITIONS);
    }
    if let Some(l) = &llc {
        let map = ColorMap::new(l, 4096).map_err(|e| anyhow::anyhow!("[cache]: {e}"))?;
        partition::validate(&specs, &map, &[MemRegion { start: 0, len: ram }])
            .map_err(|e| anyhow::anyhow!("partitions: {e}"))?;
    } else if specs.iter().any(|s| s.name.contains(char::is_whitespace)) {
        bail!("partition names must not contain spaces");
    }
    let mut out = String::new();
    bootcfg::write(&mut out, llc.as_ref(), &specs)?;
    // What sigma0 will read must parse back to the same thing.
    let back = bootcfg::parse(&out).map_err(|e| anyhow::anyhow!("internal: {e}"))?;
    assert_eq!(back.partitions(), &specs[..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(s: &str) -> Config {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn default_config_compacts() {
        let c =
            compact(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../workloads/configs/default.toml")), 128 << 20)
                .unwrap();
        assert!(c.starts_with(bootcfg::HEADER));
        assert!(c.contains("llc 1048576 16 64"));
        assert!(c.contains("partition rt 0-7 4194304"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let base = "[cache]\nsize = \"1MiB\"\nways = 16\n";
        let overlap = cfg(&format!(
            "{base}[[partition]]\nname=\"a\"\ncolors=\"0-7\"\n[[partition]]\nname=\"b\"\ncolors=\"7-9\"\n"
        ));
        let e = compact_config(&overlap, 128 << 20).unwrap_err().to_string();
        assert!(e.contains("partitions"), "{e}");
        let beyond = cfg(&format!("{base}[[partition]]\nname=\"a\"\ncolors=\"0-16\"\n"));
        assert!(compact_config(&beyond, 128 << 20).is_err());
        let too_big = cfg(&format!("{base}[[partition]]\nname=\"a\"\ncolors=\"0\"\nmemory=\"64MiB\"\n"));
        assert!(compact_config(&too_big, 128 << 20).is_err());
        assert!(toml::from_str::<Config>("[cache]\nsize=1\nways=1\nbogus=1\n").is_err());
    }
}
