//! Complex FFT (the `microfft` crate, radix-2, f32) of a signal of three
//! tones and noise. f32 arithmetic is software floating point on the
//! bare-metal target, correctly rounded like the host's SSE, so the guest's
//! output is bit-identical to the host's.
//!
//! Arguments: `n=` points (one of [`crate::reference::FFT_N`], default
//! 1024). Each job transforms a fresh copy of the input; its output bits
//! are checked against the host's (build.rs, the same crate built for the
//! host).

use crate::reference::{digest_f32, fill_signal, SEED_A};
use crate::{expected, param};
use harness::{Args, Error, Heap, Workload};
use microfft::{complex::*, Complex32};

pub struct Fft {
    input: &'static [Complex32],
    work: &'static mut [Complex32],
    expected: u64,
}

/// The transform of `v` in place (its length one of the FFT sizes).
fn transform(v: &mut [Complex32]) {
    macro_rules! sizes {
        ($($n:literal => $f:ident),*) => {
            match v.len() {
                $($n => { if let Ok(a) = v.try_into() { let _ = $f(a); } })*
                _ => {}
            }
        };
    }
    sizes!(64 => cfft_64, 128 => cfft_128, 256 => cfft_256, 512 => cfft_512, 1024 => cfft_1024, 2048 => cfft_2048, 4096 => cfft_4096);
}

impl Workload for Fft {
    const NAME: &'static str = "fft";

    fn setup(args: &Args<'_>, heap: &mut Heap) -> Result<Self, Error> {
        let (n, expected) = param(args, "n", 1024, expected::FFT)?;
        let input = heap.take(n, Complex32::new(0.0, 0.0), 64)?;
        let work = heap.take(n, Complex32::new(0.0, 0.0), 64)?;
        let pairs = heap.take(n, (0f32, 0f32), 64)?;
        fill_signal(SEED_A, pairs);
        for (c, &(re, im)) in input.iter_mut().zip(pairs.iter()) {
            *c = Complex32::new(re, im);
        }
        Ok(Fft { input, work, expected })
    }

    fn job(&mut self) {
        self.work.copy_from_slice(self.input);
        transform(self.work);
    }

    fn result(&self) -> u64 {
        digest_f32(self.work.iter().flat_map(|c| [c.re, c.im]))
    }

    fn expected(&self) -> u64 {
        self.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_checks() {
        for n in crate::reference::FFT_N {
            crate::testing::checks::<Fft>(&format!("n={n}"), n * 24 + 256);
        }
        assert!(crate::testing::run::<Fft>("n=100", 1 << 20).is_err());
    }

    #[test]
    fn a_pure_tone_lands_in_its_bin() {
        // The FFT really transforms: cos(2 pi 5 t / 64) has its energy in
        // bins 5 and 59.
        let mut v: Vec<Complex32> =
            (0..64).map(|i| Complex32::new((2.0 * core::f32::consts::PI * 5.0 * i as f32 / 64.0).cos(), 0.0)).collect();
        transform(&mut v);
        let peak = (0..64).max_by(|&a, &b| v[a].norm_sqr().total_cmp(&v[b].norm_sqr())).unwrap();
        assert!(peak == 5 || peak == 59, "peak at {peak}");
        assert!((v[5].norm_sqr().sqrt() - 32.0).abs() < 1e-3);
    }
}
