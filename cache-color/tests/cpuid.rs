//! Geometry detection from recorded CPUID leaves.

use cache_color::raw_cpuid::CpuIdResult;
use cache_color::{
    CacheGeometry, CacheKind, CacheLevel, ColorMap, GeometryError, GeometrySource, RecordedCpuid, SKYLAKE_CLIENT, ZEN4,
};

const fn r(eax: u32, ebx: u32, ecx: u32, edx: u32) -> CpuIdResult {
    CpuIdResult { eax, ebx, ecx, edx }
}

// "GenuineIntel" / "AuthenticAMD" in ebx, ecx, edx order.
const INTEL: (u32, u32, u32) = (0x756e_6547, 0x6c65_746e, 0x4965_6e69);
const AMD: (u32, u32, u32) = (0x6874_7541, 0x444d_4163, 0x6974_6e65);

/// Core i7-6700K (Skylake client, 4C/8T).
const SKYLAKE_6700K: &[(u32, u32, CpuIdResult)] = &[
    (0x0, 0, r(0x16, INTEL.0, INTEL.1, INTEL.2)),
    (0x4, 0, r(0x1c00_4121, 0x01c0_003f, 0x0000_003f, 0x0000_0000)),
    (0x4, 1, r(0x1c00_4122, 0x01c0_003f, 0x0000_003f, 0x0000_0000)),
    (0x4, 2, r(0x1c00_4143, 0x00c0_003f, 0x0000_03ff, 0x0000_0000)),
    (0x4, 3, r(0x1c03_c163, 0x03c0_003f, 0x0000_1fff, 0x0000_0006)),
    (0x4, 4, r(0, 0, 0, 0)),
    (0x8000_0000, 0, r(0x8000_0008, 0, 0, 0)),
    (0x8000_0006, 0, r(0, 0, 0x0100_6040, 0)),
];

/// Ryzen 9 7950X (Zen 4), per CCD.
const ZEN4_7950X: &[(u32, u32, CpuIdResult)] = &[
    (0x0, 0, r(0x10, AMD.0, AMD.1, AMD.2)),
    (0x8000_0000, 0, r(0x8000_0028, AMD.0, AMD.1, AMD.2)),
    (0x8000_0001, 0, r(0x00a6_0f12, 0, 0x75c2_37ff, 0x2fd3_fbff)),
    (0x8000_0005, 0, r(0xff48_ff40, 0xff48_ff40, 0x2008_0140, 0x2008_0140)),
    (0x8000_0006, 0, r(0x5c00_2200, 0x6c00_4200, 0x0400_6140, 0x0100_9140)),
    (0x8000_001d, 0, r(0x0000_4121, 0x01c0_003f, 0x0000_003f, 0x0000_0000)),
    (0x8000_001d, 1, r(0x0000_4122, 0x01c0_003f, 0x0000_003f, 0x0000_0000)),
    (0x8000_001d, 2, r(0x0000_4143, 0x01c0_003f, 0x0000_07ff, 0x0000_0002)),
    (0x8000_001d, 3, r(0x0003_c163, 0x03c0_003f, 0x0000_7fff, 0x0000_0001)),
];

/// The same Zen 4 with TopologyExtensions cleared: only the legacy leaves
/// count, and they defer the L3 associativity to 0x8000_001D (encoding 9).
const ZEN4_NO_TOPOEXT: &[(u32, u32, CpuIdResult)] = &[
    (0x0, 0, r(0x10, AMD.0, AMD.1, AMD.2)),
    (0x8000_0000, 0, r(0x8000_0028, AMD.0, AMD.1, AMD.2)),
    (0x8000_0001, 0, r(0x00a6_0f12, 0, 0x7582_37ff, 0x2fd3_fbff)),
    (0x8000_0005, 0, r(0xff48_ff40, 0xff48_ff40, 0x2008_0140, 0x2008_0140)),
    (0x8000_0006, 0, r(0x5c00_2200, 0x6c00_4200, 0x0400_6140, 0x0100_9140)),
    (0x8000_001d, 0, r(0x0000_4121, 0x01c0_003f, 0x0000_003f, 0x0000_0000)),
];

/// Phenom II X4 (K10): no 0x8000_001D, legacy leaves only.
/// L1D/L1I 64 KiB 2-way, L2 512 KiB 16-way, L3 6 MiB 48-way.
const PHENOM_II: &[(u32, u32, CpuIdResult)] = &[
    (0x0, 0, r(0x5, AMD.0, AMD.1, AMD.2)),
    (0x8000_0000, 0, r(0x8000_001b, AMD.0, AMD.1, AMD.2)),
    (0x8000_0001, 0, r(0x0010_0f42, 0, 0x0000_37ff, 0xefd3_fbff)),
    (0x8000_0005, 0, r(0xff30_ff10, 0xff30_ff20, 0x4002_0140, 0x4002_0140)),
    (0x8000_0006, 0, r(0x2006_6000, 0x4202_6200, 0x0200_8140, 0x0030_b140)),
];

/// An old Intel part whose highest basic leaf is 2: only 0x8000_0006 (L2).
const OLD_INTEL: &[(u32, u32, CpuIdResult)] = &[
    (0x0, 0, r(0x2, INTEL.0, INTEL.1, INTEL.2)),
    (0x8000_0000, 0, r(0x8000_0008, 0, 0, 0)),
    (0x8000_0006, 0, r(0, 0, 0x0100_6040, 0)),
];

