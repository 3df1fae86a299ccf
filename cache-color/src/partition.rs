//! Partition specs and their validation.
//!
//! A partition is a name, a color set written like Xen's `llc-colors`
//! (`"0-7,12,14-15"`: comma separated colors `N` and inclusive ranges `N-M`,
//! ascending, without overlaps, spaces around items allowed) and optionally
//! the memory it needs. [`validate`] checks a list of partitions against a
//! [`ColorMap`] and the machine's memory and returns the first problem as a
//! [`PartitionError`] that names the partition and the offending text; the
//! text is borrowed from the input, so nothing is allocated. [`check_each`]
//! runs the same checks and reports every problem (the host does, to list
//! all errors of a description at once). Partitions own disjoint colors
//! unless the caller passes [`Sharing::Allowed`] (a scenario that shares
//! colors on purpose); partitions that share must then fit together.

use core::fmt;
use core::ops::ControlFlow;

use crate::color::ColorMap;
use crate::colorset::{Color, ColorSet, MAX_COLORS};

/// What is wrong with one color spec. Tokens are the offending item of the
/// spec, trimmed of spaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecError<'a> {
    /// The spec is empty (or only spaces): the partition would own no color.
    Empty,
    /// An item between commas is empty (`"1,,2"`, `",1"`, `"1,"`);
    /// `position` counts items from 0.
    EmptyItem {
        /// Index of the empty item.
        position: usize,
    },
    /// An item is neither `N` nor `N-M` with decimal numbers.
    Syntax {
        /// The item.
        token: &'a str,
    },
    /// A number does not fit in 32 bits.
    NumberTooLarge {
        /// The item.
        token: &'a str,
    },
    /// A range `N-M` with `N > M`.
    DescendingRange {
        /// The item.
        token: &'a str,
    },
    /// An item repeats a color of an earlier item of the same spec.
    Overlap {
        /// The item.
        token: &'a str,
        /// The first repeated color.
        color: Color,
    },
    /// An item comes below an earlier one (without sharing a color).
    NotAscending {
        /// The item.
        token: &'a str,
        /// The item before it.
        previous: &'a str,
    },
    /// A color at or beyond the number of colors of the geometry.
    BeyondGeometry {
        /// The item.
        token: &'a str,
        /// The largest color of the item.
        color: Color,
        /// The number of colors of the geometry.
        colors: u32,
    },
}

impl fmt::Display for SpecError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SpecError::Empty => f.write_str("empty color set"),
            SpecError::EmptyItem { position } => {
                write!(f, "empty item at position {position} (stray comma)")
            }
            SpecError::Syntax { token } => {
                write!(f, "syntax error at \"{token}\": expected N or N-M")
            }
            SpecError::NumberTooLarge { token } => write!(f, "number too large in \"{token}\""),
            SpecError::DescendingRange { token } => {
                write!(f, "descending range \"{token}\"")
            }
            SpecError::Overlap { token, color } => {
                write!(f, "\"{token}\" repeats color {color}")
            }
            SpecError::NotAscending { token, previous } => {
                write!(f, "\"{token}\" is not above the item \"{previous}\" before it")
            }
            SpecError::BeyondGeometry { token, color, colors } => write!(
                f,
                "color {color} in \"{token}\" is beyond the geometry's {colors} colors (0-{})",
                colors.saturating_sub(1)
            ),
        }
    }
}

enum NumberError {
    Syntax,
    TooLarge,
}

fn parse_number(s: &str) -> Result<Color, NumberError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::Syntax);
    }
    s.bytes().try_fold(0u32, |v, b| {
        v.checked_mul(10).and_then(|v| v.checked_add(u32::from(b - b'0'))).ok_or(NumberError::TooLarge)
    })
}

/// Parses one item `N` or `N-M` into an inclusive range.
fn parse_item(token: &str) -> Result<(Color, Color), SpecError<'_>> {
    let with_token = |e: NumberError| match e {
        NumberError::TooLarge => SpecError::NumberTooLarge { token },
        NumberError::Syntax => SpecError::Syntax { token },
    };
    let (lo, hi) = match token.split_once('-') {
        None => {
            let v = parse_number(token).map_err(with_token)?;
            (v, v)
        }
        Some((a, b)) => {
            let lo = parse_number(a.trim()).map_err(with_token)?;
            let hi = parse_number(b.trim()).map_err(with_token)?;
            (lo, hi)
        }
    };
    if lo > hi {
        return Err(SpecError::DescendingRange { token });
    }
    Ok((lo, hi))
}

