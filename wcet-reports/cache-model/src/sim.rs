//! Pure-Rust cache simulator: set-associative, physically indexed levels
//! combined into a simple non-inclusive (NINE) hierarchy.
//!
//! * **Indexing**: a physical address `pa` maps to line `pa / line_size` and
//!   to set `line % sets` (a mask when `sets` is a power of two, which it is
//!   for every built-in profile). The whole line number is the tag.
//! * **Replacement**: true LRU or tree-PLRU, per level. On a fill the lowest
//!   numbered invalid way is used first; only a full set consults the policy.
//! * **Writes**: write-allocate; a store is looked up and filled exactly like
//!   a load. Write-backs of dirty lines are not modelled (they cost nothing).
//! * **Hierarchy**: non-inclusive, non-exclusive. An access probes L1, then
//!   the next level on a miss, and so on; every level that missed is filled
//!   on the way back. An eviction from an outer level does not invalidate
//!   inner levels (no back-invalidation), and inner evictions do not write
//!   into outer levels (no victim cache behaviour).
//!
//! Each line also remembers the *owner* job (the job window that last filled
//! or used it, see [`crate::model`]), so the accounting can tell which job's
//! lines were evicted by work outside any job window.

/// Most levels a hierarchy may have.
pub const MAX_LEVELS: usize = 4;

/// Owner value for a line that no job window filled or used.
pub const NO_OWNER: u32 = u32::MAX;

const INVALID: u64 = u64::MAX;

/// Replacement policy of one level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// True least-recently-used.
    Lru,
    /// Tree pseudo-LRU (needs a power-of-two number of ways).
    TreePlru,
}

impl Policy {
    /// Name used in arguments and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Lru => "lru",
            Policy::TreePlru => "plru",
        }
    }
}

/// Geometry, latency and policy of one cache level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelConfig {
    /// Short name, e.g. `"L1D"`.
    pub name: &'static str,
    /// Total capacity in bytes.
    pub size: u64,
    /// Associativity.
    pub ways: u32,
    /// Line size in bytes (a power of two).
    pub line: u64,
    /// Cycles charged for an access that hits in this level.
    pub hit_latency: u64,
    /// Replacement policy.
    pub policy: Policy,
}

impl LevelConfig {
    /// Number of sets (`size / (line * ways)`).
    pub fn sets(&self) -> u64 {
        self.size / (self.line * u64::from(self.ways))
    }

    /// Checks that the geometry is usable.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.name;
        if self.line == 0 || !self.line.is_power_of_two() {
            return Err(format!("{n}: line size {} is not a power of two", self.line));
        }
        if self.ways == 0 || self.ways > 64 {
            return Err(format!("{n}: ways must be 1..=64, got {}", self.ways));
        }
        if self.policy == Policy::TreePlru && !self.ways.is_power_of_two() {
            return Err(format!("{n}: tree-PLRU needs a power-of-two number of ways, got {}", self.ways));
        }
        let way_bytes = self.line * u64::from(self.ways);
        if self.size == 0 || !self.size.is_multiple_of(way_bytes) {
            return Err(format!("{n}: size {} is not a multiple of line*ways = {way_bytes}", self.size));
        }
        if self.sets() > (1 << 26) {
            return Err(format!("{n}: too many sets ({})", self.sets()));
        }
        Ok(())
    }
}

/// What happened at one level for one lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fill {
    /// Whether a valid line was evicted to make room.
    pub evicted: bool,
    /// Owner of the evicted line ([`NO_OWNER`] if none or not evicted).
    pub evicted_owner: u32,
    /// Line number (physical address / line size) of the evicted line.
    pub evicted_line: u64,
}

/// One way of one set: the line number held and its LRU stamp.
#[derive(Clone, Copy, Debug)]
struct Way {
    /// Line number, [`INVALID`] when empty.
    tag: u64,
    /// LRU: tick of the last use, 0 = never used.
    stamp: u64,
}

const EMPTY: Way = Way { tag: INVALID, stamp: 0 };

/// One set-associative, physically indexed cache level.
///
/// Storage: `sets * ways` `Way`s (tag and LRU stamp together, a set is
/// contiguous), `sets * ways` owners (touched only on fills, evictions and
/// hits inside a job window), and for tree-PLRU one bit vector per set.
/// LRU stamps come from a 64-bit per-level tick, which cannot wrap.
#[derive(Clone, Debug)]
pub struct Level {
    cfg: LevelConfig,
    sets: u64,
    set_mask: Option<u64>,
    line_shift: u32,
    ways: usize,
    slots: Vec<Way>,
    owners: Vec<u32>,
    /// PLRU: one bit vector per set (bit `i` is tree node `i + 1`).
    plru: Vec<u64>,
    tick: u64,
}

