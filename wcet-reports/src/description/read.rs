//! Reading the TOML tree: values with units, tables whose unknown keys are
//! errors, and scenario patches. Every problem becomes a [`Diagnostic`] at
//! the span of the text that caused it; reading goes on after an error so
//! that one run reports them all.

use super::{Diagnostic, Severity};
use std::ops::Range;
use sysdesc::Role;
use toml::de::{DeString, DeTable, DeValue};
use toml::Spanned;

/// A value and where it was written (for a default: the table's header).
pub type Sp<T> = Spanned<T>;

/// The diagnostics of one run.
#[derive(Default)]
pub struct Diags(pub Vec<Diagnostic>);

impl Diags {
    pub fn push(&mut self, severity: Severity, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Diagnostic { severity, span, key: key.into(), message: message.into(), scenarios: Vec::new() });
    }

    pub fn error(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Error, span, key, message);
    }

    pub fn warn(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Warning, span, key, message);
    }

    pub fn note(&mut self, message: impl Into<String>) {
        self.push(Severity::Note, 0..0, "", message);
    }

    pub fn errors(&self) -> usize {
        self.0.iter().filter(|d| d.severity == Severity::Error).count()
    }
}

/// The kind of a TOML value, for messages.
fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// A value a key can hold; `from` says what is wrong in words.
pub trait Value: Sized {
    fn read(v: &DeValue<'_>) -> Result<Self, String>;
}

fn integer(v: &DeValue<'_>) -> Result<i128, String> {
    match v {
        DeValue::Integer(i) => {
            i128::from_str_radix(i.as_str(), i.radix()).map_err(|_| format!("`{}` is not an integer", i.as_str()))
        }
        other => Err(format!("expected an integer, found {}", kind(other))),
    }
}

fn unsigned(v: &DeValue<'_>, max: u64) -> Result<u64, String> {
    let n = integer(v)?;
    if n < 0 {
        return Err(format!("{n} is negative"));
    }
    if n > i128::from(max) {
        return Err(format!("{n} is above the maximum {max}"));
    }
    Ok(n as u64)
}

impl Value for u8 {
    fn read(v: &DeValue<'_>) -> Result<Self, String> {
        unsigned(v, u8::MAX.into()).map(|n| n as u8)
    }
}

impl Value for u32 {
    fn read(v: &DeValue<'_>) -> Result<Self, String> {
        unsigned(v, u32::MAX.into()).map(|n| n as u32)
    }
}

impl Value for bool {
    fn read(v: &DeValue<'_>) -> Result<Self, String> {
        match v {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(format!("expected true or false, found {}", kind(other))),
        }
    }
}

impl Value for String {
    fn read(v: &DeValue<'_>) -> Result<Self, String> {
        match v {
            DeValue::String(s) => Ok(s.to_string()),
            other => Err(format!("expected a string, found {}", kind(other))),
        }
    }
}

/// A byte count: an integer, or a string with a unit (`"4MiB"`, `"64 KiB"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

/// A duration in nanoseconds, written with its unit (`"5ms"`, `"250us"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time(pub u64);

/// Splits `"12 MiB"` into 12 and `"MiB"`.
fn number_and_unit(s: &str) -> Option<(u64, &str)> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n = t[..digits].parse().ok()?;
    Some((n, t[digits..].trim()))
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let Some((n, unit)) = number_and_unit(s) else {
        return Err(format!("\"{s}\" is not a size (write e.g. \"64KiB\" or \"4MiB\")"));
    };
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "K" | "KB" | "kB" | "M" | "MB" | "G" | "GB" => {
            return Err(format!("\"{s}\": write the binary unit, {}iB", &unit[..1].to_uppercase()))
        }
        u => return Err(format!("\"{s}\": unknown unit `{u}` (use B, KiB, MiB or GiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("\"{s}\" is too large"))
}

pub fn parse_time(s: &str) -> Result<u64, String> {
    let Some((n, unit)) = number_and_unit(s) else {
        return Err(format!("\"{s}\" is not a time (write e.g. \"250us\" or \"5ms\")"));
    };
    let mult: u64 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "" => return Err(format!("\"{s}\": a time needs its unit (ns, us, ms or s)")),
        u => return Err(format!("\"{s}\": unknown unit `{u}` (use ns, us, ms or s)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("\"{s}\" is too long"))
}

impl Value for Size {
    fn read(v: &DeValue<'_>) -> Result<Self, String> {
        match v {
            DeValue::String(s) => parse_size(s).map(Size),
            DeValue::Integer(_) => unsigned(v, u64::MAX).map(Size),
            other => Err(format!("expected a size like \"4MiB\", found {}", kind(other))),
        }
    }
}

impl Value for Time {
    fn read(v: &DeValue<'_>) -> Result<Self, String> {
        match v {
            DeValue::String(s) => parse_time(s).map(Time),
            DeValue::Integer(_) => Err("a time needs its unit: write e.g. \"5ms\"".into()),
            other => Err(format!("expected a time like \"5ms\", found {}", kind(other))),
        }
    }
}

