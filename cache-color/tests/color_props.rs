//! Property tests: the color arithmetic agrees with a brute-force set-index
//! computation.

use cache_color::{CacheKind, CacheLevel, ColorMap, ColorSet, EMBEDDED_1M_16W, PAGE_SIZE, SKYLAKE_CLIENT, ZEN4};
use proptest::prelude::*;

/// The definition: set = (paddr / line) % sets; color = set / (page / line).
fn brute_color(l: &CacheLevel, page: u64, paddr: u64) -> u64 {
    let line = l.line_size as u64;
    let set = (paddr / line) % l.sets as u64;
    set / (page / line)
}

/// Every data/unified level of the three profiles, plus a few odd ones.
fn named_levels() -> Vec<CacheLevel> {
    let mut v: Vec<CacheLevel> =
        [SKYLAKE_CLIENT, ZEN4, EMBEDDED_1M_16W].iter().flat_map(|g| g.levels().to_vec()).collect();
    // 12 MiB 16-way (192 colors, not a power of two), 1 MiB 16-way embedded
    // LLC, and a 2 MiB direct-mapped cache.
    v.push(CacheLevel::new(3, CacheKind::Unified, 12 << 20, 16, 64));
    v.push(CacheLevel::new(2, CacheKind::Unified, 1 << 20, 16, 64));
    v.push(CacheLevel::new(2, CacheKind::Unified, 2 << 20, 1, 128));
    v
}

/// A random valid cache: line 32..256, ways 1..32, and a way size that is
/// either at most a page or a multiple of it (power of two or not).
fn arb_level() -> impl Strategy<Value = CacheLevel> {
    (5u32..=8, 1u32..=32, 0u32..=20, 1u64..=7).prop_filter_map("too many colors", |(line_log, ways, sets_log, mult)| {
        let line = 1u32 << line_log;
        // Either sets = 2^k, or sets = mult * (page / line) * 2^k.
        let lines_per_page = (PAGE_SIZE / line as u64) as u32;
        let sets =
            if mult == 1 { 1u32 << sets_log.min(16) } else { ((mult as u32) * lines_per_page) << sets_log.min(8) };
        let size = sets as u64 * ways as u64 * line as u64;
        let l = CacheLevel::new(3, CacheKind::Unified, size, ways, line);
        (l.colors() <= 4096).then_some(l)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn named_geometries_match_brute_force(paddr in any::<u64>()) {
        for l in named_levels() {
            let m = ColorMap::new(&l, PAGE_SIZE).unwrap();
            prop_assert_eq!(m.color_of(paddr) as u64, brute_color(&l, PAGE_SIZE, paddr), "{}", l);
            prop_assert_eq!(m.set_index(paddr), (paddr / l.line_size as u64) % l.sets as u64);
            if let Some(mask) = m.color_mask() {
                prop_assert_eq!(((paddr & mask) >> m.color_shift()) as u32, m.color_of(paddr));
            }
        }
    }

    #[test]
    fn random_geometries_match_brute_force(l in arb_level(), paddr in any::<u64>()) {
        let m = ColorMap::new(&l, PAGE_SIZE).unwrap();
        let c = m.color_of(paddr);
        prop_assert_eq!(c as u64, brute_color(&l, PAGE_SIZE, paddr));
        prop_assert!(c < m.colors());
        prop_assert_eq!(m.colors() as u64, l.colors());
        // Same color => same group of sets; different color => disjoint.
        let other = paddr ^ (1 << 12);
        let same = m.color_of(other) == c;
        let sets_of = |a: u64| {
            let s = m.set_index(a & !(PAGE_SIZE - 1));
            s..s + PAGE_SIZE / l.line_size as u64
        };
        if !same {
            let (a, b) = (sets_of(paddr), sets_of(other));
            prop_assert!(a.end <= b.start || b.end <= a.start);
        }
    }

    #[test]
    fn range_colors_match_brute_force(
        which in 0usize..9,
        start in 0u64..(1 << 40),
        len in 0u64..(3 << 20),
    ) {
        let levels = named_levels();
        let l = levels[which % levels.len()];
        let m = ColorMap::new(&l, PAGE_SIZE).unwrap();
        let mut expect = ColorSet::EMPTY;
        if len > 0 {
            let mut pfn = start / PAGE_SIZE;
            while pfn <= (start + len - 1) / PAGE_SIZE {
                expect.insert(m.color_of_frame(pfn)).unwrap();
                pfn += 1;
            }
        }
        prop_assert_eq!(m.colors_in_range(start, len), expect);
    }

    #[test]
    fn capacity_matches_counting(
        which in 0usize..9,
        start in 0u64..(1 << 36),
        len in 0u64..(8 << 20),
        seed in any::<u64>(),
    ) {
        let levels = named_levels();
        let l = levels[which % levels.len()];
        let m = ColorMap::new(&l, PAGE_SIZE).unwrap();
        let mut set = ColorSet::EMPTY;
        for c in 0..m.colors() {
            if (seed.rotate_left(c % 64) ^ u64::from(c / 64)) & 1 == 1 {
                set.insert(c).unwrap();
            }
        }
        let first = start.div_ceil(PAGE_SIZE);
        let end = (start + len) / PAGE_SIZE;
        let count = (first..end.max(first))
            .filter(|&p| set.contains(m.color_of_frame(p)))
            .count() as u64;
        prop_assert_eq!(m.capacity_in_range(&set, start, len), count * PAGE_SIZE);
    }
}

#[test]
fn capacity_of_all_colors_is_all_memory() {
    for l in named_levels() {
        let m = ColorMap::new(&l, PAGE_SIZE).unwrap();
        let all = ColorSet::all(m.colors() as usize);
        assert_eq!(m.capacity(&all, 1 << 30), 1 << 30);
        assert!(m.bytes_per_color(1 << 30) * m.colors() as u64 <= 1 << 30);
        assert_eq!(m.cache_share(&all), l.size);
    }
}
