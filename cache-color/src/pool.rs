//! Colored frame pools.
//!
//! A [`FramePool`] manages the page frames of one physical window
//! `[base, base + links.len() * page)`. Each frame of the window has one
//! [`FrameLink`] in a slice the caller provides (8 bytes per frame, no heap),
//! and the free frames of each color form an intrusive doubly linked list
//! through those links, whose head and length sit in a second caller slice
//! of [`ColorList`]s (8 bytes per color). The pool value itself stays small
//! (about 600 bytes), so sigma0 can carve both slices from the memory it
//! manages and keep the pool on a small stack. So:
//!
//! - [`FramePool::free`], [`FramePool::alloc_color`] and [`FramePool::take`]
//!   are O(1);
//! - [`FramePool::alloc_in`] ("any frame of a color in S") is O(1) in the
//!   number of frames: it scans at most `colors / 64 + 2` bitmap words to find
//!   the next color of S, after the caller's [`RoundRobin`] cursor, that has a
//!   free frame, so a task's pages spread evenly over its colors.
//!
//! Each link also records whether its frame belongs to the pool and whether
//! it is free, so freeing a frame twice, or a frame the pool never owned, is
//! an error and leaves the lists intact.

use core::fmt;

use crate::color::ColorMap;
use crate::colorset::{Color, ColorSet};

const NIL: u32 = u32::MAX;
const UNOWNED: u32 = u32::MAX - 1;
const ALLOCATED: u32 = u32::MAX - 2;

/// The most frames one pool can manage (link indices are `u32`).
pub const MAX_POOL_FRAMES: usize = (u32::MAX - 3) as usize;

/// The bookkeeping word pair of one frame. Opaque; make the slice with
/// [`FrameLink::UNOWNED`] (for instance `[FrameLink::UNOWNED; N]`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FrameLink {
    next: u32,
    /// Previous free frame, `NIL` at the head, or `UNOWNED` / `ALLOCATED`.
    prev: u32,
}

impl FrameLink {
    /// A link of a frame that is not (yet) in the pool.
    pub const UNOWNED: FrameLink = FrameLink { next: NIL, prev: UNOWNED };
}

impl fmt::Debug for FrameLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prev {
            UNOWNED => f.write_str("unowned"),
            ALLOCATED => f.write_str("allocated"),
            _ => write!(f, "free(prev {:#x}, next {:#x})", self.prev, self.next),
        }
    }
}

/// The free list of one color: its first free frame and its length. Opaque;
/// make the slice with [`ColorList::EMPTY`], one per color.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColorList {
    head: u32,
    count: u32,
}

impl ColorList {
    /// An empty list.
    pub const EMPTY: ColorList = ColorList { head: NIL, count: 0 };
}

/// What went wrong in a pool operation. Every error leaves the pool as it
/// was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The window base is not page aligned.
    BaseNotAligned(u64),
    /// More frames than [`MAX_POOL_FRAMES`], or the window wraps around the
    /// address space.
    WindowTooLarge,
    /// The address is not page aligned.
    NotAligned(u64),
    /// The frame is outside the window or was never added to the pool.
    NotInPool(u64),
    /// The frame is already free (double free).
    AlreadyFree(u64),
    /// The frame is allocated, so it cannot be taken.
    NotFree(u64),
    /// The frame was added to the pool before.
    AlreadyAdded(u64),
    /// No free frame of any color in the requested set.
    Exhausted,
    /// A color beyond the geometry was requested.
    NoSuchColor(Color),
    /// Fewer color lists than the map has colors.
    TooFewLists {
        /// Lists needed (= colors).
        needed: u32,
    },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PoolError::BaseNotAligned(a) => write!(f, "pool base {a:#x} is not page aligned"),
            PoolError::WindowTooLarge => f.write_str("pool window too large"),
            PoolError::NotAligned(a) => write!(f, "address {a:#x} is not page aligned"),
            PoolError::NotInPool(a) => write!(f, "frame {a:#x} is not in this pool"),
            PoolError::AlreadyFree(a) => write!(f, "frame {a:#x} is already free"),
            PoolError::NotFree(a) => write!(f, "frame {a:#x} is allocated"),
            PoolError::AlreadyAdded(a) => write!(f, "frame {a:#x} was already added"),
            PoolError::Exhausted => f.write_str("no free frame of the requested colors"),
            PoolError::NoSuchColor(c) => write!(f, "color {c} does not exist"),
            PoolError::TooFewLists { needed } => {
                write!(f, "the pool needs {needed} color lists")
            }
        }
    }
}

