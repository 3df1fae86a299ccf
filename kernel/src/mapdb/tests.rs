//! Unit tests and the model-based property test of the mapping database.

use super::*;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::vec::Vec;

type Key = (SpaceId, u64);
const R: Rights = Rights::READ;
const RW: Rights = Rights(6);
const RX: Rights = Rights(5);
const F0: u64 = 0x10_0000;

struct Store {
    nodes: Vec<Node>,
    index: Vec<u32>,
}

fn store(cap: usize) -> Store {
    let idx = (2 * cap).next_power_of_two().max(1);
    Store { nodes: vec![Node::EMPTY; cap], index: vec![NIL; idx] }
}

fn db(s: &mut Store) -> MapDb<'_> {
    MapDb::new(&mut s.nodes, &mut s.index)
}

/// Records every on_update call.
#[derive(Default)]
struct Log(Vec<(SpaceId, u64, Option<Rights>)>);

impl Log {
    fn f(&mut self) -> impl FnMut(SpaceId, u64, Option<Rights>) + '_ {
        |s, v, r| self.0.push((s, v, r))
    }
    fn sorted(&self) -> Vec<(SpaceId, u64, Option<Rights>)> {
        let mut v = self.0.clone();
        v.sort_by_key(|&(s, p, r)| (s, p, r.map(|r| r.0)));
        v
    }
}

fn nop() -> impl FnMut(SpaceId, u64, Option<Rights>) {
    |_, _, _| {}
}

/// Snapshot of every mapping in a small universe.
fn snapshot(db: &MapDb, spaces: u16, vpages: u64) -> Vec<Option<(u64, Rights)>> {
    let mut v = Vec::new();
    for s in 0..spaces {
        for p in 0..vpages {
            v.push(db.lookup(s, p));
        }
    }
    v
}

/// Root in space 0 -> 1 -> 2 -> 3, all at vpage = space + 10.
fn chain(db: &mut MapDb) {
    db.insert_root(0, 10, F0, Rights::ALL).unwrap();
    for s in 1..4u16 {
        db.map((s - 1, 10 + s as u64 - 1), (s, 10 + s as u64), Rights::ALL, &mut nop()).unwrap();
    }
    db.check().unwrap();
}

#[test]
fn rights_ops() {
    assert!(Rights::ALL.contains(RW));
    assert!(!RW.contains(Rights::EXEC));
    assert!(RW.contains(Rights::NONE));
    assert_eq!(RW.and(RX), R);
    assert_eq!(Rights::ALL.without(Rights::WRITE), RX);
    assert!(Rights::NONE.is_empty() && !R.is_empty());
    assert_eq!(Rights::default(), Rights::NONE);
    assert_eq!(Rights::READ.0 as u64, abi::ipc::rights::READ);
    assert_eq!(Rights::WRITE.0 as u64, abi::ipc::rights::WRITE);
    assert_eq!(Rights::EXEC.0 as u64, abi::ipc::rights::EXEC);
}

#[test]
#[should_panic]
fn new_rejects_small_index() {
    let mut nodes = [Node::EMPTY; 8];
    let mut index = [NIL; 8];
    MapDb::new(&mut nodes, &mut index);
}

#[test]
#[should_panic]
fn new_rejects_non_power_of_two_index() {
    let mut nodes = [Node::EMPTY; 4];
    let mut index = [NIL; 12];
    MapDb::new(&mut nodes, &mut index);
}

#[test]
fn empty_and_zero_capacity() {
    let mut s = store(0);
    let mut d = db(&mut s);
    assert_eq!(d.capacity(), 0);
    assert!(d.is_empty());
    assert_eq!(d.insert_root(0, 0, F0, R), Err(MapDbError::Full));
    assert_eq!(d.lookup(0, 0), None);
    d.check().unwrap();
}

