//! Pointer chase: a walk through a working set of cache lines in a random
//! single-cycle order (Sattolo), one dependent load per line, so every job
//! touches every line once and nothing can be prefetched or overlapped.
//! The job is all memory latency: the workload that shows cache
//! interference most plainly.
//!
//! Arguments: `ws=` the working set in bytes (default 128 KiB: a quarter of
//! the RT partition's share of the default description's coloured level,
//! half of a 1 MiB L2), a multiple of 64, at least two lines.
//!
//! Check: a walk of N steps from line 0 visits every line once and ends
//! back at line 0, so the sum of the visited indices is N(N-1)/2: a
//! property of the permutation (tested on the host for Sattolo's
//! algorithm), not a value the guest computes.

use crate::reference::{fnv1a, next, SEED_A};
use crate::usize_arg;
use harness::{Args, Error, Heap, Workload};

/// One cache line: the index of the next line, and padding.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct Node {
    next: u64,
    _pad: [u64; 7],
}

pub struct Chase {
    nodes: &'static mut [Node],
    last: (u64, u64),
}

/// Lines `0..nodes.len()` linked into one cycle in random order.
pub fn link(seed: u64, nodes: &mut [Node]) {
    for (i, n) in nodes.iter_mut().enumerate() {
        n.next = i as u64;
    }
    let mut s = seed;
    for i in (1..nodes.len()).rev() {
        let j = (next(&mut s) % i as u64) as usize;
        let t = nodes[i].next;
        nodes[i].next = nodes[j].next;
        nodes[j].next = t;
    }
}

/// Walks `steps` links from line 0: (sum of the indices visited, end).
pub fn walk(nodes: &[Node], steps: usize) -> (u64, u64) {
    let (mut p, mut sum) = (0u64, 0u64);
    for _ in 0..steps {
        p = nodes[p as usize].next;
        sum = sum.wrapping_add(p);
    }
    (sum, p)
}

impl Workload for Chase {
    const NAME: &'static str = "chase";

    fn setup(args: &Args<'_>, heap: &mut Heap) -> Result<Self, Error> {
        let ws = usize_arg(args, "ws", 128 << 10)?;
        if ws % 64 != 0 || ws < 128 {
            return Err(Error::BadArg { key: "ws", why: "must be a multiple of 64 bytes, at least 128" });
        }
        let nodes = heap.take(ws / 64, Node { next: 0, _pad: [0; 7] }, 64)?;
        link(SEED_A, nodes);
        Ok(Chase { nodes, last: (0, u64::MAX) })
    }

    fn job(&mut self) {
        self.last = walk(self.nodes, self.nodes.len());
    }

    fn result(&self) -> u64 {
        fnv1a([self.last.0, self.last.1])
    }

    fn expected(&self) -> u64 {
        let n = self.nodes.len() as u64;
        fnv1a([n * (n - 1) / 2, 0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sattolo_links_every_line_into_one_cycle(n in 2usize..3000, seed in any::<u64>()) {
            let mut nodes = vec![Node { next: 0, _pad: [0; 7] }; n];
            link(seed | 1, &mut nodes);
            let mut seen = vec![false; n];
            let mut p = 0usize;
            for _ in 0..n {
                prop_assert!(!seen[p]);
                seen[p] = true;
                p = nodes[p].next as usize;
            }
            prop_assert_eq!(p, 0);
        }
    }

    #[test]
    fn checks_and_refuses_bad_sizes() {
        for ws in ["128", "4K", "128K", "1M"] {
            crate::testing::checks::<Chase>(&format!("ws={ws}"), 1 << 20);
        }
        assert!(crate::testing::run::<Chase>("ws=100", 1 << 20).is_err());
        assert!(crate::testing::run::<Chase>("ws=64", 1 << 20).is_err());
    }

    #[test]
    fn a_broken_link_is_a_wrong_result() {
        let mut w = crate::testing::run::<Chase>("ws=4K", 1 << 16).unwrap();
        // Make line 0 point at itself: the walk never leaves it.
        w.nodes[0].next = 0;
        w.job();
        assert_ne!(w.result(), w.expected());
    }
}