#[test]
fn skylake_leaf4_matches_profile() {
    let g = CacheGeometry::from_cpuid(&RecordedCpuid::cpuid(SKYLAKE_6700K)).unwrap();
    assert_eq!(g.source(), GeometrySource::IntelLeaf4);
    assert_eq!(g.levels(), SKYLAKE_CLIENT.levels());
    let llc = g.last_level().unwrap();
    assert_eq!((llc.level, llc.size, llc.ways, llc.sets), (3, 8 << 20, 16, 8192));
    assert!(llc.inclusive && llc.complex_indexing);
    assert_eq!(llc.shared_by, 16);
    assert_eq!(ColorMap::for_geometry(&g).unwrap().colors(), 128);
    assert_eq!(ColorMap::for_level(&g, 2).unwrap().colors(), 16);
}

#[test]
fn zen4_topology_matches_profile() {
    let g = CacheGeometry::from_cpuid(&RecordedCpuid::cpuid(ZEN4_7950X)).unwrap();
    assert_eq!(g.source(), GeometrySource::AmdTopology);
    assert_eq!(g.levels(), ZEN4.levels());
    let llc = g.last_level().unwrap();
    assert_eq!((llc.size, llc.ways, llc.sets, llc.shared_by), (32 << 20, 16, 32768, 16));
    assert!(!llc.inclusive);
    assert!(g.level(2).unwrap().inclusive);
    assert_eq!(ColorMap::for_geometry(&g).unwrap().colors(), 512);
}

#[test]
fn zen4_without_topology_extensions_uses_legacy_leaves() {
    let g = CacheGeometry::from_cpuid(&RecordedCpuid::cpuid(ZEN4_NO_TOPOEXT)).unwrap();
    assert_eq!(g.source(), GeometrySource::LegacyLeaves);
    assert_eq!(
        g.levels(),
        &[
            CacheLevel::new(1, CacheKind::Data, 32 << 10, 8, 64),
            CacheLevel::new(1, CacheKind::Instruction, 32 << 10, 8, 64),
            CacheLevel::new(2, CacheKind::Unified, 1 << 20, 8, 64),
        ]
    );
    // The L3 (associativity "see 0x8000_001D") is left out; a config
    // override puts it back.
    let g = g.with_override(CacheLevel::new(3, CacheKind::Unified, 32 << 20, 16, 64)).unwrap();
    assert_eq!(ColorMap::for_geometry(&g).unwrap().colors(), 512);
}

#[test]
fn phenom_legacy_leaves() {
    let g = CacheGeometry::from_cpuid(&RecordedCpuid::cpuid(PHENOM_II)).unwrap();
    assert_eq!(g.source(), GeometrySource::LegacyLeaves);
    assert_eq!(
        g.levels(),
        &[
            CacheLevel::new(1, CacheKind::Data, 64 << 10, 2, 64),
            CacheLevel::new(1, CacheKind::Instruction, 64 << 10, 2, 64),
            CacheLevel::new(2, CacheKind::Unified, 512 << 10, 16, 64),
            CacheLevel::new(3, CacheKind::Unified, 6 << 20, 48, 64).shared_by(0),
        ]
    );
    let llc = g.last_level().unwrap();
    assert_eq!(llc.sets, 2048);
    assert_eq!(ColorMap::for_geometry(&g).unwrap().colors(), 32);
}

#[test]
fn old_intel_falls_back_to_l2_leaf() {
    let g = CacheGeometry::from_cpuid(&RecordedCpuid::cpuid(OLD_INTEL)).unwrap();
    assert_eq!(g.source(), GeometrySource::LegacyLeaves);
    assert_eq!(g.levels(), &[CacheLevel::new(2, CacheKind::Unified, 256 << 10, 8, 64)]);
}

#[test]
fn nothing_reported_is_an_error() {
    let empty: &[(u32, u32, CpuIdResult)] = &[];
    assert_eq!(CacheGeometry::from_cpuid(&RecordedCpuid::cpuid(empty)), Err(GeometryError::NoCacheInfo));
}

#[test]
fn inconsistent_leaf4_is_rejected() {
    // Line size 48 (ebx low bits 47): not a power of two.
    let bad: &[(u32, u32, CpuIdResult)] =
        &[(0x0, 0, r(0x16, INTEL.0, INTEL.1, INTEL.2)), (0x4, 0, r(0x1c00_4121, 0x01c0_002f, 0x0000_003f, 0))];
    assert_eq!(
        CacheGeometry::from_cpuid(&RecordedCpuid::cpuid(bad)),
        Err(GeometryError::LineNotPowerOfTwo { level: 1, line_size: 48 })
    );
}

#[test]
fn detect_on_this_host_does_not_panic() {
    // Whatever the host (or its hypervisor) reports, detection either gives
    // a consistent geometry or a typed error.
    match CacheGeometry::detect() {
        Ok(g) => {
            for l in g.levels() {
                l.validate().unwrap();
            }
            println!("{g}");
        }
        Err(e) => println!("no geometry: {e}"),
    }
}
