//! The compact boot configuration: what the host makes of a workload's
//! TOML config, loaded as the `config` boot module and read by sigma0.
//!
//! One item per line, words separated by spaces, `#` starts a comment:
//!
//! ```text
//! prism-boot-config 1
//! llc 1048576 16 64            # size, ways, line size of the colored level
//! partition rt 0-7 4194304     # name, colors, bytes it needs (0: none)
//! partition ts 8-15 0
//! ```
//!
//! `llc` is optional (sigma0 then uses the geometry the kernel detected).
//! The parser borrows from the text and allocates nothing, so it runs the
//! same in sigma0 and in the host tool that writes the file.

use crate::geometry::{CacheKind, CacheLevel, GeometryError};
use crate::partition::PartitionSpec;
use core::fmt;

/// The first line of every compact config.
pub const HEADER: &str = "prism-boot-config 1";
/// Most partitions one config may declare.
pub const MAX_PARTITIONS: usize = 8;

/// A parsed compact config.
#[derive(Clone, Debug)]
pub struct BootConfig<'a> {
    /// The colored cache level, if the config overrides the detected one.
    pub llc: Option<CacheLevel>,
    specs: [PartitionSpec<'a>; MAX_PARTITIONS],
    count: usize,
}

impl<'a> BootConfig<'a> {
    /// The partitions in the order written.
    pub fn partitions(&self) -> &[PartitionSpec<'a>] {
        &self.specs[..self.count]
    }
}

/// What is wrong with a compact config (`line` counts from 1; `key`,
/// `text` and `token` quote the offending input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ConfigError<'a> {
    /// The first line is not [`HEADER`].
    BadHeader,
    /// A line has an unknown first word.
    UnknownKey { line: usize, key: &'a str },
    /// A line has the wrong number of words.
    Syntax { line: usize, text: &'a str },
    /// A number does not parse.
    BadNumber { line: usize, token: &'a str },
    /// The `llc` numbers do not describe a cache.
    BadGeometry { line: usize, error: GeometryError },
    /// More than [`MAX_PARTITIONS`] partitions.
    TooManyPartitions { line: usize },
}

impl fmt::Display for ConfigError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadHeader => write!(f, "not a compact boot config (first line must be `{HEADER}`)"),
            ConfigError::UnknownKey { line, key } => write!(f, "line {line}: unknown item `{key}`"),
            ConfigError::Syntax { line, text } => write!(f, "line {line}: cannot read `{text}`"),
            ConfigError::BadNumber { line, token } => write!(f, "line {line}: `{token}` is not a number"),
            ConfigError::BadGeometry { line, error } => write!(f, "line {line}: {error}"),
            ConfigError::TooManyPartitions { line } => {
                write!(f, "line {line}: more than {MAX_PARTITIONS} partitions")
            }
        }
    }
}

fn number<'a>(line: usize, t: &'a str) -> Result<u64, ConfigError<'a>> {
    t.parse().map_err(|_| ConfigError::BadNumber { line, token: t })
}