/// Parses a color spec such as `"0-7,12,14-15"` for a geometry with
/// `colors` colors (pass [`MAX_COLORS`] to check the syntax alone).
pub fn parse_colors(spec: &str, colors: u32) -> Result<ColorSet, SpecError<'_>> {
    let colors = colors.min(MAX_COLORS as u32);
    if spec.trim().is_empty() {
        return Err(SpecError::Empty);
    }
    let mut set = ColorSet::EMPTY;
    let mut previous: Option<(&str, Color)> = None;
    for (position, raw) in spec.split(',').enumerate() {
        let token = raw.trim();
        if token.is_empty() {
            return Err(SpecError::EmptyItem { position });
        }
        let (lo, hi) = parse_item(token)?;
        if let Some((prev_token, prev_hi)) = previous {
            if lo <= prev_hi {
                // Earlier colors are all < colors <= MAX_COLORS, so only
                // the part of the item below that can repeat one.
                let clipped = hi.min(colors.saturating_sub(1));
                let mut item = ColorSet::EMPTY;
                if lo <= clipped {
                    // In range by the clip above.
                    let _ = item.insert_range(lo, clipped);
                }
                return Err(match item.first_common(&set) {
                    Some(color) => SpecError::Overlap { token, color },
                    None => SpecError::NotAscending { token, previous: prev_token },
                });
            }
        }
        if hi >= colors {
            return Err(SpecError::BeyondGeometry { token, color: hi, colors });
        }
        // hi < colors <= MAX_COLORS.
        let _ = set.insert_range(lo, hi);
        previous = Some((token, hi));
    }
    Ok(set)
}

/// A contiguous piece of physical memory the partitions share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRegion {
    /// Physical start address.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

impl MemRegion {
    /// `[start, start + len)`.
    pub const fn new(start: u64, len: u64) -> Self {
        MemRegion { start, len }
    }
}

/// A partition as written in a config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionSpec<'a> {
    /// Unique name.
    pub name: &'a str,
    /// Color spec, e.g. `"0-7,12,14-15"`.
    pub colors: &'a str,
    /// Bytes of memory the partition needs (0: not declared).
    pub memory: u64,
}

impl<'a> PartitionSpec<'a> {
    /// A partition without a memory declaration.
    pub const fn new(name: &'a str, colors: &'a str) -> Self {
        PartitionSpec { name, colors, memory: 0 }
    }

    /// The same partition needing `bytes` of memory.
    pub const fn with_memory(mut self, bytes: u64) -> Self {
        self.memory = bytes;
        self
    }
}

/// A validated partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition<'a> {
    /// Unique name.
    pub name: &'a str,
    /// The colors it owns.
    pub colors: ColorSet,
    /// Bytes of memory it declared (0: none).
    pub memory: u64,
}

impl Partition<'_> {
    /// A placeholder to initialise output arrays for [`validate_into`].
    pub const EMPTY: Partition<'static> = Partition { name: "", colors: ColorSet::EMPTY, memory: 0 };

    /// How many bytes of `memory` lie in frames of this partition's colors.
    pub fn capacity(&self, map: &ColorMap, memory: &[MemRegion]) -> u64 {
        capacity(map, &self.colors, memory)
    }
}

fn capacity(map: &ColorMap, set: &ColorSet, memory: &[MemRegion]) -> u64 {
    memory.iter().map(|r| map.capacity_in_range(set, r.start, r.len)).sum()
}

/// What is wrong with a list of partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionError<'a> {
    /// A partition has an empty name; `index` counts partitions from 0.
    EmptyName {
        /// Index of the partition in the list.
        index: usize,
    },
    /// Two partitions have the same name.
    DuplicateName {
        /// The name.
        name: &'a str,
    },
    /// A partition's color spec is malformed, empty or beyond the geometry.
    Spec {
        /// The partition.
        partition: &'a str,
        /// Its whole color spec.
        spec: &'a str,
        /// What is wrong.
        error: SpecError<'a>,
    },
    /// Two partitions share a color.
    Overlap {
        /// The earlier partition.
        first: &'a str,
        /// The later partition.
        second: &'a str,
        /// The smallest shared color.
        color: Color,
    },
    /// A partition's colors hold less memory than it declared.
    InsufficientMemory {
        /// The partition.
        partition: &'a str,
        /// Its whole color spec.
        spec: &'a str,
        /// Bytes it declared.
        needed: u64,
        /// Bytes its colors hold.
        capacity: u64,
    },
    /// Partitions that share colors ([`Sharing::Allowed`]) need more
    /// memory together than the union of their colors holds.
    SharedInsufficientMemory {
        /// The first partition of the group.
        first: &'a str,
        /// How many partitions the group has.
        partitions: usize,
        /// Bytes they declared together.
        needed: u64,
        /// Bytes the union of their colors holds.
        capacity: u64,
    },
    /// More partitions than the output array (or [`MAX_SHARED`]) holds.
    TooManyPartitions {
        /// The output array's length.
        max: usize,
    },
}