#[test]
fn insert_root_and_lookup() {
    let mut s = store(4);
    let mut d = db(&mut s);
    assert_eq!(d.capacity(), 4);
    d.insert_root(1, 5, F0, Rights(0xff)).unwrap();
    assert_eq!(d.lookup(1, 5), Some((F0, Rights::ALL)), "unknown bits are dropped");
    assert_eq!(d.lookup(1, 6), None);
    assert_eq!(d.lookup(2, 5), None);
    assert_eq!(d.len(), 1);
    assert!(!d.is_empty());
    assert_eq!(d.insert_root(1, 5, F0 + 0x1000, R), Err(MapDbError::Exists));
    assert_eq!(d.insert_root(1, 7, F0, Rights::WRITE), Err(MapDbError::NoRights));
    for v in 6..9 {
        d.insert_root(1, v, F0, R).unwrap();
    }
    assert_eq!(d.insert_root(1, 9, F0, R), Err(MapDbError::Full));
    assert_eq!(d.len(), 4);
    d.check().unwrap();
}

#[test]
fn map_restricts_rights() {
    let mut s = store(8);
    let mut d = db(&mut s);
    d.insert_root(0, 1, F0, RW).unwrap();
    let mut log = Log::default();
    assert_eq!(d.map((0, 1), (1, 2), RX, &mut log.f()), Ok((F0, R)));
    assert!(log.0.is_empty());
    assert_eq!(d.lookup(1, 2), Some((F0, R)));
    assert_eq!(d.lookup(0, 1), Some((F0, RW)), "the mapper keeps its mapping");
    // A child cannot regain rights its parent lacks.
    assert_eq!(d.map((1, 2), (2, 3), Rights::ALL, &mut log.f()), Ok((F0, R)));
    d.check().unwrap();
}

#[test]
fn map_errors() {
    let mut s = store(8);
    let mut d = db(&mut s);
    chain(&mut d);
    let before = snapshot(&d, 4, 16);
    let mut log = Log::default();
    assert_eq!(d.map((0, 0), (1, 0), R, &mut log.f()), Err(MapDbError::NotMapped));
    assert_eq!(d.map((0, 10), (1, 0), Rights::WRITE, &mut log.f()), Err(MapDbError::NoRights));
    assert_eq!(d.map((0, 10), (1, 0), Rights::NONE, &mut log.f()), Err(MapDbError::NoRights));
    assert_eq!(d.map((2, 12), (2, 12), R, &mut log.f()), Err(MapDbError::Cycle));
    assert_eq!(d.map((2, 12), (1, 11), R, &mut log.f()), Err(MapDbError::Cycle));
    assert_eq!(d.map((3, 13), (0, 10), R, &mut log.f()), Err(MapDbError::Cycle));
    assert!(log.0.is_empty());
    assert_eq!(snapshot(&d, 4, 16), before);
    d.check().unwrap();
}

#[test]
fn map_to_descendant_replaces_it() {
    let mut s = store(8);
    let mut d = db(&mut s);
    chain(&mut d);
    // Space 1 maps its page over space 3's mapping (a descendant): allowed;
    // the old space-3 mapping (a leaf) goes.
    let mut log = Log::default();
    assert_eq!(d.map((1, 11), (3, 13), R, &mut log.f()), Ok((F0, R)));
    assert_eq!(log.0, vec![(3, 13, None)]);
    assert_eq!(d.lookup(3, 13), Some((F0, R)));
    // Now space 3 derives from space 1: flushing space 2 leaves it.
    assert_eq!(d.unmap(2, 12, R, true, &mut nop()), 1);
    assert_eq!(d.lookup(3, 13), Some((F0, R)));
    d.check().unwrap();
}

#[test]
fn map_over_existing_removes_old_subtree() {
    let mut s = store(8);
    let mut d = db(&mut s);
    chain(&mut d);
    d.insert_root(0, 20, F0 + 0x1000, Rights::ALL).unwrap();
    // Space 0's other page is mapped over space 1's: 1, 2, 3 lose the old frame.
    let mut log = Log::default();
    assert_eq!(d.map((0, 20), (1, 11), RW, &mut log.f()), Ok((F0 + 0x1000, RW)));
    assert_eq!(log.sorted(), vec![(1, 11, None), (2, 12, None), (3, 13, None)]);
    assert_eq!(d.lookup(1, 11), Some((F0 + 0x1000, RW)));
    assert_eq!(d.lookup(2, 12), None);
    assert_eq!(d.lookup(3, 13), None);
    assert_eq!(d.lookup(0, 10), Some((F0, Rights::ALL)));
    assert_eq!(d.len(), 3);
    d.check().unwrap();
}

