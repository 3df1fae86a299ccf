//! Property: a working set of at most `ways` lines per set never misses
//! after warm-up.

use cache_model::config::Config;
use cache_model::sim::{Hierarchy, Level, LevelConfig, Policy, NO_OWNER};
use proptest::prelude::*;

/// A level geometry: sets (power of two), ways, policy.
fn geometry() -> impl Strategy<Value = (u64, u32, Policy)> {
    (0u32..7, prop::sample::select(vec![1u32, 2, 4, 8, 16]), any::<bool>())
        .prop_map(|(s, w, plru)| (1u64 << s, w, if plru { Policy::TreePlru } else { Policy::Lru }))
}

fn level(sets: u64, ways: u32, policy: Policy) -> Level {
    Level::new(LevelConfig { name: "P", size: sets * u64::from(ways) * 64, ways, line: 64, hit_latency: 1, policy })
}

/// Line-aligned physical addresses: for every set, up to `ways` distinct
/// lines (distinct tags), with a random offset inside the line.
fn working_set(sets: u64, ways: u32, seeds: &[(u64, u32, u64)]) -> Vec<u64> {
    let mut v = Vec::new();
    for &(set_seed, count_seed, tag_seed) in seeds {
        let set = set_seed % sets;
        let count = u64::from(count_seed % (ways + 1));
        for k in 0..count {
            let tag = tag_seed.wrapping_mul(1000).wrapping_add(k) % (1 << 20);
            let pa = (tag * sets + set) * 64;
            if !v.iter().any(|&x: &u64| x / 64 == pa / 64)
                && v.iter().filter(|&&x| (x / 64) % sets == set).count() < ways as usize
            {
                v.push(pa);
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// From a cold cache, with either policy.
    #[test]
    fn cold_working_set_never_misses_after_warmup(
        (sets, ways, policy) in geometry(),
        seeds in prop::collection::vec((any::<u64>(), any::<u32>(), any::<u64>()), 1..12),
        order in prop::collection::vec((any::<prop::sample::Index>(), 0u64..64), 1..400),
    ) {
        let ws = working_set(sets, ways, &seeds);
        prop_assume!(!ws.is_empty());
        let mut c = level(sets, ways, policy);
        for &pa in &ws {
            c.access(pa, NO_OWNER);
        }
        for (i, off) in order {
            let pa = ws[i.index(ws.len())] + off;
            prop_assert!(c.access(pa, NO_OWNER).0, "miss on {:#x}", pa);
        }
    }

    /// LRU keeps the working set even when the sets were full of other
    /// lines before the warm-up (tree-PLRU does not guarantee that).
    #[test]
    fn lru_working_set_survives_prior_pollution(
        (sets, ways, _p) in geometry(),
        junk in prop::collection::vec(any::<u32>(), 0..300),
        seeds in prop::collection::vec((any::<u64>(), any::<u32>(), any::<u64>()), 1..12),
        order in prop::collection::vec(any::<prop::sample::Index>(), 1..400),
    ) {
        let ws = working_set(sets, ways, &seeds);
        prop_assume!(!ws.is_empty());
        let mut c = level(sets, ways, Policy::Lru);
        for j in junk {
            c.access(u64::from(j) * 64 + (1 << 40), NO_OWNER);
        }
        for &pa in &ws {
            c.access(pa, NO_OWNER);
        }
        for i in order {
            prop_assert!(c.access(ws[i.index(ws.len())], NO_OWNER).0);
        }
    }

    /// Whole built-in hierarchies: a working set that fits the L1D per set
    /// always hits in the L1D after warm-up.
    #[test]
    fn profile_l1d_working_set_always_hits_l1(
        embedded in any::<bool>(),
        plru in any::<bool>(),
        seeds in prop::collection::vec((any::<u64>(), any::<u32>(), any::<u64>()), 1..40),
        order in prop::collection::vec(any::<prop::sample::Index>(), 1..500),
    ) {
        let mut cfg = if embedded { Config::embedded() } else { Config::host() };
        if plru {
            for l in &mut cfg.levels {
                l.policy = Policy::TreePlru;
            }
        }
        let l1 = cfg.levels[0].clone();
        let ws = working_set(l1.sets(), l1.ways, &seeds);
        prop_assume!(!ws.is_empty());
        let mut h = Hierarchy::new(cfg.levels.clone(), cfg.mem_latency);
        for &pa in &ws {
            h.access(pa, 0);
        }
        for i in order {
            let o = h.access(ws[i.index(ws.len())], 0);
            prop_assert_eq!(o.hit_level, Some(0));
            prop_assert_eq!(o.latency, l1.hit_latency);
        }
    }
}