impl fmt::Display for PartitionError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PartitionError::EmptyName { index } => {
                write!(f, "partition #{index} has an empty name")
            }
            PartitionError::DuplicateName { name } => {
                write!(f, "partition name \"{name}\" is used twice")
            }
            PartitionError::Spec { partition, spec, error } => {
                write!(f, "partition \"{partition}\": colors \"{spec}\": {error}")
            }
            PartitionError::Overlap { first, second, color } => {
                write!(f, "partitions \"{first}\" and \"{second}\" overlap (both own color {color})")
            }
            PartitionError::InsufficientMemory { partition, spec, needed, capacity } => write!(
                f,
                "partition \"{partition}\": colors \"{spec}\" hold {capacity} bytes \
                 ({} KiB), less than the {needed} bytes ({} KiB) it needs",
                capacity / 1024,
                needed / 1024
            ),
            PartitionError::SharedInsufficientMemory { first, partitions, needed, capacity } => write!(
                f,
                "partition \"{first}\" and the {} other(s) sharing its colors need {needed} bytes ({} KiB) \
                 together, more than the {capacity} bytes ({} KiB) their colors hold",
                partitions - 1,
                needed / 1024,
                capacity / 1024
            ),
            PartitionError::TooManyPartitions { max } => {
                write!(f, "more than {max} partitions")
            }
        }
    }
}

/// Whether partitions may share colors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sharing {
    /// Every color belongs to at most one partition (the normal case).
    Disjoint,
    /// Partitions may share colors (a scenario that shares them on
    /// purpose). Partitions that share colors, directly or through others,
    /// form a group whose declared memory must fit, together, in the union
    /// of the group's colors. At most [`MAX_SHARED`] partitions.
    Allowed,
}

/// Most partitions [`Sharing::Allowed`] validation takes.
pub const MAX_SHARED: usize = 64;

/// Validates `specs` against `map` (number of colors) and `memory` (the
/// physical memory colored frames come from) and writes the parsed
/// partitions to the front of `out`, returning that part.
///
/// Checks, partition by partition in order, and reports the first failure:
/// empty name, duplicate name, the color spec ([`parse_colors`]), overlap
/// with an earlier partition, declared memory above what the colors hold.
pub fn validate_into<'a, 'o>(
    specs: &[PartitionSpec<'a>],
    map: &ColorMap,
    memory: &[MemRegion],
    out: &'o mut [Partition<'a>],
) -> Result<&'o mut [Partition<'a>], PartitionError<'a>> {
    validate_into_with(specs, map, memory, Sharing::Disjoint, out)
}

/// [`validate_into`] with a choice of [`Sharing`].
pub fn validate_into_with<'a, 'o>(
    specs: &[PartitionSpec<'a>],
    map: &ColorMap,
    memory: &[MemRegion],
    sharing: Sharing,
    out: &'o mut [Partition<'a>],
) -> Result<&'o mut [Partition<'a>], PartitionError<'a>> {
    if out.len() < specs.len() {
        return Err(PartitionError::TooManyPartitions { max: out.len() });
    }
    first_error(specs, map, memory, sharing, |i, p| out[i] = p)?;
    Ok(&mut out[..specs.len()])
}

/// Validates `specs` like [`validate_into`] without keeping the parsed
/// sets.
pub fn validate<'a>(
    specs: &[PartitionSpec<'a>],
    map: &ColorMap,
    memory: &[MemRegion],
) -> Result<(), PartitionError<'a>> {
    validate_with(specs, map, memory, Sharing::Disjoint)
}

/// [`validate`] with a choice of [`Sharing`].
pub fn validate_with<'a>(
    specs: &[PartitionSpec<'a>],
    map: &ColorMap,
    memory: &[MemRegion],
    sharing: Sharing,
) -> Result<(), PartitionError<'a>> {
    first_error(specs, map, memory, sharing, |_, _| {})
}

