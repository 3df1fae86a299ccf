//! Ready queues: one FIFO per priority (64 levels) and a bitmap of the
//! non-empty levels, so picking the highest-priority ready thread is one
//! `leading_zeros` plus a head lookup, and every operation is O(1).
//!
//! Also the budget-period arithmetic ([`next_replenish`]).
//!
//! Queues hold thread slot indices. Invariants (checked by `check` in
//! tests): a slot is in at most one queue; `bitmap` bit `p` is set exactly
//! when queue `p` is non-empty; `next`/`prev` form a ring per queue.

use crate::types::{Link, Slot};

pub const LEVELS: usize = 64;

pub struct ReadyQueues<const N: usize> {
    head: [Link; LEVELS],
    /// The ring of each queue (meaningful only for a queued slot).
    next: [Slot; N],
    prev: [Slot; N],
    level: [u8; N],
    queued: [bool; N],
    bitmap: u64,
}

impl<const N: usize> ReadyQueues<N> {
    pub const fn new() -> Self {
        ReadyQueues {
            head: [Link::NONE; LEVELS],
            next: [Slot::ZERO; N],
            prev: [Slot::ZERO; N],
            level: [0; N],
            queued: [false; N],
            bitmap: 0,
        }
    }

    pub fn is_queued(&self, s: Slot) -> bool {
        self.queued[s.index()]
    }

    /// Appends slot `s` at the tail of level `prio` (no-op if queued).
    pub fn enqueue(&mut self, s: Slot, prio: u8) {
        let i = s.index();
        if self.queued[i] {
            return;
        }
        let p = prio as usize % LEVELS;
        match self.head[p].get() {
            None => {
                self.head[p] = Link::to(s);
                self.next[i] = s;
                self.prev[i] = s;
                self.bitmap |= 1 << p;
            }
            Some(h) => {
                let tail = self.prev[h.index()];
                self.next[tail.index()] = s;
                self.prev[i] = tail;
                self.next[i] = h;
                self.prev[h.index()] = s;
            }
        }
        self.level[i] = p as u8;
        self.queued[i] = true;
    }

    /// Takes slot `s` out of its queue (no-op if not queued).
    pub fn remove(&mut self, s: Slot) {
        let i = s.index();
        if !self.queued[i] {
            return;
        }
        let p = self.level[i] as usize;
        if self.next[i] == s {
            self.head[p] = Link::NONE;
            self.bitmap &= !(1 << p);
        } else {
            let (n, pr) = (self.next[i], self.prev[i]);
            self.next[pr.index()] = n;
            self.prev[n.index()] = pr;
            if self.head[p].is(s) {
                self.head[p] = Link::to(n);
            }
        }
        self.queued[i] = false;
    }

    /// Highest non-empty level.
    pub fn highest_level(&self) -> Option<u8> {
        (self.bitmap != 0).then(|| 63 - self.bitmap.leading_zeros() as u8)
    }

    /// Head of the highest non-empty level.
    pub fn highest(&self) -> Option<Slot> {
        self.highest_level().and_then(|p| self.head[p as usize].get())
    }

    /// Moves the head of `s`'s level to the tail if `s` is the head (round
    /// robin after `s` used up its slice or yielded).
    pub fn rotate(&mut self, s: Slot) {
        let i = s.index();
        if !self.queued[i] {
            return;
        }
        let p = self.level[i] as usize;
        if self.head[p].is(s) {
            self.head[p] = Link::to(self.next[i]);
        } else {
            // Not at the head: move it to the tail explicitly.
            self.remove(s);
            self.enqueue(s, p as u8);
        }
    }

    /// The invariants of the module doc (the host tests and the test
    /// kernel's debug call check them).
    #[cfg(any(test, feature = "ktest"))]
    pub fn check(&self) -> Result<(), &'static str> {
        let mut seen = [false; N];
        for p in 0..LEVELS {
            let h = self.head[p];
            if h.is_none() == (self.bitmap & (1 << p) != 0) {
                return Err("a bitmap bit disagrees with its queue");
            }
            let Some(h) = h.get() else { continue };
            let mut i = h;
            loop {
                let iu = i.index();
                if seen[iu] || !self.queued[iu] || self.level[iu] as usize != p {
                    return Err("a slot is in two places or mislabelled");
                }
                seen[iu] = true;
                let n = self.next[iu];
                if self.prev[n.index()] != i {
                    return Err("broken ring");
                }
                i = n;
                if i == h {
                    break;
                }
            }
        }
        if (0..N).any(|i| self.queued[i] != seen[i]) {
            return Err("queued flag disagrees with the queues");
        }
        Ok(())
    }
}

