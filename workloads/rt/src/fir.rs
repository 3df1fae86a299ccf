//! FIR filter: 32 taps in Q15 fixed point over a block of samples (the
//! inner loop of every software radio and audio path).
//!
//! Arguments: `n=` samples (one of [`crate::reference::FIR_N`], default
//! 4096). The output's digest is checked against the host's (build.rs,
//! [`crate::reference::fir`]); the job runs a streaming form of the same
//! filter (a delay line instead of indexing back into the input).

use crate::reference::{digest_i16, fill_q15, fir_taps, FIR_TAPS, SEED_A};
use crate::{expected, param};
use harness::{Args, Error, Heap, Workload};

pub struct Fir {
    taps: [i16; FIR_TAPS],
    x: &'static [i16],
    y: &'static mut [i16],
    expected: u64,
}

/// The filter over `x` into `y` with a delay line of the last samples.
pub fn filter(taps: &[i16; FIR_TAPS], x: &[i16], y: &mut [i16]) {
    let mut line = [0i16; FIR_TAPS];
    for (xi, yi) in x.iter().zip(y.iter_mut()) {
        line.copy_within(0..FIR_TAPS - 1, 1);
        line[0] = *xi;
        let acc: i64 = taps.iter().zip(line.iter()).map(|(&t, &s)| t as i64 * s as i64).sum();
        *yi = ((acc + (1 << 14)) >> 15).clamp(i16::MIN as i64, i16::MAX as i64) as i16;
    }
}

impl Workload for Fir {
    const NAME: &'static str = "fir";

    fn setup(args: &Args<'_>, heap: &mut Heap) -> Result<Self, Error> {
        let (n, expected) = param(args, "n", 4096, expected::FIR)?;
        let x = heap.take(n, 0i16, 64)?;
        fill_q15(SEED_A, x);
        let y = heap.take(n, 0i16, 64)?;
        Ok(Fir { taps: fir_taps(), x, y, expected })
    }

    fn job(&mut self) {
        filter(&self.taps, self.x, self.y);
    }

    fn result(&self) -> u64 {
        digest_i16(self.y)
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
        for n in crate::reference::FIR_N {
            crate::testing::checks::<Fir>(&format!("n={n}"), n * 4 + 256);
        }
    }

    #[test]
    fn an_impulse_gives_the_taps() {
        let taps = fir_taps();
        let mut x = vec![0i16; 40];
        x[0] = i16::MAX;
        let mut y = vec![0i16; 40];
        filter(&taps, &x, &mut y);
        for k in 0..FIR_TAPS {
            assert!((y[k] as i32 - taps[k] as i32).abs() <= 1, "tap {k}: {} vs {}", y[k], taps[k]);
        }
        assert!(y[FIR_TAPS..].iter().all(|&v| v == 0));
    }
}