/// Parses a compact config. Partition specs are returned as written; check
/// them with [`crate::partition::validate`] against the geometry in use.
pub fn parse(text: &str) -> Result<BootConfig<'_>, ConfigError<'_>> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("").trim()));
    if lines.next().map(|(_, l)| l) != Some(HEADER) {
        return Err(ConfigError::BadHeader);
    }
    let empty = PartitionSpec { name: "", colors: "", memory: 0 };
    let mut cfg = BootConfig { llc: None, specs: [empty; MAX_PARTITIONS], count: 0 };
    for (line, l) in lines.filter(|(_, l)| !l.is_empty()) {
        let mut w = l.split_whitespace();
        let key = w.next().unwrap_or("");
        let words: [Option<&str>; 4] = [w.next(), w.next(), w.next(), w.next()];
        match (key, words) {
            ("llc", [Some(size), Some(ways), Some(lsize), None]) => {
                let lvl = CacheLevel::new(
                    3,
                    CacheKind::Unified,
                    number(line, size)?,
                    number(line, ways)? as u32,
                    number(line, lsize)? as u32,
                );
                lvl.validate().map_err(|error| ConfigError::BadGeometry { line, error })?;
                cfg.llc = Some(lvl);
            }
            ("partition", [Some(name), Some(colors), Some(mem), None]) => {
                if cfg.count == MAX_PARTITIONS {
                    return Err(ConfigError::TooManyPartitions { line });
                }
                cfg.specs[cfg.count] = PartitionSpec { name, colors, memory: number(line, mem)? };
                cfg.count += 1;
            }
            ("llc", _) | ("partition", _) => return Err(ConfigError::Syntax { line, text: l }),
            (key, _) => return Err(ConfigError::UnknownKey { line, key }),
        }
    }
    Ok(cfg)
}

/// Writes a compact config (the host tool's side).
pub fn write(out: &mut impl fmt::Write, llc: Option<&CacheLevel>, partitions: &[PartitionSpec<'_>]) -> fmt::Result {
    writeln!(out, "{HEADER}")?;
    if let Some(l) = llc {
        writeln!(out, "llc {} {} {}", l.size, l.ways, l.line_size)?;
    }
    for p in partitions {
        writeln!(out, "partition {} {} {}", p.name, p.colors, p.memory)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "prism-boot-config 1\n# a comment\nllc 1048576 16 64\npartition rt 0-7 4194304\npartition ts 8-15 0  # tail\n";

    #[test]
    fn parses_and_round_trips() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.llc.unwrap().colors(), 16);
        assert_eq!(c.partitions().len(), 2);
        assert_eq!(c.partitions()[0], PartitionSpec { name: "rt", colors: "0-7", memory: 4 << 20 });
        let mut s = String::new();
        write(&mut s, c.llc.as_ref(), c.partitions()).unwrap();
        let again = parse(&s).unwrap();
        assert_eq!(again.partitions(), c.partitions());
        assert_eq!(again.llc, c.llc);
    }

    #[test]
    fn llc_is_optional() {
        let c = parse("prism-boot-config 1\npartition a 0 0\n").unwrap();
        assert!(c.llc.is_none());
        assert_eq!(c.partitions()[0].name, "a");
    }

    #[test]
    fn malformed_configs_give_typed_errors() {
        let h = "prism-boot-config 1\n";
        assert_eq!(parse("").unwrap_err(), ConfigError::BadHeader);
        assert_eq!(parse("prism-boot-config 2\n").unwrap_err(), ConfigError::BadHeader);
        assert_eq!(parse(&format!("{h}colour x\n")).unwrap_err(), ConfigError::UnknownKey { line: 2, key: "colour" });
        let t = format!("{h}llc 1 2\n");
        assert_eq!(parse(&t).unwrap_err(), ConfigError::Syntax { line: 2, text: "llc 1 2" });
        let t = format!("{h}partition rt 0-7\n");
        assert_eq!(parse(&t).unwrap_err(), ConfigError::Syntax { line: 2, text: "partition rt 0-7" });
        let t = format!("{h}partition rt 0-7 lots\n");
        assert_eq!(parse(&t).unwrap_err(), ConfigError::BadNumber { line: 2, token: "lots" });
        let t = format!("{h}llc 1000 3 64\n");
        assert!(matches!(parse(&t).unwrap_err(), ConfigError::BadGeometry { line: 2, .. }));
        let many: String = (0..9).map(|i| format!("partition p{i} {i} 0\n")).collect();
        assert_eq!(parse(&format!("{h}{many}")).unwrap_err(), ConfigError::TooManyPartitions { line: 10 });
        assert!(format!("{}", ConfigError::BadNumber { line: 3, token: "x" }).contains("line 3"));
    }
}
