//! Cache geometry: what each cache level looks like, from CPUID or a config.
//!
//! A [`CacheGeometry`] is a short list of [`CacheLevel`]s. It comes from
//! CPUID ([`CacheGeometry::from_cpuid`], [`CacheGeometry::detect`]), from one
//! of the known profiles ([`SKYLAKE_CLIENT`], [`ZEN4`], [`EMBEDDED_1M_16W`]),
//! or from a config through [`CacheGeometry::new`] and
//! [`CacheGeometry::with_override`] (for hardware whose CPUID lies, and for the
//! cache model of a different target machine).
//!
//! Detection reads, in this order:
//! 1. the deterministic cache parameters: Intel leaf 4, or on AMD leaf
//!    `0x8000_001D` when the CPU sets TopologyExtensions;
//! 2. otherwise the legacy AMD leaves `0x8000_0005` (L1) and `0x8000_0006`
//!    (L2, L3). A level whose associativity the legacy leaf does not state
//!    (encoding 9, "see 0x8000_001D") is left out.
//!
//! It takes a [`raw_cpuid::CpuId`] with any reader, so tests (and a config
//! carrying a CPUID dump) can feed recorded leaves through
//! [`RecordedCpuid`].
//!
//! The page colors of a level are `size / (ways * page size)` (at least 1):
//! the number of page-sized slices of one cache way. This assumes the set
//! index is taken from the address bits directly; where CPUID reports
//! complex indexing (Intel's sliced LLC) the real number of colors can be
//! smaller, and a config override is the remedy.

use core::fmt;

use raw_cpuid::{Associativity, CacheType, CpuId, CpuIdReader, CpuIdResult};

/// The base page size (4 KiB).
pub const PAGE_SIZE: u64 = 4096;

/// The most cache levels (counting split L1 caches twice) a geometry holds.
pub const MAX_LEVELS: usize = 8;

/// What a cache holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheKind {
    /// Data only.
    Data,
    /// Instructions only.
    Instruction,
    /// Data and instructions.
    Unified,
}

impl fmt::Display for CacheKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CacheKind::Data => "data",
            CacheKind::Instruction => "instruction",
            CacheKind::Unified => "unified",
        })
    }
}

/// One cache of the hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheLevel {
    /// 1 for L1, 2 for L2 ...
    pub level: u8,
    /// Data, instruction or unified.
    pub kind: CacheKind,
    /// Total size in bytes.
    pub size: u64,
    /// Associativity (for a fully associative cache: size / line size).
    pub ways: u32,
    /// Line size in bytes.
    pub line_size: u32,
    /// Number of sets: `size / (ways * line_size)`.
    pub sets: u32,
    /// How many logical processors share it (0: unknown).
    pub shared_by: u32,
    /// Whether it is inclusive of the lower levels.
    pub inclusive: bool,
    /// Whether CPUID reports a complex (hashed) index function.
    pub complex_indexing: bool,
}

impl CacheLevel {
    /// A private (shared by one), non-inclusive, linearly indexed cache with
    /// the sets computed from size, ways and line size. Checked by
    /// [`CacheLevel::validate`] (and by [`CacheGeometry::new`]).
    pub const fn new(level: u8, kind: CacheKind, size: u64, ways: u32, line_size: u32) -> Self {
        let sets = match size.checked_div(ways as u64 * line_size as u64) {
            Some(s) => s,
            None => 0,
        };
        CacheLevel {
            level,
            kind,
            size,
            ways,
            line_size,
            sets: sets as u32,
            shared_by: 1,
            inclusive: false,
            complex_indexing: false,
        }
    }

    /// The same cache, shared by `n` logical processors.
    pub const fn shared_by(mut self, n: u32) -> Self {
        self.shared_by = n;
        self
    }

    /// The same cache, marked inclusive of lower levels.
    pub const fn inclusive(mut self, yes: bool) -> Self {
        self.inclusive = yes;
        self
    }

    /// The size of one way (`size / ways`) in bytes.
    pub const fn way_size(&self) -> u64 {
        self.sets as u64 * self.line_size as u64
    }

    /// Page colors of this level for `page_size` pages:
    /// `size / (ways * page_size)`, at least 1.
    pub const fn colors_for(&self, page_size: u64) -> u64 {
        let per = self.ways as u64 * page_size;
        if per == 0 || self.size < per {
            1
        } else {
            self.size / per
        }
    }

