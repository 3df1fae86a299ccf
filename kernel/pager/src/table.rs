//! Which frame backs each virtual page of each client, with its rights:
//! the one table a pager answers page faults from.
//!
//! An open-addressing hash table with linear probing over a fixed array of
//! `N` entries (a power of two), keyed by (client number, virtual page).
//! Entries can be removed (backward-shift deletion, so lookups never need
//! tombstones), one at a time or by a predicate over the whole table (a
//! client's end, a heap that shrinks). One slot always stays empty, so
//! every probe ends.

pub use elfload::Rights;

/// The flexpage rights (`abi::ipc::rights`) of a backed page: always
/// readable, writable and executable as recorded.
pub fn fpage_rights(r: Rights) -> u64 {
    use abi::ipc::rights;
    rights::READ | if r.write { rights::WRITE } else { 0 } | if r.exec { rights::EXEC } else { 0 }
}

const EMPTY: u64 = 0;
/// Bits of a key that hold the virtual page number (user addresses are
/// below 2^47, so page numbers below 2^35).
const VPN_BITS: u32 = 36;
/// Clients a table tells apart.
pub const MAX_CLIENTS: usize = (1 << (64 - VPN_BITS)) - 2;

#[derive(Clone, Copy)]
struct Entry {
    /// `(client + 1) << VPN_BITS | virtual page number` (0: empty).
    key: u64,
    /// Frame address | 2 (write) | 1 (exec).
    val: u64,
}

/// The table is full (or the client number or address is out of range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

pub struct Pages<const N: usize> {
    entries: [Entry; N],
    used: usize,
}

fn key(client: usize, vaddr: u64) -> Option<u64> {
    (client < MAX_CLIENTS && vaddr < abi::USER_END).then(|| ((client as u64 + 1) << VPN_BITS) | (vaddr >> 12))
}

fn unkey(k: u64) -> (usize, u64) {
    (((k >> VPN_BITS) - 1) as usize, (k & ((1 << VPN_BITS) - 1)) << 12)
}

fn pack(frame: u64, r: Rights) -> u64 {
    (frame & !0xfff) | if r.write { 2 } else { 0 } | if r.exec { 1 } else { 0 }
}

fn unpack(v: u64) -> (u64, Rights) {
    (v & !0xfff, Rights { write: v & 2 != 0, exec: v & 1 != 0 })
}

impl<const N: usize> Default for Pages<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Pages<N> {
    const MASK: usize = {
        assert!(N.is_power_of_two() && N >= 2, "a table's size is a power of two");
        N - 1
    };

    pub const fn new() -> Self {
        Pages { entries: [Entry { key: EMPTY, val: 0 }; N], used: 0 }
    }

    fn home(k: u64) -> usize {
        // Fibonacci hashing of the key.
        (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & Self::MASK
    }

    /// The slot holding `k`, or the empty slot where it would go.
    fn find(&self, k: u64) -> usize {
        let mut i = Self::home(k);
        while self.entries[i].key != k && self.entries[i].key != EMPTY {
            i = (i + 1) & Self::MASK;
        }
        i
    }

    /// Records `frame` behind `vaddr` of `client`; returns the frame it
    /// replaces, if any.
    pub fn insert(&mut self, client: usize, vaddr: u64, frame: u64, r: Rights) -> Result<Option<u64>, Full> {
        let k = key(client, vaddr).ok_or(Full)?;
        let i = self.find(k);
        let e = &mut self.entries[i];
        if e.key == k {
            let old = unpack(e.val).0;
            e.val = pack(frame, r);
            return Ok(Some(old));
        }
        if self.used + 1 >= N {
            return Err(Full);
        }
        *e = Entry { key: k, val: pack(frame, r) };
        self.used += 1;
        Ok(None)
    }

    /// The frame and rights behind `vaddr` of `client`.
    pub fn lookup(&self, client: usize, vaddr: u64) -> Option<(u64, Rights)> {
        let k = key(client, vaddr)?;
        let e = &self.entries[self.find(k)];
        (e.key == k).then(|| unpack(e.val))
    }

    /// Forgets `vaddr` of `client`; returns what backed it.
    pub fn remove(&mut self, client: usize, vaddr: u64) -> Option<(u64, Rights)> {
        let k = key(client, vaddr)?;
        let i = self.find(k);
        if self.entries[i].key != k {
            return None;
        }
        let v = unpack(self.entries[i].val);
        self.delete_at(i);
        Some(v)
    }

    /// Empties slot `hole` and moves later entries of its probe chain back
    /// so that none is cut off from its home slot.
    fn delete_at(&mut self, mut hole: usize) {
        let mut j = hole;
        loop {
            j = (j + 1) & Self::MASK;
            let k = self.entries[j].key;
            if k == EMPTY {
                break;
            }
            // The entry at `j` may fill the hole if the hole lies on its
            // probe path, i.e. between its home and `j` (cyclically).
            let home_to_j = j.wrapping_sub(Self::home(k)) & Self::MASK;
            let hole_to_j = j.wrapping_sub(hole) & Self::MASK;
            if home_to_j >= hole_to_j {
                self.entries[hole] = self.entries[j];
                hole = j;
            }
        }
        self.entries[hole] = Entry { key: EMPTY, val: 0 };
        self.used -= 1;
    }

    /// Keeps the entries for which `keep(client, vaddr, frame, rights)`
    /// holds and removes the others. `keep` may be asked more than once
    /// about an entry it keeps (entries move while others are removed),
    /// exactly once about each entry it removes.
    pub fn retain(&mut self, mut keep: impl FnMut(usize, u64, u64, Rights) -> bool) {
        let mut i = 0;
        while i < N {
            let e = self.entries[i];
            if e.key != EMPTY {
                let (c, v) = unkey(e.key);
                let (f, r) = unpack(e.val);
                if !keep(c, v, f, r) {
                    // A later entry may have moved into slot `i`: look again.
                    self.delete_at(i);
                    continue;
                }
            }
            i += 1;
        }
    }

    /// Every entry of `client`: (vaddr, frame, rights), in no order.
    pub fn of(&self, client: usize) -> impl Iterator<Item = (u64, u64, Rights)> + '_ {
        self.entries.iter().filter(move |e| e.key != EMPTY && unkey(e.key).0 == client).map(|e| {
            let (f, r) = unpack(e.val);
            (unkey(e.key).1, f, r)
        })
    }

