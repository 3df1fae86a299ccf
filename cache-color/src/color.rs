//! Page-color arithmetic for one cache level.
//!
//! A physically indexed cache with `sets` sets of `line`-byte lines takes the
//! set index of an address as `(paddr / line) % sets`. One page covers
//! `page / line` consecutive sets, so the pages fall into
//! `colors = sets / (page / line)` classes ("colors"); two pages of different
//! colors never compete for the same set. The color of a frame is
//! `(paddr / page) % colors`. When `colors` is a power of two these are the
//! address bits `[log2(page), log2(page * colors))`, see
//! [`ColorMap::color_mask`].

use core::fmt;

use crate::colorset::{Color, ColorSet, MAX_COLORS};
use crate::geometry::{CacheGeometry, CacheLevel, PAGE_SIZE};

/// Why a [`ColorMap`] cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorError {
    /// The geometry has no data or unified cache.
    NoDataCache,
    /// The page size is zero or not a power of two.
    BadPageSize(u64),
    /// The cache's line size is zero.
    BadLineSize(u32),
    /// The way size is larger than a page but not a multiple of the page
    /// size, so page colors are not well defined.
    WayNotPageMultiple {
        /// Bytes per way.
        way_size: u64,
        /// The page size.
        page_size: u64,
    },
    /// More colors than a [`ColorSet`] can hold.
    TooManyColors(u64),
}

impl fmt::Display for ColorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ColorError::NoDataCache => f.write_str("the geometry has no data cache"),
            ColorError::BadPageSize(p) => write!(f, "page size {p} is not a power of two"),
            ColorError::BadLineSize(l) => write!(f, "line size {l} is invalid"),
            ColorError::WayNotPageMultiple { way_size, page_size } => {
                write!(f, "way size {way_size} is not a multiple of the page size {page_size}")
            }
            ColorError::TooManyColors(n) => {
                write!(f, "{n} colors, more than the supported {MAX_COLORS}")
            }
        }
    }
}

/// Color arithmetic for one cache level and page size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ColorMap {
    page_size: u64,
    page_shift: u32,
    colors: u32,
    line_size: u32,
    sets: u32,
    ways: u32,
}

impl ColorMap {
    /// Colors of `level` for pages of `page_size` bytes.
    pub fn new(level: &CacheLevel, page_size: u64) -> Result<Self, ColorError> {
        if page_size == 0 || !page_size.is_power_of_two() {
            return Err(ColorError::BadPageSize(page_size));
        }
        if level.line_size == 0 {
            return Err(ColorError::BadLineSize(level.line_size));
        }
        let way = level.way_size();
        if way > page_size && !way.is_multiple_of(page_size) {
            return Err(ColorError::WayNotPageMultiple { way_size: way, page_size });
        }
        let colors = level.colors_for(page_size);
        if colors > MAX_COLORS as u64 {
            return Err(ColorError::TooManyColors(colors));
        }
        Ok(ColorMap {
            page_size,
            page_shift: page_size.trailing_zeros(),
            colors: colors as u32,
            line_size: level.line_size,
            sets: level.sets,
            ways: level.ways,
        })
    }

    /// Colors of the last-level cache of `geometry` for 4 KiB pages.
    pub fn for_geometry(geometry: &CacheGeometry) -> Result<Self, ColorError> {
        let llc = geometry.last_level().ok_or(ColorError::NoDataCache)?;
        Self::new(llc, PAGE_SIZE)
    }

    /// Colors of the data cache at `level` of `geometry` for 4 KiB pages.
    pub fn for_level(geometry: &CacheGeometry, level: u8) -> Result<Self, ColorError> {
        let l = geometry.level(level).ok_or(ColorError::NoDataCache)?;
        Self::new(l, PAGE_SIZE)
    }

    /// Number of colors.
    #[inline]
    pub fn colors(&self) -> u32 {
        self.colors
    }

    /// The page size.
    #[inline]
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// The line size of the cache.
    pub fn line_size(&self) -> u32 {
        self.line_size
    }

    /// The number of sets of the cache.
    pub fn sets(&self) -> u32 {
        self.sets
    }

    /// The cache set that `paddr` maps to: `(paddr / line) % sets`.
    pub fn set_index(&self, paddr: u64) -> u64 {
        (paddr / self.line_size as u64) % self.sets as u64
    }

