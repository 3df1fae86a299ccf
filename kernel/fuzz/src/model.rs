//! A model of map, grant and flush across address spaces: it predicts
//! every mapping (frame and rights) of a small universe of pages after any
//! sequence of operations, as the kernel must carry them out (`abi::sys`
//! UNMAP, `abi::ipc` map and grant items).
//!
//! Space 0 is the root (sigma0, which owns every frame): its page `k` maps
//! frame `k` with all rights, always. Spaces `1..SPACES` are the actors,
//! each with pages `0..PAGES`. A mapping is derived from the one it was
//! mapped from; grant moves a mapping; flush revokes rights from what was
//! derived (and optionally the mapping itself), removing mappings that
//! lose read access together with everything derived from them.
//!
//! The model is deliberately naive (an array of nodes with parent keys,
//! walked in full): it is checked against the kernel's mapping database on
//! the host, and against the running kernel in the guest.

/// Spaces in the universe: the root and the actors.
pub const SPACES: usize = 5;
/// Pages per space (the root's page `k` is frame `k`).
pub const PAGES: usize = 8;

pub const READ: u8 = 4;
pub const WRITE: u8 = 2;
pub const EXEC: u8 = 1;
pub const ALL: u8 = 7;

/// A page of a space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub space: u8,
    pub page: u8,
}

impl Key {
    pub const fn new(space: u8, page: u8) -> Key {
        Key { space, page }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Node {
    frame: u8,
    rights: u8,
    parent: Option<Key>,
}

/// Why a map or grant did nothing (the IPC item still succeeds for the
/// first two: partly unmapped regions map what is there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapFail {
    /// The source page is not mapped.
    NotMapped,
    /// The resulting rights would lack read.
    NoRights,
    /// The destination is the source or one it derives from (or, for a
    /// grant, one derived from it): the item fails with InvalidArgument.
    Cycle,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    nodes: [[Option<Node>; PAGES]; SPACES],
}

impl Default for Model {
    fn default() -> Self {
        Self::new()
    }
}

impl Model {
    pub fn new() -> Model {
        Model::with_root_rights(ALL)
    }

    /// A universe whose root holds its frames with `rights` (a task's own
    /// data pages, say, are not executable).
    pub fn with_root_rights(rights: u8) -> Model {
        let mut nodes = [[None; PAGES]; SPACES];
        for (k, n) in nodes[0].iter_mut().enumerate() {
            *n = Some(Node { frame: k as u8, rights: rights & ALL, parent: None });
        }
        Model { nodes }
    }

    fn get(&self, k: Key) -> Option<Node> {
        self.nodes[k.space as usize][k.page as usize]
    }

    fn set(&mut self, k: Key, n: Option<Node>) {
        self.nodes[k.space as usize][k.page as usize] = n;
    }

    fn keys() -> impl Iterator<Item = Key> {
        (0..SPACES as u8).flat_map(|s| (0..PAGES as u8).map(move |p| Key::new(s, p)))
    }

    /// The mapping of `k`: (frame, rights).
    pub fn lookup(&self, k: Key) -> Option<(u8, u8)> {
        self.get(k).map(|n| (n.frame, n.rights))
    }

    /// Is `a` a strict ancestor of `k`?
    fn derives_from(&self, k: Key, a: Key) -> bool {
        let mut p = self.get(k).and_then(|n| n.parent);
        while let Some(q) = p {
            if q == a {
                return true;
            }
            p = self.get(q).and_then(|n| n.parent);
        }
        false
    }

    /// Removes `k` and everything derived from it; the count.
    fn remove_tree(&mut self, k: Key) -> usize {
        if self.get(k).is_none() {
            return 0;
        }
        let below: Keys = Self::keys().filter(|&c| self.derives_from(c, k)).collect();
        for &c in below.iter() {
            self.set(c, None);
        }
        self.set(k, None);
        below.n + 1
    }

