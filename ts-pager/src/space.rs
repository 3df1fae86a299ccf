//! The demand-paged part of a TS task's address space: which pages the
//! pager zero-fills on first touch (the heap below the break, the stack,
//! the anonymous mappings) and what a request to move the break or to map
//! and unmap gives back.
//!
//! The image is not here: the pager copies it into frames when it loads
//! the task and answers its faults from the fault table.

use abi::ipc::ts::{Error, HEAP_MAX, MAP_BASE, MAP_END};
use abi::layout;

/// Anonymous mappings (after splits) one task holds.
pub const MAX_MAPS: usize = 16;

/// Pages `[start, end)` (page aligned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
}

impl Region {
    pub const EMPTY: Region = Region { start: 0, end: 0 };

    pub fn contains(&self, v: u64) -> bool {
        (self.start..self.end).contains(&v)
    }

    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    pub fn pages(&self) -> u64 {
        self.end.saturating_sub(self.start) / 4096
    }
}

fn page_up(v: u64) -> u64 {
    v.next_multiple_of(4096)
}

#[derive(Clone, Debug)]
pub struct Space {
    brk: u64,
    stack: Region,
    /// Sorted by start, disjoint.
    maps: heapless::Vec<Region, MAX_MAPS>,
    /// Where the next mapping goes (addresses are not reused).
    next_map: u64,
}

impl Space {
    /// A heap of `heap` bytes above `layout::HEAP_BASE` and a stack of
    /// `stack` bytes below `layout::STACK_TOP`.
    pub fn new(heap: u64, stack: u64) -> Space {
        Space {
            brk: layout::HEAP_BASE + heap.min(HEAP_MAX),
            stack: Region { start: layout::STACK_TOP - stack.next_multiple_of(4096), end: layout::STACK_TOP },
            maps: heapless::Vec::new(),
            next_map: MAP_BASE,
        }
    }

    pub fn brk(&self) -> u64 {
        self.brk
    }

    /// Whether page `v` is one the pager fills with zeros on first touch.
    pub fn demand_zero(&self, v: u64) -> bool {
        (layout::HEAP_BASE..page_up(self.brk)).contains(&v)
            || self.stack.contains(v)
            || self.maps.iter().any(|m| m.contains(v))
    }

    /// Moves the break to `to`; returns the pages it gives back (empty
    /// when it grows).
    pub fn set_brk(&mut self, to: u64) -> Result<Region, Error> {
        if !(layout::HEAP_BASE..=layout::HEAP_BASE + HEAP_MAX).contains(&to) {
            return Err(if to < layout::HEAP_BASE { Error::Invalid } else { Error::NoMemory });
        }
        let freed = Region { start: page_up(to), end: page_up(self.brk) };
        self.brk = to;
        Ok(if freed.is_empty() { Region::EMPTY } else { freed })
    }

    /// A fresh mapping of `len` bytes (rounded up to pages).
    pub fn map(&mut self, len: u64) -> Result<u64, Error> {
        if len == 0 {
            return Err(Error::Invalid);
        }
        let len = len.checked_next_multiple_of(4096).ok_or(Error::NoMemory)?;
        let start = self.next_map;
        let end = start.checked_add(len).filter(|&e| e <= MAP_END).ok_or(Error::NoMemory)?;
        let at = self.maps.iter().position(|m| m.start > start).unwrap_or(self.maps.len());
        self.maps.insert(at, Region { start, end }).map_err(|_| Error::NoResources)?;
        // A guard page between mappings, so an overrun faults.
        self.next_map = end + 4096;
        Ok(start)
    }

    /// Removes `[addr, addr + len)` (page aligned, rounded up) from the
    /// mappings; returns the range whose pages go back. Parts of the range
    /// that are not mapped are fine, as with `munmap`.
    pub fn unmap(&mut self, addr: u64, len: u64) -> Result<Region, Error> {
        let end = addr.checked_add(len).map(page_up).ok_or(Error::Invalid)?;
        if !addr.is_multiple_of(4096) || len == 0 || addr < MAP_BASE || end > MAP_END {
            return Err(Error::Invalid);
        }
        let cut = Region { start: addr, end };
        let mut out: heapless::Vec<Region, MAX_MAPS> = heapless::Vec::new();
        for m in self.maps.iter() {
            for piece in [
                Region { start: m.start, end: m.end.min(cut.start) },
                Region { start: m.start.max(cut.end), end: m.end },
            ] {
                if !piece.is_empty() {
                    // A split that does not fit changes nothing.
                    out.push(piece).map_err(|_| Error::NoResources)?;
                }
            }
        }
        self.maps = out;
        Ok(cut)
    }