    /// Page colors of this level for 4 KiB pages.
    pub const fn colors(&self) -> u64 {
        self.colors_for(PAGE_SIZE)
    }

    /// Checks that the numbers describe a real set-associative cache:
    /// nothing zero, a power-of-two line size, and
    /// `size == ways * sets * line_size`.
    pub fn validate(&self) -> Result<(), GeometryError> {
        let l = self.level;
        if l == 0 {
            return Err(GeometryError::ZeroField { level: l, field: "level" });
        }
        for (name, v) in [
            ("size", self.size),
            ("ways", self.ways.into()),
            ("line size", self.line_size.into()),
            ("sets", self.sets.into()),
        ] {
            if v == 0 {
                return Err(GeometryError::ZeroField { level: l, field: name });
            }
        }
        if !self.line_size.is_power_of_two() {
            return Err(GeometryError::LineNotPowerOfTwo { level: l, line_size: self.line_size });
        }
        let product = self.ways as u64 * self.sets as u64 * self.line_size as u64;
        if product != self.size {
            return Err(GeometryError::Inconsistent {
                level: l,
                size: self.size,
                ways: self.ways,
                sets: self.sets,
                line_size: self.line_size,
            });
        }
        Ok(())
    }
}

impl fmt::Display for CacheLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "L{} {} {} KiB {}-way {} B lines {} sets, shared by {}{}, {} colors",
            self.level,
            self.kind,
            self.size / 1024,
            self.ways,
            self.line_size,
            self.sets,
            self.shared_by,
            if self.inclusive { ", inclusive" } else { "" },
            self.colors()
        )
    }
}

/// Where a geometry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GeometrySource {
    /// Intel CPUID leaf 4 (deterministic cache parameters).
    IntelLeaf4,
    /// AMD CPUID leaf 0x8000_001D (cache topology).
    AmdTopology,
    /// The legacy extended leaves 0x8000_0005 / 0x8000_0006 (AMD; Intel
    /// reports only its L2 in 0x8000_0006).
    LegacyLeaves,
    /// A built-in profile.
    Profile,
    /// Given explicitly (config).
    Config,
}

/// Why a geometry could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeometryError {
    /// CPUID reported no cache at all.
    NoCacheInfo,
    /// More than [`MAX_LEVELS`] caches.
    TooManyLevels,
    /// A field is zero.
    ZeroField {
        /// The cache level.
        level: u8,
        /// The field's name.
        field: &'static str,
    },
    /// The line size is not a power of two.
    LineNotPowerOfTwo {
        /// The cache level.
        level: u8,
        /// The line size.
        line_size: u32,
    },
    /// size != ways * sets * line size.
    Inconsistent {
        /// The cache level.
        level: u8,
        /// Size in bytes.
        size: u64,
        /// Ways.
        ways: u32,
        /// Sets.
        sets: u32,
        /// Line size.
        line_size: u32,
    },
    /// Two caches with the same level and kind.
    DuplicateLevel {
        /// The cache level.
        level: u8,
        /// Its kind.
        kind: CacheKind,
    },
}

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GeometryError::NoCacheInfo => f.write_str("CPUID reports no cache parameters"),
            GeometryError::TooManyLevels => {
                write!(f, "more than {MAX_LEVELS} caches in one geometry")
            }
            GeometryError::ZeroField { level, field } => {
                write!(f, "L{level}: {field} is zero")
            }
            GeometryError::LineNotPowerOfTwo { level, line_size } => {
                write!(f, "L{level}: line size {line_size} is not a power of two")
            }
            GeometryError::Inconsistent { level, size, ways, sets, line_size } => {
                write!(f, "L{level}: size {size} != {ways} ways x {sets} sets x {line_size} B lines")
            }
            GeometryError::DuplicateLevel { level, kind } => {
                write!(f, "L{level} {kind} cache given twice")
            }
        }
    }
}

/// The cache hierarchy of one machine, sorted by level (data before
/// instruction within a level).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheGeometry {
    levels: [CacheLevel; MAX_LEVELS],
    len: usize,
    source: GeometrySource,
}

const FILLER: CacheLevel = CacheLevel::new(0, CacheKind::Unified, 0, 0, 0);

const fn kind_rank(k: CacheKind) -> u8 {
    match k {
        CacheKind::Data => 0,
        CacheKind::Instruction => 1,
        CacheKind::Unified => 2,
    }
}