impl Level {
    /// Builds an empty (all invalid) level. Panics on an invalid config;
    /// call [`LevelConfig::validate`] first for a friendly error.
    pub fn new(cfg: LevelConfig) -> Level {
        if let Err(e) = cfg.validate() {
            panic!("invalid cache level: {e}");
        }
        let sets = cfg.sets();
        let ways = cfg.ways as usize;
        let plru = match cfg.policy {
            Policy::Lru => Vec::new(),
            Policy::TreePlru => vec![0; sets as usize],
        };
        Level {
            sets,
            set_mask: sets.is_power_of_two().then(|| sets - 1),
            line_shift: cfg.line.trailing_zeros(),
            ways,
            slots: vec![EMPTY; sets as usize * ways],
            owners: vec![NO_OWNER; sets as usize * ways],
            plru,
            tick: 0,
            cfg,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LevelConfig {
        &self.cfg
    }

    /// Line number of a physical address.
    #[inline]
    pub fn line_of(&self, paddr: u64) -> u64 {
        paddr >> self.line_shift
    }

    /// Set index of a physical address.
    #[inline]
    pub fn set_index(&self, paddr: u64) -> u64 {
        let line = self.line_of(paddr);
        match self.set_mask {
            Some(m) => line & m,
            None => line % self.sets,
        }
    }

    #[inline]
    fn base_of(&self, paddr: u64) -> usize {
        self.set_index(paddr) as usize * self.ways
    }

    /// Whether the line holding `paddr` is present (no state change).
    pub fn contains(&self, paddr: u64) -> bool {
        let line = self.line_of(paddr);
        let b = self.base_of(paddr);
        self.slots[b..b + self.ways].iter().any(|w| w.tag == line)
    }

    /// Line numbers present in the set of `paddr`, by way (None = invalid).
    pub fn set_contents(&self, paddr: u64) -> Vec<Option<u64>> {
        let b = self.base_of(paddr);
        self.slots[b..b + self.ways].iter().map(|w| (w.tag != INVALID).then_some(w.tag)).collect()
    }

    /// Looks the line of `paddr` up. On a hit, updates replacement state and
    /// returns `Some(way)`; on a miss changes nothing and returns `None`.
    /// `owner` (if not [`NO_OWNER`]) becomes the line's owner on a hit.
    #[inline]
    pub fn probe(&mut self, paddr: u64, owner: u32) -> Option<usize> {
        let line = self.line_of(paddr);
        let b = self.base_of(paddr);
        let way = self.slots[b..b + self.ways].iter().position(|w| w.tag == line)?;
        self.touch(b, way);
        if owner != NO_OWNER {
            self.owners[b + way] = owner;
        }
        Some(way)
    }

    /// Inserts the line of `paddr` (which must be absent), evicting a victim
    /// if the set is full. The line's owner becomes `owner` (also when it is
    /// [`NO_OWNER`]: a line filled outside any job window belongs to nobody).
    #[inline]
    pub fn fill(&mut self, paddr: u64, owner: u32) -> Fill {
        let line = self.line_of(paddr);
        let b = self.base_of(paddr);
        let set = &self.slots[b..b + self.ways];
        debug_assert!(!set.iter().any(|w| w.tag == line), "fill of a present line");
        let way = match set.iter().position(|w| w.tag == INVALID) {
            Some(w) => w,
            None => self.victim(b),
        };
        let old = self.slots[b + way].tag;
        let fill = if old == INVALID {
            Fill { evicted: false, evicted_owner: NO_OWNER, evicted_line: 0 }
        } else {
            Fill { evicted: true, evicted_owner: self.owners[b + way], evicted_line: old }
        };
        self.slots[b + way].tag = line;
        self.owners[b + way] = owner;
        self.touch(b, way);
        fill
    }

    /// Probe, and fill on a miss. Returns `(hit, fill)`.
    #[inline]
    pub fn access(&mut self, paddr: u64, owner: u32) -> (bool, Option<Fill>) {
        match self.probe(paddr, owner) {
            Some(_) => (true, None),
            None => (false, Some(self.fill(paddr, owner))),
        }
    }

    #[inline]
    fn touch(&mut self, base: usize, way: usize) {
        match self.cfg.policy {
            Policy::Lru => {
                self.tick += 1;
                self.slots[base + way].stamp = self.tick;
            }
            Policy::TreePlru => {
                // Walk from the root (node 1) to the leaf of `way`; at each
                // node point the bit *away* from the path just taken
                // (bit 0 = victim on the left, 1 = victim on the right).
                let set = base / self.ways;
                let levels = self.ways.trailing_zeros();
                let mut bits = self.plru[set];
                let mut node = 1usize;
                for l in (0..levels).rev() {
                    let right = (way >> l) & 1 == 1;
                    if right {
                        bits &= !(1u64 << (node - 1));
                    } else {
                        bits |= 1u64 << (node - 1);
                    }
                    node = 2 * node + usize::from(right);
                }
                self.plru[set] = bits;
            }
        }
    }

    #[inline]
    fn victim(&self, base: usize) -> usize {
        match self.cfg.policy {
            Policy::Lru => {
                let set = &self.slots[base..base + self.ways];
                let mut best = 0;
                for (w, s) in set.iter().enumerate() {
                    if s.stamp < set[best].stamp {
                        best = w;
                    }
                }
                best
            }
            Policy::TreePlru => {
                let levels = self.ways.trailing_zeros();
                let bits = self.plru[base / self.ways];
                let mut node = 1usize;
                for _ in 0..levels {
                    let right = (bits >> (node - 1)) & 1 == 1;
                    node = 2 * node + usize::from(right);
                }
                node - self.ways
            }
        }
    }
}

/// Result of one access to the hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Index of the level that hit, or `None` if it went to memory.
    pub hit_level: Option<usize>,
    /// Number of levels probed (`hit_level + 1`, or all levels).
    pub probed: usize,
    /// Per level: the owner of a line evicted there by this access
    /// ([`NO_OWNER`] when nothing owned was evicted).
    pub evicted_owner: [u32; MAX_LEVELS],
    /// Cycles charged for the access.
    pub latency: u64,
}

/// A hierarchy of levels, L1 first, with a memory latency behind the last.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    levels: Vec<Level>,
    mem_latency: u64,
}

