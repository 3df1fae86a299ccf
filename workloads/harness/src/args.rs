//! A task's arguments (`key=value` words after ` -- ` in the description).

use crate::Error;

/// The arguments of a task, with typed accessors.
#[derive(Clone, Copy, Debug)]
pub struct Args<'a> {
    text: &'a str,
}

impl<'a> Args<'a> {
    pub const fn new(text: &'a str) -> Args<'a> {
        Args { text }
    }

    /// The whole argument string.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The raw value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.text.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }

    /// A number (decimal, or hex with `0x`), or `default` when not given.
    pub fn number(&self, key: &'static str, default: u64) -> Result<u64, Error> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_number(v).ok_or(Error::BadArg { key, why: "not a number" }),
        }
    }

    /// A size in bytes: a number with an optional `K`/`KiB`, `M`/`MiB` or
    /// `G`/`GiB` suffix (powers of 1024; the description's spelling), or
    /// `default` when not given.
    pub fn size(&self, key: &'static str, default: u64) -> Result<u64, Error> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => {
                parse_size(v).ok_or(Error::BadArg { key, why: "not a size (a number, optionally with K, M or G)" })
            }
        }
    }

    /// Whether `key` is one of the given words (or `default`).
    pub fn choice(&self, key: &'static str, words: &[&'static str], default: &'static str) -> Result<&'a str, Error> {
        match self.get(key) {
            None => Ok(default),
            Some(v) if words.contains(&v) => Ok(v),
            Some(_) => Err(Error::BadArg { key, why: "not one of the accepted words" }),
        }
    }
}

fn parse_number(v: &str) -> Option<u64> {
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

fn parse_size(v: &str) -> Option<u64> {
    if v.starts_with("0x") {
        return parse_number(v);
    }
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic() && c != 'x');
    let shift = match &v[digits.len()..] {
        "" | "B" => 0,
        "K" | "k" | "KiB" => 10,
        "M" | "m" | "MiB" => 20,
        "G" | "g" | "GiB" => 30,
        _ => return None,
    };
    parse_number(digits)?.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_sizes_and_errors() {
        let a = Args::new("n=64 ws=256K big=2M hex=0x10 mode=read bad=12Q kib=64KiB mib=4MiB b=512B");
        assert_eq!(a.size("kib", 0), Ok(64 << 10));
        assert_eq!(a.size("mib", 0), Ok(4 << 20));
        assert_eq!(a.size("b", 0), Ok(512));
        assert!(Args::new("x=4MB").size("x", 0).is_err());
        assert_eq!(Args::new("x=0x1000").size("x", 0), Ok(4096));
        assert_eq!(Args::new("x=0xff").size("x", 0), Ok(255));
        assert_eq!(a.number("n", 1), Ok(64));
        assert_eq!(a.number("missing", 7), Ok(7));
        assert_eq!(a.number("hex", 0), Ok(16));
        assert_eq!(a.size("ws", 0), Ok(256 * 1024));
        assert_eq!(a.size("big", 0), Ok(2 << 20));
        assert_eq!(a.size("n", 0), Ok(64));
        assert!(matches!(a.size("bad", 0), Err(Error::BadArg { key: "bad", .. })));
        assert!(matches!(a.number("mode", 0), Err(Error::BadArg { key: "mode", .. })));
        assert_eq!(a.choice("mode", &["read", "write"], "write"), Ok("read"));
        assert!(a.choice("mode", &["write"], "write").is_err());
        assert_eq!(a.choice("other", &["write"], "write"), Ok("write"));
        // A key is a whole word: `s` does not match `ws=`.
        assert_eq!(a.get("s"), None);
        assert_eq!(Args::new("x=99999999999999999999G").size("x", 0).ok(), None);
    }
}