#[test]
fn full_leaves_db_unchanged() {
    let mut s = store(4);
    let mut d = db(&mut s);
    chain(&mut d);
    assert_eq!(d.len(), 4);
    let before = snapshot(&d, 4, 16);
    let mut log = Log::default();
    assert_eq!(d.map((0, 10), (2, 0), R, &mut log.f()), Err(MapDbError::Full));
    assert_eq!(d.insert_root(2, 0, F0, R), Err(MapDbError::Full));
    assert!(log.0.is_empty());
    assert_eq!(snapshot(&d, 4, 16), before);
    assert_eq!(d.len(), 4);
    d.check().unwrap();
    // Mapping over an existing mapping frees a node first, so it works when full.
    assert_eq!(d.map((0, 10), (3, 13), R, &mut log.f()), Ok((F0, R)));
    assert_eq!(log.0, vec![(3, 13, None)]);
    // Grant needs no node.
    assert_eq!(d.grant((3, 13), (3, 14), R, &mut nop()), Ok((F0, R)));
    d.check().unwrap();
}

#[test]
fn three_level_flush_removes_exactly_derived() {
    let mut s = store(8);
    let mut d = db(&mut s);
    chain(&mut d);
    d.insert_root(2, 99, F0 + 0x2000, R).unwrap(); // unrelated mapping of space 2
    let mut log = Log::default();
    assert_eq!(d.unmap(1, 11, R, false, &mut log.f()), 2);
    assert_eq!(log.sorted(), vec![(2, 12, None), (3, 13, None)]);
    assert_eq!(d.lookup(0, 10), Some((F0, Rights::ALL)));
    assert_eq!(d.lookup(1, 11), Some((F0, Rights::ALL)));
    assert_eq!(d.lookup(2, 12), None);
    assert_eq!(d.lookup(3, 13), None);
    assert_eq!(d.lookup(2, 99), Some((F0 + 0x2000, R)));
    assert_eq!(d.len(), 3);
    d.check().unwrap();
}

#[test]
fn flush_including_self() {
    let mut s = store(8);
    let mut d = db(&mut s);
    chain(&mut d);
    let mut log = Log::default();
    assert_eq!(d.unmap(1, 11, Rights::ALL, true, &mut log.f()), 3);
    assert_eq!(log.sorted(), vec![(1, 11, None), (2, 12, None), (3, 13, None)]);
    assert_eq!(d.lookup(0, 10), Some((F0, Rights::ALL)));
    assert_eq!(d.len(), 1);
    d.check().unwrap();
    // Flushing a root with include_self removes the whole tree.
    d.map((0, 10), (1, 11), R, &mut nop()).unwrap();
    assert_eq!(d.unmap(0, 10, R, true, &mut nop()), 2);
    assert!(d.is_empty());
    d.check().unwrap();
}

#[test]
fn flush_of_wide_tree() {
    let mut s = store(16);
    let mut d = db(&mut s);
    d.insert_root(0, 0, F0, Rights::ALL).unwrap();
    for v in 0..5 {
        d.map((0, 0), (1, v), Rights::ALL, &mut nop()).unwrap();
        for w in 0..2 {
            d.map((1, v), (2, v * 2 + w), RW, &mut nop()).unwrap();
        }
    }
    assert_eq!(d.len(), 16);
    d.check().unwrap();
    // Remove one middle child of the root: its two children go with it.
    assert_eq!(d.unmap(1, 2, R, true, &mut nop()), 3);
    d.check().unwrap();
    assert_eq!(d.unmap(0, 0, R, false, &mut nop()), 12);
    assert_eq!(d.len(), 1);
    d.check().unwrap();
}

