//! The hash index of the mapping database: (space, virtual page) to
//! node, open addressing with linear probing and backward-shift deletion.

use super::*;

impl MapDb<'_> {
    pub(super) fn home(&self, space: SpaceId, vpage: u64) -> usize {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let k = vpage ^ (space as u64).rotate_right(16);
        let h = (k ^ (k >> 29)).wrapping_mul(K);
        // shift == 64 for a one-slot index: every key goes to slot 0.
        h.checked_shr(self.shift).unwrap_or(0) as usize
    }

    /// Slot of the index entry for (space, vpage).
    pub(super) fn slot_of(&self, space: SpaceId, vpage: u64) -> Option<usize> {
        let mask = self.index.len() - 1;
        let mut s = self.home(space, vpage);
        for _ in 0..self.index.len() {
            let v = self.index[s];
            if v == NIL {
                return None;
            }
            if self.nodes.get(v as usize).is_some_and(|n| n.is(space, vpage)) {
                return Some(s);
            }
            s = (s + 1) & mask;
        }
        None
    }

    pub(super) fn node_of(&self, space: SpaceId, vpage: u64) -> Option<u32> {
        self.slot_of(space, vpage).map(|s| self.index[s])
    }

    /// Enters live node `i` (whose key is not yet in the index).
    pub(super) fn index_insert(&mut self, i: u32) {
        let mask = self.index.len() - 1;
        let n = &self.nodes[i as usize];
        let mut s = self.home(n.space, n.vpage);
        // Terminates: the load factor is at most 1/2.
        while self.index[s] != NIL {
            s = (s + 1) & mask;
        }
        self.index[s] = i;
    }

    /// Empties `slot`, shifting later entries of the probe run back so no
    /// lookup ever stops early at the hole.
    pub(super) fn index_remove(&mut self, slot: usize) {
        let mask = self.index.len() - 1;
        let mut hole = slot;
        let mut j = slot;
        loop {
            j = (j + 1) & mask;
            let v = self.index[j];
            if v == NIL {
                break;
            }
            let n = &self.nodes[v as usize];
            let home = self.home(n.space, n.vpage);
            // The entry at `j` may fill the hole iff the hole lies on its
            // probe path, i.e. not after its home (cyclically).
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.index[hole] = v;
                hole = j;
            }
        }
        self.index[hole] = NIL;
    }
}