    /// The color of the frame containing `paddr`.
    #[inline]
    pub fn color_of(&self, paddr: u64) -> Color {
        self.color_of_frame(paddr >> self.page_shift)
    }

    /// The color of frame number `pfn` (`paddr / page size`).
    #[inline]
    pub fn color_of_frame(&self, pfn: u64) -> Color {
        if self.colors.is_power_of_two() {
            (pfn & (self.colors as u64 - 1)) as Color
        } else {
            (pfn % self.colors as u64) as Color
        }
    }

    /// The physical address bits that select the color, when the number of
    /// colors is a power of two (else `None`: then the color is
    /// `(paddr / page) % colors` and no single bit field selects it).
    /// With one color the mask is 0.
    pub fn color_mask(&self) -> Option<u64> {
        if self.colors.is_power_of_two() {
            Some((self.colors as u64 - 1) << self.page_shift)
        } else {
            None
        }
    }

    /// The lowest address bit of the color field.
    pub fn color_shift(&self) -> u32 {
        self.page_shift
    }

    /// The colors touched by the physically contiguous range
    /// `[start, start + len)`.
    pub fn colors_in_range(&self, start: u64, len: u64) -> ColorSet {
        let mut set = ColorSet::EMPTY;
        if len == 0 {
            return set;
        }
        let first = start >> self.page_shift;
        let last = (start.saturating_add(len - 1)) >> self.page_shift;
        let n = last - first + 1;
        if n >= self.colors as u64 {
            return ColorSet::all(self.colors as usize);
        }
        let lo = self.color_of_frame(first);
        let hi = self.color_of_frame(last);
        // Colors are < MAX_COLORS by construction, so these never fail.
        if lo <= hi {
            let _ = set.insert_range(lo, hi);
        } else {
            let _ = set.insert_range(lo, self.colors - 1);
            let _ = set.insert_range(0, hi);
        }
        set
    }

    /// How many frames of color `c` lie in the frame-number range
    /// `[first_pfn, end_pfn)`.
    pub fn frames_of_color(&self, c: Color, first_pfn: u64, end_pfn: u64) -> u64 {
        if c >= self.colors || end_pfn <= first_pfn {
            return 0;
        }
        let n = self.colors as u64;
        // Number of x in [0, e) with x % n == c.
        let upto = |e: u64| e / n + u64::from(e % n > c as u64);
        upto(end_pfn) - upto(first_pfn)
    }

    /// How many bytes of the physically contiguous range
    /// `[start, start + len)` lie in frames whose color is in `set`
    /// (only whole frames count).
    pub fn capacity_in_range(&self, set: &ColorSet, start: u64, len: u64) -> u64 {
        let first = start.div_ceil(self.page_size);
        let end = start.saturating_add(len) >> self.page_shift;
        if end <= first {
            return 0;
        }
        let frames: u64 =
            set.iter().take_while(|&c| c < self.colors).map(|c| self.frames_of_color(c, first, end)).sum();
        frames * self.page_size
    }

    /// How many bytes a color set can hold in a machine with `mem_size`
    /// bytes of memory starting at physical address 0.
    pub fn capacity(&self, set: &ColorSet, mem_size: u64) -> u64 {
        self.capacity_in_range(set, 0, mem_size)
    }

    /// How many bytes of memory of each color a memory of `mem_size` bytes
    /// (from address 0) has, rounded down.
    pub fn bytes_per_color(&self, mem_size: u64) -> u64 {
        (mem_size >> self.page_shift) / self.colors as u64 * self.page_size
    }

