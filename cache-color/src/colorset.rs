//! A fixed-size bitset of page colors.
//!
//! [`ColorSet`] holds up to [`MAX_COLORS`] colors in a `[u64; N]` array, so it
//! needs no heap and is `Copy`. It formats itself in the same syntax that
//! partition specs use (`"0-7,12,14-15"`).

use core::fmt;
use core::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Sub};

/// A page color: the index of a group of cache sets that one page maps to.
pub type Color = u32;

/// The largest number of colors any geometry may have (and so the size of
/// every [`ColorSet`]). 4096 covers a 256 MiB 16-way LLC with 4 KiB pages.
pub const MAX_COLORS: usize = 4096;

const WORDS: usize = MAX_COLORS / 64;

/// A color at or beyond [`MAX_COLORS`] was given to a [`ColorSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColorOutOfRange(pub u64);

impl fmt::Display for ColorOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "color {} is beyond the largest supported color {}", self.0, MAX_COLORS - 1)
    }
}

/// A set of page colors, stored as a bitmap of [`MAX_COLORS`] bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ColorSet {
    words: [u64; WORDS],
}

impl Default for ColorSet {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl ColorSet {
    /// The empty set.
    pub const EMPTY: ColorSet = ColorSet { words: [0; WORDS] };

    /// The empty set.
    pub const fn new() -> Self {
        Self::EMPTY
    }

    /// The colors `0..n` (all colors of a geometry with `n` colors).
    /// `n` is clamped to [`MAX_COLORS`].
    pub const fn all(n: usize) -> Self {
        let n = if n > MAX_COLORS { MAX_COLORS } else { n };
        let mut words = [0u64; WORDS];
        let mut i = 0;
        while i < n / 64 {
            words[i] = u64::MAX;
            i += 1;
        }
        if n % 64 != 0 {
            words[n / 64] = (1u64 << (n % 64)) - 1;
        }
        ColorSet { words }
    }

    /// The inclusive range `lo..=hi`; empty if `lo > hi`.
    pub fn range(lo: Color, hi: Color) -> Result<Self, ColorOutOfRange> {
        let mut s = Self::EMPTY;
        s.insert_range(lo, hi)?;
        Ok(s)
    }

    /// A set built from a list of colors.
    pub fn from_colors(colors: &[Color]) -> Result<Self, ColorOutOfRange> {
        let mut s = Self::EMPTY;
        for &c in colors {
            s.insert(c)?;
        }
        Ok(s)
    }

    /// Adds `c`; returns whether it was newly added.
    pub fn insert(&mut self, c: Color) -> Result<bool, ColorOutOfRange> {
        let i = c as usize;
        if i >= MAX_COLORS {
            return Err(ColorOutOfRange(c.into()));
        }
        let bit = 1u64 << (i % 64);
        let was = self.words[i / 64] & bit != 0;
        self.words[i / 64] |= bit;
        Ok(!was)
    }

    /// Adds the inclusive range `lo..=hi` (nothing if `lo > hi`).
    pub fn insert_range(&mut self, lo: Color, hi: Color) -> Result<(), ColorOutOfRange> {
        if lo > hi {
            return Ok(());
        }
        if hi as usize >= MAX_COLORS {
            return Err(ColorOutOfRange(hi.into()));
        }
        let (lo, hi) = (lo as usize, hi as usize);
        let (lw, hw) = (lo / 64, hi / 64);
        for w in lw..=hw {
            let from = if w == lw { lo % 64 } else { 0 };
            let to = if w == hw { hi % 64 } else { 63 };
            // Bits from..=to.
            let mask = (u64::MAX >> (63 - to)) & (u64::MAX << from);
            self.words[w] |= mask;
        }
        Ok(())
    }

    /// Removes `c`; returns whether it was present.
    pub fn remove(&mut self, c: Color) -> bool {
        let i = c as usize;
        if i >= MAX_COLORS {
            return false;
        }
        let bit = 1u64 << (i % 64);
        let was = self.words[i / 64] & bit != 0;
        self.words[i / 64] &= !bit;
        was
    }

    /// Whether `c` is in the set (always false beyond [`MAX_COLORS`]).
    #[inline]
    pub fn contains(&self, c: Color) -> bool {
        let i = c as usize;
        i < MAX_COLORS && self.words[i / 64] & (1u64 << (i % 64)) != 0
    }

    /// Number of colors in the set.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The smallest color, if any.
    pub fn first(&self) -> Option<Color> {
        self.next_at_or_after(0)
    }

    /// The largest color, if any.
    pub fn last(&self) -> Option<Color> {
        self.words
            .iter()
            .enumerate()
            .rev()
            .find(|(_, &w)| w != 0)
            .map(|(i, &w)| (i * 64 + 63 - w.leading_zeros() as usize) as Color)
    }

    /// The smallest color `>= from`, without wrapping.
    pub fn next_at_or_after(&self, from: Color) -> Option<Color> {
        let from = from as usize;
        if from >= MAX_COLORS {
            return None;
        }
        let mut w = from / 64;
        let mut bits = self.words[w] & (u64::MAX << (from % 64));
        loop {
            if bits != 0 {
                return Some((w * 64 + bits.trailing_zeros() as usize) as Color);
            }
            w += 1;
            if w == WORDS {
                return None;
            }
            bits = self.words[w];
        }
    }