impl CacheGeometry {
    /// Builds a geometry at compile time from levels already in order
    /// (used for the profiles; not validated, the profile tests check them).
    pub const fn from_array<const N: usize>(levels: [CacheLevel; N], source: GeometrySource) -> Self {
        assert!(N <= MAX_LEVELS, "too many cache levels");
        let mut out = [FILLER; MAX_LEVELS];
        let mut i = 0;
        while i < N {
            out[i] = levels[i];
            i += 1;
        }
        CacheGeometry { levels: out, len: N, source }
    }

    /// Builds a validated geometry from a config (any order).
    pub fn new(levels: &[CacheLevel]) -> Result<Self, GeometryError> {
        let mut g = CacheGeometry { levels: [FILLER; MAX_LEVELS], len: 0, source: GeometrySource::Config };
        for l in levels {
            g.push(*l)?;
        }
        if g.len == 0 {
            return Err(GeometryError::NoCacheInfo);
        }
        Ok(g)
    }

    fn push(&mut self, l: CacheLevel) -> Result<(), GeometryError> {
        l.validate()?;
        if self.levels().iter().any(|x| x.level == l.level && x.kind == l.kind) {
            return Err(GeometryError::DuplicateLevel { level: l.level, kind: l.kind });
        }
        if self.len == MAX_LEVELS {
            return Err(GeometryError::TooManyLevels);
        }
        // Insertion sort by (level, kind).
        let key = |x: &CacheLevel| (x.level, kind_rank(x.kind));
        let mut i = self.len;
        while i > 0 && key(&self.levels[i - 1]) > key(&l) {
            self.levels[i] = self.levels[i - 1];
            i -= 1;
        }
        self.levels[i] = l;
        self.len += 1;
        Ok(())
    }

    /// The same geometry with `level` replacing the cache of the same level
    /// and kind (or added if there is none). The source becomes
    /// [`GeometrySource::Config`].
    pub fn with_override(mut self, level: CacheLevel) -> Result<Self, GeometryError> {
        if let Some(i) = self.levels().iter().position(|x| x.level == level.level && x.kind == level.kind) {
            level.validate()?;
            self.levels[i] = level;
        } else {
            self.push(level)?;
        }
        self.source = GeometrySource::Config;
        Ok(self)
    }

    /// Reads the geometry through CPUID (see the module documentation for
    /// the leaves used and their order).
    pub fn from_cpuid<R: CpuIdReader>(cpuid: &CpuId<R>) -> Result<Self, GeometryError> {
        let is_amd = cpuid.get_vendor_info().is_some_and(|v| matches!(v.as_str(), "AuthenticAMD" | "HygonGenuine"));
        let topo_ok = !is_amd
            || cpuid.get_extended_processor_and_feature_identifiers().is_some_and(|f| f.has_topology_extensions());
        let mut g = CacheGeometry {
            levels: [FILLER; MAX_LEVELS],
            len: 0,
            source: if is_amd { GeometrySource::AmdTopology } else { GeometrySource::IntelLeaf4 },
        };
        if topo_ok {
            if let Some(iter) = cpuid.get_cache_parameters() {
                for p in iter {
                    let kind = match p.cache_type() {
                        CacheType::Data => CacheKind::Data,
                        CacheType::Instruction => CacheKind::Instruction,
                        CacheType::Unified => CacheKind::Unified,
                        _ => continue,
                    };
                    let line = p.coherency_line_size() as u32;
                    let sets = p.sets() as u32;
                    let ways = if p.is_fully_associative() {
                        (sets as usize * p.associativity()) as u32
                    } else {
                        p.associativity() as u32
                    };
                    let sets = if p.is_fully_associative() { 1 } else { sets };
                    let size = ways as u64 * p.physical_line_partitions() as u64 * line as u64 * sets as u64;
                    // Physical line partitions (always 1 on current parts)
                    // count as extra ways of one set.
                    let ways = ways * p.physical_line_partitions() as u32;
                    g.push(CacheLevel {
                        level: p.level(),
                        kind,
                        size,
                        ways,
                        line_size: line,
                        sets,
                        shared_by: p.max_cores_for_cache() as u32,
                        inclusive: p.is_inclusive(),
                        complex_indexing: p.has_complex_indexing(),
                    })?;
                }
            }
        }
        if g.len > 0 {
            return Ok(g);
        }
        g.source = GeometrySource::LegacyLeaves;
        if let Some(l1) = cpuid.get_l1_cache_and_tlb_info() {
            let d = legacy_level(
                1,
                CacheKind::Data,
                l1.dcache_size() as u64 * 1024,
                legacy_ways(l1.dcache_associativity()),
                l1.dcache_line_size() as u32,
                1,
            );
            let i = legacy_level(
                1,
                CacheKind::Instruction,
                l1.icache_size() as u64 * 1024,
                legacy_ways(l1.icache_associativity()),
                l1.icache_line_size() as u32,
                1,
            );
            for l in [d, i].into_iter().flatten() {
                g.push(l)?;
            }
        }
        if let Some(l23) = cpuid.get_l2_l3_cache_and_tlb_info() {
            let l2 = legacy_level(
                2,
                CacheKind::Unified,
                l23.l2cache_size() as u64 * 1024,
                legacy_ways(l23.l2cache_associativity()),
                l23.l2cache_line_size() as u32,
                1,
            );
            let l3 = legacy_level(
                3,
                CacheKind::Unified,
                l23.l3cache_size() as u64 * 512 * 1024,
                legacy_ways(l23.l3cache_associativity()),
                l23.l3cache_line_size() as u32,
                0,
            );
            for l in [l2, l3].into_iter().flatten() {
                g.push(l)?;
            }
        }
        if g.len == 0 {
            return Err(GeometryError::NoCacheInfo);
        }
        Ok(g)
    }