    /// How many bytes of the cache itself `set` owns: each color is
    /// `ways * page size` bytes of cache (capped at the cache size when a
    /// way is smaller than a page).
    pub fn cache_share(&self, set: &ColorSet) -> u64 {
        let per_color = self.sets as u64 * self.line_size as u64 * self.ways as u64 / self.colors as u64;
        set.iter().filter(|&c| c < self.colors).count() as u64 * per_color
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{CacheKind, EMBEDDED_1M_16W, SKYLAKE_CLIENT, ZEN4};

    #[test]
    fn masks() {
        let z = ColorMap::for_geometry(&ZEN4).unwrap();
        assert_eq!(z.colors(), 512);
        assert_eq!(z.color_mask(), Some(0x1ff << 12));
        let s = ColorMap::for_geometry(&SKYLAKE_CLIENT).unwrap();
        assert_eq!(s.color_mask(), Some(0x7f << 12));
        let e = ColorMap::for_geometry(&EMBEDDED_1M_16W).unwrap();
        assert_eq!(e.color_mask(), Some(0xf000));
        let l1 = ColorMap::for_level(&ZEN4, 1).unwrap();
        assert_eq!(l1.colors(), 1);
        assert_eq!(l1.color_mask(), Some(0));
        // 12 MiB 16-way: 192 colors, no bit mask.
        let odd = CacheLevel::new(3, CacheKind::Unified, 12 << 20, 16, 64);
        let m = ColorMap::new(&odd, PAGE_SIZE).unwrap();
        assert_eq!(m.colors(), 192);
        assert_eq!(m.color_mask(), None);
        assert_eq!(m.color_of(192 * 4096), 0);
        assert_eq!(m.color_of(193 * 4096 + 5), 1);
    }

    #[test]
    fn color_of_examples() {
        let e = ColorMap::for_geometry(&EMBEDDED_1M_16W).unwrap();
        assert_eq!(e.color_of(0), 0);
        assert_eq!(e.color_of(0xfff), 0);
        assert_eq!(e.color_of(0x1000), 1);
        assert_eq!(e.color_of(0xf000), 15);
        assert_eq!(e.color_of(0x10000), 0);
        assert_eq!(e.color_of(0x1234_5000), 5);
    }

    #[test]
    fn range_colors() {
        let e = ColorMap::for_geometry(&EMBEDDED_1M_16W).unwrap();
        assert_eq!(e.colors_in_range(0x3000, 0), ColorSet::EMPTY);
        assert_eq!(e.colors_in_range(0x3000, 1), ColorSet::range(3, 3).unwrap());
        assert_eq!(e.colors_in_range(0x3fff, 2), ColorSet::range(3, 4).unwrap());
        assert_eq!(e.colors_in_range(0xe000, 0x4000), ColorSet::from_colors(&[14, 15, 0, 1]).unwrap());
        assert_eq!(e.colors_in_range(0x5000, 0x10000), ColorSet::all(16));
        assert_eq!(e.colors_in_range(u64::MAX - 10, 100).len(), 1);
    }

    #[test]
    fn capacities() {
        let e = ColorMap::for_geometry(&EMBEDDED_1M_16W).unwrap();
        let half = ColorSet::range(0, 7).unwrap();
        assert_eq!(e.capacity(&half, 64 << 20), 32 << 20);
        assert_eq!(e.bytes_per_color(64 << 20), 4 << 20);
        // 17 frames: color 0 twice, others once.
        let zero = ColorSet::range(0, 0).unwrap();
        assert_eq!(e.capacity(&zero, 17 * 4096), 2 * 4096);
        assert_eq!(e.capacity(&zero, 17 * 4096 - 1), 4096);
        assert_eq!(e.capacity_in_range(&zero, 1, 16 * 4096), 0);
        assert_eq!(e.cache_share(&half), 512 << 10);
        // Colors beyond the map are ignored.
        let beyond = ColorSet::range(16, 20).unwrap();
        assert_eq!(e.capacity(&beyond, 1 << 30), 0);
    }

    #[test]
    fn errors() {
        let l = CacheLevel::new(3, CacheKind::Unified, 8 << 20, 16, 64);
        assert_eq!(ColorMap::new(&l, 3000), Err(ColorError::BadPageSize(3000)));
        let huge = CacheLevel::new(3, CacheKind::Unified, 1 << 30, 16, 64);
        assert_eq!(ColorMap::new(&huge, PAGE_SIZE), Err(ColorError::TooManyColors(16384)));
        // What a large-LLC host (480 MiB 16-way, as a VM on this project's
        // build machines reports) gives: too many colors for a ColorSet;
        // use a config override or a lower level there.
        let big = CacheLevel::new(3, CacheKind::Unified, 480 << 20, 16, 64);
        assert_eq!(ColorMap::new(&big, PAGE_SIZE), Err(ColorError::TooManyColors(7680)));
        // 6 KiB ways with 4 KiB pages.
        let odd = CacheLevel::new(2, CacheKind::Unified, 96 << 10, 16, 64);
        assert!(matches!(ColorMap::new(&odd, PAGE_SIZE), Err(ColorError::WayNotPageMultiple { .. })));
    }
}
