//! Built-in profiles and the plugin's `key=value` arguments.

use crate::sim::{LevelConfig, Policy};

/// Line size of every built-in profile.
pub const LINE: u64 = 64;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// A complete model configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Profile name the configuration started from.
    pub profile: &'static str,
    /// Levels, L1D first, last level cache last (2 or 3 levels).
    pub levels: Vec<LevelConfig>,
    /// Cycles charged for an access that misses every level.
    pub mem_latency: u64,
    /// Cycles charged per executed instruction, on top of memory latencies.
    pub base_cpi: u64,
}

impl Config {
    /// The host-like x86 profile: 32 KiB/8-way L1D (4 cycles), 1 MiB/8-way
    /// L2 (14 cycles), 32 MiB/16-way L3 (50 cycles), memory 200 cycles, LRU.
    pub fn host() -> Config {
        Config {
            profile: "host",
            levels: vec![level("L1D", 32 * KIB, 8, 4), level("L2", MIB, 8, 14), level("LLC", 32 * MIB, 16, 50)],
            mem_latency: 200,
            base_cpi: 1,
        }
    }

    /// A small embedded profile (Cortex-A53-like): 32 KiB/4-way L1D
    /// (3 cycles) and a shared 1 MiB/16-way L2 as last level (15 cycles),
    /// memory 120 cycles, LRU.
    pub fn embedded() -> Config {
        Config {
            profile: "embedded",
            levels: vec![level("L1D", 32 * KIB, 4, 3), level("LLC", MIB, 16, 15)],
            mem_latency: 120,
            base_cpi: 1,
        }
    }

    /// A profile by name.
    pub fn profile(name: &str) -> Result<Config, String> {
        match name {
            "host" => Ok(Config::host()),
            "embedded" => Ok(Config::embedded()),
            _ => Err(format!("unknown profile `{name}` (expected `host` or `embedded`)")),
        }
    }

    /// Index of the level that the CSV column group `slot` (0 = l1d,
    /// 1 = l2, 2 = llc) reports, if this configuration has one.
    pub fn slot_level(&self, slot: usize) -> Option<usize> {
        let n = self.levels.len();
        match slot {
            0 => Some(0),
            1 => (n == 3).then_some(1),
            2 => Some(n - 1),
            _ => None,
        }
    }

    /// Checks every level and the level count.
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=3).contains(&self.levels.len()) {
            return Err(format!("need 2 or 3 cache levels, got {}", self.levels.len()));
        }
        for l in &self.levels {
            l.validate()?;
        }
        Ok(())
    }

    /// One-line description, e.g. for logs.
    pub fn describe(&self) -> String {
        let mut s = format!("profile={}", self.profile);
        for l in &self.levels {
            s.push_str(&format!(" {}={}:{}:{}:{}", l.name, l.size, l.ways, l.hit_latency, l.policy.name()));
        }
        s.push_str(&format!(" mem={} cpi={}", self.mem_latency, self.base_cpi));
        s
    }
}

fn level(name: &'static str, size: u64, ways: u32, hit_latency: u64) -> LevelConfig {
    LevelConfig { name, size, ways, line: LINE, hit_latency, policy: Policy::Lru }
}

/// Everything the plugin takes from its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    /// The cache model.
    pub config: Config,
    /// Where the CSV goes.
    pub out: String,
    /// Print a summary to stderr at exit.
    pub verbose: bool,
    /// The QEMU version the caller found (`qemu=`), for the CSV's first line;
    /// the plugin API cannot tell it.
    pub qemu: Option<String>,
}

