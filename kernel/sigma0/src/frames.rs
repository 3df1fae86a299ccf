//! The frames sigma0 gives away, kept in `cache-color`'s colored frame
//! pool: one free list per page color, O(1) allocation of "any frame of
//! color set S" with a round-robin cursor per partition, each frame handed
//! out at most once.
//!
//! The pool's per-frame bookkeeping lives in sigma0's own RAM (the first
//! frames of usable memory big enough for it), reached through sigma0's
//! idempotent mapping, so the pool scales with the machine and not with a
//! static array.

use abi::kip::{Kip, MemKind};
use cache_color::geometry::{CacheKind, CacheLevel};
use cache_color::{ColorList, ColorMap, ColorSet, FrameLink, FramePool, RoundRobin, MAX_COLORS};
use user_rt::println;

pub struct Frames {
    pub pool: FramePool<'static>,
    all: ColorSet,
    any: RoundRobin,
}

static mut FRAMES: Option<Frames> = None;
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

pub fn get() -> &'static mut Frames {
    let p = &raw mut FRAMES;
    // SAFETY: set by `init` before any other sigma0 thread runs; afterwards
    // only one sigma0 thread at a time asks for frames (one CPU, and the
    // threads that do are not preempted by each other in these calls).
    unsafe { (*p).as_mut().expect("frames initialised") }
}

/// A color map of one color, for when no partitions are configured.
fn uncolored() -> ColorMap {
    ColorMap::new(&CacheLevel::new(3, CacheKind::Unified, 16 * 4096, 16, 64), 4096).expect("one-color map")
}

/// Puts every usable frame into the pool, colored by `map` (or uncolored).
pub fn init(kip: &Kip, map: Option<ColorMap>) {
    let map = map.unwrap_or_else(uncolored);
    let usable = || kip.mem_regions().iter().filter(|r| r.kind == MemKind::Usable as u32);
    let lo = usable().map(|r| r.base).min().unwrap_or(0);
    let hi = usable().map(|r| r.base + r.size).max().unwrap_or(0);
    let frames = ((hi - lo) / 4096) as usize;
    let bytes = (frames * core::mem::size_of::<FrameLink>()) as u64;
    let need = bytes.next_multiple_of(4096);
    let img = image();
    // Storage for the links: the first stretch of usable RAM that holds it.
    let Some(store) =
        usable().find(|r| r.size >= need && !(r.base < img.end && img.start < r.base + need)).map(|r| r.base)
    else {
        println!("sigma0: no RAM for the frame table ({need} bytes): no frames to give");
        return;
    };
    // SAFETY: `store..store+need` is usable RAM that sigma0 owns and maps at
    // the same address on first touch; nothing else uses it.
    let links = unsafe { core::slice::from_raw_parts_mut(store as *mut FrameLink, frames) };
    let lists_p = &raw mut LISTS;
    // SAFETY: the color lists are used by this pool only.
    let lists: &'static mut [ColorList; MAX_COLORS] = unsafe { &mut *lists_p };
    let lists = &mut lists[..map.colors() as usize];
    let mut pool = match FramePool::new(map, lo, links, lists) {
        Ok(p) => p,
        Err(e) => {
            println!("sigma0: frame pool: {e}");
            return;
        }
    };
    for r in usable() {
        let _ = pool.add_range(r.base, r.size);
    }
    for f in (store..store + need).chain(img.clone()).step_by(4096) {
        let _ = pool.take(f);
    }
    let all = ColorSet::all(pool.map().colors() as usize);
    println!(
        "sigma0: {} frames to give in {} color(s); frame table {} KiB at {store:#x}",
        pool.free_total(),
        pool.map().colors(),
        need >> 10
    );
    let p = &raw mut FRAMES;
    // SAFETY: boot, before any other sigma0 thread runs.
    unsafe { *p = Some(Frames { pool, all, any: RoundRobin::new() }) };
}

impl Frames {
    /// Takes frame `f` if it is free.
    pub fn take(&mut self, f: u64) -> bool {
        self.pool.take(f).is_ok()
    }

    pub fn is_free(&self, f: u64) -> bool {
        self.pool.is_free(f)
    }

    /// Any free frame of `colors` (round robin with `cursor`), or of any
    /// color.
    pub fn alloc(&mut self, colors: Option<(&ColorSet, &mut RoundRobin)>) -> Option<u64> {
        match colors {
            Some((set, cursor)) => self.pool.alloc_in(set, cursor).ok(),
            None => self.pool.alloc_in(&self.all, &mut self.any).ok(),
        }
    }
}