#[test]
fn rights_reduction() {
    let mut s = store(8);
    let mut d = db(&mut s);
    chain(&mut d);
    let mut log = Log::default();
    assert_eq!(d.unmap(1, 11, Rights::WRITE, false, &mut log.f()), 2);
    assert_eq!(log.sorted(), vec![(2, 12, Some(RX)), (3, 13, Some(RX))]);
    assert_eq!(d.lookup(0, 10), Some((F0, Rights::ALL)));
    assert_eq!(d.lookup(1, 11), Some((F0, Rights::ALL)), "include_self = false keeps the node's rights");
    assert_eq!(d.lookup(2, 12), Some((F0, RX)));
    assert_eq!(d.lookup(3, 13), Some((F0, RX)));
    // Again: nothing left to change.
    assert_eq!(d.unmap(1, 11, Rights::WRITE, false, &mut nop()), 0);
    // Including self, exec too; unchanged mappings are not reported.
    let mut log = Log::default();
    assert_eq!(d.unmap(1, 11, Rights(3), true, &mut log.f()), 3);
    assert_eq!(log.sorted(), vec![(1, 11, Some(R)), (2, 12, Some(R)), (3, 13, Some(R))]);
    assert_eq!(d.unmap(1, 11, Rights::NONE, true, &mut nop()), 0);
    assert_eq!(d.len(), 4);
    d.check().unwrap();
}

#[test]
fn unmap_not_mapped() {
    let mut s = store(4);
    let mut d = db(&mut s);
    let mut log = Log::default();
    assert_eq!(d.unmap(0, 0, Rights::ALL, true, &mut log.f()), 0);
    assert!(log.0.is_empty());
}

#[test]
fn grant_moves_node_and_children() {
    let mut s = store(8);
    let mut d = db(&mut s);
    chain(&mut d);
    let mut log = Log::default();
    assert_eq!(d.grant((1, 11), (2, 50), Rights::ALL, &mut log.f()), Ok((F0, Rights::ALL)));
    assert_eq!(log.0, vec![(1, 11, None)]);
    assert_eq!(d.lookup(1, 11), None);
    assert_eq!(d.lookup(2, 50), Some((F0, Rights::ALL)));
    assert_eq!(d.len(), 4);
    d.check().unwrap();
    // Space 2's old mapping now derives from (2, 50).
    assert_eq!(d.unmap(2, 50, R, false, &mut nop()), 2);
    assert_eq!(d.lookup(0, 10), Some((F0, Rights::ALL)));
    assert_eq!(d.lookup(2, 50), Some((F0, Rights::ALL)));
    d.check().unwrap();
    // Flushing the root reaches the granted node.
    assert_eq!(d.unmap(0, 10, R, false, &mut nop()), 1);
    d.check().unwrap();
}

#[test]
fn grant_with_fewer_rights_reduces_descendants() {
    let mut s = store(8);
    let mut d = db(&mut s);
    chain(&mut d);
    d.unmap(2, 12, Rights::EXEC, false, &mut nop()); // space 3: RW
    let mut log = Log::default();
    assert_eq!(d.grant((1, 11), (1, 40), RX, &mut log.f()), Ok((F0, RX)));
    assert_eq!(log.0, vec![(1, 11, None), (2, 12, Some(RX)), (3, 13, Some(R))]);
    assert_eq!(d.lookup(1, 40), Some((F0, RX)));
    assert_eq!(d.lookup(3, 13), Some((F0, R)));
    d.check().unwrap();
}

#[test]
fn grant_errors() {
    let mut s = store(8);
    let mut d = db(&mut s);
    chain(&mut d);
    let before = snapshot(&d, 4, 16);
    let mut log = Log::default();
    assert_eq!(d.grant((0, 0), (1, 0), R, &mut log.f()), Err(MapDbError::NotMapped));
    assert_eq!(d.grant((1, 11), (1, 0), Rights::WRITE, &mut log.f()), Err(MapDbError::NoRights));
    assert_eq!(d.grant((1, 11), (1, 11), R, &mut log.f()), Err(MapDbError::Cycle));
    assert_eq!(d.grant((1, 11), (0, 10), R, &mut log.f()), Err(MapDbError::Cycle), "onto an ancestor");
    assert_eq!(d.grant((1, 11), (3, 13), R, &mut log.f()), Err(MapDbError::Cycle), "onto a descendant");
    assert!(log.0.is_empty());
    assert_eq!(snapshot(&d, 4, 16), before);
    d.check().unwrap();
}