    pub fn used(&self) -> usize {
        self.used
    }

    /// Entries it can hold.
    pub const fn capacity(&self) -> usize {
        N - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const RW: Rights = Rights { write: true, exec: false };

    #[test]
    fn lookups_find_what_was_inserted_and_nothing_else() {
        let mut p = Box::new(Pages::<8192>::new());
        let mut model = HashMap::new();
        let mut x = 12345u64;
        for n in 0..5000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let (client, v) = ((x >> 60) as usize % 5, (x >> 20) & 0xffff_f000);
            let r = Rights { write: n % 2 == 0, exec: n % 3 == 0 };
            p.insert(client, v, n << 12, r).unwrap();
            model.insert((client, v), (n << 12, r));
        }
        for (&(c, v), &want) in &model {
            assert_eq!(p.lookup(c, v), Some(want));
        }
        assert_eq!(p.used(), model.len());
        assert_eq!(p.lookup(7, 0x1000), None);
    }

    #[test]
    fn a_full_table_says_so_and_lookups_still_end() {
        let mut p = Box::new(Pages::<1024>::new());
        for i in 0..p.capacity() {
            assert_eq!(p.insert(0, (i as u64) << 12, 0, Rights::default()), Ok(None));
        }
        assert_eq!(p.insert(1, 0, 0, Rights::default()), Err(Full));
        assert!(p.lookup(1, 0).is_none());
        assert_eq!(p.insert(0, 0, 0x5000, RW), Ok(Some(0)), "replacing needs no new slot");
    }

    #[test]
    fn out_of_range_keys_are_refused() {
        let mut p = Pages::<16>::new();
        assert_eq!(p.insert(0, abi::USER_END, 0, RW), Err(Full));
        assert_eq!(p.insert(MAX_CLIENTS, 0, 0, RW), Err(Full));
        assert_eq!(p.lookup(MAX_CLIENTS, 0), None);
        assert_eq!(p.insert(3, abi::USER_END - 4096, 0x7000, RW), Ok(None));
        assert_eq!(p.of(3).collect::<Vec<_>>(), vec![(abi::USER_END - 4096, 0x7000, RW)]);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(usize, u64),
        Remove(usize, u64),
        DropClient(usize),
        DropAbove(usize, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few clients and pages, so operations collide often; a small
        // table, so probe chains wrap around its end.
        let c = 0usize..4;
        let v = (0u64..96).prop_map(|p| p << 12);
        prop_oneof![
            6 => (c.clone(), v.clone()).prop_map(|(c, v)| Op::Insert(c, v)),
            3 => (c.clone(), v.clone()).prop_map(|(c, v)| Op::Remove(c, v)),
            1 => c.clone().prop_map(Op::DropClient),
            1 => (c, v).prop_map(|(c, v)| Op::DropAbove(c, v)),
        ]
    }

    proptest! {
        /// Any mix of inserts and removals leaves the table agreeing with
        /// a map, and `retain` hands out each removed entry once.
        #[test]
        fn agrees_with_a_map(ops in proptest::collection::vec(op(), 1..400)) {
            let mut p = Box::new(Pages::<256>::new());
            let mut model: HashMap<(usize, u64), u64> = HashMap::new();
            for (n, o) in ops.into_iter().enumerate() {
                let frame = (n as u64 + 1) << 12;
                match o {
                    Op::Insert(c, v) => {
                        let got = p.insert(c, v, frame, RW);
                        if got == Err(Full) {
                            prop_assert_eq!(model.len(), p.capacity());
                        } else {
                            prop_assert_eq!(got, Ok(model.insert((c, v), frame)));
                        }
                    }
                    Op::Remove(c, v) => prop_assert_eq!(p.remove(c, v).map(|x| x.0), model.remove(&(c, v))),
                    Op::DropClient(c) | Op::DropAbove(c, _) => {
                        let floor = if let Op::DropAbove(_, f) = o { f } else { 0 };
                        let gone = |cc: usize, v: u64| cc == c && v >= floor;
                        let mut removed = Vec::new();
                        p.retain(|cc, v, f, _| {
                            if gone(cc, v) {
                                removed.push((cc, v, f));
                                false
                            } else {
                                true
                            }
                        });
                        let mut want: Vec<_> =
                            model.iter().filter(|(k, _)| gone(k.0, k.1)).map(|(k, f)| (k.0, k.1, *f)).collect();
                        model.retain(|k, _| !gone(k.0, k.1));
                        removed.sort();
                        want.sort();
                        prop_assert_eq!(removed, want);
                    }
                }
                prop_assert_eq!(p.used(), model.len());
            }
            for (&(c, v), &f) in &model {
                prop_assert_eq!(p.lookup(c, v), Some((f, RW)));
            }
            for c in 0..4 {
                let mut got: Vec<_> = p.of(c).map(|(v, f, _)| (v, f)).collect();
                let mut want: Vec<_> = model.iter().filter(|(k, _)| k.0 == c).map(|(k, f)| (k.1, *f)).collect();
                got.sort();
                want.sort();
                prop_assert_eq!(got, want);
            }
        }
    }
}
