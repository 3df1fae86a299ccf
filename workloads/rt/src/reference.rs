// The workloads' inputs and reference results, in plain Rust without
// dependencies: the library uses the input generators in the guest, and
// `build.rs` includes this file to compute the expected results on the
// host (so a guest job is checked against a value the guest did not
// compute). Every parameter value a workload accepts has its expected
// value computed here; anything else is refused at setup.

/// Matrix sizes the matrix multiply accepts.
pub const MATMUL_N: [usize; 8] = [8, 16, 24, 32, 48, 64, 96, 128];
/// Input lengths (bytes) SHA-256 accepts.
pub const SHA_LEN: [usize; 6] = [256, 1024, 4096, 16384, 65536, 262144];
/// Block counts AES accepts.
pub const AES_BLOCKS: [usize; 6] = [16, 64, 256, 1024, 4096, 16384];
/// FFT sizes (complex points) the FFT accepts.
pub const FFT_N: [usize; 7] = [64, 128, 256, 512, 1024, 2048, 4096];
/// Element counts the sort accepts.
pub const SORT_N: [usize; 6] = [256, 1024, 4096, 16384, 65536, 262144];
/// Sample counts the FIR filter accepts.
pub const FIR_N: [usize; 6] = [256, 1024, 4096, 16384, 65536, 262144];
/// FIR taps.
pub const FIR_TAPS: usize = 32;

/// Seeds of the input generators (one per input, so inputs differ).
pub const SEED_A: u64 = 0x9e37_79b9_7f4a_7c15;
pub const SEED_B: u64 = 0xd1b5_4a32_d192_ed03;

/// xorshift64* (Vigna): a small, well-known generator.
pub fn next(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// FNV-1a (64 bit) over the little-endian bytes of `words`.
pub fn fnv1a(words: impl IntoIterator<Item = u64>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        for b in w.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Fills `m` with values in [-1, 1) that are exact in f64 (k / 2^20).
pub fn fill_f64(seed: u64, m: &mut [f64]) {
    let mut s = seed;
    for v in m.iter_mut() {
        *v = ((next(&mut s) >> 43) as i64 - (1 << 20)) as f64 / (1u64 << 20) as f64;
    }
}

/// `c = a * b` for `n x n` row-major matrices: every element summed from
/// zero over k = 0..n in order, one rounding per multiply and per add (no
/// fused multiply-add), which is what the guest's SSE2 kernel does.
pub fn matmul(n: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
    for i in 0..n {
        for j in 0..n {
            let mut s = 0.0f64;
            for k in 0..n {
                s += a[i * n + k] * b[k * n + j];
            }
            c[i * n + j] = s;
        }
    }
}

/// The digest of f64 values: FNV-1a over their bits.
pub fn digest_f64(v: &[f64]) -> u64 {
    fnv1a(v.iter().map(|x| x.to_bits()))
}

/// Fills `buf` with generator bytes.
pub fn fill_bytes(seed: u64, buf: &mut [u8]) {
    let mut s = seed;
    for chunk in buf.chunks_mut(8) {
        let w = next(&mut s).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

/// Fills `v` with generator words.
pub fn fill_u32(seed: u64, v: &mut [u32]) {
    let mut s = seed;
    for x in v.iter_mut() {
        *x = (next(&mut s) >> 32) as u32;
    }
}

/// The digest of u32 values.
pub fn digest_u32(v: &[u32]) -> u64 {
    fnv1a(v.iter().map(|&x| x as u64))
}

/// FIR taps in Q15: a windowed low-pass shape, symmetric.
pub fn fir_taps() -> [i16; FIR_TAPS] {
    let mut t = [0i16; FIR_TAPS];
    for (i, v) in t.iter_mut().enumerate() {
        let d = (i as i32 - (FIR_TAPS as i32 - 1) / 2).abs();
        *v = (2048 - 120 * d) as i16;
    }
    t
}

/// Fills `x` with Q15 samples.
pub fn fill_q15(seed: u64, x: &mut [i16]) {
    let mut s = seed;
    for v in x.iter_mut() {
        *v = (next(&mut s) >> 48) as u16 as i16;
    }
}

/// `y[i] = sum_k taps[k] * x[i - k]` in Q15 with a 32-bit accumulator
/// (samples before the start are zero), rounded and saturated to 16 bits.
pub fn fir(taps: &[i16; FIR_TAPS], x: &[i16], y: &mut [i16]) {
    for i in 0..x.len() {
        let mut acc: i64 = 0;
        for (k, &t) in taps.iter().enumerate() {
            if k <= i {
                acc += t as i64 * x[i - k] as i64;
            }
        }
        y[i] = ((acc + (1 << 14)) >> 15).clamp(i16::MIN as i64, i16::MAX as i64) as i16;
    }
}

/// The digest of Q15 samples.
pub fn digest_i16(v: &[i16]) -> u64 {
    fnv1a(v.iter().map(|&x| x as u16 as u64))
}

/// The FFT's input: a sum of three tones and generator noise, as (re, im)
/// pairs of exact binary fractions.
pub fn fill_signal(seed: u64, re_im: &mut [(f32, f32)]) {
    let mut s = seed;
    for (i, v) in re_im.iter_mut().enumerate() {
        let tone = ((i * 3) % 17) as f32 / 16.0 - ((i * 7) % 5) as f32 / 8.0;
        let noise = ((next(&mut s) >> 52) as f32 - 2048.0) / 4096.0;
        *v = (tone + noise, 0.0);
    }
}

/// The digest of f32 values: FNV-1a over their bits.
pub fn digest_f32(v: impl IntoIterator<Item = f32>) -> u64 {
    fnv1a(v.into_iter().map(|x| x.to_bits() as u64))
}

/// Sattolo's algorithm: `next[i]` becomes a permutation of `0..n` that is
/// one single cycle through every node.
pub fn sattolo(seed: u64, next_of: &mut [u32]) {
    let n = next_of.len();
    for (i, v) in next_of.iter_mut().enumerate() {
        *v = i as u32;
    }
    let mut s = seed;
    for i in (1..n).rev() {
        let j = (next(&mut s) % i as u64) as usize;
        next_of.swap(i, j);
    }
}