#[test]
fn grant_over_unrelated_mapping() {
    let mut s = store(8);
    let mut d = db(&mut s);
    chain(&mut d);
    d.insert_root(0, 1, F0 + 0x1000, R).unwrap();
    d.map((0, 1), (1, 1), R, &mut nop()).unwrap();
    d.map((1, 1), (2, 1), R, &mut nop()).unwrap();
    let mut log = Log::default();
    assert_eq!(d.grant((2, 12), (1, 1), Rights::ALL, &mut log.f()), Ok((F0, Rights::ALL)));
    assert_eq!(log.0, vec![(2, 1, None), (1, 1, None), (2, 12, None)]);
    assert_eq!(d.lookup(1, 1), Some((F0, Rights::ALL)));
    assert_eq!(d.lookup(3, 13), Some((F0, Rights::ALL)));
    d.check().unwrap();
    // A root can be granted too and stays a root.
    assert_eq!(d.grant((0, 1), (0, 2), R, &mut nop()), Ok((F0 + 0x1000, R)));
    assert_eq!(d.lookup(0, 2), Some((F0 + 0x1000, R)));
    d.check().unwrap();
}

#[test]
fn remove_space_takes_descendants_in_other_spaces() {
    let mut s = store(16);
    let mut d = db(&mut s);
    chain(&mut d);
    d.insert_root(1, 0, F0 + 0x1000, R).unwrap();
    d.map((1, 0), (0, 0), R, &mut nop()).unwrap();
    d.map((1, 0), (1, 1), R, &mut nop()).unwrap(); // same-space child
    let mut log = Log::default();
    assert_eq!(d.remove_space(1, &mut log.f()), 6);
    assert_eq!(
        log.sorted(),
        vec![(0, 0, None), (1, 0, None), (1, 1, None), (1, 11, None), (2, 12, None), (3, 13, None)]
    );
    assert_eq!(d.lookup(0, 10), Some((F0, Rights::ALL)));
    assert_eq!(d.len(), 1);
    d.check().unwrap();
    assert_eq!(d.remove_space(1, &mut nop()), 0);
}

#[test]
fn index_survives_collisions_and_wraparound() {
    // A one-slot-per-two-nodes table with many keys: removals in every
    // order must keep all remaining keys findable (backward shift).
    let mut s = store(16);
    let mut d = db(&mut s);
    let keys: Vec<Key> = (0..16).map(|i| ((i % 3) as u16, (i * 7) as u64)).collect();
    for (n, order) in [[0usize, 5, 10, 15, 1, 6, 11, 2, 7, 12, 3, 8, 13, 4, 9, 14], {
        let mut o = [0usize; 16];
        for (i, x) in o.iter_mut().enumerate() {
            *x = 15 - i;
        }
        o
    }]
    .iter()
    .enumerate()
    {
        for &(sp, v) in &keys {
            d.insert_root(sp, v, v << 12, R).unwrap();
        }
        d.check().unwrap();
        for (k, &i) in order.iter().enumerate() {
            assert_eq!(d.unmap(keys[i].0, keys[i].1, R, true, &mut nop()), 1, "pass {n}");
            d.check().unwrap();
            for &j in &order[k + 1..] {
                assert_eq!(d.lookup(keys[j].0, keys[j].1), Some((keys[j].1 << 12, R)));
            }
        }
        assert!(d.is_empty());
    }
}

#[test]
fn check_detects_corruption() {
    let mut s = store(8);
    {
        let mut d = db(&mut s);
        chain(&mut d);
    }
    let live: Vec<usize> = (0..8).filter(|&i| s.nodes[i].live).collect();
    let child = *live.iter().find(|&&i| s.nodes[i].parent != NIL).unwrap();
    type Corrupt = fn(&mut Store, usize);
    let cases: [(Corrupt, &str); 6] = [
        (|s, c| s.nodes[c].frame += 0x1000, "frame"),
        (
            |s, c| {
                let p = s.nodes[c].parent as usize;
                s.nodes[p].rights = Rights(5)
            },
            "rights",
        ),
        (|s, c| s.nodes[c].parent = NIL, "links"),
        (|s, c| s.nodes[c].vpage += 100, "index"),
        (|s, c| s.nodes[c].first_child = c as u32, "links"),
        (|s, _| s.index.iter_mut().for_each(|v| *v = NIL), "index"),
    ];
    for (corrupt, what) in cases {
        let mut t = Store { nodes: s.nodes.clone(), index: s.index.clone() };
        // Rebuild a MapDb view over the corrupted copy without re-initialising it.
        corrupt(&mut t, child);
        let d = MapDb {
            free: 4,
            len: 4,
            shift: 64 - t.index.len().trailing_zeros(),
            nodes: &mut t.nodes,
            index: &mut t.index,
        };
        let e = d.check().unwrap_err();
        assert!(e.starts_with(what), "{what}: got {e}");
    }
    // The uncorrupted copy passes.
    let mut t = Store { nodes: s.nodes.clone(), index: s.index.clone() };
    let d =
        MapDb { free: 4, len: 4, shift: 64 - t.index.len().trailing_zeros(), nodes: &mut t.nodes, index: &mut t.index };
    d.check().unwrap();
}

