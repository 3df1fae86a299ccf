//! Property tests: colored pools never hand out a frame outside the
//! requested set, never hand out a frame twice, reject bad frees without
//! corrupting their lists, and spread allocations evenly over a set.

use std::collections::BTreeSet;

use cache_color::{
    CacheKind, CacheLevel, ColorList, ColorMap, ColorSet, FrameLink, FramePool, PoolError, RoundRobin, PAGE_SIZE,
};
use proptest::prelude::*;

const WINDOW: usize = 192;
const BASE: u64 = 0x40_0000;

#[derive(Clone, Debug)]
enum Op {
    /// Allocate from the colors whose bit is set (bit c % 64 for color c).
    Alloc(u64),
    /// Allocate one specific color.
    AllocColor(u32),
    /// Free the n-th currently allocated frame.
    Free(usize),
    /// Free a frame that was freed before (or any frame of the window).
    FreeAgain(usize),
    /// Free an arbitrary address (unaligned, outside, in a hole).
    FreeBogus(u64),
    /// Take a specific frame of the window.
    Take(usize),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u64>().prop_map(Op::Alloc),
        1 => (0u32..70).prop_map(Op::AllocColor),
        3 => any::<usize>().prop_map(Op::Free),
        1 => any::<usize>().prop_map(Op::FreeAgain),
        1 => any::<u64>().prop_map(Op::FreeBogus),
        1 => (0usize..WINDOW).prop_map(Op::Take),
    ]
}

/// A cache with `colors` colors (a power of two or not).
fn map_with(colors: u32) -> ColorMap {
    let l = CacheLevel::new(2, CacheKind::Unified, colors as u64 * 4 * PAGE_SIZE, 4, 64);
    let m = ColorMap::new(&l, PAGE_SIZE).unwrap();
    assert_eq!(m.colors(), colors);
    m
}

