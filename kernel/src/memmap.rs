//! The physical memory map the kernel believes in.
//!
//! Built once at boot from the firmware map (through Multiboot) and the
//! ranges the kernel knows are taken (its own image, boot modules, the
//! kernel pool). Invariants after [`MemMap::build`]: regions are sorted,
//! page aligned, non-overlapping, and adjacent regions differ in kind; every
//! byte of the kernel image and of every module is in a region of kind
//! `Kernel` or `Module`, never `Usable`.

use abi::kip::{MemKind, MemRegion, MAX_MEM_REGIONS};

const PAGE: u64 = abi::PAGE_SIZE;
/// Below this address memory belongs to the BIOS and is never handed out.
pub const LOW_MEMORY_END: u64 = 0x10_0000;

/// A half-open physical range `[base, end)` of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub base: u64,
    pub end: u64,
    pub kind: MemKind,
}

impl Region {
    pub fn size(&self) -> u64 {
        self.end - self.base
    }
}

/// Why the map could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// More distinct regions than the KIP can describe.
    TooManyRegions,
    /// No usable region can hold a pool of the requested size.
    NoRoomForPool,
}

#[derive(Clone, Debug, Default)]
pub struct MemMap {
    regions: heapless::Vec<Region, MAX_MEM_REGIONS>,
}

/// Which kind wins where inputs overlap: taken ranges over firmware holes
/// over usable RAM.
fn rank(kind: MemKind) -> u8 {
    match kind {
        MemKind::Usable => 1,
        MemKind::Reserved => 2,
        MemKind::Kernel | MemKind::Module => 3,
    }
}

impl MemMap {
    /// Builds the map. `firmware` is `(base, len, multiboot type)`, `taken`
    /// the kernel image and modules with their kinds.
    pub fn build(
        firmware: impl Iterator<Item = (u64, u64, u32)> + Clone,
        taken: &[Region],
    ) -> Result<MemMap, MapError> {
        // Inputs as aligned regions: usable RAM shrinks to whole pages,
        // everything else grows to whole pages.
        let mut inputs: heapless::Vec<Region, 192> = heapless::Vec::new();
        for (base, len, ty) in firmware.clone() {
            let end = base.saturating_add(len);
            let r = if ty == 1 {
                Region { base: base.next_multiple_of(PAGE), end: end & !(PAGE - 1), kind: MemKind::Usable }
            } else {
                Region {
                    base: base & !(PAGE - 1),
                    end: end.saturating_add(PAGE - 1) & !(PAGE - 1),
                    kind: MemKind::Reserved,
                }
            };
            if r.base < r.end {
                inputs.push(r).map_err(|_| MapError::TooManyRegions)?;
            }
        }
        inputs
            .push(Region { base: 0, end: LOW_MEMORY_END, kind: MemKind::Reserved })
            .map_err(|_| MapError::TooManyRegions)?;
        for t in taken {
            let r =
                Region { base: t.base & !(PAGE - 1), end: t.end.saturating_add(PAGE - 1) & !(PAGE - 1), kind: t.kind };
            if r.base < r.end {
                inputs.push(r).map_err(|_| MapError::TooManyRegions)?;
            }
        }
        // Cut at every boundary and give each piece the highest-ranked kind.
        let mut points: heapless::Vec<u64, 384> = heapless::Vec::new();
        for r in &inputs {
            let _ = points.push(r.base);
            let _ = points.push(r.end);
        }
        points.sort_unstable();
        let mut map = MemMap::default();
        for w in points.windows(2) {
            let (a, b) = (w[0], w[1]);
            if a == b {
                continue;
            }
            let kind = inputs.iter().filter(|r| r.base <= a && b <= r.end).map(|r| r.kind).max_by_key(|k| rank(*k));
            let Some(kind) = kind else { continue };
            match map.regions.last_mut() {
                Some(last) if last.end == a && last.kind == kind => last.end = b,
                _ => map.regions.push(Region { base: a, end: b, kind }).map_err(|_| MapError::TooManyRegions)?,
            }
        }
        Ok(map)
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Total bytes of the given kind.
    pub fn total(&self, kind: MemKind) -> u64 {
        self.regions.iter().filter(|r| r.kind == kind).map(Region::size).sum()
    }

    /// The kind of the page holding `addr`, if the map covers it.
    pub fn kind_of(&self, addr: u64) -> Option<MemKind> {
        self.regions.iter().find(|r| r.base <= addr && addr < r.end).map(|r| r.kind)
    }

    /// Takes `size` bytes (rounded up to pages) from the lowest usable
    /// region that lies wholly below `limit`, marks them `Kernel` and
    /// returns the range.
    pub fn carve(&mut self, size: u64, limit: u64) -> Result<Region, MapError> {
        let size = size.next_multiple_of(PAGE);
        let i = self
            .regions
            .iter()
            .position(|r| r.kind == MemKind::Usable && r.base.saturating_add(size) <= r.end.min(limit))
            .ok_or(MapError::NoRoomForPool)?;
        let r = self.regions[i];
        let carved = Region { base: r.base, end: r.base + size, kind: MemKind::Kernel };
        let merge_left = i > 0 && self.regions[i - 1].kind == MemKind::Kernel && self.regions[i - 1].end == r.base;
        if merge_left {
            self.regions[i - 1].end = carved.end;
        } else {
            self.regions.insert(i, carved).map_err(|_| MapError::TooManyRegions)?;
        }
        let rest = if merge_left { i } else { i + 1 };
        if carved.end == r.end {
            self.regions.remove(rest);
        } else {
            self.regions[rest].base = carved.end;
        }
        Ok(carved)
    }

    /// The map in KIP form.
    pub fn to_kip(&self) -> impl Iterator<Item = MemRegion> + '_ {
        self.regions.iter().map(|r| MemRegion { base: r.base, size: r.size(), kind: r.kind as u32, _pad: 0 })
    }