/// A round-robin cursor over a color set: keep one per task (or per
/// partition) so that its frames spread evenly across its colors, whatever
/// other tasks allocate in between.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundRobin {
    next: Color,
}

impl RoundRobin {
    /// A cursor that starts at color 0.
    pub const fn new() -> Self {
        RoundRobin { next: 0 }
    }

    /// A cursor that starts at `color`.
    pub const fn starting_at(color: Color) -> Self {
        RoundRobin { next: color }
    }

    /// The color the next search starts at.
    pub fn next_color(&self) -> Color {
        self.next
    }
}

/// Counts of a pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Frames added to the pool.
    pub owned: u64,
    /// Frames free now.
    pub free: u64,
    /// Frames handed out now.
    pub allocated: u64,
}

/// Free lists of page frames, one per color. See the module documentation.
pub struct FramePool<'a> {
    map: ColorMap,
    base_pfn: u64,
    links: &'a mut [FrameLink],
    lists: &'a mut [ColorList],
    nonempty: ColorSet,
    free_total: u64,
    owned_total: u64,
}

impl<'a> FramePool<'a> {
    /// An empty pool for the window starting at `base` with one frame per
    /// element of `links`, and one element of `lists` per color (at least
    /// `map.colors()`). Both are reset. Add memory with
    /// [`FramePool::add_range`] or [`FramePool::add_frame`].
    ///
    /// All the storage is the caller's, so the pool itself is small (about
    /// 600 bytes) and can live on a small stack.
    pub fn new(
        map: ColorMap,
        base: u64,
        links: &'a mut [FrameLink],
        lists: &'a mut [ColorList],
    ) -> Result<Self, PoolError> {
        let page = map.page_size();
        if !base.is_multiple_of(page) {
            return Err(PoolError::BaseNotAligned(base));
        }
        if links.len() > MAX_POOL_FRAMES {
            return Err(PoolError::WindowTooLarge);
        }
        (links.len() as u64).checked_mul(page).and_then(|l| base.checked_add(l)).ok_or(PoolError::WindowTooLarge)?;
        let colors = map.colors() as usize;
        if lists.len() < colors {
            return Err(PoolError::TooFewLists { needed: map.colors() });
        }
        let lists = &mut lists[..colors];
        lists.fill(ColorList::EMPTY);
        links.fill(FrameLink::UNOWNED);
        Ok(FramePool {
            map,
            base_pfn: base / page,
            links,
            lists,
            nonempty: ColorSet::EMPTY,
            free_total: 0,
            owned_total: 0,
        })
    }

    /// The color arithmetic this pool uses.
    pub fn map(&self) -> &ColorMap {
        &self.map
    }

    /// The window `[start, end)` this pool can hold frames of.
    pub fn window(&self) -> (u64, u64) {
        let p = self.map.page_size();
        (self.base_pfn * p, (self.base_pfn + self.links.len() as u64) * p)
    }

    /// Link index of `paddr`, checking alignment and the window.
    fn index(&self, paddr: u64) -> Result<u32, PoolError> {
        let page = self.map.page_size();
        if !paddr.is_multiple_of(page) {
            return Err(PoolError::NotAligned(paddr));
        }
        let pfn = paddr / page;
        if pfn < self.base_pfn || pfn - self.base_pfn >= self.links.len() as u64 {
            return Err(PoolError::NotInPool(paddr));
        }
        Ok((pfn - self.base_pfn) as u32)
    }

    fn paddr(&self, idx: u32) -> u64 {
        (self.base_pfn + idx as u64) * self.map.page_size()
    }

    fn color_of_index(&self, idx: u32) -> Color {
        self.map.color_of_frame(self.base_pfn + idx as u64)
    }

    fn push_free(&mut self, idx: u32) {
        let c = self.color_of_index(idx) as usize;
        let head = self.lists[c].head;
        self.links[idx as usize] = FrameLink { next: head, prev: NIL };
        if head != NIL {
            self.links[head as usize].prev = idx;
        }
        self.lists[c].head = idx;
        self.lists[c].count += 1;
        self.free_total += 1;
        if self.lists[c].count == 1 {
            // Colors are < MAX_COLORS by construction of the map.
            let _ = self.nonempty.insert(c as Color);
        }
    }