/// Parses the plugin arguments (`key=value` strings as QEMU 7.2 hands them
/// to `qemu_plugin_install`).
///
/// * `out=PATH` (required): CSV written at exit.
/// * `profile=host|embedded` (default `host`), applied before the overrides
///   whatever the argument order.
/// * `l1d=SIZE:WAYS[:LAT]`, `l2=...`, `llc=...`: geometry overrides; SIZE
///   takes `K`/`M` suffixes (`32K`, `1M`). `l2` is refused for a profile
///   whose last level is its second one (use `llc`).
/// * `mem=CYCLES`, `cpi=CYCLES`: memory latency and base cycles per insn.
/// * `policy=lru|plru`: replacement policy of every level.
/// * `verbose=on|off`: summary on stderr at exit.
/// * `qemu=VERSION`: the QEMU version, written into the CSV's first line.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Args, String> {
    let mut kv = Vec::new();
    for a in args {
        let a = a.as_ref();
        let (k, v) = a.split_once('=').ok_or_else(|| format!("argument `{a}` is not key=value"))?;
        kv.push((k.trim(), v.trim()));
    }
    let mut config = Config::host();
    for &(k, v) in &kv {
        if k == "profile" {
            config = Config::profile(v)?;
        }
    }
    let mut out = None;
    let mut verbose = false;
    let mut policy = None;
    let mut qemu = None;
    for &(k, v) in &kv {
        match k {
            "profile" => {}
            "out" => {
                if v.is_empty() {
                    return Err("out= needs a path".into());
                }
                out = Some(v.to_string());
            }
            "l1d" | "l2" | "llc" => {
                let slot = match k {
                    "l1d" => 0,
                    "l2" => 1,
                    _ => 2,
                };
                let idx = config
                    .slot_level(slot)
                    .ok_or_else(|| format!("profile `{}` has no separate L2; use llc=", config.profile))?;
                let (size, ways, lat) = parse_geometry(v).map_err(|e| format!("{k}={v}: {e}"))?;
                let l = &mut config.levels[idx];
                l.size = size;
                l.ways = ways;
                if let Some(lat) = lat {
                    l.hit_latency = lat;
                }
            }
            "mem" => config.mem_latency = parse_u64(v).map_err(|e| format!("mem={v}: {e}"))?,
            "cpi" => config.base_cpi = parse_u64(v).map_err(|e| format!("cpi={v}: {e}"))?,
            "policy" => {
                policy = Some(match v {
                    "lru" => Policy::Lru,
                    "plru" => Policy::TreePlru,
                    _ => return Err(format!("policy={v}: expected lru or plru")),
                })
            }
            "qemu" => qemu = Some(v.to_string()).filter(|v| !v.is_empty()),
            "verbose" => {
                verbose = match v {
                    "on" | "true" | "yes" => true,
                    "off" | "false" | "no" => false,
                    _ => return Err(format!("verbose={v}: expected on or off")),
                }
            }
            _ => {
                return Err(format!(
                    "unknown argument `{k}` (known: out, profile, l1d, l2, llc, mem, cpi, policy, verbose, qemu)"
                ))
            }
        }
    }
    if let Some(p) = policy {
        for l in &mut config.levels {
            l.policy = p;
        }
    }
    config.validate()?;
    let out = out.ok_or("missing out=PATH (where the per-job CSV is written)")?;
    Ok(Args { config, out, verbose, qemu })
}

fn parse_u64(s: &str) -> Result<u64, String> {
    s.parse::<u64>().map_err(|_| format!("`{s}` is not a number"))
}

/// `SIZE[K|M]`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], KIB),
        Some(b'M' | b'm') => (&s[..s.len() - 1], MIB),
        _ => (s, 1),
    };
    parse_u64(num)?.checked_mul(mul).ok_or_else(|| format!("`{s}` is too large"))
}