    /// Reads the geometry of the CPU we run on.
    #[cfg(all(target_arch = "x86_64", not(target_env = "sgx")))]
    pub fn detect() -> Result<Self, GeometryError> {
        Self::from_cpuid(&CpuId::new())
    }

    /// Where this geometry came from.
    pub fn source(&self) -> GeometrySource {
        self.source
    }

    /// All caches, sorted by level.
    pub fn levels(&self) -> &[CacheLevel] {
        &self.levels[..self.len]
    }

    /// The cache that holds data at `level` (unified or data), if any.
    pub fn level(&self, level: u8) -> Option<&CacheLevel> {
        self.levels().iter().find(|l| l.level == level && l.kind != CacheKind::Instruction)
    }

    /// The cache of `level` and `kind`, if any.
    pub fn find(&self, level: u8, kind: CacheKind) -> Option<&CacheLevel> {
        self.levels().iter().find(|l| l.level == level && l.kind == kind)
    }

    /// The last-level data (or unified) cache: the one page coloring is
    /// usually about.
    pub fn last_level(&self) -> Option<&CacheLevel> {
        self.levels().iter().rev().find(|l| l.kind != CacheKind::Instruction)
    }
}

impl fmt::Debug for CacheGeometry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheGeometry").field("source", &self.source).field("levels", &self.levels()).finish()
    }
}

impl fmt::Display for CacheGeometry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}:", self.source)?;
        for l in self.levels() {
            write!(f, "\n  {l}")?;
        }
        Ok(())
    }
}

/// Ways from a legacy associativity field; `None` if unknown or disabled.
fn legacy_ways(a: Associativity) -> Option<u32> {
    match a {
        Associativity::DirectMapped => Some(1),
        Associativity::NWay(n) => Some(n.into()),
        // Fully associative: one set; the caller turns 0 into size / line.
        Associativity::FullyAssociative => Some(0),
        Associativity::Disabled | Associativity::Unknown => None,
    }
}

fn legacy_level(
    level: u8,
    kind: CacheKind,
    size: u64,
    ways: Option<u32>,
    line: u32,
    shared_by: u32,
) -> Option<CacheLevel> {
    let ways = ways?;
    if size == 0 || line == 0 {
        return None;
    }
    let ways = if ways == 0 { (size / line as u64) as u32 } else { ways };
    Some(CacheLevel::new(level, kind, size, ways, line).shared_by(shared_by))
}

/// Intel Skylake client (e.g. Core i7-6700K): L1D/L1I 32 KiB 8-way,
/// L2 256 KiB 4-way, inclusive L3 8 MiB 16-way shared by 16 threads.
pub const SKYLAKE_CLIENT: CacheGeometry = CacheGeometry::from_array(
    [
        CacheLevel::new(1, CacheKind::Data, 32 << 10, 8, 64).shared_by(2),
        CacheLevel::new(1, CacheKind::Instruction, 32 << 10, 8, 64).shared_by(2),
        CacheLevel::new(2, CacheKind::Unified, 256 << 10, 4, 64).shared_by(2),
        CacheLevel {
            complex_indexing: true,
            ..CacheLevel::new(3, CacheKind::Unified, 8 << 20, 16, 64).shared_by(16).inclusive(true)
        },
    ],
    GeometrySource::Profile,
);

