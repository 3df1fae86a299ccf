//! Cache partitions: sigma0 reads the system description (the `system`
//! module, `sysdesc`), validates its partitions against the cache geometry
//! and its memory, and hands a pager bound to a partition only frames of
//! that partition's colors.
//!
//! The geometry is the description's `llc` line if it has one, else the
//! last cache level the kernel published in the KIP. Without either (or
//! without a description) there are no partitions and no pager can be
//! bound. Partitions must not share colours unless the description's
//! scenario shares them on purpose (`shared_colors`); then each is checked
//! on its own.

use abi::kip::{Kip, MemKind};
use abi::ThreadId;
use cache_color::geometry::{CacheKind, CacheLevel};
use cache_color::partition::{self, MemRegion, Partition, PartitionSpec};
use cache_color::ColorMap;
use user_rt::println;

pub const MAX: usize = sysdesc::MAX_PARTITIONS;
const MAX_BINDINGS: usize = 16;

pub struct Partitions {
    pub map: ColorMap,
    pub parts: [Option<Partition<'static>>; MAX],
    pub count: usize,
    bindings: [(u64, u8); MAX_BINDINGS],
    bound: usize,
    /// Round-robin cursor over each partition's colors.
    pub cursor: [cache_color::RoundRobin; MAX],
    /// Frames handed out per partition.
    used: [u64; MAX],
}

fn module_bytes(kip: &Kip, name: &str) -> Option<&'static [u8]> {
    let m = kip.modules().iter().find(|m| m.name() == name)?;
    // SAFETY: sigma0 sees boot modules read-only at their physical address
    // (the kernel maps them on first touch); the module never changes.
    Some(unsafe { core::slice::from_raw_parts(m.phys_base as *const u8, m.size as usize) })
}

fn kip_llc(kip: &Kip) -> Option<CacheLevel> {
    let c = kip.caches.iter().take(kip.cache_count as usize).rfind(|c| c.size > 0 && c.kind != 2)?;
    Some(CacheLevel::new(c.level, CacheKind::Unified, c.size, c.ways as u32, c.line_size))
}

/// Reads and checks the boot config's partitions. Errors are printed;
/// sigma0 then runs without partitions.
pub fn init(kip: &'static Kip) -> Option<Partitions> {
    let Some(bytes) = module_bytes(kip, "system") else {
        println!("sigma0: no `system` module: no cache partitions");
        return None;
    };
    let Ok(text) = core::str::from_utf8(bytes) else {
        println!("sigma0: the system description is not UTF-8: no cache partitions");
        return None;
    };
    let sys = match sysdesc::parse(text) {
        Ok(c) => c,
        Err(e) => {
            println!("sigma0: system description: {e}; no cache partitions");
            return None;
        }
    };
    let Some(llc) = sys.llc().or_else(|| kip_llc(kip)) else {
        println!("sigma0: no cache geometry (config or KIP): no cache partitions");
        return None;
    };
    let map = match ColorMap::new(&llc, 4096) {
        Ok(m) => m,
        Err(e) => {
            println!("sigma0: cache geometry: {e}; no cache partitions");
            return None;
        }
    };
    let mut mem = [MemRegion { start: 0, len: 0 }; 64];
    let mut n = 0;
    for r in kip.mem_regions().iter().filter(|r| r.kind == MemKind::Usable as u32).take(64) {
        mem[n] = MemRegion { start: r.base, len: r.size };
        n += 1;
    }
    // The specs borrow the module text, which lives as long as sigma0.
    let specs: &[PartitionSpec<'static>] = sys.partitions();
    let empty = Partition { name: "", colors: cache_color::ColorSet::EMPTY, memory: 0 };
    let mut out = [empty; MAX];
    let checked = if sys.shared_colors() {
        specs.iter().enumerate().try_for_each(|(i, s)| {
            partition::validate_into(core::slice::from_ref(s), &map, &mem[..n], &mut out[i..]).map(|_| ())
        })
    } else {
        partition::validate_into(specs, &map, &mem[..n], &mut out).map(|_| ())
    };
    if let Err(e) = checked {
        println!("sigma0: system description: {e}; no cache partitions");
        return None;
    }
    let valid = specs.len();
    let mut parts: [Option<Partition<'static>>; MAX] = [None; MAX];
    for (slot, p) in parts.iter_mut().zip(out.iter().take(valid)) {
        *slot = Some(*p);
        println!(
            "sigma0: partition {} owns colors {} of {} ({} KiB needed)",
            p.name,
            p.colors,
            map.colors(),
            p.memory >> 10
        );
    }
    Some(Partitions {
        map,
        parts,
        count: valid,
        bindings: [(0, 0); MAX_BINDINGS],
        bound: 0,
        cursor: [cache_color::RoundRobin::new(); MAX],
        used: [0; MAX],
    })
}

impl Partitions {
    /// Binds pager `t` to partition `idx`.
    pub fn bind(&mut self, t: ThreadId, idx: usize) -> bool {
        if idx >= self.count || self.bound == MAX_BINDINGS || self.partition_of(t).is_some() {
            return false;
        }
        self.bindings[self.bound] = (t.0, idx as u8);
        self.bound += 1;
        true
    }

    /// The partition pager `t` is bound to.
    pub fn partition_of(&self, t: ThreadId) -> Option<usize> {
        self.bindings[..self.bound].iter().find(|(id, _)| *id == t.0).map(|&(_, p)| p as usize)
    }

    pub fn colors(&self, idx: usize) -> &cache_color::ColorSet {
        &self.parts[idx].as_ref().expect("partition index checked").colors
    }

    pub fn record(&mut self, idx: usize) {
        self.used[idx] += 1;
    }

    /// Frames handed out to partition `idx`.
    pub fn used(&self, idx: usize) -> u64 {
        self.used[idx]
    }
}
