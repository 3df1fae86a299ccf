//! Ready queues: one FIFO per priority (64 levels) and a bitmap of the
//! non-empty levels, so picking the highest-priority ready thread is one
//! `leading_zeros` plus a head lookup, and every operation is O(1).
//!
//! Also the budget-period arithmetic ([`next_replenish`]).
//!
//! Queues hold thread slot indices. Invariants (checked by `check` in
//! tests): a slot is in at most one queue; `bitmap` bit `p` is set exactly
//! when queue `p` is non-empty; `next`/`prev` form a ring per queue.

pub const LEVELS: usize = 64;
const NONE: u16 = u16::MAX;

pub struct ReadyQueues<const N: usize> {
    head: [u16; LEVELS],
    next: [u16; N],
    prev: [u16; N],
    level: [u8; N],
    queued: [bool; N],
    bitmap: u64,
}

impl<const N: usize> ReadyQueues<N> {
    pub const fn new() -> Self {
        ReadyQueues {
            head: [NONE; LEVELS],
            next: [NONE; N],
            prev: [NONE; N],
            level: [0; N],
            queued: [false; N],
            bitmap: 0,
        }
    }

    pub fn is_queued(&self, i: usize) -> bool {
        self.queued[i]
    }

    /// Appends slot `i` at the tail of level `prio` (no-op if queued).
    pub fn enqueue(&mut self, i: usize, prio: u8) {
        if self.queued[i] {
            return;
        }
        let p = prio as usize % LEVELS;
        let h = self.head[p];
        if h == NONE {
            self.head[p] = i as u16;
            self.next[i] = i as u16;
            self.prev[i] = i as u16;
            self.bitmap |= 1 << p;
        } else {
            let tail = self.prev[h as usize];
            self.next[tail as usize] = i as u16;
            self.prev[i] = tail;
            self.next[i] = h;
            self.prev[h as usize] = i as u16;
        }
        self.level[i] = p as u8;
        self.queued[i] = true;
    }

    /// Takes slot `i` out of its queue (no-op if not queued).
    pub fn remove(&mut self, i: usize) {
        if !self.queued[i] {
            return;
        }
        let p = self.level[i] as usize;
        if self.next[i] == i as u16 {
            self.head[p] = NONE;
            self.bitmap &= !(1 << p);
        } else {
            let (n, pr) = (self.next[i], self.prev[i]);
            self.next[pr as usize] = n;
            self.prev[n as usize] = pr;
            if self.head[p] == i as u16 {
                self.head[p] = n;
            }
        }
        self.queued[i] = false;
    }

    /// Highest non-empty level.
    pub fn highest_level(&self) -> Option<u8> {
        (self.bitmap != 0).then(|| 63 - self.bitmap.leading_zeros() as u8)
    }

    /// Head of the highest non-empty level.
    pub fn highest(&self) -> Option<usize> {
        self.highest_level().map(|p| self.head[p as usize] as usize)
    }

    /// Moves the head of `i`'s level to the tail if `i` is the head (round
    /// robin after `i` used up its slice or yielded).
    pub fn rotate(&mut self, i: usize) {
        if !self.queued[i] {
            return;
        }
        let p = self.level[i] as usize;
        if self.head[p] == i as u16 {
            self.head[p] = self.next[i];
        } else {
            // Not at the head: move it to the tail explicitly.
            self.remove(i);
            self.enqueue(i, p as u8);
        }
    }

    /// The invariants of the module doc (the host tests and the test
    /// kernel's debug call check them).
    #[cfg(any(test, feature = "ktest"))]
    pub fn check(&self) -> Result<(), &'static str> {
        let mut seen = [false; N];
        for p in 0..LEVELS {
            let h = self.head[p];
            if (h == NONE) == (self.bitmap & (1 << p) != 0) {
                return Err("a bitmap bit disagrees with its queue");
            }
            if h == NONE {
                continue;
            }
            let mut i = h;
            loop {
                let iu = i as usize;
                if seen[iu] || !self.queued[iu] || self.level[iu] as usize != p {
                    return Err("a slot is in two places or mislabelled");
                }
                seen[iu] = true;
                if self.prev[self.next[iu] as usize] != i {
                    return Err("broken ring");
                }
                i = self.next[iu];
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

    #[test]
    fn highest_priority_first_and_round_robin() {
        let mut q = ReadyQueues::<8>::new();
        q.enqueue(1, 10);
        q.enqueue(2, 10);
        q.enqueue(3, 5);
        assert_eq!(q.highest(), Some(1));
        q.rotate(1);
        assert_eq!(q.highest(), Some(2));
        q.remove(2);
        assert_eq!(q.highest(), Some(1));
        q.remove(1);
        assert_eq!(q.highest(), Some(3));
        q.remove(3);
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
                let pos = |m: &Vec<VecDeque<usize>>| m.iter().position(|l| l.contains(&i));
                match op {
                    0 => { q.enqueue(i, p); if pos(&model).is_none() { model[p as usize].push_back(i); } }
                    1 => { q.remove(i); if let Some(l) = pos(&model) { model[l].retain(|&x| x != i); } }
                    2 => { q.rotate(i); if let Some(l) = pos(&model) { model[l].retain(|&x| x != i); model[l].push_back(i); } }
                    _ => {}
                }
                prop_assert!(q.check().is_ok(), "{:?}", q.check());
                let want = model.iter().rev().find_map(|l| l.front().copied());
                prop_assert_eq!(q.highest(), want);
            }
        }
    }
}
