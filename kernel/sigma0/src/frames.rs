//! The frames sigma0 gives away, kept in `cache-color`'s colored frame
//! pool: one free list per page color, O(1) allocation of "any frame of
//! color set S" with a round-robin cursor per partition, each frame handed
//! out at most once, and an ownership table that says to whom.
//!
//! The pool's per-frame bookkeeping (free-list links and owners) lives in
//! sigma0's own RAM (the first stretch of usable memory big enough for it),
//! reached through sigma0's idempotent mapping, so it scales with the
//! machine and not with a static array.
//!
//! Invariants: a frame is free in the pool exactly when its owner entry is
//! [`NOBODY`]; a frame sigma0 keeps for itself (its image, the tables) is
//! owned by [`SIGMA0`]; every other frame is owned by the one thread id it
//! was handed to, for good (frames are never taken back).

use abi::kip::{Kip, MemKind};
use cache_color::geometry::{CacheKind, CacheLevel};
use cache_color::{ColorList, ColorMap, ColorSet, FrameLink, FramePool, RoundRobin, MAX_COLORS};
use user_rt::println;

/// Owner entry of a free frame.
pub const NOBODY: u64 = 0;
/// Owner entry of a frame sigma0 keeps.
pub const SIGMA0: u64 = u64::MAX;

pub struct Frames {
    pub pool: FramePool<'static>,
    /// Owner (thread id) of each frame from `base`, one word per frame.
    owners: &'static mut [u64],
    base: u64,
    all: ColorSet,
    any: RoundRobin,
}

static mut LISTS: [ColorList; MAX_COLORS] = [ColorList::EMPTY; MAX_COLORS];

extern "C" {
    static __ehdr_start: u8;
    static _end: u8;
}

/// sigma0's own image: the physical frames at these addresses are shadowed
/// in its idempotent space, so it never hands them out.
fn image() -> core::ops::Range<u64> {
    (&raw const __ehdr_start) as u64..((&raw const _end) as u64).next_multiple_of(4096)
}

/// A color map of one color, for when no partitions are configured.
fn uncolored() -> ColorMap {
    ColorMap::new(&CacheLevel::new(3, CacheKind::Unified, 16 * 4096, 16, 64), 4096).expect("one-color map")
}

/// Puts every usable frame into the pool, colored by `map` (or uncolored).
/// Called once (it takes the static colour lists).
pub fn init(kip: &Kip, map: Option<ColorMap>) -> Option<Frames> {
    let map = map.unwrap_or_else(uncolored);
    let usable = || kip.mem_regions().iter().filter(|r| r.kind == MemKind::Usable as u32);
    let lo = usable().map(|r| r.base).min().unwrap_or(0);
    let hi = usable().map(|r| r.base + r.size).max().unwrap_or(0);
    let frames = ((hi - lo) / 4096) as usize;
    let links_bytes = (frames * core::mem::size_of::<FrameLink>()) as u64;
    let bytes = links_bytes.next_multiple_of(8) + frames as u64 * 8;
    let need = bytes.next_multiple_of(4096);
    let img = image();
    // Storage for the links: the first stretch of usable RAM that holds it.
    let Some(store) =
        usable().find(|r| r.size >= need && !(r.base < img.end && img.start < r.base + need)).map(|r| r.base)
    else {
        println!("sigma0: no RAM for the frame table ({need} bytes): no frames to give");
        return None;
    };
    // SAFETY: `store..store+need` is usable RAM that sigma0 owns and maps at
    // the same address on first touch; nothing else uses it. The links come
    // first, the owner words after them (8-byte aligned).
    let (links, owners) = unsafe {
        (
            core::slice::from_raw_parts_mut(store as *mut FrameLink, frames),
            core::slice::from_raw_parts_mut((store + links_bytes.next_multiple_of(8)) as *mut u64, frames),
        )
    };
    owners.fill(NOBODY);
    let lists_p = &raw mut LISTS;
    // SAFETY: the color lists are used by this pool only (`init` runs once).
    let lists: &'static mut [ColorList; MAX_COLORS] = unsafe { &mut *lists_p };
    let lists = &mut lists[..map.colors() as usize];
    let mut pool = match FramePool::new(map, lo, links, lists) {
        Ok(p) => p,
        Err(e) => {
            println!("sigma0: frame pool: {e}");
            return None;
        }
    };
    for r in usable() {
        let _ = pool.add_range(r.base, r.size);
    }
    for f in (store..store + need).chain(img.clone()).step_by(4096) {
        if pool.take(f).is_ok() {
            owners[((f - lo) / 4096) as usize] = SIGMA0;
        }
    }
    let all = ColorSet::all(pool.map().colors() as usize);
    println!(
        "sigma0: {} frames to give in {} color(s); frame table {} KiB at {store:#x}",
        pool.free_total(),
        pool.map().colors(),
        need >> 10
    );
    Some(Frames { pool, owners, base: lo, all, any: RoundRobin::new() })
}

impl Frames {
    fn slot(&self, f: u64) -> Option<usize> {
        let i = (f.checked_sub(self.base)? / 4096) as usize;
        (i < self.owners.len()).then_some(i)
    }

    /// Who owns frame `f` (`None`: not a frame sigma0 manages).
    pub fn owner(&self, f: u64) -> Option<u64> {
        self.slot(f).filter(|_| self.pool.owns(f)).map(|i| self.owners[i])
    }

    /// Takes free frame `f` for `owner`.
    pub fn take(&mut self, f: u64, owner: u64) -> bool {
        let Some(i) = self.slot(f) else { return false };
        if self.pool.take(f).is_err() {
            return false;
        }
        self.owners[i] = owner;
        true
    }

    /// Any free frame of `colors` (round robin with `cursor`), or of any
    /// color, for `owner`.
    pub fn alloc(&mut self, colors: Option<(&ColorSet, &mut RoundRobin)>, owner: u64) -> Option<u64> {
        let f = match colors {
            Some((set, cursor)) => self.pool.alloc_in(set, cursor).ok(),
            None => self.pool.alloc_in(&self.all, &mut self.any).ok(),
        }?;
        let i = self.slot(f)?;
        self.owners[i] = owner;
        Some(f)
    }

    pub fn color_of(&self, f: u64) -> u32 {
        self.pool.map().color_of(f)
    }
}