// ---- property tests against a model ----

#[derive(Clone, Copy, Debug)]
struct MEntry {
    key: Key,
    frame: u64,
    rights: Rights,
    parent: Option<Key>,
}

/// The obvious, slow model: a list of mappings with parent keys.
struct Model {
    cap: usize,
    e: Vec<MEntry>,
}

impl Model {
    fn get(&self, k: Key) -> Option<&MEntry> {
        self.e.iter().find(|e| e.key == k)
    }
    /// Strict ancestors of `k`, nearest first.
    fn ancestors(&self, k: Key) -> Vec<Key> {
        let mut v = Vec::new();
        let mut p = self.get(k).and_then(|e| e.parent);
        while let Some(pk) = p {
            v.push(pk);
            assert!(v.len() <= self.e.len(), "model cycle");
            p = self.get(pk).unwrap().parent;
        }
        v
    }
    fn root_of(&self, k: Key) -> Key {
        *self.ancestors(k).last().unwrap_or(&k)
    }
    /// Strict descendants of `k`.
    fn descendants(&self, k: Key) -> Vec<Key> {
        self.e.iter().map(|e| e.key).filter(|&d| self.ancestors(d).contains(&k)).collect()
    }
    fn remove_tree(&mut self, k: Key) -> Vec<Key> {
        let mut gone = self.descendants(k);
        gone.push(k);
        self.e.retain(|e| !gone.contains(&e.key));
        gone
    }
    fn insert_root(&mut self, k: Key, frame: u64, rights: Rights) -> Result<(), MapDbError> {
        let rights = rights.and(Rights::ALL);
        if !rights.contains(R) {
            return Err(MapDbError::NoRights);
        }
        if self.get(k).is_some() {
            return Err(MapDbError::Exists);
        }
        if self.e.len() == self.cap {
            return Err(MapDbError::Full);
        }
        self.e.push(MEntry { key: k, frame, rights, parent: None });
        Ok(())
    }
    fn map(&mut self, from: Key, to: Key, rights: Rights, grant: bool) -> Result<(u64, Rights), MapDbError> {
        let f = *self.get(from).ok_or(MapDbError::NotMapped)?;
        let eff = f.rights.and(rights);
        if !eff.contains(R) {
            return Err(MapDbError::NoRights);
        }
        if to == from || self.ancestors(from).contains(&to) {
            return Err(MapDbError::Cycle);
        }
        if grant && self.ancestors(to).contains(&from) {
            return Err(MapDbError::Cycle);
        }
        let exists = self.get(to).is_some();
        if !grant && !exists && self.e.len() == self.cap {
            return Err(MapDbError::Full);
        }
        if exists {
            self.remove_tree(to);
        }
        if grant {
            let desc = self.descendants(from);
            for e in self.e.iter_mut() {
                if e.key == from {
                    e.key = to;
                    e.rights = eff;
                } else if desc.contains(&e.key) {
                    e.rights = e.rights.and(eff);
                }
                if e.parent == Some(from) {
                    e.parent = Some(to);
                }
            }
        } else {
            self.e.push(MEntry { key: to, frame: f.frame, rights: eff, parent: Some(from) });
        }
        Ok((f.frame, eff))
    }
    fn unmap(&mut self, k: Key, revoke: Rights, include_self: bool) {
        if self.get(k).is_none() {
            return;
        }
        if revoke.contains(R) {
            if include_self {
                self.remove_tree(k);
            } else {
                let children: Vec<Key> = self.e.iter().filter(|e| e.parent == Some(k)).map(|e| e.key).collect();
                for c in children {
                    self.remove_tree(c);
                }
            }
        } else {
            let mut set = self.descendants(k);
            if include_self {
                set.push(k);
            }
            for e in self.e.iter_mut().filter(|e| set.contains(&e.key)) {
                e.rights = e.rights.without(revoke);
            }
        }
    }
    fn remove_space(&mut self, s: SpaceId) {
        let keys: Vec<Key> = self.e.iter().filter(|e| e.key.0 == s).map(|e| e.key).collect();
        for k in keys {
            if self.get(k).is_some() {
                self.remove_tree(k);
            }
        }
    }
}