    /// Unlinks free frame `idx` and marks it allocated.
    fn unlink(&mut self, idx: u32) {
        let c = self.color_of_index(idx) as usize;
        let FrameLink { next, prev } = self.links[idx as usize];
        if prev == NIL {
            self.lists[c].head = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next != NIL {
            self.links[next as usize].prev = prev;
        }
        self.links[idx as usize] = FrameLink { next: NIL, prev: ALLOCATED };
        self.lists[c].count -= 1;
        self.free_total -= 1;
        if self.lists[c].count == 0 {
            self.nonempty.remove(c as Color);
        }
    }

    /// Adds one free frame to the pool.
    pub fn add_frame(&mut self, paddr: u64) -> Result<(), PoolError> {
        let idx = self.index(paddr)?;
        if self.links[idx as usize].prev != UNOWNED {
            return Err(PoolError::AlreadyAdded(paddr));
        }
        self.owned_total += 1;
        self.push_free(idx);
        Ok(())
    }

    /// Adds the whole frames of `[start, start + len)` as free frames and
    /// returns how many. Either all of them are added or (on error) none.
    pub fn add_range(&mut self, start: u64, len: u64) -> Result<u64, PoolError> {
        let page = self.map.page_size();
        let first = start.div_ceil(page);
        let end = start.saturating_add(len) / page;
        if end <= first {
            return Ok(0);
        }
        let first_idx = self.index(first * page)?;
        self.index((end - 1) * page)?;
        let n = (end - first) as u32;
        for i in first_idx..first_idx + n {
            if self.links[i as usize].prev != UNOWNED {
                return Err(PoolError::AlreadyAdded(self.paddr(i)));
            }
        }
        // Push in descending order so that each color list starts with its
        // lowest frame.
        for i in (first_idx..first_idx + n).rev() {
            self.push_free(i);
        }
        self.owned_total += u64::from(n);
        Ok(u64::from(n))
    }

    /// Allocates a frame of any color in `set`: the first color at or after
    /// the cursor (cyclically) that has a free frame. Advances the cursor
    /// past that color.
    pub fn alloc_in(&mut self, set: &ColorSet, cursor: &mut RoundRobin) -> Result<u64, PoolError> {
        let colors = self.map.colors();
        let c = self.nonempty.next_common_cyclic(set, cursor.next, colors as usize).ok_or(PoolError::Exhausted)?;
        let idx = self.lists[c as usize].head;
        self.unlink(idx);
        cursor.next = if c + 1 >= colors { 0 } else { c + 1 };
        Ok(self.paddr(idx))
    }

    /// Allocates a frame of color `c`.
    pub fn alloc_color(&mut self, c: Color) -> Result<u64, PoolError> {
        if c >= self.map.colors() {
            return Err(PoolError::NoSuchColor(c));
        }
        let idx = self.lists[c as usize].head;
        if idx == NIL {
            return Err(PoolError::Exhausted);
        }
        self.unlink(idx);
        Ok(self.paddr(idx))
    }

    /// Allocates the specific frame `paddr`, which must be free.
    pub fn take(&mut self, paddr: u64) -> Result<(), PoolError> {
        let idx = self.index(paddr)?;
        match self.links[idx as usize].prev {
            UNOWNED => Err(PoolError::NotInPool(paddr)),
            ALLOCATED => Err(PoolError::NotFree(paddr)),
            _ => {
                self.unlink(idx);
                Ok(())
            }
        }
    }

    /// Returns an allocated frame to its color's free list.
    pub fn free(&mut self, paddr: u64) -> Result<(), PoolError> {
        let idx = self.index(paddr)?;
        match self.links[idx as usize].prev {
            UNOWNED => Err(PoolError::NotInPool(paddr)),
            ALLOCATED => {
                self.push_free(idx);
                Ok(())
            }
            _ => Err(PoolError::AlreadyFree(paddr)),
        }
    }

    /// Whether `paddr` is a free frame of this pool.
    pub fn is_free(&self, paddr: u64) -> bool {
        self.index(paddr).is_ok_and(|i| !matches!(self.links[i as usize].prev, UNOWNED | ALLOCATED))
    }

    /// Whether `paddr` is a frame of this pool (free or allocated).
    pub fn owns(&self, paddr: u64) -> bool {
        self.index(paddr).is_ok_and(|i| self.links[i as usize].prev != UNOWNED)
    }

    /// Free frames of color `c`.
    pub fn free_in_color(&self, c: Color) -> u32 {
        self.lists.get(c as usize).map_or(0, |l| l.count)
    }

    /// Free frames of all colors in `set`.
    pub fn free_in(&self, set: &ColorSet) -> u64 {
        set.iter().map(|c| u64::from(self.free_in_color(c))).sum()
    }

    /// Free frames in total.
    pub fn free_total(&self) -> u64 {
        self.free_total
    }

    /// The colors that have at least one free frame.
    pub fn nonempty_colors(&self) -> &ColorSet {
        &self.nonempty
    }

    /// Owned, free and allocated frame counts.
    pub fn stats(&self) -> PoolStats {
        PoolStats { owned: self.owned_total, free: self.free_total, allocated: self.owned_total - self.free_total }
    }

    /// The free-frame counts of colors `0..colors`, in color order.
    pub fn free_per_color(&self) -> impl Iterator<Item = u32> + '_ {
        self.lists.iter().map(|l| l.count)
    }