    /// Maps (or grants) `from` to `to` with `rights` (intersected with the
    /// source's). The root is never granted away.
    pub fn map(&mut self, from: Key, to: Key, rights: u8, grant: bool) -> Result<(), MapFail> {
        let f = self.get(from).ok_or(MapFail::NotMapped)?;
        let eff = f.rights & rights & ALL;
        if eff & READ == 0 {
            return Err(MapFail::NoRights);
        }
        if to == from || self.derives_from(from, to) || (grant && self.derives_from(to, from)) {
            return Err(MapFail::Cycle);
        }
        self.remove_tree(to);
        if !grant {
            self.set(to, Some(Node { frame: f.frame, rights: eff, parent: Some(from) }));
            return Ok(());
        }
        // The node moves: what derived from `from` now derives from `to`,
        // with its rights cut to the new ones.
        self.set(from, None);
        self.set(to, Some(Node { rights: eff, ..f }));
        for k in Self::keys() {
            if let Some(mut n) = self.get(k) {
                if n.parent == Some(from) {
                    n.parent = Some(to);
                    self.set(k, Some(n));
                }
            }
        }
        self.restrict(to, false, eff);
        Ok(())
    }

    /// Cuts the rights of everything derived from `k` (and `k` itself if
    /// `include_self`) to `mask`; the number of mappings changed.
    fn restrict(&mut self, k: Key, include_self: bool, mask: u8) -> usize {
        let mut n = 0;
        for c in Self::keys() {
            if (c == k && !include_self) || (c != k && !self.derives_from(c, k)) {
                continue;
            }
            if let Some(mut node) = self.get(c) {
                if node.rights & mask != node.rights {
                    node.rights &= mask;
                    self.set(c, Some(node));
                    n += 1;
                }
            }
        }
        n
    }

    /// Flush of `k`: revoke `revoke` from everything derived from it (and
    /// from `k` if `include_self`); the number of mappings changed. The
    /// root's own mappings stay (sigma0 never flushes itself).
    pub fn flush(&mut self, k: Key, revoke: u8, include_self: bool) -> usize {
        let include_self = include_self && k.space != 0;
        let revoke = revoke & ALL;
        if self.get(k).is_none() || revoke == 0 {
            return 0;
        }
        if revoke & READ != 0 {
            if include_self {
                return self.remove_tree(k);
            }
            let children: Keys = Self::keys().filter(|&c| self.get(c).is_some_and(|n| n.parent == Some(k))).collect();
            return children.iter().map(|&c| self.remove_tree(c)).sum();
        }
        self.restrict(k, include_self, ALL & !revoke)
    }

    /// Actor space `s` goes away: its mappings and everything derived from
    /// them disappear; the count.
    pub fn remove_space(&mut self, s: u8) -> usize {
        (0..PAGES as u8).map(|p| self.remove_tree(Key::new(s, p))).sum()
    }
}

/// A fixed-capacity list of keys (the model allocates nothing).
struct Keys {
    k: [Key; SPACES * PAGES],
    n: usize,
}

impl Keys {
    fn iter(&self) -> impl Iterator<Item = &Key> {
        self.k[..self.n].iter()
    }
}

impl FromIterator<Key> for Keys {
    fn from_iter<I: IntoIterator<Item = Key>>(it: I) -> Keys {
        let mut ks = Keys { k: [Key::new(0, 0); SPACES * PAGES], n: 0 };
        for k in it {
            ks.k[ks.n] = k;
            ks.n += 1;
        }
        ks
    }
}

/// One operation on the universe, as the guest runner carries it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `from` maps (or grants) `pages` pages from its page `from.page` to
    /// `to`'s window at `to.page` (all aligned to `pages`).
    Map { from: Key, to: Key, pages: u8, rights: u8, grant: bool },
    /// `at.space` flushes `pages` pages from `at.page`.
    Flush { at: Key, pages: u8, revoke: u8, include_self: bool },
    /// Actor `space` is deleted and a new one takes its place.
    Renew { space: u8 },
    /// Actor `at.space` reads (or writes) its page `at.page`: it must fault
    /// exactly when the model has no such access.
    Touch { at: Key, write: bool },
}