    /// The smallest color `>= from`, wrapping around to the smallest color
    /// of the set. This is the round-robin step of the frame pools.
    pub fn next_cyclic(&self, from: Color) -> Option<Color> {
        self.next_at_or_after(from).or_else(|| self.first())
    }

    /// Union of two sets.
    pub fn union(&self, other: &ColorSet) -> ColorSet {
        let mut r = *self;
        for (a, b) in r.words.iter_mut().zip(other.words.iter()) {
            *a |= *b;
        }
        r
    }

    /// Intersection of two sets.
    pub fn intersection(&self, other: &ColorSet) -> ColorSet {
        let mut r = *self;
        for (a, b) in r.words.iter_mut().zip(other.words.iter()) {
            *a &= *b;
        }
        r
    }

    /// Colors in `self` but not in `other`.
    pub fn difference(&self, other: &ColorSet) -> ColorSet {
        let mut r = *self;
        for (a, b) in r.words.iter_mut().zip(other.words.iter()) {
            *a &= !*b;
        }
        r
    }

    /// Whether the sets share no color.
    pub fn is_disjoint(&self, other: &ColorSet) -> bool {
        self.words.iter().zip(other.words.iter()).all(|(a, b)| a & b == 0)
    }

    /// Whether every color of `self` is in `other`.
    pub fn is_subset(&self, other: &ColorSet) -> bool {
        self.words.iter().zip(other.words.iter()).all(|(a, b)| a & !b == 0)
    }

    /// The smallest color in both sets, if any.
    pub fn first_common(&self, other: &ColorSet) -> Option<Color> {
        self.words
            .iter()
            .zip(other.words.iter())
            .enumerate()
            .find(|(_, (a, b))| *a & *b != 0)
            .map(|(i, (a, b))| (i * 64 + (a & b).trailing_zeros() as usize) as Color)
    }

    /// The first color `c` with `from <= c < limit` (wrapping around to
    /// `0 <= c < from`) that is in both sets. This is the round-robin step
    /// of the frame pools; it reads at most `limit / 64 + 2` words of each
    /// set, independent of how many colors match.
    pub fn next_common_cyclic(&self, other: &ColorSet, from: Color, limit: usize) -> Option<Color> {
        let limit = limit.min(MAX_COLORS);
        if limit == 0 {
            return None;
        }
        let nwords = limit.div_ceil(64);
        let tail_mask = if limit.is_multiple_of(64) { u64::MAX } else { (1u64 << (limit % 64)) - 1 };
        let from = if (from as usize) < limit { from as usize } else { 0 };
        let w0 = from / 64;
        let word = |w: usize| {
            let m = if w == nwords - 1 { tail_mask } else { u64::MAX };
            self.words[w] & other.words[w] & m
        };
        // First pass: from `from` to the end.
        let first = word(w0) & (u64::MAX << (from % 64));
        if first != 0 {
            return Some((w0 * 64 + first.trailing_zeros() as usize) as Color);
        }
        for w in w0 + 1..nwords {
            let b = word(w);
            if b != 0 {
                return Some((w * 64 + b.trailing_zeros() as usize) as Color);
            }
        }
        // Wrap: from 0 up to (and including the low part of) word w0.
        for w in 0..=w0 {
            let b = word(w);
            if b != 0 {
                return Some((w * 64 + b.trailing_zeros() as usize) as Color);
            }
        }
        None
    }

    /// Iterates over the colors in ascending order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { set: self, word: 0, bits: self.words[0] }
    }

    /// Iterates over maximal runs of consecutive colors as `(lo, hi)`
    /// inclusive pairs, in ascending order.
    pub fn ranges(&self) -> Ranges<'_> {
        Ranges { set: self, next: 0 }
    }

    /// The raw bitmap words (bit `c % 64` of word `c / 64` is color `c`).
    pub fn words(&self) -> &[u64; WORDS] {
        &self.words
    }
}

/// Ascending iterator over a [`ColorSet`].
#[derive(Clone)]
pub struct Iter<'a> {
    set: &'a ColorSet,
    word: usize,
    bits: u64,
}

impl Iterator for Iter<'_> {
    type Item = Color;

    fn next(&mut self) -> Option<Color> {
        loop {
            if self.bits != 0 {
                let b = self.bits.trailing_zeros() as usize;
                self.bits &= self.bits - 1;
                return Some((self.word * 64 + b) as Color);
            }
            self.word += 1;
            if self.word >= WORDS {
                return None;
            }
            self.bits = self.set.words[self.word];
        }
    }
}

impl<'a> IntoIterator for &'a ColorSet {
    type Item = Color;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over runs of consecutive colors, see [`ColorSet::ranges`].
#[derive(Clone)]
pub struct Ranges<'a> {
    set: &'a ColorSet,
    next: usize,
}