/// A key, either any key of the universe or (to make deep trees and
/// successful operations likely) the n-th live mapping of the model.
#[derive(Clone, Copy, Debug)]
enum Pick {
    Any(Key),
    Live(usize),
}

impl Pick {
    fn key(self, m: &Model) -> Key {
        match self {
            Pick::Any(k) => k,
            Pick::Live(_) if m.e.is_empty() => (0, 0),
            Pick::Live(n) => m.e[n % m.e.len()].key,
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    InsertRoot(Key, u64, u8),
    Map(Pick, Key, u8),
    Grant(Pick, Key, u8),
    Unmap(Pick, u8, bool),
    RemoveSpace(SpaceId),
}

const SPACES: u16 = 4;
const VPAGES: u64 = 8;

fn key() -> impl Strategy<Value = Key> {
    (0..SPACES, 0..VPAGES)
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![1 => key().prop_map(Pick::Any), 3 => any::<usize>().prop_map(Pick::Live)]
}

fn root_op(rights: impl Strategy<Value = u8>) -> impl Strategy<Value = Op> {
    (key(), 0u64..4, rights).prop_map(|(k, f, r)| Op::InsertRoot(k, F0 + f * 0x1000, r))
}

/// Up to 40 root inserts first (so the capacity of 24 is reached), then anything.
fn ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
    let fill = proptest::collection::vec(root_op(Just(7u8)), 0..40);
    (fill, proptest::collection::vec(op(), 1..max)).prop_map(|(mut a, b)| {
        a.extend(b);
        a
    })
}

fn op() -> impl Strategy<Value = Op> {
    // Rights are biased towards containing READ so that maps succeed.
    let rights = prop_oneof![3 => (0u8..8).prop_map(|r| r | 4), 1 => 0u8..16];
    prop_oneof![
        4 => root_op(rights.clone()),
        8 => (pick(), key(), rights.clone()).prop_map(|(a, b, r)| Op::Map(a, b, r)),
        3 => (pick(), key(), rights).prop_map(|(a, b, r)| Op::Grant(a, b, r)),
        3 => (pick(), 0u8..8, any::<bool>()).prop_map(|(k, r, s)| Op::Unmap(k, r, s)),
        1 => (0..SPACES).prop_map(Op::RemoveSpace),
    ]
}

fn run(cap: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut st = store(cap);
    let mut d = db(&mut st);
    let mut m = Model { cap, e: Vec::new() };
    // The "page table" the kernel would maintain from the callbacks.
    let mut shadow: HashMap<Key, (u64, Rights)> = HashMap::new();
    // Every (space, frame) pair handed out legitimately so far.
    let mut given: HashSet<(SpaceId, u64)> = HashSet::new();
    for op in ops {
        let mut calls: Vec<(SpaceId, u64, Option<Rights>)> = Vec::new();
        // Mappings that must be gone (or reduced) after this step.
        let mut must_be_gone: Vec<Key> = Vec::new();
        let mut must_lack: (Vec<Key>, Rights) = (Vec::new(), Rights::NONE);
        let mut count = None;
        let mut new_pte: Option<(Key, u64, Rights)> = None;
        match *op {
            Op::InsertRoot(k, f, r) => {
                let got = d.insert_root(k.0, k.1, f, Rights(r));
                prop_assert_eq!(got, m.insert_root(k, f, Rights(r)));
                if got.is_ok() {
                    new_pte = Some((k, f, Rights(r).and(Rights::ALL)));
                    given.insert((k.0, f));
                }
            }
            Op::Map(a, b, r) | Op::Grant(a, b, r) => {
                let a = a.key(&m);
                let grant = matches!(op, Op::Grant(..));
                let mut cb = |s, v, r| calls.push((s, v, r));
                let got = if grant { d.grant(a, b, Rights(r), &mut cb) } else { d.map(a, b, Rights(r), &mut cb) };
                prop_assert_eq!(got, m.map(a, b, Rights(r), grant));
                if let Ok((f, eff)) = got {
                    prop_assert!(given.contains(&(a.0, f)));
                    given.insert((b.0, f));
                    new_pte = Some((b, f, eff));
                    if grant {
                        must_be_gone.push(a);
                    }
                } else {
                    prop_assert!(calls.is_empty(), "failed {:?} reported changes", op);
                }
            }
            Op::Unmap(k, r, include_self) => {
                let k = k.key(&m);
                let revoke = Rights(r);
                let mut set = if m.get(k).is_some() { m.descendants(k) } else { Vec::new() };
                if include_self && m.get(k).is_some() {
                    set.push(k);
                }
                if revoke.contains(R) {
                    must_be_gone = set;
                } else {
                    must_lack = (set, revoke);
                }
                let n = d.unmap(k.0, k.1, revoke, include_self, &mut |s, v, r| calls.push((s, v, r)));
                m.unmap(k, revoke, include_self);
                count = Some(n);
            }
            Op::RemoveSpace(s) => {
                for e in m.e.iter().filter(|e| e.key.0 == s) {
                    must_be_gone.push(e.key);
                    must_be_gone.extend(m.descendants(e.key));
                }
                let n = d.remove_space(s, &mut |s, v, r| calls.push((s, v, r)));
                m.remove_space(s);
                count = Some(n);
            }
        }
        // The callbacks describe exactly the changes: each names a
        // distinct, currently mapped entry and really changes it.
        if let Some(n) = count {
            prop_assert_eq!(n, calls.len());
        }
        let mut seen = HashSet::new();
        for &(s, v, r) in &calls {
            prop_assert!(seen.insert((s, v)), "({}, {}) reported twice", s, v);
            let old = shadow.get(&(s, v)).copied();
            prop_assert!(old.is_some(), "update of unmapped ({}, {})", s, v);
            match r {
                None => {
                    shadow.remove(&(s, v));
                }
                Some(r) => {
                    let (f, o) = old.unwrap();
                    prop_assert!(r != o && o.contains(r), "bogus rights update {:?} -> {:?}", o, r);
                    shadow.insert((s, v), (f, r));
                }
            }
        }
        if let Some((k, f, r)) = new_pte {
            prop_assert!(shadow.insert(k, (f, r)).is_none(), "old mapping of {:?} not reported", k);
        }

        prop_assert_eq!(d.check(), Ok(()), "after {:?}", op);
        prop_assert_eq!(d.len(), m.e.len());
        for s in 0..SPACES {
            for v in 0..VPAGES {
                let got = d.lookup(s, v);
                let want = m.get((s, v)).map(|e| (e.frame, e.rights));
                prop_assert_eq!(got, want, "lookup({}, {}) after {:?}", s, v, op);
                prop_assert_eq!(got, shadow.get(&(s, v)).copied(), "page table ({}, {}) after {:?}", s, v, op);
                if let Some((f, r)) = got {
                    // Derived from a root of the same frame, and only
                    // in a space that was given that frame.
                    let root = m.get(m.root_of((s, v))).unwrap();
                    prop_assert_eq!(f, root.frame);
                    prop_assert!(root.rights.contains(r));
                    prop_assert!(given.contains(&(s, f)));
                }
            }
        }
        for k in &must_be_gone {
            prop_assert_eq!(d.lookup(k.0, k.1), None, "{:?} survived the flush {:?}", k, op);
        }
        for k in &must_lack.0 {
            let (_, r) = d.lookup(k.0, k.1).unwrap();
            prop_assert!(r.and(must_lack.1).is_empty(), "{:?} kept revoked rights", k);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prop_matches_model(ops in ops(120)) {
        run(24, &ops)?;
    }

    #[test]
    fn prop_matches_model_tiny(ops in ops(60)) {
        run(6, &ops)?;
    }
}