/// What an operation must do, by the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Map item result: success, or InvalidArgument (a cycle).
    Map {
        cycle: bool,
    },
    /// UNMAP result: the number of mappings changed.
    Flushed(usize),
    Renewed,
    /// The access succeeds (and sees this frame) or faults.
    Touch(Option<u8>),
}

impl Model {
    /// Applies `op`; what the kernel must answer.
    pub fn apply(&mut self, op: Op) -> Outcome {
        match op {
            Op::Map { from, to, pages, rights, grant } => {
                let mut cycle = false;
                for i in 0..pages {
                    let (f, t) = (Key::new(from.space, from.page + i), Key::new(to.space, to.page + i));
                    if self.map(f, t, rights, grant) == Err(MapFail::Cycle) {
                        // The item stops at the first failing page.
                        cycle = true;
                        break;
                    }
                }
                Outcome::Map { cycle }
            }
            Op::Flush { at, pages, revoke, include_self } => Outcome::Flushed(
                (0..pages).map(|i| self.flush(Key::new(at.space, at.page + i), revoke, include_self)).sum(),
            ),
            Op::Renew { space } => {
                self.remove_space(space);
                Outcome::Renewed
            }
            Op::Touch { at, write } => {
                let need = if write { READ | WRITE } else { READ };
                Outcome::Touch(self.lookup(at).filter(|&(_, r)| r & need == need).map(|(f, _)| f))
            }
        }
    }

