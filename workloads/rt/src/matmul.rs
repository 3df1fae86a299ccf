//! `n x n` f64 matrix multiply, `C = A * B` (the paper's example; default
//! `n=64`, three matrices of 32 KiB).
//!
//! The job runs an SSE2 kernel in `asm!` (the bare-metal target is built
//! soft-float, so plain Rust f64 would be library calls): blocks of eight
//! columns of one row of C in four registers, summed over k in order with
//! one rounding per multiply and per add, which is exactly
//! [`reference::matmul`]. The kernel only uses xmm registers, which the
//! kernel saves lazily for the threads that touch them.
//!
//! Arguments: `n=` (one of [`reference::MATMUL_N`]).

use crate::reference::{digest_f64, fill_f64, MATMUL_N, SEED_A, SEED_B};
use crate::{expected, param};
use harness::{Args, Error, Heap, Workload};

pub struct Matmul {
    n: usize,
    a: &'static [f64],
    b: &'static [f64],
    c: &'static mut [f64],
    expected: u64,
}

/// One row block: `c[0..8] = sum_k a[k] * b[k * n .. k * n + 8]`.
///
/// # Safety
/// `a` must hold `n` values, `b` rows of `n` values (`n` rows from the
/// block's first column), `c` eight values.
#[inline(always)]
unsafe fn block8(n: usize, a: *const f64, b: *const f64, c: *mut f64) {
    // SAFETY: the caller's bounds; SSE2 exists on every x86_64 CPU.
    unsafe {
        core::arch::asm!(
            "xorpd xmm0, xmm0",
            "xorpd xmm1, xmm1",
            "xorpd xmm2, xmm2",
            "xorpd xmm3, xmm3",
            "2:",
            "movsd xmm4, qword ptr [{a}]",
            "unpcklpd xmm4, xmm4",
            "movupd xmm5, [{b}]",
            "mulpd xmm5, xmm4",
            "addpd xmm0, xmm5",
            "movupd xmm5, [{b} + 16]",
            "mulpd xmm5, xmm4",
            "addpd xmm1, xmm5",
            "movupd xmm5, [{b} + 32]",
            "mulpd xmm5, xmm4",
            "addpd xmm2, xmm5",
            "movupd xmm5, [{b} + 48]",
            "mulpd xmm5, xmm4",
            "addpd xmm3, xmm5",
            "add {a}, 8",
            "add {b}, {stride}",
            "dec {k}",
            "jnz 2b",
            "movupd [{c}], xmm0",
            "movupd [{c} + 16], xmm1",
            "movupd [{c} + 32], xmm2",
            "movupd [{c} + 48], xmm3",
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            k = inout(reg) n => _,
            stride = in(reg) n * 8,
            c = in(reg) c,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _, out("xmm4") _, out("xmm5") _,
            options(nostack),
        );
    }
}

/// `c = a * b` with the SSE2 kernel (`n` a multiple of 8, at least 8).
pub fn multiply(n: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
    assert!(n >= 8 && n.is_multiple_of(8) && a.len() >= n * n && b.len() >= n * n && c.len() >= n * n);
    for i in 0..n {
        for j in (0..n).step_by(8) {
            // SAFETY: row i of a (n values), column block j of b (n rows
            // of n values, 8 used), 8 values of row i of c: all in bounds
            // by the assertion.
            unsafe { block8(n, a.as_ptr().add(i * n), b.as_ptr().add(j), c.as_mut_ptr().add(i * n + j)) };
        }
    }
}

impl Workload for Matmul {
    const NAME: &'static str = "matmul";

    fn setup(args: &Args<'_>, heap: &mut Heap) -> Result<Self, Error> {
        let (n, expected) = param(args, "n", 64, expected::MATMUL)?;
        debug_assert!(MATMUL_N.contains(&n));
        let a = heap.take(n * n, 0.0f64, 64)?;
        let b = heap.take(n * n, 0.0f64, 64)?;
        let c = heap.take(n * n, 0.0f64, 64)?;
        fill_f64(SEED_A, a);
        fill_f64(SEED_B, b);
        Ok(Matmul { n, a, b, c, expected })
    }

    fn job(&mut self) {
        multiply(self.n, self.a, self.b, self.c);
    }

    fn result(&self) -> u64 {
        digest_f64(self.c)
    }

    fn expected(&self) -> u64 {
        self.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    #[test]
    fn sse2_kernel_is_bit_identical_to_the_reference() {
        for n in MATMUL_N {
            let (mut a, mut b) = (vec![0.0; n * n], vec![0.0; n * n]);
            fill_f64(SEED_A, &mut a);
            fill_f64(SEED_B, &mut b);
            let (mut c1, mut c2) = (vec![1.0; n * n], vec![2.0; n * n]);
            reference::matmul(n, &a, &b, &mut c1);
            multiply(n, &a, &b, &mut c2);
            assert!(c1.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()), "n={n}");
        }
    }

    #[test]
    fn every_size_checks_and_others_are_refused() {
        for n in MATMUL_N {
            crate::testing::checks::<Matmul>(&format!("n={n}"), 3 * n * n * 8 + 256);
        }
        assert!(matches!(crate::testing::run::<Matmul>("n=40", 1 << 20), Err(Error::NoExpected { key: "n", .. })));
        assert!(matches!(crate::testing::run::<Matmul>("n=64", 1000), Err(Error::Heap { .. })));
    }

    #[test]
    fn identity_times_b_is_b() {
        let n = 16;
        let mut id = vec![0.0; n * n];
        for i in 0..n {
            id[i * n + i] = 1.0;
        }
        let mut b = vec![0.0; n * n];
        fill_f64(SEED_B, &mut b);
        let mut c = vec![0.0; n * n];
        multiply(n, &id, &b, &mut c);
        assert_eq!(c, b);
    }
}