impl Hierarchy {
    /// Builds an empty hierarchy.
    pub fn new(levels: Vec<LevelConfig>, mem_latency: u64) -> Hierarchy {
        assert!(!levels.is_empty() && levels.len() <= MAX_LEVELS);
        Hierarchy { levels: levels.into_iter().map(Level::new).collect(), mem_latency }
    }

    /// The levels, L1 first.
    pub fn levels(&self) -> &[Level] {
        &self.levels
    }

    /// Memory latency in cycles.
    pub fn mem_latency(&self) -> u64 {
        self.mem_latency
    }

    /// One access (load or store: write-allocate makes them the same) to the
    /// line of `paddr` on behalf of `owner` ([`NO_OWNER`] outside any job).
    #[inline]
    pub fn access(&mut self, paddr: u64, owner: u32) -> Outcome {
        let mut out = Outcome {
            hit_level: None,
            probed: self.levels.len(),
            evicted_owner: [NO_OWNER; MAX_LEVELS],
            latency: self.mem_latency,
        };
        // Levels are independent (non-inclusive), so each missing level can
        // be filled as soon as it misses.
        for (i, l) in self.levels.iter_mut().enumerate() {
            match l.access(paddr, owner) {
                (true, _) => {
                    out.hit_level = Some(i);
                    out.probed = i + 1;
                    out.latency = l.cfg.hit_latency;
                    break;
                }
                (false, Some(f)) if f.evicted => out.evicted_owner[i] = f.evicted_owner,
                (false, _) => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lvl(size: u64, ways: u32, policy: Policy) -> Level {
        Level::new(LevelConfig { name: "T", size, ways, line: 64, hit_latency: 1, policy })
    }

    /// Address of line `k` of set `s` in a level with `sets` sets.
    fn addr(sets: u64, s: u64, k: u64) -> u64 {
        (k * sets + s) * 64
    }

    #[test]
    fn lru_evicts_least_recently_used_in_order() {
        // 4 sets x 2 ways.
        let mut c = lvl(512, 2, Policy::Lru);
        let (a, b, d) = (addr(4, 1, 0), addr(4, 1, 1), addr(4, 1, 2));
        assert_eq!(c.access(a, 0), (false, Some(Fill { evicted: false, evicted_owner: NO_OWNER, evicted_line: 0 })));
        assert!(!c.access(b, 0).0);
        assert!(c.access(a, 0).0); // a is now MRU, b LRU
        let (hit, f) = c.access(d, 0);
        assert!(!hit);
        assert_eq!(f.unwrap().evicted_line, b / 64);
        assert!(c.contains(a) && c.contains(d) && !c.contains(b));
        // Other sets untouched.
        assert!(!c.contains(addr(4, 0, 0)));
    }

    #[test]
    fn lru_eviction_order_four_way() {
        let mut c = lvl(4 * 64, 4, Policy::Lru); // 1 set x 4 ways
        for k in 0..4 {
            c.access(k * 64, 0);
        }
        c.access(0, 0); // order (LRU..MRU): 1 2 3 0
        let mut evicted = Vec::new();
        for k in 4..8 {
            evicted.push(c.access(k * 64, 0).1.unwrap().evicted_line);
        }
        assert_eq!(evicted, vec![1, 2, 3, 0]);
    }

    #[test]
    fn lru_thrashes_with_one_line_more_than_ways() {
        // 4 ways, 5 lines of one set accessed cyclically: every access misses.
        let mut c = lvl(4 * 64 * 8, 4, Policy::Lru); // 8 sets
        for round in 0..4 {
            for k in 0..5 {
                assert!(!c.access(addr(8, 3, k), 0).0, "round {round} line {k}");
            }
        }
        // With 4 lines the second round hits throughout.
        let mut c = lvl(4 * 64 * 8, 4, Policy::Lru);
        for round in 0..3 {
            for k in 0..4 {
                assert_eq!(c.access(addr(8, 3, k), 0).0, round > 0);
            }
        }
    }

    #[test]
    fn plru_four_way_hand_computed() {
        // Tree for 4 ways: node1 (root) chooses {0,1} vs {2,3}, node2 chooses
        // 0 vs 1, node3 chooses 2 vs 3. Bit = 1 means "victim on the right".
        let mut c = lvl(4 * 64, 4, Policy::TreePlru);
        for k in 0..4 {
            c.access(k * 64, 0); // fills ways 0,1,2,3 (invalid first)
        }
        // After touching 0,1,2,3 in order: root points left (last touch was
        // way 3, right subtree), node2 points to 0 (last was 1), node3 to 2.
        // Victim: way 0.
        assert_eq!(c.access(4 * 64, 0).1.unwrap().evicted_line, 0);
        // Way 0 now holds line 4: root points right, node3 points at way 2.
        assert_eq!(c.access(5 * 64, 0).1.unwrap().evicted_line, 2);
        // Way 2 holds line 5: root points left, node2 points at way 1.
        assert_eq!(c.access(6 * 64, 0).1.unwrap().evicted_line, 1);
        // Way 1 holds 6: root right, node3 points at way 3.
        assert_eq!(c.access(7 * 64, 0).1.unwrap().evicted_line, 3);
        // A hit on way 0 (line 4): root points right, node2 at way 1.
        assert!(c.access(4 * 64, 0).0);
        // Victim: root right -> node3 -> last touched there was way 3 (line 7),
        // so node3 points at way 2 (line 5).
        assert_eq!(c.access(8 * 64, 0).1.unwrap().evicted_line, 5);
        assert_eq!(c.set_contents(0), vec![Some(4), Some(6), Some(8), Some(7)]);
    }

    #[test]
    fn plru_differs_from_lru() {
        // Sequence where tree-PLRU evicts a line LRU would keep.
        let mut p = lvl(4 * 64, 4, Policy::TreePlru);
        let mut l = lvl(4 * 64, 4, Policy::Lru);
        for k in [0, 1, 2, 3, 0, 2] {
            p.access(k * 64, 0);
            l.access(k * 64, 0);
        }
        // LRU order: 1 3 0 2 -> victim line 1. PLRU: last touch 2 (right),
        // root -> left, node2: last touch in left was 0 -> victim way 1 = line 1.
        assert_eq!(l.access(9 * 64, 0).1.unwrap().evicted_line, 1);
        assert_eq!(p.access(9 * 64, 0).1.unwrap().evicted_line, 1);
        // Now LRU order: 3 0 2 9 -> victim 3. PLRU: last touch way 1 (left),
        // root -> right, node3: last touch there was way 2 -> victim way 3 = line 3.
        assert_eq!(l.access(10 * 64, 0).1.unwrap().evicted_line, 3);
        assert_eq!(p.access(10 * 64, 0).1.unwrap().evicted_line, 3);
        // LRU order 0 2 9 10 -> victim 0. PLRU: last touch way 3 (right),
        // root -> left, node2: last touch was way 1 (line 9) -> victim way 0 = line 0.
        // Touch line 0 first so the two policies diverge:
        l.access(0, 0);
        p.access(0, 0);
        // LRU order 2 9 10 0 -> victim 2. PLRU: last touch way 0 (left) ->
        // root right, node3: last touch way 3 (line 10) -> victim way 2 = line 2.
        assert_eq!(l.access(11 * 64, 0).1.unwrap().evicted_line, 2);
        assert_eq!(p.access(11 * 64, 0).1.unwrap().evicted_line, 2);
        // LRU order 9 10 0 11 -> victim 9 (way 1). PLRU: last touch way 2
        // (right) -> root left, node2: last touch way 0 -> victim way 1 = 9.
        // Touch 9 then: LRU 10 0 11 9 -> victim 10; PLRU: last touch way 1
        // (left) -> root right, node3: last touch way 2 (11) -> victim way 3 = 10.
        l.access(9 * 64, 0);
        p.access(9 * 64, 0);
        // Touch 11 (way 2): LRU 10 0 9 11 -> 10. PLRU root left, node2: last
        // touch way 1 -> victim way 0 = line 0, which LRU keeps.
        l.access(11 * 64, 0);
        p.access(11 * 64, 0);
        assert_eq!(l.access(12 * 64, 0).1.unwrap().evicted_line, 10);
        assert_eq!(p.access(12 * 64, 0).1.unwrap().evicted_line, 0);
    }

    #[test]
    fn write_allocate_hierarchy_fills_every_missing_level() {
        let l1 = LevelConfig { name: "L1", size: 2 * 64, ways: 1, line: 64, hit_latency: 2, policy: Policy::Lru };
        let l2 = LevelConfig { name: "L2", size: 8 * 64, ways: 2, line: 64, hit_latency: 10, policy: Policy::Lru };
        let mut h = Hierarchy::new(vec![l1, l2], 100);
        // A store miss goes to memory and allocates in both levels.
        let o = h.access(0x1000, 7);
        assert_eq!((o.hit_level, o.probed, o.latency), (None, 2, 100));
        assert!(h.levels()[0].contains(0x1000) && h.levels()[1].contains(0x1000));
        // Same line, other byte: L1 hit.
        let o = h.access(0x1030, 7);
        assert_eq!((o.hit_level, o.latency), (Some(0), 2));
        // Conflicting line in L1 (2 sets, direct mapped: 0x1080 -> set 0 too).
        let o = h.access(0x1080, NO_OWNER);
        assert_eq!(o.hit_level, None);
        assert_eq!(o.evicted_owner[0], 7);
        assert_eq!(o.evicted_owner[1], NO_OWNER); // L2 had a free way
                                                  // 0x1000 now only in L2 (non-inclusive: no back-invalidation needed).
        let o = h.access(0x1000, 7);
        assert_eq!((o.hit_level, o.latency), (Some(1), 10));
    }

    #[test]
    fn non_inclusive_no_back_invalidation() {
        let l1 = LevelConfig { name: "L1", size: 4 * 64, ways: 4, line: 64, hit_latency: 1, policy: Policy::Lru };
        let l2 = LevelConfig { name: "L2", size: 2 * 64, ways: 2, line: 64, hit_latency: 5, policy: Policy::Lru };
        let mut h = Hierarchy::new(vec![l1, l2], 50);
        for k in 0..3 {
            h.access(k * 64, NO_OWNER);
        }
        // L2 (1 set x 2 ways) lost line 0, L1 still has it.
        assert!(!h.levels()[1].contains(0));
        assert!(h.levels()[0].contains(0));
        assert_eq!(h.access(0, NO_OWNER).hit_level, Some(0));
    }

    #[test]
    fn non_power_of_two_sets_use_modulo() {
        let c = lvl(3 * 2 * 64, 2, Policy::Lru); // 3 sets
        assert_eq!(c.config().sets(), 3);
        assert_eq!(c.set_index(5 * 64), 2);
        assert_eq!(c.set_index(6 * 64 + 63), 0);
    }

    #[test]
    fn validate_rejects_bad_geometry() {
        let mut cfg = LevelConfig { name: "X", size: 1000, ways: 4, line: 64, hit_latency: 1, policy: Policy::Lru };
        assert!(cfg.validate().is_err());
        cfg.size = 4096;
        assert!(cfg.validate().is_ok());
        cfg.ways = 3;
        cfg.size = 3 * 64 * 4;
        assert!(cfg.validate().is_ok());
        cfg.policy = Policy::TreePlru;
        assert!(cfg.validate().is_err());
        cfg.line = 48;
        assert!(cfg.validate().is_err());
    }
}