/// Runs every check of [`validate_with`] and hands each failure to
/// `report` with the index of the partition it belongs to (the later one of
/// a duplicate or an overlapping pair, the first one of a group that shares
/// colors), instead of stopping at the first. Returns how many there were.
pub fn check_each<'a>(
    specs: &[PartitionSpec<'a>],
    map: &ColorMap,
    memory: &[MemRegion],
    sharing: Sharing,
    mut report: impl FnMut(usize, PartitionError<'a>),
) -> usize {
    let mut n = 0;
    walk(
        specs,
        map,
        memory,
        sharing,
        |_, _| {},
        |i, e| {
            report(i, e);
            n += 1;
            ControlFlow::Continue(())
        },
    );
    n
}

fn first_error<'a>(
    specs: &[PartitionSpec<'a>],
    map: &ColorMap,
    memory: &[MemRegion],
    sharing: Sharing,
    ok: impl FnMut(usize, Partition<'a>),
) -> Result<(), PartitionError<'a>> {
    let mut first = None;
    walk(specs, map, memory, sharing, ok, |_, e| {
        first = Some(e);
        ControlFlow::Break(())
    });
    first.map_or(Ok(()), Err)
}

/// The checks, in order; `ok` gets each partition that passed its own
/// checks, `bad` each failure and says whether to go on.
fn walk<'a>(
    specs: &[PartitionSpec<'a>],
    map: &ColorMap,
    memory: &[MemRegion],
    sharing: Sharing,
    mut ok: impl FnMut(usize, Partition<'a>),
    mut bad: impl FnMut(usize, PartitionError<'a>) -> ControlFlow<()>,
) {
    let colors_of = |s: &PartitionSpec<'a>| parse_colors(s.colors, map.colors()).ok();
    let mut used = ColorSet::EMPTY;
    for (i, s) in specs.iter().enumerate() {
        let mut fine = true;
        let mut fail = |e| {
            fine = false;
            bad(i, e)
        };
        if s.name.trim().is_empty() && fail(PartitionError::EmptyName { index: i }).is_break() {
            return;
        }
        if specs[..i].iter().any(|e| e.name == s.name)
            && fail(PartitionError::DuplicateName { name: s.name }).is_break()
        {
            return;
        }
        let colors = match parse_colors(s.colors, map.colors()) {
            Ok(c) => c,
            Err(error) => {
                if fail(PartitionError::Spec { partition: s.name, spec: s.colors, error }).is_break() {
                    return;
                }
                continue;
            }
        };
        if sharing == Sharing::Disjoint {
            if let Some(color) = colors.first_common(&used) {
                // The earlier owner's spec parsed fine before.
                let first =
                    specs[..i].iter().find(|e| colors_of(e).is_some_and(|c| c.contains(color))).map_or("", |e| e.name);
                if fail(PartitionError::Overlap { first, second: s.name, color }).is_break() {
                    return;
                }
            }
        } else if i >= MAX_SHARED {
            if fail(PartitionError::TooManyPartitions { max: MAX_SHARED }).is_break() {
                return;
            }
            continue;
        }
        used |= colors;
        if s.memory > 0 {
            let cap = capacity(map, &colors, memory);
            if cap < s.memory
                && fail(PartitionError::InsufficientMemory {
                    partition: s.name,
                    spec: s.colors,
                    needed: s.memory,
                    capacity: cap,
                })
                .is_break()
            {
                return;
            }
        }
        if fine {
            ok(i, Partition { name: s.name, colors, memory: s.memory });
        }
    }
    if sharing == Sharing::Disjoint {
        return;
    }
    // Groups of partitions that share colors: grow each from its first
    // member by every partition meeting the group's union.
    let specs = &specs[..specs.len().min(MAX_SHARED)];
    let mut grouped = 0u64;
    for (i, s) in specs.iter().enumerate() {
        let Some(mut union) = colors_of(s).filter(|_| grouped & (1 << i) == 0) else { continue };
        let mut group = 1u64 << i;
        let mut grew = true;
        while grew {
            grew = false;
            for (j, t) in specs.iter().enumerate() {
                if group & (1 << j) != 0 {
                    continue;
                }
                if let Some(c) = colors_of(t).filter(|c| !c.is_disjoint(&union)) {
                    union |= c;
                    group |= 1 << j;
                    grew = true;
                }
            }
        }
        grouped |= group;
        let members = || specs.iter().enumerate().filter(move |&(j, _)| group & (1 << j) != 0).map(|(_, t)| t);
        let needed = members().map(|t| t.memory).sum::<u64>();
        let cap = capacity(map, &union, memory);
        if group.count_ones() > 1
            && needed > cap
            && bad(
                i,
                PartitionError::SharedInsufficientMemory {
                    first: s.name,
                    partitions: group.count_ones() as usize,
                    needed,
                    capacity: cap,
                },
            )
            .is_break()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_xen_style() {
        let s = parse_colors("0-7,12,14-15", 16).unwrap();
        assert_eq!(format!("{s}"), "0-7,12,14-15");
        assert_eq!(s.len(), 11);
        let s = parse_colors(" 0 - 3 , 5 ", 16).unwrap();
        assert_eq!(format!("{s}"), "0-3,5");
        assert_eq!(parse_colors("007", 16).unwrap().first(), Some(7));
        assert_eq!(parse_colors("3-3", 16).unwrap().len(), 1);
        // Adjacent items are fine.
        assert_eq!(format!("{}", parse_colors("0-3,4-7", 8).unwrap()), "0-7");
        assert_eq!(parse_colors("4095", 4096).unwrap().last(), Some(4095));
    }

    #[test]
    fn roundtrip_display() {
        let s = parse_colors("1,3,5-9,100-200,511", 512).unwrap();
        let text = format!("{s}");
        assert_eq!(parse_colors(&text, 512).unwrap(), s);
    }
}