/// The role of a `[[task]]` (pagers have their own array).
impl Value for Role {
    fn read(v: &DeValue<'_>) -> Result<Self, String> {
        let s = String::read(v)?;
        match Role::from_name(&s) {
            Some(Role::Pager) => Err("pagers go in [[pager]], not [[task]]".into()),
            Some(r) => Ok(r),
            None => Err(format!("unknown role \"{s}\" (expected \"rt\", \"ts\" or \"test\")")),
        }
    }
}

/// An array of strings, each with its own span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Words(pub Vec<Sp<String>>);

impl Value for Words {
    fn read(v: &DeValue<'_>) -> Result<Self, String> {
        let DeValue::Array(a) = v else { return Err(format!("expected an array of strings, found {}", kind(v))) };
        a.iter()
            .map(|e| String::read(e.get_ref()).map(|s| Sp::new(e.span(), s)).map_err(|m| format!("an entry: {m}")))
            .collect::<Result<_, _>>()
            .map(Words)
    }
}

/// A table being read: each key taken is marked; [`Table::finish`] reports
/// the keys nobody took.
pub struct Table<'t, 'i> {
    /// How diagnostics name its keys (`task.matmul`).
    pub path: String,
    /// Its header.
    pub span: Range<usize>,
    map: &'t DeTable<'i>,
    taken: Vec<&'static str>,
    /// Whether a required key is missing or malformed.
    pub failed: bool,
}

impl<'t, 'i> Table<'t, 'i> {
    pub fn new(path: impl Into<String>, span: Range<usize>, map: &'t DeTable<'i>) -> Self {
        Table { path: path.into(), span, map, taken: Vec::new(), failed: false }
    }

    pub fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn raw(&self, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
        self.map.get(key)
    }

    /// The value of `key` if present; a malformed one is reported.
    pub fn opt<T: Value>(&mut self, d: &mut Diags, key: &'static str) -> Option<Sp<T>> {
        self.taken.push(key);
        let v = self.map.get(key)?;
        match T::read(v.get_ref()) {
            Ok(x) => Some(Sp::new(v.span(), x)),
            Err(m) => {
                d.error(v.span(), self.key(key), m);
                None
            }
        }
    }

    /// The value of `key`, or `default` spanned at the header.
    pub fn or<T: Value>(&mut self, d: &mut Diags, key: &'static str, default: T) -> Sp<T> {
        self.opt(d, key).unwrap_or_else(|| Sp::new(self.span.clone(), default))
    }

    /// The value of `key`; a missing one is reported. Without it the table
    /// is incomplete ([`Table::finish`] says so).
    pub fn req<T: Value>(&mut self, d: &mut Diags, key: &'static str) -> Option<Sp<T>> {
        let present = self.map.contains_key(key);
        let v = self.opt(d, key);
        if !present {
            d.error(self.span.clone(), self.key(key), format!("missing key `{key}`"));
        }
        self.failed |= v.is_none();
        v
    }

    /// Reports every key not taken (with the closest known key as a hint)
    /// and says whether every required key was read. (A malformed optional
    /// key or an unknown one is reported but leaves the table usable, so
    /// that the checks across tables still run and report their findings.)
    pub fn finish(self, d: &mut Diags) -> bool {
        for k in self.map.keys() {
            let name: &str = k.get_ref();
            if self.taken.contains(&name) {
                continue;
            }
            let hint = closest(name, &self.taken).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default();
            d.error(k.span(), self.key(name), format!("unknown key `{name}`{hint} (known: {})", self.taken.join(", ")));
        }
        !self.failed
    }
}

/// The known word nearest to `word` (edit distance at most 2, or one it
/// abbreviates).
pub fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let dist = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    };
    // An abbreviation (`prio` for `priority`), else a near miss.
    let short = known.iter().copied().find(|k| word.len() >= 3 && k.starts_with(word));
    short.or_else(|| known.iter().map(|k| (dist(word, k), *k)).filter(|(n, _)| *n <= 2).min().map(|(_, k)| k))
}

