//! Sort of generator words with `core`'s unstable sort (pattern-defeating
//! quicksort), from a fresh copy of the input every job.
//!
//! Arguments: `n=` elements (one of [`crate::reference::SORT_N`], default
//! 4096). The sorted output's digest is checked against the host's
//! (build.rs, sorting with std's stable sort: a sorted sequence is unique).

use crate::reference::{digest_u32, fill_u32, SEED_A};
use crate::{expected, param};
use harness::{Args, Error, Heap, Workload};

pub struct Sort {
    input: &'static [u32],
    work: &'static mut [u32],
    expected: u64,
}

impl Workload for Sort {
    const NAME: &'static str = "sort";

    fn setup(args: &Args<'_>, heap: &mut Heap) -> Result<Self, Error> {
        let (n, expected) = param(args, "n", 4096, expected::SORT)?;
        let input = heap.take(n, 0u32, 64)?;
        fill_u32(SEED_A, input);
        let work = heap.take(n, 0u32, 64)?;
        Ok(Sort { input, work, expected })
    }

    fn job(&mut self) {
        self.work.copy_from_slice(self.input);
        self.work.sort_unstable();
    }

    fn result(&self) -> u64 {
        digest_u32(self.work)
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
        for n in crate::reference::SORT_N {
            crate::testing::checks::<Sort>(&format!("n={n}"), n * 8 + 256);
        }
        let w = crate::testing::run::<Sort>("n=1024", 1 << 16).unwrap();
        assert!(w.work.windows(2).all(|p| p[0] <= p[1]));
    }
}