fn set_from_bits(bits: u64, colors: u32) -> ColorSet {
    let mut s = ColorSet::EMPTY;
    for c in 0..colors {
        if bits >> (c % 64) & 1 == 1 {
            s.insert(c).unwrap();
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_alloc_free_sequences(
        colors in prop::sample::select(vec![1u32, 3, 16, 32, 48, 64]),
        holes in prop::collection::btree_set(0usize..WINDOW, 0..40),
        ops in prop::collection::vec(arb_op(), 1..300),
    ) {
        let map = map_with(colors);
        let mut links = vec![FrameLink::UNOWNED; WINDOW];
        let mut lists = vec![ColorList::EMPTY; map.colors() as usize];
        let mut pool = FramePool::new(map, BASE, &mut links, &mut lists).unwrap();
        let addr = |i: usize| BASE + i as u64 * PAGE_SIZE;
        let mut free: BTreeSet<u64> = BTreeSet::new();
        for i in 0..WINDOW {
            if !holes.contains(&i) {
                pool.add_frame(addr(i)).unwrap();
                free.insert(addr(i));
            }
        }
        let mut allocated: Vec<u64> = Vec::new();
        let mut ever_freed: Vec<u64> = Vec::new();
        let mut rr = RoundRobin::new();

        for op in ops {
            match op {
                Op::Alloc(bits) => {
                    let set = set_from_bits(bits, colors);
                    let available = free.iter().any(|&f| set.contains(map.color_of(f)));
                    match pool.alloc_in(&set, &mut rr) {
                        Ok(f) => {
                            prop_assert!(set.contains(map.color_of(f)), "frame outside the set");
                            prop_assert!(free.remove(&f), "frame handed out twice or never owned");
                            allocated.push(f);
                        }
                        Err(e) => {
                            prop_assert_eq!(e, PoolError::Exhausted);
                            prop_assert!(!available, "exhausted although a frame was free");
                        }
                    }
                }
                Op::AllocColor(c) => match pool.alloc_color(c) {
                    Ok(f) => {
                        prop_assert_eq!(map.color_of(f), c);
                        prop_assert!(free.remove(&f));
                        allocated.push(f);
                    }
                    Err(PoolError::NoSuchColor(x)) => prop_assert!(x == c && c >= colors),
                    Err(e) => {
                        prop_assert_eq!(e, PoolError::Exhausted);
                        prop_assert!(c >= colors || !free.iter().any(|&f| map.color_of(f) == c));
                    }
                },
                Op::Free(n) => {
                    if !allocated.is_empty() {
                        let f = allocated.swap_remove(n % allocated.len());
                        pool.free(f).unwrap();
                        free.insert(f);
                        ever_freed.push(f);
                    }
                }
                Op::FreeAgain(n) => {
                    let f = if ever_freed.is_empty() {
                        addr(n % WINDOW)
                    } else {
                        ever_freed[n % ever_freed.len()]
                    };
                    let res = pool.free(f);
                    if allocated.contains(&f) {
                        prop_assert_eq!(res, Ok(()));
                        allocated.retain(|&x| x != f);
                        free.insert(f);
                    } else if free.contains(&f) {
                        prop_assert_eq!(res, Err(PoolError::AlreadyFree(f)));
                    } else {
                        prop_assert_eq!(res, Err(PoolError::NotInPool(f)));
                    }
                }
                Op::FreeBogus(a) => {
                    // Unaligned, outside the window, or a hole.
                    let candidates = [
                        a | 1,
                        BASE.wrapping_sub(PAGE_SIZE),
                        addr(WINDOW),
                        a & !(PAGE_SIZE - 1),
                    ];
                    let f = candidates[(a % 4) as usize];
                    if allocated.contains(&f) {
                        continue;
                    }
                    let res = pool.free(f);
                    if !f.is_multiple_of(PAGE_SIZE) {
                        prop_assert_eq!(res, Err(PoolError::NotAligned(f)));
                    } else if free.contains(&f) {
                        prop_assert_eq!(res, Err(PoolError::AlreadyFree(f)));
                    } else {
                        prop_assert_eq!(res, Err(PoolError::NotInPool(f)));
                    }
                }
                Op::Take(i) => {
                    let f = addr(i);
                    let res = pool.take(f);
                    if free.remove(&f) {
                        prop_assert_eq!(res, Ok(()));
                        allocated.push(f);
                    } else if allocated.contains(&f) {
                        prop_assert_eq!(res, Err(PoolError::NotFree(f)));
                    } else {
                        prop_assert_eq!(res, Err(PoolError::NotInPool(f)));
                    }
                }
            }
            pool.check_invariants().map_err(TestCaseError::fail)?;
            prop_assert_eq!(pool.free_total(), free.len() as u64);
            prop_assert_eq!(pool.stats().allocated, allocated.len() as u64);
        }
        for c in 0..colors {
            let n = free.iter().filter(|&&f| map.color_of(f) == c).count() as u32;
            prop_assert_eq!(pool.free_in_color(c), n);
        }
    }

    #[test]
    fn round_robin_spreads_evenly(
        colors in prop::sample::select(vec![16u32, 48, 128, 512]),
        bits in any::<u64>(),
        rounds in 1u32..6,
        start in 0u32..600,
    ) {
        let map = map_with(colors);
        let frames = colors as usize * 8;
        let mut links = vec![FrameLink::UNOWNED; frames];
        let mut lists = vec![ColorList::EMPTY; map.colors() as usize];
        let mut pool = FramePool::new(map, 0, &mut links, &mut lists).unwrap();
        pool.add_range(0, frames as u64 * PAGE_SIZE).unwrap();
        let set = set_from_bits(bits | 1, colors);
        let mut rr = RoundRobin::starting_at(start);
        let mut per_color = vec![0u32; colors as usize];
        for _ in 0..rounds * set.len() as u32 {
            let f = pool.alloc_in(&set, &mut rr).unwrap();
            per_color[map.color_of(f) as usize] += 1;
        }
        for c in 0..colors {
            let expect = if set.contains(c) { rounds } else { 0 };
            prop_assert_eq!(per_color[c as usize], expect);
        }
    }
}

#[test]
fn exhausting_a_set_leaves_other_colors_alone() {
    let map = map_with(16);
    let mut links = vec![FrameLink::UNOWNED; 160];
    let mut lists = vec![ColorList::EMPTY; map.colors() as usize];
    let mut pool = FramePool::new(map, 0, &mut links, &mut lists).unwrap();
    pool.add_range(0, 160 * PAGE_SIZE).unwrap();
    let rt = ColorSet::range(0, 3).unwrap();
    let ts = ColorSet::range(4, 15).unwrap();
    let (mut a, mut b) = (RoundRobin::new(), RoundRobin::new());
    let mut n = 0;
    while pool.alloc_in(&rt, &mut a).is_ok() {
        n += 1;
    }
    assert_eq!(n, 40);
    assert_eq!(pool.free_in(&rt), 0);
    assert_eq!(pool.free_in(&ts), 120);
    for _ in 0..120 {
        let f = pool.alloc_in(&ts, &mut b).unwrap();
        assert!(ts.contains(map.color_of(f)));
    }
    assert_eq!(pool.alloc_in(&ts, &mut b), Err(PoolError::Exhausted));
    assert_eq!(pool.free_total(), 0);
}
