//! The fuzzer's random numbers: xoshiro256** (Blackman and Vigna) seeded
//! through SplitMix64, so one 64-bit seed gives the same stream on every
//! machine and in every build, guest or host.

/// A seeded generator; `Clone` forks the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        Rng { s: [splitmix(&mut x), splitmix(&mut x), splitmix(&mut x), splitmix(&mut x)] }
    }

    /// Stream `k` of `seed`: one per fuzzing thread, independent of the
    /// others, so each thread's calls depend only on the seed.
    pub fn stream(seed: u64, k: u64) -> Rng {
        let mut x = seed ^ 0x5157_4e5f_7072_6973;
        for _ in 0..=k {
            splitmix(&mut x);
        }
        Rng::new(splitmix(&mut x))
    }

    pub fn next_u64(&mut self) -> u64 {
        let r = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        r
    }

    /// Uniform in `0..n` (0 for `n == 0`), by multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    /// An index chosen with the given weights (not all zero).
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| w as u64).sum();
        let mut x = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if x < w as u64 {
                return i;
            }
            x -= w as u64;
        }
        weights.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_streams_differ() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        let (mut s0, mut s1) = (Rng::stream(7, 0), Rng::stream(7, 1));
        assert!((0..100).any(|_| s0.next_u64() != s1.next_u64()));
        // The first outputs of seed 0 are not degenerate.
        let mut z = Rng::new(0);
        assert!((0..4).map(|_| z.next_u64()).all(|x| x != 0));
    }

    #[test]
    fn below_and_weighted_cover_their_range_evenly() {
        let mut r = Rng::new(1);
        let mut hist = [0u32; 6];
        for _ in 0..60_000 {
            hist[r.below(6) as usize] += 1;
        }
        assert!(hist.iter().all(|&h| (9_000..11_000).contains(&h)), "{hist:?}");
        let mut w = [0u32; 3];
        for _ in 0..40_000 {
            w[r.weighted(&[1, 0, 3])] += 1;
        }
        assert_eq!(w[1], 0);
        assert!((9_000..11_000).contains(&w[0]), "{w:?}");
        assert_eq!(r.below(0), 0);
        assert!((0..1000).all(|_| (5..=9).contains(&r.range(5, 9))));
    }
}