impl Iterator for Ranges<'_> {
    type Item = (Color, Color);

    fn next(&mut self) -> Option<(Color, Color)> {
        let lo = self.set.next_at_or_after(self.next as Color)?;
        let mut hi = lo;
        while (hi as usize + 1) < MAX_COLORS && self.set.contains(hi + 1) {
            hi += 1;
        }
        self.next = hi as usize + 1;
        if self.next >= MAX_COLORS {
            // Make the next call return None.
            self.next = MAX_COLORS;
        }
        Some((lo, hi))
    }
}

impl BitOr for ColorSet {
    type Output = ColorSet;
    fn bitor(self, rhs: ColorSet) -> ColorSet {
        self.union(&rhs)
    }
}

impl BitOrAssign for ColorSet {
    fn bitor_assign(&mut self, rhs: ColorSet) {
        *self = self.union(&rhs);
    }
}

impl BitAnd for ColorSet {
    type Output = ColorSet;
    fn bitand(self, rhs: ColorSet) -> ColorSet {
        self.intersection(&rhs)
    }
}

impl BitAndAssign for ColorSet {
    fn bitand_assign(&mut self, rhs: ColorSet) {
        *self = self.intersection(&rhs);
    }
}

impl Sub for ColorSet {
    type Output = ColorSet;
    fn sub(self, rhs: ColorSet) -> ColorSet {
        self.difference(&rhs)
    }
}

/// Formats as a partition spec, e.g. `0-7,12,14-15` (empty set: nothing).
impl fmt::Display for ColorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.ranges().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ColorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ColorSet({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_contains_remove() {
        let mut s = ColorSet::new();
        assert!(s.is_empty());
        assert_eq!(s.insert(5), Ok(true));
        assert_eq!(s.insert(5), Ok(false));
        assert_eq!(s.insert(4095), Ok(true));
        assert_eq!(s.insert(4096), Err(ColorOutOfRange(4096)));
        assert!(s.contains(5) && s.contains(4095) && !s.contains(6));
        assert!(!s.contains(u32::MAX));
        assert_eq!(s.len(), 2);
        assert!(s.remove(5));
        assert!(!s.remove(5));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn ranges_and_display() {
        let mut s = ColorSet::range(0, 7).unwrap();
        s.insert(12).unwrap();
        s.insert_range(14, 15).unwrap();
        assert_eq!(format!("{s}"), "0-7,12,14-15");
        assert_eq!(s.len(), 11);
        assert_eq!(s.first(), Some(0));
        assert_eq!(s.last(), Some(15));
        let all = ColorSet::all(MAX_COLORS);
        assert_eq!(format!("{all}"), "0-4095");
        assert_eq!(all.len(), MAX_COLORS);
        assert_eq!(ColorSet::all(70).len(), 70);
        assert_eq!(ColorSet::all(64).len(), 64);
        assert_eq!(ColorSet::all(0), ColorSet::EMPTY);
        assert_eq!(format!("{}", ColorSet::EMPTY), "");
        let r = ColorSet::range(60, 130).unwrap();
        assert_eq!(r.len(), 71);
        assert_eq!(r.iter().collect::<Vec<_>>(), (60..=130).collect::<Vec<_>>());
        assert_eq!(ColorSet::range(3, 2).unwrap(), ColorSet::EMPTY);
    }

    #[test]
    fn set_algebra() {
        let a = ColorSet::range(0, 99).unwrap();
        let b = ColorSet::range(50, 149).unwrap();
        let c = ColorSet::range(150, 199).unwrap();
        assert_eq!((a | b).len(), 150);
        assert_eq!((a & b).len(), 50);
        assert_eq!((a - b).len(), 50);
        assert!(!a.is_disjoint(&b));
        assert!(a.is_disjoint(&c));
        assert!((a & b).is_subset(&a));
        assert!(!a.is_subset(&b));
        assert_eq!(a.first_common(&b), Some(50));
        assert_eq!(a.first_common(&c), None);
    }

    #[test]
    fn cyclic_next() {
        let s = ColorSet::from_colors(&[3, 64, 200]).unwrap();
        assert_eq!(s.next_cyclic(0), Some(3));
        assert_eq!(s.next_cyclic(4), Some(64));
        assert_eq!(s.next_cyclic(65), Some(200));
        assert_eq!(s.next_cyclic(201), Some(3));
        assert_eq!(s.next_cyclic(5000), Some(3));
        assert_eq!(ColorSet::EMPTY.next_cyclic(0), None);
        let all = ColorSet::all(MAX_COLORS);
        assert_eq!(s.next_common_cyclic(&all, 4, 4096), Some(64));
        assert_eq!(s.next_common_cyclic(&all, 201, 4096), Some(3));
        assert_eq!(s.next_common_cyclic(&all, 65, 100), Some(3));
        assert_eq!(s.next_common_cyclic(&all, 0, 3), None);
        assert_eq!(s.next_common_cyclic(&all, 3, 4), Some(3));
        assert_eq!(s.next_common_cyclic(&ColorSet::EMPTY, 0, 4096), None);
    }
}