/// The tables of an array of tables (`[[task]]`); anything else is
/// reported.
pub fn tables<'t, 'i>(d: &mut Diags, root: &'t DeTable<'i>, key: &'static str) -> Vec<(Range<usize>, &'t DeTable<'i>)> {
    let Some(v) = root.get(key) else { return Vec::new() };
    let bad =
        |d: &mut Diags| d.error(v.span(), key, format!("`{key}` must be an array of tables: write each as [[{key}]]"));
    // A lone `[task]` table is read as the one entry, so that what it
    // says is still checked.
    let a = match v.get_ref() {
        DeValue::Array(a) => a,
        DeValue::Table(t) => {
            bad(d);
            return vec![(v.span(), t)];
        }
        _ => {
            bad(d);
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for e in a.iter() {
        match e.get_ref() {
            DeValue::Table(t) => out.push((e.span(), t)),
            _ => bad(d),
        }
    }
    out
}

/// The table under `key`, if any (anything else is reported).
pub fn table<'t, 'i>(
    d: &mut Diags,
    root: &'t DeTable<'i>,
    key: &'static str,
) -> Option<(Range<usize>, &'t DeTable<'i>)> {
    let v = root.get(key)?;
    match v.get_ref() {
        DeValue::Table(t) => Some((v.span(), t)),
        other => {
            d.error(v.span(), key, format!("`{key}` must be a table ([{key}]), found {}", kind(other)));
            None
        }
    }
}

/// The name string of an array element, if it has one.
pub fn name_of<'t>(t: &'t DeTable<'_>) -> Option<&'t str> {
    match t.get("name")?.get_ref() {
        DeValue::String(s) => Some(s),
        _ => None,
    }
}

/// The sections a scenario may patch.
const PATCH_SECTIONS: [&str; 7] = ["drop", "system", "kernel", "cache", "partition", "pager", "task"];

/// Applies a scenario patch (`[scenario.NAME]`) to the description: keys of
/// `system`, `kernel` and `cache` replace the section's; `partition.N.KEY`,
/// `pager.N.KEY` and `task.N.KEY` replace a key of the entity named N;
/// `drop = [names]` removes pagers and tasks. Replaced values keep the
/// patch's spans, so what is wrong with them is reported where the patch
/// says it.
pub fn patch<'i>(d: &mut Diags, root: &mut DeTable<'i>, path: &str, patch: &DeTable<'i>) {
    for (k, v) in patch.iter() {
        let key: &str = k.get_ref();
        let at = format!("{path}.{key}");
        match key {
            "drop" => {
                let Ok(Words(names)) = Words::read(v.get_ref()) else {
                    d.error(v.span(), at, "expected an array of pager and task names");
                    continue;
                };
                for n in names {
                    let mut found = false;
                    for section in ["pager", "task"] {
                        if let Some(DeValue::Array(a)) = root.get_mut(section).map(|v| v.get_mut()) {
                            let before = a.len();
                            let old = std::mem::replace(a, std::iter::empty().collect());
                            *a = old
                                .into_iter()
                                .filter(
                                    |e| !matches!(e.get_ref(), DeValue::Table(t) if name_of(t) == Some(n.get_ref())),
                                )
                                .collect();
                            found |= a.len() != before;
                        }
                    }
                    if !found {
                        d.error(n.span(), at.clone(), format!("drops `{}`, which names no pager or task", n.get_ref()));
                    }
                }
            }
            "system" | "kernel" | "cache" => {
                let DeValue::Table(keys) = v.get_ref() else {
                    d.error(v.span(), at, "expected a table of keys to replace");
                    continue;
                };
                let entry =
                    root.entry(k.clone()).or_insert_with(|| Spanned::new(v.span(), DeValue::Table(DeTable::new())));
                match entry.get_mut() {
                    DeValue::Table(target) => merge(d, target, keys, &at),
                    _ => d.error(v.span(), at, format!("the description's `{key}` is not a table")),
                }
            }
            "partition" | "pager" | "task" => {
                let DeValue::Table(by_name) = v.get_ref() else {
                    d.error(v.span(), at, format!("expected {key}.NAME.KEY = VALUE"));
                    continue;
                };
                for (n, keys) in by_name.iter() {
                    let name: &str = n.get_ref();
                    let at = format!("{at}.{name}");
                    let DeValue::Table(keys) = keys.get_ref() else {
                        d.error(keys.span(), at, format!("expected {key}.{name}.KEY = VALUE"));
                        continue;
                    };
                    let target = match root.get_mut(key).map(|v| v.get_mut()) {
                        Some(DeValue::Array(a)) => a.iter_mut().find_map(|e| match e.get_mut() {
                            DeValue::Table(t) if name_of(t) == Some(name) => Some(t),
                            _ => None,
                        }),
                        _ => None,
                    };
                    match target {
                        Some(t) => merge(d, t, keys, &at),
                        None => d.error(n.span(), at, format!("no {key} is named `{name}`")),
                    }
                }
            }
            _ => {
                let hint = closest(key, &PATCH_SECTIONS).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default();
                d.error(
                    k.span(),
                    at,
                    format!("a scenario cannot patch `{key}`{hint} (it patches {})", PATCH_SECTIONS.join(", ")),
                );
            }
        }
    }
}

fn merge<'i>(d: &mut Diags, target: &mut DeTable<'i>, keys: &DeTable<'i>, at: &str) {
    for (k, v) in keys.iter() {
        if k.get_ref() == "name" {
            d.error(k.span(), format!("{at}.name"), "a scenario cannot rename (patch the other keys)");
            continue;
        }
        let key: Spanned<DeString<'i>> = k.clone();
        target.remove(key.get_ref().as_ref());
        target.insert(key, v.clone());
    }
}