fn parse_geometry(v: &str) -> Result<(u64, u32, Option<u64>), String> {
    let parts: Vec<&str> = v.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err("expected SIZE:WAYS or SIZE:WAYS:LATENCY".into());
    }
    let size = parse_size(parts[0])?;
    let ways = u32::try_from(parse_u64(parts[1])?).map_err(|_| "too many ways".to_string())?;
    let lat = parts.get(2).map(|p| parse_u64(p)).transpose()?;
    Ok((size, ways, lat))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Level;

    #[test]
    fn host_profile_set_indices() {
        let c = Config::host();
        let l: Vec<Level> = c.levels.iter().cloned().map(Level::new).collect();
        assert_eq!(l.iter().map(|l| l.config().sets()).collect::<Vec<_>>(), vec![64, 2048, 32768]);
        let pa = 0x1234_5678u64;
        // L1D: 64 sets -> bits 6..12.
        assert_eq!(l[0].set_index(pa), (pa >> 6) & 0x3f);
        assert_eq!(l[0].set_index(pa), 0x19);
        // L2: 2048 sets -> bits 6..17.
        assert_eq!(l[1].set_index(pa), (pa >> 6) & 0x7ff);
        assert_eq!(l[1].set_index(pa), 0x159);
        // L3: 32768 sets -> bits 6..21; 512 page colours (bits 12..21).
        assert_eq!(l[2].set_index(pa), (pa >> 6) & 0x7fff);
        assert_eq!(l[2].set_index(pa), 0x5159);
        // Same offset in the next 4 KiB frame: same L1 set, next colour.
        assert_eq!(l[0].set_index(pa + 4096), l[0].set_index(pa));
        assert_eq!(l[2].set_index(pa + 4096), l[2].set_index(pa) + 64);
        // 2 MiB apart: same LLC set (512 colours * 4 KiB).
        assert_eq!(l[2].set_index(pa + 2 * MIB), l[2].set_index(pa));
    }

    #[test]
    fn embedded_profile_set_indices() {
        let c = Config::embedded();
        let l: Vec<Level> = c.levels.iter().cloned().map(Level::new).collect();
        assert_eq!(l.iter().map(|l| l.config().sets()).collect::<Vec<_>>(), vec![128, 1024]);
        let pa = 0x1234_5678u64;
        assert_eq!(l[0].set_index(pa), (pa >> 6) & 0x7f);
        assert_eq!(l[0].set_index(pa), 0x59);
        assert_eq!(l[1].set_index(pa), (pa >> 6) & 0x3ff);
        assert_eq!(l[1].set_index(pa), 0x159);
        // 16 page colours in the L2: 64 KiB apart wraps around.
        assert_eq!(l[1].set_index(pa + 64 * KIB), l[1].set_index(pa));
        assert_ne!(l[1].set_index(pa + 4 * KIB), l[1].set_index(pa));
    }

    #[test]
    fn args_profiles_and_overrides() {
        let a = parse_args(&["out=/tmp/x.csv"]).unwrap();
        assert_eq!(a.config, Config::host());
        assert_eq!(a.out, "/tmp/x.csv");
        assert!(!a.verbose);

        // Overrides apply after the profile whatever the order.
        let a = parse_args(&["llc=512K:8:20", "profile=embedded", "out=o.csv", "policy=plru", "mem=99"]).unwrap();
        assert_eq!(a.config.profile, "embedded");
        assert_eq!(a.config.levels[1].size, 512 * KIB);
        assert_eq!(a.config.levels[1].ways, 8);
        assert_eq!(a.config.levels[1].hit_latency, 20);
        assert!(a.config.levels.iter().all(|l| l.policy == Policy::TreePlru));
        assert_eq!(a.config.mem_latency, 99);

        assert_eq!(a.qemu, None);
        let a = parse_args(&["out=o", "l2=2M:16", "cpi=2", "verbose=on", "qemu=10.0.2"]).unwrap();
        assert_eq!(a.qemu.as_deref(), Some("10.0.2"));
        assert_eq!(
            (a.config.levels[1].size, a.config.levels[1].ways, a.config.levels[1].hit_latency),
            (2 * MIB, 16, 14)
        );
        assert_eq!(a.config.base_cpi, 2);
        assert!(a.verbose);
    }

    #[test]
    fn args_errors_are_clear() {
        assert!(parse_args::<&str>(&[]).unwrap_err().contains("out="));
        assert!(parse_args(&["out=o", "profile=arm"]).unwrap_err().contains("unknown profile"));
        assert!(parse_args(&["out=o", "profile=embedded", "l2=1M:8"]).unwrap_err().contains("no separate L2"));
        assert!(parse_args(&["out=o", "llc=1000:3"]).unwrap_err().contains("multiple"));
        assert!(parse_args(&["out=o", "bogus=1"]).unwrap_err().contains("unknown argument"));
        assert!(parse_args(&["out"]).unwrap_err().contains("key=value"));
        assert!(parse_args(&["out=o", "llc=3M:12", "policy=plru"]).unwrap_err().contains("power-of-two"));
    }
}