    /// Walks every free list and checks the links against the counters.
    /// For tests and debugging; O(frames).
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let mut total = 0u64;
        for c in 0..self.map.colors() {
            let mut n = 0u32;
            let mut prev = NIL;
            let mut cur = self.lists[c as usize].head;
            while cur != NIL {
                if cur as usize >= self.links.len() {
                    return Err("link out of range");
                }
                let l = self.links[cur as usize];
                if l.prev != prev {
                    return Err("broken back link");
                }
                if self.color_of_index(cur) != c {
                    return Err("frame on the wrong color list");
                }
                n += 1;
                if n > self.lists[c as usize].count {
                    return Err("list longer than its count");
                }
                prev = cur;
                cur = l.next;
            }
            if n != self.lists[c as usize].count {
                return Err("list shorter than its count");
            }
            if (n > 0) != self.nonempty.contains(c) {
                return Err("non-empty bitmap out of date");
            }
            total += u64::from(n);
        }
        if total != self.free_total {
            return Err("free total out of date");
        }
        let free_links = self.links.iter().filter(|l| !matches!(l.prev, UNOWNED | ALLOCATED)).count() as u64;
        if free_links != total {
            return Err("free frames not on any list");
        }
        let owned = self.links.iter().filter(|l| l.prev != UNOWNED).count() as u64;
        if owned != self.owned_total {
            return Err("owned total out of date");
        }
        Ok(())
    }
}