/// When a budget replenishment that was due at `due` (not after `now`)
/// next comes: whole periods after `due`, the first one after `now`.
/// Periods are user-chosen (up to `u64::MAX` ticks), so a time past the
/// end of the clock saturates at `u64::MAX` (centuries away: never, in
/// practice) instead of wrapping into the past.
pub fn next_replenish(due: u64, period: u64, now: u64) -> u64 {
    let missed = now.saturating_sub(due) / period.max(1) + 1;
    due.saturating_add(missed.saturating_mul(period))
}

impl<const N: usize> Default for ReadyQueues<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn s(i: usize) -> Slot {
        Slot::new(i).unwrap()
    }

    #[test]
    fn highest_priority_first_and_round_robin() {
        let mut q = ReadyQueues::<8>::new();
        q.enqueue(s(1), 10);
        q.enqueue(s(2), 10);
        q.enqueue(s(3), 5);
        assert_eq!(q.highest(), Some(s(1)));
        q.rotate(s(1));
        assert_eq!(q.highest(), Some(s(2)));
        q.remove(s(2));
        assert_eq!(q.highest(), Some(s(1)));
        q.remove(s(1));
        assert_eq!(q.highest(), Some(s(3)));
        q.remove(s(3));
        assert_eq!(q.highest(), None);
    }

    #[test]
    fn replenishment_at_the_extremes() {
        assert_eq!(next_replenish(100, 10, 125), 130);
        assert_eq!(next_replenish(100, 10, 100), 110);
        assert_eq!(next_replenish(100, 10, 130), 140);
        // Found by a fuzzer: budget 10,000 with period u64::MAX wrapped.
        assert_eq!(next_replenish(100, u64::MAX, 200), u64::MAX);
        assert_eq!(next_replenish(u64::MAX - 5, 10, u64::MAX - 1), u64::MAX);
        assert_eq!(next_replenish(0, u64::MAX / 2 + 1, u64::MAX), u64::MAX);
        assert_eq!(next_replenish(0, 1, u64::MAX - 1), u64::MAX);
    }

    proptest! {
        #[test]
        fn replenishment_is_the_next_period_boundary_or_saturates(
            due in any::<u64>(), late in any::<u64>(), period in 1u64..=u64::MAX,
        ) {
            let now = due.saturating_add(late);
            let next = next_replenish(due, period, now);
            prop_assert!(next > now || next == u64::MAX);
            if next != u64::MAX {
                prop_assert_eq!((next - due) % period, 0);
                prop_assert!(next - now <= period);
            }
        }

        /// Against a model of per-level FIFOs.
        #[test]
        fn matches_model(ops in prop::collection::vec((0u8..4, 0usize..16, 0u8..64), 1..400)) {
            let mut q = ReadyQueues::<16>::new();
            let mut model: Vec<VecDeque<usize>> = vec![VecDeque::new(); LEVELS];
            for (op, i, p) in ops {
                let si = s(i);
                let pos = |m: &Vec<VecDeque<usize>>| m.iter().position(|l| l.contains(&i));
                match op {
                    0 => { q.enqueue(si, p); if pos(&model).is_none() { model[p as usize].push_back(i); } }
                    1 => { q.remove(si); if let Some(l) = pos(&model) { model[l].retain(|&x| x != i); } }
                    2 => { q.rotate(si); if let Some(l) = pos(&model) { model[l].retain(|&x| x != i); model[l].push_back(i); } }
                    _ => {}
                }
                prop_assert!(q.check().is_ok(), "{:?}", q.check());
                let want = model.iter().rev().find_map(|l| l.front().copied()).map(s);
                prop_assert_eq!(q.highest(), want);
            }
        }
    }
}