    /// Checks the module-level invariants; used by tests and debug builds.
    pub fn check(&self) -> Result<(), &'static str> {
        for r in &self.regions {
            if r.base % PAGE != 0 || r.end % PAGE != 0 || r.base >= r.end {
                return Err("region not page aligned or empty");
            }
        }
        for w in self.regions.windows(2) {
            if w[0].end > w[1].base {
                return Err("regions overlap or are unsorted");
            }
            if w[0].end == w[1].base && w[0].kind == w[1].kind {
                return Err("adjacent regions of one kind not merged");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn qemu_firmware() -> Vec<(u64, u64, u32)> {
        vec![
            (0, 0x9fc00, 1),
            (0x9fc00, 0x400, 2),
            (0xf0000, 0x10000, 2),
            (0x100000, 0x7ee0000, 1),
            (0xfffc0000, 0x40000, 2),
        ]
    }

    #[test]
    fn kernel_and_modules_are_not_usable() {
        let taken = [
            Region { base: 0x100000, end: 0x1a3456, kind: MemKind::Kernel },
            Region { base: 0x1a4000, end: 0x1b0000, kind: MemKind::Module },
        ];
        let map = MemMap::build(qemu_firmware().into_iter(), &taken).unwrap();
        map.check().unwrap();
        assert_eq!(map.kind_of(0x100000), Some(MemKind::Kernel));
        assert_eq!(map.kind_of(0x1a3fff), Some(MemKind::Kernel));
        assert_eq!(map.kind_of(0x1a4000), Some(MemKind::Module));
        assert_eq!(map.kind_of(0x1b0000), Some(MemKind::Usable));
        assert_eq!(map.kind_of(0x5000), Some(MemKind::Reserved));
        assert_eq!(map.total(MemKind::Usable), 0x7fe0000 - 0x1b0000);
    }

    #[test]
    fn carve_takes_from_lowest_fitting_region() {
        let taken = [Region { base: 0x100000, end: 0x200000, kind: MemKind::Kernel }];
        let mut map = MemMap::build(qemu_firmware().into_iter(), &taken).unwrap();
        let before = map.total(MemKind::Usable);
        let pool = map.carve(0x40_0000, 1 << 30).unwrap();
        assert_eq!(pool, Region { base: 0x200000, end: 0x600000, kind: MemKind::Kernel });
        map.check().unwrap();
        assert_eq!(map.total(MemKind::Usable), before - 0x40_0000);
        assert_eq!(map.carve(1 << 40, u64::MAX), Err(MapError::NoRoomForPool));
    }

    proptest! {
        #[test]
        fn map_invariants_hold(
            fw in prop::collection::vec((0u64..1 << 32, 0u64..1 << 28, 1u32..4), 0..20),
            taken in prop::collection::vec((0u64..1 << 32, 0u64..1 << 24, any::<bool>()), 0..6),
        ) {
            let taken: Vec<Region> = taken.iter().map(|&(b, l, k)| Region {
                base: b, end: b + l, kind: if k { MemKind::Kernel } else { MemKind::Module } }).collect();
            let map = MemMap::build(fw.iter().copied(), &taken).unwrap();
            prop_assert!(map.check().is_ok());
            for t in &taken {
                let mut a = t.base & !(PAGE - 1);
                while a < t.end {
                    prop_assert_ne!(map.kind_of(a), Some(MemKind::Usable));
                    a += PAGE;
                }
            }
            for r in map.regions().iter().filter(|r| r.kind == MemKind::Usable) {
                // Usable only where the firmware said usable: walk the region
                // through the usable firmware entries that cover it.
                let mut pos = r.base;
                while pos < r.end {
                    let next = fw.iter().filter(|&&(b, l, t)| t == 1 && b <= pos && pos < b + l).map(|&(b, l, _)| b + l).max();
                    prop_assert!(next.is_some(), "usable page {:#x} not usable in firmware", pos);
                    pos = next.unwrap();
                }
            }
        }
    }
}
