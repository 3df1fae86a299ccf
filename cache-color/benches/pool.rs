//! Colored alloc/free throughput of [`FramePool`].
//!
//! Pool: 1 GiB of 4 KiB frames colored by the Zen 4 LLC (512 colors).
//! - `alloc_free_pair`: one `alloc_in` of a 256-color set followed by its
//!   `free` (steady state, lists stay full);
//! - `alloc_then_free_4096`: 4096 round-robin allocations from a 64-color
//!   set, then the 4096 frees (throughput counts each frame once: alloc+free);
//! - `alloc_free_pair_last_color`: the same with the longest color search;
//! - `alloc_color` / `free` pairs for one color.

use std::hint::black_box;

use cache_color::{ColorList, ColorMap, ColorSet, FrameLink, FramePool, RoundRobin, ZEN4};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const FRAMES: usize = (1 << 30) / 4096;

fn bench_pool(c: &mut Criterion) {
    let map = ColorMap::for_geometry(&ZEN4).unwrap();
    let mut links = vec![FrameLink::UNOWNED; FRAMES];
    let mut lists = vec![ColorList::EMPTY; map.colors() as usize];
    let mut pool = FramePool::new(map, 0, &mut links, &mut lists).unwrap();
    pool.add_range(0, (FRAMES * 4096) as u64).unwrap();

    let wide = ColorSet::range(0, 255).unwrap();
    let narrow = ColorSet::range(448, 511).unwrap();

    let mut g = c.benchmark_group("colored_pool");
    g.throughput(Throughput::Elements(1));
    g.bench_function("alloc_free_pair", |b| {
        let mut rr = RoundRobin::new();
        b.iter(|| {
            let f = pool.alloc_in(black_box(&wide), &mut rr).unwrap();
            pool.free(black_box(f)).unwrap();
        })
    });
    // Worst case of the color search for this geometry: the only color of
    // the set is the last one and the cursor always wraps back to 0, so
    // every search scans all 8 bitmap words.
    let last = ColorSet::range(511, 511).unwrap();
    g.bench_function("alloc_free_pair_last_color", |b| {
        let mut rr = RoundRobin::new();
        b.iter(|| {
            let f = pool.alloc_in(black_box(&last), &mut rr).unwrap();
            pool.free(black_box(f)).unwrap();
        })
    });
    g.bench_function("alloc_color_free_pair", |b| {
        b.iter(|| {
            let f = pool.alloc_color(black_box(17)).unwrap();
            pool.free(black_box(f)).unwrap();
        })
    });
    const BATCH: usize = 4096;
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("alloc_then_free_4096", |b| {
        let mut rr = RoundRobin::new();
        let mut got = vec![0u64; BATCH];
        b.iter(|| {
            for slot in got.iter_mut() {
                *slot = pool.alloc_in(black_box(&narrow), &mut rr).unwrap();
            }
            for &f in got.iter() {
                pool.free(f).unwrap();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench_pool);
criterion_main!(benches);