/// AMD Zen 4 (e.g. Ryzen 9 7950X, per CCD): L1D/L1I 32 KiB 8-way,
/// L2 1 MiB 8-way (inclusive of L1), L3 32 MiB 16-way victim cache shared by
/// the 16 threads of a CCD.
pub const ZEN4: CacheGeometry = CacheGeometry::from_array(
    [
        CacheLevel::new(1, CacheKind::Data, 32 << 10, 8, 64).shared_by(2),
        CacheLevel::new(1, CacheKind::Instruction, 32 << 10, 8, 64).shared_by(2),
        CacheLevel::new(2, CacheKind::Unified, 1 << 20, 8, 64).shared_by(2).inclusive(true),
        CacheLevel::new(3, CacheKind::Unified, 32 << 20, 16, 64).shared_by(16),
    ],
    GeometrySource::Profile,
);

/// A typical embedded SoC: private L1D/L1I 32 KiB 4-way and a 1 MiB 16-way
/// L2 shared by 4 cores as the last level (16 colors).
pub const EMBEDDED_1M_16W: CacheGeometry = CacheGeometry::from_array(
    [
        CacheLevel::new(1, CacheKind::Data, 32 << 10, 4, 64),
        CacheLevel::new(1, CacheKind::Instruction, 32 << 10, 4, 64),
        CacheLevel::new(2, CacheKind::Unified, 1 << 20, 16, 64).shared_by(4),
    ],
    GeometrySource::Profile,
);

/// The named profiles a description's `[cache] profile = NAME` picks, with
/// the geometry of the cache-model plugin's profile of the same name
/// (`wcet-reports/cache-model/src/config.rs`): `embedded` is
/// [`EMBEDDED_1M_16W`] (its 1 MiB 16-way L2 is the last level), `host` is
/// [`ZEN4`] (32 KiB 8-way L1D, 1 MiB 8-way L2, 32 MiB 16-way L3).
pub const PROFILES: [(&str, CacheGeometry); 2] = [("embedded", EMBEDDED_1M_16W), ("host", ZEN4)];

/// The profile called `name` (see [`PROFILES`]).
pub fn profile(name: &str) -> Option<CacheGeometry> {
    PROFILES.iter().find(|(n, _)| *n == name).map(|(_, g)| *g)
}

/// A CPUID reader that answers from a recorded table of
/// `(leaf, subleaf, result)` entries, all zeros for anything else. For tests,
/// and for feeding the CPUID dump of another machine from a config.
///
/// Leaves that ignore the subleaf must be recorded with subleaf 0 and are
/// matched for any subleaf if no exact entry exists.
#[derive(Clone, Copy, Debug)]
pub struct RecordedCpuid<'a> {
    entries: &'a [(u32, u32, CpuIdResult)],
}

impl<'a> RecordedCpuid<'a> {
    /// A reader over `entries`.
    pub const fn new(entries: &'a [(u32, u32, CpuIdResult)]) -> Self {
        RecordedCpuid { entries }
    }

    /// A [`CpuId`] reading from `entries`.
    pub fn cpuid(entries: &'a [(u32, u32, CpuIdResult)]) -> CpuId<Self> {
        CpuId::with_cpuid_reader(Self::new(entries))
    }
}

/// Leaves whose result depends on the subleaf in ECX.
fn has_subleaves(leaf: u32) -> bool {
    matches!(leaf, 0x4 | 0x7 | 0xB | 0xD | 0xF | 0x10 | 0x12 | 0x14 | 0x17 | 0x18 | 0x1F)
        || matches!(leaf, 0x8000_001D | 0x8000_0020 | 0x8000_0026)
}