impl fmt::Debug for FramePool<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (start, end) = self.window();
        f.debug_struct("FramePool")
            .field("window", &format_args!("{start:#x}..{end:#x}"))
            .field("colors", &self.map.colors())
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::EMBEDDED_1M_16W;

    fn map() -> ColorMap {
        ColorMap::for_geometry(&EMBEDDED_1M_16W).unwrap()
    }

    fn lists() -> [ColorList; 16] {
        [ColorList::EMPTY; 16]
    }

    #[test]
    fn alloc_free_roundtrip() {
        let mut links = vec![FrameLink::UNOWNED; 64];
        let mut ls = lists();
        let mut pool = FramePool::new(map(), 0x10_0000, &mut links, &mut ls).unwrap();
        assert_eq!(pool.add_range(0x10_0000, 64 * 4096).unwrap(), 64);
        assert_eq!(pool.free_total(), 64);
        assert_eq!(pool.free_in_color(3), 4);
        let set = ColorSet::from_colors(&[3, 5]).unwrap();
        let mut rr = RoundRobin::new();
        let mut got = vec![];
        for _ in 0..8 {
            got.push(pool.alloc_in(&set, &mut rr).unwrap());
        }
        assert_eq!(pool.alloc_in(&set, &mut rr), Err(PoolError::Exhausted));
        let colors: Vec<_> = got.iter().map(|&a| pool.map().color_of(a)).collect();
        assert_eq!(colors, [3, 5, 3, 5, 3, 5, 3, 5]);
        // Lowest frame of each color first.
        assert_eq!(got[0], 0x10_3000);
        pool.check_invariants().unwrap();
        for &a in &got {
            pool.free(a).unwrap();
        }
        assert_eq!(pool.free(got[0]), Err(PoolError::AlreadyFree(got[0])));
        assert_eq!(pool.free(0x10_0001), Err(PoolError::NotAligned(0x10_0001)));
        assert_eq!(pool.free(0x0), Err(PoolError::NotInPool(0)));
        assert_eq!(pool.free(0x20_0000), Err(PoolError::NotInPool(0x20_0000)));
        pool.check_invariants().unwrap();
        assert_eq!(pool.stats(), PoolStats { owned: 64, free: 64, allocated: 0 });
    }

    #[test]
    fn holes_are_not_in_pool() {
        let mut links = vec![FrameLink::UNOWNED; 32];
        let mut ls = lists();
        let mut pool = FramePool::new(map(), 0, &mut links, &mut ls).unwrap();
        pool.add_range(0, 8 * 4096).unwrap();
        pool.add_frame(20 * 4096).unwrap();
        assert_eq!(pool.free(10 * 4096), Err(PoolError::NotInPool(10 * 4096)));
        assert_eq!(pool.take(10 * 4096), Err(PoolError::NotInPool(10 * 4096)));
        assert_eq!(pool.add_frame(20 * 4096), Err(PoolError::AlreadyAdded(20 * 4096)));
        assert_eq!(pool.add_range(7 * 4096, 4 * 4096), Err(PoolError::AlreadyAdded(7 * 4096)));
        // The failed add_range added nothing.
        assert!(!pool.owns(8 * 4096));
        assert_eq!(pool.stats().owned, 9);
        pool.take(20 * 4096).unwrap();
        assert_eq!(pool.take(20 * 4096), Err(PoolError::NotFree(20 * 4096)));
        assert_eq!(pool.free_in_color(4), 1);
        pool.take(4 * 4096).unwrap();
        assert_eq!(pool.free_in_color(4), 0);
        assert_eq!(pool.alloc_color(4), Err(PoolError::Exhausted));
        assert_eq!(pool.alloc_color(16), Err(PoolError::NoSuchColor(16)));
        pool.free(20 * 4096).unwrap();
        assert_eq!(pool.alloc_color(4).unwrap(), 20 * 4096);
        pool.free(4 * 4096).unwrap();
        pool.free(20 * 4096).unwrap();
        assert_eq!(pool.free_in_color(4), 2);
        pool.check_invariants().unwrap();
    }

    #[test]
    fn pool_value_is_small() {
        assert!(core::mem::size_of::<FramePool<'_>>() <= 640);
    }

    #[test]
    fn partial_frames_are_skipped() {
        let mut links = vec![FrameLink::UNOWNED; 8];
        let mut ls = lists();
        let mut pool = FramePool::new(map(), 0, &mut links, &mut ls).unwrap();
        assert_eq!(pool.add_range(100, 3 * 4096), Ok(2));
        assert!(pool.owns(4096) && pool.owns(2 * 4096) && !pool.owns(0));
        assert_eq!(pool.add_range(100, 200), Ok(0));
        assert!(matches!(FramePool::new(map(), 5, &mut [], &mut lists()), Err(PoolError::BaseNotAligned(5))));
    }

    #[test]
    fn cursors_are_independent() {
        let mut links = vec![FrameLink::UNOWNED; 256];
        let mut ls = lists();
        let mut pool = FramePool::new(map(), 0, &mut links, &mut ls).unwrap();
        pool.add_range(0, 256 * 4096).unwrap();
        let a = ColorSet::range(0, 1).unwrap();
        let b = ColorSet::range(2, 3).unwrap();
        let (mut ra, mut rb) = (RoundRobin::new(), RoundRobin::new());
        let mut ca = [0u32; 16];
        for _ in 0..8 {
            let x = pool.alloc_in(&a, &mut ra).unwrap();
            ca[pool.map().color_of(x) as usize] += 1;
            pool.alloc_in(&b, &mut rb).unwrap();
        }
        assert_eq!(ca[0], 4);
        assert_eq!(ca[1], 4);
        assert_eq!(pool.free_in(&a), 32 - 8);
        assert_eq!(pool.free_per_color().nth(2), Some(12));
        assert_eq!(pool.free_per_color().count(), 16);
        assert!(matches!(
            FramePool::new(map(), 0, &mut [], &mut [ColorList::EMPTY; 15]),
            Err(PoolError::TooFewLists { needed: 16 })
        ));
    }
}