    #[cfg(test)]
    pub fn maps(&self) -> &[Region] {
        &self.maps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: u64 = layout::HEAP_BASE;

    #[test]
    fn heap_pages_follow_the_break() {
        let mut s = Space::new(8192, 65536);
        assert!(s.demand_zero(H) && s.demand_zero(H + 4096) && !s.demand_zero(H + 8192));
        assert_eq!(s.set_brk(H + 10_000), Ok(Region::EMPTY));
        assert!(s.demand_zero(H + 8192) && !s.demand_zero(H + 12288), "a partial page counts");
        assert_eq!(s.set_brk(H + 4095), Ok(Region { start: H + 4096, end: H + 12288 }));
        assert!(s.demand_zero(H) && !s.demand_zero(H + 4096));
        assert_eq!(s.brk(), H + 4095);
        assert_eq!(s.set_brk(H - 1), Err(Error::Invalid));
        assert_eq!(s.set_brk(H + HEAP_MAX + 1), Err(Error::NoMemory));
        assert_eq!(s.brk(), H + 4095, "a refused move changes nothing");
        assert_eq!(s.set_brk(H), Ok(Region { start: H, end: H + 4096 }));
        assert!(!s.demand_zero(H));
    }

    #[test]
    fn the_stack_is_demand_zero_below_its_top() {
        let s = Space::new(0, 16384);
        let top = layout::STACK_TOP;
        assert!(s.demand_zero(top - 4096) && s.demand_zero(top - 16384));
        assert!(!s.demand_zero(top - 16384 - 4096) && !s.demand_zero(top));
        assert!(!s.demand_zero(H), "no heap declared");
    }

    #[test]
    fn maps_are_fresh_disjoint_and_split_on_unmap() {
        let mut s = Space::new(0, 4096);
        let a = s.map(3 * 4096).unwrap();
        let b = s.map(1).unwrap();
        assert_eq!(a, MAP_BASE);
        assert!(b >= a + 4 * 4096, "a guard page between mappings");
        assert!(s.demand_zero(a + 2 * 4096) && !s.demand_zero(a + 3 * 4096) && s.demand_zero(b));
        assert_eq!(s.unmap(a + 4096, 4096), Ok(Region { start: a + 4096, end: a + 8192 }));
        assert_eq!(
            s.maps(),
            [
                Region { start: a, end: a + 4096 },
                Region { start: a + 8192, end: a + 12288 },
                Region { start: b, end: b + 4096 }
            ]
        );
        assert!(s.demand_zero(a) && !s.demand_zero(a + 4096) && s.demand_zero(a + 8192));
        assert_eq!(s.unmap(a + 1, 4096), Err(Error::Invalid));
        assert_eq!(s.unmap(H, 4096), Err(Error::Invalid), "the heap is not a mapping");
        assert_eq!(s.map(0), Err(Error::Invalid));
        assert_eq!(s.map(u64::MAX), Err(Error::NoMemory));
        assert_eq!(s.map(MAP_END), Err(Error::NoMemory));
    }

    #[test]
    fn a_full_mapping_table_refuses_and_keeps_its_state() {
        let mut s = Space::new(0, 4096);
        let first = s.map(3 * 4096).unwrap();
        while s.maps().len() < MAX_MAPS {
            s.map(4096).unwrap();
        }
        assert_eq!(s.map(4096), Err(Error::NoResources));
        let before = s.maps().to_vec();
        assert_eq!(s.unmap(first + 4096, 4096), Err(Error::NoResources), "the split needs a slot");
        assert_eq!(s.maps(), &before[..]);
        assert!(s.unmap(first, 3 * 4096).is_ok(), "a whole mapping goes without a split");
        assert_eq!(s.maps().len(), MAX_MAPS - 1);
    }

    proptest! {
        /// After any maps and unmaps, a page is demand-zero exactly when
        /// it lies in a mapping made and not unmapped since.
        #[test]
        fn mappings_agree_with_a_page_set(ops in proptest::collection::vec((any::<bool>(), 1u64..6, 0u64..40), 1..40)) {
            let mut s = Space::new(0, 4096);
            let mut live = std::collections::BTreeSet::new();
            for (is_map, n, at) in ops {
                if is_map {
                    if let Ok(a) = s.map(n * 4096) {
                        live.extend((0..n).map(|i| a + i * 4096));
                    }
                } else {
                    let a = MAP_BASE + at * 4096;
                    if s.unmap(a, n * 4096).is_ok() {
                        for i in 0..n {
                            live.remove(&(a + i * 4096));
                        }
                    }
                }
                for p in 0..64 {
                    let v = MAP_BASE + p * 4096;
                    prop_assert_eq!(s.demand_zero(v), live.contains(&v), "page {:#x}", v);
                }
            }
        }
    }
}