impl CpuIdReader for RecordedCpuid<'_> {
    fn cpuid2(&self, eax: u32, ecx: u32) -> CpuIdResult {
        let exact = self.entries.iter().find(|(l, s, _)| *l == eax && *s == ecx).map(|e| e.2);
        let any = || {
            if has_subleaves(eax) {
                None
            } else {
                self.entries.iter().find(|(l, _, _)| *l == eax).map(|e| e.2)
            }
        };
        exact.or_else(any).unwrap_or(CpuIdResult { eax: 0, ebx: 0, ecx: 0, edx: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_valid() {
        for g in [SKYLAKE_CLIENT, ZEN4, EMBEDDED_1M_16W] {
            for l in g.levels() {
                l.validate().unwrap();
            }
            // Building them through the checked constructor gives the same.
            let mut checked = CacheGeometry::new(g.levels()).unwrap();
            checked.source = GeometrySource::Profile;
            assert_eq!(checked, g);
        }
    }

    #[test]
    fn profile_colors() {
        assert_eq!(SKYLAKE_CLIENT.last_level().unwrap().colors(), 128);
        assert_eq!(SKYLAKE_CLIENT.level(2).unwrap().colors(), 16);
        assert_eq!(SKYLAKE_CLIENT.level(1).unwrap().colors(), 1);
        assert_eq!(SKYLAKE_CLIENT.last_level().unwrap().sets, 8192);
        assert_eq!(ZEN4.last_level().unwrap().colors(), 512);
        assert_eq!(ZEN4.level(2).unwrap().colors(), 32);
        assert_eq!(EMBEDDED_1M_16W.last_level().unwrap().colors(), 16);
        assert_eq!(EMBEDDED_1M_16W.last_level().unwrap().level, 2);
        assert_eq!(EMBEDDED_1M_16W.level(1).unwrap().colors(), 2);
        assert_eq!(profile("embedded"), Some(EMBEDDED_1M_16W));
        assert_eq!(
            profile("host").and_then(|g| g.last_level().map(|l| (l.level, l.size, l.ways))),
            Some((3, 32 << 20, 16))
        );
        assert_eq!(profile("laptop"), None);
    }

    #[test]
    fn colors_at_least_one() {
        // 16 KiB 8-way: a way is 2 KiB, smaller than a page.
        let l = CacheLevel::new(1, CacheKind::Data, 16 << 10, 8, 64);
        assert_eq!(l.colors(), 1);
        assert_eq!(ZEN4.last_level().unwrap().colors_for(2 << 20), 1);
    }

    #[test]
    fn validation_errors() {
        let bad = CacheLevel::new(2, CacheKind::Unified, 1 << 20, 0, 64);
        assert_eq!(bad.validate(), Err(GeometryError::ZeroField { level: 2, field: "ways" }));
        let bad = CacheLevel::new(2, CacheKind::Unified, 96 * 1024, 2, 48);
        assert_eq!(bad.validate(), Err(GeometryError::LineNotPowerOfTwo { level: 2, line_size: 48 }));
        let mut bad = CacheLevel::new(2, CacheKind::Unified, 1 << 20, 16, 64);
        bad.sets = 3;
        assert!(matches!(bad.validate(), Err(GeometryError::Inconsistent { .. })));
        let l2 = CacheLevel::new(2, CacheKind::Unified, 1 << 20, 16, 64);
        assert_eq!(
            CacheGeometry::new(&[l2, l2]),
            Err(GeometryError::DuplicateLevel { level: 2, kind: CacheKind::Unified })
        );
        assert_eq!(CacheGeometry::new(&[]), Err(GeometryError::NoCacheInfo));
        let many = [l2; 9];
        let mut distinct = many;
        for (i, l) in distinct.iter_mut().enumerate() {
            l.level = i as u8 + 1;
        }
        assert_eq!(CacheGeometry::new(&distinct), Err(GeometryError::TooManyLevels));
    }

    #[test]
    fn new_sorts_and_override_replaces() {
        let l3 = CacheLevel::new(3, CacheKind::Unified, 4 << 20, 16, 64);
        let l1 = CacheLevel::new(1, CacheKind::Data, 32 << 10, 8, 64);
        let g = CacheGeometry::new(&[l3, l1]).unwrap();
        assert_eq!(g.levels()[0], l1);
        assert_eq!(g.last_level(), Some(&l3));
        let bigger = CacheLevel::new(3, CacheKind::Unified, 16 << 20, 16, 64);
        let g2 = g.with_override(bigger).unwrap();
        assert_eq!(g2.levels().len(), 2);
        assert_eq!(g2.last_level().unwrap().colors(), 256);
        assert_eq!(g2.source(), GeometrySource::Config);
        let g3 = ZEN4.with_override(CacheLevel::new(4, CacheKind::Unified, 64 << 20, 16, 64)).unwrap();
        assert_eq!(g3.last_level().unwrap().level, 4);
    }

    #[test]
    fn display_mentions_colors() {
        let s = format!("{}", ZEN4);
        assert!(s.contains("L3 unified 32768 KiB 16-way"), "{s}");
        assert!(s.contains("512 colors"), "{s}");
    }
}