    /// A random operation, usually on mapped pages (so that trees grow).
    pub fn random_op(&self, r: &mut crate::Rng) -> Op {
        let pages = r.pick(&[1u8, 1, 1, 2, 4]);
        let aligned = |r: &mut crate::Rng| (r.below(PAGES as u64 / pages as u64) as u8) * pages;
        let actor = |r: &mut crate::Rng| r.range(1, SPACES as u64 - 1) as u8;
        let rights = r.pick(&[ALL, ALL, READ, READ | WRITE, READ | EXEC, WRITE, 0]);
        match r.below(10) {
            0..=4 => {
                let from = if r.chance(1, 3) { Key::new(0, aligned(r)) } else { Key::new(actor(r), aligned(r)) };
                // Another space: an actor cannot send a map item to itself.
                let mut to = Key::new(actor(r), aligned(r));
                if to.space == from.space {
                    to.space = to.space % (SPACES as u8 - 1) + 1;
                }
                let grant = from.space != 0 && r.chance(1, 4);
                Op::Map { from, to, pages, rights, grant }
            }
            5 | 6 => {
                let at = if r.chance(1, 5) { Key::new(0, aligned(r)) } else { Key::new(actor(r), aligned(r)) };
                Op::Flush {
                    at,
                    pages,
                    revoke: r.pick(&[ALL, READ, WRITE, EXEC, WRITE | EXEC]),
                    include_self: r.chance(1, 2),
                }
            }
            7 => Op::Renew { space: actor(r) },
            _ => Op::Touch { at: Key::new(actor(r), r.below(PAGES as u64) as u8), write: r.chance(1, 2) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel::mapdb::{MapDb, MapDbError, Node as DbNode, Rights};
    use proptest::prelude::*;

    const A: u8 = 1;
    const B: u8 = 2;
    const C: u8 = 3;

    #[test]
    fn map_grant_flush_by_hand() {
        let mut m = Model::new();
        let (root, a, b, c) = (Key::new(0, 2), Key::new(A, 0), Key::new(B, 0), Key::new(C, 0));
        assert_eq!(m.map(root, a, ALL, false), Ok(()));
        assert_eq!(m.map(a, b, READ | WRITE, false), Ok(()));
        assert_eq!(m.map(b, c, ALL, false), Ok(()));
        assert_eq!(m.lookup(c), Some((2, READ | WRITE)));
        // Back up the chain: a cycle.
        assert_eq!(m.map(c, a, ALL, false), Err(MapFail::Cycle));
        assert_eq!(m.map(b, b, ALL, false), Err(MapFail::Cycle));
        assert_eq!(m.map(Key::new(A, 5), c, ALL, false), Err(MapFail::NotMapped));
        assert_eq!(m.map(a, Key::new(C, 1), WRITE, false), Err(MapFail::NoRights));
        // Revoke write below a: b and c lose it.
        assert_eq!(m.flush(a, WRITE, false), 2);
        assert_eq!((m.lookup(a), m.lookup(c)), (Some((2, ALL)), Some((2, READ))));
        // Grant b to another page of C, read-only: c now derives from it.
        assert_eq!(m.map(b, Key::new(C, 3), READ, true), Ok(()));
        assert_eq!(m.lookup(b), None);
        assert_eq!(m.flush(Key::new(C, 3), READ, false), 1);
        assert_eq!(m.lookup(c), None);
        // The root's flush removes everything derived from the frame.
        assert_eq!(m.flush(root, ALL, true), 2);
        assert_eq!(m.lookup(root), Some((2, ALL)));
        assert_eq!(m.lookup(a), None);
    }

    fn db_key(k: Key) -> (u16, u64) {
        (k.space as u16, 0x100 + k.page as u64)
    }

    /// The same operations on the kernel's mapping database, as the
    /// kernel's map item and UNMAP drive it.
    fn db_apply(db: &mut MapDb<'_>, op: Op) -> Outcome {
        let mut nop = |_, _, _| {};
        match op {
            Op::Map { from, to, pages, rights, grant } => {
                for i in 0..pages {
                    let (f, t) = (db_key(Key::new(from.space, from.page + i)), db_key(Key::new(to.space, to.page + i)));
                    let r = if grant {
                        db.grant(f, t, Rights(rights), &mut nop)
                    } else {
                        db.map(f, t, Rights(rights), &mut nop)
                    };
                    match r {
                        Err(MapDbError::Cycle) => return Outcome::Map { cycle: true },
                        Err(MapDbError::Full) | Err(MapDbError::Exists) => panic!("{r:?}"),
                        _ => {}
                    }
                }
                Outcome::Map { cycle: false }
            }
            Op::Flush { at, pages, revoke, include_self } => {
                let include_self = include_self && at.space != 0;
                Outcome::Flushed(
                    (0..pages)
                        .map(|i| {
                            db.unmap(
                                db_key(Key::new(at.space, at.page + i)).0,
                                db_key(Key::new(at.space, at.page + i)).1,
                                Rights(revoke),
                                include_self,
                                &mut nop,
                            )
                        })
                        .sum(),
                )
            }
            Op::Renew { space } => {
                db.remove_space(space as u16, &mut nop);
                Outcome::Renewed
            }
            Op::Touch { at, write } => {
                let need = if write { 6 } else { 4 };
                Outcome::Touch(
                    db.lookup(db_key(at).0, db_key(at).1).filter(|&(_, r)| r.0 & need == need).map(|(f, _)| f as u8),
                )
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// The model and the kernel's mapping database agree on every
        /// result and every mapping after every operation.
        #[test]
        fn model_agrees_with_the_kernel_mapping_database(seed in any::<u64>(), n in 1usize..400) {
            let mut nodes = vec![DbNode::EMPTY; 256];
            let mut index = vec![0u32; 512];
            let mut db = MapDb::new(&mut nodes, &mut index);
            for k in 0..PAGES as u8 {
                db.insert_root(0, 0x100 + k as u64, k as u64, Rights::ALL).unwrap();
            }
            let mut m = Model::new();
            let mut r = crate::Rng::new(seed);
            for _ in 0..n {
                let op = m.random_op(&mut r);
                let want = m.apply(op);
                let got = db_apply(&mut db, op);
                prop_assert_eq!(want, got, "{:?}", op);
                for k in Model::keys() {
                    let (s, v) = db_key(k);
                    let d = db.lookup(s, v).map(|(f, r)| (f as u8, r.0));
                    prop_assert_eq!(m.lookup(k), d, "{:?} after {:?}", k, op);
                }
                prop_assert!(db.check().is_ok());
            }
        }
    }
}
